//! `carillon check-config DIR`: the example configuration passes; a broken
//! one exits 1 with one `file:line: key: message` line per problem.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{bin, example_config, run_tool, ToolRun};

fn check(dir: &Path, scratch: &Path) -> ToolRun {
    let mut cmd = Command::new(bin());
    cmd.arg("check-config").arg(dir);
    run_tool(cmd, scratch, "check-config", Duration::from_secs(30))
}

/// `(file name, line, key)` of every `file:line: key: message` line;
/// panics on a line of any other form.
fn problems(stdout: &str) -> Vec<(String, usize, String)> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut parts = l.splitn(4, ": ");
            let loc = parts.next().unwrap_or_default();
            let key = parts.next().unwrap_or_default();
            let message = parts.next().unwrap_or_default();
            let (file, line) = loc
                .rsplit_once(':')
                .unwrap_or_else(|| panic!("no file:line in {l:?}"));
            let line: usize = line
                .parse()
                .unwrap_or_else(|_| panic!("line is not a number in {l:?}"));
            assert!(!key.is_empty() && !key.contains(' '), "bad key in {l:?}");
            assert!(!message.trim().is_empty(), "no message in {l:?}");
            let name = Path::new(file)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, line, key.to_owned())
        })
        .collect()
}

#[test]
fn the_example_config_passes() {
    let scratch = tempfile::tempdir().unwrap();
    let run = check(&example_config(), scratch.path());
    assert_eq!(
        run.status.and_then(|s| s.code()),
        Some(0),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
}

const BROKEN_MAIN: &str = r#"[general]
realm = "x"

[[listen]]
transport = "sctp"
address = "127.0.0.1:5060"

[[listen]]
transport = "udp"
address = "nowhere"

[security]
exempt = ["not-an-ip"]
digest_algorithms = ["MD4"]

[rtp]
port_min = 20000
port_max = 10000
"#;

const BROKEN_USERS: &str = r#"[[user]]
extension = "100"
password = "short"

[[user]]
extension = "100"
password = "longenough"
"#;

#[test]
fn every_problem_of_a_broken_config_is_reported_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(example_config()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    std::fs::write(dir.path().join("carillon.toml"), BROKEN_MAIN).unwrap();
    std::fs::write(dir.path().join("users.toml"), BROKEN_USERS).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let run = check(dir.path(), scratch.path());
    assert_eq!(
        run.status.and_then(|s| s.code()),
        Some(1),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    let got = problems(&run.stdout);
    let want = [
        ("carillon.toml", 5, "listen[0].transport"),
        ("carillon.toml", 10, "listen[1].address"),
        ("carillon.toml", 13, "security.exempt[0]"),
        ("carillon.toml", 14, "security.digest_algorithms[0]"),
        ("carillon.toml", 17, "rtp.port_min"),
        ("users.toml", 3, "user[0].password"),
        ("users.toml", 6, "user[1].extension"),
    ];
    let missing: Vec<_> = want
        .iter()
        .filter(|(f, l, k)| !got.iter().any(|(gf, gl, gk)| gf == f && gl == l && gk == k))
        .collect();
    assert!(
        missing.is_empty(),
        "missing {missing:?}; check-config printed:\n{}",
        run.stdout
    );
    assert_eq!(got.len(), want.len(), "{}", run.stdout);
}

#[test]
fn a_type_error_is_reported_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(example_config()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    std::fs::write(
        dir.path().join("carillon.toml"),
        "[[listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1:5060\"\n\n[registrar]\nmin_expires = \"soon\"\n",
    )
    .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let run = check(dir.path(), scratch.path());
    assert_eq!(run.status.and_then(|s| s.code()), Some(1), "{}", run.stdout);
    let got = problems(&run.stdout);
    assert_eq!(
        got,
        vec![(
            "carillon.toml".to_owned(),
            6,
            "registrar.min_expires".to_owned()
        )],
        "{}",
        run.stdout
    );
}
