//! Judging a parsed condition against what a probe saw.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::cmp::Ordering;
use std::net::IpAddr;

use serde_json::Value;

use super::types::{Kind, Left, Literal, Name, Op, Placeholder, Right, Step};
use super::values::{Num, format_duration, parse_number, shown};
use super::{Condition, Facts};

impl Condition {
    /// Ok when the condition holds; otherwise the message, e.g. `[STATUS] (500) == 200`.
    pub(super) fn check_seen(&self, seen: &Seen<'_>) -> Result<(), String> {
        let actual = match resolve(&self.left, seen) {
            Ok(actual) => actual,
            Err(missing) => return Err(self.failure(missing.reason())),
        };
        let holds = match (self.op, &self.right) {
            (Op::Eq, right) => self.matches(&actual, right, seen),
            (Op::Ne, right) => !self.matches(&actual, right, seen),
            (op, Right::Value(literal)) => order(&actual, literal).is_some_and(|o| op.accepts(o)),
            // The parser only lets `==` and `!=` take pat() or any().
            (_, Right::Pattern(_) | Right::Any(_)) => false,
        };
        if holds { Ok(()) } else { Err(self.failure(&shown(&text_of(&actual)))) }
    }

    fn matches(&self, actual: &Actual<'_>, right: &Right, seen: &Seen<'_>) -> bool {
        let kind = self.left.kind();
        match right {
            Right::Value(literal) => equals(kind, actual, literal, seen),
            Right::Pattern(pattern) => glob(pattern, &text_of(actual)),
            Right::Any(literals) => literals.iter().any(|literal| equals(kind, actual, literal, seen)),
        }
    }

    fn failure(&self, actual: &str) -> String {
        format!("{} ({actual}) {} {}", self.left_text, self.op, self.right_text)
    }
}

/// The facts of one probe, with the body's JSON parsed on first use and shared by the conditions.
pub(super) struct Seen<'a> {
    facts: &'a Facts,
    json: OnceCell<Option<Value>>,
}

impl<'a> Seen<'a> {
    pub(super) fn new(facts: &'a Facts) -> Seen<'a> {
        Seen { facts, json: OnceCell::new() }
    }

    /// serde_json bounds nesting (128 levels), so a hostile body cannot overflow the stack.
    fn json(&self) -> Option<&Value> {
        self.json.get_or_init(|| self.facts.body.as_deref().and_then(|b| serde_json::from_slice(b).ok())).as_ref()
    }
}

/// Why a left side has no value.
#[derive(Debug, Clone, Copy)]
enum Missing {
    NotFilled,
    NotJson,
    NoSuchPath,
}

impl Missing {
    fn reason(self) -> &'static str {
        match self {
            Missing::NotFilled => "n/a",
            Missing::NotJson => "not JSON",
            Missing::NoSuchPath => "no such path",
        }
    }
}

/// The value of a left side.
enum Actual<'s> {
    Num(Num),
    /// `[CERTIFICATE_EXPIRATION]`, in ms like the duration literals.
    Millis(i128),
    Bool(bool),
    Text(&'s str),
    /// The raw body, trimmed.
    Body(Cow<'s, str>),
    Json(&'s Value),
}

fn resolve<'s>(left: &Left, seen: &'s Seen<'_>) -> Result<Actual<'s>, Missing> {
    match left {
        Left::Value(p) => value(p, seen),
        Left::Len(p) => length(p, seen).map(|n| Actual::Num(Num::Int(n))),
        // Absence, for whatever reason, is the answer here rather than a failure.
        Left::Has(p) => Ok(Actual::Bool(value(p, seen).is_ok())),
    }
}

fn value<'s>(p: &Placeholder, seen: &'s Seen<'_>) -> Result<Actual<'s>, Missing> {
    let facts = seen.facts;
    let found = match p.name {
        Name::Status => facts.status.map(|s| Actual::Num(Num::Int(s.into()))),
        Name::ResponseTime => facts.response_time_ms.map(|ms| Actual::Num(Num::Int(ms.into()))),
        Name::Connected => facts.connected.map(Actual::Bool),
        Name::CertificateExpiration => {
            facts.certificate_expiration_seconds.map(|s| Actual::Millis(i128::from(s) * 1000))
        }
        Name::DnsRcode => facts.dns_rcode.as_deref().map(Actual::Text),
        Name::Ip => facts.ip.as_deref().map(Actual::Text),
        Name::Body if p.path.is_empty() => {
            facts.body.as_deref().map(|b| Actual::Body(trim_cow(String::from_utf8_lossy(b))))
        }
        Name::Body => return json_at(p, seen).map(Actual::Json),
    };
    found.ok_or(Missing::NotFilled)
}

fn json_at<'s>(p: &Placeholder, seen: &'s Seen<'_>) -> Result<&'s Value, Missing> {
    if seen.facts.body.is_none() {
        return Err(Missing::NotFilled);
    }
    let root = seen.json().ok_or(Missing::NotJson)?;
    p.path
        .iter()
        .try_fold(root, |v, step| match (step, v) {
            (Step::Key(key), Value::Object(map)) => map.get(key),
            (Step::Index(i), Value::Array(items)) => items.get(*i),
            _ => None,
        })
        .ok_or(Missing::NoSuchPath)
}

fn length(p: &Placeholder, seen: &Seen<'_>) -> Result<i128, Missing> {
    let count = |n: usize| i128::try_from(n).unwrap_or(i128::MAX);
    match p.name {
        // The raw body may not be text: its length is in bytes.
        Name::Body if p.path.is_empty() => seen.facts.body.as_ref().map(|b| count(b.len())).ok_or(Missing::NotFilled),
        Name::Body => Ok(count(match json_at(p, seen)? {
            Value::Array(items) => items.len(),
            Value::Object(map) => map.len(),
            Value::String(s) => s.chars().count(),
            Value::Null => 0,
            other => other.to_string().chars().count(),
        })),
        Name::Ip => seen.facts.ip.as_ref().map(|s| count(s.chars().count())).ok_or(Missing::NotFilled),
        Name::DnsRcode => seen.facts.dns_rcode.as_ref().map(|s| count(s.chars().count())).ok_or(Missing::NotFilled),
        // The parser refuses len() of anything else.
        _ => Err(Missing::NotFilled),
    }
}

fn trim_cow(text: Cow<'_, str>) -> Cow<'_, str> {
    match text {
        Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
        Cow::Owned(s) => Cow::Owned(s.trim().to_string()),
    }
}

fn equals(kind: Kind, actual: &Actual<'_>, literal: &Literal, seen: &Seen<'_>) -> bool {
    match actual {
        Actual::Num(n) => literal.num.is_some_and(|m| n.same(m)),
        Actual::Millis(ms) => literal.millis == Some(*ms),
        Actual::Bool(b) => literal.boolean == Some(*b),
        Actual::Text(s) => match kind {
            // `::1` and `0:0:0:0:0:0:0:1` are the same address.
            Kind::Ip => *s == literal.text || (literal.ip.is_some() && s.parse::<IpAddr>().ok() == literal.ip),
            Kind::Rcode => s.eq_ignore_ascii_case(&literal.text),
            _ => text_equals(s, literal),
        },
        Actual::Body(s) => text_equals(s, literal) || (literal.json.is_some() && seen.json() == literal.json.as_ref()),
        Actual::Json(v) => json_equals(v, literal),
    }
}

fn text_equals(text: &str, literal: &Literal) -> bool {
    text == literal.text || literal.num.is_some_and(|m| parse_number(text).is_some_and(|n| n.same(m)))
}

fn json_equals(v: &Value, literal: &Literal) -> bool {
    match v {
        Value::String(s) => text_equals(s, literal),
        Value::Number(n) => {
            Num::from_json(n).zip(literal.num).is_some_and(|(a, b)| a.same(b)) || n.to_string() == literal.text
        }
        Value::Bool(b) => literal.boolean == Some(*b),
        Value::Null => literal.text == "null",
        Value::Array(_) | Value::Object(_) => literal.json.as_ref() == Some(v),
    }
}

fn order(actual: &Actual<'_>, literal: &Literal) -> Option<Ordering> {
    match actual {
        Actual::Millis(ms) => literal.millis.map(|m| ms.cmp(&m)),
        _ => number_of(actual)?.compare(literal.num?),
    }
}

fn number_of(actual: &Actual<'_>) -> Option<Num> {
    match actual {
        Actual::Num(n) => Some(*n),
        Actual::Text(s) => parse_number(s),
        Actual::Body(s) => parse_number(s),
        Actual::Json(Value::Number(n)) => Num::from_json(n),
        Actual::Json(Value::String(s)) => parse_number(s),
        _ => None,
    }
}

/// The value as text, for pat() and for messages.
fn text_of<'a>(actual: &'a Actual<'_>) -> Cow<'a, str> {
    match actual {
        Actual::Num(n) => Cow::Owned(n.to_string()),
        Actual::Millis(ms) => Cow::Owned(format_duration(*ms)),
        Actual::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        Actual::Text(s) => Cow::Borrowed(s),
        Actual::Body(s) => Cow::Borrowed(s),
        Actual::Json(Value::String(s)) => Cow::Borrowed(s),
        Actual::Json(v) => Cow::Owned(v.to_string()),
    }
}

/// `*` matches any run of characters, everything else itself. Anchoring both ends first, then
/// taking each middle piece at its leftmost place, is exact for `*`-only patterns and linear,
/// where backtracking could go quadratic on a 1 MiB body.
pub(super) fn glob(pattern: &str, text: &str) -> bool {
    let mut pieces = pattern.split('*');
    let first = pieces.next().unwrap_or("");
    let Some(rest) = text.strip_prefix(first) else {
        return false;
    };
    let mut middle: Vec<&str> = pieces.collect();
    let Some(last) = middle.pop() else {
        return rest.is_empty();
    };
    let Some(mut rest) = rest.strip_suffix(last) else {
        return false;
    };
    for piece in middle.into_iter().filter(|p| !p.is_empty()) {
        let Some(at) = rest.find(piece) else {
            return false;
        };
        rest = rest.get(at + piece.len()..).unwrap_or("");
    }
    true
}
