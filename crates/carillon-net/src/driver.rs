//! The signalling drive loop: one task owns the [`Switch`] and `select!`s
//! over received messages, control commands (reload, shutdown) and the
//! switch's earliest timer. It is the only place the clock is read for the
//! switch; everything below gets time as an argument.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::net::IpAddr;

use carillon_b2bua::switch::Stats;
use carillon_b2bua::{Output, PolicyConfig, Switch, Transport, User};
use carillon_cdr::CallRecord;
use carillon_dialplan::Dialplan;
use carillon_mediactl::{MediaCommand, MediaEvent};
use carillon_registrar::{Binding, BindingChange, RegistrarConfig};
use tokio::sync::{mpsc, oneshot};
use tracing::info;

use crate::transport::{Inbound, ListenSpec, Listeners, TransportError};

/// Commands from the binary (signals, API).
#[derive(Debug)]
pub enum Control {
    /// SIGHUP: new users and policies; registrations are kept.
    Reload {
        users: Vec<User>,
        policy: PolicyConfig,
        registrar: RegistrarConfig,
        dialplan: Option<Dialplan>,
    },
    /// (active calls, open client transactions, RTP ports in use).
    CallCounts(oneshot::Sender<(usize, usize, usize)>),
    /// Current bindings (for tests and the API).
    Bindings(oneshot::Sender<Vec<Binding>>),
    Stats(oneshot::Sender<Stats>),
    /// Stop the loop; the reply comes once it has stopped.
    Shutdown(oneshot::Sender<()>),
}

/// Handle to a running driver.
#[derive(Clone)]
pub struct DriverHandle {
    ctl: mpsc::Sender<Control>,
    /// What the listeners actually bound.
    pub bound: Vec<ListenSpec>,
}

impl DriverHandle {
    pub async fn send(&self, c: Control) {
        let _ = self.ctl.send(c).await;
    }

    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        self.send(Control::Shutdown(tx)).await;
        let _ = rx.await;
    }

    pub async fn bindings(&self) -> Vec<Binding> {
        let (tx, rx) = oneshot::channel();
        self.send(Control::Bindings(tx)).await;
        rx.await.unwrap_or_default()
    }
}

/// Where the switch's side effects go.
pub struct Sinks {
    /// Every binding change, for persistence (must not block).
    pub binding: Box<dyn FnMut(BindingChange) + Send>,
    /// Commands for the media plane.
    pub media: Box<dyn FnMut(MediaCommand) + Send>,
    /// Finished calls' records.
    pub cdr: Box<dyn FnMut(CallRecord) + Send>,
}

/// The signalling task.
pub struct Driver;

fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Driver {
    /// Binds the listeners and spawns the loop. `on_binding` receives every
    /// binding change for persistence (it must not block).
    /// `advertise` replaces an unspecified bind address (0.0.0.0) in the
    /// Via and Contact the switch writes.
    pub async fn start(
        mut switch: Switch,
        specs: &[ListenSpec],
        advertise: IpAddr,
        sinks: Sinks,
        media_events: mpsc::Receiver<MediaEvent>,
    ) -> Result<(DriverHandle, tokio::task::JoinHandle<()>), TransportError> {
        let (tx, rx) = mpsc::channel(16_384);
        let listeners = Listeners::bind(specs, tx).await?;
        if let Some(l) = listeners
            .bound
            .iter()
            .find(|l| l.transport == Transport::Udp)
            .or(listeners.bound.first())
        {
            let mut addr = l.addr;
            if addr.ip().is_unspecified() {
                addr.set_ip(advertise);
            }
            switch.set_sip_addr(addr);
        }
        let (ctl_tx, ctl_rx) = mpsc::channel(16);
        let handle = DriverHandle {
            ctl: ctl_tx,
            bound: listeners.bound.clone(),
        };
        let join = tokio::spawn(run(switch, listeners, rx, ctl_rx, sinks, media_events));
        Ok((handle, join))
    }
}

fn drain(switch: &mut Switch, listeners: &Listeners, sinks: &mut Sinks) {
    while let Some(o) = switch.poll_output() {
        match o {
            Output::Transmit(t) => listeners.send(t.to, t.bytes),
            Output::Binding(c) => (sinks.binding)(c),
            Output::Media(c) => (sinks.media)(c),
            Output::Cdr(r) => (sinks.cdr)(r),
        }
    }
}

async fn run(
    mut switch: Switch,
    listeners: Listeners,
    mut rx: mpsc::Receiver<Inbound>,
    mut ctl: mpsc::Receiver<Control>,
    mut sinks: Sinks,
    mut media_events: mpsc::Receiver<MediaEvent>,
) {
    let mut batch = Vec::with_capacity(256);
    switch.handle_timeout(Instant::now(), unix_now_ms());
    loop {
        drain(&mut switch, &listeners, &mut sinks);
        let deadline = switch
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            biased;
            c = ctl.recv() => match c {
                Some(Control::Reload { users, policy, registrar, dialplan }) => {
                    info!(users = users.len(), "configuration reloaded; registrations kept");
                    switch.reload_users(users);
                    switch.set_policy(policy);
                    switch.set_registrar_config(registrar);
                    switch.set_dialplan(dialplan);
                }
                Some(Control::CallCounts(reply)) => {
                    let _ = reply.send(switch.call_counts());
                }
                Some(Control::Bindings(reply)) => {
                    let _ = reply.send(switch.registrar().all().cloned().collect());
                }
                Some(Control::Stats(reply)) => {
                    let _ = reply.send(switch.stats().clone());
                }
                Some(Control::Shutdown(reply)) => {
                    drain(&mut switch, &listeners, &mut sinks);
                    let _ = reply.send(());
                    return;
                }
                None => return,
            },
            n = rx.recv_many(&mut batch, 256) => {
                if n == 0 {
                    return;
                }
                let now = Instant::now();
                let unix = unix_now_ms();
                for inbound in batch.drain(..) {
                    match inbound {
                        Inbound::Message { peer, bytes } => {
                            switch.handle_input(now, unix, peer, bytes);
                            drain(&mut switch, &listeners, &mut sinks);
                        }
                        Inbound::Closed { .. } => {}
                    }
                }
            }
            Some(ev) = media_events.recv() => {
                switch.handle_media_event(Instant::now(), unix_now_ms(), ev);
            }
            _ = tokio::time::sleep_until(deadline.into()) => {
                switch.handle_timeout(Instant::now(), unix_now_ms());
            }
        }
    }
}
