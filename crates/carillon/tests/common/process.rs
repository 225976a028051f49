//! Process plumbing shared by both e2e harnesses (`common/` and
//! `callsupport/`): where the binary and the repository are, starting the
//! switch with its log captured, bounded runs of external tools in the
//! foreground or background, and a private tokio runtime. Every wait is
//! bounded; only processes started here are ever signalled, by their PID.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The binary under test: `CARILLON_BIN`, else the one cargo built for
/// this package.
pub fn bin() -> PathBuf {
    if let Some(b) = std::env::var_os("CARILLON_BIN") {
        return PathBuf::from(b);
    }
    match option_env!("CARGO_BIN_EXE_carillon") {
        Some(b) => PathBuf::from(b),
        None => panic!("set CARILLON_BIN: this test was not built with the carillon binary"),
    }
}

/// The repository root (`CARILLON_REPO` overrides it).
pub fn repo_root() -> PathBuf {
    if let Some(r) = std::env::var_os("CARILLON_REPO") {
        return PathBuf::from(r);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Makes the repository's `sounds/` visible as `dir/sounds`, for a switch
/// whose working directory (or configuration's parent) is `dir`: the
/// example's `[moh.default] dir = "sounds/moh/default"` is relative.
/// Idempotent.
pub fn link_sounds(dir: &Path) {
    let link = dir.join("sounds");
    if !link.exists() {
        let _ = std::os::unix::fs::symlink(repo_root().join("sounds"), link);
    }
}

/// Whether this run must have every peer and database: under CI
/// (`CI=true`) and `tests/run.sh` (`CARILLON_REQUIRE_PEERS=1`) a missing
/// one fails its tests instead of skipping them.
pub fn peers_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("CARILLON_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// Says loudly that a group of tests skipped, and adds it to the list
/// `tests/run.sh` prints at its end (`CARILLON_SKIP_REPORT`).
pub fn report_skip(group: &str, reason: &str) {
    eprintln!("SKIPPED {group}: {reason}");
    if let Some(path) = std::env::var_os("CARILLON_SKIP_REPORT") {
        use std::io::Write;
        if let Ok(mut f) = fs::OpenOptions::new().append(true).open(path) {
            let _ = writeln!(f, "{group}: {reason}");
        }
    }
}

/// Addresses of test hosts that a test placed in a network namespace of
/// its own (a veth peer), which its trunks may name.
static TEST_HOSTS: std::sync::Mutex<Vec<std::net::IpAddr>> = std::sync::Mutex::new(Vec::new());

/// Declares `ip` a test host of this test's own (an address inside a
/// network namespace the test created), so its trunks may send there.
pub fn declare_test_host(ip: std::net::IpAddr) {
    if let Ok(mut hosts) = TEST_HOSTS.lock() {
        hosts.push(ip);
    }
}

/// Panics unless every enabled trunk of `config/trunks.toml` sends only to
/// loopback: the harness never starts a switch that could reach another
/// address (the example's trunks ship disabled; a test that needs a trunk
/// writes its own on 127.0.0.0/8, or on a test host of its own in a
/// namespace it made: [`declare_test_host`]). Every `sip:`/`sips:` URI of an enabled
/// trunk (contacts, registrar, ports, proxies) must name a loopback host.
pub fn assert_trunks_contained(config: &Path) {
    let path = config.join("trunks.toml");
    let Ok(text) = fs::read_to_string(&path) else {
        return;
    };
    let doc: toml::Table =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{}: not TOML: {e}", path.display()));
    let Some(trunks) = doc.get("trunk").and_then(|t| t.as_table()) else {
        return;
    };
    for (name, trunk) in trunks {
        if trunk.get("enabled").and_then(|e| e.as_bool()) == Some(false) {
            continue;
        }
        let mut uris = Vec::new();
        collect_uris(trunk, &mut uris);
        for uri in uris {
            assert!(
                uri_is_loopback(&uri),
                "{}: enabled trunk {name} would send to {uri}: the e2e harness starts only \
                 trunks that are disabled or on loopback",
                path.display()
            );
        }
    }
}

fn collect_uris(v: &toml::Value, out: &mut Vec<String>) {
    match v {
        toml::Value::String(s) if s.starts_with("sip:") || s.starts_with("sips:") => {
            out.push(s.clone())
        }
        toml::Value::Array(a) => a.iter().for_each(|v| collect_uris(v, out)),
        toml::Value::Table(t) => t.values().for_each(|v| collect_uris(v, out)),
        _ => {}
    }
}

/// Whether a `sip:` URI's host is 127.0.0.0/8, `[::1]` or `localhost`.
fn uri_is_loopback(uri: &str) -> bool {
    let rest = uri.split_once(':').map_or(uri, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = if let Some(v6) = rest.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        rest.split([':', ';', '?']).next().unwrap_or("")
    };
    let declared = |ip: &std::net::IpAddr| TEST_HOSTS.lock().is_ok_and(|h| h.contains(ip));
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || declared(&ip))
}

/// Starts `carillon run --config CONFIG` in `dir`, stdout and stderr both
/// going to `log`. Refuses (panics) when an enabled trunk is not on
/// loopback ([`assert_trunks_contained`]).
pub fn spawn_switch(config: &Path, dir: &Path, rust_log: &str, log: &Path) -> Child {
    assert_trunks_contained(config);
    let out = fs::File::create(log).expect("create log");
    let err = out.try_clone().expect("clone log handle");
    Command::new(bin())
        .arg("run")
        .arg("--config")
        .arg(config)
        .current_dir(dir)
        .env("RUST_LOG", rust_log)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .expect("spawn carillon")
}

/// Waits (bounded by `limit`) until the switch's log says `listeners`
/// listeners are ready; panics with the log if it exits or takes too long.
pub fn wait_ready(child: &mut Child, log: &Path, listeners: usize, limit: Duration) {
    let read = || strip_ansi(&fs::read_to_string(log).unwrap_or_default());
    let deadline = Instant::now() + limit;
    loop {
        if read().matches("SIP listener ready").count() >= listeners {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("carillon exited early ({status}); log:\n{}", read());
        }
        assert!(
            Instant::now() < deadline,
            "carillon not ready within {limit:?}; log:\n{}",
            read()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Removes ANSI colour escapes (in case the logger colours anyway).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether an executable is on PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool} >/dev/null 2>&1"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// What a bounded tool run produced.
#[derive(Debug)]
pub struct ToolRun {
    /// `None` when the tool was killed at its deadline.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl ToolRun {
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

/// A tool running in the background, killed (by its own PID) on drop or
/// at its deadline.
pub struct Bg {
    child: Option<Child>,
    name: String,
    out: PathBuf,
    err: PathBuf,
    started: Instant,
    deadline: Instant,
}

impl Bg {
    pub fn spawn(mut cmd: Command, dir: &Path, name: &str, limit: Duration) -> Bg {
        let out = dir.join(format!("{name}.stdout"));
        let err = dir.join(format!("{name}.stderr"));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(fs::File::create(&out).expect("stdout file")))
            .stderr(Stdio::from(fs::File::create(&err).expect("stderr file")))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let started = Instant::now();
        Bg {
            child: Some(child),
            name: name.to_owned(),
            out,
            err,
            started,
            deadline: started + limit,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.out).unwrap_or_default()).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.err).unwrap_or_default()).into_owned()
    }

    /// Waits until the tool exits or its deadline passes (then kills it).
    pub fn wait(&mut self) -> ToolRun {
        let status = match self.child.as_mut() {
            None => None,
            Some(child) => loop {
                if let Ok(Some(s)) = child.try_wait() {
                    break Some(s);
                }
                if Instant::now() >= self.deadline {
                    eprintln!("{}: killed at its deadline", self.name);
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                std::thread::sleep(Duration::from_millis(50));
            },
        };
        self.child = None;
        ToolRun {
            status,
            stdout: self.stdout(),
            stderr: self.stderr(),
            elapsed: self.started.elapsed(),
        }
    }

    /// Asks the tool to stop (SIGTERM to its PID), then waits (bounded).
    pub fn terminate(&mut self, grace: Duration) -> ToolRun {
        if let Some(child) = self.child.as_mut() {
            if let Ok(None) = child.try_wait() {
                let _ = Command::new("kill")
                    .arg("-s")
                    .arg("TERM")
                    .arg(child.id().to_string())
                    .status();
            }
        }
        self.deadline = self.deadline.min(Instant::now() + grace);
        self.wait()
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `cmd` to completion with stdout/stderr in files under `dir`,
/// killed at `limit`.
pub fn run_tool(cmd: Command, dir: &Path, name: &str, limit: Duration) -> ToolRun {
    Bg::spawn(cmd, dir, name, limit).wait()
}

/// Blocks on a future with a private current-thread runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}
