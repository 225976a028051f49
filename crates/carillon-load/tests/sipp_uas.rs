//! carillon-load as the UAC against SIPp's built-in UAS (`sipp -sn uas`),
//! signalling only: every call is answered, ACKed and hung up, and SIPp
//! itself exits 0 (no failed calls on its side). Skipped when `sipp` is
//! not installed.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{free_port, run_load};

#[test]
fn sipp_uas_answers_every_call_carillon_load_places() {
    if Command::new("sipp").arg("-v").output().is_err() {
        eprintln!("sipp not installed: skipping");
        return;
    }
    const CALLS: u64 = 10;
    let port = free_port();
    let mut sipp = Command::new("sipp")
        .args(["-sn", "uas", "-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-m", &CALLS.to_string(), "-nostdin", "-timeout", "30s"])
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Give SIPp a moment to bind; carillon-load retransmits anyway.
    std::thread::sleep(Duration::from_millis(300));
    let target = format!("127.0.0.1:{port}");
    let (code, out) = run_load(&[
        "--role",
        "uac",
        "--target",
        &target,
        "--calls",
        "10",
        "--rate",
        "20",
        "--duration",
        "200ms",
        "--report",
        "json",
        "--max-time",
        "30s",
    ]);

    let started = Instant::now();
    let sipp_status = loop {
        if let Some(s) = sipp.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > Duration::from_secs(35) {
            let _ = sipp.kill();
            let _ = sipp.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };

    assert_eq!(code, 0, "{out}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["uac"]["attempted"], CALLS);
    assert_eq!(r["uac"]["answered"], CALLS);
    assert_eq!(r["uac"]["completed"], CALLS);
    assert_eq!(r["uac"]["failed"], 0);
    assert!(r["uas"].is_null());
    let status = sipp_status.expect("sipp did not finish its 10 calls");
    assert!(status.success(), "sipp reported failed calls: {status}");
}
