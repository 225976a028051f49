//! Recordings and the switch's start-up: a WAV file a killed switch left
//! unfinished (header sizes stale, audio on disk) is repaired before the
//! switch takes calls, under the configured `[recording] dir` (default
//! `var/recordings` next to the database), so hound opens it with all
//! the audio that was written.

mod common;

use std::f64::consts::PI;
use std::fs;
use std::path::Path;
use std::time::Duration;

use common::{Env, Options};

const RATE: u32 = 8000;

/// `seconds` of a `freq` Hz sine as 16-bit samples at 8 kHz.
fn tone(freq: f64, seconds: f64) -> Vec<i16> {
    let n = (seconds * f64::from(RATE)) as usize;
    (0..n)
        .map(|i| (8000.0 * (2.0 * PI * freq * i as f64 / f64::from(RATE)).sin()) as i16)
        .collect()
}

/// What a writer killed mid-call leaves: a mono 8 kHz 16-bit WAV whose
/// RIFF and data sizes still say "no audio", the samples after it, and
/// half a sample frame at the end.
fn unfinished_wav(samples: &[i16]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&36u32.to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&RATE.to_le_bytes());
    b.extend_from_slice(&(RATE * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&0u32.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&s.to_le_bytes());
    }
    b.push(0x7f);
    b
}

/// Relative power of `freq` in `samples` (Goertzel), normalised by the
/// signal's total energy: near 1 for a pure tone at `freq`, near 0 without it.
fn tone_share(samples: &[i16], freq: f64) -> f64 {
    let n = samples.len() as f64;
    let k = (0.5 + n * freq / f64::from(RATE)).floor();
    let w = 2.0 * PI * k / n;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    let mut energy = 0.0f64;
    for &x in samples {
        let x = f64::from(x);
        energy += x * x;
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    if energy == 0.0 {
        0.0
    } else {
        2.0 * power / (n * energy)
    }
}

fn read_wav(path: &Path) -> (hound::WavSpec, Vec<i16>) {
    let mut reader = hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("{} is not a valid WAV: {e}", path.display()));
    let spec = reader.spec();
    let samples = reader
        .samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (spec, samples)
}

#[test]
fn an_unfinished_recording_is_repaired_at_start_with_all_its_audio() {
    let mut env = Env::new(&Options::default());
    let dir = env.path().join("var/recordings");
    fs::create_dir_all(&dir).unwrap();
    let killed = dir.join("1765000000.42.wav");
    let audio = tone(1000.0, 2.5);
    fs::write(&killed, unfinished_wav(&audio)).unwrap();
    assert!(
        hound::WavReader::open(&killed)
            .map(|r| r.duration())
            .unwrap_or(0)
            < 100,
        "the damaged file must not already read as the audio it holds"
    );
    // A finished recording next to it is left alone.
    let finished = dir.join("1765000000.41.wav");
    {
        let mut w = hound::WavWriter::create(
            &finished,
            hound::WavSpec {
                channels: 1,
                sample_rate: RATE,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            },
        )
        .unwrap();
        for s in tone(400.0, 1.0) {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
    }
    let finished_bytes = fs::read(&finished).unwrap();

    let sw = env.start();
    assert!(
        sw.wait_log("recordings checked", Duration::from_secs(5)),
        "{}",
        sw.log()
    );
    let log = sw.log();
    assert!(
        log.contains("files=2 repaired=1 failed=0"),
        "start-up summary: {log}"
    );
    assert!(
        log.contains("unfinished recording repaired") && log.contains("1765000000.42.wav"),
        "{log}"
    );
    let (spec, samples) = read_wav(&killed);
    assert_eq!((spec.channels, spec.sample_rate), (1, RATE));
    assert_eq!(
        samples.len(),
        audio.len(),
        "every whole sample written before the kill is in the repaired file"
    );
    assert!(
        tone_share(&samples, 1000.0) > 0.8,
        "the 1 kHz tone written before the kill is what the file plays"
    );
    assert_eq!(
        fs::read(&finished).unwrap(),
        finished_bytes,
        "a finished recording is not rewritten"
    );
}

#[test]
fn a_configured_recording_dir_is_created_and_checked_at_start() {
    let mut env = Env::new(&Options::default());
    let dir = env.path().join("elsewhere/rec");
    let main = env.config_dir().join("carillon.toml");
    let text = fs::read_to_string(&main).unwrap();
    fs::write(
        &main,
        common::set_keys(
            &text,
            "recording",
            &[("dir", format!("\"{}\"", dir.display()))],
        ),
    )
    .unwrap();
    let sw = env.start();
    assert!(
        sw.wait_log("recordings checked", Duration::from_secs(5)),
        "{}",
        sw.log()
    );
    assert!(dir.is_dir(), "the recording directory is created at start");
    assert!(
        sw.log().contains(&format!("dir={}", dir.display())),
        "{}",
        sw.log()
    );
}
