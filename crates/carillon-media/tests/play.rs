//! Players through the engine's public API, in virtual time (a fixed
//! `Instant` base plus offsets; nothing sleeps): packetisation, the shared
//! prompt cache, the relay handing over to a player and back, stopping,
//! missing files, streamed music on hold, tones, ptime and codec.

use carillon_codec::tone::Goertzel;
use carillon_codec::Codec;
use carillon_media::{
    Generated, MediaConfig, MediaEngine, MohClass, OffloadRequest, SocketRequest, Sound, Sounds,
};
use carillon_mediactl::{
    AudioCodec, LegId, LegParams, MediaCommand, MediaEvent, PlayItem, PlaybackEnd, PlaybackId,
    SessionId, ToneSegment, ToneSpec,
};
use carillon_rtp::{RtpPacket, RtpPacketBuilder};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const S: SessionId = SessionId(1);
const A: LegId = LegId(10);
const B: LegId = LegId(11);
const PORT_A: u16 = 30000;
const PORT_B: u16 = 30002;

fn phone_a() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 10], 5004))
}

fn phone_b() -> SocketAddr {
    SocketAddr::from(([198, 51, 100, 20], 6004))
}

fn params(codec: AudioCodec, remote: SocketAddr) -> LegParams {
    LegParams {
        codec,
        payload_type: match codec {
            AudioCodec::Pcmu => 0,
            AudioCodec::Pcma => 8,
        },
        telephone_event_pt: None,
        ptime: Duration::from_millis(20),
        remote: Some(remote),
        latch: true,
        send: true,
        recv: true,
    }
}

/// A WAV file of `samples` under a fresh temporary folder of this test.
fn wav(test: &str, name: &str, samples: &[i16]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("carillon-play-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    path
}

/// Distinct samples: a ramp, so a frame tells where in the file it is.
fn ramp(n: usize) -> Vec<i16> {
    (0..n).map(|i| ((i * 37) % 20000) as i16 - 10000).collect()
}

fn encode(codec: Codec, samples: &[i16]) -> Vec<u8> {
    samples.iter().map(|&s| codec.encode_sample(s)).collect()
}

#[derive(Debug, Clone)]
struct Out {
    local_port: u16,
    destination: SocketAddr,
    pt: u8,
    seq: u16,
    ts: u32,
    ssrc: u32,
    marker: bool,
    payload: Vec<u8>,
}

fn out(g: &Generated, bytes: &[u8]) -> Out {
    let p = RtpPacket::parse(bytes).unwrap();
    Out {
        local_port: g.local_port,
        destination: g.destination,
        pt: p.payload_type(),
        seq: p.sequence_number(),
        ts: p.timestamp(),
        ssrc: p.ssrc().0,
        marker: p.marker(),
        payload: p.payload().to_vec(),
    }
}

struct H {
    e: MediaEngine,
    t0: Instant,
    sounds: Arc<Sounds>,
}

impl H {
    fn new() -> H {
        Self::with(MediaConfig::default(), Sounds::default())
    }

    fn with(config: MediaConfig, sounds: Sounds) -> H {
        let sounds = Arc::new(sounds);
        H {
            e: MediaEngine::new(
                MediaConfig {
                    rng_seed: 7,
                    ..config
                },
                [127, 0, 0, 1].into(),
            )
            .with_sounds(sounds.clone()),
            t0: Instant::now(),
            sounds,
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn open(&mut self, leg: LegId, port: u16, p: LegParams) {
        let now = self.t0;
        let open = MediaCommand::OpenLeg {
            session: S,
            leg,
            local_port: port,
            params: p,
        };
        self.e.handle_command(now, open).unwrap();
        while let Some(SocketRequest::Bind { leg, rtp_port }) = self.e.poll_socket_request() {
            let local = SocketAddr::from(([127, 0, 0, 1], rtp_port));
            self.e.handle_bound(now, leg, Ok(local)).unwrap();
        }
        self.events();
    }

    fn play(&mut self, ms: u64, leg: LegId, id: u64, items: Vec<PlayItem>) {
        let play = MediaCommand::Play {
            session: S,
            leg,
            playback: PlaybackId(id),
            items,
        };
        let now = self.at(ms);
        self.e.handle_command(now, play).unwrap();
    }

    /// Runs the timers up to `ms` as the worker's tick would, collecting
    /// the generated packets.
    fn run_until(&mut self, ms: u64) -> Vec<Out> {
        let until = self.at(ms);
        let mut sent = Vec::new();
        while let Some(t) = self.e.poll_timeout() {
            if t > until {
                break;
            }
            self.e.handle_timeout(t);
            self.e.drain_generated(|g, b| sent.push(out(g, b)));
        }
        sent
    }

    fn events(&mut self) -> Vec<MediaEvent> {
        std::iter::from_fn(|| self.e.poll_event()).collect()
    }

    fn done(&mut self) -> Vec<(LegId, PlaybackId, PlaybackEnd, Vec<PathBuf>)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                MediaEvent::PlaybackDone {
                    leg,
                    playback,
                    end,
                    missing,
                    ..
                } => Some((leg, playback, end, missing)),
                _ => None,
            })
            .collect()
    }
}

fn file(path: &Path) -> PlayItem {
    PlayItem::File(path.to_path_buf())
}

#[test]
fn a_file_becomes_ceil_len_over_frame_packets_with_its_encoded_samples() {
    let samples = ramp(1000);
    let path = wav("frames", "prompt.wav", &samples);
    let mut h = H::new();
    h.open(B, PORT_B, params(AudioCodec::Pcmu, phone_b()));
    h.play(0, B, 1, vec![file(&path)]);
    let sent = h.run_until(1000);
    assert_eq!(sent.len(), 7, "ceil(1000 / 160)");
    let ssrc = h.e.leg_output_ssrc(B).unwrap().0;
    let mut expected = encode(Codec::Pcmu, &samples);
    expected.resize(7 * 160, 0xFF);
    for (i, p) in sent.iter().enumerate() {
        assert_eq!((p.local_port, p.destination), (PORT_B, phone_b()));
        assert_eq!(p.pt, 0);
        assert_eq!(p.ssrc, ssrc);
        assert_eq!(p.marker, i == 0, "marker on the first packet only");
        assert_eq!(p.seq, sent[0].seq.wrapping_add(i as u16));
        assert_eq!(p.ts, sent[0].ts.wrapping_add(160 * i as u32));
        assert_eq!(p.payload, expected[i * 160..(i + 1) * 160]);
    }
    assert_eq!(
        h.done(),
        vec![(B, PlaybackId(1), PlaybackEnd::Finished, vec![])]
    );
    assert_eq!(h.e.player_count(), 0);
    assert!(h.run_until(2000).is_empty());
}

#[test]
fn frames_are_paced_one_per_ptime_from_the_play() {
    let path = wav("paced", "p.wav", &ramp(1600));
    let mut h = H::new();
    h.open(B, PORT_B, params(AudioCodec::Pcmu, phone_b()));
    h.play(5, B, 1, vec![file(&path)]);
    assert_eq!(h.e.poll_timeout(), Some(h.at(5)));
    assert_eq!(h.run_until(5).len(), 1);
    assert_eq!(h.e.poll_timeout(), Some(h.at(25)));
    assert_eq!(h.run_until(64).len(), 2);
    // Next due at 65 ms; a tick at 145 ms finds five frames due: it sends
    // the last three and skips the older two.
    h.e.handle_timeout(h.at(145));
    let mut late = Vec::new();
    h.e.drain_generated(|g, b| late.push(out(g, b)));
    assert_eq!(late.len(), 3);
    assert_eq!(late[2].ts.wrapping_sub(late[0].ts), 320);
    assert_eq!(h.e.poll_timeout(), Some(h.at(165)));
}

#[test]
fn two_listeners_of_one_prompt_share_one_cached_copy() {
    let path = wav("shared", "welcome.wav", &ramp(800));
    let mut h = H::new();
    h.open(A, PORT_A, params(AudioCodec::Pcmu, phone_a()));
    h.open(B, PORT_B, params(AudioCodec::Pcmu, phone_b()));
    h.play(0, A, 1, vec![file(&path)]);
    h.play(10, B, 2, vec![file(&path)]);
    assert_eq!(h.sounds.cache.loads(), 1, "read once");
    let cached = h.sounds.cache.get(&path).unwrap();
    // The cache, both players and this handle.
    assert_eq!(Arc::strong_count(&cached), 4);
    let sent = h.run_until(200);
    let to = |port| sent.iter().filter(|p| p.local_port == port).count();
    assert_eq!((to(PORT_A), to(PORT_B)), (5, 5));
    assert_eq!(h.sounds.cache.loads(), 1);
}

fn relay(h: &mut H, ms: u64, seq: u16) -> Option<(u16, u32, bool)> {
    let mut p = vec![0u8; 172];
    RtpPacketBuilder::new(
        0,
        seq,
        u32::from(seq) * 160,
        carillon_rtp::Ssrc(0xAAAA),
        &[0x11; 160],
    )
    .write_into(&mut p)
    .unwrap();
    let now = h.at(ms);
    let tx = h.e.handle_packet(now, PORT_A, phone_a(), &mut p)?;
    assert_eq!(tx.local_port, PORT_B);
    let r = RtpPacket::parse(&p[..tx.len]).unwrap();
    Some((r.sequence_number(), r.timestamp(), r.marker()))
}

fn bridged(h: &mut H) {
    h.open(A, PORT_A, params(AudioCodec::Pcmu, phone_a()));
    h.open(B, PORT_B, params(AudioCodec::Pcmu, phone_b()));
    let bridge = MediaCommand::Bridge {
        session: S,
        a: A,
        b: B,
    };
    h.e.handle_command(h.t0, bridge).unwrap();
}

#[test]
fn the_relay_resumes_after_a_playback_as_one_continuous_stream() {
    let mut h = H::new();
    bridged(&mut h);
    let mut stream = Vec::new();
    for i in 0..3u16 {
        stream.push(relay(&mut h, u64::from(i) * 20, 100 + i).unwrap());
    }
    h.play(60, B, 1, vec![PlayItem::Silence(Duration::from_millis(60))]);
    for p in h.run_until(100) {
        stream.push((p.seq, p.ts, p.marker));
    }
    // While the player feeds B, what A sends is dropped (counted).
    assert_eq!(relay(&mut h, 65, 103), None);
    assert_eq!(relay(&mut h, 85, 104), None);
    assert_eq!(h.e.counters().replaced_by_player, 2);
    assert_eq!(h.run_until(140).len(), 0);
    assert_eq!(h.done().len(), 1);
    stream.push(relay(&mut h, 145, 105).unwrap());
    stream.push(relay(&mut h, 165, 106).unwrap());
    assert_eq!(stream.len(), 8);
    for pair in stream.windows(2) {
        assert_eq!(pair[1].0, pair[0].0.wrapping_add(1), "{stream:?}");
        assert!(pair[1].1.wrapping_sub(pair[0].1) >= 160, "{stream:?}");
    }
    let markers: Vec<bool> = stream.iter().map(|p| p.2).collect();
    assert_eq!(
        markers,
        [false, false, false, true, false, false, true, false],
        "the player's first packet and the relay's first after it"
    );
    // The timestamp after the playback follows real time: the player's
    // last frame left at 100 ms, the relay's first at 145 ms.
    assert_eq!(stream[6].1.wrapping_sub(stream[5].1), 8 * 45);
}

#[test]
fn stop_play_ends_with_stopped_and_the_relay_takes_over() {
    let path = wav("stop", "long.wav", &ramp(8000));
    let mut h = H::new();
    bridged(&mut h);
    h.play(0, B, 9, vec![file(&path)]);
    assert_eq!(h.run_until(50).len(), 3);
    let stop = MediaCommand::StopPlay { session: S, leg: B };
    h.e.handle_command(h.at(55), stop.clone()).unwrap();
    assert_eq!(
        h.done(),
        vec![(B, PlaybackId(9), PlaybackEnd::Stopped, vec![])]
    );
    assert!(h.run_until(200).is_empty());
    assert!(relay(&mut h, 201, 1).is_some());
    // Stopping with nothing playing is not an error and says nothing.
    h.e.handle_command(h.at(210), stop).unwrap();
    assert!(h.done().is_empty());
}

#[test]
fn a_new_play_stops_the_previous_one_and_closing_the_leg_stops_it_too() {
    let mut h = H::new();
    h.open(B, PORT_B, params(AudioCodec::Pcmu, phone_b()));
    let forever = || PlayItem::Silence(Duration::from_secs(60));
    h.play(0, B, 1, vec![forever()]);
    h.run_until(30);
    h.play(40, B, 2, vec![forever()]);
    assert_eq!(
        h.done(),
        vec![(B, PlaybackId(1), PlaybackEnd::Stopped, vec![])]
    );
    let sent = h.run_until(100);
    assert_eq!(sent.len(), 4, "one player: 40, 60, 80, 100 ms");
    assert!(sent[0].marker);
    let close = MediaCommand::CloseLeg { session: S, leg: B };
    h.e.handle_command(h.at(101), close).unwrap();
    let events = h.events();
    assert!(
        matches!(
            &events[..],
            [
                MediaEvent::PlaybackDone {
                    playback: PlaybackId(2),
                    end: PlaybackEnd::Stopped,
                    ..
                },
                MediaEvent::LegClosed { .. }
            ]
        ),
        "{events:?}"
    );
    assert_eq!(h.e.player_count(), 0);
    assert!(h.run_until(300).is_empty());
}

#[test]
fn a_missing_file_is_skipped_and_named() {
    let good = wav("missing", "good.wav", &ramp(320));
    let gone = good.with_file_name("gone.wav");
    let mut h = H::new();
    h.open(B, PORT_B, params(AudioCodec::Pcmu, phone_b()));
    let items = vec![
        file(&gone),
        file(&good),
        PlayItem::Moh {
            class: "jazz".into(),
        },
    ];
    h.play(0, B, 3, items);
    assert_eq!(h.run_until(200).len(), 2, "only the readable file plays");
    assert_eq!(
        h.done(),
        vec![(
            B,
            PlaybackId(3),
            PlaybackEnd::Finished,
            vec![gone, PathBuf::from("moh:jazz")]
        )]
    );
    // Nothing playable at all: finished at once, without a packet.
    h.play(300, B, 4, vec![PlayItem::File("/nonexistent/x.wav".into())]);
    assert!(h.run_until(400).is_empty());
    assert_eq!(h.done()[0].2, PlaybackEnd::Finished);
}

#[test]
fn moh_listeners_started_at_different_times_hear_the_same_position() {
    let t0 = Instant::now();
    let epoch = t0 - Duration::from_millis(130);
    let class = MohClass::from_sound(Sound::from_samples(ramp(4100)), epoch);
    let encoded = encode(Codec::Pcmu, &ramp(4100));
    let mut classes = HashMap::new();
    classes.insert("default".to_string(), Arc::new(class));
    let mut h = H::with(MediaConfig::default(), Sounds::new(classes));
    h.t0 = t0;
    h.open(A, PORT_A, params(AudioCodec::Pcmu, phone_a()));
    h.open(B, PORT_B, params(AudioCodec::Pcmu, phone_b()));
    let moh = || {
        vec![PlayItem::Moh {
            class: "default".into(),
        }]
    };
    h.play(0, A, 1, moh());
    h.play(110, B, 2, moh());
    let sent = h.run_until(700);
    let frame = |port: u16, k: usize| {
        sent.iter()
            .filter(|p| p.local_port == port)
            .nth(k)
            .unwrap()
            .payload
            .clone()
    };
    // A's frame due at 220 ms and B's at 210 ms: the class clock is at
    // samples 2800 and 2720, both in the frame starting at 2720.
    assert_eq!(frame(PORT_A, 11), frame(PORT_B, 5));
    assert_eq!(frame(PORT_A, 11), encoded[2720..2880]);
    // Each listener's frames follow each other.
    assert_eq!(frame(PORT_A, 12), encoded[2880..3040]);
    // At 380 ms the clock is at 4080: frame 4000..4160 wraps round the end.
    let wrapped = [&encoded[4000..4100], &encoded[..60]].concat();
    assert_eq!(frame(PORT_A, 19), wrapped);
    assert_eq!(frame(PORT_B, 13), wrapped, "B at 370 ms");
    // B at 510 ms: clock 5120, 1020 into the second turn.
    assert_eq!(frame(PORT_B, 20), encoded[1020..1180]);
    assert!(h.done().is_empty(), "music on hold never finishes");
    assert_eq!(h.e.player_count(), 2);
}

#[test]
fn a_tone_has_energy_at_its_frequencies() {
    let spec = Arc::new(ToneSpec {
        segments: vec![ToneSegment {
            freqs: [Some(350), Some(440)],
            level_dbm0: -13,
            duration: Duration::from_secs(1),
        }],
    });
    let mut h = H::new();
    h.open(B, PORT_B, params(AudioCodec::Pcma, phone_b()));
    let tone = PlayItem::Tone {
        tone: spec,
        duration: Some(Duration::from_millis(200)),
    };
    h.play(0, B, 5, vec![tone]);
    let sent = h.run_until(500);
    assert_eq!(sent.len(), 10);
    let pcm: Vec<i16> = sent
        .iter()
        .flat_map(|p| p.payload.iter().map(|&c| Codec::Pcma.decode_sample(c)))
        .collect();
    let power = |f| Goertzel::new(f, 8000).relative_power(&pcm);
    assert!(
        power(350.0) > 0.2 && power(440.0) > 0.2,
        "{} {}",
        power(350.0),
        power(440.0)
    );
    assert!(power(1000.0) < 0.01 && power(620.0) < 0.01);
    assert_eq!(h.done()[0].2, PlaybackEnd::Finished);
}

#[test]
fn a_30_ms_leg_gets_240_sample_frames_and_an_a_law_leg_gets_a_law() {
    let samples = ramp(1000);
    let path = wav("ptime", "p.wav", &samples);
    let mut h = H::new();
    let mut p = params(AudioCodec::Pcma, phone_b());
    p.ptime = Duration::from_millis(30);
    h.open(B, PORT_B, p);
    h.play(0, B, 1, vec![file(&path)]);
    let sent = h.run_until(1000);
    assert_eq!(sent.len(), 5, "ceil(1000 / 240)");
    let mut expected = encode(Codec::Pcma, &samples);
    expected.resize(5 * 240, 0xD5);
    for (i, p) in sent.iter().enumerate() {
        assert_eq!(p.pt, 8);
        assert_eq!(p.payload, expected[i * 240..(i + 1) * 240]);
        assert_eq!(p.ts, sent[0].ts.wrapping_add(240 * i as u32));
    }
}

#[test]
fn a_leg_on_hold_hears_nothing_but_its_playback_still_finishes() {
    let path = wav("hold", "p.wav", &ramp(480));
    let mut h = H::new();
    let mut p = params(AudioCodec::Pcmu, phone_b());
    p.send = false;
    h.open(B, PORT_B, p);
    h.play(0, B, 1, vec![file(&path)]);
    assert!(h.run_until(40).is_empty());
    assert!(h.done().is_empty(), "still playing at 40 ms");
    assert!(h.run_until(100).is_empty());
    assert_eq!(h.done()[0].2, PlaybackEnd::Finished);
}

#[test]
fn a_play_takes_the_flow_towards_the_leg_out_of_the_kernel() {
    let mut h = H::with(
        MediaConfig {
            kernel_offload: true,
            ..MediaConfig::default()
        },
        Sounds::default(),
    );
    let mut pb = params(AudioCodec::Pcmu, phone_b());
    pb.latch = false;
    h.open(A, PORT_A, params(AudioCodec::Pcmu, phone_a()));
    h.open(B, PORT_B, pb);
    let bridge = MediaCommand::Bridge {
        session: S,
        a: A,
        b: B,
    };
    h.e.handle_command(h.t0, bridge).unwrap();
    relay(&mut h, 0, 1).unwrap();
    let requests: Vec<_> = std::iter::from_fn(|| h.e.poll_offload_request()).collect();
    assert!(
        matches!(requests[..], [OffloadRequest::Install(_)]),
        "{requests:?}"
    );
    h.play(10, B, 1, vec![PlayItem::Silence(Duration::from_millis(40))]);
    let requests: Vec<_> = std::iter::from_fn(|| h.e.poll_offload_request()).collect();
    assert_eq!(requests, [OffloadRequest::Remove { local_port: PORT_A }]);
    // Under the player nothing is offered to the kernel; after it, the
    // relayed flow returns there.
    assert_eq!(relay(&mut h, 20, 2), None);
    assert!(h.e.poll_offload_request().is_none());
    h.run_until(100);
    relay(&mut h, 101, 3).unwrap();
    let requests: Vec<_> = std::iter::from_fn(|| h.e.poll_offload_request()).collect();
    assert!(
        matches!(requests[..], [OffloadRequest::Install(_)]),
        "{requests:?}"
    );
}
