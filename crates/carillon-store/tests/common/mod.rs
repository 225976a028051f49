//! Shared fixtures for carillon-store's integration tests: sample records
//! and bindings, a TCP forwarder that stands in for a database host that
//! goes away and comes back, and waiting helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use carillon_cdr::{CallRecord, CallbackRequest, Disposition};
use carillon_store::{BindingRow, CdrWriterConfig, CdrWriterHandle, SpoolEntry, StoreOptions};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub fn record(uniqueid: &str, start_ms: i64) -> CallRecord {
    CallRecord {
        uniqueid: uniqueid.to_owned(),
        linkedid: uniqueid.to_owned(),
        start_ms,
        answer_ms: Some(start_ms + 3_000),
        end_ms: start_ms + 45_500,
        src: "1001".to_owned(),
        dst: "2002".to_owned(),
        clid: "\"Alice\" <1001>".to_owned(),
        dcontext: "internal".to_owned(),
        channel: "PJSIP/1001-00000001".to_owned(),
        dstchannel: "PJSIP/2002-00000002".to_owned(),
        trunk: Some("gsm-1".to_owned()),
        disposition: Disposition::Answered,
        hangup_cause: 16,
        accountcode: None,
        userfield: Some("vip".to_owned()),
        recording: Some(format!("var/recordings/{uniqueid}.wav")),
    }
}

/// A callback request as the dialplan would capture it.
pub fn callback(uniqueid: &str, requested_at: i64) -> CallbackRequest {
    CallbackRequest {
        uniqueid: uniqueid.to_owned(),
        caller_num: "0300123456".to_owned(),
        number: "0551234567".to_owned(),
        alt_number: Some("0667654321".to_owned()),
        language: "ur".to_owned(),
        requested_at,
        context: Some("callcentre".to_owned()),
        exten: Some("callback".to_owned()),
    }
}

/// Lines of a spool file that hold a callback request.
pub fn spooled_callbacks(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap()
                .get("callback")
                .is_some()
        })
        .count()
}

pub fn binding(aor: &str, contact: &str, expires_at: i64) -> BindingRow {
    BindingRow {
        aor: aor.into(),
        contact: contact.into(),
        instance: None,
        reg_id: None,
        source: None,
        path: Vec::new(),
        call_id: format!("call-{contact}").into(),
        cseq: 1,
        expires_at,
        q: None,
        user_agent: None,
    }
}

/// A binding with every optional field set.
pub fn full_binding(aor: &str, contact: &str, expires_at: i64) -> BindingRow {
    BindingRow {
        instance: Some("<urn:uuid:00000000-0000-1000-8000-000A95A0E128>".to_owned()),
        reg_id: Some(u32::MAX),
        source: Some("udp:203.0.113.5:41000".into()),
        path: vec![
            "<sip:edge1.example.com;lr>".to_owned(),
            "<sip:edge2.example.com;lr>".to_owned(),
        ],
        q: Some(0.7),
        user_agent: Some("Yealink SIP-T46S".into()),
        ..binding(aor, contact, expires_at)
    }
}

/// A value unique to this test run, to keep rows of concurrent or repeated
/// runs against a shared PostgreSQL apart.
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}-{nanos}", std::process::id())
}

/// A start time (ms) unique to this run and test, for time-window queries.
pub fn unique_base_ms(test_slot: i64) -> i64 {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    now_ms * 1000 + test_slot * 100_000_000
}

/// Writer tuning for tests: quick retries, short connection waits.
pub fn quick_writer_config() -> CdrWriterConfig {
    CdrWriterConfig {
        max_batch: 4,
        batch_window: Duration::from_millis(5),
        retry_initial: Duration::from_millis(20),
        retry_max: Duration::from_millis(100),
        store_options: StoreOptions {
            max_connections: 2,
            acquire_timeout: Duration::from_millis(500),
        },
    }
}

/// Flushes until the spool is empty; panics if it never empties.
pub async fn wait_until_spool_empty(writer: &CdrWriterHandle) {
    for _ in 0..1200 {
        let report = writer.flush().await;
        if report.spooled == 0 && report.unsaved == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the CDR spool never drained: {:?}", writer.flush().await);
}

/// The uniqueids in a spool file, in order.
pub fn spool_ids(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| {
            serde_json::from_str::<SpoolEntry>(l)
                .unwrap()
                .record
                .uniqueid
        })
        .collect()
}

/// A port on 127.0.0.1 where nothing listens (right now).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Splits `postgres://user:pass@host:port/db?x` into the address and a
/// function of a new port giving the same URL pointed at 127.0.0.1:port.
pub fn pg_upstream(url: &str) -> (SocketAddr, impl Fn(u16) -> String + '_) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:5432")
    };
    let hostport = hostport.replace("localhost", "127.0.0.1");
    let addr: SocketAddr = hostport.parse().unwrap();
    let rewrite = move |port: u16| match userinfo {
        Some(u) => format!("{scheme}://{u}@127.0.0.1:{port}{tail}"),
        None => format!("{scheme}://127.0.0.1:{port}{tail}"),
    };
    (addr, rewrite)
}

/// Forwards TCP connections from a local port to an upstream server. While
/// stopped, the port is closed (connections are refused); stopping also cuts
/// every forwarded connection, as a server crash would.
pub struct Forwarder {
    accept: JoinHandle<()>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Forwarder {
    pub async fn start(port: u16, upstream: SocketAddr) -> Forwarder {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let tracked = Arc::clone(&conns);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let conn = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tracked.lock().unwrap().push(conn);
            }
        });
        Forwarder { accept, conns }
    }

    pub async fn stop(self) {
        self.accept.abort();
        let _ = self.accept.await;
        let conns = std::mem::take(&mut *self.conns.lock().unwrap());
        for conn in conns {
            conn.abort();
            let _ = conn.await;
        }
    }
}

/// Voicemail rows on `store`: a message stored (twice: kept once), read
/// (INBOX → Old), moved, a second one deleted, a PIN changed twice; the
/// load sees exactly that. `mailbox` keeps runs on a shared database apart.
pub async fn voicemail_round_trip(store: &carillon_store::Store, mailbox: &str) {
    use carillon_voicemail::{Folder, Message, Persist};
    let msg = |id: &str, at: i64| Message {
        id: format!("{mailbox}-{id}"),
        mailbox: mailbox.to_owned(),
        caller_num: "0300555".into(),
        caller_name: "Caller".into(),
        received_at_ms: at,
        duration_ms: 4_250,
        folder: Folder::Inbox,
        read: false,
        path: format!("/vm/{mailbox}/{id}.wav").into(),
    };
    let (a, b) = (msg("a", 1_000), msg("b", 2_000));
    let changed = store
        .apply_voicemail(&[
            Persist::Store(a.clone()),
            Persist::Store(b.clone()),
            Persist::Store(a.clone()),
            Persist::Discard {
                path: "/vm/x.wav".into(),
            },
        ])
        .await
        .unwrap();
    assert_eq!(changed, 2, "a repeated message is kept once");
    let mine = |all: Vec<Message>| -> Vec<Message> {
        all.into_iter().filter(|m| m.mailbox == mailbox).collect()
    };
    assert_eq!(
        mine(store.load_voicemail_messages().await.unwrap()),
        [a.clone(), b.clone()]
    );
    store
        .apply_voicemail(&[
            Persist::MarkRead {
                mailbox: mailbox.into(),
                id: a.id.clone(),
            },
            Persist::Move {
                mailbox: mailbox.into(),
                id: b.id.clone(),
                folder: Folder::Work,
            },
            Persist::SetPin {
                mailbox: mailbox.into(),
                pin: "1111".into(),
            },
            Persist::SetPin {
                mailbox: mailbox.into(),
                pin: "2468".into(),
            },
        ])
        .await
        .unwrap();
    let loaded = mine(store.load_voicemail_messages().await.unwrap());
    assert_eq!((loaded[0].read, loaded[0].folder), (true, Folder::Old));
    assert_eq!((loaded[1].read, loaded[1].folder), (false, Folder::Work));
    let pins = store.load_voicemail_pins().await.unwrap();
    assert_eq!(
        pins.iter()
            .filter(|(m, _)| m == mailbox)
            .collect::<Vec<_>>(),
        [&(mailbox.to_owned(), "2468".to_owned())]
    );
    store
        .apply_voicemail(&[Persist::Delete {
            mailbox: mailbox.into(),
            id: b.id.clone(),
            path: b.path.clone(),
        }])
        .await
        .unwrap();
    let loaded = mine(store.load_voicemail_messages().await.unwrap());
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].id, a.id);
}

/// Stores six CDRs starting at `base` (ms) and checks
/// [`carillon_store::Store::search_cdrs`] against them: the time window,
/// each filter, their combination, and pages that neither repeat nor skip
/// a record. Shared by the SQLite and PostgreSQL tests.
pub async fn check_cdr_search(store: &carillon_store::Store, run: &str, base: i64) {
    use carillon_store::CdrSearch;
    let mut records = Vec::new();
    for i in 0..6i64 {
        let mut r = record(&format!("{run}-s{i}"), base + i * 10);
        r.src = if i % 2 == 0 { "100" } else { "101" }.to_owned();
        r.dst = if i < 3 { "200" } else { "201" }.to_owned();
        if i == 4 {
            r.disposition = Disposition::NoAnswer;
            r.answer_ms = None;
        }
        records.push(r);
    }
    assert_eq!(store.insert_cdrs(&records).await.unwrap(), 6);
    let window = CdrSearch {
        since_ms: base,
        until_ms: base + 60,
        ..CdrSearch::default()
    };
    let ids = |rs: Vec<CallRecord>| -> Vec<String> {
        rs.into_iter()
            .map(|r| r.uniqueid.rsplit('-').next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(store.search_cdrs(&window).await.unwrap()),
        ["s0", "s1", "s2", "s3", "s4", "s5"]
    );
    let narrow = CdrSearch {
        since_ms: base + 10,
        until_ms: base + 30,
        ..window.clone()
    };
    assert_eq!(ids(store.search_cdrs(&narrow).await.unwrap()), ["s1", "s2"]);
    let by_src = CdrSearch {
        src: Some("100".into()),
        ..window.clone()
    };
    assert_eq!(
        ids(store.search_cdrs(&by_src).await.unwrap()),
        ["s0", "s2", "s4"]
    );
    let by_src_dst = CdrSearch {
        dst: Some("201".into()),
        ..by_src.clone()
    };
    assert_eq!(ids(store.search_cdrs(&by_src_dst).await.unwrap()), ["s4"]);
    let unanswered = CdrSearch {
        disposition: Some(Disposition::NoAnswer),
        ..window.clone()
    };
    assert_eq!(ids(store.search_cdrs(&unanswered).await.unwrap()), ["s4"]);
    let mut paged = Vec::new();
    for page in 0..3u64 {
        let q = CdrSearch {
            limit: 2,
            offset: page * 2,
            ..window.clone()
        };
        let got = ids(store.search_cdrs(&q).await.unwrap());
        assert_eq!(got.len(), 2, "page {page}");
        paged.extend(got);
    }
    assert_eq!(paged, ["s0", "s1", "s2", "s3", "s4", "s5"]);
    let past_end = CdrSearch {
        offset: 6,
        ..window
    };
    assert!(store.search_cdrs(&past_end).await.unwrap().is_empty());
}
