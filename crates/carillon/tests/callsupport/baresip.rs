//! A baresip softphone for the call tests: its own HOME and config
//! (ctrl_tcp remote control, `aufile` tone as microphone, `aubridge` as
//! the null player), registered over UDP or TCP, auto or manual answer,
//! its codecs chosen, optionally recording what it receives (`sndfile`,
//! `dump-*-dec.wav`) and with its SIP trace (`-s`) on stdout. Commands and events
//! are ctrl_tcp JSON netstrings (TESTING.md). Every wait is bounded; the
//! process is stopped by its PID (`quit`, then SIGTERM).

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{free_port, free_port_span, have, read_wav, unique, write_tone_wav, Bg, CallEnv, Wav};

/// How a phone is set up.
#[derive(Debug, Clone)]
pub struct BaresipSpec<'a> {
    pub user: &'a str,
    pub password: &'a str,
    /// `udp` or `tcp`: the account's transport (REGISTER and calls).
    pub transport: &'a str,
    /// `auto` or `manual` (then `accept` answers a ringing call).
    pub answermode: &'a str,
    /// The tone its microphone plays.
    pub tone_hz: f64,
    /// The account's `audio_codecs` (`PCMU,PCMA`, `PCMU`, …).
    pub codecs: &'a str,
    /// Records what it receives (`sndfile` into `snd/`, see
    /// [`Baresip::received`]).
    pub record: bool,
    /// baresip's SIP trace (`-s`): every message, sent and received,
    /// with its transport, on stdout.
    pub sip_trace: bool,
    /// Length of the microphone's tone file: baresip hangs a call up when
    /// its `aufile` source reaches the end, so a call must be shorter.
    pub tone_seconds: u32,
}

impl<'a> BaresipSpec<'a> {
    /// `user` over UDP, answering at once, with PCMU and PCMA, playing
    /// `tone_hz`; no recording, no SIP trace.
    pub fn new(user: &'a str, password: &'a str, tone_hz: f64) -> BaresipSpec<'a> {
        BaresipSpec {
            user,
            password,
            transport: "udp",
            answermode: "auto",
            tone_hz,
            codecs: "PCMU,PCMA",
            record: false,
            sip_trace: false,
            tone_seconds: 30,
        }
    }
}

/// Fails the test when baresip is not installed.
pub fn require_baresip() {
    assert!(
        have("baresip"),
        "baresip is not installed (Debian baresip-core)"
    );
}

/// The `[security]` keys a switch needs for baresip: baresip 1.0 (libre)
/// gives up on a 401 that carries any challenge with an algorithm other
/// than MD5 ("Function not implemented"), even when an MD5 challenge
/// comes first, so the switch must offer MD5 alone.
pub fn md5_only() -> Vec<(&'static str, String)> {
    vec![("digest_algorithms", "[\"MD5\"]".into())]
}

/// One running baresip, its ctrl_tcp connection and what it reported.
pub struct Baresip {
    pub name: String,
    pub dir: PathBuf,
    pub sip_port: u16,
    proc: Bg,
    ctrl: TcpStream,
    pub events: String,
}

fn netstring(s: &str) -> Vec<u8> {
    format!("{}:{},", s.len(), s).into_bytes()
}

impl Baresip {
    /// Starts the phone and waits (bounded) for its registration with the
    /// switch of `env`.
    pub fn start(env: &CallEnv, spec: &BaresipSpec<'_>) -> Baresip {
        let mut phone = Baresip::launch(env.path(), env.port, spec);
        assert!(
            phone.wait_event("REGISTER_OK", 1, Duration::from_secs(15)),
            "{}: no REGISTER_OK; events:\n{}\nlog:\n{}",
            phone.name,
            phone.events,
            phone.log()
        );
        phone
    }

    /// Starts the phone (in a directory of its own under `parent`) and
    /// adds its account with the switch on 127.0.0.1:`switch_port`,
    /// without waiting for the registration (`REGISTER_OK`).
    pub fn launch(parent: &Path, switch_port: u16, spec: &BaresipSpec<'_>) -> Baresip {
        let name = format!("baresip-{}-{}", spec.user, unique());
        let dir = parent.join(&name);
        let conf = dir.join(".baresip");
        fs::create_dir_all(&conf).expect("conf dir");
        let snd = dir.join("snd");
        let recorder = if spec.record {
            fs::create_dir_all(&snd).expect("snd dir");
            format!("module\t\t\tsndfile.so\nsnd_path\t\t{}\n", snd.display())
        } else {
            String::new()
        };
        let wav = dir.join("tone.wav");
        write_tone_wav(&wav, spec.tone_seconds, spec.tone_hz);
        let sip_port = free_port_span(1);
        let ctrl_port = free_port();
        fs::write(
            conf.join("config"),
            format!(
                "poll_method\t\tpoll\n\
                 sip_listen\t\t127.0.0.1:{sip_port}\n\
                 net_interface\t\t127.0.0.1\n\
                 audio_player\t\taubridge,nil\n\
                 audio_source\t\taufile,{wav}\n\
                 audio_alert\t\taubridge,nil\n\
                 audio_srate\t\t8000\n\
                 audio_channels\t\t1\n\
                 module_path\t\t/usr/lib/baresip/modules\n\
                 module\t\t\tg711.so\n\
                 module\t\t\taubridge.so\n\
                 module\t\t\taufile.so\n\
                 {recorder}\
                 module_app\t\tmenu.so\n\
                 module_app\t\tctrl_tcp.so\n\
                 ctrl_tcp_listen\t\t127.0.0.1:{ctrl_port}\n",
                wav = wav.display(),
            ),
        )
        .expect("write baresip config");
        fs::write(conf.join("accounts"), "").expect("accounts");
        fs::write(conf.join("contacts"), "").expect("contacts");
        let mut cmd = Command::new("baresip");
        cmd.arg("-f").arg(&conf).env("HOME", &dir);
        if spec.sip_trace {
            cmd.arg("-s");
        }
        let proc = Bg::spawn(cmd, &dir, "baresip", Duration::from_secs(120));
        let addr = SocketAddr::from(([127, 0, 0, 1], ctrl_port));
        let deadline = Instant::now() + Duration::from_secs(10);
        let ctrl = loop {
            if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: ctrl_tcp not listening within 10 s; log:\n{}",
                proc.stdout()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let mut phone = Baresip {
            name,
            dir,
            sip_port,
            proc,
            ctrl,
            events: String::new(),
        };
        phone.command(
            "uanew",
            &format!(
                "<sip:{user}@127.0.0.1:{switch_port};transport={transport}>;auth_pass={password};answermode={answermode};regint=600;audio_codecs={codecs}",
                user = spec.user,
                transport = spec.transport,
                password = spec.password,
                answermode = spec.answermode,
                codecs = spec.codecs,
            ),
        );
        phone
    }

    /// Sends a ctrl_tcp command (`dial`, `hangup`, `accept`, …).
    pub fn command(&mut self, command: &str, params: &str) {
        let body = format!(
            r#"{{"command":"{command}","params":"{}","token":"{}"}}"#,
            params.replace('"', "\\\""),
            unique()
        );
        self.ctrl
            .write_all(&netstring(&body))
            .expect("write to ctrl_tcp");
    }

    /// How many times the event `kind` has been reported so far.
    pub fn count(&self, kind: &str) -> usize {
        self.events.matches(&format!("\"type\":\"{kind}\"")).count()
    }

    /// Waits (bounded) until the event `kind` has been reported `n` times.
    pub fn wait_event(&mut self, kind: &str, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 8192];
        loop {
            if self.count(kind) >= n {
                return true;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            let _ = self
                .ctrl
                .set_read_timeout(Some(left.max(Duration::from_millis(10))));
            match self.ctrl.read(&mut buf) {
                Ok(0) => return false,
                Ok(k) => self.events.push_str(&String::from_utf8_lossy(&buf[..k])),
                Err(_) => {}
            }
        }
    }

    /// Reads whatever events arrive within `timeout` (to see that one did
    /// not come).
    pub fn settle(&mut self, timeout: Duration) {
        let _ = self.wait_event("NO_SUCH_EVENT", 1, timeout);
    }

    /// stdout and stderr so far (the SIP trace with `sip_trace`).
    pub fn log(&self) -> String {
        format!("{}{}", self.proc.stdout(), self.proc.stderr())
    }

    /// Stops baresip (`quit`, then SIGTERM by PID, bounded); its output.
    pub fn stop(&mut self) -> String {
        self.command("quit", "");
        let run = self.proc.terminate(Duration::from_secs(5));
        format!("{}{}", run.stdout, run.stderr)
    }

    /// The recordings of what this phone received in each of its calls
    /// (with `record`), in file-name order.
    pub fn received_all(&self) -> Result<Vec<Wav>, String> {
        let snd = self.dir.join("snd");
        let mut found: Vec<PathBuf> = fs::read_dir(&snd)
            .map_err(|e| format!("{}: {e}", snd.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("dump") && n.ends_with("-dec.wav"))
            })
            .collect();
        found.sort();
        found.iter().map(|p| read_wav(p)).collect()
    }

    /// The recording of what this phone received (with `record`).
    pub fn received(&self) -> Result<Wav, String> {
        let snd = self.dir.join("snd");
        let found: Vec<PathBuf> = fs::read_dir(&snd)
            .map_err(|e| format!("{}: {e}", snd.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("dump") && n.ends_with("-dec.wav"))
            })
            .collect();
        match found.as_slice() {
            [one] => read_wav(one),
            other => Err(format!(
                "{}: expected one dump-*-dec.wav in {}, found {other:?}",
                self.name,
                snd.display()
            )),
        }
    }
}
