//! Engine tests with virtual time: a fixed `Instant` base plus offsets.

use super::*;
use carillon_codec::g711::{ALAW_TO_ULAW, ULAW_TO_ALAW};
use carillon_mediactl::AudioCodec;
use carillon_rtp::dtmf::DtmfGenerator;
use carillon_rtp::{ReceiverReport, ReportBlock, RtcpPacket, RtpPacketBuilder};
use std::time::Duration;

const S: SessionId = SessionId(1);
const A: LegId = LegId(10);
const B: LegId = LegId(11);
const C: LegId = LegId(12);
const PORT_A: u16 = 30000;
const PORT_B: u16 = 30002;
const PORT_C: u16 = 30004;
const LOCAL: [u8; 4] = [203, 0, 113, 1];

fn phone_a() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 10], 5004))
}

fn phone_b() -> SocketAddr {
    SocketAddr::from(([198, 51, 100, 20], 6004))
}

fn nat_a() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 99], 40123))
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

fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let builder = RtpPacketBuilder::new(pt, seq, ts, Ssrc(ssrc), payload);
    let mut buf = vec![0u8; builder.encoded_len()];
    builder.write_into(&mut buf).unwrap();
    buf
}

/// (pt, seq, ts, ssrc, marker)
fn fields(buf: &[u8]) -> (u8, u16, u32, Ssrc, bool) {
    let p = RtpPacket::parse(buf).unwrap();
    (
        p.payload_type(),
        p.sequence_number(),
        p.timestamp(),
        p.ssrc(),
        p.marker(),
    )
}

fn payload(buf: &[u8]) -> Vec<u8> {
    RtpPacket::parse(buf).unwrap().payload().to_vec()
}

struct Harness {
    engine: MediaEngine,
    t0: Instant,
}

impl Harness {
    fn new() -> Self {
        Self::with_config(MediaConfig {
            rng_seed: 42,
            ..MediaConfig::default()
        })
    }

    fn with_config(config: MediaConfig) -> Self {
        Harness {
            engine: MediaEngine::new(config, IpAddr::from(LOCAL)),
            t0: Instant::now(),
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    /// Opens a leg and answers its bind request like a working edge would.
    fn open(&mut self, leg: LegId, port: u16, params: LegParams) {
        self.open_and_bind(leg, port, params);
        assert_eq!(
            self.engine.poll_event(),
            Some(MediaEvent::LegOpened {
                session: S,
                leg,
                local: SocketAddr::from((LOCAL, port)),
            })
        );
    }

    /// Opens a leg and answers its bind request, without reading events.
    fn open_and_bind(&mut self, leg: LegId, port: u16, params: LegParams) {
        let now = self.t0;
        self.engine
            .handle_command(
                now,
                MediaCommand::OpenLeg {
                    session: S,
                    leg,
                    local_port: port,
                    params,
                },
            )
            .unwrap();
        assert_eq!(
            self.engine.poll_socket_request(),
            Some(SocketRequest::Bind {
                leg,
                rtp_port: port
            })
        );
        self.engine
            .handle_bound(now, leg, Ok(SocketAddr::from(([0, 0, 0, 0], port))))
            .unwrap();
    }

    fn bridged(pa: LegParams, pb: LegParams) -> Self {
        Self::bridged_in(Harness::new(), pa, pb)
    }

    /// A (`pa`) and B (`pb`) opened and bridged in `h`.
    fn bridged_in(mut h: Harness, pa: LegParams, pb: LegParams) -> Self {
        h.open(A, PORT_A, pa);
        h.open(B, PORT_B, pb);
        h.command(MediaCommand::Bridge {
            session: S,
            a: A,
            b: B,
        });
        h
    }

    fn pcmu_pair() -> Self {
        Self::bridged(
            params(AudioCodec::Pcmu, phone_a()),
            params(AudioCodec::Pcmu, phone_b()),
        )
    }

    fn command(&mut self, command: MediaCommand) {
        self.engine.handle_command(self.t0, command).unwrap();
    }

    fn send(&mut self, ms: u64, port: u16, from: SocketAddr, buf: &mut [u8]) -> Option<Transmit> {
        let now = self.at(ms);
        self.engine.handle_packet(now, port, from, buf)
    }

    fn events(&mut self) -> Vec<MediaEvent> {
        std::iter::from_fn(|| self.engine.poll_event()).collect()
    }

    /// Drives the timers up to `until` as an edge would, collecting events.
    fn run_until(&mut self, until: Instant) -> Vec<MediaEvent> {
        while let Some(t) = self.engine.poll_timeout() {
            if t > until {
                break;
            }
            self.engine.handle_timeout(t);
        }
        self.events()
    }
}

fn timeouts(events: &[MediaEvent]) -> Vec<LegId> {
    events
        .iter()
        .filter_map(|e| match e {
            MediaEvent::RtpTimeout { leg, .. } => Some(*leg),
            _ => None,
        })
        .collect()
}

#[test]
fn audio_from_a_leaves_through_b_to_b_remote_and_back_again() {
    let mut h = Harness::pcmu_pair();
    let mut p = rtp(0, 100, 16000, 0xAAAA, &[0x11; 160]);
    let t = h.send(0, PORT_A, phone_a(), &mut p).unwrap();
    assert_eq!(t.local_port, PORT_B);
    assert_eq!(t.destination, phone_b());
    assert_eq!(t.len, 172);
    let out_b = h.engine.leg_output_ssrc(B).unwrap();
    assert_eq!(fields(&p), (0, 100, 16000, out_b, false));
    assert_eq!(payload(&p), vec![0x11; 160]);

    let mut q = rtp(0, 7, 999, 0xBBBB, &[0x22; 160]);
    let t = h.send(1, PORT_B, phone_b(), &mut q).unwrap();
    assert_eq!(t.local_port, PORT_A);
    assert_eq!(t.destination, phone_a());
    let out_a = h.engine.leg_output_ssrc(A).unwrap();
    assert_ne!(out_a, out_b);
    assert_eq!(fields(&q), (0, 7, 999, out_a, false));
    assert_eq!(h.engine.counters().rtp_forwarded, 2);
    let a = h.engine.leg_stats(A).unwrap();
    assert_eq!((a.packets_in, a.packets_out), (1, 1));
    assert_eq!((a.bytes_in, a.bytes_out), (172, 172));
}

#[test]
fn the_far_end_sees_one_ssrc_and_continuous_sequence_when_the_source_changes() {
    let mut h = Harness::pcmu_pair();
    for i in 0..3u16 {
        let mut p = rtp(0, 500 + i, 8000 + u32::from(i) * 160, 0xAAAA, &[0; 160]);
        h.send(u64::from(i) * 20, PORT_A, phone_a(), &mut p)
            .unwrap();
    }
    // A re-INVITE moved leg A to another media source: new SSRC, new numbering.
    let mut p = rtp(0, 9, 123_456, 0xCCCC, &[0; 160]);
    h.send(60, PORT_A, phone_a(), &mut p).unwrap();
    let (_, seq, ts, ssrc, marker) = fields(&p);
    assert_eq!(ssrc, h.engine.leg_output_ssrc(B).unwrap());
    assert_eq!(seq, 503);
    assert_eq!(ts, 8000 + 2 * 160 + 160);
    assert!(marker);
}

#[test]
fn latching_sends_to_the_address_rtp_really_comes_from() {
    let mut h = Harness::pcmu_pair();
    assert_eq!(h.engine.leg_destination(A), Some(phone_a()));
    let mut p = rtp(0, 1, 160, 0xAAAA, &[0; 160]);
    assert!(h.send(0, PORT_A, nat_a(), &mut p).is_some());
    assert_eq!(h.engine.leg_destination(A), Some(nat_a()));
    let mut q = rtp(0, 1, 160, 0xBBBB, &[0; 160]);
    assert_eq!(
        h.send(1, PORT_B, phone_b(), &mut q).unwrap().destination,
        nat_a()
    );
}

#[test]
fn a_single_stray_packet_is_dropped_and_does_not_move_the_latch() {
    let mut h = Harness::pcmu_pair();
    let mut p = rtp(0, 1, 160, 0xAAAA, &[0; 160]);
    h.send(0, PORT_A, nat_a(), &mut p).unwrap();
    let intruder = SocketAddr::from(([233, 252, 0, 1], 9999));
    let mut stray = rtp(0, 2, 320, 0xAAAA, &[0; 160]);
    assert_eq!(h.send(20, PORT_A, intruder, &mut stray), None);
    assert_eq!(h.engine.counters().stray, 1);
    assert_eq!(h.engine.leg_destination(A), Some(nat_a()));
    assert_eq!(h.engine.leg_stats(A).unwrap().packets_in, 1);
    let mut next = rtp(0, 3, 480, 0xAAAA, &[0; 160]);
    assert!(h.send(40, PORT_A, nat_a(), &mut next).is_some());
}

#[test]
fn three_consecutive_packets_from_a_new_address_move_the_latch() {
    let mut h = Harness::pcmu_pair();
    let mut p = rtp(0, 1, 160, 0xAAAA, &[0; 160]);
    h.send(0, PORT_A, phone_a(), &mut p).unwrap();
    let mut forwarded = Vec::new();
    for i in 0..3u16 {
        let mut p = rtp(0, 2 + i, 320 + u32::from(i) * 160, 0xAAAA, &[0; 160]);
        forwarded.push(
            h.send(20 * u64::from(i + 1), PORT_A, nat_a(), &mut p)
                .is_some(),
        );
    }
    assert_eq!(forwarded, vec![false, false, true]);
    assert_eq!(h.engine.leg_destination(A), Some(nat_a()));
    // The old address is now the stray one.
    let mut old = rtp(0, 5, 960, 0xAAAA, &[0; 160]);
    assert_eq!(h.send(80, PORT_A, phone_a(), &mut old), None);
}

#[test]
fn a_packet_from_the_latched_address_interrupts_a_relatch_run() {
    let mut h = Harness::pcmu_pair();
    let mut seq = 0u16;
    let mut send = |h: &mut Harness, from: SocketAddr| {
        seq += 1;
        let mut p = rtp(0, seq, u32::from(seq) * 160, 0xAAAA, &[0; 160]);
        h.send(u64::from(seq) * 20, PORT_A, from, &mut p).is_some()
    };
    assert!(send(&mut h, phone_a()));
    assert!(!send(&mut h, nat_a()));
    assert!(!send(&mut h, nat_a()));
    assert!(send(&mut h, phone_a()));
    assert!(!send(&mut h, nat_a()));
    assert!(!send(&mut h, nat_a()));
    assert_eq!(h.engine.leg_destination(A), Some(phone_a()));
}

#[test]
fn without_latching_the_sdp_address_is_kept_whatever_the_source() {
    let mut pa = params(AudioCodec::Pcmu, phone_a());
    pa.latch = false;
    let mut h = Harness::bridged(pa, params(AudioCodec::Pcmu, phone_b()));
    let mut p = rtp(0, 1, 160, 0xAAAA, &[0; 160]);
    assert!(h.send(0, PORT_A, nat_a(), &mut p).is_some());
    assert_eq!(h.engine.leg_destination(A), Some(phone_a()));
}

#[test]
fn pcmu_is_transcoded_to_pcma_and_back_with_the_g711_tables() {
    let mut h = Harness::bridged(
        params(AudioCodec::Pcmu, phone_a()),
        params(AudioCodec::Pcma, phone_b()),
    );
    let all: Vec<u8> = (0..=255u8).collect();
    let mut p = rtp(0, 1, 160, 0xAAAA, &all);
    h.send(0, PORT_A, phone_a(), &mut p).unwrap();
    assert_eq!(fields(&p).0, 8);
    let expected: Vec<u8> = all.iter().map(|&c| ULAW_TO_ALAW[usize::from(c)]).collect();
    assert_eq!(payload(&p), expected);

    let mut q = rtp(8, 1, 160, 0xBBBB, &all);
    h.send(1, PORT_B, phone_b(), &mut q).unwrap();
    assert_eq!(fields(&q).0, 0);
    let expected: Vec<u8> = all.iter().map(|&c| ALAW_TO_ULAW[usize::from(c)]).collect();
    assert_eq!(payload(&q), expected);
}

#[test]
fn padding_is_left_alone_when_the_payload_is_transcoded() {
    let mut h = Harness::bridged(
        params(AudioCodec::Pcmu, phone_a()),
        params(AudioCodec::Pcma, phone_b()),
    );
    let mut builder = RtpPacketBuilder::new(0, 1, 160, Ssrc(0xAAAA), &[0xFF; 160]);
    builder.padding = 4;
    let mut p = vec![0u8; builder.encoded_len()];
    builder.write_into(&mut p).unwrap();
    let t = h.send(0, PORT_A, phone_a(), &mut p).unwrap();
    assert_eq!(t.len, 176);
    assert_eq!(payload(&p), vec![ULAW_TO_ALAW[0xFF]; 160]);
    assert_eq!(&p[172..], &[0, 0, 0, 4]);
}

#[test]
fn payload_type_numbers_are_mapped_between_legs() {
    let mut pb = params(AudioCodec::Pcmu, phone_b());
    pb.payload_type = 112;
    let mut h = Harness::bridged(params(AudioCodec::Pcmu, phone_a()), pb);
    let mut p = rtp(0, 1, 160, 0xAAAA, &[0x55; 160]);
    h.send(0, PORT_A, phone_a(), &mut p).unwrap();
    assert_eq!(fields(&p).0, 112);
    assert_eq!(payload(&p), vec![0x55; 160]);
    let mut q = rtp(112, 1, 160, 0xBBBB, &[0x66; 160]);
    h.send(1, PORT_B, phone_b(), &mut q).unwrap();
    assert_eq!(fields(&q).0, 0);
    // PT 0 is not what B negotiated: dropped.
    let mut wrong = rtp(0, 2, 320, 0xBBBB, &[0x66; 160]);
    assert_eq!(h.send(2, PORT_B, phone_b(), &mut wrong), None);
    assert_eq!(h.engine.counters().unknown_payload_type, 1);
}

fn dtmf_legs(b_event_pt: Option<u8>) -> Harness {
    let mut pa = params(AudioCodec::Pcmu, phone_a());
    pa.telephone_event_pt = Some(101);
    let mut pb = params(AudioCodec::Pcma, phone_b());
    pb.telephone_event_pt = b_event_pt;
    Harness::bridged(pa, pb)
}

#[test]
fn telephone_events_are_carried_with_mapped_pt_and_reported_once() {
    let mut h = dtmf_legs(Some(96));
    let generator = DtmfGenerator::new('5', 800, 160).unwrap();
    let mut forwarded = Vec::new();
    for (i, generated) in generator.enumerate() {
        let body = generated.event.to_bytes();
        let mut p = rtp(101, 10 + i as u16, 48_000, 0xAAAA, &body);
        if let Some(t) = h.send(20 * i as u64, PORT_A, phone_a(), &mut p) {
            assert_eq!(t.destination, phone_b());
            // Not transcoded: the event payload is carried unchanged.
            assert_eq!(payload(&p), body.to_vec());
            forwarded.push(fields(&p).0);
        }
    }
    assert!(forwarded.len() >= 5, "{forwarded:?}");
    assert!(forwarded.iter().all(|&pt| pt == 96));
    let digits: Vec<_> = h
        .events()
        .into_iter()
        .filter(|e| matches!(e, MediaEvent::Dtmf { .. }))
        .collect();
    assert_eq!(
        digits,
        vec![MediaEvent::Dtmf {
            session: S,
            leg: A,
            digit: '5',
            duration: Duration::from_millis(100),
            source: carillon_mediactl::DtmfSource::Rfc4733,
        }]
    );
}

#[test]
fn telephone_events_are_dropped_towards_a_leg_without_rfc4733_but_still_reported() {
    let mut h = dtmf_legs(None);
    let generator = DtmfGenerator::new('#', 480, 160).unwrap();
    for (i, generated) in generator.enumerate() {
        let mut p = rtp(101, i as u16, 8000, 0xAAAA, &generated.event.to_bytes());
        assert_eq!(h.send(20 * i as u64, PORT_A, phone_a(), &mut p), None);
    }
    assert!(h.engine.counters().event_not_negotiated > 0);
    assert!(h
        .events()
        .iter()
        .any(|e| matches!(e, MediaEvent::Dtmf { digit: '#', .. })));
}

#[test]
fn a_dtmf_press_whose_end_packets_are_lost_is_reported_by_the_timer() {
    let mut h = dtmf_legs(Some(101));
    let generator = DtmfGenerator::new('7', 1600, 160).unwrap();
    for (i, generated) in generator.take(3).enumerate() {
        let mut p = rtp(101, i as u16, 8000, 0xAAAA, &generated.event.to_bytes());
        h.send(20 * i as u64, PORT_A, phone_a(), &mut p).unwrap();
    }
    assert!(h.events().is_empty());
    let deadline = h.engine.poll_timeout().unwrap();
    assert!(deadline < h.at(1000));
    let events = h.run_until(h.at(1000));
    assert!(matches!(
        events.as_slice(),
        [MediaEvent::Dtmf {
            leg: A,
            digit: '7',
            ..
        }]
    ));
}

#[test]
fn nothing_is_forwarded_towards_a_leg_we_do_not_send_to() {
    let mut h = Harness::pcmu_pair();
    let mut pb = params(AudioCodec::Pcmu, phone_b());
    pb.send = false; // B put us on hold (a=sendonly from B, we answer recvonly)
    h.command(MediaCommand::UpdateLeg {
        session: S,
        leg: B,
        params: pb,
    });
    let mut p = rtp(0, 1, 160, 0xAAAA, &[0; 160]);
    assert_eq!(h.send(0, PORT_A, phone_a(), &mut p), None);
    assert_eq!(h.engine.counters().not_sending, 1);
    // B's music on hold still reaches A.
    let mut q = rtp(0, 1, 160, 0xBBBB, &[0; 160]);
    assert!(h.send(1, PORT_B, phone_b(), &mut q).is_some());
}

#[test]
fn nothing_is_accepted_from_a_leg_we_do_not_receive_from() {
    let mut h = Harness::pcmu_pair();
    let mut pa = params(AudioCodec::Pcmu, phone_a());
    pa.send = false;
    pa.recv = false; // inactive
    h.command(MediaCommand::UpdateLeg {
        session: S,
        leg: A,
        params: pa,
    });
    let mut p = rtp(0, 1, 160, 0xAAAA, &[0; 160]);
    assert_eq!(h.send(0, PORT_A, phone_a(), &mut p), None);
    assert_eq!(h.engine.counters().not_receiving, 1);
    assert_eq!(h.engine.leg_stats(A).unwrap().packets_in, 1);
    let mut q = rtp(0, 1, 160, 0xBBBB, &[0; 160]);
    assert_eq!(h.send(1, PORT_B, phone_b(), &mut q), None);
}

#[test]
fn unbridged_legs_relay_nothing() {
    let mut h = Harness::pcmu_pair();
    h.command(MediaCommand::Unbridge {
        session: S,
        a: B,
        b: A,
    });
    let mut p = rtp(0, 1, 160, 0xAAAA, &[0; 160]);
    assert_eq!(h.send(0, PORT_A, phone_a(), &mut p), None);
    assert_eq!(h.engine.counters().unbridged, 1);
    assert_eq!(
        h.engine.handle_command(
            h.t0,
            MediaCommand::Unbridge {
                session: S,
                a: A,
                b: B
            }
        ),
        Err(CommandError::NotBridged { a: A, b: B })
    );
}

#[test]
fn bridging_a_leg_elsewhere_detaches_its_old_peer_and_keeps_its_stream_continuous() {
    let mut h = Harness::pcmu_pair();
    h.open(C, PORT_C, params(AudioCodec::Pcma, phone_b()));
    let mut p = rtp(0, 1, 160, 0xBBBB, &[0; 160]);
    h.send(0, PORT_B, phone_b(), &mut p).unwrap();
    let before = fields(&p);
    // Transfer: A now talks to C.
    h.command(MediaCommand::Bridge {
        session: S,
        a: A,
        b: C,
    });
    let mut q = rtp(8, 5000, 77_777, 0xCCCC, &[0xD5; 160]);
    let t = h.send(20, PORT_C, phone_b(), &mut q).unwrap();
    assert_eq!(t.local_port, PORT_A);
    let after = fields(&q);
    assert_eq!(after.3, before.3);
    assert_eq!(after.1, before.1.wrapping_add(1));
    assert_eq!(after.0, 0);
    let mut r = rtp(0, 2, 320, 0xBBBB, &[0; 160]);
    assert_eq!(h.send(40, PORT_B, phone_b(), &mut r), None);
}

#[test]
fn rtp_timeout_never_fires_while_packets_flow() {
    let mut h = Harness::pcmu_pair();
    for i in 0..3000u16 {
        let ms = u64::from(i) * 20;
        let mut p = rtp(0, i, u32::from(i) * 160, 0xAAAA, &[0; 160]);
        h.send(ms, PORT_A, phone_a(), &mut p);
        let mut q = rtp(0, i, u32::from(i) * 160, 0xBBBB, &[0; 160]);
        h.send(ms + 10, PORT_B, phone_b(), &mut q);
        let events = h.run_until(h.at(ms + 10));
        assert!(timeouts(&events).is_empty(), "at {ms} ms: {events:?}");
    }
}

#[test]
fn rtp_timeout_fires_exactly_once_after_silence_and_rearms_on_rtp() {
    let mut h = Harness::pcmu_pair();
    let mut p = rtp(0, 1, 160, 0xAAAA, &[0; 160]);
    h.send(1000, PORT_A, phone_a(), &mut p);
    // B never sent anything: its timer runs from the open (t0).
    assert!(timeouts(&h.run_until(h.at(29_999))).is_empty());
    assert_eq!(timeouts(&h.run_until(h.at(30_000))), vec![B]);
    assert!(timeouts(&h.run_until(h.at(30_999))).is_empty());
    assert_eq!(timeouts(&h.run_until(h.at(31_000))), vec![A]);
    assert!(timeouts(&h.run_until(h.at(1_000_000))).is_empty());
    assert_eq!(h.engine.poll_timeout(), None);
    // RTP from A re-arms A's timer only.
    let mut p = rtp(0, 2, 320, 0xAAAA, &[0; 160]);
    h.send(1_000_000, PORT_A, phone_a(), &mut p);
    assert_eq!(timeouts(&h.run_until(h.at(2_000_000))), vec![A]);
}

#[test]
fn a_leg_on_hold_times_out_after_the_hold_timeout_instead() {
    let mut h = Harness::pcmu_pair();
    let mut pb = params(AudioCodec::Pcmu, phone_b());
    pb.recv = false;
    h.command(MediaCommand::UpdateLeg {
        session: S,
        leg: B,
        params: pb,
    });
    assert_eq!(timeouts(&h.run_until(h.at(30_000))), vec![A]);
    assert!(timeouts(&h.run_until(h.at(299_999))).is_empty());
    assert_eq!(timeouts(&h.run_until(h.at(300_000))), vec![B]);
}

#[test]
fn disabled_timeouts_never_fire() {
    let mut h = Harness::with_config(MediaConfig {
        rtp_timeout: None,
        hold_timeout: None,
        ..MediaConfig::default()
    });
    h.open(A, PORT_A, params(AudioCodec::Pcmu, phone_a()));
    assert_eq!(h.engine.poll_timeout(), None);
    h.engine.handle_timeout(h.at(10_000_000));
    assert!(h.events().is_empty());
}

#[test]
fn closing_the_session_reports_stats_and_releases_everything() {
    let mut h = Harness::pcmu_pair();
    for i in 0..5u16 {
        let mut p = rtp(0, i, u32::from(i) * 160, 0xAAAA, &[0; 160]);
        h.send(u64::from(i) * 20, PORT_A, phone_a(), &mut p)
            .unwrap();
    }
    h.command(MediaCommand::CloseSession { session: S });
    let mut closed = h.events();
    closed.sort_by_key(|e| match e {
        MediaEvent::LegClosed { leg, .. } => leg.0,
        _ => u64::MAX,
    });
    let stats_a = LegStats {
        packets_in: 5,
        bytes_in: 5 * 172,
        ..LegStats::default()
    };
    let stats_b = LegStats {
        packets_out: 5,
        bytes_out: 5 * 172,
        ..LegStats::default()
    };
    assert_eq!(
        closed,
        vec![
            MediaEvent::LegClosed {
                session: S,
                leg: A,
                stats: stats_a
            },
            MediaEvent::LegClosed {
                session: S,
                leg: B,
                stats: stats_b
            },
        ]
    );
    let mut released: Vec<_> = std::iter::from_fn(|| h.engine.poll_socket_request()).collect();
    released.sort_by_key(|r| match r {
        SocketRequest::Release { rtp_port, .. } | SocketRequest::Bind { rtp_port, .. } => *rtp_port,
    });
    assert_eq!(
        released,
        vec![
            SocketRequest::Release {
                leg: A,
                rtp_port: PORT_A
            },
            SocketRequest::Release {
                leg: B,
                rtp_port: PORT_B
            },
        ]
    );
    assert_eq!(h.engine.leg_count(), 0);
    assert_eq!(h.engine.session_count(), 0);
    assert_eq!(h.engine.reserved_port_count(), 0);
    let mut late = rtp(0, 9, 9, 0xAAAA, &[0; 160]);
    assert_eq!(h.send(200, PORT_A, phone_a(), &mut late), None);
    assert_eq!(h.engine.counters().unknown_port, 1);
    // The ports can be used again.
    h.open(A, PORT_A, params(AudioCodec::Pcmu, phone_a()));
    assert_eq!(h.engine.reserved_port_count(), 2);
}

#[test]
fn closing_one_leg_unbridges_its_peer_and_keeps_the_session() {
    let mut h = Harness::pcmu_pair();
    h.command(MediaCommand::CloseLeg { session: S, leg: B });
    assert!(matches!(
        h.events().as_slice(),
        [MediaEvent::LegClosed { leg: B, .. }]
    ));
    assert_eq!(h.engine.session_count(), 1);
    assert_eq!(h.engine.leg_count(), 1);
    let mut p = rtp(0, 1, 160, 0xAAAA, &[0; 160]);
    assert_eq!(h.send(0, PORT_A, phone_a(), &mut p), None);
    assert_eq!(h.engine.counters().unbridged, 1);
}

#[test]
fn opening_a_port_that_is_in_use_fails_with_open_failed() {
    let mut h = Harness::new();
    h.open(A, PORT_A, params(AudioCodec::Pcmu, phone_a()));
    // PORT_A + 1 is A's RTCP port.
    let result = h.engine.handle_command(
        h.t0,
        MediaCommand::OpenLeg {
            session: S,
            leg: B,
            local_port: PORT_A + 1,
            params: params(AudioCodec::Pcmu, phone_b()),
        },
    );
    assert_eq!(result, Err(CommandError::PortInUse { port: PORT_A + 1 }));
    assert!(matches!(
        h.events().as_slice(),
        [MediaEvent::OpenFailed { leg: B, .. }]
    ));
    assert_eq!(h.engine.poll_socket_request(), None);
    assert_eq!(h.engine.leg_count(), 1);
    let dup = h.engine.handle_command(
        h.t0,
        MediaCommand::OpenLeg {
            session: S,
            leg: A,
            local_port: PORT_C,
            params: params(AudioCodec::Pcmu, phone_a()),
        },
    );
    assert_eq!(dup, Err(CommandError::LegExists { leg: A }));
}

#[test]
fn a_failed_bind_reports_open_failed_and_frees_the_ports() {
    let mut h = Harness::new();
    h.engine
        .handle_command(
            h.t0,
            MediaCommand::OpenLeg {
                session: S,
                leg: A,
                local_port: PORT_A,
                params: params(AudioCodec::Pcmu, phone_a()),
            },
        )
        .unwrap();
    assert_eq!(h.engine.reserved_port_count(), 2);
    let result = h
        .engine
        .handle_bound(h.t0, A, Err("address in use".to_string()));
    assert!(matches!(result, Err(CommandError::BindFailed { .. })));
    assert_eq!(
        h.events(),
        vec![MediaEvent::OpenFailed {
            session: S,
            leg: A,
            reason: "address in use".to_string()
        }]
    );
    assert_eq!(h.engine.reserved_port_count(), 0);
    assert_eq!(h.engine.session_count(), 0);
}

#[test]
fn commands_naming_a_leg_of_another_session_are_rejected() {
    let mut h = Harness::pcmu_pair();
    let other = SessionId(2);
    assert_eq!(
        h.engine.handle_command(
            h.t0,
            MediaCommand::CloseLeg {
                session: other,
                leg: A
            }
        ),
        Err(CommandError::WrongSession {
            session: other,
            leg: A
        })
    );
    assert_eq!(
        h.engine
            .handle_command(h.t0, MediaCommand::CloseSession { session: other }),
        Err(CommandError::UnknownSession { session: other })
    );
    assert_eq!(h.engine.leg_count(), 2);
}

#[test]
fn rtcp_is_relayed_with_ssrcs_matching_the_rtp_rewrite() {
    let mut h = Harness::pcmu_pair();
    let mut p = rtp(0, 1, 160, 0xAAAA, &[0; 160]);
    h.send(0, PORT_A, phone_a(), &mut p).unwrap();
    let mut q = rtp(0, 1, 160, 0xBBBB, &[0; 160]);
    h.send(0, PORT_B, phone_b(), &mut q).unwrap();
    let out_a = h.engine.leg_output_ssrc(A).unwrap();
    let out_b = h.engine.leg_output_ssrc(B).unwrap();

    // A reports on the stream it receives from us (SSRC out_a).
    let block = ReportBlock {
        ssrc: out_a,
        fraction_lost: 3,
        cumulative_lost: 4,
        extended_highest_seq: 1,
        jitter: 5,
        last_sr: 0,
        delay_since_last_sr: 0,
    };
    let rr = ReceiverReport {
        ssrc: Ssrc(0xAAAA),
        reports: &[block],
    };
    let mut buf = vec![0u8; rr.encoded_len()];
    rr.write_into(&mut buf).unwrap();
    let from = SocketAddr::new(phone_a().ip(), phone_a().port() + 1);
    let t = h.send(10, PORT_A + 1, from, &mut buf).unwrap();
    assert_eq!(t.local_port, PORT_B + 1);
    assert_eq!(
        t.destination,
        SocketAddr::new(phone_b().ip(), phone_b().port() + 1)
    );
    let (packet, _) = RtcpPacket::parse(&buf).unwrap();
    // B knows A's stream as out_b, and the report is about B's own SSRC.
    assert_eq!(packet.sender_ssrc(), Some(out_b));
    let blocks: Vec<_> = packet.report_blocks().collect();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].ssrc, Ssrc(0xBBBB));
    assert_eq!(blocks[0].cumulative_lost, 4);
    assert_eq!(h.engine.counters().rtcp_forwarded, 1);
}

#[test]
fn malformed_datagrams_and_unknown_ports_are_counted_and_dropped() {
    let mut h = Harness::pcmu_pair();
    let mut junk = [0x12u8; 40];
    assert_eq!(h.send(0, PORT_A, phone_a(), &mut junk), None);
    let mut short = [0x80u8, 0, 1];
    assert_eq!(h.send(0, PORT_A, phone_a(), &mut short), None);
    let mut rtcp_on_rtp = [0x80u8, 200, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(h.send(0, PORT_A, phone_a(), &mut rtcp_on_rtp), None);
    let mut bad_rtcp = [0x80u8, 201, 0, 50, 0, 0, 0, 1];
    assert_eq!(h.send(0, PORT_A + 1, phone_a(), &mut bad_rtcp), None);
    assert_eq!(h.engine.counters().malformed, 4);
    let mut p = rtp(0, 1, 160, 0xAAAA, &[0; 160]);
    assert_eq!(h.send(0, 40000, phone_a(), &mut p), None);
    assert_eq!(h.engine.counters().unknown_port, 1);
    assert_eq!(h.engine.leg_stats(A).unwrap().packets_in, 0);
    // Nothing latched from garbage.
    assert_eq!(h.engine.leg_destination(A), Some(phone_a()));
}

#[test]
fn a_remote_change_in_an_update_forgets_the_latched_address() {
    let mut h = Harness::pcmu_pair();
    let mut p = rtp(0, 1, 160, 0xAAAA, &[0; 160]);
    h.send(0, PORT_A, nat_a(), &mut p).unwrap();
    assert_eq!(h.engine.leg_destination(A), Some(nat_a()));
    let moved = SocketAddr::from(([192, 0, 2, 50], 7000));
    h.command(MediaCommand::UpdateLeg {
        session: S,
        leg: A,
        params: params(AudioCodec::Pcmu, moved),
    });
    assert_eq!(h.engine.leg_destination(A), Some(moved));
}

#[test]
fn the_loss_seen_on_a_leg_is_reported_in_its_stats() {
    let mut h = Harness::pcmu_pair();
    for seq in [1u16, 2, 5, 6] {
        let mut p = rtp(0, seq, u32::from(seq) * 160, 0xAAAA, &[0; 160]);
        h.send(u64::from(seq) * 20, PORT_A, phone_a(), &mut p)
            .unwrap();
    }
    assert_eq!(h.engine.leg_stats(A).unwrap().lost, 2);
}

// ----- kernel fast path ----------------------------------------------------

fn offload_pair(pa: LegParams, pb: LegParams) -> Harness {
    let h = Harness::with_config(MediaConfig {
        rng_seed: 42,
        kernel_offload: true,
        ..MediaConfig::default()
    });
    Harness::bridged_in(h, pa, pb)
}

fn offload_requests(h: &mut Harness) -> Vec<OffloadRequest> {
    std::iter::from_fn(|| h.engine.poll_offload_request()).collect()
}

fn v4(addr: SocketAddr) -> SocketAddrV4 {
    match addr {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => panic!("IPv4 expected"),
    }
}

fn installed(requests: &[OffloadRequest]) -> Vec<OffloadFlow> {
    requests
        .iter()
        .filter_map(|r| match r {
            OffloadRequest::Install(f) => Some(*f),
            OffloadRequest::Remove { .. } => None,
        })
        .collect()
}

fn removed(requests: &[OffloadRequest]) -> Vec<u16> {
    let mut ports: Vec<u16> = requests
        .iter()
        .filter_map(|r| match r {
            OffloadRequest::Remove { local_port } => Some(*local_port),
            OffloadRequest::Install(_) => None,
        })
        .collect();
    ports.sort_unstable();
    ports
}

/// Three packets each way, A in µ-law, B with payload type `b_pt`.
fn talk(h: &mut Harness, b_pt: u8) {
    for i in 0..3u16 {
        let mut p = rtp(0, i, u32::from(i) * 160, 0xAAAA, &[0x11; 160]);
        h.send(u64::from(i) * 20, PORT_A, phone_a(), &mut p)
            .unwrap();
        let mut q = rtp(b_pt, i, u32::from(i) * 160, 0xBBBB, &[0x22; 160]);
        h.send(u64::from(i) * 20 + 1, PORT_B, phone_b(), &mut q)
            .unwrap();
    }
}

/// Both legs latched: A's flow and B's flow are installed.
fn offloaded_pcmu_pair() -> Harness {
    let mut h = offload_pair(
        params(AudioCodec::Pcmu, phone_a()),
        params(AudioCodec::Pcmu, phone_b()),
    );
    let mut p = rtp(0, 100, 16000, 0xAAAA, &[0x11; 160]);
    h.send(0, PORT_A, phone_a(), &mut p).unwrap();
    let mut q = rtp(0, 7, 999, 0xBBBB, &[0x22; 160]);
    h.send(1, PORT_B, phone_b(), &mut q).unwrap();
    let mut p = rtp(0, 101, 16160, 0xAAAA, &[0x11; 160]);
    h.send(20, PORT_A, phone_a(), &mut p).unwrap();
    assert_eq!(installed(&offload_requests(&mut h)).len(), 2);
    h
}

#[test]
fn a_flow_goes_to_the_kernel_once_its_destination_is_latched_with_the_rewriter_offsets() {
    let mut h = offload_pair(
        params(AudioCodec::Pcmu, phone_a()),
        params(AudioCodec::Pcmu, phone_b()),
    );
    // B has not sent yet: its destination is only the SDP address.
    let mut p = rtp(0, 100, 16000, 0xAAAA, &[0x11; 160]);
    h.send(0, PORT_A, phone_a(), &mut p).unwrap();
    assert_eq!(offload_requests(&mut h), vec![]);

    // B sends: B → A is installed (A is latched).
    let mut q = rtp(0, 7, 999, 0xBBBB, &[0x22; 160]);
    h.send(1, PORT_B, phone_b(), &mut q).unwrap();
    let (_, out_seq, out_ts, out_ssrc, _) = fields(&q);
    let flows = installed(&offload_requests(&mut h));
    assert_eq!(
        flows,
        vec![OffloadFlow {
            remote: v4(phone_b()),
            local: SocketAddrV4::new(LOCAL.into(), PORT_B),
            destination: v4(phone_a()),
            source_port: PORT_A,
            ssrc_in: 0xBBBB,
            ssrc_out: out_ssrc.0,
            seq_delta: out_seq.wrapping_sub(7),
            ts_delta: out_ts.wrapping_sub(999),
            pt_in: 0,
            pt_out: 0,
            local_destination: false,
            transcode: G711Map::None,
        }]
    );

    // A's next packet: A → B is installed; once, not per packet.
    let mut p = rtp(0, 101, 16160, 0xAAAA, &[0x11; 160]);
    h.send(20, PORT_A, phone_a(), &mut p).unwrap();
    let flows = installed(&offload_requests(&mut h));
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0].local.port(), PORT_A);
    assert_eq!(flows[0].destination, v4(phone_b()));
    let mut p = rtp(0, 102, 16320, 0xAAAA, &[0x11; 160]);
    h.send(40, PORT_A, phone_a(), &mut p).unwrap();
    assert_eq!(offload_requests(&mut h), vec![]);
}

#[test]
fn transcoded_flows_carry_their_g711_map_and_telephone_events_stay_in_userspace() {
    let mut h = offload_pair(
        params(AudioCodec::Pcmu, phone_a()),
        params(AudioCodec::Pcma, phone_b()),
    );
    talk(&mut h, 8);
    let flows = installed(&offload_requests(&mut h));
    let map_of = |port: u16| {
        flows
            .iter()
            .find(|f| f.local.port() == port)
            .map(|f| (f.pt_in, f.pt_out, f.transcode))
    };
    assert_eq!(map_of(PORT_A), Some((0, 8, G711Map::UlawToAlaw)));
    assert_eq!(map_of(PORT_B), Some((8, 0, G711Map::AlawToUlaw)));

    let mut pa = params(AudioCodec::Pcmu, phone_a());
    pa.telephone_event_pt = Some(101);
    let mut pb = params(AudioCodec::Pcmu, phone_b());
    pb.telephone_event_pt = Some(101);
    let mut h = offload_pair(pa, pb);
    let mut q = rtp(0, 1, 160, 0xBBBB, &[0x22; 160]);
    h.send(0, PORT_B, phone_b(), &mut q).unwrap();
    let mut e = rtp(101, 1, 160, 0xAAAA, &[1, 0x0a, 0, 160]);
    h.send(1, PORT_A, phone_a(), &mut e).unwrap();
    assert_eq!(installed(&offload_requests(&mut h)), vec![]);
}

#[test]
fn without_the_switch_nothing_is_offloaded() {
    let mut h = Harness::pcmu_pair();
    talk(&mut h, 0);
    assert_eq!(offload_requests(&mut h), vec![]);
}

#[test]
fn an_update_of_either_leg_removes_both_flows() {
    let mut h = offloaded_pcmu_pair();
    let mut pb = params(AudioCodec::Pcmu, phone_b());
    pb.send = false; // hold
    h.command(MediaCommand::UpdateLeg {
        session: S,
        leg: B,
        params: pb,
    });
    assert_eq!(removed(&offload_requests(&mut h)), vec![PORT_A, PORT_B]);
    // Nothing is installed again while B is on hold.
    let mut p = rtp(0, 103, 16480, 0xAAAA, &[0x11; 160]);
    assert_eq!(h.send(60, PORT_A, phone_a(), &mut p), None);
    assert_eq!(offload_requests(&mut h), vec![]);
}

#[test]
fn a_relatch_removes_the_flows_from_and_towards_the_old_address() {
    let mut h = offloaded_pcmu_pair();
    let mut last = None;
    for i in 0..3u16 {
        let mut p = rtp(0, 200 + i, 32000 + u32::from(i) * 160, 0xAAAA, &[0; 160]);
        last = h.send(100 + u64::from(i) * 20, PORT_A, nat_a(), &mut p);
    }
    assert!(last.is_some(), "the third packet moves the latch");
    let requests = offload_requests(&mut h);
    assert_eq!(removed(&requests), vec![PORT_A, PORT_B]);
    // The relatching packet itself is relayed and A's flow comes back from the new address.
    let flows = installed(&requests);
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0].remote, v4(nat_a()));
}

#[test]
fn closing_or_rebridging_removes_the_flows() {
    let mut h = offloaded_pcmu_pair();
    h.command(MediaCommand::CloseSession { session: S });
    assert_eq!(removed(&offload_requests(&mut h)), vec![PORT_A, PORT_B]);

    let mut h = offloaded_pcmu_pair();
    h.open(C, PORT_C, params(AudioCodec::Pcmu, phone_b()));
    h.command(MediaCommand::Bridge {
        session: S,
        a: A,
        b: C,
    });
    assert_eq!(removed(&offload_requests(&mut h)), vec![PORT_A, PORT_B]);
}

#[test]
fn kernel_progress_keeps_the_call_alive_counts_and_continues_the_sequence() {
    let mut h = offloaded_pcmu_pair();
    let before_a = h.engine.leg_stats(A).unwrap();
    let before_b = h.engine.leg_stats(B).unwrap();
    // 25 s of audio from A forwarded by the kernel, reported every second.
    let out_b = h.engine.leg_output_ssrc(B).unwrap();
    for s in 1..=25u64 {
        let progress = OffloadProgress {
            packets: s * 50,
            bytes: s * 50 * 172,
            last_seq: (101 + s * 50) as u16,
            last_timestamp: 16160 + (s * 50 * 160) as u32,
        };
        h.engine
            .handle_offload_progress(h.at(s * 1000), PORT_A, progress);
    }
    let a = h.engine.leg_stats(A).unwrap();
    let b = h.engine.leg_stats(B).unwrap();
    assert_eq!(a.packets_in - before_a.packets_in, 1250);
    assert_eq!(a.packets_in_kernel, 1250);
    assert_eq!(a.lost, 0, "the kernel's packets count as received");
    assert_eq!(h.engine.offloaded_ports(S), vec![PORT_A, PORT_B]);
    assert_eq!(a.bytes_in - before_a.bytes_in, 1250 * 172);
    assert_eq!(b.packets_out - before_b.packets_out, 1250);
    // A sent nothing to userspace for 25 s, yet only B (silent) times out at 30 s.
    let events = h.run_until(h.at(31_000));
    assert_eq!(timeouts(&events), vec![B]);
    // A new source from A continues after the last packet the kernel sent.
    let mut p = rtp(0, 9, 5, 0xCCCC, &[0; 160]);
    h.send(25_020, PORT_A, phone_a(), &mut p).unwrap();
    let (_, seq, _, ssrc, marker) = fields(&p);
    assert_eq!(
        (ssrc, seq, marker),
        (out_b, (101 + 25 * 50 + 1) as u16, true)
    );
    // ... and reinstalls A's flow for the new SSRC.
    let flows = installed(&offload_requests(&mut h));
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0].ssrc_in, 0xCCCC);
}

#[test]
fn leg_opened_is_not_reported_when_the_switch_does_not_want_it() {
    let mut h = Harness::with_config(MediaConfig {
        report_opened: false,
        ..MediaConfig::default()
    });
    h.open_and_bind(A, PORT_A, params(AudioCodec::Pcmu, phone_a()));
    assert_eq!(h.engine.poll_event(), None);
    let engine = &mut h.engine;
    let now = h.t0;
    // A failure is still reported.
    engine
        .handle_command(
            now,
            MediaCommand::OpenLeg {
                session: S,
                leg: B,
                local_port: PORT_A,
                params: params(AudioCodec::Pcmu, phone_b()),
            },
        )
        .unwrap_err();
    assert!(matches!(
        engine.poll_event(),
        Some(MediaEvent::OpenFailed { leg: B, .. })
    ));
}
