//! In-band DTMF detection on synthesised signals: every key at several
//! levels and twists, with and without white noise; durations (40/50/100 ms
//! accepted once, 20 ms rejected) at every block alignment; digit sequences;
//! frequency tolerance (±1.5 % accepted, ±3.5 % rejected); G.711 payloads;
//! and rejection of silence, noise, single tones, dial tone and music-like
//! chords. All deterministic: seeded noise, no clocks.

mod support;

use carillon_codec::Codec;
use carillon_dtmf::{Digit, DtmfDetector, DtmfError, DtmfEvent};
use support::*;

fn all_keys() -> String {
    Digit::ALL.iter().map(|d| d.as_char()).collect()
}

/// Asserts that `signal` gives exactly one press of `digit` (Began then Ended).
fn assert_one_press(signal: &[i16], digit: Digit, what: &str) {
    let events = detect(signal, 160);
    assert_eq!(
        (began(&events), ended(&events)),
        (digit.to_string(), digit.to_string()),
        "{what}: {events:?}"
    );
}

fn assert_no_digit(signal: &[i16], what: &str) {
    for frame in [160, 240] {
        let events = detect(signal, frame);
        assert!(events.is_empty(), "{what} (frames of {frame}): {events:?}");
    }
}

#[test]
fn every_key_is_detected_once_at_levels_from_minus_3_to_minus_30_dbfs_per_tone() {
    for level in [-3.0, -6.0, -10.0, -16.0, -20.0, -26.0, -30.0] {
        for d in Digit::ALL {
            let s = padded(ms(30), &tone(d, level, level, 1.0, ms(100)), ms(100));
            assert_one_press(&s, d, &format!("{d} at {level} dBFS per tone"));
        }
    }
}

#[test]
fn every_key_is_detected_with_a_twist_of_plus_or_minus_4_db_and_normal_twist_of_8_db() {
    for level in [-6.0, -12.0, -20.0, -26.0] {
        for twist in [-4.0, 4.0, 8.0] {
            for d in Digit::ALL {
                // `twist` is high group minus low group; the louder tone is at `level`.
                let (low, high) = if twist > 0.0 {
                    (level - twist, level)
                } else {
                    (level, level + twist)
                };
                let s = padded(ms(30), &tone(d, low, high, 1.0, ms(100)), ms(100));
                assert_one_press(&s, d, &format!("{d} at {level} dBFS, twist {twist} dB"));
            }
        }
    }
}

#[test]
fn excessive_twist_and_tones_below_the_level_floor_are_rejected() {
    for d in Digit::ALL {
        let s = padded(ms(30), &tone(d, -6.0, -20.0, 1.0, ms(100)), ms(100));
        assert_no_digit(&s, &format!("{d} with 14 dB reverse twist"));
        let s = padded(ms(30), &tone(d, -26.0, -6.0, 1.0, ms(100)), ms(100));
        assert_no_digit(&s, &format!("{d} with 20 dB normal twist"));
        let s = padded(ms(30), &tone(d, -44.0, -44.0, 1.0, ms(100)), ms(100));
        assert_no_digit(&s, &format!("{d} at -44 dBFS per tone"));
    }
}

#[test]
fn every_key_is_detected_in_white_noise_15_db_below_each_tone() {
    let mut seed = 1;
    for level in [-6.0, -16.0, -26.0, -30.0] {
        for twist in [-4.0, 0.0, 4.0] {
            for d in Digit::ALL {
                let (low, high) = (level, level + twist);
                let mut s = padded(ms(30), &tone(d, low, high, 1.0, ms(100)), ms(100));
                add_noise(&mut s, level - 15.0, seed);
                seed += 1;
                assert_one_press(&s, d, &format!("{d} at {level}/{twist} dB in noise"));
            }
        }
    }
}

#[test]
fn tones_of_40_50_and_100_ms_are_each_detected_exactly_once_at_every_alignment() {
    for duration in [40, 50, 100] {
        for lead in (0..102).step_by(7) {
            for d in [Digit::ALL[0], Digit::ALL[5], Digit::ALL[10], Digit::ALL[15]] {
                let s = padded(lead, &tone(d, -10.0, -10.0, 1.0, ms(duration)), ms(80));
                assert_one_press(
                    &s,
                    d,
                    &format!("{d} for {duration} ms after {lead} samples"),
                );
                let mut noisy = s.clone();
                add_noise(&mut noisy, -30.0, (duration * 1000 + lead) as u64);
                assert_one_press(&noisy, d, &format!("{d} {duration} ms, lead {lead}, noise"));
            }
        }
    }
}

#[test]
fn tones_of_20_ms_are_rejected_at_every_alignment_with_and_without_noise() {
    for lead in 0..102 {
        for (i, d) in Digit::ALL.into_iter().enumerate() {
            // Vary where in the two tones' beat the burst starts.
            let skip = (lead * 7 + i * 3) % 23;
            let burst = tone(d, -6.0, -6.0, 1.0, ms(20) + skip);
            let s = padded(lead, &burst[skip..], ms(60));
            assert_no_digit(&s, &format!("20 ms {d} after {lead} samples"));
            let mut noisy = s.clone();
            add_noise(
                &mut noisy,
                -26.0,
                lead as u64 * 16 + d.row() as u64 * 4 + d.column() as u64,
            );
            assert_no_digit(&noisy, &format!("20 ms {d} after {lead} samples, noise"));
        }
    }
}

#[test]
fn a_press_reports_its_start_and_a_duration_close_to_the_tone_length() {
    let d = Digit::from_char('7').unwrap();
    for lead in (0..102).step_by(17) {
        let events = detect(
            &padded(
                ms(200) + lead,
                &tone(d, -10.0, -10.0, 1.0, ms(100)),
                ms(100),
            ),
            160,
        );
        let [DtmfEvent::Began { start_sample, .. }, DtmfEvent::Ended {
            duration_ms,
            start_sample: s2,
            ..
        }] = events[..]
        else {
            panic!("one press expected: {events:?}");
        };
        assert_eq!(start_sample, s2);
        let true_start = (ms(200) + lead) as u64;
        assert!(
            start_sample + 32 >= true_start && start_sample < true_start + 102,
            "start {start_sample} vs {true_start}"
        );
        assert!(
            (75..=105).contains(&duration_ms),
            "duration {duration_ms} ms"
        );
    }
}

#[test]
fn frames_of_any_size_give_the_same_events() {
    let mut s = silence(ms(13));
    for c in "159#".chars() {
        s.extend(tone(
            Digit::from_char(c).unwrap(),
            -12.0,
            -10.0,
            1.0,
            ms(60),
        ));
        s.extend(silence(ms(45)));
    }
    let reference = detect(&s, 160);
    assert_eq!(began(&reference), "159#");
    for frame in [1, 7, 80, 102, 240, 320, 1000, s.len()] {
        assert_eq!(detect(&s, frame), reference, "frames of {frame}");
    }
}

#[test]
fn sequences_with_40_to_50_ms_tones_and_gaps_are_detected_in_order() {
    let keys = all_keys() + "1155990##";
    for (on, off) in [(40, 40), (50, 50), (40, 50), (50, 40)] {
        for lead in [0, 33, 77] {
            let mut s = silence(lead);
            for c in keys.chars() {
                s.extend(tone(Digit::from_char(c).unwrap(), -10.0, -8.0, 1.0, ms(on)));
                s.extend(silence(ms(off)));
            }
            let events = detect(&s, 160);
            assert_eq!(began(&events), keys, "{on}/{off} ms, lead {lead}");
            assert_eq!(ended(&events), keys, "{on}/{off} ms, lead {lead}");
        }
    }
}

#[test]
fn a_10_ms_drop_out_inside_a_tone_does_not_split_the_press() {
    let d = Digit::from_char('0').unwrap();
    for at in (0..102).step_by(11) {
        let mut s = silence(ms(20));
        s.extend(tone(d, -10.0, -10.0, 1.0, ms(60) + at));
        s.extend(silence(ms(10)));
        s.extend(tone(d, -10.0, -10.0, 1.0, ms(60)));
        s.extend(silence(ms(60)));
        assert_one_press(&s, d, &format!("drop-out at +{at}"));
    }
}

#[test]
fn frequency_offsets_of_1_5_percent_are_accepted_and_3_5_percent_rejected() {
    for d in Digit::ALL {
        for scale in [0.985, 1.015] {
            let s = padded(ms(30), &tone(d, -10.0, -10.0, scale, ms(100)), ms(100));
            assert_one_press(&s, d, &format!("{d} scaled by {scale}"));
        }
        for scale in [0.965, 1.035, 0.95, 1.05] {
            let s = padded(ms(30), &tone(d, -10.0, -10.0, scale, ms(100)), ms(100));
            assert_no_digit(&s, &format!("{d} scaled by {scale}"));
        }
    }
}

#[test]
fn g711_payloads_are_decoded_and_detected() {
    for codec in [Codec::Pcmu, Codec::Pcma] {
        for level in [-6.0, -20.0, -28.0] {
            let mut s = silence(ms(40));
            for c in all_keys().chars() {
                s.extend(tone(
                    Digit::from_char(c).unwrap(),
                    level,
                    level,
                    1.0,
                    ms(60),
                ));
                s.extend(silence(ms(60)));
            }
            let events = detect_g711(codec, &s);
            assert_eq!(began(&events), all_keys(), "{codec:?} at {level} dBFS");
        }
    }
}

#[test]
fn sixteen_khz_audio_is_supported_and_odd_rates_are_refused() {
    let d = Digit::from_char('D').unwrap();
    let mut tone16 = vec![0i16; 1600];
    carillon_dtmf::DtmfGenerator::with_options(d, -10.0, -10.0, 1.0, 16000).fill(&mut tone16);
    let mut det = DtmfDetector::new(16000).unwrap();
    det.push(&vec![0; 320]);
    det.push(&tone16);
    det.push(&vec![0; 1600]);
    let events: Vec<_> = std::iter::from_fn(|| det.poll_event()).collect();
    assert_eq!(began(&events), "D");
    assert_eq!(
        DtmfDetector::new(11025).unwrap_err(),
        DtmfError::UnsupportedSampleRate { rate: 11025 }
    );
    assert!(DtmfDetector::new(0).is_err());
}

#[test]
fn silence_noise_and_single_tones_give_no_digit() {
    assert_no_digit(&silence(ms(2000)), "silence");
    for (i, level) in [-50.0, -30.0, -20.0, -10.0, -3.0].into_iter().enumerate() {
        let mut s = silence(ms(2000));
        add_noise(&mut s, level, 100 + i as u64);
        assert_no_digit(&s, &format!("white noise at {level} dBFS"));
    }
    for level in [-6.0, -20.0] {
        assert_no_digit(&sines(&[(1000.0, level)], ms(2000), 0), "1 kHz");
        for hz in [697.0, 941.0, 1209.0, 1633.0] {
            assert_no_digit(
                &sines(&[(hz, level)], ms(1000), 0),
                &format!("{hz} Hz alone"),
            );
        }
    }
}

#[test]
fn dial_busy_and_ringback_tones_give_no_digit() {
    // North American dial tone, ringback and busy (Bellcore precise tones).
    for parts in [
        [(350.0, -13.0), (440.0, -13.0)],
        [(440.0, -19.0), (480.0, -19.0)],
        [(480.0, -24.0), (620.0, -24.0)],
        [(425.0, -10.0), (425.0, -60.0)],
    ] {
        assert_no_digit(&sines(&parts, ms(3000), 0), &format!("{parts:?}"));
    }
}

/// A note with harmonics falling as 1/k, like a plucked or bowed string.
fn note(f0: f64, db: f64, harmonics: usize) -> Vec<(f64, f64)> {
    (1..=harmonics)
        .map(|k| (f0 * k as f64, db - 20.0 * (k as f64).log10()))
        .filter(|&(hz, _)| hz < 3900.0)
        .collect()
}

#[test]
fn music_like_chords_and_melodies_give_no_digit() {
    let hz = |midi: i32| 440.0 * 2f64.powf(f64::from(midi - 69) / 12.0);
    // I-vi-IV-V in C, triads voiced around middle C, 400 ms each, then the
    // same an octave and a fifth higher, then an arpeggiated melody.
    let chords: [[i32; 3]; 8] = [
        [60, 64, 67],
        [57, 60, 64],
        [53, 57, 60],
        [55, 59, 62],
        [72, 76, 79],
        [69, 72, 76],
        [65, 69, 72],
        [67, 71, 74],
    ];
    let mut music = Vec::new();
    for chord in chords {
        let parts: Vec<_> = chord.iter().flat_map(|&m| note(hz(m), -14.0, 8)).collect();
        music.extend(sines(&parts, ms(400), music.len()));
    }
    for m in [
        60, 64, 67, 72, 76, 79, 84, 79, 76, 72, 81, 77, 74, 71, 67, 62,
    ] {
        let parts = note(hz(m), -8.0, 6);
        music.extend(sines(&parts, ms(125), music.len()));
    }
    // Two-note intervals whose fundamentals or harmonics fall near a DTMF
    // row and column pair (697 Hz with a note near 1209 Hz and so on).
    for (a, b) in [
        (697.0 / 2.0, 1209.0 / 2.0),
        (770.0 / 2.0, 1336.0 / 3.0),
        (174.25, 348.5),
    ] {
        let parts: Vec<_> = note(a, -10.0, 6)
            .into_iter()
            .chain(note(b, -10.0, 6))
            .collect();
        music.extend(sines(&parts, ms(500), music.len()));
    }
    assert_no_digit(&music, "music");
    let mut noisy = music.clone();
    add_noise(&mut noisy, -40.0, 7);
    assert_no_digit(&noisy, "music with noise");
}

#[test]
fn a_tone_pair_carrying_a_strong_second_harmonic_is_rejected_as_voice() {
    // A voiced sound whose harmonics fall on a row and a column also shows
    // their second harmonics; a DTMF pair has none.
    for d in Digit::ALL {
        let (low, high) = d.frequencies();
        let clean = sines(&[(low, -10.0), (high, -10.0)], ms(100), 0);
        assert_one_press(&padded(ms(30), &clean, ms(100)), d, &format!("{d} clean"));
        // The column's harmonic is held to -3 dB of the column tone; the
        // row's (which a column tone can leak into) to the stronger tone, so
        // its case here (2 dB above the tones) is also refused by the
        // signal-to-total check: the column case pins the harmonic check.
        for (harmonic, level) in [(2.0 * low, -8.0), (2.0 * high, -12.0)] {
            let voiced = sines(
                &[(low, -10.0), (high, -10.0), (harmonic, level)],
                ms(100),
                0,
            );
            assert_no_digit(
                &padded(ms(30), &voiced, ms(100)),
                &format!("{d} with {harmonic} Hz at {level} dBFS"),
            );
        }
    }
}

#[test]
fn every_key_of_40_ms_is_accepted_at_every_block_alignment_and_beat_phase() {
    for lead in 0..102 {
        for (i, d) in Digit::ALL.into_iter().enumerate() {
            for skip in [0, 5, 11, 17] {
                // Start the burst `skip` samples into the two tones' beat.
                let skip = skip + i % 3;
                let burst = tone(d, -10.0, -10.0, 1.0, ms(40) + skip);
                let s = padded(lead, &burst[skip..], ms(60));
                assert_one_press(&s, d, &format!("40 ms {d}, lead {lead}, phase {skip}"));
            }
        }
    }
}

#[test]
fn one_tone_off_by_3_5_percent_is_rejected_and_by_1_5_percent_accepted() {
    for d in Digit::ALL {
        let (low, high) = d.frequencies();
        for twist in [-4.0, 0.0, 4.0] {
            let pair = |sl: f64, sh: f64| {
                let body = sines(&[(low * sl, -10.0), (high * sh, -10.0 + twist)], ms(100), 0);
                padded(ms(30), &body, ms(100))
            };
            for (sl, sh) in [(1.035, 1.0), (0.965, 1.0), (1.0, 1.035), (1.0, 0.965)] {
                assert_no_digit(
                    &pair(sl, sh),
                    &format!("{d} scaled {sl}/{sh}, twist {twist}"),
                );
            }
            for (sl, sh) in [
                (1.015, 1.0),
                (0.985, 1.0),
                (1.0, 1.015),
                (1.0, 0.985),
                (1.015, 0.985),
                (0.985, 1.015),
            ] {
                assert_one_press(
                    &pair(sl, sh),
                    d,
                    &format!("{d} scaled {sl}/{sh}, twist {twist}"),
                );
            }
        }
    }
}
