//! `carillon-rtpnet`: the tokio edge of the media plane. It binds and reads
//! the RTP/RTCP sockets of every leg and drives one sans-IO
//! [`carillon_media::MediaEngine`] per worker. It never touches SIP; the
//! switch talks to it only through [`MediaCommand`]s and [`MediaEvent`]s
//! (ARCHITECTURE.md principle 3, runtime model "Media").
//!
//! Owns: the worker threads, the sockets, the routing of commands to
//! workers, the clock reads, and the event channel back to the switch. It
//! does not own any media decision (latching, rewriting, transcoding,
//! timeouts all live in `carillon-media`).
//!
//! ## Threads and tasks
//!
//! ```text
//!  switch ──MediaHandle::send / send_all──► worker[hash(session) % n]  (unbounded mpsc, one hop per batch)
//!
//!  worker i = one OS thread running a current_thread tokio runtime + LocalSet:
//!     command task ─► engine.handle_command (each command of a batch) ─► bind / release sockets
//!     reader task per socket (RTP and RTCP of each leg):
//!         readable().await → recvmmsg … (a few datagrams, see `carillon-udpbatch`)
//!           → engine.handle_packet (rewrites in place)
//!           → try_send_to from the bridged leg's socket
//!     timer task  ─► engine.handle_timeout at engine.poll_timeout() (the
//!                    worker's tick: inactivity timers and every player's
//!                    next frame, DTMF digits being sent) ─► send_to of the
//!                    generated packets (also after each command)
//!     event pump  ─► bounded mpsc to the switch when it is momentarily full
//!  all tasks share Rc<RefCell<Worker>>: one thread, no locks, no borrow
//!  held across an await.
//! ```
//!
//! Why this shape: a relayed call is four sockets with one datagram every
//! 20 ms each, so per-socket batching rarely finds more than one datagram
//! waiting (`recvmmsg` is used for another reason: a short batch proves the
//! queue empty, which saves the `recvfrom` that would return `EAGAIN`, one
//! of the three system calls per relayed packet before); what matters is
//! that an idle socket costs nothing and a ready one is found in O(1). Per-socket tasks get exactly that from
//! the reactor's epoll readiness (edge triggered, no scan over thousands of
//! sockets as a `poll_recv_from` loop would need, no future rebuilt per
//! packet as a `FuturesUnordered` of `recv_from`s would), and a packet goes
//! from the receive buffer to the send syscall with no channel hop, no
//! allocation and no lock. A worker thread with its own runtime keeps each
//! session's sockets and state on one core.
//!
//! Packets are sent with `try_send_to`: when a socket's send buffer is full
//! the datagram is dropped and counted, the relay never waits.
//!
//! ## Socket reuse
//!
//! Creating, binding, registering and closing four sockets per call cost
//! about 15 % of the switch's CPU at 1,500 calls per second. A released
//! pair is therefore kept open (its reader keeps draining it; the engine
//! counts and drops what arrives on a port without a leg) and handed back
//! when the same worker is asked to bind that port again. The switch makes
//! that the common case: it gives a session RTP ports only from its
//! worker's share of the range ([`carillon_mediactl::port_partition`]).
//! Idle pairs are closed after [`RuntimeConfig::idle_socket_ttl`]. A
//! worker keeps its open sockets (in use plus idle) under its share of
//! [`RuntimeConfig::max_open_sockets`] less [`CLOSE_HEADROOM`], closing the
//! oldest idle pair before binding a new one and closing a released pair
//! at once when over; the headroom is there because an aborted reader
//! drops its socket only on the worker's next turn. A low call rate or a
//! small open-file limit therefore still closes sockets as before.
//!
//! ## Players and the tick
//!
//! A leg whose output is a player (`Play`) is fed by the engine, not by a
//! received datagram: the timer task is the worker's tick. The engine's
//! deadline includes every player's next frame (one wake-up serves all
//! players then due), the generated packets leave from the leg's socket
//! with `try_send_to` like relayed ones, and no task sleeps per leg. The
//! timer is tokio's (millisecond resolution: a frame leaves up to 1 ms
//! after its due time, never early; benches/README.md "Playback" measures
//! the pacing the receivers see). The prompt cache and music-on-hold
//! classes ([`carillon_media::Sounds`]) are shared by all workers
//! ([`MediaRuntime::start_with_sounds`]).
//!
//! ## Kernel fast path
//!
//! With [`RuntimeConfig::kernel_offload`], the runtime attaches the
//! `carillon-kernelpath` program to the interfaces of the bind address (all that
//! are up for a wildcard) and each worker opens the flow table. The engine's
//! [`OffloadRequest`]s become table entries; every
//! [`OFFLOAD_POLL`] the worker reads the counters of its flows back into
//! the engine (activity for the inactivity timer, leg counters, the
//! output stream's last sequence number), and it does the same for a flow
//! before the engine sees a packet that the kernel passed up on that flow's
//! port (a telephone-event or a new SSRC), so the rewriter continues after
//! what the kernel sent. If the program cannot be attached (no root, no
//! BPF), the runtime logs a warning and relays in userspace.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use carillon_kernelpath::{FlowKey, FlowTable, KernelRelay};
use carillon_media::{MediaConfig, MediaEngine, OffloadRequest, SocketRequest, Sounds};
use carillon_mediactl::{mix, MediaCommand, MediaEvent, SessionId};
use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, Notify};
use tokio::task::{JoinHandle, LocalSet};

/// Datagrams handled per readiness wake-up before yielding to other sockets.
const READ_BATCH: usize = 64;
/// Events buffered towards the switch before the worker keeps them locally.
const DEFAULT_EVENT_CAPACITY: usize = 4096;
/// Sockets a worker leaves free under its share of the open-file budget:
/// closed sockets are only released on the worker's next turn.
pub const CLOSE_HEADROOM: usize = 64;
/// How often a worker reads the kernel's counters of its flows.
pub const OFFLOAD_POLL: Duration = Duration::from_secs(1);
/// How long a released socket pair waits for reuse before it is closed.
const DEFAULT_IDLE_SOCKET_TTL: Duration = Duration::from_secs(30);

/// How the media runtime runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Address every leg's sockets are bound on.
    pub bind_ip: IpAddr,
    /// RTP inactivity timeout (`None`: never).
    pub rtp_timeout: Option<Duration>,
    /// Inactivity timeout while a leg is on hold (`None`: never).
    pub hold_timeout: Option<Duration>,
    /// Worker threads (at least 1); default: one per core.
    pub workers: usize,
    /// Re-latch threshold, see `carillon_media::latch`.
    pub relatch_packets: u32,
    /// Seed for output SSRCs; `None`: OS entropy.
    pub rng_seed: Option<u64>,
    /// Capacity of the event channel to the switch.
    pub event_capacity: usize,
    /// How long a released RTP/RTCP pair stays open for reuse.
    pub idle_socket_ttl: Duration,
    /// Open RTP/RTCP sockets allowed over all workers (in use plus idle);
    /// a released pair beyond a worker's share is closed at once.
    pub max_open_sockets: usize,
    /// Forward latched same-codec flows in the kernel (`carillon-kernelpath`).
    pub kernel_offload: bool,
    /// The address peers send media to (the SDP address), when the sockets
    /// are bound to a wildcard; the kernel's flows are keyed on it.
    pub media_ip: Option<IpAddr>,
    /// Send `LegOpened` events (see `MediaConfig::report_opened`).
    pub report_opened: bool,
    /// Send `LegClosed` events to the switch. When false the worker writes
    /// the `media leg closed` log line itself: a switch that only logs them
    /// is then not woken twice per call for it.
    pub report_closed: bool,
}

impl RuntimeConfig {
    /// Defaults with the given bind address.
    pub fn new(bind_ip: IpAddr) -> Self {
        RuntimeConfig {
            bind_ip,
            rtp_timeout: Some(MediaConfig::DEFAULT_RTP_TIMEOUT),
            hold_timeout: Some(MediaConfig::DEFAULT_HOLD_TIMEOUT),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            relatch_packets: MediaConfig::DEFAULT_RELATCH_PACKETS,
            rng_seed: None,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            idle_socket_ttl: DEFAULT_IDLE_SOCKET_TTL,
            max_open_sockets: usize::MAX,
            kernel_offload: false,
            media_ip: None,
            report_opened: true,
            report_closed: true,
        }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }
}

/// Errors of the media runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("starting media worker {index}: {source}")]
    Start { index: usize, source: io::Error },
    #[error("the media runtime has stopped")]
    Stopped,
}

/// Starts the media workers.
pub struct MediaRuntime;

impl MediaRuntime {
    /// Spawns `config.workers` worker threads. Works from inside or outside
    /// a tokio runtime. The workers stop when every [`MediaHandle`] clone is
    /// dropped, closing their sockets.
    pub fn start(
        config: RuntimeConfig,
    ) -> Result<(MediaHandle, mpsc::Receiver<MediaEvent>), RuntimeError> {
        Self::start_with_sounds(config, Arc::new(Sounds::default()))
    }

    /// [`Self::start`] with the prompt cache and music-on-hold classes the
    /// players of every worker share.
    pub fn start_with_sounds(
        config: RuntimeConfig,
        sounds: Arc<Sounds>,
    ) -> Result<(MediaHandle, mpsc::Receiver<MediaEvent>), RuntimeError> {
        let workers = config.workers.max(1);
        let (event_tx, event_rx) = mpsc::channel(config.event_capacity.max(1));
        let base_seed = config
            .rng_seed
            .unwrap_or_else(|| RandomState::new().build_hasher().finish());
        let relay = config
            .kernel_offload
            .then(|| attach_fast_path(&config))
            .flatten();
        let mut senders = Vec::with_capacity(workers);
        for index in 0..workers {
            let flows = relay.as_ref().and_then(|r| match r.flow_table() {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!(worker = index, error = %e, "media: kernel flow table unavailable");
                    None
                }
            });
            let (command_tx, command_rx) = mpsc::unbounded_channel();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()
                .map_err(|source| RuntimeError::Start { index, source })?;
            let media = MediaConfig {
                rtp_timeout: config.rtp_timeout,
                hold_timeout: config.hold_timeout,
                relatch_packets: config.relatch_packets,
                rng_seed: mix(base_seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                kernel_offload: flows.is_some(),
                report_opened: config.report_opened,
            };
            let engine_ip = match config.media_ip {
                Some(ip) if config.bind_ip.is_unspecified() => ip,
                _ => config.bind_ip,
            };
            let keep_attached = relay.clone();
            let events = event_tx.clone();
            let pool = PoolLimits {
                ttl: config.idle_socket_ttl,
                max_open: (config.max_open_sockets / workers).saturating_sub(CLOSE_HEADROOM),
            };
            let bind_ip = config.bind_ip;
            let report_closed = config.report_closed;
            let sounds = sounds.clone();
            std::thread::Builder::new()
                .name(format!("carillon-media-{index}"))
                .spawn(move || {
                    let local = LocalSet::new();
                    local.block_on(&runtime, async move {
                        let mut worker = Worker::new(media, bind_ip, engine_ip, events, pool);
                        worker.engine = MediaEngine::new(media, engine_ip).with_sounds(sounds);
                        worker.flows = flows;
                        worker.report_closed = report_closed;
                        let shared = Rc::new(RefCell::new(worker));
                        run_worker(shared, command_rx).await;
                    });
                    // The program stays attached while any worker runs.
                    drop(keep_attached);
                })
                .map_err(|source| RuntimeError::Start { index, source })?;
            senders.push(command_tx);
        }
        Ok((
            MediaHandle {
                workers: senders.into(),
            },
            event_rx,
        ))
    }
}

/// Loads and attaches the kernel RTP program, or says why not and returns `None`.
fn attach_fast_path(config: &RuntimeConfig) -> Option<Arc<KernelRelay>> {
    let attached = carillon_kernelpath::interfaces_for(config.bind_ip)
        .and_then(|interfaces| KernelRelay::attach(&interfaces));
    match attached {
        Ok(relay) => {
            tracing::info!(interfaces = ?relay.interfaces(), "media: kernel RTP forwarding attached");
            Some(Arc::new(relay))
        }
        Err(e) => {
            tracing::warn!(error = %e, "media: kernel RTP forwarding unavailable, relaying in userspace");
            None
        }
    }
}

/// The switch's handle on the media plane; cheap to clone.
#[derive(Debug, Clone)]
pub struct MediaHandle {
    workers: Arc<[mpsc::UnboundedSender<Vec<MediaCommand>>]>,
}

impl MediaHandle {
    /// Sends a command to the worker that owns its session. Never blocks.
    pub fn send(&self, command: MediaCommand) -> Result<(), RuntimeError> {
        self.send_to(self.worker_for(command.session()), vec![command])
    }

    /// Sends commands in order, those of each worker as one message: a
    /// sleeping worker is woken once for all of them. (Sent one by one, a
    /// worker on an idle core woke, took the first and slept again before
    /// the next arrived: one `eventfd` write and wake-up per command.)
    pub fn send_all(&self, commands: Vec<MediaCommand>) -> Result<(), RuntimeError> {
        let Some(first) = commands.first() else {
            return Ok(());
        };
        let worker = self.worker_for(first.session());
        if commands
            .iter()
            .all(|c| self.worker_for(c.session()) == worker)
        {
            return self.send_to(worker, commands);
        }
        let mut per_worker: Vec<Vec<MediaCommand>> = vec![Vec::new(); self.workers.len()];
        for command in commands {
            let w = self.worker_for(command.session());
            if let Some(batch) = per_worker.get_mut(w) {
                batch.push(command);
            }
        }
        for (w, batch) in per_worker.into_iter().enumerate() {
            if !batch.is_empty() {
                self.send_to(w, batch)?;
            }
        }
        Ok(())
    }

    fn send_to(&self, worker: usize, batch: Vec<MediaCommand>) -> Result<(), RuntimeError> {
        let tx = self.workers.get(worker).ok_or(RuntimeError::Stopped)?;
        tx.send(batch).map_err(|_| RuntimeError::Stopped)
    }

    /// The worker owning `session`.
    pub fn worker_for(&self, session: SessionId) -> usize {
        session.worker(self.workers.len())
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }
}

/// How a worker keeps released sockets.
#[derive(Debug, Clone, Copy)]
struct PoolLimits {
    ttl: Duration,
    /// Open sockets (in use plus idle) above which this worker closes idle
    /// pairs.
    max_open: usize,
}

/// Everything one worker owns.
struct Worker {
    engine: MediaEngine,
    bind_ip: IpAddr,
    /// Socket by local port (in use or idle).
    sockets: Vec<Option<Rc<UdpSocket>>>,
    readers: HashMap<u16, JoinHandle<()>>,
    /// Open sockets (in use plus idle).
    open: usize,
    /// Released RTP ports whose pair is still open, with the release time.
    idle: HashMap<u16, Instant>,
    /// Release order of `idle` (entries of reused ports are skipped).
    idle_order: VecDeque<(Instant, u16)>,
    pool: PoolLimits,
    /// Receive buffers shared by the readers (one thread, one at a time).
    scratch: carillon_udpbatch::RecvBatch,
    events: mpsc::Sender<MediaEvent>,
    /// Send `LegClosed` to the switch (else log it here).
    report_closed: bool,
    backlog: VecDeque<MediaEvent>,
    /// The deadline the timer task sleeps until.
    armed: Option<Instant>,
    timer: Rc<Notify>,
    pump: Rc<Notify>,
    send_drops: u64,
    /// This worker's handle on the kernel flow table (fast path on).
    flows: Option<FlowTable>,
    /// Installed kernel flows by the receiving leg's RTP port.
    installed: HashMap<u16, FlowKey>,
    /// Interface index by remote media address (routes rarely change).
    egress: HashMap<Ipv4Addr, u32>,
}

type Shared = Rc<RefCell<Worker>>;

impl Worker {
    fn new(
        config: MediaConfig,
        bind_ip: IpAddr,
        engine_ip: IpAddr,
        events: mpsc::Sender<MediaEvent>,
        pool: PoolLimits,
    ) -> Self {
        Worker {
            engine: MediaEngine::new(config, engine_ip),
            bind_ip,
            sockets: vec![None; usize::from(u16::MAX) + 1],
            readers: HashMap::new(),
            open: 0,
            idle: HashMap::new(),
            idle_order: VecDeque::new(),
            pool,
            scratch: carillon_udpbatch::RecvBatch::new(),
            events,
            report_closed: true,
            backlog: VecDeque::new(),
            armed: None,
            timer: Rc::new(Notify::new()),
            pump: Rc::new(Notify::new()),
            send_drops: 0,
            flows: None,
            installed: HashMap::new(),
            egress: HashMap::new(),
        }
    }

    /// Carries the engine's flow decisions into the kernel's table. A
    /// failed insert only costs speed: the flow keeps coming to userspace.
    fn apply_offload_requests(&mut self) {
        while let Some(request) = self.engine.poll_offload_request() {
            let Some(table) = self.flows.as_mut() else {
                continue;
            };
            match request {
                OffloadRequest::Install(flow) => {
                    let port = flow.local.port();
                    let key = FlowKey::of(&flow);
                    if let Some(old) = self.installed.insert(port, key) {
                        if old != key {
                            let _ = table.remove(&old);
                        }
                    }
                    // Remote: where the kernel routes it (asked once per
                    // address, not per packet).
                    let out_ifindex = if flow.local_destination {
                        0
                    } else {
                        egress_of(&mut self.egress, *flow.destination.ip())
                    };
                    if let Err(e) = table.insert(&flow, out_ifindex) {
                        tracing::debug!(port, error = %e, "media: kernel flow not installed");
                        self.installed.remove(&port);
                    }
                }
                OffloadRequest::Remove { local_port } => {
                    if let Some(key) = self.installed.remove(&local_port) {
                        let _ = table.remove(&key);
                    }
                }
            }
        }
    }

    /// Feeds the kernel's counters of the flow on `port` to the engine.
    fn sync_flow(&mut self, now: Instant, port: u16) {
        let (Some(table), Some(key)) = (self.flows.as_ref(), self.installed.get(&port)) else {
            return;
        };
        if let Ok(Some(progress)) = table.counters(key) {
            self.engine.handle_offload_progress(now, port, progress);
        }
    }

    /// Feeds the counters of every installed flow to the engine.
    fn sync_all_flows(&mut self, now: Instant) {
        let ports: Vec<u16> = self.installed.keys().copied().collect();
        for port in ports {
            self.sync_flow(now, port);
        }
    }

    /// Binds and releases sockets as the engine asks; returns the reader
    /// tasks to stop (their sockets close once they are gone).
    fn apply_socket_requests(&mut self, shared: &Shared, now: Instant) -> Vec<JoinHandle<()>> {
        let mut stopped = Vec::new();
        while let Some(request) = self.engine.poll_socket_request() {
            match request {
                SocketRequest::Bind { leg, rtp_port } => {
                    let result = match self.reuse_pair(rtp_port) {
                        Some(local) => Ok(local),
                        None => {
                            self.make_room(&mut stopped);
                            self.bind_pair(shared, rtp_port)
                        }
                    };
                    if let Err(e) = &result {
                        tracing::warn!(port = rtp_port, error = %e, "media: cannot bind leg ports");
                    }
                    // A failure is reported by the engine as OpenFailed.
                    let _ = self.engine.handle_bound(now, leg, result);
                }
                SocketRequest::Release { rtp_port, .. } => {
                    if self.open <= self.pool.max_open
                        && self.is_open(rtp_port)
                        && !self.pool.ttl.is_zero()
                    {
                        self.idle.insert(rtp_port, now);
                        self.idle_order.push_back((now, rtp_port));
                    } else {
                        self.close_pair(rtp_port, &mut stopped);
                    }
                }
            }
        }
        stopped
    }

    fn is_open(&self, port: u16) -> bool {
        self.sockets
            .get(usize::from(port))
            .is_some_and(Option::is_some)
    }

    /// Hands back an idle pair bound to `rtp_port`, if this worker has one.
    fn reuse_pair(&mut self, rtp_port: u16) -> Option<SocketAddr> {
        self.idle.remove(&rtp_port)?;
        // Bound to exactly this address and port: no getsockname needed.
        self.is_open(rtp_port)
            .then_some(SocketAddr::new(self.bind_ip, rtp_port))
    }

    /// Closes both sockets of a pair: their readers are aborted (and
    /// returned so the caller can wait for the sockets to be dropped).
    fn close_pair(&mut self, rtp_port: u16, stopped: &mut Vec<JoinHandle<()>>) {
        self.idle.remove(&rtp_port);
        for port in [Some(rtp_port), rtp_port.checked_add(1)]
            .into_iter()
            .flatten()
        {
            if let Some(slot) = self.sockets.get_mut(usize::from(port)) {
                if slot.take().is_some() {
                    self.open = self.open.saturating_sub(1);
                }
            }
            if let Some(reader) = self.readers.remove(&port) {
                reader.abort();
                stopped.push(reader);
            }
        }
    }

    /// Closes the oldest idle pairs until a new pair fits under the cap.
    fn make_room(&mut self, stopped: &mut Vec<JoinHandle<()>>) {
        while self.open + 2 > self.pool.max_open {
            let Some((at, port)) = self.idle_order.pop_front() else {
                return;
            };
            if self.idle.get(&port) == Some(&at) {
                self.close_pair(port, stopped);
            }
        }
    }

    /// Closes idle pairs released before `now - ttl`; returns the readers
    /// stopped.
    fn expire_idle(&mut self, now: Instant) -> Vec<JoinHandle<()>> {
        let mut stopped = Vec::new();
        while let Some(&(at, port)) = self.idle_order.front() {
            if now.saturating_duration_since(at) < self.pool.ttl {
                break;
            }
            self.idle_order.pop_front();
            // Skip entries of pairs reused (and maybe released again) since.
            if self.idle.get(&port) == Some(&at) {
                self.close_pair(port, &mut stopped);
            }
        }
        stopped
    }

    fn bind_pair(&mut self, shared: &Shared, rtp_port: u16) -> Result<SocketAddr, String> {
        let rtcp_port = rtp_port
            .checked_add(1)
            .ok_or_else(|| format!("no RTCP port above {rtp_port}"))?;
        let describe = |port: u16, e: io::Error| format!("bind {}:{port}: {e}", self.bind_ip);
        let rtp = bind(self.bind_ip, rtp_port).map_err(|e| describe(rtp_port, e))?;
        let rtcp = bind(self.bind_ip, rtcp_port).map_err(|e| describe(rtcp_port, e))?;
        let local = rtp.local_addr().map_err(|e| describe(rtp_port, e))?;
        for (port, socket) in [(rtp_port, rtp), (rtcp_port, rtcp)] {
            let socket = Rc::new(socket);
            if let Some(slot) = self.sockets.get_mut(usize::from(port)) {
                if slot.replace(socket.clone()).is_none() {
                    self.open += 1;
                }
            }
            let reader = tokio::task::spawn_local(read_loop(shared.clone(), socket, port));
            self.readers.insert(port, reader);
        }
        Ok(local)
    }

    /// Sends what the engine generated (players, DTMF digits), each packet from its
    /// leg's socket (dropped and counted when the send buffer is full).
    fn send_generated(&mut self) {
        let Worker {
            engine,
            sockets,
            send_drops,
            ..
        } = self;
        engine.drain_generated(|packet, bytes| {
            let sent = sockets
                .get(usize::from(packet.local_port))
                .and_then(Option::as_ref)
                .is_some_and(|s| s.try_send_to(bytes, packet.destination).is_ok());
            if !sent {
                *send_drops += 1;
            }
        });
    }

    /// Moves engine events towards the switch, keeping order; a full
    /// channel leaves them in the backlog for the pump task.
    fn flush_events(&mut self) {
        while let Some(event) = self.engine.poll_event() {
            self.backlog.push_back(event);
        }
        while let Some(event) = self.backlog.pop_front() {
            if let MediaEvent::PlaybackDone {
                session,
                leg,
                missing,
                ..
            } = &event
            {
                for path in missing {
                    tracing::warn!(
                        session = session.0,
                        leg = leg.0,
                        file = %path.display(),
                        "media: prompt skipped: cannot be read (or unknown music-on-hold class)"
                    );
                }
            }
            if let MediaEvent::LegClosed {
                session,
                leg,
                stats,
            } = &event
            {
                if !self.report_closed {
                    carillon_mediactl::log_leg_closed(*session, *leg, stats);
                    continue;
                }
            }
            match self.events.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(event)) => {
                    self.backlog.push_front(event);
                    self.pump.notify_one();
                    break;
                }
                Err(TrySendError::Closed(_)) => {
                    self.backlog.clear();
                    break;
                }
            }
        }
    }

    /// Wakes the timer task if the engine's deadline moved earlier.
    fn kick_timer(&mut self) {
        if let Some(deadline) = self.engine.poll_timeout() {
            let earlier = match self.armed {
                Some(armed) => deadline < armed,
                None => true,
            };
            if earlier {
                self.armed = Some(deadline);
                self.timer.notify_one();
            }
        }
    }
}

/// Remote media addresses whose interface a worker remembers.
const EGRESS_CACHE: usize = 4096;

/// The interface the kernel routes `ip` through (0: let the kernel program
/// use the ingress one), asked once per address.
fn egress_of(cache: &mut HashMap<Ipv4Addr, u32>, ip: Ipv4Addr) -> u32 {
    if let Some(&index) = cache.get(&ip) {
        return index;
    }
    if cache.len() >= EGRESS_CACHE {
        cache.clear();
    }
    let index =
        carillon_kernelpath::egress_interface(std::net::SocketAddrV4::new(ip, 9)).unwrap_or(0);
    cache.insert(ip, index);
    index
}

fn bind(ip: IpAddr, port: u16) -> io::Result<UdpSocket> {
    let socket = std::net::UdpSocket::bind(SocketAddr::new(ip, port))?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}

async fn run_worker(shared: Shared, mut commands: mpsc::UnboundedReceiver<Vec<MediaCommand>>) {
    let (timer, pump, events) = {
        let w = shared.borrow();
        (w.timer.clone(), w.pump.clone(), w.events.clone())
    };
    let timer_task = tokio::task::spawn_local(timer_loop(shared.clone(), timer));
    let pump_task = tokio::task::spawn_local(event_pump(shared.clone(), events, pump));
    let sweep_task = tokio::task::spawn_local(idle_sweep(shared.clone()));
    let offload_task = shared
        .borrow()
        .flows
        .is_some()
        .then(|| tokio::task::spawn_local(offload_poll(shared.clone())));
    while let Some(batch) = commands.recv().await {
        for command in batch {
            handle_command(&shared, command).await;
        }
    }
    timer_task.abort();
    pump_task.abort();
    sweep_task.abort();
    if let Some(task) = offload_task {
        task.abort();
    }
    // Flows of sessions still open when the switch stops.
    let mut guard = shared.borrow_mut();
    let w = &mut *guard;
    if let Some(table) = w.flows.as_mut() {
        for (_, key) in w.installed.drain() {
            let _ = table.remove(&key);
        }
    }
}

/// Reads the kernel's counters of this worker's flows every [`OFFLOAD_POLL`].
async fn offload_poll(shared: Shared) {
    loop {
        tokio::time::sleep(OFFLOAD_POLL).await;
        let mut w = shared.borrow_mut();
        w.sync_all_flows(Instant::now());
        w.flush_events();
        w.kick_timer();
    }
}

/// Closes idle socket pairs once they outlive the pool's TTL.
async fn idle_sweep(shared: Shared) {
    let ttl = shared.borrow().pool.ttl;
    let period = (ttl / 4).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(period).await;
        let stopped = shared.borrow_mut().expire_idle(Instant::now());
        for reader in stopped {
            let _ = reader.await;
        }
    }
}

async fn handle_command(shared: &Shared, command: MediaCommand) {
    let (stopped, events) = {
        let mut w = shared.borrow_mut();
        let now = Instant::now();
        if !w.installed.is_empty() {
            // Bring the session's kernel-forwarded legs up to date before
            // the command changes or closes them (their LegClosed counts).
            for port in w.engine.offloaded_ports(command.session()) {
                w.sync_flow(now, port);
            }
        }
        if let Err(e) = w.engine.handle_command(now, command) {
            tracing::debug!(error = %e, "media: command rejected");
        }
        let stopped = w.apply_socket_requests(shared, now);
        w.apply_offload_requests();
        w.send_generated();
        let events: Vec<MediaEvent> = std::iter::from_fn(|| w.engine.poll_event()).collect();
        (stopped, events)
    };
    // LegClosed goes out only once the leg's sockets are closed: the
    // aborted readers drop their socket handles before their JoinHandles
    // resolve.
    for reader in stopped {
        let _ = reader.await;
    }
    let mut w = shared.borrow_mut();
    w.backlog.extend(events);
    w.flush_events();
    w.kick_timer();
}

async fn read_loop(shared: Shared, socket: Rc<UdpSocket>, port: u16) {
    let fd = socket.as_raw_fd();
    loop {
        if socket.readable().await.is_err() {
            return;
        }
        let mut handled = 0;
        {
            let mut guard = shared.borrow_mut();
            let w = &mut *guard;
            let now = Instant::now();
            while handled < READ_BATCH {
                // A short batch drained the queue: report WouldBlock so
                // tokio clears the readiness with no second recv.
                let read = socket.try_io(Interest::READABLE, || {
                    let n = w.scratch.recv(fd)?;
                    relay_batch(w, now, port, n);
                    if n < carillon_udpbatch::RECV_BATCH {
                        Err(io::ErrorKind::WouldBlock.into())
                    } else {
                        Ok(n)
                    }
                });
                match read {
                    Ok(n) => handled += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        // E.g. an ICMP error queued on the socket; keep reading.
                        tracing::trace!(port, error = %e, "media: receive error");
                        handled += 1;
                    }
                }
            }
            w.apply_offload_requests();
            w.flush_events();
            w.kick_timer();
        }
        if handled >= READ_BATCH {
            tokio::task::yield_now().await;
        }
    }
}

/// Hands the `n` datagrams just received on `port` to the engine and sends
/// what it returns from the bridged leg's socket.
fn relay_batch(w: &mut Worker, now: Instant, port: u16, n: usize) {
    if !w.installed.is_empty() {
        // The kernel passed these up on a flow it forwards: bring the
        // engine up to date with what it sent first.
        w.sync_flow(now, port);
    }
    for i in 0..n {
        let Some((datagram, from)) = w.scratch.datagram(i) else {
            continue;
        };
        let Some(tx) = w.engine.handle_packet(now, port, from, datagram) else {
            continue;
        };
        let out = w
            .sockets
            .get(usize::from(tx.local_port))
            .and_then(Option::as_ref);
        let sent = match (out, datagram.get(..tx.len)) {
            (Some(out), Some(bytes)) => out.try_send_to(bytes, tx.destination).is_ok(),
            _ => false,
        };
        if !sent {
            w.send_drops += 1;
        }
    }
}

async fn timer_loop(shared: Shared, notify: Rc<Notify>) {
    loop {
        let deadline = {
            let mut w = shared.borrow_mut();
            let deadline = w.engine.poll_timeout();
            w.armed = deadline;
            deadline
        };
        match deadline {
            Some(deadline) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {
                        let mut w = shared.borrow_mut();
                        w.engine.handle_timeout(Instant::now());
                        w.send_generated();
                        w.flush_events();
                    }
                    _ = notify.notified() => {}
                }
            }
            None => notify.notified().await,
        }
    }
}

async fn event_pump(shared: Shared, events: mpsc::Sender<MediaEvent>, notify: Rc<Notify>) {
    loop {
        notify.notified().await;
        while !shared.borrow().backlog.is_empty() {
            let Ok(permit) = events.reserve().await else {
                shared.borrow_mut().backlog.clear();
                return;
            };
            if let Some(event) = shared.borrow_mut().backlog.pop_front() {
                permit.send(event);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_of_a_session_goes_to_the_same_worker() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let handle = MediaHandle {
            workers: vec![tx.clone(), tx.clone(), tx.clone(), tx].into(),
        };
        let session = SessionId(77);
        let close = MediaCommand::CloseSession { session };
        let bridge = MediaCommand::Bridge {
            session,
            a: carillon_mediactl::LegId(1),
            b: carillon_mediactl::LegId(2),
        };
        assert_eq!(close.session(), bridge.session());
        let w = handle.worker_for(session);
        assert!(w < 4);
        assert_eq!(handle.worker_for(session), w);
    }

    #[test]
    fn sequential_sessions_spread_over_the_workers() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let handle = MediaHandle {
            workers: vec![tx.clone(), tx.clone(), tx.clone(), tx].into(),
        };
        let mut used = [0usize; 4];
        for s in 0..400 {
            used[handle.worker_for(SessionId(s))] += 1;
        }
        assert!(used.iter().all(|&n| n > 50), "{used:?}");
    }

    #[test]
    fn send_all_hands_each_worker_its_commands_in_order_as_one_message() {
        let (txs, mut rxs): (Vec<_>, Vec<_>) = (0..2).map(|_| mpsc::unbounded_channel()).unzip();
        let handle = MediaHandle {
            workers: txs.into(),
        };
        let close = |s| MediaCommand::CloseSession {
            session: SessionId(s),
        };
        let a = 1;
        let b = (2..100)
            .find(|&s| handle.worker_for(SessionId(s)) != handle.worker_for(SessionId(a)))
            .unwrap();
        handle
            .send_all(vec![close(a), close(b), close(a), close(b)])
            .unwrap();
        let wa = handle.worker_for(SessionId(a));
        let wb = handle.worker_for(SessionId(b));
        assert_eq!(rxs[wa].try_recv().unwrap(), [close(a), close(a)]);
        assert_eq!(rxs[wb].try_recv().unwrap(), [close(b), close(b)]);
        assert!(rxs[wa].try_recv().is_err() && rxs[wb].try_recv().is_err());
        // One worker's commands only: sent as they are.
        handle.send_all(vec![close(a), close(a)]).unwrap();
        assert_eq!(rxs[wa].try_recv().unwrap().len(), 2);
        handle.send_all(Vec::new()).unwrap();
        assert!(rxs[wa].try_recv().is_err());
    }
}
