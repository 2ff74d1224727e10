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
//! a duration as `humantime` reads it (`48h`, `30m`, `1h30m`, `1.5h`, `90s`, `7d`, `2 weeks`,
//! `500ms`, or `0`; negative after a `-`); `[RESPONSE_TIME]` with milliseconds or a duration. `[BODY]` without a path is the raw body, surrounding whitespace
//! ignored (a TCP reply usually ends in a newline).
//!
//! A condition that does not hold reads like Gatus': the actual value in parentheses after the
//! left side, `[STATUS] (500) == 200`; a value the probe did not see shows why instead,
//! `[BODY].status (no such path) == UP`, and fails the condition whatever the operator.
//!
//! Everything that does not need a probe is checked by [`Condition::parse`] (placeholders,
//! functions, brackets, the kind of value each placeholder compares with), so a typo is a config
//! error at load, not an asset that is mysteriously down.
//!
//! # Layout
//! - `types.rs`: the parsed form (placeholders, operators, literals);
//! - `parser.rs`: text to [`Condition`], or a [`ConditionError`] saying what and where;
//! - `error.rs`: [`ConditionError`], one [`ConditionErrorKind`] per mistake;
//! - `evaluator.rs`: a condition judged against [`Facts`];
//! - `values.rs`: numbers, durations (`humantime`) and values as messages show them.

mod error;
mod evaluator;
mod parser;
#[cfg(test)]
mod tests;
mod types;
mod values;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use error::ConditionError;
use evaluator::Seen;
use types::{Left, Op, Right};

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
    /// Parses `<left> <operator> <right>`; the error says what is wrong and where (a byte offset
    /// into `text`).
    pub fn parse(text: &str) -> Result<Condition, ConditionError> {
        parser::parse(text)
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Ok when the condition holds; otherwise the message, e.g. `[STATUS] (500) == 200`.
    pub fn check(&self, facts: &Facts) -> Result<(), String> {
        self.check_seen(&Seen::new(facts))
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
