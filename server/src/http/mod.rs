//! HTTP surface: routes, shared application state, and the WebSocket upgrade
//! handlers that validate a request before upgrading and then hand the socket to
//! a session task.

pub mod admission;
pub mod api;
pub mod client_addr;
mod dashboard;
mod demos;
mod doc_ws;
mod embedded;
mod game_ws;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use std::future::Future;

use actix_web::{web, HttpRequest, HttpResponse};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use crate::config::Config;
use crate::game::GameCatalog;
use crate::persist::Persistence;
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
    /// The store and its writers (`None` with persistence off).
    pub persistence: Option<Arc<Persistence>>,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
    /// Tracks every session task so shutdown can wait for them.
    pub sessions: TaskTracker,
    /// Renders `/metrics`.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Verifies join tokens (`None`: authentication off, the server is open).
    pub authenticator: Option<crate::auth::Authenticator>,
    /// Open connections against their limits.
    pub connections: Arc<admission::ConnectionSlots>,
    /// Next connection id.
    next_conn: AtomicU64,
}

impl AppState {
    /// Shared state for the HTTP workers.
    pub fn new(
        config: Config,
        games: GameCatalog,
        registry: Arc<RoomRegistry>,
        persistence: Option<Arc<Persistence>>,
        shutdown: CancellationToken,
        sessions: TaskTracker,
        authenticator: Option<crate::auth::Authenticator>,
    ) -> Self {
        let connections =
            admission::ConnectionSlots::new(config.max_connections, config.max_connections_per_ip);
        Self {
            config,
            games,
            registry,
            persistence,
            shutdown,
            sessions,
            metrics: crate::metrics::install(),
            authenticator,
            connections,
            next_conn: AtomicU64::new(1),
        }
    }

    /// Upgrades an admitted request to a WebSocket read with `limits` and runs
    /// `session` on it as a task that graceful shutdown waits for (503 while
    /// shutting down); the connection keeps its slot until the task ends.
    pub fn start_session<F, Fut>(
        &self,
        req: &HttpRequest,
        body: web::Payload,
        admitted: admission::Admitted,
        limits: ConnLimits,
        span: tracing::Span,
        session: F,
    ) -> actix_web::Result<HttpResponse>
    where
        F: FnOnce(actix_ws::Session, actix_ws::AggregatedMessageStream) -> Fut,
        Fut: Future<Output = ()> + 'static,
    {
        if self.shutdown.is_cancelled() {
            return Ok(HttpResponse::ServiceUnavailable().body("server shutting down\n"));
        }
        // Oversized messages are refused from their headers, before buffering.
        let body = crate::session::guard_payload(req, body, limits.max_frame_bytes);
        let (mut response, ws, stream) = actix_ws::handle(req, body)?;
        if let Some(protocol) = admitted
            .protocol
            .as_deref()
            .and_then(|p| actix_web::http::header::HeaderValue::from_str(p).ok())
        {
            response
                .headers_mut()
                .insert(actix_web::http::header::SEC_WEBSOCKET_PROTOCOL, protocol);
        }
        let slot = admitted.slot;
        let stream = stream
            .max_frame_size(limits.max_frame_bytes)
            .aggregate_continuations()
            .max_continuation_size(limits.max_frame_bytes);
        let run = session(ws, stream);
        actix_web::rt::spawn(
            self.sessions.track_future(
                async move {
                    run.await;
                    drop(slot);
                }
                .instrument(span),
            ),
        );
        Ok(response)
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
            max_members: self.config.doc_max_members,
            compact_updates: self.config.doc_compact_updates,
            compact_interval: self.config.doc_compact_interval,
            hold: crate::doc::HoldLimits {
                conn_bytes: self.config.doc_hold_bytes,
                doc_bytes: self.config.doc_hold_doc_bytes,
                timeout: self.config.doc_hold_timeout,
            },
        }
    }

    /// Limits applied to each game connection.
    pub fn game_limits(&self) -> ConnLimits {
        ConnLimits {
            max_frame_bytes: self.config.max_frame_bytes,
            join_timeout: self.config.join_timeout,
            heartbeat_interval: self.config.heartbeat_interval,
            heartbeat_timeout: self.config.heartbeat_timeout,
            max_messages_per_sec: self.config.max_messages_per_sec,
            max_bytes_per_sec: self.config.max_bytes_per_sec,
        }
    }
}

/// Registers every route: what clients use and the operator surface, on one port.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(public_routes).configure(operator_routes);
}

/// What clients use: the WebSocket endpoints and the health probes.
pub fn public_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/game/{game}/{room}", web::get().to(game_ws::upgrade))
        .route("/doc/{name}", web::get().to(doc_ws::upgrade))
        .configure(probe_routes)
        .configure(demos::routes);
}

/// The health probes (served on the admin port too, when there is one).
pub fn probe_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
}

/// The operator surface: metrics, the admin API and the dashboard.
pub fn operator_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics))
        .configure(api::routes)
        .configure(dashboard::routes);
}

/// Prometheus text exposition of every roomcast metric.
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    if let Some(p) = &state.persistence {
        ::metrics::gauge!(crate::metrics::STORE_POOL_IN_USE).set(f64::from(p.store.pool_in_use()));
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

/// How long `/readyz` waits for the store to answer.
const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Liveness: the process answers.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

/// Readiness: not shutting down, and the store (if any) answers a query.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let unready = |reason: String| {
        HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({ "ready": false, "reason": reason }))
    };
    if state.shutdown.is_cancelled() {
        return unready("shutting down".into());
    }
    if let Some(p) = &state.persistence {
        match tokio::time::timeout(READY_PROBE_TIMEOUT, p.store.ping()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return unready(format!("store: {e}")),
            Err(_) => return unready("store did not answer in time".into()),
        }
    }
    HttpResponse::Ok().json(serde_json::json!({ "ready": true }))
}
