//! The shipped example sends nothing off the machine.
//!
//! The switch runs on `config/` unchanged except for loopback listeners, in
//! a network namespace of its own whose default route goes through an
//! interface of its own (one end of a veth pair; IPv6 is off on both ends
//! so the link itself stays silent). Anything the switch sends to an
//! address that is not loopback (an OPTIONS ping, a REGISTER, a DNS look-up
//! of a placeholder host) leaves through that interface, so its transmit
//! counter in the namespace's own `/proc/net/dev` must not grow while the
//! switch runs for longer than the longest qualify interval of the example
//! trunks. A positive control first proves the counter sees a datagram
//! sent to the link's peer address (link-local, inside the namespace).
//!
//! Needs root (`unshare --net`, veth); tests/run.sh runs as root, and there
//! or under CI a machine without these tools fails the test.

mod common;

use common::{
    bin, example_config, free_port, have, peers_required, replace_listeners, report_skip, Running,
};
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The interface carrying the namespace's default route.
const LINK: &str = "v0";

/// The namespace: loopback, and a veth pair with the default route on `v0`.
const SETUP: &str = "set -e
ip link set lo up
ip link add v0 type veth peer name v1
sysctl -qw net.ipv6.conf.v0.disable_ipv6=1 net.ipv6.conf.v1.disable_ipv6=1
ip addr add 169.254.77.1/30 dev v0
ip link set v0 up
ip link set v1 up
ip route add default dev v0
ip neigh replace 169.254.77.2 lladdr 02:00:00:00:77:02 dev v0 nud permanent
echo ready
exec sleep 900";

/// A process holding the namespace open; killed (by its PID) on drop.
struct Namespace {
    holder: Child,
}

impl Namespace {
    fn create() -> Namespace {
        let mut holder = Command::new("unshare")
            .args(["--net", "--", "bash", "-c", SETUP])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn unshare --net");
        let out = holder.stdout.take().expect("holder stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
        let ns = Namespace { holder };
        assert_eq!(line.trim(), "ready", "the namespace setup failed");
        ns
    }

    fn net_ns(&self) -> String {
        format!("--net=/proc/{}/ns/net", self.holder.id())
    }

    /// A command run inside the namespace.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(self.net_ns()).arg("--").arg(program);
        cmd
    }

    /// Transmitted packets of `dev`, from the namespace's own /proc/net/dev.
    fn tx_packets(&self, dev: &str) -> u64 {
        let text = fs::read_to_string(format!("/proc/{}/net/dev", self.holder.id()))
            .expect("read the namespace's /proc/net/dev");
        for line in text.lines() {
            let Some((name, counters)) = line.split_once(':') else {
                continue;
            };
            if name.trim() == dev {
                let fields: Vec<u64> = counters
                    .split_whitespace()
                    .map(|f| f.parse().unwrap_or(0))
                    .collect();
                // receive: bytes packets errs drop fifo frame compressed
                // multicast; transmit: bytes packets ...
                return fields[9];
            }
        }
        panic!("no {dev} in the namespace's /proc/net/dev:\n{text}");
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The longest `qualify_secs` of the example's trunks (0 when none).
fn longest_qualify_secs() -> u64 {
    let text = fs::read_to_string(example_config().join("trunks.toml")).expect("trunks.toml");
    let doc: toml::Table = toml::from_str(&text).expect("trunks.toml is TOML");
    doc.get("trunk")
        .and_then(|t| t.as_table())
        .map(|trunks| {
            trunks
                .values()
                .filter_map(|t| t.get("qualify_secs")?.as_integer())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
        .max(0) as u64
}

/// Sends one SIP request over UDP from inside the namespace and returns
/// the status line of the answer (empty when none came).
fn sip_exchange(ns: &Namespace, port: u16, request: &str) -> String {
    let script = format!(
        "import socket,sys\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         s.bind(('127.0.0.1',0))\n\
         s.settimeout(3)\n\
         req=sys.stdin.read().replace('LOCALPORT',str(s.getsockname()[1])).replace('\\n','\\r\\n')\n\
         s.sendto(req.encode(),('127.0.0.1',{port}))\n\
         try:\n    print(s.recv(65535).decode().split('\\r\\n')[0])\n\
         except socket.timeout:\n    print('')\n"
    );
    let mut child = ns
        .command("python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn python3 in the namespace");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(request.as_bytes()).expect("write request");
    }
    let out = child.wait_with_output().expect("python3 output");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_example_config_sends_nothing_off_the_machine_for_longer_than_any_qualify_interval() {
    let tools = ["unshare", "nsenter", "ip", "sysctl", "python3"];
    if !is_root() || tools.iter().any(|t| !have(t)) {
        assert!(
            !peers_required(),
            "this test needs root and {tools:?} (CI and tests/run.sh must have them)"
        );
        report_skip(
            "containment (example config in a namespace with a default route)",
            "needs root, unshare, nsenter, ip, sysctl and python3",
        );
        return;
    }

    // The example, unchanged but for its listeners.
    let dir = tempfile::Builder::new()
        .prefix("carillon-contain-")
        .tempdir()
        .expect("temp dir");
    let config = dir.path().join("config");
    fs::create_dir_all(&config).expect("config dir");
    common::link_sounds(dir.path());
    for entry in fs::read_dir(example_config()).expect("read config/") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("file type").is_file() {
            fs::copy(entry.path(), config.join(entry.file_name())).expect("copy");
        }
    }
    let port = free_port(&[Ipv4Addr::LOCALHOST.into()]);
    let local = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let main = fs::read_to_string(config.join("carillon.toml")).expect("carillon.toml");
    fs::write(
        config.join("carillon.toml"),
        replace_listeners(&main, &[("udp", local), ("tcp", local)]),
    )
    .expect("write carillon.toml");
    common::assert_trunks_contained(&config);

    let ns = Namespace::create();

    // Positive control: a datagram to the link's peer leaves through v0.
    let before_control = ns.tx_packets(LINK);
    let sent = ns
        .command("python3")
        .args([
            "-c",
            "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('169.254.77.2', 9))",
        ])
        .status()
        .expect("run the control datagram");
    assert!(sent.success(), "the control datagram could not be sent");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        ns.tx_packets(LINK) > before_control,
        "the positive control did not show on {LINK}: the counter cannot prove anything"
    );
    // Settle: the counter must hold still for 2 s (bounded) before the
    // baseline is taken, so that nothing of the control is counted later.
    let settle = Instant::now();
    let mut stable_since = Instant::now();
    let mut seen = ns.tx_packets(LINK);
    while stable_since.elapsed() < Duration::from_secs(2) {
        assert!(
            settle.elapsed() < Duration::from_secs(15),
            "{LINK} kept transmitting before the switch started"
        );
        std::thread::sleep(Duration::from_millis(200));
        let now = ns.tx_packets(LINK);
        if now != seen {
            seen = now;
            stable_since = Instant::now();
        }
    }

    // The switch, in the namespace, run by nsenter (which execs it: the
    // child's PID is the switch's).
    let baseline = ns.tx_packets(LINK);
    let log = dir.path().join("switch.log");
    let out = fs::File::create(&log).expect("log");
    let child = ns
        .command(bin().to_str().expect("utf-8 binary path"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .current_dir(dir.path())
        .env("RUST_LOG", "debug")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().expect("clone")))
        .stderr(Stdio::from(out))
        .spawn()
        .expect("spawn the switch in the namespace");
    let mut switch = Running::adopt(child, port, log, 2);
    let started = Instant::now();

    // It serves on loopback meanwhile: OPTIONS and a challenged REGISTER.
    let options = format!(
        "OPTIONS sip:127.0.0.1:{port} SIP/2.0\n\
         Via: SIP/2.0/UDP 127.0.0.1:LOCALPORT;branch=z9hG4bK-contain-1;rport\n\
         Max-Forwards: 70\nFrom: <sip:probe@127.0.0.1>;tag=c1\nTo: <sip:127.0.0.1:{port}>\n\
         Call-ID: contain-1\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n"
    );
    assert!(
        sip_exchange(&ns, port, &options).starts_with("SIP/2.0 200"),
        "the switch in the namespace did not answer OPTIONS; log:\n{}",
        switch.log()
    );
    let register = format!(
        "REGISTER sip:127.0.0.1:{port} SIP/2.0\n\
         Via: SIP/2.0/UDP 127.0.0.1:LOCALPORT;branch=z9hG4bK-contain-2;rport\n\
         Max-Forwards: 70\nFrom: <sip:100@127.0.0.1>;tag=c2\nTo: <sip:100@127.0.0.1>\n\
         Call-ID: contain-2\nCSeq: 1 REGISTER\nContact: <sip:100@127.0.0.1:LOCALPORT>\n\
         Expires: 60\nContent-Length: 0\n\n"
    );
    assert!(
        sip_exchange(&ns, port, &register).starts_with("SIP/2.0 401"),
        "the switch did not challenge a REGISTER; log:\n{}",
        switch.log()
    );

    let run_for = Duration::from_secs(longest_qualify_secs() + 5).max(Duration::from_secs(10));
    let mut last = baseline;
    while started.elapsed() < run_for {
        std::thread::sleep(Duration::from_secs(1));
        last = ns.tx_packets(LINK);
        if last != baseline {
            break;
        }
        assert!(
            switch.is_running(),
            "the switch exited; log:\n{}",
            switch.log()
        );
    }
    let log_text = switch.log();
    switch.stop();
    assert_eq!(
        last,
        baseline,
        "the switch on the example config sent {} packet(s) through the default route \
         within {:?}; log:\n{log_text}",
        last - baseline,
        started.elapsed()
    );
}
