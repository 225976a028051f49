//! Number normalisation to E.164 (ITU-T E.164 §6) with prefix/length rules.
//!
//! Owns [`NumberRules`]: an ordered list of [`NumberRule`]s; the first rule
//! whose prefix (and length, when given) fits rewrites the number by removing
//! `strip` leading characters and prepending `add`. A number no rule fits is
//! returned unchanged, so numbers already in `+CC...` form pass through.
//! Visual separators (space, `-`, `.`, `(`, `)`) are removed first.
//!
//! Prefix + length rather than regular expressions: national numbering plans
//! are defined exactly that way (a trunk prefix and a fixed number length),
//! the rules read the same to an operator as the plan's documentation, they
//! need no escaping inside TOML strings, and they cannot be written to match
//! more than intended. Pakistan, for example:
//!
//! ```toml
//! [numbering.pakistan]
//! rules = [
//!   { prefix = "03", length = 11, strip = 1, add = "+92" },  # 03001234567  → +923001234567
//!   { prefix = "92", length = 12, add = "+" },               # 923001234567 → +923001234567
//!   { prefix = "0092", strip = 2, add = "+" },               # 0092...      → +92...
//! ]
//! ```

use std::fmt;

/// Why a rule is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberRuleError {
    #[error("strip ({strip}) is longer than the prefix '{prefix}'")]
    StripLongerThanPrefix { strip: usize, prefix: String },
    #[error("length ({length}) is shorter than the prefix '{prefix}'")]
    LengthShorterThanPrefix { length: usize, prefix: String },
    #[error("'{text}' may contain only digits, '*', '#' and a leading '+'")]
    BadDigits { text: String },
}

/// One rewrite rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberRule {
    prefix: String,
    length: Option<usize>,
    strip: usize,
    add: String,
}

impl NumberRule {
    /// A rule for numbers starting with `prefix` (and exactly `length`
    /// characters long when given): drop `strip` leading characters (at most
    /// the prefix) and prepend `add`.
    pub fn new(
        prefix: &str,
        length: Option<usize>,
        strip: usize,
        add: &str,
    ) -> Result<Self, NumberRuleError> {
        for text in [prefix, add] {
            if !is_dial_string(text) {
                return Err(NumberRuleError::BadDigits {
                    text: text.to_owned(),
                });
            }
        }
        let prefix_len = prefix.chars().count();
        if strip > prefix_len {
            return Err(NumberRuleError::StripLongerThanPrefix {
                strip,
                prefix: prefix.to_owned(),
            });
        }
        if let Some(length) = length {
            if length < prefix_len {
                return Err(NumberRuleError::LengthShorterThanPrefix {
                    length,
                    prefix: prefix.to_owned(),
                });
            }
        }
        Ok(NumberRule {
            prefix: prefix.to_owned(),
            length,
            strip,
            add: add.to_owned(),
        })
    }

    fn apply(&self, number: &str) -> Option<String> {
        if !number.starts_with(&self.prefix) {
            return None;
        }
        if let Some(length) = self.length {
            if number.chars().count() != length {
                return None;
            }
        }
        let kept: String = number.chars().skip(self.strip).collect();
        Some(format!("{}{kept}", self.add))
    }
}

impl fmt::Display for NumberRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "prefix '{}'", self.prefix)?;
        if let Some(length) = self.length {
            write!(f, ", length {length}")?;
        }
        write!(f, ": strip {}, add '{}'", self.strip, self.add)
    }
}

/// `+` only first, then digits, `*`, `#`; empty is allowed.
fn is_dial_string(text: &str) -> bool {
    let body = text.strip_prefix('+').unwrap_or(text);
    body.chars()
        .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
}

/// An ordered list of rules; the first that fits wins.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NumberRules {
    rules: Vec<NumberRule>,
}

impl NumberRules {
    /// Rules tried in the given order.
    pub fn new(rules: Vec<NumberRule>) -> Self {
        NumberRules { rules }
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[NumberRule] {
        &self.rules
    }

    /// Rewrites `number` with the first rule that fits, after removing
    /// separators; returns it (without separators) when none fits.
    pub fn normalise(&self, number: &str) -> String {
        let cleaned: String = number
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        self.rules
            .iter()
            .find_map(|rule| rule.apply(&cleaned))
            .unwrap_or(cleaned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pakistan() -> NumberRules {
        NumberRules::new(vec![
            NumberRule::new("03", Some(11), 1, "+92").unwrap(),
            NumberRule::new("92", Some(12), 0, "+").unwrap(),
            NumberRule::new("0092", None, 2, "+").unwrap(),
        ])
    }

    #[test]
    fn pakistani_mobile_numbers_normalise_to_e164() {
        let rules = pakistan();
        assert_eq!(rules.normalise("03001234567"), "+923001234567");
        assert_eq!(rules.normalise("923001234567"), "+923001234567");
        assert_eq!(rules.normalise("00923001234567"), "+923001234567");
        assert_eq!(rules.normalise("0300-123 4567"), "+923001234567");
    }

    #[test]
    fn numbers_already_in_e164_or_not_fitting_stay_unchanged() {
        let rules = pakistan();
        assert_eq!(rules.normalise("+923001234567"), "+923001234567");
        assert_eq!(rules.normalise("0300123456"), "0300123456");
        assert_eq!(rules.normalise("8013"), "8013");
        assert_eq!(
            NumberRules::default().normalise("03001234567"),
            "03001234567"
        );
    }

    #[test]
    fn first_fitting_rule_wins() {
        let rules = NumberRules::new(vec![
            NumberRule::new("1", Some(11), 0, "+").unwrap(),
            NumberRule::new("", Some(10), 0, "+1").unwrap(),
        ]);
        assert_eq!(rules.normalise("19865551234"), "+19865551234");
        assert_eq!(rules.normalise("9865551234"), "+19865551234");
    }

    #[test]
    fn invalid_rules_are_rejected() {
        assert!(matches!(
            NumberRule::new("03", None, 3, "+92"),
            Err(NumberRuleError::StripLongerThanPrefix { .. })
        ));
        assert!(matches!(
            NumberRule::new("0300", Some(3), 0, ""),
            Err(NumberRuleError::LengthShorterThanPrefix { .. })
        ));
        assert!(matches!(
            NumberRule::new("0x", None, 0, ""),
            Err(NumberRuleError::BadDigits { .. })
        ));
        assert!(matches!(
            NumberRule::new("", None, 0, "9+"),
            Err(NumberRuleError::BadDigits { .. })
        ));
    }
}
