//! SIPp registers 1,000 distinct users with digest authentication
//! (`tests/sipp/register_auth.xml`); every registration must succeed, and
//! after SIGTERM every binding must be in the database.

mod common;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use common::{free_port, generated_users, have, run_tool, stored_bindings, Env, Options, V4};

const FIRST: u32 = 20000;
const USERS: u32 = 1000;

/// The last data row of a SIPp `-trace_stat` file, as column → value.
fn last_stats(csv: &str) -> Vec<(String, String)> {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let Some(last) = lines.next_back() else {
        return Vec::new();
    };
    header
        .split(';')
        .zip(last.split(';'))
        .map(|(h, v)| (h.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn stat(stats: &[(String, String)], column: &str) -> Option<u64> {
    stats
        .iter()
        .find(|(h, _)| h == column)
        .and_then(|(_, v)| v.parse().ok())
}

#[test]
fn sipp_registers_a_thousand_users_and_every_binding_is_persisted() {
    assert!(
        have("sipp"),
        "sipp is not installed (Debian package sip-tester)"
    );
    let users = generated_users(FIRST, USERS);
    let mut env = Env::new(
        &Options::default()
            .users(users)
            .security("exempt", "[\"127.0.0.1\"]"),
    );
    let mut sw = env.start();

    let mut csv = String::from("SEQUENTIAL\n");
    for ext in FIRST..FIRST + USERS {
        let _ = writeln!(
            csv,
            "{ext};[authentication username={ext} password=pw{ext}secret]"
        );
    }
    let csv_path = env.path().join("users.csv");
    std::fs::write(&csv_path, csv).unwrap();
    let stats_path = env.path().join("sipp-stats.csv");
    let scenario = common::repo_root().join("tests/sipp/register_auth.xml");
    let local_port = free_port(&[V4]);

    let mut cmd = Command::new("sipp");
    cmd.current_dir(env.path())
        .arg(sw.addr().to_string())
        .args(["-sf", &scenario.display().to_string()])
        .args(["-inf", &csv_path.display().to_string()])
        .args(["-i", "127.0.0.1", "-p", &local_port.to_string()])
        .args(["-m", &USERS.to_string(), "-r", "200", "-l", "200"])
        .args(["-timeout", "60s", "-timeout_error"])
        .args(["-trace_stat", "-stf", &stats_path.display().to_string()])
        .args(["-fd", "1", "-nostdin", "-trace_err"]);
    let run = run_tool(cmd, env.path(), "sipp", Duration::from_secs(90));
    eprintln!(
        "sipp: status {:?} after {:.1} s",
        run.status,
        run.elapsed.as_secs_f64()
    );
    let stats = last_stats(&std::fs::read_to_string(&stats_path).unwrap_or_default());
    let ok = stat(&stats, "SuccessfulCall(C)");
    let failed = stat(&stats, "FailedCall(C)");
    eprintln!("sipp: {ok:?} successful, {failed:?} failed");
    let errors = std::fs::read_dir(env.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with("_errors.log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        run.status.and_then(|s| s.code()),
        Some(0),
        "sipp failed: stderr {}\nerrors: {}",
        run.stderr,
        errors.chars().take(4000).collect::<String>()
    );
    assert_eq!(ok, Some(u64::from(USERS)), "successful registrations");
    assert_eq!(failed, Some(0), "failed registrations");

    let status = sw.stop();
    assert!(
        status.success(),
        "carillon exited with {status}; log:\n{}",
        sw.log()
    );
    let rows = stored_bindings(&env.db_url());
    let aors: HashSet<&str> = rows.iter().map(|r| &*r.aor).collect();
    assert_eq!(rows.len(), USERS as usize, "persisted bindings");
    assert_eq!(aors.len(), USERS as usize, "distinct persisted AORs");
    assert!(
        rows.iter()
            .all(|r| r.contact.contains(&format!(":{local_port}"))),
        "every binding points at SIPp's port {local_port}"
    );
}
