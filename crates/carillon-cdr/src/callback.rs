//! The [`CallbackRequest`]: a caller's request to be called back, as the
//! dialplan captured it (caller id, number, alternative number, language,
//! time).
//!
//! Owns: the plain-data record and its serialized form (JSON for the store's
//! spool and the API). Does not own: where it is stored (the
//! `callback_requests` table in `carillon-store`) nor its later status
//! (`pending`, …), which belongs to the store.

use serde::{Deserialize, Serialize};

/// One callback request left by a caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackRequest {
    /// Uniqueid of the channel that captured the request (links it to the
    /// call's [`crate::CallRecord`]).
    pub uniqueid: String,
    /// Caller id number of the caller.
    pub caller_num: String,
    /// The number to call back.
    pub number: String,
    /// A second number to try, if the caller gave one.
    #[serde(default)]
    pub alt_number: Option<String>,
    /// The caller's language (e.g. `en`, `ar`), for the agent and prompts.
    pub language: String,
    /// When the request was made, unix milliseconds.
    pub requested_at: i64,
    /// Dialplan context the request was captured in, if known.
    #[serde(default)]
    pub context: Option<String>,
    /// Extension the request was captured at, if known.
    #[serde(default)]
    pub exten: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_request_survives_a_json_round_trip_and_optional_fields_default() {
        let r = CallbackRequest {
            uniqueid: "1765000000.7".into(),
            caller_num: "100".into(),
            number: "0551234567".into(),
            alt_number: Some("0667654321".into()),
            language: "ar".into(),
            requested_at: 1_765_000_000_123,
            context: Some("ivr".into()),
            exten: Some("s".into()),
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<CallbackRequest>(&json).unwrap(), r);
        let minimal: CallbackRequest = serde_json::from_str(
            r#"{"uniqueid":"u","caller_num":"1","number":"2","language":"en","requested_at":5}"#,
        )
        .unwrap();
        assert_eq!(minimal.alt_number, None);
        assert_eq!(minimal.context, None);
        assert_eq!(minimal.exten, None);
    }
}
