//! Why a condition's text is refused: one variant per mistake, each with the words an operator
//! needs to fix it (the config loader prints them under the condition's path, e.g.
//! `assets[2].conditions[0]`).

use super::types::{Function, Name, Op};

/// Durations as the messages suggest them.
const DURATION_EXAMPLES: &str = "e.g. 48h, 30m, 1h30m, 90s, 7d, 500ms";

/// A condition that cannot be parsed. Texts in [`ConditionErrorKind`] are quoted as the message
/// shows them: control characters escaped, cut after 40 characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct ConditionError {
    /// Where the mistake is: a byte offset into the condition as written (leading spaces
    /// included), at most its length.
    pub at: usize,
    pub kind: ConditionErrorKind,
}

/// A pair that must balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bracket {
    /// `(` and `)`
    Parenthesis,
    /// `[` and `]`
    Square,
}

impl Bracket {
    fn plural(self) -> &'static str {
        match self {
            Bracket::Parenthesis => "parentheses",
            Bracket::Square => "brackets",
        }
    }

    fn close(self) -> char {
        match self {
            Bracket::Parenthesis => ')',
            Bracket::Square => ']',
        }
    }
}

/// Where a closing bracket came without its opening one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Where the left side should start.
    Start,
    /// After the left side, as written.
    After(String),
    /// Inside a value.
    In(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionErrorKind {
    #[error("condition too long ({bytes} bytes, at most {max})")]
    TooLong { bytes: usize, max: usize },
    #[error("empty condition: expected e.g. `[STATUS] == 200`")]
    Empty,

    // The three parts and how they are separated.
    #[error("empty left side before `{op}`: expected a placeholder such as [STATUS]")]
    EmptyLeft { op: String },
    #[error("{}", missing_operator(left, right.as_deref()))]
    MissingOperator { left: String, right: Option<String> },
    #[error("unexpected `{found}` right after `{left}`")]
    UnexpectedAfterLeft { found: char, left: String },
    #[error("{}", unknown_operator(op))]
    UnknownOperator { op: String },
    #[error("empty right side after `{op}`: expected a value to compare `{left}` with")]
    EmptyRight { op: &'static str, left: String },
    #[error("unbalanced {}: unexpected `{}`{}", bracket.plural(), bracket.close(), place_suffix(place))]
    UnexpectedClose { bracket: Bracket, place: Place },
    #[error("unbalanced {}: `{opened}`{} has no closing `{}`", bracket.plural(), within_suffix(within.as_deref()), bracket.close())]
    Unclosed { bracket: Bracket, opened: String, within: Option<String> },
    #[error(
        "more than one operator (another `{op}` in `{within}`): a condition compares one placeholder with one value; any(a, b) lists alternatives"
    )]
    SecondOperator { op: &'static str, within: String },
    #[error("`{op}` is not supported: list each check as its own condition (all must hold), or use any(a, b)")]
    LogicalOperator { op: String },

    // The left side: placeholders, paths, len() and has().
    #[error("the left side must be a placeholder ({}) or len()/has() of one, not `{found}`", Name::all())]
    NotALeftSide { found: String },
    #[error("placeholders go in brackets: `{placeholder}`, not `{written}`")]
    Unbracketed { placeholder: String, written: String },
    #[error("unknown placeholder [{name}] (one of {}{})", Name::all(), if *upper_case_known { "; placeholders are upper case" } else { "" })]
    UnknownPlaceholder {
        name: String,
        /// The name in capitals is a placeholder.
        upper_case_known: bool,
    },
    #[error("only [BODY] takes a path (.key or [index]), not {placeholder}")]
    PathOnNonBody { placeholder: String },
    #[error("empty key after `.` in `{path}`")]
    EmptyKey { path: String },
    #[error("wildcard `[*]` is not supported: index one element, e.g. `[0]`")]
    WildcardIndex,
    #[error("invalid index `[{index}]` in path: expected a number such as [0]")]
    InvalidIndex { index: String },
    #[error("index `[{index}]` too large")]
    IndexTooLarge { index: String },
    #[error("path too deep: at most {max} steps after [BODY]")]
    PathTooDeep { max: usize },
    #[error("unknown function {name}() (one of {})", Function::all())]
    UnknownFunction { name: String },
    #[error("{}", wrong_side(function))]
    WrongSide { function: &'static str },
    #[error("{function}() needs a placeholder, e.g. `{function}([BODY].items)`")]
    NoPlaceholder { function: &'static str },
    #[error("{function}() takes a placeholder such as [BODY].items, not `{found}`")]
    NotAPlaceholder { function: &'static str, found: String },
    #[error("unexpected `{found}` in `{function}(...)`: it takes one placeholder")]
    SecondArgument { function: &'static str, found: String },
    #[error("len() applies to [BODY], [IP] and [DNS_RCODE], not {placeholder}")]
    NoLength { placeholder: String },

    // The right side: values, pat() and any().
    #[error(
        "a placeholder goes on the left side, not the right (`{found}`): compare it with a value, e.g. `[STATUS] == 200`"
    )]
    PlaceholderOnRight { found: String },
    #[error("unexpected `{found}` after `{function}(...)`")]
    AfterCall { function: String, found: String },
    #[error("`{op}` cannot compare with {function}(): pat() and any() go with == or !=")]
    OrderingWithFunction { op: &'static str, function: &'static str },
    #[error("pat() matches text, but `{left}` is {left_is}")]
    PatternOnNonText { left: String, left_is: &'static str },
    #[error("pat() needs a pattern, e.g. `pat(john*)`")]
    EmptyPattern,
    #[error("any() needs at least one value, e.g. `any(200, 301)`")]
    EmptyAny,
    #[error("empty value in `{within}`")]
    EmptyValue { within: String },
    #[error("any() takes plain values, not `{found}`")]
    NotAPlainValue { found: String },

    // Values the left side can never compare with.
    #[error("`{op}` needs numbers, but `{left}` is {left_is}: use == or !=")]
    NotOrdered { op: &'static str, left: String, left_is: &'static str },
    #[error("`{op}` needs a number on the right, not `{value}`")]
    NotANumber { op: &'static str, value: String },
    #[error("`{left}` is a number, so it never equals `{value}`")]
    NeverEqualsNumber { left: String, value: String },
    #[error("`{left}` is in milliseconds: compare it with a number or a duration such as 300 or 1s, not `{value}`")]
    NotMilliseconds { left: String, value: String },
    #[error("invalid duration `{value}` ({DURATION_EXAMPLES})")]
    InvalidDuration { value: String },
    #[error("`{left}` compares with a duration: `{value}` needs a unit ({DURATION_EXAMPLES})")]
    DurationWithoutUnit { left: String, value: String },
    #[error("`{left}` compares with a duration ({DURATION_EXAMPLES}), not `{value}`")]
    NotADuration { left: String, value: String },
    #[error("`{left}` is true or false, never `{value}`")]
    NotABoolean { left: String, value: String },
    #[error("`{value}` is not an IP address")]
    NotAnIp { value: String },
    #[error("unknown DNS rcode `{value}` (one of {})", crate::probe::dns::RcodeName::all())]
    UnknownRcode { value: String },
}

fn missing_operator(left: &str, right: Option<&str>) -> String {
    match right {
        Some(right) => format!("missing operator between `{left}` and `{right}` (one of {})", Op::all()),
        None => format!("missing operator after `{left}` (one of {})", Op::all()),
    }
}

fn unknown_operator(op: &str) -> String {
    if op == "=" {
        "unknown operator `=` (did you mean `==`?)".to_string()
    } else {
        format!("unknown operator `{op}` (one of {})", Op::all())
    }
}

fn place_suffix(place: &Place) -> String {
    match place {
        Place::Start => String::new(),
        Place::After(left) => format!(" after `{left}`"),
        Place::In(value) => format!(" in `{value}`"),
    }
}

fn within_suffix(within: Option<&str>) -> String {
    within.map(|w| format!(" in `{w}`")).unwrap_or_default()
}

fn wrong_side(function: &str) -> String {
    match function {
        "pat" => "pat() goes on the right side, e.g. `[BODY].name == pat(john*)`".to_string(),
        "any" => "any() goes on the right side, e.g. `[STATUS] == any(200, 301)`".to_string(),
        other => format!("{other}() goes on the left side, e.g. `{other}([BODY].items) == ...`"),
    }
}
