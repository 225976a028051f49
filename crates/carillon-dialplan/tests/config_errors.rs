//! Bad dialplans are rejected with every problem, each naming file, line
//! and dotted key.

use carillon_dialplan::{AppName, ConfigProblem, Dialplan};

fn problems(text: &str) -> Vec<ConfigProblem> {
    match Dialplan::load("dialplan.toml", text) {
        Ok(_) => panic!("expected problems"),
        Err(problems) => problems,
    }
}

fn has(problems: &[ConfigProblem], line: usize, key: &str, fragment: &str) -> bool {
    problems
        .iter()
        .any(|p| p.line == line && p.key == key && p.message.contains(fragment))
}

fn show(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

const BROKEN: &str = r#"# line 1
[context.internal]
allow_trunks = ["twilio"]

[[context.internal.extension]]
match = "100"
steps = [
  { app = "Dial", targets = ["user/100"], timeout = 30 },
  { app = "Hangpu" },
]

[[context.internal.extension]]
match = "_9X.1"
steps = [ { app = "Hangup" } ]

[[context.internal.extension]]
match = "_X."
steps = [
  { app = "Dial", targets = ["trunk/voxlocus/${EXTEN}"], timout = 60 },
  { app = "Goto", target = "nowhere,1" },
  { app = "Set", var = "EXTEN", value = "1" },
  { app = "Wait" },
]

[context.agents]
include = ["internal", "missing"]
"#;

#[test]
fn every_problem_is_reported_with_its_line_and_key() {
    let problems = problems(BROKEN);
    let text = show(&problems);
    assert!(
        has(
            &problems,
            9,
            "context.internal.extension[0].steps[1].app",
            "unknown application 'Hangpu'"
        ),
        "{text}"
    );
    assert!(
        has(
            &problems,
            13,
            "context.internal.extension[1].match",
            "'.' must be the last"
        ),
        "{text}"
    );
    assert!(
        has(
            &problems,
            19,
            "context.internal.extension[2].steps[0].targets[0]",
            "may not dial trunk 'voxlocus'"
        ),
        "{text}"
    );
    assert!(
        has(
            &problems,
            19,
            "context.internal.extension[2].steps[0].timout",
            "unknown key 'timout' for Dial"
        ),
        "{text}"
    );
    assert!(
        has(
            &problems,
            20,
            "context.internal.extension[2].steps[1].target",
            "no extension matches 'nowhere'"
        ),
        "{text}"
    );
    assert!(
        has(
            &problems,
            21,
            "context.internal.extension[2].steps[2].var",
            "EXTEN is read-only"
        ),
        "{text}"
    );
    assert!(
        has(
            &problems,
            22,
            "context.internal.extension[2].steps[3].seconds",
            "Wait needs 'seconds'"
        ),
        "{text}"
    );
    assert!(
        has(
            &problems,
            26,
            "context.agents.include[1]",
            "no context named 'missing'"
        ),
        "{text}"
    );
    assert_eq!(problems.len(), 8, "{text}");
}

#[test]
fn problems_are_sorted_by_line_and_display_as_file_line_key_message() {
    let problems = problems(BROKEN);
    let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
    let first = problems.first().unwrap().to_string();
    assert!(
        first.starts_with(
            "dialplan.toml:9: context.internal.extension[0].steps[1].app: unknown application"
        ),
        "{first}"
    );
}

#[test]
fn a_toml_syntax_error_names_its_line() {
    let problems = problems("[context.a]\n[[context.a.extension]]\nmatch = \"1\nsteps = []\n");
    assert_eq!(problems.len(), 1);
    let p = &problems[0];
    assert_eq!(p.line, 3, "{p}");
    assert_eq!(p.key, "");
    assert!(p.to_string().starts_with("dialplan.toml:3: "), "{p}");
}

#[test]
fn wrong_types_and_unknown_keys_are_reported_not_ignored() {
    let text = r#"maxsteps = 5
[context.a]
allow_trunk = ["x"]
[[context.a.extension]]
match = 100
steps = [ { app = "Wait", seconds = "two" } ]
"#;
    let problems = problems(text);
    let all = show(&problems);
    assert!(
        has(&problems, 1, "maxsteps", "unknown key 'maxsteps'"),
        "{all}"
    );
    assert!(
        has(
            &problems,
            3,
            "context.a.allow_trunk",
            "unknown key 'allow_trunk' for a context"
        ),
        "{all}"
    );
    assert!(
        has(
            &problems,
            5,
            "context.a.extension[0].match",
            "expected a string, found an integer"
        ),
        "{all}"
    );
    assert!(
        has(
            &problems,
            6,
            "context.a.extension[0].steps[0].seconds",
            "expected a number of seconds"
        ),
        "{all}"
    );
}

#[test]
fn duplicate_extensions_labels_and_bad_values_are_rejected() {
    let text = r#"[context.a]
[[context.a.extension]]
match = "1"
steps = [ { app = "NoOp", label = "x" }, { app = "Hangup", label = "x", cause = 300 } ]
[[context.a.extension]]
match = "1"
steps = [ { app = "Dial", targets = [] } ]
[[context.a.extension]]
match = "2"
steps = [ { app = "GotoIf", condition = "${X} = 1" }, { app = "Dial", targets = ["sip/foo"] } ]
"#;
    let problems = problems(text);
    let all = show(&problems);
    assert!(
        has(
            &problems,
            4,
            "context.a.extension[0].steps[1].cause",
            "out of range 1..=127"
        ),
        "{all}"
    );
    assert!(
        has(
            &problems,
            7,
            "context.a.extension[1].steps[0].targets",
            "at least one target"
        ),
        "{all}"
    );
    assert!(
        has(
            &problems,
            10,
            "context.a.extension[2].steps[0].then",
            "needs 'then', 'else'"
        ),
        "{all}"
    );
    assert!(
        has(
            &problems,
            10,
            "context.a.extension[2].steps[1].targets[0]",
            "is not user/NAME"
        ),
        "{all}"
    );
}

#[test]
fn duplicate_match_and_label_are_named_with_the_first_line() {
    let text = r#"[context.a]
[[context.a.extension]]
match = "1"
steps = [ { app = "NoOp", label = "x" }, { app = "NoOp", label = "x" } ]
[[context.a.extension]]
match = "2"
steps = [ { app = "NoOp" } ]
[[context.a.extension]]
match = "2"
steps = [ { app = "NoOp" } ]
"#;
    let problems = problems(text);
    let all = show(&problems);
    assert!(
        has(
            &problems,
            4,
            "context.a.extension[0].steps[1].label",
            "already used at line 4"
        ),
        "{all}"
    );
    assert!(
        has(
            &problems,
            8,
            "context.a.extension[2].match",
            "already defined at line 5"
        ),
        "{all}"
    );
}

#[test]
fn trunk_names_built_from_literal_prefixes_are_checked_at_load() {
    let text = r#"[context.agents]
[[context.agents.extension]]
match = "_X."
steps = [ { app = "Dial", targets = ["trunk/twilio/${EXTEN}", "gateway/gsm1/${EXTEN}", "user/${EXTEN}"] } ]
"#;
    let problems = problems(text);
    let all = show(&problems);
    assert!(
        has(
            &problems,
            4,
            "context.agents.extension[0].steps[0].targets[0]",
            "trunk 'twilio'"
        ),
        "{all}"
    );
    assert!(
        has(
            &problems,
            4,
            "context.agents.extension[0].steps[0].targets[1]",
            "trunk 'gsm1'"
        ),
        "{all}"
    );
    assert_eq!(problems.len(), 2, "{all}");
}

#[test]
fn numbering_rules_and_references_are_validated() {
    let text = r#"[numbering.pk]
rules = [ { prefix = "03", strip = 3, add = "+92" }, { prefix = "92", lenght = 12 } ]
[context.a]
numbering = "nowhere"
[[context.a.extension]]
match = "1"
steps = [ { app = "Answer" } ]
"#;
    let problems = problems(text);
    let all = show(&problems);
    assert!(
        has(
            &problems,
            2,
            "numbering.pk.rules[0]",
            "strip (3) is longer than the prefix"
        ),
        "{all}"
    );
    assert!(
        has(
            &problems,
            2,
            "numbering.pk.rules[1].lenght",
            "unknown key 'lenght'"
        ),
        "{all}"
    );
    assert!(
        has(
            &problems,
            4,
            "context.a.numbering",
            "no [numbering.nowhere] table"
        ),
        "{all}"
    );
}

#[test]
fn an_empty_dialplan_is_a_problem() {
    let problems = problems("# nothing\n");
    assert_eq!(problems.len(), 1);
    assert!(problems[0].message.contains("empty"));
}

#[test]
fn apps_not_available_yet_are_refused_at_their_app_line_with_their_arguments_still_checked() {
    // SayAlpha is available (sounds/ has letters): only its missing `text` is a problem.
    let text = r#"[context.ivr]
[[context.ivr.extension]]
match = "s"
steps = [
  { app = "Answer" },
  { app = "Queue" },
  { app = "VoiceMail", mailbox = "100", options = "x" },
  { app = "SayAlpha" },
]
"#;
    let problems = problems(text);
    let names = ["Queue"];
    for (i, name) in names.iter().enumerate() {
        assert!(
            has(
                &problems,
                6 + i,
                &format!("context.ivr.extension[0].steps[{}].app", i + 1),
                &format!("application {name} is not available yet"),
            ),
            "{name}: {}",
            show(&problems)
        );
    }
    assert!(
        has(
            &problems,
            6,
            "context.ivr.extension[0].steps[1].queue",
            "Queue needs 'queue'"
        ),
        "{}",
        show(&problems)
    );
    assert!(
        has(
            &problems,
            8,
            "context.ivr.extension[0].steps[3].text",
            "SayAlpha needs 'text'"
        ),
        "{}",
        show(&problems)
    );
    // VoiceMail runs now: only its bad option is a problem.
    assert!(
        has(
            &problems,
            7,
            "context.ivr.extension[0].steps[2].options",
            "'x'"
        ),
        "{}",
        show(&problems)
    );
    assert_eq!(problems.len(), names.len() + 3, "{}", show(&problems));
    let refused: Vec<&str> = AppName::ALL
        .iter()
        .filter(|a| !a.is_available())
        .map(|a| a.as_str())
        .collect();
    assert_eq!(refused, names);
}
