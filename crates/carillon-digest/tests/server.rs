//! End-to-end behaviour of the server façade with the client side: challenge
//! → respond → parse → verify, for both algorithms, with and without qop.

use carillon_digest::{
    ha1, respond, Algorithm, AuthResult, Challenge, ConfigError, Credentials, DigestConfig,
    DigestServer, Secret,
};

const REALM: &str = "carillon.example";
const T0: u64 = 1_700_000_000;
const LIFETIME: u64 = 300;

fn config() -> DigestConfig {
    DigestConfig {
        realm: REALM.into(),
        lifetime_secs: LIFETIME,
        algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
        key: [0x42; 32],
        require_qop: false,
        counter_capacity: 1024,
    }
}

fn server() -> DigestServer {
    DigestServer::new(config()).unwrap()
}

fn challenge_for(server: &DigestServer, alg: Algorithm, now: u64, random: u64) -> Challenge {
    server
        .challenges(now, random, false)
        .into_iter()
        .find(|c| c.algorithm == alg)
        .unwrap()
}

/// The client's answer to a challenge as it travels on the wire.
fn answer(c: &Challenge, password: &str, nc: u32) -> String {
    let wire = Challenge::parse(&c.to_header_value()).unwrap();
    respond(
        &wire,
        "REGISTER",
        "sip:carillon.example",
        "alice",
        password,
        "c0ffee",
        nc,
    )
}

fn verify(server: &mut DigestServer, now: u64, header: &str, secret: Secret<'_>) -> AuthResult {
    let creds = Credentials::parse(header).unwrap();
    server.verify(now, "REGISTER", &creds, secret)
}

#[test]
fn round_trip_succeeds_for_both_algorithms_with_and_without_qop() {
    for alg in [Algorithm::Md5, Algorithm::Sha256] {
        for qop in [true, false] {
            let mut s = server();
            let mut c = challenge_for(&s, alg, T0, 7);
            c.qop_auth = qop;
            let h = answer(&c, "pw", 1);
            assert_eq!(Credentials::parse(&h).unwrap().qop.is_some(), qop);
            assert_eq!(
                verify(&mut s, T0 + 5, &h, Secret::Password("pw")),
                AuthResult::Ok,
                "{alg} qop={qop}"
            );
        }
    }
}

#[test]
fn cached_ha1_verifies_like_the_password() {
    for alg in [Algorithm::Md5, Algorithm::Sha256] {
        let mut s = server();
        let h = answer(&challenge_for(&s, alg, T0, 1), "pw", 1);
        let cached = ha1(alg, "alice", REALM, "pw");
        assert_eq!(verify(&mut s, T0, &h, Secret::Ha1(&cached)), AuthResult::Ok);
        let other = ha1(alg, "alice", REALM, "nope");
        let h2 = answer(&challenge_for(&s, alg, T0, 2), "pw", 1);
        assert_eq!(
            verify(&mut s, T0, &h2, Secret::Ha1(&other)),
            AuthResult::BadResponse
        );
    }
}

#[test]
fn wrong_password_is_a_bad_response() {
    for alg in [Algorithm::Md5, Algorithm::Sha256] {
        let mut s = server();
        let h = answer(&challenge_for(&s, alg, T0, 1), "guess", 1);
        assert_eq!(
            verify(&mut s, T0, &h, Secret::Password("pw")),
            AuthResult::BadResponse
        );
    }
}

#[test]
fn expired_nonce_with_right_password_is_stale_and_with_wrong_password_is_bad() {
    let mut s = server();
    let c = challenge_for(&s, Algorithm::Sha256, T0, 1);
    let good = answer(&c, "pw", 1);
    let bad = answer(&c, "guess", 1);
    assert_eq!(
        verify(&mut s, T0 + LIFETIME + 1, &bad, Secret::Password("pw")),
        AuthResult::BadResponse
    );
    assert_eq!(
        verify(&mut s, T0 + LIFETIME + 1, &good, Secret::Password("pw")),
        AuthResult::Stale
    );
    // At exactly the lifetime the nonce is still fresh.
    let mut s = server();
    assert_eq!(
        verify(&mut s, T0 + LIFETIME, &good, Secret::Password("pw")),
        AuthResult::Ok
    );
}

#[test]
fn stale_rechallenge_says_stale_and_the_retry_succeeds() {
    let mut s = server();
    let old = answer(&challenge_for(&s, Algorithm::Md5, T0, 1), "pw", 1);
    let now = T0 + 1_000;
    assert_eq!(
        verify(&mut s, now, &old, Secret::Password("pw")),
        AuthResult::Stale
    );
    let again = s.challenges(now, 2, true);
    assert!(again.iter().all(|c| c.stale));
    assert!(again[0].to_header_value().contains("stale=true"));
    let retry = answer(&again[1], "pw", 1);
    assert_eq!(
        verify(&mut s, now, &retry, Secret::Password("pw")),
        AuthResult::Ok
    );
}

#[test]
fn forged_nonce_is_rejected_without_state() {
    let mut s = server();
    let mut c = challenge_for(&s, Algorithm::Md5, T0, 1);
    // The attacker picks a nonce and computes a correct response for it.
    c.nonce = "00000000655be8e6000000000000000100000000000000000000000000000000".into();
    let h = answer(&c, "pw", 1);
    assert_eq!(
        verify(&mut s, T0, &h, Secret::Password("pw")),
        AuthResult::InvalidNonce
    );
    // A nonce from a server with another key is just as invalid.
    let other = DigestServer::new(DigestConfig {
        key: [1; 32],
        ..config()
    })
    .unwrap();
    let h = answer(&challenge_for(&other, Algorithm::Md5, T0, 1), "pw", 1);
    assert_eq!(
        verify(&mut s, T0, &h, Secret::Password("pw")),
        AuthResult::InvalidNonce
    );
}

#[test]
fn replayed_or_lower_nonce_count_is_rejected() {
    let mut s = server();
    let c = challenge_for(&s, Algorithm::Sha256, T0, 1);
    let first = answer(&c, "pw", 1);
    assert_eq!(
        verify(&mut s, T0, &first, Secret::Password("pw")),
        AuthResult::Ok
    );
    assert_eq!(
        verify(&mut s, T0 + 1, &first, Secret::Password("pw")),
        AuthResult::Replay
    );
    let third = answer(&c, "pw", 3);
    assert_eq!(
        verify(&mut s, T0 + 2, &third, Secret::Password("pw")),
        AuthResult::Ok
    );
    let second = answer(&c, "pw", 2);
    assert_eq!(
        verify(&mut s, T0 + 3, &second, Secret::Password("pw")),
        AuthResult::Replay
    );
    assert_eq!(s.tracked_nonces(), 1);
}

#[test]
fn failed_attempts_do_not_consume_nonce_counts() {
    let mut s = server();
    let c = challenge_for(&s, Algorithm::Md5, T0, 1);
    let bad = answer(&c, "guess", 5);
    assert_eq!(
        verify(&mut s, T0, &bad, Secret::Password("pw")),
        AuthResult::BadResponse
    );
    let good = answer(&c, "pw", 1);
    assert_eq!(
        verify(&mut s, T0, &good, Secret::Password("pw")),
        AuthResult::Ok
    );
}

#[test]
fn counter_forgets_nonces_once_they_are_stale() {
    let mut s = server();
    for i in 0..10 {
        let h = answer(&challenge_for(&s, Algorithm::Md5, T0 + i, i), "pw", 1);
        assert_eq!(
            verify(&mut s, T0 + i, &h, Secret::Password("pw")),
            AuthResult::Ok
        );
    }
    assert_eq!(s.tracked_nonces(), 10);
    s.purge(T0 + LIFETIME + 5);
    assert_eq!(s.tracked_nonces(), 5);
    s.purge(T0 + LIFETIME + 100);
    assert_eq!(s.tracked_nonces(), 0);
}

#[test]
fn full_counter_never_lets_an_evicted_nonce_be_replayed() {
    let mut s = DigestServer::new(DigestConfig {
        counter_capacity: 2,
        ..config()
    })
    .unwrap();
    let headers: Vec<String> = (0..3)
        .map(|i| answer(&challenge_for(&s, Algorithm::Md5, T0 + i, i), "pw", 1))
        .collect();
    for (i, h) in headers.iter().enumerate() {
        assert_eq!(
            verify(&mut s, T0 + 3, h, Secret::Password("pw")),
            AuthResult::Ok,
            "{i}"
        );
    }
    assert_eq!(s.tracked_nonces(), 2);
    // The first nonce was evicted: its replay is re-challenged, not accepted.
    assert_eq!(
        verify(&mut s, T0 + 4, &headers[0], Secret::Password("pw")),
        AuthResult::Stale
    );
    assert_eq!(
        verify(&mut s, T0 + 4, &headers[2], Secret::Password("pw")),
        AuthResult::Replay
    );
}

#[test]
fn wrong_realm_is_reported() {
    let mut s = server();
    let mut c = challenge_for(&s, Algorithm::Md5, T0, 1);
    c.realm = "elsewhere".into();
    let h = answer(&c, "pw", 1);
    assert_eq!(
        verify(&mut s, T0, &h, Secret::Password("pw")),
        AuthResult::WrongRealm
    );
}

#[test]
fn algorithm_not_offered_is_refused() {
    let mut s = DigestServer::new(DigestConfig {
        algorithms: vec![Algorithm::Sha256],
        ..config()
    })
    .unwrap();
    let mut c = challenge_for(&s, Algorithm::Sha256, T0, 1);
    c.algorithm = Algorithm::Md5;
    let h = answer(&c, "pw", 1);
    assert_eq!(
        verify(&mut s, T0, &h, Secret::Password("pw")),
        AuthResult::UnsupportedAlgorithm
    );
}

#[test]
fn response_without_qop_is_refused_when_qop_is_required() {
    let mut s = DigestServer::new(DigestConfig {
        require_qop: true,
        ..config()
    })
    .unwrap();
    let mut c = challenge_for(&s, Algorithm::Md5, T0, 1);
    c.qop_auth = false;
    let h = answer(&c, "pw", 1);
    assert_eq!(
        verify(&mut s, T0, &h, Secret::Password("pw")),
        AuthResult::QopRequired
    );
}

#[test]
fn auth_int_is_refused() {
    let mut s = server();
    let c = challenge_for(&s, Algorithm::Md5, T0, 1);
    let h = answer(&c, "pw", 1).replace("qop=auth", "qop=auth-int");
    assert_eq!(
        verify(&mut s, T0, &h, Secret::Password("pw")),
        AuthResult::UnsupportedQop
    );
}

#[test]
fn method_is_covered_by_the_response() {
    let mut s = server();
    let h = answer(&challenge_for(&s, Algorithm::Md5, T0, 1), "pw", 1);
    let creds = Credentials::parse(&h).unwrap();
    assert_eq!(
        s.verify(T0, "INVITE", &creds, Secret::Password("pw")),
        AuthResult::BadResponse
    );
}

#[test]
fn unknown_user_is_never_authenticated_even_with_empty_password() {
    let mut s = server();
    let h = answer(&challenge_for(&s, Algorithm::Md5, T0, 1), "", 1);
    let creds = Credentials::parse(&h).unwrap();
    assert_eq!(
        s.verify_unknown_user(T0, "REGISTER", &creds),
        AuthResult::BadResponse
    );
}

#[test]
fn challenges_follow_the_configured_order_and_share_one_nonce() {
    let s = server();
    let cs = s.challenges(T0, 9, false);
    let algs: Vec<_> = cs.iter().map(|c| c.algorithm).collect();
    assert_eq!(algs, vec![Algorithm::Sha256, Algorithm::Md5]);
    assert_eq!(cs[0].nonce, cs[1].nonce);
    assert!(cs
        .iter()
        .all(|c| c.qop_auth && !c.stale && c.realm == REALM));
    assert_eq!(
        cs[0].to_header_value(),
        format!(
            "Digest realm=\"{REALM}\", nonce=\"{}\", algorithm=SHA-256, qop=\"auth\"",
            cs[0].nonce
        )
    );
}

#[test]
fn challenges_depend_only_on_time_and_randomness() {
    // There is no username input at all; the same inputs give byte-identical
    // challenges, so known and unknown users cannot be told apart.
    let a = server().challenges(T0, 5, false);
    let b = server().challenges(T0, 5, false);
    assert_eq!(a, b);
    assert_ne!(a, server().challenges(T0, 6, false));
}

#[test]
fn invalid_configurations_are_refused() {
    assert_eq!(
        DigestServer::new(DigestConfig {
            algorithms: vec![],
            ..config()
        })
        .err(),
        Some(ConfigError::NoAlgorithms)
    );
    assert_eq!(
        DigestServer::new(DigestConfig {
            counter_capacity: 0,
            ..config()
        })
        .err(),
        Some(ConfigError::ZeroCapacity)
    );
    let dup = DigestServer::new(DigestConfig {
        algorithms: vec![Algorithm::Md5, Algorithm::Md5, Algorithm::Sha256],
        ..config()
    })
    .unwrap();
    assert_eq!(dup.algorithms(), &[Algorithm::Md5, Algorithm::Sha256]);
}

#[test]
fn carrier_style_folded_authorization_verifies() {
    let mut s = server();
    let c = challenge_for(&s, Algorithm::Md5, T0, 3);
    let h = answer(&c, "pw", 1);
    // Re-wrap the value the way odd UAs do: folded lines, tabs, spaces
    // around `=`, upper-case scheme and parameter names.
    let odd = h
        .replacen("Digest ", "DIGEST\r\n\t", 1)
        .replace(", ", " ,\r\n   ")
        .replace("username=", "UserName = ")
        .replace("nonce=", "Nonce\t=\t");
    assert_eq!(
        verify(&mut s, T0, &odd, Secret::Password("pw")),
        AuthResult::Ok
    );
}
