//! Channel control: `GET /api/v1/channels` (the live channels) and
//! `DELETE /api/v1/channels/{name}` (hang one up with a Q.850 cause).
//! Owns the parameter rules and answers of these routes; the switch
//! (through [`crate::SwitchPort`]) does the hangup.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::params::Params;
use crate::{ApiState, ChannelView};

/// Q.850 normal clearing, the cause when none is given.
pub const DEFAULT_CAUSE: i64 = 16;

fn gone(e: crate::SwitchGone) -> ApiError {
    ApiError::Unavailable {
        what: "the switch",
        reason: e.to_string(),
    }
}

#[derive(Serialize)]
pub struct Channels {
    channels: Vec<ChannelView>,
}

/// `GET /api/v1/channels`: every live channel.
pub async fn list(
    caller: Caller,
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Channels>, ApiError> {
    caller.require(Role::ReadOnly)?;
    Params::parse(query.as_deref(), &[])?;
    let channels = state.switch().channels().await.map_err(gone)?;
    Ok(Json(Channels { channels }))
}

/// `DELETE /api/v1/channels/{name}?cause=`: hangs the channel's call up
/// (204); 404 when no live channel has that name (`SIP/100-0000002a`,
/// its `/` percent-encoded).
pub async fn hangup(
    caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Supervisor)?;
    let params = Params::parse(query.as_deref(), &["cause"])?;
    let cause = params.int("cause", 1, 127)?.unwrap_or(DEFAULT_CAUSE);
    let cause = u8::try_from(cause).map_err(|_| ApiError::field("cause", "out of range"))?;
    tracing::info!(token = %caller.name, channel = %name, cause, "hangup requested through the API");
    if state
        .switch()
        .hangup(name.clone(), cause)
        .await
        .map_err(gone)?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound {
            what: format!("channel {name}"),
        })
    }
}
