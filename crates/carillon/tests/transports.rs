//! Transports of the live switch: digest REGISTER over one TCP connection,
//! the RFC 5626 CRLF keep-alive over TCP, and UDP over IPv6.

mod common;

use std::time::Duration;

use common::{Conn, Env, Options, Phone, SipMsg};

#[test]
fn register_over_tcp_is_challenged_and_accepted_on_the_same_connection() {
    let mut env = Env::new(&Options::default());
    let sw = env.start();
    let mut conn = Conn::tcp(sw.addr());
    let local = conn.local();
    let mut phone = Phone::new("101", "changeme101");
    let contact = format!("<sip:101@{local};transport=tcp>");
    let ok = phone
        .register(&mut conn, Some(&contact), Some(600))
        .unwrap();
    assert_eq!(ok.status(), Some(200), "{}", ok.raw);
    // Both answers came back on this connection (the client is still it).
    assert_eq!(conn.local(), local);
    assert!(
        ok.contacts().iter().any(|c| c.contains(&local.to_string())),
        "{:?}",
        ok.contacts()
    );
    let via = ok.header("via").unwrap_or_default().to_owned();
    assert!(via.starts_with("SIP/2.0/TCP"), "{via}");
}

#[test]
fn a_double_crlf_keepalive_over_tcp_is_answered_with_crlf() {
    let mut env = Env::new(&Options::default());
    let sw = env.start();
    let mut conn = Conn::tcp(sw.addr());
    conn.send(b"\r\n\r\n");
    let pong = conn.recv_bytes(Duration::from_secs(3));
    assert_eq!(pong.as_deref(), Some(&b"\r\n"[..]), "RFC 5626 §3.5.1 pong");
    // The connection still carries SIP afterwards.
    let r = conn.options();
    assert_eq!(r.as_ref().and_then(SipMsg::status), Some(200));
}

#[test]
fn options_over_udp_on_ipv6_loopback_is_answered_200() {
    let mut env = Env::new(&Options {
        ipv6: true,
        ..Options::default()
    });
    let sw = env.start();
    let mut conn = Conn::udp(sw.addr6());
    let r = conn.options().expect("no answer over [::1]");
    assert_eq!(r.status(), Some(200), "{}", r.raw);
    let via = r.header("via").unwrap_or_default();
    assert!(via.contains("[::1]"), "{via}");
}
