//! `GET /metrics`: Prometheus text exposition (prometheus-client). The
//! figures are gathered at scrape time: the switch's counts through
//! [`crate::SwitchPort::counts`] (one round trip to the signalling thread
//! per scrape, nothing on the signalling path between scrapes), the
//! process's own (uptime, tokio's alive tasks of the runtime serving the
//! API, event stream consumers cut off). Owns the metric names; a fresh
//! registry per scrape, so no state is kept between them.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::{ApiState, SwitchCounts};

/// What a scrape reports besides the switch's counts.
pub struct ProcessFigures {
    pub uptime_secs: f64,
    /// Alive tasks of the tokio runtime serving the API (the store
    /// writers, the API's connections); not the signalling thread's.
    pub tokio_tasks: u64,
    /// Event stream consumers cut off for lagging.
    pub consumers_cut_off: u64,
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let g = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
    registry.register(name, help, g);
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c = Counter::<u64, AtomicU64>::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

/// The exposition text of one scrape.
pub fn render(counts: &SwitchCounts, process: &ProcessFigures) -> String {
    let mut r = Registry::default();
    gauge(&mut r, "carillon_calls", "Calls in progress", counts.calls);
    gauge(
        &mut r,
        "carillon_channels",
        "Live channels (SIP dialog legs) of the calls",
        counts.channels,
    );
    gauge(
        &mut r,
        "carillon_bridges",
        "Live bridges joining channels",
        counts.bridges,
    );
    gauge(
        &mut r,
        "carillon_client_transactions",
        "Open client transactions of calls",
        counts.client_transactions,
    );
    gauge(
        &mut r,
        "carillon_rtp_ports_in_use",
        "RTP ports held by calls",
        counts.rtp_ports,
    );
    gauge(
        &mut r,
        "carillon_registrations",
        "Registrar bindings (contacts)",
        counts.bindings,
    );
    gauge(
        &mut r,
        "carillon_registered_aors",
        "Addresses of record with a binding",
        counts.aors,
    );
    counter(
        &mut r,
        "carillon_sip_requests",
        "SIP requests received",
        counts.sip_requests,
    );
    counter(
        &mut r,
        "carillon_calls_started",
        "Calls started",
        counts.calls_started,
    );
    counter(
        &mut r,
        "carillon_calls_answered",
        "Calls answered",
        counts.calls_answered,
    );
    counter(
        &mut r,
        "carillon_registrations_accepted",
        "REGISTER requests accepted",
        counts.registrations_ok,
    );
    counter(
        &mut r,
        "carillon_auth_failures",
        "Failed digest authentications",
        counts.auth_failures,
    );
    counter(&mut r, "carillon_bans", "Sources banned", counts.bans);
    counter(
        &mut r,
        "carillon_cdrs_stored",
        "CDRs stored in the database",
        counts.cdrs_stored,
    );
    gauge(
        &mut r,
        "carillon_cdrs_spooled",
        "CDRs and callback requests waiting in the spool file",
        counts.cdrs_spooled,
    );
    counter(
        &mut r,
        "carillon_events_dropped",
        "Switch events the event file writer dropped",
        counts.events_dropped,
    );
    gauge(
        &mut r,
        "carillon_event_consumers",
        "Live event consumers (WebSocket, AMI)",
        counts.event_consumers,
    );
    counter(
        &mut r,
        "carillon_event_consumers_cut_off",
        "Event stream consumers cut off for falling behind",
        process.consumers_cut_off,
    );
    gauge(
        &mut r,
        "carillon_tokio_alive_tasks",
        "Alive tasks of the runtime serving the API and the store writers",
        process.tokio_tasks,
    );
    let uptime = Gauge::<f64, AtomicU64>::default();
    uptime.set(process.uptime_secs);
    r.register(
        "carillon_uptime_seconds",
        "Seconds since the process started",
        uptime,
    );
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut text, &r);
    text
}

/// `GET /metrics` (any valid token).
pub async fn scrape(caller: Caller, State(state): State<ApiState>) -> Result<Response, ApiError> {
    caller.require(Role::ReadOnly)?;
    let counts = state
        .switch()
        .counts()
        .await
        .map_err(|e| ApiError::Unavailable {
            what: "the switch",
            reason: e.to_string(),
        })?;
    let process = ProcessFigures {
        uptime_secs: state.inner.started.elapsed().as_secs_f64(),
        tokio_tasks: u64::try_from(
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
        )
        .unwrap_or(u64::MAX),
        consumers_cut_off: state.inner.lagged.load(Ordering::Relaxed),
    };
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        render(&counts, &process),
    )
        .into_response())
}
