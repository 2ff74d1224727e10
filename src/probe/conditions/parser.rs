//! From text to [`Condition`]: everything that does not need a probe is checked here, so a typo
//! is a config error at load.

use super::error::{Bracket, ConditionError, ConditionErrorKind as E, Place};
use super::types::{Function, Kind, Left, Literal, Name, Op, Placeholder, Right, Step};
use super::values::{Num, looks_like_duration, quote};
use super::{Condition, MAX_PATH_STEPS, MAX_TEXT_BYTES};
use crate::probe::dns::RcodeName;

type Result<T> = std::result::Result<T, ConditionError>;

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

fn first_word(text: &str) -> &str {
    text.split_whitespace().next().unwrap_or("")
}

/// Parses one condition; every error says where in `text` it is.
pub(super) fn parse(text: &str) -> Result<Condition> {
    Parser { whole: text }.condition()
}

/// Every piece the parser looks at is a slice of `whole`, so an error can say where it is from
/// the piece alone.
struct Parser<'a> {
    whole: &'a str,
}

impl Parser<'_> {
    /// An error about `piece` (a slice of the text, possibly empty, e.g. the rest after a side).
    fn error(&self, piece: &str, kind: E) -> ConditionError {
        let start = piece.as_ptr().addr().wrapping_sub(self.whole.as_ptr().addr());
        ConditionError { at: if start <= self.whole.len() { start } else { 0 }, kind }
    }

    fn condition(&self) -> Result<Condition> {
        let text = self.whole;
        if text.len() > MAX_TEXT_BYTES {
            return Err(self.error(text, E::TooLong { bytes: text.len(), max: MAX_TEXT_BYTES }));
        }
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(self.error(text, E::Empty));
        }
        let mut cur = Cursor { text: trimmed, pos: 0 };
        if cur.peek().is_some_and(is_operator_char) {
            let op = cur.take_while(is_operator_char);
            return Err(self.error(op, E::EmptyLeft { op: quote(op) }));
        }
        let left = self.left(&mut cur)?;
        let left_text = cur.since(0);
        let spaced = cur.skip_whitespace();
        let left_shown = || left_text.to_string();
        let op_text = match cur.peek() {
            None => return Err(self.error(cur.rest(), E::MissingOperator { left: left_shown(), right: None })),
            Some(c) if is_operator_char(c) => cur.take_while(is_operator_char),
            Some(')') => {
                let place = Place::After(left_shown());
                return Err(self.error(cur.rest(), E::UnexpectedClose { bracket: Bracket::Parenthesis, place }));
            }
            Some(']') => {
                let place = Place::After(left_shown());
                return Err(self.error(cur.rest(), E::UnexpectedClose { bracket: Bracket::Square, place }));
            }
            Some(_) if spaced => {
                let right = Some(quote(cur.rest()));
                return Err(self.error(cur.rest(), E::MissingOperator { left: left_shown(), right }));
            }
            Some(found) => return Err(self.error(cur.rest(), E::UnexpectedAfterLeft { found, left: left_shown() })),
        };
        let op = Op::parse(op_text).ok_or_else(|| self.error(op_text, E::UnknownOperator { op: quote(op_text) }))?;
        let right_text = cur.rest().trim();
        if right_text.is_empty() {
            return Err(self.error(cur.rest(), E::EmptyRight { op: op.as_str(), left: left_shown() }));
        }
        let kind = left.kind();
        self.check_operator(kind, op, left_text, op_text)?;
        let right = self.right(right_text, kind, op, left_text)?;
        Ok(Condition {
            text: text.to_string(),
            left,
            op,
            right,
            left_text: left_text.to_string(),
            right_text: right_text.to_string(),
        })
    }

    fn left(&self, cur: &mut Cursor<'_>) -> Result<Left> {
        match cur.peek() {
            Some('[') => Ok(Left::Value(self.placeholder(cur)?)),
            Some(c) if c.is_ascii_alphabetic() => {
                let ident = cur.take_while(is_ident_char);
                if cur.peek() != Some('(') {
                    let kind = match Name::parse(&ident.to_ascii_uppercase()) {
                        Some(name) => E::Unbracketed { placeholder: name.bracketed(), written: quote(ident) },
                        None => E::NotALeftSide { found: quote(first_word(cur.since(0))) },
                    };
                    return Err(self.error(ident, kind));
                }
                let function = match ident.parse::<Function>() {
                    Ok(Function::Len) => Function::Len,
                    Ok(Function::Has) => Function::Has,
                    Ok(wrong @ (Function::Pat | Function::Any)) => {
                        return Err(self.error(ident, E::WrongSide { function: wrong.name() }));
                    }
                    Err(_) => return Err(self.error(ident, E::UnknownFunction { name: quote(ident) })),
                };
                let name = function.name();
                let unclosed = |cur: &Cursor<'_>| {
                    let kind = E::Unclosed { bracket: Bracket::Parenthesis, opened: format!("{name}("), within: None };
                    self.error(cur.rest(), kind)
                };
                cur.bump();
                cur.skip_whitespace();
                match cur.peek() {
                    Some('[') => {}
                    None => return Err(unclosed(cur)),
                    Some(')') => return Err(self.error(cur.rest(), E::NoPlaceholder { function: name })),
                    Some(_) => {
                        let found = quote(first_word(cur.rest()));
                        return Err(self.error(cur.rest(), E::NotAPlaceholder { function: name, found }));
                    }
                }
                let placeholder_start = cur.rest();
                let placeholder = self.placeholder(cur)?;
                cur.skip_whitespace();
                match cur.peek() {
                    Some(')') => cur.bump(),
                    Some(_) if cur.rest().contains(')') => {
                        let found = quote(first_word(cur.rest()));
                        return Err(self.error(cur.rest(), E::SecondArgument { function: name, found }));
                    }
                    _ => return Err(unclosed(cur)),
                }
                if function == Function::Len && !matches!(placeholder.name, Name::Body | Name::Ip | Name::DnsRcode) {
                    let kind = E::NoLength { placeholder: placeholder.name.bracketed() };
                    return Err(self.error(placeholder_start, kind));
                }
                Ok(if function == Function::Len { Left::Len(placeholder) } else { Left::Has(placeholder) })
            }
            Some(')') => {
                Err(self.error(cur.rest(), E::UnexpectedClose { bracket: Bracket::Parenthesis, place: Place::Start }))
            }
            Some(']') => {
                Err(self.error(cur.rest(), E::UnexpectedClose { bracket: Bracket::Square, place: Place::Start }))
            }
            _ => Err(self.error(cur.rest(), E::NotALeftSide { found: quote(first_word(cur.rest())) })),
        }
    }

    /// `[NAME]`, then for `[BODY]` any number of `.key` and `[index]` steps.
    fn placeholder(&self, cur: &mut Cursor<'_>) -> Result<Placeholder> {
        let start = cur.pos;
        let opening = cur.rest();
        cur.bump();
        let name_text = cur.take_while(is_bracketed_char);
        if cur.peek() != Some(']') {
            let kind = E::Unclosed { bracket: Bracket::Square, opened: format!("[{}", quote(name_text)), within: None };
            return Err(self.error(opening, kind));
        }
        cur.bump();
        let name = Name::parse(name_text).ok_or_else(|| {
            let upper_case_known = Name::parse(&name_text.to_ascii_uppercase()).is_some();
            self.error(name_text, E::UnknownPlaceholder { name: quote(name_text), upper_case_known })
        })?;
        let mut path = Vec::new();
        loop {
            let step = cur.rest();
            match cur.peek() {
                Some('.') => {
                    cur.bump();
                    let key = cur.take_while(is_key_char);
                    if key.is_empty() {
                        return Err(self.error(step, E::EmptyKey { path: quote(cur.since(start)) }));
                    }
                    path.push(Step::Key(key.to_string()));
                }
                Some('[') => {
                    cur.bump();
                    let index = cur.take_while(is_bracketed_char);
                    if cur.peek() != Some(']') {
                        let within = Some(quote(cur.since(start)));
                        let kind =
                            E::Unclosed { bracket: Bracket::Square, opened: format!("[{}", quote(index)), within };
                        return Err(self.error(step, kind));
                    }
                    cur.bump();
                    path.push(Step::Index(self.index(index)?));
                }
                _ => break,
            }
            if path.len() > MAX_PATH_STEPS {
                return Err(self.error(step, E::PathTooDeep { max: MAX_PATH_STEPS }));
            }
        }
        if !path.is_empty() && name != Name::Body {
            return Err(self.error(name_text, E::PathOnNonBody { placeholder: name.bracketed() }));
        }
        Ok(Placeholder { name, path })
    }

    fn index(&self, text: &str) -> Result<usize> {
        if text == "*" {
            return Err(self.error(text, E::WildcardIndex));
        }
        let invalid = || self.error(text, E::InvalidIndex { index: quote(text) });
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        // Nine digits is far beyond any body we keep (1 MiB), and fits every usize.
        if text.len() > 9 {
            return Err(self.error(text, E::IndexTooLarge { index: quote(text) }));
        }
        text.parse().map_err(|_| invalid())
    }

    /// Operators that cannot apply to the left side, whatever the right.
    fn check_operator(&self, kind: Kind, op: Op, left: &str, op_text: &str) -> Result<()> {
        if !op.is_ordering() {
            return Ok(());
        }
        let left_is = match kind {
            Kind::Bool => "true or false",
            Kind::Ip | Kind::Rcode => "text",
            _ => return Ok(()),
        };
        Err(self.error(op_text, E::NotOrdered { op: op.as_str(), left: left.to_string(), left_is }))
    }

    fn right(&self, text: &str, kind: Kind, op: Op, left: &str) -> Result<Right> {
        self.refuse_placeholder(text)?;
        let Some((ident, inner)) = self.split_call(text)? else {
            return self.literal(text, kind, op, left).map(Right::Value);
        };
        let function =
            ident.parse::<Function>().map_err(|_| self.error(ident, E::UnknownFunction { name: quote(ident) }))?;
        match function {
            Function::Pat | Function::Any if op.is_ordering() => {
                Err(self.error(text, E::OrderingWithFunction { op: op.as_str(), function: function.name() }))
            }
            Function::Pat => {
                let left_is = match kind {
                    Kind::Bool => Some("true or false"),
                    Kind::Duration => Some("a duration"),
                    _ => None,
                };
                if let Some(left_is) = left_is {
                    return Err(self.error(text, E::PatternOnNonText { left: left.to_string(), left_is }));
                }
                let pattern = inner.trim();
                if pattern.is_empty() {
                    return Err(self.error(inner, E::EmptyPattern));
                }
                Ok(Right::Pattern(pattern.to_string()))
            }
            Function::Any => {
                if inner.trim().is_empty() {
                    return Err(self.error(inner, E::EmptyAny));
                }
                let mut literals = Vec::new();
                for option in inner.split(',').map(str::trim) {
                    if option.is_empty() {
                        return Err(self.error(option, E::EmptyValue { within: quote(text) }));
                    }
                    self.refuse_placeholder(option)?;
                    if self.split_call(option)?.is_some() {
                        return Err(self.error(option, E::NotAPlainValue { found: quote(option) }));
                    }
                    literals.push(self.literal(option, kind, Op::Eq, left)?);
                }
                Ok(Right::Any(literals))
            }
            Function::Len | Function::Has => Err(self.error(ident, E::WrongSide { function: function.name() })),
        }
    }

    /// Comparing two placeholders is not supported; say so rather than compare with the text `[IP]`.
    fn refuse_placeholder(&self, text: &str) -> Result<()> {
        let name = text.strip_prefix('[').and_then(|rest| rest.split(']').next()).unwrap_or("");
        if Name::parse(&name.to_ascii_uppercase()).is_some() {
            return Err(self.error(text, E::PlaceholderOnRight { found: quote(text) }));
        }
        Ok(())
    }

    /// `name(inner)` when the text is a function call; an error when it starts like one but is not
    /// closed, or goes on after the `)`.
    fn split_call<'t>(&self, text: &'t str) -> Result<Option<(&'t str, &'t str)>> {
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
                    let kind = E::AfterCall { function: ident.to_string(), found: quote(trailing) };
                    return Err(self.error(trailing, kind));
                }
                return Ok(Some((ident, inner)));
            }
        }
        let kind = E::Unclosed { bracket: Bracket::Parenthesis, opened: format!("{ident}("), within: None };
        Err(self.error(text, kind))
    }

    fn literal(&self, text: &str, kind: Kind, op: Op, left: &str) -> Result<Literal> {
        for word in text.split_whitespace() {
            if word == "&&" || word == "||" {
                return Err(self.error(word, E::LogicalOperator { op: word.to_string() }));
            }
            if let Some(second) = Op::parse(word) {
                return Err(self.error(word, E::SecondOperator { op: second.as_str(), within: quote(text) }));
            }
        }
        self.check_balanced(text)?;
        let mut literal = Literal::new(text);
        self.check_literal(text, kind, op, left, &mut literal)?;
        Ok(literal)
    }

    /// A stray bracket or parenthesis in a value is almost always a typo around pat(), any() or a
    /// placeholder, and would silently never match.
    fn check_balanced(&self, text: &str) -> Result<()> {
        let mut open: [Vec<usize>; 2] = [Vec::new(), Vec::new()];
        for (i, c) in text.char_indices() {
            let (bracket, opens) = match c {
                '(' => (Bracket::Parenthesis, true),
                ')' => (Bracket::Parenthesis, false),
                '[' => (Bracket::Square, true),
                ']' => (Bracket::Square, false),
                _ => continue,
            };
            let stack = &mut open[bracket as usize];
            if opens {
                stack.push(i);
            } else if stack.pop().is_none() {
                let kind = E::UnexpectedClose { bracket, place: Place::In(quote(text)) };
                return Err(self.error(text.get(i..).unwrap_or(text), kind));
            }
        }
        for (bracket, opening) in [(Bracket::Parenthesis, '('), (Bracket::Square, '[')] {
            if let Some(&i) = open[bracket as usize].first() {
                let kind = E::Unclosed { bracket, opened: opening.to_string(), within: Some(quote(text)) };
                return Err(self.error(text.get(i..).unwrap_or(text), kind));
            }
        }
        Ok(())
    }

    /// Whether the left side can ever equal (or be ordered against) this literal.
    fn check_literal(&self, at: &str, kind: Kind, op: Op, left: &str, literal: &mut Literal) -> Result<()> {
        let value = quote(&literal.text);
        let left = left.to_string();
        let error = match kind {
            Kind::Number | Kind::Body if op.is_ordering() && literal.num.is_none() => {
                E::NotANumber { op: op.as_str(), value }
            }
            Kind::Number if literal.num.is_none() => E::NeverEqualsNumber { left, value },
            Kind::Millis if literal.num.is_none() => match literal.millis {
                Some(ms) => {
                    literal.num = Some(Num::Int(ms));
                    return Ok(());
                }
                None if looks_like_duration(&literal.text) => E::InvalidDuration { value },
                None => E::NotMilliseconds { left, value },
            },
            Kind::Duration => match literal.millis {
                Some(_) => return Ok(()),
                None if literal.num.is_some() => E::DurationWithoutUnit { left, value },
                None if looks_like_duration(&literal.text) => E::InvalidDuration { value },
                None => E::NotADuration { left, value },
            },
            Kind::Bool if literal.boolean.is_none() => E::NotABoolean { left, value },
            Kind::Ip if literal.ip.is_none() => E::NotAnIp { value },
            Kind::Rcode if literal.text.parse::<RcodeName>().is_err() => E::UnknownRcode { value },
            _ => return Ok(()),
        };
        Err(self.error(at, error))
    }
}
