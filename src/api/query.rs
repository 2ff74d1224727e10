//! Query parameters: each handler takes a typed struct through [`Params`], and every bad
//! parameter is answered the same way, 400 `{"error": "<parameter> must be …", "parameter":
//! "<parameter>", "value": "<as given>"}`. What answers before any handler (a malformed URL,
//! an unknown route) is left to the JSON-errors middleware.

use std::borrow::Cow;
use std::collections::HashSet;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use url::form_urlencoded;

use super::ApiError;

/// The query string read as `T`. Each field of `T` is optional (or has a default) and of a type
/// whose error says what the parameter must be (`must be a number from 1 to 1000`), so a
/// rejection names one parameter, its value and what was expected.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        read(parts.uri.query().unwrap_or_default()).map(Params)
    }
}

fn read<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let pairs: Vec<(Cow<'_, str>, Cow<'_, str>)> = form_urlencoded::parse(query.as_bytes()).collect();
    // Which of two values was meant is anybody's guess: refuse rather than pick one.
    let mut seen = HashSet::new();
    if let Some((name, value)) = pairs.iter().find(|(name, _)| !seen.insert(name)) {
        return Err(ApiError::bad_parameter(
            name.to_string(),
            value,
            format!("{name} is given more than once in the query string"),
        ));
    }
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let parameter = error.path().to_string();
        let value = pairs.iter().find(|(name, _)| *name == parameter).map_or(Cow::Borrowed(""), |(_, v)| v.clone());
        ApiError::bad_parameter(parameter.clone(), &value, format!("{parameter} {}", error.inner()))
    })
}

/// A whole number from `MIN` to `MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Bounded<const MIN: u32, const MAX: u32>(u32);

impl<const MIN: u32, const MAX: u32> Bounded<MIN, MAX> {
    pub fn get(self) -> u32 {
        self.0
    }
}

impl<const MIN: u32, const MAX: u32> TryFrom<String> for Bounded<MIN, MAX> {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        match text.parse::<u32>() {
            Ok(n) if (MIN..=MAX).contains(&n) => Ok(Bounded(n)),
            _ => Err(format!("must be a number from {MIN} to {MAX}")),
        }
    }
}

/// Most items a list answers at once.
pub const MAX_LIMIT: u32 = 1000;
/// Items a list answers without `limit`.
const DEFAULT_LIMIT: u32 = 100;

/// `limit`: how many items, 1 to [`MAX_LIMIT`].
pub type Limit = Bounded<1, MAX_LIMIT>;

/// The limit asked for, or the default.
pub fn limit(limit: Option<Limit>) -> u32 {
    limit.map_or(DEFAULT_LIMIT, Limit::get)
}

/// A value named by one of a few words, e.g. `state=open|closed|all`.
pub trait Choices: Copy + 'static {
    /// Each word and the value it stands for, in the order the message lists them.
    const CHOICES: &'static [(&'static str, Self)];
}

/// One of `T`'s [`Choices`]; anything else must be `a, b or c`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice<T>(pub T);

impl<'de, T: Choices> Deserialize<'de> for Choice<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match T::CHOICES.iter().find(|(word, _)| *word == text) {
            Some((_, value)) => Ok(Choice(*value)),
            None => {
                let words: Vec<&str> = T::CHOICES.iter().map(|(word, _)| *word).collect();
                let listed = match words.split_last() {
                    Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
                    _ => words.concat(),
                };
                Err(D::Error::custom(format!("must be {listed}")))
            }
        }
    }
}

/// An RFC 3339 timestamp, e.g. `2026-11-21T10:30:00Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Timestamp(pub DateTime<Utc>);

impl TryFrom<String> for Timestamp {
    type Error = &'static str;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        DateTime::parse_from_rfc3339(&text)
            .map(|t| Timestamp(t.with_timezone(&Utc)))
            .map_err(|_| "must be an RFC 3339 timestamp, e.g. 2026-11-21T10:30:00Z")
    }
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;
    use serde_json::{Value, json};

    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Colour {
        Red,
        Green,
        Blue,
    }

    impl Choices for Colour {
        const CHOICES: &'static [(&'static str, Colour)] =
            &[("red", Colour::Red), ("green", Colour::Green), ("blue", Colour::Blue)];
    }

    #[derive(Debug, Deserialize)]
    struct Example {
        colour: Option<Choice<Colour>>,
        limit: Option<Limit>,
        since: Option<Timestamp>,
        #[serde(default)]
        token: String,
    }

    async fn answer(query: &str) -> (u16, Value) {
        let response = read::<Example>(query).expect_err("refused").into_response();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 4096).await.expect("body");
        (status, serde_json::from_slice(&body).expect("JSON"))
    }

    #[test]
    fn parameters_are_read_by_type() {
        let read =
            read::<Example>("limit=5&since=2026-11-21T10:30:00%2B01:00&token=a+b&other=x&colour=blue").expect("valid");
        assert_eq!(read.colour, Some(Choice(Colour::Blue)));
        assert_eq!(read.limit.map(Limit::get), Some(5));
        assert_eq!(read.since.map(|t| t.0.to_rfc3339()), Some("2026-11-21T09:30:00+00:00".to_string()));
        assert_eq!(read.token, "a b");
        let empty = super::read::<Example>("").expect("valid");
        assert_eq!((limit(empty.limit), empty.since, empty.token.as_str()), (100, None, ""));
    }

    #[tokio::test]
    async fn a_bad_parameter_is_named_with_its_value_and_what_it_must_be() {
        let cases = [
            ("limit=0", "limit", "0", "limit must be a number from 1 to 1000"),
            ("limit=abc&since=x", "limit", "abc", "limit must be a number from 1 to 1000"),
            ("limit=%2D1", "limit", "-1", "limit must be a number from 1 to 1000"),
            ("since=yesterday", "since", "yesterday", "since must be an RFC 3339 timestamp, e.g. 2026-11-21T10:30:00Z"),
            ("token=a&token=b", "token", "b", "token is given more than once in the query string"),
            ("colour=Red", "colour", "Red", "colour must be red, green or blue"),
        ];
        for (query, parameter, value, error) in cases {
            assert_eq!(
                answer(query).await,
                (400, json!({"error": error, "parameter": parameter, "value": value})),
                "{query}"
            );
        }
    }
}
