//! Client side: answering a 401/407 challenge with `Authorization` /
//! `Proxy-Authorization` (RFC 3261 §22.2–22.3, RFC 2617 §3.2.2).
//!
//! Owns building the credentials; the caller owns choosing the challenge
//! ([`crate::Challenge::preferred`]), the cnonce (from its seeded RNG) and
//! counting `nc` per nonce.

use std::borrow::Cow;

use crate::credentials::{Credentials, Qop};
use crate::response::{ha1_hex, response_hex, QopAuth};
use crate::Challenge;

/// Builds the `Authorization` header value answering `challenge`.
///
/// Uses `qop=auth` with `cnonce` and `nc` when the challenge offers it, and
/// the RFC 2069 form (no cnonce, no nc) otherwise. `opaque` is echoed.
pub fn respond(
    challenge: &Challenge,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> String {
    let alg = challenge.algorithm;
    let ha1 = ha1_hex(alg, username, &challenge.realm, password);
    let qop = challenge.qop_auth.then_some(QopAuth { cnonce, nc });
    let digest = response_hex(alg, ha1.as_bytes(), &challenge.nonce, qop, method, uri);
    Credentials {
        username: Cow::Borrowed(username),
        realm: Cow::Borrowed(&challenge.realm),
        nonce: Cow::Borrowed(&challenge.nonce),
        uri: Cow::Borrowed(uri),
        response: Cow::Borrowed(digest.as_str()),
        algorithm: alg,
        cnonce: qop.map(|q| Cow::Borrowed(q.cnonce)),
        nc: qop.map(|q| q.nc),
        qop: qop.map(|_| Qop::Auth),
        opaque: challenge.opaque.as_deref().map(Cow::Borrowed),
    }
    .to_header_value()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Algorithm;

    #[test]
    fn response_to_rfc2617_challenge_matches_the_rfc_example() {
        let c = Challenge {
            realm: "testrealm@host.com".into(),
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
            algorithm: Algorithm::Md5,
            opaque: Some("5ccc069c403ebaf9f0171e9517f40e41".into()),
            stale: false,
            qop_auth: true,
        };
        let v = respond(
            &c,
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle Of Life",
            "0a4f113b",
            1,
        );
        let creds = Credentials::parse(&v).unwrap();
        assert_eq!(creds.response, "6629fae49393a05397450978507c4ef1");
        assert_eq!(creds.opaque.as_deref(), c.opaque.as_deref());
        assert_eq!(creds.qop, Some(Qop::Auth));
        assert!(v.contains("nc=00000001"));
    }

    #[test]
    fn response_without_offered_qop_omits_cnonce_and_nc() {
        let c = Challenge {
            realm: "r".into(),
            nonce: "n".into(),
            algorithm: Algorithm::Sha256,
            opaque: None,
            stale: false,
            qop_auth: false,
        };
        let v = respond(&c, "REGISTER", "sip:r", "u", "p", "cn", 7);
        let creds = Credentials::parse(&v).unwrap();
        assert_eq!(creds.qop, None);
        assert_eq!(creds.cnonce, None);
        assert_eq!(creds.nc, None);
        assert_eq!(creds.algorithm, Algorithm::Sha256);
        assert_eq!(creds.response.len(), 64);
    }
}
