//! baresip (a real softphone) registers extension 100 through its ctrl_tcp
//! remote control; a binding fetch by our own digest client must then
//! list baresip's contact.

// Both harnesses: `common` starts the switch on the example config and
// fetches bindings; `callsupport` has the baresip phone. Each includes the
// shared `common/process.rs` and `common/toml_text.rs` as its own module.
#![allow(clippy::duplicate_mod)]

mod callsupport;
mod common;

use std::time::Duration;

use callsupport::baresip::{require_baresip, Baresip, BaresipSpec};
use common::{Conn, Env, Options, Phone};

/// baresip 1.0.0 (libre) gives up with ENOSYS ("Function not
/// implemented") when any challenge names an algorithm it does not know
/// instead of answering the MD5 one (RFC 8760 §2.4), so this also guards
/// the example configuration's choice of MD5-only challenges.
#[test]
fn baresip_registers_with_the_example_config_and_a_binding_fetch_lists_its_contact() {
    register_and_fetch(Options::default());
}

fn register_and_fetch(opts: Options) {
    require_baresip();
    let mut env = Env::new(&opts);
    let sw = env.start();

    let mut baresip = Baresip::launch(
        env.path(),
        sw.port,
        &BaresipSpec {
            answermode: "manual",
            ..BaresipSpec::new("100", "changeme100", 600.0)
        },
    );
    let registered = baresip.wait_event("REGISTER_OK", 1, Duration::from_secs(15));
    assert!(
        registered,
        "baresip did not report REGISTER_OK; ctrl_tcp said:\n{}\nbaresip log:\n{}\nconfig:\n{}\nswitch log:\n{}",
        baresip.events,
        baresip.log(),
        std::fs::read_to_string(env.config_dir().join("carillon.toml")).unwrap_or_default(),
        sw.log()
    );

    let mut conn = Conn::udp(sw.addr());
    let mut phone = Phone::new("100", "changeme100");
    let fetch = phone
        .register(&mut conn, None, None)
        .expect("binding fetch");
    assert_eq!(fetch.status(), Some(200), "{}", fetch.raw);
    let contacts = fetch.contacts();
    let want = format!("127.0.0.1:{}", baresip.sip_port);
    assert!(
        contacts.iter().any(|c| c.contains(&want)),
        "binding fetch does not list baresip's contact {want}: {contacts:?}"
    );
}
