//! Extension matching, Asterisk style.
//!
//! Owns the parsing of an extension's `match` string into an
//! [`ExtensionMatch`] (an exact extension or a `_` pattern), the test of a
//! dialled string against it, and the order in which a context tries its
//! extensions. It does not own contexts or includes (see `plan`).
//!
//! Pattern characters (after the leading `_`):
//!
//! | char | matches |
//! |---|---|
//! | `X` | one digit `0-9` |
//! | `Z` | one digit `1-9` |
//! | `N` | one digit `2-9` |
//! | `[15-7a]` | one character of the set; `a-b` is a range |
//! | `.` | one or more of any character (must end the pattern) |
//! | `!` | zero or more of any character (must end the pattern) |
//! | `-` | ignored, for readability (`_1-800-XXXXXXX`) |
//! | anything else | itself (`+`, `*`, `#`, digits, letters) |
//!
//! `X`, `Z` and `N` are case-insensitive, as in Asterisk.
//!
//! Order: exact extensions come before patterns. Patterns are compared
//! position by position from the left; at the first position where they
//! differ, the one whose character matches fewer characters sorts first (a
//! literal before `N` before `Z` before `X`; at equal size the set with the
//! lower first character first); a pattern that has ended sorts before one
//! that continues, and `.` sorts before `!`. So `_9NXXNXXXXXX` is tried
//! before `_9X.`, which is tried before `_X.`. Ties fall back to the text.

use std::cmp::Ordering;
use std::fmt;

/// Why a `match` string is not a valid extension or pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("extension is empty")]
    Empty,
    #[error("pattern '_' has no characters after the underscore")]
    EmptyPattern,
    #[error("'{wildcard}' must be the last character of a pattern")]
    WildcardNotLast { wildcard: char },
    #[error("'[' without a closing ']'")]
    UnclosedSet,
    #[error("empty character set '[]'")]
    EmptySet,
    #[error("range '{from}-{to}' runs backwards")]
    BackwardsRange { from: char, to: char },
    #[error("character '{found}' is not allowed in an extension")]
    BadCharacter { found: char },
}

/// One parsed `match` value: an exact extension or a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtensionMatch {
    /// Matches exactly this string (`100`, `s`, `+19863334949`).
    Exact(String),
    /// A `_` pattern.
    Pattern(Pattern),
}

impl ExtensionMatch {
    /// Parses an extension name or, when it starts with `_`, a pattern.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        match text.strip_prefix('_') {
            Some(_) => Pattern::parse(text).map(ExtensionMatch::Pattern),
            None => {
                if let Some(found) = text.chars().find(|c| !exact_char_ok(*c)) {
                    return Err(PatternError::BadCharacter { found });
                }
                Ok(ExtensionMatch::Exact(text.to_owned()))
            }
        }
    }

    /// Whether `exten` is matched.
    pub fn matches(&self, exten: &str) -> bool {
        match self {
            ExtensionMatch::Exact(name) => name == exten,
            ExtensionMatch::Pattern(pattern) => pattern.matches(exten),
        }
    }

    /// Whether some string longer than `prefix` and starting with it is
    /// matched (more digits could still select this extension).
    pub fn can_extend(&self, prefix: &str) -> bool {
        match self {
            ExtensionMatch::Exact(name) => name.len() > prefix.len() && name.starts_with(prefix),
            ExtensionMatch::Pattern(pattern) => pattern.can_extend(prefix),
        }
    }

    /// The text this was parsed from.
    pub fn as_str(&self) -> &str {
        match self {
            ExtensionMatch::Exact(name) => name,
            ExtensionMatch::Pattern(pattern) => pattern.as_str(),
        }
    }

    /// Whether this is a pattern (as opposed to an exact extension).
    pub fn is_pattern(&self) -> bool {
        matches!(self, ExtensionMatch::Pattern(_))
    }
}

impl fmt::Display for ExtensionMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Ord for ExtensionMatch {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (ExtensionMatch::Exact(a), ExtensionMatch::Exact(b)) => a.cmp(b),
            (ExtensionMatch::Exact(_), ExtensionMatch::Pattern(_)) => Ordering::Less,
            (ExtensionMatch::Pattern(_), ExtensionMatch::Exact(_)) => Ordering::Greater,
            (ExtensionMatch::Pattern(a), ExtensionMatch::Pattern(b)) => a.cmp(b),
        }
    }
}

impl PartialOrd for ExtensionMatch {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Characters allowed in an exact extension: anything printable except
/// whitespace and the `,` that separates `Goto` arguments.
fn exact_char_ok(c: char) -> bool {
    !c.is_whitespace() && !c.is_control() && c != ','
}

/// What a pattern allows after its fixed-length part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tail {
    /// Nothing: the extension ends here.
    End,
    /// `.`: one or more characters.
    OneOrMore,
    /// `!`: zero or more characters.
    ZeroOrMore,
}

/// A set of characters matched at one position, as sorted, merged ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CharSet {
    ranges: Vec<(char, char)>,
}

impl CharSet {
    fn single(c: char) -> Self {
        CharSet {
            ranges: vec![(c, c)],
        }
    }

    fn from_ranges(mut ranges: Vec<(char, char)>) -> Self {
        ranges.sort();
        let mut merged: Vec<(char, char)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match merged.last_mut() {
                Some(last) if u32::from(lo) <= u32::from(last.1).saturating_add(1) => {
                    if hi > last.1 {
                        last.1 = hi;
                    }
                }
                _ => merged.push((lo, hi)),
            }
        }
        CharSet { ranges: merged }
    }

    fn contains(&self, c: char) -> bool {
        self.ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi)
    }

    /// How many characters the set matches.
    fn size(&self) -> u64 {
        self.ranges
            .iter()
            .map(|(lo, hi)| u64::from(u32::from(*hi)) - u64::from(u32::from(*lo)) + 1)
            .sum()
    }

    fn first(&self) -> u32 {
        self.ranges.first().map_or(0, |(lo, _)| u32::from(*lo))
    }
}

/// A parsed `_` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    positions: Vec<CharSet>,
    tail: Tail,
}

impl Pattern {
    /// Parses a pattern; `text` must start with `_`.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let body = text.strip_prefix('_').ok_or(PatternError::Empty)?;
        let mut positions = Vec::new();
        let mut tail = Tail::End;
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            if tail != Tail::End {
                let wildcard = if tail == Tail::OneOrMore { '.' } else { '!' };
                return Err(PatternError::WildcardNotLast { wildcard });
            }
            match c {
                'X' | 'x' => positions.push(CharSet::from_ranges(vec![('0', '9')])),
                'Z' | 'z' => positions.push(CharSet::from_ranges(vec![('1', '9')])),
                'N' | 'n' => positions.push(CharSet::from_ranges(vec![('2', '9')])),
                '.' => tail = Tail::OneOrMore,
                '!' => tail = Tail::ZeroOrMore,
                '-' => {}
                '[' => positions.push(parse_set(&mut chars)?),
                c if exact_char_ok(c) && c != ']' => positions.push(CharSet::single(c)),
                found => return Err(PatternError::BadCharacter { found }),
            }
        }
        if positions.is_empty() && tail == Tail::End {
            return Err(PatternError::EmptyPattern);
        }
        Ok(Pattern {
            source: text.to_owned(),
            positions,
            tail,
        })
    }

    /// Whether `exten` matches the whole pattern.
    pub fn matches(&self, exten: &str) -> bool {
        let mut chars = exten.chars();
        for set in &self.positions {
            match chars.next() {
                Some(c) if set.contains(c) => {}
                _ => return false,
            }
        }
        match self.tail {
            Tail::End => chars.next().is_none(),
            Tail::OneOrMore => chars.next().is_some(),
            Tail::ZeroOrMore => true,
        }
    }

    /// The pattern text, with its leading `_`.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether some string longer than `prefix` and starting with it is
    /// matched.
    pub fn can_extend(&self, prefix: &str) -> bool {
        let mut chars = prefix.chars();
        let mut used = 0;
        for set in &self.positions {
            match chars.next() {
                Some(c) if set.contains(c) => used += 1,
                Some(_) => return false,
                None => break,
            }
        }
        if chars.next().is_some() {
            // The prefix is longer than the fixed positions: only a
            // wildcard tail takes more.
            return self.tail != Tail::End;
        }
        used < self.positions.len() || self.tail != Tail::End
    }

    /// Sort keys, one per position, then one for the tail.
    fn keys(&self) -> impl Iterator<Item = (u8, u64, u32)> + '_ {
        let tail = match self.tail {
            Tail::End => (0, 0, 0),
            Tail::OneOrMore => (2, 0, 0),
            Tail::ZeroOrMore => (3, 0, 0),
        };
        self.positions
            .iter()
            .map(|set| (1, set.size(), set.first()))
            .chain(std::iter::once(tail))
    }
}

impl Ord for Pattern {
    fn cmp(&self, other: &Self) -> Ordering {
        self.keys()
            .cmp(other.keys())
            .then_with(|| self.source.cmp(&other.source))
    }
}

impl PartialOrd for Pattern {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Parses the inside of `[...]`; the `[` has been consumed.
fn parse_set(chars: &mut std::str::Chars<'_>) -> Result<CharSet, PatternError> {
    let mut members: Vec<char> = Vec::new();
    loop {
        match chars.next() {
            None => return Err(PatternError::UnclosedSet),
            Some(']') => break,
            Some(c) if exact_char_ok(c) => members.push(c),
            Some(found) => return Err(PatternError::BadCharacter { found }),
        }
    }
    let mut ranges = Vec::new();
    let mut i = 0;
    while let Some(&c) = members.get(i) {
        match (members.get(i + 1), members.get(i + 2)) {
            (Some('-'), Some(&to)) => {
                if to < c {
                    return Err(PatternError::BackwardsRange { from: c, to });
                }
                ranges.push((c, to));
                i += 3;
            }
            _ => {
                ranges.push((c, c));
                i += 1;
            }
        }
    }
    if ranges.is_empty() {
        return Err(PatternError::EmptySet);
    }
    Ok(CharSet::from_ranges(ranges))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, exten: &str) -> bool {
        ExtensionMatch::parse(pattern).unwrap().matches(exten)
    }

    #[test]
    fn pattern_table_follows_asterisk_semantics() {
        let table: &[(&str, &str, bool)] = &[
            ("100", "100", true),
            ("100", "1000", false),
            ("100", "10", false),
            ("_X.", "1", false),
            ("_X.", "12", true),
            ("_X.", "a2", false),
            ("_X!", "1", true),
            ("_X!", "1234", true),
            ("_X!", "", false),
            ("_!", "", true),
            ("_.", "", false),
            ("_.", "s", true),
            ("_+1.", "+19863334949", true),
            ("_+1.", "+1", false),
            ("_+1.", "19863334949", false),
            ("_9NXXNXXXXXX", "92125551234", true),
            ("_9NXXNXXXXXX", "91125551234", false),
            ("_9NXXNXXXXXX", "9212555123", false),
            ("_9NXXNXXXXXX", "921255512345", false),
            ("_[1-5]XX", "100", true),
            ("_[1-5]XX", "599", true),
            ("_[1-5]XX", "600", false),
            ("_[a-c1-5]", "b", true),
            ("_[a-c1-5]", "d", false),
            ("_[135]", "3", true),
            ("_[135]", "2", false),
            ("_ZXX", "099", false),
            ("_ZXX", "199", true),
            ("_NXX", "199", false),
            ("_nxx", "299", true),
            ("_*X#", "*5#", true),
            ("_*X#", "*55", false),
            ("_1-800-XXX", "1800555", true),
            ("_9X.", "91", false),
            ("_9X.", "912", true),
        ];
        for (pattern, exten, expected) in table {
            assert_eq!(m(pattern, exten), *expected, "{pattern} against {exten:?}");
        }
    }

    #[test]
    fn invalid_patterns_are_rejected_with_a_reason() {
        assert_eq!(ExtensionMatch::parse(""), Err(PatternError::Empty));
        assert_eq!(ExtensionMatch::parse("_"), Err(PatternError::EmptyPattern));
        assert_eq!(
            ExtensionMatch::parse("_X.1"),
            Err(PatternError::WildcardNotLast { wildcard: '.' })
        );
        assert_eq!(
            ExtensionMatch::parse("_[12"),
            Err(PatternError::UnclosedSet)
        );
        assert_eq!(ExtensionMatch::parse("_[]"), Err(PatternError::EmptySet));
        assert_eq!(
            ExtensionMatch::parse("_[9-1]"),
            Err(PatternError::BackwardsRange { from: '9', to: '1' })
        );
        assert_eq!(
            ExtensionMatch::parse("1,2"),
            Err(PatternError::BadCharacter { found: ',' })
        );
    }

    #[test]
    fn extensions_sort_exact_first_then_more_specific_patterns() {
        let mut list: Vec<ExtensionMatch> = [
            "_X!",
            "_X.",
            "_9X.",
            "_.",
            "_!",
            "_9NXXNXXXXXX",
            "_91NXXNXXXXXX",
            "100",
            "_1XX",
            "_[1-5]XX",
            "_NXX",
            "_ZXX",
            "_1XX.",
            "s",
        ]
        .iter()
        .map(|s| ExtensionMatch::parse(s).unwrap())
        .collect();
        list.sort();
        let order: Vec<&str> = list.iter().map(ExtensionMatch::as_str).collect();
        assert_eq!(
            order,
            [
                "100",
                "s",
                "_1XX",
                "_1XX.",
                "_91NXXNXXXXXX",
                "_9NXXNXXXXXX",
                "_9X.",
                "_[1-5]XX",
                "_NXX",
                "_ZXX",
                "_X.",
                "_X!",
                "_.",
                "_!",
            ]
        );
    }
}
