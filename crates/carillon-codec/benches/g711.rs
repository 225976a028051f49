//! G.711 hot paths: transcoding and decoding one 20 ms packet (160 bytes).

use carillon_codec::{decode, Codec, ToneGenerator, Transcoder};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::time::Duration;

fn packet() -> [u8; 160] {
    let mut payload = [0u8; 160];
    ToneGenerator::new(1004.0, 12000).fill_encoded(Codec::Pcmu, &mut payload);
    payload
}

fn g711(c: &mut Criterion) {
    let input = packet();
    let transcoder = Transcoder::new(Codec::Pcmu, Codec::Pcma);

    c.bench_function("transcode 160 B ulaw->alaw", |b| {
        let mut out = [0u8; 160];
        b.iter(|| {
            let n = transcoder.transcode(black_box(&input), &mut out);
            black_box((n.ok(), &out));
        })
    });

    c.bench_function("transcode 160 B ulaw->alaw in place", |b| {
        let mut buf = input;
        b.iter(|| {
            transcoder.transcode_in_place(black_box(&mut buf));
        })
    });

    c.bench_function("decode 160 B ulaw to pcm", |b| {
        let mut pcm = [0i16; 160];
        b.iter(|| {
            let n = decode(Codec::Pcmu, black_box(&input), &mut pcm);
            black_box((n.ok(), &pcm));
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = g711
}
criterion_main!(benches);
