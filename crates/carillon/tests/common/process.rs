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

/// Starts `carillon run --config CONFIG` in `dir`, stdout and stderr both
/// going to `log`.
pub fn spawn_switch(config: &Path, dir: &Path, rust_log: &str, log: &Path) -> Child {
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
