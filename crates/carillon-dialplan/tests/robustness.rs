//! Arbitrary input never panics the matcher, the template engine, the
//! loader or the interpreter.

use carillon_dialplan::template::Template;
use carillon_dialplan::{CallInfo, Dialplan, Execution, ExtensionMatch};
use proptest::prelude::*;

/// The fixed base of every test's clock.
fn t0() -> std::time::Instant {
    static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(std::time::Instant::now)
}

/// Fires the execution's timer, if it has one.
#[allow(dead_code)]
fn wait_done(exec: &mut Execution) {
    if let Some(due) = exec.poll_timeout() {
        exec.handle_timeout(due);
    }
}
use std::time::UNIX_EPOCH;

const PLAN: &str = r#"
[context.c]
allow_trunks = ["t"]
[[context.c.extension]]
match = "_X."
steps = [ { app = "Dial", targets = ["trunk/t/+${EXTEN:1}", "user/${EXTEN:-3}"], timeout = 5 } ]
[[context.c.extension]]
match = "_[*#a-f+]!"
steps = [ { app = "GotoIf", condition = "${EXTEN:0:1} = a", then = "c,${EXTEN:1},1" } ]
[[context.c.extension]]
match = "_N!"
steps = [ { app = "Goto", target = "${EXTEN}" } ]
"#;

proptest! {
    #[test]
    fn matching_arbitrary_extensions_never_panics(
        pattern in "_?[XZNxzn0-9\\[\\]\\-.!+*#a-c]{0,12}",
        exten in any::<String>(),
        digits in "[0-9+*#]{0,16}",
    ) {
        if let Ok(matcher) = ExtensionMatch::parse(&pattern) {
            let _ = matcher.matches(&exten);
            let _ = matcher.matches(&digits);
        }
    }

    #[test]
    fn arbitrary_pattern_text_never_panics_the_parser_or_the_order(a in any::<String>(), b in any::<String>()) {
        let (Ok(a), Ok(b)) = (ExtensionMatch::parse(&a), ExtensionMatch::parse(&b)) else {
            return Ok(());
        };
        prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
    }

    #[test]
    fn exact_extensions_match_only_themselves(exten in "[0-9*#+]{1,12}", other in "[0-9*#+]{1,12}") {
        let m = ExtensionMatch::parse(&exten).unwrap();
        prop_assert!(m.matches(&exten));
        prop_assert_eq!(m.matches(&other), exten == other);
    }

    #[test]
    fn templates_never_panic_on_arbitrary_text(text in any::<String>(), value in any::<String>()) {
        if let Ok(template) = Template::parse(&text) {
            let _ = template.expand(&|_| Some(value.clone()));
        }
    }

    #[test]
    fn loading_arbitrary_text_never_panics(text in any::<String>()) {
        let _ = Dialplan::load("fuzz.toml", &text);
    }

    #[test]
    fn running_arbitrary_extensions_never_panics(exten in any::<String>()) {
        let plan = Dialplan::load("p.toml", PLAN).unwrap();
        if let Ok(mut exec) = Execution::start(&plan, "c", &exten, CallInfo::default(), t0(), UNIX_EPOCH) {
            while exec.poll_command().is_some() {}
            while exec.poll_event().is_some() {}
        }
    }
}
