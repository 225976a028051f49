//! Variable substitution in step arguments: `${NAME}`, `${NAME:offset}`,
//! `${NAME:offset:length}` and the `CALLERID(num)` / `CALLERID(name)` /
//! `CHANNEL(language)` functions, parsed once at load into a [`Template`] and expanded per call.
//!
//! Owns the variable-name vocabulary ([`VarName`]) and Asterisk's substring
//! rules; it does not own where values come from (the interpreter passes a
//! lookup). Substrings count characters, not bytes:
//!
//! * `offset >= 0` skips that many characters; a negative offset starts that
//!   many characters from the end (clamped to the start);
//! * no length takes the rest; a positive length takes at most that many; a
//!   negative length drops that many characters from the end.
//!
//! Nested references (`${A${B}}`) are not supported and are rejected at load.

use std::fmt;

/// Why a template string is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("'${{' without a closing '}}'")]
    Unclosed,
    #[error("nested '${{' inside a variable reference is not supported")]
    Nested,
    #[error("empty variable name in '${{}}'")]
    EmptyName,
    #[error("bad variable name '{name}' (letters, digits and '_' only)")]
    BadName { name: String },
    #[error("unknown function '{name}' (only CALLERID(num), CALLERID(name) and CHANNEL(language) are known)")]
    UnknownFunction { name: String },
    #[error("bad substring '{spec}' (expected ':offset' or ':offset:length' with integers)")]
    BadSubstring { spec: String },
}

/// A variable that can be read (and, unless read-only, written by `Set`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum VarName {
    /// `EXTEN`: the extension being executed.
    Exten,
    /// `CONTEXT`: the channel's current context.
    Context,
    /// `UNIQUEID`: the call's unique id given at start.
    UniqueId,
    /// `PRIORITY`: the 1-based number of the current step.
    Priority,
    /// `CALLERID(num)`.
    CallerIdNum,
    /// `CALLERID(name)`.
    CallerIdName,
    /// `CHANNEL(language)`: the language prompts are played in (`en` unless
    /// set).
    ChannelLanguage,
    /// Any channel variable (`DIALSTATUS`, `HANGUPCAUSE`, set with `Set`).
    Channel(String),
}

impl VarName {
    /// Parses `NAME` or `FUNC(arg)`.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(TemplateError::EmptyName);
        }
        if let Some(open) = text.find('(') {
            let func = text.get(..open).unwrap_or_default();
            let arg = text
                .get(open + 1..)
                .and_then(|rest| rest.strip_suffix(')'))
                .map(str::trim);
            return match (func.eq_ignore_ascii_case("CALLERID"), arg) {
                (true, Some(arg)) if arg.eq_ignore_ascii_case("num") => Ok(VarName::CallerIdNum),
                (true, Some(arg)) if arg.eq_ignore_ascii_case("name") => Ok(VarName::CallerIdName),
                (false, Some(arg))
                    if func.eq_ignore_ascii_case("CHANNEL")
                        && arg.eq_ignore_ascii_case("language") =>
                {
                    Ok(VarName::ChannelLanguage)
                }
                _ => Err(TemplateError::UnknownFunction {
                    name: text.to_owned(),
                }),
            };
        }
        if !text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(TemplateError::BadName {
                name: text.to_owned(),
            });
        }
        Ok(match text {
            "EXTEN" => VarName::Exten,
            "CONTEXT" => VarName::Context,
            "UNIQUEID" => VarName::UniqueId,
            "PRIORITY" => VarName::Priority,
            other => VarName::Channel(other.to_owned()),
        })
    }

    /// Whether `Set` may not write it.
    pub fn is_read_only(&self) -> bool {
        matches!(
            self,
            VarName::Exten | VarName::Context | VarName::UniqueId | VarName::Priority
        )
    }
}

impl fmt::Display for VarName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VarName::Exten => f.write_str("EXTEN"),
            VarName::Context => f.write_str("CONTEXT"),
            VarName::UniqueId => f.write_str("UNIQUEID"),
            VarName::Priority => f.write_str("PRIORITY"),
            VarName::CallerIdNum => f.write_str("CALLERID(num)"),
            VarName::CallerIdName => f.write_str("CALLERID(name)"),
            VarName::ChannelLanguage => f.write_str("CHANNEL(language)"),
            VarName::Channel(name) => f.write_str(name),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct VarRef {
    name: VarName,
    offset: i64,
    length: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var(VarRef),
}

/// A string with `${...}` references, parsed at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`; a `$` not followed by `{` is literal.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                parts.push(Part::Literal(
                    rest.get(..start).unwrap_or_default().to_owned(),
                ));
            }
            let after = rest.get(start + 2..).unwrap_or_default();
            let end = after.find('}').ok_or(TemplateError::Unclosed)?;
            let body = after.get(..end).unwrap_or_default();
            if body.contains("${") {
                return Err(TemplateError::Nested);
            }
            parts.push(Part::Var(parse_reference(body)?));
            rest = after.get(end + 1..).unwrap_or_default();
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Template {
            source: text.to_owned(),
            parts,
        })
    }

    /// The text it was parsed from.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The whole text when it has no variable references.
    pub fn literal(&self) -> Option<&str> {
        if self
            .parts
            .iter()
            .all(|part| matches!(part, Part::Literal(_)))
        {
            Some(&self.source)
        } else {
            None
        }
    }

    /// The literal text before the first variable reference.
    pub fn literal_prefix(&self) -> &str {
        match self.parts.first() {
            Some(Part::Literal(text)) => text,
            _ => "",
        }
    }

    /// Expands every reference through `lookup` (unknown → empty string).
    pub fn expand(&self, lookup: &dyn Fn(&VarName) -> Option<String>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Var(var) => {
                    let value = lookup(&var.name).unwrap_or_default();
                    out.push_str(&substring(&value, var.offset, var.length));
                }
            }
        }
        out
    }
}

/// Splits the inside of `${...}` into name and substring arguments. The name
/// may contain `(...)`, so `:` is searched after any closing parenthesis.
fn parse_reference(body: &str) -> Result<VarRef, TemplateError> {
    let search_from = body.rfind(')').map_or(0, |i| i + 1);
    let colon = body
        .get(search_from..)
        .and_then(|tail| tail.find(':'))
        .map(|i| i + search_from);
    let (name, spec) = match colon {
        Some(i) => (
            body.get(..i).unwrap_or_default(),
            Some(body.get(i + 1..).unwrap_or_default()),
        ),
        None => (body, None),
    };
    let name = VarName::parse(name)?;
    let (offset, length) = match spec {
        None => (0, None),
        Some(spec) => {
            let bad = || TemplateError::BadSubstring {
                spec: format!(":{spec}"),
            };
            let mut fields = spec.splitn(2, ':');
            let offset_text = fields.next().unwrap_or_default().trim();
            let offset = if offset_text.is_empty() {
                0
            } else {
                offset_text.parse::<i64>().map_err(|_| bad())?
            };
            let length = match fields.next() {
                None => None,
                Some(text) => Some(text.trim().parse::<i64>().map_err(|_| bad())?),
            };
            (offset, length)
        }
    };
    Ok(VarRef {
        name,
        offset,
        length,
    })
}

/// Asterisk's `${VAR:offset:length}` on characters.
pub fn substring(value: &str, offset: i64, length: Option<i64>) -> String {
    let len = i64::try_from(value.chars().count()).unwrap_or(i64::MAX);
    let start = if offset < 0 {
        len.saturating_add(offset).max(0)
    } else {
        offset.min(len)
    };
    let end = match length {
        None => len,
        Some(l) if l >= 0 => start.saturating_add(l).min(len),
        Some(l) => len.saturating_add(l).max(start),
    };
    let skip = usize::try_from(start).unwrap_or(0);
    let take = usize::try_from(end - start).unwrap_or(0);
    value.chars().skip(skip).take(take).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(template: &str, exten: &str) -> String {
        let exten = exten.to_owned();
        Template::parse(template)
            .unwrap()
            .expand(&|name| match name {
                VarName::Exten => Some(exten.clone()),
                VarName::CallerIdNum => Some("+15550001111".to_owned()),
                VarName::Channel(n) if n == "DIALSTATUS" => Some("BUSY".to_owned()),
                _ => None,
            })
    }

    #[test]
    fn substrings_follow_asterisk_offset_and_length_rules() {
        let table: &[(&str, &str)] = &[
            ("${EXTEN}", "919865551234"),
            ("${EXTEN:1}", "19865551234"),
            ("${EXTEN:-4}", "1234"),
            ("${EXTEN:1:3}", "198"),
            ("${EXTEN:-4:2}", "12"),
            ("${EXTEN:2:-4}", "986555"),
            ("${EXTEN::3}", "919"),
            ("${EXTEN:20}", ""),
            ("${EXTEN:-20}", "919865551234"),
            ("${EXTEN:3:-20}", ""),
            ("${EXTEN:0:0}", ""),
            ("+${EXTEN:1}", "+19865551234"),
        ];
        for (template, expected) in table {
            assert_eq!(expand(template, "919865551234"), *expected, "{template}");
        }
    }

    #[test]
    fn substrings_count_characters_not_bytes() {
        assert_eq!(substring("añb", 1, Some(1)), "ñ");
        assert_eq!(substring("añb", -1, None), "b");
    }

    #[test]
    fn functions_and_unknown_variables_expand() {
        assert_eq!(expand("${CALLERID(num)}", "1"), "+15550001111");
        assert_eq!(expand("${callerid(NUM):-4}", "1"), "1111");
        assert_eq!(expand("[${NOPE}]", "1"), "[]");
        assert_eq!(expand("${DIALSTATUS}", "1"), "BUSY");
        assert_eq!(expand("cost $5", "1"), "cost $5");
    }

    #[test]
    fn malformed_templates_are_rejected() {
        assert_eq!(Template::parse("${EXTEN"), Err(TemplateError::Unclosed));
        assert_eq!(Template::parse("${A${B}}"), Err(TemplateError::Nested));
        assert_eq!(Template::parse("${}"), Err(TemplateError::EmptyName));
        assert!(matches!(
            Template::parse("${EXTEN:x}"),
            Err(TemplateError::BadSubstring { .. })
        ));
        assert!(matches!(
            Template::parse("${FOO(bar)}"),
            Err(TemplateError::UnknownFunction { .. })
        ));
        assert!(matches!(
            Template::parse("${A-B}"),
            Err(TemplateError::BadName { .. })
        ));
    }

    #[test]
    fn literal_and_prefix_are_reported() {
        let t = Template::parse("trunk/twilio/+${EXTEN:1}").unwrap();
        assert_eq!(t.literal(), None);
        assert_eq!(t.literal_prefix(), "trunk/twilio/+");
        assert_eq!(
            Template::parse("user/100").unwrap().literal(),
            Some("user/100")
        );
    }
}
