//! VoiceMail and VoiceMailMain through the interpreter: the session's
//! plays, recording and digits become the ordinary commands, changes
//! become `Command::Voicemail`, and `VMSTATUS` is set when it ends.

use carillon_dialplan::voicemail::{MailboxIndex, Persist, Voicemail, VoicemailConfig};
use carillon_dialplan::{
    CallInfo, Command, Dialplan, Execution, HangupCause, RecordOutcome, RecordStatus, Sounds,
};
use std::path::PathBuf;
use std::time::{Duration, Instant, UNIX_EPOCH};

fn vm() -> Voicemail {
    let config = VoicemailConfig::load(
        "voicemail.toml",
        "[voicemail]\ndir = \"/vm\"\n[mailbox.600]\npin = \"6000\"\nmax_message = 30\n",
    )
    .unwrap();
    Voicemail::new(config, MailboxIndex::default())
}

fn plan(steps: &str, vm: Option<Voicemail>) -> Dialplan {
    let text =
        format!("[context.c]\n[[context.c.extension]]\nmatch = \"s\"\nsteps = [\n{steps}\n]\n");
    let plan = Dialplan::load_with_sounds("t.toml", &text, Sounds::unscanned("/s"))
        .map_err(|p| p[0].to_string())
        .unwrap();
    match vm {
        Some(vm) => plan.with_voicemail(vm),
        None => plan,
    }
}

fn start(plan: &Dialplan, t: Instant) -> Execution {
    let info = CallInfo {
        caller_num: "0300555".into(),
        caller_name: "Caller".into(),
        uniqueid: "1765000000.7".into(),
        variables: vec![],
        language: None,
    };
    Execution::start(
        plan,
        "c",
        "s",
        info,
        t,
        UNIX_EPOCH + Duration::from_secs(1_000),
    )
    .unwrap()
}

fn cmds(e: &mut Execution) -> Vec<Command> {
    std::iter::from_fn(|| e.poll_command()).collect()
}

fn files(c: &Command) -> Vec<String> {
    match c {
        Command::Play { files, .. } => files.iter().map(|f| f.display().to_string()).collect(),
        other => panic!("not a Play: {other:?}"),
    }
}

const LEAVE: &str = r#"{ app = "VoiceMail", mailbox = "600", options = "u" },
{ app = "Hangup" },"#;

#[test]
fn voicemail_greets_records_with_a_beep_stores_the_message_and_sets_vmstatus() {
    let t = Instant::now();
    let vm = vm();
    let p = plan(LEAVE, Some(vm.clone()));
    let mut e = start(&p, t);
    let c = cmds(&mut e);
    assert_eq!(c[0], Command::Answer);
    assert_eq!(
        files(&c[1]),
        [
            "/s/en/vm-the-person-at.wav",
            "/s/en/digits/6.wav",
            "/s/en/digits/0.wav",
            "/s/en/digits/0.wav",
            "/s/en/vm-is-unavailable.wav",
            "/s/en/vm-leave-message.wav"
        ]
    );
    e.handle_playback_done(t);
    assert_eq!(
        cmds(&mut e),
        [Command::Record {
            path: PathBuf::from("/vm/600/1765000000.7.wav"),
            max_silence: Some(Duration::from_secs(5)),
            max_duration: Some(Duration::from_secs(30)),
            beep: true,
        }]
    );
    e.handle_digit(t, '#');
    assert_eq!(cmds(&mut e), [Command::StopRecord]);
    e.handle_record_done(
        t + Duration::from_secs(3),
        RecordOutcome {
            status: RecordStatus::Hangup,
            duration_ms: Some(2_750),
        },
    );
    let c = cmds(&mut e);
    let Command::Voicemail(Persist::Store(m)) = &c[0] else {
        panic!("{c:?}")
    };
    assert_eq!(
        (m.mailbox.as_str(), m.caller_num.as_str(), m.duration_ms),
        ("600", "0300555", 2_750)
    );
    assert_eq!(m.received_at_ms, 1_003_000);
    assert_eq!(
        c[1],
        Command::Hangup {
            cause: HangupCause::NORMAL_CLEARING
        }
    );
    assert_eq!(e.variable("VMSTATUS").as_deref(), Some("SUCCESS"));
    assert_eq!(vm.counts("600"), (1, 0));
}

#[test]
fn without_a_voicemail_or_with_an_unknown_mailbox_vmstatus_is_failed_at_once() {
    let t = Instant::now();
    let mut e = start(&plan(LEAVE, None), t);
    assert_eq!(cmds(&mut e).len(), 1, "only the Hangup");
    assert_eq!(e.variable("VMSTATUS").as_deref(), Some("FAILED"));
    let p = plan(
        r#"{ app = "VoiceMail", mailbox = "999" }, { app = "Hangup" },"#,
        Some(vm()),
    );
    let mut e = start(&p, t);
    assert_eq!(
        cmds(&mut e),
        [
            Command::Answer,
            Command::Hangup {
                cause: HangupCause::NORMAL_CLEARING
            }
        ]
    );
    assert_eq!(e.variable("VMSTATUS").as_deref(), Some("FAILED"));
}

#[test]
fn voicemailmain_collects_the_pin_by_digits_and_says_the_counts() {
    let t = Instant::now();
    let p = plan(
        r#"{ app = "VoiceMailMain", mailbox = "600" }, { app = "Hangup" },"#,
        Some(vm()),
    );
    let mut e = start(&p, t);
    let c = cmds(&mut e);
    assert_eq!(files(&c[1]), ["/s/en/vm-enter-password.wav"]);
    e.handle_digit(t, '6');
    assert_eq!(cmds(&mut e), [Command::StopPlay]);
    e.handle_playback_done(t);
    for d in "000#".chars() {
        e.handle_digit(t, d);
    }
    let c = cmds(&mut e);
    assert_eq!(
        files(&c[0]),
        [
            "/s/en/vm-you-have.wav",
            "/s/en/digits/0.wav",
            "/s/en/vm-new-messages.wav",
            "/s/en/vm-you-have.wav",
            "/s/en/digits/0.wav",
            "/s/en/vm-old-messages.wav",
            "/s/en/vm-main-menu.wav"
        ]
    );
    // The caller hangs up in the menu: the execution ends.
    e.handle_caller_hangup(t);
    assert!(e.is_finished());
    assert_eq!(e.variable("VMSTATUS").as_deref(), Some("USEREXIT"));
}
