//! The management API at the edge of the binary: the listener bound at
//! start, the [`carillon_api::SwitchPort`] the API reads the switch
//! through (the driver's control channel: bindings, counts and stats,
//! the channel list and channel hangups,
//! one round trip each, only when asked), the counts of the store writer
//! and event outlets for `/metrics`, and reload requests handed to the
//! main loop, which reloads exactly as on SIGHUP. Owns no HTTP logic
//! (`carillon-api` does).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use carillon_api::{BoxFuture, ChannelView, Registration, SwitchCounts, SwitchGone, SwitchPort};
use carillon_net::{Control, DriverHandle};
use carillon_store::CdrWriterHandle;
use tokio::sync::{mpsc, oneshot};

use crate::events::EventHub;

/// A reload asked for through the API, answered with its problems.
pub type ReloadRequest = oneshot::Sender<Result<(), Vec<String>>>;

/// The switch as the API sees it.
pub struct SwitchLink {
    pub driver: DriverHandle,
    pub cdrs: CdrWriterHandle,
    pub hub: EventHub,
    /// Records the event file writer dropped (none without a file).
    pub events_dropped: Option<Arc<AtomicU64>>,
    /// To the main loop, which reloads as on SIGHUP.
    pub reload: mpsc::Sender<ReloadRequest>,
}

impl SwitchLink {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Control,
    ) -> Result<T, SwitchGone> {
        let (tx, rx) = oneshot::channel();
        self.driver.send(make(tx)).await;
        rx.await.map_err(|_| SwitchGone)
    }
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl SwitchPort for SwitchLink {
    fn registrations(&self) -> BoxFuture<'_, Result<Vec<Registration>, SwitchGone>> {
        Box::pin(async move {
            let bindings = self.ask(Control::Bindings).await?;
            let now = crate::unix_now();
            Ok(bindings
                .into_iter()
                .filter(|b| b.expires_at > now)
                .map(|b| Registration {
                    aor: b.aor.to_string(),
                    contact: b.contact.to_string(),
                    source: b.source.to_string(),
                    expires_at: b.expires_at,
                    user_agent: b.user_agent.map(|u| u.to_string()),
                    instance: b.instance,
                    q: b.q,
                    path: b.path,
                })
                .collect())
        })
    }

    fn counts(&self) -> BoxFuture<'_, Result<SwitchCounts, SwitchGone>> {
        Box::pin(async move {
            let (calls, client_transactions, rtp_ports) = self.ask(Control::CallCounts).await?;
            let (aors, bindings) = self.ask(Control::RegistrationCount).await?;
            let (channels, bridges) = self.ask(Control::ChannelCounts).await?;
            let stats = self.ask(Control::Stats).await?;
            let cdrs = self.cdrs.stats();
            Ok(SwitchCounts {
                calls: count(calls),
                channels: count(channels),
                bridges: count(bridges),
                client_transactions: count(client_transactions),
                rtp_ports: count(rtp_ports),
                aors: count(aors),
                bindings: count(bindings),
                sip_requests: stats.requests,
                calls_started: stats.calls_started,
                calls_answered: stats.calls_answered,
                registrations_ok: stats.registrations_ok,
                auth_failures: stats.auth_failures,
                bans: stats.bans,
                cdrs_stored: cdrs.stored,
                cdrs_spooled: cdrs.spooled,
                events_dropped: self
                    .events_dropped
                    .as_ref()
                    .map_or(0, |d| d.load(Ordering::Relaxed)),
                event_consumers: count(self.hub.consumers()),
            })
        })
    }

    fn channels(&self) -> BoxFuture<'_, Result<Vec<ChannelView>, SwitchGone>> {
        Box::pin(async move {
            let list = self.ask(Control::Channels).await?;
            Ok(list
                .into_iter()
                .map(|c| ChannelView {
                    name: c.name,
                    uniqueid: c.uniqueid,
                    linkedid: c.linkedid,
                    state: c.state.to_owned(),
                    caller_num: c.caller_num,
                    caller_name: c.caller_name,
                    exten: c.exten,
                    context: c.context,
                    bridged_with: c.bridged_with,
                    start_ms: c.start_ms,
                    answer_ms: c.answer_ms,
                })
                .collect())
        })
    }

    fn hangup(&self, name: String, cause: u8) -> BoxFuture<'_, Result<bool, SwitchGone>> {
        Box::pin(async move {
            let r = self
                .ask(|reply| Control::Hangup {
                    channel: name,
                    cause,
                    reply,
                })
                .await?;
            Ok(r.is_ok())
        })
    }

    fn reload(&self) -> BoxFuture<'_, Result<(), Vec<String>>> {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            let gone = || vec!["the switch is stopping".to_owned()];
            self.reload.send(tx).await.map_err(|_| gone())?;
            rx.await.map_err(|_| gone())?
        })
    }
}
