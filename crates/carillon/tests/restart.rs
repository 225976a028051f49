//! Registrations survive a restart: SIGTERM flushes them to the database
//! and the next start restores them.

mod common;

use common::{Conn, Env, Options, Phone};

#[test]
fn a_registration_survives_sigterm_and_restart() {
    let mut env = Env::new(&Options::default());
    let contact = "<sip:100@127.0.0.1:47001;transport=udp>";
    {
        let mut sw = env.start();
        let mut conn = Conn::udp(sw.addr());
        let mut phone = Phone::new("100", "changeme100");
        let r = phone
            .register(&mut conn, Some(contact), Some(3600))
            .unwrap();
        assert_eq!(r.status(), Some(200), "{}", r.raw);
        let status = sw.stop();
        assert!(status.success(), "exit {status}; log:\n{}", sw.log());
        assert!(sw.log().contains("stopped"), "{}", sw.log());
    }
    let sw = env.start();
    assert!(
        sw.log().contains("registrations restored bindings=1"),
        "{}",
        sw.log()
    );
    let mut conn = Conn::udp(sw.addr());
    let mut phone = Phone::new("100", "changeme100");
    let fetch = phone.register(&mut conn, None, None).unwrap();
    assert_eq!(fetch.status(), Some(200), "{}", fetch.raw);
    assert!(
        fetch
            .contacts()
            .iter()
            .any(|c| c.contains("sip:100@127.0.0.1:47001")),
        "restored binding missing: {:?}",
        fetch.contacts()
    );
}
