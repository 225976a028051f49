//! carillon-load in `both` mode through a stateless echo proxy: every
//! call is placed, routed back to the tool's own UAS, answered, holds with
//! RTP both ways, and is hung up; with and without digest challenges.

mod support;

use std::sync::atomic::Ordering;

use serde_json::Value;
use support::{free_port, run_load, EchoProxy, ProxyAuth};

fn u(v: &Value, path: &str) -> u64 {
    v.pointer(path)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{path} missing in {v}"))
}

fn f(v: &Value, path: &str) -> f64 {
    v.pointer(path)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{path} missing in {v}"))
}

#[test]
fn thirty_calls_through_the_echo_proxy_are_all_answered_with_rtp_both_ways() {
    let uas_port = free_port();
    let uas = format!("127.0.0.1:{uas_port}");
    let proxy = EchoProxy::start(uas.parse().unwrap(), None);
    let target = proxy.addr.to_string();
    let (code, out) = run_load(&[
        "--target",
        &target,
        "--role",
        "both",
        "--uas-listen",
        &uas,
        "--calls",
        "30",
        "--rate",
        "30",
        "--concurrency",
        "30",
        "--duration",
        "1s",
        "--rtp",
        "--codec",
        "pcma",
        "--report",
        "json",
        "--max-time",
        "30s",
    ]);
    assert_eq!(code, 0, "{out}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(u(&r, "/uac/attempted"), 30);
    assert_eq!(u(&r, "/uac/answered"), 30);
    assert_eq!(u(&r, "/uac/failed"), 0);
    assert_eq!(u(&r, "/uac/completed"), 30);
    assert_eq!(u(&r, "/uas/answered"), 30);
    assert_eq!(u(&r, "/uas/completed"), 30);
    assert_eq!(u(&r, "/uac/setup_ms/count"), 30);
    assert!(proxy.counts.requests_forwarded.load(Ordering::Relaxed) >= 30);
    assert!(proxy.counts.responses_forwarded.load(Ordering::Relaxed) >= 90);
    for dir in ["uac_to_uas", "uas_to_uac"] {
        // Every call received media in this direction, carrying our marker.
        assert_eq!(u(&r, &format!("/rtp/{dir}/streams")), 30, "{dir}");
        assert!(u(&r, &format!("/rtp/{dir}/packets_received")) > 0, "{dir}");
        assert_eq!(u(&r, &format!("/rtp/{dir}/payload_mismatch")), 0, "{dir}");
        assert_eq!(u(&r, &format!("/rtp/{dir}/foreign")), 0, "{dir}");
        assert!(f(&r, &format!("/rtp/{dir}/loss_pct")) < 1.0, "{dir}: {r}");
        assert!(
            u(&r, &format!("/rtp/{dir}/packets_received"))
                <= u(&r, &format!("/rtp/{dir}/packets_sent")),
            "{dir}"
        );
    }
    assert_eq!(r["passed"], Value::Bool(true));
}

#[test]
fn calls_challenged_with_407_are_answered_with_digest_credentials() {
    let uas_port = free_port();
    let uas = format!("127.0.0.1:{uas_port}");
    let proxy = EchoProxy::start(
        uas.parse().unwrap(),
        Some(ProxyAuth {
            user: "agent7".into(),
            password: "s3cret".into(),
            realm: "load.test".into(),
        }),
    );
    let target = proxy.addr.to_string();
    let (code, out) = run_load(&[
        "--target",
        &target,
        "--uas-listen",
        &uas,
        "--calls",
        "8",
        "--rate",
        "20",
        "--duration",
        "200ms",
        "--auth",
        "agent7:s3cret",
        "--report",
        "json",
        "--max-time",
        "30s",
    ]);
    assert_eq!(code, 0, "{out}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(u(&r, "/uac/answered"), 8);
    assert_eq!(u(&r, "/uac/auth_challenges"), 8);
    assert_eq!(proxy.counts.challenges_sent.load(Ordering::Relaxed), 8);
    assert_eq!(proxy.counts.bad_credentials.load(Ordering::Relaxed), 0);
    assert!(r["rtp"].is_null());
}

#[test]
fn a_wrong_password_fails_every_call_and_exits_one() {
    let uas_port = free_port();
    let uas = format!("127.0.0.1:{uas_port}");
    let proxy = EchoProxy::start(
        uas.parse().unwrap(),
        Some(ProxyAuth {
            user: "agent7".into(),
            password: "right".into(),
            realm: "load.test".into(),
        }),
    );
    let target = proxy.addr.to_string();
    let (code, out) = run_load(&[
        "--target",
        &target,
        "--uas-listen",
        &uas,
        "--calls",
        "4",
        "--rate",
        "20",
        "--duration",
        "100ms",
        "--auth",
        "agent7:wrong",
        "--report",
        "json",
        "--max-time",
        "30s",
    ]);
    assert_eq!(code, 1, "{out}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(u(&r, "/uac/failed"), 4);
    assert_eq!(u(&r, "/uac/failed_by_status/403"), 4);
    assert_eq!(r["passed"], Value::Bool(false));
}
