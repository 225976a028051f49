//! The per-call interpreter: runs one call's steps and tells the host what
//! to do, sans-IO.
//!
//! Owns [`Execution`] (the channel's position, variables and caller ID), the
//! [`Command`]s it asks the host to carry out, the [`Event`]s it reports, and
//! the run-time half of toll-fraud protection. It knows nothing of SIP: the
//! host (the B2BUA) maps `Dial` to INVITEs, `Hangup` causes to responses or
//! BYEs, and feeds results back.
//!
//! ```text
//!            start ──► Running ──(Dial)──► AwaitingDial ──handle_dial_result──► Running
//!                        │   ▲                                                    │
//!                        │   └──handle_wait_done── AwaitingWait ◄──(Wait)─────────┘
//!                        ▼
//!   Hangup / end of steps / Dial answered (no continue) / refused / NoRoute /
//!   error / handle_caller_hangup ──► Done (one terminal event)
//! ```
//!
//! After `start` and after every `handle_*`, drain `poll_command` then
//! `poll_event`. Commands that need a result (`Dial`, `Wait`) block the
//! interpreter until it arrives; the others (`Answer`, `SetCallerId`,
//! `Hangup`) do not. Exactly one terminal event is produced:
//!
//! * [`Event::Finished`]: preceded by a `Hangup` command, except when the
//!   caller hung up or cancelled (nothing left to hang up).
//! * [`Event::NoRoute`]: a `Goto` led to an extension that does not exist;
//!   no command: the host answers 404 if the call is unanswered, else hangs up.
//! * [`Event::Failed`]: a bad run-time `Goto` or the step limit (a `Goto`
//!   loop); preceded by `Hangup` with cause 41.
//!
//! `Dial` semantics (Asterisk): the result is fed when the Dial application
//! would return, i.e. for `ANSWER` when the bridged call has ended. Any
//! status but `ANSWER` and `CANCEL` continues with the next step, with
//! `${DIALSTATUS}` and `${HANGUPCAUSE}` set; `ANSWER` ends the call unless
//! the step has `continue = true` (Asterisk's `g` option); `CANCEL` (the
//! caller gave up) ends it. When execution runs off the end of an extension
//! the call is hung up with a cause derived from `${DIALSTATUS}` (`BUSY` →
//! 17, `NOANSWER` → 19, `CONGESTION`/`CHANUNAVAIL` → 34, else 16), like
//! Asterisk's autofallthrough.
//!
//! Apps in the schema but not executed yet (Playback, Background,
//! WaitExten, Read, Queue, VoiceMail, MixMonitor) are refused when the
//! dialplan is loaded ([`crate::AppName::is_available`]): a plan holds
//! only applications the interpreter runs.

use crate::plan::{App, Dialplan, GotoError, GotoTarget, HangupCause, PlanData, RouteError};
use crate::template::{Template, VarName};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Who is calling, as known when the call enters the dialplan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallInfo {
    pub caller_num: String,
    pub caller_name: String,
    /// `${UNIQUEID}`.
    pub uniqueid: String,
    /// Channel variables set before the first step (name, value).
    pub variables: Vec<(String, String)>,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Answer the inbound leg.
    Answer,
    /// Ring every target in parallel; report with `handle_dial_result`.
    Dial {
        targets: Vec<DialTarget>,
        /// `None`: ring until someone answers or the caller gives up.
        timeout: Option<Duration>,
        caller_id: CallerId,
    },
    /// Keep the call as it is for this long; report with `handle_wait_done`.
    Wait(Duration),
    /// End the call with this Q.850 cause.
    Hangup { cause: HangupCause },
    /// The caller ID changed (Set CALLERID(num|name)).
    SetCallerId(CallerId),
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

/// A run-time failure of the dialplan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    #[error("more than {limit} steps executed (Goto loop?)")]
    StepLimit { limit: u32 },
    #[error("Goto failed: {0}")]
    Goto(GotoError),
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    AwaitingDial { continue_after_answer: bool },
    AwaitingWait,
    Done,
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
    vars: BTreeMap<String, String>,
    state: State,
    steps_run: u32,
    commands: VecDeque<Command>,
    /// The step (1-based count of steps run) that queued each command of
    /// `commands`, in the same order.
    command_steps: VecDeque<u32>,
    events: VecDeque<Event>,
}

impl Execution {
    /// Routes `exten` in `context` and runs until the first blocking command.
    pub fn start(
        plan: &Dialplan,
        context: &str,
        exten: &str,
        call: CallInfo,
    ) -> Result<Execution, RouteError> {
        let channel_ctx = plan.context_index(context)?;
        let (ctx, ext) = plan
            .data
            .find(channel_ctx, exten)
            .ok_or_else(|| RouteError::NoRoute {
                context: context.to_owned(),
                exten: exten.to_owned(),
            })?;
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
            vars: call.variables.into_iter().collect(),
            state: State::Running,
            steps_run: 0,
            commands: VecDeque::new(),
            command_steps: VecDeque::new(),
            events: VecDeque::new(),
        };
        execution.run();
        Ok(execution)
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

    /// The outcome of the pending `Dial`. Ignored when no Dial is pending.
    pub fn handle_dial_result(&mut self, status: DialStatus) {
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
            DialStatus::Cancel => self.end(Event::Finished {
                cause: HangupCause::NORMAL_CLEARING,
            }),
            DialStatus::Answer if !continue_after_answer => {
                self.hang_up(HangupCause::NORMAL_CLEARING);
            }
            _ => {
                self.state = State::Running;
                self.run();
            }
        }
    }

    /// The pending `Wait` has elapsed. Ignored when no Wait is pending.
    pub fn handle_wait_done(&mut self) {
        if self.state == State::AwaitingWait {
            self.state = State::Running;
            self.run();
        }
    }

    /// The caller hung up: the execution ends (no `Hangup` command).
    pub fn handle_caller_hangup(&mut self) {
        if self.state != State::Done {
            self.end(Event::Finished {
                cause: HangupCause::NORMAL_CLEARING,
            });
        }
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

    /// Steps executed so far.
    pub fn steps_run(&self) -> u32 {
        self.steps_run
    }

    /// A variable's value as `${name}` would expand (`None` when unset or
    /// not a variable name).
    pub fn variable(&self, name: &str) -> Option<String> {
        VarName::parse(name).ok().and_then(|n| self.lookup(&n))
    }

    fn lookup(&self, name: &VarName) -> Option<String> {
        match name {
            VarName::Exten => Some(self.exten.clone()),
            VarName::Context => Some(self.context().to_owned()),
            VarName::UniqueId => Some(self.uniqueid.clone()),
            VarName::Priority => Some((self.pc + 1).to_string()),
            VarName::CallerIdNum => Some(self.caller_id.num.clone()),
            VarName::CallerIdName => Some(self.caller_id.name.clone()),
            VarName::Channel(name) => self.vars.get(name).cloned(),
        }
    }

    fn expand(&self, template: &Template) -> String {
        template.expand(&|name| self.lookup(name))
    }

    fn end(&mut self, event: Event) {
        self.events.push_back(event);
        self.state = State::Done;
    }

    fn hang_up(&mut self, cause: HangupCause) {
        self.commands.push_back(Command::Hangup { cause });
        self.end(Event::Finished { cause });
    }

    fn fail(&mut self, error: ExecError) {
        self.commands.push_back(Command::Hangup {
            cause: HangupCause::TEMPORARY_FAILURE,
        });
        self.end(Event::Failed(error));
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
            self.execute(&data, &step.app);
            self.note_command_steps();
        }
    }

    fn execute(&mut self, data: &PlanData, app: &App) {
        match app {
            App::Answer => {
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
                match branch {
                    Some(target) => self.goto(data, target),
                    None => self.pc += 1,
                }
            }
            App::Set { var, value } => {
                let value = self.expand(value);
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
                    VarName::Channel(name) => {
                        self.vars.insert(name.clone(), value);
                    }
                    // Rejected at load; nothing to do if it ever gets here.
                    VarName::Exten | VarName::Context | VarName::UniqueId | VarName::Priority => {}
                }
                self.pc += 1;
            }
            App::NoOp => self.pc += 1,
            App::Wait { duration } => {
                self.commands.push_back(Command::Wait(*duration));
                self.state = State::AwaitingWait;
                self.pc += 1;
            }
            App::Hangup { cause } => {
                self.hang_up(cause.unwrap_or(HangupCause::NORMAL_CLEARING));
            }
        }
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
