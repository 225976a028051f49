//! CDRs written by the real switch: after an answered call of about 3 s
//! and a call cancelled while ringing (SIPp on both sides), the database
//! holds one ANSWERED row (billsec 3 ± 1) and one CANCEL row (no answer,
//! billsec 0) — in SQLite, and in PostgreSQL when `CARILLON_TEST_PG_URL`
//! is set (`tests/pg-setup.sh` prints one; without it those tests say they
//! were skipped and pass).
//!
//! The outage tests: with PostgreSQL behind a TCP forwarder the test owns,
//! the forwarder is cut (live connections closed, new ones refused) while a
//! call ends; its CDR must land in the spool file, and once the forwarder
//! is back the row must appear in the database exactly once and the spool
//! must empty. And the switch must start, and spool, when the database is
//! unreachable at boot.

mod callsupport;

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use callsupport::*;
use carillon_cdr::{CallRecord, Disposition};

/// The PostgreSQL tests share one database: they run one at a time, so
/// that their switches never number a call alike in the same second (the
/// CDR `uniqueid` is `<unix seconds>.<call number>`, and an insert that
/// meets an existing `uniqueid` is silently skipped).
static PG: Mutex<()> = Mutex::new(());

fn pg_lock() -> MutexGuard<'static, ()> {
    PG.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One answered call (uac_auth_pcap.xml: 3 s between ACK and BYE) and one
/// cancelled while ringing, both 100 → 101, one after the other.
fn answered_then_cancelled(env: &mut CallEnv, sw: &Switch, uas_sip: u16, uas_media: u16) {
    write_tone_pcap(&env.path().join("tone.pcap"), 2, 440.0);
    let mut uas = start_uas(env, "uas-answer", None, uas_sip, uas_media, 1);
    let run = run_uac(env, sw, "uac-answer", "uac_auth_pcap.xml", &[], 1, 1);
    let uas_run = uas.wait();
    assert!(
        run.ok() && uas_run.ok(),
        "answered call failed: UAC {:?}, UAS {:?}\n{}",
        run.status,
        uas_run.status,
        describe(env, sw, &["uac-answer", "uas-answer"])
    );
    let mut uas = start_uas(
        env,
        "uas-cancel",
        Some("calls_uas_cancel.xml"),
        uas_sip,
        uas_media,
        1,
    );
    let run = run_uac(env, sw, "uac-cancel", "calls_uac_cancel.xml", &[], 1, 1);
    // The UAS's verdict is calls_sipp's business (it also wants the ACK
    // of its 487); here only the caller's side and the CDR matter.
    drop(uas.terminate(Duration::from_secs(1)));
    assert!(
        run.ok(),
        "cancelled call did not end in 487: {:?}\n{}",
        run.status,
        describe(env, sw, &["uac-cancel", "uas-cancel"])
    );
}

/// Waits (bounded) until the database holds at least `n` CDRs of 100 → 101
/// started since `since_ms`.
fn wait_cdrs(url: &str, since_ms: i64, n: usize, timeout: Duration) -> Vec<CallRecord> {
    wait_for_cdrs(url, since_ms, n, timeout, |r| {
        r.src == "100" && r.dst == "101"
    })
}

fn check_answered_and_cancelled(rows: &[CallRecord], log: &str) {
    let answered: Vec<_> = rows
        .iter()
        .filter(|r| r.disposition == Disposition::Answered)
        .collect();
    let cancelled: Vec<_> = rows
        .iter()
        .filter(|r| r.disposition == Disposition::Cancel)
        .collect();
    assert_eq!(
        (answered.len(), cancelled.len(), rows.len()),
        (1, 1, 2),
        "expected one ANSWERED and one CANCEL row, got {rows:#?}\nlog:\n{log}"
    );
    let a = answered[0];
    assert!(
        (2..=4).contains(&a.billsec()),
        "the answered call lasted 3 s; billsec {} in {a:#?}",
        a.billsec()
    );
    assert!(
        a.answer_ms.is_some(),
        "answered row without answer time: {a:#?}"
    );
    assert!(a.duration() >= a.billsec(), "{a:#?}");
    assert_eq!(a.dcontext, "internal", "{a:#?}");
    let c = cancelled[0];
    assert_eq!(
        c.answer_ms, None,
        "cancelled call has an answer time: {c:#?}"
    );
    assert_eq!(c.billsec(), 0, "{c:#?}");
    assert!(c.end_ms >= c.start_ms, "{c:#?}");
    assert_ne!(a.uniqueid, c.uniqueid);
    // The log names the same dispositions, once per call.
    let ended: Vec<&str> = log.lines().filter(|l| l.contains("call ended")).collect();
    assert_eq!(ended.len(), 2, "log:\n{log}");
}

#[test]
fn sqlite_holds_an_answered_cdr_with_its_billsec_and_a_cancelled_one() {
    require_sipp();
    let mut env = CallEnv::new(&Options::default());
    let since = unix_ms() - 1000;
    let (mut sw, uas_sip, uas_media) = switch_with_101(&mut env);
    answered_then_cancelled(&mut env, &sw, uas_sip, uas_media);
    let rows = wait_cdrs(&env.db_url, since, 2, Duration::from_secs(10));
    sw.assert_idle(Duration::from_secs(10));
    sw.stop();
    let rows_after_stop = wait_cdrs(&env.db_url, since, 2, Duration::from_secs(1));
    assert_eq!(
        rows.len(),
        rows_after_stop.len(),
        "rows appeared or vanished at shutdown"
    );
    check_answered_and_cancelled(&rows_after_stop, &sw.log());
}

#[test]
fn postgres_holds_an_answered_cdr_with_its_billsec_and_a_cancelled_one() {
    let Some(url) = pg_url() else {
        return;
    };
    require_sipp();
    let _serial = pg_lock();
    forget_bindings(&url, &["100", "101"]).expect("clean earlier bindings of 100/101");
    let mut env = CallEnv::new(&Options {
        db_url: Some(url.clone()),
        ..Options::default()
    });
    let since = unix_ms() - 1000;
    let (mut sw, uas_sip, uas_media) = switch_with_101(&mut env);
    answered_then_cancelled(&mut env, &sw, uas_sip, uas_media);
    let rows = wait_cdrs(&url, since, 2, Duration::from_secs(10));
    sw.assert_idle(Duration::from_secs(10));
    sw.stop();
    let _ = forget_bindings(&url, &["100", "101"]);
    check_answered_and_cancelled(&rows, &sw.log());
}

/// The uniqueids of the records in a spool file (JSON lines).
fn spooled_ids(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let i = l.find("\"uniqueid\":\"")? + "\"uniqueid\":\"".len();
            let rest = &l[i..];
            Some(rest[..rest.find('"')?].to_owned())
        })
        .collect()
}

fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_cdr_written_while_postgres_is_cut_off_is_spooled_then_stored_exactly_once() {
    let Some(url) = pg_url() else {
        return;
    };
    require_sipp();
    let _serial = pg_lock();
    forget_bindings(&url, &["100", "101"]).expect("clean earlier bindings of 100/101");
    let fwd_port = free_port();
    let (upstream, via_fwd) = pg_retarget(&url, fwd_port);
    let forwarder = Forwarder::start(fwd_port, upstream);
    let mut env = CallEnv::new(&Options {
        db_url: Some(via_fwd),
        ..Options::default()
    });
    let since = unix_ms() - 1000;
    let (mut sw, uas_sip, uas_media) = switch_with_101(&mut env);

    // The database "crashes": every pooled connection is cut and new ones
    // are refused.
    forwarder.stop();
    write_tone_pcap(&env.path().join("tone.pcap"), 2, 440.0);
    let mut uas = start_uas(&env, "uas-outage", None, uas_sip, uas_media, 1);
    let run = run_uac(&env, &sw, "uac-outage", "uac_auth_pcap.xml", &[], 1, 1);
    let uas_run = uas.wait();
    assert!(
        run.ok() && uas_run.ok(),
        "call during the outage failed: UAC {:?}, UAS {:?}\n{}",
        run.status,
        uas_run.status,
        describe(&env, &sw, &["uac-outage", "uas-outage"])
    );
    let spool = env.spool_path();
    let spooled = wait_until(Duration::from_secs(20), || !spooled_ids(&spool).is_empty());
    assert!(
        spooled,
        "the CDR did not reach the spool file {} within 20 s of the call's end\nlog:\n{}",
        spool.display(),
        sw.log()
    );
    let ids = spooled_ids(&spool);
    assert_eq!(ids.len(), 1, "one call, one spooled record: {ids:?}");
    let id = ids[0].clone();
    let stored = |u: &str| -> Vec<CallRecord> {
        fetch_cdrs(u, since, i64::MAX)
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.uniqueid == id)
            .collect()
    };
    assert!(
        stored(&url).is_empty(),
        "the row is in the database although the database was unreachable"
    );

    // The database comes back on the same address.
    let forwarder = Forwarder::start(fwd_port, upstream);
    let replayed = wait_until(Duration::from_secs(45), || {
        stored(&url).len() == 1 && spooled_ids(&spool).is_empty()
    });
    let rows = stored(&url);
    assert!(
        replayed,
        "within 45 s of the database's return: {} row(s) with uniqueid {id}, spool holds {:?}\nlog:\n{}",
        rows.len(),
        spooled_ids(&spool),
        sw.log()
    );
    sw.stop();
    let rows = stored(&url);
    assert_eq!(
        rows.len(),
        1,
        "the replayed CDR must be stored exactly once"
    );
    assert_eq!(rows[0].disposition, Disposition::Answered, "{:#?}", rows[0]);
    assert!(
        (2..=4).contains(&rows[0].billsec()),
        "billsec of the spooled call: {:#?}",
        rows[0]
    );
    assert!(
        spooled_ids(&spool).is_empty(),
        "the spool still holds records after the replay and a clean stop"
    );
    drop(forwarder);
    let _ = forget_bindings(&url, &["100", "101"]);
}

#[test]
fn the_switch_starts_and_spools_cdrs_when_the_database_is_down_at_boot() {
    require_sipp();
    // PostgreSQL URL on a port where nothing listens: every connection
    // attempt is refused, as with a stopped server.
    let dead = free_port();
    let mut env = CallEnv::new(&Options {
        db_url: Some(format!(
            "postgres://carillon:carillon@127.0.0.1:{dead}/carillon"
        )),
        ..Options::default()
    });
    let mut sw = env.spawn_raw();
    let ready = wait_until(Duration::from_secs(15), || {
        sw.log().matches("SIP listener ready").count() >= 2 || !sw.is_running()
    }) && sw.is_running();
    if !ready {
        let exited = sw.wait_exit(Duration::from_millis(100));
        panic!(
            "the switch did not start while its database was unreachable (exit: {exited:?}); \
             CDRs are meant to be spooled while the database is down.\nlog:\n{}",
            sw.log()
        );
    }
    let uas_sip = free_port_span(1);
    let uas_media = free_port_span(3);
    sipp_register(&sw, env.path(), "101", PW101, uas_sip);
    let mut uas = start_uas(
        &env,
        "uas-down",
        Some("calls_uas_cancel.xml"),
        uas_sip,
        uas_media,
        1,
    );
    let run = run_uac(&env, &sw, "uac-down", "calls_uac_cancel.xml", &[], 1, 1);
    drop(uas.terminate(Duration::from_secs(1)));
    assert!(
        run.ok(),
        "{}",
        describe(&env, &sw, &["uac-down", "uas-down"])
    );
    let spool = env.spool_path();
    assert!(
        wait_until(Duration::from_secs(20), || spooled_ids(&spool).len() == 1),
        "the CDR was not spooled within 20 s; spool {:?}\nlog:\n{}",
        spooled_ids(&spool),
        sw.log()
    );
    sw.stop();
}
