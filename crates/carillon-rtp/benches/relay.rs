//! Relay hot path: parsing an RTP header and rewriting SSRC/seq/ts of a
//! 172-byte G.711 packet (12-byte header + 160-byte payload).

use carillon_rtp::packet::{rewrite_header, RtpPacket, RtpPacketBuilder};
use carillon_rtp::{Ssrc, StreamRewriter};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::time::{Duration, Instant};

fn packet() -> [u8; 172] {
    let mut buf = [0u8; 172];
    let written = RtpPacketBuilder::new(0, 4242, 160_000, Ssrc(0x1234_5678), &[0xD5; 160])
        .write_into(&mut buf);
    assert_eq!(written, Ok(172));
    buf
}

fn relay(c: &mut Criterion) {
    let buf = packet();

    c.bench_function("parse rtp header (172 B)", |b| {
        b.iter(|| {
            let p = RtpPacket::parse(black_box(&buf));
            black_box(p.map(|p| {
                (
                    p.ssrc(),
                    p.sequence_number(),
                    p.timestamp(),
                    p.payload().len(),
                )
            }))
        })
    });

    c.bench_function("rewrite ssrc/seq/ts (172 B)", |b| {
        let mut pkt = buf;
        let mut seq = 0u16;
        b.iter(|| {
            seq = seq.wrapping_add(1);
            let r = rewrite_header(black_box(&mut pkt), Ssrc(0xCAFE), seq, u32::from(seq) * 160);
            black_box(r)
        })
    });

    c.bench_function("stream rewriter (172 B)", |b| {
        let mut rewriter = StreamRewriter::new(Ssrc(0xCAFE), 8000);
        let now = Instant::now();
        let mut pkt = buf;
        let mut seq = 4242u16;
        b.iter(|| {
            seq = seq.wrapping_add(1);
            let _ = carillon_rtp::set_seq(&mut pkt, seq);
            let r = rewriter.rewrite(now, black_box(&mut pkt));
            black_box(r)
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = relay
}
criterion_main!(benches);
