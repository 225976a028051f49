//! `GET /api/v1/events`: the switch events over a WebSocket, one JSON
//! object per text message (the same object as a line of the event
//! file), optionally only some kinds (`?kinds=hangup,dtmf`, the `event`
//! names of `carillon-events`).
//!
//! A consumer reads from its own subscription to the event hub, which
//! never waits for it: when it falls so far behind that the hub dropped
//! records for it (`Lagged`), it is sent a notice
//! (`{"notice":"lagged","missed":N}`) and the connection is closed
//! (close code 1008). Signalling is never slowed by a consumer.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::response::IntoResponse;
use axum::response::Response;
use carillon_events::EventRecord;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::params::Params;
use crate::ApiState;

/// The `event` names a consumer may ask for.
pub const KINDS: &[&str] = &[
    "channel_created",
    "channel_state",
    "dtmf",
    "bridged",
    "unbridged",
    "app_started",
    "app_finished",
    "hangup",
    "recording_started",
    "recording_finished",
    "hold",
    "unhold",
];

/// Close code for a consumer cut off for lagging (policy violation).
const CLOSE_LAGGED: u16 = 1008;

/// A consumer that takes longer than this to accept one message (its TCP
/// window stays shut) is dropped.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Sends `message`; false when the consumer is gone or stuck.
async fn send(socket: &mut WebSocket, message: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(message)).await,
        Ok(Ok(()))
    )
}

/// The kinds of `?kinds=a,b` (every kind when absent).
fn kinds(query: Option<&str>) -> Result<Option<HashSet<String>>, ApiError> {
    let params = Params::parse(query, &["kinds"])?;
    let Some(list) = params.text("kinds")? else {
        return Ok(None);
    };
    let mut set = HashSet::new();
    for kind in list.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        if !KINDS.contains(&kind) {
            return Err(ApiError::field(
                "kinds",
                format!("unknown event kind {kind:?} (known: {})", KINDS.join(", ")),
            ));
        }
        set.insert(kind.to_owned());
    }
    Ok(Some(set))
}

/// The upgrade: token and filter are checked before it.
pub async fn stream(
    caller: Caller,
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::ReadOnly)?;
    // The filter is checked first, so a bad one is a 422 even without
    // the upgrade headers; a request that is no WebSocket upgrade gets
    // axum's answer (400, 405 or 426).
    let filter = kinds(query.as_deref())?;
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(rejection) => return Ok(rejection.into_response()),
    };
    // Subscribed before the upgrade completes: nothing published after
    // the 101 is missed.
    let rx = (state.inner.subscribe)();
    Ok(upgrade.on_upgrade(move |socket| pump(socket, rx, filter, state)))
}

fn wanted(filter: &Option<HashSet<String>>, record: &EventRecord) -> bool {
    match filter {
        Some(f) => f.contains(record.event.name()),
        None => true,
    }
}

async fn pump(
    mut socket: WebSocket,
    mut rx: tokio::sync::broadcast::Receiver<std::sync::Arc<EventRecord>>,
    filter: Option<HashSet<String>>,
    state: ApiState,
) {
    loop {
        tokio::select! {
            record = rx.recv() => match record {
                Ok(record) => {
                    if !wanted(&filter, &record) {
                        continue;
                    }
                    if !send(&mut socket, Message::Text(record.to_json().into())).await {
                        return;
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    state.inner.lagged.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(missed, "event stream consumer fell behind: cut off");
                    let notice = json!({ "notice": "lagged", "missed": missed }).to_string();
                    if send(&mut socket, Message::Text(notice.into())).await {
                        let close = CloseFrame {
                            code: CLOSE_LAGGED,
                            reason: "consumer too slow; events were dropped".into(),
                        };
                        send(&mut socket, Message::Close(Some(close))).await;
                    }
                    return;
                }
                Err(RecvError::Closed) => {
                    send(&mut socket, Message::Close(None)).await;
                    return;
                }
            },
            incoming = socket.recv() => match incoming {
                // Pings are answered by the library; text from the
                // client is ignored.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_checked_against_the_event_vocabulary() {
        assert_eq!(kinds(None).unwrap(), None);
        let set = kinds(Some("kinds=hangup,dtmf")).unwrap().unwrap();
        assert!(set.contains("hangup") && set.contains("dtmf") && set.len() == 2);
        let e = kinds(Some("kinds=hangup,bogus")).unwrap_err();
        assert!(matches!(e, ApiError::BadField { ref field, .. } if field == "kinds"));
    }
}
