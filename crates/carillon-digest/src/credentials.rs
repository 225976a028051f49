//! Digest credentials: the value of `Authorization` / `Proxy-Authorization`
//! (RFC 3261 §22.4 and §25.1 `digest-response`, RFC 2617 §3.2.2).
//!
//! Owns parsing (zero-copy unless a quoted-string had escapes) and writing.
//! Does not own checking the response (see `server` and `response`).

use std::borrow::Cow;
use std::fmt;

use crate::algorithm::{nc_hex, Algorithm};
use crate::challenge::set_once;
use crate::params::{strip_digest_scheme, write_quoted, Params};
use crate::DigestError;

/// Quality of protection chosen by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qop {
    /// `auth`: the response covers nonce, nc and cnonce.
    Auth,
    /// `auth-int`: also covers the body. Parsed, never accepted by our server.
    AuthInt,
}

impl Qop {
    pub fn as_str(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }

    fn parse(value: &str) -> Result<Qop, DigestError> {
        if value.eq_ignore_ascii_case("auth") {
            Ok(Qop::Auth)
        } else if value.eq_ignore_ascii_case("auth-int") {
            Ok(Qop::AuthInt)
        } else {
            Err(DigestError::UnsupportedQop {
                value: value.to_owned(),
            })
        }
    }
}

/// Parsed Digest credentials. Strings borrow from the header value when they
/// needed no unescaping.
///
/// When `qop` is present, `cnonce` and `nc` are too (the parser enforces it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials<'a> {
    pub username: Cow<'a, str>,
    pub realm: Cow<'a, str>,
    pub nonce: Cow<'a, str>,
    /// The `digest-uri`; the caller compares it with the Request-URI.
    pub uri: Cow<'a, str>,
    /// The `request-digest`, hex as received.
    pub response: Cow<'a, str>,
    pub algorithm: Algorithm,
    pub cnonce: Option<Cow<'a, str>>,
    pub nc: Option<u32>,
    pub qop: Option<Qop>,
    pub opaque: Option<Cow<'a, str>>,
}

impl<'a> Credentials<'a> {
    /// Parses an `Authorization` / `Proxy-Authorization` value.
    ///
    /// Parameter names are case-insensitive, unknown parameters are ignored,
    /// known ones may appear once. Never panics.
    pub fn parse(header_value: &'a str) -> Result<Credentials<'a>, DigestError> {
        let list = strip_digest_scheme(header_value)?;
        let mut username = None;
        let mut realm = None;
        let mut nonce = None;
        let mut uri = None;
        let mut response = None;
        let mut algorithm = None;
        let mut cnonce = None;
        let mut nc = None;
        let mut qop = None;
        let mut opaque = None;
        for param in Params::new(list) {
            let (name, value) = param?;
            let is = |n: &str| name.eq_ignore_ascii_case(n);
            if is("username") {
                set_once(&mut username, value, "username")?;
            } else if is("realm") {
                set_once(&mut realm, value, "realm")?;
            } else if is("nonce") {
                set_once(&mut nonce, value, "nonce")?;
            } else if is("uri") {
                set_once(&mut uri, value, "uri")?;
            } else if is("response") {
                set_once(&mut response, value, "response")?;
            } else if is("algorithm") {
                set_once(&mut algorithm, Algorithm::parse(&value)?, "algorithm")?;
            } else if is("cnonce") {
                set_once(&mut cnonce, value, "cnonce")?;
            } else if is("nc") {
                set_once(&mut nc, parse_nc(&value)?, "nc")?;
            } else if is("qop") {
                set_once(&mut qop, Qop::parse(&value)?, "qop")?;
            } else if is("opaque") {
                set_once(&mut opaque, value, "opaque")?;
            }
        }
        if qop.is_some() {
            if cnonce.is_none() {
                return Err(DigestError::MissingParam { name: "cnonce" });
            }
            if nc.is_none() {
                return Err(DigestError::MissingParam { name: "nc" });
            }
        }
        Ok(Credentials {
            username: username.ok_or(DigestError::MissingParam { name: "username" })?,
            realm: realm.ok_or(DigestError::MissingParam { name: "realm" })?,
            nonce: nonce.ok_or(DigestError::MissingParam { name: "nonce" })?,
            uri: uri.ok_or(DigestError::MissingParam { name: "uri" })?,
            response: response.ok_or(DigestError::MissingParam { name: "response" })?,
            algorithm: algorithm.unwrap_or_default(),
            cnonce,
            nc,
            qop,
            opaque,
        })
    }

    /// The header value, e.g. `Digest username="…", realm="…", …`.
    pub fn to_header_value(&self) -> String {
        self.to_string()
    }

    /// Copies every borrowed string so the credentials outlive the header.
    pub fn into_owned(self) -> Credentials<'static> {
        Credentials {
            username: Cow::Owned(self.username.into_owned()),
            realm: Cow::Owned(self.realm.into_owned()),
            nonce: Cow::Owned(self.nonce.into_owned()),
            uri: Cow::Owned(self.uri.into_owned()),
            response: Cow::Owned(self.response.into_owned()),
            algorithm: self.algorithm,
            cnonce: self.cnonce.map(|c| Cow::Owned(c.into_owned())),
            nc: self.nc,
            qop: self.qop,
            opaque: self.opaque.map(|o| Cow::Owned(o.into_owned())),
        }
    }
}

/// `nc-value = 8LHEX` (RFC 2617 §3.2.2); upper case is tolerated.
fn parse_nc(value: &str) -> Result<u32, DigestError> {
    let bad = || DigestError::BadNonceCount {
        value: value.chars().take(16).collect(),
    };
    if value.len() != 8 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    u32::from_str_radix(value, 16).map_err(|_| bad())
}

impl fmt::Display for Credentials<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(
            160 + self.username.len() + self.realm.len() + self.nonce.len() + self.uri.len(),
        );
        s.push_str("Digest username=");
        write_quoted(&mut s, &self.username);
        s.push_str(", realm=");
        write_quoted(&mut s, &self.realm);
        s.push_str(", nonce=");
        write_quoted(&mut s, &self.nonce);
        s.push_str(", uri=");
        write_quoted(&mut s, &self.uri);
        s.push_str(", response=");
        write_quoted(&mut s, &self.response);
        s.push_str(", algorithm=");
        s.push_str(self.algorithm.as_str());
        if let Some(cnonce) = &self.cnonce {
            s.push_str(", cnonce=");
            write_quoted(&mut s, cnonce);
        }
        if let Some(qop) = self.qop {
            s.push_str(", qop=");
            s.push_str(qop.as_str());
        }
        if let Some(nc) = self.nc {
            s.push_str(", nc=");
            for b in nc_hex(nc) {
                s.push(char::from(b));
            }
        }
        if let Some(opaque) = &self.opaque {
            s.push_str(", opaque=");
            write_quoted(&mut s, opaque);
        }
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC2617: &str = "Digest username=\"Mufasa\",\n                 realm=\"testrealm@host.com\",\n                 nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\n                 uri=\"/dir/index.html\",\n                 qop=auth,\n                 nc=00000001,\n                 cnonce=\"0a4f113b\",\n                 response=\"6629fae49393a05397450978507c4ef1\",\n                 opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";

    #[test]
    fn rfc2617_example_credentials_parse_with_every_field() {
        let c = Credentials::parse(RFC2617).unwrap();
        assert_eq!(c.username, "Mufasa");
        assert_eq!(c.realm, "testrealm@host.com");
        assert_eq!(c.nonce, "dcd98b7102dd2f0e8b11d0f600bfb0c093");
        assert_eq!(c.uri, "/dir/index.html");
        assert_eq!(c.qop, Some(Qop::Auth));
        assert_eq!(c.nc, Some(1));
        assert_eq!(c.cnonce.as_deref(), Some("0a4f113b"));
        assert_eq!(c.response, "6629fae49393a05397450978507c4ef1");
        assert_eq!(
            c.opaque.as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );
        assert_eq!(c.algorithm, Algorithm::Md5);
    }

    #[test]
    fn folded_crlf_whitespace_tabs_and_mixed_case_names_are_tolerated() {
        let v =
            "  digest\tUserName = \"alice\" ,\r\n\tREALM=\"r\",NONCE=\"n\" ,\r\n   Uri=\"sip:r\",\
                 Response = \"abcd\",Algorithm=sha-256 , QOP=\"auth\",NC=0000000A,CNonce=\"c\",\
                 x-unknown=\"ignored, really\", other=tok";
        let c = Credentials::parse(v).unwrap();
        assert_eq!(c.username, "alice");
        assert_eq!(c.realm, "r");
        assert_eq!(c.uri, "sip:r");
        assert_eq!(c.algorithm, Algorithm::Sha256);
        assert_eq!(c.qop, Some(Qop::Auth));
        assert_eq!(c.nc, Some(10));
    }

    #[test]
    fn escaped_quotes_in_username_are_unescaped() {
        let v = r#"Digest username="a\"b\\c", realm="r", nonce="n", uri="u", response="x""#;
        let c = Credentials::parse(v).unwrap();
        assert_eq!(c.username, "a\"b\\c");
    }

    #[test]
    fn other_schemes_are_refused() {
        assert_eq!(
            Credentials::parse("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            Err(DigestError::NotDigest)
        );
        assert_eq!(Credentials::parse(""), Err(DigestError::NotDigest));
    }

    #[test]
    fn each_required_parameter_is_reported_when_missing() {
        let full = [
            ("username", "username=\"u\""),
            ("realm", "realm=\"r\""),
            ("nonce", "nonce=\"n\""),
            ("uri", "uri=\"x\""),
            ("response", "response=\"y\""),
        ];
        for (skip, _) in full {
            let list: Vec<&str> = full
                .iter()
                .filter(|(n, _)| *n != skip)
                .map(|(_, p)| *p)
                .collect();
            let v = format!("Digest {}", list.join(", "));
            assert_eq!(
                Credentials::parse(&v),
                Err(DigestError::MissingParam { name: skip }),
                "{v}"
            );
        }
    }

    #[test]
    fn qop_without_cnonce_or_nc_is_refused() {
        let base = r#"Digest username="u", realm="r", nonce="n", uri="x", response="y", qop=auth"#;
        assert_eq!(
            Credentials::parse(&format!("{base}, nc=00000001")),
            Err(DigestError::MissingParam { name: "cnonce" })
        );
        assert_eq!(
            Credentials::parse(&format!("{base}, cnonce=\"c\"")),
            Err(DigestError::MissingParam { name: "nc" })
        );
    }

    #[test]
    fn nonce_count_must_be_exactly_eight_hex_digits() {
        for bad in ["1", "000000001", "0000000g", "+0000001", "-0000001", "\"\""] {
            let v = format!(
                r#"Digest username="u", realm="r", nonce="n", uri="x", response="y", nc={bad}"#
            );
            assert!(
                matches!(
                    Credentials::parse(&v),
                    Err(DigestError::BadNonceCount { .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(parse_nc("ffffffff"), Ok(u32::MAX));
    }

    #[test]
    fn duplicate_known_parameters_are_refused() {
        let v = r#"Digest username="u", username="v", realm="r", nonce="n", uri="x", response="y""#;
        assert_eq!(
            Credentials::parse(v),
            Err(DigestError::DuplicateParam { name: "username" })
        );
    }

    #[test]
    fn unknown_algorithm_and_qop_are_typed_errors() {
        let base = r#"Digest username="u", realm="r", nonce="n", uri="x", response="y""#;
        assert!(matches!(
            Credentials::parse(&format!("{base}, algorithm=SHA-512-256")),
            Err(DigestError::UnsupportedAlgorithm { .. })
        ));
        assert!(matches!(
            Credentials::parse(&format!("{base}, qop=foo, nc=00000001, cnonce=\"c\"")),
            Err(DigestError::UnsupportedQop { .. })
        ));
    }

    #[test]
    fn written_credentials_parse_back_to_the_same_value() {
        let c = Credentials::parse(RFC2617).unwrap();
        let again = c.to_header_value();
        assert_eq!(Credentials::parse(&again).unwrap(), c);
    }

    #[test]
    fn owned_credentials_equal_the_borrowed_ones() {
        let c = Credentials::parse(RFC2617).unwrap();
        assert_eq!(c.clone().into_owned(), c);
    }
}
