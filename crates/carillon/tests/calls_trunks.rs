//! Carrier trunks end to end (issue 3): the real switch on 127.0.0.1, SIPp
//! playing the carrier from another loopback address (127.0.0.2), phones
//! 100 and 101 as SIPp on 127.0.0.1, everything over real UDP.
//!
//! Covered:
//! - inbound: a call from the trunk's `identify` address enters the
//!   trunk's context without digest auth and rings a registered extension
//!   (answered, RTP relayed both ways, BYE); the same INVITE from an
//!   address no trunk lists (127.0.0.3) is challenged like any phone and
//!   never routed (toll-fraud protection);
//! - outbound: `9` + number from context `internal` goes out on the
//!   trunk; the carrier's 407 is answered with Proxy-Authorization for the
//!   trunk's credentials (checked here with an independent MD5), From
//!   carries `from_user@from_domain` and P-Asserted-Identity the caller;
//! - failover: of two contacts, the first never answers OPTIONS; once
//!   qualify declares it Down the call goes to the second; and a contact
//!   that answers the INVITE itself with 503 (no qualify) has the same
//!   call placed again at the next contact;
//! - outbound registration: a 401-challenged REGISTER verified by SIPp's
//!   registrar, refreshed with valid credentials before the granted expiry;
//! - `max_calls = 1`: a second concurrent call is refused with 503, and the
//!   slot is free again once the first call ends.

mod callsupport;

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use callsupport::*;

/// The carrier's "host".
const CARRIER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// A host no trunk lists.
const STRANGER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

/// Our DID at the carrier (context `from-carrier` rings 101).
const DID: &str = "+15550001111";
/// What phone 100 dials (`9` + a US number) and what the carrier receives.
const DIALLED: &str = "915551234567";
const E164: &str = "+15551234567";

/// The test dialplan: `internal` may use the trunk `carrier` (`9` + number
/// → `+number`), the trunk's context rings 101.
const DIALPLAN: &str = r#"
[context.internal]
allow_trunks = ["carrier"]

[[context.internal.extension]]
match = "101"
steps = [
  { app = "Dial", targets = ["user/101"], timeout = 20 },
  { app = "Hangup" },
]

[[context.internal.extension]]
match = "_9X."
steps = [
  { app = "Dial", targets = ["trunk/carrier/+${EXTEN:1}"], timeout = 20 },
  { app = "Hangup" },
]

[context.from-carrier]

[[context.from-carrier.extension]]
match = "+15550001111"
steps = [
  { app = "Dial", targets = ["user/101"], timeout = 20 },
  { app = "Hangup" },
]
"#;

/// A switch environment whose only trunk is `[trunk.carrier]` with `body`
/// (the keys after the table header).
fn trunk_env(body: &str) -> CallEnv {
    let env = CallEnv::new(&Options {
        users_toml: Some(users_with_codecs(&["ulaw", "alaw"], &["ulaw", "alaw"])),
        ..Options::default()
    });
    let trunks = format!("[trunk.carrier]\nkind = \"carrier\"\n{body}");
    std::fs::write(env.config_dir().join("trunks.toml"), trunks).expect("write trunks.toml");
    std::fs::write(env.config_dir().join("dialplan.toml"), DIALPLAN).expect("write dialplan.toml");
    env
}

/// Phone 100 (SIPp on 127.0.0.1, digest-authenticated) calls `number`
/// with `scenario_file` (fields: 100, credentials, number).
fn phone_100_calls(
    env: &CallEnv,
    sw: &Switch,
    name: &str,
    scenario_file: &str,
    number: &str,
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
        .args(["-m", "1", "-timeout", "20s"]);
    Bg::spawn(cmd, env.path(), name, Duration::from_secs(25))
}

/// A SIPp answering calls on `ip:port` (the carrier, or a phone): SIPp
/// `scenario_file` (or the built-in UAS), RTP echoed, OPTIONS answered
/// (`-aa`); `calls` = 0 runs until terminated. Returns once its socket is
/// bound.
fn sipp_uas(
    env: &CallEnv,
    name: &str,
    ip: IpAddr,
    scenario_file: Option<&str>,
    port: u16,
    calls: u32,
) -> Bg {
    let media = free_udp_port_on(ip, 3);
    let mut cmd = sipp_cmd_on(env.path(), name, ip, port);
    match scenario_file {
        Some(f) => cmd.args(["-sf", &scenario(f)]),
        None => cmd.args(["-sn", "uas"]),
    };
    cmd.args(["-mp", &media.to_string(), "-rtp_echo", "-aa"])
        .args(["-timeout", "30s"]);
    if calls > 0 {
        cmd.args(["-m", &calls.to_string()]);
    }
    let bg = Bg::spawn(cmd, env.path(), name, Duration::from_secs(35));
    wait_udp_bound(ip, port);
    bg
}

/// Waits (bounded) until something is bound to UDP `ip:port`.
fn wait_udp_bound(ip: IpAddr, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if UdpSocket::bind((ip, port)).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing bound UDP {ip}:{port} within 5 s");
}

fn assert_sipp_ok(run: &ToolRun, env: &CallEnv, sw: &Switch, name: &str, names: &[&str]) {
    let stats = sipp_stats(env.path(), name);
    assert!(
        run.ok() && sipp_count(&stats, "FailedCall") == 0,
        "{name}: status {:?}, successful {}, failed {}\n{}\n{}",
        run.status,
        sipp_count(&stats, "SuccessfulCall"),
        sipp_count(&stats, "FailedCall"),
        run.stderr,
        describe(env, sw, names)
    );
}

/// Every `media leg closed` line of the calls so far must show RTP relayed
/// both ways (`n` legs, each at least `min` packets in and out).
/// The only INVITE SIPp `name` received, which must be for the dialled
/// number at `host_port`.
fn the_one_invite(env: &CallEnv, sw: &Switch, name: &str, host_port: &str) -> String {
    let mut invites = received(env, name, "INVITE");
    assert_eq!(invites.len(), 1, "{}", describe(env, sw, &[name]));
    let invite = invites.remove(0);
    assert!(
        start_line(&invite).starts_with(&format!("INVITE sip:{E164}@{host_port}")),
        "{invite}"
    );
    invite
}

/// Exactly one call ended, and it was answered.
fn assert_one_answered_call(sw: &Switch) {
    let ended = sw.wait_lines("call ended", 1, Duration::from_secs(5));
    assert_eq!(ended.len(), 1, "{}", sw.log());
    assert_eq!(
        ended[0].get("disposition"),
        Some("ANSWERED"),
        "{}",
        ended[0].raw
    );
}

fn assert_media_relayed(sw: &Switch, n: usize, min: i64) {
    let legs = sw.wait_lines("media leg closed", n, Duration::from_secs(5));
    assert_eq!(legs.len(), n, "{n} media legs expected:\n{}", sw.log());
    for leg in &legs {
        let (i, o) = (
            leg.num("packets_in").unwrap_or(-1),
            leg.num("packets_out").unwrap_or(-1),
        );
        assert!(
            i >= min && o >= min,
            "relay leg did not carry RTP both ways: {}\nlog:\n{}",
            leg.raw,
            sw.log()
        );
    }
}

/// `Digest a="b", c=d` → parameters (quotes removed).
fn digest_params(value: &str) -> HashMap<String, String> {
    let rest = value.trim().strip_prefix("Digest").unwrap_or(value).trim();
    let mut out = HashMap::new();
    let mut parts = Vec::new();
    let (mut cur, mut quoted) = (String::new(), false);
    for c in rest.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    for p in parts {
        if let Some((k, v)) = p.split_once('=') {
            out.insert(
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_owned(),
            );
        }
    }
    out
}

/// MD5 hex of `s` by coreutils' `md5sum`: independent of the switch's own
/// digest code.
fn md5_hex(s: &str) -> String {
    let mut child = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("md5sum");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(s.as_bytes())
        .expect("write md5sum");
    let out = child.wait_with_output().expect("md5sum output");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The value of header `name` in one SIP message as SIPp logged it.
fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The received requests of a SIPp message log whose start line begins
/// with `method`.
fn received(env: &CallEnv, name: &str, method: &str) -> Vec<String> {
    sipp_messages(env.path(), name)
        .into_iter()
        .filter(|m| m.contains("message received"))
        .filter(|m| {
            m.lines()
                .find(|l| !l.trim().is_empty() && !l.contains("message received"))
                .is_some_and(|l| l.starts_with(&format!("{method} ")))
        })
        .collect()
}

fn start_line(msg: &str) -> &str {
    msg.lines()
        .find(|l| !l.trim().is_empty() && !l.contains("message received"))
        .unwrap_or("")
}

#[test]
fn a_carrier_identified_by_source_address_reaches_an_extension_and_a_stranger_does_not() {
    require_sipp();
    let mut env = trunk_env(
        "contacts = [\"sip:127.0.0.2:5060\"]\nidentify = [\"127.0.0.2\"]\ncontext = \"from-carrier\"\n",
    );
    let sw = env.start();
    let uas_sip = free_udp_port_on(LOCALHOST, 1);
    sipp_register(&sw, env.path(), "101", PW101, uas_sip);
    write_tone_pcap(&env.path().join("tone.pcap"), 2, 440.0);
    let mut uas = sipp_uas(&env, "uas-101", LOCALHOST, None, uas_sip, 1);

    // The same INVITE from 127.0.0.3 first, while 101 is waiting: the
    // switch challenges it (it is nobody's trunk) and routes nothing.
    let csv = write_csv(env.path(), "stranger.csv", &[format!("{DID};+15557654321")]);
    let port = free_udp_port_on(STRANGER_IP, 1);
    let mut cmd = sipp_cmd_on(env.path(), "stranger", STRANGER_IP, port);
    cmd.arg(sw.addr().to_string())
        .args(["-sf", &scenario("trunk_unidentified_uac.xml")])
        .args(["-inf", &csv, "-m", "1", "-timeout", "10s"])
        .args(["-mp", &free_udp_port_on(STRANGER_IP, 3).to_string()]);
    let run = run_tool(cmd, env.path(), "stranger", Duration::from_secs(15));
    assert_sipp_ok(&run, &env, &sw, "stranger", &["stranger"]);
    assert!(
        sw.lines("call started").is_empty(),
        "an INVITE from an unidentified address must not start a call:\n{}",
        sw.log()
    );

    // The carrier's call: no credentials, identified by 127.0.0.2.
    let csv = write_csv(env.path(), "carrier.csv", &[format!("{DID};+15557654321")]);
    let port = free_udp_port_on(CARRIER_IP, 1);
    let media = free_udp_port_on(CARRIER_IP, 3);
    let mut cmd = sipp_cmd_on(env.path(), "carrier", CARRIER_IP, port);
    cmd.arg(sw.addr().to_string())
        .args(["-sf", &scenario("trunk_carrier_uac.xml")])
        .args(["-inf", &csv, "-mp", &media.to_string()])
        .args(["-m", "1", "-timeout", "20s"]);
    let run = run_tool(cmd, env.path(), "carrier", Duration::from_secs(25));
    assert_sipp_ok(&run, &env, &sw, "carrier", &["carrier", "uas-101"]);
    let uas_run = uas.wait();
    assert_sipp_ok(&uas_run, &env, &sw, "uas-101", &["carrier", "uas-101"]);
    assert_eq!(
        sipp_count(&sipp_stats(env.path(), "uas-101"), "SuccessfulCall"),
        1
    );

    let started = sw.lines("call started");
    assert_eq!(started.len(), 1, "one call expected:\n{}", sw.log());
    assert_eq!(
        started[0].get("trunk"),
        Some("Some(\"carrier\")"),
        "{}",
        started[0].raw
    );
    assert_eq!(
        started[0].get("context"),
        Some("from-carrier"),
        "{}",
        started[0].raw
    );
    assert_eq!(started[0].get("exten"), Some(DID), "{}", started[0].raw);
    assert_one_answered_call(&sw);
    // 100 packets played by the carrier, echoed back by 101.
    assert_media_relayed(&sw, 2, 90);
}

#[test]
fn an_outbound_call_answers_the_carriers_407_with_the_trunks_credentials() {
    require_sipp();
    let carrier_port = free_udp_port_on(CARRIER_IP, 1);
    let mut env = trunk_env(&format!(
        "contacts = [\"sip:127.0.0.2:{carrier_port}\"]\n\
         identify = [\"127.0.0.2\"]\n\
         username = \"acct1\"\n\
         password = \"s3cret\"\n\
         from_user = \"acct1\"\n\
         from_domain = \"carrier.example\"\n\
         send_pai = true\n\
         context = \"from-carrier\"\n"
    ));
    let sw = env.start();
    write_tone_pcap(&env.path().join("tone.pcap"), 2, 440.0);
    let mut carrier = sipp_uas(
        &env,
        "carrier",
        CARRIER_IP,
        Some("trunk_carrier_uas_407.xml"),
        carrier_port,
        1,
    );
    let mut phone = phone_100_calls(&env, &sw, "phone-100", "uac_auth_pcap.xml", DIALLED);
    let run = phone.wait();
    assert_sipp_ok(&run, &env, &sw, "phone-100", &["phone-100", "carrier"]);
    let run = carrier.wait();
    assert_sipp_ok(&run, &env, &sw, "carrier", &["phone-100", "carrier"]);

    // Two INVITEs reached the carrier: the first without credentials, the
    // second answering its challenge.
    let invites = received(&env, "carrier", "INVITE");
    assert_eq!(invites.len(), 2, "{}", describe(&env, &sw, &["carrier"]));
    assert!(header(&invites[0], "Proxy-Authorization").is_none());
    let second = &invites[1];
    for invite in &invites {
        let from = header(invite, "From").unwrap_or_default();
        assert!(
            from.contains("<sip:acct1@carrier.example>"),
            "From must be from_user@from_domain: {from}"
        );
        let pai = header(invite, "P-Asserted-Identity").unwrap_or_default();
        assert_eq!(
            pai, "<sip:100@carrier.example>",
            "P-Asserted-Identity: the caller"
        );
    }
    let request_uri = start_line(second)
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    assert!(
        request_uri.starts_with(&format!("sip:{E164}@127.0.0.2")),
        "{request_uri}"
    );
    let auth =
        header(second, "Proxy-Authorization").expect("Proxy-Authorization in the re-sent INVITE");
    let p = digest_params(auth);
    let get = |k: &str| p.get(k).map_or("", String::as_str);
    assert_eq!(get("username"), "acct1", "{auth}");
    assert_eq!(get("realm"), "carrier.example", "{auth}");
    assert_eq!(get("nonce"), "f00dcafe1", "{auth}");
    assert_eq!(
        get("uri"),
        request_uri,
        "digest-uri must be the Request-URI: {auth}"
    );
    assert_eq!(get("qop"), "auth", "{auth}");
    assert_eq!(get("nc"), "00000001", "{auth}");
    let ha1 = md5_hex("acct1:carrier.example:s3cret");
    let ha2 = md5_hex(&format!("INVITE:{}", get("uri")));
    let expected = md5_hex(&format!(
        "{ha1}:f00dcafe1:{}:{}:auth:{ha2}",
        get("nc"),
        get("cnonce")
    ));
    assert_eq!(
        get("response"),
        expected,
        "digest response must verify: {auth}"
    );

    assert_one_answered_call(&sw);
    assert_media_relayed(&sw, 2, 90);
}

/// A UDP socket that receives and never answers: a contact that is down
/// but whose traffic the test can see.
struct SilentPeer {
    port: u16,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl SilentPeer {
    fn start() -> SilentPeer {
        let sock = UdpSocket::bind((LOCALHOST, 0)).expect("bind silent peer");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        let port = sock.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let (stop2, seen2) = (Arc::clone(&stop), Arc::clone(&seen));
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while !stop2.load(Ordering::SeqCst) {
                if let Ok((n, _)) = sock.recv_from(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]);
                    let first = text.lines().next().unwrap_or("").to_owned();
                    seen2.lock().expect("lock").push(first);
                }
            }
        });
        SilentPeer {
            port,
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for SilentPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_contact_that_stops_answering_options_is_skipped_for_the_next_one() {
    require_sipp();
    let dead = SilentPeer::start();
    let live_port = free_udp_port_on(CARRIER_IP, 1);
    let dead_uri = format!("sip:127.0.0.1:{}", dead.port);
    let live_uri = format!("sip:127.0.0.2:{live_port}");
    let mut env = trunk_env(&format!(
        "contacts = [\"{dead_uri}\", \"{live_uri}\"]\n\
         qualify_secs = 2\n\
         qualify_timeout_secs = 1\n"
    ));
    write_tone_pcap(&env.path().join("tone.pcap"), 2, 440.0);
    let mut carrier = sipp_uas(&env, "carrier", CARRIER_IP, None, live_port, 0);
    let sw = env.start();

    // Qualify: the silent contact goes Down, the SIPp one Up.
    let changed = |contact: &str, to: &str| {
        let needle = format!("contact: \"{contact}\"");
        let to = format!("to: {to} ");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let hit = sw
                .lines("ContactStateChanged")
                .iter()
                .any(|l| l.raw.contains(&needle) && l.raw.contains(&to));
            if hit || Instant::now() >= deadline {
                return hit;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert!(
        changed(&dead_uri, "Down"),
        "first contact never went Down:\n{}",
        sw.log()
    );
    assert!(
        changed(&live_uri, "Up"),
        "second contact never came Up:\n{}",
        sw.log()
    );

    let mut phone = phone_100_calls(&env, &sw, "phone-100", "uac_auth_pcap.xml", DIALLED);
    let run = phone.wait();
    assert_sipp_ok(&run, &env, &sw, "phone-100", &["phone-100", "carrier"]);
    let run = carrier.terminate(Duration::from_secs(5));
    assert!(run.status.is_some(), "carrier SIPp did not stop");

    the_one_invite(&env, &sw, "carrier", &format!("127.0.0.2:{live_port}"));
    assert!(
        !received(&env, "carrier", "OPTIONS").is_empty(),
        "the live contact must have been qualified"
    );
    let seen = dead.seen();
    assert!(
        seen.iter().any(|l| l.starts_with("OPTIONS ")),
        "the dead contact must have been pinged: {seen:?}"
    );
    assert!(
        !seen.iter().any(|l| l.starts_with("INVITE ")),
        "no INVITE may go to the contact qualified Down: {seen:?}"
    );
    assert_one_answered_call(&sw);
}

#[test]
fn a_contact_that_answers_the_invite_with_503_passes_the_call_to_the_next_one() {
    require_sipp();
    let busy_port = free_udp_port_on(CARRIER_IP, 1);
    let live_port = free_udp_port_on(LOCALHOST, 1);
    let busy_uri = format!("sip:127.0.0.2:{busy_port}");
    let live_uri = format!("sip:127.0.0.1:{live_port}");
    let mut env = trunk_env(&format!("contacts = [\"{busy_uri}\", \"{live_uri}\"]\n"));
    write_tone_pcap(&env.path().join("tone.pcap"), 2, 440.0);
    let mut busy = sipp_uas(
        &env,
        "busy-edge",
        CARRIER_IP,
        Some("trunk_uas_503.xml"),
        busy_port,
        1,
    );
    let mut live = sipp_uas(&env, "live-edge", LOCALHOST, None, live_port, 0);
    let sw = env.start();

    let mut phone = phone_100_calls(&env, &sw, "phone-100", "uac_auth_pcap.xml", DIALLED);
    let run = phone.wait();
    assert_sipp_ok(
        &run,
        &env,
        &sw,
        "phone-100",
        &["phone-100", "busy-edge", "live-edge"],
    );
    let run = busy.wait();
    assert!(
        run.ok(),
        "the 503 edge must have had its INVITE and ACK: {}",
        describe(&env, &sw, &["busy-edge"])
    );
    let run = live.terminate(Duration::from_secs(5));
    assert!(run.status.is_some(), "live SIPp did not stop");

    let first = the_one_invite(&env, &sw, "busy-edge", &format!("127.0.0.2:{busy_port}"));
    let second = the_one_invite(&env, &sw, "live-edge", &format!("127.0.0.1:{live_port}"));
    assert_ne!(
        header(&first, "Call-ID"),
        header(&second, "Call-ID"),
        "the second attempt is a new outbound leg"
    );
    assert_eq!(
        sw.lines("trunk contact failed: trying the next one").len(),
        1,
        "{}",
        sw.log()
    );
    assert_one_answered_call(&sw);
    assert_media_relayed(&sw, 2, 50);
}

#[test]
fn a_registering_trunk_answers_the_401_refreshes_before_expiry_and_unregisters_at_stop() {
    require_sipp();
    let registrar_port = free_udp_port_on(CARRIER_IP, 1);
    let mut env = trunk_env(&format!(
        "contacts = [\"sip:127.0.0.2:{registrar_port}\"]\n\
         register = true\n\
         registrar = \"sip:127.0.0.2:{registrar_port}\"\n\
         expiry = 120\n\
         username = \"acct1\"\n\
         password = \"s3cret\"\n"
    ));
    // The registrar first, so that the first REGISTER finds it.
    let mut registrar = sipp_uas(
        &env,
        "registrar",
        CARRIER_IP,
        Some("trunk_registrar.xml"),
        registrar_port,
        1,
    );
    let mut sw = env.start();
    // Registered, refreshed within the 4 s grant, then granted 60 s...
    let refreshed = sw.wait_lines("Registered { expires: 60 }", 1, Duration::from_secs(15));
    assert_eq!(
        refreshed.len(),
        1,
        "{}",
        describe(&env, &sw, &["registrar"])
    );
    // ...and SIGTERM removes the binding before the switch exits.
    sw.stop();
    let run = registrar.wait();
    assert_sipp_ok(&run, &env, &sw, "registrar", &["registrar"]);
    assert_eq!(
        sipp_count(&sipp_stats(env.path(), "registrar"), "SuccessfulCall"),
        1
    );

    let registers = received(&env, "registrar", "REGISTER");
    assert_eq!(
        registers.len(),
        4,
        "{}",
        describe(&env, &sw, &["registrar"])
    );
    assert!(header(&registers[0], "Authorization").is_none());
    assert_eq!(
        header(&registers[3], "Expires"),
        Some("0"),
        "{}",
        registers[3]
    );
    for r in registers.iter().take(3) {
        assert_eq!(header(r, "Expires"), Some("120"), "{r}");
        assert!(
            header(r, "To")
                .unwrap_or_default()
                .contains("sip:acct1@127.0.0.2"),
            "{r}"
        );
    }
    // The refresh answers the same challenge with the next nonce-count.
    let nc = |r: &str| {
        digest_params(header(r, "Authorization").unwrap_or_default())
            .get("nc")
            .cloned()
    };
    assert_eq!(nc(&registers[1]).as_deref(), Some("00000001"));
    assert_eq!(nc(&registers[2]).as_deref(), Some("00000002"));
    let registered = sw.wait_lines("RegistrationChanged", 1, Duration::from_secs(5));
    assert!(
        registered
            .iter()
            .any(|l| l.raw.contains("Registered { expires: 4 }")),
        "{}",
        sw.log()
    );
}

#[test]
fn a_trunk_at_max_calls_refuses_the_next_call_with_503_until_one_ends() {
    require_sipp();
    let carrier_port = free_udp_port_on(CARRIER_IP, 1);
    let mut env = trunk_env(&format!(
        "contacts = [\"sip:127.0.0.2:{carrier_port}\"]\nmax_calls = 1\n"
    ));
    let sw = env.start();
    write_tone_pcap(&env.path().join("tone.pcap"), 2, 440.0);
    let mut carrier = sipp_uas(&env, "carrier", CARRIER_IP, None, carrier_port, 2);

    // First call up (3 s of tone, then BYE)...
    let mut first = phone_100_calls(&env, &sw, "first", "uac_auth_pcap.xml", DIALLED);
    let answered = sw.wait_lines("call answered", 1, Duration::from_secs(10));
    assert_eq!(answered.len(), 1, "first call not answered:\n{}", sw.log());
    // ...so the second finds the trunk full.
    let mut second = phone_100_calls(&env, &sw, "second", "trunk_uac_refused.xml", DIALLED);
    let run = second.wait();
    assert_sipp_ok(&run, &env, &sw, "second", &["second"]);
    let run = first.wait();
    assert_sipp_ok(&run, &env, &sw, "first", &["first", "carrier"]);
    assert!(
        sw.lines("trunk refused the call")
            .iter()
            .any(|l| l.raw.contains("TrunkFull")),
        "the refusal must name the trunk limit:\n{}",
        sw.log()
    );

    // The slot was released when the first call ended.
    let mut third = phone_100_calls(&env, &sw, "third", "uac_auth_pcap.xml", DIALLED);
    let run = third.wait();
    assert_sipp_ok(&run, &env, &sw, "third", &["third", "carrier"]);
    let run = carrier.wait();
    assert_sipp_ok(&run, &env, &sw, "carrier", &["carrier"]);
    assert_eq!(
        received(&env, "carrier", "INVITE").len(),
        2,
        "{}",
        describe(&env, &sw, &["carrier"])
    );
    let ended = sw.wait_lines("call ended", 3, Duration::from_secs(5));
    assert_eq!(ended.len(), 3, "{}", sw.log());
}
