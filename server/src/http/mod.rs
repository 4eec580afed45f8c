//! HTTP surface: routes, shared application state, and the WebSocket upgrade
//! handlers that validate a request before upgrading and then hand the socket to
//! a session task.

mod doc_ws;
mod game_ws;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix_web::{web, HttpResponse};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::config::Config;
use crate::game::GameCatalog;
use crate::room::{doc_room::DocSettings, RoomRegistry};
use crate::session::ConnLimits;

/// State shared by every HTTP worker.
pub struct AppState {
    /// The server configuration.
    pub config: Config,
    /// Registered games.
    pub games: GameCatalog,
    /// Rooms.
    pub registry: Arc<RoomRegistry>,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
    /// Tracks every session task so shutdown can wait for them.
    pub sessions: TaskTracker,
    /// Next connection id.
    next_conn: AtomicU64,
}

impl AppState {
    /// Shared state for the HTTP workers.
    pub fn new(
        config: Config,
        games: GameCatalog,
        registry: Arc<RoomRegistry>,
        shutdown: CancellationToken,
        sessions: TaskTracker,
    ) -> Self {
        Self {
            config,
            games,
            registry,
            shutdown,
            sessions,
            next_conn: AtomicU64::new(1),
        }
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Limits applied to each doc connection.
    pub fn doc_limits(&self) -> ConnLimits {
        ConnLimits {
            max_frame_bytes: self.config.doc_max_frame_bytes,
            ..self.game_limits()
        }
    }

    /// Settings of doc rooms.
    pub fn doc_settings(&self) -> DocSettings {
        DocSettings {
            max_doc_bytes: self.config.doc_max_bytes,
            awareness_timeout: self.config.awareness_timeout,
        }
    }

    /// Limits applied to each game connection.
    pub fn game_limits(&self) -> ConnLimits {
        ConnLimits {
            max_frame_bytes: self.config.max_frame_bytes,
            join_timeout: self.config.join_timeout,
            heartbeat_interval: self.config.heartbeat_interval,
            heartbeat_timeout: self.config.heartbeat_timeout,
        }
    }
}

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/game/{game}/{room}", web::get().to(game_ws::upgrade))
        .route("/doc/{name}", web::get().to(doc_ws::upgrade))
        .route("/healthz", web::get().to(healthz));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}
