//! Helpers of the IVR end-to-end tests (`ivr.rs`, `ivr_example.rs`): a
//! baresip caller dialling and sending RFC 4733 digits, the switch's
//! application, DTMF and hangup events, the energy of what the caller
//! heard, and the callback requests stored in the database. Every wait is
//! bounded.

use std::time::Duration;

use carillon_events::SwitchEvent;

use super::baresip::Baresip;
use super::{block_on, CallEnv, Switch, Wav};

/// 100 dials `exten` and the switch answers (bounded).
pub fn dial(env: &CallEnv, sw: &Switch, p: &mut Baresip, exten: &str) {
    p.command("dial", &format!("sip:{exten}@127.0.0.1:{}", env.port));
    assert!(
        p.wait_event("CALL_ESTABLISHED", 1, Duration::from_secs(15)),
        "100 → {exten} not answered; events:\n{}\nswitch log:\n{}",
        p.events,
        sw.log()
    );
}

/// Waits (bounded) for the `n`th `app_started` of `app`.
pub fn wait_app_started(sw: &Switch, app: &str, n: usize, timeout: Duration) {
    let found = sw.wait_events(
        n,
        timeout,
        |e| matches!(e, SwitchEvent::AppStarted { app: a, .. } if a == app),
    );
    assert!(
        found.len() >= n,
        "{app} did not start {n} time(s): {:#?}\n{}",
        sw.events(),
        sw.log()
    );
}

/// The `(app, result)` of every `app_finished` so far.
pub fn apps_finished(sw: &Switch) -> Vec<(String, String)> {
    sw.events()
        .into_iter()
        .filter_map(|e| match e.event {
            SwitchEvent::AppFinished { app, result, .. } => Some((app, result)),
            _ => None,
        })
        .collect()
}

/// The apps started so far, in order.
pub fn apps_started(sw: &Switch) -> Vec<String> {
    sw.events()
        .into_iter()
        .filter_map(|e| match e.event {
            SwitchEvent::AppStarted { app, .. } => Some(app),
            _ => None,
        })
        .collect()
}

/// The caller's `hangup` cause of the `n`th call (waiting, bounded).
pub fn caller_hangup_cause(sw: &Switch, n: usize) -> u16 {
    let ended = sw.wait_calls_ended(n, Duration::from_secs(20));
    assert!(
        ended.len() >= n,
        "call {n} did not end: {:#?}\n{}",
        sw.events(),
        sw.log()
    );
    match &ended[n - 1] {
        SwitchEvent::Hangup { cause, .. } => *cause,
        other => panic!("not a hangup: {other:?}"),
    }
}

/// Seconds of sound (100 ms blocks above ~1 % of full scale) in a
/// recording.
pub fn voiced_seconds(wav: &Wav) -> f64 {
    let block = usize::try_from(wav.rate / 10).unwrap_or(800).max(1);
    let voiced = wav
        .samples
        .chunks_exact(block)
        .filter(|c| {
            let e: f64 = c.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
            (e / c.len() as f64).sqrt() >= 300.0
        })
        .count();
    voiced as f64 / 10.0
}

/// Sends `digits` as RFC 4733 events from `p`, `gap` apart.
pub fn send_digits(p: &mut Baresip, digits: &str, gap: Duration) {
    for d in digits.chars() {
        p.command("sndcode", &d.to_string());
        std::thread::sleep(gap);
    }
}

/// The digits of the `dtmf` events of channels of 100, in order.
pub fn digits_from_100(sw: &Switch) -> String {
    sw.events()
        .into_iter()
        .filter_map(|e| match e.event {
            SwitchEvent::Dtmf { channel, digit, .. } if channel.contains("/100-") => Some(digit),
            _ => None,
        })
        .collect()
}

/// Waits (bounded) until the phone's call is closed.
pub fn wait_closed(sw: &Switch, p: &mut Baresip, timeout: Duration) {
    assert!(
        p.wait_event("CALL_CLOSED", 1, timeout),
        "{}: call not closed; events:\n{}\nswitch log:\n{}",
        p.name,
        p.events,
        sw.log()
    );
}

/// 100 dials `exten` for its second call (bounded wait for the answer).
pub fn dial_again(env: &CallEnv, sw: &Switch, p: &mut Baresip, exten: &str) {
    p.command("dial", &format!("sip:{exten}@127.0.0.1:{}", env.port));
    assert!(
        p.wait_event("CALL_ESTABLISHED", 2, Duration::from_secs(15)),
        "second call to {exten} not answered; events:\n{}\nswitch log:\n{}",
        p.events,
        sw.log()
    );
}

/// Waits (bounded) for `n` callback requests stored since `since_ms`.
pub fn wait_callbacks(
    url: &str,
    since_ms: i64,
    n: usize,
) -> Vec<carillon_store::StoredCallbackRequest> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows = block_on(async {
            let store = carillon_store::Store::connect(url)
                .await
                .map_err(|e| format!("connect {url}: {e}"))?;
            let rows = store
                .fetch_callback_requests(&carillon_store::CallbackQuery {
                    since_ms,
                    ..carillon_store::CallbackQuery::default()
                })
                .await
                .map_err(|e| format!("fetch_callback_requests: {e}"));
            store.close().await;
            rows
        })
        .unwrap_or_default();
        if rows.len() >= n || std::time::Instant::now() >= deadline {
            return rows;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits (bounded) until the switch's events show nothing left of the
/// test's calls, then asserts it: every channel created has hung up, every
/// bridge made was unbridged, and every recording started has finished;
/// then that `/metrics` shows no call, RTP port or client transaction
/// left ([`Switch::assert_idle`]).
pub fn assert_nothing_left(sw: &Switch, timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let (mut created, mut hung_up) = (Vec::new(), Vec::new());
        let (mut bridges, mut recordings) = (0i64, 0i64);
        for e in sw.events() {
            match e.event {
                SwitchEvent::ChannelCreated { channel, .. } => created.push(channel),
                SwitchEvent::Hangup { channel, .. } => hung_up.push(channel),
                SwitchEvent::Bridged { .. } => bridges += 1,
                SwitchEvent::Unbridged { .. } => bridges -= 1,
                SwitchEvent::RecordingStarted { .. } => recordings += 1,
                SwitchEvent::RecordingFinished { .. } => recordings -= 1,
                _ => {}
            }
        }
        let open: Vec<&String> = created.iter().filter(|c| !hung_up.contains(c)).collect();
        if open.is_empty() && bridges == 0 && recordings == 0 {
            // And the switch's own counts (its API's /metrics) agree.
            sw.assert_idle(timeout);
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "left after the test: channels not hung up {open:?}, bridges open {bridges}, \
             recordings unfinished {recordings}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
