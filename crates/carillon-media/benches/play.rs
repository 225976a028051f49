//! Per-frame cost of a player in the sans-IO engine: 1,000 legs each
//! playing a prompt file or one music-on-hold class; one iteration is one
//! 20 ms tick (`handle_timeout`, which makes one 172-byte packet per leg
//! through the leg's output rewriter) plus draining the generated packets
//! (what the edge hands to `send_to`). The time per iteration divided by
//! 1,000 is the cost of one frame; 20 ms / that cost is the streams one
//! core can generate (the edge's `send_to` not included; see the load
//! program `benches/examples/playback_load.rs` for the whole path).

use carillon_media::{MediaConfig, MediaEngine, MohClass, SocketRequest, Sound, Sounds};
use carillon_mediactl::{
    AudioCodec, LegId, LegParams, MediaCommand, PlayItem, PlaybackId, SessionId,
};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LEGS: u64 = 1000;
const FRAME: Duration = Duration::from_millis(20);

fn params(codec: AudioCodec) -> LegParams {
    LegParams {
        codec,
        payload_type: if codec == AudioCodec::Pcmu { 0 } else { 8 },
        telephone_event_pt: Some(101),
        ptime: FRAME,
        remote: Some(SocketAddr::from(([127, 0, 0, 1], 9))),
        latch: false,
        send: true,
        recv: true,
    }
}

fn music(n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| ((i as f64 * 0.07).sin() * 8000.0) as i16)
        .collect()
}

/// An engine with `LEGS` legs each playing `item()`, started at `t0`.
fn engine(t0: Instant, sounds: Arc<Sounds>, item: impl Fn() -> PlayItem) -> MediaEngine {
    let mut e = MediaEngine::new(MediaConfig::default(), [127, 0, 0, 1].into()).with_sounds(sounds);
    for i in 0..LEGS {
        let session = SessionId(i);
        let leg = LegId(i);
        let codec = if i % 2 == 0 {
            AudioCodec::Pcmu
        } else {
            AudioCodec::Pcma
        };
        let open = MediaCommand::OpenLeg {
            session,
            leg,
            local_port: 20000 + 2 * i as u16,
            params: params(codec),
        };
        assert!(e.handle_command(t0, open).is_ok());
        while let Some(SocketRequest::Bind { leg, rtp_port }) = e.poll_socket_request() {
            let local = SocketAddr::from(([127, 0, 0, 1], rtp_port));
            assert!(e.handle_bound(t0, leg, Ok(local)).is_ok());
        }
        let play = MediaCommand::Play {
            session,
            leg,
            playback: PlaybackId(i),
            items: vec![item()],
        };
        assert!(e.handle_command(t0, play).is_ok());
    }
    while e.poll_event().is_some() {}
    e
}

fn run(c: &mut Criterion, name: &str, mut e: MediaEngine, t0: Instant) {
    let mut now = t0;
    c.bench_function(name, |b| {
        b.iter(|| {
            e.handle_timeout(now);
            let mut sent = 0usize;
            e.drain_generated(|g, bytes| sent += bytes.len() + usize::from(g.local_port & 1));
            now += FRAME;
            black_box(sent)
        })
    });
}

fn bench(c: &mut Criterion) {
    let t0 = Instant::now();
    let dir = std::env::temp_dir().join(format!("carillon-play-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_default();
    let path: PathBuf = dir.join("prompt.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    // 10 minutes: the bench never reaches the end of the file.
    if let Ok(mut w) = hound::WavWriter::create(&path, spec) {
        for s in music(8000 * 600) {
            let _ = w.write_sample(s);
        }
        let _ = w.finalize();
    }
    let sounds = Arc::new(Sounds::default());
    let file = engine(t0, sounds, || PlayItem::File(path.clone()));
    run(c, "player file, 1000 legs, one 20 ms tick", file, t0);

    let mut classes = HashMap::new();
    let class = MohClass::from_sound(Sound::from_samples(music(8000 * 30)), t0);
    classes.insert("default".to_string(), Arc::new(class));
    let sounds = Arc::new(Sounds::new(classes));
    let moh = engine(t0, sounds, || PlayItem::Moh {
        class: "default".into(),
    });
    run(c, "player moh, 1000 legs, one 20 ms tick", moh, t0);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = bench
}
criterion_main!(benches);
