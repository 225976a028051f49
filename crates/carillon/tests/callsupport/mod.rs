//! Harness of the end-to-end call tests (`calls_*.rs`): a private copy of
//! `config/` on free loopback ports with its own RTP range and database,
//! the real `carillon` binary started on it with its log captured, bounded
//! runs of SIPp and baresip, G.711 pcap and WAV writers, a WAV reader with
//! a Goertzel tone check, the switch's log lines as key/value records, CDRs
//! read back with `carillon-store`, and a TCP forwarder that makes a
//! PostgreSQL server vanish and come back. Every wait is bounded; the only
//! processes ever signalled are the ones started here, by their PID.

#![allow(dead_code)]

pub mod baresip;
#[path = "../common/http.rs"]
pub mod http;
pub mod ivr;
#[path = "../common/process.rs"]
mod process;
#[path = "../common/toml_text.rs"]
mod toml_text;
#[allow(unused_imports)]
pub use process::{
    bin, block_on, have, peers_required, repo_root, report_skip, run_tool, strip_ansi, Bg, ToolRun,
};

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use carillon_cdr::CallRecord;
use carillon_codec::Goertzel;

/// A SIPp scenario of `tests/sipp/`.
pub fn scenario(name: &str) -> String {
    repo_root()
        .join("tests/sipp")
        .join(name)
        .display()
        .to_string()
}

pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// How long the switch may take to bind its listeners.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopping switch may take to flush and exit.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

static COUNTER: AtomicU64 = AtomicU64::new(0);
/// The next RTP range slot of this process (see [`CallEnv::new`]).
static RTP_SLOT: AtomicU64 = AtomicU64::new(0);

/// A token unique within this test process.
pub fn unique() -> u64 {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (u64::from(std::process::id()) << 20) ^ u64::from(t) ^ (n << 40)
}

pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A port free for UDP and TCP on 127.0.0.1 (and `extra` ports above it
/// free for UDP: SIPp takes media port +1..+3, baresip SIP port +1).
pub fn free_port_span(extra: u16) -> u16 {
    for _ in 0..500 {
        let Ok(probe) = UdpSocket::bind((LOCALHOST, 0)) else {
            continue;
        };
        let port = probe.local_addr().expect("local addr").port();
        if port.checked_add(extra).is_none() {
            continue;
        }
        let Ok(_tcp) = TcpListener::bind((LOCALHOST, port)) else {
            continue;
        };
        let mut held = Vec::new();
        let ok = (1..=extra).all(|i| match UdpSocket::bind((LOCALHOST, port + i)) {
            Ok(s) => {
                held.push(s);
                true
            }
            Err(_) => false,
        });
        if ok {
            return port;
        }
    }
    panic!("no free port found");
}

pub fn free_port() -> u16 {
    free_port_span(0)
}

/// A UDP port free on `ip` (127.0.0.1 or another loopback address), with
/// `extra` ports above it free there too, taken from 30000..32767: below
/// the kernel's ephemeral ports (32768 up) and above every test switch's
/// RTP range (10000..29999, see [`CallEnv::new`]), so that a peer's port
/// never lands in a switch's RTP range and makes its bind fail.
pub fn free_udp_port_on(ip: IpAddr, extra: u16) -> u16 {
    const LOW: u16 = 30000;
    const SPAN: u16 = 2700;
    let start = u16::try_from(unique() % u64::from(SPAN)).unwrap_or(0);
    for i in 0..SPAN {
        let port = LOW + (start + i * 7) % SPAN;
        let mut held = Vec::new();
        let ok = (0..=extra).all(|k| match UdpSocket::bind((ip, port + k)) {
            Ok(s) => {
                held.push(s);
                true
            }
            Err(_) => false,
        });
        if ok {
            return port;
        }
    }
    panic!("no free UDP port found on {ip}");
}

pub use toml_text::set_keys;

/// Drops every `[[listen]]` table and appends UDP and TCP on `addr`.
fn replace_listeners(text: &str, addr: SocketAddr) -> String {
    let mut out = String::new();
    let mut in_listen = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_listen = t.starts_with("[[listen]]");
        }
        if !in_listen {
            out.push_str(line);
            out.push('\n');
        }
    }
    for transport in ["udp", "tcp"] {
        out.push_str(&format!(
            "\n[[listen]]\ntransport = \"{transport}\"\naddress = \"{addr}\"\n"
        ));
    }
    out
}

/// What a test changes in the copied example configuration.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Replaces `users.toml`.
    pub users_toml: Option<String>,
    /// `[database] url` (default: SQLite in the test directory).
    pub db_url: Option<String>,
    /// `RUST_LOG` (default `info`).
    pub rust_log: Option<String>,
    /// Extra `[security]` keys and raw TOML values.
    pub security: Vec<(&'static str, String)>,
}

/// The example users 100 and 101 with their codecs restricted (and 8013,
/// 8014 as they are: the example dialplan dials them, and a `Dial` to an
/// unknown user is a configuration error).
pub fn users_with_codecs(c100: &[&str], c101: &[&str]) -> String {
    let list = |c: &[&str]| {
        c.iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "[defaults]\ncontext = \"internal\"\ncodecs = [\"ulaw\", \"alaw\"]\nmax_contacts = 3\n\n\
         [[user]]\nextension = \"100\"\npassword = \"changeme100\"\ncodecs = [{}]\n\n\
         [[user]]\nextension = \"101\"\npassword = \"changeme101\"\ncodecs = [{}]\n\n\
         [[user]]\nextension = \"8013\"\npassword = \"zoiper8013\"\n\n\
         [[user]]\nextension = \"8014\"\npassword = \"zoiper8014\"\n",
        list(c100),
        list(c101)
    )
}

/// A private configuration, RTP range and database for one switch.
pub struct CallEnv {
    dir: tempfile::TempDir,
    pub port: u16,
    /// The `[ami]` listener's port (127.0.0.1).
    pub ami_port: u16,
    /// The management API's port (`[api] address` on 127.0.0.1).
    pub api_port: u16,
    pub rtp: (u16, u16),
    pub db_url: String,
    rust_log: String,
    starts: usize,
}

impl CallEnv {
    pub fn new(opts: &Options) -> CallEnv {
        let dir = tempfile::Builder::new()
            .prefix("carillon-calls-")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        // A private 400-port RTP range per switch, so that switches of
        // tests running side by side never compete for ports. Below the
        // kernel's ephemeral range (32768-60999), so a port the OS hands
        // to a test peer can never be one the switch wants for RTP.
        // Consecutive switches of this process get consecutive slots (a
        // random slot let two tests running side by side pick the same
        // one now and then, and one of them could not bind its ports).
        let slot = u16::try_from(
            (u64::from(std::process::id()) + RTP_SLOT.fetch_add(1, Ordering::Relaxed)) % 50,
        )
        .unwrap_or(0);
        let base = 10000 + slot * 400;
        let rtp = (base, base + 398);
        let config = dir.path().join("config");
        fs::create_dir_all(&config).expect("config dir");
        let example = repo_root().join("config");
        for entry in fs::read_dir(&example).expect("read example config") {
            let entry = entry.expect("dir entry");
            if entry.file_type().expect("file type").is_file() {
                fs::copy(entry.path(), config.join(entry.file_name())).expect("copy config");
            }
        }
        process::link_sounds(dir.path());
        let var = dir.path().join("var");
        fs::create_dir_all(&var).expect("var dir");
        let db_url = opts
            .db_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", var.join("carillon.db").display()));
        let main = fs::read_to_string(config.join("carillon.toml")).expect("read carillon.toml");
        let main = replace_listeners(&main, SocketAddr::new(LOCALHOST, port));
        let main = set_keys(
            &main,
            "database",
            &[
                ("url", format!("\"{db_url}\"")),
                (
                    "cdr_spool",
                    format!("\"{}\"", var.join("cdr-spool.jsonl").display()),
                ),
            ],
        );
        let main = set_keys(
            &main,
            "rtp",
            &[
                ("port_min", rtp.0.to_string()),
                ("port_max", rtp.1.to_string()),
            ],
        );
        // Every test switch writes its events (read with `Switch::events`).
        let main = set_keys(
            &main,
            "events",
            &[(
                "file",
                format!("\"{}\"", var.join("events.jsonl").display()),
            )],
        );
        // AMI on a free port of its own (the example's 5038 would collide
        // between tests running side by side).
        let ami_port = free_port();
        let main = set_keys(
            &main,
            "ami",
            &[("address", format!("\"127.0.0.1:{ami_port}\""))],
        );
        // The API on a port of its own per switch.
        let api_port = http::free_tcp_port(&[port, ami_port]);
        let main = set_keys(
            &main,
            "api",
            &[("address", format!("\"127.0.0.1:{api_port}\""))],
        );
        let mut security = vec![("exempt", "[\"127.0.0.1\"]".to_owned())];
        security.extend(opts.security.iter().cloned());
        let main = set_keys(&main, "security", &security);
        fs::write(config.join("carillon.toml"), main).expect("write carillon.toml");
        if let Some(users) = &opts.users_toml {
            fs::write(config.join("users.toml"), users).expect("write users.toml");
        }
        CallEnv {
            dir,
            port,
            ami_port,
            api_port,
            rtp,
            db_url,
            // CARILLON_TEST_LOG overrides the level (for debugging a failure).
            rust_log: std::env::var("CARILLON_TEST_LOG")
                .ok()
                .or_else(|| opts.rust_log.clone())
                .unwrap_or_else(|| "info".into()),
            starts: 0,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    pub fn spool_path(&self) -> PathBuf {
        self.dir.path().join("var/cdr-spool.jsonl")
    }

    /// The switch's event file (`[events] file`).
    pub fn events_path(&self) -> PathBuf {
        self.dir.path().join("var/events.jsonl")
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(LOCALHOST, self.port)
    }

    /// Starts the binary and waits (bounded) until both listeners are bound.
    pub fn start(&mut self) -> Switch {
        self.starts += 1;
        let log = self.dir.path().join(format!("switch-{}.log", self.starts));
        let child =
            process::spawn_switch(&self.config_dir(), self.dir.path(), &self.rust_log, &log);
        let mut sw = Switch {
            child,
            port: self.port,
            log,
            events: self.events_path(),
            stopped: None,
            api: SocketAddr::new(LOCALHOST, self.api_port),
            tasks_at_start: None,
        };
        process::wait_ready(&mut sw.child, &sw.log, 2, READY_TIMEOUT);
        sw.tasks_at_start = http::metrics(sw.api)
            .ok()
            .and_then(|m| m.get("carillon_tokio_alive_tasks").copied());
        sw
    }

    /// Starts the binary and returns it without waiting for readiness.
    pub fn spawn_raw(&mut self) -> Switch {
        self.starts += 1;
        let log = self.dir.path().join(format!("switch-{}.log", self.starts));
        let child =
            process::spawn_switch(&self.config_dir(), self.dir.path(), &self.rust_log, &log);
        Switch {
            child,
            port: self.port,
            log,
            events: self.events_path(),
            stopped: None,
            api: SocketAddr::new(LOCALHOST, self.api_port),
            tasks_at_start: None,
        }
    }
}

/// One log line of the switch: its message and `key=value` fields.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub raw: String,
    pub fields: HashMap<String, String>,
}

impl LogLine {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    pub fn num(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(|v| v.parse().ok())
    }
}

/// Splits `… message key=value key="quoted value" …` into fields.
pub fn parse_fields(line: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = line;
    while let Some(eq) = rest.find('=') {
        let key_start = rest[..eq].rfind(' ').map_or(0, |i| i + 1);
        let key = rest[key_start..eq].to_owned();
        let after = &rest[eq + 1..];
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            (q[..end].to_owned(), q.get(end + 1..).unwrap_or(""))
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (after[..end].to_owned(), &after[end..])
        };
        out.insert(key, value);
        rest = next;
    }
    out
}

/// A running switch; SIGTERM (then SIGKILL after a bounded wait) on drop.
pub struct Switch {
    child: Child,
    pub port: u16,
    log: PathBuf,
    /// Its `[events] file`.
    events: PathBuf,
    stopped: Option<ExitStatus>,
    /// Its management API.
    pub api: SocketAddr,
    /// The API runtime's alive tasks once it was ready, before any call.
    tasks_at_start: Option<f64>,
}

impl Switch {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(LOCALHOST, self.port)
    }

    pub fn log(&self) -> String {
        strip_ansi(&String::from_utf8_lossy(
            &fs::read(&self.log).unwrap_or_default(),
        ))
    }

    /// Log lines containing `needle`, with their fields.
    pub fn lines(&self, needle: &str) -> Vec<LogLine> {
        self.log()
            .lines()
            .filter(|l| l.contains(needle))
            .map(|l| LogLine {
                raw: l.to_owned(),
                fields: parse_fields(l),
            })
            .collect()
    }

    /// Waits (bounded) until at least `n` lines contain `needle`.
    pub fn wait_lines(&self, needle: &str, n: usize, timeout: Duration) -> Vec<LogLine> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self.lines(needle);
            if found.len() >= n || Instant::now() >= deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The switch events written so far (complete lines; a line that does
    /// not parse fails the test).
    pub fn events(&self) -> Vec<carillon_events::EventRecord> {
        let text = fs::read_to_string(&self.events).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |i| &text[..i]);
        complete
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                carillon_events::EventRecord::from_json(l)
                    .unwrap_or_else(|e| panic!("event line {l:?}: {e}"))
            })
            .collect()
    }

    /// Waits (bounded) until at least `n` events match `pred`; the
    /// matching ones (fewer on timeout).
    pub fn wait_events(
        &self,
        n: usize,
        timeout: Duration,
        pred: impl Fn(&carillon_events::SwitchEvent) -> bool,
    ) -> Vec<carillon_events::EventRecord> {
        let deadline = Instant::now() + timeout;
        loop {
            let found: Vec<_> = self
                .events()
                .into_iter()
                .filter(|e| pred(&e.event))
                .collect();
            if found.len() >= n || Instant::now() >= deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The DTMF events so far, waiting (bounded) for at least `n`.
    pub fn wait_dtmf(&self, n: usize, timeout: Duration) -> Vec<carillon_events::EventRecord> {
        self.wait_events(n, timeout, |e| {
            matches!(e, carillon_events::SwitchEvent::Dtmf { .. })
        })
    }

    /// The callers' `channel_created` events so far: one per call the
    /// switch started (an outbound leg's channel is not counted).
    pub fn calls_started(&self) -> Vec<carillon_events::SwitchEvent> {
        self.events()
            .into_iter()
            .map(|e| e.event)
            .filter(|e| {
                matches!(
                    e,
                    carillon_events::SwitchEvent::ChannelCreated {
                        direction: carillon_events::Direction::Inbound,
                        ..
                    }
                )
            })
            .collect()
    }

    /// The `hangup` events of callers' channels so far: one per started
    /// call that ended.
    pub fn calls_ended(&self) -> Vec<carillon_events::SwitchEvent> {
        let callers: Vec<String> = self
            .calls_started()
            .into_iter()
            .filter_map(|e| match e {
                carillon_events::SwitchEvent::ChannelCreated { channel, .. } => Some(channel),
                _ => None,
            })
            .collect();
        self.events()
            .into_iter()
            .map(|e| e.event)
            .filter(|e| {
                matches!(e, carillon_events::SwitchEvent::Hangup { channel, .. } if callers.contains(channel))
            })
            .collect()
    }

    /// Waits (bounded) until at least `n` calls ended; their callers'
    /// `hangup` events (fewer on timeout).
    pub fn wait_calls_ended(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Vec<carillon_events::SwitchEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            let ended = self.calls_ended();
            if ended.len() >= n || Instant::now() >= deadline {
                return ended;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The `bridged` events so far (a call answered and joined).
    pub fn bridged(&self) -> Vec<carillon_events::SwitchEvent> {
        self.events()
            .into_iter()
            .map(|e| e.event)
            .filter(|e| matches!(e, carillon_events::SwitchEvent::Bridged { .. }))
            .collect()
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits (bounded) for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                self.stopped = Some(s);
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls the API's `/metrics` (bounded by `timeout`) until calls, RTP
    /// ports and client transactions are 0 and the API runtime's alive
    /// tasks are back to their number before the test's calls; panics
    /// with the figures and the log otherwise. Call tests end with it.
    pub fn assert_idle(&self, timeout: Duration) {
        if let Err(e) = http::wait_idle(self.api, self.tasks_at_start, timeout) {
            panic!("{e}; log:\n{}", self.log());
        }
    }

    /// SIGHUP: the switch reloads its configuration.
    pub fn reload(&self) {
        self.signal("HUP");
    }

    fn signal(&self, name: &str) {
        let _ = Command::new("kill")
            .arg("-s")
            .arg(name)
            .arg(self.pid().to_string())
            .status();
    }

    /// SIGTERM and a bounded wait for the exit; SIGKILL if it hangs.
    pub fn stop(&mut self) -> ExitStatus {
        if let Some(s) = self.stopped {
            return s;
        }
        if let Ok(Some(s)) = self.child.try_wait() {
            self.stopped = Some(s);
            return s;
        }
        self.signal("TERM");
        if let Some(s) = self.wait_exit(STOP_TIMEOUT) {
            return s;
        }
        let _ = self.child.kill();
        let s = self.child.wait().expect("wait after kill");
        self.stopped = Some(s);
        panic!(
            "carillon did not stop within {STOP_TIMEOUT:?} of SIGTERM; log:\n{}",
            self.log()
        );
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        if self.stopped.is_some() {
            return;
        }
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        self.signal("TERM");
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// External tools
// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// SIPp
// ---------------------------------------------------------------------------

/// Writes a SIPp injection file (`SEQUENTIAL` and the given lines).
pub fn write_csv(dir: &Path, name: &str, lines: &[String]) -> String {
    let path = dir.join(name);
    let mut s = String::from("SEQUENTIAL\n");
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    fs::write(&path, s).expect("write csv");
    path.display().to_string()
}

/// `user;[authentication username=user password=pw]` and more fields.
pub fn auth_line(user: &str, password: &str, more: &[&str]) -> String {
    let mut l = format!("{user};[authentication username={user} password={password}]");
    for m in more {
        l.push(';');
        l.push_str(m);
    }
    l
}

/// Registers `user` with SIPp from 127.0.0.1:`sip_port` (the contact a
/// SIPp UAS will then listen on); asserts it succeeded.
pub fn sipp_register(sw: &Switch, dir: &Path, user: &str, password: &str, sip_port: u16) {
    let csv = write_csv(
        dir,
        &format!("reg-{user}-{sip_port}.csv"),
        &[auth_line(user, password, &[])],
    );
    let mut cmd = Command::new("sipp");
    cmd.current_dir(dir)
        .arg(sw.addr().to_string())
        .args(["-sf", &scenario("register_auth.xml")])
        .args(["-inf", &csv])
        .args(["-i", "127.0.0.1", "-p", &sip_port.to_string()])
        .args(["-m", "1", "-timeout", "10s", "-timeout_error", "-nostdin"]);
    let run = run_tool(
        cmd,
        dir,
        &format!("sipp-reg-{user}-{sip_port}"),
        Duration::from_secs(15),
    );
    assert!(
        run.ok(),
        "SIPp could not register {user}: {:?}\n{}\n{}\nswitch log:\n{}",
        run.status,
        run.stdout,
        run.stderr,
        sw.log()
    );
}

/// A SIPp command with the common flags: bounded, no keyboard, stats file.
pub fn sipp_cmd(dir: &Path, name: &str, sip_port: u16) -> Command {
    sipp_cmd_on(dir, name, LOCALHOST, sip_port)
}

/// [`sipp_cmd`] with SIPp bound to another loopback address (127.0.0.2…),
/// for a peer the switch must tell apart by source address (a trunk).
pub fn sipp_cmd_on(dir: &Path, name: &str, ip: IpAddr, sip_port: u16) -> Command {
    let mut cmd = Command::new("sipp");
    cmd.current_dir(dir)
        .args(["-i", &ip.to_string(), "-p", &sip_port.to_string()])
        .args(["-nostdin", "-timeout_error"])
        .args(["-trace_stat", "-stf", &format!("{name}-stat.csv")])
        .args(["-trace_err", "-error_file", &format!("{name}-err.log")])
        .args(["-trace_msg", "-message_file", &format!("{name}-msg.log")]);
    cmd
}

/// The last row of a SIPp `-trace_stat` file, column → value.
pub fn sipp_stats(dir: &Path, name: &str) -> HashMap<String, String> {
    let csv = fs::read_to_string(dir.join(format!("{name}-stat.csv"))).unwrap_or_default();
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return HashMap::new();
    };
    let Some(last) = lines.next_back() else {
        return HashMap::new();
    };
    header
        .split(';')
        .zip(last.split(';'))
        .map(|(h, v)| (h.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// A cumulative SIPp counter (`SuccessfulCall`, `FailedCall`, …).
pub fn sipp_count(stats: &HashMap<String, String>, counter: &str) -> u64 {
    stats
        .get(&format!("{counter}(C)"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub const PW100: &str = "changeme100";
pub const PW101: &str = "changeme101";

pub fn require_sipp() {
    assert!(
        have("sipp"),
        "sipp is not installed (Debian package sip-tester)"
    );
}

/// A switch with 101 registered from a SIPp socket; returns the switch
/// and the UAS's SIP and media ports.
pub fn switch_with_101(env: &mut CallEnv) -> (Switch, u16, u16) {
    let sw = env.start();
    let uas_sip = free_port_span(1);
    let uas_media = free_port_span(3);
    sipp_register(&sw, env.path(), "101", PW101, uas_sip);
    (sw, uas_sip, uas_media)
}

/// A SIPp UAS on `uas_sip` (echoing RTP) for `calls` calls.
pub fn start_uas(
    env: &CallEnv,
    name: &str,
    scenario_file: Option<&str>,
    uas_sip: u16,
    uas_media: u16,
    calls: u32,
) -> Bg {
    let mut cmd = sipp_cmd(env.path(), name, uas_sip);
    match scenario_file {
        Some(f) => cmd.args(["-sf", &scenario(f)]),
        None => cmd.args(["-sn", "uas"]),
    };
    cmd.args(["-mp", &uas_media.to_string(), "-rtp_echo"])
        .args(["-m", &calls.to_string(), "-timeout", "40s"]);
    let bg = Bg::spawn(cmd, env.path(), name, Duration::from_secs(45));
    // SIPp binds its socket at once; give it a moment to be there before
    // the switch sends the INVITE (a UDP INVITE would be retransmitted
    // anyway).
    std::thread::sleep(Duration::from_millis(300));
    bg
}

/// `user` registered (SIPp) from the socket of a SIPp UAS `name`, which
/// then runs `scenario_file` for one call (RTP echoed).
pub fn registered_uas(
    env: &CallEnv,
    sw: &Switch,
    name: &str,
    user: &str,
    password: &str,
    scenario_file: &str,
) -> Bg {
    let (sip, media) = (free_port_span(1), free_port_span(3));
    sipp_register(sw, env.path(), user, password, sip);
    start_uas(env, name, Some(scenario_file), sip, media, 1)
}

/// SIPp as phone 100 (UDP, digest-authenticated) dialling `number` with
/// `scenario_file` (fields: 100, credentials, number), in the background;
/// SIPp gives up after `timeout` (whole seconds) and is killed 5 s later.
pub fn sipp_100_dials(
    env: &CallEnv,
    sw: &Switch,
    name: &str,
    scenario_file: &str,
    number: &str,
    timeout: Duration,
) -> Bg {
    let csv = write_csv(
        env.path(),
        &format!("{name}.csv"),
        &[auth_line("100", PW100, &[number])],
    );
    let sip = free_udp_port_on(LOCALHOST, 1);
    let media = free_udp_port_on(LOCALHOST, 3);
    let mut cmd = sipp_cmd(env.path(), name, sip);
    cmd.arg(sw.addr().to_string())
        .args(["-sf", &scenario(scenario_file)])
        .args(["-inf", &csv, "-mp", &media.to_string()])
        .args(["-m", "1", "-timeout", &format!("{}s", timeout.as_secs())]);
    Bg::spawn(cmd, env.path(), name, timeout + Duration::from_secs(5))
}

/// A carrier's call from `ip` (no credentials: the trunk knows it by its
/// address) to `number`, from `caller`: SIPp `trunk_carrier_uac.xml`
/// (which plays `tone.pcap` of the test directory), in the background;
/// SIPp gives up after `timeout` (whole seconds) and is killed 5 s later.
pub fn sipp_carrier_calls(
    env: &CallEnv,
    sw: &Switch,
    ip: IpAddr,
    number: &str,
    caller: &str,
    timeout: Duration,
) -> Bg {
    let csv = write_csv(env.path(), "carrier.csv", &[format!("{number};{caller}")]);
    let port = free_udp_port_on(ip, 1);
    let media = free_udp_port_on(ip, 3);
    let mut cmd = sipp_cmd_on(env.path(), "carrier", ip, port);
    cmd.arg(sw.addr().to_string())
        .args(["-sf", &scenario("trunk_carrier_uac.xml")])
        .args(["-inf", &csv, "-mp", &media.to_string()])
        .args(["-m", "1", "-timeout", &format!("{}s", timeout.as_secs())]);
    Bg::spawn(cmd, env.path(), "carrier", timeout + Duration::from_secs(5))
}

/// Waits (bounded by `timeout`) until the database at `url` holds at least
/// `n` CDRs started since `since_ms` that `keep` accepts; those it holds.
pub fn wait_for_cdrs(
    url: &str,
    since_ms: i64,
    n: usize,
    timeout: Duration,
    keep: impl Fn(&CallRecord) -> bool,
) -> Vec<CallRecord> {
    let deadline = Instant::now() + timeout;
    loop {
        let rows: Vec<CallRecord> = fetch_cdrs(url, since_ms, i64::MAX)
            .unwrap_or_default()
            .into_iter()
            .filter(|r| keep(r))
            .collect();
        if rows.len() >= n || Instant::now() >= deadline {
            return rows;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Starts SIPp `uac-echo` (100 calls 101 with `calls_uac_echo.xml`,
/// offering RTP port `rtp_port`) in the background and waits (bounded,
/// 10 s) for the relay port of the switch's answer, which it writes to
/// `relayport-1.txt`; the caller and that port.
pub fn start_echo_caller(env: &CallEnv, sw: &Switch, rtp_port: u16) -> (Bg, u16) {
    let dir = env.path().to_owned();
    let csv = write_csv(
        &dir,
        "uac-echo.csv",
        &[auth_line("100", PW100, &["101", &rtp_port.to_string()])],
    );
    let mut cmd = sipp_cmd(&dir, "uac-echo", free_port_span(1));
    cmd.arg(sw.addr().to_string())
        .args(["-sf", &scenario("calls_uac_echo.xml")])
        .args(["-inf", &csv, "-m", "1", "-timeout", "30s"]);
    let uac = Bg::spawn(cmd, &dir, "uac-echo", Duration::from_secs(35));
    let port_file = dir.join("relayport-1.txt");
    let deadline = Instant::now() + Duration::from_secs(10);
    let relay_port: u16 = loop {
        if let Some(p) = fs::read_to_string(&port_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "the echo call was not answered within 10 s\n{}",
            describe(env, sw, &["uac-echo", "uas"])
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    (uac, relay_port)
}

/// Waits (bounded) for `n` ended calls (their callers' `hangup` events);
/// there must be `n`, and each caller's channel must have a `bridged`
/// event (answered and joined).
pub fn assert_calls_answered(sw: &Switch, n: usize) {
    let ended = sw.wait_calls_ended(n, Duration::from_secs(5));
    assert_eq!(ended.len(), n, "{:#?}\n{}", sw.events(), sw.log());
    let bridged = sw.bridged();
    assert!(
        ended.iter().all(|h| bridged.iter().any(|b| matches!(
            (h, b),
            (
                carillon_events::SwitchEvent::Hangup { channel, .. },
                carillon_events::SwitchEvent::Bridged { channels, .. },
            ) if channels[0] == *channel
        ))),
        "every call must have been answered: {:#?}\n{}",
        sw.events(),
        sw.log()
    );
}

/// Runs a SIPp UAC from 100 to 101 with `scenario_file` and the extra
/// injection fields.
pub fn run_uac(
    env: &CallEnv,
    sw: &Switch,
    name: &str,
    scenario_file: &str,
    extra: &[&str],
    calls: u32,
    limit: u32,
) -> ToolRun {
    let mut fields = vec!["101"];
    fields.extend_from_slice(extra);
    let csv = write_csv(
        env.path(),
        &format!("{name}.csv"),
        &[auth_line("100", PW100, &fields)],
    );
    let sip = free_port_span(1);
    let media = free_port_span(3);
    let mut cmd = sipp_cmd(env.path(), name, sip);
    cmd.arg(sw.addr().to_string())
        .args(["-sf", &scenario(scenario_file)])
        .args(["-inf", &csv])
        .args(["-mp", &media.to_string()])
        .args(["-m", &calls.to_string(), "-l", &limit.to_string()])
        .args(["-timeout", "40s"]);
    run_tool(cmd, env.path(), name, Duration::from_secs(45))
}

pub fn describe(env: &CallEnv, sw: &Switch, names: &[&str]) -> String {
    let mut s = String::new();
    for n in names {
        s.push_str(&sipp_traces(env.path(), n));
    }
    format!("{s}\n--- switch log:\n{}", sw.log())
}

/// The SIPp message trace and error log of a run, for failure messages.
pub fn sipp_traces(dir: &Path, name: &str) -> String {
    let msg = fs::read_to_string(dir.join(format!("{name}-msg.log"))).unwrap_or_default();
    let err = fs::read_to_string(dir.join(format!("{name}-err.log"))).unwrap_or_default();
    format!("--- {name} errors:\n{err}\n--- {name} messages:\n{msg}")
}

/// The SIP messages SIPp logged in `-trace_msg` (sent and received).
pub fn sipp_messages(dir: &Path, name: &str) -> Vec<String> {
    let text = fs::read_to_string(dir.join(format!("{name}-msg.log"))).unwrap_or_default();
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        if line.starts_with("----------------------------------------------") {
            if !cur.trim().is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            cur.clear();
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

// ---------------------------------------------------------------------------
// Audio: G.711 pcap for SIPp, WAV for baresip, tone analysis
// ---------------------------------------------------------------------------

/// A pcap of µ-law RTP (PT 0, 160 samples per packet, 20 ms apart)
/// carrying a sine tone, for SIPp's `play_pcap_audio`.
pub fn write_tone_pcap(path: &Path, seconds: u32, hz: f64) {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&0i32.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    for i in 0..seconds * 50 {
        let mut rtp = vec![0x80u8, 0];
        rtp.extend_from_slice(&u16::try_from(i & 0xffff).unwrap_or(0).to_be_bytes());
        rtp.extend_from_slice(&(i * 160).to_be_bytes());
        rtp.extend_from_slice(&0x1234u32.to_be_bytes());
        for k in 0..160u32 {
            let t = f64::from(i * 160 + k) / 8000.0;
            let s = (8000.0 * (std::f64::consts::TAU * hz * t).sin()) as i16;
            rtp.push(carillon_codec::ulaw_encode(s));
        }
        let udp_len = u16::try_from(8 + rtp.len()).expect("udp len");
        let mut udp = Vec::new();
        udp.extend_from_slice(&6000u16.to_be_bytes());
        udp.extend_from_slice(&6002u16.to_be_bytes());
        udp.extend_from_slice(&udp_len.to_be_bytes());
        udp.extend_from_slice(&0u16.to_be_bytes());
        udp.extend_from_slice(&rtp);
        let mut ip = vec![0x45u8, 0];
        ip.extend_from_slice(&(20 + udp_len).to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
        ip.extend_from_slice(&udp);
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x08, 0x00]);
        eth.extend_from_slice(&ip);
        let ms = i * 20;
        f.extend_from_slice(&(ms / 1000).to_le_bytes());
        f.extend_from_slice(&((ms % 1000) * 1000).to_le_bytes());
        let len = u32::try_from(eth.len()).expect("len");
        f.extend_from_slice(&len.to_le_bytes());
        f.extend_from_slice(&len.to_le_bytes());
        f.extend_from_slice(&eth);
    }
    fs::write(path, f).expect("write pcap");
}

/// A mono 16-bit 8 kHz WAV with a sine tone at half scale.
pub fn write_tone_wav(path: &Path, seconds: u32, hz: f64) {
    let n = seconds * 8000;
    let data_len = n * 2;
    let mut f = Vec::new();
    f.extend_from_slice(b"RIFF");
    f.extend_from_slice(&(36 + data_len).to_le_bytes());
    f.extend_from_slice(b"WAVEfmt ");
    f.extend_from_slice(&16u32.to_le_bytes());
    f.extend_from_slice(&1u16.to_le_bytes()); // PCM
    f.extend_from_slice(&1u16.to_le_bytes()); // mono
    f.extend_from_slice(&8000u32.to_le_bytes());
    f.extend_from_slice(&16000u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&16u16.to_le_bytes());
    f.extend_from_slice(b"data");
    f.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..n {
        let t = f64::from(i) / 8000.0;
        let s = (16000.0 * (std::f64::consts::TAU * hz * t).sin()) as i16;
        f.extend_from_slice(&s.to_le_bytes());
    }
    fs::write(path, f).expect("write wav");
}

/// A WAV file's first channel as samples, with its sample rate.
#[derive(Debug, Clone)]
pub struct Wav {
    pub rate: u32,
    pub channels: u16,
    pub samples: Vec<i16>,
}

/// Reads a PCM 16-bit WAV (any channel count; the first channel is kept).
pub fn read_wav(path: &Path) -> Result<Wav, String> {
    let b = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if b.len() < 12 || &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        return Err(format!("{}: not a RIFF/WAVE file", path.display()));
    }
    let mut pos = 12;
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    while pos + 8 <= b.len() {
        let id = &b[pos..pos + 4];
        let len = u32::from_le_bytes([b[pos + 4], b[pos + 5], b[pos + 6], b[pos + 7]]) as usize;
        let body_start = pos + 8;
        let body_end = (body_start + len).min(b.len());
        let body = &b[body_start..body_end];
        if id == b"fmt " && body.len() >= 16 {
            let format = u16::from_le_bytes([body[0], body[1]]);
            let channels = u16::from_le_bytes([body[2], body[3]]);
            let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
            let bits = u16::from_le_bytes([body[14], body[15]]);
            fmt = Some((format, channels, rate, bits));
        }
        if id == b"data" {
            let (format, channels, rate, bits) =
                fmt.ok_or_else(|| format!("{}: data before fmt", path.display()))?;
            if (format != 1 && format != 0xfffe) || bits != 16 || channels == 0 {
                return Err(format!(
                    "{}: unsupported WAV (format {format}, {bits} bits, {channels} channels)",
                    path.display()
                ));
            }
            // A writer killed mid-call may leave the data length at 0 or
            // too large: take what is there.
            let body = if len == 0 || body_start + len > b.len() {
                &b[body_start..]
            } else {
                body
            };
            let frame = 2 * usize::from(channels);
            let samples = body
                .chunks_exact(frame)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            return Ok(Wav {
                rate,
                channels,
                samples,
            });
        }
        pos = body_start + len + (len & 1);
    }
    Err(format!("{}: no data chunk", path.display()))
}

/// How 100 ms blocks of a recording split between two tones.
#[derive(Debug, Clone, Copy, Default)]
pub struct ToneReport {
    /// Blocks with sound in them (not silence).
    pub voiced: usize,
    /// Voiced blocks where the expected tone clearly dominates.
    pub expected: usize,
    /// Voiced blocks where the other tone clearly dominates.
    pub other: usize,
    /// All blocks.
    pub blocks: usize,
}

/// Classifies each 100 ms block: silent (RMS below ~1 % of full scale),
/// or dominated by `expected_hz` or `other_hz` (that tone's amplitude at
/// least 4 times the other's and carrying at least half the block's
/// energy).
pub fn tone_report(wav: &Wav, expected_hz: f64, other_hz: f64) -> ToneReport {
    let block = usize::try_from(wav.rate / 10).unwrap_or(800).max(1);
    let want = Goertzel::new(expected_hz, wav.rate);
    let not = Goertzel::new(other_hz, wav.rate);
    let mut r = ToneReport::default();
    for chunk in wav.samples.chunks_exact(block) {
        r.blocks += 1;
        let energy: f64 = chunk.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        let rms = (energy / chunk.len() as f64).sqrt();
        if rms < 300.0 {
            continue;
        }
        r.voiced += 1;
        let a = want.amplitude(chunk);
        let b = not.amplitude(chunk);
        let share_a = want.relative_power(chunk);
        let share_b = not.relative_power(chunk);
        if a > 4.0 * b && share_a > 0.5 {
            r.expected += 1;
        } else if b > 4.0 * a && share_b > 0.5 {
            r.other += 1;
        }
    }
    r
}

// ---------------------------------------------------------------------------
// Database
// ---------------------------------------------------------------------------

/// CDRs whose start lies in `[since_ms, until_ms)`; `Err` when the database
/// cannot be read.
pub fn fetch_cdrs(url: &str, since_ms: i64, until_ms: i64) -> Result<Vec<CallRecord>, String> {
    block_on(async {
        let store = carillon_store::Store::connect(url)
            .await
            .map_err(|e| format!("connect {url}: {e}"))?;
        let rows = store
            .fetch_cdrs(&carillon_store::CdrQuery {
                since_ms,
                until_ms,
                limit: 10_000,
            })
            .await
            .map_err(|e| format!("fetch_cdrs: {e}"));
        store.close().await;
        rows
    })
}

/// Removes every stored binding of the given users (`sip:USER@…`), so that
/// a shared database does not make the switch fork to earlier runs' phones.
pub fn forget_bindings(url: &str, users: &[&str]) -> Result<usize, String> {
    block_on(async {
        let store = carillon_store::Store::connect(url)
            .await
            .map_err(|e| format!("connect {url}: {e}"))?;
        let rows = store
            .load_bindings(i64::MIN)
            .await
            .map_err(|e| format!("load_bindings: {e}"))?;
        let doomed: Vec<_> = rows
            .into_iter()
            .filter(|r| {
                users
                    .iter()
                    .any(|u| r.aor.starts_with(&format!("sip:{u}@")))
            })
            .map(|r| carillon_store::BindingChange::Remove {
                aor: r.aor,
                contact: r.contact,
            })
            .collect();
        let n = doomed.len();
        store
            .apply_bindings(&doomed)
            .await
            .map_err(|e| format!("apply_bindings: {e}"))?;
        store.close().await;
        Ok(n)
    })
}

/// The PostgreSQL URL of the environment, if any. Without one the test
/// skips (reported to `tests/run.sh`), except where peers are required
/// (CI, `tests/run.sh`): there a missing database fails the test.
pub fn pg_url() -> Option<String> {
    let url = std::env::var("CARILLON_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        assert!(
            !peers_required(),
            "CARILLON_TEST_PG_URL is not set, and this run requires PostgreSQL (CI or tests/run.sh)"
        );
        report_skip("PostgreSQL CDR tests", "CARILLON_TEST_PG_URL is not set");
    }
    url
}

/// `postgres://user:pw@host:PORT/db` → (host:port, the URL with `port`).
pub fn pg_retarget(url: &str, port: u16) -> (SocketAddr, String) {
    let (scheme, rest) = url.split_once("://").expect("URL with ://");
    let (userinfo, hostpart) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let (hostport, path) = match hostpart.split_once('/') {
        Some((h, p)) => (h, format!("/{p}")),
        None => (hostpart, String::new()),
    };
    let (host, old_port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().expect("port")),
        None => (hostport, 5432),
    };
    let host_ip: IpAddr = if host == "localhost" {
        LOCALHOST
    } else {
        host.parse()
            .expect("PostgreSQL host must be an IP address here")
    };
    let user = userinfo.map_or(String::new(), |u| format!("{u}@"));
    (
        SocketAddr::new(host_ip, old_port),
        format!("{scheme}://{user}127.0.0.1:{port}{path}"),
    )
}

/// A TCP forwarder on 127.0.0.1:`port` to `upstream`: while it runs the
/// database is reachable there; [`Forwarder::stop`] cuts every live
/// connection and closes the port (connections are then refused).
pub struct Forwarder {
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Forwarder {
    pub fn start(port: u16, upstream: SocketAddr) -> Forwarder {
        let listener = TcpListener::bind((LOCALHOST, port)).expect("bind forwarder");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (stop2, conns2) = (Arc::clone(&stop), Arc::clone(&conns));
        let accept = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(server) =
                            TcpStream::connect_timeout(&upstream, Duration::from_secs(3))
                        else {
                            continue;
                        };
                        let mut list = conns2.lock().expect("lock");
                        for s in [&client, &server] {
                            if let Ok(c) = s.try_clone() {
                                list.push(c);
                            }
                        }
                        drop(list);
                        pipe(&client, &server);
                        pipe(&server, &client);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Forwarder {
            stop,
            accept: Some(accept),
            conns,
        }
    }

    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        for c in self.conns.lock().expect("lock").drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.halt();
    }
}

fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

/// Waits (bounded) until UDP `port` on 127.0.0.1 can be bound again (the
/// switch released it); returns whether it could.
pub fn udp_port_released(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if UdpSocket::bind((LOCALHOST, port)).is_ok()
            && UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
        {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
