//! Outbound registration against a scripted registrar that verifies our
//! digest credentials with carillon-digest's server.

mod common;

use std::time::{Duration, Instant};

use carillon_digest::{Algorithm, AuthResult, Credentials, DigestConfig, DigestServer, Secret};
use carillon_sip::{HeaderName, Message, Method};
use carillon_trunk::{RegistrationState, TrunkEvent, Trunks};
use common::{drain, respond, start};

const REG: &str = r#"
[trunk.voxlocus]
kind = "carrier"
contacts = ["sip:sip.voxlocus.example"]
register = true
registrar = "sip:sip.voxlocus.example"
expiry = 600
username = "acct"
password = "s3cret"
"#;

const UNIX: u64 = 1_700_000_000;

struct Registrar {
    digest: DigestServer,
}

impl Registrar {
    fn new() -> Registrar {
        Registrar {
            digest: DigestServer::new(DigestConfig {
                realm: "sip.voxlocus.example".into(),
                lifetime_secs: 3600,
                algorithms: vec![Algorithm::Md5],
                key: [3; 32],
                require_qop: true,
                counter_capacity: 16,
            })
            .unwrap(),
        }
    }

    fn challenge(&self, request: &Message) -> Message {
        let value = self.digest.challenges(UNIX, 5, false)[0].to_header_value();
        respond(request, 401, &[("WWW-Authenticate", &value)])
    }

    fn verify(&mut self, request: &Message) -> AuthResult {
        let value = request.header(HeaderName::Authorization).unwrap();
        let creds = Credentials::parse(&value).unwrap();
        assert_eq!(creds.uri, "sip:sip.voxlocus.example");
        self.digest
            .verify(UNIX, "REGISTER", &creds, Secret::Password("s3cret"))
    }
}

fn one_register(trunks: &mut Trunks) -> Message {
    let sent = drain(trunks);
    assert_eq!(sent.len(), 1, "exactly one request expected");
    let (t, m) = sent.into_iter().next().unwrap();
    assert_eq!(t.destination, "sip:sip.voxlocus.example");
    assert_eq!(m.method(), Some(&Method::Register));
    m
}

fn events(trunks: &mut Trunks) -> Vec<RegistrationState> {
    std::iter::from_fn(|| trunks.poll_event())
        .filter_map(|e| match e {
            TrunkEvent::RegistrationChanged { state, .. } => Some(state),
            TrunkEvent::ContactStateChanged { .. } => None,
        })
        .collect()
}

#[test]
fn registration_answers_401_registers_and_refreshes_before_expiry() {
    let t0 = Instant::now();
    let mut registrar = Registrar::new();
    let mut trunks = start(REG, t0);
    let first = one_register(&mut trunks);
    assert!(first.header(HeaderName::Authorization).is_none());
    assert_eq!(first.expires(), Some(600));
    assert_eq!(
        first.header(HeaderName::To).as_deref(),
        Some("<sip:acct@sip.voxlocus.example>")
    );
    assert_eq!(
        first.header(HeaderName::Contact).as_deref(),
        Some("<sip:acct@203.0.113.10:5060>")
    );
    assert!(trunks.handle_response(t0, &registrar.challenge(&first)));

    let second = one_register(&mut trunks);
    assert_eq!(registrar.verify(&second), AuthResult::Ok);
    assert_eq!(second.call_id(), first.call_id());
    assert_eq!(second.cseq().unwrap().seq, first.cseq().unwrap().seq + 1);
    let ok = respond(
        &second,
        200,
        &[("Contact", "<sip:acct@203.0.113.10:5060>;expires=120")],
    );
    assert!(trunks.handle_response(t0, &ok));
    assert_eq!(
        events(&mut trunks),
        vec![
            RegistrationState::Registering,
            RegistrationState::Registered { expires: 120 }
        ]
    );

    // The refresh is due 90 s in (min(85 %, 120 − 30)), before the binding expires.
    let refresh_at = trunks.poll_timeout().unwrap();
    assert_eq!(refresh_at, t0 + Duration::from_secs(90));
    trunks.handle_timeout(refresh_at);
    let refresh = one_register(&mut trunks);
    assert_eq!(refresh.call_id(), first.call_id());
    assert_eq!(refresh.cseq().unwrap().seq, second.cseq().unwrap().seq + 1);
    // Credentials for the kept challenge go up front, with nc = 2.
    assert_eq!(registrar.verify(&refresh), AuthResult::Ok);
    let creds_value = refresh.header(HeaderName::Authorization).unwrap();
    assert_eq!(Credentials::parse(&creds_value).unwrap().nc, Some(2));
    assert!(trunks.handle_response(refresh_at, &respond(&refresh, 200, &[("Expires", "120")])));
    assert_eq!(
        events(&mut trunks),
        vec![],
        "a same-expiry refresh is silent"
    );
    assert_eq!(
        trunks.registration_state("voxlocus"),
        Some(RegistrationState::Registered { expires: 120 })
    );
    assert_eq!(
        trunks.poll_timeout(),
        Some(refresh_at + Duration::from_secs(90))
    );
}

#[test]
fn a_423_raises_the_expiry_to_min_expires_and_registers() {
    let t0 = Instant::now();
    let mut trunks = start(REG, t0);
    let first = one_register(&mut trunks);
    assert!(trunks.handle_response(t0, &respond(&first, 423, &[("Min-Expires", "1800")])));
    let second = one_register(&mut trunks);
    assert_eq!(second.expires(), Some(1800));
    assert_eq!(second.cseq().unwrap().seq, first.cseq().unwrap().seq + 1);
    assert!(trunks.handle_response(t0, &respond(&second, 200, &[("Expires", "1800")])));
    assert_eq!(
        trunks.registration_state("voxlocus"),
        Some(RegistrationState::Registered { expires: 1800 })
    );
    assert_eq!(trunks.poll_timeout(), Some(t0 + Duration::from_secs(1530)));
}

#[test]
fn a_second_challenge_for_the_answered_nonce_fails_and_retries_with_backoff() {
    let t0 = Instant::now();
    let registrar = Registrar::new();
    let mut trunks = start(REG, t0);
    let first = one_register(&mut trunks);
    trunks.handle_response(t0, &registrar.challenge(&first));
    let second = one_register(&mut trunks);
    // Wrong password on the registrar's side: same nonce challenged again.
    trunks.handle_response(t0, &registrar.challenge(&second));
    assert!(drain(&mut trunks).is_empty());
    assert_eq!(
        trunks.registration_state("voxlocus"),
        Some(RegistrationState::Failed { status: Some(401) })
    );
    assert_eq!(trunks.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    trunks.handle_timeout(t0 + Duration::from_secs(5));
    let retry = one_register(&mut trunks);
    // A 403 next doubles the backoff.
    trunks.handle_response(t0 + Duration::from_secs(5), &respond(&retry, 403, &[]));
    assert_eq!(
        trunks.registration_state("voxlocus"),
        Some(RegistrationState::Failed { status: Some(403) })
    );
    assert_eq!(trunks.poll_timeout(), Some(t0 + Duration::from_secs(15)));
}

#[test]
fn an_unanswered_register_is_retransmitted_then_times_out_as_failed() {
    let t0 = Instant::now();
    let mut trunks = start(REG, t0);
    let _ = one_register(&mut trunks);
    let mut retransmissions = 0;
    let mut now = t0;
    while trunks.registration_state("voxlocus") != Some(RegistrationState::Failed { status: None })
    {
        now = trunks.poll_timeout().unwrap();
        trunks.handle_timeout(now);
        retransmissions += drain(&mut trunks).len();
    }
    // Timer F = 64 × T1 = 32 s; Timer E retransmits at 0.5, 1.5, 3.5, 7.5,
    // then every 4 s: 11.5 … 31.5.
    assert_eq!(now, t0 + Duration::from_secs(32));
    assert_eq!(retransmissions, 10);
}

#[test]
fn unregister_sends_expires_zero_with_credentials_and_stops() {
    let t0 = Instant::now();
    let mut registrar = Registrar::new();
    let mut trunks = start(REG, t0);
    let first = one_register(&mut trunks);
    trunks.handle_response(t0, &registrar.challenge(&first));
    let second = one_register(&mut trunks);
    trunks.handle_response(t0, &respond(&second, 200, &[("Expires", "600")]));
    let _ = events(&mut trunks);
    let t1 = t0 + Duration::from_secs(10);
    trunks.unregister_all(t1);
    let bye = one_register(&mut trunks);
    assert_eq!(bye.expires(), Some(0));
    assert_eq!(registrar.verify(&bye), AuthResult::Ok);
    trunks.handle_response(t1, &respond(&bye, 200, &[]));
    assert_eq!(events(&mut trunks), vec![RegistrationState::Unregistered]);
    assert_eq!(
        trunks.poll_timeout(),
        None,
        "no refresh after unregistering"
    );
}
