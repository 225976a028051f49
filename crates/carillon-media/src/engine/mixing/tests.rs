//! Mixer tests through the engine, with virtual time (a fixed `Instant`
//! base plus offsets): who hears whom for each role, codecs, saturation,
//! late frames, leaving, DTMF and the kernel rule.

use super::*;
use crate::offload::OffloadRequest;
use carillon_codec::Codec;
use carillon_mediactl::{AudioCodec, Speak};
use carillon_rtp::dtmf::DtmfGenerator;
use carillon_rtp::RtpPacketBuilder;
use std::collections::HashMap as Map;
use std::time::Duration;

const S: SessionId = SessionId(1);
const M: MixId = MixId(7);
const A: LegId = LegId(10);
const B: LegId = LegId(11);
const C: LegId = LegId(12);
const D: LegId = LegId(13);
const LOCAL: [u8; 4] = [203, 0, 113, 1];

fn port(leg: LegId) -> u16 {
    30000 + 2 * (leg.0 as u16 - 10)
}

fn phone(leg: LegId) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, leg.0 as u8], 5000 + leg.0 as u16))
}

fn params(leg: LegId, codec: AudioCodec, ptime_ms: u64) -> LegParams {
    LegParams {
        codec,
        payload_type: match codec {
            AudioCodec::Pcmu => 0,
            AudioCodec::Pcma => 8,
        },
        telephone_event_pt: Some(101),
        ptime: Duration::from_millis(ptime_ms),
        remote: Some(phone(leg)),
        latch: true,
        send: true,
        recv: true,
    }
}

fn codec(c: AudioCodec) -> Codec {
    crate::leg::codec_of(c)
}

fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let builder = RtpPacketBuilder::new(pt, seq, ts, Ssrc(ssrc), payload);
    let mut buf = vec![0u8; builder.encoded_len()];
    builder.write_into(&mut buf).unwrap();
    buf
}

/// One generated packet as the phone gets it.
#[derive(Debug, Clone)]
struct Got {
    seq: u16,
    ts: u32,
    ssrc: Ssrc,
    marker: bool,
    payload: Vec<u8>,
}

struct Harness {
    engine: MediaEngine,
    t0: Instant,
    codecs: Map<LegId, AudioCodec>,
    seq: Map<LegId, u16>,
}

impl Harness {
    fn new(kernel_offload: bool) -> Self {
        Harness {
            engine: MediaEngine::new(
                MediaConfig {
                    rng_seed: 42,
                    kernel_offload,
                    ..MediaConfig::default()
                },
                IpAddr::from(LOCAL),
            ),
            t0: Instant::now(),
            codecs: Map::new(),
            seq: Map::new(),
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn open(&mut self, leg: LegId, c: AudioCodec, ptime_ms: u64) {
        let now = self.t0;
        self.engine
            .handle_command(
                now,
                MediaCommand::OpenLeg {
                    session: S,
                    leg,
                    local_port: port(leg),
                    params: params(leg, c, ptime_ms),
                },
            )
            .unwrap();
        let _ = self.engine.poll_socket_request();
        self.engine
            .handle_bound(now, leg, Ok(SocketAddr::from((LOCAL, port(leg)))))
            .unwrap();
        while self.engine.poll_event().is_some() {}
        self.codecs.insert(leg, c);
    }

    fn cmd(&mut self, ms: u64, command: MediaCommand) -> Result<(), CommandError> {
        let now = self.at(ms);
        self.engine.handle_command(now, command)
    }

    /// A mix `M` of the given members, all `normal`, at t0.
    fn mix(members: &[(LegId, AudioCodec)]) -> Self {
        let mut h = Harness::new(false);
        for &(leg, c) in members {
            h.open(leg, c, 20);
        }
        h.cmd(0, MediaCommand::CreateMix { session: S, mix: M })
            .unwrap();
        for &(leg, _) in members {
            h.add(0, leg, MixRole::normal());
        }
        h
    }

    fn add(&mut self, ms: u64, leg: LegId, role: MixRole) {
        self.cmd(
            ms,
            MediaCommand::AddToMix {
                session: S,
                mix: M,
                leg,
                role,
            },
        )
        .unwrap();
    }

    /// The phone of `leg` sends `samples` (encoded in its codec) at `ms`;
    /// returns what the engine relayed, if anything.
    fn speak(&mut self, ms: u64, leg: LegId, samples: &[i16]) -> Option<Transmit> {
        let c = codec(self.codecs[&leg]);
        let payload: Vec<u8> = samples.iter().map(|&s| c.encode_sample(s)).collect();
        let pt = match self.codecs[&leg] {
            AudioCodec::Pcmu => 0,
            AudioCodec::Pcma => 8,
        };
        let seq = self.seq.entry(leg).or_insert(0);
        *seq += 1;
        let mut p = rtp(pt, *seq, u32::from(*seq) * 160, leg.0 as u32, &payload);
        let now = self.at(ms);
        self.engine
            .handle_packet(now, port(leg), phone(leg), &mut p)
    }

    /// A constant level for 20 ms from `leg`.
    fn level(&mut self, ms: u64, leg: LegId, level: i16) {
        assert!(self.speak(ms, leg, &[level; 160]).is_none(), "not relayed");
    }

    /// Runs the timer at `ms` and returns the packets per receiving leg.
    fn tick(&mut self, ms: u64) -> Map<LegId, Vec<Got>> {
        let now = self.at(ms);
        self.engine.handle_timeout(now);
        let mut got: Map<LegId, Vec<Got>> = Map::new();
        let by_port: Map<u16, LegId> = self.codecs.keys().map(|&l| (port(l), l)).collect();
        self.engine.drain_generated(|g, bytes| {
            let leg = by_port[&g.local_port];
            assert_eq!(g.destination, phone(leg));
            let p = carillon_rtp::RtpPacket::parse(bytes).unwrap();
            got.entry(leg).or_default().push(Got {
                seq: p.sequence_number(),
                ts: p.timestamp(),
                ssrc: p.ssrc(),
                marker: p.marker(),
                payload: p.payload().to_vec(),
            });
        });
        got
    }

    /// The samples `leg` heard in `got`, decoded in its codec.
    fn heard(&self, got: &Map<LegId, Vec<Got>>, leg: LegId) -> Vec<i16> {
        let c = codec(self.codecs[&leg]);
        got.get(&leg)
            .into_iter()
            .flatten()
            .flat_map(|g| g.payload.iter().map(|&b| c.decode_sample(b)))
            .collect()
    }

    /// What a level sent by `leg` sounds like once through its codec.
    fn through(&self, leg: LegId, level: i16) -> i32 {
        let c = codec(self.codecs[&leg]);
        i32::from(c.decode_sample(c.encode_sample(level)))
    }

    /// What `to` hears for a sum of `sum` (saturated, its codec).
    fn expect(&self, to: LegId, sum: i32) -> i16 {
        let c = codec(self.codecs[&to]);
        let s = sum.clamp(-32768, 32767) as i16;
        c.decode_sample(c.encode_sample(s))
    }

    fn only(&self, heard: &[i16]) -> i16 {
        assert!(!heard.is_empty(), "heard nothing");
        assert!(
            heard.iter().all(|&s| s == heard[0]),
            "not one level: {heard:?}"
        );
        heard[0]
    }
}

const LA: i16 = 1000;
const LB: i16 = 2000;
const LC: i16 = 4000;

/// A, B and C each speak once before the round at 20 ms.
fn round_of_three(h: &mut Harness) -> Map<LegId, Vec<Got>> {
    h.level(5, A, LA);
    h.level(6, B, LB);
    h.level(7, C, LC);
    h.tick(20)
}

#[test]
fn each_of_three_members_hears_the_sum_of_the_two_others_and_not_itself() {
    let mut h = Harness::mix(&[
        (A, AudioCodec::Pcmu),
        (B, AudioCodec::Pcmu),
        (C, AudioCodec::Pcmu),
    ]);
    let got = round_of_three(&mut h);
    let (a, b, c) = (h.through(A, LA), h.through(B, LB), h.through(C, LC));
    assert_eq!(h.only(&h.heard(&got, A)), h.expect(A, b + c));
    assert_eq!(h.only(&h.heard(&got, B)), h.expect(B, a + c));
    assert_eq!(h.only(&h.heard(&got, C)), h.expect(C, a + b));
    for leg in [A, B, C] {
        assert_eq!(got[&leg].len(), 1, "one 20 ms packet each");
        assert!(got[&leg][0].marker, "the mix starts a new stream");
        assert_eq!(
            Some(got[&leg][0].ssrc),
            h.engine.leg_output_ssrc(leg),
            "through the leg's own output stream"
        );
    }
    assert_eq!(h.engine.counters().mixed, 3);
}

#[test]
fn a_pcma_member_hears_the_pcmu_members_in_pcma_and_they_hear_it() {
    let mut h = Harness::mix(&[
        (A, AudioCodec::Pcma),
        (B, AudioCodec::Pcmu),
        (C, AudioCodec::Pcmu),
    ]);
    let got = round_of_three(&mut h);
    let (a, b, c) = (h.through(A, LA), h.through(B, LB), h.through(C, LC));
    assert_eq!(h.only(&h.heard(&got, A)), h.expect(A, b + c));
    assert_eq!(h.only(&h.heard(&got, B)), h.expect(B, a + c));
    // A's payload really is A-law: decoding it as µ-law would differ.
    let raw = got[&A][0].payload[0];
    assert_eq!(raw, Codec::Pcma.encode_sample(h.expect(A, b + c)));
    assert_ne!(raw, Codec::Pcmu.encode_sample(h.expect(A, b + c)));
}

#[test]
fn loud_members_saturate_instead_of_wrapping() {
    let mut h = Harness::mix(&[
        (A, AudioCodec::Pcmu),
        (B, AudioCodec::Pcmu),
        (C, AudioCodec::Pcmu),
    ]);
    h.level(5, A, 30000);
    h.level(6, B, 30000);
    h.level(7, C, -30000);
    let got = h.tick(20);
    assert_eq!(h.only(&h.heard(&got, C)), h.expect(C, i32::from(i16::MAX)));
    assert!(h.only(&h.heard(&got, C)) > 30000, "not wrapped to negative");
}

#[test]
fn a_listener_hears_everyone_and_nobody_hears_it() {
    let mut h = Harness::mix(&[(A, AudioCodec::Pcmu), (B, AudioCodec::Pcmu)]);
    h.open(C, AudioCodec::Pcmu, 20);
    h.add(0, C, MixRole::listen());
    let got = round_of_three(&mut h);
    let (a, b) = (h.through(A, LA), h.through(B, LB));
    assert_eq!(h.only(&h.heard(&got, C)), h.expect(C, a + b));
    assert_eq!(h.only(&h.heard(&got, A)), h.expect(A, b));
    assert_eq!(h.only(&h.heard(&got, B)), h.expect(B, a));
}

#[test]
fn a_whisper_reaches_only_its_target_and_the_whisperer_hears_everyone() {
    // A = agent, B = caller, C = supervisor whispering to the agent.
    let mut h = Harness::mix(&[(A, AudioCodec::Pcmu), (B, AudioCodec::Pcmu)]);
    h.open(C, AudioCodec::Pcma, 20);
    h.add(0, C, MixRole::whisper(vec![A]));
    let got = round_of_three(&mut h);
    let (a, b, c) = (h.through(A, LA), h.through(B, LB), h.through(C, LC));
    assert_eq!(h.only(&h.heard(&got, A)), h.expect(A, b + c));
    assert_eq!(h.only(&h.heard(&got, B)), h.expect(B, a));
    assert_eq!(h.only(&h.heard(&got, C)), h.expect(C, a + b));
}

#[test]
fn switching_roles_goes_listen_whisper_barge_and_mute_silences_a_member() {
    let mut h = Harness::mix(&[(A, AudioCodec::Pcmu), (B, AudioCodec::Pcmu)]);
    h.open(C, AudioCodec::Pcmu, 20);
    h.add(0, C, MixRole::listen());
    let (a, b, c) = (h.through(A, LA), h.through(B, LB), h.through(C, LC));
    let mut at = 0;
    let mut round = |h: &mut Harness| {
        h.level(at + 5, A, LA);
        h.level(at + 6, B, LB);
        h.level(at + 7, C, LC);
        at += 20;
        h.tick(at)
    };
    let got = round(&mut h);
    assert_eq!(h.only(&h.heard(&got, B)), h.expect(B, a), "listen");
    let set = |h: &mut Harness, leg, role| {
        h.engine
            .handle_command(
                h.t0,
                MediaCommand::SetMixRole {
                    session: S,
                    mix: M,
                    leg,
                    role,
                },
            )
            .unwrap()
    };
    set(&mut h, C, MixRole::whisper(vec![A]));
    let got = round(&mut h);
    assert_eq!(h.only(&h.heard(&got, A)), h.expect(A, b + c), "whisper");
    assert_eq!(h.only(&h.heard(&got, B)), h.expect(B, a));
    set(&mut h, C, MixRole::normal());
    let got = round(&mut h);
    assert_eq!(h.only(&h.heard(&got, B)), h.expect(B, a + c), "barge");
    set(&mut h, A, MixRole::muted());
    let got = round(&mut h);
    assert_eq!(h.only(&h.heard(&got, B)), h.expect(B, c), "A muted");
    assert_eq!(
        h.only(&h.heard(&got, A)),
        h.expect(A, b + c),
        "A still hears"
    );
    set(
        &mut h,
        A,
        MixRole {
            speaks: Speak::All,
            hears: false,
        },
    );
    let got = round(&mut h);
    assert!(!got.contains_key(&A), "a deaf member gets no packet");
    assert_eq!(h.only(&h.heard(&got, B)), h.expect(B, a + c));
}

#[test]
fn a_late_member_frame_is_silence_and_the_others_keep_their_stream() {
    let mut h = Harness::mix(&[(A, AudioCodec::Pcmu), (B, AudioCodec::Pcmu)]);
    h.level(5, A, LA);
    let first = h.tick(20);
    assert_eq!(h.only(&h.heard(&first, B)), h.expect(B, h.through(A, LA)));
    // A's next packet is late: B hears silence, on time and in sequence.
    let second = h.tick(40);
    assert_eq!(h.only(&h.heard(&second, B)), 0);
    assert_eq!(second[&B][0].seq, first[&B][0].seq.wrapping_add(1));
    assert_eq!(second[&B][0].ts, first[&B][0].ts.wrapping_add(160));
    // It arrives; the next round has it again.
    h.level(45, A, LA);
    let third = h.tick(60);
    assert_eq!(h.only(&h.heard(&third, B)), h.expect(B, h.through(A, LA)));
}

#[test]
fn a_member_alone_hears_nothing() {
    let mut h = Harness::mix(&[(A, AudioCodec::Pcmu)]);
    h.level(5, A, LA);
    assert!(h.tick(20).is_empty());
    assert_eq!(h.engine.poll_timeout(), Some(h.at(40)), "the grid runs");
}

#[test]
fn members_with_30_and_60_ms_ptime_get_packets_of_their_own_ptime() {
    let mut h = Harness::new(false);
    h.open(A, AudioCodec::Pcmu, 30);
    h.open(B, AudioCodec::Pcma, 20);
    h.open(C, AudioCodec::Pcmu, 60);
    h.cmd(0, MediaCommand::CreateMix { session: S, mix: M })
        .unwrap();
    for leg in [A, B, C] {
        h.add(0, leg, MixRole::normal());
    }
    let mut heard: Map<LegId, Vec<Got>> = Map::new();
    for ms in (0..=600u64).step_by(10) {
        if ms % 30 == 0 {
            assert!(h.speak(ms, A, &[LA; 240]).is_none());
        }
        if ms % 20 == 0 {
            h.level(ms, B, LB);
        }
        if ms % 20 == 0 && ms > 0 {
            for (leg, got) in h.tick(ms) {
                heard.entry(leg).or_default().extend(got);
            }
        }
    }
    assert!(heard[&A].iter().all(|g| g.payload.len() == 240));
    assert!(heard[&B].iter().all(|g| g.payload.len() == 160));
    assert!(heard[&C].iter().all(|g| g.payload.len() == 480));
    assert_eq!(heard[&A].len(), 600 / 30);
    assert_eq!(heard[&C].len(), 600 / 60);
    for got in heard.values() {
        for w in got.windows(2) {
            assert_eq!(w[1].seq, w[0].seq.wrapping_add(1));
            assert_eq!(w[1].ts, w[0].ts.wrapping_add(w[0].payload.len() as u32));
        }
    }
    // Once primed, C hears A and B whole: no silence gaps from the 30 ms
    // member feeding 20 ms rounds.
    let c = h.heard(&heard, C);
    let steady = &c[c.len() - 2400..];
    let ab = h.expect(C, h.through(A, LA) + h.through(B, LB));
    assert!(steady.iter().all(|&s| s == ab), "gaps in {steady:?}");
}

#[test]
fn volume_steps_scale_what_a_member_says_and_hears() {
    let mut h = Harness::mix(&[(A, AudioCodec::Pcmu), (B, AudioCodec::Pcmu)]);
    h.cmd(
        0,
        MediaCommand::SetMixVolume {
            session: S,
            mix: M,
            leg: A,
            talk: 2,
            listen: -2,
        },
    )
    .unwrap();
    h.level(5, A, LA);
    h.level(6, B, LB);
    let got = h.tick(20);
    let (a, b) = (h.through(A, LA), h.through(B, LB));
    assert_eq!(h.only(&h.heard(&got, B)), h.expect(B, (a * 511) >> 8));
    assert_eq!(h.only(&h.heard(&got, A)), h.expect(A, (b * 128) >> 8));
}

#[test]
fn leaving_the_mix_gives_the_bridge_back_as_one_continuous_stream() {
    let mut h = Harness::new(false);
    h.open(A, AudioCodec::Pcmu, 20);
    h.open(B, AudioCodec::Pcmu, 20);
    h.open(C, AudioCodec::Pcmu, 20);
    h.cmd(
        0,
        MediaCommand::Bridge {
            session: S,
            a: A,
            b: B,
        },
    )
    .unwrap();
    assert!(h.speak(1, A, &[LA; 160]).is_some(), "bridged: relayed");
    let relayed_ssrc = h.engine.leg_output_ssrc(B);
    h.cmd(2, MediaCommand::CreateMix { session: S, mix: M })
        .unwrap();
    for leg in [A, B, C] {
        h.add(2, leg, MixRole::normal());
    }
    assert!(
        h.speak(5, A, &[LA; 160]).is_none(),
        "a member is not relayed"
    );
    h.level(6, C, LC);
    let got = h.tick(22);
    let in_mix = got[&B][0].clone();
    assert_eq!(Some(in_mix.ssrc), relayed_ssrc, "one SSRC towards B");
    for leg in [A, B] {
        h.cmd(
            30,
            MediaCommand::RemoveFromMix {
                session: S,
                mix: M,
                leg,
            },
        )
        .unwrap();
    }
    let mut p = rtp(0, 99, 99 * 160, 0xA, &[0x55; 160]);
    let now = h.at(35);
    let t = h
        .engine
        .handle_packet(now, port(A), phone(A), &mut p)
        .expect("relayed again after leaving");
    assert_eq!(t.destination, phone(B));
    let p = carillon_rtp::RtpPacket::parse(&p).unwrap();
    assert_eq!(p.ssrc(), in_mix.ssrc);
    assert_eq!(p.sequence_number(), in_mix.seq.wrapping_add(1));
    assert!(p.marker(), "hand-over marked");
    // C is alone now: it hears nothing, and leaving C stops the grid.
    assert!(h.tick(42).is_empty());
    h.cmd(50, MediaCommand::DestroyMix { session: S, mix: M })
        .unwrap();
    assert_eq!(h.engine.mixer().mix_count(), 0);
    assert!(h.engine.mixer().is_empty());
    assert_eq!(h.engine.poll_timeout(), h.engine.next_timeout);
}

#[test]
fn a_members_dtmf_is_reported_and_not_mixed() {
    let mut h = Harness::mix(&[(A, AudioCodec::Pcmu), (B, AudioCodec::Pcmu)]);
    let generator = DtmfGenerator::new('5', 800, 160).unwrap();
    let mut seq = 500;
    let mut events = Vec::new();
    for generated in generator {
        seq += 1;
        let mut p = rtp(101, seq, 8000, 0xA, &generated.event.to_bytes());
        let now = h.at(1);
        assert!(h
            .engine
            .handle_packet(now, port(A), phone(A), &mut p)
            .is_none());
        while let Some(e) = h.engine.poll_event() {
            events.push(e);
        }
    }
    assert!(
        events.iter().any(|e| matches!(
            e,
            MediaEvent::Dtmf { leg, digit: '5', .. } if *leg == A
        )),
        "{events:?}"
    );
    let got = h.tick(20);
    assert_eq!(h.only(&h.heard(&got, B)), 0, "the event is not audio");
    assert_eq!(h.engine.counters().mixed, 0);
}

#[test]
fn mixed_flows_leave_the_kernel_and_are_not_offered_again() {
    let mut h = Harness::new(true);
    h.open(A, AudioCodec::Pcmu, 20);
    h.open(B, AudioCodec::Pcmu, 20);
    h.cmd(
        0,
        MediaCommand::Bridge {
            session: S,
            a: A,
            b: B,
        },
    )
    .unwrap();
    for ms in 0..3 {
        assert!(h.speak(ms * 20, A, &[LA; 160]).is_some());
        assert!(h.speak(ms * 20 + 1, B, &[LB; 160]).is_some());
    }
    let installed = std::iter::from_fn(|| h.engine.poll_offload_request())
        .filter(|r| matches!(r, OffloadRequest::Install(_)))
        .count();
    assert_eq!(installed, 2);
    h.cmd(60, MediaCommand::CreateMix { session: S, mix: M })
        .unwrap();
    h.add(60, A, MixRole::normal());
    let mut removed: Vec<_> = std::iter::from_fn(|| h.engine.poll_offload_request()).collect();
    removed.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        removed,
        vec![
            OffloadRequest::Remove {
                local_port: port(A)
            },
            OffloadRequest::Remove {
                local_port: port(B)
            },
        ]
    );
    for ms in 4..8 {
        assert!(h.speak(ms * 20, A, &[LA; 160]).is_none());
        assert!(h.speak(ms * 20 + 1, B, &[LB; 160]).is_none());
    }
    assert_eq!(h.engine.poll_offload_request(), None);
    assert_eq!(h.engine.counters().replaced_by_mixer, 4);
}

#[test]
fn a_closed_member_leaves_its_mix_and_bad_mix_commands_are_refused() {
    let mut h = Harness::mix(&[(A, AudioCodec::Pcmu), (B, AudioCodec::Pcmu)]);
    assert_eq!(
        h.cmd(0, MediaCommand::CreateMix { session: S, mix: M }),
        Err(CommandError::Mix(crate::mixer::MixError::Exists { mix: M }))
    );
    assert!(matches!(
        h.cmd(
            0,
            MediaCommand::AddToMix {
                session: S,
                mix: M,
                leg: A,
                role: MixRole::normal()
            }
        ),
        Err(CommandError::Mix(
            crate::mixer::MixError::AlreadyMember { .. }
        ))
    ));
    assert!(matches!(
        h.cmd(
            0,
            MediaCommand::AddToMix {
                session: S,
                mix: M,
                leg: D,
                role: MixRole::normal()
            }
        ),
        Err(CommandError::UnknownLeg { leg: D })
    ));
    assert!(matches!(
        h.cmd(
            0,
            MediaCommand::RemoveFromMix {
                session: SessionId(2),
                mix: M,
                leg: A
            }
        ),
        Err(CommandError::Mix(
            crate::mixer::MixError::WrongSession { .. }
        ))
    ));
    assert!(matches!(
        h.cmd(
            0,
            MediaCommand::SetMixRole {
                session: S,
                mix: MixId(99),
                leg: A,
                role: MixRole::listen()
            }
        ),
        Err(CommandError::Mix(crate::mixer::MixError::Unknown { .. }))
    ));
    h.cmd(1, MediaCommand::CloseLeg { session: S, leg: B })
        .unwrap();
    assert_eq!(h.engine.mixer().mix(M).unwrap().members.len(), 1);
    h.cmd(1, MediaCommand::CloseLeg { session: S, leg: A })
        .unwrap();
    assert!(h.engine.mixer().is_empty());
    assert_eq!(h.engine.mixer().next_due(), None, "no members, no rounds");
}

#[test]
fn a_play_on_a_member_replaces_the_mix_while_it_lasts() {
    let mut h = Harness::mix(&[(A, AudioCodec::Pcmu), (B, AudioCodec::Pcmu)]);
    h.cmd(
        0,
        MediaCommand::Play {
            session: S,
            leg: A,
            playback: carillon_mediactl::PlaybackId(1),
            items: vec![carillon_mediactl::PlayItem::Silence(Duration::from_millis(
                30,
            ))],
        },
    )
    .unwrap();
    h.level(5, B, LB);
    let got = h.tick(20);
    // A's packets at 20 ms come from the player (silence), none from the mix.
    assert!(got[&A].iter().all(|g| g.payload.iter().all(|&x| x == 0xFF)));
    assert_eq!(h.engine.mixer().mix(M).unwrap().members[0].packets_sent, 0);
    h.tick(40);
    h.level(45, B, LB);
    let got = h.tick(60);
    assert_eq!(h.only(&h.heard(&got, A)), h.expect(A, h.through(B, LB)));
}

fn record_mixer(h: &mut Harness, path: &std::path::Path, max: Option<u64>) {
    h.cmd(
        0,
        MediaCommand::RecordMixer {
            session: S,
            recording: carillon_mediactl::RecordingId(5),
            mix: M,
            path: path.to_path_buf(),
            max_duration: max.map(Duration::from_millis),
        },
    )
    .unwrap();
}

fn recording_done(h: &mut Harness) -> Vec<MediaEvent> {
    std::iter::from_fn(|| h.engine.poll_event())
        .filter(|e| matches!(e, MediaEvent::RecordingDone { .. }))
        .collect()
}

#[test]
fn a_recorded_mix_holds_what_members_say_to_all_and_not_a_whisper() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rooms/1.wav");
    let mut h = Harness::mix(&[(A, AudioCodec::Pcmu), (B, AudioCodec::Pcma)]);
    h.open(C, AudioCodec::Pcmu, 20);
    h.add(0, C, MixRole::whisper(vec![A]));
    record_mixer(&mut h, &path, None);
    assert!(matches!(
        h.cmd(
            0,
            MediaCommand::RecordMixer {
                session: S,
                recording: carillon_mediactl::RecordingId(6),
                mix: M,
                path: path.clone(),
                max_duration: None,
            }
        ),
        Err(CommandError::Mix(crate::mixer::MixError::Recording {
            mix: M
        }))
    ));
    for k in 0..10u64 {
        h.level(k * 20 + 5, A, LA);
        h.level(k * 20 + 6, B, LB);
        h.level(k * 20 + 7, C, LC);
        h.tick(k * 20 + 20);
    }
    h.cmd(
        200,
        MediaCommand::StopRecord {
            session: S,
            recording: carillon_mediactl::RecordingId(5),
        },
    )
    .unwrap();
    match recording_done(&mut h).as_slice() {
        [MediaEvent::RecordingDone {
            end, duration_ms, ..
        }] => {
            assert_eq!(*end, RecordingEnd::Stopped);
            assert_eq!(*duration_ms, 200);
        }
        other => panic!("{other:?}"),
    }
    let samples: Vec<i16> = hound::WavReader::open(&path)
        .unwrap()
        .samples::<i16>()
        .map(Result::unwrap)
        .collect();
    assert_eq!(samples.len(), 1600);
    let ab = (h.through(A, LA) + h.through(B, LB)) as i16;
    let whole = samples.iter().filter(|&&s| s == ab).count();
    assert!(whole >= 1440, "{whole} of 1600 samples are A + B");
    assert!(!samples.contains(&(ab + h.through(C, LC) as i16)));
}

#[test]
fn a_mix_recording_ends_at_its_max_duration_or_with_the_mix() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::mix(&[(A, AudioCodec::Pcmu), (B, AudioCodec::Pcmu)]);
    record_mixer(&mut h, &dir.path().join("max.wav"), Some(100));
    for k in 1..=7u64 {
        h.tick(k * 20);
    }
    match recording_done(&mut h).as_slice() {
        [MediaEvent::RecordingDone {
            end, duration_ms, ..
        }] => {
            assert_eq!(*end, RecordingEnd::MaxDuration);
            assert_eq!(*duration_ms, 100);
        }
        other => panic!("{other:?}"),
    }
    record_mixer(&mut h, &dir.path().join("destroyed.wav"), None);
    h.cmd(300, MediaCommand::DestroyMix { session: S, mix: M })
        .unwrap();
    assert!(matches!(
        recording_done(&mut h).as_slice(),
        [MediaEvent::RecordingDone {
            end: RecordingEnd::Stopped,
            ..
        }]
    ));
    assert_eq!(h.engine.mixer().next_due(), None);
}

#[test]
fn a_members_digits_are_detected_but_not_converted_across_its_suspended_bridge() {
    let mut h = Harness::new(false);
    h.open(A, AudioCodec::Pcmu, 20);
    h.open(B, AudioCodec::Pcmu, 20);
    h.open(C, AudioCodec::Pcmu, 20);
    h.cmd(
        0,
        MediaCommand::Bridge {
            session: S,
            a: A,
            b: B,
        },
    )
    .unwrap();
    // A's digits are in-band, B takes RFC 4733: bridged, a digit from A
    // would become events sent to B.
    h.cmd(
        0,
        MediaCommand::SetDtmfMode {
            session: S,
            leg: A,
            mode: carillon_mediactl::DtmfMode::Inband,
        },
    )
    .unwrap();
    h.cmd(0, MediaCommand::CreateMix { session: S, mix: M })
        .unwrap();
    h.add(0, A, MixRole::normal());
    h.add(0, C, MixRole::normal());
    // A presses 5 in-band (770 + 1336 Hz) for 160 ms, then is quiet.
    let mut low = carillon_codec::ToneGenerator::new(770.0, 4000);
    let mut high = carillon_codec::ToneGenerator::new(1336.0, 4000);
    let mut events = Vec::new();
    let mut to_b = 0;
    for k in 0..20u64 {
        let samples: Vec<i16> = (0..160)
            .map(|_| {
                let (l, hi) = (low.next_sample(), high.next_sample());
                if k < 8 {
                    l + hi
                } else {
                    0
                }
            })
            .collect();
        assert!(h.speak(k * 20 + 5, A, &samples).is_none());
        let got = h.tick(k * 20 + 20);
        to_b += got.get(&B).map_or(0, Vec::len);
        events.extend(std::iter::from_fn(|| h.engine.poll_event()));
    }
    assert!(
        events.iter().any(|e| matches!(
            e,
            MediaEvent::Dtmf {
                leg,
                digit: '5',
                source: carillon_mediactl::DtmfSource::Inband,
                ..
            } if *leg == A
        )),
        "{events:?}"
    );
    assert_eq!(to_b, 0, "nothing generated towards the suspended peer");
    assert!(h.engine.mixer().mix(M).unwrap().members[1].packets_sent > 0);
}

#[test]
fn a_bridge_given_back_continues_even_when_the_phone_restarts_its_sequence() {
    let mut h = Harness::new(false);
    h.open(A, AudioCodec::Pcmu, 20);
    h.open(B, AudioCodec::Pcma, 20);
    h.cmd(
        0,
        MediaCommand::Bridge {
            session: S,
            a: A,
            b: B,
        },
    )
    .unwrap();
    let send = |h: &mut Harness, ms: u64, seq: u16| {
        let mut p = rtp(0, seq, u32::from(seq) * 160, 0x1015, &[0x55; 160]);
        let now = h.at(ms);
        let t = h.engine.handle_packet(now, port(A), phone(A), &mut p);
        t.map(|_| {
            let p = carillon_rtp::RtpPacket::parse(&p).unwrap();
            (p.sequence_number(), p.marker())
        })
    };
    let mut out = Vec::new();
    for k in 0..5u16 {
        out.extend(send(&mut h, u64::from(k) * 20, k));
    }
    h.cmd(100, MediaCommand::CreateMix { session: S, mix: M })
        .unwrap();
    h.add(100, A, MixRole::normal());
    h.add(100, B, MixRole::normal());
    for k in 0..5u16 {
        assert!(send(&mut h, 105 + u64::from(k) * 20, k).is_none());
        for g in h
            .tick(120 + u64::from(k) * 20)
            .remove(&B)
            .unwrap_or_default()
        {
            out.push((g.seq, g.marker));
        }
    }
    h.cmd(300, MediaCommand::DestroyMix { session: S, mix: M })
        .unwrap();
    for k in 0..5u16 {
        out.extend(send(&mut h, 305 + u64::from(k) * 20, k));
    }
    let seqs: Vec<u16> = out.iter().map(|o| o.0).collect();
    for w in seqs.windows(2) {
        assert_eq!(w[1], w[0].wrapping_add(1), "{seqs:?}");
    }
}
