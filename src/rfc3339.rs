//! Timestamps written as JSON strings in RFC 3339 (`2026-12-04T16:56:50.123456789Z`, UTC as
//! `Z`, as many fraction digits as the time has: chrono's `SecondsFormat::AutoSi`), exactly what
//! chrono's own `Serialize` writes, for the fields a page of assets repeats
//! (`#[serde(serialize_with = "crate::rfc3339::serialize")]`).
//!
//! chrono's impl hands the serializer a `Display` that writes the timestamp one character at a
//! time, and serde_json passes each piece through its string escaping: two timestamps per
//! asset were about two fifths of writing a page of `GET /api/assets` (perf, 2026-12-04).
//! Formatted first into a `String` with chrono's own RFC 3339 writer, it is escaped once.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

/// The timestamp as chrono's `Serialize` writes it, escaped once.
pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// [`serialize`] for an optional timestamp: `null` when absent.
pub fn serialize_option<S: Serializer>(at: &Option<DateTime<Utc>>, serializer: S) -> Result<S::Ok, S::Error> {
    struct Rfc3339<'a>(&'a DateTime<Utc>);
    impl Serialize for Rfc3339<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serialize(self.0, serializer)
        }
    }
    match at {
        Some(at) => serializer.serialize_some(&Rfc3339(at)),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde::Serialize;

    #[derive(Serialize)]
    struct Ours {
        #[serde(serialize_with = "super::serialize")]
        at: chrono::DateTime<Utc>,
        #[serde(serialize_with = "super::serialize_option")]
        maybe: Option<chrono::DateTime<Utc>>,
    }

    #[derive(Serialize)]
    struct Chronos {
        at: chrono::DateTime<Utc>,
        maybe: Option<chrono::DateTime<Utc>>,
    }

    #[test]
    fn writes_what_chrono_writes() {
        let second = Utc.with_ymd_and_hms(2026, 12, 4, 16, 56, 50).single().expect("a valid time");
        let times = [
            second,
            second + chrono::TimeDelta::milliseconds(123),
            second + chrono::TimeDelta::microseconds(123_456),
            second + chrono::TimeDelta::nanoseconds(123_456_789),
            Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).single().expect("a valid time"),
        ];
        for at in times {
            for maybe in [None, Some(at)] {
                let ours = serde_json::to_string(&Ours { at, maybe }).expect("serializes");
                let chronos = serde_json::to_string(&Chronos { at, maybe }).expect("serializes");
                assert_eq!(ours, chronos);
            }
        }
        assert_eq!(
            serde_json::to_string(&Ours { at: second, maybe: None }).expect("serializes"),
            r#"{"at":"2026-12-04T16:56:50Z","maybe":null}"#
        );
    }
}
