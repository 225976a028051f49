//! Digest challenges: the value of `WWW-Authenticate` / `Proxy-Authenticate`
//! (RFC 3261 §22.4 and §25.1 `digest-cln`, RFC 2617 §3.2.1, RFC 8760 §2.3).
//!
//! Owns writing the challenges our server sends and parsing the ones carriers
//! send to our trunks. Does not own nonce generation (see `nonce`).

use std::fmt;

use crate::algorithm::Algorithm;
use crate::params::{strip_digest_scheme, write_quoted, Params};
use crate::DigestError;

/// One Digest challenge.
///
/// Nothing in it depends on who is being challenged: the server builds it
/// from realm, time and randomness only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub algorithm: Algorithm,
    pub opaque: Option<String>,
    /// The previous request had a valid response but an expired nonce.
    pub stale: bool,
    /// `qop="auth"` is offered.
    pub qop_auth: bool,
}

impl Challenge {
    /// The header value, e.g.
    /// `Digest realm="x", nonce="…", algorithm=MD5, qop="auth"`.
    pub fn to_header_value(&self) -> String {
        let mut s = String::with_capacity(value_capacity(&self.realm, &self.nonce));
        write_value(
            &mut s,
            &self.realm,
            &self.nonce,
            self.algorithm,
            self.qop_auth,
            self.stale,
            self.opaque.as_deref(),
        );
        s
    }

    /// Parses a `WWW-Authenticate` / `Proxy-Authenticate` value.
    ///
    /// Tolerates LWS and folding, quoted-string escapes, unknown parameters
    /// (`domain`, `charset`, `userhash`, …) and qop lists such as
    /// `qop="auth,auth-int"`. A qop list without `auth` is refused with
    /// [`DigestError::UnsupportedQop`], since we could not answer it.
    pub fn parse(value: &str) -> Result<Challenge, DigestError> {
        let list = strip_digest_scheme(value)?;
        let mut realm = None;
        let mut nonce = None;
        let mut algorithm = None;
        let mut opaque = None;
        let mut stale = None;
        let mut qop = None;
        for param in Params::new(list) {
            let (name, value) = param?;
            if name.eq_ignore_ascii_case("realm") {
                set_once(&mut realm, value.into_owned(), "realm")?;
            } else if name.eq_ignore_ascii_case("nonce") {
                set_once(&mut nonce, value.into_owned(), "nonce")?;
            } else if name.eq_ignore_ascii_case("algorithm") {
                set_once(&mut algorithm, Algorithm::parse(&value)?, "algorithm")?;
            } else if name.eq_ignore_ascii_case("opaque") {
                set_once(&mut opaque, value.into_owned(), "opaque")?;
            } else if name.eq_ignore_ascii_case("stale") {
                set_once(&mut stale, value.eq_ignore_ascii_case("true"), "stale")?;
            } else if name.eq_ignore_ascii_case("qop") {
                let auth = value
                    .split(',')
                    .any(|v| v.trim_matches([' ', '\t', '\r', '\n']) == "auth");
                if !auth {
                    return Err(DigestError::UnsupportedQop {
                        value: value.into_owned(),
                    });
                }
                set_once(&mut qop, true, "qop")?;
            }
        }
        Ok(Challenge {
            realm: realm.ok_or(DigestError::MissingParam { name: "realm" })?,
            nonce: nonce.ok_or(DigestError::MissingParam { name: "nonce" })?,
            algorithm: algorithm.unwrap_or_default(),
            opaque,
            stale: stale.unwrap_or(false),
            qop_auth: qop.unwrap_or(false),
        })
    }

    /// Picks the challenge a client should answer among several (RFC 8760
    /// §2.4): the strongest algorithm, and the first one among equals.
    pub fn preferred(challenges: &[Challenge]) -> Option<&Challenge> {
        challenges
            .iter()
            .enumerate()
            .max_by_key(|(i, c)| (c.algorithm.preference(), std::cmp::Reverse(*i)))
            .map(|(_, c)| c)
    }
}

pub(crate) fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    name: &'static str,
) -> Result<(), DigestError> {
    if slot.is_some() {
        return Err(DigestError::DuplicateParam { name });
    }
    *slot = Some(value);
    Ok(())
}

/// Appends a challenge's header value to `out` (what [`Challenge`]'s
/// `Display` writes), so a server can write it without a `Challenge`.
pub(crate) fn write_value(
    out: &mut String,
    realm: &str,
    nonce: &str,
    algorithm: Algorithm,
    qop_auth: bool,
    stale: bool,
    opaque: Option<&str>,
) {
    out.push_str("Digest realm=");
    write_quoted(out, realm);
    out.push_str(", nonce=");
    write_quoted(out, nonce);
    out.push_str(", algorithm=");
    out.push_str(algorithm.as_str());
    if qop_auth {
        out.push_str(", qop=\"auth\"");
    }
    if stale {
        out.push_str(", stale=true");
    }
    if let Some(opaque) = opaque {
        out.push_str(", opaque=");
        write_quoted(out, opaque);
    }
}

/// Capacity for [`write_value`]'s output.
pub(crate) fn value_capacity(realm: &str, nonce: &str) -> usize {
    96 + realm.len() + nonce.len()
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_header_value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Challenge {
        Challenge {
            realm: "carillon".into(),
            nonce: "abc123".into(),
            algorithm: Algorithm::Sha256,
            opaque: None,
            stale: false,
            qop_auth: true,
        }
    }

    #[test]
    fn header_value_lists_realm_nonce_algorithm_and_qop() {
        assert_eq!(
            sample().to_header_value(),
            r#"Digest realm="carillon", nonce="abc123", algorithm=SHA-256, qop="auth""#
        );
    }

    #[test]
    fn header_value_adds_stale_and_opaque_when_set() {
        let c = Challenge {
            stale: true,
            opaque: Some("op".into()),
            algorithm: Algorithm::Md5,
            ..sample()
        };
        assert_eq!(
            c.to_header_value(),
            r#"Digest realm="carillon", nonce="abc123", algorithm=MD5, qop="auth", stale=true, opaque="op""#
        );
    }

    #[test]
    fn written_challenges_parse_back_to_the_same_value() {
        let c = Challenge {
            realm: "we \"quote\" \\ here".into(),
            stale: true,
            opaque: Some("o".into()),
            ..sample()
        };
        assert_eq!(Challenge::parse(&c.to_header_value()), Ok(c));
    }

    #[test]
    fn carrier_challenge_with_qop_list_domain_and_folding_parses() {
        let v = "Digest realm=\"sip.carrier.example\",\r\n domain=\"sip:carrier.example\", \
                 nonce=\"4f1a\", opaque=\"xyz\", STALE=TRUE, algorithm=md5,\tqop=\"auth,auth-int\"";
        let c = Challenge::parse(v).unwrap();
        assert_eq!(c.realm, "sip.carrier.example");
        assert_eq!(c.nonce, "4f1a");
        assert_eq!(c.opaque.as_deref(), Some("xyz"));
        assert!(c.stale);
        assert!(c.qop_auth);
        assert_eq!(c.algorithm, Algorithm::Md5);
    }

    #[test]
    fn challenge_without_algorithm_or_qop_means_md5_without_qop() {
        let c = Challenge::parse("Digest realm=\"r\", nonce=\"n\"").unwrap();
        assert_eq!(c.algorithm, Algorithm::Md5);
        assert!(!c.qop_auth);
        assert!(!c.stale);
    }

    #[test]
    fn challenge_offering_only_auth_int_is_refused() {
        assert!(matches!(
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\""),
            Err(DigestError::UnsupportedQop { .. })
        ));
    }

    #[test]
    fn challenge_without_nonce_is_refused() {
        assert_eq!(
            Challenge::parse("Digest realm=\"r\""),
            Err(DigestError::MissingParam { name: "nonce" })
        );
    }

    #[test]
    fn client_prefers_sha256_among_several_challenges() {
        let md5 = Challenge {
            algorithm: Algorithm::Md5,
            ..sample()
        };
        let sha = sample();
        let list = [md5.clone(), sha.clone()];
        assert_eq!(Challenge::preferred(&list), Some(&sha));
        assert_eq!(Challenge::preferred(std::slice::from_ref(&md5)), Some(&md5));
        assert_eq!(Challenge::preferred(&[]), None);
    }
}
