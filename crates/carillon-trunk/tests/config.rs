//! Loading trunks.toml: the shipped example, and problems reported with
//! the right line and key.

use std::net::IpAddr;

use carillon_mediactl::DtmfMode;
use carillon_trunk::{Codec, PortRoute, PortStrategy, TrunkKind, Trunks};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn the_shipped_example_loads_with_twilio_voxlocus_and_dinstar() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/trunks.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let set = Trunks::load("trunks.toml", &text).unwrap_or_else(|p| {
        panic!(
            "{}",
            p.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    assert_eq!(set.len(), 3);
    // The examples ship disabled, so they identify nothing and warn of
    // nothing until filled in.
    assert!(set.iter().all(|t| !t.enabled));
    assert!(set.warnings().is_empty(), "{:?}", set.warnings());
    let text = text.replace("enabled = false", "enabled = true");
    let set = Trunks::load("trunks.toml", &text).unwrap();

    let twilio = set.get("twilio").unwrap();
    assert_eq!(twilio.kind, TrunkKind::Carrier);
    assert_eq!(twilio.identify.len(), 8);
    assert_eq!(twilio.context.as_deref(), Some("from-twilio"));
    assert!(twilio.send_pai);
    for src in [
        "54.172.60.2",
        "54.244.51.3",
        "177.71.206.193",
        "35.156.191.130",
    ] {
        assert_eq!(set.identify(ip(src)).unwrap(), "twilio", "{src}");
    }
    assert_eq!(set.identify(ip("54.172.60.4")), None);

    let vox = set.get("voxlocus").unwrap();
    let reg = vox.registration.as_ref().unwrap();
    assert_eq!(reg.registrar, "sip:sip.voxlocus.example");
    assert_eq!(reg.domain, "sip.voxlocus.example");
    assert_eq!(reg.expiry, 3600);
    assert_eq!(vox.context.as_deref(), Some("from-voxlocus"));
    assert_eq!(vox.allow, vec![Codec::Alaw, Codec::Ulaw]);

    let dinstar = set.get("dinstar").unwrap();
    assert_eq!(dinstar.kind, TrunkKind::GsmGateway);
    let gw = dinstar.gateway.as_ref().unwrap();
    assert_eq!(gw.strategy, PortStrategy::RoundRobin);
    assert_eq!(gw.ports.len(), 4);
    for (i, port) in gw.ports.iter().enumerate() {
        assert_eq!(port.max_calls, 1);
        let PortRoute::Contact(c) = port.route else {
            panic!("contact port expected")
        };
        assert_eq!(
            dinstar.contacts[c],
            format!("sip:192.168.1.50:{}", 5061 + i)
        );
    }
    assert_eq!(set.identify(ip("192.168.1.50")).unwrap(), "dinstar");
    // GSM gateways send digits as events or as tones: auto takes either.
    assert_eq!(dinstar.dtmf_mode, DtmfMode::Auto);
    assert_eq!(twilio.dtmf_mode, DtmfMode::Rfc4733, "the default");
}

fn problems(text: &str) -> Vec<String> {
    Trunks::load("trunks.toml", text)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn every_problem_is_reported_with_its_line_and_dotted_key() {
    let text = r#"[trunk.a]
kind = "carrier"
contacts = ["sip:ok.example", "http://bad.example"]
identify = ["10.0.0.1/24", "10.9.0.0/16"]
max_cps = 0
colour = "blue"

[trunk.b]
kind = "gsm_gateway"
identify = ["10.9.0.0/16"]
ports = [
    { name = "sim1", contact = "sip:192.168.1.50:5061" },
    { name = "sim1", contact = "sip:192.168.1.50:5062" },
    { name = "sim3", prefix = "01#" },
    { name = "sim4" },
]
port_strategy = "random"

[trunk.c]
kind = "carrier"
contacts = ["sip:c.example"]
register = true
username = "u"
"#;
    assert_eq!(
        problems(text),
        vec![
            "trunks.toml:3: trunk.a.contacts[1]: 'http://bad.example' is not a sip: or sips: URI",
            "trunks.toml:4: trunk.a.identify[0]: '10.0.0.1/24' has host bits set beyond /24 (did you mean 10.0.0.0/24?)",
            "trunks.toml:5: trunk.a.max_cps: 0 is out of range 1..=10000",
            "trunks.toml:6: trunk.a.colour: unknown key 'colour' for a trunk (expected one of: enabled, kind, contacts, identify, username, password, from_user, from_domain, send_pai, register, registrar, expiry, qualify_secs, qualify_timeout_secs, max_calls, max_cps, context, allow, numbering, dtmf_mode, ports, port_strategy, port_cooldown_secs)",
            "trunks.toml:10: trunk.b.identify[0]: 10.9.0.0/16 is already identified as trunk 'a' at line 4",
            "trunks.toml:13: trunk.b.ports[1].name: port 'sim1' is already defined at line 12",
            "trunks.toml:14: trunk.b.ports[2].prefix: a prefix port needs the gateway's 'contacts' (the one SIP peer the prefix is sent to)",
            "trunks.toml:15: trunk.b.ports[3]: a port needs 'contact' or 'prefix'",
            "trunks.toml:17: trunk.b.port_strategy: unknown port_strategy 'random' (expected \"round_robin\" or \"least_used\")",
            "trunks.toml:22: trunk.c.register: register = true needs 'username' and 'password'",
            "trunks.toml:22: trunk.c.register: register = true needs 'registrar'",
            "trunks.toml:23: trunk.c.password: 'username' needs 'password'",
        ]
    );
}

#[test]
fn dtmf_mode_is_one_of_the_four_modes_and_anything_else_is_a_problem_at_its_line() {
    for (text, want) in [
        ("info", DtmfMode::Info),
        ("inband", DtmfMode::Inband),
        ("auto", DtmfMode::Auto),
        ("RFC4733", DtmfMode::Rfc4733),
    ] {
        let set = Trunks::load(
            "trunks.toml",
            &format!("[trunk.a]\nkind = \"carrier\"\ncontacts = [\"sip:a.example\"]\ndtmf_mode = \"{text}\"\n"),
        )
        .unwrap();
        assert_eq!(set.get("a").unwrap().dtmf_mode, want, "{text}");
    }
    assert_eq!(
        problems("[trunk.a]\nkind = \"carrier\"\ncontacts = [\"sip:a.example\"]\ndtmf_mode = \"rfc2833\"\n"),
        vec![
            "trunks.toml:4: trunk.a.dtmf_mode: unknown dtmf_mode 'rfc2833' (expected \"rfc4733\", \"info\", \"inband\" or \"auto\")"
        ]
    );
    let p = problems(
        "[trunk.a]\nkind = \"carrier\"\ncontacts = [\"sip:a.example\"]\ndtmf_mode = 4733\n",
    );
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("trunks.toml:4: trunk.a.dtmf_mode: "),
        "{}",
        p[0]
    );
}

#[test]
fn a_toml_syntax_error_names_its_line() {
    let text = "[trunk.a]\nkind = \"carrier\"\ncontacts = [\"sip:x\"\nqualify_secs = 5\n";
    let p = problems(text);
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("trunks.toml:4: "), "{}", p[0]);
}

#[test]
fn carrier_only_keys_and_missing_kind_are_reported() {
    let text = r#"[trunk.a]
contacts = ["sip:a.example"]

[trunk.b]
kind = "carrier"
contacts = ["sip:b.example"]
ports = []
qualify_secs = 2
qualify_timeout_secs = 2
allow = ["ulaw", "gsm"]
"#;
    assert_eq!(
        problems(text),
        vec![
            "trunks.toml:1: trunk.a.kind: a trunk needs 'kind'",
            "trunks.toml:7: trunk.b.ports: 'ports' is only for kind = \"gsm_gateway\"",
            "trunks.toml:8: trunk.b.qualify_secs: qualify_secs (2) must be longer than qualify_timeout_secs (2)",
            "trunks.toml:10: trunk.b.allow[1]: unknown codec 'gsm' (expected ulaw or alaw)",
        ]
    );
}

#[test]
fn codecs_the_media_plane_lacks_are_refused_at_their_line() {
    let text = r#"[trunk.a]
kind = "carrier"
contacts = ["sip:a.example"]
allow = ["alaw",
  "opus",
  "g722", "g729"]
"#;
    assert_eq!(
        problems(text),
        vec![
            "trunks.toml:5: trunk.a.allow[1]: codec 'opus' is not available yet (the media plane has ulaw and alaw)",
            "trunks.toml:6: trunk.a.allow[2]: codec 'g722' is not available yet (the media plane has ulaw and alaw)",
            "trunks.toml:6: trunk.a.allow[3]: codec 'g729' is not available yet (the media plane has ulaw and alaw)",
        ]
    );
}

#[test]
fn an_empty_file_has_no_trunks_and_is_valid() {
    let set = Trunks::load("trunks.toml", "# nothing yet\n").unwrap();
    assert!(set.is_empty());
    assert_eq!(set.identify(ip("10.0.0.1")), None);
}

#[test]
fn enabled_defaults_to_true_and_must_be_a_boolean() {
    let set = Trunks::load(
        "trunks.toml",
        "[trunk.a]\nkind = \"carrier\"\ncontacts = [\"sip:10.0.0.1\"]\n\
         [trunk.b]\nenabled = false\nkind = \"carrier\"\ncontacts = [\"sip:10.0.0.2\"]\n",
    )
    .unwrap();
    assert!(set.get("a").unwrap().enabled);
    assert!(!set.get("b").unwrap().enabled);
    assert_eq!((set.len(), set.enabled_len()), (2, 1));
    assert_eq!(
        problems(
            "[trunk.a]\nenabled = \"no\"\nkind = \"carrier\"\ncontacts = [\"sip:10.0.0.1\"]\n"
        ),
        vec!["trunks.toml:2: trunk.a.enabled: expected true or false, found a string"]
    );
}

#[test]
fn a_disabled_trunk_is_still_validated() {
    assert_eq!(
        problems(
            "[trunk.off]\nenabled = false\nkind = \"carrier\"\ncontacts = [\"http://x\"]\nqualify_secs = -1\n"
        ),
        vec![
            "trunks.toml:4: trunk.off.contacts[0]: 'http://x' is not a sip: or sips: URI",
            "trunks.toml:5: trunk.off.qualify_secs: -1 is out of range 0..=86400",
        ]
    );
}

#[test]
fn a_disabled_trunk_identifies_no_source_address() {
    let set = Trunks::load(
        "trunks.toml",
        "[trunk.off]\nenabled = false\nkind = \"carrier\"\ncontacts = [\"sip:10.0.0.1\"]\nidentify = [\"10.0.0.1\"]\n",
    )
    .unwrap();
    assert_eq!(set.identify(ip("10.0.0.1")), None);
}

#[test]
fn placeholders_left_in_an_enabled_trunk_are_warnings_with_line_and_key() {
    let text = r#"[trunk.vox]
kind = "carrier"
contacts = ["sip:10.0.0.1", "sip:sip.vox.example:5060"]
username = "CHANGE-ME-account"
password = "real-secret"
from_domain = "vox.example"
"#;
    let set = Trunks::load("trunks.toml", text).unwrap();
    let warnings: Vec<String> = set.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        vec![
            "trunks.toml:3: trunk.vox.contacts[1]: 'sip:sip.vox.example:5060' is an example host (.example): put the real one, or set enabled = false",
            "trunks.toml:4: trunk.vox.username: 'CHANGE-ME-account' is still a CHANGE-ME placeholder: fill it in, or set enabled = false",
            "trunks.toml:6: trunk.vox.from_domain: 'vox.example' is an example host (.example): put the real one, or set enabled = false",
        ]
    );
    // The same trunk disabled: no warnings.
    let text = format!("{}enabled = false\n", text);
    let set = Trunks::load("trunks.toml", &text).unwrap();
    assert!(set.warnings().is_empty(), "{:?}", set.warnings());
}
