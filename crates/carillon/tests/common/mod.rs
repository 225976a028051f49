//! Shared harness of the end-to-end tests: a private copy of `config/` on
//! free loopback ports, the real `carillon` binary started on it with its
//! log captured to a file, a small SIP client over UDP and TCP with a digest
//! REGISTER, and bounded runs of external tools (SIPp, baresip,
//! sipvicious). Every wait is bounded; the only processes ever signalled
//! are the ones started here, by their PID.

#![allow(dead_code)]

#[path = "http.rs"]
pub mod http;
#[path = "process.rs"]
mod process;
#[path = "toml_text.rs"]
mod toml_text;
#[allow(unused_imports)]
pub use process::{
    assert_trunks_contained, bin, block_on, declare_test_host, have, link_sounds, peers_required,
    repo_root, report_skip, run_tool, strip_ansi, ToolRun,
};

use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use carillon_digest::Challenge;

/// How long the switch may take to bind its listeners.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a stopping switch may take to flush and exit.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// How long to wait for a SIP answer on loopback.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(3);

/// The example configuration directory of the repository.
pub fn example_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A token unique within this test process (for branches, Call-IDs, tags).
pub fn unique() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}{:x}{n}", std::process::id(), t & 0xffff_ffff)
}

/// A port free for both UDP and TCP on every address given.
pub fn free_port(ips: &[IpAddr]) -> u16 {
    for _ in 0..200 {
        let Some(first) = ips.first() else {
            panic!("free_port needs an address");
        };
        let Ok(probe) = UdpSocket::bind((*first, 0)) else {
            continue;
        };
        let port = probe.local_addr().expect("local addr").port();
        let mut held_udp = vec![probe];
        let mut held_tcp = Vec::new();
        let mut ok = true;
        for (i, ip) in ips.iter().enumerate() {
            if i > 0 {
                match UdpSocket::bind((*ip, port)) {
                    Ok(s) => held_udp.push(s),
                    Err(_) => {
                        ok = false;
                        break;
                    }
                }
            }
            match TcpListener::bind((*ip, port)) {
                Ok(l) => held_tcp.push(l),
                Err(_) => {
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            return port;
        }
    }
    panic!("no free port found");
}

pub const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
pub const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

/// What a test changes in the copied example configuration.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Replaces `users.toml` entirely.
    pub users_toml: Option<String>,
    /// `[security]` keys and their raw TOML values, e.g.
    /// `("max_auth_failures", "5")`.
    pub security: Vec<(String, String)>,
    /// Also listen on UDP `[::1]` (same port).
    pub ipv6: bool,
    /// `RUST_LOG` for the switch (default `info`).
    pub rust_log: Option<String>,
}

impl Options {
    pub fn security(mut self, key: &str, value: &str) -> Options {
        self.security.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn users(mut self, toml: impl Into<String>) -> Options {
        self.users_toml = Some(toml.into());
        self
    }
}

pub use toml_text::set_keys;

/// Drops every `[[listen]]` table and appends the given ones.
pub fn replace_listeners(text: &str, listeners: &[(&str, SocketAddr)]) -> String {
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
    for (transport, addr) in listeners {
        out.push_str(&format!(
            "\n[[listen]]\ntransport = \"{transport}\"\naddress = \"{addr}\"\n"
        ));
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create config dir");
    for entry in fs::read_dir(from).expect("read example config") {
        let entry = entry.expect("dir entry");
        if entry.file_type().expect("file type").is_file() {
            fs::copy(entry.path(), to.join(entry.file_name())).expect("copy config file");
        }
    }
}

/// A private configuration and database for one switch, restartable.
pub struct Env {
    dir: tempfile::TempDir,
    pub port: u16,
    /// The `[ami]` listener's port (127.0.0.1).
    pub ami_port: u16,
    /// The management API's port (`[api] address` on 127.0.0.1).
    pub api_port: u16,
    pub ipv6: bool,
    rust_log: String,
    starts: usize,
}

impl Env {
    pub fn new(opts: &Options) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("carillon-e2e-")
            .tempdir()
            .expect("temp dir");
        let port = if opts.ipv6 {
            free_port(&[V4, V6])
        } else {
            free_port(&[V4])
        };
        let config = dir.path().join("config");
        copy_dir(&example_config(), &config);
        process::link_sounds(dir.path());
        let main = fs::read_to_string(config.join("carillon.toml")).expect("read carillon.toml");
        let mut listeners = vec![
            ("udp", SocketAddr::new(V4, port)),
            ("tcp", SocketAddr::new(V4, port)),
        ];
        if opts.ipv6 {
            listeners.push(("udp", SocketAddr::new(V6, port)));
        }
        let main = replace_listeners(&main, &listeners);
        let var = dir.path().join("var");
        let main = set_keys(
            &main,
            "database",
            &[
                (
                    "url",
                    format!("\"sqlite://{}\"", var.join("carillon.db").display()),
                ),
                (
                    "cdr_spool",
                    format!("\"{}\"", var.join("cdr-spool.jsonl").display()),
                ),
            ],
        );
        // Prompts from the repository's sounds/ (the copy has none beside it).
        let sounds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sounds");
        let main = set_keys(
            &main,
            "sounds",
            &[("dir", format!("{:?}", sounds.display().to_string()))],
        );
        // AMI on a free port of its own (the example's 5038 would collide
        // between tests running side by side).
        let ami_port = free_port(&[V4]);
        let main = set_keys(
            &main,
            "ami",
            &[("address", format!("\"127.0.0.1:{ami_port}\""))],
        );
        // The API on a port of its own per switch (the example's 8088
        // would be shared by every test).
        let api_port = http::free_tcp_port(&[port, ami_port]);
        let main = set_keys(
            &main,
            "api",
            &[("address", format!("\"127.0.0.1:{api_port}\""))],
        );
        let main = if opts.security.is_empty() {
            main
        } else {
            set_keys(&main, "security", &opts.security)
        };
        fs::write(config.join("carillon.toml"), main).expect("write carillon.toml");
        if let Some(users) = &opts.users_toml {
            fs::write(config.join("users.toml"), users).expect("write users.toml");
        }
        Env {
            dir,
            port,
            ami_port,
            api_port,
            ipv6: opts.ipv6,
            rust_log: opts.rust_log.clone().unwrap_or_else(|| "info".into()),
            starts: 0,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    /// The SQLite URL the switch writes to.
    pub fn db_url(&self) -> String {
        format!(
            "sqlite://{}",
            self.dir.path().join("var/carillon.db").display()
        )
    }

    pub fn write_users(&self, toml: &str) {
        fs::write(self.config_dir().join("users.toml"), toml).expect("write users.toml");
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(V4, self.port)
    }

    /// Starts the binary and waits (bounded) until every listener is bound.
    pub fn start(&mut self) -> Running {
        self.starts += 1;
        let log = self.dir.path().join(format!("switch-{}.log", self.starts));
        let child =
            process::spawn_switch(&self.config_dir(), self.dir.path(), &self.rust_log, &log);
        let listeners = if self.ipv6 { 3 } else { 2 };
        let mut running = Running::adopt(child, self.port, log, listeners);
        running.api = Some(SocketAddr::new(V4, self.api_port));
        running
    }
}

/// A running switch; stopped with SIGTERM (then SIGKILL after a bounded
/// wait) when dropped.
pub struct Running {
    child: Child,
    pub port: u16,
    log: PathBuf,
    stopped: Option<ExitStatus>,
    /// The management API's address, when the harness configured it.
    pub api: Option<SocketAddr>,
}

impl Running {
    /// A switch already spawned (by [`Env::start`], or by a test that
    /// starts it some other way) with its output going to `log`: waits
    /// (bounded) until its `listeners` listeners are bound.
    pub fn adopt(mut child: Child, port: u16, log: PathBuf, listeners: usize) -> Running {
        process::wait_ready(&mut child, &log, listeners, READY_TIMEOUT);
        Running {
            child,
            port,
            log,
            stopped: None,
            api: None,
        }
    }

    /// The management API's address (started by [`Env::start`]).
    pub fn api_addr(&self) -> SocketAddr {
        self.api
            .expect("this switch was not started with an API port")
    }

    /// Polls `/metrics` (bounded) until calls, RTP ports and client
    /// transactions are 0; panics with the figures and the log otherwise.
    pub fn assert_idle(&self, timeout: Duration) {
        if let Err(e) = http::wait_idle(self.api_addr(), None, timeout) {
            panic!("{e}; log:\n{}", self.log());
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(V4, self.port)
    }

    pub fn addr6(&self) -> SocketAddr {
        SocketAddr::new(V6, self.port)
    }

    /// Everything the switch logged so far, without colour escapes.
    pub fn log(&self) -> String {
        strip_ansi(&String::from_utf8_lossy(
            &fs::read(&self.log).unwrap_or_default(),
        ))
    }

    /// Waits (bounded) until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Sends a signal (`TERM`, `HUP`, …) to this switch's PID only.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg("-s")
            .arg(name)
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {name} {} failed", self.pid());
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
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                self.stopped = Some(s);
                return s;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let s = self.child.wait().expect("wait after kill");
                self.stopped = Some(s);
                panic!(
                    "carillon did not stop within {STOP_TIMEOUT:?} of SIGTERM; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.stopped.is_some() {
            return;
        }
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-s")
            .arg("TERM")
            .arg(self.child.id().to_string())
            .status();
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
// SIP messages
// ---------------------------------------------------------------------------

/// A received SIP message, headers unfolded.
#[derive(Debug, Clone)]
pub struct SipMsg {
    pub raw: String,
    pub start: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

fn long_name(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    match lower.as_str() {
        "v" => "via".into(),
        "m" => "contact".into(),
        "l" => "content-length".into(),
        "i" => "call-id".into(),
        "f" => "from".into(),
        "t" => "to".into(),
        "c" => "content-type".into(),
        "k" => "supported".into(),
        _ => lower,
    }
}

impl SipMsg {
    pub fn parse(bytes: &[u8]) -> Option<SipMsg> {
        let raw = String::from_utf8_lossy(bytes).into_owned();
        let (head, body) = match raw.find("\r\n\r\n") {
            Some(i) => (&raw[..i], &raw[i + 4..]),
            None => (raw.as_str(), ""),
        };
        let mut lines = head.split("\r\n");
        let start = lines.next()?.to_owned();
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with(' ') || line.starts_with('\t') {
                if let Some(last) = headers.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
                continue;
            }
            let (n, v) = line.split_once(':')?;
            headers.push((long_name(n), v.trim().to_owned()));
        }
        Some(SipMsg {
            raw: raw.clone(),
            start,
            headers,
            body: body.to_owned(),
        })
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        let rest = self.start.strip_prefix("SIP/2.0 ")?;
        rest.get(..3)?.parse().ok()
    }

    /// Every value of a header (any spelling, compact forms included).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        let want = long_name(name);
        self.headers
            .iter()
            .filter(|(n, _)| *n == want)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_all(name).into_iter().next()
    }

    /// The Contact values, comma-separated lists split.
    pub fn contacts(&self) -> Vec<String> {
        let mut out = Vec::new();
        for v in self.header_all("contact") {
            let mut depth = 0i32;
            let mut quoted = false;
            let mut cur = String::new();
            for c in v.chars() {
                match c {
                    '"' => quoted = !quoted,
                    '<' if !quoted => depth += 1,
                    '>' if !quoted => depth -= 1,
                    ',' if !quoted && depth == 0 => {
                        out.push(cur.trim().to_owned());
                        cur.clear();
                        continue;
                    }
                    _ => {}
                }
                cur.push(c);
            }
            if !cur.trim().is_empty() {
                out.push(cur.trim().to_owned());
            }
        }
        out
    }
}

/// Where a complete SIP message ends in a stream buffer (after leading
/// CRLFs, which are keep-alives), as `(start, end)`.
fn frame(buf: &[u8]) -> Option<(usize, usize)> {
    let start = buf
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(buf.len());
    let rest = buf.get(start..)?;
    let head_end = rest.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&rest[..head_end]);
    let mut len = 0usize;
    for line in head.split("\r\n") {
        if let Some((n, v)) = line.split_once(':') {
            if long_name(n) == "content-length" {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let end = start + head_end + len;
    (end <= buf.len()).then_some((start, end))
}

/// One client "phone": a UDP socket or a TCP connection to the switch.
pub enum Conn {
    Udp { sock: UdpSocket, server: SocketAddr },
    Tcp { stream: TcpStream, buf: Vec<u8> },
}

impl Conn {
    pub fn udp(server: SocketAddr) -> Conn {
        let bind: SocketAddr = match server.ip() {
            IpAddr::V4(_) => SocketAddr::new(V4, 0),
            IpAddr::V6(_) => SocketAddr::new(V6, 0),
        };
        Conn::udp_from(bind, server)
    }

    pub fn udp_from(bind: SocketAddr, server: SocketAddr) -> Conn {
        let sock = UdpSocket::bind(bind).expect("bind UDP client");
        Conn::Udp { sock, server }
    }

    pub fn tcp(server: SocketAddr) -> Conn {
        let stream =
            TcpStream::connect_timeout(&server, REPLY_TIMEOUT).expect("connect TCP to switch");
        stream.set_nodelay(true).expect("nodelay");
        Conn::Tcp {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn local(&self) -> SocketAddr {
        match self {
            Conn::Udp { sock, .. } => sock.local_addr().expect("local addr"),
            Conn::Tcp { stream, .. } => stream.local_addr().expect("local addr"),
        }
    }

    pub fn server(&self) -> SocketAddr {
        match self {
            Conn::Udp { server, .. } => *server,
            Conn::Tcp { stream, .. } => stream.peer_addr().expect("peer addr"),
        }
    }

    pub fn transport(&self) -> &'static str {
        match self {
            Conn::Udp { .. } => "UDP",
            Conn::Tcp { .. } => "TCP",
        }
    }

    /// `SIP/2.0/UDP 127.0.0.1:PORT;branch=z9hG4bK…;rport`
    pub fn via(&self) -> String {
        format!(
            "SIP/2.0/{} {};branch=z9hG4bK{};rport",
            self.transport(),
            self.local(),
            unique()
        )
    }

    pub fn send(&mut self, bytes: &[u8]) {
        match self {
            Conn::Udp { sock, server } => {
                sock.send_to(bytes, *server).expect("send UDP");
            }
            Conn::Tcp { stream, .. } => stream.write_all(bytes).expect("write TCP"),
        }
    }

    /// Raw bytes as they arrive (one datagram, or what one TCP read gives).
    pub fn recv_bytes(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        let mut b = vec![0u8; 65536];
        match self {
            Conn::Udp { sock, .. } => {
                sock.set_read_timeout(Some(timeout)).expect("timeout");
                let (n, _) = sock.recv_from(&mut b).ok()?;
                b.truncate(n);
                Some(b)
            }
            Conn::Tcp { stream, buf } => {
                if !buf.is_empty() {
                    return Some(std::mem::take(buf));
                }
                stream.set_read_timeout(Some(timeout)).expect("timeout");
                let n = stream.read(&mut b).ok()?;
                if n == 0 {
                    return None;
                }
                b.truncate(n);
                Some(b)
            }
        }
    }

    /// The next SIP message, or `None` after `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> Option<SipMsg> {
        let deadline = Instant::now() + timeout;
        match self {
            Conn::Udp { sock, .. } => {
                let mut b = vec![0u8; 65536];
                loop {
                    let left = deadline.checked_duration_since(Instant::now())?;
                    sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                        .expect("timeout");
                    let (n, _) = sock.recv_from(&mut b).ok()?;
                    let data = b.get(..n)?;
                    if data.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    return SipMsg::parse(data);
                }
            }
            Conn::Tcp { stream, buf } => loop {
                if let Some((s, e)) = frame(buf) {
                    let msg = SipMsg::parse(&buf[s..e]);
                    buf.drain(..e);
                    return msg;
                }
                let left = deadline.checked_duration_since(Instant::now())?;
                stream
                    .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                    .expect("timeout");
                let mut b = vec![0u8; 65536];
                let n = stream.read(&mut b).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&b[..n]);
            },
        }
    }

    /// The next final (non-1xx) response, or `None` after `timeout`.
    pub fn recv_final(&mut self, timeout: Duration) -> Option<SipMsg> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let m = self.recv(left)?;
            match m.status() {
                Some(s) if s >= 200 => return Some(m),
                _ => continue,
            }
        }
    }

    /// Sends a request and returns its final response.
    pub fn request(&mut self, msg: &str) -> Option<SipMsg> {
        self.send(msg.as_bytes());
        self.recv_final(REPLY_TIMEOUT)
    }

    /// An out-of-dialog OPTIONS.
    pub fn options(&mut self) -> Option<SipMsg> {
        let server = self.server();
        let host = host_of(server);
        let msg = format!(
            "OPTIONS sip:{host} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: <sip:probe@{host}>;tag={tag}\r\nTo: <sip:{host}>\r\nCall-ID: {cid}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            via = self.via(),
            tag = unique(),
            cid = unique(),
        );
        self.request(&msg)
    }
}

/// The host part for a SIP URI naming `addr`'s IP.
pub fn host_of(addr: SocketAddr) -> String {
    match addr.ip() {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    }
}

/// A minimal registering phone: digest REGISTER over a [`Conn`].
pub struct Phone {
    pub user: String,
    pub password: String,
    /// Host of the AOR and Request-URI (the switch's address).
    pub domain: String,
    call_id: String,
    cseq: u32,
    nc: u32,
}

impl Phone {
    pub fn new(user: &str, password: &str) -> Phone {
        Phone {
            user: user.into(),
            password: password.into(),
            domain: "127.0.0.1".into(),
            call_id: format!("{}@e2e", unique()),
            cseq: 0,
            nc: 0,
        }
    }

    fn build(
        &mut self,
        conn: &Conn,
        contact: Option<&str>,
        expires: Option<u32>,
        auth: Option<&str>,
    ) -> String {
        self.cseq += 1;
        let d = &self.domain;
        let mut m = format!(
            "REGISTER sip:{d} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: <sip:{u}@{d}>;tag={tag}\r\nTo: <sip:{u}@{d}>\r\nCall-ID: {cid}\r\nCSeq: {cseq} REGISTER\r\nUser-Agent: carillon-e2e\r\n",
            via = conn.via(),
            u = self.user,
            tag = unique(),
            cid = self.call_id,
            cseq = self.cseq,
        );
        if let Some(c) = contact {
            m.push_str(&format!("Contact: {c}\r\n"));
        }
        if let Some(e) = expires {
            m.push_str(&format!("Expires: {e}\r\n"));
        }
        if let Some(a) = auth {
            m.push_str(&format!("Authorization: {a}\r\n"));
        }
        m.push_str("Content-Length: 0\r\n\r\n");
        m
    }

    /// REGISTER (answering one 401 challenge). `contact` is the full
    /// header value (`<sip:100@127.0.0.1:5099>`), `None` for a binding
    /// fetch. Returns the final response.
    pub fn register(
        &mut self,
        conn: &mut Conn,
        contact: Option<&str>,
        expires: Option<u32>,
    ) -> Result<SipMsg, String> {
        let first = self.build(conn, contact, expires, None);
        let r = conn
            .request(&first)
            .ok_or_else(|| "no answer to the first REGISTER".to_string())?;
        if r.status() != Some(401) {
            return Ok(r);
        }
        let challenges: Vec<Challenge> = r
            .header_all("www-authenticate")
            .into_iter()
            .filter_map(|v| Challenge::parse(v).ok())
            .collect();
        let ch = Challenge::preferred(&challenges)
            .ok_or_else(|| format!("401 without a usable challenge:\n{}", r.raw))?
            .clone();
        self.nc += 1;
        let uri = format!("sip:{}", self.domain);
        let auth = carillon_digest::respond(
            &ch,
            "REGISTER",
            &uri,
            &self.user,
            &self.password,
            &unique(),
            self.nc,
        );
        let second = self.build(conn, contact, expires, Some(&auth));
        conn.request(&second)
            .ok_or_else(|| "no answer to the authenticated REGISTER".to_string())
    }
}

// ---------------------------------------------------------------------------
// External tools
// ---------------------------------------------------------------------------

/// A users.toml with extensions `first..first+count`, password `pw<ext>`,
/// and the example's own users (see [`example_user_tables`]).
pub fn generated_users(first: u32, count: u32) -> String {
    let mut s = String::from("[defaults]\ncontext = \"internal\"\nmax_contacts = 3\n");
    for ext in first..first + count {
        s.push_str(&format!(
            "\n[[user]]\nextension = \"{ext}\"\npassword = \"pw{ext}secret\"\n"
        ));
    }
    s.push('\n');
    s.push_str(&example_user_tables());
    s
}

/// The `[[user]]` tables of the example `users.toml`: the example dialplan
/// dials these users, and a `Dial` to an unknown user is a configuration
/// error, so a `users.toml` used with that dialplan keeps them.
pub fn example_user_tables() -> String {
    let text = fs::read_to_string(example_config().join("users.toml")).expect("read users.toml");
    text.find("[[user]]")
        .map_or(String::new(), |i| text[i..].to_owned())
}

/// Bindings persisted in the switch's database, not expired now.
pub fn stored_bindings(db_url: &str) -> Vec<carillon_store::BindingRow> {
    block_on(async {
        let store = carillon_store::Store::connect(db_url)
            .await
            .expect("open the switch's database");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let rows = store
            .load_bindings(i64::try_from(now).unwrap_or(i64::MAX))
            .await
            .expect("load bindings");
        store.close().await;
        rows
    })
}
