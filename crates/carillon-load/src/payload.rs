//! The RTP payload we send and check: a marker and a packet counter,
//! encoded so that they survive G.711 µ-law ↔ A-law transcoding exactly.
//!
//! Owns the payload layout, its encoding in either law, and the check the
//! receiver makes. Sans-IO: bytes in, bytes out.
//!
//! Layout (payload bytes, in the *sender's* law):
//!
//! | bytes | content |
//! |---|---|
//! | 0..4 | the marker: µ-law codes `C L D 1` ([`MARKER_ULAW`]), or their A-law images |
//! | 4..12 | the 32-bit counter, one hex digit per byte, most significant first, each digit one of [`DIGITS_ULAW`] (or its A-law image) |
//! | 12.. | the sender's silence code (not checked) |
//!
//! A switch that transcodes maps every byte through the G.711 conversion
//! table (µ→A is Table 3 `ulaw_to_alaw`, A→µ is Table 4 `alaw_to_ulaw`).
//! The marker and the sixteen digit codes are chosen among the µ-law codes
//! that (a) go µ→A→µ back to themselves, and (b) give the same A-law code
//! whether converted by Table 3 or by decode→encode through linear PCM (as
//! switches without a direct table do). An A-law sender sends the Table 3
//! image of the µ-law form. Because of (a), what a receiver sees depends
//! only on its *own* law, not on the sender's: a µ-law receiver sees the
//! µ-law form whether or not the switch transcoded, an A-law receiver the
//! A-law form. So one [`PayloadCheck`] per receiving law is exact, and a
//! switch that relabels the payload type without converting the bytes (or
//! converts twice, or mixes audio) is caught as a mismatch.

use carillon_codec::g711::{alaw_to_ulaw, ulaw_to_alaw};

use crate::config::Codec;

/// The marker in µ-law codes.
pub const MARKER_ULAW: [u8; 4] = *b"CLD1";

/// µ-law codes standing for the hex digits 0..=15 of the counter
/// (`P`..`_` in ASCII).
pub const DIGITS_ULAW: [u8; 16] = [
    0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x5B, 0x5C, 0x5D, 0x5E, 0x5F,
];

/// Bytes of marker plus counter at the start of every payload.
pub const HEADER_LEN: usize = 12;

/// Marks "not a digit" in [`PayloadCheck`]'s reverse table.
const NOT_A_DIGIT: u8 = 0xFF;

/// `ulaw` (a µ-law code) as the given law encodes the same level: itself,
/// or its G.711 Table 3 image.
pub fn from_ulaw(law: Codec, ulaw: u8) -> u8 {
    match law {
        Codec::Pcmu => ulaw,
        Codec::Pcma => ulaw_to_alaw(ulaw),
    }
}

/// What a transcoding switch does to one byte going from law `from` to law
/// `to` (identity when both are the same).
pub fn transcode(from: Codec, to: Codec, code: u8) -> u8 {
    match (from, to) {
        (Codec::Pcmu, Codec::Pcma) => ulaw_to_alaw(code),
        (Codec::Pcma, Codec::Pcmu) => alaw_to_ulaw(code),
        _ => code,
    }
}

/// Builds payloads in one law. Reuses one buffer.
#[derive(Debug, Clone)]
pub struct PayloadWriter {
    buf: Vec<u8>,
    digits: [u8; 16],
}

impl PayloadWriter {
    /// A writer for payloads of `len` bytes (at least [`HEADER_LEN`]) in
    /// `law`.
    pub fn new(law: Codec, len: usize) -> PayloadWriter {
        let mut buf = vec![law.silence(); len.max(HEADER_LEN)];
        for (b, m) in buf.iter_mut().zip(MARKER_ULAW) {
            *b = from_ulaw(law, m);
        }
        PayloadWriter {
            buf,
            digits: DIGITS_ULAW.map(|d| from_ulaw(law, d)),
        }
    }

    /// The payload carrying `counter`.
    pub fn write(&mut self, counter: u32) -> &[u8] {
        if let Some(field) = self.buf.get_mut(4..HEADER_LEN) {
            for (i, b) in field.iter_mut().enumerate() {
                let nibble = (counter >> (28 - 4 * i)) & 0xF;
                *b = self.digits.get(nibble as usize).copied().unwrap_or(0);
            }
        }
        &self.buf
    }
}

/// Checks payloads received in one law.
#[derive(Debug, Clone)]
pub struct PayloadCheck {
    marker: [u8; 4],
    digit_of: [u8; 256],
}

impl PayloadCheck {
    /// A check for payloads arriving in `law` (whatever law they were sent
    /// in, see the module doc).
    pub fn new(law: Codec) -> PayloadCheck {
        let mut digit_of = [NOT_A_DIGIT; 256];
        for (value, d) in (0u8..).zip(DIGITS_ULAW) {
            if let Some(slot) = digit_of.get_mut(usize::from(from_ulaw(law, d))) {
                *slot = value;
            }
        }
        PayloadCheck {
            marker: MARKER_ULAW.map(|m| from_ulaw(law, m)),
            digit_of,
        }
    }

    /// The counter the payload carries, or `None` when the marker or a
    /// digit is not what an exact G.711 relay or transcoder delivers.
    pub fn counter(&self, payload: &[u8]) -> Option<u32> {
        if payload.get(..4)? != self.marker {
            return None;
        }
        payload
            .get(4..HEADER_LEN)?
            .iter()
            .try_fold(0u32, |acc, &b| match self.digit_of.get(usize::from(b)) {
                Some(&d) if d != NOT_A_DIGIT => Some(acc << 4 | u32::from(d)),
                _ => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carillon_codec::g711::{alaw_decode, alaw_encode, ulaw_decode, ulaw_encode};

    const LAWS: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];

    fn header_codes() -> impl Iterator<Item = u8> {
        MARKER_ULAW.into_iter().chain(DIGITS_ULAW)
    }

    #[test]
    fn marker_and_digit_codes_go_ulaw_to_alaw_to_ulaw_unchanged() {
        for u in header_codes() {
            assert_eq!(alaw_to_ulaw(ulaw_to_alaw(u)), u, "µ-law {u:#04x}");
        }
    }

    #[test]
    fn their_alaw_images_go_alaw_to_ulaw_to_alaw_unchanged() {
        for u in header_codes() {
            let a = ulaw_to_alaw(u);
            assert_eq!(ulaw_to_alaw(alaw_to_ulaw(a)), a, "A-law {a:#04x}");
        }
    }

    #[test]
    fn transcoding_through_linear_pcm_gives_the_same_codes_as_the_g711_tables() {
        for u in header_codes() {
            let a = ulaw_to_alaw(u);
            assert_eq!(alaw_encode(ulaw_decode(u)), a, "µ-law {u:#04x}");
            assert_eq!(ulaw_encode(alaw_decode(a)), u, "A-law {a:#04x}");
        }
    }

    #[test]
    fn the_sixteen_digits_stay_distinct_in_both_laws() {
        for law in LAWS {
            let mut codes: Vec<u8> = DIGITS_ULAW.iter().map(|&d| from_ulaw(law, d)).collect();
            codes.sort_unstable();
            codes.dedup();
            assert_eq!(codes.len(), 16, "{law:?}");
        }
    }

    #[test]
    fn a_relayed_payload_gives_back_its_counter_in_either_law() {
        for law in LAWS {
            let mut w = PayloadWriter::new(law, 160);
            let check = PayloadCheck::new(law);
            for counter in [0, 1, 0x1234_5678, 0xFEDC_BA98, u32::MAX] {
                assert_eq!(check.counter(w.write(counter)), Some(counter), "{law:?}");
            }
        }
    }

    #[test]
    fn a_transcoded_payload_mapped_byte_by_byte_gives_back_its_counter() {
        for (from, to) in [(Codec::Pcmu, Codec::Pcma), (Codec::Pcma, Codec::Pcmu)] {
            let mut w = PayloadWriter::new(from, 160);
            let check = PayloadCheck::new(to);
            for counter in [0, 7, 0xA5A5_0F0F, u32::MAX] {
                let sent = w.write(counter).to_vec();
                let received: Vec<u8> = sent.iter().map(|&b| transcode(from, to, b)).collect();
                assert_eq!(check.counter(&received), Some(counter), "{from:?}→{to:?}");
            }
        }
    }

    #[test]
    fn the_payload_is_in_the_senders_law_with_its_silence_after_the_header() {
        let mut w = PayloadWriter::new(Codec::Pcma, 160);
        let p = w.write(0).to_vec();
        assert_eq!(p.len(), 160);
        assert_eq!(p.get(..4), Some(&[0x6F, 0x64, 0x6C, 0x18][..]));
        assert!(p.get(HEADER_LEN..).unwrap().iter().all(|&b| b == 0xD5));
        let mut w = PayloadWriter::new(Codec::Pcmu, 160);
        assert_eq!(w.write(0).get(..4), Some(&b"CLD1"[..]));
    }

    #[test]
    fn bytes_relabelled_to_the_other_law_without_conversion_are_a_mismatch() {
        for (from, to) in [(Codec::Pcmu, Codec::Pcma), (Codec::Pcma, Codec::Pcmu)] {
            let mut w = PayloadWriter::new(from, 160);
            assert_eq!(PayloadCheck::new(to).counter(w.write(42)), None);
        }
    }

    #[test]
    fn a_payload_converted_twice_is_a_mismatch() {
        let mut w = PayloadWriter::new(Codec::Pcmu, 160);
        let twice: Vec<u8> = w
            .write(42)
            .iter()
            .map(|&b| ulaw_to_alaw(ulaw_to_alaw(b)))
            .collect();
        assert_eq!(PayloadCheck::new(Codec::Pcma).counter(&twice), None);
    }

    #[test]
    fn a_damaged_digit_or_a_short_payload_is_a_mismatch() {
        let mut w = PayloadWriter::new(Codec::Pcmu, 160);
        let check = PayloadCheck::new(Codec::Pcmu);
        let mut p = w.write(42).to_vec();
        if let Some(b) = p.get_mut(7) {
            *b = 0xFF;
        }
        assert_eq!(check.counter(&p), None);
        assert_eq!(check.counter(&b"CLD1PPP"[..]), None);
        assert_eq!(check.counter(&[]), None);
    }

    #[test]
    fn a_payload_shorter_than_the_header_is_padded_to_it() {
        let mut w = PayloadWriter::new(Codec::Pcmu, 4);
        assert_eq!(w.write(3).len(), HEADER_LEN);
    }
}
