//! Per-packet cost of the sans-IO relay path of `MediaEngine::handle_packet`
//! for a 172-byte G.711 packet (12-byte header + 160-byte payload, 20 ms):
//! same codec on both legs (PT map + header rewrite only) and PCMU → PCMA
//! (plus the 160-byte table transcode). Each iteration copies the packet
//! template and bumps seq/ts first; "template copy" measures that part alone.

use carillon_media::{MediaConfig, MediaEngine, SocketRequest};
use carillon_mediactl::{AudioCodec, LegId, LegParams, MediaCommand, SessionId};
use carillon_rtp::{RtpPacketBuilder, Ssrc};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const PORT_A: u16 = 30000;
const PORT_B: u16 = 30002;

fn params(codec: AudioCodec, remote: SocketAddr) -> LegParams {
    LegParams {
        codec,
        payload_type: if codec == AudioCodec::Pcmu { 0 } else { 8 },
        telephone_event_pt: Some(101),
        ptime: Duration::from_millis(20),
        remote: Some(remote),
        latch: true,
        send: true,
        recv: true,
    }
}

fn engine(now: Instant, codec_b: AudioCodec) -> MediaEngine {
    let mut e = MediaEngine::new(MediaConfig::default(), [127, 0, 0, 1].into());
    let s = SessionId(1);
    let legs = [
        (LegId(1), PORT_A, params(AudioCodec::Pcmu, phone_a())),
        (
            LegId(2),
            PORT_B,
            params(codec_b, SocketAddr::from(([10, 0, 0, 2], 6000))),
        ),
    ];
    for (leg, port, p) in legs {
        let open = MediaCommand::OpenLeg {
            session: s,
            leg,
            local_port: port,
            params: p,
        };
        assert!(e.handle_command(now, open).is_ok());
        while let Some(SocketRequest::Bind { leg, rtp_port }) = e.poll_socket_request() {
            let local = SocketAddr::from(([127, 0, 0, 1], rtp_port));
            assert!(e.handle_bound(now, leg, Ok(local)).is_ok());
        }
    }
    let bridge = MediaCommand::Bridge {
        session: s,
        a: LegId(1),
        b: LegId(2),
    };
    assert!(e.handle_command(now, bridge).is_ok());
    while e.poll_event().is_some() {}
    e
}

fn phone_a() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], 5000))
}

fn template() -> [u8; 172] {
    let mut buf = [0u8; 172];
    let written = RtpPacketBuilder::new(0, 1, 160, Ssrc(0xAAAA), &[0x5A; 160]).write_into(&mut buf);
    assert_eq!(written, Ok(172));
    buf
}

fn next_packet(template: &[u8; 172], buf: &mut [u8; 172], seq: &mut u16) {
    *seq = seq.wrapping_add(1);
    *buf = *template;
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&(u32::from(*seq) * 160).to_be_bytes());
}

fn relay(c: &mut Criterion) {
    let now = Instant::now();
    let template = template();

    c.bench_function("template copy (172 B)", |b| {
        let mut buf = [0u8; 172];
        let mut seq = 0u16;
        b.iter(|| {
            next_packet(&template, &mut buf, &mut seq);
            black_box(&mut buf);
        })
    });

    for (name, codec_b) in [
        ("relay same codec PCMU->PCMU (172 B)", AudioCodec::Pcmu),
        ("relay transcode PCMU->PCMA (172 B)", AudioCodec::Pcma),
    ] {
        c.bench_function(name, |b| {
            let mut e = engine(now, codec_b);
            let mut buf = [0u8; 172];
            let mut seq = 0u16;
            b.iter(|| {
                next_packet(&template, &mut buf, &mut seq);
                let out = e.handle_packet(now, PORT_A, phone_a(), black_box(&mut buf));
                black_box(out)
            });
            assert!(e.counters().rtp_forwarded > 0);
            assert_eq!(e.counters().stray, 0);
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = relay
}
criterion_main!(benches);
