//! Property tests: parsers never panic on any input, and what we write parses
//! back to what we wrote.

use carillon_digest::{
    respond, Algorithm, Challenge, Credentials, DigestConfig, DigestServer, NonceSecret, Secret,
};
use proptest::prelude::*;

/// Strings made mostly of the characters that matter to the grammar.
fn digestish() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("Digest ".to_string()),
            Just("username".to_string()),
            Just("nonce".to_string()),
            Just("nc".to_string()),
            Just("qop".to_string()),
            Just("=".to_string()),
            Just(",".to_string()),
            Just("\"".to_string()),
            Just("\\".to_string()),
            Just("\r\n ".to_string()),
            Just("auth".to_string()),
            "[0-9a-fA-F]{0,9}",
            "\\PC{0,4}",
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

fn server() -> DigestServer {
    DigestServer::new(DigestConfig {
        realm: "r".into(),
        lifetime_secs: 60,
        algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
        key: [3; 32],
        require_qop: false,
        counter_capacity: 16,
    })
    .unwrap()
}

proptest! {
    #[test]
    fn parsing_arbitrary_strings_never_panics(s in any::<String>()) {
        let _ = Credentials::parse(&s);
        let _ = Challenge::parse(&s);
        let _ = NonceSecret::new([0; 32], 10).check(&s, 0);
    }

    #[test]
    fn parsing_and_verifying_grammar_shaped_strings_never_panics(s in digestish()) {
        let _ = Challenge::parse(&s);
        if let Ok(creds) = Credentials::parse(&s) {
            let mut srv = server();
            let _ = srv.verify(0, "REGISTER", &creds, Secret::Password("p"));
            let _ = srv.verify(0, "REGISTER", &creds, Secret::Ha1(&s));
            let _ = srv.verify_unknown_user(0, "REGISTER", &creds);
        }
    }

    #[test]
    fn client_answers_parse_back_with_the_same_fields(
        user in "\\PC{1,16}",
        uri in "\\PC{1,24}",
        cnonce in "\\PC{1,12}",
        nc in 1u32..,
        sha in any::<bool>(),
        random in any::<u64>(),
    ) {
        let mut srv = server();
        let alg = if sha { Algorithm::Sha256 } else { Algorithm::Md5 };
        let challenge = srv
            .challenges(100, random, false)
            .into_iter()
            .find(|c| c.algorithm == alg)
            .unwrap();
        let header = respond(&challenge, "REGISTER", &uri, &user, "pw", &cnonce, nc);
        let creds = Credentials::parse(&header).unwrap();
        // CR and LF cannot be carried in a quoted-string and are dropped.
        let strip = |s: &str| s.replace(['\r', '\n'], "");
        prop_assert_eq!(&*creds.username, strip(&user));
        prop_assert_eq!(&*creds.uri, strip(&uri));
        let want_cnonce = strip(&cnonce);
        prop_assert_eq!(creds.cnonce.as_deref(), Some(want_cnonce.as_str()));
        prop_assert_eq!(creds.nc, Some(nc));
        prop_assert_eq!(creds.algorithm, alg);
        if !user.contains(['\r', '\n']) && !uri.contains(['\r', '\n']) && !cnonce.contains(['\r', '\n']) {
            prop_assert_eq!(
                srv.verify(100, "REGISTER", &creds, Secret::Password("pw")),
                carillon_digest::AuthResult::Ok
            );
        }
    }
}
