//! baresip (a real softphone) registers extension 100 through its ctrl_tcp
//! remote control; a binding fetch by our own digest client must then
//! list baresip's contact.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, have, Conn, Env, Options, Phone, V4};

/// A loopback port with `port + 1` also free (baresip takes it for TLS).
fn port_pair() -> u16 {
    for _ in 0..100 {
        let p = free_port(&[V4]);
        if p < u16::MAX
            && UdpSocket::bind((V4, p + 1)).is_ok()
            && TcpListener::bind((V4, p + 1)).is_ok()
        {
            return p;
        }
    }
    panic!("no free port pair");
}

/// baresip, killed by its own PID when dropped.
struct Baresip {
    child: Child,
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn netstring(s: &str) -> Vec<u8> {
    format!("{}:{},", s.len(), s).into_bytes()
}

/// Reads ctrl_tcp netstrings until one contains `needle` (true), one
/// reports REGISTER_FAIL, or the deadline passes.
fn wait_event(stream: &mut TcpStream, needle: &str, timeout: Duration, seen: &mut String) -> bool {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if seen.contains(needle) || seen.contains("REGISTER_FAIL") {
            break;
        }
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        match stream.read(&mut buf) {
            Ok(0) => return seen.contains(needle),
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(_) => return seen.contains(needle),
        }
    }
    seen.contains(needle)
}

/// baresip 1.0.0 (libre) gives up with ENOSYS ("Function not
/// implemented") when any challenge names an algorithm it does not know
/// instead of answering the MD5 one (RFC 8760 §2.4), so this also guards
/// the example configuration's choice of MD5-only challenges.
#[test]
fn baresip_registers_with_the_example_config_and_a_binding_fetch_lists_its_contact() {
    register_and_fetch(Options::default());
}

fn register_and_fetch(opts: Options) {
    assert!(
        have("baresip"),
        "baresip is not installed (Debian baresip-core)"
    );
    let mut env = Env::new(&opts);
    let sw = env.start();

    let sip_port = port_pair();
    let ctrl_port = free_port(&[V4]);
    let home = env.path().join("baresip-home");
    let conf = home.join(".baresip");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("config"),
        format!(
            "poll_method\t\tpoll\n\
             sip_listen\t\t127.0.0.1:{sip_port}\n\
             net_interface\t\t127.0.0.1\n\
             audio_player\t\taubridge,nil\n\
             audio_source\t\taubridge,nil\n\
             audio_alert\t\taubridge,nil\n\
             module_path\t\t/usr/lib/baresip/modules\n\
             module\t\t\tg711.so\n\
             module\t\t\taubridge.so\n\
             module_app\t\tmenu.so\n\
             module_app\t\tctrl_tcp.so\n\
             ctrl_tcp_listen\t\t127.0.0.1:{ctrl_port}\n"
        ),
    )
    .unwrap();
    std::fs::write(conf.join("accounts"), "").unwrap();
    std::fs::write(conf.join("contacts"), "").unwrap();
    let log = std::fs::File::create(env.path().join("baresip.log")).unwrap();
    let child = Command::new("baresip")
        .arg("-f")
        .arg(&conf)
        .env("HOME", &home)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start baresip");
    let _baresip = Baresip { child };
    let baresip_log =
        || std::fs::read_to_string(env.path().join("baresip.log")).unwrap_or_default();

    // ctrl_tcp comes up shortly after start.
    let ctrl_addr = SocketAddr::new(V4, ctrl_port);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ctrl = loop {
        if let Ok(s) = TcpStream::connect_timeout(&ctrl_addr, Duration::from_millis(200)) {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "baresip ctrl_tcp not listening; log:\n{}",
            baresip_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let account = format!(
        "<sip:100@127.0.0.1:{};transport=udp>;auth_pass=changeme100;regint=600;audio_codecs=PCMU,PCMA",
        sw.port
    );
    let cmd = format!(r#"{{"command":"uanew","params":"{account}","token":"t1"}}"#);
    ctrl.write_all(&netstring(&cmd)).unwrap();
    let mut events = String::new();
    let registered = wait_event(
        &mut ctrl,
        "REGISTER_OK",
        Duration::from_secs(15),
        &mut events,
    );
    assert!(
        registered,
        "baresip did not report REGISTER_OK; ctrl_tcp said:\n{events}\nbaresip log:\n{}\nconfig:\n{}\nswitch log:\n{}",
        baresip_log(),
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
    let want = format!("127.0.0.1:{sip_port}");
    assert!(
        contacts.iter().any(|c| c.contains(&want)),
        "binding fetch does not list baresip's contact {want}: {contacts:?}"
    );
}
