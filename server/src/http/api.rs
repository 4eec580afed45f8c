//! The admin REST API under `/api/v1`: JSON, guarded by a bearer token
//! (`ROOMCAST_ADMIN_TOKEN`). With no token configured the API is disabled: every
//! route answers 404 `api_disabled` (never open by default). Errors are JSON
//! `{ "error": code, "message": … }` with a matching status.
//!
//! Room ids in paths: a game room is `{game}:{room}` (`:` never occurs in names),
//! a doc room is its name.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use crate::room::messages::{
    DescribeDoc, DescribeRoom, DocRoomSummary, GameRoomInfo, InspectDoc, RestoreDocSnapshot,
    RestoreGameSnapshot, RestoreRefused,
};
use crate::room::registry::RoomEntry;
use crate::room::{RoomKey, RoomName};

/// Most rooms one page lists.
const MAX_PAGE: usize = 500;

/// An API error: status plus a stable code and a human message.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No admin token configured.
    #[error("the admin API is disabled: set ROOMCAST_ADMIN_TOKEN to enable it")]
    Disabled,
    /// No bearer token sent.
    #[error("missing bearer token (Authorization: Bearer …)")]
    Unauthorized,
    /// Wrong token.
    #[error("invalid admin token")]
    Forbidden,
    /// No such room (or other resource).
    #[error("{0}")]
    NotFound(String),
    /// Malformed request.
    #[error("{0}")]
    BadRequest(String),
    /// The request conflicts with the room's current state.
    #[error("{0}")]
    Conflict(String),
    /// The room did not answer.
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            ApiError::Disabled => "api_disabled",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unavailable(_) => "unavailable",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Disabled | ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code())
            .json(json!({ "error": self.code(), "message": self.to_string() }))
    }
}

/// The OpenAPI document of this API (served at `/api/v1/openapi.json`).
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every API route as (method, path under `/api/v1`); `routes` registers exactly
/// these, and tests check the OpenAPI document lists exactly these and that each
/// is served.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/rooms"),
    ("GET", "/rooms/{kind}/{id}"),
    ("DELETE", "/rooms/{kind}/{id}"),
    ("GET", "/rooms/{kind}/{id}/snapshots"),
    ("POST", "/rooms/{kind}/{id}/snapshots"),
    ("GET", "/rooms/{kind}/{id}/snapshots/{n}"),
    ("POST", "/rooms/{kind}/{id}/restore"),
    ("GET", "/openapi.json"),
];

/// Registers the API routes under `/api/v1` (the ones in [`ROUTES`]).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .route("/rooms", web::get().to(list_rooms))
            .route("/rooms/{kind}/{id}", web::get().to(room_detail))
            .route("/rooms/{kind}/{id}", web::delete().to(close_room))
            .route(
                "/rooms/{kind}/{id}/snapshots",
                web::get().to(list_snapshots),
            )
            .route(
                "/rooms/{kind}/{id}/snapshots",
                web::post().to(take_snapshot),
            )
            .route(
                "/rooms/{kind}/{id}/snapshots/{n}",
                web::get().to(view_snapshot),
            )
            .route("/rooms/{kind}/{id}/restore", web::post().to(restore))
            .route("/openapi.json", web::get().to(openapi))
            .default_service(web::to(unknown_route)),
    );
}

/// The OpenAPI document; public (it describes the API, it reveals nothing).
async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI)
}

/// Checks the bearer token (constant-time comparison).
fn authorize(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let Some(expected) = state
        .config
        .admin_token
        .as_deref()
        .filter(|t| !t.is_empty())
    else {
        return Err(ApiError::Disabled);
    };
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::Unauthorized)?;
    let given = header
        .strip_prefix("Bearer ")
        .ok_or(ApiError::Unauthorized)?;
    let same_length = given.len() == expected.len();
    let differences = given
        .bytes()
        .zip(expected.bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if same_length && differences == 0 {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

async fn unknown_route(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    Err(ApiError::NotFound(format!(
        "no API route {} {}",
        req.method(),
        req.path()
    )))
}

/// Query of `GET /rooms`.
#[derive(Debug, Deserialize)]
struct ListQuery {
    /// `game` or `doc`.
    kind: Option<String>,
    /// Only rooms of this game.
    game: Option<String>,
    /// Rooms to skip.
    #[serde(default)]
    offset: usize,
    /// Rooms per page (default 100, at most 500).
    limit: Option<usize>,
}

fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The path id of a room.
fn room_id(key: &RoomKey) -> String {
    match key {
        RoomKey::Game { game, room } => format!("{game}:{room}"),
        RoomKey::Doc { name } => name.to_string(),
    }
}

/// Parses `{kind}/{id}` into a registry key.
fn parse_key(kind: &str, id: &str) -> Result<RoomKey, ApiError> {
    let bad =
        |e: crate::room::RoomNameError| ApiError::BadRequest(format!("bad room id {id:?}: {e}"));
    match kind {
        "game" => {
            let (game, room) = id.split_once(':').ok_or_else(|| {
                ApiError::BadRequest(format!("game room ids are GAME:ROOM, got {id:?}"))
            })?;
            Ok(RoomKey::Game {
                game: game.to_owned(),
                room: RoomName::parse(room).map_err(bad)?,
            })
        }
        "doc" => Ok(RoomKey::Doc {
            name: RoomName::parse(id).map_err(bad)?,
        }),
        other => Err(ApiError::BadRequest(format!(
            "unknown room kind {other:?} (game or doc)"
        ))),
    }
}

/// The live room `{kind}/{id}`, or 400/404.
fn live_room(state: &AppState, kind: &str, id: &str) -> Result<RoomEntry, ApiError> {
    let key = parse_key(kind, id)?;
    state
        .registry
        .get(&key)
        .ok_or_else(|| ApiError::NotFound(format!("no live room {kind}/{id}")))
}

/// The figures of a game room that listings and the detail view share.
fn game_figures(room: &mut serde_json::Value, info: &GameRoomInfo) {
    room["tick"] = json!(info.tick);
    room["tick_rate_hz"] = json!(info.tick_rate_hz);
    room["tick_p50_ms"] = json!(info.timing.duration_p50_us as f64 / 1000.0);
    room["tick_p99_ms"] = json!(info.timing.duration_p99_us as f64 / 1000.0);
    room["failed"] = json!(info.failed);
    room["bytes_out_per_sec"] = json!(info.bytes_out_per_sec.round());
    room["last_snapshot"] = json!(info.last_snapshot);
}

/// The figures of a doc room that listings and the detail view share.
fn doc_figures(room: &mut serde_json::Value, info: &DocRoomSummary) {
    room["doc_bytes"] = json!(info.doc_bytes);
    room["updates_applied"] = json!(info.updates_applied);
    room["bytes_out_per_sec"] = json!(info.bytes_out_per_sec.round());
    room["last_snapshot"] = json!(info.last_snapshot);
}

/// Figures every room view shows, from the room's cheap description
/// (`None` when the room stopped while answering).
async fn room_figures(entry: &RoomEntry) -> Option<serde_json::Value> {
    let mut room = json!({
        "id": room_id(&entry.key),
        "kind": entry.key.kind(),
        "game": if entry.key.game().is_empty() { serde_json::Value::Null } else { json!(entry.key.game()) },
        "name": entry.key.room(),
        "created_at_ms": unix_millis(entry.created_at),
    });
    if let Some(addr) = entry.addr.game() {
        let info = addr.send(DescribeRoom::default()).await.ok()?;
        game_figures(&mut room, &info);
        room["members"] = json!(info.members.len());
    } else if let Some(addr) = entry.addr.doc() {
        let info = addr.send(DescribeDoc).await.ok()?;
        doc_figures(&mut room, &info);
        room["members"] = json!(info.members.len());
    }
    Some(room)
}

async fn list_rooms(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    if let Some(kind) = query
        .kind
        .as_deref()
        .filter(|k| *k != "game" && *k != "doc")
    {
        return Err(ApiError::BadRequest(format!(
            "unknown room kind {kind:?} (game or doc)"
        )));
    }
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let matching: Vec<_> = state
        .registry
        .rooms()
        .into_iter()
        .filter(|r| query.kind.as_deref().is_none_or(|k| r.key.kind() == k))
        .filter(|r| query.game.as_deref().is_none_or(|g| r.key.game() == g))
        .collect();
    let total = matching.len();
    let page: Vec<_> = matching
        .into_iter()
        .skip(query.offset)
        .take(limit)
        .collect();
    // Rooms live on several arbiters: ask them all at once.
    let rooms: Vec<_> = futures_util::future::join_all(page.iter().map(room_figures))
        .await
        .into_iter()
        .flatten()
        .collect();
    Ok(HttpResponse::Ok()
        .json(json!({ "total": total, "offset": query.offset, "limit": limit, "rooms": rooms })))
}

async fn room_detail(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let (kind, id) = path.into_inner();
    let entry = live_room(&state, &kind, &id)?;
    let gone = |_| ApiError::Unavailable(format!("room {kind}/{id} stopped while answering"));
    let mut body = json!({
        "id": room_id(&entry.key),
        "kind": entry.key.kind(),
        "name": entry.key.room(),
        "created_at_ms": unix_millis(entry.created_at),
    });
    if let Some(addr) = entry.addr.game() {
        let info = addr
            .send(DescribeRoom { with_state: true })
            .await
            .map_err(gone)?;
        game_figures(&mut body, &info);
        body["game"] = json!(info.game);
        body["timing"] = json!(info.timing);
        body["members"] = json!(info.members);
        body["away_players"] = json!(info.away_players);
        body["state"] = info.state.unwrap_or(serde_json::Value::Null);
    } else if let Some(addr) = entry.addr.doc() {
        let info = addr.send(InspectDoc).await.map_err(gone)?;
        doc_figures(&mut body, &info.summary);
        body["game"] = serde_json::Value::Null;
        body["members"] = json!(info.summary.members);
        body["awareness_clients"] = json!(info.summary.awareness_clients);
        body["pending_updates"] = json!(info.summary.pending_updates);
        body["state"] = info.content;
    }
    Ok(HttpResponse::Ok().json(body))
}

/// Parses a snapshot number from a path segment.
fn snapshot_number(n: &str) -> Result<i64, ApiError> {
    n.parse()
        .map_err(|_| ApiError::BadRequest(format!("snapshot number {n:?} is not a number")))
}

/// Body of `POST …/restore`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreRequest {
    /// The snapshot to restore (its id, as listed by `GET …/snapshots`).
    snapshot: i64,
}

/// Restores a room to one of its stored snapshots. The room is started (and its
/// latest snapshot loaded) if it is not live, so an evicted room can be restored
/// too. A game room resets at its next tick and members get a full snapshot; a
/// doc room gets a new update, relayed to every member once stored.
async fn restore(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let (kind, id) = path.into_inner();
    let key = parse_key(&kind, &id)?;
    let request: RestoreRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body must be JSON like {{\"snapshot\": 3}}: {e}"
        ))
    })?;
    let n = request.snapshot;
    let store = store(&state)?;
    let missing = || ApiError::NotFound(format!("no snapshot {n} of {kind}/{id}"));
    let refused = |e: RestoreRefused| match e {
        RestoreRefused::Conflict(m) => ApiError::Conflict(m),
        RestoreRefused::Unavailable(m) => ApiError::Unavailable(m),
    };
    let gone = |_| ApiError::Unavailable(format!("room {kind}/{id} stopped while restoring"));
    let restored = match &key {
        RoomKey::Game { game, room } => {
            let entry = state
                .games
                .get(game)
                .ok_or_else(|| ApiError::NotFound(format!("unknown game {game:?}")))?;
            let snapshot = store
                .game_snapshot(game, room.as_str(), n)
                .await
                .map_err(store_error)?
                .ok_or_else(missing)?;
            let addr = state.registry.game_room(entry, room);
            addr.send(RestoreGameSnapshot { snapshot })
                .await
                .map_err(gone)?
                .map_err(refused)?
        }
        RoomKey::Doc { name } => {
            let snapshot = store
                .doc_snapshot(name.as_str(), n)
                .await
                .map_err(store_error)?
                .ok_or_else(missing)?;
            let addr = state.registry.doc_room(name, &state.doc_settings());
            addr.send(RestoreDocSnapshot { snapshot })
                .await
                .map_err(gone)?
                .map_err(refused)?
        }
    };
    Ok(HttpResponse::Ok().json(json!({
        "id": room_id(&key),
        "kind": key.kind(),
        "restored_from": n,
        "at": restored.at,
    })))
}

/// The store, or 503 when persistence is off.
fn store(state: &AppState) -> Result<std::sync::Arc<dyn crate::store::Store>, ApiError> {
    state
        .persistence
        .as_ref()
        .map(|p| p.store.clone())
        .ok_or_else(|| ApiError::Unavailable("persistence is off: there are no snapshots".into()))
}

fn store_error(e: crate::store::StoreError) -> ApiError {
    ApiError::Unavailable(format!("store: {e}"))
}

async fn list_snapshots(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let (kind, id) = path.into_inner();
    let key = parse_key(&kind, &id)?;
    let store = store(&state)?;
    let list = match &key {
        RoomKey::Game { game, room } => store.list_game_snapshots(game, room.as_str()).await,
        RoomKey::Doc { name } => store.list_doc_snapshots(name.as_str()).await,
    }
    .map_err(store_error)?;
    Ok(HttpResponse::Ok()
        .json(json!({ "id": room_id(&key), "kind": key.kind(), "snapshots": list })))
}

async fn view_snapshot(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let (kind, id, n) = path.into_inner();
    let key = parse_key(&kind, &id)?;
    let n = snapshot_number(&n)?;
    let store = store(&state)?;
    let missing = || ApiError::NotFound(format!("no snapshot {n} of {kind}/{id}"));
    let body = match &key {
        RoomKey::Game { game, room } => {
            let snap = store
                .game_snapshot(game, room.as_str(), n)
                .await
                .map_err(store_error)?
                .ok_or_else(missing)?;
            let entry = state
                .games
                .get(game)
                .ok_or_else(|| ApiError::NotFound(format!("unknown game {game:?}")))?;
            let content = crate::room::game::snapshot_state_json(entry, &snap.state)
                .unwrap_or_else(|e| json!({ "error": e }));
            json!({ "snapshot": snap.meta, "tick": snap.tick, "format_version": snap.format_version, "state": content })
        }
        RoomKey::Doc { name } => {
            let snap = store
                .doc_snapshot(name.as_str(), n)
                .await
                .map_err(store_error)?
                .ok_or_else(missing)?;
            let content =
                crate::doc::stored_json(&snap.state).unwrap_or_else(|e| json!({ "error": e }));
            json!({ "snapshot": snap.meta, "through_seq": snap.through_seq, "state": content })
        }
    };
    Ok(HttpResponse::Ok().json(body))
}

async fn take_snapshot(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let (kind, id) = path.into_inner();
    store(&state)?;
    let entry = live_room(&state, &kind, &id)?;
    let meta = entry
        .addr
        .take_snapshot()
        .await
        .map_err(ApiError::Unavailable)?;
    Ok(HttpResponse::Created().json(json!({ "id": room_id(&entry.key), "snapshot": meta })))
}

async fn close_room(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let (kind, id) = path.into_inner();
    let entry = live_room(&state, &kind, &id)?;
    // The room snapshots (game) or compacts (doc), then closes its members with 1001.
    entry.addr.stop().await;
    Ok(HttpResponse::Ok().json(json!({ "id": room_id(&entry.key), "closed": true })))
}
