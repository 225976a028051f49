//! carillon-store against PostgreSQL.
//!
//! Tests that need a server read its URL from `CARILLON_TEST_PG_URL`
//! (`tests/pg-setup.sh` prints one); without it they say they were skipped
//! and pass.
//!
//! The outage test does not stop the shared server. The writer is pointed at
//! a port on 127.0.0.1 where nothing listens, so every connection attempt is
//! refused exactly as with a stopped database; then a TCP forwarder to the
//! real server is opened on that port (the database "comes back"), later
//! closed while the writer's pooled connections are live (the database
//! "crashes"), and opened again. The spool half runs even without a server.

mod common;

use carillon_cdr::{CdrSink, FixedClock};
use std::time::Duration;

use carillon_store::{
    BindingChange, BindingWriter, BindingWriterConfig, CallbackQuery, CdrQuery, CdrWriter, Store,
    StoreOptions,
};
use common::*;

const NOW: i64 = 1_800_000_000;

fn pg_url(test: &str) -> Option<String> {
    match std::env::var("CARILLON_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            // CI and tests/run.sh must have the database: fail there.
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

#[tokio::test]
async fn postgres_bindings_round_trip_and_remove_aor_deletes_every_contact() {
    let Some(url) = pg_url("postgres_bindings_round_trip") else {
        return;
    };
    let run = run_id();
    let aor = format!("sip:{run}@pbx");
    let store = Store::connect(&url).await.unwrap();
    let first = full_binding(&aor, "sip:a@192.0.2.1", NOW + 60);
    let second = binding(&aor, "sip:b@192.0.2.2", NOW + 60);
    store
        .apply_bindings(&[
            BindingChange::Upsert(first.clone()),
            BindingChange::Upsert(binding(&aor, "sip:b@192.0.2.2", NOW + 1)),
            BindingChange::Upsert(second.clone()),
            BindingChange::Upsert(binding(&aor, "sip:c@192.0.2.3", NOW - 1)),
        ])
        .await
        .unwrap();
    let reopened = Store::connect(&url).await.unwrap();
    let mine: Vec<_> = reopened
        .load_bindings(NOW)
        .await
        .unwrap()
        .into_iter()
        .filter(|b| *b.aor == *aor)
        .collect();
    assert_eq!(mine, vec![first, second]);

    assert!(reopened.purge_expired(NOW).await.unwrap() >= 1);
    reopened
        .apply_bindings(&[BindingChange::RemoveAor {
            aor: aor.as_str().into(),
        }])
        .await
        .unwrap();
    assert!(reopened
        .load_bindings(i64::MIN)
        .await
        .unwrap()
        .iter()
        .all(|b| *b.aor != *aor));
}

#[tokio::test]
async fn postgres_rolls_back_the_whole_binding_batch_when_one_change_is_refused() {
    let Some(url) = pg_url("postgres_rolls_back_the_whole_binding_batch") else {
        return;
    };
    let aor = format!("sip:{}@pbx", run_id());
    let store = Store::connect(&url).await.unwrap();
    let refused = binding(&aor, "sip:bad\0nul@192.0.2.1", NOW + 60); // TEXT cannot hold NUL
    let err = store
        .apply_bindings(&[
            BindingChange::Upsert(binding(&aor, "sip:good@192.0.2.1", NOW + 60)),
            BindingChange::Upsert(refused),
        ])
        .await
        .unwrap_err();
    assert!(
        !err.is_connection(),
        "a data error, not a connection error: {err}"
    );
    assert!(store
        .load_bindings(NOW)
        .await
        .unwrap()
        .iter()
        .all(|b| *b.aor != *aor));
}

#[tokio::test]
async fn postgres_cdrs_round_trip() {
    let Some(url) = pg_url("postgres_cdrs_round_trip") else {
        return;
    };
    let run = run_id();
    let base = unique_base_ms(1);
    let store = Store::connect(&url).await.unwrap();
    let records: Vec<_> = (0..3)
        .map(|i| record(&format!("{run}-rt{i}"), base + i))
        .collect();
    assert_eq!(store.insert_cdrs(&records).await.unwrap(), 3);
    assert_eq!(store.insert_cdrs(&records).await.unwrap(), 0);
    let window = CdrQuery {
        since_ms: base,
        until_ms: base + 1000,
        limit: 100,
    };
    assert_eq!(store.fetch_cdrs(&window).await.unwrap(), records);
    assert!(store.cdr_count().await.unwrap() >= 3);
}

#[tokio::test]
async fn cdr_writer_refused_record_goes_to_the_rejected_file_and_the_rest_are_stored() {
    let Some(url) = pg_url("cdr_writer_refused_record") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = run_id();
    let base = unique_base_ms(2);
    let spool = dir.path().join("cdr.spool");
    let writer = CdrWriter::spawn_with(
        url.as_str(),
        spool.clone(),
        FixedClock(1),
        quick_writer_config(),
    );
    let mut bad = record(&format!("{run}-bad"), base + 1);
    bad.userfield = Some("nul\0byte".to_owned());
    writer.submit(record(&format!("{run}-ok0"), base));
    writer.submit(bad);
    writer.submit(record(&format!("{run}-ok2"), base + 2));
    let report = writer.flush().await;
    assert_eq!((report.spooled, report.unsaved), (0, 0));

    let store = Store::connect(&url).await.unwrap();
    let window = CdrQuery {
        since_ms: base,
        until_ms: base + 1000,
        limit: 100,
    };
    let ids: Vec<String> = store
        .fetch_cdrs(&window)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.uniqueid)
        .collect();
    assert_eq!(ids, [format!("{run}-ok0"), format!("{run}-ok2")]);
    assert_eq!(
        spool_ids(&dir.path().join("cdr.spool.rejected")),
        [format!("{run}-bad")]
    );
}

#[tokio::test]
async fn cdr_writer_spools_through_a_postgres_outage_and_stores_each_record_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("cdr.spool");
    let real_url = pg_url("the recovery half of the outage test");
    let template = real_url
        .clone()
        .unwrap_or_else(|| "postgres://carillon:carillon@127.0.0.1:5432/carillon".into());
    let (upstream, url_at) = pg_upstream(&template);
    let port = closed_port();
    let writer_url = url_at(port);
    let run = run_id();
    let base = unique_base_ms(3);
    let id = |i: i64| format!("{run}-o{i}");

    // Down since boot: nothing listens on the port.
    let writer = CdrWriter::spawn_with(
        writer_url.as_str(),
        spool.clone(),
        FixedClock(5),
        quick_writer_config(),
    );
    for i in 0..5 {
        writer.submit(record(&id(i), base + i));
    }
    assert_eq!(writer.flush().await.spooled, 5);
    assert_eq!(spool_ids(&spool), (0..5).map(id).collect::<Vec<_>>());

    let Some(real_url) = real_url else {
        return;
    };

    // The database answers: the spool is replayed and truncated.
    let forwarder = Forwarder::start(port, upstream).await;
    wait_until_spool_empty(&writer).await;
    assert!(spool_ids(&spool).is_empty());
    writer.submit(record(&id(5), base + 5)); // straight to the database
    assert_eq!(writer.flush().await.spooled, 0);

    // The database dies under live pooled connections, then comes back.
    forwarder.stop().await;
    for i in 6..9 {
        writer.submit(record(&id(i), base + i));
    }
    assert_eq!(writer.flush().await.spooled, 3);
    assert_eq!(spool_ids(&spool), (6..9).map(id).collect::<Vec<_>>());
    let forwarder = Forwarder::start(port, upstream).await;
    wait_until_spool_empty(&writer).await;

    let store = Store::connect(&real_url).await.unwrap();
    let window = CdrQuery {
        since_ms: base,
        until_ms: base + 1000,
        limit: 100,
    };
    let ids: Vec<String> = store
        .fetch_cdrs(&window)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.uniqueid)
        .collect();
    assert_eq!(
        ids,
        (0..9).map(id).collect::<Vec<_>>(),
        "every record exactly once"
    );
    assert!(!dir.path().join("cdr.spool.rejected").exists());
    forwarder.stop().await;
}

#[tokio::test]
async fn binding_writer_keeps_changes_through_a_postgres_outage_and_commits_them_after() {
    let Some(url) = pg_url("binding_writer_keeps_changes_through_a_postgres_outage") else {
        return;
    };
    let (upstream, url_at) = pg_upstream(&url);
    let port = closed_port();
    let forwarder = Forwarder::start(port, upstream).await;
    let options = StoreOptions {
        max_connections: 2,
        acquire_timeout: Duration::from_millis(500),
    };
    let store = Store::connect_with(&url_at(port), &options).await.unwrap();
    let config = BindingWriterConfig {
        retry_initial: Duration::from_millis(20),
        retry_max: Duration::from_millis(100),
        ..Default::default()
    };
    let writer = BindingWriter::spawn_with(store, config, FixedClock(NOW * 1000));
    let aor = format!("sip:{}@pbx", run_id());
    writer.submit(BindingChange::Upsert(binding(
        &aor,
        "sip:a@192.0.2.1",
        NOW + 60,
    )));
    writer.flush().await;

    forwarder.stop().await;
    writer.submit(BindingChange::Upsert(binding(
        &aor,
        "sip:b@192.0.2.2",
        NOW + 60,
    )));
    writer.submit(BindingChange::Remove {
        aor: aor.as_str().into(),
        contact: "sip:a@192.0.2.1".into(),
    });
    let flushed = tokio::spawn({
        let writer = writer.clone();
        async move { writer.flush().await }
    });
    // While the server is away the writer keeps the changes and retries.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !flushed.is_finished(),
        "flush cannot complete while the database is down"
    );
    let forwarder = Forwarder::start(port, upstream).await;
    flushed.await.unwrap();

    let direct = Store::connect(&url).await.unwrap();
    let contacts: Vec<String> = direct
        .load_bindings(NOW)
        .await
        .unwrap()
        .into_iter()
        .filter(|b| *b.aor == *aor)
        .map(|b| b.contact.to_string())
        .collect();
    assert_eq!(contacts, ["sip:b@192.0.2.2"]);
    forwarder.stop().await;
}

#[tokio::test]
async fn postgres_callback_requests_round_trip_pending_and_a_repeat_is_ignored() {
    let Some(url) = pg_url("postgres_callback_requests_round_trip") else {
        return;
    };
    let store = Store::connect(&url).await.unwrap();
    let run = run_id();
    let base = unique_base_ms(4);
    let mut bare = callback(&format!("{run}-b"), base + 2);
    bare.alt_number = None;
    bare.context = None;
    bare.exten = None;
    let full = callback(&format!("{run}-a"), base + 1);
    let new = store
        .insert_callback_requests(&[full.clone(), bare.clone()])
        .await
        .unwrap();
    assert_eq!(new, 2);
    assert_eq!(
        store
            .insert_callback_requests(std::slice::from_ref(&full))
            .await
            .unwrap(),
        0
    );
    let window = CallbackQuery {
        since_ms: base,
        until_ms: base + 1000,
        status: Some("pending".into()),
        limit: 10,
    };
    let rows = store.fetch_callback_requests(&window).await.unwrap();
    let got: Vec<_> = rows.iter().map(|r| r.request.clone()).collect();
    assert_eq!(got, [full, bare]);
    assert!(rows.iter().all(|r| r.status == "pending"));
    let done = CallbackQuery {
        status: Some("done".into()),
        ..window
    };
    assert!(store
        .fetch_callback_requests(&done)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn callback_requests_spool_through_a_postgres_outage_and_are_stored_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("cdr.spool");
    let real_url = pg_url("the recovery half of the callback outage test");
    let template = real_url
        .clone()
        .unwrap_or_else(|| "postgres://carillon:carillon@127.0.0.1:5432/carillon".into());
    let (upstream, url_at) = pg_upstream(&template);
    let port = closed_port();
    let writer = CdrWriter::spawn_with(
        url_at(port).as_str(),
        spool.clone(),
        FixedClock(5),
        quick_writer_config(),
    );
    let run = run_id();
    let base = unique_base_ms(5);
    for i in 0..3 {
        writer.submit_callback(callback(&format!("{run}-c{i}"), base + i));
    }
    assert_eq!(writer.flush().await.spooled, 3);
    assert_eq!(spooled_callbacks(&spool), 3);
    let Some(real_url) = real_url else {
        return;
    };

    let forwarder = Forwarder::start(port, upstream).await;
    wait_until_spool_empty(&writer).await;
    let store = Store::connect(&real_url).await.unwrap();
    let window = CallbackQuery {
        since_ms: base,
        until_ms: base + 1000,
        status: None,
        limit: 100,
    };
    let ids: Vec<String> = store
        .fetch_callback_requests(&window)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.request.uniqueid)
        .collect();
    assert_eq!(
        ids,
        (0..3).map(|i| format!("{run}-c{i}")).collect::<Vec<_>>()
    );
    forwarder.stop().await;
}

#[tokio::test]
async fn voicemail_messages_and_pins_round_trip_in_postgres() {
    let Some(url) = pg_url("voicemail_messages_and_pins_round_trip_in_postgres") else {
        return;
    };
    let store = Store::connect(&url).await.unwrap();
    voicemail_round_trip(&store, &format!("vm-{}", run_id())).await;
}

#[tokio::test]
async fn postgres_cdrs_are_searched_by_time_src_dst_and_disposition_in_stable_pages() {
    let Some(url) = pg_url("postgres_cdr_search") else {
        return;
    };
    let store = Store::connect(&url).await.unwrap();
    check_cdr_search(&store, &run_id(), unique_base_ms(7)).await;
}
