//! Mixing load: the real media runtime (`carillon-rtpnet`) on 127.0.0.1
//! mixes N members in rooms of R (`CreateMix`, `AddToMix` normal), for a
//! bounded time. A sender thread of this program plays every member's
//! phone (one 172-byte µ-law or A-law packet per member every 20 ms, each
//! member its own pitch) and receiver threads read what each member hears;
//! it reports the CPU the media threads used per member, packets received
//! against expected, and how regular the arrivals were (deviation of each
//! inter-arrival time from 20 ms).
//!
//! ```sh
//! cargo run --release -p carillon-benches --example mix_load -- 600 10 10 1
//! #                                          members seconds room-size workers [port base] [receivers]
//! ```
//!
//! Legs use RTP ports from `port base` (default 42000, two per leg); a port
//! another process holds makes that leg fail to open (counted, not fatal;
//! its room is one member short). Every wait is bounded; nothing is sent
//! off loopback. CPU is the media threads' own
//! (`/proc/self/task/*/schedstat`, threads named `carillon-media-*`),
//! measured over the window only, after a 2 s warm-up; the sending and
//! receiving sides (this program's other threads) are not counted, except
//! the kernel's loopback delivery of what the media threads send, which
//! runs in their context.

use carillon_codec::Codec;
use carillon_mediactl::{
    AudioCodec, LegId, LegParams, MediaCommand, MediaEvent, MixId, MixRole, SessionId,
};
use carillon_rtp::{RtpPacketBuilder, Ssrc};
use carillon_rtpnet::{MediaRuntime, RuntimeConfig};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const FRAME: Duration = Duration::from_millis(20);
const WARM_UP: Duration = Duration::from_secs(2);
const PATIENCE: Duration = Duration::from_secs(30);

/// Nanoseconds on CPU of this process's media worker threads.
fn media_cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    let mut total = 0;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("carillon-media") {
            continue;
        }
        let sched = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        total += sched
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

/// Per-stream arrival record of the receivers.
#[derive(Clone, Default)]
struct Stream {
    last: Option<Instant>,
    received: u64,
}

struct Results {
    received: u64,
    /// |inter-arrival − 20 ms| in µs, every pair inside the window.
    deviations: Vec<u32>,
    late: u64,
}

fn receive(
    sockets: Vec<std::net::UdpSocket>,
    port_base: u16,
    streams: usize,
    phase: Arc<AtomicU8>,
) -> Results {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("receiver runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let state = std::rc::Rc::new(std::cell::RefCell::new((
            vec![Stream::default(); streams],
            Results {
                received: 0,
                deviations: Vec::with_capacity(streams * 600),
                late: 0,
            },
        )));
        let mut tasks = Vec::new();
        for socket in sockets {
            socket.set_nonblocking(true).expect("nonblocking");
            let socket = tokio::net::UdpSocket::from_std(socket).expect("tokio socket");
            let state = state.clone();
            let phase = phase.clone();
            tasks.push(tokio::task::spawn_local(async move {
                let mut buf = [0u8; 2048];
                loop {
                    let Ok((_, from)) = socket.recv_from(&mut buf).await else {
                        continue;
                    };
                    let now = Instant::now();
                    let measuring = phase.load(Ordering::Relaxed) == 1;
                    let index = usize::from(from.port().wrapping_sub(port_base) / 2);
                    let mut guard = state.borrow_mut();
                    let (streams, results) = &mut *guard;
                    let Some(stream) = streams.get_mut(index) else {
                        continue;
                    };
                    if measuring {
                        if let Some(last) = stream.last {
                            let gap = now.saturating_duration_since(last);
                            let dev = gap.abs_diff(FRAME);
                            results.deviations.push(dev.as_micros() as u32);
                            if gap > FRAME + Duration::from_millis(2) {
                                results.late += 1;
                            }
                        }
                        stream.received += 1;
                        results.received += 1;
                    }
                    stream.last = Some(now);
                }
            }));
        }
        while phase.load(Ordering::Relaxed) < 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for t in tasks {
            t.abort();
        }
        let mut guard = state.borrow_mut();
        std::mem::replace(
            &mut guard.1,
            Results {
                received: 0,
                deviations: Vec::new(),
                late: 0,
            },
        )
    })
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)]) / 1000.0
}

/// Sends one packet per member every 20 ms (to its leg's port) until
/// `phase` reaches 2 (bounded by `limit` in any case).
fn send(members: Vec<(u16, Codec)>, phase: Arc<AtomicU8>, limit: Duration) {
    let socket = std::net::UdpSocket::bind((LOOPBACK, 0)).expect("sender socket");
    let _ = socket2::SockRef::from(&socket).set_send_buffer_size(4 << 20);
    let start = Instant::now();
    let mut next = start;
    let mut seq: u16 = 0;
    let payloads: Vec<Vec<u8>> = members
        .iter()
        .enumerate()
        .map(|(i, &(_, codec))| {
            (0..160)
                .map(|k| {
                    let s = ((k as f64 * (0.05 + i as f64 * 0.0007)).sin() * 6000.0) as i16;
                    codec.encode_sample(s)
                })
                .collect()
        })
        .collect();
    let mut buf = [0u8; 172];
    while phase.load(Ordering::Relaxed) < 2 && start.elapsed() < limit {
        seq = seq.wrapping_add(1);
        for (i, (&(port, codec), payload)) in members.iter().zip(payloads.iter()).enumerate() {
            let pt = if codec == Codec::Pcmu { 0 } else { 8 };
            let b = RtpPacketBuilder::new(pt, seq, u32::from(seq) * 160, Ssrc(i as u32), payload);
            if b.write_into(&mut buf).is_ok() {
                let _ = socket.send_to(&buf, (LOOPBACK, port));
            }
        }
        next += FRAME;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut arg = |default: u64| {
        args.next()
            .and_then(|a| a.parse::<u64>().ok())
            .unwrap_or(default)
    };
    let streams = arg(600) as usize;
    let seconds = arg(10);
    let room = arg(10).max(2) as usize;
    let workers = arg(1) as usize;
    let port_base = arg(42000) as u16;
    let receivers = arg(8).max(1) as usize;
    assert!(
        usize::from(port_base) + 2 * streams < 65_000,
        "not enough ports above {port_base}"
    );

    let phase = Arc::new(AtomicU8::new(0));
    let mut sockets = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..receivers {
        let socket = std::net::UdpSocket::bind((LOOPBACK, 0)).expect("receiver socket");
        let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(4 << 20);
        addrs.push(socket.local_addr().expect("receiver address"));
        sockets.push(socket);
    }
    let receiver = {
        let phase = phase.clone();
        std::thread::spawn(move || receive(sockets, port_base, streams, phase))
    };

    let config = RuntimeConfig {
        workers,
        rng_seed: Some(1),
        rtp_timeout: None,
        hold_timeout: None,
        report_closed: false,
        ..RuntimeConfig::new(LOOPBACK)
    };
    let (handle, mut events) = MediaRuntime::start(config).expect("media runtime");
    let codec_of = |i: usize| {
        if i.is_multiple_of(2) {
            AudioCodec::Pcmu
        } else {
            AudioCodec::Pcma
        }
    };
    let params = |i: usize, remote: SocketAddr| {
        let codec = codec_of(i);
        LegParams {
            codec,
            payload_type: if codec == AudioCodec::Pcmu { 0 } else { 8 },
            telephone_event_pt: None,
            ptime: FRAME,
            remote: Some(remote),
            latch: false,
            send: true,
            recv: true,
        }
    };
    // A room's session hosts its mix; its members are legs of sessions on
    // the same worker (with one worker, every session), one room per
    // `room` consecutive members.
    let host = |i: usize| SessionId((i - i % room) as u64);
    let opens = (0..streams)
        .map(|i| MediaCommand::OpenLeg {
            session: host(i),
            leg: LegId(i as u64),
            local_port: port_base + 2 * i as u16,
            params: params(i, addrs[i % receivers]),
        })
        .collect();
    handle.send_all(opens).expect("runtime running");
    let mut opened = Vec::new();
    let mut failed = 0;
    let deadline = Instant::now() + PATIENCE;
    while opened.len() + failed < streams && Instant::now() < deadline {
        match events.blocking_recv() {
            Some(MediaEvent::LegOpened { leg, .. }) => opened.push(leg.0 as usize),
            Some(MediaEvent::OpenFailed { .. }) => failed += 1,
            Some(_) => {}
            None => break,
        }
    }
    opened.sort_unstable();
    let mut mixing = Vec::new();
    for start in (0..streams).step_by(room) {
        mixing.push(MediaCommand::CreateMix {
            session: host(start),
            mix: MixId(start as u64),
        });
    }
    for &i in &opened {
        mixing.push(MediaCommand::AddToMix {
            session: host(i),
            mix: MixId((i - i % room) as u64),
            leg: LegId(i as u64),
            role: MixRole::normal(),
        });
    }
    handle.send_all(mixing).expect("runtime running");
    let members: Vec<(u16, Codec)> = opened
        .iter()
        .map(|&i| {
            let codec = if codec_of(i) == AudioCodec::Pcmu {
                Codec::Pcmu
            } else {
                Codec::Pcma
            };
            (port_base + 2 * i as u16, codec)
        })
        .collect();
    let sender = {
        let phase = phase.clone();
        let limit = WARM_UP + Duration::from_secs(seconds) + PATIENCE;
        std::thread::spawn(move || send(members, phase, limit))
    };
    std::thread::sleep(WARM_UP);
    let cpu0 = media_cpu_ns();
    let t0 = Instant::now();
    phase.store(1, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(seconds));
    phase.store(2, Ordering::Relaxed);
    let window = t0.elapsed();
    let cpu = media_cpu_ns().saturating_sub(cpu0);
    sender.join().expect("sender");
    let mut closes: Vec<MediaCommand> = (0..streams)
        .step_by(room)
        .map(|start| MediaCommand::DestroyMix {
            session: host(start),
            mix: MixId(start as u64),
        })
        .collect();
    closes.extend(
        (0..streams)
            .step_by(room)
            .map(|start| MediaCommand::CloseSession {
                session: host(start),
            }),
    );
    handle.send_all(closes).expect("runtime running");
    let mut results = receiver.join().expect("receiver");
    drop(handle);

    let mixed = opened.len();
    let expected = mixed as f64 * window.as_secs_f64() / FRAME.as_secs_f64();
    results.deviations.sort_unstable();
    let cpu_s = cpu as f64 / 1e9;
    let per_member_us = cpu_s * 1e6 / mixed.max(1) as f64 / window.as_secs_f64();
    println!(
        "members {mixed} (open failed {failed}) in rooms of {room}, workers {workers}, window {:.2} s",
        window.as_secs_f64()
    );
    println!(
        "media threads CPU {cpu_s:.3} s = {:.1} % of one core; {per_member_us:.2} µs CPU per member-second \
         ({:.2} µs per member per 20 ms); members per core at this cost: {:.0}",
        100.0 * cpu_s / window.as_secs_f64(),
        per_member_us / 50.0,
        1e6 / per_member_us.max(1e-9)
    );
    println!(
        "packets received {} of {:.0} expected ({:.3} %)",
        results.received,
        expected,
        100.0 * results.received as f64 / expected.max(1.0)
    );
    println!(
        "inter-arrival deviation from 20 ms: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; \
         later than 22 ms: {} of {} ({:.3} %)",
        percentile(&results.deviations, 0.50),
        percentile(&results.deviations, 0.99),
        percentile(&results.deviations, 1.0),
        results.late,
        results.deviations.len(),
        100.0 * results.late as f64 / results.deviations.len().max(1) as f64
    );
}
