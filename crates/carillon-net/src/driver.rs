//! The signalling drive loop: one task owns the [`Switch`] and `select!`s
//! over its UDP sockets, stream messages, control commands (reload,
//! shutdown), media events and the switch's earliest timer. It is the only
//! place the clock is read for the switch; everything below gets time as an
//! argument.
//!
//! The task runs on a thread of its own with a single-threaded runtime: the
//! switch is single-owner anyway, and keeping the sockets, the task and the
//! wake-ups on one thread removes the cross-thread hand-off (a futex wake
//! and a context switch) that a reader task per socket on the shared
//! runtime cost for every datagram. When a UDP socket is readable the task
//! drains up to [`UDP_BATCH`] datagrams (a `recvmmsg` of up to eight at a
//! time) before looking at anything else, and
//! the UDP datagrams the switch answers them with leave together at the end
//! of the batch (one `sendmmsg` per socket, see
//! [`crate::transport::UdpOutbox`]) rather than with a `sendto` each.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::net::IpAddr;

use carillon_b2bua::switch::Stats;
use carillon_b2bua::{Output, PolicyConfig, Switch, Transport, User};
use carillon_cdr::CallRecord;
use carillon_dialplan::Dialplan;
use carillon_mediactl::{MediaCommand, MediaEvent};
use carillon_registrar::{Binding, BindingChange, RegistrarConfig};
use carillon_webhook::WebhookRequest;
use std::sync::Arc;

use bytes::Bytes;
use carillon_b2bua::Peer;
use carillon_sip::message::MAX_MESSAGE_SIZE;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info};

use crate::held::HeldCommands;
use crate::transport::{Inbound, ListenSpec, Listeners, TransportError, UdpOutbox};
use carillon_udpbatch::RecvBatch;
use std::os::fd::AsRawFd;
use tokio::io::Interest;

/// Datagrams one `recvmmsg` of a SIP socket may return.
const RECV_BATCH: usize = 8;

/// Commands from the binary (signals, API).
#[derive(Debug)]
pub enum Control {
    /// SIGHUP: new users and policies; registrations are kept.
    Reload {
        users: Vec<User>,
        policy: PolicyConfig,
        registrar: RegistrarConfig,
        dialplan: Option<Dialplan>,
        /// `trunks.toml` and its host names (boxed: the other commands
        /// are small).
        trunks: Box<TrunksReload>,
    },
    /// Bindings read from the database after it became reachable late
    /// (the switch started while it was down); ones already held win.
    RestoreBindings(Vec<Binding>),
    /// (active calls, open client transactions, RTP ports in use).
    CallCounts(oneshot::Sender<(usize, usize, usize)>),
    /// Current bindings (for tests and the API).
    Bindings(oneshot::Sender<Vec<Binding>>),
    /// (registered addresses of record, bindings), for metrics.
    RegistrationCount(oneshot::Sender<(usize, usize)>),
    /// (live channels, live bridges), for metrics and the tests' idle check.
    ChannelCounts(oneshot::Sender<(usize, usize)>),
    /// The live channels (API and AMI channel lists).
    Channels(oneshot::Sender<Vec<carillon_b2bua::calls::chanctl::ChannelInfo>>),
    /// Hang the channel `channel` up with the Q.850 `cause` (its call
    /// ends); the reply says whether there was such a channel.
    Hangup {
        channel: String,
        cause: u8,
        reply: oneshot::Sender<Result<(), carillon_b2bua::calls::chanctl::NotFound>>,
    },
    Stats(oneshot::Sender<Stats>),
    /// Stop the loop; the reply comes once it has stopped.
    Shutdown(oneshot::Sender<()>),
}

/// The trunk part of [`Control::Reload`].
#[derive(Debug)]
pub struct TrunksReload {
    /// `trunks.toml` (`None`: no file).
    pub set: Option<carillon_trunk::TrunkSet>,
    /// Host names of its enabled trunks, resolved by the binary.
    pub hosts: std::collections::HashMap<String, IpAddr>,
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
    /// Commands for the media plane, in order; each batch holds one
    /// worker's commands and should reach it as one message (one wake-up).
    pub media: Box<dyn FnMut(Vec<MediaCommand>) + Send>,
    /// Number of media workers (commands are held per worker, see
    /// [`crate::held`]).
    pub media_workers: usize,
    /// Finished calls' records.
    pub cdr: Box<dyn FnMut(CallRecord) + Send>,
    /// Switch events (must not block).
    pub event: Box<dyn FnMut(carillon_events::EventRecord) + Send>,
    /// Callers' callback requests, for the store (must not block).
    pub callback: Box<dyn FnMut(carillon_cdr::CallbackRequest) + Send>,
    /// Webhook POSTs, for the sender's queue (must not block).
    pub webhook: Box<dyn FnMut(WebhookRequest) + Send>,
    /// Voicemail changes, for the store and the files (must not block).
    pub voicemail: Box<dyn FnMut(carillon_dialplan::voicemail::Persist) + Send>,
}

/// The signalling task.
pub struct Driver;

fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Receive coalescing: after a readiness event that drained the UDP
/// sockets with a short batch, while datagrams keep coming (the previous
/// event was less than [`COALESCE_BUSY`] before), the signalling thread
/// sleeps [`COALESCE_PAUSE`] so that the next event finds several
/// datagrams queued: one wake-up, one `recvmmsg` and one `sendmmsg` carry
/// many messages instead of one or two each (the interrupt moderation a
/// network card does, applied to the loop). A quiet switch never pauses,
/// so a lone message waits for nothing; under load a message, a timer or
/// a media event waits at most the pause, far below SIP's 500 ms T1.
const COALESCE_PAUSE: Duration = Duration::from_micros(500);
/// See [`COALESCE_PAUSE`].
const COALESCE_BUSY: Duration = Duration::from_millis(2);

/// Whether the loop pauses after a readiness event at `now` that read
/// `read` datagrams, the previous event having been at `previous`: only
/// while traffic is steady, and not after a full batch (more is queued).
fn coalesce_after(previous: Option<Instant>, now: Instant, read: usize) -> bool {
    let busy = previous.is_some_and(|p| now.saturating_duration_since(p) < COALESCE_BUSY);
    busy && read > 0 && read < UDP_BATCH
}

/// How long a stop waits for registrars to answer our un-REGISTERs.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Datagrams read from one socket per readiness event before the loop
/// looks at timers and control commands again.
pub const UDP_BATCH: usize = 64;

impl Driver {
    /// Binds the listeners and starts the signalling thread. Binding
    /// changes, media commands and CDRs go to `sinks` (which must not
    /// block). `advertise` replaces an unspecified bind address (0.0.0.0)
    /// in the Via and Contact the switch writes. The returned join handle
    /// completes when the signalling thread has stopped.
    pub async fn start(
        switch: Switch,
        specs: &[ListenSpec],
        advertise: IpAddr,
        sinks: Sinks,
        media_events: mpsc::Receiver<MediaEvent>,
    ) -> Result<(DriverHandle, tokio::task::JoinHandle<()>), TransportError> {
        let specs = specs.to_vec();
        let (ready_tx, ready_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let (ctl_tx, ctl_rx) = mpsc::channel(16);
        let thread = std::thread::Builder::new()
            .name("carillon-sip".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(TransportError::Runtime(e)));
                        return;
                    }
                };
                rt.block_on(async move {
                    let (tx, rx) = mpsc::channel(16_384);
                    // `tx` stays alive for the whole loop so the stream
                    // channel never reads as closed when there is no TCP
                    // listener.
                    let listeners = match Listeners::bind(&specs, tx.clone()).await {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let mut switch = switch;
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
                    if let Some(l) = listeners
                        .bound
                        .iter()
                        .find(|l| l.transport == Transport::Tcp)
                    {
                        let mut addr = l.addr;
                        if addr.ip().is_unspecified() {
                            addr.set_ip(advertise);
                        }
                        switch.set_tcp_addr(addr);
                    }
                    if ready_tx.send(Ok(listeners.bound.clone())).is_err() {
                        return;
                    }
                    run(switch, listeners, rx, ctl_rx, sinks, media_events).await;
                    drop(tx);
                });
                drop(done_tx);
            })
            .map_err(TransportError::Runtime)?;
        let bound = match ready_rx.await {
            Ok(r) => r?,
            Err(_) => {
                let _ = thread.join();
                return Err(TransportError::Runtime(std::io::Error::other(
                    "signalling thread stopped while starting",
                )));
            }
        };
        let handle = DriverHandle { ctl: ctl_tx, bound };
        let join = tokio::spawn(async move {
            let _ = done_rx.await;
        });
        Ok((handle, join))
    }
}

/// The switch's side-effect sinks, with its media commands held briefly
/// so that several reach a media worker with one wake-up (see
/// [`crate::held`]). Whatever is still held when this is dropped (the
/// signalling thread stops) is handed over then.
struct Outputs {
    sinks: Sinks,
    held: HeldCommands,
}

impl Outputs {
    fn new(sinks: Sinks) -> Self {
        let workers = sinks.media_workers;
        Outputs {
            sinks,
            held: HeldCommands::new(HeldCommands::DEFAULT_HOLD, workers),
        }
    }

    fn media(&mut self, command: MediaCommand) {
        if let Some(worker) = self.held.push(Instant::now(), command) {
            self.release_media(worker);
        }
    }

    fn release_media(&mut self, worker: usize) {
        let batch = self.held.release(worker);
        if !batch.is_empty() {
            (self.sinks.media)(batch);
        }
    }

    /// Hands over the held commands of every worker whose oldest has
    /// waited long enough.
    fn release_due(&mut self, now: Instant) {
        for worker in 0..self.held.workers() {
            if self.held.is_due(worker, now) {
                self.release_media(worker);
            }
        }
    }
}

impl Drop for Outputs {
    fn drop(&mut self) {
        for worker in 0..self.held.workers() {
            self.release_media(worker);
        }
    }
}

fn drain(switch: &mut Switch, listeners: &Listeners, sinks: &mut Outputs) {
    drain_with(switch, sinks, |to, bytes| listeners.send(to, bytes));
}

/// [`drain`], with UDP datagrams queued in `outbox` for the end of the
/// read batch.
fn drain_queued(
    switch: &mut Switch,
    listeners: &Listeners,
    sinks: &mut Outputs,
    outbox: &mut UdpOutbox,
) {
    drain_with(switch, sinks, |to, bytes| {
        listeners.send_or_queue(outbox, to, bytes)
    });
}

/// Hands every output of the switch to its sink (datagrams to `transmit`).
fn drain_with(switch: &mut Switch, out: &mut Outputs, mut transmit: impl FnMut(Peer, Bytes)) {
    while let Some(o) = switch.poll_output() {
        match o {
            Output::Transmit(t) => transmit(t.to, t.bytes),
            Output::Binding(c) => (out.sinks.binding)(c),
            Output::Media(c) => out.media(c),
            Output::Cdr(r) => (out.sinks.cdr)(r),
            Output::Event(e) => (out.sinks.event)(e),
            Output::Callback(c) => (out.sinks.callback)(c),
            Output::Voicemail(v) => (out.sinks.voicemail)(v),
            Output::Webhook {
                url,
                body,
                timeout,
                retries,
            } => (out.sinks.webhook)(WebhookRequest {
                url,
                body,
                timeout,
                retries,
            }),
        }
    }
}

/// Waits until one of the UDP sockets is readable; its index. Pending
/// forever when there are none.
async fn udp_readable(socks: &[Arc<UdpSocket>]) -> usize {
    std::future::poll_fn(|cx| {
        for (i, s) in socks.iter().enumerate() {
            if let std::task::Poll::Ready(r) = s.poll_recv_ready(cx) {
                if let Err(e) = r {
                    debug!(error = %e, "udp readiness error");
                }
                return std::task::Poll::Ready(i);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

async fn run(
    mut switch: Switch,
    listeners: Listeners,
    mut rx: mpsc::Receiver<Inbound>,
    mut ctl: mpsc::Receiver<Control>,
    sinks: Sinks,
    mut media_events: mpsc::Receiver<MediaEvent>,
) {
    let mut sinks = Outputs::new(sinks);
    let udp: Vec<Arc<UdpSocket>> = listeners.udp_sockets().cloned().collect();
    // Receive buffers, zeroed once and reused: each datagram is copied out
    // into an allocation of its own size. One byte over the largest
    // message, so that a longer datagram still fails to parse as too large.
    let mut recv = RecvBatch::<RECV_BATCH>::with_room(MAX_MESSAGE_SIZE + 1);
    let mut batch = Vec::with_capacity(256);
    let mut outbox = UdpOutbox::new(UDP_BATCH);
    switch.handle_timeout(Instant::now(), unix_now_ms());
    let mut stopping: Option<(Instant, oneshot::Sender<()>)> = None;
    // One timer for the whole loop, moved only when the deadline changes
    // (not a fresh one registered every turn). tokio still writes the
    // runtime's eventfd when a timer moves earlier than the one the driver
    // last slept for: about 0.5 times per call at 1,000 calls/s.
    let timer = tokio::time::sleep_until(Instant::now().into());
    tokio::pin!(timer);
    // Receive coalescing (see COALESCE_PAUSE).
    let mut last_udp_event: Option<Instant> = None;
    loop {
        drain(&mut switch, &listeners, &mut sinks);
        sinks.release_due(Instant::now());
        if let Some((until, _)) = &stopping {
            if switch.stopping_done() || Instant::now() >= *until {
                if let Some((_, reply)) = stopping.take() {
                    let _ = reply.send(());
                }
                return;
            }
        }
        let mut deadline = switch
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        if let Some((until, _)) = &stopping {
            deadline = deadline.min(*until);
        }
        if let Some(due) = sinks.held.deadline() {
            deadline = deadline.min(due);
        }
        if timer.deadline() != deadline.into() {
            timer.as_mut().reset(deadline.into());
        }
        tokio::select! {
            biased;
            c = ctl.recv() => match c {
                Some(Control::Reload { users, policy, registrar, dialplan, trunks }) => {
                    let n_users = users.len();
                    switch.reload_users(users);
                    switch.set_policy(policy);
                    switch.set_registrar_config(registrar);
                    switch.set_dialplan(dialplan);
                    let TrunksReload { set, hosts } = *trunks;
                    let t = switch.reload_trunks(Instant::now(), set, hosts);
                    let names = |v: &[carillon_trunk::TrunkName]| {
                        v.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(",")
                    };
                    info!(
                        users = n_users,
                        trunks_added = %names(&t.added),
                        trunks_changed = %names(&t.changed),
                        trunks_removed = %names(&t.removed),
                        trunks_unchanged = t.unchanged.len(),
                        "configuration reloaded (users, policies, dialplan, trunks); registrations kept"
                    );
                }
                Some(Control::RestoreBindings(bindings)) => {
                    info!(bindings = bindings.len(), "registrations restored from the database");
                    switch.restore_bindings(bindings, unix_now_ms() / 1000);
                }
                Some(Control::CallCounts(reply)) => {
                    let _ = reply.send(switch.call_counts());
                }
                Some(Control::ChannelCounts(reply)) => {
                    let calls = switch.calls();
                    let _ = reply.send((calls.channels(), calls.bridges()));
                }
                Some(Control::Channels(reply)) => {
                    let _ = reply.send(switch.channel_list());
                }
                Some(Control::Hangup { channel, cause, reply }) => {
                    let r = switch.hangup_channel(Instant::now(), unix_now_ms(), &channel, cause);
                    drain(&mut switch, &listeners, &mut sinks);
                    let _ = reply.send(r);
                }
                Some(Control::Bindings(reply)) => {
                    let _ = reply.send(switch.registrar().all().cloned().collect());
                }
                Some(Control::RegistrationCount(reply)) => {
                    let registrar = switch.registrar();
                    let _ = reply.send((registrar.aor_count(), registrar.binding_count()));
                }
                Some(Control::Stats(reply)) => {
                    let _ = reply.send(switch.stats().clone());
                }
                Some(Control::Shutdown(reply)) => {
                    let now = Instant::now();
                    if switch.begin_stop(now) {
                        // Trunk registrations are being removed: keep
                        // serving their answers for a bounded time.
                        info!("stopping: removing trunk registrations");
                        stopping = Some((now + STOP_GRACE, reply));
                    } else {
                        drain(&mut switch, &listeners, &mut sinks);
                        let _ = reply.send(());
                        return;
                    }
                }
                None => return,
            },
            i = udp_readable(&udp) => {
                let Some(sock) = udp.get(i) else { continue };
                let fd = sock.as_raw_fd();
                let (now, unix) = (Instant::now(), unix_now_ms());
                let mut handled = 0;
                while handled < UDP_BATCH {
                    // One `recvmmsg`; a short batch drained the queue, so
                    // WouldBlock is reported and tokio clears the readiness
                    // without a `recvfrom` that would only see EAGAIN.
                    let read = sock.try_io(Interest::READABLE, || {
                        let n = recv.recv(fd)?;
                        for k in 0..n {
                            let Some((datagram, from)) = recv.datagram(k) else { continue };
                            let bytes = Bytes::copy_from_slice(datagram);
                            let peer = Peer { transport: Transport::Udp, addr: from, conn: None };
                            switch.handle_input(now, unix, peer, bytes);
                            drain_queued(&mut switch, &listeners, &mut sinks, &mut outbox);
                        }
                        if n < RECV_BATCH {
                            Err(std::io::ErrorKind::WouldBlock.into())
                        } else {
                            Ok(n)
                        }
                    });
                    match read {
                        Ok(n) => handled += n,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        // ICMP port unreachable surfaces here on some systems; keep going.
                        Err(e) => {
                            debug!(error = %e, "udp recv error");
                            handled += 1;
                        }
                    }
                }
                listeners.flush(&mut outbox);
                if coalesce_after(last_udp_event, now, handled) {
                    // A plain sleep, not a timer in the select: this is the
                    // switch's own thread, and a sleep costs one context
                    // switch where a timer wait is woken early by the
                    // first datagram's readiness event.
                    std::thread::sleep(COALESCE_PAUSE);
                }
                last_udp_event = Some(now);
            }
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
                        Inbound::Closed { conn, addr } => {
                            switch.handle_stream_closed(now, unix, conn, addr);
                            drain(&mut switch, &listeners, &mut sinks);
                        }
                    }
                }
            }
            Some(ev) = media_events.recv() => {
                switch.handle_media_event(Instant::now(), unix_now_ms(), ev);
            }
            () = &mut timer => {
                switch.handle_timeout(Instant::now(), unix_now_ms());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_switch_never_pauses_and_a_busy_one_pauses_only_after_a_short_batch() {
        let t0 = Instant::now();
        // First event ever, or one long after the previous: no pause.
        assert!(!coalesce_after(None, t0, 1));
        assert!(!coalesce_after(Some(t0), t0 + Duration::from_millis(50), 1));
        assert!(!coalesce_after(Some(t0), t0 + COALESCE_BUSY, 3));
        // Steady traffic and the sockets drained: pause.
        let soon = t0 + Duration::from_micros(700);
        assert!(coalesce_after(Some(t0), soon, 1));
        assert!(coalesce_after(Some(t0), soon, UDP_BATCH - 1));
        // A full batch means more is queued; an empty one read nothing.
        assert!(!coalesce_after(Some(t0), soon, UDP_BATCH));
        assert!(!coalesce_after(Some(t0), soon, 0));
    }
}
