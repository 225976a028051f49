//! Query parameters read by hand, so that every bad one is a 422 naming
//! it (axum's `Query` rejection is a plain-text 400 that names nothing).
//! Owns the parsing rules shared by the routes: unknown parameters are
//! refused, numbers must be numbers in range, a repeated parameter is
//! refused.

use std::collections::HashMap;

use crate::error::ApiError;

/// The parameters of one request.
pub struct Params {
    values: HashMap<String, String>,
}

impl Params {
    /// Splits `query` (`a=1&b=x`, percent-decoded) and refuses any name
    /// not in `allowed`, and any given twice.
    pub fn parse(query: Option<&str>, allowed: &[&str]) -> Result<Params, ApiError> {
        let mut values = HashMap::new();
        for (name, value) in form_pairs(query.unwrap_or("")) {
            if !allowed.contains(&name.as_str()) {
                return Err(ApiError::field(
                    name,
                    format!("unknown parameter (known: {})", allowed.join(", ")),
                ));
            }
            if values.insert(name.clone(), value).is_some() {
                return Err(ApiError::field(name, "given more than once"));
            }
        }
        Ok(Params { values })
    }

    /// A non-empty text value.
    pub fn text(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.values.get(name) {
            None => Ok(None),
            Some(v) if v.is_empty() => Err(ApiError::field(name, "empty")),
            Some(v) => Ok(Some(v.clone())),
        }
    }

    /// An integer in `min..=max`.
    pub fn int(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        let Some(v) = self.values.get(name) else {
            return Ok(None);
        };
        let n: i64 = v
            .parse()
            .map_err(|_| ApiError::field(name, format!("{v:?} is not an integer")))?;
        if n < min || n > max {
            return Err(ApiError::field(
                name,
                format!("{n} is out of range ({min} to {max})"),
            ));
        }
        Ok(Some(n))
    }
}

/// `application/x-www-form-urlencoded` pairs (`+` is a space).
fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_decoded_and_unknown_or_repeated_names_are_refused_by_name() {
        let p = Params::parse(
            Some("src=100&disposition=NO+ANSWER&dst=%2B441"),
            &["src", "dst", "disposition"],
        )
        .unwrap();
        assert_eq!(p.text("disposition").unwrap().as_deref(), Some("NO ANSWER"));
        assert_eq!(p.text("dst").unwrap().as_deref(), Some("+441"));
        let e = Params::parse(Some("srcx=1"), &["src"]).err().unwrap();
        assert!(matches!(e, ApiError::BadField { ref field, .. } if field == "srcx"));
        let e = Params::parse(Some("src=1&src=2"), &["src"]).err().unwrap();
        assert!(matches!(e, ApiError::BadField { ref field, .. } if field == "src"));
    }

    #[test]
    fn integers_must_parse_and_lie_in_range() {
        let p = Params::parse(
            Some("limit=0&offset=x&from=5"),
            &["limit", "offset", "from"],
        )
        .unwrap();
        assert!(
            matches!(p.int("limit", 1, 10), Err(ApiError::BadField { ref field, .. }) if field == "limit")
        );
        assert!(
            matches!(p.int("offset", 0, 10), Err(ApiError::BadField { ref field, .. }) if field == "offset")
        );
        assert_eq!(p.int("from", 0, 10).unwrap(), Some(5));
        assert_eq!(p.int("to", 0, 10).unwrap(), None);
    }
}
