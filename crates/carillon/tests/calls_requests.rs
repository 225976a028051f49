//! What the real switch advertises and how it answers requests it does not
//! act on, and where it sends calls to registered phones (per-user `nat`).
//!
//! Covered: OPTIONS out of a dialog lists exactly the methods handled
//! (`Allow`) and the extensions honoured (`Supported`); MESSAGE, SUBSCRIBE,
//! NOTIFY get 405 with that `Allow`, REFER out of a dialog 403; a `Require` of
//! `replaces` or `outbound` gets 420 naming it. Inside a call placed by
//! SIPp through the binary: INFO with a DTMF digit (dtmf-relay and
//! application/dtmf) is answered 200 and is a `dtmf` switch event of the
//! caller's channel, as an RFC 4733 digit in the caller's RTP is, another
//! INFO body gets 415 with `Accept`, a malformed one
//! 400, REFER from the caller 501 (only the callee transfers), MESSAGE 405, OPTIONS 200 with the same `Allow` and
//! `Supported`. A user with `nat = false` registered from
//! one socket naming another in its Contact is called at the Contact; with
//! the default (`nat = true`) at the socket it registered from.

mod callsupport;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use callsupport::*;
use carillon_events::{Direction, DtmfSource, SwitchEvent};

const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, REGISTER, OPTIONS, INFO, UPDATE, PRACK, REFER";
const SUPPORTED: &str = "100rel, timer, path";

/// The value of header `name` in the message text `msg` (first line only).
fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Sends one out-of-dialog request from a fresh socket and returns the
/// final response's text (bounded wait).
fn ask(sw: SocketAddr, method: &str, extra: &str) -> String {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let local = sock.local_addr().expect("addr");
    let n = unique();
    let req = format!(
        "{method} sip:101@{sw} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{n};rport\r\n\
         From: <sip:100@{sw}>;tag=t{n}\r\nTo: <sip:101@{sw}>\r\nCall-ID: ask{n}@test\r\n\
         CSeq: 1 {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
    );
    sock.send_to(req.as_bytes(), sw).expect("send");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok((len, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..len]).into_owned();
            let provisional = text.starts_with("SIP/2.0 1");
            if !provisional {
                return text;
            }
        }
    }
    panic!("no final response to {method} within 3 s");
}

/// Waits (bounded, 10 s) for the one call to end (its caller's
/// `hangup`); it must have been answered (one `bridged`).
fn assert_the_call_ended_answered(sw: &Switch) {
    let ended = sw.wait_calls_ended(1, Duration::from_secs(10));
    assert_eq!(
        ended.len(),
        1,
        "events: {:#?}\nlog:\n{}",
        sw.events(),
        sw.log()
    );
    assert_eq!(
        sw.bridged().len(),
        1,
        "the call was answered: {:#?}",
        sw.events()
    );
}

/// The channel of the (only) call's caller, from its `channel_created`.
fn caller_channel(sw: &Switch) -> String {
    sw.events()
        .into_iter()
        .find_map(|e| match e.event {
            SwitchEvent::ChannelCreated {
                channel,
                direction: Direction::Inbound,
                ..
            } => Some(channel),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no inbound channel_created: {:?}", sw.events()))
}

fn status(resp: &str) -> Option<u16> {
    resp.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

#[test]
fn out_of_dialog_answers_match_allow_and_supported() {
    let mut env = CallEnv::new(&Options::default());
    let sw = env.start();
    let ok = ask(sw.addr(), "OPTIONS", "");
    assert_eq!(status(&ok), Some(200), "{ok}");
    assert_eq!(header(&ok, "Allow"), Some(ALLOW), "{ok}");
    assert_eq!(header(&ok, "Supported"), Some(SUPPORTED), "{ok}");
    for (method, want) in [
        ("MESSAGE", 405),
        ("SUBSCRIBE", 405),
        ("NOTIFY", 405),
        ("REFER", 403),
    ] {
        let r = ask(sw.addr(), method, "");
        assert_eq!(status(&r), Some(want), "{method}: {r}");
        assert_eq!(header(&r, "Allow"), Some(ALLOW), "{method}: {r}");
    }
    for tag in ["replaces", "outbound"] {
        let r = ask(sw.addr(), "OPTIONS", &format!("Require: {tag}\r\n"));
        assert_eq!(status(&r), Some(420), "{tag}: {r}");
        assert_eq!(header(&r, "Unsupported"), Some(tag), "{r}");
    }
    // A Require of what is listed passes.
    let r = ask(sw.addr(), "OPTIONS", "Require: timer\r\n");
    assert_eq!(status(&r), Some(200), "{r}");
}

/// The responses in a SIPp message trace with status `code`.
fn responses(env: &CallEnv, name: &str, code: u16) -> Vec<String> {
    let start = format!("SIP/2.0 {code} ");
    sipp_messages(env.path(), name)
        .into_iter()
        .filter_map(|m| {
            let i = m.find(&start)?;
            Some(m[i..].to_owned())
        })
        .collect()
}

#[test]
fn in_a_call_dtmf_info_is_a_digit_and_refer_message_and_other_info_are_refused() {
    require_sipp();
    let mut env = CallEnv::new(&Options::default());
    let (sw, uas_sip, uas_media) = switch_with_101(&mut env);
    let mut uas = start_uas(&env, "uas", None, uas_sip, uas_media, 1);
    let run = run_uac(&env, &sw, "uac-req", "calls_uac_requests.xml", &[], 1, 1);
    let stats = sipp_stats(env.path(), "uac-req");
    assert!(
        run.ok() && sipp_count(&stats, "SuccessfulCall") == 1,
        "every in-dialog request must get its expected status: {:?}\n{}",
        run.status,
        describe(&env, &sw, &["uac-req", "uas"])
    );
    let uas_run = uas.wait();
    assert!(
        uas_run.ok(),
        "callee: {:?}\n{}",
        uas_run.status,
        describe(&env, &sw, &["uac-req", "uas"])
    );

    let r415 = responses(&env, "uac-req", 415);
    assert_eq!(r415.len(), 1, "{r415:?}");
    assert_eq!(
        header(&r415[0], "Accept"),
        Some("application/dtmf-relay, application/dtmf")
    );
    let r405 = responses(&env, "uac-req", 405);
    assert_eq!(r405.len(), 1, "{r405:?}");
    assert_eq!(header(&r405[0], "Allow"), Some(ALLOW));
    let r501 = responses(&env, "uac-req", 501);
    assert_eq!(r501.len(), 1, "{r501:?}");
    assert_eq!(header(&r501[0], "Allow"), Some(ALLOW));

    let options: Vec<String> = responses(&env, "uac-req", 200)
        .into_iter()
        .filter(|m| header(m, "CSeq") == Some("9 OPTIONS"))
        .collect();
    assert_eq!(options.len(), 1, "{options:?}");
    assert_eq!(header(&options[0], "Allow"), Some(ALLOW));
    assert_eq!(header(&options[0], "Supported"), Some(SUPPORTED));

    // Exactly the two INFO digits, from the caller's leg, in order.
    let digits = sw.wait_dtmf(2, Duration::from_secs(5));
    let caller = caller_channel(&sw);
    let got: Vec<(char, DtmfSource, u64, &str)> = digits
        .iter()
        .filter_map(|e| match &e.event {
            SwitchEvent::Dtmf {
                digit,
                source,
                duration_ms,
                channel,
                ..
            } => Some((*digit, *source, *duration_ms, channel.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        got,
        [
            ('5', DtmfSource::SipInfo, 160, caller.as_str()),
            ('#', DtmfSource::SipInfo, 0, caller.as_str())
        ],
        "events: {:?}\nlog:\n{}",
        sw.events(),
        sw.log()
    );
    assert_the_call_ended_answered(&sw);
}

/// An RTP packet from the caller: PCMU silence, or (with `event`) an RFC
/// 4733 telephone-event (PT 101) of `digit` code, `duration` samples, end
/// bit `end`.
fn rtp(seq: u16, ts: u32, marker: bool, event: Option<(u8, u16, bool)>) -> Vec<u8> {
    let pt = if event.is_some() { 101 } else { 0 };
    let mut p = vec![0x80u8, pt | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&0x4d54_4d46u32.to_be_bytes());
    match event {
        Some((code, duration, end)) => {
            p.push(code);
            p.push(if end { 0x80 | 10 } else { 10 });
            p.extend_from_slice(&duration.to_be_bytes());
        }
        None => p.extend_from_slice(&[0xff; 160]),
    }
    p
}

#[test]
fn an_rfc_4733_digit_from_the_caller_is_the_same_digit_event_as_an_info_one() {
    require_sipp();
    let mut env = CallEnv::new(&Options::default());
    let (sw, uas_sip, uas_media) = switch_with_101(&mut env);
    let mut uas = start_uas(&env, "uas", None, uas_sip, uas_media, 1);
    // The caller (SIPp) offers this socket's port with telephone-event
    // 101 and writes the relay port of the switch's answer to a file.
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind RTP socket");
    let rtp_port = sock.local_addr().expect("addr").port();
    let (mut uac, relay_port) = start_echo_caller(&env, &sw, rtp_port);
    let relay = SocketAddr::from(([127, 0, 0, 1], relay_port));
    // Some audio, then digit 7 (event 7): three updates and the end
    // packet sent three times, 20 ms apart, one timestamp for the event.
    let mut seq = 0u16;
    let mut send = |ts: u32, marker: bool, event: Option<(u8, u16, bool)>| {
        sock.send_to(&rtp(seq, ts, marker, event), relay)
            .expect("send RTP");
        seq += 1;
        std::thread::sleep(Duration::from_millis(20));
    };
    for i in 0..10u32 {
        send(i * 160, false, None);
    }
    let ts = 10 * 160;
    for (i, d) in [160u16, 320, 480].into_iter().enumerate() {
        send(ts, i == 0, Some((7, d, false)));
    }
    for _ in 0..3 {
        send(ts, false, Some((7, 640, true)));
    }
    let digits = sw.wait_dtmf(1, Duration::from_secs(5));
    let run = uac.wait();
    let uas_run = uas.wait();
    assert!(
        run.ok() && uas_run.ok(),
        "call: {:?} {:?}\n{}",
        run.status,
        uas_run.status,
        describe(&env, &sw, &["uac-echo", "uas"])
    );
    // The same event as an INFO digit: one digit 7 of the caller's leg,
    // 640 samples = 80 ms.
    assert_eq!(digits.len(), 1, "one digit; events: {:?}", sw.events());
    let caller = caller_channel(&sw);
    assert!(
        matches!(
            &digits[0].event,
            SwitchEvent::Dtmf { digit: '7', source: DtmfSource::Rfc4733, duration_ms: 80, channel, .. }
                if *channel == caller
        ),
        "{:?}",
        digits[0]
    );
}

/// The example dialplan dials 8013 and 8014, so they stay (check-config
/// refuses a Dial to a user that does not exist).
const USERS_101_NAT_FALSE: &str =
    "[defaults]\ncontext = \"internal\"\ncodecs = [\"ulaw\", \"alaw\"]\nmax_contacts = 3\n\n\
     [[user]]\nextension = \"100\"\npassword = \"changeme100\"\n\n\
     [[user]]\nextension = \"101\"\npassword = \"changeme101\"\nnat = false\n\n\
     [[user]]\nextension = \"8013\"\npassword = \"zoiper8013\"\n\n\
     [[user]]\nextension = \"8014\"\npassword = \"zoiper8014\"\n";

/// 101 registers from 127.0.0.1:`from` naming `contact` in its Contact.
fn register_from_naming(sw: &Switch, env: &CallEnv, from: u16, contact: u16) {
    let dir = env.path();
    let csv = write_csv(
        dir,
        "reg-contact.csv",
        &[auth_line("101", PW101, &[&contact.to_string()])],
    );
    let mut cmd = sipp_cmd(dir, "reg-contact", from);
    cmd.arg(sw.addr().to_string())
        .args(["-sf", &scenario("register_contact.xml")])
        .args(["-inf", &csv, "-m", "1", "-timeout", "10s"]);
    let run = run_tool(cmd, dir, "reg-contact", Duration::from_secs(15));
    assert!(
        run.ok(),
        "register: {:?}\n{}",
        run.status,
        describe(env, sw, &["reg-contact"])
    );
}

/// Registers 101 from socket A naming socket B, then calls it; the callee
/// (SIPp) listens where the INVITE must arrive, and a plain socket on the
/// other port must receive nothing.
fn call_lands_on(users_toml: Option<&str>, expect_contact: bool) {
    require_sipp();
    let mut env = CallEnv::new(&Options {
        users_toml: users_toml.map(str::to_owned),
        ..Options::default()
    });
    let sw = env.start();
    let a = free_port_span(1);
    let mut b = free_port_span(1);
    for _ in 0..100 {
        if b.abs_diff(a) > 1 {
            break;
        }
        b = free_port_span(1);
    }
    assert!(b.abs_diff(a) > 1, "two separate ports");
    register_from_naming(&sw, &env, a, b);
    let (callee, other) = if expect_contact { (b, a) } else { (a, b) };
    let trap = UdpSocket::bind(("127.0.0.1", other)).expect("bind the other socket");
    trap.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let uas_media = free_port_span(3);
    let mut uas = start_uas(&env, "uas", Some("calls_uas_bye.xml"), callee, uas_media, 1);
    let run = run_uac(&env, &sw, "uac", "calls_uac_wait_bye.xml", &[], 1, 1);
    let uas_run = uas.wait();
    assert!(
        run.ok() && uas_run.ok(),
        "the call must reach 127.0.0.1:{callee}: caller {:?}, callee {:?}\n{}",
        run.status,
        uas_run.status,
        describe(&env, &sw, &["reg-contact", "uac", "uas"])
    );
    let mut buf = [0u8; 2048];
    let stray = trap
        .recv_from(&mut buf)
        .ok()
        .map(|(n, from)| format!("{from}: {}", String::from_utf8_lossy(&buf[..n])));
    assert_eq!(stray, None, "nothing may go to 127.0.0.1:{other}");
    assert_the_call_ended_answered(&sw);
}

#[test]
fn with_nat_false_a_call_goes_to_the_contact_as_registered() {
    call_lands_on(Some(USERS_101_NAT_FALSE), true);
}

#[test]
fn by_default_nat_is_true_and_a_call_goes_to_the_socket_that_registered() {
    call_lands_on(None, false);
}
