//! Payload-level G.711 work: the [`Codec`] enum and whole-buffer decode,
//! encode and transcode.
//!
//! Owns the mapping between RTP static payload types (RFC 3551 §6: PCMU = 0,
//! PCMA = 8, both 8000 Hz, one byte per sample) and the sample laws in
//! [`crate::g711`]. It does not own RTP headers or packet timing. Nothing here
//! allocates: outputs are caller slices and the transcoding tables are
//! `'static`.

use crate::g711;

/// The G.711 codecs Carillon carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, RTP payload type 0.
    Pcmu,
    /// G.711 A-law, RTP payload type 8.
    Pcma,
}

impl Codec {
    /// RTP clock rate of both G.711 codecs.
    pub const CLOCK_RATE: u32 = 8000;

    /// The RFC 3551 static payload type.
    pub const fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The codec for a static payload type, if it is one of ours.
    pub const fn from_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// The SDP encoding name (`a=rtpmap`), e.g. `PCMU`.
    pub const fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// The RTP clock rate in Hz.
    pub const fn clock_rate(self) -> u32 {
        Self::CLOCK_RATE
    }

    /// Encoded bytes per sample.
    pub const fn bytes_per_sample(self) -> usize {
        1
    }

    /// The code word for silence (a zero sample).
    pub const fn silence(self) -> u8 {
        match self {
            Codec::Pcmu => 0xFF,
            Codec::Pcma => 0xD5,
        }
    }

    /// Decodes one code word.
    #[inline]
    pub fn decode_sample(self, code: u8) -> i16 {
        match self {
            Codec::Pcmu => g711::ulaw_decode(code),
            Codec::Pcma => g711::alaw_decode(code),
        }
    }

    /// Encodes one sample.
    #[inline]
    pub fn encode_sample(self, sample: i16) -> u8 {
        match self {
            Codec::Pcmu => g711::ulaw_encode(sample),
            Codec::Pcma => g711::alaw_encode(sample),
        }
    }
}

/// Errors from whole-buffer operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The output slice cannot hold the converted input.
    #[error("output buffer too small: need {needed} samples, have {available}")]
    OutputTooSmall { needed: usize, available: usize },
}

fn check_output(needed: usize, available: usize) -> Result<(), CodecError> {
    if available < needed {
        Err(CodecError::OutputTooSmall { needed, available })
    } else {
        Ok(())
    }
}

/// Decodes a payload into linear samples; returns the number of samples written.
pub fn decode(codec: Codec, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
    check_output(payload.len(), out.len())?;
    let table = match codec {
        Codec::Pcmu => &g711::ULAW_DECODE,
        Codec::Pcma => &g711::ALAW_DECODE,
    };
    for (sample, &code) in out.iter_mut().zip(payload) {
        *sample = table[code as usize];
    }
    Ok(payload.len())
}

/// Encodes linear samples into a payload; returns the number of bytes written.
pub fn encode(codec: Codec, samples: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
    check_output(samples.len(), out.len())?;
    match codec {
        Codec::Pcmu => {
            for (code, &sample) in out.iter_mut().zip(samples) {
                *code = g711::ulaw_encode(sample);
            }
        }
        Codec::Pcma => {
            for (code, &sample) in out.iter_mut().zip(samples) {
                *code = g711::alaw_encode(sample);
            }
        }
    }
    Ok(samples.len())
}

/// Converts a payload between codecs with G.711's direct conversion tables.
///
/// Returns the number of bytes written (always `input.len()`).
pub fn transcode(
    from: Codec,
    to: Codec,
    input: &[u8],
    out: &mut [u8],
) -> Result<usize, CodecError> {
    Transcoder::new(from, to).transcode(input, out)
}

/// Converts a payload between codecs in place.
pub fn transcode_in_place(from: Codec, to: Codec, payload: &mut [u8]) {
    Transcoder::new(from, to).transcode_in_place(payload);
}

/// A fixed `from → to` conversion; cheap to copy and keep per bridged leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transcoder {
    from: Codec,
    to: Codec,
    table: Option<&'static [u8; 256]>,
}

impl Transcoder {
    /// A transcoder from `from` to `to` (identity when they are equal).
    pub fn new(from: Codec, to: Codec) -> Self {
        let table = match (from, to) {
            (Codec::Pcmu, Codec::Pcma) => Some(&g711::ULAW_TO_ALAW),
            (Codec::Pcma, Codec::Pcmu) => Some(&g711::ALAW_TO_ULAW),
            _ => None,
        };
        Transcoder { from, to, table }
    }

    /// The input codec.
    pub fn from_codec(&self) -> Codec {
        self.from
    }

    /// The output codec.
    pub fn to_codec(&self) -> Codec {
        self.to
    }

    /// Whether this transcoder leaves payloads unchanged.
    pub fn is_identity(&self) -> bool {
        self.table.is_none()
    }

    /// Converts `input` into `out`; returns the number of bytes written.
    #[inline]
    pub fn transcode(&self, input: &[u8], out: &mut [u8]) -> Result<usize, CodecError> {
        check_output(input.len(), out.len())?;
        match self.table {
            Some(table) => {
                for (dst, &src) in out.iter_mut().zip(input) {
                    *dst = table[src as usize];
                }
            }
            None => {
                for (dst, &src) in out.iter_mut().zip(input) {
                    *dst = src;
                }
            }
        }
        Ok(input.len())
    }

    /// Converts a payload in place.
    #[inline]
    pub fn transcode_in_place(&self, payload: &mut [u8]) {
        if let Some(table) = self.table {
            for byte in payload.iter_mut() {
                *byte = table[*byte as usize];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_types_round_trip_through_the_enum() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            assert_eq!(Codec::from_payload_type(codec.payload_type()), Some(codec));
            assert_eq!(codec.clock_rate(), 8000);
        }
        assert_eq!(Codec::Pcmu.payload_type(), 0);
        assert_eq!(Codec::Pcma.payload_type(), 8);
        assert_eq!(Codec::from_payload_type(18), None);
    }

    #[test]
    fn silence_codes_decode_to_zero() {
        assert_eq!(Codec::Pcmu.decode_sample(Codec::Pcmu.silence()), 0);
        assert_eq!(Codec::Pcma.decode_sample(Codec::Pcma.silence()).abs(), 8);
        assert_eq!(Codec::Pcma.encode_sample(0), Codec::Pcma.silence());
    }

    #[test]
    fn transcode_into_a_short_buffer_is_an_error() {
        let input = [0u8; 160];
        let mut out = [0u8; 100];
        assert_eq!(
            transcode(Codec::Pcmu, Codec::Pcma, &input, &mut out),
            Err(CodecError::OutputTooSmall {
                needed: 160,
                available: 100
            })
        );
    }

    #[test]
    fn decode_into_a_short_buffer_is_an_error() {
        let mut out = [0i16; 10];
        assert!(decode(Codec::Pcmu, &[0xFF; 11], &mut out).is_err());
        assert!(encode(Codec::Pcmu, &[0; 11], &mut [0u8; 10]).is_err());
    }

    #[test]
    fn transcode_in_place_matches_transcode_into_a_buffer() {
        let input: Vec<u8> = (0..=255u8).collect();
        for (from, to) in [
            (Codec::Pcmu, Codec::Pcma),
            (Codec::Pcma, Codec::Pcmu),
            (Codec::Pcmu, Codec::Pcmu),
        ] {
            let mut out = [0u8; 256];
            assert_eq!(transcode(from, to, &input, &mut out), Ok(256));
            let mut in_place = input.clone();
            transcode_in_place(from, to, &mut in_place);
            assert_eq!(&out[..], &in_place[..]);
        }
    }

    #[test]
    fn same_codec_transcoder_is_identity() {
        let t = Transcoder::new(Codec::Pcma, Codec::Pcma);
        assert!(t.is_identity());
        let mut buf = [1u8, 2, 3];
        t.transcode_in_place(&mut buf);
        assert_eq!(buf, [1, 2, 3]);
    }

    #[test]
    fn encode_then_decode_a_payload_keeps_its_length() {
        let pcm: Vec<i16> = (0..160).map(|i| (i * 100 - 8000) as i16).collect();
        let mut payload = [0u8; 160];
        assert_eq!(encode(Codec::Pcma, &pcm, &mut payload), Ok(160));
        let mut back = [0i16; 160];
        assert_eq!(decode(Codec::Pcma, &payload, &mut back), Ok(160));
        for (a, b) in pcm.iter().zip(back.iter()) {
            assert!((i32::from(*a) - i32::from(*b)).abs() <= 128, "{a} vs {b}");
        }
    }
}
