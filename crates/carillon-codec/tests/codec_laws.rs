//! Property tests for the G.711 codec laws: idempotence, monotonicity and
//! bounded quantisation error, for both µ-law and A-law.

use carillon_codec::g711::{alaw_decode, alaw_encode, ulaw_decode, ulaw_encode};
use proptest::prelude::*;

fn ulaw_step(decoded: i16) -> i32 {
    // µ-law step is 8 << segment, segment from the biased magnitude.
    let biased = u32::from(decoded.unsigned_abs()) + 132;
    8 << (biased.ilog2() - 7)
}

fn alaw_step(decoded: i16) -> i32 {
    let magnitude = u32::from(decoded.unsigned_abs());
    if magnitude < 512 {
        16
    } else {
        16 << (magnitude.ilog2() - 8)
    }
}

#[test]
fn decoding_is_idempotent_through_encode_for_every_code() {
    for code in 0..=255u8 {
        let u = ulaw_decode(code);
        assert_eq!(ulaw_decode(ulaw_encode(u)), u, "µ code {code:#04x}");
        let a = alaw_decode(code);
        assert_eq!(alaw_decode(alaw_encode(a)), a, "A code {code:#04x}");
    }
}

proptest! {
    #[test]
    fn ulaw_encoding_is_monotonic(x in any::<i16>(), y in any::<i16>()) {
        let (lo, hi) = if x <= y { (x, y) } else { (y, x) };
        prop_assert!(ulaw_decode(ulaw_encode(lo)) <= ulaw_decode(ulaw_encode(hi)));
    }

    #[test]
    fn alaw_encoding_is_monotonic(x in any::<i16>(), y in any::<i16>()) {
        let (lo, hi) = if x <= y { (x, y) } else { (y, x) };
        prop_assert!(alaw_decode(alaw_encode(lo)) <= alaw_decode(alaw_encode(hi)));
    }

    #[test]
    fn ulaw_error_is_within_the_segment_step(x in any::<i16>()) {
        let y = ulaw_decode(ulaw_encode(x));
        prop_assert!((i32::from(x) - i32::from(y)).abs() <= ulaw_step(y), "{} -> {}", x, y);
    }

    #[test]
    fn alaw_error_is_within_the_segment_step(x in any::<i16>()) {
        let y = alaw_decode(alaw_encode(x));
        prop_assert!((i32::from(x) - i32::from(y)).abs() <= alaw_step(y), "{} -> {}", x, y);
    }

    #[test]
    fn ulaw_error_is_at_most_half_a_step_inside_the_range(x in -32000i16..32000) {
        // Away from clipping the decoder output is the interval mid-point, so the
        // error is at most half a step plus the 2 bits µ-law ignores.
        let y = ulaw_decode(ulaw_encode(x));
        prop_assert!((i32::from(x) - i32::from(y)).abs() <= ulaw_step(y) / 2 + 4);
    }
}
