//! The validated dialplan: contexts, their extensions in match order, the
//! steps of each extension, and routing of a dialled string.
//!
//! Owns [`Dialplan`] (cheap to clone; running calls keep the plan they
//! started with across a reload) and the lookup rule: a context's own exact
//! extensions, then its own patterns in Asterisk order, then each `include`
//! in the order written, depth first, never visiting a context twice. It does
//! not own parsing (`config`) nor execution (`exec`).

use crate::condition::Condition;
use crate::numbering::NumberRules;
use crate::pattern::ExtensionMatch;
use crate::sounds::Sounds;
use crate::template::{Template, VarName};
use crate::timecond::TimeSpec;
use crate::tones::ToneKind;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Steps executed before a call is stopped when no limit is configured.
pub const DEFAULT_MAX_STEPS: u32 = 1000;

/// A Q.850 cause value (1..=127).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HangupCause(u8);

impl HangupCause {
    pub const UNALLOCATED_NUMBER: HangupCause = HangupCause(1);
    pub const NORMAL_CLEARING: HangupCause = HangupCause(16);
    pub const USER_BUSY: HangupCause = HangupCause(17);
    pub const NO_USER_RESPONSE: HangupCause = HangupCause(18);
    pub const NO_ANSWER: HangupCause = HangupCause(19);
    pub const SUBSCRIBER_ABSENT: HangupCause = HangupCause(20);
    pub const CALL_REJECTED: HangupCause = HangupCause(21);
    pub const NORMAL_CIRCUIT_CONGESTION: HangupCause = HangupCause(34);
    pub const TEMPORARY_FAILURE: HangupCause = HangupCause(41);

    /// A cause from its Q.850 code, when in 1..=127.
    pub fn new(code: u8) -> Option<Self> {
        (1..=127).contains(&code).then_some(HangupCause(code))
    }

    /// The Q.850 code.
    pub fn code(self) -> u8 {
        self.0
    }
}

impl fmt::Display for HangupCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Application names the schema accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppName {
    Answer,
    Dial,
    Goto,
    GotoIf,
    Set,
    NoOp,
    Wait,
    Hangup,
    Playback,
    Background,
    WaitExten,
    Read,
    Queue,
    VoiceMail,
    VoiceMailMain,
    MixMonitor,
    SayDigits,
    SayNumber,
    SayAlpha,
    Record,
    Progress,
    Ringing,
    Busy,
    Congestion,
    Playtones,
    StopPlaytones,
    StopMixMonitor,
    GotoIfTime,
    Gosub,
    Return,
    ExecIf,
    CallbackRequest,
    Webhook,
    ConfBridge,
}

impl AppName {
    /// Every application, in documentation order.
    pub const ALL: [AppName; 34] = [
        AppName::Answer,
        AppName::Dial,
        AppName::Goto,
        AppName::GotoIf,
        AppName::Set,
        AppName::NoOp,
        AppName::Wait,
        AppName::Hangup,
        AppName::Playback,
        AppName::Background,
        AppName::WaitExten,
        AppName::Read,
        AppName::Queue,
        AppName::VoiceMail,
        AppName::VoiceMailMain,
        AppName::MixMonitor,
        AppName::SayDigits,
        AppName::SayNumber,
        AppName::SayAlpha,
        AppName::Record,
        AppName::Progress,
        AppName::Ringing,
        AppName::Busy,
        AppName::Congestion,
        AppName::Playtones,
        AppName::StopPlaytones,
        AppName::StopMixMonitor,
        AppName::GotoIfTime,
        AppName::Gosub,
        AppName::Return,
        AppName::ExecIf,
        AppName::CallbackRequest,
        AppName::Webhook,
        AppName::ConfBridge,
    ];

    /// The name as written in the dialplan.
    pub fn as_str(self) -> &'static str {
        match self {
            AppName::Answer => "Answer",
            AppName::Dial => "Dial",
            AppName::Goto => "Goto",
            AppName::GotoIf => "GotoIf",
            AppName::Set => "Set",
            AppName::NoOp => "NoOp",
            AppName::Wait => "Wait",
            AppName::Hangup => "Hangup",
            AppName::Playback => "Playback",
            AppName::Background => "Background",
            AppName::WaitExten => "WaitExten",
            AppName::Read => "Read",
            AppName::Queue => "Queue",
            AppName::VoiceMail => "VoiceMail",
            AppName::VoiceMailMain => "VoiceMailMain",
            AppName::ConfBridge => "ConfBridge",
            AppName::MixMonitor => "MixMonitor",
            AppName::SayDigits => "SayDigits",
            AppName::SayNumber => "SayNumber",
            AppName::SayAlpha => "SayAlpha",
            AppName::Record => "Record",
            AppName::Progress => "Progress",
            AppName::Ringing => "Ringing",
            AppName::Busy => "Busy",
            AppName::Congestion => "Congestion",
            AppName::Playtones => "Playtones",
            AppName::StopPlaytones => "StopPlaytones",
            AppName::StopMixMonitor => "StopMixMonitor",
            AppName::GotoIfTime => "GotoIfTime",
            AppName::Gosub => "Gosub",
            AppName::Return => "Return",
            AppName::ExecIf => "ExecIf",
            AppName::CallbackRequest => "CallbackRequest",
            AppName::Webhook => "Webhook",
        }
    }

    /// Whether the interpreter and the switch execute this application.
    /// The others are in the schema (their arguments are checked) but a
    /// dialplan using them is refused at load: the switch would skip them.
    pub fn is_available(self) -> bool {
        !matches!(self, AppName::Queue)
    }

    /// Looks a name up, ignoring ASCII case (`noop` = `NoOp`).
    pub fn from_name(name: &str) -> Option<Self> {
        AppName::ALL
            .into_iter()
            .find(|app| app.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of an extension (one Asterisk priority).
#[derive(Debug, Clone)]
pub(crate) struct Step {
    /// Line in the dialplan file, for diagnostics.
    pub line: usize,
    pub label: Option<String>,
    pub app: App,
}

/// A step's application with its validated arguments.
#[derive(Debug, Clone)]
pub(crate) enum App {
    Answer,
    Dial {
        targets: Vec<Template>,
        timeout: Option<Duration>,
        continue_after_answer: bool,
    },
    Goto {
        target: GotoTarget,
    },
    GotoIf {
        condition: Condition,
        then: Option<GotoTarget>,
        otherwise: Option<GotoTarget>,
    },
    Set {
        var: VarName,
        value: Template,
    },
    NoOp,
    Wait {
        duration: Duration,
    },
    Hangup {
        cause: Option<HangupCause>,
    },
    /// Playback and Background: prompt names (templates), resolved per
    /// language when played.
    Playback {
        files: Vec<Template>,
        skip: bool,
        noanswer: bool,
        background: bool,
    },
    WaitExten {
        timeout: Duration,
    },
    Read {
        var: VarName,
        files: Vec<Template>,
        max_digits: Option<usize>,
        timeout: Duration,
    },
    SayDigits {
        digits: Template,
    },
    SayNumber {
        number: Template,
    },
    SayAlpha {
        text: Template,
    },
    Record {
        file: Template,
        max_silence: Option<Duration>,
        max_duration: Option<Duration>,
        beep: bool,
        skip: bool,
        noanswer: bool,
    },
    Progress,
    Ringing,
    /// Busy (cause 17) or Congestion (cause 34).
    Refuse {
        cause: HangupCause,
        tone: ToneKind,
        timeout: Duration,
    },
    Playtones {
        tone: ToneKind,
        country: Option<Template>,
    },
    StopPlaytones,
    MixMonitor {
        file: Option<Template>,
        stereo: bool,
    },
    StopMixMonitor,
    GotoIfTime {
        when: TimeSpec,
        then: Option<GotoTarget>,
        otherwise: Option<GotoTarget>,
    },
    Gosub {
        target: GotoTarget,
    },
    Return,
    ExecIf {
        condition: Condition,
        then: Box<App>,
        otherwise: Option<Box<App>>,
    },
    CallbackRequest {
        number: Template,
        alt_number: Template,
    },
    Webhook {
        url: Template,
        vars: Vec<VarName>,
        timeout: Duration,
        retries: u32,
    },
    /// A caller leaves a message (`busy`: the busy greeting, else the
    /// unavailable one).
    VoiceMail {
        mailbox: Template,
        busy: bool,
    },
    /// The mailbox owner's menu (`mailbox`: only the PIN is asked).
    VoiceMailMain {
        mailbox: Option<Template>,
    },
    /// Join a conference room of `conferences.toml` (answers first).
    ConfBridge {
        room: Template,
    },
}

impl App {
    /// The application's name.
    pub fn name(&self) -> AppName {
        match self {
            App::Answer => AppName::Answer,
            App::Dial { .. } => AppName::Dial,
            App::Goto { .. } => AppName::Goto,
            App::GotoIf { .. } => AppName::GotoIf,
            App::Set { .. } => AppName::Set,
            App::NoOp => AppName::NoOp,
            App::Wait { .. } => AppName::Wait,
            App::Hangup { .. } => AppName::Hangup,
            App::Playback {
                background: true, ..
            } => AppName::Background,
            App::Playback { .. } => AppName::Playback,
            App::WaitExten { .. } => AppName::WaitExten,
            App::Read { .. } => AppName::Read,
            App::SayDigits { .. } => AppName::SayDigits,
            App::SayNumber { .. } => AppName::SayNumber,
            App::SayAlpha { .. } => AppName::SayAlpha,
            App::Record { .. } => AppName::Record,
            App::Progress => AppName::Progress,
            App::Ringing => AppName::Ringing,
            App::Refuse { cause, .. } if *cause == HangupCause::USER_BUSY => AppName::Busy,
            App::Refuse { .. } => AppName::Congestion,
            App::Playtones { .. } => AppName::Playtones,
            App::StopPlaytones => AppName::StopPlaytones,
            App::MixMonitor { .. } => AppName::MixMonitor,
            App::StopMixMonitor => AppName::StopMixMonitor,
            App::GotoIfTime { .. } => AppName::GotoIfTime,
            App::Gosub { .. } => AppName::Gosub,
            App::Return => AppName::Return,
            App::ExecIf { .. } => AppName::ExecIf,
            App::CallbackRequest { .. } => AppName::CallbackRequest,
            App::Webhook { .. } => AppName::Webhook,
            App::VoiceMail { .. } => AppName::VoiceMail,
            App::VoiceMailMain { .. } => AppName::VoiceMailMain,
            App::ConfBridge { .. } => AppName::ConfBridge,
        }
    }

    /// Whether the application needs the channel's media (skipped in the
    /// `h` extension, after the caller hung up).
    pub fn uses_media(&self) -> bool {
        matches!(
            self,
            App::Answer
                | App::Dial { .. }
                | App::Wait { .. }
                | App::Playback { .. }
                | App::WaitExten { .. }
                | App::Read { .. }
                | App::SayDigits { .. }
                | App::SayNumber { .. }
                | App::SayAlpha { .. }
                | App::Record { .. }
                | App::Progress
                | App::Ringing
                | App::Refuse { .. }
                | App::Playtones { .. }
                | App::StopPlaytones
                | App::MixMonitor { .. }
                | App::StopMixMonitor
                | App::VoiceMail { .. }
                | App::VoiceMailMain { .. }
                | App::ConfBridge { .. }
        )
    }
}

/// A `Goto` target split at its literal commas before expansion, so that a
/// variable whose value contains a comma (a dialled `ctx,exten,1`) cannot
/// add components and jump into another context.
#[derive(Debug, Clone)]
pub(crate) struct GotoTarget {
    parts: Vec<Template>,
}

impl GotoTarget {
    pub fn parse(text: &str) -> Result<Self, crate::template::TemplateError> {
        let parts = text
            .split(',')
            .map(Template::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(GotoTarget { parts })
    }

    /// The components when none has a variable reference.
    pub fn literal(&self) -> Option<Vec<String>> {
        self.parts
            .iter()
            .map(|t| t.literal().map(str::to_owned))
            .collect()
    }

    pub fn expand(&self, lookup: &dyn Fn(&VarName) -> Option<String>) -> Vec<String> {
        self.parts.iter().map(|t| t.expand(lookup)).collect()
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Extension {
    pub matcher: ExtensionMatch,
    pub steps: Vec<Step>,
}

impl Extension {
    /// The index of the step a Goto priority names: `1`-based number or label.
    pub fn priority(&self, priority: &str) -> Option<usize> {
        let priority = priority.trim();
        if let Ok(n) = priority.parse::<usize>() {
            return n.checked_sub(1).filter(|index| *index < self.steps.len());
        }
        self.steps
            .iter()
            .position(|step| step.label.as_deref() == Some(priority))
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub name: String,
    pub includes: Vec<usize>,
    pub allow_trunks: BTreeSet<String>,
    pub numbering: Option<String>,
    /// In declaration order.
    pub extensions: Vec<Extension>,
    /// Indices into `extensions`, in match order.
    pub order: Vec<usize>,
}

#[derive(Debug)]
pub(crate) struct PlanData {
    pub contexts: Vec<Context>,
    pub by_name: BTreeMap<String, usize>,
    pub numbering: BTreeMap<String, NumberRules>,
    pub max_steps: u32,
    /// `[globals]`: variables every call starts with.
    pub globals: BTreeMap<String, String>,
    /// Where prompts are found.
    pub sounds: Sounds,
}

/// Why a call cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("no context named '{context}'")]
    UnknownContext { context: String },
    #[error("no extension matches '{exten}' in context '{context}'")]
    NoRoute { context: String, exten: String },
}

/// Where a dialled string leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<'a> {
    /// The context defining the matched extension (the searched one or an
    /// included one).
    pub context: &'a str,
    /// The matched extension's `match` text (`100`, `_9X.`).
    pub extension: &'a str,
}

/// A validated dialplan. Clone is cheap (shared).
#[derive(Debug, Clone)]
pub struct Dialplan {
    pub(crate) data: Arc<PlanData>,
    /// The mailboxes VoiceMail and VoiceMailMain use (none: they fail
    /// with `VMSTATUS=FAILED`).
    pub(crate) voicemail: Option<carillon_voicemail::Voicemail>,
}

impl Dialplan {
    /// This plan with the switch's voicemail attached (its mailboxes and
    /// message index, shared by every call).
    pub fn with_voicemail(mut self, voicemail: carillon_voicemail::Voicemail) -> Dialplan {
        self.voicemail = Some(voicemail);
        self
    }

    /// The voicemail attached, if any.
    pub fn voicemail(&self) -> Option<&carillon_voicemail::Voicemail> {
        self.voicemail.as_ref()
    }

    /// Finds the extension `exten` reaches from `context`.
    pub fn route(&self, context: &str, exten: &str) -> Result<Route<'_>, RouteError> {
        let ctx = self.context_index(context)?;
        let (found_ctx, ext) = self
            .data
            .find(ctx, exten)
            .ok_or_else(|| RouteError::NoRoute {
                context: context.to_owned(),
                exten: exten.to_owned(),
            })?;
        let owner = self.data.contexts.get(found_ctx);
        let matched = owner.and_then(|c| c.extensions.get(ext));
        match (owner, matched) {
            (Some(owner), Some(matched)) => Ok(Route {
                context: &owner.name,
                extension: matched.matcher.as_str(),
            }),
            _ => Err(RouteError::NoRoute {
                context: context.to_owned(),
                exten: exten.to_owned(),
            }),
        }
    }

    /// Context names, sorted.
    pub fn contexts(&self) -> impl Iterator<Item = &str> {
        self.data.by_name.keys().map(String::as_str)
    }

    /// A `[numbering.NAME]` rule set.
    pub fn numbering(&self, name: &str) -> Option<&NumberRules> {
        self.data.numbering.get(name)
    }

    /// Trunks (and gateways) a context may dial.
    pub fn allowed_trunks(&self, context: &str) -> Option<impl Iterator<Item = &str>> {
        let ctx = self.context_index(context).ok()?;
        let ctx = self.data.contexts.get(ctx)?;
        Some(ctx.allow_trunks.iter().map(String::as_str))
    }

    /// The step limit per call.
    pub fn max_steps(&self) -> u32 {
        self.data.max_steps
    }

    /// Where prompts are resolved.
    pub fn sounds(&self) -> &Sounds {
        &self.data.sounds
    }

    /// `[globals]`: the variables every call starts with.
    pub fn globals(&self) -> impl Iterator<Item = (&str, &str)> {
        self.data
            .globals
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub(crate) fn context_index(&self, context: &str) -> Result<usize, RouteError> {
        self.data
            .by_name
            .get(context)
            .copied()
            .ok_or_else(|| RouteError::UnknownContext {
                context: context.to_owned(),
            })
    }
}

impl PlanData {
    /// (defining context, extension index) for `exten` searched from `ctx`.
    pub fn find(&self, ctx: usize, exten: &str) -> Option<(usize, usize)> {
        let mut visited = BTreeSet::new();
        self.find_in(ctx, exten, &mut visited)
    }

    fn find_in(
        &self,
        ctx: usize,
        exten: &str,
        visited: &mut BTreeSet<usize>,
    ) -> Option<(usize, usize)> {
        if !visited.insert(ctx) {
            return None;
        }
        let context = self.contexts.get(ctx)?;
        let own = context.order.iter().copied().find(|&i| {
            context
                .extensions
                .get(i)
                .is_some_and(|e| e.matcher.matches(exten))
        });
        if let Some(i) = own {
            return Some((ctx, i));
        }
        context
            .includes
            .iter()
            .find_map(|&inc| self.find_in(inc, exten, visited))
    }

    /// The special extension `name` (`h`, `i`, `t`) reachable from `ctx`:
    /// exact extensions only, so a catch-all pattern (`_!`, `_.`) is not
    /// mistaken for a hangup or timeout handler.
    pub fn find_special(&self, ctx: usize, name: &str) -> Option<(usize, usize)> {
        self.find(ctx, name).filter(|&(c, e)| {
            self.extension(c, e)
                .is_some_and(|ext| !ext.matcher.is_pattern())
        })
    }

    /// Whether more digits after `prefix` could still match an extension
    /// reachable from `ctx`.
    pub fn can_extend(&self, ctx: usize, prefix: &str) -> bool {
        let mut visited = BTreeSet::new();
        self.can_extend_in(ctx, prefix, &mut visited)
    }

    fn can_extend_in(&self, ctx: usize, prefix: &str, visited: &mut BTreeSet<usize>) -> bool {
        if !visited.insert(ctx) {
            return false;
        }
        let Some(context) = self.contexts.get(ctx) else {
            return false;
        };
        context
            .extensions
            .iter()
            .any(|e| e.matcher.can_extend(prefix))
            || context
                .includes
                .iter()
                .any(|&inc| self.can_extend_in(inc, prefix, visited))
    }

    pub fn extension(&self, ctx: usize, ext: usize) -> Option<&Extension> {
        self.contexts.get(ctx)?.extensions.get(ext)
    }
}

/// Why a `Goto` target cannot be followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GotoError {
    #[error("'{target}' is not [[context,]extension,]priority")]
    Malformed { target: String },
    #[error("no context named '{context}'")]
    UnknownContext { context: String },
    #[error("no extension matches '{exten}' in context '{context}'")]
    NoRoute { context: String, exten: String },
    #[error("extension '{exten}' in context '{context}' has no priority or label '{priority}'")]
    NoSuchPriority {
        context: String,
        exten: String,
        priority: String,
    },
}

/// Where a resolved `Goto` lands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Jump {
    /// The channel's context afterwards (`${CONTEXT}`, base of 2-part Gotos).
    pub channel_ctx: usize,
    /// The context defining the extension.
    pub ctx: usize,
    pub ext: usize,
    pub pc: usize,
    /// The new `${EXTEN}`, when the target named one.
    pub exten: Option<String>,
}

impl PlanData {
    /// Resolves `priority`, `exten,priority` or `context,exten,priority`.
    /// `channel_ctx` is the base for two-part targets; `here` is the
    /// extension being executed, the base for one-part targets.
    pub fn resolve_goto(
        &self,
        channel_ctx: usize,
        here: (usize, usize),
        parts: &[String],
    ) -> Result<Jump, GotoError> {
        let target = parts.join(",");
        let parts: Vec<&str> = parts.iter().map(|p| p.trim()).collect();
        let (channel_ctx, exten, priority) = match parts.as_slice() {
            [priority] => {
                let (ctx, ext) = here;
                let extension = self
                    .extension(ctx, ext)
                    .ok_or_else(|| GotoError::Malformed {
                        target: target.clone(),
                    })?;
                let pc = extension
                    .priority(priority)
                    .ok_or_else(|| GotoError::NoSuchPriority {
                        context: self.context_name(ctx).to_owned(),
                        exten: extension.matcher.as_str().to_owned(),
                        priority: (*priority).to_owned(),
                    })?;
                return Ok(Jump {
                    channel_ctx,
                    ctx,
                    ext,
                    pc,
                    exten: None,
                });
            }
            [exten, priority] => (channel_ctx, *exten, *priority),
            [context, exten, priority] => {
                let ctx = self.by_name.get(*context).copied().ok_or_else(|| {
                    GotoError::UnknownContext {
                        context: (*context).to_owned(),
                    }
                })?;
                (ctx, *exten, *priority)
            }
            _ => return Err(GotoError::Malformed { target }),
        };
        let (ctx, ext) = self
            .find(channel_ctx, exten)
            .ok_or_else(|| GotoError::NoRoute {
                context: self.context_name(channel_ctx).to_owned(),
                exten: exten.to_owned(),
            })?;
        let extension = self
            .extension(ctx, ext)
            .ok_or(GotoError::Malformed { target })?;
        let pc = extension
            .priority(priority)
            .ok_or_else(|| GotoError::NoSuchPriority {
                context: self.context_name(ctx).to_owned(),
                exten: exten.to_owned(),
                priority: priority.to_owned(),
            })?;
        Ok(Jump {
            channel_ctx,
            ctx,
            ext,
            pc,
            exten: Some(exten.to_owned()),
        })
    }

    pub fn context_name(&self, ctx: usize) -> &str {
        self.contexts.get(ctx).map_or("", |c| c.name.as_str())
    }
}
