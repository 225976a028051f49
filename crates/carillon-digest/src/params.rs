//! Tokenizer for the `auth-scheme LWS auth-param *(COMMA auth-param)` shape
//! shared by challenges and credentials (RFC 3261 §25.1, RFC 2617 §1.2).
//!
//! Owns: skipping the `Digest` scheme, linear white space (including folded
//! CRLF + WSP), empty list elements, `token` and `quoted-string` values with
//! `quoted-pair` escapes. Values are borrowed from the input unless they
//! contained escapes. Does not own the meaning of any parameter.

use std::borrow::Cow;

use crate::DigestError;

/// Linear white space as we tolerate it: SP, HTAB and the CR/LF of folds.
fn is_lws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Byte classes, one bit each, so that every per-byte test is one load.
const LWS: u8 = 1;
const TOKEN: u8 = 2;
/// What ends an unquoted value: LWS, `,` and `"`.
const VALUE_END: u8 = 4;

const fn class_table() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0usize;
    while i < 256 {
        let b = i as u8;
        let mut bits = 0;
        if matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
            bits |= LWS | VALUE_END;
        }
        if b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            )
        {
            bits |= TOKEN;
        }
        if matches!(b, b',' | b'"') {
            bits |= VALUE_END;
        }
        t[i] = bits;
        i += 1;
    }
    t
}

static CLASS: [u8; 256] = class_table();

#[inline]
fn has_class(b: u8, class: u8) -> bool {
    CLASS[usize::from(b)] & class != 0
}

fn is_lws_byte(b: u8) -> bool {
    has_class(b, LWS)
}

/// RFC 3261 §25.1 `token` characters (all ASCII).
fn is_token_byte(b: u8) -> bool {
    has_class(b, TOKEN)
}

/// Index of the first byte matching `stop`, or the length. The stop set is
/// ASCII, so the index is always a char boundary.
fn find_byte(s: &str, stop: impl Fn(u8) -> bool) -> usize {
    s.bytes().position(stop).unwrap_or(s.len())
}

/// `s` without leading bytes matching `skip` (ASCII only).
fn skip_bytes(s: &str, skip: impl Fn(u8) -> bool) -> &str {
    s.get(find_byte(s, |b| !skip(b))..).unwrap_or("")
}

/// Removes the leading `Digest` auth-scheme (case-insensitive) and returns the
/// parameter list that follows it.
pub(crate) fn strip_digest_scheme(input: &str) -> Result<&str, DigestError> {
    let s = input.trim_start_matches(is_lws);
    let (scheme, rest) = s.split_once(is_lws).unwrap_or((s, ""));
    if scheme.eq_ignore_ascii_case("Digest") {
        Ok(rest)
    } else {
        Err(DigestError::NotDigest)
    }
}

/// Iterator over `(name, value)` pairs; stops after the first error.
pub(crate) struct Params<'a> {
    input: &'a str,
    rest: &'a str,
    failed: bool,
}

impl<'a> Params<'a> {
    pub(crate) fn new(list: &'a str) -> Params<'a> {
        Params {
            input: list,
            rest: list,
            failed: false,
        }
    }

    fn offset(&self) -> usize {
        self.input.len() - self.rest.len()
    }

    fn syntax(&mut self, expected: &'static str) -> DigestError {
        self.failed = true;
        DigestError::Syntax {
            at: self.offset(),
            expected,
        }
    }

    fn skip_lws(&mut self) {
        self.rest = skip_bytes(self.rest, is_lws_byte);
    }

    fn next_param(&mut self) -> Option<Result<(&'a str, Cow<'a, str>), DigestError>> {
        // Tolerate empty list elements (`a=1,,b=2`) and leading commas.
        self.rest = skip_bytes(self.rest, |b| is_lws_byte(b) || b == b',');
        if self.rest.is_empty() {
            return None;
        }
        let name_end = find_byte(self.rest, |b| !is_token_byte(b));
        let Some((name, after)) = split_at_checked(self.rest, name_end) else {
            return Some(Err(self.syntax("parameter name")));
        };
        if name.is_empty() {
            return Some(Err(self.syntax("parameter name")));
        }
        self.rest = after;
        self.skip_lws();
        let Some(after_eq) = self.rest.strip_prefix('=') else {
            return Some(Err(self.syntax("`=`")));
        };
        self.rest = after_eq;
        self.skip_lws();
        let value = if let Some(quoted) = self.rest.strip_prefix('"') {
            match unquote(quoted) {
                Ok((value, after)) => {
                    self.rest = after;
                    value
                }
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        } else {
            let end = find_byte(self.rest, |b| has_class(b, VALUE_END));
            let Some((token, after)) = split_at_checked(self.rest, end) else {
                return Some(Err(self.syntax("parameter value")));
            };
            if token.is_empty() {
                return Some(Err(self.syntax("parameter value")));
            }
            self.rest = after;
            Cow::Borrowed(token)
        };
        self.skip_lws();
        if !self.rest.is_empty() && !self.rest.starts_with(',') {
            return Some(Err(self.syntax("`,` or end of value")));
        }
        Some(Ok((name, value)))
    }
}

impl<'a> Iterator for Params<'a> {
    type Item = Result<(&'a str, Cow<'a, str>), DigestError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        self.next_param()
    }
}

fn split_at_checked(s: &str, mid: usize) -> Option<(&str, &str)> {
    Some((s.get(..mid)?, s.get(mid..)?))
}

/// Parses the body of a quoted-string; `s` starts just after the opening
/// quote. Returns the unescaped content and the input after the closing
/// quote.
fn unquote(s: &str) -> Result<(Cow<'_, str>, &str), DigestError> {
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut escaped = false;
    let mut close = None;
    // Nonces, responses and URIs are long runs with neither `"` nor `\`:
    // memchr2 skips them a vector at a time.
    while let Some(at) = bytes.get(i..).and_then(|b| memchr::memchr2(b'"', b'\\', b)) {
        i += at;
        if bytes.get(i) == Some(&b'"') {
            close = Some(i);
            break;
        }
        // quoted-pair: the next byte is literal. If it starts a multi-byte
        // character, its continuation bytes are never `"` or `\`, so
        // stepping over one byte is enough.
        escaped = true;
        i += 2;
    }
    let close = close.ok_or(DigestError::UnterminatedQuote)?;
    let (Some(inner), Some(after)) = (s.get(..close), s.get(close + 1..)) else {
        return Err(DigestError::UnterminatedQuote);
    };
    if !escaped {
        return Ok((Cow::Borrowed(inner), after));
    }
    let mut out = Vec::with_capacity(inner.len());
    let mut it = inner.bytes();
    while let Some(b) = it.next() {
        if b == b'\\' {
            if let Some(lit) = it.next() {
                out.push(lit);
            }
        } else {
            out.push(b);
        }
    }
    // Removing ASCII backslashes keeps UTF-8 valid; lossy is a no-op here.
    let text = match String::from_utf8(out) {
        Ok(t) => t,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    Ok((Cow::Owned(text), after))
}

/// Writes `s` as a quoted-string, escaping `"` and `\`. CR and LF cannot be
/// carried by a quoted-pair (RFC 3261 §25.1) and are dropped, so a header
/// can never be split by a value.
pub(crate) fn write_quoted(out: &mut String, s: &str) {
    out.push('"');
    if !s.bytes().any(|b| matches!(b, b'"' | b'\\' | b'\r' | b'\n')) {
        // Nothing to escape or drop (nonces, realms): one copy.
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\r' | '\n' => {}
            _ => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(s: &str) -> Result<Vec<(String, String)>, DigestError> {
        Params::new(s)
            .map(|r| r.map(|(n, v)| (n.to_owned(), v.into_owned())))
            .collect()
    }

    #[test]
    fn scheme_is_matched_case_insensitively_and_needs_a_separator() {
        assert_eq!(strip_digest_scheme("  dIgEsT a=1"), Ok("a=1"));
        assert_eq!(strip_digest_scheme("Digest\r\n\ta=1"), Ok("\n\ta=1"));
        assert_eq!(
            strip_digest_scheme("Basic a=1"),
            Err(DigestError::NotDigest)
        );
        assert_eq!(
            strip_digest_scheme("Digesta=1"),
            Err(DigestError::NotDigest)
        );
    }

    #[test]
    fn params_accept_tokens_quoted_strings_and_odd_whitespace() {
        let got = collect("a = 1 ,\r\n  b=\"x y\" ,, c=\"q\\\"uo\\\\te\",").unwrap();
        assert_eq!(
            got,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("c".into(), "q\"uo\\te".into()),
            ]
        );
    }

    #[test]
    fn unescaped_quoted_values_are_borrowed() {
        let mut p = Params::new("a=\"plain\"");
        let (_, v) = p.next().unwrap().unwrap();
        assert!(matches!(v, Cow::Borrowed("plain")));
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        assert_eq!(collect("a=\"abc"), Err(DigestError::UnterminatedQuote));
        assert_eq!(collect("a=\"abc\\\""), Err(DigestError::UnterminatedQuote));
        assert_eq!(collect("a=\"abc\\"), Err(DigestError::UnterminatedQuote));
    }

    #[test]
    fn an_escaped_multibyte_character_is_kept_whole() {
        let got = collect("a=\"x\\é\\\\\", b=1").unwrap();
        assert_eq!(
            got,
            vec![("a".into(), "xé\\".into()), ("b".into(), "1".into())]
        );
    }

    #[test]
    fn missing_equals_or_comma_is_a_syntax_error() {
        assert!(matches!(collect("a 1"), Err(DigestError::Syntax { .. })));
        assert!(matches!(
            collect("a=1 b=2"),
            Err(DigestError::Syntax { .. })
        ));
        assert!(matches!(collect("=1"), Err(DigestError::Syntax { .. })));
        assert!(matches!(collect("a="), Err(DigestError::Syntax { .. })));
    }

    #[test]
    fn quoting_escapes_quotes_and_drops_line_breaks() {
        let mut s = String::new();
        write_quoted(&mut s, "a\"b\\c\r\nd");
        assert_eq!(s, "\"a\\\"b\\\\cd\"");
    }
}
