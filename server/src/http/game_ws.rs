//! `GET /game/{game}/{room}`: checks the game (404) and room name (400) before the
//! upgrade, then runs a [`GameSession`] on the connection.

use actix_web::{web, HttpRequest, HttpResponse};

use super::AppState;
use crate::room::RoomName;
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
    let limits = state.game_limits();
    let conn = state.next_conn_id();
    let peer = req.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let span =
        tracing::info_span!("conn", conn, kind = "game", game = %game_name, room = %room, %peer);
    let session = GameSession {
        conn,
        game: game.clone(),
        room,
        registry: state.registry.clone(),
        limits,
        outbox_frames: state.config.outbox_frames,
        shutdown: state.shutdown.clone(),
    };
    state.start_session(&req, body, limits, span, |ws, stream| {
        session.run(ws, stream)
    })
}
