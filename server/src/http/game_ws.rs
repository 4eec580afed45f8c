//! `GET /game/{game}/{room}`: checks the game (404), the room name (400) and
//! admission (origin, token, limits: see [`super::admission`]) before the
//! upgrade, then runs a [`GameSession`] on the connection.

use actix_web::{web, HttpRequest, HttpResponse};

use super::{admission, AppState};
use crate::auth::{game_room_path, Role};
use crate::room::{RoomKey, RoomName};
use crate::session::game::GameSession;

/// The upgrade handler.
pub async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let (game_name, room_name) = path.into_inner();
    let Some(game) = state.games.get(&game_name) else {
        return Ok(HttpResponse::NotFound()
            .content_type("text/plain")
            .body(format!(
                "unknown game {game_name:?}; known games: {}\n",
                state.games.names().join(", ")
            )));
    };
    let room = match RoomName::parse(&room_name) {
        Ok(room) => room,
        Err(e) => {
            return Ok(HttpResponse::BadRequest()
                .content_type("text/plain")
                .body(format!("{e}\n")))
        }
    };
    let key = RoomKey::Game {
        game: game_name.clone(),
        room: room.clone(),
    };
    let admitted = match admission::admit(
        &req,
        &state,
        &key,
        &game_room_path(&game_name, room.as_str()),
    ) {
        Ok(admitted) => admitted,
        Err(refusal) => return Ok(refusal.into_response()),
    };
    let spectator = admitted
        .claims
        .as_ref()
        .is_some_and(|c| c.role == Role::Spectator);
    let user = admitted.claims.as_ref().map(|c| c.sub.clone());
    let limits = state.game_limits();
    let conn = state.next_conn_id();
    let peer = req.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let client = admitted.slot.ip();
    let span = tracing::info_span!("conn", conn, kind = "game", game = %game_name, room = %room, %peer, %client, user = user.as_deref().unwrap_or(""), spectator);
    let session = GameSession {
        conn,
        game: game.clone(),
        room,
        registry: state.registry.clone(),
        limits,
        outbox_frames: state.config.outbox_frames,
        shutdown: state.shutdown.clone(),
        spectator,
        user,
    };
    state.start_session(&req, body, admitted, limits, span, |ws, stream| {
        session.run(ws, stream)
    })
}
