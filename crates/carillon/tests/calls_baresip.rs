//! Calls between two real softphones through the switch: baresip
//! instances registered as 100 and 101 (driven over ctrl_tcp), each
//! playing its own tone as microphone (aufile: 100 plays 600 Hz, 101 plays
//! 1400 Hz) and recording what it receives (sndfile, `dump-*-dec.wav`).
//! 100 dials 101 (auto-answer), the call is held about 5 s, 100 hangs up;
//! each recording must be dominated by the OTHER side's tone.
//!
//! Then the same with 100 restricted to PCMU and 101 to PCMA (in baresip
//! and in users.toml), so that the relay must transcode; each side's SDP
//! must have negotiated its own codec.

mod callsupport;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use callsupport::*;

const TONE_100: f64 = 600.0;
const TONE_101: f64 = 1400.0;

fn netstring(s: &str) -> Vec<u8> {
    format!("{}:{},", s.len(), s).into_bytes()
}

/// One baresip softphone, its ctrl_tcp connection and what it reported.
struct Phone {
    name: String,
    dir: PathBuf,
    proc: Bg,
    ctrl: TcpStream,
    events: String,
}

impl Phone {
    fn start(env: &CallEnv, user: &str, password: &str, tone_hz: f64, codecs: &str) -> Phone {
        let name = format!("baresip-{user}");
        let dir = env.path().join(&name);
        let conf = dir.join(".baresip");
        let snd = dir.join("snd");
        fs::create_dir_all(&conf).expect("conf dir");
        fs::create_dir_all(&snd).expect("snd dir");
        let wav = dir.join("tone.wav");
        write_tone_wav(&wav, 30, tone_hz);
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
                 module\t\t\tsndfile.so\n\
                 snd_path\t\t{snd}\n\
                 module_app\t\tmenu.so\n\
                 module_app\t\tctrl_tcp.so\n\
                 ctrl_tcp_listen\t\t127.0.0.1:{ctrl_port}\n",
                wav = wav.display(),
                snd = snd.display(),
            ),
        )
        .expect("write baresip config");
        fs::write(conf.join("accounts"), "").expect("accounts");
        fs::write(conf.join("contacts"), "").expect("contacts");
        let mut cmd = Command::new("baresip");
        cmd.arg("-f").arg(&conf).env("HOME", &dir);
        let proc = Bg::spawn(cmd, &dir, "baresip", Duration::from_secs(90));
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
        let mut phone = Phone {
            name,
            dir,
            proc,
            ctrl,
            events: String::new(),
        };
        phone.command(
            "uanew",
            &format!(
                "<sip:{user}@127.0.0.1:{port};transport=udp>;auth_pass={password};answermode=auto;regint=600;audio_codecs={codecs}",
                port = env.port
            ),
        );
        assert!(
            phone.wait_event("REGISTER_OK", 1, Duration::from_secs(15)),
            "{}: no REGISTER_OK; events:\n{}\nlog:\n{}",
            phone.name,
            phone.events,
            phone.log()
        );
        phone
    }

    fn command(&mut self, command: &str, params: &str) {
        let body = format!(
            r#"{{"command":"{command}","params":"{}","token":"{}"}}"#,
            params.replace('"', "\\\""),
            unique()
        );
        self.ctrl
            .write_all(&netstring(&body))
            .expect("write to ctrl_tcp");
    }

    /// Waits (bounded) until the event `kind` has been reported `n` times.
    fn wait_event(&mut self, kind: &str, n: usize, timeout: Duration) -> bool {
        let needle = format!("\"type\":\"{kind}\"");
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 8192];
        loop {
            if self.events.matches(&needle).count() >= n {
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

    fn log(&self) -> String {
        format!("{}{}", self.proc.stdout(), self.proc.stderr())
    }

    /// Stops baresip (SIGTERM, bounded) so that its recordings are closed.
    fn stop(&mut self) -> String {
        self.command("quit", "");
        let run = self.proc.terminate(Duration::from_secs(5));
        format!("{}{}", run.stdout, run.stderr)
    }

    /// The recording of what this phone received.
    fn received(&self) -> Result<Wav, String> {
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

/// What one call between the two phones showed.
struct Outcome {
    log_100: String,
    log_101: String,
    heard_by_100: Wav,
    heard_by_101: Wav,
}

fn call_between_phones(
    env: &mut CallEnv,
    sw: &Switch,
    codecs_100: &str,
    codecs_101: &str,
) -> Outcome {
    let mut p100 = Phone::start(env, "100", PW100, TONE_100, codecs_100);
    let mut p101 = Phone::start(env, "101", PW101, TONE_101, codecs_101);
    p100.command("dial", &format!("sip:101@127.0.0.1:{}", env.port));
    let up_100 = p100.wait_event("CALL_ESTABLISHED", 1, Duration::from_secs(15));
    let up_101 = p101.wait_event("CALL_ESTABLISHED", 1, Duration::from_secs(5));
    assert!(
        up_100 && up_101,
        "call 100 → 101 not established (100: {up_100}, 101: {up_101})\n100 events:\n{}\n101 events:\n{}\n100 log:\n{}\n101 log:\n{}\nswitch log:\n{}",
        p100.events,
        p101.events,
        p100.log(),
        p101.log(),
        sw.log()
    );
    std::thread::sleep(Duration::from_secs(5));
    p100.command("hangup", "");
    let down_100 = p100.wait_event("CALL_CLOSED", 1, Duration::from_secs(10));
    let down_101 = p101.wait_event("CALL_CLOSED", 1, Duration::from_secs(10));
    assert!(
        down_100 && down_101,
        "hangup by 100 did not close the call on both phones (100: {down_100}, 101: {down_101})\n101 events:\n{}\nswitch log:\n{}",
        p101.events,
        sw.log()
    );
    let log_100 = p100.stop();
    let log_101 = p101.stop();
    let heard_by_100 = p100.received().unwrap_or_else(|e| panic!("{e}\n{log_100}"));
    let heard_by_101 = p101.received().unwrap_or_else(|e| panic!("{e}\n{log_101}"));
    Outcome {
        log_100,
        log_101,
        heard_by_100,
        heard_by_101,
    }
}

/// The recording must hold at least 2 s of sound, most of it `expected_hz`
/// and almost none of the listener's own tone.
fn assert_heard(who: &str, wav: &Wav, expected_hz: f64, own_hz: f64) {
    let r = tone_report(wav, expected_hz, own_hz);
    eprintln!(
        "{who}: {:.1} s recorded at {} Hz, {r:?}",
        wav.samples.len() as f64 / f64::from(wav.rate.max(1)),
        wav.rate
    );
    assert!(
        r.voiced >= 20,
        "{who} received less than 2 s of sound: {r:?}"
    );
    assert!(
        r.expected * 10 >= r.voiced * 8,
        "{who}: the other side's {expected_hz} Hz dominates only {} of {} voiced 100 ms blocks: {r:?}",
        r.expected,
        r.voiced
    );
    assert!(
        r.other * 10 <= r.voiced,
        "{who} hears its own {own_hz} Hz tone in {} of {} blocks: {r:?}",
        r.other,
        r.voiced
    );
}

fn check_switch(sw: &mut Switch) {
    let ended = sw.wait_lines("call ended", 1, Duration::from_secs(5));
    assert_eq!(ended.len(), 1, "log:\n{}", sw.log());
    assert_eq!(
        ended[0].get("disposition"),
        Some("ANSWERED"),
        "{}",
        ended[0].raw
    );
    let legs = sw.wait_lines("media leg closed", 2, Duration::from_secs(5));
    assert_eq!(legs.len(), 2, "log:\n{}", sw.log());
    for l in &legs {
        assert!(
            l.num("packets_in").unwrap_or(0) > 100 && l.num("packets_out").unwrap_or(0) > 100,
            "a relay leg carried too little RTP for a 5 s call: {}",
            l.raw
        );
    }
    sw.stop();
    assert_eq!(sw.lines("call ended").len(), 1, "log:\n{}", sw.log());
}

/// baresip 1.0 (libre) gives up on a 401 that carries any challenge with
/// an algorithm other than MD5 ("Function not implemented"), even when an
/// MD5 challenge comes first: the switch must offer MD5 alone to it.
fn baresip_options() -> Options {
    Options {
        security: vec![("digest_algorithms", "[\"MD5\"]".into())],
        ..Options::default()
    }
}

fn require_baresip() {
    assert!(
        have("baresip"),
        "baresip is not installed (Debian baresip-core)"
    );
}

#[test]
fn two_baresip_phones_hear_each_others_tone_through_the_switch() {
    require_baresip();
    let mut env = CallEnv::new(&baresip_options());
    let mut sw = env.start();
    let out = call_between_phones(&mut env, &sw, "PCMU,PCMA", "PCMU,PCMA");
    assert_heard("100", &out.heard_by_100, TONE_101, TONE_100);
    assert_heard("101", &out.heard_by_101, TONE_100, TONE_101);
    let _ = (&out.log_100, &out.log_101);
    check_switch(&mut sw);
}

/// The codec a baresip log says its audio stream sends with.
fn negotiated(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("audio") && (l.contains("PCMU") || l.contains("PCMA")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn pcmu_phone_and_pcma_phone_hear_each_other_through_transcoding() {
    require_baresip();
    let mut env = CallEnv::new(&Options {
        users_toml: Some(users_with_codecs(&["ulaw"], &["alaw"])),
        rust_log: Some("info,carillon_b2bua=debug".into()),
        ..baresip_options()
    });
    let mut sw = env.start();
    let out = call_between_phones(&mut env, &sw, "PCMU", "PCMA");
    let n100 = negotiated(&out.log_100);
    let n101 = negotiated(&out.log_101);
    eprintln!("100 codec lines: {n100:#?}\n101 codec lines: {n101:#?}");
    assert!(
        !n100.is_empty()
            && n100
                .iter()
                .all(|l| l.contains("PCMU") && !l.contains("PCMA")),
        "100 (PCMU only) did not negotiate PCMU alone:\n{}",
        out.log_100
    );
    assert!(
        !n101.is_empty()
            && n101
                .iter()
                .all(|l| l.contains("PCMA") && !l.contains("PCMU")),
        "101 (PCMA only) did not negotiate PCMA alone:\n{}",
        out.log_101
    );
    assert_heard("100", &out.heard_by_100, TONE_101, TONE_100);
    assert_heard("101", &out.heard_by_101, TONE_100, TONE_101);
    check_switch(&mut sw);
}
