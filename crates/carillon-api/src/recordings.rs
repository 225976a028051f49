//! `/api/v1/recordings`: the WAV files of the recordings directory
//! (`[recording] dir`), listed, downloaded (tower-http's `ServeFile`, so
//! HTTP ranges are answered with 206 and 416 as RFC 9110 says) and
//! deleted. Owns the naming rule of what may be reached: a plain file
//! name of the directory ending in `.wav`, nothing under it or outside
//! it. Not the files' contents (the media plane writes them).

use std::path::PathBuf;
use std::time::UNIX_EPOCH;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::ApiState;

/// One recording file.
#[derive(Debug, Serialize)]
pub struct Recording {
    name: String,
    bytes: u64,
    /// Last written, Unix ms.
    modified_ms: u64,
}

#[derive(Serialize)]
pub struct Recordings {
    recordings: Vec<Recording>,
}

/// Whether `name` is a recording's file name: letters, digits, `.`, `-`,
/// `_`, not starting with a dot, ending in `.wav`.
fn valid_name(name: &str) -> bool {
    name.len() > 4
        && name.ends_with(".wav")
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The path of recording `name`, or why not.
fn path_of(state: &ApiState, name: &str) -> Result<PathBuf, ApiError> {
    if !valid_name(name) {
        return Err(ApiError::field(
            "name",
            "a recording's file name: letters, digits, '.', '-', '_', ending in .wav",
        ));
    }
    let path = state.inner.recordings.join(name);
    if !path.is_file() {
        return Err(ApiError::NotFound {
            what: format!("recording {name}"),
        });
    }
    Ok(path)
}

/// `GET /api/v1/recordings`: every recording, by name.
pub async fn list(
    caller: Caller,
    State(state): State<ApiState>,
) -> Result<Json<Recordings>, ApiError> {
    caller.require(Role::Supervisor)?;
    let dir = state.inner.recordings.clone();
    let recordings = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<Recording>> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() || !valid_name(&name) {
                continue;
            }
            let modified_ms = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            out.push(Recording {
                name,
                bytes: meta.len(),
                modified_ms,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Internal(format!("reading the recordings directory: {e}")))?;
    Ok(Json(Recordings { recordings }))
}

/// `GET /api/v1/recordings/{name}`: the file, `audio/wav`, with ranges.
pub async fn download(
    caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    caller.require(Role::Supervisor)?;
    let path = path_of(&state, &name)?;
    // `.wav` is served as audio/wav (tower-http guesses by extension).
    match ServeFile::new(path).oneshot(request).await {
        Ok(response) => Ok(response.map(Body::new)),
        Err(e) => Err(ApiError::Internal(format!("reading {name}: {e}"))),
    }
}

/// `DELETE /api/v1/recordings/{name}`: 204 once removed.
pub async fn remove(
    caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let path = path_of(&state, &name)?;
    match tokio::fs::remove_file(&path).await {
        Ok(()) => {
            tracing::info!(token = %caller.name, recording = %name, "recording deleted through the API");
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ApiError::NotFound {
            what: format!("recording {name}"),
        }),
        Err(e) => Err(ApiError::Internal(format!("deleting {name}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn only_plain_wav_names_reach_the_directory() {
        assert!(valid_name("1765000000.12-3.wav"));
        assert!(!valid_name("../etc/passwd"));
        assert!(!valid_name(".hidden.wav"));
        assert!(!valid_name("a/b.wav"));
        assert!(!valid_name("notes.txt"));
        assert!(!valid_name(".wav"));
    }
}
