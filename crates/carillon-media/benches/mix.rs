//! Cost of the mixer per member per 20 ms in the sans-IO engine. Rooms of
//! 3 and of 10 members (half µ-law, half A-law), 600 members in all; one
//! iteration is one 20 ms period: every member's phone sends one 160-byte
//! packet (`handle_packet`: latch, counters, decoding into the member's
//! buffer), then the round (`handle_timeout`: sums, self-exclusion,
//! saturation, encoding, one packet per member through its leg's output
//! rewriter) and draining the generated packets (what the edge hands to
//! `send_to`; the system calls are not included). The time per iteration
//! divided by 600 is the cost of one member per 20 ms; 20 ms / that cost is
//! the members one core mixes in real time.

use carillon_media::{MediaConfig, MediaEngine, SocketRequest};
use carillon_mediactl::{AudioCodec, LegId, LegParams, MediaCommand, MixId, MixRole, SessionId};
use carillon_rtp::{RtpPacketBuilder, Ssrc};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const MEMBERS: u64 = 600;
const FRAME: Duration = Duration::from_millis(20);

fn phone(i: u64) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 2], 10000 + i as u16))
}

fn params(i: u64, codec: AudioCodec) -> LegParams {
    LegParams {
        codec,
        payload_type: if codec == AudioCodec::Pcmu { 0 } else { 8 },
        telephone_event_pt: Some(101),
        ptime: FRAME,
        remote: Some(phone(i)),
        latch: false,
        send: true,
        recv: true,
    }
}

/// An engine with `MEMBERS` legs in rooms of `room` members, and one
/// packet per member (its port, its source, its bytes).
fn engine(t0: Instant, room: u64) -> (MediaEngine, Vec<(u16, SocketAddr, Vec<u8>)>) {
    let mut e = MediaEngine::new(MediaConfig::default(), [127, 0, 0, 1].into());
    let mut packets = Vec::new();
    for i in 0..MEMBERS {
        let session = SessionId(i);
        let leg = LegId(i);
        let codec = if i.is_multiple_of(2) {
            AudioCodec::Pcmu
        } else {
            AudioCodec::Pcma
        };
        let port = 20000 + 2 * i as u16;
        let open = MediaCommand::OpenLeg {
            session,
            leg,
            local_port: port,
            params: params(i, codec),
        };
        assert!(e.handle_command(t0, open).is_ok());
        while let Some(SocketRequest::Bind { leg, rtp_port }) = e.poll_socket_request() {
            let local = SocketAddr::from(([127, 0, 0, 1], rtp_port));
            assert!(e.handle_bound(t0, leg, Ok(local)).is_ok());
        }
        let mix = MixId(i / room);
        if i % room == 0 {
            let create = MediaCommand::CreateMix {
                session: SessionId(i),
                mix,
            };
            assert!(e.handle_command(t0, create).is_ok());
        }
        let add = MediaCommand::AddToMix {
            session: SessionId(i - i % room),
            mix,
            leg,
            role: MixRole::normal(),
        };
        assert!(e.handle_command(t0, add).is_ok());
        // A voice-like payload: a sine of the member's own pitch.
        let payload: Vec<u8> = (0..160)
            .map(|k| {
                let s = ((k as f64 * (0.05 + i as f64 * 0.001)).sin() * 6000.0) as i16;
                if codec == AudioCodec::Pcmu {
                    carillon_codec::Codec::Pcmu.encode_sample(s)
                } else {
                    carillon_codec::Codec::Pcma.encode_sample(s)
                }
            })
            .collect();
        let pt = if codec == AudioCodec::Pcmu { 0 } else { 8 };
        let b = RtpPacketBuilder::new(pt, 0, 0, Ssrc(i as u32), &payload);
        let mut buf = vec![0u8; b.encoded_len()];
        assert!(b.write_into(&mut buf).is_ok());
        packets.push((port, phone(i), buf));
    }
    while e.poll_event().is_some() {}
    (e, packets)
}

fn run(c: &mut Criterion, room: u64) {
    let t0 = Instant::now();
    let (mut e, mut packets) = engine(t0, room);
    let mut now = t0;
    let mut seq = 0u16;
    let name = format!("mix {MEMBERS} members in rooms of {room}, one 20 ms period");
    c.bench_function(&name, |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            let arrive = now + Duration::from_millis(5);
            for (port, from, buf) in packets.iter_mut() {
                buf[2..4].copy_from_slice(&seq.to_be_bytes());
                buf[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
                black_box(e.handle_packet(arrive, *port, *from, buf));
            }
            now += FRAME;
            e.handle_timeout(now);
            let mut sent = 0usize;
            e.drain_generated(|g, bytes| sent += bytes.len() + usize::from(g.local_port & 1));
            black_box(sent)
        })
    });
    assert!(e.counters().mixed > 0, "the members fed their mixes");
}

fn bench(c: &mut Criterion) {
    run(c, 3);
    run(c, 10);
}

criterion_group!(benches, bench);
criterion_main!(benches);
