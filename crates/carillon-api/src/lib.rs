//! `carillon-api`: the management API at the edge (issue 16). It owns the
//! HTTP surface and nothing of the switch: an axum [`router`] with JSON
//! resources under `/api/v1`, the WebSocket event stream
//! (`/api/v1/events`) and Prometheus metrics (`/metrics`), bearer tokens
//! with roles ([`auth`]) and the JSON errors ([`error`]).
//!
//! The switch is reached through [`SwitchPort`] (registrations, the
//! counts behind the metrics, reload), which the binary implements over
//! the signalling driver's control channel; CDRs and callback requests
//! are read from the [`carillon_store::Store`]; recordings are the files of
//! the recordings directory; events come from a subscription to the
//! binary's event hub. So the router is tested without sockets
//! (`tower::ServiceExt::oneshot`) against a fake switch and a SQLite file.
//!
//! | route | role | what |
//! |---|---|---|
//! | `GET /api/v1/health` | none | `{"status":"ok"}` while the process serves |
//! | `GET /api/v1/registrations` | read-only | live bindings of the registrar |
//! | `GET /api/v1/cdrs` | read-only | CDRs by `from`/`to` (start, Unix ms), `src`, `dst`, `disposition`, paged by `limit`/`offset` |
//! | `GET /api/v1/callbacks` | read-only | callback requests by `from`/`to`, `status`, `limit` |
//! | `GET /api/v1/channels` | read-only | the live channels (name, uniqueid, linkedid, state, caller, exten, bridged-with) |
//! | `DELETE /api/v1/channels/{name}` | supervisor | hangs the channel's call up, `?cause=` (Q.850, default 16); 204, 404 when unknown |
//! | `GET /api/v1/recordings` | supervisor | the WAV files of the recordings directory |
//! | `GET /api/v1/recordings/{name}` | supervisor | one file, with HTTP ranges |
//! | `DELETE /api/v1/recordings/{name}` | admin | removes it |
//! | `POST /api/v1/reload` | admin | what SIGHUP does; 409 with the problems when refused |
//! | `GET /api/v1/events` | read-only | WebSocket: switch events as JSON text messages, `?kinds=hangup,dtmf` |
//! | `GET /metrics` | read-only | Prometheus text |
//!
//! Errors: 401 without a valid token, 403 for a token without the role,
//! 422 naming the field for bad input, 404 for unknown resources and
//! routes. Of channel control only list and hangup exist; transfer,
//! hold and originate do not yet (404 like any unknown path).

pub mod auth;
mod channels;
pub mod error;
mod events;
mod metrics;
mod params;
mod recordings;
mod routes;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

use axum::routing::{delete, get, post};
use axum::Router;
use carillon_events::EventRecord;
use serde::Serialize;
use tokio::sync::broadcast;

pub use auth::{ApiToken, Role};
pub use error::ApiError;

/// A boxed future of the [`SwitchPort`] methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The signalling thread did not answer (stopping, or gone).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the switch did not answer")]
pub struct SwitchGone;

/// One registrar binding as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Registration {
    pub aor: String,
    pub contact: String,
    /// Where the REGISTER came from (`udp:127.0.0.1:5070`).
    pub source: String,
    /// Unix seconds.
    pub expires_at: u64,
    pub user_agent: Option<String>,
    pub instance: Option<String>,
    pub q: Option<f32>,
    pub path: Vec<String>,
}

/// One live channel as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelView {
    /// As in the events (`SIP/100-0000002a`).
    pub name: String,
    pub uniqueid: String,
    pub linkedid: String,
    /// `ringing`, `early`, `up` or `down`.
    pub state: String,
    pub caller_num: String,
    pub caller_name: String,
    pub exten: String,
    pub context: String,
    /// The channel it is bridged with, if any.
    pub bridged_with: Option<String>,
    /// Unix ms.
    pub start_ms: i64,
    pub answer_ms: Option<i64>,
}

/// The counts behind `/metrics` that the binary knows (the switch's, the
/// store writer's, the event outlets').
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwitchCounts {
    /// Calls in progress.
    pub calls: u64,
    /// Live channels (SIP dialog legs) and bridges of those calls.
    pub channels: u64,
    pub bridges: u64,
    /// Client transactions of the calls still open.
    pub client_transactions: u64,
    /// RTP ports held by calls.
    pub rtp_ports: u64,
    /// Registered addresses of record and their bindings.
    pub aors: u64,
    pub bindings: u64,
    /// Counters since start.
    pub sip_requests: u64,
    pub calls_started: u64,
    pub calls_answered: u64,
    pub registrations_ok: u64,
    pub auth_failures: u64,
    pub bans: u64,
    /// CDRs stored in the database since start.
    pub cdrs_stored: u64,
    /// CDRs (and callback requests) waiting in the spool file now.
    pub cdrs_spooled: u64,
    /// Switch events the event file writer dropped (disk behind).
    pub events_dropped: u64,
    /// Live event consumers (WebSocket, AMI).
    pub event_consumers: u64,
}

/// What the API asks of the switch; the binary implements it over the
/// driver's control channel.
pub trait SwitchPort: Send + Sync + 'static {
    /// The registrar's bindings now.
    fn registrations(&self) -> BoxFuture<'_, Result<Vec<Registration>, SwitchGone>>;
    /// The counts for `/metrics`.
    fn counts(&self) -> BoxFuture<'_, Result<SwitchCounts, SwitchGone>>;
    /// Reads the configuration again and applies it as SIGHUP does; the
    /// problems (`file:line: key: message`) when it is refused.
    fn reload(&self) -> BoxFuture<'_, Result<(), Vec<String>>>;
    /// The live channels.
    fn channels(&self) -> BoxFuture<'_, Result<Vec<ChannelView>, SwitchGone>>;
    /// Hangs the channel `name` up with the Q.850 `cause`; `false` when
    /// there is no such channel.
    fn hangup(&self, name: String, cause: u8) -> BoxFuture<'_, Result<bool, SwitchGone>>;
}

/// A new subscription to the switch events.
pub type Subscribe = Arc<dyn Fn() -> broadcast::Receiver<Arc<EventRecord>> + Send + Sync>;

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    tokens: RwLock<Arc<Vec<ApiToken>>>,
    switch: Arc<dyn SwitchPort>,
    store: OnceLock<carillon_store::Store>,
    recordings: PathBuf,
    subscribe: Subscribe,
    started: Instant,
    /// WebSocket consumers cut off for lagging.
    lagged: AtomicU64,
}

impl ApiState {
    pub fn new(
        tokens: Vec<ApiToken>,
        switch: Arc<dyn SwitchPort>,
        recordings: PathBuf,
        subscribe: Subscribe,
    ) -> ApiState {
        ApiState {
            inner: Arc::new(Inner {
                tokens: RwLock::new(Arc::new(tokens)),
                switch,
                store: OnceLock::new(),
                recordings,
                subscribe,
                started: Instant::now(),
                lagged: AtomicU64::new(0),
            }),
        }
    }

    /// The database, once reachable (the switch may start without it);
    /// later calls are ignored.
    pub fn set_store(&self, store: carillon_store::Store) {
        let _ = self.inner.store.set(store);
    }

    /// Replaces the tokens (a reload of `[api]`).
    pub fn set_tokens(&self, tokens: Vec<ApiToken>) {
        if let Ok(mut t) = self.inner.tokens.write() {
            *t = Arc::new(tokens);
        }
    }

    pub(crate) fn tokens(&self) -> Arc<Vec<ApiToken>> {
        self.inner
            .tokens
            .read()
            .map(|t| Arc::clone(&t))
            .unwrap_or_default()
    }

    pub(crate) fn store(&self) -> Result<&carillon_store::Store, ApiError> {
        self.inner.store.get().ok_or(ApiError::Unavailable {
            what: "the database",
            reason: "not reached yet".into(),
        })
    }

    pub(crate) fn switch(&self) -> &dyn SwitchPort {
        &*self.inner.switch
    }
}

/// The API's routes on `state`.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/health", get(routes::health))
        .route("/api/v1/registrations", get(routes::registrations))
        .route("/api/v1/cdrs", get(routes::cdrs))
        .route("/api/v1/callbacks", get(routes::callbacks))
        .route("/api/v1/reload", post(routes::reload))
        .route("/api/v1/channels", get(channels::list))
        .route("/api/v1/channels/{name}", delete(channels::hangup))
        .route("/api/v1/recordings", get(recordings::list))
        .route(
            "/api/v1/recordings/{name}",
            get(recordings::download).delete(recordings::remove),
        )
        .route("/api/v1/events", get(events::stream))
        .route("/metrics", get(metrics::scrape))
        .fallback(routes::not_found)
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
pub(crate) mod testing;
