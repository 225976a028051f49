//! Registrar unit tests: RFC 3261 §10.3 behaviours driven by parsed REGISTERs.

use super::*;
use bytes::Bytes;

fn register(call_id: &str, cseq: u32, contacts: &[&str], expires: Option<u32>) -> Message {
    let mut s = format!(
        "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK{cseq}\r\nFrom: <sip:100@example.com>;tag=f\r\nTo: <sip:100@example.com>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nPath: <sip:edge.example.com;lr>\r\n"
    );
    for c in contacts {
        s.push_str(&format!("Contact: {c}\r\n"));
    }
    if let Some(e) = expires {
        s.push_str(&format!("Expires: {e}\r\n"));
    }
    s.push_str("Content-Length: 0\r\n\r\n");
    Message::parse(Bytes::from(s)).unwrap()
}

const NOW: u64 = 1_000_000;

#[test]
fn a_new_contact_is_bound_with_its_source_and_path() {
    let mut r = Registrar::new(RegistrarConfig::default());
    let out = r
        .handle_register(
            NOW,
            &register("c1", 1, &["<sip:100@10.0.0.1:5060>"], Some(600)),
            "100@example.com",
            "udp:203.0.113.5:41000",
            3,
        )
        .unwrap();
    assert_eq!(out.bindings.len(), 1);
    let b = &out.bindings[0];
    assert_eq!(b.expires_at, NOW + 600);
    assert_eq!(&*b.source, "udp:203.0.113.5:41000");
    assert_eq!(b.path, vec!["<sip:edge.example.com;lr>"]);
    assert!(matches!(out.changes[0], BindingChange::Upsert(_)));
    assert_eq!(r.lookup("100@example.com", NOW).len(), 1);
}

#[test]
fn a_refresh_extends_and_expires_zero_removes() {
    let mut r = Registrar::new(RegistrarConfig::default());
    r.handle_register(
        NOW,
        &register("c1", 1, &["<sip:100@10.0.0.1>"], Some(600)),
        "100@example.com",
        "udp:a",
        3,
    )
    .unwrap();
    let out = r
        .handle_register(
            NOW + 100,
            &register("c1", 2, &["<sip:100@10.0.0.1>"], Some(600)),
            "100@example.com",
            "udp:a",
            3,
        )
        .unwrap();
    assert_eq!(out.bindings.len(), 1);
    assert_eq!(out.bindings[0].expires_at, NOW + 700);
    let out = r
        .handle_register(
            NOW + 200,
            &register("c1", 3, &["<sip:100@10.0.0.1>;expires=0"], None),
            "100@example.com",
            "udp:a",
            3,
        )
        .unwrap();
    assert!(out.bindings.is_empty());
    assert!(matches!(out.changes[0], BindingChange::Remove { .. }));
    assert_eq!(r.binding_count(), 0);
}

#[test]
fn wildcard_removes_everything_but_only_with_expires_zero() {
    let mut r = Registrar::new(RegistrarConfig::default());
    r.handle_register(
        NOW,
        &register(
            "c1",
            1,
            &["<sip:100@10.0.0.1>", "<sip:100@10.0.0.2>"],
            Some(600),
        ),
        "100@example.com",
        "udp:a",
        3,
    )
    .unwrap();
    assert_eq!(r.binding_count(), 2);
    let err = r
        .handle_register(
            NOW,
            &register("c1", 2, &["*"], Some(600)),
            "100@example.com",
            "udp:a",
            3,
        )
        .unwrap_err();
    assert_eq!(err.status(), 400);
    let out = r
        .handle_register(
            NOW,
            &register("c1", 3, &["*"], Some(0)),
            "100@example.com",
            "udp:a",
            3,
        )
        .unwrap();
    assert_eq!(out.changes.len(), 2);
    assert_eq!(r.binding_count(), 0);
}

#[test]
fn too_brief_intervals_get_423_with_the_minimum() {
    let mut r = Registrar::new(RegistrarConfig::default());
    let err = r
        .handle_register(
            NOW,
            &register("c1", 1, &["<sip:100@10.0.0.1>"], Some(10)),
            "100@example.com",
            "udp:a",
            3,
        )
        .unwrap_err();
    assert_eq!(err, RegisterError::IntervalTooBrief { min_expires: 60 });
    assert_eq!(err.status(), 423);
    assert_eq!(r.binding_count(), 0);
}

#[test]
fn overlong_intervals_are_capped_at_max_expires() {
    let mut r = Registrar::new(RegistrarConfig::default());
    let out = r
        .handle_register(
            NOW,
            &register("c1", 1, &["<sip:100@10.0.0.1>"], Some(u32::MAX)),
            "100@example.com",
            "udp:a",
            3,
        )
        .unwrap();
    assert_eq!(out.bindings[0].expires_at, NOW + 3600);
}

#[test]
fn a_register_without_contact_fetches_the_bindings() {
    let mut r = Registrar::new(RegistrarConfig::default());
    r.handle_register(
        NOW,
        &register("c1", 1, &["<sip:100@10.0.0.1>"], Some(600)),
        "100@example.com",
        "udp:a",
        3,
    )
    .unwrap();
    let out = r
        .handle_register(
            NOW + 5,
            &register("c9", 1, &[], None),
            "100@example.com",
            "udp:b",
            3,
        )
        .unwrap();
    assert_eq!(out.bindings.len(), 1);
    assert!(out.changes.is_empty());
}

#[test]
fn an_old_cseq_on_the_same_call_id_is_refused() {
    let mut r = Registrar::new(RegistrarConfig::default());
    r.handle_register(
        NOW,
        &register("c1", 5, &["<sip:100@10.0.0.1>"], Some(600)),
        "100@example.com",
        "udp:a",
        3,
    )
    .unwrap();
    let err = r
        .handle_register(
            NOW,
            &register("c1", 5, &["<sip:100@10.0.0.1>"], Some(600)),
            "100@example.com",
            "udp:a",
            3,
        )
        .unwrap_err();
    assert_eq!(err.status(), 500);
}

#[test]
fn the_contact_limit_evicts_the_oldest_or_refuses() {
    let mut r = Registrar::new(RegistrarConfig::default());
    r.handle_register(
        NOW,
        &register("a", 1, &["<sip:100@10.0.0.1>"], Some(600)),
        "100@example.com",
        "udp:a",
        2,
    )
    .unwrap();
    r.handle_register(
        NOW + 1,
        &register("b", 1, &["<sip:100@10.0.0.2>"], Some(600)),
        "100@example.com",
        "udp:a",
        2,
    )
    .unwrap();
    let out = r
        .handle_register(
            NOW + 2,
            &register("c", 1, &["<sip:100@10.0.0.3>"], Some(600)),
            "100@example.com",
            "udp:a",
            2,
        )
        .unwrap();
    let contacts: Vec<_> = out.bindings.iter().map(|b| &*b.contact).collect();
    assert_eq!(contacts, vec!["sip:100@10.0.0.2", "sip:100@10.0.0.3"]);

    let mut strict = Registrar::new(RegistrarConfig {
        remove_existing: false,
        ..RegistrarConfig::default()
    });
    strict
        .handle_register(
            NOW,
            &register("a", 1, &["<sip:100@10.0.0.1>"], Some(600)),
            "100@example.com",
            "udp:a",
            1,
        )
        .unwrap();
    let err = strict
        .handle_register(
            NOW,
            &register("b", 1, &["<sip:100@10.0.0.2>"], Some(600)),
            "100@example.com",
            "udp:a",
            1,
        )
        .unwrap_err();
    assert_eq!(err.status(), 403);
}

#[test]
fn expired_bindings_are_purged_and_reported() {
    let mut r = Registrar::new(RegistrarConfig::default());
    r.handle_register(
        NOW,
        &register("c1", 1, &["<sip:100@10.0.0.1>"], Some(60)),
        "100@example.com",
        "udp:a",
        3,
    )
    .unwrap();
    assert!(r.purge_expired(NOW + 59).is_empty());
    let removed = r.purge_expired(NOW + 60);
    assert_eq!(removed.len(), 1);
    assert_eq!(r.aor_count(), 0);
}

#[test]
fn restored_bindings_are_found_again() {
    let mut r = Registrar::new(RegistrarConfig::default());
    let out = r
        .handle_register(
            NOW,
            &register("c1", 1, &["<sip:100@10.0.0.1>"], Some(600)),
            "100@example.com",
            "udp:a",
            3,
        )
        .unwrap();
    let mut r2 = Registrar::new(RegistrarConfig::default());
    r2.restore(out.bindings, NOW + 10);
    assert_eq!(r2.lookup("100@example.com", NOW + 10).len(), 1);
}

#[test]
fn a_restored_binding_never_replaces_the_one_held_for_the_same_contact() {
    // Stored before an outage (expires NOW+600); the phone re-registered
    // while the database was down (expires NOW+3600). Restoring the stored
    // row late must keep the newer one, and add contacts not held.
    let mut r = Registrar::new(RegistrarConfig::default());
    let stored = r
        .handle_register(
            NOW,
            &register(
                "c1",
                1,
                &["<sip:100@10.0.0.1>", "<sip:100@10.0.0.2>"],
                Some(600),
            ),
            "100@example.com",
            "udp:a",
            3,
        )
        .unwrap()
        .bindings;
    let mut live = Registrar::new(RegistrarConfig::default());
    live.handle_register(
        NOW + 5,
        &register("c2", 1, &["<sip:100@10.0.0.1>"], Some(3600)),
        "100@example.com",
        "udp:b",
        3,
    )
    .unwrap();
    live.restore(stored, NOW + 10);
    let held = live.lookup("100@example.com", NOW + 10);
    assert_eq!(held.len(), 2);
    let first = held
        .iter()
        .find(|b| b.contact.contains("10.0.0.1"))
        .unwrap();
    assert_eq!(&*first.call_id, "c2");
    assert_eq!(&*first.source, "udp:b");
}

#[test]
fn the_aor_of_a_non_sip_to_is_a_bad_request() {
    let na = NameAddr::parse("isbn:2983792873").unwrap();
    assert_eq!(aor_of(&na).unwrap_err().status(), 400);
    let na = NameAddr::parse("<sip:%31%30%30@Example.COM>").unwrap();
    assert_eq!(aor_of(&na).unwrap(), "100@example.com");
}

#[test]
fn a_register_handed_on_parsed_binds_as_the_parsing_entry_point_does() {
    let req = register(
        "c1",
        1,
        &["<sip:100@10.0.0.1:5060>;expires=120", "<sip:100@10.0.0.2>"],
        Some(600),
    );
    let mut a = Registrar::new(RegistrarConfig::default());
    let out = a
        .handle_register(NOW, &req, "100@example.com", "udp:203.0.113.5:41000", 3)
        .unwrap();
    let mut b = Registrar::new(RegistrarConfig::default());
    let parts = carillon_sip::validate_request_parts(&req).unwrap();
    let changes = b
        .handle_register_parsed(
            NOW,
            &req,
            &parts,
            "100@example.com",
            "udp:203.0.113.5:41000",
            3,
        )
        .unwrap();
    assert_eq!(changes, out.changes);
    assert_eq!(b.bindings("100@example.com"), &out.bindings[..]);
    assert_eq!(b.bindings("100@example.com")[0].expires_at, NOW + 120);
    assert!(b.bindings("nobody@example.com").is_empty());
}

#[test]
fn a_refresh_shares_the_unchanged_strings_with_the_binding_it_replaces() {
    let mut r = Registrar::new(RegistrarConfig::default());
    let contact = ["<sip:100@10.0.0.1:5060>"];
    let first = r
        .handle_register(
            NOW,
            &register("c1", 1, &contact, Some(600)),
            "100@example.com",
            "udp:a",
            3,
        )
        .unwrap();
    let refreshed = r
        .handle_register(
            NOW + 60,
            &register("c1", 2, &contact, Some(600)),
            "100@example.com",
            "udp:b",
            3,
        )
        .unwrap();
    let (old, new) = (&first.bindings[0], &refreshed.bindings[0]);
    assert!(Arc::ptr_eq(&old.aor, &new.aor));
    assert!(Arc::ptr_eq(&old.contact, &new.contact));
    assert!(Arc::ptr_eq(&old.call_id, &new.call_id));
    // What changed is new, and the values are right either way.
    assert!(!Arc::ptr_eq(&old.source, &new.source));
    assert_eq!(
        (&*new.source, new.cseq, new.expires_at),
        ("udp:b", 2, NOW + 660)
    );
    // The change handed to the store is the same binding, not a copy.
    let BindingChange::Upsert(sent) = &refreshed.changes[0] else {
        panic!("expected an upsert");
    };
    assert!(Arc::ptr_eq(&sent.contact, &new.contact));
}
