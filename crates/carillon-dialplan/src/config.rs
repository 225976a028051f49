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
use crate::template::{Template, VarName};
use carillon_tomlconf::{join, Fields, Kind, Loader, Node};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub use carillon_tomlconf::ConfigProblem;

/// The largest `max_steps` accepted.
const MAX_STEPS_LIMIT: i64 = 1_000_000;
/// The longest `Wait` or `timeout` accepted, in seconds (one day).
const MAX_SECONDS: f64 = 86_400.0;

/// Dialplan-specific readers on top of the shared loader.
trait PlanLoader {
    fn template(&mut self, path: &str, node: &Node) -> Option<Template>;
    fn goto_target(&mut self, path: &str, node: &Node) -> Option<GotoTarget>;
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
}

impl Dialplan {
    /// Parses and validates a dialplan. `file_name` only labels problems.
    /// On failure every problem found is returned, sorted by line.
    pub fn load(file_name: &str, text: &str) -> Result<Dialplan, Vec<ConfigProblem>> {
        carillon_tomlconf::load(file_name, text, load_root)
    }
}

fn load_root(lo: &mut Loader<'_>, root: &Node) -> Option<Dialplan> {
    let mut fields = lo.fields("", root)?;
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
        &["max_steps", "numbering", "context"],
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
            lo, path, name, node, index, &by_name, &numbering, &mut gotos,
        );
        contexts.push(context);
    }
    let data = PlanData {
        contexts,
        by_name,
        numbering,
        max_steps,
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
        AppName::Playback | AppName::Background => &["file"],
        AppName::WaitExten => &["seconds"],
        AppName::Read => &["var", "file", "max_digits", "timeout"],
        AppName::Queue => &["queue", "timeout"],
        AppName::VoiceMail => &["mailbox"],
        AppName::MixMonitor => &["file", "options"],
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
            let (p, n) = lo.required(fields, "target", owner)?;
            let target = lo.goto_target(&p, n)?;
            if let Some(parts) = target.literal() {
                gotos.push((p, n.line, parts));
            }
            App::Goto { target }
        }
        AppName::GotoIf => {
            let condition = lo.required(fields, "condition", owner).and_then(|(p, n)| {
                let text = lo.string(&p, n)?;
                match Condition::parse(text) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        lo.report(n.line, &p, e.to_string());
                        None
                    }
                }
            });
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
                    "GotoIf needs 'then', 'else' or both",
                );
                return None;
            }
            App::GotoIf {
                condition: condition?,
                then,
                otherwise,
            }
        }
        AppName::Dial => load_dial(lo, fields, owner, scope)?,
        AppName::Playback | AppName::Background | AppName::MixMonitor => {
            let (p, n) = lo.required(fields, "file", owner)?;
            lo.template(&p, n)?;
            if let Some((p, n)) = fields.get("options") {
                lo.string(&p, n)?;
            }
            return None;
        }
        AppName::WaitExten => {
            if let Some((p, n)) = fields.get("seconds") {
                lo.seconds(&p, n, false, MAX_SECONDS)?;
            }
            return None;
        }
        AppName::Read => {
            let (p, n) = lo.required(fields, "var", owner)?;
            lo.string(&p, n)?;
            if let Some((p, n)) = fields.get("file") {
                lo.template(&p, n)?;
            }
            if let Some((p, n)) = fields.get("max_digits") {
                lo.integer(&p, n, 1, 255)?;
            }
            if let Some((p, n)) = fields.get("timeout") {
                lo.seconds(&p, n, false, MAX_SECONDS)?;
            }
            return None;
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
            let (p, n) = lo.required(fields, "mailbox", owner)?;
            lo.template(&p, n)?;
            return None;
        }
    };
    Some(parsed)
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
