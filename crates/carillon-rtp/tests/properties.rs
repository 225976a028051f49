//! Property tests: RTP parse∘serialize round trips, no panics on arbitrary
//! bytes, sequence unwrapping under wrap and reordering, loss counting with
//! seeded drops, and DTMF end-packet deduplication.

use carillon_rtp::dtmf::{DtmfDetector, DtmfGenerator, TelephoneEvent};
use carillon_rtp::packet::{Extension, RtpPacket, RtpPacketBuilder};
use carillon_rtp::rtcp::{self, RtcpPacket};
use carillon_rtp::stats::ReceiveStats;
use carillon_rtp::{SeqUnwrapper, Ssrc, StreamRewriter, TimestampUnwrapper};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct Fields {
    marker: bool,
    payload_type: u8,
    seq: u16,
    timestamp: u32,
    ssrc: u32,
    csrcs: Vec<Ssrc>,
    extension: Option<(u16, Vec<u8>)>,
    payload: Vec<u8>,
    padding: u8,
}

fn fields() -> impl Strategy<Value = Fields> {
    (
        any::<bool>(),
        0u8..128,
        any::<u16>(),
        any::<u32>(),
        any::<u32>(),
        prop::collection::vec(any::<u32>().prop_map(Ssrc), 0..=15),
        prop::option::of((
            any::<u16>(),
            (0usize..8).prop_flat_map(|w| prop::collection::vec(any::<u8>(), w * 4)),
        )),
        prop::collection::vec(any::<u8>(), 0..300),
        any::<u8>(),
    )
        .prop_map(
            |(marker, payload_type, seq, timestamp, ssrc, csrcs, extension, payload, padding)| {
                Fields {
                    marker,
                    payload_type,
                    seq,
                    timestamp,
                    ssrc,
                    csrcs,
                    extension,
                    payload,
                    padding,
                }
            },
        )
}

fn builder(f: &Fields) -> RtpPacketBuilder<'_> {
    RtpPacketBuilder {
        marker: f.marker,
        payload_type: f.payload_type,
        sequence_number: f.seq,
        timestamp: f.timestamp,
        ssrc: Ssrc(f.ssrc),
        csrcs: &f.csrcs,
        extension: f.extension.as_ref().map(|(profile, data)| Extension {
            profile: *profile,
            data,
        }),
        payload: &f.payload,
        padding: f.padding,
    }
}

proptest! {
    #[test]
    fn serialized_packets_parse_back_to_the_same_fields(f in fields()) {
        let b = builder(&f);
        let mut buf = vec![0u8; b.encoded_len()];
        prop_assert_eq!(b.write_into(&mut buf), Ok(buf.len()));
        let p = RtpPacket::parse(&buf).unwrap();
        prop_assert_eq!(p.marker(), f.marker);
        prop_assert_eq!(p.payload_type(), f.payload_type);
        prop_assert_eq!(p.sequence_number(), f.seq);
        prop_assert_eq!(p.timestamp(), f.timestamp);
        prop_assert_eq!(p.ssrc(), Ssrc(f.ssrc));
        prop_assert_eq!(p.csrcs().collect::<Vec<_>>(), f.csrcs.clone());
        prop_assert_eq!(p.extension().map(|e| (e.profile, e.data.to_vec())), f.extension.clone());
        prop_assert_eq!(p.payload(), &f.payload[..]);
        prop_assert_eq!(p.padding_len(), usize::from(f.padding));
    }

    #[test]
    fn parsed_packets_serialize_back_to_the_same_bytes(f in fields()) {
        let b = builder(&f);
        let mut original = vec![0u8; b.encoded_len()];
        b.write_into(&mut original).unwrap();
        let p = RtpPacket::parse(&original).unwrap();
        let csrcs: Vec<Ssrc> = p.csrcs().collect();
        let rebuilt = RtpPacketBuilder {
            marker: p.marker(),
            payload_type: p.payload_type(),
            sequence_number: p.sequence_number(),
            timestamp: p.timestamp(),
            ssrc: p.ssrc(),
            csrcs: &csrcs,
            extension: p.extension(),
            payload: p.payload(),
            padding: p.padding_len() as u8,
        };
        let mut again = vec![0u8; rebuilt.encoded_len()];
        rebuilt.write_into(&mut again).unwrap();
        prop_assert_eq!(again, original);
    }

    #[test]
    fn arbitrary_bytes_never_panic(mut bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(p) = RtpPacket::parse(&bytes) {
            prop_assert!(p.header_len() + p.payload().len() + p.padding_len() == bytes.len());
            let _ = p.csrcs().count();
        }
        for packet in RtcpPacket::iter_compound(&bytes).flatten() {
            let _ = (packet.sender_ssrc(), packet.sender_info(), packet.report_blocks().count());
        }
        let _ = TelephoneEvent::parse(&bytes);
        let mut copy = bytes.clone();
        let _ = rtcp::rewrite_sender_ssrc(&mut copy, Ssrc(1));
        let _ = rtcp::rewrite_report_sources(&mut copy, Ssrc(1));
        let _ = carillon_rtp::set_ssrc(&mut bytes, Ssrc(2));
        let _ = carillon_rtp::set_payload_type(&mut bytes, 8);
        let mut r = StreamRewriter::new(Ssrc(3), 8000);
        let _ = r.rewrite(Instant::now(), &mut bytes);
    }

    #[test]
    fn arbitrary_rtp_headers_with_version_two_never_panic(
        first in 0x80u8..0xC0, rest in prop::collection::vec(any::<u8>(), 0..120)
    ) {
        let mut bytes = vec![first];
        bytes.extend(rest);
        let _ = RtpPacket::parse(&bytes).map(|p| (p.payload().len(), p.extension()));
    }

    #[test]
    fn unwrapped_sequence_numbers_increase_by_the_step_across_wraps(
        start in any::<u16>(), steps in prop::collection::vec(1u16..3000, 1..200)
    ) {
        let mut u = SeqUnwrapper::new();
        let mut truth = u64::from(start);
        prop_assert_eq!(u.unwrap(start), truth);
        for step in steps {
            truth += u64::from(step);
            prop_assert_eq!(u.unwrap(truth as u16), truth);
        }
    }

    #[test]
    fn reordered_sequence_numbers_unwrap_to_their_true_value(
        start in 1000u64..60000, len in 10usize..2000, seed in any::<u64>()
    ) {
        // Every packet is displaced by at most 50 positions.
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut order: Vec<u64> = (start..start + len as u64).collect();
        for i in 0..order.len() {
            let j = (i + rng.gen_range(0..50)).min(order.len() - 1);
            order.swap(i, j);
        }
        let mut u = SeqUnwrapper::new();
        let first = order[0];
        // Place the first packet's cycle where the unwrapper puts it.
        let offset = first - u64::from(first as u16);
        for truth in order {
            prop_assert_eq!(u.unwrap(truth as u16) + offset, truth);
        }
    }

    #[test]
    fn unwrapped_timestamps_are_monotonic_for_forward_steps(
        start in any::<u32>(), steps in prop::collection::vec(1u32..1_000_000, 1..100)
    ) {
        let mut u = TimestampUnwrapper::new();
        let mut prev = u.unwrap(start);
        let mut ts = start;
        for step in steps {
            ts = ts.wrapping_add(step);
            let next = u.unwrap(ts);
            prop_assert_eq!(next, prev + u64::from(step));
            prev = next;
        }
    }

    #[test]
    fn loss_equals_the_seeded_drops_between_first_and_last_packet(
        seed in any::<u64>(), start in any::<u16>(), count in 2usize..3000, loss_percent in 0u32..30
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut stats = ReceiveStats::new(8000);
        let sent: Vec<u16> = (0..count).map(|i| start.wrapping_add(i as u16)).collect();
        let kept: Vec<bool> = sent.iter().map(|_| rng.gen_range(0..100) >= loss_percent).collect();
        let Some(first) = kept.iter().position(|&k| k) else { return Ok(()); };
        let last = kept.iter().rposition(|&k| k).unwrap();
        let dropped_between = kept[first..=last].iter().filter(|&&k| !k).count() as i64;
        let mut received = 0;
        for (i, (&seq, &keep)) in sent.iter().zip(&kept).enumerate() {
            if keep {
                received += 1;
                stats.handle_packet_at(i as u32 * 160, seq, i as u32 * 160);
            }
        }
        prop_assert_eq!(stats.cumulative_lost(), dropped_between);
        prop_assert_eq!(stats.packets_received(), received);
        prop_assert_eq!(stats.packets_expected(), (last - first + 1) as u64);
        prop_assert_eq!(stats.duplicates(), 0);
        let interval = stats.take_interval();
        let expected_fraction = if dropped_between == 0 { 0 } else {
            (dropped_between as u64 * 256 / (last - first + 1) as u64).min(255) as u8
        };
        prop_assert_eq!(interval.fraction_lost, expected_fraction);
    }

    #[test]
    fn injected_duplicates_are_counted_exactly(
        seed in any::<u64>(), start in any::<u16>(), count in 2usize..1000
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut stats = ReceiveStats::new(8000);
        let mut injected = 0u64;
        for i in 0..count {
            let seq = start.wrapping_add(i as u16);
            stats.handle_packet_at(0, seq, 0);
            if i > 0 && rng.gen_bool(0.1) {
                // Repeat a recent packet (within the reorder window).
                let back = rng.gen_range(0..i.min(60)) as u16;
                stats.handle_packet_at(0, seq.wrapping_sub(back), 0);
                injected += 1;
            }
        }
        prop_assert_eq!(stats.duplicates(), injected);
        prop_assert_eq!(stats.reordered(), 0);
    }

    #[test]
    fn every_press_is_reported_once_despite_retransmitted_ends(
        presses in prop::collection::vec(
            (prop::sample::select("0123456789*#ABCD".chars().collect::<Vec<_>>()),
             1u16..4000, 1usize..6, any::<bool>()),
            1..20
        )
    ) {
        let t0 = Instant::now();
        let mut detector = DtmfDetector::new(8000);
        let mut ts = 12_345u32;
        let mut now = t0;
        let mut expected = Vec::new();
        for (digit, duration, extra_ends, repeat_updates) in presses {
            expected.push(digit);
            for packet in DtmfGenerator::new(digit, duration, 160).unwrap() {
                let copies = if packet.event.end { extra_ends } else if repeat_updates { 2 } else { 1 };
                for _ in 0..copies {
                    detector.handle_event(now, ts, packet.event);
                }
                now += Duration::from_millis(20);
            }
            ts = ts.wrapping_add(u32::from(duration) + 800);
        }
        let mut got = Vec::new();
        while let Some(d) = detector.poll_digit() {
            prop_assert!(d.ended);
            got.push(d.digit);
        }
        prop_assert_eq!(got, expected);
        prop_assert_eq!(detector.poll_timeout(), None);
    }
}
