//! SIGHUP reloads users.toml: a user added to the file can register
//! afterwards, and registrations made before the reload are kept.

mod common;

use std::time::Duration;

use common::{example_config, Conn, Env, Options, Phone};

#[test]
fn sighup_adds_a_user_and_keeps_earlier_registrations() {
    let mut env = Env::new(&Options::default());
    let sw = env.start();
    let mut conn = Conn::udp(sw.addr());
    let mut hundred = Phone::new("100", "changeme100");
    let contact = "<sip:100@127.0.0.1:47002>";
    let r = hundred
        .register(&mut conn, Some(contact), Some(3600))
        .unwrap();
    assert_eq!(r.status(), Some(200), "{}", r.raw);

    // Before the reload, 102 is unknown: challenged again.
    let mut newbie = Phone::new("102", "changeme102");
    let mut conn102 = Conn::udp(sw.addr());
    let before = newbie
        .register(&mut conn102, Some("<sip:102@127.0.0.1:47003>"), Some(600))
        .unwrap();
    assert_eq!(before.status(), Some(401), "{}", before.raw);

    let users = std::fs::read_to_string(example_config().join("users.toml")).unwrap();
    env.write_users(&format!(
        "{users}\n[[user]]\nextension = \"102\"\npassword = \"changeme102\"\n"
    ));
    sw.signal("HUP");
    assert!(
        sw.wait_log("configuration reloaded", Duration::from_secs(5)),
        "no reload logged:\n{}",
        sw.log()
    );

    let after = newbie
        .register(&mut conn102, Some("<sip:102@127.0.0.1:47003>"), Some(600))
        .unwrap();
    assert_eq!(after.status(), Some(200), "{}", after.raw);

    let fetch = hundred.register(&mut conn, None, None).unwrap();
    assert_eq!(fetch.status(), Some(200), "{}", fetch.raw);
    assert!(
        fetch
            .contacts()
            .iter()
            .any(|c| c.contains("sip:100@127.0.0.1:47002")),
        "registration of 100 lost by the reload: {:?}",
        fetch.contacts()
    );
}

#[test]
fn a_broken_users_file_on_sighup_keeps_the_running_configuration() {
    let mut env = Env::new(&Options::default());
    let sw = env.start();
    env.write_users("[[user]]\nextension = \"100\"\npassword = \"x\"\n");
    sw.signal("HUP");
    assert!(
        sw.wait_log("reload refused", Duration::from_secs(5)),
        "{}",
        sw.log()
    );
    let mut conn = Conn::udp(sw.addr());
    let mut phone = Phone::new("101", "changeme101");
    let r = phone
        .register(&mut conn, Some("<sip:101@127.0.0.1:47004>"), Some(600))
        .unwrap();
    assert_eq!(r.status(), Some(200), "{}", r.raw);
}
