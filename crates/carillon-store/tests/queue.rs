//! The queue engine's tables on SQLite (always) and PostgreSQL (when
//! `CARILLON_TEST_PG_URL` is set): a real engine's persist actions and
//! queue log records go in, a store reopened as after a restart gives the
//! members back to a fresh engine, and the log reads back in order with
//! app_queue's fields.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use carillon_queue::{
    Action, AgentStatus, CallerId, Engine, Join, MemberChange, QueueLogEntry, QueuesConfig,
};
use carillon_store::{QueueLogQuery, QueueLogRow, Store};
use common::run_id;

const BASE_MS: i64 = 1_800_000_000_000;

/// A config with queue `{p}sales` (static member 202) and `{p}support`.
fn config(p: &str) -> QueuesConfig {
    let text = format!(
        "[queue.{p}sales]\nwrapuptime = 5\n[[queue.{p}sales.member]]\nextension = \"202\"\n[queue.{p}support]\n"
    );
    QueuesConfig::load("queues.toml", &text).unwrap()
}

fn drain(e: &mut Engine) -> (Vec<MemberChange>, Vec<QueueLogEntry>, Vec<Action>) {
    let (mut persist, mut log, mut other) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(a) = e.poll_action() {
        match a {
            Action::Persist(c) => persist.push(c),
            Action::Log(l) => log.push(l),
            a => other.push(a),
        }
    }
    (persist, log, other)
}

/// Logs in, pauses and logs out through an engine, stores what it asked
/// for, then reconnects (`url` again) and restores a fresh engine.
async fn members_survive_a_restart(url: &str, p: &str) {
    let cfg = config(p);
    let sales = format!("{p}sales");
    let support = format!("{p}support");
    let now = Instant::now();
    let store = Store::connect(url).await.unwrap();
    let mut e = Engine::new(&cfg, 1);
    let skills = BTreeMap::from([("urdu".to_owned(), 4)]);
    e.handle_add_member(now, &sales, "PJSIP/201", 2, skills.clone())
        .unwrap();
    e.handle_add_member(now, &support, "PJSIP/201", 0, BTreeMap::new())
        .unwrap();
    e.handle_add_member(now, &support, "PJSIP/203", 0, BTreeMap::new())
        .unwrap();
    e.handle_pause(now, "PJSIP/202", "lunch").unwrap();
    let (changes, _, _) = drain(&mut e);
    store.apply_queue_members(&changes, BASE_MS).await.unwrap();
    // Later: 201 pauses (both queues), 203 logs out; 202's row is saved
    // again while still paused (its pause start must not move).
    e.handle_pause(now, "PJSIP/201", "training").unwrap();
    e.handle_remove_member(now, &support, "PJSIP/203").unwrap();
    let (mut changes, _, _) = drain(&mut e);
    changes.push(MemberChange::Upsert(carillon_queue::PersistedMember {
        queue: sales.clone(),
        interface: "PJSIP/202".into(),
        name: None,
        penalty: 0,
        skills: BTreeMap::new(),
        dynamic: false,
        paused: Some("lunch".into()),
    }));
    store
        .apply_queue_members(&changes, BASE_MS + 60_000)
        .await
        .unwrap();
    store.close().await;

    // The restart.
    let store = Store::connect(url).await.unwrap();
    let rows: Vec<_> = store
        .load_queue_members()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.member.queue.starts_with(p))
        .collect();
    let keys: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.member.queue.clone(), r.member.interface.clone()))
        .collect();
    assert_eq!(
        keys,
        [
            (sales.clone(), "PJSIP/201".to_owned()),
            (sales.clone(), "PJSIP/202".to_owned()),
            (support.clone(), "PJSIP/201".to_owned()),
        ]
    );
    let r201 = &rows[0];
    assert!(r201.member.dynamic);
    assert_eq!(r201.member.penalty, 2);
    assert_eq!(r201.member.skills, skills);
    assert_eq!(r201.member.paused.as_deref(), Some("training"));
    assert_eq!(r201.paused_at, Some(BASE_MS + 60_000));
    let r202 = &rows[1];
    assert!(!r202.member.dynamic);
    assert_eq!(r202.paused_at, Some(BASE_MS), "a pause keeps its start");
    assert_eq!(r202.updated_at, BASE_MS + 60_000);

    let mut fresh = Engine::new(&cfg, 1);
    for r in &rows {
        assert!(fresh.restore_member(now, &r.member));
    }
    let members = fresh.members(&sales).unwrap();
    assert_eq!(members.len(), 2);
    assert!(
        matches!(&fresh.agent_status("PJSIP/201"), Some(AgentStatus::Paused { reason, .. }) if reason == "training")
    );
    assert!(
        matches!(&fresh.agent_status("PJSIP/202"), Some(AgentStatus::Paused { reason, .. }) if reason == "lunch")
    );
    assert_eq!(fresh.members(&support).unwrap().len(), 1);
    assert_eq!(fresh.agent_status("PJSIP/203"), None);
    store.close().await;
}

/// A served call and an abandoned one through a real engine, logged.
async fn the_queue_log_reads_back_in_order(url: &str, p: &str) {
    let cfg = config(p);
    let sales = format!("{p}sales");
    let t0 = Instant::now();
    let store = Store::connect(url).await.unwrap();
    let mut e = Engine::new(&cfg, 1);
    e.handle_registration(t0, "PJSIP/202", true);
    let join = |id: u64| Join {
        id: Some(CallerId(id)),
        uniqueid: format!("{p}-{id}"),
        caller_id: "0300123".into(),
        ..Join::default()
    };
    e.handle_join(t0, &sales, join(1)).unwrap();
    let (_, mut log, actions) = drain(&mut e);
    let offer = actions
        .iter()
        .find_map(|a| match a {
            Action::Offer { offer, .. } => Some(*offer),
            _ => None,
        })
        .unwrap();
    let t = t0 + std::time::Duration::from_secs(7);
    e.handle_join(t, &sales, join(2)).unwrap();
    e.handle_answered(t, offer, "PJSIP/202-0001").unwrap();
    let t2 = t + std::time::Duration::from_secs(30);
    e.handle_caller_hangup(t2, CallerId(2)).unwrap();
    e.handle_caller_hangup(t2, CallerId(1)).unwrap();
    log.extend(drain(&mut e).1);
    let rows: Vec<QueueLogRow> = log
        .iter()
        .map(|l| {
            let ms = i64::try_from(l.at.duration_since(t0).as_millis()).unwrap();
            QueueLogRow::from_entry(l, BASE_MS + ms)
        })
        .collect();
    assert_eq!(store.insert_queue_log(&rows).await.unwrap(), 5);
    let got = store
        .fetch_queue_log(&QueueLogQuery {
            queue: Some(sales.clone()),
            ..QueueLogQuery::default()
        })
        .await
        .unwrap();
    let shown: Vec<(i64, String, String, String, [String; 5])> = got
        .into_iter()
        .map(|r| (r.time_ms - BASE_MS, r.callid, r.agent, r.event, r.data))
        .collect();
    let s = |v: &[&str; 5]| v.map(str::to_owned);
    assert_eq!(
        shown,
        [
            (
                0,
                format!("{p}-1"),
                "NONE".into(),
                "ENTERQUEUE".into(),
                s(&["", "0300123", "", "", ""])
            ),
            (
                7_000,
                format!("{p}-2"),
                "NONE".into(),
                "ENTERQUEUE".into(),
                s(&["", "0300123", "", "", ""])
            ),
            (
                7_000,
                format!("{p}-1"),
                "PJSIP/202".into(),
                "CONNECT".into(),
                s(&["7", "PJSIP/202-0001", "7", "", ""])
            ),
            (
                37_000,
                format!("{p}-2"),
                "NONE".into(),
                "ABANDON".into(),
                s(&["1", "2", "30", "", ""])
            ),
            (
                37_000,
                format!("{p}-1"),
                "PJSIP/202".into(),
                "COMPLETECALLER".into(),
                s(&["7", "30", "1", "", ""])
            ),
        ]
    );
    let window = store
        .fetch_queue_log(&QueueLogQuery {
            since_ms: BASE_MS + 1,
            until_ms: BASE_MS + 37_000,
            queue: Some(sales),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(window.len(), 2, "only the rows at 7 s");
    store.close().await;
}

fn sqlite_url(dir: &std::path::Path) -> String {
    format!("sqlite://{}", dir.join("carillon.db").display())
}

#[tokio::test]
async fn sqlite_queue_members_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    members_survive_a_restart(&sqlite_url(dir.path()), "t").await;
}

#[tokio::test]
async fn sqlite_queue_log_reads_back_in_order_with_app_queue_fields() {
    let dir = tempfile::tempdir().unwrap();
    the_queue_log_reads_back_in_order(&sqlite_url(dir.path()), "t").await;
}

fn pg_url(test: &str) -> Option<String> {
    match std::env::var("CARILLON_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            let required = std::env::var("CI").is_ok_and(|v| v == "true")
                || std::env::var("CARILLON_REQUIRE_PEERS").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "{test}: CARILLON_TEST_PG_URL is not set, and this run requires PostgreSQL"
            );
            eprintln!("SKIPPED {test}: CARILLON_TEST_PG_URL is not set");
            None
        }
    }
}

/// A queue name prefix unique to this run (the server is shared).
fn prefix() -> String {
    format!("r{}_", run_id().replace('-', "_"))
}

#[tokio::test]
async fn postgres_queue_members_survive_a_restart() {
    let Some(url) = pg_url("postgres_queue_members_survive_a_restart") else {
        return;
    };
    members_survive_a_restart(&url, &prefix()).await;
}

#[tokio::test]
async fn postgres_queue_log_reads_back_in_order_with_app_queue_fields() {
    let Some(url) = pg_url("postgres_queue_log_reads_back_in_order") else {
        return;
    };
    the_queue_log_reads_back_in_order(&url, &prefix()).await;
}
