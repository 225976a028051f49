//! Checks the compile-time G.711 tables byte for byte against a plain,
//! bit-level reference written from the G.711 segment/quantisation
//! definitions (decision intervals and their mid-points), in the manner of
//! the ITU-T G.191 reference code, and checks the direct µ↔A conversions
//! against the notes of G.711 Tables 3 and 4.

use carillon_codec::g711::{
    alaw_decode, alaw_encode, alaw_to_ulaw, ulaw_decode, ulaw_encode, ulaw_to_alaw,
};

/// µ-law, 16-bit in: quantise the 14-bit sample, sign-magnitude, then invert all bits.
fn reference_ulaw_encode(x: i16) -> u8 {
    let s = i32::from(x) >> 2;
    let (negative, magnitude) = if s < 0 { (true, -s - 1) } else { (false, s) };
    let biased = (magnitude + 33).min(8191);
    let mut segment = 0;
    while segment < 7 && biased >= (64 << segment) {
        segment += 1;
    }
    let step_shift = segment + 1;
    let mantissa = (biased - (32 << segment)) >> step_shift;
    let raw = (if negative { 0x80 } else { 0 }) | (segment << 4) | mantissa;
    !(raw as u8)
}

/// µ-law decoder output: the mid-point of the code's decision interval.
fn reference_ulaw_decode(code: u8) -> i16 {
    let raw = !code;
    let segment = i32::from((raw >> 4) & 7);
    let mantissa = i32::from(raw & 0x0F);
    let lower_biased = (16 + mantissa) << (segment + 1);
    let mid = lower_biased + (1 << segment) - 33;
    let value = mid * 4;
    (if raw & 0x80 != 0 { -value } else { value }) as i16
}

/// A-law, 16-bit in: quantise the 13-bit sample, sign-magnitude, then invert the even bits.
fn reference_alaw_encode(x: i16) -> u8 {
    let s = i32::from(x) >> 3;
    let (positive, magnitude) = if s < 0 { (false, -s - 1) } else { (true, s) };
    let (segment, mantissa) = if magnitude < 32 {
        (0, magnitude / 2)
    } else {
        let mut segment = 1;
        while segment < 7 && magnitude >= (64 << (segment - 1)) {
            segment += 1;
        }
        let lower = 32 << (segment - 1);
        let step = 1 << segment;
        (segment, (magnitude - lower) / step)
    };
    let raw = (if positive { 0x80 } else { 0 }) | (segment << 4) | mantissa;
    (raw as u8) ^ 0x55
}

/// A-law decoder output: the mid-point of the code's decision interval.
fn reference_alaw_decode(code: u8) -> i16 {
    let raw = code ^ 0x55;
    let segment = i32::from((raw >> 4) & 7);
    let mantissa = i32::from(raw & 0x0F);
    let (lower, step) = if segment == 0 {
        (2 * mantissa, 2)
    } else {
        (
            (32 << (segment - 1)) + mantissa * (1 << segment),
            1 << segment,
        )
    };
    let value = (lower + step / 2) * 8;
    (if raw & 0x80 != 0 { value } else { -value }) as i16
}

#[test]
fn ulaw_encode_table_matches_the_reference_for_every_sample() {
    for x in i16::MIN..=i16::MAX {
        assert_eq!(ulaw_encode(x), reference_ulaw_encode(x), "sample {x}");
    }
}

#[test]
fn alaw_encode_table_matches_the_reference_for_every_sample() {
    for x in i16::MIN..=i16::MAX {
        assert_eq!(alaw_encode(x), reference_alaw_encode(x), "sample {x}");
    }
}

#[test]
fn decode_tables_match_the_reference_for_every_code() {
    for code in 0..=255u8 {
        assert_eq!(
            ulaw_decode(code),
            reference_ulaw_decode(code),
            "µ code {code:#04x}"
        );
        assert_eq!(
            alaw_decode(code),
            reference_alaw_decode(code),
            "A code {code:#04x}"
        );
    }
}

#[test]
fn known_g711_values_decode_as_published() {
    // µ-law: both zero codes, the first steps and the peaks.
    assert_eq!(ulaw_decode(0xFF), 0);
    assert_eq!(ulaw_decode(0x7F), 0);
    assert_eq!(ulaw_decode(0xFE), 8);
    assert_eq!(ulaw_decode(0x7E), -8);
    assert_eq!(ulaw_decode(0xEF), 132);
    assert_eq!(ulaw_decode(0x80), 32124);
    assert_eq!(ulaw_decode(0x00), -32124);
    // A-law: the smallest values are ±8 (half of the 16-unit step), peaks ±32256.
    assert_eq!(alaw_decode(0xD5), 8);
    assert_eq!(alaw_decode(0x55), -8);
    assert_eq!(alaw_decode(0xD4), 24);
    assert_eq!(alaw_decode(0xAA), 32256);
    assert_eq!(alaw_decode(0x2A), -32256);
    // Encoding a few exact levels.
    assert_eq!(ulaw_encode(132), 0xEF);
    assert_eq!(alaw_encode(8), 0xD5);
    assert_eq!(alaw_encode(-8), 0x55);
}

#[test]
fn decoding_then_encoding_returns_every_code() {
    for code in 0..=255u8 {
        let u = ulaw_decode(code);
        let a = alaw_decode(code);
        // µ-law 0x7F (negative zero) decodes to 0, which encodes as positive zero.
        let expected_u = if code == 0x7F { 0xFF } else { code };
        assert_eq!(ulaw_encode(u), expected_u, "µ code {code:#04x}");
        assert_eq!(alaw_encode(a), code, "A code {code:#04x}");
    }
}

// ---- direct conversion, G.711 Tables 3 and 4 ----

/// µ-law decoder output number (0..=127) and whether the value is negative.
fn ulaw_number(code: u8) -> (bool, u8) {
    (code & 0x80 == 0, !code & 0x7F)
}

/// A-law decoder output number as G.711 counts it (1..=128).
fn alaw_number(code: u8) -> (bool, u8) {
    let raw = code ^ 0x55;
    (raw & 0x80 == 0, (raw & 0x7F) + 1)
}

fn ulaw_code(negative: bool, number: u8) -> u8 {
    (if negative { 0x00 } else { 0x80 }) | (0x7F ^ number)
}

fn alaw_code(negative: bool, number: u8) -> u8 {
    ((if negative { 0x00 } else { 0x80 }) | (number - 1)) ^ 0x55
}

#[test]
fn ulaw_to_alaw_matches_sample_entries_of_table_3() {
    // (µ-law number, A-law number) pairs read from G.711 Table 3.
    let entries = [
        (0, 1),
        (1, 1),
        (2, 2),
        (15, 8),
        (16, 9),
        (31, 24),
        (32, 25),
        (33, 27),
        (36, 33),
        (47, 44),
        (48, 46),
        (49, 48),
        (64, 64),
        (79, 79),
        (80, 81),
        (95, 96),
        (127, 128),
    ];
    for (u, a) in entries {
        for negative in [false, true] {
            assert_eq!(
                alaw_number(ulaw_to_alaw(ulaw_code(negative, u))),
                (negative, a),
                "µ number {u}, negative {negative}"
            );
        }
    }
}

#[test]
fn alaw_to_ulaw_matches_sample_entries_of_table_4() {
    // (A-law number, µ-law number) pairs read from G.711 Table 4.
    let entries = [
        (1, 1),
        (2, 3),
        (8, 15),
        (9, 16),
        (25, 32),
        (26, 32),
        (27, 33),
        (45, 48),
        (46, 48),
        (47, 49),
        (63, 64),
        (64, 64),
        (80, 79),
        (81, 80),
        (128, 127),
    ];
    for (a, u) in entries {
        for negative in [false, true] {
            assert_eq!(
                ulaw_number(alaw_to_ulaw(alaw_code(negative, a))),
                (negative, u),
                "A number {a}, negative {negative}"
            );
        }
    }
}

#[test]
fn ulaw_to_alaw_to_ulaw_changes_only_the_even_numbers_below_sixteen() {
    // G.711 Table 3, note: µ-law numbers 0, 2, …, 14 come back increased by 1
    // (only bit 8 changes); every other µ-law code is transparent.
    for code in 0..=255u8 {
        let back = alaw_to_ulaw(ulaw_to_alaw(code));
        let (_, number) = ulaw_number(code);
        if number < 16 && number % 2 == 0 {
            assert_eq!(back, code ^ 0x01, "µ code {code:#04x}");
            assert_eq!(ulaw_number(back).1, number + 1);
        } else {
            assert_eq!(back, code, "µ code {code:#04x}");
        }
    }
}

#[test]
fn alaw_to_ulaw_to_alaw_changes_only_bit_8_of_eight_numbers() {
    // G.711 Table 4, note: A-law numbers 26, 28, 30, 32, 45, 47, 63 and 80
    // change in bit 8 only; every other A-law code is transparent.
    let changed = [26u8, 28, 30, 32, 45, 47, 63, 80];
    for code in 0..=255u8 {
        let back = ulaw_to_alaw(alaw_to_ulaw(code));
        let (_, number) = alaw_number(code);
        if changed.contains(&number) {
            assert_eq!(back, code ^ 0x01, "A code {code:#04x}");
        } else {
            assert_eq!(back, code, "A code {code:#04x}");
        }
    }
}

#[test]
fn direct_conversion_differs_from_decode_then_encode_where_the_standard_says() {
    // µ-law number 80 (4092) lies below the A-law decision value 4096, so
    // decode→encode gives A-law number 80, while Table 3 gives 81.
    let code = ulaw_code(false, 80);
    assert_eq!(alaw_number(alaw_encode(ulaw_decode(code))), (false, 80));
    assert_eq!(alaw_number(ulaw_to_alaw(code)), (false, 81));
    let differing = (0..=255u8)
        .filter(|&c| ulaw_to_alaw(c) != alaw_encode(ulaw_decode(c)))
        .count();
    assert!(differing > 0);
}

#[test]
fn direct_conversions_keep_the_sign_and_stay_within_one_step() {
    for code in 0..=255u8 {
        let u = i32::from(ulaw_decode(code));
        let a = i32::from(alaw_decode(ulaw_to_alaw(code)));
        assert!(u == 0 || u.signum() == a.signum(), "µ code {code:#04x}");
        let a_step = if a.abs() < 512 {
            16
        } else {
            16 << (a.unsigned_abs().ilog2() - 8)
        };
        assert!(
            (u - a).abs() <= a_step + 4,
            "µ code {code:#04x}: {u} vs {a}"
        );

        let a = i32::from(alaw_decode(code));
        let u = i32::from(ulaw_decode(alaw_to_ulaw(code)));
        assert_eq!(u.signum(), a.signum(), "A code {code:#04x}");
        let u_step = 8 << ((u.unsigned_abs() + 132).ilog2() - 7);
        assert!(
            (u - a).abs() <= u_step + 8,
            "A code {code:#04x}: {a} vs {u}"
        );
    }
}
