//! The parsed form of a condition: what the parser builds and the evaluator walks.

use std::cmp::Ordering;
use std::net::IpAddr;

use serde_json::Value;
use strum::IntoEnumIterator;

use super::values::{Num, parse_duration, parse_number};

/// A placeholder's name, written in brackets: `[STATUS]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr, strum::EnumIter)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub(super) enum Name {
    Status,
    ResponseTime,
    Body,
    Connected,
    CertificateExpiration,
    DnsRcode,
    Ip,
}

impl Name {
    /// `STATUS` (the name between the brackets), exactly as written.
    pub(super) fn parse(text: &str) -> Option<Name> {
        text.parse().ok()
    }

    /// As written in a condition: `[STATUS]`.
    pub(super) fn bracketed(self) -> String {
        format!("[{}]", <&str>::from(self))
    }

    /// Every placeholder, for messages: `[STATUS], [RESPONSE_TIME], …`.
    pub(super) fn all() -> String {
        Name::iter().map(Name::bracketed).collect::<Vec<_>>().join(", ")
    }
}

/// The functions of the syntax: `len()` and `has()` on the left, `pat()` and `any()` on the right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr, strum::EnumIter)]
#[strum(serialize_all = "lowercase")]
pub(super) enum Function {
    Len,
    Has,
    Pat,
    Any,
}

impl Function {
    pub(super) fn name(self) -> &'static str {
        self.into()
    }

    /// Every function, for messages: `len(), has(), pat(), any()`.
    pub(super) fn all() -> String {
        Function::iter().map(|f| format!("{}()", f.name())).collect::<Vec<_>>().join(", ")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Step {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Placeholder {
    pub(super) name: Name,
    /// Only `[BODY]` has one.
    pub(super) path: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Left {
    Value(Placeholder),
    Len(Placeholder),
    Has(Placeholder),
}

/// What a left side compares with, which decides the literals and operators it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
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
    pub(super) fn kind(&self) -> Kind {
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

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr, strum::Display, strum::EnumIter,
)]
pub(super) enum Op {
    #[strum(serialize = "==")]
    Eq,
    #[strum(serialize = "!=")]
    Ne,
    #[strum(serialize = "<")]
    Lt,
    #[strum(serialize = "<=")]
    Le,
    #[strum(serialize = ">")]
    Gt,
    #[strum(serialize = ">=")]
    Ge,
}

impl Op {
    pub(super) fn parse(text: &str) -> Option<Op> {
        text.parse().ok()
    }

    pub(super) fn as_str(self) -> &'static str {
        self.into()
    }

    /// Every operator, for messages: `==, !=, <, <=, >, >=`.
    pub(super) fn all() -> String {
        Op::iter().map(Op::as_str).collect::<Vec<_>>().join(", ")
    }

    pub(super) fn is_ordering(self) -> bool {
        !matches!(self, Op::Eq | Op::Ne)
    }

    pub(super) fn accepts(self, ordering: Ordering) -> bool {
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

/// A value on the right, read every way it may be compared, once, at parse time.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Literal {
    pub(super) text: String,
    pub(super) num: Option<Num>,
    pub(super) millis: Option<i128>,
    pub(super) boolean: Option<bool>,
    pub(super) ip: Option<IpAddr>,
    /// For comparing a JSON array or object with `[...]` / `{...}`, whatever the spacing.
    pub(super) json: Option<Value>,
}

impl Literal {
    pub(super) fn new(text: &str) -> Literal {
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
pub(super) enum Right {
    Value(Literal),
    Pattern(String),
    Any(Vec<Literal>),
}
