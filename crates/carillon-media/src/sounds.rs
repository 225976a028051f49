//! Prompt audio and music-on-hold classes, shared by every player of the
//! process: a file is read once (8 kHz, 16-bit, mono WAV through `hound`),
//! kept as one decoded copy and encoded lazily once per codec, and handed
//! to listeners as an [`Arc`], so 1,000 callers hearing one prompt cost one
//! copy in memory.
//!
//! Owns: [`Sound`] (samples plus their lazily built G.711 encodings),
//! [`SoundCache`] (path → sound, the one place the media plane reads files:
//! at `Play` time, never per frame), [`MohClass`] (the WAV files of a folder,
//! sorted and concatenated, looped) and [`Sounds`] (what a
//! [`crate::MediaEngine`] is given: the cache plus the configured classes).
//!
//! Streamed music on hold: a class has one position shared by every
//! listener on every worker, derived from the time elapsed since a
//! process-wide epoch (given by the edge, which owns the clock) modulo the
//! class length, like Asterisk's streamed MoH (see
//! [`MohClass::position_at`]).

use carillon_codec::Codec;
use carillon_mediactl::AudioCodec;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// Sample rate of every prompt (G.711 narrowband).
pub const SOUND_RATE: u32 = 8000;

/// Why a sound or a class could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SoundError {
    #[error("{path}: {reason}", path = path.display())]
    Read { path: PathBuf, reason: String },
    #[error(
        "{path}: {channels} channel(s), {rate} Hz, {bits}-bit; a prompt must be an 8000 Hz 16-bit mono PCM WAV",
        path = path.display()
    )]
    Format {
        path: PathBuf,
        channels: u16,
        rate: u32,
        bits: u16,
    },
    #[error("{dir}: {reason}", dir = dir.display())]
    Dir { dir: PathBuf, reason: String },
    #[error("{dir}: no readable 8 kHz 16-bit mono WAV file", dir = dir.display())]
    EmptyClass { dir: PathBuf },
}

/// One decoded prompt: 8 kHz linear samples and their G.711 encodings
/// (built on first use by a listener of that codec).
#[derive(Debug, Default)]
pub struct Sound {
    samples: Box<[i16]>,
    ulaw: OnceLock<Box<[u8]>>,
    alaw: OnceLock<Box<[u8]>>,
}

impl Sound {
    /// A sound from 8 kHz samples.
    pub fn from_samples(samples: Vec<i16>) -> Self {
        Sound {
            samples: samples.into_boxed_slice(),
            ulaw: OnceLock::new(),
            alaw: OnceLock::new(),
        }
    }

    /// Reads an 8 kHz 16-bit mono PCM WAV file.
    pub fn read_wav(path: &Path) -> Result<Self, SoundError> {
        let read_error = |e: hound::Error| SoundError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let reader = hound::WavReader::open(path).map_err(read_error)?;
        let spec = reader.spec();
        if spec.channels != 1
            || spec.sample_rate != SOUND_RATE
            || spec.bits_per_sample != 16
            || spec.sample_format != hound::SampleFormat::Int
        {
            return Err(SoundError::Format {
                path: path.to_path_buf(),
                channels: spec.channels,
                rate: spec.sample_rate,
                bits: spec.bits_per_sample,
            });
        }
        let samples = reader
            .into_samples::<i16>()
            .collect::<Result<Vec<i16>, _>>()
            .map_err(read_error)?;
        Ok(Self::from_samples(samples))
    }

    /// Length in samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True for a sound without samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The linear samples.
    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    /// The samples encoded in `codec` (one byte per sample), encoded on the
    /// first call for that codec and kept.
    pub fn encoded(&self, codec: AudioCodec) -> &[u8] {
        let (cell, codec) = match codec {
            AudioCodec::Pcmu => (&self.ulaw, Codec::Pcmu),
            AudioCodec::Pcma => (&self.alaw, Codec::Pcma),
        };
        cell.get_or_init(|| {
            self.samples
                .iter()
                .map(|&s| codec.encode_sample(s))
                .collect()
        })
    }
}

/// Path → decoded sound, shared by every worker of the process.
#[derive(Debug, Default)]
pub struct SoundCache {
    sounds: Mutex<HashMap<PathBuf, Arc<Sound>>>,
    loads: AtomicU64,
}

impl SoundCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The sound at `path`, read on first use. A failure is not cached (a
    /// file put in place later is read then).
    pub fn get(&self, path: &Path) -> Result<Arc<Sound>, SoundError> {
        if let Some(sound) = self.lock().get(path) {
            return Ok(sound.clone());
        }
        // Read outside the lock; a concurrent reader of the same file keeps
        // the first copy inserted.
        let sound = Arc::new(Sound::read_wav(path)?);
        self.loads.fetch_add(1, Ordering::Relaxed);
        Ok(self
            .lock()
            .entry(path.to_path_buf())
            .or_insert(sound)
            .clone())
    }

    /// Files read so far (a cache hit reads nothing).
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    /// Sounds held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Arc<Sound>>> {
        // A panic while holding the lock cannot leave the map inconsistent
        // (one insert), so a poisoned lock is still usable.
        self.sounds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A music-on-hold class: the WAV files of a folder in name order, as one
/// looped sound, with one position for all listeners.
#[derive(Debug)]
pub struct MohClass {
    sound: Arc<Sound>,
    files: Vec<PathBuf>,
    epoch: Instant,
}

impl MohClass {
    /// Reads every `*.wav` file of `dir` (sorted by name). Files that cannot
    /// be read are returned as warnings; a folder without any readable file
    /// is an error.
    pub fn load(dir: &Path, epoch: Instant) -> Result<(MohClass, Vec<SoundError>), SoundError> {
        let entries = std::fs::read_dir(dir).map_err(|e| SoundError::Dir {
            dir: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("wav")) && p.is_file())
            .collect();
        paths.sort();
        let mut samples = Vec::new();
        let mut files = Vec::new();
        let mut skipped = Vec::new();
        for path in paths {
            match Sound::read_wav(&path) {
                Ok(sound) if !sound.is_empty() => {
                    samples.extend_from_slice(sound.samples());
                    files.push(path);
                }
                Ok(_) => skipped.push(SoundError::Read {
                    path,
                    reason: "no samples".into(),
                }),
                Err(e) => skipped.push(e),
            }
        }
        if samples.is_empty() {
            return Err(SoundError::EmptyClass {
                dir: dir.to_path_buf(),
            });
        }
        let mut class = MohClass::from_sound(Sound::from_samples(samples), epoch);
        class.files = files;
        Ok((class, skipped))
    }

    /// A class playing `sound` (at least one sample) in a loop from `epoch`.
    pub fn from_sound(sound: Sound, epoch: Instant) -> MohClass {
        MohClass {
            sound: Arc::new(sound),
            files: Vec::new(),
            epoch,
        }
    }

    /// The looped audio.
    pub fn sound(&self) -> &Arc<Sound> {
        &self.sound
    }

    /// The files it was read from, in play order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Where a frame of `frame` samples starting at `at` begins in the
    /// class: the class clock (samples since the epoch) rounded down to a
    /// whole frame, modulo the length. Listeners with one ptime thus hear
    /// byte-identical frames whenever they play (at most one frame behind
    /// the clock), and a listener's frames `frame` samples apart follow
    /// each other exactly.
    pub fn position_at(&self, at: Instant, frame: usize) -> usize {
        let len = self.sound.len() as u128;
        if len == 0 {
            return 0;
        }
        let frame = (frame as u128).max(1);
        let nanos = at.saturating_duration_since(self.epoch).as_nanos();
        let clock = nanos * u128::from(SOUND_RATE) / 1_000_000_000;
        (clock / frame * frame % len) as usize
    }
}

/// Everything players read: the prompt cache and the music-on-hold
/// classes. One per process, shared by the workers.
#[derive(Debug, Default)]
pub struct Sounds {
    pub cache: SoundCache,
    moh: HashMap<String, Arc<MohClass>>,
}

impl Sounds {
    /// An empty cache and the given classes.
    pub fn new(moh: HashMap<String, Arc<MohClass>>) -> Self {
        Sounds {
            cache: SoundCache::new(),
            moh,
        }
    }

    /// Loads the classes `(name, folder)` with a shared `epoch`. Returns the
    /// sounds and the files skipped (to log); a class without a readable
    /// file is an error.
    pub fn load_moh<'a>(
        classes: impl IntoIterator<Item = (&'a str, &'a Path)>,
        epoch: Instant,
    ) -> Result<(Sounds, Vec<SoundError>), SoundError> {
        let mut moh = HashMap::new();
        let mut skipped = Vec::new();
        for (name, dir) in classes {
            let (class, warnings) = MohClass::load(dir, epoch)?;
            skipped.extend(warnings);
            moh.insert(name.to_string(), Arc::new(class));
        }
        Ok((Sounds::new(moh), skipped))
    }

    /// A music-on-hold class by name.
    pub fn moh(&self, class: &str) -> Option<&Arc<MohClass>> {
        self.moh.get(class)
    }

    /// The configured class names.
    pub fn moh_classes(&self) -> impl Iterator<Item = &str> {
        self.moh.keys().map(String::as_str)
    }
}
