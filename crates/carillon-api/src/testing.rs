//! Tests of the router through `tower::ServiceExt::oneshot` (no
//! sockets): a fake switch, a SQLite store in a temporary directory, a
//! recordings directory with one file.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use carillon_cdr::{CallRecord, Disposition};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::*;

struct FakeSwitch {
    reloads: Mutex<u32>,
    refuse: bool,
    /// Hangups asked for (name, cause).
    hangups: Mutex<Vec<(String, u8)>>,
}

fn chan(name: &str, other: &str) -> ChannelView {
    ChannelView {
        name: name.into(),
        uniqueid: "1800000000.1".into(),
        linkedid: "1800000000.1".into(),
        state: "up".into(),
        caller_num: "100".into(),
        caller_name: String::new(),
        exten: "101".into(),
        context: "internal".into(),
        bridged_with: Some(other.into()),
        start_ms: 1000,
        answer_ms: Some(2000),
    }
}

impl SwitchPort for FakeSwitch {
    fn channels(&self) -> BoxFuture<'_, Result<Vec<ChannelView>, SwitchGone>> {
        Box::pin(async {
            Ok(vec![
                chan("SIP/100-00000001", "SIP/101-00000002"),
                chan("SIP/101-00000002", "SIP/100-00000001"),
            ])
        })
    }

    fn hangup(&self, name: String, cause: u8) -> BoxFuture<'_, Result<bool, SwitchGone>> {
        Box::pin(async move {
            let known = name == "SIP/100-00000001";
            if known {
                self.hangups.lock().unwrap().push((name, cause));
            }
            Ok(known)
        })
    }

    fn registrations(&self) -> BoxFuture<'_, Result<Vec<Registration>, SwitchGone>> {
        Box::pin(async {
            Ok(vec![Registration {
                aor: "sip:100@carillon".into(),
                contact: "sip:100@127.0.0.1:5070".into(),
                source: "udp:127.0.0.1:5070".into(),
                expires_at: 1_900_000_000,
                user_agent: Some("SIPp".into()),
                instance: None,
                q: None,
                path: vec![],
            }])
        })
    }

    fn counts(&self) -> BoxFuture<'_, Result<SwitchCounts, SwitchGone>> {
        Box::pin(async {
            Ok(SwitchCounts {
                calls: 2,
                rtp_ports: 8,
                bindings: 1,
                cdrs_stored: 5,
                ..SwitchCounts::default()
            })
        })
    }

    fn reload(&self) -> BoxFuture<'_, Result<(), Vec<String>>> {
        Box::pin(async {
            *self.reloads.lock().unwrap() += 1;
            if self.refuse {
                Err(vec![
                    "users.toml:3: user[0].password: must be at least 6 characters".into(),
                ])
            } else {
                Ok(())
            }
        })
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    app: Router,
    switch: Arc<FakeSwitch>,
    hub: tokio::sync::broadcast::Sender<Arc<EventRecord>>,
    recordings: std::path::PathBuf,
}

fn record(id: &str, start_ms: i64, src: &str, disposition: Disposition) -> CallRecord {
    CallRecord {
        uniqueid: id.into(),
        linkedid: id.into(),
        start_ms,
        answer_ms: Some(start_ms + 1000),
        end_ms: start_ms + 5000,
        src: src.into(),
        dst: "101".into(),
        clid: src.into(),
        dcontext: "internal".into(),
        channel: format!("SIP/{src}-1"),
        dstchannel: "SIP/101-2".into(),
        trunk: None,
        disposition,
        hangup_cause: 16,
        accountcode: None,
        userfield: None,
        recording: None,
    }
}

async fn fixture(refuse_reload: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store =
        carillon_store::Store::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
    let mut cdrs = Vec::new();
    for i in 0..5 {
        let src = if i % 2 == 0 { "100" } else { "102" };
        let disp = if i == 3 {
            Disposition::NoAnswer
        } else {
            Disposition::Answered
        };
        cdrs.push(record(&format!("c{i}"), 1000 + i * 100, src, disp));
    }
    store.insert_cdrs(&cdrs).await.unwrap();
    store
        .insert_callback_requests(&[carillon_cdr::CallbackRequest {
            uniqueid: "c3".into(),
            caller_num: "100".into(),
            number: "0551234567".into(),
            alt_number: None,
            language: "ar".into(),
            requested_at: 1500,
            context: Some("callcentre".into()),
            exten: Some("callback".into()),
        }])
        .await
        .unwrap();
    let recordings = dir.path().join("rec");
    std::fs::create_dir_all(&recordings).unwrap();
    std::fs::write(recordings.join("call-1.wav"), b"RIFF0123456789").unwrap();
    std::fs::write(recordings.join("notes.txt"), b"x").unwrap();
    let switch = Arc::new(FakeSwitch {
        reloads: Mutex::new(0),
        refuse: refuse_reload,
        hangups: Mutex::new(Vec::new()),
    });
    let (hub, _) = tokio::sync::broadcast::channel(4);
    let sub = hub.clone();
    let state = ApiState::new(
        vec![
            ApiToken {
                name: "ro".into(),
                secret: "ro-token".into(),
                role: Role::ReadOnly,
            },
            ApiToken {
                name: "sup".into(),
                secret: "sup-token".into(),
                role: Role::Supervisor,
            },
            ApiToken {
                name: "admin".into(),
                secret: "admin-token".into(),
                role: Role::Admin,
            },
        ],
        Arc::clone(&switch) as Arc<dyn SwitchPort>,
        recordings.clone(),
        Arc::new(move || sub.subscribe()),
    );
    state.set_store(store);
    Fixture {
        _dir: dir,
        app: router(state),
        switch,
        hub,
        recordings,
    }
}

async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    extra: &[(header::HeaderName, &str)],
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    for (k, v) in extra {
        req = req.header(k, *v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

async fn get_json(app: &Router, uri: &str, token: Option<&str>) -> (StatusCode, Value) {
    let (status, _, body) = call(app, Method::GET, uri, token, &[]).await;
    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, v)
}

#[tokio::test]
async fn no_or_unknown_token_is_401_with_a_bearer_challenge_and_health_needs_none() {
    let f = fixture(false).await;
    let (status, headers, body) =
        call(&f.app, Method::GET, "/api/v1/registrations", None, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(v["error"].as_str().unwrap().contains("token"));
    let (status, _) = get_json(&f.app, "/api/v1/cdrs", Some("wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = call(
        &f.app,
        Method::GET,
        "/metrics",
        None,
        &[(header::AUTHORIZATION, "Basic cm86cm8=")],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, v) = get_json(&f.app, "/api/v1/health", None).await;
    assert_eq!((status, v["status"].as_str()), (StatusCode::OK, Some("ok")));
}

#[tokio::test]
async fn roles_gate_recordings_delete_and_reload_with_403() {
    let f = fixture(false).await;
    let (status, v) = get_json(&f.app, "/api/v1/recordings", Some("ro-token")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(v["error"].as_str().unwrap().contains("supervisor"), "{v}");
    let (status, v) = get_json(&f.app, "/api/v1/recordings", Some("sup-token")).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = v["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["call-1.wav"]);
    let (status, _, _) = call(
        &f.app,
        Method::DELETE,
        "/api/v1/recordings/call-1.wav",
        Some("sup-token"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(f.recordings.join("call-1.wav").exists());
    let (status, _, _) = call(
        &f.app,
        Method::POST,
        "/api/v1/reload",
        Some("sup-token"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(*f.switch.reloads.lock().unwrap(), 0);
    let (status, _, _) = call(
        &f.app,
        Method::POST,
        "/api/v1/reload",
        Some("admin-token"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(*f.switch.reloads.lock().unwrap(), 1);
    let (status, _, _) = call(
        &f.app,
        Method::DELETE,
        "/api/v1/recordings/call-1.wav",
        Some("admin-token"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!f.recordings.join("call-1.wav").exists());
    let (status, _, _) = call(
        &f.app,
        Method::DELETE,
        "/api/v1/recordings/call-1.wav",
        Some("admin-token"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_refused_reload_is_409_with_the_problems() {
    let f = fixture(true).await;
    let (status, _, body) = call(
        &f.app,
        Method::POST,
        "/api/v1/reload",
        Some("admin-token"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(v["problems"][0]
        .as_str()
        .unwrap()
        .starts_with("users.toml:3:"));
}

#[tokio::test]
async fn cdrs_are_filtered_and_paged_with_a_next_offset() {
    let f = fixture(false).await;
    let ids = |v: &Value| -> Vec<String> {
        v["cdrs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["uniqueid"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, v) = get_json(&f.app, "/api/v1/cdrs?limit=2", Some("ro-token")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&v), ["c0", "c1"]);
    assert_eq!(v["next_offset"], 2);
    let (_, v) = get_json(&f.app, "/api/v1/cdrs?limit=2&offset=4", Some("ro-token")).await;
    assert_eq!(ids(&v), ["c4"]);
    assert!(v["next_offset"].is_null());
    let (_, v) = get_json(&f.app, "/api/v1/cdrs?src=100&from=1100", Some("ro-token")).await;
    assert_eq!(ids(&v), ["c2", "c4"]);
    let (_, v) = get_json(
        &f.app,
        "/api/v1/cdrs?disposition=NO%20ANSWER",
        Some("ro-token"),
    )
    .await;
    assert_eq!(ids(&v), ["c3"]);
    let (_, v) = get_json(&f.app, "/api/v1/cdrs?to=1200&dst=101", Some("ro-token")).await;
    assert_eq!(ids(&v), ["c0", "c1"]);
}

#[tokio::test]
async fn bad_parameters_are_422_naming_the_field() {
    let f = fixture(false).await;
    for (uri, field) in [
        ("/api/v1/cdrs?limit=0", "limit"),
        ("/api/v1/cdrs?limit=abc", "limit"),
        ("/api/v1/cdrs?offset=-1", "offset"),
        ("/api/v1/cdrs?disposition=MAYBE", "disposition"),
        ("/api/v1/cdrs?from=10&to=5", "to"),
        ("/api/v1/cdrs?colour=red", "colour"),
        ("/api/v1/callbacks?limit=5000", "limit"),
        ("/api/v1/recordings/bad%20name.wav", "name"),
    ] {
        let (status, v) = get_json(&f.app, uri, Some("admin-token")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{uri}: {v}");
        assert_eq!(v["field"].as_str(), Some(field), "{uri}: {v}");
    }
}

#[tokio::test]
async fn unknown_routes_and_recordings_are_404_in_json() {
    let f = fixture(false).await;
    for uri in [
        "/api/v1/calls",
        "/api/v1/originate",
        "/api/v1/recordings/missing.wav",
    ] {
        let (status, v) = get_json(&f.app, uri, Some("admin-token")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert!(v["error"].is_string(), "{uri}: {v}");
    }
}

#[tokio::test]
async fn a_recording_is_served_whole_and_by_range() {
    let f = fixture(false).await;
    let (status, headers, body) = call(
        &f.app,
        Method::GET,
        "/api/v1/recordings/call-1.wav",
        Some("sup-token"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("audio/"));
    assert_eq!(body, b"RIFF0123456789");
    let (status, headers, body) = call(
        &f.app,
        Method::GET,
        "/api/v1/recordings/call-1.wav",
        Some("sup-token"),
        &[(header::RANGE, "bytes=4-7")],
    )
    .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(headers[header::CONTENT_RANGE], "bytes 4-7/14");
    assert_eq!(body, b"0123");
    let (status, _, _) = call(
        &f.app,
        Method::GET,
        "/api/v1/recordings/call-1.wav",
        Some("sup-token"),
        &[(header::RANGE, "bytes=100-200")],
    )
    .await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
}

#[tokio::test]
async fn registrations_come_from_the_switch() {
    let f = fixture(false).await;
    let (status, v) = get_json(&f.app, "/api/v1/registrations", Some("ro-token")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["registrations"][0]["aor"], "sip:100@carillon");
    assert_eq!(v["registrations"][0]["source"], "udp:127.0.0.1:5070");
    let (_, v) = get_json(
        &f.app,
        "/api/v1/registrations?aor=sip:101@carillon",
        Some("ro-token"),
    )
    .await;
    assert_eq!(v["registrations"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_the_switch_counts() {
    let f = fixture(false).await;
    let (status, headers, body) =
        call(&f.app, Method::GET, "/metrics", Some("ro-token"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = String::from_utf8(body).unwrap();
    for line in [
        "carillon_calls 2",
        "carillon_rtp_ports_in_use 8",
        "carillon_client_transactions 0",
        "carillon_registrations 1",
        "carillon_cdrs_stored_total 5",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
    assert!(text.contains("carillon_tokio_alive_tasks "), "{text}");
    assert!(text.contains("carillon_uptime_seconds "), "{text}");
    drop(f.hub);
}

/// Serves the fixture's router on a loopback port; its address.
async fn serve_fixture(app: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, app, std::future::pending()));
    addr
}

async fn ws_connect(
    addr: std::net::SocketAddr,
    query: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{addr}/api/v1/events{query}")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", "Bearer ro-token".parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

fn hangup(i: u64) -> Arc<EventRecord> {
    Arc::new(EventRecord {
        time_ms: i,
        event: carillon_events::SwitchEvent::Hangup {
            channel: format!("SIP/100-{i}"),
            uniqueid: i.to_string(),
            cause: 16,
            cause_text: "Normal Clearing".into(),
        },
    })
}

fn bridged(i: u64) -> Arc<EventRecord> {
    Arc::new(EventRecord {
        time_ms: i,
        event: carillon_events::SwitchEvent::Bridged {
            linkedid: i.to_string(),
            channels: ["SIP/100-1".into(), "SIP/101-2".into()],
        },
    })
}

/// Waits (bounded) until the hub has `n` subscribers.
async fn until_consumers(hub: &tokio::sync::broadcast::Sender<Arc<EventRecord>>, n: usize) {
    for _ in 0..200 {
        if hub.receiver_count() == n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{} consumers, not {n}", hub.receiver_count());
}

#[tokio::test]
async fn the_event_stream_sends_only_the_kinds_asked_for_as_json() {
    use futures_util::StreamExt;
    let f = fixture(false).await;
    let addr = serve_fixture(f.app.clone()).await;
    let mut ws = ws_connect(addr, "?kinds=hangup").await;
    until_consumers(&f.hub, 1).await;
    f.hub.send(bridged(1)).unwrap();
    f.hub.send(hangup(2)).unwrap();
    let m = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_str(m.to_text().unwrap()).unwrap();
    assert_eq!(
        (v["event"].as_str(), v["time_ms"].as_u64()),
        (Some("hangup"), Some(2))
    );
    drop(ws);
    until_consumers(&f.hub, 0).await;
}

#[tokio::test]
async fn a_consumer_that_falls_behind_gets_a_notice_and_is_closed() {
    use futures_util::StreamExt;
    let f = fixture(false).await;
    let addr = serve_fixture(f.app.clone()).await;
    let mut ws = ws_connect(addr, "").await;
    until_consumers(&f.hub, 1).await;
    // Published without yielding: the consumer's task cannot run between
    // them, so it finds more than the hub's 4 records waiting.
    for i in 0..10 {
        f.hub.send(hangup(i)).unwrap();
    }
    let mut texts = Vec::new();
    let mut close = None;
    while let Ok(Some(Ok(m))) =
        tokio::time::timeout(std::time::Duration::from_secs(5), ws.next()).await
    {
        match m {
            tokio_tungstenite::tungstenite::Message::Text(t) => texts.push(t.to_string()),
            tokio_tungstenite::tungstenite::Message::Close(c) => {
                close = c;
                break;
            }
            _ => {}
        }
    }
    let notice: Value = serde_json::from_str(texts.last().unwrap()).unwrap();
    assert_eq!(notice["notice"], "lagged", "{texts:?}");
    assert_eq!(notice["missed"], 6, "{texts:?}");
    assert_eq!(u16::from(close.expect("a close frame").code), 1008);
    until_consumers(&f.hub, 0).await;
    // Counted for /metrics.
    let (_, _, body) = call(&f.app, Method::GET, "/metrics", Some("ro-token"), &[]).await;
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.lines()
            .any(|l| l == "carillon_event_consumers_cut_off_total 1"),
        "{text}"
    );
}

#[tokio::test]
async fn callback_requests_are_listed_with_their_status_and_filtered() {
    let f = fixture(false).await;
    let (status, v) = get_json(&f.app, "/api/v1/callbacks", Some("ro-token")).await;
    assert_eq!(status, StatusCode::OK);
    let cb = &v["callbacks"][0];
    assert_eq!(
        (
            cb["number"].as_str(),
            cb["status"].as_str(),
            cb["language"].as_str()
        ),
        (Some("0551234567"), Some("pending"), Some("ar"))
    );
    let (_, v) = get_json(&f.app, "/api/v1/callbacks?status=done", Some("ro-token")).await;
    assert!(v["callbacks"].as_array().unwrap().is_empty());
    let (_, v) = get_json(&f.app, "/api/v1/callbacks?from=1501", Some("ro-token")).await;
    assert!(v["callbacks"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn channels_are_listed_read_only_and_hung_up_by_a_supervisor() {
    let f = fixture(false).await;
    let (status, _) = get_json(&f.app, "/api/v1/channels", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, v) = get_json(&f.app, "/api/v1/channels", Some("ro-token")).await;
    assert_eq!(status, StatusCode::OK);
    let chans = v["channels"].as_array().unwrap();
    assert_eq!(chans.len(), 2, "{v}");
    assert_eq!(chans[0]["name"], "SIP/100-00000001");
    assert_eq!(chans[0]["bridged_with"], "SIP/101-00000002");
    assert_eq!(chans[0]["state"], "up");
    let uri = "/api/v1/channels/SIP%2F100-00000001";
    let (status, _, _) = call(&f.app, Method::DELETE, uri, Some("ro-token"), &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(f.switch.hangups.lock().unwrap().is_empty());
    let (status, _, _) = call(&f.app, Method::DELETE, uri, Some("sup-token"), &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let with_cause = format!("{uri}?cause=17");
    let (status, _, _) = call(&f.app, Method::DELETE, &with_cause, Some("sup-token"), &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        *f.switch.hangups.lock().unwrap(),
        [
            ("SIP/100-00000001".to_owned(), 16),
            ("SIP/100-00000001".to_owned(), 17)
        ]
    );
    let (status, _, body) = call(
        &f.app,
        Method::DELETE,
        "/api/v1/channels/SIP%2F999-00000009",
        Some("sup-token"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("SIP/999-00000009"),
        "{v}"
    );
    let bad = format!("{uri}?cause=x");
    let (status, _, body) = call(&f.app, Method::DELETE, &bad, Some("sup-token"), &[]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["field"], "cause");
    assert_eq!(f.switch.hangups.lock().unwrap().len(), 2);
}
