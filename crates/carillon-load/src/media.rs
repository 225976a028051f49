//! RTP workers: each owns the sockets of its share of the calls, sends one
//! G.711 packet per stream every ptime from a single tick, and receives
//! with one epoll set (mio), feeding [`carillon_rtp::ReceiveStats`].
//!
//! Owns: per-stream sequence/timestamp, the payload marker (`CLD1` + a
//! packet counter in the first 8 payload bytes, G.711 silence after it),
//! and folding a stream's statistics into per-direction totals when the
//! call ends. Does not own SIP or SDP: the engine hands it a bound socket
//! and, once known, the remote address.
//!
//! Sends are plain `sendto` on each call's own socket (a call must send
//! from the port its SDP names, for switches that latch onto the source
//! port), batched in one pass per tick over every stream of the worker;
//! `sendmmsg` cannot batch across sockets, so it would not save syscalls.
//!
//! ```text
//! engine ──Add/SetRemote/Remove/Finish──► worker thread
//!                       loop { tick: send due packets; epoll: recv → stats }
//! ```

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use carillon_rtp::{ReceiveStats, RtpPacket, RtpPacketBuilder, Ssrc};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

use crate::report::{DirectionStats, RtpReport};

/// First payload bytes of every packet we send.
pub const PAYLOAD_MAGIC: [u8; 4] = *b"CLD1";

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
    pub payload_type: u8,
    pub silence: u8,
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

struct Worker {
    params: MediaParams,
    poll: Poll,
    slots: Vec<Option<Stream>>,
    free: Vec<usize>,
    by_key: HashMap<u64, usize>,
    totals: Totals,
    payload: Vec<u8>,
    packet: Vec<u8>,
    recv_buf: Vec<u8>,
    ticks_skipped: u64,
    added: u64,
}

impl Worker {
    fn new(params: MediaParams) -> std::io::Result<Worker> {
        let spp = params.samples_per_packet() as usize;
        let mut payload = vec![params.silence; spp.max(8)];
        if let Some(head) = payload.get_mut(..4) {
            head.copy_from_slice(&PAYLOAD_MAGIC);
        }
        Ok(Worker {
            params,
            poll: Poll::new()?,
            slots: Vec::new(),
            free: Vec::new(),
            by_key: HashMap::new(),
            totals: Totals::default(),
            packet: vec![0; payload.len() + 64],
            payload,
            recv_buf: vec![0; 2048],
            ticks_skipped: 0,
            added: 0,
        })
    }

    fn run(mut self, commands: Receiver<MediaCommand>) {
        let mut events = Events::with_capacity(1024);
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
                self.send_due(tick);
            }
            // epoll waits in whole milliseconds (mio rounds up): wait the
            // whole milliseconds left, then sleep the sub-millisecond rest,
            // so sends stay on time and the jitter we cause ourselves stays
            // far below a millisecond.
            let left = next_tick_at.saturating_duration_since(Instant::now());
            let whole_ms = left.as_millis() as u64;
            if whole_ms == 0 {
                std::thread::sleep(left);
                continue;
            }
            let timeout = Duration::from_millis(whole_ms);
            if self.poll.poll(&mut events, Some(timeout)).is_err() {
                continue;
            }
            if events.is_empty() {
                continue;
            }
            let now = Instant::now();
            for ev in events.iter() {
                self.receive(ev.token().0, now);
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
                        let now = Instant::now();
                        drain(&mut s, &mut self.recv_buf, self.params.payload_type, now);
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
        let pt = self.params.payload_type;
        for s in self.slots.iter_mut().flatten() {
            if s.next_tick > tick {
                continue;
            }
            if let Some(remote) = s.remote {
                let mut burst = 0;
                while s.next_tick <= tick && burst < 3 {
                    burst += 1;
                    let elapsed = ((s.next_tick - s.start_tick) / SUBTICKS) as u32;
                    let ts = s.ts_base.wrapping_add(elapsed.wrapping_mul(spp));
                    if let Some(c) = self.payload.get_mut(4..8) {
                        c.copy_from_slice(&s.counter.to_be_bytes());
                    }
                    let b = RtpPacketBuilder::new(pt, s.seq, ts, s.ssrc, &self.payload)
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

    fn receive(&mut self, slot: usize, now: Instant) {
        let pt = self.params.payload_type;
        if let Some(s) = self.slots.get_mut(slot).and_then(Option::as_mut) {
            drain(s, &mut self.recv_buf, pt, now);
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
        let streams: Vec<Stream> = self.slots.iter_mut().filter_map(Option::take).collect();
        for s in &streams {
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

fn drain(s: &mut Stream, buf: &mut [u8], pt: u8, now: Instant) {
    loop {
        match s.socket.recv_from(buf) {
            Ok((n, _)) => {
                let Some(data) = buf.get(..n) else { continue };
                match RtpPacket::parse(data) {
                    Ok(p) if p.payload_type() == pt => {
                        if p.payload().get(..4) != Some(&PAYLOAD_MAGIC[..]) {
                            s.mismatch += 1;
                        }
                        s.rx.handle_packet(now, p.sequence_number(), p.timestamp());
                        s.max_jitter = s.max_jitter.max(s.rx.jitter());
                    }
                    _ => s.foreign += 1,
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
}
