//! The kernel fast path end to end: the real switch with
//! `[rtp] kernel_forwarding = true` (the XDP program on `lo`) relays calls
//! placed and answered by `carillon-load` with 20 ms G.711 both ways. Every
//! packet must arrive, in order, with its payload intact, and the switch's
//! per-leg counters must show that the kernel, not userspace, forwarded
//! most of them. Needs root (CAP_BPF, CAP_NET_ADMIN), as CI has; one test
//! in this binary, because only one XDP program can sit on `lo` at a time.

mod common;

use common::{run_tool, Env, Options};
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// `carillon-load`, built next to the `carillon` binary by
/// `cargo test --workspace` (or named by `CARILLON_LOAD_BIN`).
fn load_bin() -> PathBuf {
    if let Some(b) = std::env::var_os("CARILLON_LOAD_BIN") {
        return PathBuf::from(b);
    }
    let bin = common::bin();
    let load = bin.with_file_name("carillon-load");
    assert!(
        load.exists(),
        "{} is missing: build it with `cargo build -p carillon-load` (same profile) or set CARILLON_LOAD_BIN",
        load.display()
    );
    load
}

fn field(line: &str, key: &str) -> u64 {
    let needle = format!("{key}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&needle))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

#[test]
fn relayed_calls_are_forwarded_by_the_kernel_with_every_packet_intact() {
    let mut env = Env::new(
        &Options {
            rust_log: Some("info".into()),
            ..Options::default()
        }
        .users("[[user]]\nextension = \"100\"\npassword = \"unused-100\"\ncontext = \"bench\"\n")
        .security("exempt", "[\"127.0.0.1\"]"),
    );
    let uas_port = common::free_port(&[common::V4]);
    let uac_port = common::free_port(&[common::V4]);
    let config = env.config_dir();
    fs::write(
        config.join("trunks.toml"),
        format!(
            "[trunk.loadgen]\nkind = \"carrier\"\ncontacts = [\"sip:127.0.0.1:{uas_port}\"]\n\
             identify = [\"127.0.0.1\"]\ncontext = \"bench\"\nallow = [\"ulaw\"]\n"
        ),
    )
    .expect("write trunks.toml");
    fs::write(
        config.join("dialplan.toml"),
        "[context.bench]\nallow_trunks = [\"loadgen\"]\n\n[[context.bench.extension]]\n\
         match = \"_2XXX\"\nsteps = [\n  { app = \"Dial\", targets = [\"trunk/loadgen/${EXTEN}\"], timeout = 30 },\n  { app = \"Hangup\" },\n]\n",
    )
    .expect("write dialplan.toml");
    let main = fs::read_to_string(config.join("carillon.toml")).expect("read carillon.toml");
    let main = common::set_keys(
        &main,
        "rtp",
        &[
            ("address".to_string(), "\"127.0.0.1\"".to_string()),
            ("kernel_forwarding".to_string(), "true".to_string()),
        ],
    );
    fs::write(config.join("carillon.toml"), main).expect("write carillon.toml");

    let mut sw = env.start();
    assert!(
        sw.wait_log("kernel RTP forwarding attached", Duration::from_secs(5)),
        "the XDP program was not attached (root needed):\n{}",
        sw.log()
    );

    // 20 calls, each holding 4 s of RTP both ways (200 packets per direction).
    let mut cmd = Command::new(load_bin());
    cmd.args([
        "--target",
        &sw.addr().to_string(),
        "--role",
        "both",
        "--uas-listen",
        &format!("127.0.0.1:{uas_port}"),
        "--uac-listen",
        &format!("127.0.0.1:{uac_port}"),
        "--local-ip",
        "127.0.0.1",
        "--callee",
        "2000-2999",
        "--calls",
        "20",
        "--rate",
        "20",
        "--concurrency",
        "20",
        "--duration",
        "4s",
        "--rtp",
        "--codec",
        "pcmu",
        "--ptime",
        "20",
        "--report",
        "json",
        "--max-time",
        "40s",
    ]);
    let run = run_tool(cmd, env.path(), "carillon-load", Duration::from_secs(60));
    assert!(
        run.status.is_some_and(|s| s.success()),
        "carillon-load failed: {}\n{}\nswitch log:\n{}",
        run.stdout,
        run.stderr,
        sw.log()
    );
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON report");
    let n = |path: &str| {
        report
            .pointer(path)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or_else(|| panic!("{path} missing in {report}"))
    };
    assert_eq!(n("/uac/answered"), 20, "{report}");
    assert_eq!(n("/uac/failed"), 0, "{report}");
    for dir in ["uac_to_uas", "uas_to_uac"] {
        let sent = n(&format!("/rtp/{dir}/packets_sent"));
        assert!(
            sent >= 20 * 150,
            "{dir}: only {sent} packets sent: {report}"
        );
        assert_eq!(
            n(&format!("/rtp/{dir}/packets_received")),
            sent,
            "{dir}: {report}"
        );
        assert_eq!(n(&format!("/rtp/{dir}/packets_lost")), 0, "{dir}: {report}");
        assert_eq!(
            n(&format!("/rtp/{dir}/payload_mismatch")),
            0,
            "{dir}: {report}"
        );
        assert_eq!(n(&format!("/rtp/{dir}/reordered")), 0, "{dir}: {report}");
    }

    // The per-leg counters: most packets went through the kernel.
    let closed = || {
        sw.log()
            .lines()
            .filter(|l| l.contains("media leg closed"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while closed().len() < 40 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let lines = closed();
    assert_eq!(lines.len(), 40, "two legs per call:\n{}", sw.log());
    let packets_in: u64 = lines.iter().map(|l| field(l, "packets_in")).sum();
    let in_kernel: u64 = lines.iter().map(|l| field(l, "packets_in_kernel")).sum();
    let lost: u64 = lines.iter().map(|l| field(l, "lost")).sum();
    eprintln!("legs counted {packets_in} packets in, {in_kernel} of them forwarded by the kernel");
    assert!(
        packets_in >= 2 * 20 * 150,
        "the legs counted only {packets_in} packets:\n{}",
        lines.join("\n")
    );
    assert!(
        in_kernel * 10 >= packets_in * 9,
        "only {in_kernel} of {packets_in} packets were forwarded by the kernel:\n{}",
        lines.join("\n")
    );
    assert_eq!(lost, 0, "{}", lines.join("\n"));
    assert!(sw.stop().success(), "{}", sw.log());
}
