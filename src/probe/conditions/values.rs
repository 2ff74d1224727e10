//! Values: numbers as JSON writes them, durations as people write them (`humantime`'s syntax,
//! signed), and values shown in messages.

use std::cmp::Ordering;
use std::fmt;
use std::time::Duration;

/// A failure message quotes the actual value; a 1 MiB body must not end up in an alert.
const MAX_SHOWN_CHARS: usize = 100;
/// Config errors quote the offending text, briefly.
const MAX_QUOTED_CHARS: usize = 40;

/// A number from a literal, a fact or the body. Integers stay exact (JSON ids can exceed f64's 53
/// bits); never NaN, as only finite floats are made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    pub(super) fn compare(self, other: Num) -> Option<Ordering> {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
            _ => self.as_f64().partial_cmp(&other.as_f64()),
        }
    }

    pub(super) fn same(self, other: Num) -> bool {
        self.compare(other) == Some(Ordering::Equal)
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    pub(super) fn from_json(n: &serde_json::Number) -> Option<Num> {
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

/// A JSON-style number: no `inf`, `NaN`, `+1` or `0x10`, which Rust's parsers would take.
pub(super) fn parse_number(text: &str) -> Option<Num> {
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

/// Milliseconds in a duration as `humantime` reads it (`48h`, `1h30m`, `1.5s`, `7d`, `500ms`,
/// `2 weeks`, or `0`), negative after a `-` (a certificate that expired 2 hours ago is at
/// `-2h`). None for anything else, and for a duration finer than the millisecond every fact is
/// measured in (`1500us`), which would be cut silently.
pub(super) fn parse_duration(text: &str) -> Option<i128> {
    let (sign, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text),
    };
    let duration = humantime::parse_duration(unsigned).ok()?;
    if duration.subsec_nanos() % 1_000_000 != 0 {
        return None;
    }
    Some(sign * i128::try_from(duration.as_millis()).ok()?)
}

/// Whether a text that is not a duration was meant as one, to say so rather than "not a duration".
pub(super) fn looks_like_duration(text: &str) -> bool {
    text.strip_prefix('-').unwrap_or(text).starts_with(|c: char| c.is_ascii_digit())
}

/// `humantime`'s form, which [`parse_duration`] reads back: `1day 12h`, `1h 30m`, `-2h`, `0s`.
pub(super) fn format_duration(ms: i128) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let abs = u64::try_from(ms.unsigned_abs()).unwrap_or(u64::MAX);
    format!("{sign}{}", humantime::format_duration(Duration::from_millis(abs)))
}

/// A value for a one-line message: control characters escaped, long values cut.
pub(super) fn shown(text: &str) -> String {
    if text.is_empty() {
        return "\"\"".to_string();
    }
    clip(text, MAX_SHOWN_CHARS)
}

/// A piece of a condition's text, for a config error.
pub(super) fn quote(text: &str) -> String {
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
