//! RTP workers: each owns the sockets of its share of the calls, sends one
//! G.711 packet per stream every ptime from a single tick, and receives
//! with one epoll set (mio), feeding [`carillon_rtp::ReceiveStats`].
//!
//! Owns: per-stream sequence/timestamp, each leg's codec (the calling
//! side's for `UacToUas` streams, the answering side's for `UasToUac`),
//! the payload check (see [`crate::payload`]: marker and counter, exact
//! across µ-law ↔ A-law transcoding, plus whether the counter still lines
//! up with the sequence number), and folding a stream's statistics into
//! per-direction totals when the call ends. Does not own SIP or SDP: the
//! engine hands it a bound socket and, once known, the remote address.
//!
//! Cost per packet, the point of this module (one process must carry
//! 2,000-3,000 calls, 100 k+ packets/s each way, on a small machine):
//!
//! * sends are plain `sendto` on each call's own socket (a call must send
//!   from the port its SDP names, for switches that latch onto the source
//!   port). `sendmmsg` batches only on one socket, which has one packet
//!   due per ptime, so it would save nothing;
//! * receives are readiness-driven (edge-triggered epoll, no polling of
//!   idle sockets) and use one `recvmmsg` per ready socket: a batch
//!   shorter than `RECV_BATCH` means the queue is empty, so there is no
//!   second call just to see `EAGAIN`;
//! * arrival times are the kernel's (`SO_TIMESTAMPNS`), so the worker's
//!   own delays do not show up as jitter;
//! * the loop sleeps until the next send tick (`SUBTICKS` per ptime),
//!   then takes every ready socket from one non-blocking `epoll_wait` and
//!   sends what is due. It never spins, and arriving packets never have to
//!   wake it (a wakeup per packet is what a blocked epoll waiter costs).
//!
//! ```text
//! engine ──Add/SetRemote/Remove/Finish──► worker thread
//!                       loop { tick: send due packets; epoll: recv → stats }
//! ```

use std::collections::HashMap;
use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use carillon_rtp::{ReceiveStats, RtpPacket, RtpPacketBuilder, Ssrc};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use nix::errno::Errno;
use nix::sys::socket::{
    recvmmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, MultiHeaders,
};
use nix::sys::time::TimeSpec;

use crate::config::Codec;
use crate::payload::{PayloadCheck, PayloadWriter, HEADER_LEN};
use crate::report::{DirectionStats, RtpReport};

/// Send slots per ptime: streams are spread over them by phase so a
/// worker never sends all its packets in one burst (which overflows
/// receive buffers and queues on the way).
pub const SUBTICKS: u64 = 4;

/// Which way packets a stream *sends* travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    UacToUas,
    UasToUac,
}

/// Work for a media worker.
#[derive(Debug)]
pub enum MediaCommand {
    Add {
        key: u64,
        socket: std::net::UdpSocket,
        remote: Option<SocketAddr>,
        sends: Direction,
        ssrc: u32,
    },
    SetRemote {
        key: u64,
        remote: SocketAddr,
    },
    Remove {
        key: u64,
    },
    Finish(Sender<RtpReport>),
}

/// Handle to the media workers; streams are spread over them by key.
#[derive(Debug)]
pub struct Media {
    workers: Vec<(Sender<MediaCommand>, JoinHandle<()>)>,
}

/// What every stream of a run shares.
#[derive(Debug, Clone, Copy)]
pub struct MediaParams {
    /// The calling side's codec: what `UacToUas` streams send and what
    /// they expect to receive.
    pub uac_codec: Codec,
    /// The answering side's codec (differs from `uac_codec` when the
    /// target transcodes).
    pub uas_codec: Codec,
    pub ptime: Duration,
    pub clock_rate: u32,
}

impl MediaParams {
    pub fn samples_per_packet(&self) -> u32 {
        (self.ptime.as_millis() as u32) * self.clock_rate / 1000
    }
}

impl Media {
    pub fn start(threads: usize, params: MediaParams) -> std::io::Result<Media> {
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads {
            let (tx, rx) = mpsc::channel();
            let handle = std::thread::Builder::new()
                .name(format!("rtp-{i}"))
                .spawn(move || {
                    if let Ok(w) = Worker::new(params) {
                        w.run(rx);
                    }
                })?;
            workers.push((tx, handle));
        }
        Ok(Media { workers })
    }

    fn worker(&self, key: u64) -> Option<&Sender<MediaCommand>> {
        let n = self.workers.len().max(1) as u64;
        self.workers.get((key % n) as usize).map(|(tx, _)| tx)
    }

    pub fn add(
        &self,
        key: u64,
        socket: std::net::UdpSocket,
        remote: Option<SocketAddr>,
        sends: Direction,
        ssrc: u32,
    ) {
        if let Some(tx) = self.worker(key) {
            let _ = tx.send(MediaCommand::Add {
                key,
                socket,
                remote,
                sends,
                ssrc,
            });
        }
    }

    pub fn set_remote(&self, key: u64, remote: SocketAddr) {
        if let Some(tx) = self.worker(key) {
            let _ = tx.send(MediaCommand::SetRemote { key, remote });
        }
    }

    pub fn remove(&self, key: u64) {
        if let Some(tx) = self.worker(key) {
            let _ = tx.send(MediaCommand::Remove { key });
        }
    }

    /// Stops every worker and sums their statistics.
    pub fn finish(self) -> RtpReport {
        let mut total = RtpReport::default();
        for (tx, handle) in self.workers {
            let (rtx, rrx) = mpsc::channel();
            if tx.send(MediaCommand::Finish(rtx)).is_ok() {
                if let Ok(r) = rrx.recv() {
                    merge(&mut total.uac_to_uas, &r.uac_to_uas);
                    merge(&mut total.uas_to_uac, &r.uas_to_uac);
                    total.ticks_skipped += r.ticks_skipped;
                }
            }
            let _ = handle.join();
        }
        total.uac_to_uas.finish();
        total.uas_to_uac.finish();
        total
    }
}

fn merge(dst: &mut DirectionStats, src: &DirectionStats) {
    let streams = dst.streams + src.streams;
    if streams > 0 {
        dst.jitter_mean_ms = (dst.jitter_mean_ms * dst.streams as f64
            + src.jitter_mean_ms * src.streams as f64)
            / streams as f64;
    }
    dst.streams = streams;
    dst.packets_sent += src.packets_sent;
    dst.packets_received += src.packets_received;
    dst.packets_expected += src.packets_expected;
    dst.packets_lost += src.packets_lost;
    dst.reordered += src.reordered;
    dst.duplicates += src.duplicates;
    dst.jitter_max_ms = dst.jitter_max_ms.max(src.jitter_max_ms);
    dst.payload_mismatch += src.payload_mismatch;
    dst.renumbered += src.renumbered;
    dst.foreign += src.foreign;
    dst.send_errors += src.send_errors;
}

struct Stream {
    key: u64,
    socket: UdpSocket,
    remote: Option<SocketAddr>,
    sends: Direction,
    ssrc: Ssrc,
    seq: u16,
    ts_base: u32,
    start_tick: u64,
    next_tick: u64,
    counter: u32,
    rx: ReceiveStats,
    max_jitter: u32,
    mismatch: u64,
    foreign: u64,
    /// The received `sequence number − counter`, fixed while the target
    /// forwards packets one for one.
    seq_offset: Option<u16>,
    renumbered: u64,
}

impl Stream {
    /// Counts a payload that is not ours (after the exact G.711 mapping),
    /// or whose counter no longer lines up with the sequence number.
    fn check_payload(&mut self, check: &PayloadCheck, seq: u16, payload: &[u8]) {
        match check.counter(payload) {
            None => self.mismatch += 1,
            Some(counter) => {
                let offset = seq.wrapping_sub(counter as u16);
                if self.seq_offset.is_some_and(|o| o != offset) {
                    self.renumbered += 1;
                }
                self.seq_offset = Some(offset);
            }
        }
    }
}

/// Running sums per direction, indexed by the direction packets travel.
#[derive(Default)]
struct Totals {
    by_dir: [DirectionStats; 2],
    jitter_sum_ms: [f64; 2],
}

fn dir_index(d: Direction) -> usize {
    match d {
        Direction::UacToUas => 0,
        Direction::UasToUac => 1,
    }
}

fn opposite(d: Direction) -> Direction {
    match d {
        Direction::UacToUas => Direction::UasToUac,
        Direction::UasToUac => Direction::UacToUas,
    }
}

/// How a call leg sends and checks: its own codec, indexed by
/// [`dir_index`] of the direction the leg sends.
struct Leg {
    payload_type: u8,
    writer: PayloadWriter,
    check: PayloadCheck,
}

impl Leg {
    fn new(codec: Codec, payload_len: usize) -> Leg {
        Leg {
            payload_type: codec.payload_type(),
            writer: PayloadWriter::new(codec, payload_len),
            check: PayloadCheck::new(codec),
        }
    }
}

struct Worker {
    params: MediaParams,
    poll: Poll,
    slots: Vec<Option<Stream>>,
    free: Vec<usize>,
    by_key: HashMap<u64, usize>,
    totals: Totals,
    legs: [Leg; 2],
    packet: Vec<u8>,
    batch: RecvBatch,
    ticks_skipped: u64,
    added: u64,
}

impl Worker {
    fn new(params: MediaParams) -> std::io::Result<Worker> {
        let len = params.samples_per_packet() as usize;
        Ok(Worker {
            params,
            poll: Poll::new()?,
            slots: Vec::new(),
            free: Vec::new(),
            by_key: HashMap::new(),
            totals: Totals::default(),
            legs: [
                Leg::new(params.uac_codec, len),
                Leg::new(params.uas_codec, len),
            ],
            packet: vec![0; len.max(HEADER_LEN) + 64],
            batch: RecvBatch::new(),
            ticks_skipped: 0,
            added: 0,
        })
    }

    fn run(mut self, commands: Receiver<MediaCommand>) {
        let mut events = Events::with_capacity(EVENTS_PER_POLL);
        let epoch = Instant::now();
        let ptime = self.params.ptime;
        let mut tick: u64 = 0;
        let period = ptime / SUBTICKS as u32;
        let mut next_tick_at = epoch + period;
        loop {
            loop {
                match commands.try_recv() {
                    Ok(MediaCommand::Finish(reply)) => {
                        let _ = reply.send(self.finish());
                        return;
                    }
                    Ok(cmd) => self.handle_command(cmd, tick),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            let now = Instant::now();
            if now >= next_tick_at {
                tick += 1;
                next_tick_at += period;
                if next_tick_at + ptime * 5 < now {
                    // Far behind (machine overloaded): skip ahead rather than burst.
                    let behind = now.duration_since(next_tick_at).as_nanos() / period.as_nanos();
                    tick += behind as u64;
                    self.ticks_skipped += behind as u64;
                    next_tick_at += period * behind as u32;
                }
                self.receive_ready(&mut events);
                self.send_due(tick);
            }
            // Sleep to the next tick, not in epoll: a packet arriving for a
            // worker blocked in epoll_wait costs a wakeup (charged to the
            // sender, on loopback to the switch), and the kernel timestamps
            // make an early read pointless. So the worker wakes only
            // SUBTICKS times per ptime and then takes every ready socket
            // in one go.
            let left = next_tick_at.saturating_duration_since(Instant::now());
            if !left.is_zero() {
                std::thread::sleep(left);
            }
        }
    }

    /// Drains every socket epoll reports readable, without waiting.
    fn receive_ready(&mut self, events: &mut Events) {
        loop {
            if self.poll.poll(events, Some(Duration::ZERO)).is_err() {
                return;
            }
            let mut n = 0;
            for ev in events.iter() {
                self.receive(ev.token().0);
                n += 1;
            }
            if n < EVENTS_PER_POLL {
                return;
            }
        }
    }

    fn handle_command(&mut self, cmd: MediaCommand, tick: u64) {
        match cmd {
            MediaCommand::Add {
                key,
                socket,
                remote,
                sends,
                ssrc,
            } => {
                if socket.set_nonblocking(true).is_err() {
                    return;
                }
                // Arrival times from the kernel (see `arrival`).
                if setsockopt(&socket, sockopt::ReceiveTimestampns, &true).is_err() {
                    return;
                }
                let mut socket = UdpSocket::from_std(socket);
                let slot = self.free.pop().unwrap_or(self.slots.len());
                if self
                    .poll
                    .registry()
                    .register(&mut socket, Token(slot), Interest::READABLE)
                    .is_err()
                {
                    return;
                }
                let stream = Stream {
                    key,
                    socket,
                    remote,
                    sends,
                    ssrc: Ssrc(ssrc),
                    seq: (ssrc >> 16) as u16,
                    ts_base: ssrc.rotate_left(7),
                    start_tick: tick + 1 + self.added % SUBTICKS,
                    next_tick: tick + 1 + self.added % SUBTICKS,
                    counter: 0,
                    rx: ReceiveStats::new(self.params.clock_rate),
                    max_jitter: 0,
                    mismatch: 0,
                    foreign: 0,
                    seq_offset: None,
                    renumbered: 0,
                };
                self.added += 1;
                if slot == self.slots.len() {
                    self.slots.push(Some(stream));
                } else if let Some(s) = self.slots.get_mut(slot) {
                    *s = Some(stream);
                }
                self.by_key.insert(key, slot);
            }
            MediaCommand::SetRemote { key, remote } => {
                if let Some(s) = self
                    .by_key
                    .get(&key)
                    .and_then(|&i| self.slots.get_mut(i))
                    .and_then(Option::as_mut)
                {
                    s.remote = Some(remote);
                }
            }
            MediaCommand::Remove { key } => {
                if let Some(slot) = self.by_key.remove(&key) {
                    if let Some(mut s) = self.slots.get_mut(slot).and_then(Option::take) {
                        // Drain what already arrived before closing.
                        if let Some(leg) = self.legs.get(dir_index(s.sends)) {
                            drain(&mut s, &mut self.batch, leg);
                        }
                        let _ = self.poll.registry().deregister(&mut s.socket);
                        self.fold(&s);
                        self.free.push(slot);
                    }
                }
            }
            MediaCommand::Finish(_) => {}
        }
    }

    fn send_due(&mut self, tick: u64) {
        let spp = self.params.samples_per_packet();
        for s in self.slots.iter_mut().flatten() {
            if s.next_tick > tick {
                continue;
            }
            let leg = self.legs.get_mut(dir_index(s.sends));
            if let (Some(remote), Some(leg)) = (s.remote, leg) {
                let mut burst = 0;
                while s.next_tick <= tick && burst < 3 {
                    burst += 1;
                    let elapsed = ((s.next_tick - s.start_tick) / SUBTICKS) as u32;
                    let ts = s.ts_base.wrapping_add(elapsed.wrapping_mul(spp));
                    let payload = leg.writer.write(s.counter);
                    let b = RtpPacketBuilder::new(leg.payload_type, s.seq, ts, s.ssrc, payload)
                        .with_marker(s.counter == 0);
                    let sent = b
                        .write_into(&mut self.packet)
                        .ok()
                        .and_then(|n| self.packet.get(..n))
                        .is_some_and(|p| s.socket.send_to(p, remote).is_ok());
                    if let Some(t) = self.totals.by_dir.get_mut(dir_index(s.sends)) {
                        if sent {
                            t.packets_sent += 1;
                        } else {
                            t.send_errors += 1;
                        }
                    }
                    s.seq = s.seq.wrapping_add(1);
                    s.counter = s.counter.wrapping_add(1);
                    s.next_tick += SUBTICKS;
                }
            }
            if s.next_tick <= tick {
                // Keep the phase; drop the backlog (or wait for a remote).
                s.next_tick += ((tick - s.next_tick) / SUBTICKS + 1) * SUBTICKS;
            }
        }
    }

    fn receive(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot).and_then(Option::as_mut) {
            if let Some(leg) = self.legs.get(dir_index(s.sends)) {
                drain(s, &mut self.batch, leg);
            }
        }
    }

    fn fold(&mut self, s: &Stream) {
        let idx = dir_index(opposite(s.sends));
        let rate = f64::from(self.params.clock_rate) / 1000.0;
        let (Some(t), Some(jsum)) = (
            self.totals.by_dir.get_mut(idx),
            self.totals.jitter_sum_ms.get_mut(idx),
        ) else {
            return;
        };
        let received = s.rx.packets_received();
        t.packets_received += received;
        t.payload_mismatch += s.mismatch;
        t.renumbered += s.renumbered;
        t.foreign += s.foreign;
        if received > 0 {
            t.packets_expected += s.rx.packets_expected();
            t.packets_lost += s.rx.cumulative_lost();
            t.reordered += s.rx.reordered();
            t.duplicates += s.rx.duplicates();
            t.streams += 1;
            *jsum += f64::from(s.rx.jitter()) / rate;
            t.jitter_max_ms = t.jitter_max_ms.max(f64::from(s.max_jitter) / rate);
        }
        let _ = s.key;
    }

    fn finish(&mut self) -> RtpReport {
        let mut streams: Vec<Stream> = self.slots.iter_mut().filter_map(Option::take).collect();
        for s in &mut streams {
            // Count what has arrived but not been read yet.
            if let Some(leg) = self.legs.get(dir_index(s.sends)) {
                drain(s, &mut self.batch, leg);
            }
            self.fold(s);
        }
        let mut out = RtpReport {
            uac_to_uas: std::mem::take(&mut self.totals.by_dir[0]),
            uas_to_uac: std::mem::take(&mut self.totals.by_dir[1]),
            ticks_skipped: self.ticks_skipped,
        };
        for (d, sum) in [
            (&mut out.uac_to_uas, self.totals.jitter_sum_ms[0]),
            (&mut out.uas_to_uac, self.totals.jitter_sum_ms[1]),
        ] {
            if d.streams > 0 {
                d.jitter_mean_ms = sum / d.streams as f64;
            }
        }
        out
    }
}

/// Readiness events one `epoll_wait` returns at most.
const EVENTS_PER_POLL: usize = 1024;

/// Datagrams one `recvmmsg` call may return.
const RECV_BATCH: usize = 8;
/// Room for one datagram (RTP of any ptime we send fits many times over).
const RECV_BUF: usize = 2048;

/// Buffers and headers for `recvmmsg`, reused for every call.
struct RecvBatch {
    headers: MultiHeaders<()>,
    bufs: Box<[[u8; RECV_BUF]; RECV_BATCH]>,
    lens: [usize; RECV_BATCH],
    /// Kernel receive timestamps (`SO_TIMESTAMPNS`, wall clock).
    stamps: [Option<Duration>; RECV_BATCH],
}

impl RecvBatch {
    fn new() -> RecvBatch {
        RecvBatch {
            headers: Self::headers(),
            bufs: Box::new([[0; RECV_BUF]; RECV_BATCH]),
            lens: [0; RECV_BATCH],
            stamps: [None; RECV_BATCH],
        }
    }

    fn headers() -> MultiHeaders<()> {
        MultiHeaders::preallocate(RECV_BATCH, Some(nix::cmsg_space!(TimeSpec)))
    }

    /// One `recvmmsg` (non-blocking): how many datagrams arrived, their
    /// lengths in `lens` and kernel timestamps in `stamps`.
    fn recv(&mut self, fd: RawFd) -> nix::Result<usize> {
        let mut iovs = self.bufs.each_mut().map(|b| [IoSliceMut::new(b)]);
        let got = recvmmsg(
            fd,
            &mut self.headers,
            iovs.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )?;
        let mut n = 0;
        let mut all_stamped = true;
        for ((len, stamp), msg) in self.lens.iter_mut().zip(&mut self.stamps).zip(got) {
            *len = msg.bytes;
            *stamp = msg.cmsgs().ok().and_then(|mut c| {
                c.find_map(|m| match m {
                    ControlMessageOwned::ScmTimestampns(ts) => Some(Duration::from(ts)),
                    _ => None,
                })
            });
            all_stamped &= stamp.is_some();
            n += 1;
        }
        if !all_stamped {
            // The kernel shrinks each header's control length to what it
            // wrote; start again from full-size headers.
            self.headers = Self::headers();
        }
        Ok(n)
    }

    /// The `i`th datagram of the last [`RecvBatch::recv`] and its kernel
    /// timestamp (time since the Unix epoch).
    fn datagram(&self, i: usize) -> Option<(&[u8], Option<Duration>)> {
        let len = *self.lens.get(i)?;
        Some((self.bufs.get(i)?.get(..len)?, *self.stamps.get(i)?))
    }
}

/// When a datagram stamped `stamp` (wall clock, from the kernel) arrived,
/// on the monotonic clock, given the two clocks read together just now.
/// Using the kernel's time keeps the worker's own delays (a busy machine,
/// a batch of events, the sub-millisecond sleep before a tick) out of the
/// measured jitter. Re-anchored on every call, so the two clocks drifting
/// apart does not matter; without a stamp, or with one from the future
/// (the wall clock stepped), the arrival is `now`.
fn arrival(now: Instant, wall: Duration, stamp: Option<Duration>) -> Instant {
    stamp
        .and_then(|st| wall.checked_sub(st))
        .and_then(|age| now.checked_sub(age))
        .unwrap_or(now)
}

/// Reads everything queued on the stream's socket: one `recvmmsg` per
/// [`RECV_BATCH`] datagrams. With one packet per ptime per socket that is
/// one system call per packet, and no extra call to see `EAGAIN`: a short
/// batch means the queue is empty (epoll is edge-triggered, so a datagram
/// arriving after that raises a new event).
fn drain(s: &mut Stream, batch: &mut RecvBatch, leg: &Leg) {
    let fd = s.socket.as_raw_fd();
    loop {
        let n = match batch.recv(fd) {
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(_) => break,
        };
        let now = Instant::now();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        for i in 0..n {
            let Some((data, stamp)) = batch.datagram(i) else {
                continue;
            };
            match RtpPacket::parse(data) {
                Ok(p) if p.payload_type() == leg.payload_type => {
                    s.check_payload(&leg.check, p.sequence_number(), p.payload());
                    let at = arrival(now, wall, stamp);
                    s.rx.handle_packet(at, p.sequence_number(), p.timestamp());
                    s.max_jitter = s.max_jitter.max(s.rx.jitter());
                }
                _ => s.foreign += 1,
            }
        }
        if n < RECV_BATCH {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamped_pair() -> (std::net::UdpSocket, std::net::UdpSocket) {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        setsockopt(&rx, sockopt::ReceiveTimestampns, &true).unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        (rx, tx)
    }

    fn wall() -> Duration {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
    }

    #[test]
    fn one_recvmmsg_returns_a_full_batch_then_the_rest_then_would_block() {
        let (rx, tx) = stamped_pair();
        for i in 0..(RECV_BATCH as u8 + 2) {
            tx.send(&[i; 20]).unwrap();
        }
        let mut b = RecvBatch::new();
        assert_eq!(b.recv(rx.as_raw_fd()).unwrap(), RECV_BATCH);
        assert_eq!(b.datagram(3).unwrap().0, &[3u8; 20][..]);
        assert_eq!(b.recv(rx.as_raw_fd()).unwrap(), 2);
        assert_eq!(b.datagram(1).unwrap().0, &[RECV_BATCH as u8 + 1; 20][..]);
        assert_eq!(b.recv(rx.as_raw_fd()), Err(Errno::EAGAIN));
    }

    #[test]
    fn every_datagram_carries_a_kernel_timestamp_batch_after_batch() {
        let (rx, tx) = stamped_pair();
        let mut b = RecvBatch::new();
        for round in 0..3u8 {
            let before = wall();
            for _ in 0..3 {
                tx.send(&[round; 12]).unwrap();
            }
            assert_eq!(b.recv(rx.as_raw_fd()).unwrap(), 3);
            let after = wall();
            for i in 0..3 {
                let stamp = b.datagram(i).unwrap().1.expect("kernel timestamp");
                assert!(before <= stamp && stamp <= after, "round {round}");
            }
        }
    }

    /// Forwards `count` RTP packets from `from` to `to` (or gives up after
    /// ten seconds), setting the payload type to `pt` and mapping every
    /// payload byte through `map`, as a transcoding switch does.
    fn relay(
        from: std::net::UdpSocket,
        to: SocketAddr,
        pt: u8,
        map: fn(u8) -> u8,
        count: usize,
    ) -> std::thread::JoinHandle<usize> {
        std::thread::spawn(move || {
            from.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut buf = [0u8; 2048];
            let mut done = 0;
            while done < count && Instant::now() < deadline {
                let Ok(n) = from.recv(&mut buf) else { continue };
                let pkt = &mut buf[..n];
                pkt[1] = (pkt[1] & 0x80) | pt;
                for b in &mut pkt[12..] {
                    *b = map(*b);
                }
                from.send_to(pkt, to).unwrap();
                done += 1;
            }
            done
        })
    }

    /// What the test relay does to each direction: the payload type it
    /// puts on and the mapping of every payload byte.
    type Rewrite = (u8, fn(u8) -> u8);

    /// One call (the calling side in µ-law, the answering side in
    /// `uas_codec`) through a relay that forwards 30 packets each way.
    fn run_through_relay(uas_codec: Codec, to_uas: Rewrite, to_uac: Rewrite) -> RtpReport {
        let media = Media::start(
            1,
            MediaParams {
                uac_codec: Codec::Pcmu,
                uas_codec,
                ptime: Duration::from_millis(10),
                clock_rate: 8000,
            },
        )
        .unwrap();
        let bind = || std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let (uac, uas, relay_uac_side, relay_uas_side) = (bind(), bind(), bind(), bind());
        let (uac_addr, uas_addr) = (uac.local_addr().unwrap(), uas.local_addr().unwrap());
        relay_uac_side.connect(uac_addr).unwrap();
        relay_uas_side.connect(uas_addr).unwrap();
        let ra = relay_uac_side.local_addr().unwrap();
        let rb = relay_uas_side.local_addr().unwrap();
        let forward = relay(relay_uac_side, uas_addr, to_uas.0, to_uas.1, RELAYED);
        let back = relay(relay_uas_side, uac_addr, to_uac.0, to_uac.1, RELAYED);
        media.add(1, uac, Some(ra), Direction::UacToUas, 0x1111_0000);
        media.add(2, uas, Some(rb), Direction::UasToUac, 0x2222_0000);
        assert_eq!(forward.join().unwrap(), RELAYED);
        assert_eq!(back.join().unwrap(), RELAYED);
        media.finish()
    }

    const RELAYED: usize = 30;

    fn same(b: u8) -> u8 {
        b
    }

    #[test]
    fn a_call_transcoded_between_ulaw_and_alaw_is_received_whole_and_unaltered() {
        let r = run_through_relay(
            Codec::Pcma,
            (8, carillon_codec::g711::ulaw_to_alaw),
            (0, carillon_codec::g711::alaw_to_ulaw),
        );
        for d in [&r.uac_to_uas, &r.uas_to_uac] {
            assert_eq!(d.packets_received, RELAYED as u64, "{d:?}");
            assert_eq!(d.packets_lost, 0, "{d:?}");
            assert_eq!(d.payload_mismatch, 0, "{d:?}");
            assert_eq!(d.foreign, 0, "{d:?}");
            assert_eq!(d.renumbered, 0, "{d:?}");
        }
    }

    #[test]
    fn a_relay_that_relabels_the_payload_type_without_converting_is_a_mismatch() {
        let r = run_through_relay(Codec::Pcma, (8, same), (0, same));
        for d in [&r.uac_to_uas, &r.uas_to_uac] {
            assert_eq!(d.packets_received, RELAYED as u64, "{d:?}");
            assert_eq!(d.payload_mismatch, RELAYED as u64, "{d:?}");
        }
    }

    #[test]
    fn packets_of_the_senders_payload_type_are_foreign_to_a_receiver_of_the_other_law() {
        let r = run_through_relay(Codec::Pcma, (0, same), (8, same));
        for d in [&r.uac_to_uas, &r.uas_to_uac] {
            assert_eq!(d.packets_received, 0, "{d:?}");
            assert_eq!(d.foreign, RELAYED as u64, "{d:?}");
        }
    }

    #[test]
    fn a_plain_relay_with_one_codec_on_both_sides_passes_unchanged() {
        let r = run_through_relay(Codec::Pcmu, (0, same), (0, same));
        for d in [&r.uac_to_uas, &r.uas_to_uac] {
            assert_eq!(d.packets_received, RELAYED as u64, "{d:?}");
            assert_eq!(d.payload_mismatch + d.foreign + d.renumbered, 0, "{d:?}");
        }
    }

    #[test]
    fn an_arrival_is_its_age_before_now_and_never_in_the_future() {
        let now = Instant::now();
        let wall = Duration::from_secs(1_000_000);
        let three_ms = Duration::from_millis(3);
        assert_eq!(
            arrival(now, wall, Some(wall - three_ms)),
            now.checked_sub(three_ms).unwrap()
        );
        assert_eq!(arrival(now, wall, Some(wall + three_ms)), now);
        assert_eq!(arrival(now, wall, None), now);
    }
}
