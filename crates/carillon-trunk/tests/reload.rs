//! Replacing the configuration of running trunks (SIGHUP): unchanged
//! trunks keep their state, changed ones restart with their calls still
//! counted, added ones start, removed ones stop and unregister.

mod common;

use std::time::{Duration, Instant};

use carillon_sip::{HeaderName, Method};
use carillon_trunk::{BusyReason, ContactState, TrunkError};
use common::{drain, respond, set, start};

const BEFORE: &str = r#"
[trunk.same]
kind = "carrier"
contacts = ["sip:10.0.0.1:5060"]
qualify_secs = 30

[trunk.limited]
kind = "carrier"
contacts = ["sip:10.0.0.2:5060"]
max_calls = 1

[trunk.gone]
kind = "carrier"
contacts = ["sip:10.0.0.3:5060"]
identify = ["10.0.0.3"]
qualify_secs = 30
register = true
registrar = "sip:10.0.0.3:5060"
username = "u"
password = "p"
"#;

const AFTER: &str = r#"
[trunk.same]
kind = "carrier"
contacts = ["sip:10.0.0.1:5060"]
qualify_secs = 30

[trunk.limited]
kind = "carrier"
contacts = ["sip:10.0.0.22:5060"]
max_calls = 1

[trunk.fresh]
kind = "carrier"
contacts = ["sip:10.0.0.4:5060"]
identify = ["10.0.0.4"]
qualify_secs = 30
"#;

#[test]
fn a_reload_keeps_unchanged_trunks_restarts_changed_ones_starts_new_ones_and_stops_removed_ones() {
    let t0 = Instant::now();
    let mut trunks = start(BEFORE, t0);
    // Answer every ping and the REGISTER's first attempt.
    for (_, m) in drain(&mut trunks) {
        if m.method() == Some(&Method::Options) {
            assert!(trunks.handle_response(t0, &respond(&m, 200, &[])));
        }
    }
    assert_eq!(
        trunks.contact_state("same", "sip:10.0.0.1:5060"),
        Some(ContactState::Up)
    );
    let target = trunks.outbound_target("limited", t0).unwrap();
    trunks
        .call_started("limited", target.port.as_ref())
        .unwrap();

    let t1 = t0 + Duration::from_secs(5);
    let report = trunks.reload(set(AFTER), t1);
    let names = |v: &[carillon_trunk::TrunkName]| -> Vec<String> {
        v.iter().map(|n| n.as_str().to_owned()).collect()
    };
    assert_eq!(names(&report.unchanged), ["same"]);
    assert_eq!(names(&report.changed), ["limited"]);
    assert_eq!(names(&report.added), ["fresh"]);
    assert_eq!(names(&report.removed), ["gone"]);

    let sent = drain(&mut trunks);
    let destinations: Vec<&str> = sent.iter().map(|(t, _)| t.destination.as_str()).collect();
    // The new trunk is pinged at once; the unchanged one keeps its
    // schedule (Up, next ping 30 s after the last); the removed one's
    // registration is taken down.
    assert!(
        destinations.contains(&"sip:10.0.0.4:5060"),
        "{destinations:?}"
    );
    assert!(
        !destinations.contains(&"sip:10.0.0.1:5060"),
        "{destinations:?}"
    );
    let unregister: Vec<_> = sent
        .iter()
        .filter(|(_, m)| m.method() == Some(&Method::Register))
        .collect();
    assert_eq!(unregister.len(), 1, "{destinations:?}");
    assert_eq!(
        unregister[0].1.header(HeaderName::Expires).as_deref(),
        Some("0")
    );
    assert_eq!(
        trunks.contact_state("same", "sip:10.0.0.1:5060"),
        Some(ContactState::Up)
    );

    // The call up on the changed trunk still counts against max_calls...
    assert!(matches!(
        trunks.outbound_target("limited", t1),
        Err(TrunkError::Busy {
            reason: BusyReason::TrunkFull { max: 1 },
            ..
        })
    ));
    // ...and its end frees the slot on the new settings.
    trunks.call_ended("limited", None).unwrap();
    assert_eq!(
        trunks.outbound_target("limited", t1).unwrap().contact_uri,
        "sip:10.0.0.22:5060"
    );

    // The removed trunk is neither dialled nor identified; the new one is.
    assert!(matches!(
        trunks.outbound_target("gone", t1),
        Err(TrunkError::UnknownTrunk { .. })
    ));
    assert!(
        trunks.call_ended("gone", None).is_err(),
        "a late end is refused, not a panic"
    );
    assert_eq!(trunks.identify("10.0.0.3".parse().unwrap()), None);
    assert_eq!(
        trunks
            .identify("10.0.0.4".parse().unwrap())
            .map(|n| n.as_str()),
        Some("fresh")
    );

    // Answering the Expires: 0 lets the retired registration go.
    let (_, unreg) = &unregister[0];
    assert!(trunks.registrations_held());
    assert!(trunks.handle_response(t1, &respond(unreg, 200, &[])));
    assert!(!trunks.registrations_held());
    // Nothing more ever goes to the removed trunk.
    let mut now = t1;
    for _ in 0..20 {
        let Some(t) = trunks.poll_timeout() else {
            break;
        };
        now = t;
        trunks.handle_timeout(now);
        for (t, m) in drain(&mut trunks) {
            assert_ne!(t.destination, "sip:10.0.0.3:5060", "{m:?}");
            if m.method() == Some(&Method::Options) {
                trunks.handle_response(now, &respond(&m, 200, &[]));
            }
        }
    }
    assert!(now > t1 + Duration::from_secs(60));
}

#[test]
fn a_reload_to_no_trunks_stops_every_ping() {
    let t0 = Instant::now();
    let mut trunks = start(BEFORE, t0);
    let _ = drain(&mut trunks);
    trunks.reload(set(""), t0 + Duration::from_secs(1));
    let sent = drain(&mut trunks);
    assert!(
        sent.iter()
            .all(|(_, m)| m.method() == Some(&Method::Register)),
        "only the removal of the registration"
    );
    assert!(trunks.set().is_empty());
}
