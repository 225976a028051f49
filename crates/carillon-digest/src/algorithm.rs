//! Digest hash algorithms (RFC 7616 §3.2, RFC 8760 §2.1) and allocation-free
//! hashing into lowercase hex held on the stack.
//!
//! Owns the `algorithm` token, the hash functions and hex encoding; does not
//! own what is hashed (see `response`).

use std::fmt;
use std::str::FromStr;

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::DigestError;

/// A Digest `algorithm` parameter value.
///
/// Absent in a header means [`Algorithm::Md5`] (RFC 2617 §3.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// `MD5` (RFC 2617).
    #[default]
    Md5,
    /// `SHA-256` (RFC 7616, RFC 8760).
    Sha256,
}

impl Algorithm {
    /// The token as written in headers: `MD5` or `SHA-256`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Parses the token case-insensitively.
    pub fn parse(token: &str) -> Result<Algorithm, DigestError> {
        if token.eq_ignore_ascii_case("MD5") {
            Ok(Algorithm::Md5)
        } else if token.eq_ignore_ascii_case("SHA-256") {
            Ok(Algorithm::Sha256)
        } else {
            Err(DigestError::UnsupportedAlgorithm {
                value: token.to_owned(),
            })
        }
    }

    /// Length of the lowercase-hex digest: 32 for MD5, 64 for SHA-256.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 => 32,
            Algorithm::Sha256 => 64,
        }
    }

    /// Higher is preferred when a client picks among several challenges
    /// (RFC 8760 §2.4: SHA-256 over MD5).
    pub(crate) fn preference(self) -> u8 {
        match self {
            Algorithm::Md5 => 0,
            Algorithm::Sha256 => 1,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::parse(s)
    }
}

/// A running hash for one [`Algorithm`].
pub(crate) enum Hasher {
    Md5(Md5),
    Sha256(Sha256),
}

impl Hasher {
    pub(crate) fn new(alg: Algorithm) -> Hasher {
        match alg {
            Algorithm::Md5 => Hasher::Md5(Md5::new()),
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) -> &mut Self {
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
        }
        self
    }

    /// Feeds `parts` separated by `:`.
    pub(crate) fn update_joined(&mut self, parts: &[&[u8]]) -> &mut Self {
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                self.update(b":");
            }
            self.update(part);
        }
        self
    }

    pub(crate) fn finalize_hex(self) -> HexDigest {
        match self {
            Hasher::Md5(h) => HexDigest::encode(&h.finalize()),
            Hasher::Sha256(h) => HexDigest::encode(&h.finalize()),
        }
    }
}

/// A lowercase-hex digest of at most 32 bytes, kept on the stack.
#[derive(Clone, Copy)]
pub(crate) struct HexDigest {
    buf: [u8; 64],
    len: usize,
}

impl HexDigest {
    fn encode(bytes: &[u8]) -> HexDigest {
        let mut out = HexDigest {
            buf: [0; 64],
            len: 0,
        };
        for (pair, byte) in out.buf.chunks_exact_mut(2).zip(bytes) {
            pair.copy_from_slice(&hex_pair(*byte));
            out.len += 2;
        }
        out
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Two lowercase hex digits for one byte.
pub(crate) fn hex_pair(byte: u8) -> [u8; 2] {
    [HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0x0f)]]
}

/// `nc` as eight lowercase hex digits (RFC 2617 §3.2.2 `nc-value`).
pub(crate) fn nc_hex(nc: u32) -> [u8; 8] {
    let b = nc.to_be_bytes();
    let mut out = [0u8; 8];
    for (pair, byte) in out.chunks_exact_mut(2).zip(b) {
        pair.copy_from_slice(&hex_pair(byte));
    }
    out
}

/// Compares a computed lowercase-hex digest with a received one in time
/// independent of where they differ. The received side is compared
/// case-insensitively. Lengths are public (they follow from the algorithm).
pub(crate) fn ct_eq_hex(computed: &[u8], received: &[u8]) -> bool {
    if computed.len() != received.len() {
        return false;
    }
    let mut diff = 0u8;
    for (a, b) in computed.iter().zip(received) {
        diff |= a ^ b.to_ascii_lowercase();
    }
    std::hint::black_box(diff) == 0
}

/// Constant-time equality of two byte strings of equal, public length.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_tokens_parse_case_insensitively() {
        assert_eq!(Algorithm::parse("md5"), Ok(Algorithm::Md5));
        assert_eq!(Algorithm::parse("sha-256"), Ok(Algorithm::Sha256));
        assert_eq!(Algorithm::parse("SHA-256"), Ok(Algorithm::Sha256));
        assert!(Algorithm::parse("SHA-512-256").is_err());
        assert!(Algorithm::parse("MD5-sess").is_err());
    }

    #[test]
    fn md5_of_empty_string_is_the_known_digest() {
        let h = Hasher::new(Algorithm::Md5).finalize_hex();
        assert_eq!(h.as_str(), "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[test]
    fn sha256_of_abc_is_the_known_digest() {
        let mut h = Hasher::new(Algorithm::Sha256);
        h.update(b"abc");
        assert_eq!(
            h.finalize_hex().as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn nonce_count_is_eight_lowercase_hex_digits() {
        assert_eq!(&nc_hex(1), b"00000001");
        assert_eq!(&nc_hex(0xdead_beef), b"deadbeef");
    }

    #[test]
    fn hex_comparison_ignores_received_case_but_not_content() {
        assert!(ct_eq_hex(b"abcd", b"ABcd"));
        assert!(!ct_eq_hex(b"abcd", b"abce"));
        assert!(!ct_eq_hex(b"abcd", b"abc"));
    }
}
