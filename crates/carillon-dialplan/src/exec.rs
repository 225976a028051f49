//! The per-call interpreter: runs one call's steps and tells the host what
//! to do, sans-IO, owning its own timers.
//!
//! Owns [`Execution`] (the channel's position, variables, language, caller
//! ID, Gosub stack, collected digits and its one timer), the [`Command`]s it
//! asks the host to carry out, the [`Event`]s it reports, and the run-time
//! half of toll-fraud protection. It knows nothing of SIP or of the media
//! plane: the host (the switch) maps `Dial` to INVITEs, `Play` to the media
//! protocol, `Hangup` causes to responses or BYEs, and feeds results back.
//! It never reads a clock: every input carries `now`, and the wall clock is
//! given once at start (later wall times are `wall + (now - start)`).
//!
//! # API (for the host)
//!
//! ```text
//! Execution::start(plan, context, exten, CallInfo, now: Instant, wall: SystemTime)
//! poll_command() / poll_command_step()   drain after start and after every input
//! poll_event()                           then drain these
//! poll_timeout() -> Option<Instant>      the one timer of this execution
//! handle_timeout(now)                    call when it is due (early calls are ignored)
//! handle_dial_result(now, DialStatus)    the pending Dial returned
//! handle_playback_done(now)              the current Play finished or was stopped
//! handle_digit(now, char)                a DTMF digit from the caller (any source)
//! handle_record_done(now, RecordOutcome) the pending Record ended
//! handle_caller_hangup(now)              the caller hung up: runs `h`, then finishes
//! ```
//!
//! Host obligations: answer `Play` with exactly one `handle_playback_done`
//! (whether it finished or was stopped by `StopPlay`, a newer `Play` or
//! `PlayTones`); do not report the end of `PlayTones` (tones run until
//! replaced, stopped by `StopPlay`, or their duration ends); answer `Record`
//! with one `handle_record_done`; forward every digit the caller sends
//! while the execution runs (the interpreter ignores digits it is not
//! collecting); ignore `Answer` when the channel is already answered.
//!
//! ```text
//!        start ──► Running ──(Dial)──────► AwaitingDial ──dial_result──────► Running
//!                    │ ──(Wait)──────────► Waiting ──timeout────────────────► Running
//!                    │ ──(Playback, Say*)► Playing ──playback_done──────────► Running
//!                    │ ──(Background)────► Playing ──digit: StopPlay, done──► select exten / Running
//!                    │ ──(WaitExten)─────► CollectingExten ──digit/timeout──► exten, i or t
//!                    │ ──(Read)──────────► Reading ──#/max/timeout──────────► Running (var, READSTATUS)
//!                    │ ──(Record)────────► Recording ──record_done──────────► Running (RECORD_STATUS)
//!                    │ ──(Busy/Congestion answered)► Refusing ──timeout─────► Hangup
//!                    ▼
//!   Hangup / end of steps / Dial answered (no continue) / refused / NoRoute /
//!   error ──► Done (one terminal event)
//!   caller hangup (any state) ──► the `h` extension, if any, non-media apps only ──► Done
//! ```
//!
//! Exactly one terminal event is produced:
//!
//! * [`Event::Finished`]: preceded by a `Hangup` command, except when the
//!   caller hung up or cancelled (nothing left to hang up; the `h`
//!   extension's `Hangup` emits no command either).
//! * [`Event::NoRoute`]: a `Goto` led to an extension that does not exist;
//!   no command: the host answers 404 if the call is unanswered, else hangs up.
//! * [`Event::Failed`]: a bad run-time `Goto`, `Return` without `Gosub`, a
//!   bad time condition or the step limit (a `Goto` loop); preceded by
//!   `Hangup` with cause 41.
//!
//! `Dial` semantics (Asterisk): the result is fed when the Dial application
//! would return, i.e. for `ANSWER` when the bridged call has ended. Any
//! status but `ANSWER` and `CANCEL` continues with the next step, with
//! `${DIALSTATUS}` and `${HANGUPCAUSE}` set; `ANSWER` ends the call unless
//! the step has `continue = true` (Asterisk's `g` option); `CANCEL` (the
//! caller gave up) ends it (running `h`). When execution runs off the end of
//! an extension the call is hung up with a cause derived from
//! `${DIALSTATUS}` (`BUSY` → 17, `NOANSWER` → 19, `CONGESTION`/`CHANUNAVAIL`
//! → 34, else 16), like Asterisk's autofallthrough.
//!
//! Menus (Asterisk): digits pressed during `Background` stop it and, with
//! those pressed during a following `WaitExten`, select an extension of the
//! channel's context: an exact match that no longer string could match is
//! taken at once (priority 1, `${EXTEN}` = the digits); a string that could
//! still grow waits for more digits until the WaitExten timeout (then an
//! exact match is taken); a string nothing can match goes to `i`
//! (`${INVALID_EXTEN}` set), a WaitExten timeout without digits to `t`;
//! without an `i`/`t` extension the call is hung up.
//!
//! Prompts are resolved when played, for `${CHANNEL(language)}` (see
//! [`crate::Sounds::resolve`]): `Play` carries the paths. Queue is
//! refused at load ([`crate::AppName::is_available`]).
//!
//! VoiceMail and VoiceMailMain run a [`carillon_voicemail::Session`] in
//! the `Voicemail` state: its plays, recordings and digit collection
//! become the same `Play`/`StopPlay`/`Record`/`StopRecord` commands the
//! other applications use, its changes `Command::Voicemail`, and when it
//! finishes `${VMSTATUS}` is set and the steps go on. Without a voicemail
//! attached to the plan ([`crate::Dialplan::with_voicemail`]) both set
//! `VMSTATUS=FAILED` at once.

use crate::plan::{
    App, AppName, Dialplan, GotoError, GotoTarget, HangupCause, PlanData, RouteError,
};
use crate::sounds::{alpha_prompts, digit_prompts, is_language, number_prompts, FALLBACK_LANGUAGE};
use crate::template::{Template, VarName};
use crate::timecond::TimeError;
use crate::tones::{tone_spec, ToneKind, DEFAULT_COUNTRY};
use carillon_mediactl::ToneSpec;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Who is calling, as known when the call enters the dialplan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallInfo {
    pub caller_num: String,
    pub caller_name: String,
    /// `${UNIQUEID}`.
    pub uniqueid: String,
    /// Channel variables set before the first step (name, value); they
    /// shadow the dialplan's `[globals]`.
    pub variables: Vec<(String, String)>,
    /// `${CHANNEL(language)}` at start (`None`: `en`).
    pub language: Option<String>,
}

/// Caller ID presented on outgoing legs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallerId {
    pub num: String,
    pub name: String,
}

/// One destination of a `Dial`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialTarget {
    /// `user/NAME`: a local endpoint's registered contacts.
    User { name: String },
    /// `trunk/NAME/NUMBER`: a carrier trunk.
    Trunk { trunk: String, number: String },
    /// `gateway/NAME/NUMBER`: a GSM gateway (checked against
    /// `allow_trunks` like a trunk).
    Gateway { gateway: String, number: String },
}

/// Why a dial string is not a valid target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("'{target}' is not user/NAME, trunk/NAME/NUMBER or gateway/NAME/NUMBER")]
    Malformed { target: String },
    #[error("bad name '{name}' (letters, digits, '_', '-', '.', '+' only)")]
    BadName { name: String },
    #[error("bad number '{number}' (digits, '*', '#' and a leading '+' only)")]
    BadNumber { number: String },
}

impl DialTarget {
    /// Parses `user/NAME`, `trunk/NAME/NUMBER` or `gateway/NAME/NUMBER`.
    pub fn parse(text: &str) -> Result<Self, TargetError> {
        let parts: Vec<&str> = text.split('/').collect();
        let target = match parts.as_slice() {
            ["user", name] => DialTarget::User {
                name: checked_name(name)?,
            },
            ["trunk", name, number] => DialTarget::Trunk {
                trunk: checked_name(name)?,
                number: checked_number(number)?,
            },
            ["gateway", name, number] => DialTarget::Gateway {
                gateway: checked_name(name)?,
                number: checked_number(number)?,
            },
            _ => {
                return Err(TargetError::Malformed {
                    target: text.to_owned(),
                })
            }
        };
        Ok(target)
    }

    /// The trunk or gateway this target uses, if any.
    pub fn trunk_name(&self) -> Option<&str> {
        match self {
            DialTarget::User { .. } => None,
            DialTarget::Trunk { trunk, .. } => Some(trunk),
            DialTarget::Gateway { gateway, .. } => Some(gateway),
        }
    }
}

impl fmt::Display for DialTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialTarget::User { name } => write!(f, "user/{name}"),
            DialTarget::Trunk { trunk, number } => write!(f, "trunk/{trunk}/{number}"),
            DialTarget::Gateway { gateway, number } => write!(f, "gateway/{gateway}/{number}"),
        }
    }
}

pub(crate) fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'))
}

fn checked_name(name: &str) -> Result<String, TargetError> {
    if is_name(name) {
        Ok(name.to_owned())
    } else {
        Err(TargetError::BadName {
            name: name.to_owned(),
        })
    }
}

fn checked_number(number: &str) -> Result<String, TargetError> {
    let body = number.strip_prefix('+').unwrap_or(number);
    if !body.is_empty()
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
    {
        Ok(number.to_owned())
    } else {
        Err(TargetError::BadNumber {
            number: number.to_owned(),
        })
    }
}

/// What the host must do for the call.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Answer the inbound leg (ignored when it is already answered).
    Answer,
    /// Ring every target in parallel; report with `handle_dial_result`.
    Dial {
        targets: Vec<DialTarget>,
        /// `None`: ring until someone answers or the caller gives up.
        timeout: Option<Duration>,
        caller_id: CallerId,
    },
    /// End the call with this Q.850 cause.
    Hangup { cause: HangupCause },
    /// The caller ID changed (Set CALLERID(num|name)).
    SetCallerId(CallerId),
    /// Play these files in order to the caller; report the end (finished
    /// or stopped) with one `handle_playback_done`. `interruptible`: a
    /// Background or Read prompt; digits are collected meanwhile and the
    /// interpreter sends `StopPlay` at the first one.
    Play {
        files: Vec<PathBuf>,
        interruptible: bool,
    },
    /// Stop the current `Play` or tone (its `handle_playback_done` follows
    /// for a `Play`).
    StopPlay,
    /// Play a call-progress tone for `duration` (`None`: until stopped or
    /// replaced). Not reported back.
    PlayTones {
        kind: ToneKind,
        tone: ToneSpec,
        duration: Option<Duration>,
    },
    /// 183 Session Progress with SDP (early media).
    Progress,
    /// 180 Ringing.
    Ringing,
    /// Record the caller to `path` (a WAV file; relative paths are the
    /// host's recording directory's business); a beep first when `beep`.
    /// Report with `handle_record_done`.
    Record {
        path: PathBuf,
        max_silence: Option<Duration>,
        max_duration: Option<Duration>,
        beep: bool,
    },
    /// End the pending `Record` (the caller pressed `#`).
    StopRecord,
    /// Start recording the call (both parties) in the background.
    MixMonitor {
        /// The expanded file template, or `None` for the host's default name.
        file: Option<String>,
        /// Options contain `D`: caller and callee on separate channels.
        stereo: bool,
    },
    /// Stop the MixMonitor of the call.
    StopMixMonitor,
    /// Store a callback request (CallbackRequest application).
    StoreCallback {
        uniqueid: String,
        caller_num: String,
        number: String,
        alt_number: String,
        language: String,
    },
    /// POST `body` (a JSON object) to `url`; fire and forget: the
    /// execution does not wait.
    Webhook {
        url: String,
        body: String,
        timeout: Duration,
        retries: u32,
    },
    /// A voicemail change to persist off the call's path (a message's
    /// row, read/moved/deleted, a discarded file, a PIN); the mailbox
    /// index already has it. Needs no channel.
    Voicemail(carillon_voicemail::Persist),
    /// Put the (answered) caller into conference room `room` until it
    /// leaves; report with `handle_conference_done`.
    ConfBridge { room: String },
}

/// How a `Dial` ended (Asterisk's `${DIALSTATUS}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DialStatus {
    Answer,
    NoAnswer,
    Busy,
    Congestion,
    ChanUnavail,
    Cancel,
}

impl DialStatus {
    /// The `${DIALSTATUS}` value.
    pub fn as_str(self) -> &'static str {
        match self {
            DialStatus::Answer => "ANSWER",
            DialStatus::NoAnswer => "NOANSWER",
            DialStatus::Busy => "BUSY",
            DialStatus::Congestion => "CONGESTION",
            DialStatus::ChanUnavail => "CHANUNAVAIL",
            DialStatus::Cancel => "CANCEL",
        }
    }

    /// The `${HANGUPCAUSE}` set with it.
    pub fn cause(self) -> HangupCause {
        match self {
            DialStatus::Answer | DialStatus::Cancel => HangupCause::NORMAL_CLEARING,
            DialStatus::NoAnswer => HangupCause::NO_ANSWER,
            DialStatus::Busy => HangupCause::USER_BUSY,
            DialStatus::Congestion => HangupCause::NORMAL_CIRCUIT_CONGESTION,
            DialStatus::ChanUnavail => HangupCause::SUBSCRIBER_ABSENT,
        }
    }
}

impl fmt::Display for DialStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a `Record` ended (`${RECORD_STATUS}`, Asterisk's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordStatus {
    /// A terminating digit (`#`).
    Dtmf,
    /// `max_silence` of silence.
    Silence,
    /// `max_duration` reached.
    Timeout,
    /// The caller hung up.
    Hangup,
    /// The file could not be written.
    Error,
}

impl RecordStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordStatus::Dtmf => "DTMF",
            RecordStatus::Silence => "SILENCE",
            RecordStatus::Timeout => "TIMEOUT",
            RecordStatus::Hangup => "HANGUP",
            RecordStatus::Error => "ERROR",
        }
    }
}

/// The result of a `Record` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOutcome {
    /// Why it ended, as the media plane saw it (a `StopRecord` sent for a
    /// digit reads as `Dtmf` whatever is given here).
    pub status: RecordStatus,
    /// Audio written, when known (VoiceMail discards a message under a
    /// second).
    pub duration_ms: Option<u64>,
}

/// A run-time failure of the dialplan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    #[error("more than {limit} steps executed (Goto loop?)")]
    StepLimit { limit: u32 },
    #[error("Goto failed: {0}")]
    Goto(GotoError),
    #[error("Return without a Gosub")]
    ReturnWithoutGosub,
    #[error("GotoIfTime: {0}")]
    TimeCondition(TimeError),
}

/// What happened to the call, for the host and for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The dialplan is done with the call (terminal).
    Finished { cause: HangupCause },
    /// A `Goto` named an extension that does not exist (terminal).
    NoRoute { context: String, exten: String },
    /// A dial target used a trunk the context may not use; the call is hung
    /// up with cause 21 (followed by `Finished`). Worth a security log line.
    TrunkRefused { context: String, trunk: String },
    /// The dialplan failed at run time (terminal).
    Failed(ExecError),
}

/// A Read in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ReadState {
    var: VarName,
    max_digits: Option<usize>,
    timeout: Duration,
    digits: String,
    /// The prompt is playing (its `playback_done` is still owed).
    prompt_playing: bool,
    /// `StopPlay` was sent for the prompt.
    stop_sent: bool,
    /// `#` or `max_digits` ended the input.
    complete: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Running,
    AwaitingDial {
        continue_after_answer: bool,
    },
    /// `Wait`: the timer ends it.
    Waiting,
    /// A non-interruptible Play (Playback, SayDigits, SayNumber, SayAlpha).
    Playing,
    /// Background's prompt; `stop_sent` once a digit stopped it.
    Background {
        stop_sent: bool,
    },
    /// WaitExten: the timer is its timeout.
    CollectingExten {
        timeout: Duration,
    },
    Reading(ReadState),
    Recording {
        stopped_by_digit: bool,
    },
    /// Busy/Congestion on an answered channel: tones, then hang up.
    Refusing {
        cause: HangupCause,
    },
    /// VoiceMail or VoiceMailMain: the session decides; the execution
    /// carries out its actions.
    Voicemail(VoicemailRun),
    /// ConfBridge: the caller is in a room until `handle_conference_done`.
    Conference,
    Done,
}

/// A running VoiceMail/VoiceMailMain session (equal only to itself).
#[derive(Debug, Clone)]
struct VoicemailRun(Box<carillon_voicemail::Session>);

impl PartialEq for VoicemailRun {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(&*self.0, &*other.0)
    }
}

impl Eq for VoicemailRun {}

impl std::ops::Deref for VoicemailRun {
    type Target = carillon_voicemail::Session;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for VoicemailRun {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// Where a `Return` goes back to.
#[derive(Debug, Clone)]
struct Frame {
    channel_ctx: usize,
    ctx: usize,
    ext: usize,
    pc: usize,
    exten: String,
}

/// What the collected digits select.
enum Selection {
    Extension { ctx: usize, ext: usize },
    Invalid,
    More,
}

/// One call's walk through the dialplan.
#[derive(Debug)]
pub struct Execution {
    plan: Dialplan,
    /// `${CONTEXT}`: where the call entered or was sent by a Goto.
    channel_ctx: usize,
    /// The context defining the current extension (may be an included one).
    ctx: usize,
    ext: usize,
    pc: usize,
    exten: String,
    caller_id: CallerId,
    uniqueid: String,
    language: String,
    vars: BTreeMap<String, String>,
    state: State,
    steps_run: u32,
    commands: VecDeque<Command>,
    /// The step (1-based count of steps run) that queued each command of
    /// `commands`, in the same order.
    command_steps: VecDeque<u32>,
    events: VecDeque<Event>,
    /// An `Answer` was sent.
    answered: bool,
    /// Running the `h` extension (the caller is gone).
    in_hangup_handler: bool,
    stack: Vec<Frame>,
    /// The application of the step executed last (what a blocked
    /// execution waits in).
    current_app: AppName,
    /// Digits collected by Background/WaitExten.
    exten_buffer: String,
    timer: Option<Instant>,
    /// The latest `now` given.
    now: Instant,
    start_instant: Instant,
    start_wall: SystemTime,
}

impl Execution {
    /// Routes `exten` in `context` and runs until the first blocking
    /// command. `now` starts the execution's clock; `wall` is the wall time
    /// at `now` (for GotoIfTime).
    pub fn start(
        plan: &Dialplan,
        context: &str,
        exten: &str,
        call: CallInfo,
        now: Instant,
        wall: SystemTime,
    ) -> Result<Execution, RouteError> {
        let channel_ctx = plan.context_index(context)?;
        let (ctx, ext) = plan
            .data
            .find(channel_ctx, exten)
            .ok_or_else(|| RouteError::NoRoute {
                context: context.to_owned(),
                exten: exten.to_owned(),
            })?;
        let mut vars = plan.data.globals.clone();
        vars.extend(call.variables);
        let language = call
            .language
            .filter(|l| is_language(l))
            .unwrap_or_else(|| FALLBACK_LANGUAGE.to_owned());
        let mut execution = Execution {
            plan: plan.clone(),
            channel_ctx,
            ctx,
            ext,
            pc: 0,
            exten: exten.to_owned(),
            caller_id: CallerId {
                num: call.caller_num,
                name: call.caller_name,
            },
            uniqueid: call.uniqueid,
            language,
            vars,
            state: State::Running,
            steps_run: 0,
            commands: VecDeque::new(),
            command_steps: VecDeque::new(),
            events: VecDeque::new(),
            answered: false,
            in_hangup_handler: false,
            stack: Vec::new(),
            current_app: AppName::NoOp,
            exten_buffer: String::new(),
            timer: None,
            now,
            start_instant: now,
            start_wall: wall,
        };
        execution.run();
        Ok(execution)
    }

    /// Playback's and Record's options: `skip` (do nothing on a channel
    /// that is not answered: false) and `noanswer` (do not answer first).
    fn prepare_channel(&mut self, skip: bool, noanswer: bool) -> bool {
        if skip && !self.answered {
            return false;
        }
        if !noanswer {
            self.answer();
        }
        true
    }

    /// The next command for the host.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.poll_command_step().map(|(c, _)| c)
    }

    /// The next command and the step that gave it (the count of steps run
    /// then, 1 for the first; for switch events).
    pub fn poll_command_step(&mut self) -> Option<(Command, u32)> {
        self.note_command_steps();
        let command = self.commands.pop_front()?;
        Some((
            command,
            self.command_steps.pop_front().unwrap_or(self.steps_run),
        ))
    }

    /// Commands queued since the last call belong to the current step.
    fn note_command_steps(&mut self) {
        while self.command_steps.len() < self.commands.len() {
            self.command_steps.push_back(self.steps_run);
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Execution::handle_timeout`] is due (Wait, WaitExten, Read,
    /// Busy/Congestion tones), if a timer runs.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Done {
            None
        } else {
            self.timer
        }
    }

    /// The timer fired. Ignored before it is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        match self.timer {
            Some(due) if due <= now => self.timer = None,
            _ => return,
        }
        match std::mem::replace(&mut self.state, State::Running) {
            State::Waiting => self.run(),
            State::CollectingExten { .. } => {
                if self.exten_buffer.is_empty() {
                    self.goto_special("t");
                } else {
                    self.select_and_go(true);
                }
                self.run();
            }
            State::Reading(read) if !read.prompt_playing => self.finish_read(read),
            State::Refusing { cause } => self.hang_up(cause),
            State::Voicemail(mut session) => {
                session.handle_timeout(now);
                self.drive_voicemail(session);
            }
            other => self.state = other,
        }
    }

    /// The outcome of the pending `Dial`. Ignored when no Dial is pending.
    pub fn handle_dial_result(&mut self, now: Instant, status: DialStatus) {
        self.tick(now);
        let State::AwaitingDial {
            continue_after_answer,
        } = self.state
        else {
            return;
        };
        self.vars
            .insert("DIALSTATUS".to_owned(), status.as_str().to_owned());
        self.vars
            .insert("HANGUPCAUSE".to_owned(), status.cause().to_string());
        match status {
            DialStatus::Cancel => self.caller_gone(),
            DialStatus::Answer if !continue_after_answer => {
                self.hang_up(HangupCause::NORMAL_CLEARING);
            }
            _ => {
                self.state = State::Running;
                self.run();
            }
        }
    }

    /// The current `Play` finished or was stopped. Ignored when none is
    /// pending.
    pub fn handle_playback_done(&mut self, now: Instant) {
        self.tick(now);
        match std::mem::replace(&mut self.state, State::Running) {
            State::Playing => self.run(),
            State::Background { stop_sent } => {
                if stop_sent || !self.exten_buffer.is_empty() {
                    self.select_and_go(false);
                }
                self.run();
            }
            State::Reading(mut read) if read.prompt_playing => {
                read.prompt_playing = false;
                if read.complete {
                    self.finish_read(read);
                } else {
                    self.timer = Some(self.now + read.timeout);
                    self.state = State::Reading(read);
                }
            }
            State::Voicemail(mut session) => {
                session.handle_playback_done(now);
                self.drive_voicemail(session);
            }
            other => self.state = other,
        }
    }

    /// A DTMF digit from the caller. Ignored unless Background, WaitExten,
    /// Read or Record is collecting.
    pub fn handle_digit(&mut self, now: Instant, digit: char) {
        self.tick(now);
        if !matches!(digit, '0'..='9' | '*' | '#' | 'A'..='D') {
            return;
        }
        match std::mem::replace(&mut self.state, State::Running) {
            State::Background { stop_sent } => {
                self.exten_buffer.push(digit);
                if !stop_sent {
                    self.commands.push_back(Command::StopPlay);
                }
                self.state = State::Background { stop_sent: true };
            }
            State::CollectingExten { timeout } => {
                self.exten_buffer.push(digit);
                self.state = State::CollectingExten { timeout };
                self.timer = Some(self.now + timeout);
                if !matches!(self.selection(false), Selection::More) {
                    self.state = State::Running;
                    self.timer = None;
                    self.select_and_go(false);
                    self.run();
                }
            }
            State::Reading(mut read) if !read.complete => {
                if digit == '#' {
                    read.complete = true;
                } else {
                    read.digits.push(digit);
                    read.complete = read
                        .max_digits
                        .is_some_and(|max| read.digits.chars().count() >= max);
                }
                if read.prompt_playing {
                    if !read.stop_sent {
                        read.stop_sent = true;
                        self.commands.push_back(Command::StopPlay);
                    }
                    self.state = State::Reading(read);
                } else if read.complete {
                    self.timer = None;
                    self.finish_read(read);
                } else {
                    self.timer = Some(self.now + read.timeout);
                    self.state = State::Reading(read);
                }
            }
            State::Recording { stopped_by_digit } => {
                if digit == '#' && !stopped_by_digit {
                    self.commands.push_back(Command::StopRecord);
                    self.state = State::Recording {
                        stopped_by_digit: true,
                    };
                } else {
                    self.state = State::Recording { stopped_by_digit };
                }
            }
            State::Voicemail(mut session) => {
                session.handle_digit(now, digit);
                self.drive_voicemail(session);
            }
            other => self.state = other,
        }
    }

    /// The pending `Record` ended. Ignored when none is pending.
    pub fn handle_record_done(&mut self, now: Instant, outcome: RecordOutcome) {
        self.tick(now);
        if matches!(self.state, State::Voicemail(_)) {
            if let State::Voicemail(mut session) =
                std::mem::replace(&mut self.state, State::Running)
            {
                session.handle_record_done(
                    now,
                    carillon_voicemail::session::Recorded {
                        failed: outcome.status == RecordStatus::Error,
                        duration_ms: outcome.duration_ms,
                    },
                );
                self.drive_voicemail(session);
            }
            return;
        }
        let State::Recording { stopped_by_digit } = self.state else {
            return;
        };
        let status = if stopped_by_digit {
            RecordStatus::Dtmf
        } else {
            outcome.status
        };
        self.vars
            .insert("RECORD_STATUS".to_owned(), status.as_str().to_owned());
        self.state = State::Running;
        self.run();
    }

    /// The ConfBridge application returned (the caller could not join, or
    /// left the room while still connected): `${CONFBRIDGE_RESULT}` is set
    /// to `result` (Asterisk's `FAILED`, `LEFT`, ...) and the steps go on.
    pub fn handle_conference_done(&mut self, now: Instant, result: &str) {
        self.tick(now);
        if self.state != State::Conference {
            return;
        }
        self.vars
            .insert("CONFBRIDGE_RESULT".to_owned(), result.to_owned());
        self.state = State::Running;
        self.run();
    }

    /// The caller hung up: the `h` extension of the channel's context runs
    /// (if there is one; its media applications are skipped), then the
    /// execution ends without a `Hangup` command.
    pub fn handle_caller_hangup(&mut self, now: Instant) {
        self.tick(now);
        if self.state == State::Done || self.in_hangup_handler {
            return;
        }
        if matches!(self.state, State::Recording { .. }) {
            self.vars.insert(
                "RECORD_STATUS".to_owned(),
                RecordStatus::Hangup.as_str().to_owned(),
            );
        }
        if matches!(self.state, State::Voicemail(_)) {
            if let State::Voicemail(mut session) =
                std::mem::replace(&mut self.state, State::Running)
            {
                // What it persisted so far stays queued; nothing more plays.
                session.handle_caller_gone(now);
                self.voicemail_actions(&mut session.0, true);
            }
        }
        self.caller_gone();
    }

    /// Whether a terminal event has been produced.
    pub fn is_finished(&self) -> bool {
        self.state == State::Done
    }

    /// `${CONTEXT}`.
    pub fn context(&self) -> &str {
        self.plan.data.context_name(self.channel_ctx)
    }

    /// `${EXTEN}`.
    pub fn exten(&self) -> &str {
        &self.exten
    }

    /// The caller ID outgoing legs will present.
    pub fn caller_id(&self) -> &CallerId {
        &self.caller_id
    }

    /// `${CHANNEL(language)}`.
    pub fn language(&self) -> &str {
        &self.language
    }

    /// The application the execution is blocked in (waiting for a result,
    /// a digit or its timer), `None` while it runs or once it is done: for
    /// the host's application events.
    pub fn waiting_in(&self) -> Option<AppName> {
        match self.state {
            State::Running | State::Done => None,
            _ => Some(self.current_app),
        }
    }

    /// Steps executed so far.
    pub fn steps_run(&self) -> u32 {
        self.steps_run
    }

    /// A variable's value as `${name}` would expand (`None` when unset or
    /// not a variable name).
    pub fn variable(&self, name: &str) -> Option<String> {
        VarName::parse(name).ok().and_then(|n| self.lookup(&n))
    }

    fn tick(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    /// The wall time now.
    fn wall(&self) -> SystemTime {
        self.start_wall + self.now.saturating_duration_since(self.start_instant)
    }

    fn lookup(&self, name: &VarName) -> Option<String> {
        match name {
            VarName::Exten => Some(self.exten.clone()),
            VarName::Context => Some(self.context().to_owned()),
            VarName::UniqueId => Some(self.uniqueid.clone()),
            VarName::Priority => Some((self.pc + 1).to_string()),
            VarName::CallerIdNum => Some(self.caller_id.num.clone()),
            VarName::CallerIdName => Some(self.caller_id.name.clone()),
            VarName::ChannelLanguage => Some(self.language.clone()),
            VarName::Channel(name) => self.vars.get(name).cloned(),
        }
    }

    fn expand(&self, template: &Template) -> String {
        template.expand(&|name| self.lookup(name))
    }

    fn set_var(&mut self, var: &VarName, value: String) {
        match var {
            VarName::CallerIdNum => {
                self.caller_id.num = value;
                self.commands
                    .push_back(Command::SetCallerId(self.caller_id.clone()));
            }
            VarName::CallerIdName => {
                self.caller_id.name = value;
                self.commands
                    .push_back(Command::SetCallerId(self.caller_id.clone()));
            }
            VarName::ChannelLanguage => {
                // A value that is not a language code is ignored, as a
                // directory name it could escape the sounds directory.
                if is_language(&value) {
                    self.language = value;
                }
            }
            VarName::Channel(name) => {
                self.vars.insert(name.clone(), value);
            }
            // Rejected at load; nothing to do if it ever gets here.
            VarName::Exten | VarName::Context | VarName::UniqueId | VarName::Priority => {}
        }
    }

    fn end(&mut self, event: Event) {
        self.events.push_back(event);
        self.state = State::Done;
        self.timer = None;
    }

    fn hang_up(&mut self, cause: HangupCause) {
        if !self.in_hangup_handler {
            self.commands.push_back(Command::Hangup { cause });
        }
        self.end(Event::Finished { cause });
    }

    fn fail(&mut self, error: ExecError) {
        if !self.in_hangup_handler {
            self.commands.push_back(Command::Hangup {
                cause: HangupCause::TEMPORARY_FAILURE,
            });
        }
        self.end(Event::Failed(error));
    }

    /// The caller is gone: run `h` if the channel's context has one.
    fn caller_gone(&mut self) {
        self.timer = None;
        let found = self
            .plan
            .data
            .find_special(self.channel_ctx, "h")
            .filter(|_| !self.in_hangup_handler);
        match found {
            Some((ctx, ext)) => {
                self.in_hangup_handler = true;
                self.ctx = ctx;
                self.ext = ext;
                self.pc = 0;
                self.exten = "h".to_owned();
                self.state = State::Running;
                self.run();
            }
            None => self.end(Event::Finished {
                cause: HangupCause::NORMAL_CLEARING,
            }),
        }
    }

    /// The cause used when execution runs off the end of an extension.
    fn fallthrough_cause(&self) -> HangupCause {
        match self.vars.get("DIALSTATUS").map(String::as_str) {
            Some("BUSY") => HangupCause::USER_BUSY,
            Some("NOANSWER") => HangupCause::NO_ANSWER,
            Some("CONGESTION" | "CHANUNAVAIL") => HangupCause::NORMAL_CIRCUIT_CONGESTION,
            _ => HangupCause::NORMAL_CLEARING,
        }
    }

    /// Executes steps until one blocks or the call is done.
    fn run(&mut self) {
        let data = Arc::clone(&self.plan.data);
        while self.state == State::Running {
            if self.steps_run >= data.max_steps {
                self.fail(ExecError::StepLimit {
                    limit: data.max_steps,
                });
                return;
            }
            let Some(step) = data
                .extension(self.ctx, self.ext)
                .and_then(|e| e.steps.get(self.pc))
            else {
                let cause = self.fallthrough_cause();
                self.hang_up(cause);
                return;
            };
            self.note_command_steps();
            self.steps_run += 1;
            if !matches!(
                step.app,
                App::WaitExten { .. }
                    | App::Playback {
                        background: true,
                        ..
                    }
            ) {
                self.exten_buffer.clear();
            }
            self.execute(&data, &step.app);
            self.note_command_steps();
        }
    }

    /// Answers the channel unless it is (believed) answered already.
    fn answer(&mut self) {
        if !self.answered {
            self.answered = true;
            self.commands.push_back(Command::Answer);
        }
    }

    /// Resolves prompt names for the channel's language.
    fn resolve<'n>(&self, names: impl IntoIterator<Item = &'n str>) -> Vec<PathBuf> {
        let sounds = &self.plan.data.sounds;
        names
            .into_iter()
            .filter_map(|name| sounds.resolve(name, &self.language))
            .collect()
    }

    /// Queues a non-interruptible Play and waits for it (or continues at
    /// once when nothing is left to play).
    fn play(&mut self, files: Vec<PathBuf>) {
        if files.is_empty() {
            return;
        }
        self.commands.push_back(Command::Play {
            files,
            interruptible: false,
        });
        self.state = State::Playing;
    }

    fn execute(&mut self, data: &PlanData, app: &App) {
        self.current_app = app.name();
        if self.in_hangup_handler && app.uses_media() {
            self.pc += 1;
            return;
        }
        match app {
            App::Answer => {
                self.answered = true;
                self.commands.push_back(Command::Answer);
                self.pc += 1;
            }
            App::Dial {
                targets,
                timeout,
                continue_after_answer,
            } => self.dial(data, targets, *timeout, *continue_after_answer),
            App::Goto { target } => self.goto(data, target),
            App::GotoIf {
                condition,
                then,
                otherwise,
            } => {
                let branch = if condition.evaluate(&|name| self.lookup(name)) {
                    then
                } else {
                    otherwise
                };
                self.branch(data, branch.as_ref());
            }
            App::Set { var, value } => {
                let value = self.expand(value);
                self.set_var(var, value);
                self.pc += 1;
            }
            App::NoOp => self.pc += 1,
            App::Wait { duration } => {
                self.timer = Some(self.now + *duration);
                self.state = State::Waiting;
                self.pc += 1;
            }
            App::Hangup { cause } => {
                self.hang_up(cause.unwrap_or(HangupCause::NORMAL_CLEARING));
            }
            App::Playback {
                files,
                skip,
                noanswer,
                background,
            } => {
                self.pc += 1;
                if !self.prepare_channel(*skip, *noanswer) {
                    return;
                }
                let names: Vec<String> = files.iter().map(|f| self.expand(f)).collect();
                let files = self.resolve(names.iter().map(String::as_str));
                if files.is_empty() {
                    return;
                }
                self.commands.push_back(Command::Play {
                    files,
                    interruptible: *background,
                });
                self.state = if *background {
                    State::Background { stop_sent: false }
                } else {
                    State::Playing
                };
            }
            App::WaitExten { timeout } => {
                self.pc += 1;
                if !self.exten_buffer.is_empty()
                    && !matches!(self.selection(false), Selection::More)
                {
                    self.select_and_go(false);
                    return;
                }
                self.timer = Some(self.now + *timeout);
                self.state = State::CollectingExten { timeout: *timeout };
            }
            App::Read {
                var,
                files,
                max_digits,
                timeout,
            } => {
                self.pc += 1;
                self.answer();
                let names: Vec<String> = files.iter().map(|f| self.expand(f)).collect();
                let files = self.resolve(names.iter().map(String::as_str));
                let prompt_playing = !files.is_empty();
                if prompt_playing {
                    self.commands.push_back(Command::Play {
                        files,
                        interruptible: true,
                    });
                } else {
                    self.timer = Some(self.now + *timeout);
                }
                self.state = State::Reading(ReadState {
                    var: var.clone(),
                    max_digits: *max_digits,
                    timeout: *timeout,
                    digits: String::new(),
                    prompt_playing,
                    stop_sent: false,
                    complete: false,
                });
            }
            App::SayDigits { digits } => {
                self.pc += 1;
                let names = digit_prompts(&self.expand(digits));
                let files = self.resolve(names.iter().map(String::as_str));
                self.play(files);
            }
            App::SayAlpha { text } => {
                self.pc += 1;
                let names = alpha_prompts(&self.expand(text));
                let files = self.resolve(names.iter().map(String::as_str));
                self.play(files);
            }
            App::SayNumber { number } => {
                self.pc += 1;
                // Asterisk accepts digits only; anything else says nothing.
                let Ok(n) = self.expand(number).trim().parse::<u64>() else {
                    return;
                };
                let names = number_prompts(n, &self.language);
                let files = self.resolve(names.iter().map(String::as_str));
                self.play(files);
            }
            App::Record {
                file,
                max_silence,
                max_duration,
                beep,
                skip,
                noanswer,
            } => {
                self.pc += 1;
                if !self.prepare_channel(*skip, *noanswer) {
                    return;
                }
                let path = self.expand(file);
                if path.trim().is_empty() || !crate::sounds::is_prompt_name(&path) {
                    self.vars.insert(
                        "RECORD_STATUS".to_owned(),
                        RecordStatus::Error.as_str().to_owned(),
                    );
                    return;
                }
                self.commands.push_back(Command::Record {
                    path: PathBuf::from(path),
                    max_silence: *max_silence,
                    max_duration: *max_duration,
                    beep: *beep,
                });
                self.state = State::Recording {
                    stopped_by_digit: false,
                };
            }
            App::Progress => {
                self.commands.push_back(Command::Progress);
                self.pc += 1;
            }
            App::Ringing => {
                self.commands.push_back(Command::Ringing);
                self.pc += 1;
            }
            App::Refuse {
                cause,
                tone,
                timeout,
            } => {
                if !self.answered {
                    self.hang_up(*cause);
                    return;
                }
                let tone = self.tone(*tone, None);
                self.commands.push_back(tone);
                self.timer = Some(self.now + *timeout);
                self.state = State::Refusing { cause: *cause };
            }
            App::Playtones { tone, country } => {
                let command = self.tone(*tone, country.as_ref());
                self.commands.push_back(command);
                self.pc += 1;
            }
            App::StopPlaytones => {
                self.commands.push_back(Command::StopPlay);
                self.pc += 1;
            }
            App::MixMonitor { file, stereo } => {
                let file = file
                    .as_ref()
                    .map(|f| self.expand(f))
                    .filter(|f| !f.trim().is_empty());
                self.commands.push_back(Command::MixMonitor {
                    file,
                    stereo: *stereo,
                });
                self.pc += 1;
            }
            App::StopMixMonitor => {
                self.commands.push_back(Command::StopMixMonitor);
                self.pc += 1;
            }
            App::GotoIfTime {
                when,
                then,
                otherwise,
            } => match when.rule(&|name| self.lookup(name)) {
                Ok(rule) => {
                    let branch = if rule.matches(self.wall()) {
                        then
                    } else {
                        otherwise
                    };
                    self.branch(data, branch.as_ref());
                }
                Err(e) => self.fail(ExecError::TimeCondition(e)),
            },
            App::Gosub { target } => {
                self.stack.push(Frame {
                    channel_ctx: self.channel_ctx,
                    ctx: self.ctx,
                    ext: self.ext,
                    pc: self.pc + 1,
                    exten: self.exten.clone(),
                });
                self.goto(data, target);
            }
            App::Return => match self.stack.pop() {
                Some(frame) => {
                    self.channel_ctx = frame.channel_ctx;
                    self.ctx = frame.ctx;
                    self.ext = frame.ext;
                    self.pc = frame.pc;
                    self.exten = frame.exten;
                }
                None => self.fail(ExecError::ReturnWithoutGosub),
            },
            App::ExecIf {
                condition,
                then,
                otherwise,
            } => {
                let chosen = if condition.evaluate(&|name| self.lookup(name)) {
                    Some(then)
                } else {
                    otherwise.as_ref()
                };
                match chosen {
                    Some(app) => self.execute(data, app),
                    None => self.pc += 1,
                }
            }
            App::CallbackRequest { number, alt_number } => {
                let command = Command::StoreCallback {
                    uniqueid: self.uniqueid.clone(),
                    caller_num: self.caller_id.num.clone(),
                    number: self.expand(number),
                    alt_number: self.expand(alt_number),
                    language: self.language.clone(),
                };
                self.commands.push_back(command);
                self.pc += 1;
            }
            App::Webhook {
                url,
                vars,
                timeout,
                retries,
            } => {
                let mut body = String::from("{");
                for (i, var) in vars.iter().enumerate() {
                    if i > 0 {
                        body.push(',');
                    }
                    json_string(&mut body, &var.to_string());
                    body.push(':');
                    json_string(&mut body, &self.lookup(var).unwrap_or_default());
                }
                body.push('}');
                self.commands.push_back(Command::Webhook {
                    url: self.expand(url),
                    body,
                    timeout: *timeout,
                    retries: *retries,
                });
                self.pc += 1;
            }
            App::VoiceMail { mailbox, busy } => {
                self.pc += 1;
                let mailbox = self.expand(mailbox);
                let Some(vm) = self.plan.voicemail.clone() else {
                    self.set_vmstatus(carillon_voicemail::VmStatus::Failed);
                    return;
                };
                self.answer();
                let kind = if *busy {
                    carillon_voicemail::DepositKind::Busy
                } else {
                    carillon_voicemail::DepositKind::Unavailable
                };
                let wall_ms = self
                    .wall()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                let session = carillon_voicemail::Session::deposit(
                    vm,
                    mailbox.trim(),
                    kind,
                    &self.caller_id.num,
                    &self.caller_id.name,
                    &self.uniqueid,
                    wall_ms,
                    &self.language,
                    self.now,
                );
                self.drive_voicemail(VoicemailRun(Box::new(session)));
            }
            App::VoiceMailMain { mailbox } => {
                self.pc += 1;
                let mailbox = mailbox.as_ref().map(|m| self.expand(m));
                let Some(vm) = self.plan.voicemail.clone() else {
                    self.set_vmstatus(carillon_voicemail::VmStatus::Failed);
                    return;
                };
                self.answer();
                let session = carillon_voicemail::Session::main(
                    vm,
                    mailbox.as_deref().map(str::trim),
                    &self.language,
                    self.now,
                );
                self.drive_voicemail(VoicemailRun(Box::new(session)));
            }
            App::ConfBridge { room } => {
                self.pc += 1;
                let room = self.expand(room).trim().to_owned();
                self.answer();
                self.commands.push_back(Command::ConfBridge { room });
                self.state = State::Conference;
            }
        }
    }

    fn set_vmstatus(&mut self, status: carillon_voicemail::VmStatus) {
        self.vars
            .insert("VMSTATUS".to_owned(), status.as_str().to_owned());
    }

    /// Carries out the voicemail session's actions; it stays the state
    /// until it finishes (`VMSTATUS` set, the steps go on).
    fn drive_voicemail(&mut self, mut session: VoicemailRun) {
        let finished = self.voicemail_actions(&mut session.0, false);
        if finished {
            self.timer = None;
            self.state = State::Running;
            self.run();
        } else {
            self.timer = session.poll_timeout();
            self.state = State::Voicemail(session);
        }
    }

    /// Turns the session's actions into commands (`gone`: the caller hung
    /// up, only persistence is kept); whether it finished.
    fn voicemail_actions(&mut self, session: &mut carillon_voicemail::Session, gone: bool) -> bool {
        use carillon_voicemail::{Action, Prompt};
        // Bounded: a session answers an empty Play at once, which cannot
        // loop for ever (every menu path plays something).
        for _ in 0..1000 {
            let Some(action) = session.poll_action() else {
                return false;
            };
            match action {
                Action::Persist(p) => self.commands.push_back(Command::Voicemail(p)),
                Action::Finished(status) => {
                    self.set_vmstatus(status);
                    return true;
                }
                _ if gone => {}
                Action::Play {
                    prompts,
                    language,
                    interruptible,
                } => {
                    let sounds = &self.plan.data.sounds;
                    let mut files = Vec::new();
                    for prompt in prompts {
                        match prompt {
                            Prompt::Sound(name) => files.extend(sounds.resolve(&name, &language)),
                            Prompt::Number(n) => files.extend(
                                number_prompts(n, &language)
                                    .iter()
                                    .filter_map(|p| sounds.resolve(p, &language)),
                            ),
                            Prompt::Digits(d) => files.extend(
                                digit_prompts(&d)
                                    .iter()
                                    .filter_map(|p| sounds.resolve(p, &language)),
                            ),
                            Prompt::File(path) => files.push(path),
                        }
                    }
                    if files.is_empty() {
                        session.handle_playback_done(self.now);
                    } else {
                        self.commands.push_back(Command::Play {
                            files,
                            interruptible,
                        });
                    }
                }
                Action::StopPlay => self.commands.push_back(Command::StopPlay),
                Action::Record {
                    path,
                    max_silence,
                    max_duration,
                } => self.commands.push_back(Command::Record {
                    path,
                    max_silence: Some(max_silence),
                    max_duration: Some(max_duration),
                    beep: true,
                }),
                Action::StopRecord => self.commands.push_back(Command::StopRecord),
            }
        }
        false
    }

    /// A `PlayTones` command for `kind` in the step's country, else
    /// `${TONEZONE}`, else Pakistan; an unknown country plays Pakistan's.
    fn tone(&self, kind: ToneKind, country: Option<&Template>) -> Command {
        let country = country
            .map(|c| self.expand(c))
            .filter(|c| !c.trim().is_empty())
            .or_else(|| self.vars.get("TONEZONE").cloned())
            .unwrap_or_else(|| DEFAULT_COUNTRY.to_owned());
        let tone = tone_spec(kind, &country)
            .or_else(|| tone_spec(kind, DEFAULT_COUNTRY))
            .unwrap_or(ToneSpec {
                segments: Vec::new(),
            });
        Command::PlayTones {
            kind,
            tone,
            duration: None,
        }
    }

    fn branch(&mut self, data: &PlanData, target: Option<&GotoTarget>) {
        match target {
            Some(target) => self.goto(data, target),
            None => self.pc += 1,
        }
    }

    /// What the digits collected so far select; `last`: no more will come.
    fn selection(&self, last: bool) -> Selection {
        let data = &self.plan.data;
        let found = data.find(self.channel_ctx, &self.exten_buffer);
        let more = data.can_extend(self.channel_ctx, &self.exten_buffer);
        match found {
            Some((ctx, ext)) if last || !more => Selection::Extension { ctx, ext },
            _ if last || !more => Selection::Invalid,
            _ => Selection::More,
        }
    }

    /// Acts on the collected digits: go to the extension they select, to
    /// `i`, or (when more could come) on to the next step.
    fn select_and_go(&mut self, last: bool) {
        match self.selection(last) {
            Selection::Extension { ctx, ext } => {
                self.ctx = ctx;
                self.ext = ext;
                self.pc = 0;
                self.exten = std::mem::take(&mut self.exten_buffer);
            }
            Selection::Invalid => {
                let digits = std::mem::take(&mut self.exten_buffer);
                self.vars.insert("INVALID_EXTEN".to_owned(), digits);
                self.goto_special("i");
            }
            Selection::More => {}
        }
    }

    /// Goes to `i` or `t` of the channel's context, or hangs up without.
    fn goto_special(&mut self, name: &str) {
        self.exten_buffer.clear();
        match self.plan.data.find_special(self.channel_ctx, name) {
            Some((ctx, ext)) => {
                self.ctx = ctx;
                self.ext = ext;
                self.pc = 0;
                self.exten = name.to_owned();
            }
            None => self.hang_up(HangupCause::NORMAL_CLEARING),
        }
    }

    fn finish_read(&mut self, read: ReadState) {
        let status = if read.digits.is_empty() {
            "TIMEOUT"
        } else {
            "OK"
        };
        self.set_var(&read.var, read.digits);
        self.vars.insert("READSTATUS".to_owned(), status.to_owned());
        self.state = State::Running;
        self.run();
    }

    fn dial(
        &mut self,
        data: &PlanData,
        templates: &[Template],
        timeout: Option<Duration>,
        continue_after_answer: bool,
    ) {
        let context = data.contexts.get(self.ctx);
        let context_name = data.context_name(self.ctx);
        let rules = context
            .and_then(|c| c.numbering.as_ref())
            .and_then(|name| data.numbering.get(name));
        let mut targets = Vec::with_capacity(templates.len());
        for template in templates {
            // A target that expands to nonsense (an empty or injected
            // variable) is skipped, as Asterisk skips unusable channels.
            let Ok(mut target) = DialTarget::parse(&self.expand(template)) else {
                continue;
            };
            if let Some(trunk) = target.trunk_name() {
                if !context.is_some_and(|c| c.allow_trunks.contains(trunk)) {
                    self.events.push_back(Event::TrunkRefused {
                        context: context_name.to_owned(),
                        trunk: trunk.to_owned(),
                    });
                    return self.hang_up(HangupCause::CALL_REJECTED);
                }
            }
            if let (
                Some(rules),
                DialTarget::Trunk { number, .. } | DialTarget::Gateway { number, .. },
            ) = (rules, &mut target)
            {
                *number = rules.normalise(number);
            }
            targets.push(target);
        }
        self.pc += 1;
        if targets.is_empty() {
            let status = DialStatus::ChanUnavail;
            self.vars
                .insert("DIALSTATUS".to_owned(), status.as_str().to_owned());
            self.vars
                .insert("HANGUPCAUSE".to_owned(), status.cause().to_string());
            return;
        }
        self.commands.push_back(Command::Dial {
            targets,
            timeout,
            caller_id: self.caller_id.clone(),
        });
        self.state = State::AwaitingDial {
            continue_after_answer,
        };
    }

    fn goto(&mut self, data: &PlanData, target: &GotoTarget) {
        let parts = target.expand(&|name| self.lookup(name));
        match data.resolve_goto(self.channel_ctx, (self.ctx, self.ext), &parts) {
            Ok(jump) => {
                self.channel_ctx = jump.channel_ctx;
                self.ctx = jump.ctx;
                self.ext = jump.ext;
                self.pc = jump.pc;
                if let Some(exten) = jump.exten {
                    self.exten = exten;
                }
            }
            Err(GotoError::NoRoute { context, exten }) => {
                self.end(Event::NoRoute { context, exten });
            }
            Err(error) => self.fail(ExecError::Goto(error)),
        }
    }
}

/// Appends `text` as a JSON string literal.
fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}
