//! The recordings directory at start-up (`[recording] dir`): created if
//! missing, and every WAV file a killed switch left unfinished repaired
//! (`carillon_recorder::repair_dir`) before the switch takes calls, so no
//! recording stays a file with a stale header. Owns only this start-up
//! step; writing recordings is the media engine's, naming them the
//! switch's.

use std::path::Path;

use anyhow::Context;
use carillon_recorder::RepairOutcome;
use tracing::{info, warn};

/// What [`repair_at_start`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StartRepair {
    /// WAV files looked at.
    pub files: usize,
    /// Of them, files whose header was rewritten.
    pub repaired: usize,
    /// Of them, files that could not be repaired (not a WAV, unreadable).
    pub failed: usize,
}

/// Creates `dir` if needed and repairs every unfinished `*.wav` in it,
/// logging each repaired or unrepairable file and a summary line
/// (`recordings checked`). Only a directory that cannot be created or
/// read is an error.
pub fn repair_at_start(dir: &Path) -> anyhow::Result<StartRepair> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the recording directory {}", dir.display()))?;
    let entries = carillon_recorder::repair_dir(dir)
        .with_context(|| format!("reading the recording directory {}", dir.display()))?;
    let mut summary = StartRepair {
        files: entries.len(),
        ..StartRepair::default()
    };
    for (path, outcome) in entries {
        match outcome {
            Ok(RepairOutcome::Intact) => {}
            Ok(RepairOutcome::Repaired {
                declared_data_bytes,
                data_bytes,
                truncated_bytes,
            }) => {
                summary.repaired += 1;
                warn!(
                    file = %path.display(),
                    declared_data_bytes,
                    data_bytes,
                    truncated_bytes,
                    "unfinished recording repaired"
                );
            }
            Err(e) => {
                summary.failed += 1;
                warn!(file = %path.display(), error = %e, "recording cannot be repaired");
            }
        }
    }
    info!(
        dir = %dir.display(),
        files = summary.files,
        repaired = summary.repaired,
        failed = summary.failed,
        "recordings checked"
    );
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 16-bit mono 8 kHz WAV header whose sizes say 0 bytes of audio,
    /// followed by `samples` samples: what a killed writer leaves.
    fn unfinished_wav(samples: usize) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&36u32.to_le_bytes());
        b.extend_from_slice(b"WAVEfmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&8000u32.to_le_bytes());
        b.extend_from_slice(&16000u32.to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&16u16.to_le_bytes());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend(vec![0x11u8; samples * 2]);
        b
    }

    #[test]
    fn a_missing_directory_is_created_and_unfinished_files_are_counted_as_repaired() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("var/recordings");
        assert_eq!(repair_at_start(&dir).unwrap(), StartRepair::default());
        assert!(dir.is_dir());
        std::fs::write(dir.join("a.wav"), unfinished_wav(800)).unwrap();
        std::fs::write(dir.join("b.wav"), b"not a wav").unwrap();
        std::fs::write(dir.join("notes.txt"), b"ignored").unwrap();
        let first = repair_at_start(&dir).unwrap();
        assert_eq!(
            first,
            StartRepair {
                files: 2,
                repaired: 1,
                failed: 1
            }
        );
        let again = repair_at_start(&dir).unwrap();
        assert_eq!(again.repaired, 0, "a repaired file is intact afterwards");
    }
}
