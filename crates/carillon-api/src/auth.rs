//! Tokens and roles: who may call what. Owns the [`Role`] order
//! (read-only < supervisor < admin), the token table and the [`Caller`]
//! extractor that turns an `Authorization: Bearer` header into a role or
//! a 401. Secrets are compared in constant time and never printed (the
//! `Debug` of a token hides it); routes check the role they need with
//! [`Caller::require`].

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};

use crate::error::ApiError;
use crate::ApiState;

/// What a token may do; each role includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads: registrations, CDRs, callbacks, events, metrics.
    ReadOnly,
    /// Also the recordings (listing and download).
    Supervisor,
    /// Everything: deleting recordings, reloading the configuration.
    Admin,
}

impl Role {
    /// The configuration's name of a role (`read-only`, `supervisor`,
    /// `admin`).
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "read-only" | "readonly" | "read_only" => Some(Role::ReadOnly),
            "supervisor" => Some(Role::Supervisor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::ReadOnly => "read-only",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }
}

/// One configured token.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// A label for logs (`crm`, `wallboard`); never the secret.
    pub name: String,
    pub secret: String,
    pub role: Role,
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiToken")
            .field("name", &self.name)
            .field("secret", &"***")
            .field("role", &self.role)
            .finish()
    }
}

/// Equal bytes, compared without an early exit (the length may leak).
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token of `secret`, if configured.
pub fn find<'a>(tokens: &'a [ApiToken], secret: &str) -> Option<&'a ApiToken> {
    let mut found = None;
    // Every token is compared, so the time does not say which matched.
    for t in tokens {
        if same(t.secret.as_bytes(), secret.as_bytes()) && found.is_none() {
            found = Some(t);
        }
    }
    found
}

/// The authenticated caller of a request: its token's name and role.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// `Ok` if the caller's role is at least `needed`, else 403.
    pub fn require(&self, needed: Role) -> Result<(), ApiError> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                needed: needed.as_str(),
                has: self.role.as_str(),
            })
        }
    }
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let secret = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .ok_or(ApiError::Unauthorized)?;
        let tokens = state.tokens();
        let token = find(&tokens, secret).ok_or(ApiError::Unauthorized)?;
        Ok(Caller {
            name: token.name.clone(),
            role: token.role,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_parsed_from_their_config_names() {
        assert!(Role::ReadOnly < Role::Supervisor && Role::Supervisor < Role::Admin);
        assert_eq!(Role::parse("read-only"), Some(Role::ReadOnly));
        assert_eq!(Role::parse("admin"), Some(Role::Admin));
        assert_eq!(Role::parse("root"), None);
        let c = Caller {
            name: "x".into(),
            role: Role::Supervisor,
        };
        assert!(c.require(Role::ReadOnly).is_ok());
        assert!(matches!(
            c.require(Role::Admin),
            Err(ApiError::Forbidden {
                needed: "admin",
                has: "supervisor"
            })
        ));
    }

    #[test]
    fn a_token_is_found_only_by_its_exact_secret_and_never_printed() {
        let tokens = vec![ApiToken {
            name: "crm".into(),
            secret: "s3cret-token".into(),
            role: Role::ReadOnly,
        }];
        assert_eq!(
            find(&tokens, "s3cret-token").map(|t| t.role),
            Some(Role::ReadOnly)
        );
        assert!(find(&tokens, "s3cret-tokeN").is_none());
        assert!(find(&tokens, "s3cret").is_none());
        assert!(!format!("{:?}", tokens[0]).contains("s3cret"));
    }
}
