//! G.711 µ-law (PCMU) and A-law (PCMA) companding, table driven.
//!
//! Owns the sample-level laws of ITU-T G.711 (11/88): encoding 16-bit linear
//! PCM to 8-bit code words, decoding them back, and the direct µ-law ↔ A-law
//! conversions of G.711 Tables 3 and 4. It does not own buffers, payload
//! types or packetisation (see [`crate::transcode`]).
//!
//! Every table is computed at compile time by `const fn`, so there is no
//! runtime initialisation and no lazy static:
//!
//! | table | size | indexed by |
//! |---|---|---|
//! | µ-law decode | 256 × i16 | code word |
//! | A-law decode | 256 × i16 | code word |
//! | µ-law encode | 16 Ki × u8 | the 14-bit sample `x >> 2` |
//! | A-law encode | 4 Ki × u8 | the 12-bit sample `x >> 4` (A-law's 13th bit never changes the code) |
//! | µ→A, A→µ | 256 × u8 each | code word |
//!
//! Linear samples follow the ITU-T G.191 convention: µ-law uses the 14 most
//! significant bits of the 16-bit sample and A-law the 13 most significant
//! (of which the last does not influence the code), negative samples are
//! quantised by one's complement magnitude, and decoded values are scaled
//! back to 16 bits (µ-law peak ±32124, A-law peak ±32256).
//!
//! ## Direct conversion (G.711 Tables 3 and 4)
//!
//! The direct conversions are *not* `encode(decode(c))`:
//!
//! * µ→A (Table 3) quantises each µ-law decoder output value with the A-law
//!   decision values, after bringing both laws to the same level scale. G.711
//!   puts the µ-law overload point (8159 units) at +3.17 dBm0 and the A-law
//!   one (4096 units) at +3.14 dBm0, so one µ-law unit is
//!   `4096/8159 · 10^(0.03/20) ≈ 0.503759` A-law units, not exactly ½.
//!   The difference moves 19 of the 128 magnitudes one step up compared
//!   with decode→encode (for example µ-law number 80 becomes A-law number 81).
//! * A→µ (Table 4) is chosen so that double conversion is as transparent as
//!   the laws allow: an A-law value reached by Table 3 goes back to the
//!   largest µ-law number that reaches it, so µ→A→µ changes only the µ-law
//!   numbers 0, 2, …, 14 (by +1); the eight A-law numbers Table 3 never
//!   produces (26, 28, 30, 32, 45, 47, 63, 80) go to the µ-law value of the
//!   A-law number that differs only in the least significant bit, so A→µ→A
//!   changes only bit 8 of those eight.
//!
//! Both tables keep the sign.

/// Decodes one µ-law code word to a 16-bit linear sample.
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_DECODE[code as usize]
}

/// Decodes one A-law code word to a 16-bit linear sample.
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_DECODE[code as usize]
}

/// Encodes one 16-bit linear sample as a µ-law code word.
#[inline]
pub fn ulaw_encode(sample: i16) -> u8 {
    // `sample >> 2` is the 14-bit sample; masking makes the index provably in range.
    ULAW_ENCODE[((sample >> 2) as u16 & 0x3FFF) as usize]
}

/// Encodes one 16-bit linear sample as an A-law code word.
#[inline]
pub fn alaw_encode(sample: i16) -> u8 {
    ALAW_ENCODE[((sample >> 4) as u16 & 0x0FFF) as usize]
}

/// Converts a µ-law code word to A-law per G.711 Table 3.
#[inline]
pub fn ulaw_to_alaw(code: u8) -> u8 {
    ULAW_TO_ALAW[code as usize]
}

/// Converts an A-law code word to µ-law per G.711 Table 4.
#[inline]
pub fn alaw_to_ulaw(code: u8) -> u8 {
    ALAW_TO_ULAW[code as usize]
}

/// µ-law code word → linear sample.
pub static ULAW_DECODE: [i16; 256] = build_ulaw_decode();
/// A-law code word → linear sample.
pub static ALAW_DECODE: [i16; 256] = build_alaw_decode();
/// 14-bit sample (`(x >> 2) & 0x3FFF`) → µ-law code word.
pub static ULAW_ENCODE: [u8; 16384] = build_ulaw_encode();
/// 12-bit sample (`(x >> 4) & 0x0FFF`) → A-law code word.
pub static ALAW_ENCODE: [u8; 4096] = build_alaw_encode();
/// µ-law code word → A-law code word (G.711 Table 3).
pub static ULAW_TO_ALAW: [u8; 256] = build_ulaw_to_alaw();
/// A-law code word → µ-law code word (G.711 Table 4).
pub static ALAW_TO_ULAW: [u8; 256] = build_alaw_to_ulaw(&ULAW_TO_ALAW);

/// µ-law: magnitude bias added before segmenting, in 14-bit units.
const ULAW_BIAS: i32 = 33;
/// µ-law: largest biased magnitude (the 13-bit clip point).
const ULAW_CLIP: i32 = 0x1FFF;
/// One µ-law unit in millionths of an A-law unit (see the module doc).
const ULAW_UNIT_IN_ALAW_MICRO: u64 = 503_759;

/// Magnitude of µ-law decoder output number `n` (0..=127) in 14-bit units.
const fn ulaw_number_value(n: u8) -> i32 {
    let exponent = (n >> 4) & 0x07;
    let mantissa = (n & 0x0F) as i32;
    (((mantissa << 1) + ULAW_BIAS) << exponent) - ULAW_BIAS
}

/// Magnitude of A-law decoder output number `n` (0-based, 0..=127) in 13-bit units.
const fn alaw_number_value(n: u8) -> i32 {
    let exponent = (n >> 4) & 0x07;
    let mantissa = (n & 0x0F) as i32;
    if exponent == 0 {
        (mantissa << 1) + 1
    } else {
        ((mantissa << 1) + 33) << (exponent - 1)
    }
}

/// Lowest magnitude (13-bit units) that A-law quantises to number `n`.
const fn alaw_decision_value(n: u8) -> i32 {
    let exponent = (n >> 4) & 0x07;
    let mantissa = (n & 0x0F) as i32;
    if exponent == 0 {
        mantissa << 1
    } else {
        (mantissa + 16) << exponent
    }
}

const fn build_ulaw_decode() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut code = 0usize;
    while code < 256 {
        let inverted = !(code as u8);
        let magnitude = ulaw_number_value(inverted & 0x7F) << 2;
        // After inversion the sign bit is set for negative samples.
        table[code] = if inverted & 0x80 != 0 {
            -magnitude as i16
        } else {
            magnitude as i16
        };
        code += 1;
    }
    table
}

const fn build_alaw_decode() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut code = 0usize;
    while code < 256 {
        let plain = code as u8 ^ 0x55;
        let magnitude = alaw_number_value(plain & 0x7F) << 3;
        table[code] = if plain & 0x80 != 0 {
            magnitude as i16
        } else {
            -magnitude as i16
        };
        code += 1;
    }
    table
}

/// µ-law code for a 14-bit sample (−8192..=8191).
const fn ulaw_code_for(sample14: i32) -> u8 {
    let (sign, magnitude) = if sample14 < 0 {
        (0x00u8, !sample14)
    } else {
        (0x80u8, sample14)
    };
    let mut biased = magnitude + ULAW_BIAS;
    if biased > ULAW_CLIP {
        biased = ULAW_CLIP;
    }
    // biased is in 33..=8191: its top bit is bit 5 (exponent 0) .. bit 12 (exponent 7).
    let exponent = (31 - (biased as u32).leading_zeros()) - 5;
    let mantissa = ((biased >> (exponent + 1)) & 0x0F) as u8;
    sign | (0x7F ^ (((exponent as u8) << 4) | mantissa))
}

/// A-law code for a 12-bit sample (−2048..=2047), i.e. a 16-bit sample `>> 4`.
const fn alaw_code_for(sample12: i32) -> u8 {
    let (sign, magnitude) = if sample12 < 0 {
        (0x00u8, !sample12)
    } else {
        (0x80u8, sample12)
    };
    // magnitude is in 0..=2047. Segment 0 and 1 both step by 1 here.
    let number = if magnitude < 16 {
        magnitude as u8
    } else {
        // top bit is bit 4 (exponent 1) .. bit 10 (exponent 7).
        let exponent = (31 - (magnitude as u32).leading_zeros()) - 3;
        let mantissa = ((magnitude >> (exponent - 1)) & 0x0F) as u8;
        ((exponent as u8) << 4) | mantissa
    };
    (sign | number) ^ 0x55
}

const fn build_ulaw_encode() -> [u8; 16384] {
    let mut table = [0u8; 16384];
    let mut index = 0usize;
    while index < 16384 {
        // Sign-extend the 14-bit index.
        let sample14 = ((index as i32) << 18) >> 18;
        table[index] = ulaw_code_for(sample14);
        index += 1;
    }
    table
}

const fn build_alaw_encode() -> [u8; 4096] {
    let mut table = [0u8; 4096];
    let mut index = 0usize;
    while index < 4096 {
        let sample12 = ((index as i32) << 20) >> 20;
        table[index] = alaw_code_for(sample12);
        index += 1;
    }
    table
}

/// Table 3 on decoder output numbers: µ-law number → 0-based A-law number.
const fn ulaw_number_to_alaw_number(n: u8) -> u8 {
    // Level of the µ-law decoder output, in A-law units × 10^6.
    let level = ulaw_number_value(n) as u64 * ULAW_UNIT_IN_ALAW_MICRO;
    let mut best = 0u8;
    let mut candidate = 1u8;
    while candidate < 128 {
        if (alaw_decision_value(candidate) as u64) * 1_000_000 <= level {
            best = candidate;
        }
        candidate += 1;
    }
    best
}

const fn build_ulaw_to_alaw() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut code = 0usize;
    while code < 256 {
        // Both laws mark positive values with bit 8 (0x80) set in the code word.
        let sign = code as u8 & 0x80;
        let number = !(code as u8) & 0x7F;
        table[code] = (sign | ulaw_number_to_alaw_number(number)) ^ 0x55;
        code += 1;
    }
    table
}

/// Largest µ-law number whose Table 3 image is A-law number `a`, if any.
const fn largest_ulaw_preimage(u_to_a: &[u8; 256], a: u8) -> Option<u8> {
    // Positive µ-law codes 0xFF - n hold number n.
    let mut n = 128u8;
    while n > 0 {
        n -= 1;
        let alaw_code = u_to_a[(0xFF - n) as usize];
        if (alaw_code ^ 0x55) & 0x7F == a {
            return Some(n);
        }
    }
    None
}

const fn build_alaw_to_ulaw(u_to_a: &[u8; 256]) -> [u8; 256] {
    let mut numbers = [0u8; 128];
    let mut a = 0u8;
    while a < 128 {
        numbers[a as usize] = match largest_ulaw_preimage(u_to_a, a) {
            Some(n) => n,
            None => match largest_ulaw_preimage(u_to_a, a ^ 1) {
                Some(n) => n,
                // Unreachable for the G.711 laws (every gap has a reached
                // neighbour); kept total so the build cannot panic.
                None => 0,
            },
        };
        a += 1;
    }
    let mut table = [0u8; 256];
    let mut code = 0usize;
    while code < 256 {
        let plain = code as u8 ^ 0x55;
        let sign = plain & 0x80;
        table[code] = sign | (0x7F ^ numbers[(plain & 0x7F) as usize]);
        code += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_silence_codes_decode_to_zero() {
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
    }

    #[test]
    fn alaw_smallest_codes_decode_to_plus_and_minus_eight() {
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
    }

    #[test]
    fn peaks_decode_to_the_g191_extremes() {
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
    }

    #[test]
    fn zero_and_minus_one_encode_to_the_two_zero_codes() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(-1), 0x7F);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(-1), 0x55);
    }

    #[test]
    fn full_scale_inputs_clip_to_the_peak_codes() {
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
    }
}
