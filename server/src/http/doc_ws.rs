//! `GET /doc/{name}`: the y-websocket endpoint. `new WebsocketProvider(
//! 'ws://host:8080/doc', name, ydoc)` connects here. The name is percent-decoded
//! (query parameters are not part of it) and checked like a game room name (400);
//! then admission (origin, token, limits: see [`super::admission`]).

use actix_web::{web, HttpRequest, HttpResponse};

use super::{admission, AppState};
use crate::auth::{doc_room_path, Role};
use crate::room::{RoomKey, RoomName};
use crate::session::doc::DocSession;

/// The upgrade handler.
pub async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let name = match RoomName::parse(&path.into_inner()) {
        Ok(name) => name,
        Err(e) => {
            return Ok(HttpResponse::BadRequest()
                .content_type("text/plain")
                .body(format!("{e}\n")))
        }
    };
    let key = RoomKey::Doc { name: name.clone() };
    let admitted = match admission::admit(&req, &state, &key, &doc_room_path(name.as_str())) {
        Ok(admitted) => admitted,
        Err(refusal) => return Ok(refusal.into_response()),
    };
    let read_only = admitted
        .claims
        .as_ref()
        .is_some_and(|c| c.role == Role::Read);
    let user = admitted.claims.as_ref().map(|c| c.sub.clone());
    let limits = state.doc_limits();
    let conn = state.next_conn_id();
    let peer = req.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let client = admitted.slot.ip();
    let span = tracing::info_span!("conn", conn, kind = "doc", doc = %name, %peer, %client, user = user.as_deref().unwrap_or(""), read_only);
    let session = DocSession {
        conn,
        name,
        registry: state.registry.clone(),
        doc_settings: state.doc_settings(),
        limits,
        outbox_frames: state.config.outbox_frames,
        shutdown: state.shutdown.clone(),
        read_only,
        user,
    };
    state.start_session(&req, body, admitted, limits, span, |ws, stream| {
        session.run(ws, stream)
    })
}
