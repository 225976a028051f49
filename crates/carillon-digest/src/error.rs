//! Errors from parsing Digest challenges and credentials (RFC 3261 §25.1
//! grammar for `challenge` and `credentials`, RFC 2617 §3.2).
//!
//! Owns only the parse errors; verification outcomes are
//! [`crate::AuthResult`] values, not errors.

use thiserror::Error;

/// Why a `WWW-Authenticate` or `Authorization` header value was rejected.
///
/// A server usually answers any of these with 400 Bad Request or simply with
/// a fresh challenge; the caller decides.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DigestError {
    /// The value does not start with the `Digest` auth-scheme.
    #[error("authentication scheme is not Digest")]
    NotDigest,
    /// A parameter required by the grammar is absent.
    #[error("missing Digest parameter `{name}`")]
    MissingParam { name: &'static str },
    /// A known parameter appears more than once.
    #[error("Digest parameter `{name}` appears more than once")]
    DuplicateParam { name: &'static str },
    /// `nc` is not exactly eight hexadecimal digits.
    #[error("nonce-count `{value}` is not 8 hex digits")]
    BadNonceCount { value: String },
    /// `algorithm` names something other than MD5 or SHA-256.
    #[error("unsupported Digest algorithm `{value}`")]
    UnsupportedAlgorithm { value: String },
    /// `qop` is not `auth`/`auth-int` (credentials), or a challenge offers no
    /// `auth`.
    #[error("unsupported quality of protection `{value}`")]
    UnsupportedQop { value: String },
    /// A quoted-string has no closing quote.
    #[error("unterminated quoted-string")]
    UnterminatedQuote,
    /// The parameter list does not follow `name = value *( , name = value )`.
    #[error("Digest parameter syntax error at byte {at}: expected {expected}")]
    Syntax { at: usize, expected: &'static str },
}
