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
//!   qualify declares it Down (one WARN, however many pings it ignores)
//!   the call goes to the second; and a contact
//!   that answers the INVITE itself with 503 (no qualify) has the same
//!   call placed again at the next contact;
//! - outbound registration: a 401-challenged REGISTER verified by SIPp's
//!   registrar, refreshed with valid credentials before the granted expiry;
//! - `max_calls = 1`: a second concurrent call is refused with 503, and the
//!   slot is free again once the first call ends.
//! - `enabled = false`: the trunk sends no OPTIONS and no REGISTER, and a
//!   Dial to it ends at once with `DIALSTATUS=CHANUNAVAIL`; `check-config`
//!   warns of placeholders left in an enabled trunk and still reports the
//!   mistakes of a disabled one;
//! - SIGHUP with a rewritten `trunks.toml`: a call up on the removed trunk
//!   goes on, the removed trunk is no longer pinged nor identified, a call
//!   goes out on the newly added one;
//! - a GSM gateway played by two SIPps (the SIM ports on 127.0.0.2 and
//!   127.0.0.3): calls rotate over the ports, and a port that answered 503
//!   is skipped while it cools down;
//! - `numbering`: a carrier's caller `03001234567` is `+923001234567` to
//!   the dialplan (`${CALLERID(num)}`), in From and P-Asserted-Identity of
//!   the outbound leg and in the CDR's `src`.

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
    sipp_100_dials(
        env,
        sw,
        name,
        scenario_file,
        number,
        Duration::from_secs(20),
    )
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
        sw.calls_started().is_empty(),
        "an INVITE from an unidentified address must not start a call: {:#?}\n{}",
        sw.events(),
        sw.log()
    );

    // The carrier's call: no credentials, identified by 127.0.0.2.
    let run = sipp_carrier_calls(
        &env,
        &sw,
        CARRIER_IP,
        DID,
        "+15557654321",
        Duration::from_secs(20),
    )
    .wait();
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
    assert_calls_answered(&sw, 1);
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

    assert_calls_answered(&sw, 1);
    assert_media_relayed(&sw, 2, 90);
}

/// A UDP socket that receives and never answers: a contact that is down
/// but whose traffic the test can see (first lines, with arrival times).
struct SilentPeer {
    port: u16,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<(Instant, String)>>>,
    thread: Option<JoinHandle<()>>,
}

impl SilentPeer {
    fn start() -> SilentPeer {
        let sock = UdpSocket::bind((LOCALHOST, 0)).expect("bind silent peer");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        let port = sock.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let (stop2, seen2) = (Arc::clone(&stop), Arc::clone(&seen));
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while !stop2.load(Ordering::SeqCst) {
                if let Ok((n, _)) = sock.recv_from(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]);
                    let first = text.lines().next().unwrap_or("").to_owned();
                    seen2.lock().expect("lock").push((Instant::now(), first));
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
        self.seen_since(None)
    }

    /// When the first and the last datagram arrived.
    fn span(&self) -> Option<(Instant, Instant)> {
        let seen = self.seen.lock().expect("lock");
        Some((seen.first()?.0, seen.last()?.0))
    }

    /// What arrived after `since` (everything for `None`).
    fn seen_since(&self, since: Option<Instant>) -> Vec<String> {
        self.seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|(at, _)| since.is_none_or(|s| *at > s))
            .map(|(_, line)| line.clone())
            .collect()
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
    assert_calls_answered(&sw, 1);
    // Pinged in vain every 2 s all along, it was reported once: one WARN
    // when it went Down, not one per ping.
    let (first, last) = dead.span().expect("pings arrived");
    let needle = format!("contact: \"{dead_uri}\"");
    let changes: Vec<LogLine> = sw
        .lines("ContactStateChanged")
        .into_iter()
        .filter(|l| l.raw.contains(&needle))
        .collect();
    assert!(
        last.duration_since(first) >= Duration::from_secs(2),
        "the dead contact must have been pinged over more than one interval: {seen:?}"
    );
    assert_eq!(changes.len(), 1, "{}", sw.log());
    assert!(changes[0].raw.contains("WARN"), "{}", changes[0].raw);
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
    assert_calls_answered(&sw, 1);
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
    let ended = sw.wait_calls_ended(3, Duration::from_secs(5));
    assert_eq!(ended.len(), 3, "{:#?}\n{}", sw.events(), sw.log());
}

/// Replaces the switch's `trunks.toml` and `dialplan.toml`.
fn write_trunks_and_dialplan(env: &CallEnv, trunks: &str, dialplan: &str) {
    std::fs::write(env.config_dir().join("trunks.toml"), trunks).expect("write trunks.toml");
    std::fs::write(env.config_dir().join("dialplan.toml"), dialplan).expect("write dialplan.toml");
}

/// A switch environment (users 100 and 101) with these trunks and dialplan.
fn env_with(trunks: &str, dialplan: &str) -> CallEnv {
    let env = CallEnv::new(&Options {
        users_toml: Some(users_with_codecs(&["ulaw", "alaw"], &["ulaw", "alaw"])),
        ..Options::default()
    });
    write_trunks_and_dialplan(&env, trunks, dialplan);
    env
}

/// `internal` may dial `trunk` only: `9` + number goes out on it as
/// `target/trunk/+number` (`target` = `trunk` or `gateway`).
fn dial_out_plan(target: &str, trunk: &str) -> String {
    format!(
        r#"
[context.internal]
allow_trunks = ["{trunk}"]

[[context.internal.extension]]
match = "_9X."
steps = [
  {{ app = "Dial", targets = ["{target}/{trunk}/+${{EXTEN:1}}"], timeout = 20 }},
  {{ app = "Hangup" }},
]
"#
    )
}

#[test]
fn a_disabled_trunk_is_never_pinged_or_registered_and_a_dial_to_it_ends_at_once_chanunavail() {
    require_sipp();
    let peer = SilentPeer::start();
    let uri = format!("sip:127.0.0.1:{}", peer.port);
    let mut env = trunk_env(&format!(
        "enabled = false\n\
         contacts = [\"{uri}\"]\n\
         qualify_secs = 2\n\
         qualify_timeout_secs = 1\n\
         register = true\n\
         registrar = \"{uri}\"\n\
         username = \"acct1\"\n\
         password = \"s3cret\"\n"
    ));
    // CHANUNAVAIL (and only it) is answered 403 (cause 21).
    let plan = r#"
[context.internal]
allow_trunks = ["carrier"]

[[context.internal.extension]]
match = "_9X."
steps = [
  { app = "Dial", targets = ["trunk/carrier/+${EXTEN:1}"], timeout = 20 },
  { app = "GotoIf", condition = "${DIALSTATUS} = CHANUNAVAIL", then = "unavailable" },
  { app = "Hangup", cause = 17 },
  { app = "Hangup", cause = 21, label = "unavailable" },
]
"#;
    std::fs::write(env.config_dir().join("dialplan.toml"), plan).expect("write dialplan.toml");
    let started = Instant::now();
    let sw = env.start();

    let mut phone = phone_100_calls(&env, &sw, "phone-100", "trunk_uac_forbidden.xml", DIALLED);
    let run = phone.wait();
    assert_sipp_ok(&run, &env, &sw, "phone-100", &["phone-100"]);
    let disabled = sw.lines("trunk is disabled");
    assert_eq!(
        disabled.len(),
        1,
        "one line per refused Dial:\n{}",
        sw.log()
    );
    assert_eq!(
        disabled[0].get("trunk"),
        Some("carrier"),
        "{}",
        disabled[0].raw
    );
    let ended = sw.wait_calls_ended(1, Duration::from_secs(5));
    assert_eq!(ended.len(), 1, "{:#?}\n{}", sw.events(), sw.log());
    assert!(
        matches!(
            &ended[0],
            carillon_events::SwitchEvent::Hangup { cause: 21, .. }
        ),
        "{:#?}",
        ended[0]
    );
    assert!(
        sw.lines("dial timeout").is_empty(),
        "the Dial must not wait for its timeout:\n{}",
        sw.log()
    );

    // Two qualify intervals and the first REGISTER (due at start) would
    // all have reached the contact by now.
    while started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        peer.seen(),
        Vec::<String>::new(),
        "a disabled trunk must send nothing:\n{}",
        sw.log()
    );
}

/// `carillon check-config DIR`.
fn check_config(dir: &std::path::Path, scratch: &std::path::Path) -> ToolRun {
    let mut cmd = Command::new(bin());
    cmd.arg("check-config").arg(dir);
    run_tool(cmd, scratch, "check-config", Duration::from_secs(30))
}

/// The 1-based line of `text` that contains `needle` (the first one).
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{needle:?} not in the text"))
}

#[test]
fn check_config_warns_of_placeholders_in_an_enabled_trunk_and_still_checks_a_disabled_one() {
    let env = CallEnv::new(&Options::default());
    let trunks_path = env.config_dir().join("trunks.toml");
    let example = std::fs::read_to_string(&trunks_path).expect("read trunks.toml");
    let trunk_warnings = |run: &ToolRun| -> Vec<String> {
        run.stdout
            .lines()
            .filter(|l| l.starts_with("warning: ") && l.contains("trunks.toml:"))
            .map(str::to_owned)
            .collect()
    };

    // As shipped: every example trunk is disabled, so nothing to warn of.
    let run = check_config(&env.config_dir(), env.path());
    assert_eq!(run.status.and_then(|s| s.code()), Some(0), "{}", run.stdout);
    assert_eq!(trunk_warnings(&run), Vec::<String>::new());

    // VoxLocus switched on before its placeholders were filled in: valid,
    // exit status 0, one warning per placeholder with its line and key.
    let vox_line = line_of(&example, "[trunk.voxlocus]") + 1;
    let mut lines: Vec<&str> = example.lines().collect();
    assert!(
        lines[vox_line - 1].starts_with("enabled = false"),
        "{}",
        lines[vox_line - 1]
    );
    lines[vox_line - 1] = "enabled = true";
    let vox_on = lines.join("\n") + "\n";
    std::fs::write(&trunks_path, &vox_on).expect("write trunks.toml");
    let run = check_config(&env.config_dir(), env.path());
    assert_eq!(
        run.status.and_then(|s| s.code()),
        Some(0),
        "warnings leave the exit status alone:\n{}",
        run.stdout
    );
    let warnings = trunk_warnings(&run);
    let keyed = |key: &str, needle: &str| {
        let at = format!(
            "trunks.toml:{}: trunk.voxlocus.{key}: ",
            line_of(&vox_on, needle)
        );
        assert!(
            warnings.iter().any(|w| w.contains(&at)),
            "no warning at {at:?}:\n{}",
            run.stdout
        );
    };
    keyed("username", "username = \"CHANGE-ME-account\"");
    keyed("password", "password = \"CHANGE-ME-password\"");
    keyed("contacts[0]", "contacts = [\"sip:sip.voxlocus.example\"]");
    keyed("registrar", "registrar = \"sip:sip.voxlocus.example\"");
    keyed("from_domain", "from_domain = \"sip.voxlocus.example\"");
    assert!(
        warnings.iter().all(|w| w.contains("trunk.voxlocus.")),
        "only the enabled trunk warns:\n{}",
        run.stdout
    );

    // A mistake in a disabled trunk is still an error.
    let broken = example.replacen(
        "\"sip:192.168.1.50:5061\"",
        "\"http://192.168.1.50:5061\"",
        1,
    );
    assert_ne!(broken, example);
    std::fs::write(&trunks_path, &broken).expect("write trunks.toml");
    let run = check_config(&env.config_dir(), env.path());
    assert_eq!(run.status.and_then(|s| s.code()), Some(1), "{}", run.stdout);
    let at = format!(
        "trunks.toml:{}: trunk.dinstar.ports[0].contact: ",
        line_of(&broken, "http://192.168.1.50:5061")
    );
    assert!(
        run.stdout
            .lines()
            .any(|l| l.contains(&at) && !l.starts_with("warning")),
        "no error at {at:?}:\n{}",
        run.stdout
    );
}

/// `[trunk.NAME]`: a carrier at `ip:port` that is pinged every 2 s.
fn qualified_carrier(name: &str, contacts: &[String], ip: IpAddr) -> String {
    let list = contacts
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[trunk.{name}]\nkind = \"carrier\"\ncontacts = [{list}]\nidentify = [\"{ip}\"]\n\
         qualify_secs = 2\nqualify_timeout_secs = 1\n"
    )
}

#[test]
fn sighup_with_a_new_trunks_file_keeps_calls_up_stops_the_removed_trunk_and_dials_the_added_one() {
    require_sipp();
    const NEW_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    let old_port = free_udp_port_on(CARRIER_IP, 1);
    let new_port = free_udp_port_on(NEW_IP, 1);
    let old_uri = format!("sip:127.0.0.2:{old_port}");
    let new_uri = format!("sip:127.0.0.3:{new_port}");
    // The old trunk's second contact never answers: it sees every ping
    // the old trunk sends, with its time.
    let pinged = SilentPeer::start();
    let pinged_uri = format!("sip:127.0.0.1:{}", pinged.port);
    let mut env = env_with(
        &qualified_carrier("old", &[old_uri.clone(), pinged_uri.clone()], CARRIER_IP),
        &dial_out_plan("trunk", "old"),
    );
    write_tone_pcap(&env.path().join("tone.pcap"), 2, 440.0);
    let mut old = sipp_uas(&env, "old-carrier", CARRIER_IP, None, old_port, 0);
    let mut new = sipp_uas(&env, "new-carrier", NEW_IP, None, new_port, 0);
    let sw = env.start();

    // A call up on the old trunk...
    let mut first = phone_100_calls(&env, &sw, "first", "uac_auth_pcap.xml", DIALLED);
    let answered = sw.wait_lines("call answered", 1, Duration::from_secs(10));
    assert_eq!(answered.len(), 1, "first call not answered:\n{}", sw.log());
    // ...while trunks.toml is replaced: old removed, new added.
    write_trunks_and_dialplan(
        &env,
        &qualified_carrier("new", std::slice::from_ref(&new_uri), NEW_IP),
        &dial_out_plan("trunk", "new"),
    );
    sw.reload();
    let reloaded = sw.wait_lines("configuration reloaded", 1, Duration::from_secs(10));
    assert_eq!(reloaded.len(), 1, "no reload logged:\n{}", sw.log());
    let reloaded_at = Instant::now();
    assert_eq!(
        reloaded[0].get("trunks_added"),
        Some("new"),
        "{}",
        reloaded[0].raw
    );
    assert_eq!(
        reloaded[0].get("trunks_removed"),
        Some("old"),
        "{}",
        reloaded[0].raw
    );
    assert!(
        pinged.seen().iter().any(|l| l.starts_with("OPTIONS ")),
        "the old trunk was pinged before the reload: {:?}",
        pinged.seen()
    );

    // The call in progress keeps its trunk to the end.
    let run = first.wait();
    assert_sipp_ok(&run, &env, &sw, "first", &["first", "old-carrier"]);
    // The next call goes out on the new trunk.
    let mut second = phone_100_calls(&env, &sw, "second", "uac_auth_pcap.xml", DIALLED);
    let run = second.wait();
    assert_sipp_ok(&run, &env, &sw, "second", &["second", "new-carrier"]);
    // The removed trunk's address is nobody's any more: its INVITE is
    // challenged like a stranger's and starts no call.
    let csv = write_csv(
        env.path(),
        "old-inbound.csv",
        &[format!("{DID};+15557654321")],
    );
    let port = free_udp_port_on(CARRIER_IP, 1);
    let mut cmd = sipp_cmd_on(env.path(), "old-inbound", CARRIER_IP, port);
    cmd.arg(sw.addr().to_string())
        .args(["-sf", &scenario("trunk_unidentified_uac.xml")])
        .args(["-inf", &csv, "-m", "1", "-timeout", "10s"])
        .args(["-mp", &free_udp_port_on(CARRIER_IP, 3).to_string()]);
    let run = run_tool(cmd, env.path(), "old-inbound", Duration::from_secs(15));
    assert_sipp_ok(&run, &env, &sw, "old-inbound", &["old-inbound"]);
    assert_eq!(
        sw.calls_started().len(),
        2,
        "{:#?}\n{}",
        sw.events(),
        sw.log()
    );
    // Two qualify intervals after the reload, at least.
    while reloaded_at.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let run = old.terminate(Duration::from_secs(5));
    assert!(run.status.is_some(), "old carrier SIPp did not stop");
    let run = new.terminate(Duration::from_secs(5));
    assert!(run.status.is_some(), "new carrier SIPp did not stop");

    the_one_invite(&env, &sw, "old-carrier", &format!("127.0.0.2:{old_port}"));
    the_one_invite(&env, &sw, "new-carrier", &format!("127.0.0.3:{new_port}"));
    assert!(
        !received(&env, "new-carrier", "OPTIONS").is_empty(),
        "the added trunk must be qualified"
    );
    let late = pinged.seen_since(Some(reloaded_at + Duration::from_millis(300)));
    assert!(
        late.is_empty(),
        "the removed trunk was still pinged after the reload: {late:?}\n{}",
        sw.log()
    );
    assert_calls_answered(&sw, 2);
}

/// A GSM gateway of two SIM ports, each its own SIP peer (SIPp): `sim1`
/// on 127.0.0.2, `sim2` on 127.0.0.3; `9` + number goes out on it.
fn gateway_env(sim1_port: u16, sim2_port: u16) -> CallEnv {
    env_with(
        &format!(
            "[trunk.gsm]\nkind = \"gsm_gateway\"\nports = [\n\
             {{ name = \"sim1\", contact = \"sip:127.0.0.2:{sim1_port}\" }},\n\
             {{ name = \"sim2\", contact = \"sip:127.0.0.3:{sim2_port}\" }},\n]\n\
             port_strategy = \"round_robin\"\nport_cooldown_secs = 60\n"
        ),
        &dial_out_plan("gateway", "gsm"),
    )
}

const SIM2_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

#[test]
fn calls_through_a_gsm_gateway_rotate_over_its_sim_ports() {
    require_sipp();
    let sim1_port = free_udp_port_on(CARRIER_IP, 1);
    let sim2_port = free_udp_port_on(SIM2_IP, 1);
    let mut env = gateway_env(sim1_port, sim2_port);
    write_tone_pcap(&env.path().join("tone.pcap"), 2, 440.0);
    let mut sim1 = sipp_uas(&env, "sim1", CARRIER_IP, None, sim1_port, 0);
    let mut sim2 = sipp_uas(&env, "sim2", SIM2_IP, None, sim2_port, 0);
    let sw = env.start();

    for i in 1..=3 {
        let name = format!("call-{i}");
        let mut phone = phone_100_calls(&env, &sw, &name, "uac_auth_pcap.xml", DIALLED);
        let run = phone.wait();
        assert_sipp_ok(&run, &env, &sw, &name, &[&name, "sim1", "sim2"]);
    }
    let run = sim1.terminate(Duration::from_secs(5));
    assert!(run.status.is_some(), "sim1 SIPp did not stop");
    let run = sim2.terminate(Duration::from_secs(5));
    assert!(run.status.is_some(), "sim2 SIPp did not stop");

    // Round robin from the first port: sim1, sim2, sim1.
    let on = |name: &str| received(&env, name, "INVITE");
    assert_eq!(
        on("sim1").len(),
        2,
        "{}",
        describe(&env, &sw, &["sim1", "sim2"])
    );
    assert_eq!(
        on("sim2").len(),
        1,
        "{}",
        describe(&env, &sw, &["sim1", "sim2"])
    );
    for invite in on("sim1") {
        assert!(
            start_line(&invite).starts_with(&format!("INVITE sip:{E164}@127.0.0.2:{sim1_port}")),
            "{invite}"
        );
    }
    for invite in on("sim2") {
        assert!(
            start_line(&invite).starts_with(&format!("INVITE sip:{E164}@127.0.0.3:{sim2_port}")),
            "{invite}"
        );
    }
    assert_calls_answered(&sw, 3);
}

#[test]
fn a_gsm_port_that_answered_503_is_skipped_while_it_cools_down() {
    require_sipp();
    let sim1_port = free_udp_port_on(CARRIER_IP, 1);
    let sim2_port = free_udp_port_on(SIM2_IP, 1);
    let mut env = gateway_env(sim1_port, sim2_port);
    write_tone_pcap(&env.path().join("tone.pcap"), 2, 440.0);
    // sim1 has no credit: it refuses every call with 503.
    let mut sim1 = sipp_uas(
        &env,
        "sim1",
        CARRIER_IP,
        Some("trunk_uas_503.xml"),
        sim1_port,
        0,
    );
    let mut sim2 = sipp_uas(&env, "sim2", SIM2_IP, None, sim2_port, 0);
    let sw = env.start();

    // The first call takes sim1 (round robin starts there) and fails:
    // the gateway has no other contact for the same call.
    let mut first = phone_100_calls(&env, &sw, "first", "trunk_uac_refused.xml", DIALLED);
    let run = first.wait();
    assert_sipp_ok(&run, &env, &sw, "first", &["first", "sim1"]);
    // The next two would be sim2 then sim1 again; sim1 is cooling down
    // (60 s), so both go to sim2.
    for name in ["second", "third"] {
        let mut phone = phone_100_calls(&env, &sw, name, "uac_auth_pcap.xml", DIALLED);
        let run = phone.wait();
        assert_sipp_ok(&run, &env, &sw, name, &[name, "sim1", "sim2"]);
    }
    let run = sim1.terminate(Duration::from_secs(5));
    assert!(run.status.is_some(), "sim1 SIPp did not stop");
    let run = sim2.terminate(Duration::from_secs(5));
    assert!(run.status.is_some(), "sim2 SIPp did not stop");

    assert_eq!(
        received(&env, "sim1", "INVITE").len(),
        1,
        "the failed port must be skipped during its cooldown:\n{}",
        describe(&env, &sw, &["sim1", "sim2"])
    );
    assert_eq!(
        received(&env, "sim2", "INVITE").len(),
        2,
        "{}",
        describe(&env, &sw, &["sim1", "sim2"])
    );
    let ended = sw.wait_lines("call ended", 3, Duration::from_secs(5));
    let dispositions: Vec<Option<&str>> = ended.iter().map(|l| l.get("disposition")).collect();
    assert_eq!(
        dispositions,
        vec![Some("FAILED"), Some("ANSWERED"), Some("ANSWERED")],
        "{}",
        sw.log()
    );
}

#[test]
fn a_trunks_numbering_normalises_the_caller_for_the_dialplan_the_outbound_leg_and_the_cdr() {
    require_sipp();
    const OUT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    let out_port = free_udp_port_on(OUT_IP, 1);
    let trunks = format!(
        "[trunk.carrier]\nkind = \"carrier\"\ncontacts = [\"sip:127.0.0.2:5060\"]\n\
         identify = [\"127.0.0.2\"]\ncontext = \"from-carrier\"\nnumbering = \"pakistan\"\n\n\
         [trunk.out]\nkind = \"carrier\"\ncontacts = [\"sip:127.0.0.3:{out_port}\"]\nsend_pai = true\n"
    );
    // The caller must reach the dialplan normalised, or the call is
    // refused (cause 21).
    let plan = r#"
[numbering.pakistan]
rules = [
  { prefix = "03", length = 11, strip = 1, add = "+92" },
  { prefix = "92", length = 12, add = "+" },
]

[context.internal]

[[context.internal.extension]]
match = "101"
steps = [ { app = "Dial", targets = ["user/101"], timeout = 20 } ]

[context.from-carrier]
allow_trunks = ["out"]

[[context.from-carrier.extension]]
match = "+15550001111"
steps = [
  { app = "GotoIf", condition = "${CALLERID(num)} = +923001234567", then = "out" },
  { app = "Hangup", cause = 21 },
  { app = "Dial", targets = ["trunk/out/+15551234567"], timeout = 20, label = "out" },
  { app = "Hangup" },
]
"#;
    let mut env = env_with(&trunks, plan);
    write_tone_pcap(&env.path().join("tone.pcap"), 2, 440.0);
    let mut out = sipp_uas(&env, "out", OUT_IP, None, out_port, 1);
    let since = unix_ms();
    let mut sw = env.start();

    let run = sipp_carrier_calls(
        &env,
        &sw,
        CARRIER_IP,
        DID,
        "03001234567",
        Duration::from_secs(20),
    )
    .wait();
    assert_sipp_ok(&run, &env, &sw, "carrier", &["carrier", "out"]);
    let run = out.wait();
    assert_sipp_ok(&run, &env, &sw, "out", &["carrier", "out"]);

    let started = sw.calls_started();
    assert_eq!(started.len(), 1, "{:#?}\n{}", sw.events(), sw.log());
    assert!(
        matches!(
            &started[0],
            carillon_events::SwitchEvent::ChannelCreated { caller, .. } if caller == "+923001234567"
        ),
        "{:#?}",
        started[0]
    );
    let invite = the_one_invite(&env, &sw, "out", &format!("127.0.0.3:{out_port}"));
    let from = header(&invite, "From").unwrap_or_default();
    assert!(from.contains("<sip:+923001234567@"), "From: {from}");
    assert_eq!(
        header(&invite, "P-Asserted-Identity"),
        Some("<sip:+923001234567@127.0.0.3>"),
        "{invite}"
    );
    assert_calls_answered(&sw, 1);

    sw.stop();
    let cdrs = fetch_cdrs(&env.db_url, since, i64::MAX).expect("read CDRs");
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    assert_eq!(cdrs[0].src, "+923001234567", "{:?}", cdrs[0]);
    assert_eq!(cdrs[0].dst, DID, "{:?}", cdrs[0]);
}
