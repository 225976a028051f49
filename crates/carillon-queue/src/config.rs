//! `queues.toml`: the schema of the queue configuration and its loader.
//!
//! Owns [`QueuesConfig`] (every queue by name, in file order) and
//! [`QueuesConfig::load`], which reads the file through
//! `carillon-tomlconf`: every problem is reported as `file:line:
//! dotted.key: message`, all of them at once, and an unknown key is a
//! problem (a typo never passes silently). It does not own what the
//! settings do at run time ([`crate::Engine`]), nor cross-file checks
//! (a `moh_class` or exit context named here is checked against the other
//! files by the binary).
//!
//! ```toml
//! [queue.sales]
//! strategy = "rrmemory"       # ringall leastrecent fewestcalls random rrmemory rrordered linear wrandom
//! timeout = 15                # seconds each offer rings
//! retry = 5                   # seconds to wait after every member was tried
//! wrapuptime = 10             # seconds after each answered call
//! maxlen = 0                  # most waiting callers (0 = no limit)
//! joinempty = "yes"           # "no", "yes", "loose", "strict" or a list of conditions
//! leaveempty = "no"
//! ringinuse = false
//! autopause = 3               # pause a member after N unanswered offers in a row (0 = off)
//! caller_timeout = 300        # seconds a caller waits at most (0 = no limit)
//! service_level = 20          # seconds: answered within it counts for the service level
//! moh_class = "default"
//! announce_frequency = 60     # position / hold time announcements (0 = off)
//! announce_position = true
//! announce_holdtime = true
//! periodic_announce = ["queue-periodic-announce"]
//! periodic_announce_frequency = 30
//! require = { english = 3 }   # skills every caller of this queue needs (name = minimum level)
//! exit = [{ digit = "1", context = "callback", extension = "s" }]
//!
//! [[queue.sales.member]]
//! extension = "201"           # or interface = "PJSIP/201"
//! penalty = 0
//! skills = { english = 5 }
//! name = "Alice"
//!
//! [[queue.sales.rule]]        # app_queue's queuerules: applied once the caller waited `after` s
//! after = 30
//! max_penalty = "+1"          # absolute (2) or relative ("+1", "-1")
//! min_penalty = 0
//! skill_level = "-1"          # lower every required skill level (relative) or set it (absolute)
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use carillon_tomlconf::{ConfigProblem, Fields, Kind, Loader, Node};

/// How a queue picks the member(s) to offer a caller to (app_queue's
/// `strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Every free member of the best penalty tier rings at once.
    RingAll,
    /// The member whose last queue call ended longest ago (never = first).
    LeastRecent,
    /// The member who completed the fewest queue calls.
    FewestCalls,
    /// A random member of the best penalty tier.
    Random,
    /// Round robin, starting after the member offered last.
    RrMemory,
    /// Round robin in the file's member order, starting after the member
    /// offered last.
    RrOrdered,
    /// The members in file order, every caller starting at the first.
    Linear,
    /// Random, weighted by penalty (a higher penalty is a wider random
    /// range, not a lower tier).
    WeightedRandom,
}

impl Strategy {
    pub const NAMES: [&'static str; 8] = [
        "ringall",
        "leastrecent",
        "fewestcalls",
        "random",
        "rrmemory",
        "rrordered",
        "linear",
        "wrandom",
    ];

    pub fn parse(name: &str) -> Option<Strategy> {
        Some(match name {
            "ringall" => Strategy::RingAll,
            "leastrecent" => Strategy::LeastRecent,
            "fewestcalls" => Strategy::FewestCalls,
            "random" => Strategy::Random,
            "rrmemory" => Strategy::RrMemory,
            "rrordered" => Strategy::RrOrdered,
            "linear" => Strategy::Linear,
            "wrandom" => Strategy::WeightedRandom,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Strategy::RingAll => "ringall",
            Strategy::LeastRecent => "leastrecent",
            Strategy::FewestCalls => "fewestcalls",
            Strategy::Random => "random",
            Strategy::RrMemory => "rrmemory",
            Strategy::RrOrdered => "rrordered",
            Strategy::Linear => "linear",
            Strategy::WeightedRandom => "wrandom",
        }
    }
}

/// Member conditions of app_queue's `joinempty`/`leaveempty`: a member in
/// any of the listed conditions does not count as one who could answer.
/// When no member could, the caller may not join (or must leave).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EmptyRule {
    /// Outside the caller's current penalty range (or lacking a skill).
    pub penalty: bool,
    pub paused: bool,
    pub inuse: bool,
    pub ringing: bool,
    /// Not registered.
    pub unavailable: bool,
    /// A member the switch cannot reach at all (app_queue's
    /// `invalid`/`unknown`; here: not registered either).
    pub invalid: bool,
    pub wrapup: bool,
}

impl EmptyRule {
    pub const CONDITIONS: [&'static str; 8] = [
        "penalty",
        "paused",
        "inuse",
        "ringing",
        "unavailable",
        "invalid",
        "unknown",
        "wrapup",
    ];

    /// Whether any condition is set (`no` = none: always join / stay).
    pub fn is_active(&self) -> bool {
        *self != EmptyRule::default()
    }

    /// app_queue's keywords: `no`, `yes` (penalty, paused), `loose`
    /// (penalty, invalid), `strict` (penalty, paused, invalid, unavailable).
    pub fn keyword(word: &str) -> Option<EmptyRule> {
        let none = EmptyRule::default();
        Some(match word {
            "no" => none,
            "yes" => EmptyRule {
                penalty: true,
                paused: true,
                ..none
            },
            "loose" => EmptyRule {
                penalty: true,
                invalid: true,
                ..none
            },
            "strict" => EmptyRule {
                penalty: true,
                paused: true,
                invalid: true,
                unavailable: true,
                ..none
            },
            _ => return None,
        })
    }

    fn set(&mut self, condition: &str) -> bool {
        match condition {
            "penalty" => self.penalty = true,
            "paused" => self.paused = true,
            "inuse" => self.inuse = true,
            "ringing" => self.ringing = true,
            "unavailable" => self.unavailable = true,
            "invalid" | "unknown" => self.invalid = true,
            "wrapup" => self.wrapup = true,
            _ => return false,
        }
        true
    }
}

/// A change of a penalty or a skill level: set to a value, or move by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjust {
    Set(u32),
    By(i32),
}

impl Adjust {
    pub fn apply(self, value: u32) -> u32 {
        match self {
            Adjust::Set(v) => v,
            Adjust::By(d) => value.saturating_add_signed(d),
        }
    }
}

/// One of app_queue's queuerules: once a caller has waited `after`, its
/// penalty range and required skill levels change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PenaltyRule {
    pub after: Duration,
    pub max_penalty: Option<Adjust>,
    pub min_penalty: Option<Adjust>,
    pub skill_level: Option<Adjust>,
}

/// A member given in the file (a static member: it cannot log out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticMember {
    /// `PJSIP/201` (an `extension = "201"` is written so).
    pub interface: String,
    pub name: Option<String>,
    pub penalty: u32,
    /// Skill name → level.
    pub skills: BTreeMap<String, u32>,
}

/// A digit that takes a waiting caller out of the queue to an extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitDigit {
    pub digit: char,
    pub context: String,
    pub extension: String,
}

/// One queue of `queues.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    pub name: String,
    pub strategy: Strategy,
    /// How long one offer rings before it is withdrawn.
    pub timeout: Duration,
    /// Wait after every member was tried once, before trying again.
    pub retry: Duration,
    pub wrapuptime: Duration,
    /// Most waiting callers; 0 = no limit.
    pub maxlen: usize,
    pub joinempty: EmptyRule,
    pub leaveempty: EmptyRule,
    /// Offer to members the switch reports busy in a call outside this
    /// engine (a member ringing or in a queue call is never offered).
    pub ringinuse: bool,
    /// Pause a member after this many unanswered offers in a row; 0 = off.
    pub autopause: u32,
    pub caller_timeout: Option<Duration>,
    pub service_level: Duration,
    pub moh_class: Option<String>,
    pub announce_frequency: Option<Duration>,
    pub announce_position: bool,
    pub announce_holdtime: bool,
    pub periodic_announce: Vec<String>,
    pub periodic_announce_frequency: Option<Duration>,
    /// Skills every caller needs (name → minimum level).
    pub require: BTreeMap<String, u32>,
    pub exits: Vec<ExitDigit>,
    pub members: Vec<StaticMember>,
    /// Sorted by `after`.
    pub rules: Vec<PenaltyRule>,
}

impl QueueConfig {
    /// A queue with app_queue's defaults and no members.
    pub fn new(name: &str, strategy: Strategy) -> QueueConfig {
        QueueConfig {
            name: name.to_owned(),
            strategy,
            timeout: Duration::from_secs(15),
            retry: Duration::from_secs(5),
            wrapuptime: Duration::ZERO,
            maxlen: 0,
            joinempty: EmptyRule::default(),
            leaveempty: EmptyRule::default(),
            ringinuse: false,
            autopause: 0,
            caller_timeout: None,
            service_level: Duration::from_secs(20),
            moh_class: None,
            announce_frequency: None,
            announce_position: true,
            announce_holdtime: true,
            periodic_announce: Vec::new(),
            periodic_announce_frequency: None,
            require: BTreeMap::new(),
            exits: Vec::new(),
            members: Vec::new(),
            rules: Vec::new(),
        }
    }
}

/// Every queue of `queues.toml`, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueuesConfig {
    pub queues: Vec<QueueConfig>,
}

const QUEUE_KEYS: &[&str] = &[
    "strategy",
    "timeout",
    "retry",
    "wrapuptime",
    "maxlen",
    "joinempty",
    "leaveempty",
    "ringinuse",
    "autopause",
    "caller_timeout",
    "service_level",
    "moh_class",
    "announce_frequency",
    "announce_position",
    "announce_holdtime",
    "periodic_announce",
    "periodic_announce_frequency",
    "require",
    "exit",
    "member",
    "rule",
];
const MEMBER_KEYS: &[&str] = &["interface", "extension", "name", "penalty", "skills"];
const RULE_KEYS: &[&str] = &["after", "max_penalty", "min_penalty", "skill_level"];
const EXIT_KEYS: &[&str] = &["digit", "context", "extension"];
/// Longest timer a setting may ask for (a day).
const MAX_SECONDS: f64 = 86_400.0;
const MAX_PENALTY: i64 = 1_000;
const MAX_LEVEL: i64 = 1_000;

impl QueuesConfig {
    /// Reads `queues.toml` (`file_name` labels the problems).
    pub fn load(file_name: &str, text: &str) -> Result<QueuesConfig, Vec<ConfigProblem>> {
        carillon_tomlconf::load(file_name, text, |lo, root| {
            let mut top = lo.fields("", root)?;
            let mut queues = Vec::new();
            if let Some((path, node)) = top.get("queue") {
                if let Some(mut table) = lo.fields(&path, node) {
                    let entries: Vec<_> = table.entries().collect();
                    for (qpath, name, qnode) in entries {
                        if !valid_name(name) {
                            lo.report(
                                qnode.line,
                                &qpath,
                                "a queue name is letters, digits, '-' and '_'",
                            );
                        }
                        if let Some(q) = read_queue(lo, &qpath, name, qnode) {
                            queues.push(q);
                        }
                    }
                }
            }
            lo.finish(top, &["queue"], "queues.toml");
            Some(QueuesConfig { queues })
        })
    }

    pub fn queue(&self, name: &str) -> Option<&QueueConfig> {
        self.queues.iter().find(|q| q.name == name)
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `Some(duration)`, or `None` for 0 when zero means "off".
fn optional_seconds(lo: &mut Loader<'_>, f: &mut Fields<'_>, key: &str) -> Option<Duration> {
    let (p, n) = f.get(key)?;
    lo.seconds(&p, n, true, MAX_SECONDS)
        .filter(|d| !d.is_zero())
}

fn seconds_or(
    lo: &mut Loader<'_>,
    f: &mut Fields<'_>,
    key: &str,
    allow_zero: bool,
    default: Duration,
) -> Duration {
    match f.get(key) {
        Some((p, n)) => lo
            .seconds(&p, n, allow_zero, MAX_SECONDS)
            .unwrap_or(default),
        None => default,
    }
}

fn bool_or(lo: &mut Loader<'_>, f: &mut Fields<'_>, key: &str, default: bool) -> bool {
    match f.get(key) {
        Some((p, n)) => lo.boolean(&p, n).unwrap_or(default),
        None => default,
    }
}

fn read_queue(lo: &mut Loader<'_>, path: &str, name: &str, node: &Node) -> Option<QueueConfig> {
    let mut f = lo.fields(path, node)?;
    let owner = format!("queue '{name}'");
    // A bad strategy is reported and the rest of the queue still read,
    // so every problem shows in one run.
    let mut ok = true;
    let strategy = match f.get("strategy") {
        Some((p, n)) => match lo.string(&p, n) {
            Some(s) => Strategy::parse(s).unwrap_or_else(|| {
                lo.report(
                    n.line,
                    &p,
                    format!(
                        "unknown strategy '{s}' (expected one of: {})",
                        Strategy::NAMES.join(", ")
                    ),
                );
                ok = false;
                Strategy::RingAll
            }),
            None => {
                ok = false;
                Strategy::RingAll
            }
        },
        None => Strategy::RingAll,
    };
    let mut q = QueueConfig::new(name, strategy);
    q.timeout = seconds_or(lo, &mut f, "timeout", false, q.timeout);
    q.retry = seconds_or(lo, &mut f, "retry", true, q.retry);
    q.wrapuptime = seconds_or(lo, &mut f, "wrapuptime", true, q.wrapuptime);
    if let Some((p, n)) = f.get("maxlen") {
        q.maxlen = lo
            .integer(&p, n, 0, 1_000_000)
            .and_then(|v| usize::try_from(v).ok())
            .unwrap_or(0);
    }
    if let Some((p, n)) = f.get("joinempty") {
        q.joinempty = empty_rule(lo, &p, n).unwrap_or_default();
    }
    if let Some((p, n)) = f.get("leaveempty") {
        q.leaveempty = empty_rule(lo, &p, n).unwrap_or_default();
    }
    q.ringinuse = bool_or(lo, &mut f, "ringinuse", false);
    if let Some((p, n)) = f.get("autopause") {
        q.autopause = lo
            .integer(&p, n, 0, 1_000)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0);
    }
    q.caller_timeout = optional_seconds(lo, &mut f, "caller_timeout");
    q.service_level = seconds_or(lo, &mut f, "service_level", false, q.service_level);
    if let Some((p, n)) = f.get("moh_class") {
        q.moh_class = lo.nonempty(&p, n);
    }
    q.announce_frequency = optional_seconds(lo, &mut f, "announce_frequency");
    q.announce_position = bool_or(lo, &mut f, "announce_position", true);
    q.announce_holdtime = bool_or(lo, &mut f, "announce_holdtime", true);
    if let Some((p, n)) = f.get("periodic_announce") {
        for (ip, line, s) in lo.strings(&p, n) {
            if s.trim().is_empty() {
                lo.report(line, &ip, "must not be empty");
            } else {
                q.periodic_announce.push(s.to_owned());
            }
        }
    }
    q.periodic_announce_frequency = optional_seconds(lo, &mut f, "periodic_announce_frequency");
    if q.periodic_announce_frequency.is_some() && q.periodic_announce.is_empty() {
        lo.report(
            f.line,
            &carillon_tomlconf::join(path, "periodic_announce_frequency"),
            "needs 'periodic_announce' (the prompts to play)",
        );
    }
    if let Some((p, n)) = f.get("require") {
        q.require = skills(lo, &p, n);
    }
    if let Some((p, n)) = f.get("exit") {
        for (i, item) in n.items().iter().enumerate() {
            let ip = format!("{p}[{i}]");
            if let Some(e) = read_exit(lo, &ip, item) {
                if q.exits.iter().any(|x| x.digit == e.digit) {
                    lo.report(
                        item.line,
                        &ip,
                        format!("digit '{}' is given twice", e.digit),
                    );
                } else {
                    q.exits.push(e);
                }
            }
        }
        if !matches!(n.kind, Kind::Array(_)) {
            lo.expected(&p, n, "an array of tables");
        }
    }
    if let Some((p, n)) = f.get("member") {
        if !matches!(n.kind, Kind::Array(_)) {
            lo.expected(&p, n, "an array of tables ([[...member]])");
        }
        for (i, item) in n.items().iter().enumerate() {
            let ip = format!("{p}[{i}]");
            if let Some(m) = read_member(lo, &ip, item) {
                if q.members.iter().any(|x| x.interface == m.interface) {
                    lo.report(
                        item.line,
                        &ip,
                        format!("member {} is given twice", m.interface),
                    );
                } else {
                    q.members.push(m);
                }
            }
        }
    }
    if let Some((p, n)) = f.get("rule") {
        if !matches!(n.kind, Kind::Array(_)) {
            lo.expected(&p, n, "an array of tables ([[...rule]])");
        }
        for (i, item) in n.items().iter().enumerate() {
            let ip = format!("{p}[{i}]");
            if let Some(r) = read_rule(lo, &ip, item) {
                q.rules.push(r);
            }
        }
        q.rules.sort_by_key(|r| r.after);
    }
    lo.finish(f, QUEUE_KEYS, &owner);
    ok.then_some(q)
}

fn empty_rule(lo: &mut Loader<'_>, path: &str, node: &Node) -> Option<EmptyRule> {
    let bad = |lo: &mut Loader<'_>, line, path: &str, word: &str| {
        lo.report(
            line,
            path,
            format!(
                "unknown condition '{word}' (expected no, yes, loose, strict or a list of: {})",
                EmptyRule::CONDITIONS.join(", ")
            ),
        );
    };
    match &node.kind {
        Kind::Bool(b) => Some(if *b {
            EmptyRule::keyword("yes")?
        } else {
            EmptyRule::default()
        }),
        Kind::Str(word) => {
            let rule = EmptyRule::keyword(word).or_else(|| {
                let mut r = EmptyRule::default();
                r.set(word).then_some(r)
            });
            if rule.is_none() {
                bad(lo, node.line, path, word);
            }
            rule
        }
        Kind::Array(_) => {
            let mut rule = EmptyRule::default();
            let mut ok = true;
            for (ip, line, word) in lo.strings(path, node) {
                if !rule.set(word) {
                    bad(lo, line, &ip, word);
                    ok = false;
                }
            }
            ok.then_some(rule)
        }
        _ => {
            lo.expected(
                path,
                node,
                "\"no\", \"yes\", \"loose\", \"strict\" or a list",
            );
            None
        }
    }
}

fn skills(lo: &mut Loader<'_>, path: &str, node: &Node) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    let Some(mut f) = lo.fields(path, node) else {
        return out;
    };
    let entries: Vec<_> = f.entries().collect();
    for (p, key, n) in entries {
        if let Some(level) = lo.integer(&p, n, 0, MAX_LEVEL) {
            out.insert(key.to_owned(), u32::try_from(level).unwrap_or(0));
        }
    }
    out
}

fn read_member(lo: &mut Loader<'_>, path: &str, node: &Node) -> Option<StaticMember> {
    let mut f = lo.fields(path, node)?;
    let interface = match (f.get("interface"), f.get("extension")) {
        (Some((p, n)), None) => {
            let s = lo.nonempty(&p, n)?;
            if !s.contains('/') {
                lo.report(
                    n.line,
                    &p,
                    format!("an interface is TECH/resource, e.g. PJSIP/{s}"),
                );
                return None;
            }
            Some(s)
        }
        (None, Some((p, n))) => lo.nonempty(&p, n).map(|e| format!("PJSIP/{e}")),
        (Some(_), Some((p, n))) => {
            lo.report(n.line, &p, "give 'interface' or 'extension', not both");
            None
        }
        (None, None) => {
            lo.report(
                f.line,
                &carillon_tomlconf::join(path, "extension"),
                "a member needs 'extension' or 'interface'",
            );
            None
        }
    };
    let name = f.get("name").and_then(|(p, n)| lo.nonempty(&p, n));
    let penalty = match f.get("penalty") {
        Some((p, n)) => u32::try_from(lo.integer(&p, n, 0, MAX_PENALTY)?).ok()?,
        None => 0,
    };
    let skills = f
        .get("skills")
        .map(|(p, n)| skills(lo, &p, n))
        .unwrap_or_default();
    lo.finish(f, MEMBER_KEYS, "a member");
    Some(StaticMember {
        interface: interface?,
        name,
        penalty,
        skills,
    })
}

/// `5` (set) or `"+1"` / `"-1"` (relative).
fn adjust(lo: &mut Loader<'_>, path: &str, node: &Node, max: i64) -> Option<Adjust> {
    match &node.kind {
        Kind::Int(_) => lo
            .integer(path, node, 0, max)
            .and_then(|v| u32::try_from(v).ok())
            .map(Adjust::Set),
        Kind::Str(s) => {
            let signed = s.starts_with('+') || s.starts_with('-');
            match s.parse::<i32>() {
                Ok(d) if signed && i64::from(d).abs() <= max => Some(Adjust::By(d)),
                _ => {
                    lo.report(
                        node.line,
                        path,
                        format!("'{s}' is not a change like \"+1\" or \"-2\""),
                    );
                    None
                }
            }
        }
        _ => {
            lo.expected(path, node, "a number or a change like \"+1\"");
            None
        }
    }
}

fn read_rule(lo: &mut Loader<'_>, path: &str, node: &Node) -> Option<PenaltyRule> {
    let mut f = lo.fields(path, node)?;
    let after = lo
        .required(&mut f, "after", "a rule")
        .and_then(|(p, n)| lo.seconds(&p, n, true, MAX_SECONDS));
    let max_penalty = f
        .get("max_penalty")
        .and_then(|(p, n)| adjust(lo, &p, n, MAX_PENALTY));
    let min_penalty = f
        .get("min_penalty")
        .and_then(|(p, n)| adjust(lo, &p, n, MAX_PENALTY));
    let skill_level = f
        .get("skill_level")
        .and_then(|(p, n)| adjust(lo, &p, n, MAX_LEVEL));
    if !(f.has("max_penalty") || f.has("min_penalty") || f.has("skill_level")) {
        lo.report(
            f.line,
            path,
            "a rule changes at least one of max_penalty, min_penalty, skill_level",
        );
    }
    lo.finish(f, RULE_KEYS, "a rule");
    Some(PenaltyRule {
        after: after?,
        max_penalty,
        min_penalty,
        skill_level,
    })
}

fn read_exit(lo: &mut Loader<'_>, path: &str, node: &Node) -> Option<ExitDigit> {
    let mut f = lo.fields(path, node)?;
    let digit = lo.required(&mut f, "digit", "an exit").and_then(|(p, n)| {
        let s = lo.string(&p, n)?;
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#' => Some(c),
            _ => {
                lo.report(
                    n.line,
                    &p,
                    format!("'{s}' is not one DTMF digit (0-9, * or #)"),
                );
                None
            }
        }
    });
    let context = lo
        .required(&mut f, "context", "an exit")
        .and_then(|(p, n)| lo.nonempty(&p, n));
    let extension = lo
        .required(&mut f, "extension", "an exit")
        .and_then(|(p, n)| lo.nonempty(&p, n));
    lo.finish(f, EXIT_KEYS, "an exit");
    Some(ExitDigit {
        digit: digit?,
        context: context?,
        extension: extension?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        QueuesConfig::load("queues.toml", text)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const FULL: &str = r#"
[queue.sales]
strategy = "rrmemory"
timeout = 12
retry = 3
wrapuptime = 10
maxlen = 5
joinempty = ["paused", "unavailable"]
leaveempty = "strict"
ringinuse = true
autopause = 3
caller_timeout = 300
service_level = 30
moh_class = "default"
announce_frequency = 60
announce_position = false
announce_holdtime = true
periodic_announce = ["queue-periodic-announce", "thank-you"]
periodic_announce_frequency = 45
require = { urdu = 3 }
exit = [{ digit = "1", context = "callback", extension = "s" }]

[[queue.sales.member]]
extension = "201"
penalty = 1
skills = { urdu = 5, english = 2 }
name = "Alice"

[[queue.sales.member]]
interface = "PJSIP/202"

[[queue.sales.rule]]
after = 60
min_penalty = 1
skill_level = 2

[[queue.sales.rule]]
after = 30
max_penalty = "+1"
skill_level = "-1"

[queue.support]
"#;

    #[test]
    fn every_key_is_read_with_its_value() {
        let c = QueuesConfig::load("queues.toml", FULL).unwrap();
        assert_eq!(c.queues.len(), 2);
        let q = c.queue("sales").unwrap();
        assert_eq!(q.strategy, Strategy::RrMemory);
        assert_eq!(q.timeout, Duration::from_secs(12));
        assert_eq!(q.retry, Duration::from_secs(3));
        assert_eq!(q.wrapuptime, Duration::from_secs(10));
        assert_eq!(q.maxlen, 5);
        assert!(q.joinempty.paused && q.joinempty.unavailable && !q.joinempty.penalty);
        assert_eq!(q.leaveempty, EmptyRule::keyword("strict").unwrap());
        assert!(q.ringinuse);
        assert_eq!(q.autopause, 3);
        assert_eq!(q.caller_timeout, Some(Duration::from_secs(300)));
        assert_eq!(q.service_level, Duration::from_secs(30));
        assert_eq!(q.moh_class.as_deref(), Some("default"));
        assert_eq!(q.announce_frequency, Some(Duration::from_secs(60)));
        assert!(!q.announce_position && q.announce_holdtime);
        assert_eq!(q.periodic_announce.len(), 2);
        assert_eq!(q.periodic_announce_frequency, Some(Duration::from_secs(45)));
        assert_eq!(q.require.get("urdu"), Some(&3));
        assert_eq!(
            q.exits,
            [ExitDigit {
                digit: '1',
                context: "callback".into(),
                extension: "s".into()
            }]
        );
        assert_eq!(q.members[0].interface, "PJSIP/201");
        assert_eq!(q.members[0].penalty, 1);
        assert_eq!(q.members[0].skills.get("urdu"), Some(&5));
        assert_eq!(q.members[0].name.as_deref(), Some("Alice"));
        assert_eq!(q.members[1].interface, "PJSIP/202");
        // Rules come sorted by their time.
        assert_eq!(q.rules[0].after, Duration::from_secs(30));
        assert_eq!(q.rules[0].max_penalty, Some(Adjust::By(1)));
        assert_eq!(q.rules[0].skill_level, Some(Adjust::By(-1)));
        assert_eq!(q.rules[1].min_penalty, Some(Adjust::Set(1)));
        // Defaults: ringall, 15 s offers, ringinuse off, nothing announced.
        let s = c.queue("support").unwrap();
        assert_eq!(s.strategy, Strategy::RingAll);
        assert_eq!(s.timeout, Duration::from_secs(15));
        assert!(!s.ringinuse && s.caller_timeout.is_none() && s.announce_frequency.is_none());
    }

    #[test]
    fn mistakes_are_reported_with_file_line_and_key() {
        let text = r#"[queue.sales]
strategy = "roundrobin"

[queue.support]
timeout = 0
joinempty = ["paused", "asleep"]
colour = "blue"
exit = [{ digit = "12", context = "cb", extension = "s" }]

[[queue.support.member]]
extension = "201"
interface = "PJSIP/201"

[[queue.support.member]]
interface = "201"

[[queue.support.rule]]
after = 10
max_penalty = "twice"
"#;
        assert_eq!(
            problems(text),
            [
                "queues.toml:2: queue.sales.strategy: unknown strategy 'roundrobin' (expected one of: ringall, leastrecent, fewestcalls, random, rrmemory, rrordered, linear, wrandom)",
                "queues.toml:5: queue.support.timeout: 0 seconds is out of range (more than 0 to 86400)",
                "queues.toml:6: queue.support.joinempty[1]: unknown condition 'asleep' (expected no, yes, loose, strict or a list of: penalty, paused, inuse, ringing, unavailable, invalid, unknown, wrapup)",
                "queues.toml:7: queue.support.colour: unknown key 'colour' for queue 'support' (expected one of: strategy, timeout, retry, wrapuptime, maxlen, joinempty, leaveempty, ringinuse, autopause, caller_timeout, service_level, moh_class, announce_frequency, announce_position, announce_holdtime, periodic_announce, periodic_announce_frequency, require, exit, member, rule)",
                "queues.toml:8: queue.support.exit[0].digit: '12' is not one DTMF digit (0-9, * or #)",
                "queues.toml:11: queue.support.member[0].extension: give 'interface' or 'extension', not both",
                "queues.toml:15: queue.support.member[1].interface: an interface is TECH/resource, e.g. PJSIP/201",
                "queues.toml:19: queue.support.rule[0].max_penalty: 'twice' is not a change like \"+1\" or \"-2\"",
            ]
        );
    }

    #[test]
    fn an_unknown_top_level_key_and_a_bad_queue_name_are_refused() {
        let got = problems("queues = 1\n[queue.\"a b\"]\n");
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with("queues.toml:1: queues: unknown key"));
        assert!(got[1].contains("a queue name is letters"));
    }

    #[test]
    fn duplicate_members_and_a_frequency_without_prompts_are_refused() {
        let got = problems(
            "[queue.q]\nperiodic_announce_frequency = 30\n[[queue.q.member]]\nextension = \"1\"\n[[queue.q.member]]\ninterface = \"PJSIP/1\"\n",
        );
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].contains("needs 'periodic_announce'"));
        assert!(got[1].contains("member PJSIP/1 is given twice"));
    }
}

#[cfg(test)]
mod example {
    use super::*;

    #[test]
    fn the_documented_example_loads() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/queues.example.toml"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let c =
            QueuesConfig::load("queues.example.toml", &text).unwrap_or_else(|p| panic!("{p:?}"));
        let q = c.queue("english").unwrap();
        assert_eq!(q.strategy, Strategy::Random);
        assert_eq!(q.members.len(), 2);
        assert_eq!(q.rules.len(), 2);
    }
}
