//! Instruction counts of a bridged pair relayed unrecorded and recorded,
//! for callgrind (machine-independent; benches/README.md, "Recording taps
//! in the media engine"):
//!
//! ```sh
//! cargo build --release -p carillon-media --example record_count
//! valgrind --tool=callgrind --toggle-collect='*MediaEngine::handle_packet*' \
//!     --toggle-collect='*MediaEngine::handle_timeout*' \
//!     target/release/examples/record_count stereo 20000
//! ```
//!
//! Runs `PACKETS` packets (alternating A→B and B→A, 10 ms of media time
//! each) through one `MediaEngine` with the pair `unrecorded`, or recorded
//! `mono` or `stereo` into a WAV file in a temp directory; the engine's
//! timer runs when due. Collected / PACKETS is the cost per packet on the
//! media worker (the writer thread's work is outside the toggled functions).

use carillon_media::{MediaConfig, MediaEngine, SocketRequest};
use carillon_mediactl::{
    AudioCodec, LegId, LegParams, MediaCommand, RecordMix, RecordingId, SessionId,
};
use carillon_rtp::{RtpPacketBuilder, Ssrc};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const S: SessionId = SessionId(1);
const A: LegId = LegId(1);
const B: LegId = LegId(2);

fn phone(leg: LegId) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, leg.0 as u8], 5000))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "unrecorded".into());
    let packets: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(20_000);
    let t0 = Instant::now();
    let mut e = MediaEngine::new(MediaConfig::default(), [127, 0, 0, 1].into());
    for (leg, port) in [(A, 30000u16), (B, 30002)] {
        let params = LegParams {
            codec: AudioCodec::Pcmu,
            payload_type: 0,
            telephone_event_pt: Some(101),
            ptime: Duration::from_millis(20),
            remote: Some(phone(leg)),
            latch: true,
            send: true,
            recv: true,
        };
        let open = MediaCommand::OpenLeg {
            session: S,
            leg,
            local_port: port,
            params,
        };
        e.handle_command(t0, open).expect("open");
        while let Some(SocketRequest::Bind { leg, rtp_port }) = e.poll_socket_request() {
            let local = SocketAddr::from(([127, 0, 0, 1], rtp_port));
            e.handle_bound(t0, leg, Ok(local)).expect("bound");
        }
    }
    let bridge = MediaCommand::Bridge {
        session: S,
        a: A,
        b: B,
    };
    e.handle_command(t0, bridge).expect("bridge");
    let dir = tempfile::tempdir().expect("temp dir");
    let mix = match mode.as_str() {
        "mono" => Some(RecordMix::Mono {
            caller: A,
            callee: B,
        }),
        "stereo" => Some(RecordMix::Stereo {
            caller: A,
            callee: B,
        }),
        _ => None,
    };
    if let Some(mix) = mix {
        let record = MediaCommand::Record {
            session: S,
            recording: RecordingId(1),
            mix,
            path: dir.path().join("r.wav"),
            max_silence: None,
            max_duration: None,
        };
        e.handle_command(t0, record).expect("record");
    }
    let mut templates = [[0u8; 172]; 2];
    for (i, p) in templates.iter_mut().enumerate() {
        RtpPacketBuilder::new(0, 1, 160, Ssrc(0xAAAA + i as u32), &[0x5A; 160])
            .write_into(p)
            .expect("packet");
    }
    for n in 1..=packets {
        let now = t0 + Duration::from_millis(10 * n);
        let dir = (n % 2) as usize;
        let (port, from) = if dir == 0 {
            (30000, phone(A))
        } else {
            (30002, phone(B))
        };
        let seq = (n / 2) as u16;
        let mut buf = templates[dir];
        buf[2..4].copy_from_slice(&seq.to_be_bytes());
        buf[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        std::hint::black_box(e.handle_packet(now, port, from, &mut buf));
        if e.poll_timeout().is_some_and(|d| d <= now) {
            e.handle_timeout(now);
        }
        if n % 80 == 0 && mix.is_some() {
            // Let the writer keep up (valgrind runs one thread at a time).
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let end = t0 + Duration::from_millis(10 * packets + 10);
    if mix.is_some() {
        let stop = MediaCommand::StopRecord {
            session: S,
            recording: RecordingId(1),
        };
        e.handle_command(end, stop).expect("stop");
    }
    while let Some(event) = e.poll_event() {
        println!("{event:?}");
    }
    println!("{mode}: {packets} packets, {:?}", e.counters());
}
