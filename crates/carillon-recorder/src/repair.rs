//! Repair of WAV files left unfinished by a crash or a kill.
//!
//! A recording's header is updated at checkpoints and finalised at stop
//! ([`crate::writer`]); a switch killed in between leaves a file whose RIFF
//! and `data` chunk sizes are zero or stale while more audio follows on disk.
//! [`repair`] recomputes both sizes from the file's actual length (the `data`
//! chunk runs to the end of the file, as hound writes it), truncating a
//! partial trailing sample frame, and leaves a consistent file untouched.
//! [`repair_dir`] does that for every `*.wav` in a recordings directory at
//! startup.
//!
//! Owns only the RIFF/WAVE chunk walk (`RIFF` size, `WAVE`, `fmt `
//! `block_align`, `data` size); it does not decode audio and does not know
//! which recordings belong to which call.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// What [`repair`] did to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepairOutcome {
    /// Header sizes already matched the file: nothing was written.
    Intact,
    /// The header was rewritten (and a partial sample frame cut off).
    Repaired {
        /// The `data` size the header claimed.
        declared_data_bytes: u32,
        /// The `data` size now recorded, all of it audio on disk.
        data_bytes: u32,
        /// Bytes of an incomplete trailing sample frame removed.
        truncated_bytes: u64,
    },
}

/// Why a file could not be repaired.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not a RIFF/WAVE file, or its header is cut short before the `data` chunk.
    #[error("{path}: not a repairable WAV file: {reason}")]
    NotWav { path: PathBuf, reason: &'static str },
    /// The audio is too long for a RIFF size field (over 4 GiB).
    #[error("{path}: {len} bytes is too large for a WAV file")]
    TooLarge { path: PathBuf, len: u64 },
}

/// Makes the header of the WAV file at `path` match its data; see the module doc.
pub fn repair(path: &Path) -> Result<RepairOutcome, RepairError> {
    let io = |source| RepairError::Io {
        path: path.to_path_buf(),
        source,
    };
    let not_wav = |reason| RepairError::NotWav {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let layout = read_layout(&mut file, len).map_err(|e| match e {
        Walk::Io(source) => io(source),
        Walk::Bad(reason) => not_wav(reason),
    })?;

    let available = len - layout.data_start;
    let usable = available - available % u64::from(layout.block_align);
    let truncated = available - usable;
    let data_bytes = u32::try_from(usable).map_err(|_| RepairError::TooLarge {
        path: path.to_path_buf(),
        len,
    })?;
    let riff_size =
        u32::try_from(layout.data_start + usable - 8).map_err(|_| RepairError::TooLarge {
            path: path.to_path_buf(),
            len,
        })?;
    if truncated == 0 && layout.declared_data == data_bytes && layout.declared_riff == riff_size {
        return Ok(RepairOutcome::Intact);
    }
    if truncated > 0 {
        file.set_len(layout.data_start + usable).map_err(io)?;
    }
    file.seek(SeekFrom::Start(4)).map_err(io)?;
    file.write_all(&riff_size.to_le_bytes()).map_err(io)?;
    file.seek(SeekFrom::Start(layout.data_start - 4))
        .map_err(io)?;
    file.write_all(&data_bytes.to_le_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(RepairOutcome::Repaired {
        declared_data_bytes: layout.declared_data,
        data_bytes,
        truncated_bytes: truncated,
    })
}

/// One file of [`repair_dir`] and what happened to it.
pub type DirEntryRepair = (PathBuf, Result<RepairOutcome, RepairError>);

/// [`repair`] on every `*.wav` file directly in `dir`, in name order; one
/// entry per file. Only an unreadable directory is an error.
pub fn repair_dir(dir: &Path) -> Result<Vec<DirEntryRepair>, RepairError> {
    let io = |source| RepairError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let is_wav = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("wav"));
        if is_wav && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|p| {
            let outcome = repair(&p);
            (p, outcome)
        })
        .collect())
}

struct ChunkLayout {
    declared_riff: u32,
    block_align: u16,
    /// Offset of the first data byte (the `data` size field is 4 bytes before).
    data_start: u64,
    declared_data: u32,
}

enum Walk {
    Io(std::io::Error),
    Bad(&'static str),
}

impl From<std::io::Error> for Walk {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Walk::Bad("header cut short")
        } else {
            Walk::Io(e)
        }
    }
}

fn read_layout(file: &mut File, len: u64) -> Result<ChunkLayout, Walk> {
    let mut head = [0u8; 12];
    file.seek(SeekFrom::Start(0))?;
    file.read_exact(&mut head)?;
    if &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Err(Walk::Bad("no RIFF/WAVE signature"));
    }
    let declared_riff = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    let mut pos = 12u64;
    let mut block_align = None;
    loop {
        let mut chunk = [0u8; 8];
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut chunk)?;
        let size = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
        let body = pos + 8;
        match &chunk[0..4] {
            b"fmt " => {
                let mut fmt = [0u8; 14];
                file.read_exact(&mut fmt)?;
                let align = u16::from_le_bytes([fmt[12], fmt[13]]);
                if align == 0 {
                    return Err(Walk::Bad("fmt block_align is zero"));
                }
                block_align = Some(align);
            }
            b"data" => {
                let block_align = block_align.ok_or(Walk::Bad("data chunk before fmt"))?;
                return Ok(ChunkLayout {
                    declared_riff,
                    block_align,
                    data_start: body,
                    declared_data: size,
                });
            }
            _ => {}
        }
        // Chunks are padded to an even size.
        pos = body + u64::from(size) + u64::from(size % 2);
        if pos >= len {
            return Err(Walk::Bad("no data chunk"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mixdown::Layout;
    use crate::writer::{wav_spec, BlockSink, WavSink};

    fn samples(path: &Path) -> (hound::WavSpec, Vec<i16>) {
        let mut r = hound::WavReader::open(path).unwrap();
        let spec = r.spec();
        (spec, r.samples::<i16>().map(|s| s.unwrap()).collect())
    }

    fn ramp(n: usize) -> Vec<i16> {
        (0..n).map(|i| (i % 1000) as i16 - 500).collect()
    }

    /// A finalised stereo file of `frames` sample frames.
    fn good_file(path: &Path, frames: usize) -> Vec<i16> {
        let data = ramp(frames * 2);
        let mut w = hound::WavWriter::create(path, wav_spec(Layout::Stereo)).unwrap();
        for &s in &data {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        data
    }

    fn set_u32(path: &Path, offset: u64, value: u32) {
        let mut f = OpenOptions::new().write(true).open(path).unwrap();
        f.seek(SeekFrom::Start(offset)).unwrap();
        f.write_all(&value.to_le_bytes()).unwrap();
    }

    #[test]
    fn a_good_file_is_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("good.wav");
        good_file(&path, 8000);
        let before = std::fs::read(&path).unwrap();
        assert_eq!(repair(&path).unwrap(), RepairOutcome::Intact);
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn zeroed_header_sizes_are_rebuilt_from_the_file_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zeroed.wav");
        let data = good_file(&path, 8000);
        // What a header looks like when the writer died before any update.
        set_u32(&path, 4, 0);
        set_u32(&path, 40, 0);
        assert!(hound::WavReader::open(&path)
            .map(|r| r.duration() != 8000)
            .unwrap_or(true));
        let outcome = repair(&path).unwrap();
        assert_eq!(
            outcome,
            RepairOutcome::Repaired {
                declared_data_bytes: 0,
                data_bytes: 32000,
                truncated_bytes: 0
            }
        );
        let (spec, read) = samples(&path);
        assert_eq!(spec.channels, 2);
        assert_eq!(read, data);
        // Repairing again finds nothing to do.
        assert_eq!(repair(&path).unwrap(), RepairOutcome::Intact);
    }

    #[test]
    fn a_partial_trailing_sample_frame_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("partial.wav");
        let data = good_file(&path, 1000);
        // The crash hit mid-frame: 3 more bytes of a 4-byte stereo frame.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[1, 2, 3]).unwrap();
        drop(f);
        let outcome = repair(&path).unwrap();
        assert_eq!(
            outcome,
            RepairOutcome::Repaired {
                declared_data_bytes: 4000,
                data_bytes: 4000,
                truncated_bytes: 3
            }
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 44 + 4000);
        assert_eq!(samples(&path).1, data);
    }

    #[test]
    fn a_writer_killed_between_checkpoints_keeps_every_block_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("killed.wav");
        // 100 blocks through the sink (header checkpoints at blocks 1, 50
        // and 100), then 20 more blocks reach the disk before the process
        // "dies" without a further header update: the header says 100.
        let mut sink = WavSink::create(&path, Layout::Mono, 50).unwrap();
        let block: Vec<i16> = ramp(160);
        for _ in 0..100 {
            sink.write_block(&block).unwrap();
        }
        std::mem::forget(sink);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        for _ in 0..20 {
            for s in &block {
                f.write_all(&s.to_le_bytes()).unwrap();
            }
        }
        drop(f);
        assert_eq!(hound::WavReader::open(&path).unwrap().duration(), 100 * 160);
        let outcome = repair(&path).unwrap();
        assert!(matches!(
            outcome,
            RepairOutcome::Repaired {
                data_bytes: 38400,
                ..
            }
        ));
        let (spec, read) = samples(&path);
        assert_eq!(spec.channels, 1);
        assert_eq!(read.len(), 120 * 160);
        assert!(read.chunks(160).all(|c| c == block.as_slice()));
    }

    #[test]
    fn a_stale_size_larger_than_the_file_is_shrunk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stale.wav");
        let data = good_file(&path, 500);
        set_u32(&path, 40, 1_000_000);
        set_u32(&path, 4, 1_000_036);
        assert!(matches!(
            repair(&path).unwrap(),
            RepairOutcome::Repaired {
                data_bytes: 2000,
                ..
            }
        ));
        assert_eq!(samples(&path).1, data);
    }

    #[test]
    fn non_wav_and_header_only_fragments_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.wav");
        std::fs::write(&text, b"this is not audio at all, just text").unwrap();
        assert!(matches!(repair(&text), Err(RepairError::NotWav { .. })));
        let stub = dir.path().join("stub.wav");
        std::fs::write(&stub, b"RIFF\0\0\0\0WAVEfmt ").unwrap();
        let err = repair(&stub).unwrap_err();
        assert!(matches!(err, RepairError::NotWav { .. }), "{err}");
        assert!(err.to_string().contains("stub.wav"));
        let empty = dir.path().join("empty.wav");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(repair(&empty), Err(RepairError::NotWav { .. })));
    }

    #[test]
    fn repair_dir_fixes_each_wav_and_reports_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        good_file(&dir.path().join("a-good.wav"), 100);
        let broken = dir.path().join("b-broken.wav");
        let data = good_file(&broken, 100);
        set_u32(&broken, 4, 0);
        set_u32(&broken, 40, 0);
        std::fs::write(dir.path().join("c-junk.wav"), b"junk").unwrap();
        std::fs::write(dir.path().join("readme.txt"), b"not a recording").unwrap();
        let report = repair_dir(dir.path()).unwrap();
        let names: Vec<String> = report
            .iter()
            .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a-good.wav", "b-broken.wav", "c-junk.wav"]);
        assert!(matches!(report[0].1, Ok(RepairOutcome::Intact)));
        assert!(matches!(report[1].1, Ok(RepairOutcome::Repaired { .. })));
        assert!(report[2].1.is_err());
        assert_eq!(samples(&broken).1, data);
    }
}
