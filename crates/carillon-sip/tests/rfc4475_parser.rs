//! RFC 4475 torture messages through the parser and the stateless request
//! checks, table-driven: every message in `tests/rfc4475/` (a copy of
//! `shared/conformance/rfc4475`) must produce what its MANIFEST line and
//! RFC section require.

use bytes::Bytes;
use carillon_sip::validate::response_is_usable;
use carillon_sip::{validate_request, HeaderName, Message, Method};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Parses and passes the stateless checks.
    Accept,
    /// A request owed this status.
    Status(u16),
    /// A response that must be dropped silently.
    Drop,
}

/// The expectations of `tests/rfc4475/EXPECTED.tsv` (shared with the
/// other RFC 4475 test), column `parser`.
fn table() -> Vec<(String, Expect)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rfc4475/EXPECTED.tsv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("file\t"))
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let v = cols[1];
            let want = match v {
                "accept" => Expect::Accept,
                "drop" => Expect::Drop,
                code => Expect::Status(
                    code.parse()
                        .unwrap_or_else(|_| panic!("bad expectation {code} in {l}")),
                ),
            };
            (cols[0].to_owned(), want)
        })
        .collect()
}

fn load(name: &str) -> Bytes {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/rfc4475")
        .join(name);
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn outcome(bytes: Bytes) -> Expect {
    let is_response = bytes.starts_with(b"SIP/");
    match Message::parse(bytes) {
        Err(e) if is_response => {
            let _ = e;
            Expect::Drop
        }
        Err(e) => Expect::Status(e.status()),
        Ok(m) if !m.is_request() => {
            if response_is_usable(&m) {
                Expect::Accept
            } else {
                Expect::Drop
            }
        }
        Ok(m) => match validate_request(&m) {
            Ok(()) => Expect::Accept,
            Err(r) => Expect::Status(r.status),
        },
    }
}

#[test]
fn every_manifest_message_is_in_the_table() {
    let manifest = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rfc4475/MANIFEST.tsv"),
    )
    .unwrap();
    let files: Vec<&str> = manifest
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next())
        .collect();
    assert_eq!(files.len(), 49);
    for f in files {
        assert!(
            table().iter().any(|(n, _)| n == f),
            "{f} missing from the table"
        );
    }
}

#[test]
fn every_torture_message_produces_what_rfc_4475_requires() {
    let mut failures = Vec::new();
    for (name, want) in table() {
        let got = outcome(load(&name));
        if got != want {
            failures.push(format!("{name}: want {want:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_folded_wsinv_message_reads_correctly() {
    let m = Message::parse(load("wsinv.dat")).unwrap();
    assert_eq!(m.cseq().unwrap().seq, 9);
    assert_eq!(m.cseq().unwrap().method, Method::Invite);
    assert_eq!(m.tag(HeaderName::To).as_deref(), Some("1918181833n"));
    assert_eq!(m.tag(HeaderName::From).as_deref(), Some("98asjd8"));
    assert_eq!(m.header_list(HeaderName::Via).unwrap().len(), 3);
    assert_eq!(
        m.header_named("NewFangledHeader").unwrap(),
        "newfangled value continued newfangled value"
    );
    assert_eq!(
        m.header_named("UnknownHeaderWithUnusualValue").unwrap(),
        ";;,,;;,;"
    );
    assert_eq!(m.body().len(), 150);
}

#[test]
fn escnull_gives_two_distinct_contacts_and_an_untruncated_aor() {
    let m = Message::parse(load("escnull.dat")).unwrap();
    let contacts = m.header_list(HeaderName::Contact).unwrap();
    assert_eq!(contacts.len(), 2);
    assert_ne!(contacts[0], contacts[1]);
    let aor = m
        .with_name_addr(HeaderName::To, |n| {
            n.uri.user_unescaped().unwrap().into_owned()
        })
        .unwrap();
    assert_eq!(aor, "null-\0-null");
}

#[test]
fn esc02_method_is_not_register() {
    let m = Message::parse(load("esc02.dat")).unwrap();
    assert_eq!(m.method(), Some(&Method::Other("RE%47IST%45R".into())));
}

#[test]
fn dblreq_keeps_only_the_first_message() {
    let m = Message::parse(load("dblreq.dat")).unwrap();
    assert_eq!(m.method(), Some(&Method::Register));
    assert!(m.body().is_empty());
}

#[test]
fn contact_params_land_where_rfc_4475_says() {
    let m = Message::parse(load("cparam01.dat")).unwrap();
    let c = m
        .with_name_addr(HeaderName::Contact, |n| {
            (
                n.uri.params.is_empty(),
                n.params.get("unknownparam").is_some(),
            )
        })
        .unwrap();
    assert_eq!(c, (true, true));
    let m = Message::parse(load("cparam02.dat")).unwrap();
    let c = m
        .with_name_addr(HeaderName::Contact, |n| {
            (
                n.uri.param("unknownparam").is_some(),
                n.params.get("unknownparam").is_some(),
            )
        })
        .unwrap();
    assert_eq!(c, (true, false));
    let m = Message::parse(load("regescrt.dat")).unwrap();
    let h = m
        .with_name_addr(HeaderName::Contact, |n| n.uri.headers.map(str::to_owned))
        .unwrap();
    assert_eq!(h.as_deref(), Some("Route=%3Csip:sip.example.com%3E"));
}

#[test]
fn semiuri_user_part_keeps_its_semicolon() {
    let m = Message::parse(load("semiuri.dat")).unwrap();
    let u = m.request_uri().unwrap();
    assert_eq!(u.user, Some("user;par=u%40example.net"));
}

#[test]
fn bext01_lists_both_unknown_options() {
    let m = Message::parse(load("bext01.dat")).unwrap();
    let r = validate_request(&m).unwrap_err();
    assert_eq!(
        r.unsupported,
        vec!["nothingSupportsThis", "nothingSupportsThisEither"]
    );
}
