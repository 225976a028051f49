//! The dialplan's `Webhook` at the edge: HTTP POSTs of a JSON body to an
//! operator-configured URL, sent in the background so that a call never
//! waits for them.
//!
//! Owns: the [`WebhookSender`] (one per process) with its bounded queue, the
//! HTTP client (reqwest: http, and https through rustls with the webpki
//! roots), the per-attempt timeout, the bounded retries with backoff, and the
//! [`WebhookStats`] counters. Does not own: which variables go into the body
//! or when a webhook fires (the dialplan and the switch decide; the switch
//! emits `Output::Webhook`, the binary hands it here).
//!
//! ```text
//! send() ──try_send──► queue (bounded) ──► dispatcher ──► one task per request
//!    │ full: dropped,                        (at most `concurrency` at once)
//!    ▼ warning + counter                     attempt ─ok(2xx)─► delivered
//!                                              │ connect error, timeout, non-2xx
//!                                              ▼ logged once per attempt
//!                                            backoff, again (≤ retries more)
//!                                              └─► given up (logged, counted)
//! ```
//!
//! Requests go only to the URL given: redirects are not followed (a 3xx is a
//! failure) and no proxy from the environment is used.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use tracing::{debug, warn};

/// One POST to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRequest {
    /// `http://` or `https://` URL, as the operator configured it.
    pub url: String,
    /// JSON text, sent with `Content-Type: application/json`.
    pub body: String,
    /// Bound of one attempt: connect, send, and the response.
    pub timeout: Duration,
    /// Further attempts after a failed first one.
    pub retries: u32,
}

/// Tuning of a [`WebhookSender`].
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Requests waiting to be sent; beyond this, [`WebhookSender::send`]
    /// drops the request (with a warning and a count).
    pub queue: usize,
    /// Requests in flight at once (a hanging server holds one slot per
    /// request for at most its timeouts and backoffs).
    pub concurrency: usize,
    /// Wait before the first retry; it doubles for each further one.
    pub backoff: Duration,
    /// Longest wait between two attempts.
    pub max_backoff: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            queue: 1024,
            concurrency: 16,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// What the sender has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookStats {
    /// Requests answered with a 2xx status.
    pub delivered: u64,
    /// Attempts that failed (connect error, timeout, non-2xx).
    pub failed_attempts: u64,
    /// Requests abandoned after their last attempt failed.
    pub given_up: u64,
    /// Requests dropped because the queue was full (or the sender stopped).
    pub dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    delivered: AtomicU64,
    failed_attempts: AtomicU64,
    given_up: AtomicU64,
    dropped: AtomicU64,
}

/// Errors starting a [`WebhookSender`].
#[derive(Debug, thiserror::Error)]
#[error("cannot build the webhook HTTP client: {0}")]
pub struct WebhookError(#[source] reqwest::Error);

/// Queues webhook POSTs for a background task. Cheap to clone; create one
/// per process with [`WebhookSender::spawn`].
#[derive(Debug, Clone)]
pub struct WebhookSender {
    tx: mpsc::Sender<WebhookRequest>,
    counters: Arc<Counters>,
}

impl WebhookSender {
    /// Starts the sender's task on the current tokio runtime.
    pub fn spawn(config: WebhookConfig) -> Result<WebhookSender, WebhookError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(WebhookError)?;
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let counters = Arc::new(Counters::default());
        tokio::spawn(dispatch(rx, client, config, Arc::clone(&counters)));
        Ok(WebhookSender { tx, counters })
    }

    /// Queues the request and returns at once; never waits. When the queue
    /// is full (or the task has stopped) the request is dropped with a
    /// warning and counted in [`WebhookStats::dropped`]; returns whether it
    /// was queued.
    pub fn send(&self, request: WebhookRequest) -> bool {
        match self.tx.try_send(request) {
            Ok(()) => true,
            Err(e) => {
                let dropped = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                let (why, request) = match e {
                    mpsc::error::TrySendError::Full(r) => ("queue full", r),
                    mpsc::error::TrySendError::Closed(r) => ("sender stopped", r),
                };
                warn!(url = %request.url, dropped, "webhook dropped: {why}");
                false
            }
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> WebhookStats {
        let c = &self.counters;
        WebhookStats {
            delivered: c.delivered.load(Ordering::Relaxed),
            failed_attempts: c.failed_attempts.load(Ordering::Relaxed),
            given_up: c.given_up.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
        }
    }
}

/// Takes requests off the queue as slots free up and runs each in a task.
async fn dispatch(
    mut rx: mpsc::Receiver<WebhookRequest>,
    client: reqwest::Client,
    config: WebhookConfig,
    counters: Arc<Counters>,
) {
    let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
    loop {
        // A slot first, then a request: while every slot is busy, requests
        // stay in the bounded queue (and overflow is dropped by send()).
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let Some(request) = rx.recv().await else {
            return;
        };
        let client = client.clone();
        let counters = Arc::clone(&counters);
        let (backoff, max_backoff) = (config.backoff, config.max_backoff);
        tokio::spawn(async move {
            deliver(&client, &request, backoff, max_backoff, &counters).await;
            drop(slot);
        });
    }
}

/// Why one attempt failed.
enum Failure {
    /// Worth another attempt (connect error, timeout, non-2xx status).
    Transient(String),
    /// Will fail the same way every time (e.g. a malformed URL).
    Permanent(String),
}

async fn attempt(client: &reqwest::Client, request: &WebhookRequest) -> Result<u16, Failure> {
    let sent = client
        .post(&request.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(request.body.clone())
        .timeout(request.timeout)
        .send()
        .await;
    match sent {
        Ok(response) if response.status().is_success() => Ok(response.status().as_u16()),
        Ok(response) => Err(Failure::Transient(format!("status {}", response.status()))),
        Err(e) if e.is_builder() => Err(Failure::Permanent(e.to_string())),
        Err(e) if e.is_timeout() => Err(Failure::Transient(format!(
            "no answer within {:?}",
            request.timeout
        ))),
        Err(e) => Err(Failure::Transient(error_chain(&e))),
    }
}

/// An error with its causes ("error sending request: …: Connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Sends one request: the first attempt and up to `retries` more.
async fn deliver(
    client: &reqwest::Client,
    request: &WebhookRequest,
    backoff: Duration,
    max_backoff: Duration,
    counters: &Counters,
) {
    let attempts = request.retries.saturating_add(1);
    let mut wait = backoff;
    for n in 1..=attempts {
        match attempt(client, request).await {
            Ok(status) => {
                counters.delivered.fetch_add(1, Ordering::Relaxed);
                debug!(url = %request.url, attempt = n, status, "webhook delivered");
                return;
            }
            Err(Failure::Permanent(error)) => {
                counters.failed_attempts.fetch_add(1, Ordering::Relaxed);
                counters.given_up.fetch_add(1, Ordering::Relaxed);
                warn!(url = %request.url, attempt = n, %error, "webhook failed; not retried");
                return;
            }
            Err(Failure::Transient(error)) => {
                counters.failed_attempts.fetch_add(1, Ordering::Relaxed);
                warn!(url = %request.url, attempt = n, of = attempts, %error, "webhook attempt failed");
            }
        }
        if n < attempts {
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2).min(max_backoff);
        }
    }
    counters.given_up.fetch_add(1, Ordering::Relaxed);
    warn!(url = %request.url, attempts, "webhook given up");
}
