//! Carillon's dialplan: a TOML dialplan schema validated into a
//! [`Dialplan`], Asterisk-style extension matching, and a sans-IO per-call
//! interpreter ([`Execution`]).
//!
//! This crate owns *what a call does* once it has entered a context with a
//! dialled extension. It knows nothing of SIP, sockets or clocks: the host
//! (the B2BUA) turns [`Command`]s into signalling and media commands and
//! feeds results back. It depends on no other Carillon crate but the media
//! protocol's vocabulary (`carillon-mediactl`, for tone descriptions) and
//! the voicemail menus (`carillon-voicemail`, attached with
//! [`Dialplan::with_voicemail`]).
//!
//! # Schema
//!
//! One TOML file. An Asterisk `extensions.conf` maps onto it directly:
//! `[context]` becomes `[context.NAME]`, `exten => 100,1,Dial(...)` and its
//! `n` priorities become one `[[context.NAME.extension]]` with `match` and an
//! ordered `steps` list of inline tables, each naming an `app` and its
//! arguments as keys.
//!
//! ```toml
//! max_steps = 1000                   # optional: steps per call before it is stopped (Goto loops)
//!
//! [globals]                          # optional: variables every call starts with
//! OFFICE_HOURS = "09:00-18:00"
//!
//! [numbering.pakistan]               # optional named E.164 rule sets (see below)
//! rules = [ { prefix = "03", length = 11, strip = 1, add = "+92" } ]
//!
//! [context.internal]
//! include = ["features"]             # optional, like `include =>`: searched after own extensions
//! allow_trunks = ["twilio"]          # trunks/gateways this context may dial (default: none)
//! numbering = "pakistan"             # optional: normalise trunk/gateway numbers dialled from here
//!
//! [[context.internal.extension]]
//! match = "100"                      # exact, or a pattern starting with "_"
//! steps = [
//!   { app = "Dial", targets = ["user/100"], timeout = 30 },
//!   { app = "Hangup" },
//! ]
//!
//! [[context.internal.extension]]
//! match = "_9X."
//! steps = [
//!   { app = "Set", var = "CALLERID(num)", value = "+19863334949" },
//!   { app = "Dial", targets = ["trunk/twilio/+${EXTEN:1}"], timeout = 60 },
//!   { app = "GotoIf", condition = "${DIALSTATUS} = BUSY", then = "busy" },
//!   { app = "Hangup" },                           # not busy: hang up (cause from DIALSTATUS)
//!   { app = "Hangup", cause = 17, label = "busy" },
//! ]
//! ```
//!
//! Every step may carry `label = "name"` (a Goto target within its
//! extension). Steps are numbered from 1 like Asterisk priorities. Literal
//! `Goto`/`GotoIf` targets are checked at load (context, extension and
//! priority or label must exist, resolved from the context the step is
//! written in); targets with variables are checked when taken.
//!
//! | app | keys | does |
//! |---|---|---|
//! | `Answer` | | answers the call |
//! | `Dial` | `targets` (array), `timeout` (s, optional), `continue` (bool) | rings all targets in parallel; `user/NAME`, `trunk/NAME/NUMBER`, `gateway/NAME/NUMBER`; sets `DIALSTATUS` (ANSWER, NOANSWER, BUSY, CONGESTION, CHANUNAVAIL, CANCEL) and `HANGUPCAUSE`; `continue = true` goes on after an answered call ends (Asterisk `g`) |
//! | `Goto` | `target` | `priority`, `exten,priority` or `context,exten,priority`; priority is a number or a label |
//! | `GotoIf` | `condition`, `then`, `else` | jumps to `then` when true, `else` when false; a missing branch continues |
//! | `Set` | `var`, `value` | sets a channel variable, `CALLERID(num)`, `CALLERID(name)` or `CHANNEL(language)` (prompt language, default `en`) |
//! | `NoOp` | `text` (optional) | nothing |
//! | `Wait` | `seconds` (integer or fractional) | pauses (the execution's own timer) |
//! | `Hangup` | `cause` (Q.850, optional) | ends the call |
//! | `Playback` | `file` (a prompt or a list), `options` (`skip`, `noanswer`) | answers (unless `noanswer`; `skip`: nothing when unanswered) and plays the prompts; digits do not interrupt |
//! | `Background` | `file`, `options` (`s`/`skip`, `n`/`noanswer`) | like Playback, but the first digit stops it and the digits select an extension (see [`Execution`]'s menus) |
//! | `WaitExten` | `seconds` (default 10) | waits for digits that select an extension; timeout → `t`, no match → `i` (`${INVALID_EXTEN}`); without them the call is hung up |
//! | `Read` | `var`, `file` (optional prompt), `max_digits`, `timeout` (s, default 10, per digit) | collects digits until `#`, `max_digits` or the timeout; sets the variable and `READSTATUS` (OK, TIMEOUT) |
//! | `SayDigits` | `digits` | plays `digits/N` per digit in the channel's language, `digits/star` for `*`, `digits/pound` for `#`; other characters are skipped |
//! | `SayNumber` | `number` | says a number with the language's words ([`sounds::number_prompts`]: en, fr, ar, ur) |
//! | `SayAlpha` | `text` | spells the text in the channel's language ([`sounds::alpha_prompts`]): `letters/x` per letter (either case), `digits/N`, `digits/star`, `digits/pound`; other characters are skipped |
//! | `Record` | `file` (`….wav`), `max_silence`, `max_duration` (s), `options` (`q` no beep, `s` skip, `n` noanswer) | records the caller; `#` ends it; sets `RECORD_STATUS` (DTMF, SILENCE, TIMEOUT, HANGUP, ERROR) |
//! | `Progress` | | 183 with SDP (early media) |
//! | `Ringing` | | 180 |
//! | `Busy`, `Congestion` | `timeout` (s, default 10) | unanswered: hang up with cause 17 / 34 (486 / 503); answered: the busy / congestion tone for `timeout`, then hang up |
//! | `Playtones` | `tone` (`ring`, `busy`, `congestion`, `dial`), `country` (default `${TONEZONE}`, else `pk`) | starts the tone and goes on ([`tones`]: pk, us, uk, ae, sa, fr) |
//! | `StopPlaytones` | | stops it |
//! | `MixMonitor` | `file` (optional, the switch names it after the call's unique id otherwise), `options` (`D`: stereo, caller and callee on separate channels) | records the call in the background |
//! | `StopMixMonitor` | | stops that recording |
//! | `GotoIfTime` | `times` (`09:00-18:00`), `weekdays` (`sun-thu`), `mdays` (`1-15`), `months` (`jan-mar`), `timezone` (IANA, default UTC), `then`, `else` | jumps by the wall clock ([`timecond`]); every part may be a template (`${OFFICE_HOURS}` from `[globals]`) |
//! | `Gosub` | `target` (like Goto) | jumps, remembering where to come back |
//! | `Return` | | back to the step after the last Gosub |
//! | `ExecIf` | `condition`, `then` (an inline step `{ app = …, … }`), `else` (optional) | runs one step conditionally |
//! | `CallbackRequest` | `number`, `alt_number` (templates) | stores a callback request (unique id, caller ID, the numbers, the language) |
//! | `Webhook` | `url`, `vars` (names), `timeout` (s, default 5), `retries` (default 3) | POSTs the variables as a JSON object; never waits |
//! | `Queue` | `queue`, `timeout` | **not available yet** |
//! | `VoiceMail` | `mailbox`, `options` (`u` unavailable greeting, the default; `b` busy) | the greeting (the owner's recorded one, the mailbox's file, or a spoken default), a beep, then records until `#`, silence or the mailbox's limit; a message under a second is discarded, a full mailbox records nothing; sets `VMSTATUS` (SUCCESS, USEREXIT, FAILED) ([`carillon_voicemail`]) |
//! | `VoiceMailMain` | `mailbox` (optional: only the PIN is asked) | the owner's menu: mailbox and PIN (three tries), new and old counts, play/next/previous/repeat/delete/save, greetings and PIN; sets `VMSTATUS` |
//! | `ConfBridge` | `room` (a `[room.N]` of `conferences.toml`) | answers, then the host puts the caller into the room (`Command::ConfBridge`) until it hangs up; when the host reports the application returned (e.g. the room is full) `CONFBRIDGE_RESULT` is set (`FAILED`) and the steps go on |
//!
//! The applications marked **not available yet** are in the schema (their
//! keys are checked) but the switch does not execute them, so a step using
//! one is a load error, `application X is not available yet`, at its
//! `app` line ([`AppName::is_available`]): a dialplan is never accepted
//! when the switch would silently skip some of it.
//!
//! Special extensions, as in Asterisk: `h` runs after the caller hung up
//! (only applications that need no media: Set, NoOp, Goto/GotoIf,
//! CallbackRequest, Webhook, Hangup; the others are skipped), `i` and `t`
//! after an invalid choice and a timeout in a menu.
//!
//! Prompts are named without `.wav` (`goodbye`, `digits/7`) and resolved
//! for the channel's language under the sounds directory
//! ([`Dialplan::load_with_sounds`], [`Sounds`]): `<dir>/<lang>/<name>.wav`,
//! else `<dir>/en/<name>.wav`. A literal name no language has is a load
//! error when the directory was scanned.
//!
//! `[globals]` (`NAME = "value"`) are variables every call starts with;
//! a channel variable of the same name shadows them.
//!
//! Application names are case-insensitive. Unknown applications, unknown
//! keys, wrong types and bad values are load errors.
//!
//! ## Matching
//!
//! Exact extensions first, then patterns from most to least specific (see
//! [`pattern`] for the characters `X Z N [...] . !` and the order), then the
//! included contexts in the order listed. A dialled string no extension
//! matches is a [`RouteError::NoRoute`] at start (answer 404) and an
//! [`Event::NoRoute`] after a `Goto`.
//!
//! ## Variables
//!
//! `${NAME}`, `${NAME:offset}`, `${NAME:offset:length}` with Asterisk's
//! substring rules, in any string argument. Built in: `EXTEN`, `CONTEXT`,
//! `UNIQUEID`, `PRIORITY`, `CALLERID(num)`, `CALLERID(name)`,
//! `CHANNEL(language)`, `DIALSTATUS`, `HANGUPCAUSE`, `READSTATUS`,
//! `RECORD_STATUS`, `INVALID_EXTEN`; any other name is a channel variable set with `Set` (or
//! given in [`CallInfo::variables`]); unset variables expand to nothing.
//! `GotoIf` conditions are described in [`condition`].
//!
//! ## Toll-fraud protection
//!
//! A context can only dial the trunks (and GSM gateways) in its
//! `allow_trunks`. A literal `trunk/NAME/...` target naming another trunk is
//! a load error; a target built from variables is checked when dialled: the
//! call is refused ([`Event::TrunkRefused`], `Hangup` cause 21). The list that
//! applies is the one of the context where the step is written; including a
//! context therefore grants its reach, as in Asterisk. Numbers dialled on
//! trunks are checked to be digits (`+`, `*`, `#` allowed), so a variable
//! cannot smuggle a SIP URI into a target, and `Goto` targets are split at
//! the commas written in the dialplan before variables are expanded, so a
//! dialled `othercontext,900...` cannot jump into another context.
//!
//! ## Numbering
//!
//! `[numbering.NAME]` rule sets normalise numbers to E.164 with prefix and
//! length rules ([`NumberRules`]); a context with `numbering = "NAME"`
//! applies them to trunk and gateway numbers it dials.
//!
//! # Running a call
//!
//! ```
//! use carillon_dialplan::{CallInfo, Command, DialStatus, Dialplan, Event, Execution};
//!
//! let plan = Dialplan::load("dialplan.toml", r#"
//! [context.internal]
//! [[context.internal.extension]]
//! match = "100"
//! steps = [ { app = "Dial", targets = ["user/100"], timeout = 30 } ]
//! "#).map_err(|p| p[0].to_string()).unwrap();
//! let now = std::time::Instant::now();
//! let wall = std::time::SystemTime::UNIX_EPOCH;
//! let mut call = Execution::start(&plan, "internal", "100", CallInfo::default(), now, wall).unwrap();
//! assert!(matches!(call.poll_command(), Some(Command::Dial { .. })));
//! call.handle_dial_result(now, DialStatus::Busy);
//! assert!(matches!(call.poll_command(), Some(Command::Hangup { .. })));
//! assert!(matches!(call.poll_event(), Some(Event::Finished { .. })));
//! ```
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod condition;
mod config;
mod exec;
pub mod numbering;
pub mod pattern;
mod plan;
pub mod sounds;
pub mod template;
pub mod timecond;
pub mod tones;

/// The voicemail vocabulary (`Command::Voicemail`'s [`voicemail::Persist`]).
pub use carillon_voicemail as voicemail;
pub use config::ConfigProblem;
pub use exec::{
    CallInfo, CallerId, Command, DialStatus, DialTarget, Event, ExecError, Execution,
    RecordOutcome, RecordStatus, TargetError,
};
pub use numbering::{NumberRule, NumberRuleError, NumberRules};
pub use pattern::{ExtensionMatch, Pattern, PatternError};
pub use plan::{AppName, Dialplan, GotoError, HangupCause, Route, RouteError, DEFAULT_MAX_STEPS};
pub use sounds::Sounds;
pub use tones::ToneKind;
