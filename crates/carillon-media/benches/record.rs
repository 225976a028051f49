//! Per-packet cost of a bridged pair relayed unrecorded and recorded (mono
//! and stereo `Record` taps writing real WAV files), in one run, with the
//! ratio and the recorded calls per core derived from it.
//!
//! One iteration is one 172-byte PCMU packet through
//! `MediaEngine::handle_packet`, alternating A→B and B→A, media time
//! advancing 10 ms per packet (each direction at 20 ms, as in a call), and
//! the engine's timer run whenever it is due (the recordings' 20 ms tick).
//! Criterion runs far faster than real time, so the writer threads get an
//! untimed pause of 1 ms after every 80 packets (40 blocks) and a channel
//! of 500 blocks instead of 50 (a loaded machine may not schedule the
//! writer within the pause): every block is handed over, and the bench
//! asserts that no frame was dropped. A recording is restarted
//! (untimed) every 60 s of media time so files stay small. The writer
//! threads' own work (hound, about 1.4 µs per stereo block,
//! `carillon-benches`' `recorder` bench) runs on another thread and is not
//! in these figures; benches/README.md adds it.

use carillon_media::{MediaConfig, MediaEngine, SocketRequest};
use carillon_mediactl::{
    AudioCodec, LegId, LegParams, MediaCommand, MediaEvent, RecordMix, RecordingId, SessionId,
};
use carillon_rtp::{RtpPacketBuilder, Ssrc};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

const PORT_A: u16 = 30000;
const PORT_B: u16 = 30002;
const S: SessionId = SessionId(1);
const A: LegId = LegId(1);
const B: LegId = LegId(2);
/// Packets between untimed pauses for the writer threads.
const BATCH: u64 = 80;
/// Packets per recording file (60 s of media time at 100 packets/s).
const PER_FILE: u64 = 6000;

fn phone(leg: LegId) -> SocketAddr {
    if leg == A {
        SocketAddr::from(([10, 0, 0, 1], 5000))
    } else {
        SocketAddr::from(([10, 0, 0, 2], 6000))
    }
}

fn params(leg: LegId) -> LegParams {
    LegParams {
        codec: AudioCodec::Pcmu,
        payload_type: 0,
        telephone_event_pt: Some(101),
        ptime: Duration::from_millis(20),
        remote: Some(phone(leg)),
        latch: true,
        send: true,
        recv: true,
    }
}

fn engine(now: Instant) -> MediaEngine {
    let mut e = MediaEngine::new(MediaConfig::default(), [127, 0, 0, 1].into());
    e.set_recorder_options(carillon_recorder::RecorderOptions {
        capacity: 500,
        ..Default::default()
    });
    for (leg, port) in [(A, PORT_A), (B, PORT_B)] {
        let open = MediaCommand::OpenLeg {
            session: S,
            leg,
            local_port: port,
            params: params(leg),
        };
        assert!(e.handle_command(now, open).is_ok());
        while let Some(SocketRequest::Bind { leg, rtp_port }) = e.poll_socket_request() {
            let local = SocketAddr::from(([127, 0, 0, 1], rtp_port));
            assert!(e.handle_bound(now, leg, Ok(local)).is_ok());
        }
    }
    let bridge = MediaCommand::Bridge {
        session: S,
        a: A,
        b: B,
    };
    assert!(e.handle_command(now, bridge).is_ok());
    while e.poll_event().is_some() {}
    e
}

/// Frames lost by the recordings that ended (asserted zero).
fn drain(e: &mut MediaEngine, lost: &mut u64) {
    while let Some(event) = e.poll_event() {
        if let MediaEvent::RecordingDone { frames_lost, .. } = event {
            *lost += frames_lost;
        }
    }
}

struct Pair {
    engine: MediaEngine,
    t0: Instant,
    n: u64,
    mix: Option<RecordMix>,
    recording: u64,
    dir: std::path::PathBuf,
    lost: u64,
    packets: [[u8; 172]; 2],
}

impl Pair {
    fn new(mix: Option<RecordMix>, dir: &Path) -> Self {
        let t0 = Instant::now();
        let mut packets = [[0u8; 172]; 2];
        for (i, p) in packets.iter_mut().enumerate() {
            let payload = [0x5A ^ i as u8; 160];
            let written =
                RtpPacketBuilder::new(0, 1, 160, Ssrc(0xAAAA + i as u32), &payload).write_into(p);
            assert_eq!(written, Ok(172));
        }
        let mut pair = Pair {
            engine: engine(t0),
            t0,
            n: 0,
            mix,
            recording: 0,
            dir: dir.to_path_buf(),
            lost: 0,
            packets,
        };
        pair.restart();
        pair
    }

    fn now(&self) -> Instant {
        self.t0 + Duration::from_millis(10 * self.n)
    }

    /// Stops the running recording (if any) and starts the next file.
    fn restart(&mut self) {
        let Some(mix) = self.mix else {
            return;
        };
        let now = self.now();
        if self.recording > 0 {
            let stop = MediaCommand::StopRecord {
                session: S,
                recording: RecordingId(self.recording),
            };
            assert!(self.engine.handle_command(now, stop).is_ok());
        }
        self.recording += 1;
        let record = MediaCommand::Record {
            session: S,
            recording: RecordingId(self.recording),
            mix,
            path: self.dir.join(format!("r{}.wav", self.recording % 2)),
            max_silence: None,
            max_duration: None,
        };
        assert!(self.engine.handle_command(now, record).is_ok());
        drain(&mut self.engine, &mut self.lost);
    }

    /// One packet, alternating directions; the timer when it is due.
    fn step(&mut self) {
        self.n += 1;
        let now = self.now();
        let dir = (self.n % 2) as usize;
        let (port, from) = if dir == 0 {
            (PORT_A, phone(A))
        } else {
            (PORT_B, phone(B))
        };
        let seq = (self.n / 2) as u16;
        let mut buf = self.packets[dir];
        buf[2..4].copy_from_slice(&seq.to_be_bytes());
        buf[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        let out = self
            .engine
            .handle_packet(now, port, from, black_box(&mut buf));
        black_box(out);
        if self.engine.poll_timeout().is_some_and(|d| d <= now) {
            self.engine.handle_timeout(now);
        }
    }

    /// Runs `iters` packets; only the packets are timed.
    fn run(&mut self, iters: u64) -> Duration {
        let mut timed = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let batch = left.min(BATCH);
            let start = Instant::now();
            for _ in 0..batch {
                self.step();
            }
            timed += start.elapsed();
            left -= batch;
            if self.mix.is_some() {
                // Let the writer threads drain (untimed).
                std::thread::sleep(Duration::from_millis(1));
                if self.n % PER_FILE < BATCH {
                    self.restart();
                }
            }
        }
        timed
    }
}

fn record(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("recorded_pair");
    let mut means = Vec::new();
    for (name, mix) in [
        ("unrecorded", None),
        (
            "recorded_mono",
            Some(RecordMix::Mono {
                caller: A,
                callee: B,
            }),
        ),
        (
            "recorded_stereo",
            Some(RecordMix::Stereo {
                caller: A,
                callee: B,
            }),
        ),
    ] {
        let mut pair = Pair::new(mix, dir.path());
        let mut total = Duration::ZERO;
        let mut count = 0u64;
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let t = pair.run(iters);
                total += t;
                count += iters;
                t
            })
        });
        pair.restart();
        drain(&mut pair.engine, &mut pair.lost);
        assert_eq!(pair.lost, 0, "{name}: frames dropped");
        assert_eq!(pair.engine.counters().stray, 0);
        let ns = total.as_nanos() as f64 / count.max(1) as f64;
        means.push((name, ns));
    }
    group.finish();
    let base = means[0].1;
    for (name, ns) in &means {
        // A call: two directions at 50 packets/s each.
        let calls_per_core = 1e9 / (ns * 100.0);
        println!(
            "{name}: {ns:.0} ns/packet (mean of all timed runs), {:.2}x unrecorded, \
             {calls_per_core:.0} calls per core (media worker side)",
            ns / base
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = record
}
criterion_main!(benches);
