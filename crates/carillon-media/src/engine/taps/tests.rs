//! Taps tests with virtual time: a fixed `Instant` base plus offsets, two
//! phones on documentation addresses (nothing is sent anywhere).

use super::*;
use carillon_codec::{Goertzel, ToneGenerator};
use carillon_dtmf::Digit;
use carillon_mediactl::AudioCodec;
use carillon_rtp::dtmf::{DtmfGenerator as EventGenerator, TelephoneEvent};
use carillon_rtp::RtpPacketBuilder;
use std::path::PathBuf;

const S: SessionId = SessionId(1);
const A: LegId = LegId(10);
const B: LegId = LegId(11);
const PORT_A: u16 = 30000;
const PORT_B: u16 = 30002;
const LOCAL: [u8; 4] = [203, 0, 113, 1];
const SSRC_A: u32 = 0xA0A0;
const SSRC_B: u32 = 0xB0B0;

fn phone(leg: LegId) -> SocketAddr {
    if leg == A {
        SocketAddr::from(([192, 0, 2, 10], 5004))
    } else {
        SocketAddr::from(([198, 51, 100, 20], 6004))
    }
}

fn params(leg: LegId, codec: AudioCodec, ptime_ms: u64, te: Option<u8>) -> LegParams {
    LegParams {
        codec,
        payload_type: match codec {
            AudioCodec::Pcmu => 0,
            AudioCodec::Pcma => 8,
        },
        telephone_event_pt: te,
        ptime: Duration::from_millis(ptime_ms),
        remote: Some(phone(leg)),
        latch: true,
        send: true,
        recv: true,
    }
}

/// A packet the engine generated, as the edge would send it.
struct GeneratedTransmit {
    local_port: u16,
    destination: SocketAddr,
    packet: Vec<u8>,
}

struct Harness {
    engine: MediaEngine,
    t0: Instant,
    seq: HashMap<LegId, u16>,
    dir: tempfile::TempDir,
}

impl Harness {
    fn new(a: LegParams, b: LegParams, kernel_offload: bool) -> Self {
        let config = MediaConfig {
            rng_seed: 7,
            kernel_offload,
            ..MediaConfig::default()
        };
        let mut h = Harness {
            engine: MediaEngine::new(config, IpAddr::from(LOCAL)),
            t0: Instant::now(),
            seq: HashMap::new(),
            dir: tempfile::tempdir().unwrap(),
        };
        for (leg, port, p) in [(A, PORT_A, a), (B, PORT_B, b)] {
            let open = MediaCommand::OpenLeg {
                session: S,
                leg,
                local_port: port,
                params: p,
            };
            h.engine.handle_command(h.t0, open).unwrap();
            while let Some(SocketRequest::Bind { leg, rtp_port }) = h.engine.poll_socket_request() {
                let local = SocketAddr::from((LOCAL, rtp_port));
                h.engine.handle_bound(h.t0, leg, Ok(local)).unwrap();
            }
        }
        // The tests run faster than real time: a channel that holds a
        // whole test's audio, so no frame is dropped for it.
        h.engine
            .set_recorder_options(carillon_recorder::RecorderOptions {
                capacity: 1000,
                ..Default::default()
            });
        h.command(
            0,
            MediaCommand::Bridge {
                session: S,
                a: A,
                b: B,
            },
        );
        while h.engine.poll_event().is_some() {}
        h
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn command(&mut self, ms: u64, command: MediaCommand) {
        let now = self.at(ms);
        self.engine.handle_command(now, command).unwrap();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join("calls").join(name)
    }

    /// An RTP packet from `leg`'s phone at `ms`; the relayed bytes, if any.
    fn send(&mut self, ms: u64, leg: LegId, pt: u8, ts: u32, payload: &[u8]) -> Option<Vec<u8>> {
        let seq = self.seq.entry(leg).or_insert(100);
        *seq = seq.wrapping_add(1);
        let ssrc = if leg == A { SSRC_A } else { SSRC_B };
        let builder = RtpPacketBuilder::new(pt, *seq, ts, Ssrc(ssrc), payload);
        let mut buf = vec![0u8; builder.encoded_len()];
        builder.write_into(&mut buf).unwrap();
        let port = if leg == A { PORT_A } else { PORT_B };
        let now = self.at(ms);
        let tx = self.engine.handle_packet(now, port, phone(leg), &mut buf)?;
        Some(buf[..tx.len].to_vec())
    }

    /// Runs the engine's timer every millisecond from `from` to `to`
    /// (exclusive), collecting generated packets.
    fn run_timer(&mut self, from: u64, to: u64) -> Vec<GeneratedTransmit> {
        let mut out = Vec::new();
        for ms in from..to {
            let now = self.at(ms);
            if self.engine.poll_timeout().is_some_and(|d| d <= now) {
                self.engine.handle_timeout(now);
            }
            self.engine.drain_generated(|g, bytes| {
                out.push(GeneratedTransmit {
                    local_port: g.local_port,
                    destination: g.destination,
                    packet: bytes.to_vec(),
                })
            });
        }
        out
    }

    fn events(&mut self) -> Vec<MediaEvent> {
        std::iter::from_fn(|| self.engine.poll_event()).collect()
    }
}

/// A tone source producing G.711 payloads of one leg's codec and ptime.
struct Tone {
    gen: ToneGenerator,
    codec: carillon_codec::Codec,
    samples: usize,
}

impl Tone {
    fn new(hz: f64, codec: AudioCodec, ptime_ms: u64) -> Self {
        Tone {
            gen: ToneGenerator::new(hz, 8000),
            codec: codec_of(codec),
            samples: ptime_ms as usize * 8,
        }
    }

    fn payload(&mut self) -> Vec<u8> {
        let mut out = vec![0u8; self.samples];
        self.gen.fill_encoded(self.codec, &mut out);
        out
    }
}

fn read_wav(path: &Path) -> (hound::WavSpec, Vec<i16>) {
    let mut reader = hound::WavReader::open(path).unwrap();
    let spec = reader.spec();
    let samples = reader.samples::<i16>().map(Result::unwrap).collect();
    (spec, samples)
}

fn channel(samples: &[i16], channels: usize, which: usize) -> Vec<i16> {
    samples
        .iter()
        .skip(which)
        .step_by(channels)
        .copied()
        .collect()
}

fn power(samples: &[i16], hz: f64) -> f64 {
    Goertzel::new(hz, 8000).relative_power(samples)
}

/// A's 500 Hz (µ-law, 20 ms) and B's 1200 Hz (A-law, 30 ms) for `ms`.
fn talk(h: &mut Harness, from: u64, to: u64) {
    let mut tone_a = Tone::new(500.0, AudioCodec::Pcmu, 20);
    let mut tone_b = Tone::new(1200.0, AudioCodec::Pcma, 30);
    for ms in from..to {
        if ms % 20 == 0 {
            let p = tone_a.payload();
            h.send(ms, A, 0, (ms * 8) as u32, &p);
        }
        if ms % 30 == 0 {
            let p = tone_b.payload();
            h.send(ms, B, 8, (ms * 8) as u32, &p);
        }
        h.run_timer(ms, ms + 1);
    }
}

fn done(events: &[MediaEvent]) -> (RecordingEnd, u64, u64, PathBuf) {
    events
        .iter()
        .find_map(|e| match e {
            MediaEvent::RecordingDone {
                end,
                duration_ms,
                frames_lost,
                path,
                ..
            } => Some((end.clone(), *duration_ms, *frames_lost, path.clone())),
            _ => None,
        })
        .expect("a RecordingDone")
}

fn mixed_pair() -> Harness {
    Harness::new(
        params(A, AudioCodec::Pcmu, 20, None),
        params(B, AudioCodec::Pcma, 30, None),
        false,
    )
}

#[test]
fn a_stereo_recording_of_a_mixed_codec_mixed_ptime_pair_has_each_party_in_its_channel() {
    let mut h = mixed_pair();
    let path = h.path("stereo.wav");
    h.command(
        0,
        MediaCommand::Record {
            session: S,
            recording: RecordingId(1),
            mix: RecordMix::Stereo {
                caller: A,
                callee: B,
            },
            path: path.clone(),
            max_silence: None,
            max_duration: None,
        },
    );
    talk(&mut h, 0, 2000);
    h.command(
        2000,
        MediaCommand::StopRecord {
            session: S,
            recording: RecordingId(1),
        },
    );
    let (end, duration_ms, lost, done_path) = done(&h.events());
    assert_eq!(
        (end, lost, done_path),
        (RecordingEnd::Stopped, 0, path.clone())
    );
    assert!(duration_ms.abs_diff(2000) <= 100, "{duration_ms} ms");
    let (spec, samples) = read_wav(&path);
    assert_eq!((spec.channels, spec.sample_rate), (2, 8000));
    let left = channel(&samples, 2, 0);
    let right = channel(&samples, 2, 1);
    let mid = 4000..12000;
    assert!(power(&left[mid.clone()], 500.0) > 0.5);
    assert!(power(&left[mid.clone()], 1200.0) < 0.05);
    assert!(power(&right[mid.clone()], 1200.0) > 0.5);
    assert!(power(&right[mid], 500.0) < 0.05);
}

#[test]
fn a_mono_recording_mixes_both_parties() {
    let mut h = mixed_pair();
    let path = h.path("mono.wav");
    h.command(
        0,
        MediaCommand::Record {
            session: S,
            recording: RecordingId(2),
            mix: RecordMix::Mono {
                caller: A,
                callee: B,
            },
            path: path.clone(),
            max_silence: None,
            max_duration: None,
        },
    );
    talk(&mut h, 0, 1000);
    h.command(
        1000,
        MediaCommand::StopRecord {
            session: S,
            recording: RecordingId(2),
        },
    );
    let (end, duration_ms, _, _) = done(&h.events());
    assert_eq!(end, RecordingEnd::Stopped);
    assert!(duration_ms.abs_diff(1000) <= 100, "{duration_ms} ms");
    let (spec, samples) = read_wav(&path);
    assert_eq!(spec.channels, 1);
    let mid = &samples[2000..6000];
    assert!(power(mid, 500.0) > 0.2, "{}", power(mid, 500.0));
    assert!(power(mid, 1200.0) > 0.2, "{}", power(mid, 1200.0));
}

#[test]
fn a_recording_lasts_its_wall_clock_time_when_a_party_stops_sending() {
    let mut h = mixed_pair();
    let path = h.path("quiet.wav");
    h.command(
        0,
        MediaCommand::Record {
            session: S,
            recording: RecordingId(3),
            mix: RecordMix::Stereo {
                caller: A,
                callee: B,
            },
            path: path.clone(),
            max_silence: None,
            max_duration: None,
        },
    );
    // A talks for 1 s, then goes quiet (hold); B never sends at all.
    let mut tone = Tone::new(500.0, AudioCodec::Pcmu, 20);
    for ms in 0..3000 {
        if ms < 1000 && ms % 20 == 0 {
            let p = tone.payload();
            h.send(ms, A, 0, (ms * 8) as u32, &p);
        }
        h.run_timer(ms, ms + 1);
    }
    h.command(
        3000,
        MediaCommand::StopRecord {
            session: S,
            recording: RecordingId(3),
        },
    );
    let (_, duration_ms, _, _) = done(&h.events());
    assert!(duration_ms.abs_diff(3000) <= 500, "{duration_ms} ms");
    let (_, samples) = read_wav(&path);
    let secs = samples.len() as f64 / 2.0 / 8000.0;
    assert!((secs - 3.0).abs() <= 0.5, "file is {secs} s");
    let left = channel(&samples, 2, 0);
    assert!(
        power(&left[2000..6000], 500.0) > 0.5,
        "A's tone is in the first second"
    );
    assert!(
        left[12000..20000].iter().all(|&s| s == 0),
        "the gap is silence"
    );
}

#[test]
fn a_leg_recording_ends_on_silence_and_another_on_max_duration() {
    let mut h = mixed_pair();
    let quiet = h.path("leg.wav");
    h.command(
        0,
        MediaCommand::Record {
            session: S,
            recording: RecordingId(4),
            mix: RecordMix::Leg(A),
            path: quiet.clone(),
            max_silence: Some(Duration::from_millis(1000)),
            max_duration: None,
        },
    );
    h.command(
        0,
        MediaCommand::Record {
            session: S,
            recording: RecordingId(5),
            mix: RecordMix::Leg(B),
            path: h.path("short.wav"),
            max_silence: None,
            max_duration: Some(Duration::from_millis(1500)),
        },
    );
    // A speaks for 600 ms, then sends silence (µ-law 0xFF) packets.
    let mut tone = Tone::new(500.0, AudioCodec::Pcmu, 20);
    let mut ended = Vec::new();
    for ms in 0..4000 {
        if ms % 20 == 0 {
            let p = if ms < 600 {
                tone.payload()
            } else {
                vec![0xFF; 160]
            };
            h.send(ms, A, 0, (ms * 8) as u32, &p);
        }
        h.run_timer(ms, ms + 1);
        for e in h.events() {
            if let MediaEvent::RecordingDone {
                recording,
                end,
                duration_ms,
                ..
            } = e
            {
                ended.push((ms, recording, end, duration_ms));
            }
        }
    }
    assert_eq!(ended.len(), 2, "{ended:?}");
    let (at, id, end, duration) = &ended[0];
    assert_eq!((id, end), (&RecordingId(5), &RecordingEnd::MaxDuration));
    assert!(
        at.abs_diff(1500) <= 20 && duration.abs_diff(1500) <= 20,
        "{ended:?}"
    );
    let (at, id, end, _) = &ended[1];
    assert_eq!((id, end), (&RecordingId(4), &RecordingEnd::Silence));
    // The last sound was at 580 ms: silence for a second after it.
    assert!(at.abs_diff(1580) <= 30, "{ended:?}");
    let (spec, samples) = read_wav(&quiet);
    assert_eq!(spec.channels, 1);
    assert!(power(&samples[800..4000], 500.0) > 0.5);
}

#[test]
fn closing_a_recorded_leg_finalises_the_file_and_reports_it_stopped() {
    let mut h = mixed_pair();
    let path = h.path("closed.wav");
    h.command(
        0,
        MediaCommand::Record {
            session: S,
            recording: RecordingId(6),
            mix: RecordMix::Mono {
                caller: A,
                callee: B,
            },
            path: path.clone(),
            max_silence: None,
            max_duration: None,
        },
    );
    talk(&mut h, 0, 500);
    h.command(500, MediaCommand::CloseSession { session: S });
    let events = h.events();
    let (end, duration_ms, _, _) = done(&events);
    assert_eq!(end, RecordingEnd::Stopped);
    let recordings = events
        .iter()
        .filter(|e| matches!(e, MediaEvent::RecordingDone { .. }))
        .count();
    assert_eq!(recordings, 1, "one RecordingDone although both legs closed");
    let (_, samples) = read_wav(&path);
    assert_eq!(samples.len() as u64, duration_ms * 8);
    assert!(duration_ms.abs_diff(500) <= 60);
}

#[test]
fn a_recording_that_cannot_create_its_file_reports_failed() {
    let mut h = mixed_pair();
    // A directory where the file should be.
    let path = h.path("taken");
    std::fs::create_dir_all(&path).unwrap();
    let result = h.engine.handle_command(
        h.t0,
        MediaCommand::Record {
            session: S,
            recording: RecordingId(7),
            mix: RecordMix::Leg(A),
            path,
            max_silence: None,
            max_duration: None,
        },
    );
    assert!(matches!(result, Err(CommandError::Record { .. })));
    assert!(matches!(done(&h.events()).0, RecordingEnd::Failed(_)));
}

fn installs(h: &mut Harness) -> (usize, usize) {
    let mut install = 0;
    let mut remove = 0;
    while let Some(r) = h.engine.poll_offload_request() {
        match r {
            OffloadRequest::Install(_) => install += 1,
            OffloadRequest::Remove { .. } => remove += 1,
        }
    }
    (install, remove)
}

#[test]
fn a_tap_takes_the_flow_out_of_the_kernel_and_its_removal_gives_it_back() {
    let mut h = Harness::new(
        params(A, AudioCodec::Pcmu, 20, None),
        params(B, AudioCodec::Pcmu, 20, None),
        true,
    );
    // B latches first, so A's flow towards it can be offloaded.
    h.send(0, B, 0, 0, &[0xFF; 160]);
    installs(&mut h);
    assert!(h.send(20, A, 0, 160, &[0xFF; 160]).is_some());
    assert_eq!(
        installs(&mut h),
        (1, 0),
        "untapped: A's flow goes to the kernel"
    );

    h.command(
        30,
        MediaCommand::Record {
            session: S,
            recording: RecordingId(8),
            mix: RecordMix::Leg(A),
            path: h.path("k.wav"),
            max_silence: None,
            max_duration: None,
        },
    );
    assert_eq!(installs(&mut h), (0, 1), "recording A removes its flow");
    assert!(h.send(40, A, 0, 320, &[0xFF; 160]).is_some());
    assert_eq!(
        installs(&mut h),
        (0, 0),
        "a recorded flow stays in userspace"
    );

    h.command(
        50,
        MediaCommand::StopRecord {
            session: S,
            recording: RecordingId(8),
        },
    );
    assert!(h.send(60, A, 0, 480, &[0xFF; 160]).is_some());
    assert_eq!(
        installs(&mut h),
        (1, 0),
        "the last tap gone, the kernel takes it"
    );

    // The in-band detector is a tap too.
    h.command(
        70,
        MediaCommand::SetDtmfMode {
            session: S,
            leg: A,
            mode: DtmfMode::Inband,
        },
    );
    assert_eq!(installs(&mut h), (0, 1));
    assert!(h.send(80, A, 0, 640, &[0xFF; 160]).is_some());
    assert_eq!(installs(&mut h), (0, 0));
    h.command(
        90,
        MediaCommand::SetDtmfMode {
            session: S,
            leg: A,
            mode: DtmfMode::Rfc4733,
        },
    );
    assert!(h.send(100, A, 0, 800, &[0xFF; 160]).is_some());
    assert_eq!(installs(&mut h), (1, 0));
}

/// In-band DTMF audio of `digit` for `tone_ms`, then silence, in 20 ms
/// µ-law payloads.
fn dtmf_payloads(digit: char, tone_ms: usize, total_ms: usize) -> Vec<Vec<u8>> {
    let key = Digit::from_char(digit).unwrap();
    let mut gen = carillon_dtmf::DtmfGenerator::new(key, -10.0, -8.0);
    let mut pcm = vec![0i16; total_ms * 8];
    gen.fill(&mut pcm[..tone_ms * 8]);
    pcm.chunks(160)
        .map(|c| {
            c.iter()
                .map(|&s| carillon_codec::Codec::Pcmu.encode_sample(s))
                .collect()
        })
        .collect()
}

fn detect_inband(codec: carillon_codec::Codec, payloads: &[Vec<u8>]) -> Vec<char> {
    let mut d = carillon_dtmf::DtmfDetector::new(8000).unwrap();
    let mut digits = Vec::new();
    for p in payloads {
        d.push_g711(codec, p);
        while let Some(e) = d.poll_event() {
            if let carillon_dtmf::DtmfEvent::Ended { digit, .. } = e {
                digits.push(digit.as_char());
            }
        }
    }
    digits
}

#[test]
fn inband_tones_from_an_inband_leg_are_reported_as_inband_digits() {
    let mut h = Harness::new(
        params(A, AudioCodec::Pcmu, 20, None),
        params(B, AudioCodec::Pcmu, 20, None),
        false,
    );
    h.command(
        0,
        MediaCommand::SetDtmfMode {
            session: S,
            leg: A,
            mode: DtmfMode::Inband,
        },
    );
    for (i, p) in dtmf_payloads('5', 120, 400).iter().enumerate() {
        let ms = 20 * i as u64;
        assert!(
            h.send(ms, A, 0, (ms * 8) as u32, p).is_some(),
            "the audio passes"
        );
    }
    let digits: Vec<(char, DtmfSource, Duration)> = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            MediaEvent::Dtmf {
                leg,
                digit,
                source,
                duration,
                ..
            } if leg == A => Some((digit, source, duration)),
            _ => None,
        })
        .collect();
    assert_eq!(digits.len(), 1, "{digits:?}");
    assert_eq!((digits[0].0, digits[0].1), ('5', DtmfSource::Inband));
    assert!(digits[0].2.as_millis().abs_diff(120) <= 30, "{digits:?}");
}

#[test]
fn an_rfc4733_digit_reaches_an_inband_leg_as_tones_and_not_as_events() {
    let mut h = Harness::new(
        params(A, AudioCodec::Pcmu, 20, Some(101)),
        params(B, AudioCodec::Pcma, 20, None),
        false,
    );
    h.command(
        0,
        MediaCommand::SetDtmfMode {
            session: S,
            leg: B,
            mode: DtmfMode::Inband,
        },
    );
    let mut to_b = Vec::new();
    // Audio first, then a 160 ms press of 7, then audio again.
    for ms in (0..100).step_by(20) {
        to_b.extend(h.send(ms, A, 0, (ms * 8) as u32, &[0xFF; 160]));
        to_b.extend(h.run_timer(ms, ms + 20).into_iter().map(|g| g.packet));
    }
    let events: Vec<_> = EventGenerator::new('7', 1280, 160).unwrap().collect();
    for (i, ev) in events.iter().enumerate() {
        let ms = 100 + 20 * i as u64;
        let mut bytes = [0u8; 4];
        ev.event.write_into(&mut bytes).unwrap();
        assert!(
            h.send(ms, A, 101, 800, &bytes).is_none(),
            "events are not relayed"
        );
        // A's audio towards B is muted while B hears the tone.
        assert!(h.send(ms, A, 0, (ms * 8) as u32, &[0xFF; 160]).is_none());
        to_b.extend(h.run_timer(ms, ms + 20).into_iter().map(|g| g.packet));
    }
    for ms in (320..600).step_by(20) {
        to_b.extend(h.send(ms, A, 0, (ms * 8) as u32, &[0xFF; 160]));
        to_b.extend(h.run_timer(ms, ms + 20).into_iter().map(|g| g.packet));
    }
    let mut seqs = Vec::new();
    let mut payloads = Vec::new();
    for p in &to_b {
        let rtp = RtpPacket::parse(p).unwrap();
        assert_eq!(rtp.payload_type(), 8, "B only gets its audio payload type");
        assert_eq!(rtp.ssrc(), h.engine.leg_output_ssrc(B).unwrap());
        seqs.push(rtp.sequence_number());
        payloads.push(rtp.payload().to_vec());
    }
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "one continuous stream: {seqs:?}"
    );
    assert_eq!(detect_inband(carillon_codec::Codec::Pcma, &payloads), ['7']);
    // A's own digit is still reported from RFC 4733.
    assert!(h.events().iter().any(|e| matches!(
        e,
        MediaEvent::Dtmf { leg, digit: '7', source: DtmfSource::Rfc4733, .. } if *leg == A
    )));
}

/// (marker, event, timestamp, seq) of the RFC 4733 packets among `packets`.
fn rfc4733_events(packets: &[Vec<u8>], pt: u8) -> Vec<(bool, TelephoneEvent, u32, u16)> {
    packets
        .iter()
        .filter_map(|p| {
            let rtp = RtpPacket::parse(p).unwrap();
            (rtp.payload_type() == pt).then(|| {
                (
                    rtp.marker(),
                    TelephoneEvent::parse(rtp.payload()).unwrap(),
                    rtp.timestamp(),
                    rtp.sequence_number(),
                )
            })
        })
        .collect()
}

fn assert_well_formed_press(events: &[(bool, TelephoneEvent, u32, u16)], event: u8) {
    assert!(events.len() >= 5, "{events:?}");
    assert!(events[0].0, "marker on the first packet");
    assert!(events.iter().skip(1).all(|e| !e.0), "and only there");
    assert!(events
        .iter()
        .all(|e| e.1.event == event && e.2 == events[0].2));
    let (updates, ends) = events.split_at(events.len() - 3);
    assert!(
        ends.iter().all(|e| e.1.end),
        "three end packets: {events:?}"
    );
    assert!(updates.iter().all(|e| !e.1.end));
    assert!(updates
        .windows(2)
        .all(|w| w[1].1.duration > w[0].1.duration));
    assert!(ends.iter().all(|e| e.1.duration == ends[0].1.duration));
}

#[test]
fn an_inband_digit_reaches_an_rfc4733_leg_as_well_formed_events() {
    let mut h = Harness::new(
        params(A, AudioCodec::Pcmu, 20, None),
        params(B, AudioCodec::Pcmu, 20, Some(96)),
        false,
    );
    h.command(
        0,
        MediaCommand::SetDtmfMode {
            session: S,
            leg: A,
            mode: DtmfMode::Inband,
        },
    );
    h.command(
        0,
        MediaCommand::SetDtmfMode {
            session: S,
            leg: B,
            mode: DtmfMode::Auto,
        },
    );
    let mut to_b = Vec::new();
    let mut audio = vec![vec![0xFFu8; 160]; 5];
    audio.extend(dtmf_payloads('#', 200, 600));
    for (i, p) in audio.iter().enumerate() {
        let ms = 20 * i as u64;
        to_b.extend(h.send(ms, A, 0, (ms * 8) as u32, p));
        to_b.extend(h.run_timer(ms, ms + 20).into_iter().map(|g| g.packet));
    }
    let events = rfc4733_events(&to_b, 96);
    assert_well_formed_press(&events, 11);
    let final_units = events.last().unwrap().1.duration;
    assert!((1200..=2000).contains(&final_units), "{final_units} units");
    let seqs: Vec<u16> = to_b
        .iter()
        .map(|p| RtpPacket::parse(p).unwrap().sequence_number())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "events continue the audio's sequence numbers: {seqs:?}"
    );
}

#[test]
fn send_dtmf_sends_rfc4733_events_or_tones_in_the_legs_mode() {
    let mut h = Harness::new(
        params(A, AudioCodec::Pcmu, 20, Some(101)),
        params(B, AudioCodec::Pcma, 30, None),
        false,
    );
    // Both phones have sent, so both destinations are latched.
    h.send(0, A, 0, 0, &[0xFF; 160]);
    h.send(0, B, 8, 0, &[0xD5; 240]);
    h.command(
        10,
        MediaCommand::SendDtmf {
            session: S,
            leg: A,
            digit: '3',
            duration: Duration::from_millis(100),
        },
    );
    h.command(
        10,
        MediaCommand::SetDtmfMode {
            session: S,
            leg: B,
            mode: DtmfMode::Inband,
        },
    );
    h.command(
        10,
        MediaCommand::SendDtmf {
            session: S,
            leg: B,
            digit: '*',
            duration: Duration::from_millis(120),
        },
    );
    let generated = h.run_timer(10, 1000);
    let to = |leg: LegId| -> Vec<Vec<u8>> {
        generated
            .iter()
            .filter(|g| g.destination == phone(leg))
            .map(|g| g.packet.clone())
            .collect()
    };
    let to_a = to(A);
    assert!(generated
        .iter()
        .all(|g| (g.destination == phone(A)) == (g.local_port == PORT_A)));
    let events = rfc4733_events(&to_a, 101);
    assert_eq!(events.len(), to_a.len());
    assert_well_formed_press(&events, 3);
    assert_eq!(events.last().unwrap().1.duration, 800);
    let to_b = to(B);
    let payloads: Vec<Vec<u8>> = to_b
        .iter()
        .map(|p| {
            let rtp = RtpPacket::parse(p).unwrap();
            assert_eq!((rtp.payload_type(), rtp.payload().len()), (8, 240));
            rtp.payload().to_vec()
        })
        .collect();
    assert_eq!(detect_inband(carillon_codec::Codec::Pcma, &payloads), ['*']);
    // Tone then at least 40 ms of silence before the relay resumes.
    let last = payloads.last().unwrap();
    assert!(last
        .iter()
        .all(|&c| carillon_codec::Codec::Pcma.decode_sample(c).abs() < 16));

    // Digits cannot be sent to an INFO leg, and must be digits.
    h.command(
        1000,
        MediaCommand::SetDtmfMode {
            session: S,
            leg: A,
            mode: DtmfMode::Info,
        },
    );
    let info = MediaCommand::SendDtmf {
        session: S,
        leg: A,
        digit: '1',
        duration: Duration::from_millis(100),
    };
    assert_eq!(
        h.engine.handle_command(h.at(1000), info),
        Err(CommandError::DtmfNotByMedia { leg: A })
    );
    let bad = MediaCommand::SendDtmf {
        session: S,
        leg: B,
        digit: 'x',
        duration: Duration::from_millis(100),
    };
    assert_eq!(
        h.engine.handle_command(h.at(1000), bad),
        Err(CommandError::BadDigit { digit: 'x' })
    );
}

#[test]
fn an_rfc4733_digit_is_not_relayed_to_an_info_leg() {
    let mut h = Harness::new(
        params(A, AudioCodec::Pcmu, 20, Some(101)),
        params(B, AudioCodec::Pcmu, 20, Some(101)),
        false,
    );
    h.send(0, B, 0, 0, &[0xFF; 160]);
    let ev = TelephoneEvent {
        event: 1,
        end: false,
        volume: 10,
        duration: 160,
    };
    assert!(
        h.send(20, A, 101, 160, &ev.to_bytes()).is_some(),
        "RFC 4733 to RFC 4733 passes"
    );
    h.command(
        30,
        MediaCommand::SetDtmfMode {
            session: S,
            leg: B,
            mode: DtmfMode::Info,
        },
    );
    assert!(h.send(40, A, 101, 160, &ev.to_bytes()).is_none());
    assert!(
        h.run_timer(40, 200).is_empty(),
        "nothing generated for an INFO leg"
    );
}
