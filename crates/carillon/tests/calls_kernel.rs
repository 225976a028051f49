//! The kernel fast path end to end: the real switch with
//! `[rtp] kernel_forwarding = true` (the eBPF program at TC ingress) relays
//! calls placed and answered by `carillon-load` with 20 ms G.711 both ways.
//! Every packet must arrive, in order, with its payload intact, and the
//! switch's per-leg counters must show that the kernel, not userspace,
//! forwarded most of them. Once on loopback (both peers local), once with
//! the peers in a network namespace behind a veth pair (remote peers: the
//! kernel routes the rewritten datagrams out again). Needs root (CAP_BPF,
//! CAP_NET_ADMIN, network namespaces), as CI has.

mod common;

use common::{run_tool, Env, Options, Running};
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// True (with a loud line) when tests/run.sh found no BPF on this machine.
fn skipped() -> bool {
    let skip = std::env::var_os("CARILLON_SKIP_KERNELPATH").is_some();
    if skip {
        common::report_skip(
            "kernel RTP path (calls_kernel)",
            "CARILLON_SKIP_KERNELPATH is set: the kernel refuses bpf()",
        );
    }
    skip
}

/// `carillon-load`, built next to the `carillon` binary by
/// `cargo test --workspace` (or named by `CARILLON_LOAD_BIN`).
fn load_bin() -> PathBuf {
    if let Some(b) = std::env::var_os("CARILLON_LOAD_BIN") {
        return PathBuf::from(b);
    }
    let load = common::bin().with_file_name("carillon-load");
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

/// Runs a command that must succeed (network setup).
fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A switch whose trunk `loadgen` is `carillon-load` at `peer` (its
/// answering side on `uas_port`), listening for SIP and RTP on `switch_ip`,
/// with kernel forwarding on; the trunk allows codec `allow` only.
fn start_switch(
    switch_ip: IpAddr,
    peer: IpAddr,
    uas_port: u16,
    allow: &str,
) -> (Env, Running, SocketAddr) {
    let mut env = Env::new(
        &Options {
            rust_log: Some("info".into()),
            ..Options::default()
        }
        .users("[[user]]\nextension = \"100\"\npassword = \"unused-100\"\ncontext = \"bench\"\n")
        .security("exempt", &format!("[\"{peer}\"]")),
    );
    let config = env.config_dir();
    fs::write(
        config.join("trunks.toml"),
        format!(
            "[trunk.loadgen]\nkind = \"carrier\"\ncontacts = [\"sip:{peer}:{uas_port}\"]\n\
             identify = [\"{peer}\"]\ncontext = \"bench\"\nallow = [\"{allow}\"]\n"
        ),
    )
    .expect("write trunks.toml");
    fs::write(
        config.join("dialplan.toml"),
        "[context.bench]\nallow_trunks = [\"loadgen\"]\n\n[[context.bench.extension]]\n\
         match = \"_2XXX\"\nsteps = [\n  { app = \"Dial\", targets = [\"trunk/loadgen/${EXTEN}\"], timeout = 30 },\n  { app = \"Hangup\" },\n]\n",
    )
    .expect("write dialplan.toml");
    let sip = SocketAddr::new(switch_ip, env.port);
    let main = fs::read_to_string(config.join("carillon.toml")).expect("read carillon.toml");
    let main = common::replace_listeners(&main, &[("udp", sip), ("tcp", sip)]);
    let main = common::set_keys(
        &main,
        "rtp",
        &[
            ("address", format!("\"{switch_ip}\"")),
            ("kernel_forwarding", "true".to_string()),
        ],
    );
    fs::write(config.join("carillon.toml"), main).expect("write carillon.toml");
    let sw = env.start();
    assert!(
        sw.wait_log("kernel RTP forwarding attached", Duration::from_secs(5)),
        "the kernel RTP program was not attached (root needed):\n{}",
        sw.log()
    );
    (env, sw, sip)
}

/// Where `carillon-load` runs and listens.
struct LoadSide<'a> {
    /// Network namespace to run in, if any.
    netns: Option<&'a str>,
    ip: IpAddr,
    uas_port: u16,
    uac_port: u16,
    /// What the answering side speaks (the caller always offers µ-law).
    uas_codec: &'a str,
}

/// `carillon-load` placing `calls` calls of 4 s with RTP from `side`
/// through the switch at `sip`.
fn run_calls(env: &Env, sw: &Running, side: &LoadSide, sip: SocketAddr, calls: u64) {
    let LoadSide {
        netns,
        ip: peer,
        uas_port,
        uac_port,
        uas_codec,
    } = *side;
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(load_bin());
            c
        }
        None => Command::new(load_bin()),
    };
    let calls_s = calls.to_string();
    cmd.args([
        "--target",
        &sip.to_string(),
        "--role",
        "both",
        "--uas-listen",
        &format!("{peer}:{uas_port}"),
        "--uac-listen",
        &format!("{peer}:{uac_port}"),
        "--local-ip",
        &peer.to_string(),
        "--callee",
        "2000-2999",
        "--calls",
        &calls_s,
        "--rate",
        &calls_s,
        "--concurrency",
        &calls_s,
        "--duration",
        "4s",
        "--rtp",
        "--codec",
        "pcmu",
        "--uas-codec",
        uas_codec,
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
    assert_eq!(n("/uac/answered"), calls, "{report}");
    assert_eq!(n("/uac/failed"), 0, "{report}");
    for dir in ["uac_to_uas", "uas_to_uac"] {
        let sent = n(&format!("/rtp/{dir}/packets_sent"));
        assert!(
            sent >= calls * 150,
            "{dir}: only {sent} packets sent: {report}"
        );
        // A packet sent as the call ends may meet a closed leg: expected
        // counts each stream up to the last packet that arrived.
        let expected = n(&format!("/rtp/{dir}/packets_expected"));
        assert!(expected + calls >= sent, "{dir}: {report}");
        assert_eq!(
            n(&format!("/rtp/{dir}/packets_received")),
            expected,
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
}

/// The legs' counters once every call has ended: most packets went
/// through the kernel, none was lost.
fn assert_mostly_kernel(sw: &Running, calls: u64) {
    let closed = || {
        sw.log()
            .lines()
            .filter(|l| l.contains("media leg closed"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let legs = usize::try_from(2 * calls).expect("small");
    let deadline = Instant::now() + Duration::from_secs(10);
    while closed().len() < legs && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let lines = closed();
    assert_eq!(lines.len(), legs, "two legs per call:\n{}", sw.log());
    let packets_in: u64 = lines.iter().map(|l| field(l, "packets_in")).sum();
    let in_kernel: u64 = lines.iter().map(|l| field(l, "packets_in_kernel")).sum();
    let lost: u64 = lines.iter().map(|l| field(l, "lost")).sum();
    eprintln!("legs counted {packets_in} packets in, {in_kernel} of them forwarded by the kernel");
    assert!(
        packets_in >= 2 * calls * 150,
        "the legs counted only {packets_in} packets:\n{}",
        lines.join("\n")
    );
    assert!(
        in_kernel * 10 >= packets_in * 9,
        "only {in_kernel} of {packets_in} packets were forwarded by the kernel:\n{}",
        lines.join("\n")
    );
    assert_eq!(lost, 0, "{}", lines.join("\n"));
}

/// 20 calls from `side` through a switch on `switch_ip` whose trunk
/// allows `allow`: all intact, most packets forwarded by the kernel.
fn relay_through_kernel(switch_ip: IpAddr, side: &LoadSide, allow: &str) {
    let (env, mut sw, sip) = start_switch(switch_ip, side.ip, side.uas_port, allow);
    run_calls(&env, &sw, side, sip, 20);
    assert_mostly_kernel(&sw, 20);
    assert!(sw.stop().success(), "{}", sw.log());
}

/// The load tool on loopback, its callee side speaking `uas_codec`.
fn loopback_side(uas_codec: &str) -> LoadSide<'_> {
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    LoadSide {
        netns: None,
        ip: local,
        uas_port: common::free_port(&[local]),
        uac_port: common::free_port(&[local]),
        uas_codec,
    }
}

#[test]
fn relayed_calls_on_loopback_are_forwarded_by_the_kernel_with_every_packet_intact() {
    if skipped() {
        return;
    }
    relay_through_kernel(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        &loopback_side("pcmu"),
        "ulaw",
    );
}

/// A network namespace with a veth pair to this one; removed on drop.
struct PeerNamespace {
    name: String,
}

impl PeerNamespace {
    /// `ours`/`theirs`: the /24 addresses on each end.
    fn create(tag: u8, ours: Ipv4Addr, theirs: Ipv4Addr) -> PeerNamespace {
        let id = std::process::id() % 10_000;
        let name = format!("carillon-k{id}-{tag}");
        let (a, b) = (format!("ck{id}a{tag}"), format!("ck{id}b{tag}"));
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        sh(&["ip", "netns", "add", &name]);
        let ns = PeerNamespace { name };
        sh(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b]);
        sh(&["ip", "link", "set", &b, "netns", &ns.name]);
        sh(&["ip", "addr", "add", &format!("{ours}/24"), "dev", &a]);
        sh(&["ip", "link", "set", &a, "up"]);
        let exec = |args: &[&str]| {
            let mut all = vec!["ip", "netns", "exec", ns.name.as_str()];
            all.extend_from_slice(args);
            sh(&all);
        };
        exec(&["ip", "addr", "add", &format!("{theirs}/24"), "dev", &b]);
        exec(&["ip", "link", "set", &b, "up"]);
        exec(&["ip", "link", "set", "lo", "up"]);
        common::declare_test_host(theirs.into());
        ns
    }
}

impl Drop for PeerNamespace {
    fn drop(&mut self) {
        // Deleting the namespace destroys its veth end and with it the pair.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn relayed_calls_to_peers_behind_a_veth_are_forwarded_by_the_kernel() {
    if skipped() {
        return;
    }
    let tag = u8::try_from(std::process::id() % 200).expect("small") + 20;
    let ours = Ipv4Addr::new(10, 213, tag, 1);
    let theirs = Ipv4Addr::new(10, 213, tag, 2);
    let ns = PeerNamespace::create(tag, ours, theirs);
    // Ports inside the fresh namespace are all free.
    let side = LoadSide {
        netns: Some(&ns.name),
        ip: IpAddr::V4(theirs),
        uas_port: 25060,
        uac_port: 25062,
        uas_codec: "pcmu",
    };
    relay_through_kernel(IpAddr::V4(ours), &side, "ulaw");
}

#[test]
fn ulaw_to_alaw_calls_are_transcoded_by_the_kernel_with_every_payload_intact() {
    if skipped() {
        return;
    }
    // The callee side speaks only A-law and the trunk allows only alaw:
    // every packet is transcoded, and the load tool checks each payload.
    relay_through_kernel(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        &loopback_side("pcma"),
        "alaw",
    );
}
