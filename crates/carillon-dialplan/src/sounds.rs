//! Prompts: where a prompt name (`ivr/welcome`, `goodbye`, `digits/7`) is
//! found for a channel's language, and the prompt lists of SayDigits and
//! SayNumber.
//!
//! Owns [`Sounds`] (the sounds directory and which prompts each language
//! has) and the per-language number rules. It does not own playing: a
//! resolved path goes to the host in a `Play` command, and a file missing at
//! run time is the media plane's business (skipped with a warning).
//!
//! Layout, like Asterisk's: `<dir>/<lang>/<name>.wav`. A name is resolved
//! for the channel's language when that language has it, else from
//! `<dir>/en/`. [`Sounds::scan`] reads the directory once at load (the only
//! file-system access of this crate, done by the config loader, never by
//! the interpreter); check-config uses it to refuse a literal prompt that no
//! language has.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Component, Path, PathBuf};

/// The language prompts fall back to.
pub const FALLBACK_LANGUAGE: &str = "en";

/// The sounds directory and the prompts found in it per language.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sounds {
    dir: PathBuf,
    /// language → prompt names (without `.wav`, `/`-separated); empty when
    /// the directory was not scanned.
    available: BTreeMap<String, BTreeSet<String>>,
}

impl Sounds {
    /// A sounds directory whose contents are not known (names resolve to
    /// the channel's language; nothing is checked).
    pub fn unscanned(dir: impl Into<PathBuf>) -> Sounds {
        Sounds {
            dir: dir.into(),
            available: BTreeMap::new(),
        }
    }

    /// Lists `<dir>/<lang>/**/*.wav`. Directories whose name is not a
    /// language code (`moh`) are ignored.
    /// The directory is kept in its canonical (absolute) form.
    pub fn scan(dir: &Path) -> io::Result<Sounds> {
        let dir = &std::fs::canonicalize(dir)?;
        let mut available = BTreeMap::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // `moh/` holds music-on-hold classes, not a language.
            if !entry.file_type()?.is_dir() || !is_language(&name) || name == "moh" {
                continue;
            }
            let mut names = BTreeSet::new();
            collect(&entry.path(), "", &mut names, 0)?;
            available.insert(name, names);
        }
        Ok(Sounds {
            dir: dir.to_path_buf(),
            available,
        })
    }

    /// The sounds directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the directory was scanned (prompts can be checked).
    pub fn is_scanned(&self) -> bool {
        !self.available.is_empty()
    }

    /// Languages found, sorted.
    pub fn languages(&self) -> impl Iterator<Item = &str> {
        self.available.keys().map(String::as_str)
    }

    /// Whether some language has the prompt.
    pub fn exists_in_any(&self, name: &str) -> bool {
        let name = strip_wav(name);
        self.available.values().any(|names| names.contains(name))
    }

    /// The file to play for `name` on a channel speaking `language`:
    /// `<dir>/<language>/<name>.wav` when that language has it (or the
    /// directory was not scanned), else `<dir>/en/<name>.wav`. An absolute
    /// name is used as it is. `None` for a name that could leave the
    /// directory (`..`) or is empty.
    pub fn resolve(&self, name: &str, language: &str) -> Option<PathBuf> {
        let name = name.trim();
        if !is_prompt_name(name) {
            return None;
        }
        if Path::new(name).is_absolute() {
            return Some(with_wav(PathBuf::from(name)));
        }
        let bare = strip_wav(name);
        let language = if is_language(language) {
            language
        } else {
            FALLBACK_LANGUAGE
        };
        let lang = if !self.is_scanned()
            || self
                .available
                .get(language)
                .is_some_and(|names| names.contains(bare))
        {
            language
        } else {
            FALLBACK_LANGUAGE
        };
        Some(self.dir.join(lang).join(format!("{bare}.wav")))
    }
}

fn collect(dir: &Path, prefix: &str, out: &mut BTreeSet<String>, depth: u32) -> io::Result<()> {
    if depth > 8 {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file = entry.file_name().to_string_lossy().into_owned();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect(&entry.path(), &format!("{prefix}{file}/"), out, depth + 1)?;
        } else if let Some(stem) = file.strip_suffix(".wav") {
            out.insert(format!("{prefix}{stem}"));
        }
    }
    Ok(())
}

fn strip_wav(name: &str) -> &str {
    name.strip_suffix(".wav").unwrap_or(name)
}

fn with_wav(path: PathBuf) -> PathBuf {
    if path.extension().is_some() {
        path
    } else {
        path.with_extension("wav")
    }
}

/// A language code as used for directories: `en`, `ar`, `fr`, `en_GB`.
pub fn is_language(text: &str) -> bool {
    (2..=16).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && text.chars().next().is_some_and(|c| c.is_ascii_lowercase())
}

/// A prompt name that stays inside the sounds directory (or is absolute).
pub fn is_prompt_name(name: &str) -> bool {
    !name.is_empty()
        && !name.chars().any(|c| c.is_control())
        && Path::new(name)
            .components()
            .all(|c| !matches!(c, Component::ParentDir | Component::CurDir))
}

/// The prompts SayDigits plays: `digits/N` per digit. Other characters
/// (`*`, `#`, letters) are skipped: `sounds/` has no prompts for them.
pub fn digit_prompts(digits: &str) -> Vec<String> {
    digits
        .chars()
        .filter(char::is_ascii_digit)
        .map(|c| format!("digits/{c}"))
        .collect()
}

/// The prompts SayNumber plays for `n` in `language` (see sounds/README.md
/// for the files each language has): English and French compose 21..99
/// from tens and units (French with `et` and 70/90 as 60+1x/80+1x), Arabic
/// and Urdu have a file per number below 100; larger numbers are built with
/// `hundred`, `thousand`, `million` (Urdu: `lakh`, `crore`; Arabic joins
/// parts with `and`). Other languages use the English rules.
pub fn number_prompts(n: u64, language: &str) -> Vec<String> {
    let mut out = Vec::new();
    match language {
        "fr" => french(n, &mut out),
        "ar" => arabic(n, &mut out),
        "ur" => urdu(n, &mut out),
        _ => english(n, &mut out),
    }
    out
}

fn digit(n: u64) -> String {
    format!("digits/{n}")
}

fn english(n: u64, out: &mut Vec<String>) {
    if n >= 1_000_000 {
        english(n / 1_000_000, out);
        out.push(digit_word("million"));
        if !n.is_multiple_of(1_000_000) {
            english(n % 1_000_000, out);
        }
    } else if n >= 1000 {
        english(n / 1000, out);
        out.push(digit_word("thousand"));
        if !n.is_multiple_of(1000) {
            english(n % 1000, out);
        }
    } else if n >= 100 {
        out.push(digit(n / 100));
        out.push(digit_word("hundred"));
        if !n.is_multiple_of(100) {
            english(n % 100, out);
        }
    } else if n >= 20 {
        out.push(digit(n / 10 * 10));
        if !n.is_multiple_of(10) {
            out.push(digit(n % 10));
        }
    } else {
        out.push(digit(n));
    }
}

fn french(n: u64, out: &mut Vec<String>) {
    if n >= 1_000_000 {
        french(n / 1_000_000, out);
        out.push(digit_word("million"));
        if !n.is_multiple_of(1_000_000) {
            french(n % 1_000_000, out);
        }
    } else if n >= 1000 {
        // "mille", not "un mille".
        if n / 1000 > 1 {
            french(n / 1000, out);
        }
        out.push(digit_word("thousand"));
        if !n.is_multiple_of(1000) {
            french(n % 1000, out);
        }
    } else if n >= 100 {
        if n / 100 > 1 {
            out.push(digit(n / 100));
        }
        out.push(digit_word("hundred"));
        if !n.is_multiple_of(100) {
            french(n % 100, out);
        }
    } else if (70..80).contains(&n) || n >= 90 {
        // soixante-dix..., quatre-vingt-dix...
        out.push(digit(n / 20 * 20));
        if n == 71 {
            out.push(digit_word("et"));
        }
        out.push(digit(n % 20));
    } else if n >= 20 {
        out.push(digit(n / 10 * 10));
        match n % 10 {
            0 => {}
            1 if n < 80 => {
                out.push(digit_word("et"));
                out.push(digit(1));
            }
            unit => out.push(digit(unit)),
        }
    } else {
        out.push(digit(n));
    }
}

fn arabic(n: u64, out: &mut Vec<String>) {
    let mut parts: Vec<Vec<String>> = Vec::new();
    let mut rest = n;
    for (size, word) in [(1_000_000, "million"), (1000, "thousand"), (100, "hundred")] {
        if rest >= size {
            let mut part = Vec::new();
            if rest / size > 1 {
                arabic(rest / size, &mut part);
            }
            part.push(digit_word(word));
            parts.push(part);
            rest %= size;
        }
    }
    if rest > 0 || parts.is_empty() {
        parts.push(vec![digit(rest)]);
    }
    for (i, part) in parts.into_iter().enumerate() {
        if i > 0 {
            out.push(digit_word("and"));
        }
        out.extend(part);
    }
}

fn urdu(n: u64, out: &mut Vec<String>) {
    let mut rest = n;
    let mut any = false;
    for (size, word) in [
        (10_000_000, "crore"),
        (100_000, "lakh"),
        (1000, "thousand"),
        (100, "hundred"),
    ] {
        if rest >= size {
            urdu(rest / size, out);
            out.push(digit_word(word));
            rest %= size;
            any = true;
        }
    }
    if rest > 0 || !any {
        out.push(digit(rest));
    }
}

fn digit_word(word: &str) -> String {
    format!("digits/{word}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn say(n: u64, lang: &str) -> String {
        number_prompts(n, lang)
            .iter()
            .map(|p| p.trim_start_matches("digits/"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn english_numbers_are_composed_from_tens_units_and_words() {
        assert_eq!(say(0, "en"), "0");
        assert_eq!(say(17, "en"), "17");
        assert_eq!(say(42, "en"), "40 2");
        assert_eq!(say(305, "en"), "3 hundred 5");
        assert_eq!(say(2_019, "en"), "2 thousand 19");
        assert_eq!(say(1_000_000, "en"), "1 million");
    }

    #[test]
    fn french_numbers_use_et_and_the_vigesimal_seventies_and_nineties() {
        assert_eq!(say(21, "fr"), "20 et 1");
        assert_eq!(say(71, "fr"), "60 et 11");
        assert_eq!(say(75, "fr"), "60 15");
        assert_eq!(say(81, "fr"), "80 1");
        assert_eq!(say(99, "fr"), "80 19");
        assert_eq!(say(100, "fr"), "hundred");
        assert_eq!(say(1200, "fr"), "thousand 2 hundred");
    }

    #[test]
    fn arabic_and_urdu_say_numbers_below_100_from_one_file() {
        assert_eq!(say(42, "ar"), "42");
        assert_eq!(say(342, "ar"), "3 hundred and 42");
        assert_eq!(say(100, "ar"), "hundred");
        assert_eq!(say(42, "ur"), "42");
        assert_eq!(say(250_000, "ur"), "2 lakh 50 thousand");
    }

    #[test]
    fn digits_map_to_digit_prompts() {
        assert_eq!(digit_prompts("1*#x9"), ["digits/1", "digits/9"]);
    }

    #[test]
    fn a_prompt_resolves_for_the_language_that_has_it_else_english() {
        let mut available = BTreeMap::new();
        available.insert(
            "en".to_owned(),
            ["goodbye", "only-en"].map(str::to_owned).into(),
        );
        available.insert("ar".to_owned(), ["goodbye"].map(str::to_owned).into());
        let sounds = Sounds {
            dir: PathBuf::from("/s"),
            available,
        };
        assert_eq!(
            sounds.resolve("goodbye", "ar"),
            Some(PathBuf::from("/s/ar/goodbye.wav"))
        );
        assert_eq!(
            sounds.resolve("only-en", "ar"),
            Some(PathBuf::from("/s/en/only-en.wav"))
        );
        assert_eq!(sounds.resolve("../etc/passwd", "en"), None);
        assert!(sounds.exists_in_any("goodbye"));
        assert!(!sounds.exists_in_any("nope"));
    }
}
