//! carillon-store against SQLite files in a temporary directory: bindings,
//! the binding write-behind, CDR storage, and the CDR spool through a real
//! outage (the database path made unusable, then usable again).

mod common;

use std::time::Duration;

use carillon_cdr::{CdrSink, FixedClock};
use carillon_store::{
    BindingChange, BindingWriter, BindingWriterConfig, CallbackQuery, CdrQuery, CdrWriter, Store,
    SystemClock,
};
use common::*;

const NOW: i64 = 1_800_000_000;

fn sqlite_url(dir: &std::path::Path, name: &str) -> String {
    format!("sqlite://{}", dir.join(name).display())
}

#[tokio::test]
async fn bindings_upserted_refreshed_and_removed_survive_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path(), "nested/dir/carillon.db");
    let store = Store::connect(&url).await.unwrap();
    store
        .apply_bindings(&[
            BindingChange::Upsert(full_binding(
                "sip:1001@pbx",
                "sip:1001@192.0.2.1:5060",
                NOW + 60,
            )),
            BindingChange::Upsert(binding("sip:1001@pbx", "sip:1001@192.0.2.2:5060", NOW + 60)),
            BindingChange::Upsert(binding("sip:1001@pbx", "sip:1001@192.0.2.3:5060", NOW + 60)),
            BindingChange::Upsert(binding("sip:1002@pbx", "sip:1002@192.0.2.9:5060", NOW + 60)),
        ])
        .await
        .unwrap();
    let refreshed = carillon_store::BindingRow {
        cseq: 2,
        expires_at: NOW + 3600,
        ..binding("sip:1001@pbx", "sip:1001@192.0.2.2:5060", 0)
    };
    store
        .apply_bindings(&[
            BindingChange::Upsert(refreshed.clone()),
            BindingChange::Remove {
                aor: "sip:1001@pbx".into(),
                contact: "sip:1001@192.0.2.3:5060".into(),
            },
        ])
        .await
        .unwrap();
    assert!(
        dir.path().join("nested/dir/carillon.db-wal").exists(),
        "WAL journal in use"
    );
    store.close().await;

    let store = Store::connect(&url).await.unwrap();
    let loaded = store.load_bindings(NOW).await.unwrap();
    assert_eq!(
        loaded,
        vec![
            full_binding("sip:1001@pbx", "sip:1001@192.0.2.1:5060", NOW + 60),
            refreshed,
            binding("sip:1002@pbx", "sip:1002@192.0.2.9:5060", NOW + 60),
        ]
    );

    store
        .apply_bindings(&[BindingChange::RemoveAor {
            aor: "sip:1001@pbx".into(),
        }])
        .await
        .unwrap();
    let aors: Vec<String> = store
        .load_bindings(NOW)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.aor.to_string())
        .collect();
    assert_eq!(aors, ["sip:1002@pbx"]);
}

#[tokio::test]
async fn expired_bindings_are_not_loaded_and_purge_deletes_exactly_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&sqlite_url(dir.path(), "c.db"))
        .await
        .unwrap();
    store
        .apply_bindings(&[
            BindingChange::Upsert(binding("sip:a@pbx", "sip:a@x", NOW - 1)),
            BindingChange::Upsert(binding("sip:a@pbx", "sip:a@y", NOW)),
            BindingChange::Upsert(binding("sip:a@pbx", "sip:a@z", NOW + 1)),
        ])
        .await
        .unwrap();
    let contacts: Vec<String> = store
        .load_bindings(NOW)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.contact.to_string())
        .collect();
    assert_eq!(contacts, ["sip:a@z"]);
    assert_eq!(store.purge_expired(NOW).await.unwrap(), 2);
    assert_eq!(store.load_bindings(i64::MIN).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_closed_store_reports_the_database_unavailable_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&sqlite_url(dir.path(), "c.db"))
        .await
        .unwrap();
    store.close().await;
    let err = store
        .apply_bindings(&[BindingChange::Upsert(binding(
            "sip:a@pbx",
            "sip:a@x",
            NOW + 60,
        ))])
        .await
        .unwrap_err();
    assert!(
        err.is_connection(),
        "closed pool reads as unavailable: {err}"
    );
    let store = Store::connect(&sqlite_url(dir.path(), "c.db"))
        .await
        .unwrap();
    assert!(store.load_bindings(NOW).await.unwrap().is_empty());
}

#[tokio::test]
async fn binding_writer_flush_returns_after_every_earlier_change_is_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&sqlite_url(dir.path(), "c.db"))
        .await
        .unwrap();
    let writer = BindingWriter::spawn(store.clone());
    for i in 0..300 {
        let aor = format!("sip:{}@pbx", i % 30);
        let mut row = binding(&aor, &format!("sip:{i}@192.0.2.1"), NOW + 60);
        row.cseq = i;
        writer.submit(BindingChange::Upsert(row));
    }
    writer.submit(BindingChange::RemoveAor {
        aor: "sip:0@pbx".into(),
    });
    writer.submit(BindingChange::Remove {
        aor: "sip:1@pbx".into(),
        contact: "sip:1@192.0.2.1".into(),
    });
    writer.flush().await;
    let loaded = store.load_bindings(NOW).await.unwrap();
    assert_eq!(loaded.len(), 300 - 10 - 1);
    assert!(loaded
        .iter()
        .all(|b| &*b.aor != "sip:0@pbx" && &*b.contact != "sip:1@192.0.2.1"));
}

#[tokio::test]
async fn binding_writer_purges_expired_bindings_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&sqlite_url(dir.path(), "c.db"))
        .await
        .unwrap();
    store
        .apply_bindings(&[BindingChange::Upsert(binding(
            "sip:a@pbx",
            "sip:a@x",
            NOW - 5,
        ))])
        .await
        .unwrap();
    let config = BindingWriterConfig {
        purge_interval: Duration::from_millis(10),
        ..Default::default()
    };
    let _writer = BindingWriter::spawn_with(store.clone(), config, FixedClock(NOW * 1000));
    for _ in 0..1000 {
        if store.load_bindings(i64::MIN).await.unwrap().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("expired binding was never purged");
}

#[tokio::test]
async fn cdrs_round_trip_and_a_repeated_uniqueid_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&sqlite_url(dir.path(), "c.db"))
        .await
        .unwrap();
    let mut unanswered = record("u2", 2_000_000);
    unanswered.answer_ms = None;
    unanswered.disposition = carillon_cdr::Disposition::NoAnswer;
    unanswered.trunk = None;
    unanswered.hangup_cause = 19;
    unanswered.recording = None;
    let records = vec![record("u1", 1_000_000), unanswered, record("u3", 3_000_000)];
    assert_eq!(store.insert_cdrs(&records).await.unwrap(), 3);
    assert_eq!(store.insert_cdrs(&records[..1]).await.unwrap(), 0);
    assert_eq!(store.cdr_count().await.unwrap(), 3);
    assert_eq!(
        store.fetch_cdrs(&CdrQuery::default()).await.unwrap(),
        records
    );
    let window = CdrQuery {
        since_ms: 2_000_000,
        until_ms: 3_000_000,
        limit: 10,
    };
    let ids: Vec<String> = store
        .fetch_cdrs(&window)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.uniqueid)
        .collect();
    assert_eq!(ids, ["u2"]);
}

#[tokio::test]
async fn cdr_writer_stores_batches_directly_while_the_database_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&sqlite_url(dir.path(), "c.db"))
        .await
        .unwrap();
    let spool = dir.path().join("cdr.spool");
    let writer = CdrWriter::spawn_with(
        store.clone(),
        spool.clone(),
        SystemClock,
        quick_writer_config(),
    );
    for i in 0..10 {
        writer.submit(record(&format!("d{i}"), i));
    }
    let report = writer.flush().await;
    assert_eq!((report.spooled, report.unsaved), (0, 0));
    assert_eq!(store.cdr_count().await.unwrap(), 10);
    assert!(spool_ids(&spool).is_empty());
    // The figures for metrics, read without asking the task.
    assert_eq!(
        writer.stats(),
        carillon_store::CdrWriterStats {
            stored: 10,
            spooled: 0
        }
    );
}

#[tokio::test]
async fn cdr_writer_spools_while_the_database_path_is_unusable_and_replays_once_it_is() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the database directory should be: opening fails.
    let blocker = dir.path().join("db");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let url = sqlite_url(dir.path(), "db/carillon.db");
    let spool = dir.path().join("spool/cdr.jsonl");
    let writer = CdrWriter::spawn_with(
        url.as_str(),
        spool.clone(),
        FixedClock(42),
        quick_writer_config(),
    );
    for i in 0..5 {
        writer.submit(record(&format!("s{i}"), i));
    }
    let report = writer.flush().await;
    assert_eq!(report.spooled, 5);
    assert_eq!(spool_ids(&spool), ["s0", "s1", "s2", "s3", "s4"]);
    assert_eq!((writer.stats().spooled, writer.stats().stored), (5, 0));

    std::fs::remove_file(&blocker).unwrap();
    wait_until_spool_empty(&writer).await;
    writer.submit(record("s5", 5));
    writer.flush().await;

    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.cdr_count().await.unwrap(), 6);
    assert!(spool_ids(&spool).is_empty(), "spool truncated after replay");
}

#[tokio::test]
async fn a_spool_left_by_an_earlier_run_is_replayed_at_startup_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&sqlite_url(dir.path(), "c.db"))
        .await
        .unwrap();
    store.insert_cdrs(&[record("r1", 1)]).await.unwrap();
    let spool = dir.path().join("cdr.spool");
    let mut text = String::new();
    for id in ["r1", "r2", "r3"] {
        let entry = carillon_store::SpoolEntry {
            spooled_at_ms: 7,
            record: record(id, 1),
        };
        text.push_str(&serde_json::to_string(&entry).unwrap());
        text.push('\n');
    }
    text.push_str("{\"spooled_at_ms\":7,\"record\":{\"uniq"); // cut short by a crash
    std::fs::write(&spool, text).unwrap();

    let writer = CdrWriter::spawn_with(
        store.clone(),
        spool.clone(),
        SystemClock,
        quick_writer_config(),
    );
    wait_until_spool_empty(&writer).await;

    assert_eq!(store.cdr_count().await.unwrap(), 3);
    assert!(spool_ids(&spool).is_empty());
    let rejected = std::fs::read_to_string(dir.path().join("cdr.spool.rejected")).unwrap();
    assert!(rejected.starts_with("{\"spooled_at_ms\":7,\"record\":{\"uniq"));
}

#[tokio::test]
async fn callback_requests_are_stored_pending_listed_by_time_and_status_and_a_repeat_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&sqlite_url(dir.path(), "c.db"))
        .await
        .unwrap();
    let mut bare = callback("u2", 2_000);
    bare.alt_number = None;
    bare.context = None;
    bare.exten = None;
    let new = store
        .insert_callback_requests(&[callback("u1", 1_000), bare.clone(), callback("u3", 3_000)])
        .await
        .unwrap();
    assert_eq!(new, 3);
    // A replay of a stored request (same call, same time) adds nothing.
    let again = store
        .insert_callback_requests(&[callback("u1", 1_000)])
        .await
        .unwrap();
    assert_eq!(again, 0);

    let all = store
        .fetch_callback_requests(&CallbackQuery::default())
        .await
        .unwrap();
    let ids: Vec<&str> = all.iter().map(|r| r.request.uniqueid.as_str()).collect();
    assert_eq!(ids, ["u1", "u2", "u3"]);
    assert!(all.iter().all(|r| r.status == "pending"));
    assert_eq!(all[0].request, callback("u1", 1_000));
    assert_eq!(all[1].request, bare);
    assert!(all[0].id < all[1].id);

    let window = CallbackQuery {
        since_ms: 1_500,
        until_ms: 3_000,
        status: Some("pending".into()),
        limit: 10,
    };
    let got = store.fetch_callback_requests(&window).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].request.uniqueid, "u2");
    let done = CallbackQuery {
        status: Some("done".into()),
        ..CallbackQuery::default()
    };
    assert!(store
        .fetch_callback_requests(&done)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn callback_requests_spool_with_cdrs_while_the_database_is_unusable_and_are_stored_once_it_is(
) {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("db");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let url = sqlite_url(dir.path(), "db/carillon.db");
    let spool = dir.path().join("spool/cdr.jsonl");
    let writer = CdrWriter::spawn_with(
        url.as_str(),
        spool.clone(),
        FixedClock(42),
        quick_writer_config(),
    );
    writer.submit(record("c0", 1));
    writer.submit_callback(callback("c0", 10));
    writer.submit_callback(callback("c1", 11));
    let report = writer.flush().await;
    assert_eq!(report.spooled, 3);
    assert_eq!(spooled_callbacks(&spool), 2);

    std::fs::remove_file(&blocker).unwrap();
    wait_until_spool_empty(&writer).await;
    writer.submit_callback(callback("c2", 12)); // straight to the database
    assert_eq!(writer.flush().await.spooled, 0);

    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.cdr_count().await.unwrap(), 1);
    let ids: Vec<String> = store
        .fetch_callback_requests(&CallbackQuery::default())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.request.uniqueid)
        .collect();
    assert_eq!(ids, ["c0", "c1", "c2"]);
    assert_eq!(spooled_callbacks(&spool), 0, "spool truncated after replay");
}

#[test]
fn a_callback_request_submitted_after_the_runtime_stopped_lands_in_the_spool_and_is_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("cdr.spool");
    let url = sqlite_url(dir.path(), "c.db");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let writer = runtime.block_on(async {
        let store = Store::connect(&url).await.unwrap();
        CdrWriter::spawn(store, spool.clone(), SystemClock)
    });
    drop(runtime);
    writer.submit_callback(callback("late", 1));
    assert_eq!(spooled_callbacks(&spool), 1);

    // The next start replays it.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = Store::connect(&url).await.unwrap();
        let writer = CdrWriter::spawn_with(
            store.clone(),
            spool.clone(),
            SystemClock,
            quick_writer_config(),
        );
        wait_until_spool_empty(&writer).await;
        let rows = store
            .fetch_callback_requests(&CallbackQuery::default())
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].request, callback("late", 1));
    });
}

#[test]
fn a_record_submitted_after_the_runtime_stopped_lands_in_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("cdr.spool");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let writer = runtime.block_on(async {
        let store = Store::connect(&sqlite_url(dir.path(), "c.db"))
            .await
            .unwrap();
        CdrWriter::spawn(store, spool.clone(), SystemClock)
    });
    drop(runtime);
    writer.submit(record("late", 1));
    assert_eq!(spool_ids(&spool), ["late"]);
}

#[tokio::test]
async fn voicemail_messages_and_pins_round_trip_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&sqlite_url(dir.path(), "vm.db"))
        .await
        .unwrap();
    voicemail_round_trip(&store, "600").await;
}

#[tokio::test]
async fn cdrs_are_searched_by_time_src_dst_and_disposition_in_stable_pages() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&sqlite_url(dir.path(), "c.db"))
        .await
        .unwrap();
    check_cdr_search(&store, "lite", 5_000_000).await;
}
