//! Starting and stopping: [`Server`] wires the game catalog, the room registry and
//! the HTTP server together on a listener, and runs until its shutdown token is
//! cancelled; then it stops accepting, closes every connection with 1001, stops
//! every room and returns.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::{web, App, HttpServer};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{info, warn};

use crate::config::Config;
use crate::game::{Game, GameCatalog};
use crate::http::{self, AppState};
use crate::persist::Persistence;
use crate::room::{RoomRegistry, RoomSettings};
use crate::store::{self, Store, StoreError};

/// How often the metrics recorder does its upkeep.
const METRICS_UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is inconsistent (e.g. a setting names an unknown game).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The HTTP server failed.
    #[error("http server: {0}")]
    Io(#[from] std::io::Error),
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A configured server, not yet running. Register extra games before [`Server::run`].
pub struct Server {
    /// The configuration.
    config: Config,
    /// Games by name (the built-in ones plus any the embedder registers).
    games: GameCatalog,
    /// Created in [`Server::run`]; exposed to embedders and tests.
    registry: Option<Arc<RoomRegistry>>,
    /// Where the operator surface is served, when not on the main listener.
    admin_listener: Option<TcpListener>,
}

impl Server {
    /// A server with the built-in games.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            games: GameCatalog::with_builtin_games(),
            registry: None,
            admin_listener: None,
        }
    }

    /// Serves the operator surface (`/metrics`, `/api/v1`, `/dashboard`) on
    /// `listener` instead of the main one (what `--admin-bind` does, for a
    /// listener the caller bound itself).
    pub fn set_admin_listener(&mut self, listener: TcpListener) -> &mut Self {
        self.admin_listener = Some(listener);
        self
    }

    /// Registers an extra game under `name` (its default settings apply; the
    /// config's per-game flags may name it).
    pub fn register_game<G: Game>(&mut self, name: &str, game: G) -> &mut Self {
        self.games.register(name, game);
        self
    }

    /// The game catalog (to inspect or adjust settings before running).
    pub fn games_mut(&mut self) -> &mut GameCatalog {
        &mut self.games
    }

    /// Creates the room registry (and its room threads) now, so the caller can
    /// hold it; [`Server::run`] does it otherwise. Needs an actix system.
    pub fn registry(&mut self) -> Arc<RoomRegistry> {
        let config = &self.config;
        self.registry
            .get_or_insert_with(|| {
                RoomRegistry::new(
                    config.room_thread_count(),
                    RoomSettings {
                        idle_timeout: config.idle_timeout,
                        lag_timeout: config.lag_timeout,
                        history_ticks: config.history_ticks,
                    },
                )
            })
            .clone()
    }

    /// Serves on `listener` until `shutdown` is cancelled, then shuts down
    /// gracefully. Must run inside an actix system (`#[actix_web::main]`,
    /// `#[actix_web::test]`).
    pub async fn run(
        mut self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), ServerError> {
        self.config
            .apply_to(&mut self.games)
            .map_err(ServerError::Config)?;
        let metrics = crate::metrics::install();
        let registry = self.registry();
        let persistence = if self.config.persistence_enabled() {
            let store = connect_and_migrate(&self.config).await?;
            info!(store = store.kind(), "persistence on");
            let (persistence, drained) = Persistence::start(store, self.config.persist_settings());
            registry.set_persistence(persistence.clone());
            Some((persistence, drained))
        } else {
            info!("persistence off: nothing is stored");
            None
        };
        let authenticator = crate::auth::Authenticator::from_settings(
            self.config.auth_secret.as_deref(),
            self.config.auth_public_key.as_deref(),
        )
        .map_err(|e| ServerError::Config(e.to_string()))?;
        if authenticator.is_none() {
            warn!("AUTHENTICATION IS OFF: anyone who can reach this server can join any room; set ROOMCAST_AUTH_SECRET or ROOMCAST_AUTH_PUBLIC_KEY in production");
        }
        if self.config.admin_token.as_deref().is_none_or(str::is_empty) {
            warn!("admin API disabled: set ROOMCAST_ADMIN_TOKEN to enable /api/v1");
        }
        let sessions = TaskTracker::new();
        let addr = listener.local_addr()?;
        let state = web::Data::new(AppState::new(
            self.config.clone(),
            self.games.clone(),
            registry.clone(),
            persistence.as_ref().map(|(p, _)| p.clone()),
            shutdown.clone(),
            sessions.clone(),
            authenticator,
        ));
        let admin_listener = match (self.admin_listener.take(), self.config.admin_bind) {
            (Some(listener), _) => Some(listener),
            (None, Some(addr)) => {
                let listener = TcpListener::bind(addr).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("cannot listen on {addr} (admin): {e}"))
                })?;
                listener.set_nonblocking(true)?;
                Some(listener)
            }
            (None, None) => None,
        };
        let separate_admin = admin_listener.is_some();
        let app_state = state.clone();
        let http = HttpServer::new(move || {
            let app = App::new().app_data(app_state.clone());
            if separate_admin {
                app.configure(http::public_routes)
            } else {
                app.configure(http::routes)
            }
        })
        .workers(self.config.http_worker_count())
        .disable_signals()
        // Real-time frames are small: never let Nagle hold one back waiting
        // for the peer's delayed ACK (that cost ~40 ms at the tail).
        .tcp_nodelay(true)
        .shutdown_timeout(self.config.shutdown_timeout.as_secs().max(1))
        .listen(listener)?
        .run();
        let handle = http.handle();
        info!(%addr, games = ?self.games.names(), room_threads = registry.arbiter_count(), "roomcast listening");
        let admin = match admin_listener {
            Some(listener) => {
                let admin_addr = listener.local_addr()?;
                let admin_state = state.clone();
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(admin_state.clone())
                        .configure(http::operator_routes)
                        .configure(http::probe_routes)
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(1)
                .listen(listener)?
                .run();
                info!(addr = %admin_addr, "operator surface (metrics, admin API, dashboard) listening");
                let admin_handle = server.handle();
                Some((admin_handle, actix_web::rt::spawn(server)))
            }
            None => None,
        };
        // The HTTP servers hold the only other handles: once they stop, the
        // persistence writers can drain.
        drop(state);
        let http_task = actix_web::rt::spawn(http);
        // Histograms need periodic upkeep when the recorder is not the exporter's
        // own HTTP listener.
        let upkeep = actix_web::rt::spawn(async move {
            let mut every = tokio::time::interval(METRICS_UPKEEP_EVERY);
            loop {
                every.tick().await;
                metrics.run_upkeep();
            }
        });

        shutdown.cancelled().await;
        info!("shutting down: no new connections, closing members with 1001");
        handle.pause().await;
        sessions.close();
        if tokio::time::timeout(self.config.shutdown_timeout, sessions.wait())
            .await
            .is_err()
        {
            warn!(
                open = sessions.len(),
                "some connections did not close in time"
            );
        }
        registry.shutdown().await;
        upkeep.abort();
        handle.stop(true).await;
        let _ = http_task.await;
        if let Some((admin_handle, admin_task)) = admin {
            admin_handle.stop(true).await;
            let _ = admin_task.await;
        }
        if let Some((persistence, drained)) = persistence {
            // Every room has flushed; once the last handle is gone the writers drain.
            registry.clear_persistence();
            drop(persistence);
            if tokio::time::timeout(self.config.shutdown_timeout, drained)
                .await
                .is_err()
            {
                warn!("persistence writers did not drain in time");
            }
        }
        info!("shutdown complete");
        Ok(())
    }
}

/// Opens the configured store and applies its migrations (the `migrate`
/// subcommand, and every start with persistence on).
pub async fn connect_and_migrate(config: &Config) -> Result<Arc<dyn Store>, StoreError> {
    let store = store::connect(&config.store_config()).await?;
    store.migrate().await?;
    Ok(store)
}

/// Runs a server with the built-in games: see [`Server::run`].
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    Server::new(config).run(listener, shutdown).await
}
