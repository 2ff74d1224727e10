//! Conditions: what "healthy" means, in the syntax Gatus users already know.
//!
//! A condition is `<left> <operator> <right>`, e.g. `[STATUS] == 200`:
//!
//! - left: a placeholder, `[STATUS]`, `[RESPONSE_TIME]` (ms), `[BODY]`, `[CONNECTED]`,
//!   `[CERTIFICATE_EXPIRATION]`, `[DNS_RCODE]` or `[IP]`; or `[BODY]` followed by a JSON path
//!   (`[BODY].data[0].id`, `[BODY][0].name`); or `len(<placeholder>)`, the elements of a JSON array
//!   or object, the characters of a string or the bytes of the raw body; or `has(<placeholder>)`,
//!   whether the value is there at all (`has([BODY].errors) == false`).
//! - operator: `==`, `!=`, `<`, `<=`, `>`, `>=`.
//! - right: a value; or `pat(<pattern>)`, where `*` matches any run of characters
//!   (`[BODY].name == pat(john*)`); or `any(<value>, …)` (`[STATUS] == any(200, 301)`).
//!
//! Numbers compare numerically (`[BODY].id == 1` holds for the number 1 and the string "1"); other
//! values compare as text, JSON strings by their content. `[CERTIFICATE_EXPIRATION]` compares with
//! a duration (`48h`, `30m`, `1h30m`, `90s`, `7d`, `500ms`, or `0`); `[RESPONSE_TIME]` with
//! milliseconds or a duration. `[BODY]` without a path is the raw body, surrounding whitespace
//! ignored (a TCP reply usually ends in a newline).
//!
//! A condition that does not hold reads like Gatus': the actual value in parentheses after the
//! left side, `[STATUS] (500) == 200`; a value the probe did not see shows why instead,
//! `[BODY].status (no such path) == UP`, and fails the condition whatever the operator.
//!
//! Everything that does not need a probe is checked by [`Condition::parse`] (placeholders,
//! functions, brackets, the kind of value each placeholder compares with), so a typo is a config
//! error at load, not an asset that is mysteriously down.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::cmp::Ordering;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// What a probe saw, for conditions to judge. A probe fills what its protocol has; a
/// condition on a placeholder the probe did not fill fails, naming the value as missing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// `[STATUS]`: the HTTP status.
    pub status: Option<u16>,
    /// `[RESPONSE_TIME]`, ms: filled by `probe::run` for every probe.
    pub response_time_ms: Option<u64>,
    /// `[BODY]`: the HTTP body (at most 1 MiB), a TCP reply, DNS answers one per line.
    pub body: Option<Vec<u8>>,
    /// What of the body the probe could not see (cut at its limit, or an encoding it cannot
    /// decode), added to the message of a failed `[BODY]` condition.
    pub body_note: Option<String>,
    /// `[CONNECTED]`: whether a connection was made.
    pub connected: Option<bool>,
    /// `[CERTIFICATE_EXPIRATION]`: seconds until the earliest certificate expiry (negative once expired).
    pub certificate_expiration_seconds: Option<i64>,
    /// `[DNS_RCODE]`: NOERROR, NXDOMAIN, SERVFAIL, …
    pub dns_rcode: Option<String>,
    /// `[IP]`: the address connected to or resolved.
    pub ip: Option<String>,
}

/// Conditions come from config files; a bound keeps parsing (and error messages) small.
const MAX_TEXT_BYTES: usize = 4096;
/// Bounds the walk into the body; no real health document nests deeper.
const MAX_PATH_STEPS: usize = 32;
/// A failure message quotes the actual value; a 1 MiB body must not end up in an alert.
const MAX_SHOWN_CHARS: usize = 100;
/// Config errors quote the offending text, briefly.
const MAX_QUOTED_CHARS: usize = 40;

const PLACEHOLDERS: &str =
    "[STATUS], [RESPONSE_TIME], [BODY], [CONNECTED], [CERTIFICATE_EXPIRATION], [DNS_RCODE], [IP]";
const OPERATORS: &str = "==, !=, <, <=, >, >=";
const FUNCTIONS: &str = "len(), has(), pat(), any()";
const DURATION_EXAMPLES: &str = "e.g. 48h, 30m, 1h30m, 90s, 7d, 500ms";
/// The mnemonics of RFC 1035, 2136, 2845, 2930, 4635, 6891 and 7873: a literal outside this list is
/// a typo that would never match.
const RCODES: &[&str] = &[
    "NOERROR",
    "FORMERR",
    "SERVFAIL",
    "NXDOMAIN",
    "NOTIMP",
    "REFUSED",
    "YXDOMAIN",
    "YXRRSET",
    "NXRRSET",
    "NOTAUTH",
    "NOTZONE",
    "BADVERS",
    "BADSIG",
    "BADKEY",
    "BADTIME",
    "BADMODE",
    "BADNAME",
    "BADALG",
    "BADTRUNC",
    "BADCOOKIE",
];

/// One parsed condition; keeps its text for messages and for serializing back.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    text: String,
    left: Left,
    op: Op,
    right: Right,
    /// The two sides as written, for messages in the `left (actual) op right` shape.
    left_text: String,
    right_text: String,
}

impl Condition {
    pub fn parse(text: &str) -> Result<Condition, String> {
        parse_condition(text)
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Ok when the condition holds; otherwise the message, e.g. `[STATUS] (500) == 200`.
    pub fn check(&self, facts: &Facts) -> Result<(), String> {
        self.check_seen(&Seen::new(facts))
    }

    fn check_seen(&self, seen: &Seen<'_>) -> Result<(), String> {
        let actual = match resolve(&self.left, seen) {
            Ok(actual) => actual,
            Err(missing) => return Err(self.failure(missing.reason())),
        };
        let holds = match (self.op, &self.right) {
            (Op::Eq, right) => self.matches(&actual, right, seen),
            (Op::Ne, right) => !self.matches(&actual, right, seen),
            (op, Right::Value(literal)) => order(&actual, literal).is_some_and(|o| op.accepts(o)),
            // `parse` only lets `==` and `!=` take pat() or any().
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

/// The message of the first condition that does not hold, if any.
pub fn first_failure(conditions: &[Condition], facts: &Facts) -> Option<String> {
    // One `Seen` for all the conditions, so the body is parsed as JSON at most once.
    let seen = Seen::new(facts);
    conditions.iter().find_map(|c| c.check_seen(&seen).err())
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Condition::parse(&text).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// The parsed form.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Name {
    Status,
    ResponseTime,
    Body,
    Connected,
    CertificateExpiration,
    DnsRcode,
    Ip,
}

impl Name {
    fn parse(text: &str) -> Option<Name> {
        Some(match text {
            "STATUS" => Name::Status,
            "RESPONSE_TIME" => Name::ResponseTime,
            "BODY" => Name::Body,
            "CONNECTED" => Name::Connected,
            "CERTIFICATE_EXPIRATION" => Name::CertificateExpiration,
            "DNS_RCODE" => Name::DnsRcode,
            "IP" => Name::Ip,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Name::Status => "[STATUS]",
            Name::ResponseTime => "[RESPONSE_TIME]",
            Name::Body => "[BODY]",
            Name::Connected => "[CONNECTED]",
            Name::CertificateExpiration => "[CERTIFICATE_EXPIRATION]",
            Name::DnsRcode => "[DNS_RCODE]",
            Name::Ip => "[IP]",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, PartialEq)]
struct Placeholder {
    name: Name,
    /// Only `[BODY]` has one.
    path: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
enum Left {
    Value(Placeholder),
    Len(Placeholder),
    Has(Placeholder),
}

/// What a left side compares with, which decides the literals and operators it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Number,
    /// `[RESPONSE_TIME]`: a number of ms, or a duration.
    Millis,
    /// `[CERTIFICATE_EXPIRATION]`: durations only, since a bare number's unit would be a guess.
    Duration,
    Bool,
    Ip,
    Rcode,
    /// Whatever the body holds: anything goes with `==`, numbers with orderings.
    Body,
}

impl Left {
    fn kind(&self) -> Kind {
        match self {
            Left::Len(_) => Kind::Number,
            Left::Has(_) => Kind::Bool,
            Left::Value(p) => match p.name {
                Name::Status => Kind::Number,
                Name::ResponseTime => Kind::Millis,
                Name::Body => Kind::Body,
                Name::Connected => Kind::Bool,
                Name::CertificateExpiration => Kind::Duration,
                Name::DnsRcode => Kind::Rcode,
                Name::Ip => Kind::Ip,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn parse(text: &str) -> Option<Op> {
        Some(match text {
            "==" => Op::Eq,
            "!=" => Op::Ne,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            _ => return None,
        })
    }

    fn is_ordering(self) -> bool {
        !matches!(self, Op::Eq | Op::Ne)
    }

    fn accepts(self, ordering: Ordering) -> bool {
        match self {
            Op::Eq => ordering == Ordering::Equal,
            Op::Ne => ordering != Ordering::Equal,
            Op::Lt => ordering == Ordering::Less,
            Op::Le => ordering != Ordering::Greater,
            Op::Gt => ordering == Ordering::Greater,
            Op::Ge => ordering != Ordering::Less,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        })
    }
}

/// A number from a literal, a fact or the body. Integers stay exact (JSON ids can exceed f64's 53
/// bits); never NaN, as only finite floats are made.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    fn compare(self, other: Num) -> Option<Ordering> {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
            _ => self.as_f64().partial_cmp(&other.as_f64()),
        }
    }

    fn same(self, other: Num) -> bool {
        self.compare(other) == Some(Ordering::Equal)
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    fn from_json(n: &serde_json::Number) -> Option<Num> {
        if let Some(i) = n.as_i64() {
            return Some(Num::Int(i.into()));
        }
        if let Some(u) = n.as_u64() {
            return Some(Num::Int(u.into()));
        }
        n.as_f64().filter(|f| f.is_finite()).map(Num::Float)
    }
}

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Num::Int(i) => write!(f, "{i}"),
            Num::Float(x) => write!(f, "{x}"),
        }
    }
}

/// A value on the right, read every way it may be compared, once, at parse time.
#[derive(Debug, Clone, PartialEq)]
struct Literal {
    text: String,
    num: Option<Num>,
    millis: Option<i128>,
    boolean: Option<bool>,
    ip: Option<IpAddr>,
    /// For comparing a JSON array or object with `[...]` / `{...}`, whatever the spacing.
    json: Option<Value>,
}

impl Literal {
    fn new(text: &str) -> Literal {
        Literal {
            text: text.to_string(),
            num: parse_number(text),
            millis: parse_duration(text),
            boolean: match text {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            },
            ip: text.parse().ok(),
            json: if text.starts_with(['[', '{']) { serde_json::from_str(text).ok() } else { None },
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Right {
    Value(Literal),
    Pattern(String),
    Any(Vec<Literal>),
}

// ---------------------------------------------------------------------------------------------
// Parsing.

/// Walks the text by chars; positions are always char boundaries, and `get` keeps slicing total.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or("")
    }

    fn since(&self, start: usize) -> &'a str {
        self.text.get(start..self.pos).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) {
        if let Some(c) = self.peek() {
            self.pos += c.len_utf8();
        }
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek()
            && keep(c)
        {
            self.pos += c.len_utf8();
        }
        self.since(start)
    }

    /// Whether any whitespace was skipped.
    fn skip_whitespace(&mut self) -> bool {
        !self.take_while(char::is_whitespace).is_empty()
    }
}

fn is_operator_char(c: char) -> bool {
    matches!(c, '=' | '!' | '<' | '>')
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// A JSON key in a path runs until what could start the next step, the operator or the end.
fn is_key_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '.' | '[' | ']' | '(' | ')' | ',') && !is_operator_char(c)
}

/// What sits between brackets, up to where a `]` should be.
fn is_bracketed_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '[' | ']' | '(' | ')')
}

fn parse_condition(text: &str) -> Result<Condition, String> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(format!("condition too long ({} bytes, at most {MAX_TEXT_BYTES})", text.len()));
    }
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("empty condition: expected e.g. `[STATUS] == 200`".to_string());
    }
    let mut cur = Cursor { text: trimmed, pos: 0 };
    if cur.peek().is_some_and(is_operator_char) {
        let op = cur.take_while(is_operator_char);
        return Err(format!("empty left side before `{}`: expected a placeholder such as [STATUS]", quote(op)));
    }
    let left = parse_left(&mut cur)?;
    let left_text = cur.since(0);
    let spaced = cur.skip_whitespace();
    let op_text = match cur.peek() {
        None => return Err(format!("missing operator after `{left_text}` (one of {OPERATORS})")),
        Some(c) if is_operator_char(c) => cur.take_while(is_operator_char),
        Some(')') => return Err(format!("unbalanced parentheses: unexpected `)` after `{left_text}`")),
        Some(']') => return Err(format!("unbalanced brackets: unexpected `]` after `{left_text}`")),
        Some(_) if spaced => {
            return Err(format!(
                "missing operator between `{left_text}` and `{}` (one of {OPERATORS})",
                quote(cur.rest())
            ));
        }
        Some(c) => return Err(format!("unexpected `{c}` right after `{left_text}`")),
    };
    let op = match Op::parse(op_text) {
        Some(op) => op,
        None if op_text == "=" => return Err("unknown operator `=` (did you mean `==`?)".to_string()),
        None => return Err(format!("unknown operator `{}` (one of {OPERATORS})", quote(op_text))),
    };
    let right_text = cur.rest().trim();
    if right_text.is_empty() {
        return Err(format!("empty right side after `{op}`: expected a value to compare `{left_text}` with"));
    }
    let kind = left.kind();
    check_operator(kind, op, left_text)?;
    let right = parse_right(right_text, kind, op, left_text)?;
    Ok(Condition {
        text: text.to_string(),
        left,
        op,
        right,
        left_text: left_text.to_string(),
        right_text: right_text.to_string(),
    })
}

fn parse_left(cur: &mut Cursor<'_>) -> Result<Left, String> {
    let must_be = || format!("the left side must be a placeholder ({PLACEHOLDERS}) or len()/has() of one");
    match cur.peek() {
        Some('[') => Ok(Left::Value(parse_placeholder(cur)?)),
        Some(c) if c.is_ascii_alphabetic() => {
            let ident = cur.take_while(is_ident_char);
            if cur.peek() != Some('(') {
                return Err(match Name::parse(&ident.to_ascii_uppercase()) {
                    Some(name) => format!("placeholders go in brackets: `{}`, not `{}`", name.as_str(), quote(ident)),
                    None => format!("{}, not `{}`", must_be(), quote(first_word(cur.since(0)))),
                });
            }
            cur.bump();
            let wrap: fn(Placeholder) -> Left = match ident {
                "len" => Left::Len,
                "has" => Left::Has,
                "pat" => return Err("pat() goes on the right side, e.g. `[BODY].name == pat(john*)`".to_string()),
                "any" => return Err("any() goes on the right side, e.g. `[STATUS] == any(200, 301)`".to_string()),
                _ => return Err(unknown_function(ident)),
            };
            cur.skip_whitespace();
            match cur.peek() {
                Some('[') => {}
                None => return Err(format!("unbalanced parentheses: `{ident}(` has no closing `)`")),
                Some(')') => return Err(format!("{ident}() needs a placeholder, e.g. `{ident}([BODY].items)`")),
                Some(_) => {
                    return Err(format!(
                        "{ident}() takes a placeholder such as [BODY].items, not `{}`",
                        quote(first_word(cur.rest()))
                    ));
                }
            }
            let placeholder = parse_placeholder(cur)?;
            cur.skip_whitespace();
            match cur.peek() {
                Some(')') => cur.bump(),
                Some(_) if cur.rest().contains(')') => {
                    return Err(format!(
                        "unexpected `{}` in `{ident}(...)`: it takes one placeholder",
                        quote(first_word(cur.rest()))
                    ));
                }
                _ => return Err(format!("unbalanced parentheses: `{ident}(` has no closing `)`")),
            }
            if ident == "len" && !matches!(placeholder.name, Name::Body | Name::Ip | Name::DnsRcode) {
                return Err(format!(
                    "len() applies to [BODY], [IP] and [DNS_RCODE], not {}",
                    placeholder.name.as_str()
                ));
            }
            Ok(wrap(placeholder))
        }
        Some(')') => Err("unbalanced parentheses: unexpected `)`".to_string()),
        Some(']') => Err("unbalanced brackets: unexpected `]`".to_string()),
        _ => Err(format!("{}, not `{}`", must_be(), quote(first_word(cur.rest())))),
    }
}

/// `[NAME]`, then for `[BODY]` any number of `.key` and `[index]` steps.
fn parse_placeholder(cur: &mut Cursor<'_>) -> Result<Placeholder, String> {
    let start = cur.pos;
    cur.bump();
    let name_text = cur.take_while(is_bracketed_char);
    if cur.peek() != Some(']') {
        return Err(format!("unbalanced brackets: `[{}` has no closing `]`", quote(name_text)));
    }
    cur.bump();
    let name = Name::parse(name_text).ok_or_else(|| unknown_placeholder(name_text))?;
    let mut path = Vec::new();
    loop {
        match cur.peek() {
            Some('.') => {
                cur.bump();
                let key = cur.take_while(is_key_char);
                if key.is_empty() {
                    return Err(format!("empty key after `.` in `{}`", quote(cur.since(start))));
                }
                path.push(Step::Key(key.to_string()));
            }
            Some('[') => {
                cur.bump();
                let index = cur.take_while(is_bracketed_char);
                if cur.peek() != Some(']') {
                    return Err(format!(
                        "unbalanced brackets: `[{}` in `{}` has no closing `]`",
                        quote(index),
                        quote(cur.since(start))
                    ));
                }
                cur.bump();
                path.push(Step::Index(parse_index(index)?));
            }
            _ => break,
        }
        if path.len() > MAX_PATH_STEPS {
            return Err(format!("path too deep: at most {MAX_PATH_STEPS} steps after [BODY]"));
        }
    }
    if !path.is_empty() && name != Name::Body {
        return Err(format!("only [BODY] takes a path (.key or [index]), not {}", name.as_str()));
    }
    Ok(Placeholder { name, path })
}

fn parse_index(text: &str) -> Result<usize, String> {
    if text == "*" {
        return Err("wildcard `[*]` is not supported: index one element, e.g. `[0]`".to_string());
    }
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid index `[{}]` in path: expected a number such as [0]", quote(text)));
    }
    // Nine digits is far beyond any body we keep (1 MiB), and fits every usize.
    if text.len() > 9 {
        return Err(format!("index `[{}]` too large", quote(text)));
    }
    text.parse().map_err(|_| format!("invalid index `[{}]` in path", quote(text)))
}

/// Operators that cannot apply to the left side, whatever the right.
fn check_operator(kind: Kind, op: Op, left: &str) -> Result<(), String> {
    if !op.is_ordering() {
        return Ok(());
    }
    match kind {
        Kind::Bool => Err(format!("`{op}` needs numbers, but `{left}` is true or false: use == or !=")),
        Kind::Ip | Kind::Rcode => Err(format!("`{op}` needs numbers, but `{left}` is text: use == or !=")),
        _ => Ok(()),
    }
}

fn parse_right(text: &str, kind: Kind, op: Op, left: &str) -> Result<Right, String> {
    refuse_placeholder(text)?;
    let Some((ident, inner)) = split_call(text)? else {
        return literal(text, kind, op, left).map(Right::Value);
    };
    match ident {
        "pat" | "any" if op.is_ordering() => {
            Err(format!("`{op}` cannot compare with {ident}(): pat() and any() go with == or !="))
        }
        "pat" => {
            match kind {
                Kind::Bool => return Err(format!("pat() matches text, but `{left}` is true or false")),
                Kind::Duration => return Err(format!("pat() matches text, but `{left}` is a duration")),
                _ => {}
            }
            let pattern = inner.trim();
            if pattern.is_empty() {
                return Err("pat() needs a pattern, e.g. `pat(john*)`".to_string());
            }
            Ok(Right::Pattern(pattern.to_string()))
        }
        "any" => {
            if inner.trim().is_empty() {
                return Err("any() needs at least one value, e.g. `any(200, 301)`".to_string());
            }
            let mut literals = Vec::new();
            for option in inner.split(',').map(str::trim) {
                if option.is_empty() {
                    return Err(format!("empty value in `{}`", quote(text)));
                }
                refuse_placeholder(option)?;
                if split_call(option)?.is_some() {
                    return Err(format!("any() takes plain values, not `{}`", quote(option)));
                }
                literals.push(literal(option, kind, Op::Eq, left)?);
            }
            Ok(Right::Any(literals))
        }
        "len" | "has" => Err(format!("{ident}() goes on the left side, e.g. `{ident}([BODY].items) == ...`")),
        _ => Err(unknown_function(ident)),
    }
}

/// Comparing two placeholders is not supported; say so rather than compare with the text `[IP]`.
fn refuse_placeholder(text: &str) -> Result<(), String> {
    let name = text.strip_prefix('[').and_then(|rest| rest.split(']').next()).unwrap_or("");
    if Name::parse(&name.to_ascii_uppercase()).is_some() {
        return Err(format!(
            "a placeholder goes on the left side, not the right (`{}`): compare it with a value, e.g. `[STATUS] == 200`",
            quote(text)
        ));
    }
    Ok(())
}

/// `name(inner)` when the text is a function call; an error when it starts like one but is not
/// closed, or goes on after the `)`.
fn split_call(text: &str) -> Result<Option<(&str, &str)>, String> {
    if !text.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Ok(None);
    }
    let ident_len = text.bytes().take_while(|&b| is_ident_char(char::from(b))).count();
    let (ident, rest) = text.split_at_checked(ident_len).unwrap_or((text, ""));
    let Some(after_open) = rest.strip_prefix('(') else {
        return Ok(None);
    };
    let mut depth = 1usize;
    for (i, c) in after_open.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => continue,
        }
        if depth == 0 {
            let inner = after_open.get(..i).unwrap_or("");
            let trailing = after_open.get(i + 1..).unwrap_or("").trim();
            if !trailing.is_empty() {
                return Err(format!("unexpected `{}` after `{ident}(...)`", quote(trailing)));
            }
            return Ok(Some((ident, inner)));
        }
    }
    Err(format!("unbalanced parentheses: `{ident}(` has no closing `)`"))
}

fn literal(text: &str, kind: Kind, op: Op, left: &str) -> Result<Literal, String> {
    for word in text.split_whitespace() {
        if word == "&&" || word == "||" {
            return Err(format!(
                "`{word}` is not supported: list each check as its own condition (all must hold), or use any(a, b)"
            ));
        }
        if Op::parse(word).is_some() {
            return Err(format!(
                "more than one operator (another `{word}` in `{}`): a condition compares one placeholder with one value; any(a, b) lists alternatives",
                quote(text)
            ));
        }
    }
    check_balanced(text)?;
    let mut literal = Literal::new(text);
    check_literal(kind, op, left, &mut literal)?;
    Ok(literal)
}

/// A stray bracket or parenthesis in a value is almost always a typo around pat(), any() or a
/// placeholder, and would silently never match.
fn check_balanced(text: &str) -> Result<(), String> {
    let (mut parens, mut brackets) = (0i64, 0i64);
    for c in text.chars() {
        match c {
            '(' => parens += 1,
            ')' => parens -= 1,
            '[' => brackets += 1,
            ']' => brackets -= 1,
            _ => {}
        }
        if parens < 0 {
            return Err(format!("unbalanced parentheses: unexpected `)` in `{}`", quote(text)));
        }
        if brackets < 0 {
            return Err(format!("unbalanced brackets: unexpected `]` in `{}`", quote(text)));
        }
    }
    if parens > 0 {
        return Err(format!("unbalanced parentheses: `(` without `)` in `{}`", quote(text)));
    }
    if brackets > 0 {
        return Err(format!("unbalanced brackets: `[` without `]` in `{}`", quote(text)));
    }
    Ok(())
}

/// Whether the left side can ever equal (or be ordered against) this literal.
fn check_literal(kind: Kind, op: Op, left: &str, literal: &mut Literal) -> Result<(), String> {
    let text = quote(&literal.text);
    match kind {
        Kind::Number | Kind::Body if op.is_ordering() && literal.num.is_none() => {
            Err(format!("`{op}` needs a number on the right, not `{text}`"))
        }
        Kind::Number if literal.num.is_none() => Err(format!("`{left}` is a number, so it never equals `{text}`")),
        Kind::Millis if literal.num.is_none() => match literal.millis {
            Some(ms) => {
                literal.num = Some(Num::Int(ms));
                Ok(())
            }
            None if looks_like_duration(&literal.text) => Err(invalid_duration(&text)),
            None => Err(format!(
                "`{left}` is in milliseconds: compare it with a number or a duration such as 300 or 1s, not `{text}`"
            )),
        },
        Kind::Duration => match literal.millis {
            Some(_) => Ok(()),
            None if literal.num.is_some() => {
                Err(format!("`{left}` compares with a duration: `{text}` needs a unit ({DURATION_EXAMPLES})"))
            }
            None if looks_like_duration(&literal.text) => Err(invalid_duration(&text)),
            None => Err(format!("`{left}` compares with a duration ({DURATION_EXAMPLES}), not `{text}`")),
        },
        Kind::Bool if literal.boolean.is_none() => Err(format!("`{left}` is true or false, never `{text}`")),
        Kind::Ip if literal.ip.is_none() => Err(format!("`{text}` is not an IP address")),
        Kind::Rcode if !RCODES.iter().any(|r| r.eq_ignore_ascii_case(&literal.text)) => {
            Err(format!("unknown DNS rcode `{text}` (one of {})", RCODES.join(", ")))
        }
        _ => Ok(()),
    }
}

fn looks_like_duration(text: &str) -> bool {
    text.strip_prefix('-').unwrap_or(text).starts_with(|c: char| c.is_ascii_digit())
}

fn invalid_duration(text: &str) -> String {
    format!("invalid duration `{text}` ({DURATION_EXAMPLES})")
}

fn unknown_placeholder(name: &str) -> String {
    let hint = if Name::parse(&name.to_ascii_uppercase()).is_some() { "; placeholders are upper case" } else { "" };
    format!("unknown placeholder [{}] (one of {PLACEHOLDERS}{hint})", quote(name))
}

fn unknown_function(ident: &str) -> String {
    format!("unknown function {}() (one of {FUNCTIONS})", quote(ident))
}

fn first_word(text: &str) -> &str {
    text.split_whitespace().next().unwrap_or("")
}

/// A JSON-style number: no `inf`, `NaN`, `+1` or `0x10`, which Rust's parsers would take.
fn parse_number(text: &str) -> Option<Num> {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (unsigned.get(..i)?, Some(unsigned.get(i + 1..)?)),
        None => (unsigned, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (mantissa, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole)
        || fraction.is_some_and(|f| !digits(f))
        || exponent.is_some_and(|e| !digits(e.strip_prefix(['+', '-']).unwrap_or(e)))
    {
        return None;
    }
    if fraction.is_none() && exponent.is_none() && whole.len() <= 38 {
        return text.parse().ok().map(Num::Int);
    }
    text.parse::<f64>().ok().filter(|f| f.is_finite()).map(Num::Float)
}

/// Milliseconds in `48h`, `1h30m`, `-2h`, `500ms`, `7d`, or `0`; whole numbers only, as Gatus
/// users write them.
fn parse_duration(text: &str) -> Option<i128> {
    if text == "0" {
        return Some(0);
    }
    let (sign, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text),
    };
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let digit_count = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digit_count == 0 || digit_count > 12 {
            return None;
        }
        let (digits, after) = rest.split_at_checked(digit_count)?;
        let amount: i128 = digits.parse().ok()?;
        let (unit, after) = if let Some(after) = after.strip_prefix("ms") {
            (1, after)
        } else if let Some(after) = after.strip_prefix('s') {
            (1_000, after)
        } else if let Some(after) = after.strip_prefix('m') {
            (60_000, after)
        } else if let Some(after) = after.strip_prefix('h') {
            (3_600_000, after)
        } else if let Some(after) = after.strip_prefix('d') {
            (86_400_000, after)
        } else {
            return None;
        };
        total = total.checked_add(amount.checked_mul(unit)?)?;
        rest = after;
    }
    Some(sign * total)
}

// ---------------------------------------------------------------------------------------------
// Checking.

/// The facts of one probe, with the body's JSON parsed on first use and shared by the conditions.
struct Seen<'a> {
    facts: &'a Facts,
    json: OnceCell<Option<Value>>,
}

impl<'a> Seen<'a> {
    fn new(facts: &'a Facts) -> Seen<'a> {
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
        // `parse` refuses len() of anything else.
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

/// Like Gatus: `36h`, `1h30m`, `-2h`; the zero components left out.
fn format_duration(ms: i128) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    let parts = [(abs / 3_600_000, "h"), (abs / 60_000 % 60, "m"), (abs / 1_000 % 60, "s"), (abs % 1_000, "ms")];
    let body: String = parts.iter().filter(|(n, _)| *n > 0).map(|(n, unit)| format!("{n}{unit}")).collect();
    if body.is_empty() { "0s".to_string() } else { format!("{sign}{body}") }
}

/// A value for a one-line message: control characters escaped, long values cut.
fn shown(text: &str) -> String {
    if text.is_empty() {
        return "\"\"".to_string();
    }
    clip(text, MAX_SHOWN_CHARS)
}

fn quote(text: &str) -> String {
    clip(text, MAX_QUOTED_CHARS)
}

fn clip(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max_chars {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `*` matches any run of characters, everything else itself. Anchoring both ends first, then
/// taking each middle piece at its leftmost place, is exact for `*`-only patterns and linear,
/// where backtracking could go quadratic on a 1 MiB body.
fn glob(pattern: &str, text: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BODY: &str = r#"{
        "status": "UP", "name": "john doe", "text": "héllo", "count": 5, "ratio": 0.5, "ok": true,
        "nothing": null, "items": [], "tags": ["x", "y"], "big": 12345678901234567890,
        "data": [{"id": 1, "name": "a"}, {"id": "2"}], "nested": {"a": {"b": "deep"}},
        "msg": "line1\nline2", "long": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    }"#;

    fn http() -> Facts {
        Facts {
            status: Some(200),
            response_time_ms: Some(120),
            body: Some(BODY.as_bytes().to_vec()),
            connected: Some(true),
            certificate_expiration_seconds: Some(36 * 3600),
            dns_rcode: Some("NOERROR".to_string()),
            ip: Some("10.0.0.1".to_string()),
            body_note: None,
        }
    }

    fn with_body(body: &str) -> Facts {
        Facts { body: Some(body.as_bytes().to_vec()), ..Facts::default() }
    }

    fn run_table(facts: &Facts, table: &[(&str, Result<(), &str>)]) {
        for (text, expected) in table {
            let condition = Condition::parse(text).unwrap_or_else(|e| panic!("{text}: does not parse: {e}"));
            let got = condition.check(facts);
            assert_eq!(got, expected.map_err(str::to_string), "{text}");
            // `first_failure` shares the parsed body between conditions: same verdicts.
            assert_eq!(first_failure(std::slice::from_ref(&condition), facts), got.err(), "{text}");
        }
    }

    #[test]
    fn placeholders_operators_and_functions() {
        let long = "a".repeat(100);
        let long_failure = format!("[BODY].long ({long}…) == b");
        run_table(
            &http(),
            &[
                // [STATUS] and every operator.
                ("[STATUS] == 200", Ok(())),
                ("[STATUS]==200", Ok(())),
                ("  [STATUS]   ==   200  ", Ok(())),
                ("[STATUS] == 500", Err("[STATUS] (200) == 500")),
                ("[STATUS]==500", Err("[STATUS] (200) == 500")),
                ("[STATUS] != 500", Ok(())),
                ("[STATUS] != 200", Err("[STATUS] (200) != 200")),
                ("[STATUS] < 300", Ok(())),
                ("[STATUS] < 200", Err("[STATUS] (200) < 200")),
                ("[STATUS] <= 200", Ok(())),
                ("[STATUS] <= 199", Err("[STATUS] (200) <= 199")),
                ("[STATUS] > 199", Ok(())),
                ("[STATUS] > 200", Err("[STATUS] (200) > 200")),
                ("[STATUS] >= 200", Ok(())),
                ("[STATUS] >= 201", Err("[STATUS] (200) >= 201")),
                ("[STATUS] == 200.0", Ok(())),
                ("[STATUS] == 2e2", Ok(())),
                // any() and pat().
                ("[STATUS] == any(200, 301)", Ok(())),
                ("[STATUS] == any(301,302)", Err("[STATUS] (200) == any(301,302)")),
                ("[STATUS] != any(500, 503)", Ok(())),
                ("[STATUS] != any(200, 503)", Err("[STATUS] (200) != any(200, 503)")),
                ("[STATUS] == pat(2*)", Ok(())),
                ("[STATUS] == pat(3*)", Err("[STATUS] (200) == pat(3*)")),
                // [RESPONSE_TIME]: ms, or a duration.
                ("[RESPONSE_TIME] < 300", Ok(())),
                ("[RESPONSE_TIME] < 100", Err("[RESPONSE_TIME] (120) < 100")),
                ("[RESPONSE_TIME] < 1s", Ok(())),
                ("[RESPONSE_TIME] > 100ms", Ok(())),
                ("[RESPONSE_TIME] <= 120ms", Ok(())),
                ("[RESPONSE_TIME] > 1m", Err("[RESPONSE_TIME] (120) > 1m")),
                // [BODY] JSON paths.
                ("[BODY].status == UP", Ok(())),
                ("[BODY].status == DOWN", Err("[BODY].status (UP) == DOWN")),
                ("[BODY].status != DOWN", Ok(())),
                ("[BODY].data[0].id == 1", Ok(())),
                ("[BODY].data[0].id == 1.0", Ok(())),
                ("[BODY].data[1].id == 2", Ok(())),
                ("[BODY].data[1].id > 1", Ok(())),
                ("[BODY].data[0].name == a", Ok(())),
                ("[BODY].data[2].id == 1", Err("[BODY].data[2].id (no such path) == 1")),
                ("[BODY].data.id == 1", Err("[BODY].data.id (no such path) == 1")),
                ("[BODY].status.x == 1", Err("[BODY].status.x (no such path) == 1")),
                ("[BODY][0] == 1", Err("[BODY][0] (no such path) == 1")),
                ("[BODY].nested.a.b == deep", Ok(())),
                ("[BODY].nested == {\"a\": {\"b\": \"deep\"}}", Ok(())),
                ("[BODY].tags == [\"x\",\"y\"]", Ok(())),
                ("[BODY].tags == [\"y\"]", Err("[BODY].tags ([\"x\",\"y\"]) == [\"y\"]")),
                ("[BODY].count == 5", Ok(())),
                ("[BODY].count > 4", Ok(())),
                ("[BODY].count >= 6", Err("[BODY].count (5) >= 6")),
                ("[BODY].ratio < 1", Ok(())),
                ("[BODY].ratio == 0.50", Ok(())),
                ("[BODY].status > 1", Err("[BODY].status (UP) > 1")),
                ("[BODY].ok == true", Ok(())),
                ("[BODY].ok == false", Err("[BODY].ok (true) == false")),
                ("[BODY].nothing == null", Ok(())),
                ("[BODY].big == 12345678901234567890", Ok(())),
                (
                    "[BODY].big == 12345678901234567891",
                    Err("[BODY].big (12345678901234567890) == 12345678901234567891"),
                ),
                ("[BODY].text == héllo", Ok(())),
                ("[BODY].name == john doe", Ok(())),
                ("[BODY].name == pat(john*)", Ok(())),
                ("[BODY].name == pat(*doe)", Ok(())),
                ("[BODY].name == pat(j*n*e)", Ok(())),
                ("[BODY].name == pat(*)", Ok(())),
                ("[BODY].name == pat(jane*)", Err("[BODY].name (john doe) == pat(jane*)")),
                ("[BODY].name != pat(jane*)", Ok(())),
                ("[BODY].name != pat(john*)", Err("[BODY].name (john doe) != pat(john*)")),
                ("[BODY].status == any(UP, OK)", Ok(())),
                ("[BODY].status == any(DOWN, KO)", Err("[BODY].status (UP) == any(DOWN, KO)")),
                // Messages stay on one line and short.
                ("[BODY].msg == x", Err("[BODY].msg (line1\\nline2) == x")),
                ("[BODY].long == b", Err(long_failure.as_str())),
                // len() and has().
                ("len([BODY].data) == 2", Ok(())),
                ("len([BODY].items) > 0", Err("len([BODY].items) (0) > 0")),
                ("len([BODY].name) == 8", Ok(())),
                ("len([BODY].text) == 5", Ok(())),
                ("len([BODY].nested) == 1", Ok(())),
                ("len([BODY].count) == 1", Ok(())),
                ("len([BODY].nothing) == 0", Ok(())),
                ("len( [BODY].tags ) == 2", Ok(())),
                ("len([BODY].missing) == 0", Err("len([BODY].missing) (no such path) == 0")),
                ("has([BODY].errors) == false", Ok(())),
                ("has([BODY].errors) == true", Err("has([BODY].errors) (false) == true")),
                ("has([BODY].status) == true", Ok(())),
                ("has([BODY].nothing) == true", Ok(())),
                ("has([BODY].data[1].id) == true", Ok(())),
                ("has([BODY]) == true", Ok(())),
                ("has([IP]) != false", Ok(())),
                // [CONNECTED].
                ("[CONNECTED] == true", Ok(())),
                ("[CONNECTED] != true", Err("[CONNECTED] (true) != true")),
                // [CERTIFICATE_EXPIRATION]: durations.
                ("[CERTIFICATE_EXPIRATION] > 24h", Ok(())),
                ("[CERTIFICATE_EXPIRATION] > 48h", Err("[CERTIFICATE_EXPIRATION] (36h) > 48h")),
                ("[CERTIFICATE_EXPIRATION] > 1h30m", Ok(())),
                ("[CERTIFICATE_EXPIRATION] < 2d", Ok(())),
                ("[CERTIFICATE_EXPIRATION] >= 129600s", Ok(())),
                ("[CERTIFICATE_EXPIRATION] > 2160m", Err("[CERTIFICATE_EXPIRATION] (36h) > 2160m")),
                ("[CERTIFICATE_EXPIRATION] > 0", Ok(())),
                ("[CERTIFICATE_EXPIRATION] == 36h", Ok(())),
                ("[CERTIFICATE_EXPIRATION] == any(12h, 36h)", Ok(())),
                // [DNS_RCODE] and [IP].
                ("[DNS_RCODE] == NOERROR", Ok(())),
                ("[DNS_RCODE] == noerror", Ok(())),
                ("[DNS_RCODE] == NXDOMAIN", Err("[DNS_RCODE] (NOERROR) == NXDOMAIN")),
                ("[DNS_RCODE] == any(NOERROR, NXDOMAIN)", Ok(())),
                ("[DNS_RCODE] != SERVFAIL", Ok(())),
                ("len([DNS_RCODE]) == 7", Ok(())),
                ("[IP] == 10.0.0.1", Ok(())),
                ("[IP] == 10.0.0.2", Err("[IP] (10.0.0.1) == 10.0.0.2")),
                ("[IP] != 10.0.0.2", Ok(())),
                ("[IP] == pat(10.*)", Ok(())),
                ("[IP] == any(10.0.0.1, ::1)", Ok(())),
                ("len([IP]) == 8", Ok(())),
            ],
        );
    }

    #[test]
    fn raw_bodies_and_missing_values() {
        run_table(
            &with_body("  PONG\r\n"),
            &[
                ("[BODY] == PONG", Ok(())),
                ("[BODY] == PING", Err("[BODY] (PONG) == PING")),
                ("[BODY] == pat(*ON*)", Ok(())),
                ("[BODY] == pat(P*G)", Ok(())),
                ("len([BODY]) == 8", Ok(())),
                ("[BODY].a == 1", Err("[BODY].a (not JSON) == 1")),
                ("len([BODY].a) == 1", Err("len([BODY].a) (not JSON) == 1")),
                ("has([BODY].a) == false", Ok(())),
                ("has([BODY]) == true", Ok(())),
                ("[BODY] > 1", Err("[BODY] (PONG) > 1")),
            ],
        );
        run_table(
            &with_body("42\n"),
            &[("[BODY] > 41", Ok(())), ("[BODY] == 42.0", Ok(())), ("[BODY] < 42", Err("[BODY] (42) < 42"))],
        );
        run_table(
            &with_body(r#"[{"x": 1}, {"x": 2}]"#),
            &[
                ("[BODY][1].x == 2", Ok(())),
                ("[BODY][0] == {\"x\":1}", Ok(())),
                ("[BODY] == [{\"x\":1},{\"x\":2}]", Ok(())),
                ("len([BODY]) == 20", Ok(())),
                ("[BODY][2].x == 2", Err("[BODY][2].x (no such path) == 2")),
            ],
        );
        run_table(&with_body(""), &[("[BODY] == x", Err("[BODY] (\"\") == x")), ("len([BODY]) == 0", Ok(()))]);
        run_table(&with_body("\u{ff}\u{fe}"), &[("[BODY] == pat(*)", Ok(()))]);
        run_table(
            &Facts { body: Some(vec![0xff, b'{']), ..Facts::default() },
            &[("[BODY].a == 1", Err("[BODY].a (not JSON) == 1")), ("[BODY] == x", Err("[BODY] (\u{fffd}{) == x"))],
        );
        run_table(
            &Facts { certificate_expiration_seconds: Some(-7200), ..Facts::default() },
            &[("[CERTIFICATE_EXPIRATION] > 0", Err("[CERTIFICATE_EXPIRATION] (-2h) > 0"))],
        );
        run_table(
            &Facts { certificate_expiration_seconds: Some(90061), ip: Some("::1".to_string()), ..Facts::default() },
            &[
                ("[CERTIFICATE_EXPIRATION] > 48h", Err("[CERTIFICATE_EXPIRATION] (25h1m1s) > 48h")),
                ("[IP] == 0:0:0:0:0:0:0:1", Ok(())),
            ],
        );
        // Nothing filled: every value is missing, whatever the operator; has() says so.
        run_table(
            &Facts::default(),
            &[
                ("[STATUS] == 200", Err("[STATUS] (n/a) == 200")),
                ("[STATUS] != 200", Err("[STATUS] (n/a) != 200")),
                ("[RESPONSE_TIME] < 300", Err("[RESPONSE_TIME] (n/a) < 300")),
                ("[BODY] == x", Err("[BODY] (n/a) == x")),
                ("[BODY].status == UP", Err("[BODY].status (n/a) == UP")),
                ("len([BODY]) == 0", Err("len([BODY]) (n/a) == 0")),
                ("len([IP]) == 0", Err("len([IP]) (n/a) == 0")),
                ("[CONNECTED] == false", Err("[CONNECTED] (n/a) == false")),
                ("[CERTIFICATE_EXPIRATION] > 48h", Err("[CERTIFICATE_EXPIRATION] (n/a) > 48h")),
                ("[DNS_RCODE] == NOERROR", Err("[DNS_RCODE] (n/a) == NOERROR")),
                ("[IP] == pat(*)", Err("[IP] (n/a) == pat(*)")),
                ("has([BODY].x) == false", Ok(())),
                ("has([IP]) == false", Ok(())),
            ],
        );
    }

    #[test]
    fn first_failure_reports_the_first_that_does_not_hold() {
        let parse = |texts: &[&str]| texts.iter().map(|t| Condition::parse(t)).collect::<Result<Vec<_>, _>>();
        let all_hold = parse(&["[STATUS] == 200", "[BODY].status == UP"]).expect("valid");
        assert_eq!(first_failure(&all_hold, &http()), None);
        assert_eq!(first_failure(&[], &http()), None);
        let some_fail = parse(&["[STATUS] == 200", "[BODY].count > 9", "[CONNECTED] == false"]).expect("valid");
        assert_eq!(first_failure(&some_fail, &http()), Some("[BODY].count (5) > 9".to_string()));
    }

    #[test]
    fn parse_errors() {
        let rcodes = RCODES.join(", ");
        let unknown_rcode = format!("unknown DNS rcode `NXDOMIAN` (one of {rcodes})");
        let too_long = format!("[BODY] == {}", "a".repeat(MAX_TEXT_BYTES));
        let too_long_error = format!("condition too long ({} bytes, at most {MAX_TEXT_BYTES})", MAX_TEXT_BYTES + 10);
        let too_deep = format!("[BODY]{} == 1", ".a".repeat(MAX_PATH_STEPS + 1));
        let table: &[(&str, &str)] = &[
            // Sides and operators.
            ("", "empty condition: expected e.g. `[STATUS] == 200`"),
            ("   ", "empty condition: expected e.g. `[STATUS] == 200`"),
            ("== 200", "empty left side before `==`: expected a placeholder such as [STATUS]"),
            ("[STATUS] ==", "empty right side after `==`: expected a value to compare `[STATUS]` with"),
            ("[STATUS]", "missing operator after `[STATUS]` (one of ==, !=, <, <=, >, >=)"),
            ("[STATUS] 200", "missing operator between `[STATUS]` and `200` (one of ==, !=, <, <=, >, >=)"),
            ("[STATUS]200", "unexpected `2` right after `[STATUS]`"),
            ("[STATUS] = 200", "unknown operator `=` (did you mean `==`?)"),
            ("[STATUS] => 200", "unknown operator `=>` (one of ==, !=, <, <=, >, >=)"),
            ("[STATUS] === 200", "unknown operator `===` (one of ==, !=, <, <=, >, >=)"),
            ("[STATUS] ! 200", "unknown operator `!` (one of ==, !=, <, <=, >, >=)"),
            (
                "[STATUS] == 200 == 300",
                "more than one operator (another `==` in `200 == 300`): a condition compares one placeholder with one value; any(a, b) lists alternatives",
            ),
            (
                "[STATUS] == 200 || [STATUS] == 301",
                "`||` is not supported: list each check as its own condition (all must hold), or use any(a, b)",
            ),
            // Placeholders and paths.
            (
                "[STATU] == 200",
                "unknown placeholder [STATU] (one of [STATUS], [RESPONSE_TIME], [BODY], [CONNECTED], [CERTIFICATE_EXPIRATION], [DNS_RCODE], [IP])",
            ),
            (
                "[status] == 200",
                "unknown placeholder [status] (one of [STATUS], [RESPONSE_TIME], [BODY], [CONNECTED], [CERTIFICATE_EXPIRATION], [DNS_RCODE], [IP]; placeholders are upper case)",
            ),
            (
                "[] == 200",
                "unknown placeholder [] (one of [STATUS], [RESPONSE_TIME], [BODY], [CONNECTED], [CERTIFICATE_EXPIRATION], [DNS_RCODE], [IP])",
            ),
            ("STATUS == 200", "placeholders go in brackets: `[STATUS]`, not `STATUS`"),
            (
                "200 == [STATUS]",
                "the left side must be a placeholder ([STATUS], [RESPONSE_TIME], [BODY], [CONNECTED], [CERTIFICATE_EXPIRATION], [DNS_RCODE], [IP]) or len()/has() of one, not `200`",
            ),
            (
                "foo == 1",
                "the left side must be a placeholder ([STATUS], [RESPONSE_TIME], [BODY], [CONNECTED], [CERTIFICATE_EXPIRATION], [DNS_RCODE], [IP]) or len()/has() of one, not `foo`",
            ),
            ("[STATUS == 200", "unbalanced brackets: `[STATUS` has no closing `]`"),
            ("[BODY", "unbalanced brackets: `[BODY` has no closing `]`"),
            ("[BODY].a] == 1", "unbalanced brackets: unexpected `]` after `[BODY].a`"),
            ("[BODY].data[0 == 1", "unbalanced brackets: `[0` in `[BODY].data[0` has no closing `]`"),
            ("[BODY]. == 1", "empty key after `.` in `[BODY].`"),
            ("[BODY]..a == 1", "empty key after `.` in `[BODY].`"),
            ("[BODY].data[*].id == 1", "wildcard `[*]` is not supported: index one element, e.g. `[0]`"),
            ("[BODY].data[-1] == 1", "invalid index `[-1]` in path: expected a number such as [0]"),
            ("[BODY].data[x] == 1", "invalid index `[x]` in path: expected a number such as [0]"),
            ("[BODY].data[] == 1", "invalid index `[]` in path: expected a number such as [0]"),
            ("[BODY].data[12345678901] == 1", "index `[12345678901]` too large"),
            ("[STATUS].code == 1", "only [BODY] takes a path (.key or [index]), not [STATUS]"),
            (&too_deep, "path too deep: at most 32 steps after [BODY]"),
            (&too_long, &too_long_error),
            // Functions.
            ("foo([BODY]) == 1", "unknown function foo() (one of len(), has(), pat(), any())"),
            ("LEN([BODY]) == 1", "unknown function LEN() (one of len(), has(), pat(), any())"),
            ("[BODY].name == regex(j.*)", "unknown function regex() (one of len(), has(), pat(), any())"),
            ("len() == 1", "len() needs a placeholder, e.g. `len([BODY].items)`"),
            ("len(len([BODY])) == 1", "len() takes a placeholder such as [BODY].items, not `len([BODY]))`"),
            ("len([BODY] == 1", "unbalanced parentheses: `len(` has no closing `)`"),
            ("len([BODY]", "unbalanced parentheses: `len(` has no closing `)`"),
            ("len(", "unbalanced parentheses: `len(` has no closing `)`"),
            ("len([BODY] [IP]) == 1", "unexpected `[IP])` in `len(...)`: it takes one placeholder"),
            ("len([BODY])) == 1", "unbalanced parentheses: unexpected `)` after `len([BODY])`"),
            (")[STATUS] == 1", "unbalanced parentheses: unexpected `)`"),
            ("len([STATUS]) == 1", "len() applies to [BODY], [IP] and [DNS_RCODE], not [STATUS]"),
            ("len([CONNECTED]) == 1", "len() applies to [BODY], [IP] and [DNS_RCODE], not [CONNECTED]"),
            ("pat(john*) == [BODY].name", "pat() goes on the right side, e.g. `[BODY].name == pat(john*)`"),
            ("any(200, 301) == [STATUS]", "any() goes on the right side, e.g. `[STATUS] == any(200, 301)`"),
            ("[BODY] == len([BODY])", "len() goes on the left side, e.g. `len([BODY].items) == ...`"),
            ("[BODY].a == has(x)", "has() goes on the left side, e.g. `has([BODY].items) == ...`"),
            (
                "[STATUS] == [STATUS]",
                "a placeholder goes on the left side, not the right (`[STATUS]`): compare it with a value, e.g. `[STATUS] == 200`",
            ),
            ("[BODY].name == pat(john*", "unbalanced parentheses: `pat(` has no closing `)`"),
            ("[BODY].name == pat(john*))", "unexpected `)` after `pat(...)`"),
            ("[BODY].name == pat(john*) x", "unexpected `x` after `pat(...)`"),
            ("[BODY].name == pat()", "pat() needs a pattern, e.g. `pat(john*)`"),
            ("[STATUS] == any()", "any() needs at least one value, e.g. `any(200, 301)`"),
            ("[STATUS] == any(200,,301)", "empty value in `any(200,,301)`"),
            ("[STATUS] == any(200, abc)", "`[STATUS]` is a number, so it never equals `abc`"),
            ("[BODY].a == any(pat(x*), y)", "any() takes plain values, not `pat(x*)`"),
            (
                "[BODY].a == any([IP])",
                "a placeholder goes on the left side, not the right (`[IP]`): compare it with a value, e.g. `[STATUS] == 200`",
            ),
            ("[STATUS] < pat(2*)", "`<` cannot compare with pat(): pat() and any() go with == or !="),
            ("[STATUS] >= any(200, 300)", "`>=` cannot compare with any(): pat() and any() go with == or !="),
            ("[CONNECTED] == pat(t*)", "pat() matches text, but `[CONNECTED]` is true or false"),
            ("[CERTIFICATE_EXPIRATION] == pat(1*)", "pat() matches text, but `[CERTIFICATE_EXPIRATION]` is a duration"),
            // Values the left side can never compare with.
            ("[STATUS] < abc", "`<` needs a number on the right, not `abc`"),
            ("[STATUS] == OK", "`[STATUS]` is a number, so it never equals `OK`"),
            ("[STATUS] == inf", "`[STATUS]` is a number, so it never equals `inf`"),
            ("[STATUS] == 0x10", "`[STATUS]` is a number, so it never equals `0x10`"),
            ("len([BODY].items) > many", "`>` needs a number on the right, not `many`"),
            ("[BODY].count > five", "`>` needs a number on the right, not `five`"),
            ("[BODY].count >= 1h", "`>=` needs a number on the right, not `1h`"),
            ("[BODY].a == b)", "unbalanced parentheses: unexpected `)` in `b)`"),
            ("[BODY].a == (b", "unbalanced parentheses: `(` without `)` in `(b`"),
            ("[BODY].a == [b", "unbalanced brackets: `[` without `]` in `[b`"),
            ("[BODY].a == b]", "unbalanced brackets: unexpected `]` in `b]`"),
            (
                "[RESPONSE_TIME] < fast",
                "`[RESPONSE_TIME]` is in milliseconds: compare it with a number or a duration such as 300 or 1s, not `fast`",
            ),
            ("[RESPONSE_TIME] < 1.5s", "invalid duration `1.5s` (e.g. 48h, 30m, 1h30m, 90s, 7d, 500ms)"),
            ("[CERTIFICATE_EXPIRATION] > 48x", "invalid duration `48x` (e.g. 48h, 30m, 1h30m, 90s, 7d, 500ms)"),
            ("[CERTIFICATE_EXPIRATION] > 1h30", "invalid duration `1h30` (e.g. 48h, 30m, 1h30m, 90s, 7d, 500ms)"),
            (
                "[CERTIFICATE_EXPIRATION] > -h",
                "`[CERTIFICATE_EXPIRATION]` compares with a duration (e.g. 48h, 30m, 1h30m, 90s, 7d, 500ms), not `-h`",
            ),
            (
                "[CERTIFICATE_EXPIRATION] > 9999999999999d",
                "invalid duration `9999999999999d` (e.g. 48h, 30m, 1h30m, 90s, 7d, 500ms)",
            ),
            (
                "[CERTIFICATE_EXPIRATION] > 172800",
                "`[CERTIFICATE_EXPIRATION]` compares with a duration: `172800` needs a unit (e.g. 48h, 30m, 1h30m, 90s, 7d, 500ms)",
            ),
            (
                "[CERTIFICATE_EXPIRATION] > soon",
                "`[CERTIFICATE_EXPIRATION]` compares with a duration (e.g. 48h, 30m, 1h30m, 90s, 7d, 500ms), not `soon`",
            ),
            ("[CONNECTED] == yes", "`[CONNECTED]` is true or false, never `yes`"),
            ("[CONNECTED] < 1", "`<` needs numbers, but `[CONNECTED]` is true or false: use == or !="),
            ("has([BODY].a) == 1", "`has([BODY].a)` is true or false, never `1`"),
            ("has([BODY].a) > 0", "`>` needs numbers, but `has([BODY].a)` is true or false: use == or !="),
            ("[IP] == 10.0.0", "`10.0.0` is not an IP address"),
            ("[IP] > 10.0.0.1", "`>` needs numbers, but `[IP]` is text: use == or !="),
            ("[DNS_RCODE] == NXDOMIAN", &unknown_rcode),
            ("[DNS_RCODE] <= NOERROR", "`<=` needs numbers, but `[DNS_RCODE]` is text: use == or !="),
        ];
        for (text, expected) in table {
            assert_eq!(Condition::parse(text), Err(expected.to_string()), "{text}");
        }
    }

    #[test]
    fn parts_that_are_not_errors() {
        for text in [
            "[BODY].message == all good",
            "[BODY].version == v1.2 (beta)",
            "[BODY].a == -1",
            "[BODY].a ==-1",
            "[BODY].some-key_2.é == x",
            "[BODY].a == pat(f(x)*)",
            "[BODY][0][1].a == 1",
            "[CERTIFICATE_EXPIRATION] > -1h",
            "[CERTIFICATE_EXPIRATION] < 7d12h",
            "[RESPONSE_TIME] < 1m30s",
        ] {
            let condition = Condition::parse(text);
            assert!(condition.is_ok(), "{text}: {condition:?}");
        }
    }

    #[test]
    fn durations_numbers_and_patterns() {
        assert_eq!(parse_duration("48h"), Some(48 * 3_600_000));
        assert_eq!(parse_duration("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration("90s"), Some(90_000));
        assert_eq!(parse_duration("7d"), Some(7 * 86_400_000));
        assert_eq!(parse_duration("500ms"), Some(500));
        assert_eq!(parse_duration("-2h"), Some(-7_200_000));
        assert_eq!(parse_duration("0"), Some(0));
        for bad in ["", "-", "h", "1", "1.5h", "1hh", "1h 30m", "1H", "+1h", "1mss"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(5_400_000), "1h30m");
        assert_eq!(format_duration(3_615_000), "1h15s");
        assert_eq!(format_duration(-1_500), "-1s500ms");
        assert_eq!(parse_number("-12"), Some(Num::Int(-12)));
        assert_eq!(parse_number("1.5e3"), Some(Num::Float(1500.0)));
        for bad in ["", "-", "1.", ".5", "1e", "NaN", "inf", "+1", "0x10", "1 ", "1e999"] {
            assert_eq!(parse_number(bad), None, "{bad}");
        }
        for (pattern, text, expected) in [
            ("*", "", true),
            ("", "", true),
            ("", "a", false),
            ("a", "a", true),
            ("a*", "abc", true),
            ("*c", "abc", true),
            ("a*c", "ac", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "acb", false),
            ("ab*ba", "aba", false),
            ("*a*a*", "a", false),
            ("*a*a*", "aa", true),
            ("**", "x", true),
            ("x*", "yx", false),
        ] {
            assert_eq!(glob(pattern, text), expected, "{pattern} on {text}");
        }
    }

    #[test]
    fn serde_round_trip() {
        for text in ["[STATUS] == 200", "  len([BODY].items)>0 ", "[BODY].name == pat(john*)"] {
            let condition = Condition::parse(text).expect("valid");
            let json = serde_json::to_string(&condition).expect("serializes");
            assert_eq!(json, serde_json::to_string(text).expect("serializes"));
            let back: Condition = serde_json::from_str(&json).expect("deserializes");
            assert_eq!(back, condition);
            assert_eq!(back.text(), text);
        }
        let error = serde_json::from_str::<Vec<Condition>>(r#"["[STATUS] == 200", "[STATU] == 200"]"#)
            .expect_err("an unknown placeholder");
        let expected = Condition::parse("[STATU] == 200").expect_err("invalid");
        assert!(error.to_string().starts_with(&expected), "{error}");
        let mut json = serde_json::Deserializer::from_str(r#"{"conditions": ["[STATUS] == 200", "[STATUS] < abc"]}"#);
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Asset {
            conditions: Vec<Condition>,
        }
        let error = serde_path_to_error::deserialize::<_, Asset>(&mut json).expect_err("a non-numeric value");
        assert_eq!(error.path().to_string(), "conditions[1]");
        assert_eq!(
            error.inner().to_string().split(" at line").next(),
            Some("`<` needs a number on the right, not `abc`")
        );
    }

    // Property tests: never a panic, whatever the text or the facts.

    const TOKENS: &[&str] = &[
        "[STATUS]",
        "[RESPONSE_TIME]",
        "[BODY]",
        "[CONNECTED]",
        "[CERTIFICATE_EXPIRATION]",
        "[DNS_RCODE]",
        "[IP]",
        "[",
        "]",
        "(",
        ")",
        ",",
        ".",
        "*",
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "=",
        "!",
        " ",
        "  ",
        "len(",
        "has(",
        "pat(",
        "any(",
        "foo(",
        "0",
        "1",
        "200",
        "-",
        "1.5",
        "1e3",
        "48h",
        "1h30m",
        "500ms",
        "7d",
        "a",
        "data",
        "true",
        "false",
        "null",
        "NOERROR",
        "10.0.0.1",
        "::1",
        "é",
        "\u{0}",
        "\n",
        "[0]",
        "[*]",
        ".a",
        "[BODY].a",
        "{",
        "}",
        "\"",
        ":",
        "&&",
        "||",
        "9999999999999999999999999999999999999999",
    ];

    fn token_soup() -> impl Strategy<Value = String> {
        (prop::collection::vec(prop::sample::select(TOKENS), 0..14), prop::bool::ANY)
            .prop_map(|(tokens, spaced)| tokens.join(if spaced { " " } else { "" }))
    }

    fn placeholder() -> impl Strategy<Value = String> {
        let path = prop::collection::vec(
            prop_oneof![
                prop::sample::select(&["a", "b", "data", "items", "id", "name", "0", "é"][..])
                    .prop_map(|k| format!(".{k}")),
                (0usize..4).prop_map(|i| format!("[{i}]")),
            ],
            0..4,
        );
        prop_oneof![
            prop::sample::select(
                &["[STATUS]", "[RESPONSE_TIME]", "[CONNECTED]", "[CERTIFICATE_EXPIRATION]", "[DNS_RCODE]", "[IP]"][..]
            )
            .prop_map(str::to_string),
            path.prop_map(|steps| format!("[BODY]{}", steps.concat())),
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            (0u32..1000).prop_map(|n| n.to_string()),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| f.to_string()),
            prop::sample::select(
                &[
                    "true",
                    "false",
                    "null",
                    "0",
                    "48h",
                    "-1h30m",
                    "500ms",
                    "7d",
                    "NOERROR",
                    "nxdomain",
                    "10.0.0.1",
                    "::1",
                    "[]",
                    "{}",
                    "[1,2]",
                    "{\"a\":1}",
                    "UP",
                    "a b"
                ][..]
            )
            .prop_map(str::to_string),
            "[a-z0-9 .*-]{1,8}",
        ]
    }

    fn condition() -> impl Strategy<Value = (String, String)> {
        let left = prop_oneof![
            3 => placeholder(),
            1 => placeholder().prop_map(|p| format!("len({p})")),
            1 => placeholder().prop_map(|p| format!("has({p})")),
        ];
        let right = prop_oneof![
            3 => value(),
            1 => "[a-z0-9*]{0,6}".prop_map(|p| format!("pat({p})")),
            1 => prop::collection::vec(value(), 1..4).prop_map(|vs| format!("any({})", vs.join(", "))),
        ];
        // Orderings refuse most values: weigh the operators that accept all, so more conditions parse.
        let op = prop::sample::select(&["==", "==", "==", "!=", "!=", "<", "<=", ">", ">="][..]);
        (left, op, right)
            .prop_map(|(l, o, r)| (format!("{l} {o} {r}"), format!("{l} {} {r}", if o == "==" { "!=" } else { o })))
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "[a-z0-9 ]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop::sample::select(&["a", "b", "data", "items", "id", "name", "0", "é"][..])
                        .prop_map(str::to_string),
                    inner,
                    0..4
                )
                .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            json_value().prop_map(|v| v.to_string().into_bytes()),
            // Nearly JSON: cut short, or deeply nested.
            (json_value(), 0usize..64).prop_map(|(v, cut)| v.to_string().into_bytes().into_iter().take(cut).collect()),
            (1usize..300).prop_map(|depth| format!("{}1{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()),
            prop::collection::vec(
                prop::sample::select(&["{", "}", "[", "]", "\"a\"", ":", ",", "1", "-", "null", " "][..]),
                0..24
            )
            .prop_map(|tokens| tokens.concat().into_bytes()),
        ]
    }

    fn facts() -> impl Strategy<Value = Facts> {
        let text = || {
            prop_oneof![
                "\\PC{0,12}",
                prop::sample::select(&["NOERROR", "NXDOMAIN", "10.0.0.1", "::1", "42"][..]).prop_map(str::to_string)
            ]
        };
        (
            any::<Option<u16>>(),
            any::<Option<u64>>(),
            prop::option::of(body()),
            any::<Option<bool>>(),
            any::<Option<i64>>(),
            prop::option::of(text()),
            prop::option::of(text()),
        )
            .prop_map(
                |(status, response_time_ms, body, connected, certificate_expiration_seconds, dns_rcode, ip)| Facts {
                    status,
                    response_time_ms,
                    body,
                    connected,
                    certificate_expiration_seconds,
                    dns_rcode,
                    ip,
                    body_note: None,
                },
            )
    }

    fn is_missing(message: &str) -> bool {
        ["(n/a)", "(no such path)", "(not JSON)"].iter().any(|m| message.contains(m))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn parse_never_panics_on_any_text(text in any::<String>()) {
            let _ = Condition::parse(&text);
        }

        #[test]
        fn token_soup_never_panics(text in token_soup(), facts in facts()) {
            if let Ok(condition) = Condition::parse(&text) {
                let _ = condition.check(&facts);
                prop_assert_eq!(Condition::parse(condition.text()), Ok(condition));
            }
        }

        /// Every parsed condition can be checked on any facts; `==` and `!=` disagree unless the
        /// value is missing, when both fail.
        #[test]
        fn check_never_panics_and_eq_ne_disagree((eq, ne) in condition(), facts in facts()) {
            let (Ok(eq), Ok(ne)) = (Condition::parse(&eq), Condition::parse(&ne)) else {
                // `==` and `!=` accept the same sides.
                prop_assert_eq!(Condition::parse(&eq).is_ok(), Condition::parse(&ne).is_ok());
                return Ok(());
            };
            let (eq_result, ne_result) = (eq.check(&facts), ne.check(&facts));
            if eq.text() != ne.text() {
                match (&eq_result, &ne_result) {
                    (Err(a), Err(b)) => prop_assert!(is_missing(a) && is_missing(b), "{a} / {b}"),
                    (Ok(()), Ok(())) => prop_assert!(false, "both hold: {} / {}", eq.text(), ne.text()),
                    _ => {}
                }
            }
            prop_assert_eq!(first_failure(&[eq, ne], &facts), eq_result.err().or(ne_result.err()));
        }
    }
}
