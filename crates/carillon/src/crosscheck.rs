//! Checks across the configuration files: the names one file gives that
//! another must define. Each file's own loader checks what the file says on
//! its own; this module owns only the references between them:
//!
//! - a user's `context` (or `defaults.context`, or the built-in default
//!   `internal`) and a trunk's `context` must be a `[context.NAME]` of
//!   `dialplan.toml`; a trunk's `numbering` a `[numbering.NAME]` there;
//! - every name in a context's `allow_trunks` must be a trunk of
//!   `trunks.toml` (reported at that `allow_trunks` line);
//! - a literal `Dial` target `user/NAME` must be a user of `users.toml`;
//!   `trunk/NAME/…` must be a `kind = "carrier"` trunk and
//!   `gateway/NAME/…` a `kind = "gsm_gateway"` one. A trunk name missing
//!   altogether is reported at the `Dial` only when the context's
//!   `allow_trunks` does not list it (else that line already says so).
//!
//! - a user's `mailbox` and the literal `mailbox` of a `VoiceMail` or
//!   `VoiceMailMain` step must be a `[mailbox.N]` of `voicemail.toml`
//!   ([`check_mailboxes`]; no file: no mailboxes).
//!
//! - the literal `room` of a `ConfBridge` step must be a `[room.N]` of
//!   `conferences.toml` ([`check_rooms`]; no file: no rooms).
//!
//! Not checked (cannot be, before a call): targets whose name part is
//! built from variables (`user/${EXTEN}`, `trunk/${T}/…`), targets inside
//! a `Goto` to another context chosen at run time, and `Dial` steps whose
//! `app` is not a string. Nothing is checked against `dialplan.toml` when
//! there is none (every call is then refused with 503, so contexts are
//! moot), and nothing is checked against a file that does not parse (its
//! own syntax error is reported by its loader).
//!
//! It reads the files as plain TOML trees ([`carillon_tomlconf::parse`]),
//! not through their validated forms, so a mistake of another kind in one
//! file does not hide the cross-file problems.

use std::collections::{BTreeMap, BTreeSet};

use carillon_dialplan::template::Template;
use carillon_tomlconf::Node;

use crate::config::{Problem, DEFAULT_CONTEXT};

/// One configuration file as read from disk.
pub struct Source<'a> {
    /// Path shown in problems.
    pub path: String,
    /// `None` when the file does not exist.
    pub text: Option<&'a str>,
}

/// What the referencing checks need of `dialplan.toml`.
#[derive(Default)]
struct PlanNames {
    contexts: BTreeSet<String>,
    numbering: BTreeSet<String>,
}

/// A trunk's kind as written (`carrier`, `gsm_gateway`, or anything else,
/// which its own loader reports).
type TrunkKinds = BTreeMap<String, String>;

/// Parses a file that exists and is valid TOML; `None` otherwise (a
/// missing file is not a problem here, a syntax error is its loader's).
fn tree(source: &Source<'_>) -> Option<Node> {
    carillon_tomlconf::parse(source.text?).ok()
}

fn problem(file: &str, line: usize, key: String, message: String) -> Problem {
    Problem {
        file: file.to_owned(),
        line,
        key,
        message,
    }
}

/// Every cross-file problem, in file order then line order.
pub fn check(users: &Source<'_>, trunks: &Source<'_>, dialplan: &Source<'_>) -> Vec<Problem> {
    let mut out = Vec::new();
    let users_tree = tree(users);
    let trunks_tree = tree(trunks);
    let plan_tree = tree(dialplan);
    // A missing trunks.toml defines no trunks; an unparsable one is unknown.
    let kinds: Option<TrunkKinds> = match (&trunks_tree, trunks.text) {
        (Some(t), _) => Some(trunk_kinds(t)),
        (None, None) => Some(TrunkKinds::new()),
        (None, Some(_)) => None,
    };
    let user_names: Option<BTreeSet<String>> = users_tree.as_ref().map(user_extensions);
    if let Some(plan) = &plan_tree {
        let names = plan_names(plan);
        if let Some(u) = &users_tree {
            check_user_contexts(&users.path, u, &names, &mut out);
        }
        if let Some(t) = &trunks_tree {
            check_trunk_references(&trunks.path, t, &names, &mut out);
        }
        check_plan_references(
            &dialplan.path,
            plan,
            kinds.as_ref(),
            user_names.as_ref(),
            &mut out,
        );
    }
    out
}

fn plan_names(plan: &Node) -> PlanNames {
    let names = |key: &str| -> BTreeSet<String> {
        plan.get(key)
            .map(|n| n.entries().iter().map(|e| e.key.clone()).collect())
            .unwrap_or_default()
    };
    PlanNames {
        contexts: names("context"),
        numbering: names("numbering"),
    }
}

fn trunk_kinds(trunks: &Node) -> TrunkKinds {
    trunks
        .get("trunk")
        .map(|t| {
            t.entries()
                .iter()
                .map(|e| {
                    let kind = e.value.get("kind").and_then(Node::as_str).unwrap_or("");
                    (e.key.clone(), kind.to_owned())
                })
                .collect()
        })
        .unwrap_or_default()
}

fn user_extensions(users: &Node) -> BTreeSet<String> {
    users
        .get("user")
        .map(|u| {
            u.items()
                .iter()
                .filter_map(|user| user.get("extension").and_then(Node::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Reports `node` (at its line, as `key`) when it is a name missing from
/// `defined`, with the `message` for that name.
fn require_defined(
    file: &str,
    key: String,
    node: &Node,
    defined: &BTreeSet<String>,
    message: impl FnOnce(&str) -> String,
    out: &mut Vec<Problem>,
) {
    if let Some(name) = node.as_str() {
        if !defined.contains(name) {
            out.push(problem(file, node.line, key, message(name)));
        }
    }
}

fn undefined_context(context: &str) -> String {
    format!("context '{context}' is not defined in dialplan.toml")
}

fn check_user_contexts(file: &str, users: &Node, names: &PlanNames, out: &mut Vec<Problem>) {
    let defaults = users.get("defaults").and_then(|d| d.get("context"));
    let default_context = defaults.and_then(Node::as_str);
    if let Some(node) = defaults {
        require_defined(
            file,
            "defaults.context".into(),
            node,
            &names.contexts,
            undefined_context,
            out,
        );
    }
    let Some(list) = users.get("user") else {
        return;
    };
    for (i, user) in list.items().iter().enumerate() {
        match user.get("context") {
            Some(node) => require_defined(
                file,
                format!("user[{i}].context"),
                node,
                &names.contexts,
                undefined_context,
                out,
            ),
            // With no context of its own, `[defaults]` applies: reported
            // there when it names one, else here, once per user.
            None if default_context.is_none() && !names.contexts.contains(DEFAULT_CONTEXT) => {
                let line = user.get("extension").map_or(user.line, |n| n.line);
                out.push(problem(
                    file,
                    line,
                    format!("user[{i}].context"),
                    format!(
                        "no context given, so the default '{DEFAULT_CONTEXT}' applies, which is \
                         not defined in dialplan.toml (set context here or in [defaults])"
                    ),
                ));
            }
            None => {}
        }
    }
}

fn check_trunk_references(file: &str, trunks: &Node, names: &PlanNames, out: &mut Vec<Problem>) {
    let Some(table) = trunks.get("trunk") else {
        return;
    };
    for entry in table.entries() {
        let name = &entry.key;
        if let Some(node) = entry.value.get("context") {
            require_defined(
                file,
                format!("trunk.{name}.context"),
                node,
                &names.contexts,
                undefined_context,
                out,
            );
        }
        if let Some(node) = entry.value.get("numbering") {
            require_defined(
                file,
                format!("trunk.{name}.numbering"),
                node,
                &names.numbering,
                |numbering| {
                    format!(
                        "numbering '{numbering}' is not defined in dialplan.toml (no [numbering.{numbering}] table)"
                    )
                },
                out,
            );
        }
    }
}

fn check_plan_references(
    file: &str,
    plan: &Node,
    kinds: Option<&TrunkKinds>,
    users: Option<&BTreeSet<String>>,
    out: &mut Vec<Problem>,
) {
    let Some(contexts) = plan.get("context") else {
        return;
    };
    for context in contexts.entries() {
        let path = format!("context.{}", context.key);
        let mut allowed = BTreeSet::new();
        if let Some(list) = context.value.get("allow_trunks") {
            for (j, item) in list.items().iter().enumerate() {
                let Some(name) = item.as_str() else { continue };
                allowed.insert(name.to_owned());
                if let Some(kinds) = kinds {
                    if !kinds.contains_key(name) {
                        out.push(problem(
                            file,
                            item.line,
                            format!("{path}.allow_trunks[{j}]"),
                            format!("'{name}' is not a trunk or gateway of trunks.toml"),
                        ));
                    }
                }
            }
        }
        let Some(extensions) = context.value.get("extension") else {
            continue;
        };
        for (k, extension) in extensions.items().iter().enumerate() {
            let Some(steps) = extension.get("steps") else {
                continue;
            };
            for (s, step) in steps.items().iter().enumerate() {
                let is_dial = step
                    .get("app")
                    .and_then(Node::as_str)
                    .is_some_and(|a| a.eq_ignore_ascii_case("dial"));
                let Some(targets) = step.get("targets").filter(|_| is_dial) else {
                    continue;
                };
                for (t, target) in targets.items().iter().enumerate() {
                    let Some(text) = target.as_str() else {
                        continue;
                    };
                    let key = format!("{path}.extension[{k}].steps[{s}].targets[{t}]");
                    if let Some(message) = check_target(text, &allowed, kinds, users) {
                        out.push(problem(file, target.line, key, message));
                    }
                }
            }
        }
    }
}

/// Mailbox references: each user's `mailbox` and each literal `mailbox`
/// of VoiceMail/VoiceMailMain must be in `mailboxes` (`None`:
/// `voicemail.toml` did not load; its own problems are reported).
pub fn check_mailboxes(
    users: &Source<'_>,
    dialplan: &Source<'_>,
    mailboxes: Option<BTreeSet<String>>,
) -> Vec<Problem> {
    let mut out = Vec::new();
    let Some(mailboxes) = mailboxes else {
        return out;
    };
    let missing =
        |name: &str| format!("mailbox '{name}' is not a [mailbox.{name}] of voicemail.toml");
    if let Some(tree) = tree(users) {
        if let Some(list) = tree.get("user") {
            for (i, user) in list.items().iter().enumerate() {
                if let Some(node) = user.get("mailbox") {
                    if let Some(name) = node.as_str().filter(|n| !mailboxes.contains(*n)) {
                        out.push(problem(
                            &users.path,
                            node.line,
                            format!("user[{i}].mailbox"),
                            missing(name),
                        ));
                    }
                }
            }
        }
    }
    for (key, line, name) in
        literal_step_fields(dialplan, &["voicemail", "voicemailmain"], "mailbox")
    {
        if !mailboxes.contains(&name) {
            out.push(problem(&dialplan.path, line, key, missing(&name)));
        }
    }
    out
}

/// Room references: each literal `room` of ConfBridge must be in `rooms`
/// (`None`: `conferences.toml` did not load; its own problems are
/// reported).
pub fn check_rooms(dialplan: &Source<'_>, rooms: Option<BTreeSet<String>>) -> Vec<Problem> {
    let mut out = Vec::new();
    let Some(rooms) = rooms else {
        return out;
    };
    for (key, line, name) in literal_step_fields(dialplan, &["confbridge"], "room") {
        if !rooms.contains(&name) {
            out.push(problem(
                &dialplan.path,
                line,
                key,
                format!("room '{name}' is not a [room.{name}] of conferences.toml"),
            ));
        }
    }
    out
}

/// The literal `field` of every dialplan step whose `app` is one of `apps`
/// (case-insensitive), as (key, line, value); values holding a variable
/// are not known until run time and are left out.
fn literal_step_fields(
    dialplan: &Source<'_>,
    apps: &[&str],
    field: &str,
) -> Vec<(String, usize, String)> {
    let mut out = Vec::new();
    let Some(plan) = tree(dialplan) else {
        return out;
    };
    let Some(contexts) = plan.get("context") else {
        return out;
    };
    for context in contexts.entries() {
        let Some(extensions) = context.value.get("extension") else {
            continue;
        };
        for (k, extension) in extensions.items().iter().enumerate() {
            let Some(steps) = extension.get("steps") else {
                continue;
            };
            for (s, step) in steps.items().iter().enumerate() {
                let wanted = step
                    .get("app")
                    .and_then(Node::as_str)
                    .is_some_and(|a| apps.iter().any(|w| a.eq_ignore_ascii_case(w)));
                let Some(node) = step.get(field).filter(|_| wanted) else {
                    continue;
                };
                let value = match &node.kind {
                    carillon_tomlconf::Kind::Int(i) => i.to_string(),
                    _ => match node.as_str() {
                        Some(t) if !t.contains("${") => t.trim().to_owned(),
                        _ => continue,
                    },
                };
                let key = format!("context.{}.extension[{k}].steps[{s}].{field}", context.key);
                out.push((key, node.line, value));
            }
        }
    }
    out
}

/// The problem with one `Dial` target, if its name is literal and wrong.
fn check_target(
    text: &str,
    allowed: &BTreeSet<String>,
    kinds: Option<&TrunkKinds>,
    users: Option<&BTreeSet<String>>,
) -> Option<String> {
    // Only the part before the first variable is known now; a segment is
    // literal when a '/' follows it within that part (or it is the whole
    // text of a target without variables).
    let template = Template::parse(text).ok()?;
    let (known, whole) = match template.literal() {
        Some(all) => (all, true),
        None => (template.literal_prefix(), false),
    };
    let segments: Vec<&str> = known.split('/').collect();
    let literal = |i: usize| -> Option<&str> {
        let complete = whole || i + 1 < segments.len();
        segments.get(i).copied().filter(|_| complete)
    };
    match segments.first().copied() {
        Some("user") => {
            let name = literal(1)?;
            let users = users?;
            (!users.contains(name)).then(|| format!("user '{name}' is not defined in users.toml"))
        }
        Some(tech @ ("trunk" | "gateway")) => {
            let name = literal(1)?;
            let kinds = kinds?;
            match (tech, kinds.get(name).map(String::as_str)) {
                (_, None) if allowed.contains(name) => None,
                (_, None) => Some(format!("'{name}' is not a trunk or gateway of trunks.toml")),
                ("trunk", Some("gsm_gateway")) => Some(format!(
                    "'{name}' is a gsm_gateway: dial it as gateway/{name}/NUMBER"
                )),
                ("gateway", Some("carrier")) => Some(format!(
                    "'{name}' is a carrier trunk: dial it as trunk/{name}/NUMBER"
                )),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The names `queues.toml` gives other files (issue 15): a queue's
/// `moh_class` must be a `[moh.<class>]` of `carillon.toml` (checked when
/// that file's classes are known), an exit digit's `context` a
/// `[context.NAME]` of `dialplan.toml` (when there is one that parses).
pub fn check_queues(
    queues: &Source<'_>,
    dialplan: &Source<'_>,
    moh_classes: Option<&BTreeSet<String>>,
) -> Vec<Problem> {
    let mut out = Vec::new();
    let Some(tree) = tree(queues) else {
        return out;
    };
    let contexts = tree_contexts(dialplan);
    for q in tree.get("queue").map(Node::entries).unwrap_or_default() {
        let path = format!("queue.{}", q.key);
        if let (Some(class), Some(classes)) = (q.value.get("moh_class"), moh_classes) {
            if let Some(name) = class.as_str().filter(|n| !classes.contains(*n)) {
                out.push(problem(
                    &queues.path,
                    class.line,
                    format!("{path}.moh_class"),
                    format!("music-on-hold class '{name}' is not a [moh.{name}] of carillon.toml"),
                ));
            }
        }
        let (Some(contexts), Some(exits)) = (&contexts, q.value.get("exit")) else {
            continue;
        };
        for (i, exit) in exits.items().iter().enumerate() {
            if let Some(ctx) = exit.get("context") {
                if let Some(name) = ctx.as_str().filter(|n| !contexts.contains(*n)) {
                    out.push(problem(
                        &queues.path,
                        ctx.line,
                        format!("{path}.exit[{i}].context"),
                        format!("context '{name}' is not defined in dialplan.toml"),
                    ));
                }
            }
        }
    }
    out
}

/// The contexts of a dialplan that exists and parses.
fn tree_contexts(dialplan: &Source<'_>) -> Option<BTreeSet<String>> {
    tree(dialplan).map(|plan| plan_names(&plan).contexts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src<'a>(path: &str, text: Option<&'a str>) -> Source<'a> {
        Source {
            path: path.into(),
            text,
        }
    }

    fn shown(problems: &[Problem]) -> Vec<String> {
        problems.iter().map(ToString::to_string).collect()
    }

    const PLAN: &str = r#"[numbering.pk]
rules = [ { prefix = "03", strip = 1, add = "+92" } ]

[context.office]
allow_trunks = ["carrier1", "gsm1", "ghost"]

[[context.office.extension]]
match = "_X."
steps = [
  { app = "Dial", targets = ["user/100", "user/999", "user/${EXTEN}"] },
  { app = "dial", targets = ["trunk/carrier1/${EXTEN}", "trunk/gsm1/${EXTEN}"] },
  { app = "Dial", targets = ["gateway/carrier1/1", "gateway/gsm1/1", "trunk/${T}/1"] },
  { app = "Dial", targets = ["trunk/nowhere/1", "trunk/ghost/1", "us${X}"] },
]
"#;

    const TRUNKS: &str = r#"[trunk.carrier1]
kind = "carrier"
context = "office"
numbering = "pk"

[trunk.gsm1]
kind = "gsm_gateway"
context = "nowhere"
numbering = "de"
"#;

    const USERS: &str = r#"[[user]]
extension = "100"
password = "secret100"
context = "office"

[[user]]
extension = "101"
password = "secret101"
"#;

    #[test]
    fn references_between_files_are_checked_at_the_referring_line() {
        let p = check(
            &src("users.toml", Some(USERS)),
            &src("trunks.toml", Some(TRUNKS)),
            &src("dialplan.toml", Some(PLAN)),
        );
        assert_eq!(
            shown(&p),
            [
                "users.toml:7: user[1].context: no context given, so the default 'internal' applies, which is not defined in dialplan.toml (set context here or in [defaults])",
                "trunks.toml:8: trunk.gsm1.context: context 'nowhere' is not defined in dialplan.toml",
                "trunks.toml:9: trunk.gsm1.numbering: numbering 'de' is not defined in dialplan.toml (no [numbering.de] table)",
                "dialplan.toml:5: context.office.allow_trunks[2]: 'ghost' is not a trunk or gateway of trunks.toml",
                "dialplan.toml:10: context.office.extension[0].steps[0].targets[1]: user '999' is not defined in users.toml",
                "dialplan.toml:11: context.office.extension[0].steps[1].targets[1]: 'gsm1' is a gsm_gateway: dial it as gateway/gsm1/NUMBER",
                "dialplan.toml:12: context.office.extension[0].steps[2].targets[0]: 'carrier1' is a carrier trunk: dial it as trunk/carrier1/NUMBER",
                "dialplan.toml:13: context.office.extension[0].steps[3].targets[0]: 'nowhere' is not a trunk or gateway of trunks.toml",
            ]
        );
    }

    #[test]
    fn a_defaults_context_is_reported_once_at_its_own_line() {
        let users = "[defaults]\ncontext = \"lobby\"\n\n[[user]]\nextension = \"100\"\npassword = \"secret100\"\n";
        let p = check(
            &src("users.toml", Some(users)),
            &src("trunks.toml", None),
            &src("dialplan.toml", Some(PLAN)),
        );
        let shown = shown(&p);
        assert_eq!(
            shown.first().map(String::as_str),
            Some("users.toml:2: defaults.context: context 'lobby' is not defined in dialplan.toml")
        );
        assert_eq!(
            shown.iter().filter(|l| l.starts_with("users.toml")).count(),
            1
        );
        // No trunks.toml: no trunk exists, so every allow_trunks name is wrong.
        assert_eq!(
            shown.iter().filter(|l| l.contains("allow_trunks")).count(),
            3,
            "{shown:?}"
        );
    }

    #[test]
    fn a_file_that_does_not_parse_or_no_dialplan_means_nothing_is_checked_against_it() {
        let broken = "[trunk.x\nkind = 1\n";
        let p = check(
            &src("users.toml", Some(USERS)),
            &src("trunks.toml", Some(broken)),
            &src("dialplan.toml", Some(PLAN)),
        );
        assert!(
            shown(&p).iter().all(|l| !l.contains("trunk")),
            "{:?}",
            shown(&p)
        );
        let p = check(
            &src("users.toml", Some(USERS)),
            &src("trunks.toml", Some(TRUNKS)),
            &src("dialplan.toml", None),
        );
        assert!(p.is_empty(), "{:?}", shown(&p));
    }
}
