//! The management API of the real switch over real HTTP and WebSocket
//! (`[api]`, `carillon-api`): tokens and roles (401, 403), bad input
//! (422 naming the field), unknown routes and recordings (404), reload;
//! then a SIPp registration seen in `/api/v1/registrations`, two SIPp
//! calls (one recorded by MixMonitor) seen as `hangup` events on a
//! filtered WebSocket, as CDRs filtered and paged, as a recording
//! downloaded by range and deleted, and `/metrics` back to idle.

mod callsupport;

use std::fs;
use std::time::Duration;

use callsupport::http::{http, metrics, API_TOKEN};
use callsupport::*;

/// A read-only token added to the test's configuration.
const RO_TOKEN: &str = "read-only-token-0123";

fn add_read_only_token(env: &CallEnv) {
    let path = env.config_dir().join("carillon.toml");
    let mut text = fs::read_to_string(&path).expect("read carillon.toml");
    text.push_str(&format!(
        "\n[[api.token]]\nname = \"crm\"\nsecret = \"{RO_TOKEN}\"\nrole = \"read-only\"\n"
    ));
    fs::write(&path, text).expect("write carillon.toml");
}

/// Extension 7101: MixMonitor, then Dial 101 (as in recording_calls.rs).
fn add_recorded_extension(env: &CallEnv) {
    let path = env.config_dir().join("dialplan.toml");
    let text = fs::read_to_string(&path).expect("read dialplan.toml");
    let first = "[[context.internal.extension]]";
    let at = text
        .find(&format!("\n{first}"))
        .expect("an internal extension")
        + 1;
    let ext = format!(
        "{first}\nmatch = \"7101\"\nsteps = [ {{ app = \"MixMonitor\" }}, {{ app = \"Dial\", targets = [\"user/101\"], timeout = 20 }}, {{ app = \"Hangup\" }} ]\n\n"
    );
    fs::write(&path, format!("{}{ext}{}", &text[..at], &text[at..])).expect("write dialplan.toml");
}

#[test]
fn tokens_roles_bad_input_and_unknown_routes_get_401_403_422_and_404() {
    let mut env = CallEnv::new(&Options::default());
    add_read_only_token(&env);
    let sw = env.start();
    let api = sw.api;
    let get = |path: &str, token: Option<&str>| {
        http(api, "GET", path, token, &[]).unwrap_or_else(|e| panic!("{path}: {e}"))
    };

    let r = get("/api/v1/health", None);
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("ok")));
    for path in ["/api/v1/registrations", "/api/v1/cdrs", "/metrics"] {
        let r = get(path, None);
        assert_eq!(r.status, 401, "{path} without a token: {}", r.text());
        assert!(r
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")));
        assert_eq!(get(path, Some("not-a-token-at-all")).status, 401, "{path}");
        assert_eq!(get(path, Some(RO_TOKEN)).status, 200, "{path}");
    }
    // Read-only may not see recordings, delete them or reload.
    let r = get("/api/v1/recordings", Some(RO_TOKEN));
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("supervisor"));
    let r = http(
        api,
        "DELETE",
        "/api/v1/recordings/x.wav",
        Some(RO_TOKEN),
        &[],
    )
    .unwrap();
    assert_eq!(r.status, 403);
    let r = http(api, "POST", "/api/v1/reload", Some(RO_TOKEN), &[]).unwrap();
    assert_eq!(r.status, 403);
    // The admin reloads as SIGHUP does.
    let r = http(api, "POST", "/api/v1/reload", Some(API_TOKEN), &[]).unwrap();
    assert_eq!(
        (r.status, r.json()["reloaded"].as_bool()),
        (200, Some(true)),
        "{}",
        r.text()
    );
    assert!(
        sw.wait_lines("configuration reloaded", 1, Duration::from_secs(5))
            .len()
            == 1
    );
    // A broken users.toml: 409 with the problem at its line, nothing applied.
    let users = env.config_dir().join("users.toml");
    let good = fs::read_to_string(&users).unwrap();
    fs::write(&users, "[[user]]\nextension = \"100\"\npassword = \"x\"\n").unwrap();
    let r = http(api, "POST", "/api/v1/reload", Some(API_TOKEN), &[]).unwrap();
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(
        r.json()["problems"].as_array().unwrap().iter().any(|p| p
            .as_str()
            .unwrap()
            .contains("users.toml:3: user[0].password")),
        "{}",
        r.text()
    );
    fs::write(&users, good).unwrap();
    // A token added to the file works after a reload; the API's tokens
    // are reloaded with the rest.
    const NEW_TOKEN: &str = "added-by-reload-0123";
    assert_eq!(get("/api/v1/cdrs", Some(NEW_TOKEN)).status, 401);
    let path = env.config_dir().join("carillon.toml");
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "\n[[api.token]]\nname = \"late\"\nsecret = \"{NEW_TOKEN}\"\nrole = \"read-only\"\n"
    ));
    fs::write(&path, text).unwrap();
    let r = http(api, "POST", "/api/v1/reload", Some(API_TOKEN), &[]).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(get("/api/v1/cdrs", Some(NEW_TOKEN)).status, 200);
    // Bad input names the field.
    for (path, field) in [
        ("/api/v1/cdrs?limit=0", "limit"),
        ("/api/v1/cdrs?disposition=LATER", "disposition"),
        ("/api/v1/cdrs?from=yesterday", "from"),
        ("/api/v1/cdrs?colour=red", "colour"),
        ("/api/v1/callbacks?limit=-3", "limit"),
        ("/api/v1/events?kinds=hangup,teleport", "kinds"),
    ] {
        let r = get(path, Some(API_TOKEN));
        assert_eq!(r.status, 422, "{path}: {}", r.text());
        assert_eq!(r.json()["field"].as_str(), Some(field), "{path}");
    }
    // Unknown ids and routes (originate does not exist yet).
    for path in [
        "/api/v1/recordings/nothing-here.wav",
        "/api/v1/originate",
        "/api/v2/cdrs",
    ] {
        let r = get(path, Some(API_TOKEN));
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert!(r.json()["error"].is_string());
    }
    // Tokens are never logged.
    let log = sw.log();
    assert!(
        !log.contains(API_TOKEN) && !log.contains(RO_TOKEN) && !log.contains(NEW_TOKEN),
        "{log}"
    );
    assert!(log.contains("API listening"), "{log}");
}

/// A WebSocket client of `/api/v1/events?kinds=…`: the JSON messages it
/// received until `n` arrived or `timeout` passed.
fn events_client(
    api: std::net::SocketAddr,
    kinds: &str,
    n: usize,
    timeout: Duration,
    connected: std::sync::mpsc::Sender<()>,
) -> std::thread::JoinHandle<Vec<serde_json::Value>> {
    let url = format!("ws://{api}/api/v1/events?kinds={kinds}");
    std::thread::spawn(move || {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let mut req = url.into_client_request().expect("request");
            req.headers_mut().insert(
                "authorization",
                format!("Bearer {API_TOKEN}").parse().expect("header"),
            );
            let (mut ws, _) = tokio::time::timeout(
                Duration::from_secs(5),
                tokio_tungstenite::connect_async(req),
            )
            .await
            .expect("connect within 5 s")
            .expect("WebSocket handshake");
            let _ = connected.send(());
            let mut got = Vec::new();
            let deadline = tokio::time::Instant::now() + timeout;
            while got.len() < n {
                match tokio::time::timeout_at(deadline, ws.next()).await {
                    Ok(Some(Ok(m))) if m.is_text() => {
                        got.push(serde_json::from_str(m.to_text().expect("text")).expect("json"));
                    }
                    Ok(Some(Ok(_))) => {}
                    _ => break,
                }
            }
            let _ = ws.close(None).await;
            got
        })
    })
}

#[test]
fn a_registration_and_calls_show_in_the_api_events_cdrs_recordings_and_metrics() {
    require_sipp();
    let mut env = CallEnv::new(&Options::default());
    add_recorded_extension(&env);
    let since = unix_ms();
    let sw = env.start();
    let api = sw.api;
    let get = |path: &str| {
        let r =
            http(api, "GET", path, Some(API_TOKEN), &[]).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        r.json()
    };

    // The event stream, hangups only, subscribed before the calls.
    let (connected_tx, connected) = std::sync::mpsc::channel();
    let events = events_client(api, "hangup", 4, Duration::from_secs(40), connected_tx);
    connected
        .recv_timeout(Duration::from_secs(10))
        .expect("the WebSocket connected");

    // 101 registers from a SIPp UAS; the API lists its binding.
    let (uas_sip, uas_media) = (free_port_span(1), free_port_span(3));
    sipp_register(&sw, env.path(), "101", PW101, uas_sip);
    let regs = get("/api/v1/registrations");
    let mine: Vec<&serde_json::Value> = regs["registrations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["aor"] == "101")
        .collect();
    assert_eq!(mine.len(), 1, "{regs}");
    assert!(
        mine[0]["contact"]
            .as_str()
            .unwrap()
            .contains(&format!(":{uas_sip}")),
        "{regs}"
    );
    assert!(mine[0]["expires_at"].as_u64().unwrap() > (since / 1000) as u64);

    // Two calls from 100: one to 101, one to 7101 (recorded).
    write_tone_pcap(&env.path().join("tone.pcap"), 1, 440.0);
    let mut uas = start_uas(&env, "uas", None, uas_sip, uas_media, 2);
    for (name, number) in [("uac-plain", "101"), ("uac-recorded", "7101")] {
        let mut uac = sipp_100_dials(
            &env,
            &sw,
            name,
            "uac_auth_pcap.xml",
            number,
            Duration::from_secs(20),
        );
        let run = uac.wait();
        assert!(
            run.ok(),
            "{name}: {:?}\n{}",
            run.status,
            describe(&env, &sw, &[name, "uas"])
        );
    }
    let _ = uas.wait();

    // Each call's two legs hung up: four `hangup` events, nothing else.
    let got = events.join().expect("events client");
    assert_eq!(got.len(), 4, "{got:#?}");
    assert!(
        got.iter()
            .all(|e| e["event"] == "hangup" && e["cause"] == 16),
        "{got:#?}"
    );

    // The CDRs, filtered and paged.
    let cdrs = wait_for_cdrs(&env.db_url, since, 2, Duration::from_secs(10), |_| true);
    assert_eq!(cdrs.len(), 2, "{}", sw.log());
    let page = |q: &str| get(&format!("/api/v1/cdrs?from={since}&{q}"));
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v["cdrs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["dst"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&page("src=100")), ["101", "7101"]);
    assert_eq!(ids(&page("dst=7101&disposition=ANSWERED")), ["7101"]);
    assert!(ids(&page("disposition=BUSY")).is_empty());
    let first = page("limit=1");
    assert_eq!(
        (ids(&first), first["next_offset"].as_i64()),
        (vec!["101".to_owned()], Some(1))
    );
    let second = page("limit=1&offset=1");
    assert_eq!(ids(&second), ["7101"]);
    assert!(second["next_offset"].is_null());
    let until = cdrs[0].start_ms + 1;
    assert_eq!(
        ids(&get(&format!("/api/v1/cdrs?from={since}&to={until}"))),
        ["101"]
    );

    // The recording: listed, a range of it downloaded, deleted.
    let recorded = cdrs.iter().find(|c| c.dst == "7101").unwrap();
    let name = format!("{}.wav", recorded.uniqueid);
    sw.wait_events(1, Duration::from_secs(10), |e| {
        matches!(e, carillon_events::SwitchEvent::RecordingFinished { .. })
    });
    let list = get("/api/v1/recordings");
    let entry = list["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} not in {list}"))
        .clone();
    let size = entry["bytes"].as_u64().unwrap();
    assert!(size > 44, "{entry}");
    let path = format!("/api/v1/recordings/{name}");
    let r = http(
        api,
        "GET",
        &path,
        Some(API_TOKEN),
        &[("Range", "bytes=0-11")],
    )
    .unwrap();
    assert_eq!(r.status, 206, "{}", r.text());
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 0-11/{size}").as_str())
    );
    assert_eq!(&r.body[..4], b"RIFF");
    assert_eq!(&r.body[8..12], b"WAVE");
    let r = http(
        api,
        "GET",
        &path,
        Some(API_TOKEN),
        &[("Range", &format!("bytes={}-", size - 4))],
    )
    .unwrap();
    assert_eq!((r.status, r.body.len()), (206, 4));
    let whole = http(api, "GET", &path, Some(API_TOKEN), &[]).unwrap();
    assert_eq!((whole.status, whole.body.len() as u64), (200, size));
    let r = http(api, "DELETE", &path, Some(API_TOKEN), &[]).unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        http(api, "GET", &path, Some(API_TOKEN), &[])
            .unwrap()
            .status,
        404
    );

    // Metrics: the calls are over and their CDRs stored.
    sw.assert_idle(Duration::from_secs(10));
    let m = metrics(api).unwrap();
    assert!(m["carillon_cdrs_stored_total"] >= 2.0, "{m:?}");
    assert!(m["carillon_calls_answered_total"] >= 2.0, "{m:?}");
    assert!(m["carillon_registrations"] >= 1.0, "{m:?}");
    // The example's AMI translator is the one standing consumer: the
    // WebSocket's is gone.
    assert_eq!(m["carillon_event_consumers"], 1.0, "{m:?}");
}

/// A SIPp call 100 → 101 is listed by the API as two bridged channels;
/// `DELETE /api/v1/channels/{name}` with `cause=17` hangs it up: both
/// SIPp phones get their BYE (their scenarios end cleanly), the hangup
/// events carry the cause, the switch is idle after; the channel is then
/// unknown (404).
#[test]
fn a_call_is_listed_and_hung_up_through_the_api_with_its_cause() {
    require_sipp();
    let mut env = CallEnv::new(&Options::default());
    let sw = env.start();
    let api = sw.api;
    let (uas_sip, uas_media) = (free_port_span(1), free_port_span(3));
    sipp_register(&sw, env.path(), "101", PW101, uas_sip);
    let mut uas = start_uas(&env, "uas", None, uas_sip, uas_media, 1);
    let mut uac = sipp_100_dials(
        &env,
        &sw,
        "uac",
        "calls_uac_wait_bye.xml",
        "101",
        Duration::from_secs(20),
    );

    // Both channels up and bridged with each other.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let chans = loop {
        let r = http(api, "GET", "/api/v1/channels", Some(API_TOKEN), &[]).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        let chans = v["channels"].as_array().unwrap().clone();
        if chans.len() == 2 && chans.iter().all(|c| c["state"] == "up") {
            break chans;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "channels never both up: {v}\n{}",
            describe(&env, &sw, &["uac", "uas"])
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let name = |prefix: &str| {
        chans
            .iter()
            .find(|c| c["name"].as_str().unwrap().starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} channel in {chans:?}"))
            .clone()
    };
    let (a, b) = (name("SIP/100-"), name("SIP/101-"));
    assert_eq!(a["bridged_with"], b["name"], "{chans:?}");
    assert_eq!(b["bridged_with"], a["name"], "{chans:?}");
    assert_eq!(a["linkedid"], b["linkedid"]);
    assert_eq!(a["exten"], "101");

    let path = format!(
        "/api/v1/channels/{}?cause=17",
        b["name"].as_str().unwrap().replace('/', "%2F")
    );
    let r = http(api, "DELETE", &path, Some(API_TOKEN), &[]).unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
    let (run_uac, run_uas) = (uac.wait(), uas.wait());
    assert!(
        run_uac.ok() && run_uas.ok(),
        "uac {:?} uas {:?}\n{}",
        run_uac.status,
        run_uas.status,
        describe(&env, &sw, &["uac", "uas"])
    );
    let hangups = sw.wait_events(2, Duration::from_secs(5), |e| {
        matches!(e, carillon_events::SwitchEvent::Hangup { .. })
    });
    assert_eq!(hangups.len(), 2, "{hangups:?}");
    assert!(
        hangups.iter().any(|e| matches!(
            &e.event,
            carillon_events::SwitchEvent::Hangup { cause: 17, .. }
        )),
        "{hangups:?}"
    );
    sw.assert_idle(Duration::from_secs(10));
    let r = http(api, "DELETE", &path, Some(API_TOKEN), &[]).unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    let r = http(api, "GET", "/api/v1/channels", Some(API_TOKEN), &[]).unwrap();
    assert_eq!(r.json()["channels"], serde_json::json!([]));
}
