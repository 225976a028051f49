//! Outbound call placement: identify, failover by qualify state, gateway
//! port rotation, limits and digest answers to 401/407.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use carillon_digest::{Algorithm, AuthResult, Credentials, DigestConfig, DigestServer, Secret};
use carillon_sip::HeaderName;
use carillon_trunk::{
    BusyReason, ContactState, PortName, TrunkError, TrunkEvent, UnavailableReason,
};
use common::{drain, respond, set, start};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const IDENTIFY: &str = r#"
[trunk.wide]
kind = "carrier"
contacts = ["sip:wide.example"]
identify = ["10.0.0.0/8", "2001:db8::/32"]

[trunk.narrow]
kind = "carrier"
contacts = ["sip:narrow.example"]
identify = ["10.20.0.0/16", "2001:db8:aa::/48"]

[trunk.host]
kind = "carrier"
contacts = ["sip:host.example"]
identify = ["10.20.30.40"]
"#;

#[test]
fn identify_picks_the_trunk_with_the_longest_matching_ipv4_prefix() {
    let set = set(IDENTIFY);
    assert_eq!(set.identify(ip("10.20.30.40")).unwrap(), "host");
    assert_eq!(set.identify(ip("10.20.30.41")).unwrap(), "narrow");
    assert_eq!(set.identify(ip("10.99.0.1")).unwrap(), "wide");
    assert_eq!(set.identify(ip("192.0.2.1")), None);
}

#[test]
fn identify_matches_ipv6_sources_by_longest_prefix_too() {
    let set = set(IDENTIFY);
    assert_eq!(set.identify(ip("2001:db8:aa::5")).unwrap(), "narrow");
    assert_eq!(set.identify(ip("2001:db8:bb::5")).unwrap(), "wide");
    assert_eq!(set.identify(ip("2001:db9::1")), None);
    assert_eq!(set.identify(ip("::ffff:10.20.30.40")).unwrap(), "host");
}

const FAILOVER: &str = r#"
[trunk.carrier]
kind = "carrier"
contacts = ["sip:primary.example:5060", "sip:backup.example:5060"]
qualify_secs = 30
qualify_timeout_secs = 2
from_user = "acct"
from_domain = "carrier.example"
send_pai = true
"#;

#[test]
fn failover_skips_the_first_contact_once_it_is_qualified_down() {
    let t0 = Instant::now();
    let mut trunks = start(FAILOVER, t0);
    // Before any answer both are Unknown, which is usable: the first wins.
    assert_eq!(
        trunks.outbound_target("carrier", t0).unwrap().contact_uri,
        "sip:primary.example:5060"
    );
    let pings = drain(&mut trunks);
    assert_eq!(pings.len(), 2);
    let (_, backup_ping) = pings
        .iter()
        .find(|(t, _)| t.destination == "sip:backup.example:5060")
        .unwrap();
    let foreign = carillon_sip::Message::parse(bytes::Bytes::from_static(
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bKnotours\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
    ))
    .unwrap();
    assert!(
        !trunks.handle_response(t0, &foreign),
        "not one of our pings"
    );
    assert!(trunks.handle_response(t0, &respond(backup_ping, 200, &[])));
    // The primary stays silent past its 2 s qualify timeout.
    let mut now = t0;
    while trunks.contact_state("carrier", "sip:primary.example:5060") != Some(ContactState::Down) {
        now = trunks.poll_timeout().unwrap();
        assert!(now <= t0 + Duration::from_secs(2));
        trunks.handle_timeout(now);
    }
    let events: Vec<TrunkEvent> = std::iter::from_fn(|| trunks.poll_event()).collect();
    assert!(events.contains(&TrunkEvent::ContactStateChanged {
        trunk: trunks.set().get("carrier").unwrap().name.clone(),
        contact: "sip:primary.example:5060".into(),
        from: ContactState::Unknown,
        to: ContactState::Down,
    }));
    let target = trunks.outbound_target("carrier", now).unwrap();
    assert_eq!(target.contact_uri, "sip:backup.example:5060");
    assert_eq!(
        target.request_uri("+15551234567"),
        "sip:+15551234567@backup.example:5060"
    );
    assert_eq!(target.from_uri("+15550001111"), "sip:acct@carrier.example");
    assert_eq!(
        target.pai("+15550001111").as_deref(),
        Some("<sip:+15550001111@carrier.example>")
    );
}

#[test]
fn a_failed_invite_moves_to_the_next_usable_contact_without_a_rate_token() {
    const THREE: &str = r#"
[trunk.carrier]
kind = "carrier"
contacts = ["sip:a.example", "sip:b.example", "sip:c.example"]
max_cps = 1
"#;
    let t0 = Instant::now();
    let mut trunks = start(THREE, t0);
    let first = trunks.outbound_target("carrier", t0).unwrap();
    assert_eq!(
        (first.contact, first.contact_uri.as_str()),
        (0, "sip:a.example")
    );
    // The one token of this second is taken: a new call is refused...
    assert!(matches!(
        trunks.outbound_target("carrier", t0),
        Err(TrunkError::RateLimited { .. })
    ));
    // ...but the call already placed may still fail over, in order.
    let next = trunks
        .failover_target("carrier", first.contact, t0)
        .unwrap();
    assert_eq!(
        (next.contact, next.contact_uri.as_str()),
        (1, "sip:b.example")
    );
    let last = trunks.failover_target("carrier", next.contact, t0).unwrap();
    assert_eq!(last.contact, 2);
    let err = trunks
        .failover_target("carrier", last.contact, t0)
        .unwrap_err();
    assert!(matches!(
        err,
        TrunkError::Unavailable {
            reason: UnavailableReason::ContactsDown,
            ..
        }
    ));
}

#[test]
fn a_trunk_whose_contacts_are_all_down_is_unavailable_with_503() {
    let t0 = Instant::now();
    let mut trunks = start(FAILOVER, t0);
    let _ = drain(&mut trunks);
    trunks.handle_timeout(t0 + Duration::from_secs(2));
    let err = trunks
        .outbound_target("carrier", t0 + Duration::from_secs(2))
        .unwrap_err();
    assert!(matches!(
        err,
        TrunkError::Unavailable {
            reason: UnavailableReason::ContactsDown,
            ..
        }
    ));
    assert_eq!(err.status(), 503);
}

const GATEWAY: &str = r#"
[trunk.gsm]
kind = "gsm_gateway"
port_strategy = "round_robin"
port_cooldown_secs = 60
ports = [
    { name = "sim1", contact = "sip:192.168.1.50:5061" },
    { name = "sim2", contact = "sip:192.168.1.50:5062" },
    { name = "sim3", contact = "sip:192.168.1.50:5063", max_calls = 2 },
]
"#;

fn port(target: &carillon_trunk::OutboundTarget) -> String {
    target.port.as_ref().unwrap().to_string()
}

#[test]
fn round_robin_rotates_ports_skips_a_failed_one_and_respects_port_limits() {
    let t0 = Instant::now();
    let mut trunks = start(GATEWAY, t0);
    let place = |trunks: &mut carillon_trunk::Trunks, now| {
        let target = trunks.outbound_target("gsm", now).unwrap();
        trunks.call_started("gsm", target.port.as_ref()).unwrap();
        target
    };
    let a = place(&mut trunks, t0);
    assert_eq!(
        (port(&a), a.contact_uri.as_str()),
        ("sim1".into(), "sip:192.168.1.50:5061")
    );
    let b = place(&mut trunks, t0);
    assert_eq!(port(&b), "sim2");
    // sim2's call fails at the gateway: it cools down for 60 s.
    trunks.call_failed("gsm", b.port.as_ref(), t0).unwrap();
    let c = place(&mut trunks, t0);
    assert_eq!(port(&c), "sim3");
    // sim1 (1 call) is full, sim2 cools down, sim3 has room for a second.
    let d = place(&mut trunks, t0);
    assert_eq!(port(&d), "sim3");
    let err = trunks.outbound_target("gsm", t0).unwrap_err();
    assert_eq!(
        err,
        TrunkError::Busy {
            trunk: a.trunk.clone(),
            reason: BusyReason::AllPortsBusy
        }
    );
    assert_eq!(err.status(), 486);
    // After the cooldown sim2 is back.
    let later = t0 + Duration::from_secs(60);
    assert_eq!(port(&place(&mut trunks, later)), "sim2");
    assert_eq!(trunks.active_calls("gsm", None), Some(4));
    assert_eq!(trunks.active_calls("gsm", Some("sim3")), Some(2));
}

#[test]
fn least_used_prefers_the_port_with_fewest_calls_up_then_fewest_placed() {
    let text = GATEWAY.replace("round_robin", "least_used");
    let t0 = Instant::now();
    let mut trunks = start(&text, t0);
    let sim = trunks_port;
    let first = trunks.outbound_target("gsm", t0).unwrap();
    assert_eq!(port(&first), "sim1");
    trunks.call_started("gsm", Some(&sim("sim1"))).unwrap();
    assert_eq!(port(&trunks.outbound_target("gsm", t0).unwrap()), "sim2");
    trunks.call_started("gsm", Some(&sim("sim2"))).unwrap();
    trunks.call_ended("gsm", Some(&sim("sim2"))).unwrap();
    trunks.call_ended("gsm", Some(&sim("sim1"))).unwrap();
    // All idle now; sim3 has placed no call yet.
    assert_eq!(port(&trunks.outbound_target("gsm", t0).unwrap()), "sim3");
    trunks.call_started("gsm", Some(&sim("sim3"))).unwrap();
    // sim3 is up (1 of 2): an idle port wins even though sim3 has room.
    assert_eq!(port(&trunks.outbound_target("gsm", t0).unwrap()), "sim1");
    // A failed port is skipped by least_used too.
    trunks.call_started("gsm", Some(&sim("sim1"))).unwrap();
    trunks.call_failed("gsm", Some(&sim("sim1")), t0).unwrap();
    assert_eq!(port(&trunks.outbound_target("gsm", t0).unwrap()), "sim2");
}

fn trunks_port(name: &str) -> PortName {
    let set = set(GATEWAY);
    let gw = set.get("gsm").unwrap().gateway.clone().unwrap();
    gw.ports.into_iter().find(|p| p.name == name).unwrap().name
}

#[test]
fn prefix_ports_share_the_gateway_contact_and_prefix_the_number() {
    let text = r#"
[trunk.dinstar]
kind = "gsm_gateway"
contacts = ["sip:192.168.1.50:5060"]
ports = [{ name = "g1", prefix = "01#" }, { name = "g2", prefix = "02#" }]
"#;
    let t0 = Instant::now();
    let mut trunks = start(text, t0);
    let a = trunks.outbound_target("dinstar", t0).unwrap();
    trunks.call_started("dinstar", a.port.as_ref()).unwrap();
    let b = trunks.outbound_target("dinstar", t0).unwrap();
    assert_eq!(
        a.request_uri("03001234567"),
        "sip:01#03001234567@192.168.1.50:5060"
    );
    assert_eq!(
        b.request_uri("03001234567"),
        "sip:02#03001234567@192.168.1.50:5060"
    );
}

#[test]
fn concurrency_and_cps_limits_follow_the_virtual_clock() {
    let text = r#"
[trunk.t]
kind = "carrier"
contacts = ["sip:carrier.example"]
max_calls = 2
max_cps = 2
"#;
    let t0 = Instant::now();
    let mut trunks = start(text, t0);
    for _ in 0..2 {
        trunks.outbound_target("t", t0).unwrap();
        trunks.call_started("t", None).unwrap();
    }
    let busy = trunks.outbound_target("t", t0).unwrap_err();
    assert!(matches!(
        busy,
        TrunkError::Busy {
            reason: BusyReason::TrunkFull { max: 2 },
            ..
        }
    ));
    assert_eq!(busy.status(), 503);
    trunks.call_ended("t", None).unwrap();
    // A slot is free, but both tokens of this second are spent.
    let limited = trunks.outbound_target("t", t0).unwrap_err();
    assert_eq!(
        limited,
        TrunkError::RateLimited {
            trunk: trunks.set().get("t").unwrap().name.clone(),
            retry_after: Duration::from_millis(500)
        }
    );
    assert_eq!(limited.status(), 503);
    assert!(trunks
        .outbound_target("t", t0 + Duration::from_millis(499))
        .is_err());
    assert!(trunks
        .outbound_target("t", t0 + Duration::from_millis(500))
        .is_ok());
    // A refused call took no token: the next half second gives exactly one.
    trunks.call_started("t", None).unwrap();
    trunks.call_ended("t", None).unwrap();
    assert!(trunks
        .outbound_target("t", t0 + Duration::from_millis(1000))
        .is_ok());
}

#[test]
fn unknown_trunks_and_ports_are_errors_not_panics() {
    let t0 = Instant::now();
    let mut trunks = start(GATEWAY, t0);
    assert!(matches!(
        trunks.outbound_target("nope", t0),
        Err(TrunkError::UnknownTrunk { .. })
    ));
    let other = set(r#"
[trunk.other]
kind = "gsm_gateway"
ports = [{ name = "sim9", contact = "sip:192.0.2.9" }]
"#);
    let sim9 = other.get("other").unwrap().gateway.clone().unwrap().ports[0]
        .name
        .clone();
    assert!(matches!(
        trunks.call_started("gsm", Some(&sim9)),
        Err(TrunkError::UnknownPort { .. })
    ));
    assert!(matches!(
        trunks.call_ended("nope", None),
        Err(TrunkError::UnknownTrunk { .. })
    ));
}

const AUTH: &str = r#"
[trunk.carrier]
kind = "carrier"
contacts = ["sip:carrier.example"]
username = "acct"
password = "s3cret"
"#;

fn server() -> DigestServer {
    DigestServer::new(DigestConfig {
        realm: "carrier.example".into(),
        lifetime_secs: 300,
        algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
        key: [9; 32],
        require_qop: true,
        counter_capacity: 16,
    })
    .unwrap()
}

#[test]
fn authorize_answers_a_407_that_the_carriers_digest_server_accepts() {
    let t0 = Instant::now();
    let mut trunks = start(AUTH, t0);
    let mut server = server();
    let now_unix = 1_700_000_000;
    let challenges: Vec<String> = server
        .challenges(now_unix, 77, false)
        .iter()
        .map(|c| c.to_header_value())
        .collect();
    let values: Vec<&str> = challenges.iter().map(String::as_str).collect();
    let uri = "sip:+15551234567@carrier.example";
    for nc in 1..=2u32 {
        let (header, value) = trunks
            .authorize("carrier", 407, &values, "INVITE", uri)
            .unwrap();
        assert_eq!(header, HeaderName::ProxyAuthorization);
        let creds = Credentials::parse(&value).unwrap();
        assert_eq!(
            creds.algorithm,
            Algorithm::Sha256,
            "the strongest challenge is answered"
        );
        assert_eq!(creds.nc, Some(nc), "nc counts per nonce");
        assert_eq!(
            server.verify(now_unix, "INVITE", &creds, Secret::Password("s3cret")),
            AuthResult::Ok
        );
    }
}

#[test]
fn authorize_uses_authorization_for_401_and_refuses_other_statuses() {
    let t0 = Instant::now();
    let mut trunks = start(AUTH, t0);
    let challenge = r#"Digest realm="r", nonce="abc", qop="auth""#;
    let (header, value) = trunks
        .authorize("carrier", 401, &[challenge], "BYE", "sip:x@r")
        .unwrap();
    assert_eq!(header, HeaderName::Authorization);
    assert!(value.contains("username=\"acct\""));
    assert!(matches!(
        trunks.authorize("carrier", 403, &[challenge], "BYE", "sip:x@r"),
        Err(TrunkError::Auth { .. })
    ));
    assert!(matches!(
        trunks.authorize("carrier", 401, &["Basic realm=\"r\""], "BYE", "sip:x@r"),
        Err(TrunkError::Auth { .. })
    ));
    let mut no_creds = start(FAILOVER, t0);
    assert!(matches!(
        no_creds.authorize("carrier", 401, &[challenge], "BYE", "sip:x@r"),
        Err(TrunkError::NoCredentials { .. })
    ));
}

#[test]
fn a_disabled_trunk_sends_nothing_and_refuses_calls_as_disabled() {
    let t0 = Instant::now();
    let mut trunks = start(
        r#"
[trunk.off]
enabled = false
kind = "carrier"
contacts = ["sip:10.0.0.1:5060"]
qualify_secs = 30
register = true
registrar = "sip:10.0.0.1:5060"
username = "u"
password = "p"

[trunk.gw]
enabled = false
kind = "gsm_gateway"
ports = [{ name = "sim1", contact = "sip:10.0.0.2:5061" }]
qualify_secs = 30
"#,
        t0,
    );
    assert!(drain(&mut trunks).is_empty(), "no OPTIONS, no REGISTER");
    assert_eq!(trunks.poll_timeout(), None, "nothing scheduled");
    assert_eq!(trunks.registration_state("off"), None);
    for name in ["off", "gw"] {
        let err = trunks.outbound_target(name, t0).unwrap_err();
        assert!(
            matches!(
                err,
                TrunkError::Unavailable {
                    reason: UnavailableReason::Disabled,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.status(), 503);
    }
    trunks.handle_timeout(t0 + Duration::from_secs(3600));
    assert!(drain(&mut trunks).is_empty());
}
