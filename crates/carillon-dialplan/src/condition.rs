//! `GotoIf` conditions: the simple cases of Asterisk's `$[...]` expressions.
//!
//! A condition is either one operand (true when, after expansion and
//! trimming, it is non-empty and not `0`) or two operands joined by one of
//! `=` (also `==`), `!=`, `<`, `<=`, `>`, `>=`. Operands are [`Template`]s,
//! expanded per call, trimmed, and stripped of one pair of surrounding double
//! quotes. When both sides are integers they compare as numbers, otherwise as
//! strings. An optional `$[ ... ]` wrapper is accepted so that conditions can
//! be pasted from `extensions.conf`. `&`, `|` and arithmetic are not
//! supported.

use crate::template::{Template, TemplateError, VarName};
use std::cmp::Ordering;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

/// Why a condition is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    #[error("condition is empty")]
    Empty,
    #[error("operator '{operator}' needs a value on both sides")]
    MissingOperand { operator: String },
    #[error("{0}")]
    Template(#[from] TemplateError),
}

/// A parsed condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    left: Template,
    comparison: Option<(Operator, Template)>,
}

impl Condition {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Self, ConditionError> {
        let mut body = text.trim();
        if let Some(inner) = body.strip_prefix("$[").and_then(|b| b.strip_suffix(']')) {
            body = inner.trim();
        }
        if body.is_empty() {
            return Err(ConditionError::Empty);
        }
        match find_operator(body) {
            None => Ok(Condition {
                left: Template::parse(body)?,
                comparison: None,
            }),
            Some((at, width, operator)) => {
                let left = body.get(..at).unwrap_or_default().trim();
                let right = body.get(at + width..).unwrap_or_default().trim();
                if left.is_empty() || right.is_empty() {
                    return Err(ConditionError::MissingOperand {
                        operator: body.get(at..at + width).unwrap_or_default().to_owned(),
                    });
                }
                Ok(Condition {
                    left: Template::parse(left)?,
                    comparison: Some((operator, Template::parse(right)?)),
                })
            }
        }
    }

    /// Evaluates with variables from `lookup`.
    pub fn evaluate(&self, lookup: &dyn Fn(&VarName) -> Option<String>) -> bool {
        let left = operand(&self.left.expand(lookup));
        match &self.comparison {
            None => !left.is_empty() && left != "0",
            Some((operator, right)) => {
                let right = operand(&right.expand(lookup));
                let ordering = match (left.parse::<i64>(), right.parse::<i64>()) {
                    (Ok(a), Ok(b)) => a.cmp(&b),
                    _ => left.cmp(&right),
                };
                match operator {
                    Operator::Equal => ordering == Ordering::Equal,
                    Operator::NotEqual => ordering != Ordering::Equal,
                    Operator::Less => ordering == Ordering::Less,
                    Operator::LessOrEqual => ordering != Ordering::Greater,
                    Operator::Greater => ordering == Ordering::Greater,
                    Operator::GreaterOrEqual => ordering != Ordering::Less,
                }
            }
        }
    }
}

/// Trims and removes one pair of surrounding double quotes.
fn operand(value: &str) -> String {
    let value = value.trim();
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
        .to_owned()
}

/// Finds the first operator outside `${...}` and double quotes:
/// (byte index, byte width, operator).
fn find_operator(body: &str) -> Option<(usize, usize, Operator)> {
    let bytes = body.as_bytes();
    let mut depth = 0usize;
    let mut quoted = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let next = bytes.get(i + 1).copied();
        match b {
            b'$' if next == Some(b'{') && !quoted => {
                depth += 1;
                i += 2;
                continue;
            }
            b'}' if depth > 0 => depth -= 1,
            b'"' if depth == 0 => quoted = !quoted,
            _ if depth > 0 || quoted => {}
            b'!' if next == Some(b'=') => return Some((i, 2, Operator::NotEqual)),
            b'=' if next == Some(b'=') => return Some((i, 2, Operator::Equal)),
            b'=' => return Some((i, 1, Operator::Equal)),
            b'<' if next == Some(b'=') => return Some((i, 2, Operator::LessOrEqual)),
            b'<' => return Some((i, 1, Operator::Less)),
            b'>' if next == Some(b'=') => return Some((i, 2, Operator::GreaterOrEqual)),
            b'>' => return Some((i, 1, Operator::Greater)),
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(condition: &str) -> bool {
        Condition::parse(condition)
            .unwrap()
            .evaluate(&|name| match name {
                VarName::Channel(n) if n == "DIALSTATUS" => Some("BUSY".to_owned()),
                VarName::Channel(n) if n == "COUNT" => Some("10".to_owned()),
                VarName::Channel(n) if n == "ZERO" => Some("0".to_owned()),
                _ => None,
            })
    }

    #[test]
    fn comparisons_and_truth_follow_simple_asterisk_expressions() {
        assert!(eval("${DIALSTATUS} = BUSY"));
        assert!(eval("${DIALSTATUS} == BUSY"));
        assert!(!eval("${DIALSTATUS} != BUSY"));
        assert!(eval("$[\"${DIALSTATUS}\" = \"BUSY\"]"));
        assert!(eval("${DIALSTATUS}!=NOANSWER"));
        assert!(eval("${COUNT} > 9"));
        assert!(eval("${COUNT} >= 10"));
        assert!(!eval("${COUNT} < 9"));
        assert!(eval("${COUNT} = 010"));
        assert!(eval("${DIALSTATUS}"));
        assert!(!eval("${ZERO}"));
        assert!(!eval("${UNSET}"));
        assert!(eval("${UNSET} = \"\""));
    }

    #[test]
    fn malformed_conditions_are_rejected() {
        assert_eq!(Condition::parse("  "), Err(ConditionError::Empty));
        assert!(matches!(
            Condition::parse("= BUSY"),
            Err(ConditionError::MissingOperand { .. })
        ));
        assert!(matches!(
            Condition::parse("${X = 1"),
            Err(ConditionError::Template(_))
        ));
    }
}
