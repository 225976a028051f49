//! The prompts shipped in `sounds/` (issue 13): every prompt of
//! `sounds/prompts.tsv` exists in every language of its header (each its own
//! rendering, not a copy of another language's), the numerals
//! and number words SayNumber needs are there, the letters a..z and the
//! star and hash keys SayAlpha and SayDigits say, the beep is a 1000 Hz tone,
//! the music on hold is long enough, and every WAV under `sounds/` is what the
//! media path plays without converting: RIFF/WAVE, PCM, 16-bit, mono,
//! 8000 Hz, not silent. The WAV header is parsed here by hand.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

/// A WAV file read and checked for the one format the prompts use.
struct Wav {
    samples: Vec<i16>,
}

impl Wav {
    const RATE: u32 = 8000;

    fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(Self::RATE)
    }

    /// Root mean square, as a fraction of full scale.
    fn rms(&self) -> f64 {
        if self.samples.is_empty() {
            return 0.0;
        }
        let sum: f64 = self.samples.iter().map(|&s| f64::from(s).powi(2)).sum();
        (sum / self.samples.len() as f64).sqrt() / 32768.0
    }

    /// Largest absolute sample, as a fraction of full scale.
    fn peak(&self) -> f64 {
        let max = self
            .samples
            .iter()
            .map(|&s| i32::from(s).abs())
            .max()
            .unwrap_or(0);
        f64::from(max) / 32768.0
    }

    /// Sign changes per second: twice the frequency of a pure tone.
    fn zero_crossings_per_second(&self) -> f64 {
        let crossings = self
            .samples
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count();
        crossings as f64 / self.seconds()
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses `path` as RIFF/WAVE PCM 16-bit mono 8000 Hz; `Err` says what is wrong.
fn read_wav(path: &Path) -> Result<Wav, String> {
    let b = fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    if b.len() < 12 || &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        return Err("not a RIFF/WAVE file".into());
    }
    let mut at = 12;
    let mut format_ok = false;
    let mut data: Option<&[u8]> = None;
    while at + 8 <= b.len() {
        let id = &b[at..at + 4];
        let len = u32_at(&b, at + 4) as usize;
        let body = at + 8;
        let end = body
            .checked_add(len)
            .filter(|&e| e <= b.len())
            .ok_or_else(|| format!("chunk {:?} runs past the end", String::from_utf8_lossy(id)))?;
        match id {
            b"fmt " => {
                if len < 16 {
                    return Err("fmt chunk too short".into());
                }
                let mut tag = u16_at(&b, body);
                if tag == 0xFFFE && len >= 26 {
                    // WAVE_FORMAT_EXTENSIBLE: the sub-format GUID starts with the tag.
                    tag = u16_at(&b, body + 24);
                }
                let channels = u16_at(&b, body + 2);
                let rate = u32_at(&b, body + 4);
                let bits = u16_at(&b, body + 14);
                if (tag, channels, rate, bits) != (1, 1, Wav::RATE, 16) {
                    return Err(format!(
                        "format tag {tag}, {channels} channel(s), {rate} Hz, {bits} bits; \
                         want PCM (1), 1 channel, 8000 Hz, 16 bits"
                    ));
                }
                format_ok = true;
            }
            b"data" => data = Some(&b[body..end]),
            _ => {}
        }
        at = end + (len & 1);
    }
    if !format_ok {
        return Err("no fmt chunk".into());
    }
    let data = data.ok_or("no data chunk")?;
    Ok(Wav {
        samples: data
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect(),
    })
}

fn sounds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sounds")
}

/// The non-comment, non-empty lines of a tab-separated table, split; the
/// first is the header.
fn table(name: &str) -> Vec<Vec<String>> {
    let text = fs::read_to_string(sounds_dir().join(name)).expect(name);
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

/// The languages of prompts.tsv's header and the prompt names.
fn prompts() -> (Vec<String>, Vec<Vec<String>>) {
    let mut rows = table("prompts.tsv");
    assert!(!rows.is_empty(), "prompts.tsv is empty");
    let header = rows.remove(0);
    assert_eq!(header[0], "name", "prompts.tsv header");
    (header[1..].to_vec(), rows)
}

/// Below this RMS (fraction of full scale, about -40 dBFS) a file is silent.
const SILENT_RMS: f64 = 0.01;

/// Checks `sounds/<rel>` and returns it, or pushes what is wrong to `problems`.
fn check_file(rel: &str, min_seconds: f64, problems: &mut Vec<String>) -> Option<Wav> {
    let wav = match read_wav(&sounds_dir().join(rel)) {
        Ok(w) => w,
        Err(e) => {
            problems.push(format!("{rel}: {e}"));
            return None;
        }
    };
    if wav.seconds() < min_seconds {
        problems.push(format!(
            "{rel}: {:.2} s long, want at least {min_seconds} s",
            wav.seconds()
        ));
    }
    if wav.rms() < SILENT_RMS {
        problems.push(format!(
            "{rel}: silent (RMS {:.4} of full scale)",
            wav.rms()
        ));
    }
    Some(wav)
}

fn assert_no_problems(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn every_prompt_exists_in_every_language_and_is_playable() {
    let (langs, rows) = prompts();
    assert_eq!(
        langs,
        ["en", "ar", "fr", "ur"],
        "the languages of the issue"
    );
    // The prompts the example call centre, voicemail and queues name.
    let names: HashSet<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    for required in [
        "lang-menu-part",
        "office-closed",
        "call-recorded",
        "callback-enter-number",
        "callback-you-entered",
        "callback-confirm",
        "callback-enter-alternative",
        "callback-thanks",
        "goodbye",
        "invalid",
        "please-hold",
        "all-agents-busy",
        "you-are-caller-number",
        "estimated-wait",
        "minutes",
        "vm-leave-message",
        "vm-you-have",
        "vm-new-messages",
        "vm-old-messages",
        "vm-enter-mailbox",
        "vm-enter-password",
        "vm-login-incorrect",
        "vm-main-menu",
        "vm-message-deleted",
        "vm-saved",
        "vm-no-more-messages",
        "vm-goodbye",
        "transfer",
        "parked-at",
        "conference-join",
        "conference-alone",
        "thank-you",
    ] {
        assert!(names.contains(required), "prompts.tsv lacks {required}");
    }
    let mut problems = Vec::new();
    for row in &rows {
        assert_eq!(row.len(), langs.len() + 1, "prompts.tsv row {:?}", row[0]);
        // Each language's rendering of a prompt is its own, not a copy.
        let mut seen: BTreeMap<Vec<i16>, &str> = BTreeMap::new();
        for (lang, text) in langs.iter().zip(&row[1..]) {
            assert!(!text.trim().is_empty(), "{}: no {lang} text", row[0]);
            if let Some(wav) = check_file(&format!("{lang}/{}.wav", row[0]), 0.3, &mut problems) {
                if let Some(other) = seen.insert(wav.samples.clone(), lang) {
                    problems.push(format!(
                        "{lang}/{0}.wav is the same as {other}/{0}.wav",
                        row[0]
                    ));
                }
                // Normalised by generate.sh to -3 dBFS; a quiet or clipped
                // prompt is a generation fault.
                if !(0.5..0.99).contains(&wav.peak()) {
                    problems.push(format!(
                        "{lang}/{}.wav: peak {:.2} of full scale, want about 0.7 (-3 dBFS)",
                        row[0],
                        wav.peak()
                    ));
                }
            }
        }
    }
    assert_no_problems("prompts", &problems);
}

#[test]
fn the_language_menu_says_each_part_in_turn() {
    let (langs, _) = prompts();
    let mut problems = Vec::new();
    let parts: f64 = ["ar", "en", "fr"]
        .iter()
        .filter_map(|l| check_file(&format!("{l}/lang-menu-part.wav"), 0.3, &mut problems))
        .map(|w| w.seconds())
        .sum();
    for lang in &langs {
        if let Some(menu) = check_file(&format!("{lang}/lang-menu.wav"), 0.3, &mut problems) {
            // The three parts, each trimmed and padded, with gaps between.
            if menu.seconds() < parts {
                problems.push(format!(
                    "{lang}/lang-menu.wav: {:.2} s, shorter than its three parts ({parts:.2} s)",
                    menu.seconds()
                ));
            }
        }
    }
    assert_no_problems("language menu", &problems);
}

#[test]
fn numerals_and_number_words_exist_for_say_number() {
    let (langs, _) = prompts();
    let mut problems = Vec::new();
    for lang in &langs {
        let numerals: Vec<u32> = match lang.as_str() {
            // Irregular below 100: one file per number.
            "ar" | "ur" => (0..100).collect(),
            _ => (0..20).chain((20..100).step_by(10)).collect(),
        };
        let mut contents: BTreeMap<Vec<i16>, u32> = BTreeMap::new();
        for n in numerals {
            if let Some(wav) = check_file(&format!("{lang}/digits/{n}.wav"), 0.2, &mut problems) {
                // Each numeral is its own recording, not a copy of another.
                if let Some(other) = contents.insert(wav.samples, n) {
                    problems.push(format!("{lang}/digits/{n}.wav is the same as {other}.wav"));
                }
            }
        }
    }
    let mut words = table("number-words.tsv");
    assert_eq!(
        words.remove(0),
        ["lang", "name", "text"],
        "number-words.tsv header"
    );
    let mut per_lang: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for w in &words {
        assert_eq!(w.len(), 3, "number-words.tsv row {w:?}");
        assert!(
            langs.contains(&w[0]),
            "number-words.tsv: unknown language {}",
            w[0]
        );
        per_lang.entry(&w[0]).or_default().push(&w[1]);
        check_file(&format!("{}/digits/{}.wav", w[0], w[1]), 0.2, &mut problems);
    }
    for lang in &langs {
        let have = per_lang.get(lang.as_str()).cloned().unwrap_or_default();
        for word in ["hundred", "thousand"] {
            assert!(
                have.contains(&word),
                "{lang}: no digits/{word} in number-words.tsv"
            );
        }
    }
    assert!(
        per_lang["fr"].contains(&"et"),
        "French needs digits/et (vingt et un)"
    );
    assert_no_problems("numbers", &problems);
}

#[test]
fn the_beep_is_a_quarter_second_of_1000_hz() {
    let (langs, _) = prompts();
    let mut problems = Vec::new();
    for lang in &langs {
        let rel = format!("{lang}/beep.wav");
        if let Some(beep) = check_file(&rel, 0.2, &mut problems) {
            if beep.seconds() > 0.3 {
                problems.push(format!("{rel}: {:.2} s, want 0.25 s", beep.seconds()));
            }
            let hz = beep.zero_crossings_per_second() / 2.0;
            if !(950.0..1050.0).contains(&hz) {
                problems.push(format!("{rel}: about {hz:.0} Hz, want 1000 Hz"));
            }
        }
    }
    assert_no_problems("beep", &problems);
}

#[test]
fn music_on_hold_has_several_pieces_of_ten_seconds_or_more() {
    let dir = sounds_dir().join("moh/default");
    let mut pieces: Vec<String> = fs::read_dir(&dir)
        .expect("sounds/moh/default")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wav"))
        .collect();
    pieces.sort();
    assert!(pieces.len() >= 2, "want at least 2 pieces, have {pieces:?}");
    let mut problems = Vec::new();
    for p in &pieces {
        check_file(&format!("moh/default/{p}"), 10.0, &mut problems);
    }
    assert_no_problems("music on hold", &problems);
}

#[test]
fn every_wav_under_sounds_is_8khz_16bit_mono_pcm() {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("wav"))
            {
                out.push(path);
            }
        }
    }
    let root = sounds_dir();
    let mut files = Vec::new();
    walk(&root, &mut files);
    assert!(
        files.len() > 100,
        "only {} WAV files under sounds/",
        files.len()
    );
    let mut problems = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&root).expect("under sounds/");
        check_file(&rel.to_string_lossy(), 0.2, &mut problems);
    }
    assert_no_problems("sounds/", &problems);
}

#[test]
fn the_wav_reader_refuses_what_the_switch_cannot_play() {
    let dir = tempfile::tempdir().expect("tempdir");
    let header = |channels: u16, rate: u32, bits: u16| {
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&(36u32 + 4).to_le_bytes());
        b.extend_from_slice(b"WAVEfmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&channels.to_le_bytes());
        b.extend_from_slice(&rate.to_le_bytes());
        b.extend_from_slice(&(rate * u32::from(channels) * u32::from(bits) / 8).to_le_bytes());
        b.extend_from_slice(&(channels * bits / 8).to_le_bytes());
        b.extend_from_slice(&bits.to_le_bytes());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&4u32.to_le_bytes());
        b.extend_from_slice(&[1, 0, 2, 0]);
        b
    };
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        fs::write(&p, bytes).expect("write");
        p
    };
    let ok = read_wav(&write("ok.wav", &header(1, 8000, 16))).expect("8 kHz mono 16-bit");
    assert_eq!(ok.samples, [1, 2]);
    for (name, bytes) in [
        ("stereo.wav", header(2, 8000, 16)),
        ("wideband.wav", header(1, 16000, 16)),
        ("8bit.wav", header(1, 8000, 8)),
        ("text.wav", b"hello, not a wave file".to_vec()),
    ] {
        assert!(read_wav(&write(name, &bytes)).is_err(), "{name} accepted");
    }
}

#[test]
fn letters_and_the_star_and_hash_keys_exist_for_say_alpha() {
    let (langs, _) = prompts();
    let mut rows = table("letters.tsv");
    let header = rows.remove(0);
    assert_eq!(header[0], "name", "letters.tsv header");
    assert_eq!(
        header[1..],
        langs[..],
        "letters.tsv has prompts.tsv's languages"
    );
    let names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    let alphabet: Vec<String> = ('a'..='z').map(String::from).collect();
    assert_eq!(names, alphabet, "letters.tsv: a..z in order");
    let mut problems = Vec::new();
    for lang in &langs {
        // Each letter its own recording, not a copy of another letter.
        let mut contents: BTreeMap<Vec<i16>, String> = BTreeMap::new();
        for letter in &alphabet {
            let rel = format!("{lang}/letters/{letter}.wav");
            if let Some(wav) = check_file(&rel, 0.3, &mut problems) {
                if let Some(other) = contents.insert(wav.samples, letter.clone()) {
                    problems.push(format!("{rel} is the same as {other}.wav"));
                }
            }
        }
        for key in ["star", "pound"] {
            let rel = format!("{lang}/digits/{key}.wav");
            if let Some(wav) = check_file(&rel, 0.3, &mut problems) {
                if contents.contains_key(&wav.samples) {
                    problems.push(format!("{rel} is the same as a letter"));
                }
            }
        }
    }
    assert_no_problems("letters", &problems);
}
