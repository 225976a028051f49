//! The VoiceMail and VoiceMailMain applications as sans-IO state
//! machines. A [`Session`] runs inside a dialplan execution: it asks for
//! prompts to be played, a recording to be made and digits to be
//! collected ([`Action`]), and is fed the results (`handle_*`). It never
//! reads a clock (every input carries `now`) and does no I/O: changes to
//! the mailboxes are made in the shared index and handed over as
//! [`Persist`] operations.
//!
//! VoiceMail (`Session::deposit`):
//!
//! ```text
//!  start ─(mailbox full)──► Play vm-mailbox-full ──done──► Finished(FAILED)
//!    │ ─(unknown mailbox)──────────────────────────────────► Finished(FAILED)
//!    ▼
//!  Greeting (recorded / configured / spoken default, then vm-leave-message;
//!            `#` skips it) ──done──► Recording (beep; `#`, silence or the limit)
//!  Recording ──done, ≥ 1 s──► Persist::Store, Finished(SUCCESS)
//!            ──done, < 1 s──► Persist::Discard (the file), Finished(FAILED)
//! ```
//!
//! VoiceMailMain (`Session::main`):
//!
//! ```text
//!  Mailbox (digits, `#`) ─► Pin (digits, `#`) ─ok─► Counts+MainMenu
//!      ▲                        │ wrong (tries < 3): vm-login-incorrect
//!      └────────────────────────┘ wrong, 3rd time: vm-login-incorrect, vm-goodbye ─► Finished(USEREXIT)
//!  MainMenu: 1 first message (new first) ─► Message; 0 Options; # or * ─► Goodbye
//!  Message (the file, then its menu; a digit cuts both):
//!      5 repeat, 4 previous, 6 next, 7 delete (then next), 9 + folder digit save,
//!      0 Options, * main menu, # Goodbye
//!  Options: 1 record the unavailable greeting, 2 the busy one, 5 change the PIN,
//!      * or # back to the main menu
//!  Goodbye ─done─► Finished(SUCCESS)
//!  no digit at a menu three times ─► Goodbye
//! ```
//!
//! Host obligations (the dialplan execution): answer every `Play` with
//! one `handle_playback_done` (finished or stopped) and every `Record`
//! with one `handle_record_done`; forward every digit; call
//! `handle_timeout` when [`Session::poll_timeout`] is due.

use crate::index::{Folder, GreetingKind, Message};
use crate::Voicemail;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A message shorter than this is discarded (Asterisk's `minsecs`).
pub const MIN_MESSAGE: Duration = Duration::from_secs(1);
/// Wrong logins before VoiceMailMain gives up.
pub const LOGIN_TRIES: u32 = 3;
/// How long a menu or an entry waits for the next digit.
pub const DIGIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Menus repeated without an answer before goodbye.
const MENU_REPEATS: u32 = 3;

/// One thing to play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// A prompt by name (`vm-goodbye`), in the session's language.
    Sound(String),
    /// A number said with the language's words.
    Number(u64),
    /// Digits said one by one.
    Digits(String),
    /// A file by path (a message, a greeting).
    File(PathBuf),
}

fn sound(name: &str) -> Prompt {
    Prompt::Sound(name.to_owned())
}

/// `${VMSTATUS}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmStatus {
    Success,
    UserExit,
    Failed,
}

impl VmStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VmStatus::Success => "SUCCESS",
            VmStatus::UserExit => "USEREXIT",
            VmStatus::Failed => "FAILED",
        }
    }
}

/// Which greeting VoiceMail plays (its `u`/`b` flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepositKind {
    Unavailable,
    Busy,
}

/// A change to persist (database row, file), off the signalling path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persist {
    /// A new message: its row (the file is written already).
    Store(Message),
    /// A recording too short to keep: delete the file.
    Discard {
        path: PathBuf,
    },
    MarkRead {
        mailbox: String,
        id: String,
    },
    Move {
        mailbox: String,
        id: String,
        folder: Folder,
    },
    /// Delete the row and the file.
    Delete {
        mailbox: String,
        id: String,
        path: PathBuf,
    },
    SetPin {
        mailbox: String,
        pin: String,
    },
}

/// What the host must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Play these (in `language`); answer with `handle_playback_done`.
    Play {
        prompts: Vec<Prompt>,
        language: String,
        /// Digits are expected while it plays.
        interruptible: bool,
    },
    StopPlay,
    /// Record the caller; answer with `handle_record_done`.
    Record {
        path: PathBuf,
        max_silence: Duration,
        max_duration: Duration,
    },
    StopRecord,
    Persist(Persist),
    /// The application is done (terminal).
    Finished(VmStatus),
}

/// How a recording ended, as the host reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// The file could not be written.
    pub failed: bool,
    /// Audio written (`None`: unknown, taken as nothing).
    pub duration_ms: Option<u64>,
}

/// Digits wanted while (and after) a prompt plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Input {
    /// Complete at this many digits (`#` also ends when `hash_ends`).
    max: usize,
    hash_ends: bool,
}

const ONE_KEY: Input = Input {
    max: 1,
    hash_ends: false,
};
const ENTRY: Input = Input {
    max: 16,
    hash_ends: true,
};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    // VoiceMail
    Full,
    Greeting,
    RecordingMessage {
        id: String,
        path: PathBuf,
    },
    // VoiceMailMain
    Mailbox,
    Pin,
    LoginFailed {
        give_up: bool,
    },
    MainMenu,
    Message,
    Folder,
    /// A notice (deleted, saved, …); then the message at `pos` or the main menu.
    Notice {
        then_message: bool,
    },
    Options,
    RecordingGreeting {
        kind: GreetingKind,
        path: PathBuf,
    },
    NewPin,
    Goodbye {
        status: VmStatus,
    },
    Done,
}

/// One run of VoiceMail or VoiceMailMain.
#[derive(Debug, Clone)]
pub struct Session {
    vm: Voicemail,
    language: String,
    phase: Phase,
    actions: VecDeque<Action>,
    timer: Option<Instant>,
    now: Instant,
    // prompt and input mechanics
    playing: bool,
    stop_sent: bool,
    input: Option<Input>,
    digits: String,
    complete: bool,
    recording: bool,
    record_stop_sent: bool,
    repeats: u32,
    // VoiceMail
    caller_num: String,
    caller_name: String,
    start_wall_ms: i64,
    start: Instant,
    /// The message's id and file, recorded after the greeting.
    target: Option<(String, PathBuf)>,
    // VoiceMailMain
    mailbox: Option<String>,
    /// The mailbox was given to the application (only the PIN is asked).
    mailbox_given: bool,
    tries: u32,
    /// Message ids of this session, in the order heard (new first).
    list: Vec<String>,
    pos: usize,
}

impl Session {
    fn blank(vm: Voicemail, language: &str, now: Instant) -> Session {
        Session {
            vm,
            language: language.to_owned(),
            phase: Phase::Done,
            actions: VecDeque::new(),
            timer: None,
            now,
            playing: false,
            stop_sent: false,
            input: None,
            digits: String::new(),
            complete: false,
            recording: false,
            record_stop_sent: false,
            repeats: 0,
            caller_num: String::new(),
            caller_name: String::new(),
            start_wall_ms: 0,
            start: now,
            target: None,
            mailbox: None,
            mailbox_given: false,
            tries: 0,
            list: Vec::new(),
            pos: 0,
        }
    }

    /// VoiceMail: a caller leaves a message in `mailbox`. `uniqueid`
    /// names the file; `wall_ms` is the wall time (unix ms) at `now`;
    /// `language` is the channel's (a mailbox's own language wins).
    #[allow(clippy::too_many_arguments)]
    pub fn deposit(
        vm: Voicemail,
        mailbox: &str,
        kind: DepositKind,
        caller_num: &str,
        caller_name: &str,
        uniqueid: &str,
        wall_ms: i64,
        language: &str,
        now: Instant,
    ) -> Session {
        let mut s = Session::blank(vm, language, now);
        s.caller_num = caller_num.to_owned();
        s.caller_name = caller_name.to_owned();
        s.start_wall_ms = wall_ms;
        let shared = s.vm.lock();
        let config = std::sync::Arc::clone(&shared.config);
        let Some(mb) = config.mailbox(mailbox) else {
            drop(shared);
            s.finish(VmStatus::Failed);
            return s;
        };
        if let Some(l) = &mb.language {
            s.language.clone_from(l);
        }
        let count = shared.index.count(mailbox);
        let gkind = match kind {
            DepositKind::Unavailable => GreetingKind::Unavailable,
            DepositKind::Busy => GreetingKind::Busy,
        };
        let recorded = shared.index.has_greeting(mailbox, gkind);
        let mut id = file_stem(uniqueid);
        let mut n = 1;
        while shared.index.messages(mailbox).iter().any(|m| m.id == id) {
            n += 1;
            id = format!("{}-{n}", file_stem(uniqueid));
        }
        drop(shared);
        if count >= usize::try_from(mb.max_messages).unwrap_or(usize::MAX) {
            s.prompt(Phase::Full, vec![sound("vm-mailbox-full")], None);
            return s;
        }
        let box_dir = config.dir.join(mailbox);
        let configured = match kind {
            DepositKind::Unavailable => mb.greeting_unavailable.clone(),
            DepositKind::Busy => mb.greeting_busy.clone(),
        };
        let mut prompts = if recorded {
            vec![Prompt::File(box_dir.join(gkind.file_name()))]
        } else if let Some(file) = configured {
            vec![Prompt::File(file)]
        } else {
            vec![
                sound("vm-the-person-at"),
                Prompt::Digits(mailbox.to_owned()),
                sound(match kind {
                    DepositKind::Unavailable => "vm-is-unavailable",
                    DepositKind::Busy => "vm-is-busy",
                }),
            ]
        };
        prompts.push(sound("vm-leave-message"));
        s.mailbox = Some(mailbox.to_owned());
        let path = box_dir.join(format!("{id}.wav"));
        s.target = Some((id, path));
        s.prompt(Phase::Greeting, prompts, None);
        s
    }

    /// VoiceMailMain: the owner logs in (`mailbox` given: only the PIN is
    /// asked) and listens to the messages.
    pub fn main(vm: Voicemail, mailbox: Option<&str>, language: &str, now: Instant) -> Session {
        let mut s = Session::blank(vm, language, now);
        match mailbox.filter(|m| !m.is_empty()) {
            Some(m) => {
                s.mailbox_given = true;
                s.mailbox = Some(m.to_owned());
                if let Some(l) = s.vm.config().mailbox(m).and_then(|b| b.language.clone()) {
                    s.language = l;
                }
                s.prompt(Phase::Pin, vec![sound("vm-enter-password")], Some(ENTRY));
            }
            None => s.prompt(Phase::Mailbox, vec![sound("vm-enter-mailbox")], Some(ENTRY)),
        }
        s
    }

    /// The next action.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When `handle_timeout` is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer
    }

    /// The prompt language (the mailbox's once known).
    pub fn language(&self) -> &str {
        &self.language
    }

    /// Whether `Finished` was given.
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Done
    }

    fn tick(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    fn finish(&mut self, status: VmStatus) {
        if let Some(m) = &self.mailbox {
            self.vm.lock().index.resort(m);
        }
        self.phase = Phase::Done;
        self.timer = None;
        self.input = None;
        self.actions.push_back(Action::Finished(status));
    }

    /// Plays `prompts` in `phase`, collecting `input` meanwhile and after.
    fn prompt(&mut self, phase: Phase, prompts: Vec<Prompt>, input: Option<Input>) {
        self.phase = phase;
        self.input = input;
        self.digits.clear();
        self.complete = false;
        self.stop_sent = false;
        self.timer = None;
        if prompts.is_empty() {
            self.playing = false;
            if input.is_some() {
                self.timer = Some(self.now + DIGIT_TIMEOUT);
            } else {
                self.prompt_done();
            }
            return;
        }
        self.playing = true;
        self.actions.push_back(Action::Play {
            prompts,
            language: self.language.clone(),
            interruptible: input.is_some() || self.phase == Phase::Greeting,
        });
    }

    fn record(&mut self, phase: Phase, path: PathBuf, max_duration: Duration) {
        let max_silence = self.vm.config().max_silence;
        self.phase = phase;
        self.input = None;
        self.timer = None;
        self.recording = true;
        self.record_stop_sent = false;
        self.actions.push_back(Action::Record {
            path,
            max_silence,
            max_duration,
        });
    }

    /// A digit from the caller.
    pub fn handle_digit(&mut self, now: Instant, digit: char) {
        self.tick(now);
        if self.phase == Phase::Done {
            return;
        }
        if self.recording {
            if digit == '#' && !self.record_stop_sent {
                self.record_stop_sent = true;
                self.actions.push_back(Action::StopRecord);
            }
            return;
        }
        let Some(input) = self.input else {
            if self.phase == Phase::Greeting && digit == '#' && self.playing && !self.stop_sent {
                self.stop_sent = true;
                self.actions.push_back(Action::StopPlay);
            }
            return;
        };
        if self.complete {
            return;
        }
        if digit == '#' && input.hash_ends {
            self.complete = true;
        } else {
            self.digits.push(digit);
            self.complete = self.digits.len() >= input.max;
        }
        if self.playing {
            if !self.stop_sent {
                self.stop_sent = true;
                self.actions.push_back(Action::StopPlay);
            }
        } else if self.complete {
            self.timer = None;
            self.input_done();
        } else {
            self.timer = Some(self.now + DIGIT_TIMEOUT);
        }
    }

    /// The current `Play` finished or was stopped.
    pub fn handle_playback_done(&mut self, now: Instant) {
        self.tick(now);
        if !self.playing {
            return;
        }
        self.playing = false;
        self.stop_sent = false;
        match self.input {
            Some(_) if self.complete => self.input_done(),
            Some(_) => self.timer = Some(self.now + DIGIT_TIMEOUT),
            None => self.prompt_done(),
        }
    }

    /// The timer is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        match self.timer {
            Some(due) if due <= self.now => self.timer = None,
            _ => return,
        }
        if self.input.is_some() && !self.playing {
            self.complete = true;
            self.input_done();
        }
    }

    /// The pending `Record` ended.
    pub fn handle_record_done(&mut self, now: Instant, recorded: Recorded) {
        self.tick(now);
        if !self.recording {
            return;
        }
        self.recording = false;
        let long_enough = !recorded.failed
            && recorded
                .duration_ms
                .is_some_and(|ms| u128::from(ms) >= MIN_MESSAGE.as_millis());
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::RecordingMessage { id, path } => {
                if !long_enough {
                    if !recorded.failed {
                        self.actions
                            .push_back(Action::Persist(Persist::Discard { path }));
                    }
                    self.finish(VmStatus::Failed);
                    return;
                }
                let Some(message) = self.message(id, path, recorded.duration_ms.unwrap_or(0))
                else {
                    self.finish(VmStatus::Failed);
                    return;
                };
                self.vm.lock().index.insert(message.clone());
                self.actions
                    .push_back(Action::Persist(Persist::Store(message)));
                self.finish(VmStatus::Success);
            }
            Phase::RecordingGreeting { kind, path } => {
                if long_enough {
                    if let Some(m) = &self.mailbox {
                        self.vm.lock().index.set_greeting(m, kind);
                    }
                } else if !recorded.failed {
                    self.actions
                        .push_back(Action::Persist(Persist::Discard { path }));
                }
                self.options_menu(Vec::new());
            }
            other => self.phase = other,
        }
    }

    /// The caller is gone: nothing more is played; `Finished` follows. A
    /// message being recorded is kept when its recording's end comes
    /// ([`Voicemail::orphan_recording_done`]), as Asterisk keeps a message
    /// the caller ends by hanging up.
    pub fn handle_caller_gone(&mut self, now: Instant) {
        self.tick(now);
        if let (Phase::RecordingMessage { id, path }, true) = (&self.phase, self.recording) {
            if let Some(message) = self.message(id.clone(), path.clone(), 0) {
                self.vm.lock().orphans.insert(path.clone(), message);
            }
        }
        if self.phase != Phase::Done {
            self.finish(VmStatus::UserExit);
        }
    }

    /// The message being left, as it would be stored.
    fn message(&self, id: String, path: PathBuf, duration_ms: u64) -> Option<Message> {
        let mailbox = self.mailbox.clone()?;
        let elapsed = self.now.saturating_duration_since(self.start);
        Some(Message {
            id,
            mailbox,
            caller_num: self.caller_num.clone(),
            caller_name: self.caller_name.clone(),
            received_at_ms: self
                .start_wall_ms
                .saturating_add(i64::try_from(elapsed.as_millis()).unwrap_or(0)),
            duration_ms,
            folder: Folder::Inbox,
            read: false,
            path,
        })
    }

    /// A prompt without input ended.
    fn prompt_done(&mut self) {
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Full => self.finish(VmStatus::Failed),
            Phase::Greeting => {
                let Some((id, path)) = self.target.take() else {
                    self.finish(VmStatus::Failed);
                    return;
                };
                let max = self
                    .mailbox
                    .as_deref()
                    .and_then(|m| self.vm.config().mailbox(m).map(|b| b.max_message))
                    .unwrap_or(Duration::from_secs(180));
                self.record(
                    Phase::RecordingMessage {
                        id,
                        path: path.clone(),
                    },
                    path,
                    max,
                );
            }
            Phase::LoginFailed { give_up } => {
                if give_up {
                    self.finish(VmStatus::UserExit);
                } else if self.mailbox_given {
                    self.prompt(Phase::Pin, vec![sound("vm-enter-password")], Some(ENTRY));
                } else {
                    self.mailbox = None;
                    self.prompt(Phase::Mailbox, vec![sound("vm-enter-mailbox")], Some(ENTRY));
                }
            }
            Phase::Notice { then_message } => {
                if then_message && self.pos < self.list.len() {
                    self.play_message(Vec::new());
                } else {
                    self.main_menu(vec![sound("vm-no-more-messages")]);
                }
            }
            Phase::Goodbye { status } => self.finish(status),
            other => self.phase = other,
        }
    }

    /// Digits entered (complete, or the timer ran out).
    fn input_done(&mut self) {
        let digits = std::mem::take(&mut self.digits);
        self.input = None;
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Mailbox => {
                self.mailbox = Some(digits);
                self.prompt(Phase::Pin, vec![sound("vm-enter-password")], Some(ENTRY));
            }
            Phase::Pin => self.check_login(&digits),
            Phase::MainMenu => match digits.as_str() {
                "" => self.no_answer(|s, p| s.main_menu(p)),
                "1" => {
                    self.repeats = 0;
                    self.pos = 0;
                    if self.list.is_empty() {
                        self.main_menu(vec![sound("vm-no-more-messages")]);
                    } else {
                        self.play_message(Vec::new());
                    }
                }
                "0" => {
                    self.repeats = 0;
                    self.options_menu(Vec::new());
                }
                "#" | "*" => self.goodbye(VmStatus::Success),
                _ => self.main_menu(vec![sound("invalid")]),
            },
            Phase::Message => self.message_key(&digits),
            Phase::Folder => match digits.chars().next().and_then(Folder::from_digit) {
                Some(folder) => {
                    if let (Some(mailbox), Some(id)) = (self.mailbox.clone(), self.current()) {
                        self.vm.lock().index.move_to(&mailbox, &id, folder);
                        self.actions.push_back(Action::Persist(Persist::Move {
                            mailbox,
                            id,
                            folder,
                        }));
                    }
                    self.pos += 1;
                    self.prompt(
                        Phase::Notice { then_message: true },
                        vec![sound("vm-saved")],
                        None,
                    );
                }
                None => self.play_message(vec![sound("invalid")]),
            },
            Phase::Options => match digits.as_str() {
                "" => self.no_answer(|s, p| s.options_menu(p)),
                "1" | "2" => {
                    let kind = if digits == "1" {
                        GreetingKind::Unavailable
                    } else {
                        GreetingKind::Busy
                    };
                    let Some(mailbox) = self.mailbox.clone() else {
                        self.finish(VmStatus::Failed);
                        return;
                    };
                    let config = self.vm.config();
                    let path = config.dir.join(&mailbox).join(kind.file_name());
                    let max = config
                        .mailbox(&mailbox)
                        .map_or(Duration::from_secs(60), |b| b.max_message);
                    self.record(
                        Phase::RecordingGreeting {
                            kind,
                            path: path.clone(),
                        },
                        path,
                        max,
                    );
                }
                "5" => self.prompt(
                    Phase::NewPin,
                    vec![sound("vm-enter-new-password")],
                    Some(ENTRY),
                ),
                "*" | "#" => {
                    self.repeats = 0;
                    self.main_menu(Vec::new());
                }
                _ => self.options_menu(vec![sound("invalid")]),
            },
            Phase::NewPin => {
                if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                    if let Some(mailbox) = self.mailbox.clone() {
                        self.vm.lock().index.set_pin(&mailbox, &digits);
                        self.actions.push_back(Action::Persist(Persist::SetPin {
                            mailbox,
                            pin: digits,
                        }));
                    }
                    self.options_menu(vec![sound("vm-password-changed")]);
                } else {
                    self.options_menu(vec![sound("invalid")]);
                }
            }
            other => self.phase = other,
        }
    }

    fn no_answer(&mut self, again: fn(&mut Session, Vec<Prompt>)) {
        self.repeats += 1;
        if self.repeats >= MENU_REPEATS {
            self.goodbye(VmStatus::UserExit);
        } else {
            again(self, Vec::new());
        }
    }

    fn check_login(&mut self, pin: &str) {
        let mailbox = self.mailbox.clone().unwrap_or_default();
        let ok = {
            let shared = self.vm.lock();
            shared.config.mailbox(&mailbox).is_some_and(|b| {
                let want = shared.index.pin(&mailbox).unwrap_or(&b.pin);
                !pin.is_empty() && want == pin
            })
        };
        if !ok {
            self.tries += 1;
            let give_up = self.tries >= LOGIN_TRIES;
            let mut prompts = vec![sound("vm-login-incorrect")];
            if give_up {
                prompts.push(sound("vm-goodbye"));
            }
            self.prompt(Phase::LoginFailed { give_up }, prompts, None);
            return;
        }
        if let Some(l) = self
            .vm
            .config()
            .mailbox(&mailbox)
            .and_then(|b| b.language.clone())
        {
            self.language = l;
        }
        let (new, old) = {
            let shared = self.vm.lock();
            self.list = shared
                .index
                .messages(&mailbox)
                .iter()
                .map(|m| m.id.clone())
                .collect();
            shared.index.counts(&mailbox)
        };
        let count = |n: usize| Prompt::Number(u64::try_from(n).unwrap_or(u64::MAX));
        self.main_menu(vec![
            sound("vm-you-have"),
            count(new),
            sound("vm-new-messages"),
            sound("vm-you-have"),
            count(old),
            sound("vm-old-messages"),
        ]);
    }

    fn main_menu(&mut self, mut before: Vec<Prompt>) {
        before.push(sound("vm-main-menu"));
        self.prompt(Phase::MainMenu, before, Some(ONE_KEY));
    }

    fn options_menu(&mut self, mut before: Vec<Prompt>) {
        before.push(sound("vm-options-menu"));
        self.prompt(Phase::Options, before, Some(ONE_KEY));
    }

    fn goodbye(&mut self, status: VmStatus) {
        self.prompt(Phase::Goodbye { status }, vec![sound("vm-goodbye")], None);
    }

    fn current(&self) -> Option<String> {
        self.list.get(self.pos).cloned()
    }

    /// Plays the message at `pos` (after `before`), then its menu; the
    /// message is marked read.
    fn play_message(&mut self, before: Vec<Prompt>) {
        let (Some(mailbox), Some(id)) = (self.mailbox.clone(), self.current()) else {
            self.main_menu(vec![sound("vm-no-more-messages")]);
            return;
        };
        let path = {
            let mut shared = self.vm.lock();
            let path = shared
                .index
                .messages(&mailbox)
                .iter()
                .find(|m| m.id == id)
                .map(|m| m.path.clone());
            if path.is_some() && shared.index.mark_read(&mailbox, &id) {
                self.actions.push_back(Action::Persist(Persist::MarkRead {
                    mailbox: mailbox.clone(),
                    id: id.clone(),
                }));
            }
            path
        };
        let Some(path) = path else {
            // Deleted by another session meanwhile.
            self.list.remove(self.pos);
            self.play_message(before);
            return;
        };
        let mut prompts = before;
        prompts.push(Prompt::File(path));
        prompts.push(sound("vm-message-menu"));
        self.prompt(Phase::Message, prompts, Some(ONE_KEY));
    }

    fn message_key(&mut self, digits: &str) {
        match digits {
            "" => {
                self.repeats += 1;
                if self.repeats >= MENU_REPEATS {
                    self.goodbye(VmStatus::UserExit);
                } else {
                    self.prompt(
                        Phase::Message,
                        vec![sound("vm-message-menu")],
                        Some(ONE_KEY),
                    );
                }
                return;
            }
            _ => self.repeats = 0,
        }
        match digits {
            "5" => self.play_message(Vec::new()),
            "4" => {
                if self.pos == 0 {
                    self.play_message(vec![sound("vm-no-more-messages")]);
                } else {
                    self.pos -= 1;
                    self.play_message(Vec::new());
                }
            }
            "6" => {
                if self.pos + 1 < self.list.len() {
                    self.pos += 1;
                    self.play_message(Vec::new());
                } else {
                    self.prompt(
                        Phase::Message,
                        vec![sound("vm-no-more-messages"), sound("vm-message-menu")],
                        Some(ONE_KEY),
                    );
                }
            }
            "7" => {
                if let (Some(mailbox), Some(id)) = (self.mailbox.clone(), self.current()) {
                    let removed = self.vm.lock().index.remove(&mailbox, &id);
                    self.list.remove(self.pos);
                    if let Some(m) = removed {
                        self.actions.push_back(Action::Persist(Persist::Delete {
                            mailbox,
                            id,
                            path: m.path,
                        }));
                    }
                }
                self.prompt(
                    Phase::Notice { then_message: true },
                    vec![sound("vm-message-deleted")],
                    None,
                );
            }
            "9" => self.prompt(
                Phase::Folder,
                vec![sound("vm-select-folder")],
                Some(ONE_KEY),
            ),
            "0" => self.options_menu(Vec::new()),
            "*" => self.main_menu(Vec::new()),
            "#" => self.goodbye(VmStatus::Success),
            _ => self.prompt(
                Phase::Message,
                vec![sound("invalid"), sound("vm-message-menu")],
                Some(ONE_KEY),
            ),
        }
    }
}

/// `uniqueid` made safe as a file name.
fn file_stem(uniqueid: &str) -> String {
    let s: String = uniqueid
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_start_matches('.').to_owned();
    if s.is_empty() {
        "msg".to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MailboxIndex, VoicemailConfig};
    use std::path::Path;

    const CONFIG: &str = r#"
[voicemail]
dir = "/vm"
max_messages = 2

[mailbox.600]
pin = "6000"
language = "fr"
"#;

    fn vm(messages: &[(&str, bool)]) -> Voicemail {
        let config = VoicemailConfig::load("voicemail.toml", CONFIG).unwrap();
        let list = messages.iter().enumerate().map(|(i, (id, read))| Message {
            id: (*id).to_owned(),
            mailbox: "600".into(),
            caller_num: "100".into(),
            caller_name: String::new(),
            received_at_ms: i64::try_from(i).unwrap(),
            duration_ms: 2000,
            folder: if *read { Folder::Old } else { Folder::Inbox },
            read: *read,
            path: PathBuf::from(format!("/vm/600/{id}.wav")),
        });
        Voicemail::new(config, MailboxIndex::new(list, [], []))
    }

    fn drain(s: &mut Session) -> Vec<Action> {
        std::iter::from_fn(|| s.poll_action()).collect()
    }

    fn names(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::Play { prompts, .. } => prompts
                    .iter()
                    .map(|p| match p {
                        Prompt::Sound(n) => n.clone(),
                        Prompt::Number(n) => format!("#{n}"),
                        Prompt::Digits(d) => format!("d{d}"),
                        Prompt::File(f) => f.display().to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
                Action::StopPlay => "stop".into(),
                Action::Record { path, .. } => format!("record {}", path.display()),
                Action::StopRecord => "stoprecord".into(),
                Action::Persist(p) => format!("{p:?}"),
                Action::Finished(s) => format!("finished {}", s.as_str()),
            })
            .collect()
    }

    /// Presses `digits`; a prompt a digit stops reports its end.
    fn keys(s: &mut Session, t: Instant, digits: &str) -> Vec<String> {
        let mut out = Vec::new();
        for d in digits.chars() {
            s.handle_digit(t, d);
            let got = names(&drain(s));
            let stopped = got.iter().any(|a| a == "stop");
            out.extend(got);
            if stopped {
                s.handle_playback_done(t);
                out.extend(names(&drain(s)));
            }
        }
        out
    }

    /// The prompt playing ends by itself.
    fn ends(s: &mut Session, t: Instant) -> Vec<String> {
        s.handle_playback_done(t);
        names(&drain(s))
    }

    #[test]
    fn a_deposit_plays_the_default_greeting_records_and_stores_a_message() {
        let t = Instant::now();
        let v = vm(&[]);
        let mut s = Session::deposit(
            v.clone(),
            "600",
            DepositKind::Busy,
            "100",
            "Alice",
            "17.3",
            1_000,
            "en",
            t,
        );
        let a = drain(&mut s);
        assert_eq!(
            names(&a),
            ["vm-the-person-at d600 vm-is-busy vm-leave-message"]
        );
        assert!(matches!(&a[0], Action::Play { language, .. } if language == "fr"));
        s.handle_digit(t, '#');
        assert_eq!(names(&drain(&mut s)), ["stop"], "# skips the greeting");
        s.handle_playback_done(t);
        assert_eq!(names(&drain(&mut s)), ["record /vm/600/17.3.wav"]);
        s.handle_digit(t, '#');
        assert_eq!(names(&drain(&mut s)), ["stoprecord"]);
        s.handle_record_done(
            t + Duration::from_secs(4),
            Recorded {
                failed: false,
                duration_ms: Some(3_500),
            },
        );
        let a = drain(&mut s);
        let Action::Persist(Persist::Store(m)) = &a[0] else {
            panic!("{a:?}")
        };
        assert_eq!(
            (
                m.caller_num.as_str(),
                m.duration_ms,
                m.received_at_ms,
                m.read
            ),
            ("100", 3_500, 5_000, false)
        );
        assert_eq!(a[1], Action::Finished(VmStatus::Success));
        assert_eq!(v.counts("600"), (1, 0));
    }

    #[test]
    fn a_message_under_a_second_is_discarded_and_a_full_mailbox_records_nothing() {
        let t = Instant::now();
        let v = vm(&[]);
        let mut s = Session::deposit(
            v.clone(),
            "600",
            DepositKind::Unavailable,
            "1",
            "",
            "u",
            0,
            "en",
            t,
        );
        drain(&mut s);
        s.handle_playback_done(t);
        drain(&mut s);
        s.handle_record_done(
            t,
            Recorded {
                failed: false,
                duration_ms: Some(600),
            },
        );
        assert_eq!(
            names(&drain(&mut s)),
            ["Discard { path: \"/vm/600/u.wav\" }", "finished FAILED"]
        );
        assert_eq!(v.counts("600"), (0, 0));

        let v = vm(&[("a", false), ("b", true)]);
        let mut s = Session::deposit(v, "600", DepositKind::Unavailable, "1", "", "u", 0, "en", t);
        assert_eq!(names(&drain(&mut s)), ["vm-mailbox-full"]);
        s.handle_playback_done(t);
        assert_eq!(names(&drain(&mut s)), ["finished FAILED"]);

        let mut s = Session::deposit(
            vm(&[]),
            "999",
            DepositKind::Unavailable,
            "1",
            "",
            "u",
            0,
            "en",
            t,
        );
        assert_eq!(
            names(&drain(&mut s)),
            ["finished FAILED"],
            "no such mailbox"
        );
    }

    #[test]
    fn a_caller_hanging_up_while_recording_leaves_the_message_once_the_recording_ends() {
        let t = Instant::now();
        let v = vm(&[]);
        let mut s = Session::deposit(
            v.clone(),
            "600",
            DepositKind::Unavailable,
            "1",
            "",
            "u",
            0,
            "en",
            t,
        );
        drain(&mut s);
        s.handle_playback_done(t);
        drain(&mut s);
        s.handle_caller_gone(t);
        assert_eq!(names(&drain(&mut s)), ["finished USEREXIT"]);
        assert_eq!(v.counts("600"), (0, 0));
        let path = PathBuf::from("/vm/600/u.wav");
        assert_eq!(
            v.orphan_recording_done(Path::new("/vm/other.wav"), 5000, false),
            None
        );
        let Some(Persist::Store(m)) = v.orphan_recording_done(&path, 2400, false) else {
            panic!("not stored")
        };
        assert_eq!((m.duration_ms, m.caller_num.as_str()), (2400, "1"));
        assert_eq!(v.counts("600"), (1, 0));
        assert_eq!(v.orphan_recording_done(&path, 2400, false), None, "once");
        // A short one is discarded.
        let mut s = Session::deposit(
            v.clone(),
            "600",
            DepositKind::Unavailable,
            "1",
            "",
            "w",
            0,
            "en",
            t,
        );
        drain(&mut s);
        s.handle_playback_done(t);
        drain(&mut s);
        s.handle_caller_gone(t);
        let short = PathBuf::from("/vm/600/w.wav");
        assert_eq!(
            v.orphan_recording_done(&short, 300, false),
            Some(Persist::Discard { path: short })
        );
    }

    #[test]
    fn three_wrong_logins_say_goodbye() {
        let t = Instant::now();
        let mut s = Session::main(vm(&[]), None, "en", t);
        assert_eq!(names(&drain(&mut s)), ["vm-enter-mailbox"]);
        let mut heard = Vec::new();
        for _ in 0..3 {
            heard.extend(keys(&mut s, t, "600#1111#"));
            s.handle_playback_done(t);
            heard.extend(names(&drain(&mut s)));
        }
        assert_eq!(
            heard,
            [
                "stop",
                "vm-enter-password",
                "stop",
                "vm-login-incorrect",
                "vm-enter-mailbox",
                "stop",
                "vm-enter-password",
                "stop",
                "vm-login-incorrect",
                "vm-enter-mailbox",
                "stop",
                "vm-enter-password",
                "stop",
                "vm-login-incorrect vm-goodbye",
                "finished USEREXIT",
            ]
        );
    }

    #[test]
    fn the_menu_plays_new_first_and_next_previous_repeat_delete_and_save_act_on_the_right_message()
    {
        let t = Instant::now();
        let v = vm(&[("old", true), ("new", false)]);
        let mut s = Session::main(v.clone(), Some("600"), "en", t);
        assert_eq!(names(&drain(&mut s)), ["vm-enter-password"]);
        assert_eq!(
            keys(&mut s, t, "6000#"),
            [
                "stop",
                "vm-you-have #1 vm-new-messages vm-you-have #1 vm-old-messages vm-main-menu"
            ]
        );
        assert_eq!(
            keys(&mut s, t, "1"),
            [
                "stop",
                "MarkRead { mailbox: \"600\", id: \"new\" }",
                "/vm/600/new.wav vm-message-menu"
            ]
        );
        assert_eq!(
            keys(&mut s, t, "6"),
            ["stop", "/vm/600/old.wav vm-message-menu"]
        );
        assert_eq!(
            keys(&mut s, t, "4"),
            ["stop", "/vm/600/new.wav vm-message-menu"]
        );
        assert_eq!(
            keys(&mut s, t, "5"),
            ["stop", "/vm/600/new.wav vm-message-menu"]
        );
        // Save the first to Work (9, 2), then the next one plays.
        assert_eq!(keys(&mut s, t, "9"), ["stop", "vm-select-folder"]);
        assert_eq!(
            keys(&mut s, t, "2"),
            [
                "stop",
                "Move { mailbox: \"600\", id: \"new\", folder: Work }",
                "vm-saved",
            ]
        );
        assert_eq!(ends(&mut s, t), ["/vm/600/old.wav vm-message-menu"]);
        assert_eq!(
            keys(&mut s, t, "7"),
            [
                "stop",
                "Delete { mailbox: \"600\", id: \"old\", path: \"/vm/600/old.wav\" }",
                "vm-message-deleted",
            ]
        );
        assert_eq!(ends(&mut s, t), ["vm-no-more-messages vm-main-menu"]);
        assert_eq!(v.counts("600"), (0, 1));
        assert_eq!(v.messages("600")[0].folder, Folder::Work);
        assert_eq!(keys(&mut s, t, "#"), ["stop", "vm-goodbye"]);
        assert_eq!(ends(&mut s, t), ["finished SUCCESS"]);
    }

    #[test]
    fn options_change_the_pin_and_record_a_greeting_that_deposits_then_play() {
        let t = Instant::now();
        let v = vm(&[]);
        let mut s = Session::main(v.clone(), Some("600"), "en", t);
        drain(&mut s);
        keys(&mut s, t, "6000#");
        assert_eq!(keys(&mut s, t, "0"), ["stop", "vm-options-menu"]);
        assert_eq!(keys(&mut s, t, "5"), ["stop", "vm-enter-new-password"]);
        assert_eq!(
            keys(&mut s, t, "42#"),
            [
                "stop",
                "SetPin { mailbox: \"600\", pin: \"42\" }",
                "vm-password-changed vm-options-menu"
            ]
        );
        assert_eq!(
            keys(&mut s, t, "1"),
            ["stop", "record /vm/600/greeting-unavailable.wav"]
        );
        s.handle_record_done(
            t,
            Recorded {
                failed: false,
                duration_ms: Some(2000),
            },
        );
        assert_eq!(names(&drain(&mut s)), ["vm-options-menu"]);
        // The new PIN works, the old one does not.
        let mut again = Session::main(v.clone(), Some("600"), "en", t);
        drain(&mut again);
        assert_eq!(keys(&mut again, t, "6000#")[1], "vm-login-incorrect");
        let mut again = Session::main(v.clone(), Some("600"), "en", t);
        drain(&mut again);
        assert_eq!(
            keys(&mut again, t, "42#")[1].split(' ').next(),
            Some("vm-you-have")
        );
        // A caller now hears the recorded greeting.
        let mut d = Session::deposit(v, "600", DepositKind::Unavailable, "1", "", "u", 0, "en", t);
        assert_eq!(
            names(&drain(&mut d)),
            ["/vm/600/greeting-unavailable.wav vm-leave-message"]
        );
    }

    #[test]
    fn a_silent_menu_is_repeated_then_goodbye() {
        let t = Instant::now();
        let mut s = Session::main(vm(&[]), Some("600"), "en", t);
        drain(&mut s);
        keys(&mut s, t, "6000#");
        ends(&mut s, t);
        let mut heard = Vec::new();
        let mut now = t;
        for _ in 0..3 {
            now = s.poll_timeout().expect("a menu timer");
            s.handle_timeout(now);
            heard.extend(names(&drain(&mut s)));
            s.handle_playback_done(now);
            heard.extend(names(&drain(&mut s)));
        }
        assert_eq!(
            heard,
            [
                "vm-main-menu",
                "vm-main-menu",
                "vm-goodbye",
                "finished USEREXIT"
            ]
        );
        assert!(now > t);
    }
}
