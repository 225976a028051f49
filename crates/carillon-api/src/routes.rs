//! The JSON resources that read the switch and the store: health,
//! registrations, CDRs (filters and paging), callback requests, reload,
//! and the JSON 404 for any other path. Owns the parameter rules of each
//! (names, ranges, defaults) and the shape of the answers; not the data
//! (the switch's registrar, the store's tables).

use axum::extract::{RawQuery, State};
use axum::Json;
use carillon_cdr::{CallRecord, Disposition};
use carillon_store::{CallbackQuery, CdrSearch};
use serde::Serialize;
use serde_json::{json, Value};

use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::params::Params;
use crate::{ApiState, Registration};

/// Most records one page may hold.
pub const MAX_LIMIT: i64 = 1000;
/// Records in a page when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 100;

/// `GET /api/v1/health`: the process answers HTTP. No token needed (for
/// load balancers and service checks); it says nothing else.
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Any other path.
pub async fn not_found() -> ApiError {
    ApiError::NotFound {
        what: "route".into(),
    }
}

#[derive(Serialize)]
pub struct Registrations {
    registrations: Vec<Registration>,
}

/// `GET /api/v1/registrations`: the registrar's live bindings.
pub async fn registrations(
    caller: Caller,
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Registrations>, ApiError> {
    caller.require(Role::ReadOnly)?;
    let params = Params::parse(query.as_deref(), &["aor"])?;
    let aor = params.text("aor")?;
    let mut registrations =
        state
            .switch()
            .registrations()
            .await
            .map_err(|e| ApiError::Unavailable {
                what: "the switch",
                reason: e.to_string(),
            })?;
    if let Some(aor) = aor {
        registrations.retain(|r| r.aor == aor || r.aor.split('@').next() == Some(aor.as_str()));
    }
    registrations.sort_by(|a, b| a.aor.cmp(&b.aor).then(a.contact.cmp(&b.contact)));
    Ok(Json(Registrations { registrations }))
}

/// A page of CDRs and where the next one starts (`null` on the last).
#[derive(Serialize)]
pub struct CdrPage {
    cdrs: Vec<CallRecord>,
    limit: i64,
    offset: i64,
    next_offset: Option<i64>,
}

/// The time window of `from`/`to` (Unix ms; `to` exclusive).
fn window(params: &Params) -> Result<(i64, i64), ApiError> {
    let from = params.int("from", 0, i64::MAX)?.unwrap_or(i64::MIN);
    let to = params.int("to", 0, i64::MAX)?.unwrap_or(i64::MAX);
    if from > to {
        return Err(ApiError::field("to", "is before from"));
    }
    Ok((from, to))
}

/// `GET /api/v1/cdrs?from=&to=&src=&dst=&disposition=&limit=&offset=`.
pub async fn cdrs(
    caller: Caller,
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
) -> Result<Json<CdrPage>, ApiError> {
    caller.require(Role::ReadOnly)?;
    let params = Params::parse(
        query.as_deref(),
        &["from", "to", "src", "dst", "disposition", "limit", "offset"],
    )?;
    let (since_ms, until_ms) = window(&params)?;
    let disposition = params
        .text("disposition")?
        .map(|d| {
            d.parse::<Disposition>().map_err(|_| {
                ApiError::field(
                    "disposition",
                    format!(
                        "{d:?} is not one of {}",
                        Disposition::ALL
                            .iter()
                            .map(|d| d.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })
        })
        .transpose()?;
    let limit = params.int("limit", 1, MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT);
    let offset = params.int("offset", 0, i64::MAX)?.unwrap_or(0);
    let search = CdrSearch {
        since_ms,
        until_ms,
        src: params.text("src")?,
        dst: params.text("dst")?,
        disposition,
        // One more than asked, to know whether another page follows.
        limit: u32::try_from(limit + 1).unwrap_or(u32::MAX),
        offset: u64::try_from(offset).unwrap_or(0),
    };
    let mut cdrs =
        state
            .store()?
            .search_cdrs(&search)
            .await
            .map_err(|e| ApiError::Unavailable {
                what: "the database",
                reason: e.to_string(),
            })?;
    let more = cdrs.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    cdrs.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(Json(CdrPage {
        cdrs,
        limit,
        offset,
        next_offset: more.then(|| offset.saturating_add(limit)),
    }))
}

/// One stored callback request.
#[derive(Serialize)]
pub struct Callback {
    id: i64,
    status: String,
    uniqueid: String,
    caller_num: String,
    number: String,
    alt_number: Option<String>,
    language: String,
    requested_at: i64,
    context: Option<String>,
    exten: Option<String>,
}

#[derive(Serialize)]
pub struct Callbacks {
    callbacks: Vec<Callback>,
}

/// `GET /api/v1/callbacks?from=&to=&status=&limit=`: the callers'
/// callback requests, oldest first.
pub async fn callbacks(
    caller: Caller,
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Callbacks>, ApiError> {
    caller.require(Role::ReadOnly)?;
    let params = Params::parse(query.as_deref(), &["from", "to", "status", "limit"])?;
    let (since_ms, until_ms) = window(&params)?;
    let limit = params.int("limit", 1, MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT);
    let q = CallbackQuery {
        since_ms,
        until_ms,
        status: params.text("status")?,
        limit: u32::try_from(limit).unwrap_or(u32::MAX),
    };
    let rows = state
        .store()?
        .fetch_callback_requests(&q)
        .await
        .map_err(|e| ApiError::Unavailable {
            what: "the database",
            reason: e.to_string(),
        })?;
    Ok(Json(Callbacks {
        callbacks: rows
            .into_iter()
            .map(|r| Callback {
                id: r.id,
                status: r.status,
                uniqueid: r.request.uniqueid,
                caller_num: r.request.caller_num,
                number: r.request.number,
                alt_number: r.request.alt_number,
                language: r.request.language,
                requested_at: r.request.requested_at,
                context: r.request.context,
                exten: r.request.exten,
            })
            .collect(),
    }))
}

/// `POST /api/v1/reload`: what SIGHUP does. 200 once applied; 409 with
/// the problems when the configuration is refused (the running one is
/// kept).
pub async fn reload(
    caller: Caller,
    State(state): State<ApiState>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    tracing::info!(token = %caller.name, "reload requested through the API");
    match state.switch().reload().await {
        Ok(()) => Ok(Json(json!({ "reloaded": true }))),
        Err(problems) => Err(ApiError::ReloadRefused { problems }),
    }
}
