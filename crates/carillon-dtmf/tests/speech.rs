//! Speech must not be taken for digits: espeak-ng sentences (prompts and
//! counting from one to ten) in English, French, Arabic and Urdu, resampled
//! to 8 kHz (see tests/fixtures/README.md), pushed as linear PCM and as
//! G.711, at their own level and 10 dB louder, give zero digits; and the
//! same speech with real digits mixed in gives exactly those digits.

mod support;

use carillon_codec::Codec;
use carillon_dtmf::Digit;
use support::*;

const FIXTURES: [(&str, &[u8]); 5] = [
    ("speech-en.wav", include_bytes!("fixtures/speech-en.wav")),
    (
        "speech-en-f.wav",
        include_bytes!("fixtures/speech-en-f.wav"),
    ),
    ("speech-fr.wav", include_bytes!("fixtures/speech-fr.wav")),
    ("speech-ar.wav", include_bytes!("fixtures/speech-ar.wav")),
    ("speech-ur.wav", include_bytes!("fixtures/speech-ur.wav")),
];

fn speech(name: &str, bytes: &[u8]) -> Vec<i16> {
    let (rate, samples) = read_wav(bytes);
    assert_eq!(rate, 8000, "{name}");
    assert!(samples.len() > ms(3000), "{name} is a few seconds long");
    samples
}

fn gain(samples: &[i16], db: f64) -> Vec<i16> {
    let g = 10f64.powf(db / 20.0);
    samples
        .iter()
        .map(|&s| (f64::from(s) * g).round().clamp(-32768.0, 32767.0) as i16)
        .collect()
}

#[test]
fn speech_in_four_languages_gives_no_digit() {
    for (name, bytes) in FIXTURES {
        let s = speech(name, bytes);
        for db in [0.0, 10.0, -10.0] {
            for frame in [160, 240] {
                let events = detect(&gain(&s, db), frame);
                assert!(
                    events.is_empty(),
                    "{name} at {db:+} dB, frames {frame}: {events:?}"
                );
            }
        }
    }
}

#[test]
fn speech_through_g711_gives_no_digit() {
    for (name, bytes) in FIXTURES {
        let s = speech(name, bytes);
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let events = detect_g711(codec, &s);
            assert!(events.is_empty(), "{name} via {codec:?}: {events:?}");
        }
    }
}

#[test]
fn digits_mixed_into_pauses_of_speech_are_still_found() {
    // Speech, then the digits 2 0 2 6 (80 ms on, 80 ms off) over quiet speech
    // tail, then speech again: exactly the digits.
    let (name, bytes) = FIXTURES[0];
    let s = speech(name, bytes);
    let mut signal = s[..ms(2000)].to_vec();
    for c in "2026".chars() {
        signal.extend(tone(Digit::from_char(c).unwrap(), -10.0, -8.0, 1.0, ms(80)));
        signal.extend(silence(ms(80)));
    }
    signal.extend_from_slice(&s[ms(2000)..]);
    assert_eq!(began(&detect(&signal, 160)), "2026");
}
