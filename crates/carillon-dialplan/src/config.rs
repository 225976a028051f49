//! Loading: TOML text → validated [`Dialplan`], or every problem found.
//!
//! Owns the schema (documented in the crate root), [`ConfigProblem`] and the
//! load-time half of toll-fraud protection (every literal `trunk/NAME` or
//! `gateway/NAME` target must be in its context's `allow_trunks`). The TOML
//! is parsed with `toml_edit`, whose document keeps the byte span of every
//! key and value; the text is converted into a small tree of nodes carrying
//! line numbers, then walked once, collecting problems rather than stopping
//! at the first. Unknown keys are problems too, so typos do not pass
//! silently.

use crate::condition::Condition;
use crate::exec::{is_name, DialTarget};
use crate::numbering::{NumberRule, NumberRules};
use crate::pattern::ExtensionMatch;
use crate::plan::{
    App, AppName, Context, Dialplan, Extension, GotoTarget, HangupCause, PlanData, Step,
    DEFAULT_MAX_STEPS,
};
use crate::sounds::Sounds;
use crate::template::{Template, VarName};
use crate::timecond::TimeSpec;
use crate::tones::{ToneKind, COUNTRIES};
use carillon_tomlconf::{join, Fields, Kind, Loader, Node};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

pub use carillon_tomlconf::ConfigProblem;

/// The largest `max_steps` accepted.
const MAX_STEPS_LIMIT: i64 = 1_000_000;
/// The longest `Wait` or `timeout` accepted, in seconds (one day).
const MAX_SECONDS: f64 = 86_400.0;

/// Dialplan-specific readers on top of the shared loader.
trait PlanLoader {
    fn template(&mut self, path: &str, node: &Node) -> Option<Template>;
    fn goto_target(&mut self, path: &str, node: &Node) -> Option<GotoTarget>;
    fn condition(&mut self, path: &str, node: &Node) -> Option<Condition>;
}

impl PlanLoader for Loader<'_> {
    fn template(&mut self, path: &str, node: &Node) -> Option<Template> {
        let text = self.string(path, node)?;
        match Template::parse(text) {
            Ok(t) => Some(t),
            Err(e) => {
                self.report(node.line, path, e.to_string());
                None
            }
        }
    }

    fn goto_target(&mut self, path: &str, node: &Node) -> Option<GotoTarget> {
        let text = self.string(path, node)?;
        match GotoTarget::parse(text) {
            Ok(t) => Some(t),
            Err(e) => {
                self.report(node.line, path, e.to_string());
                None
            }
        }
    }

    fn condition(&mut self, path: &str, node: &Node) -> Option<Condition> {
        let text = self.string(path, node)?;
        match Condition::parse(text) {
            Ok(c) => Some(c),
            Err(e) => {
                self.report(node.line, path, e.to_string());
                None
            }
        }
    }
}

/// A literal Goto target to check once every context is known.
struct GotoCheck {
    path: String,
    line: usize,
    ctx: usize,
    ext: usize,
    target: Vec<String>,
}

/// What a context's steps need to know while being read.
struct ContextScope<'s> {
    name: &'s str,
    allow_trunks: &'s BTreeSet<String>,
    sounds: &'s Sounds,
    globals: &'s BTreeMap<String, String>,
}

/// The sounds directory assumed when none is given: `sounds` (relative to
/// the host's working directory), unscanned.
const DEFAULT_SOUNDS_DIR: &str = "sounds";

impl Dialplan {
    /// Parses and validates a dialplan. `file_name` only labels problems.
    /// On failure every problem found is returned, sorted by line. Prompts
    /// resolve under `sounds/` and are not checked; see
    /// [`Dialplan::load_with_sounds`].
    pub fn load(file_name: &str, text: &str) -> Result<Dialplan, Vec<ConfigProblem>> {
        Dialplan::load_with_sounds(file_name, text, Sounds::unscanned(DEFAULT_SOUNDS_DIR))
    }

    /// Like [`Dialplan::load`], with the sounds prompts are played from.
    /// When `sounds` was scanned ([`Sounds::scan`]), a literal prompt name
    /// that no language has is a problem at its step.
    pub fn load_with_sounds(
        file_name: &str,
        text: &str,
        sounds: Sounds,
    ) -> Result<Dialplan, Vec<ConfigProblem>> {
        carillon_tomlconf::load(file_name, text, |lo, root| load_root(lo, root, sounds))
    }
}

fn load_globals(lo: &mut Loader<'_>, path: &str, node: &Node) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(mut fields) = lo.fields(path, node) else {
        return out;
    };
    for (item_path, name, item) in fields.entries() {
        let value = match &item.kind {
            Kind::Str(text) => text.clone(),
            Kind::Int(i) => i.to_string(),
            _ => {
                lo.expected(&item_path, item, "a string or an integer");
                continue;
            }
        };
        match VarName::parse(name) {
            Ok(VarName::Channel(_)) => {
                out.insert(name.to_owned(), value);
            }
            _ => lo.report(
                item.line,
                &item_path,
                format!("bad global variable name '{name}' (letters, digits and '_' only, not a built-in)"),
            ),
        }
    }
    out
}

fn load_root(lo: &mut Loader<'_>, root: &Node, sounds: Sounds) -> Option<Dialplan> {
    let mut fields = lo.fields("", root)?;
    let globals = match fields.get("globals") {
        Some((path, node)) => load_globals(lo, &path, node),
        None => BTreeMap::new(),
    };
    let max_steps = match fields.get("max_steps") {
        Some((path, node)) => lo
            .integer(&path, node, 1, MAX_STEPS_LIMIT)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(DEFAULT_MAX_STEPS),
        None => DEFAULT_MAX_STEPS,
    };
    let numbering = match fields.get("numbering") {
        Some((path, node)) => load_numbering(lo, &path, node),
        None => BTreeMap::new(),
    };
    let contexts_node = fields.get("context");
    lo.finish(
        fields,
        &["max_steps", "globals", "numbering", "context"],
        "the dialplan",
    );
    let Some((path, node)) = contexts_node else {
        lo.report(
            1,
            "context",
            "no [context.NAME] table: the dialplan is empty",
        );
        return None;
    };
    let mut context_fields = lo.fields(&path, node)?;
    let declared: Vec<(String, &str, &Node)> = context_fields.entries().collect();
    let by_name: BTreeMap<String, usize> = declared
        .iter()
        .enumerate()
        .map(|(i, (_, name, _))| ((*name).to_owned(), i))
        .collect();
    let mut contexts = Vec::with_capacity(declared.len());
    let mut gotos = Vec::new();
    for (index, (path, name, node)) in declared.iter().enumerate() {
        if !is_name(name) {
            lo.report(
                node.line,
                path,
                format!("bad context name '{name}' (letters, digits, '_', '-', '.', '+' only)"),
            );
        }
        let context = load_context(
            lo,
            path,
            name,
            node,
            index,
            &by_name,
            &numbering,
            &mut gotos,
            (&sounds, &globals),
        );
        contexts.push(context);
    }
    let data = PlanData {
        contexts,
        by_name,
        numbering,
        max_steps,
        globals,
        sounds,
    };
    for check in gotos {
        // Checked against the context the step is written in; two-part
        // targets reached through an include resolve from the caller's
        // context at run time.
        if let Err(error) = data.resolve_goto(check.ctx, (check.ctx, check.ext), &check.target) {
            lo.report(check.line, &check.path, error.to_string());
        }
    }
    Some(Dialplan {
        data: Arc::new(data),
        voicemail: None,
    })
}

fn load_numbering(lo: &mut Loader<'_>, path: &str, node: &Node) -> BTreeMap<String, NumberRules> {
    let mut out = BTreeMap::new();
    let Some(mut plans) = lo.fields(path, node) else {
        return out;
    };
    for (plan_path, name, plan_node) in plans.entries() {
        let Some(mut plan) = lo.fields(&plan_path, plan_node) else {
            continue;
        };
        let mut rules = Vec::new();
        if let Some((rules_path, rules_node)) = lo.required(&mut plan, "rules", "a numbering plan")
        {
            match &rules_node.kind {
                Kind::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let Some(rule) = load_rule(lo, &format!("{rules_path}[{i}]"), item) {
                            rules.push(rule);
                        }
                    }
                }
                _ => lo.expected(&rules_path, rules_node, "an array of rules"),
            }
        }
        lo.finish(plan, &["rules"], "a numbering plan");
        out.insert(name.to_owned(), NumberRules::new(rules));
    }
    out
}

fn load_rule(lo: &mut Loader<'_>, path: &str, node: &Node) -> Option<NumberRule> {
    let mut rule = lo.fields(path, node)?;
    let prefix = lo
        .required(&mut rule, "prefix", "a numbering rule")
        .and_then(|(p, n)| lo.string(&p, n));
    let length = rule.get("length").map(|(p, n)| lo.integer(&p, n, 1, 32));
    let strip = rule.get("strip").map(|(p, n)| lo.integer(&p, n, 0, 32));
    let add = rule.get("add").map(|(p, n)| lo.string(&p, n));
    lo.finish(
        rule,
        &["prefix", "length", "strip", "add"],
        "a numbering rule",
    );
    let length = match length {
        Some(l) => Some(usize::try_from(l?).ok()?),
        None => None,
    };
    let strip = usize::try_from(strip.unwrap_or(Some(0))?).ok()?;
    let add = add.unwrap_or(Some(""))?;
    match NumberRule::new(prefix?, length, strip, add) {
        Ok(rule) => Some(rule),
        Err(e) => {
            lo.report(node.line, path, e.to_string());
            None
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn load_context(
    lo: &mut Loader<'_>,
    path: &str,
    name: &str,
    node: &Node,
    index: usize,
    by_name: &BTreeMap<String, usize>,
    numbering: &BTreeMap<String, NumberRules>,
    gotos: &mut Vec<GotoCheck>,
    (sounds, globals): (&Sounds, &BTreeMap<String, String>),
) -> Context {
    let mut context = Context {
        name: name.to_owned(),
        includes: Vec::new(),
        allow_trunks: BTreeSet::new(),
        numbering: None,
        extensions: Vec::new(),
        order: Vec::new(),
    };
    let Some(mut fields) = lo.fields(path, node) else {
        return context;
    };
    if let Some((include_path, include_node)) = fields.get("include") {
        for (item_path, line, included) in lo.strings(&include_path, include_node) {
            match by_name.get(included) {
                Some(&i) if i == index => {
                    lo.report(line, &item_path, "a context cannot include itself");
                }
                Some(&i) => context.includes.push(i),
                None => lo.report(line, &item_path, format!("no context named '{included}'")),
            }
        }
    }
    if let Some((allow_path, allow_node)) = fields.get("allow_trunks") {
        for (item_path, line, trunk) in lo.strings(&allow_path, allow_node) {
            if is_name(trunk) {
                context.allow_trunks.insert(trunk.to_owned());
            } else {
                lo.report(line, &item_path, format!("bad trunk name '{trunk}'"));
            }
        }
    }
    if let Some((numbering_path, numbering_node)) = fields.get("numbering") {
        if let Some(plan) = lo.string(&numbering_path, numbering_node) {
            if numbering.contains_key(plan) {
                context.numbering = Some(plan.to_owned());
            } else {
                lo.report(
                    numbering_node.line,
                    &numbering_path,
                    format!("no [numbering.{plan}] table"),
                );
            }
        }
    }
    let scope = ContextScope {
        name,
        allow_trunks: &context.allow_trunks,
        sounds,
        globals,
    };
    let mut extensions = Vec::new();
    let mut ext_gotos = Vec::new();
    match fields.get("extension") {
        Some((ext_path, ext_node)) => match &ext_node.kind {
            Kind::Array(items) => {
                let mut seen: BTreeMap<String, usize> = BTreeMap::new();
                for (i, item) in items.iter().enumerate() {
                    let item_path = format!("{ext_path}[{i}]");
                    let mut checks = Vec::new();
                    let Some(extension) = load_extension(lo, &item_path, item, &scope, &mut checks)
                    else {
                        continue;
                    };
                    let text = extension.matcher.as_str().to_owned();
                    if let Some(first) = seen.get(&text) {
                        lo.report(
                            item.line,
                            &format!("{item_path}.match"),
                            format!("extension '{text}' is already defined at line {first}"),
                        );
                        continue;
                    }
                    seen.insert(text, item.line);
                    let ext = extensions.len();
                    ext_gotos.extend(checks.into_iter().map(|(path, line, target)| GotoCheck {
                        path,
                        line,
                        ctx: index,
                        ext,
                        target,
                    }));
                    extensions.push(extension);
                }
            }
            _ => lo.expected(&ext_path, ext_node, "an array of [[...extension]] tables"),
        },
        None if context.includes.is_empty() => lo.report(
            fields.line,
            &join(path, "extension"),
            "context has no extensions and includes nothing",
        ),
        None => {}
    }
    lo.finish(
        fields,
        &["include", "allow_trunks", "numbering", "extension"],
        "a context",
    );
    let mut order: Vec<usize> = (0..extensions.len()).collect();
    order.sort_by(|&a, &b| {
        let ma = extensions.get(a).map(|e: &Extension| &e.matcher);
        let mb = extensions.get(b).map(|e: &Extension| &e.matcher);
        ma.cmp(&mb)
    });
    gotos.extend(ext_gotos);
    context.extensions = extensions;
    context.order = order;
    context
}

fn load_extension(
    lo: &mut Loader<'_>,
    path: &str,
    node: &Node,
    scope: &ContextScope<'_>,
    gotos: &mut Vec<(String, usize, Vec<String>)>,
) -> Option<Extension> {
    let mut fields = lo.fields(path, node)?;
    let matcher = lo
        .required(&mut fields, "match", "an extension")
        .and_then(|(p, n)| {
            let text = lo.string(&p, n)?;
            match ExtensionMatch::parse(text) {
                Ok(m) => Some(m),
                Err(e) => {
                    lo.report(n.line, &p, e.to_string());
                    None
                }
            }
        });
    let mut steps = Vec::new();
    if let Some((steps_path, steps_node)) = lo.required(&mut fields, "steps", "an extension") {
        match &steps_node.kind {
            Kind::Array(items) if items.is_empty() => {
                lo.report(
                    steps_node.line,
                    &steps_path,
                    "an extension needs at least one step",
                );
            }
            Kind::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let step = load_step(lo, &format!("{steps_path}[{i}]"), item, scope, gotos);
                    // A bad step still takes its place, so that priorities and
                    // labels of the others (Goto checks) stay right; the plan is
                    // not built when there is any problem.
                    steps.push(step.unwrap_or(Step {
                        line: item.line,
                        label: None,
                        app: App::NoOp,
                    }));
                }
            }
            _ => lo.expected(&steps_path, steps_node, "an array of steps"),
        }
    }
    lo.finish(fields, &["match", "steps"], "an extension");
    let mut labels: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, step) in steps.iter().enumerate() {
        if let Some(label) = &step.label {
            if let Some(first) = labels.insert(label, step.line) {
                lo.report(
                    step.line,
                    &format!("{path}.steps[{i}].label"),
                    format!("label '{label}' is already used at line {first}"),
                );
            }
        }
    }
    if steps.is_empty() {
        return None;
    }
    Some(Extension {
        matcher: matcher?,
        steps,
    })
}

/// Keys each application accepts besides `app` and `label`.
fn app_keys(app: AppName) -> &'static [&'static str] {
    match app {
        AppName::Answer => &[],
        AppName::Hangup => &["cause"],
        AppName::Dial => &["targets", "timeout", "continue"],
        AppName::Goto => &["target"],
        AppName::GotoIf => &["condition", "then", "else"],
        AppName::Set => &["var", "value"],
        AppName::NoOp => &["text"],
        AppName::Wait => &["seconds"],
        AppName::Playback | AppName::Background => &["file", "options"],
        AppName::WaitExten => &["seconds"],
        AppName::Read => &["var", "file", "max_digits", "timeout"],
        AppName::Queue => &["queue", "timeout"],
        AppName::VoiceMail => &["mailbox", "options"],
        AppName::VoiceMailMain => &["mailbox"],
        AppName::ConfBridge => &["room"],
        AppName::MixMonitor => &["file", "options"],
        AppName::SayDigits => &["digits"],
        AppName::SayNumber => &["number"],
        AppName::SayAlpha => &["text"],
        AppName::Record => &["file", "max_silence", "max_duration", "options"],
        AppName::Progress
        | AppName::Ringing
        | AppName::StopPlaytones
        | AppName::StopMixMonitor
        | AppName::Return => &[],
        AppName::Busy | AppName::Congestion => &["timeout"],
        AppName::Playtones => &["tone", "country"],
        AppName::GotoIfTime => &[
            "times", "weekdays", "mdays", "months", "timezone", "then", "else",
        ],
        AppName::Gosub => &["target"],
        AppName::ExecIf => &["condition", "then", "else"],
        AppName::CallbackRequest => &["number", "alt_number"],
        AppName::Webhook => &["url", "vars", "timeout", "retries"],
    }
}

fn load_step(
    lo: &mut Loader<'_>,
    path: &str,
    node: &Node,
    scope: &ContextScope<'_>,
    gotos: &mut Vec<(String, usize, Vec<String>)>,
) -> Option<Step> {
    let mut fields = lo.fields(path, node)?;
    let label = fields.get("label").and_then(|(label_path, label_node)| {
        let label = lo.string(&label_path, label_node)?;
        if label.is_empty() || label.contains(',') || label.parse::<usize>().is_ok() {
            lo.report(
                label_node.line,
                &label_path,
                format!("bad label '{label}' (not empty, not a number, no ',')"),
            );
            return None;
        }
        Some(label.to_owned())
    });
    let app_at = fields.has("app").then(|| join(path, "app"));
    let app = lo
        .required(&mut fields, "app", "a step")
        .and_then(|(app_path, app_node)| {
            let app_name = lo.string(&app_path, app_node)?;
            let app = AppName::from_name(app_name);
            if app.is_none() {
                let known: Vec<&str> = AppName::ALL.iter().map(|a| a.as_str()).collect();
                lo.report(
                    app_node.line,
                    &app_path,
                    format!(
                        "unknown application '{app_name}' (known: {})",
                        known.join(", ")
                    ),
                );
            }
            app
        });
    let before = lo.problems().len();
    let parsed = match app {
        Some(app) => {
            let owner = app.to_string();
            let app_line = fields.get("app").map_or(node.line, |(_, n)| n.line);
            let parsed = load_app(lo, app, &mut fields, &owner, scope, gotos);
            let mut known = vec!["app", "label"];
            known.extend_from_slice(app_keys(app));
            lo.finish(fields, &known, &owner);
            if !app.is_available() {
                // The switch cannot run it: a configuration that would
                // silently do less than it says is refused (its keys are
                // still checked above, and no step is built).
                lo.report(
                    app_line,
                    app_at.as_deref().unwrap_or(path),
                    format!("application {app} is not available yet"),
                );
            }
            parsed.filter(|_| lo.problems().len() == before)
        }
        // Without a known app its other keys cannot be judged.
        None => None,
    };
    Some(Step {
        line: node.line,
        label,
        // Placeholder for a bad step: the plan is not built anyway.
        app: parsed.unwrap_or(App::NoOp),
    })
}

fn load_app(
    lo: &mut Loader<'_>,
    app: AppName,
    fields: &mut Fields<'_>,
    owner: &str,
    scope: &ContextScope<'_>,
    gotos: &mut Vec<(String, usize, Vec<String>)>,
) -> Option<App> {
    let parsed = match app {
        AppName::Answer => App::Answer,
        AppName::NoOp => {
            if let Some((p, n)) = fields.get("text") {
                lo.template(&p, n)?;
            }
            App::NoOp
        }
        AppName::Hangup => {
            let cause = match fields.get("cause") {
                Some((p, n)) => {
                    let code = lo.integer(&p, n, 1, 127)?;
                    Some(u8::try_from(code).ok().and_then(HangupCause::new)?)
                }
                None => None,
            };
            App::Hangup { cause }
        }
        AppName::Wait => {
            let (p, n) = lo.required(fields, "seconds", owner)?;
            App::Wait {
                duration: lo.seconds(&p, n, true, MAX_SECONDS)?,
            }
        }
        AppName::Set => {
            let var = lo.required(fields, "var", owner).and_then(|(p, n)| {
                let text = lo.string(&p, n)?;
                match VarName::parse(text) {
                    Ok(v) if v.is_read_only() => {
                        lo.report(n.line, &p, format!("{v} is read-only"));
                        None
                    }
                    Ok(v) => Some(v),
                    Err(e) => {
                        lo.report(n.line, &p, e.to_string());
                        None
                    }
                }
            });
            let value = lo
                .required(fields, "value", owner)
                .and_then(|(p, n)| match &n.kind {
                    Kind::Int(i) => Template::parse(&i.to_string()).ok(),
                    _ => lo.template(&p, n),
                });
            App::Set {
                var: var?,
                value: value?,
            }
        }
        AppName::Goto => {
            let target = required_goto(lo, fields, owner, gotos)?;
            App::Goto { target }
        }
        AppName::GotoIf => {
            let condition = lo
                .required(fields, "condition", owner)
                .and_then(|(p, n)| lo.condition(&p, n));
            let (then, otherwise) = goto_branches(lo, fields, gotos, "GotoIf")?;
            App::GotoIf {
                condition: condition?,
                then,
                otherwise,
            }
        }
        AppName::Dial => load_dial(lo, fields, owner, scope)?,
        AppName::Playback | AppName::Background => {
            let background = app == AppName::Background;
            let (p, n) = lo.required(fields, "file", owner)?;
            let files = prompt_list(lo, &p, n, scope);
            let options = match fields.get("options") {
                Some((p, n)) => words(lo, &p, n, &[("skip", 's'), ("noanswer", 'n')])?,
                None => Vec::new(),
            };
            App::Playback {
                files: files?,
                skip: options.contains(&'s'),
                noanswer: options.contains(&'n'),
                background,
            }
        }
        AppName::MixMonitor => {
            let file = match fields.get("file") {
                Some((p, n)) => Some(lo.template(&p, n)?),
                None => None,
            };
            let stereo = match fields.get("options") {
                Some((p, n)) => {
                    let text = lo.string(&p, n)?;
                    if let Some(bad) = text.chars().find(|c| *c != 'D') {
                        lo.report(
                            n.line,
                            &p,
                            format!("unsupported MixMonitor option '{bad}' (only D: caller and callee on separate channels)"),
                        );
                        return None;
                    }
                    text.contains('D')
                }
                None => false,
            };
            App::MixMonitor { file, stereo }
        }
        AppName::WaitExten => {
            let timeout = match fields.get("seconds") {
                Some((p, n)) => lo.seconds(&p, n, false, MAX_SECONDS)?,
                None => DEFAULT_RESPONSE_TIMEOUT,
            };
            App::WaitExten { timeout }
        }
        AppName::Read => {
            let var = lo.required(fields, "var", owner).and_then(|(p, n)| {
                let text = lo.string(&p, n)?;
                writable_var(lo, &p, n.line, text)
            });
            let files = match fields.get("file") {
                Some((p, n)) => prompt_list(lo, &p, n, scope),
                None => Some(Vec::new()),
            };
            let max_digits = match fields.get("max_digits") {
                Some((p, n)) => Some(usize::try_from(lo.integer(&p, n, 1, 255)?).ok()?),
                None => None,
            };
            let timeout = match fields.get("timeout") {
                Some((p, n)) => lo.seconds(&p, n, false, MAX_SECONDS)?,
                None => DEFAULT_RESPONSE_TIMEOUT,
            };
            App::Read {
                var: var?,
                files: files?,
                max_digits,
                timeout,
            }
        }
        AppName::SayDigits => {
            let (p, n) = lo.required(fields, "digits", owner)?;
            App::SayDigits {
                digits: int_or_template(lo, &p, n)?,
            }
        }
        AppName::SayNumber => {
            let (p, n) = lo.required(fields, "number", owner)?;
            App::SayNumber {
                number: int_or_template(lo, &p, n)?,
            }
        }
        AppName::SayAlpha => {
            let (p, n) = lo.required(fields, "text", owner)?;
            App::SayAlpha {
                text: int_or_template(lo, &p, n)?,
            }
        }
        AppName::Record => {
            let file = lo.required(fields, "file", owner).and_then(|(p, n)| {
                let template = lo.template(&p, n)?;
                if let Some(text) = template.literal() {
                    if !text.ends_with(".wav") || !crate::sounds::is_prompt_name(text) {
                        lo.report(
                            n.line,
                            &p,
                            format!(
                                "'{text}' is not a recording file name ending in .wav (no '..')"
                            ),
                        );
                        return None;
                    }
                }
                Some(template)
            });
            let max_silence = match fields.get("max_silence") {
                Some((p, n)) => Some(lo.seconds(&p, n, false, MAX_SECONDS)?),
                None => None,
            };
            let max_duration = match fields.get("max_duration") {
                Some((p, n)) => Some(lo.seconds(&p, n, false, MAX_SECONDS)?),
                None => None,
            };
            let options = match fields.get("options") {
                Some((p, n)) => letters(
                    lo,
                    &p,
                    n,
                    "qsn",
                    "q (no beep), s (skip when not answered), n (do not answer)",
                )?,
                None => Vec::new(),
            };
            App::Record {
                file: file?,
                max_silence,
                max_duration,
                beep: !options.contains(&'q'),
                skip: options.contains(&'s'),
                noanswer: options.contains(&'n'),
            }
        }
        AppName::Progress => App::Progress,
        AppName::Ringing => App::Ringing,
        AppName::StopPlaytones => App::StopPlaytones,
        AppName::StopMixMonitor => App::StopMixMonitor,
        AppName::Return => App::Return,
        AppName::Busy | AppName::Congestion => {
            let timeout = match fields.get("timeout") {
                Some((p, n)) => lo.seconds(&p, n, false, MAX_SECONDS)?,
                None => DEFAULT_REFUSE_TONES,
            };
            let (cause, tone) = if app == AppName::Busy {
                (HangupCause::USER_BUSY, ToneKind::Busy)
            } else {
                (HangupCause::NORMAL_CIRCUIT_CONGESTION, ToneKind::Congestion)
            };
            App::Refuse {
                cause,
                tone,
                timeout,
            }
        }
        AppName::Playtones => {
            let tone = lo.required(fields, "tone", owner).and_then(|(p, n)| {
                let text = lo.string(&p, n)?;
                let tone = ToneKind::parse(text);
                if tone.is_none() {
                    lo.report(
                        n.line,
                        &p,
                        format!("unknown tone '{text}' (ring, busy, congestion or dial)"),
                    );
                }
                tone
            });
            let country = match fields.get("country") {
                Some((p, n)) => {
                    let template = lo.template(&p, n)?;
                    if let Some(text) = template.literal() {
                        if !COUNTRIES.contains(&text.to_ascii_lowercase().as_str()) {
                            lo.report(
                                n.line,
                                &p,
                                format!(
                                    "no tones for country '{text}' (known: {})",
                                    COUNTRIES.join(", ")
                                ),
                            );
                            return None;
                        }
                    }
                    Some(template)
                }
                None => None,
            };
            App::Playtones {
                tone: tone?,
                country,
            }
        }
        AppName::GotoIfTime => {
            let mut part = |key: &str| -> Option<Option<(usize, String, Template)>> {
                match fields.get(key) {
                    None => Some(None),
                    Some((p, n)) => Some(Some((n.line, p.clone(), lo.template(&p, n)?))),
                }
            };
            let times = part("times");
            let weekdays = part("weekdays");
            let mdays = part("mdays");
            let months = part("months");
            let timezone = part("timezone");
            let (times, weekdays, mdays, months, timezone) =
                (times?, weekdays?, mdays?, months?, timezone?);
            let (line, path) = [&times, &weekdays, &mdays, &months, &timezone]
                .into_iter()
                .flatten()
                .map(|(l, p, _)| (*l, p.clone()))
                .next()
                .unwrap_or((fields.line, join(&fields.path, "times")));
            let take = |p: Option<(usize, String, Template)>| p.map(|(_, _, t)| t);
            let when = TimeSpec {
                times: take(times),
                weekdays: take(weekdays),
                mdays: take(mdays),
                months: take(months),
                timezone: take(timezone),
            };
            // Checked with the globals when it names no other variable.
            let unknown = Cell::new(false);
            let rule = when.rule(&|name| match name {
                VarName::Channel(n) if scope.globals.contains_key(n) => {
                    scope.globals.get(n).cloned()
                }
                _ => {
                    unknown.set(true);
                    None
                }
            });
            let branches = goto_branches(lo, fields, gotos, "GotoIfTime");
            if let (Err(e), false) = (rule, unknown.get()) {
                lo.report(line, &path, e.to_string());
                return None;
            }
            let (then, otherwise) = branches?;
            App::GotoIfTime {
                when,
                then,
                otherwise,
            }
        }
        AppName::Gosub => {
            let target = required_goto(lo, fields, owner, gotos)?;
            App::Gosub { target }
        }
        AppName::ExecIf => {
            let condition = lo
                .required(fields, "condition", owner)
                .and_then(|(p, n)| lo.condition(&p, n));
            let then = lo
                .required(fields, "then", owner)
                .and_then(|(p, n)| load_inline(lo, &p, n, scope, gotos));
            let otherwise = match fields.get("else") {
                Some((p, n)) => Some(load_inline(lo, &p, n, scope, gotos)?),
                None => None,
            };
            App::ExecIf {
                condition: condition?,
                then: Box::new(then?),
                otherwise: otherwise.map(Box::new),
            }
        }
        AppName::CallbackRequest => {
            let number = lo
                .required(fields, "number", owner)
                .and_then(|(p, n)| lo.template(&p, n));
            let alt_number = match fields.get("alt_number") {
                Some((p, n)) => lo.template(&p, n),
                None => Template::parse("").ok(),
            };
            App::CallbackRequest {
                number: number?,
                alt_number: alt_number?,
            }
        }
        AppName::Webhook => {
            let url = lo.required(fields, "url", owner).and_then(|(p, n)| {
                let template = lo.template(&p, n)?;
                let prefix = template.literal_prefix().to_ascii_lowercase();
                if !(prefix.starts_with("http://") || prefix.starts_with("https://")) {
                    lo.report(n.line, &p, "the url must start with http:// or https://");
                    return None;
                }
                Some(template)
            });
            let vars = match fields.get("vars") {
                Some((p, n)) => {
                    let mut vars = Vec::new();
                    for (item_path, line, text) in lo.strings(&p, n) {
                        match VarName::parse(text) {
                            Ok(v) => vars.push(v),
                            Err(e) => lo.report(line, &item_path, e.to_string()),
                        }
                    }
                    vars
                }
                None => Vec::new(),
            };
            let timeout = match fields.get("timeout") {
                Some((p, n)) => lo.seconds(&p, n, false, 60.0)?,
                None => Duration::from_secs(5),
            };
            let retries = match fields.get("retries") {
                Some((p, n)) => u32::try_from(lo.integer(&p, n, 0, 10)?).ok()?,
                None => 3,
            };
            App::Webhook {
                url: url?,
                vars,
                timeout,
                retries,
            }
        }
        AppName::Queue => {
            let (p, n) = lo.required(fields, "queue", owner)?;
            lo.template(&p, n)?;
            if let Some((p, n)) = fields.get("timeout") {
                lo.seconds(&p, n, false, MAX_SECONDS)?;
            }
            return None;
        }
        AppName::VoiceMail => {
            let mailbox = lo
                .required(fields, "mailbox", owner)
                .and_then(|(p, n)| int_or_template(lo, &p, n));
            let options = match fields.get("options") {
                Some((p, n)) => letters(
                    lo,
                    &p,
                    n,
                    "ub",
                    "u (unavailable greeting, the default), b (busy greeting)",
                )?,
                None => Vec::new(),
            };
            App::VoiceMail {
                mailbox: mailbox?,
                busy: options.contains(&'b'),
            }
        }
        AppName::VoiceMailMain => {
            let mailbox = match fields.get("mailbox") {
                Some((p, n)) => Some(int_or_template(lo, &p, n)?),
                None => None,
            };
            App::VoiceMailMain { mailbox }
        }
        AppName::ConfBridge => {
            let (p, n) = lo.required(fields, "room", owner)?;
            App::ConfBridge {
                room: int_or_template(lo, &p, n)?,
            }
        }
    };
    Some(parsed)
}

/// WaitExten's and Read's timeout when none is given (Asterisk's default
/// response timeout).
const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long Busy/Congestion play their tone on an answered channel before
/// hanging up (Asterisk waits for the caller; we bound it).
const DEFAULT_REFUSE_TONES: Duration = Duration::from_secs(10);

/// The required `target` of Goto and Gosub; a literal one is remembered
/// in `gotos` to be checked once every context is loaded.
fn required_goto(
    lo: &mut Loader<'_>,
    fields: &mut Fields<'_>,
    owner: &str,
    gotos: &mut Vec<(String, usize, Vec<String>)>,
) -> Option<GotoTarget> {
    let (p, n) = lo.required(fields, "target", owner)?;
    let target = lo.goto_target(&p, n)?;
    if let Some(parts) = target.literal() {
        gotos.push((p, n.line, parts));
    }
    Some(target)
}

/// `then`/`else` Goto targets of GotoIf-like steps.
#[allow(clippy::type_complexity)]
fn goto_branches(
    lo: &mut Loader<'_>,
    fields: &mut Fields<'_>,
    gotos: &mut Vec<(String, usize, Vec<String>)>,
    app: &str,
) -> Option<(Option<GotoTarget>, Option<GotoTarget>)> {
    let mut branch = |key: &str| -> Option<Option<GotoTarget>> {
        match fields.get(key) {
            None => Some(None),
            Some((p, n)) => {
                let target = lo.goto_target(&p, n)?;
                if let Some(parts) = target.literal() {
                    gotos.push((p, n.line, parts));
                }
                Some(Some(target))
            }
        }
    };
    let then = branch("then");
    let otherwise = branch("else");
    let (then, otherwise) = (then?, otherwise?);
    if then.is_none() && otherwise.is_none() {
        lo.report(
            fields.line,
            &join(&fields.path, "then"),
            format!("{app} needs 'then', 'else' or both"),
        );
        return None;
    }
    Some((then, otherwise))
}

/// A variable Read or Set may write.
fn writable_var(lo: &mut Loader<'_>, path: &str, line: usize, text: &str) -> Option<VarName> {
    match VarName::parse(text) {
        Ok(v) if v.is_read_only() => {
            lo.report(line, path, format!("{v} is read-only"));
            None
        }
        Ok(v) => Some(v),
        Err(e) => {
            lo.report(line, path, e.to_string());
            None
        }
    }
}

/// A string template, or an integer written without quotes.
fn int_or_template(lo: &mut Loader<'_>, path: &str, node: &Node) -> Option<Template> {
    match &node.kind {
        Kind::Int(i) => Template::parse(&i.to_string()).ok(),
        _ => lo.template(path, node),
    }
}

/// Options given as words or their letters (`"skip,noanswer"`, `"sn"`).
fn words(
    lo: &mut Loader<'_>,
    path: &str,
    node: &Node,
    known: &[(&str, char)],
) -> Option<Vec<char>> {
    let text = lo.string(path, node)?;
    let mut out = Vec::new();
    for word in text.split([',', ' ']).filter(|w| !w.is_empty()) {
        let found = known
            .iter()
            .find(|(name, letter)| {
                name.eq_ignore_ascii_case(word) || word.chars().eq(std::iter::once(*letter))
            })
            .map(|(_, letter)| *letter);
        match found {
            Some(letter) => out.push(letter),
            None => {
                let names: Vec<&str> = known.iter().map(|(n, _)| *n).collect();
                lo.report(
                    node.line,
                    path,
                    format!("unknown option '{word}' (known: {})", names.join(", ")),
                );
                return None;
            }
        }
    }
    Some(out)
}

/// Options given as letters (`"qn"`).
fn letters(
    lo: &mut Loader<'_>,
    path: &str,
    node: &Node,
    known: &str,
    described: &str,
) -> Option<Vec<char>> {
    let text = lo.string(path, node)?;
    if let Some(bad) = text.chars().find(|c| !known.contains(*c)) {
        lo.report(
            node.line,
            path,
            format!("unknown option '{bad}' (known: {described})"),
        );
        return None;
    }
    Some(text.chars().collect())
}

/// A `file` value: one prompt name or a list; literal names must exist in
/// some language when the sounds directory was scanned.
fn prompt_list(
    lo: &mut Loader<'_>,
    path: &str,
    node: &Node,
    scope: &ContextScope<'_>,
) -> Option<Vec<Template>> {
    let items: Vec<(String, usize, &str)> = match &node.kind {
        Kind::Array(items) if items.is_empty() => {
            lo.report(node.line, path, "at least one prompt is needed");
            return None;
        }
        Kind::Array(_) => lo.strings(path, node),
        _ => vec![(path.to_owned(), node.line, lo.string(path, node)?)],
    };
    let before = lo.problems().len();
    let mut out = Vec::new();
    for (item_path, line, text) in items {
        let template = match Template::parse(text) {
            Ok(t) => t,
            Err(e) => {
                lo.report(line, &item_path, e.to_string());
                continue;
            }
        };
        if let Some(name) = template.literal() {
            let name = name.trim();
            if !crate::sounds::is_prompt_name(name) {
                lo.report(
                    line,
                    &item_path,
                    format!("bad prompt name '{name}' (no '..', not empty)"),
                );
                continue;
            }
            let sounds = scope.sounds;
            if sounds.is_scanned()
                && !std::path::Path::new(name).is_absolute()
                && !sounds.exists_in_any(name)
            {
                let langs: Vec<&str> = sounds.languages().collect();
                lo.report(
                    line,
                    &item_path,
                    format!(
                        "prompt '{name}' not found: no {}/<lang>/{name}.wav for any language ({})",
                        sounds.dir().display(),
                        langs.join(", ")
                    ),
                );
                continue;
            }
        }
        out.push(template);
    }
    (lo.problems().len() == before).then_some(out)
}

/// An inline step (ExecIf's `then`/`else`): `{ app = "...", ... }`.
fn load_inline(
    lo: &mut Loader<'_>,
    path: &str,
    node: &Node,
    scope: &ContextScope<'_>,
    gotos: &mut Vec<(String, usize, Vec<String>)>,
) -> Option<App> {
    let mut fields = lo.fields(path, node)?;
    let app =
        lo.required(&mut fields, "app", "an inline step")
            .and_then(|(app_path, app_node)| {
                let app_name = lo.string(&app_path, app_node)?;
                let app = AppName::from_name(app_name);
                match app {
                    None => lo.report(
                        app_node.line,
                        &app_path,
                        format!("unknown application '{app_name}'"),
                    ),
                    Some(app) if !app.is_available() => lo.report(
                        app_node.line,
                        &app_path,
                        format!("application {app} is not available yet"),
                    ),
                    Some(_) => {}
                }
                app.filter(|a| a.is_available())
            })?;
    let owner = app.to_string();
    let before = lo.problems().len();
    let parsed = load_app(lo, app, &mut fields, &owner, scope, gotos);
    let mut known = vec!["app"];
    known.extend_from_slice(app_keys(app));
    lo.finish(fields, &known, &owner);
    parsed.filter(|_| lo.problems().len() == before)
}

fn load_dial(
    lo: &mut Loader<'_>,
    fields: &mut Fields<'_>,
    owner: &str,
    scope: &ContextScope<'_>,
) -> Option<App> {
    let timeout = fields
        .get("timeout")
        .map(|(p, n)| lo.seconds(&p, n, false, MAX_SECONDS));
    let continue_after_answer = match fields.get("continue") {
        Some((p, n)) => lo.boolean(&p, n),
        None => Some(false),
    };
    let (targets_path, targets_node) = lo.required(fields, "targets", owner)?;
    let items = lo.strings(&targets_path, targets_node);
    if items.is_empty() && matches!(&targets_node.kind, Kind::Array(a) if a.is_empty()) {
        lo.report(
            targets_node.line,
            &targets_path,
            "Dial needs at least one target",
        );
        return None;
    }
    let mut targets = Vec::new();
    for (path, line, text) in items {
        let template = match Template::parse(text) {
            Ok(t) => t,
            Err(e) => {
                lo.report(line, &path, e.to_string());
                continue;
            }
        };
        check_target(lo, &path, line, &template, scope);
        targets.push(template);
    }
    Some(App::Dial {
        targets,
        timeout: timeout.map_or(Some(None), |t| t.map(Some))?,
        continue_after_answer: continue_after_answer?,
    })
}

/// Load-time checks of a dial target: its technology, and its trunk against
/// the context's `allow_trunks` whenever the trunk name is literal.
fn check_target(
    lo: &mut Loader<'_>,
    path: &str,
    line: usize,
    template: &Template,
    scope: &ContextScope<'_>,
) {
    let trunk = match template.literal() {
        Some(text) => match DialTarget::parse(text) {
            Ok(target) => target.trunk_name().map(str::to_owned),
            Err(e) => {
                lo.report(line, path, e.to_string());
                return;
            }
        },
        None => {
            let prefix = template.literal_prefix();
            let segments: Vec<&str> = prefix.split('/').collect();
            match segments.as_slice() {
                // `${TARGET}` or `us${X}`: only known at run time.
                [_] => None,
                ["user", ..] => None,
                ["trunk" | "gateway", _] => None,
                ["trunk" | "gateway", name, _, ..] => Some((*name).to_owned()),
                [kind, ..] => {
                    lo.report(
                        line,
                        path,
                        format!("unknown target type '{kind}' (user, trunk or gateway)"),
                    );
                    return;
                }
                [] => None,
            }
        }
    };
    if let Some(trunk) = trunk {
        if !scope.allow_trunks.contains(&trunk) {
            lo.report(
                line,
                path,
                format!(
                    "context '{}' may not dial trunk '{trunk}': add it to allow_trunks of \
                     [context.{}] if this context may place calls through it (toll-fraud protection)",
                    scope.name, scope.name
                ),
            );
        }
    }
}
