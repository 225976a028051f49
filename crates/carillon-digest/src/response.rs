//! The Digest `request-digest` computation (RFC 2617 §3.2.2.1–3.2.2.3,
//! RFC 7616 §3.4.1, RFC 3261 §22.4).
//!
//! ```text
//! HA1      = H(username ":" realm ":" password)
//! HA2      = H(method ":" digest-uri)
//! qop=auth : response = H(HA1 ":" nonce ":" nc ":" cnonce ":" "auth" ":" HA2)
//! no qop   : response = H(HA1 ":" nonce ":" HA2)        (RFC 2069)
//! ```
//!
//! Owns hashing and the constant-time comparison; hashes are hex-encoded
//! into stack buffers. Does not own `-sess` algorithms or `auth-int`.

use crate::algorithm::{ct_eq_hex, nc_hex, Algorithm, Hasher, HexDigest};

/// The `qop=auth` inputs of a response: the client nonce and nonce-count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QopAuth<'a> {
    pub cnonce: &'a str,
    pub nc: u32,
}

/// `HA1 = H(username:realm:password)` in lowercase hex. Servers may store it
/// per user and algorithm instead of the password.
pub fn ha1(alg: Algorithm, username: &str, realm: &str, password: &str) -> String {
    ha1_hex(alg, username, realm, password).as_str().to_owned()
}

pub(crate) fn ha1_hex(alg: Algorithm, username: &str, realm: &str, password: &str) -> HexDigest {
    let mut h = Hasher::new(alg);
    h.update_joined(&[username.as_bytes(), realm.as_bytes(), password.as_bytes()]);
    h.finalize_hex()
}

/// The `response` value for the given HA1 (lowercase hex), with `qop=auth`
/// when `qop` is given and in RFC 2069 form otherwise.
pub fn response(
    alg: Algorithm,
    ha1: &str,
    nonce: &str,
    qop: Option<QopAuth<'_>>,
    method: &str,
    uri: &str,
) -> String {
    response_hex(alg, ha1.as_bytes(), nonce, qop, method, uri)
        .as_str()
        .to_owned()
}

pub(crate) fn response_hex(
    alg: Algorithm,
    ha1: &[u8],
    nonce: &str,
    qop: Option<QopAuth<'_>>,
    method: &str,
    uri: &str,
) -> HexDigest {
    let mut h2 = Hasher::new(alg);
    h2.update_joined(&[method.as_bytes(), uri.as_bytes()]);
    let ha2 = h2.finalize_hex();

    let mut h = Hasher::new(alg);
    match qop {
        Some(QopAuth { cnonce, nc }) => {
            let nc = nc_hex(nc);
            h.update_joined(&[
                ha1,
                nonce.as_bytes(),
                &nc,
                cnonce.as_bytes(),
                b"auth",
                ha2.as_bytes(),
            ]);
        }
        None => {
            h.update_joined(&[ha1, nonce.as_bytes(), ha2.as_bytes()]);
        }
    }
    h.finalize_hex()
}

/// Checks a received `response` against the expected one in constant time
/// (hex compared case-insensitively).
pub fn verify_response(
    alg: Algorithm,
    ha1: &str,
    nonce: &str,
    qop: Option<QopAuth<'_>>,
    method: &str,
    uri: &str,
    received: &str,
) -> bool {
    let expected = response_hex(alg, ha1.as_bytes(), nonce, qop, method, uri);
    ct_eq_hex(expected.as_bytes(), received.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_section_3_5_example_reproduces_its_response() {
        let ha1 = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        let qop = QopAuth {
            cnonce: "0a4f113b",
            nc: 1,
        };
        let r = response(
            Algorithm::Md5,
            &ha1,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            Some(qop),
            "GET",
            "/dir/index.html",
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    const RFC7616_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const RFC7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    fn rfc7616(alg: Algorithm) -> String {
        let ha1 = ha1(alg, "Mufasa", "http-auth@example.org", "Circle of Life");
        response(
            alg,
            &ha1,
            RFC7616_NONCE,
            Some(QopAuth {
                cnonce: RFC7616_CNONCE,
                nc: 1,
            }),
            "GET",
            "/dir/index.html",
        )
    }

    #[test]
    fn rfc7616_section_3_9_1_sha256_example_reproduces_its_response() {
        assert_eq!(
            rfc7616(Algorithm::Sha256),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn rfc7616_section_3_9_1_md5_example_reproduces_its_response() {
        assert_eq!(rfc7616(Algorithm::Md5), "8ca523f5e9506fed4657c9700eebdbec");
    }

    #[test]
    fn rfc2069_response_without_qop_differs_from_qop_auth_and_verifies() {
        let ha1 = ha1(Algorithm::Md5, "u", "r", "p");
        let plain = response(Algorithm::Md5, &ha1, "n", None, "REGISTER", "sip:r");
        let with_qop = response(
            Algorithm::Md5,
            &ha1,
            "n",
            Some(QopAuth { cnonce: "c", nc: 1 }),
            "REGISTER",
            "sip:r",
        );
        assert_ne!(plain, with_qop);
        assert!(verify_response(
            Algorithm::Md5,
            &ha1,
            "n",
            None,
            "REGISTER",
            "sip:r",
            &plain.to_uppercase()
        ));
        assert!(!verify_response(
            Algorithm::Md5,
            &ha1,
            "n",
            None,
            "INVITE",
            "sip:r",
            &plain
        ));
    }
}
