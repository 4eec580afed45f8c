//! Server configuration: one struct, every setting both a CLI flag and a
//! `ROOMCAST_*` environment variable, each with a default that works out of the box.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::doc::HoldLimits;
use crate::game::{GameCatalog, TICK_RATE_RANGE};
use crate::http::client_addr::IpNet;

/// Default listen address.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// Default largest WebSocket frame (and aggregated message) on game rooms.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024;
/// Default largest WebSocket message on doc rooms (a first sync carries a whole doc).
pub const DEFAULT_DOC_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;
/// Default largest document.
pub const DEFAULT_DOC_MAX_BYTES: usize = 64 * 1024 * 1024;

/// roomcast: a real-time room server. Game rooms run a fixed tick and broadcast
/// state deltas (`/game/{game}/{room}`); doc rooms sync Yjs documents over the
/// y-websocket protocol (`/doc/{name}`); durations accept `250ms`, `30s`, `2m` or a
/// plain number of seconds.
#[derive(Debug, Clone, Parser)]
#[command(name = "roomcast", version, about, long_about = None)]
pub struct Config {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address to listen on.
    #[arg(long, env = "ROOMCAST_BIND", default_value = DEFAULT_BIND)]
    pub bind: SocketAddr,

    /// Tick rate of a game, as GAME=HZ (1..=120); repeat the flag or separate with
    /// commas in the env var. Games not named keep their own default (arena 30 Hz).
    #[arg(long = "tick-rate", env = "ROOMCAST_TICK_RATES", value_name = "GAME=HZ", value_delimiter = ',', value_parser = parse_tick_rate)]
    pub tick_rates: Vec<(String, u16)>,

    /// How long a disconnected player may take to resume with its token, as
    /// GAME=DURATION; games not named keep the default of 10s.
    #[arg(long = "resume-grace", env = "ROOMCAST_RESUME_GRACE", value_name = "GAME=DURATION", value_delimiter = ',', value_parser = parse_game_duration)]
    pub resume_graces: Vec<(String, Duration)>,

    /// Most connected members of one room of a game, as GAME=N; games not named
    /// keep the default of 64. Further joins are closed with 1013.
    #[arg(long = "max-members", env = "ROOMCAST_MAX_MEMBERS", value_name = "GAME=N", value_delimiter = ',', value_parser = parse_game_count)]
    pub max_members: Vec<(String, usize)>,

    /// Most connected members of one doc room; further joins are closed with 1013.
    #[arg(long, env = "ROOMCAST_DOC_MAX_MEMBERS", default_value_t = 256)]
    pub doc_max_members: usize,

    /// Most open WebSocket connections in all; further upgrades get 503.
    #[arg(long, env = "ROOMCAST_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Most open WebSocket connections from one IP address; further upgrades get 429.
    #[arg(long, env = "ROOMCAST_MAX_CONNECTIONS_PER_IP", default_value_t = 512)]
    pub max_connections_per_ip: usize,

    /// Most live rooms (game and doc); an upgrade that would create another gets 503.
    #[arg(long, env = "ROOMCAST_MAX_ROOMS", default_value_t = 10_000)]
    pub max_rooms: usize,

    /// Messages per second one connection may send (token bucket; bursts up to
    /// twice as many); beyond it the connection is closed with 1008.
    #[arg(long, env = "ROOMCAST_MAX_MESSAGES_PER_SEC", default_value_t = 200)]
    pub max_messages_per_sec: u32,

    /// Bytes per second one connection may send (token bucket; bursts up to the
    /// largest frame of its room kind); beyond it the connection is closed with 1008.
    #[arg(long, env = "ROOMCAST_MAX_BYTES_PER_SEC", default_value_t = 1 << 20)]
    pub max_bytes_per_sec: u32,

    /// Secret (at least 16 bytes) that join tokens are signed with (HS256).
    /// Set this or --auth-public-key to require a token on every WebSocket
    /// upgrade; with neither the server is open (development only).
    #[arg(
        long,
        env = "ROOMCAST_AUTH_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub auth_secret: Option<String>,

    /// PEM public key that join tokens are verified with: Ed25519 (EdDSA) or RSA
    /// (RS256).
    #[arg(long, env = "ROOMCAST_AUTH_PUBLIC_KEY")]
    pub auth_public_key: Option<PathBuf>,

    /// Origins browsers may open WebSockets from, comma-separated (e.g.
    /// `https://app.example.com`), or `*` for any. Unset: the server's own origin
    /// only. Requests without an Origin header (non-browser clients) are allowed.
    #[arg(long, env = "ROOMCAST_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Reverse proxies in front of the server, comma-separated IP addresses or
    /// CIDR blocks (e.g. `127.0.0.1,10.0.0.0/8`). A connection from one of them
    /// counts as coming from the address its `X-Forwarded-For` names (the
    /// rightmost one that is not itself a trusted proxy), for the per-IP limit
    /// and the logs. Unset: `X-Forwarded-For` is ignored (any client could forge it).
    #[arg(long, env = "ROOMCAST_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpNet>,

    /// An empty room (no members, nobody within their resume grace) stops after this long.
    #[arg(long, env = "ROOMCAST_IDLE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// A member whose outbox stays full this long is disconnected with close code 1008.
    #[arg(long, env = "ROOMCAST_LAG_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub lag_timeout: Duration,

    /// Frames a member's outbox holds before the member counts as lagging.
    #[arg(long, env = "ROOMCAST_OUTBOX_FRAMES", default_value_t = 64)]
    pub outbox_frames: usize,

    /// Recent published states a game room keeps, for resume deltas.
    #[arg(long, env = "ROOMCAST_HISTORY_TICKS", default_value_t = 90)]
    pub history_ticks: usize,

    /// Largest WebSocket frame accepted on game rooms, bytes; larger closes with 1009.
    #[arg(long, env = "ROOMCAST_MAX_FRAME_BYTES", default_value_t = DEFAULT_MAX_FRAME_BYTES)]
    pub max_frame_bytes: usize,

    /// Largest WebSocket message accepted on doc rooms, bytes; larger closes with 1009.
    #[arg(long, env = "ROOMCAST_DOC_MAX_FRAME_BYTES", default_value_t = DEFAULT_DOC_MAX_FRAME_BYTES)]
    pub doc_max_frame_bytes: usize,

    /// Largest document, bytes (encoded state, approximately); an edit that would
    /// grow a document beyond it closes its sender with 1009 and is not applied.
    #[arg(long, env = "ROOMCAST_DOC_MAX_BYTES", default_value_t = DEFAULT_DOC_MAX_BYTES)]
    pub doc_max_bytes: usize,

    /// Awareness states (presence, cursors) not renewed within this long are removed.
    #[arg(long, env = "ROOMCAST_AWARENESS_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub awareness_timeout: Duration,

    /// Bytes of doc updates one connection may have waiting for clocks the
    /// document lacks (edits a reconnecting client typed before its sync step
    /// 2 arrived); beyond it the connection is closed with 1008.
    #[arg(long, env = "ROOMCAST_DOC_HOLD_BYTES", default_value_t = HoldLimits::default().conn_bytes)]
    pub doc_hold_bytes: usize,

    /// Bytes of doc updates one document may have waiting for missing clocks,
    /// all connections together; beyond it the sender is closed with 1008.
    #[arg(long, env = "ROOMCAST_DOC_HOLD_DOC_BYTES", default_value_t = HoldLimits::default().doc_bytes)]
    pub doc_hold_doc_bytes: usize,

    /// How long a doc update may wait for the clocks it follows; past it, it
    /// is refused and its sender closed with 1007.
    #[arg(long, env = "ROOMCAST_DOC_HOLD_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub doc_hold_timeout: Duration,

    /// A connection must send its Join within this long, or it is closed (1008).
    #[arg(long, env = "ROOMCAST_JOIN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub join_timeout: Duration,

    /// The server pings each connection this often.
    #[arg(long, env = "ROOMCAST_HEARTBEAT_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,

    /// A connection silent (no frame, no pong) for this long is closed (1008).
    #[arg(long, env = "ROOMCAST_HEARTBEAT_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub heartbeat_timeout: Duration,

    /// Threads (actix arbiters) rooms run on; 0 means one per CPU core.
    #[arg(long, env = "ROOMCAST_ROOM_THREADS", default_value_t = 0)]
    pub room_threads: usize,

    /// HTTP/WebSocket worker threads; 0 means one per CPU core.
    #[arg(long, env = "ROOMCAST_HTTP_WORKERS", default_value_t = 0)]
    pub http_workers: usize,

    /// Longest time graceful shutdown waits for connections to close.
    #[arg(long, env = "ROOMCAST_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Database URL: `postgres://user@host/db` for PostgreSQL, or `sqlite://PATH`.
    /// Unset: the SQLite file `roomcast.db` under --data-dir (created on first start).
    #[arg(long, env = "ROOMCAST_DATABASE_URL", global = true)]
    pub database_url: Option<String>,

    /// Directory of the default SQLite database.
    #[arg(
        long,
        env = "ROOMCAST_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    pub data_dir: PathBuf,

    /// `on`: rooms are persisted (game snapshots, doc update log); `off`: nothing
    /// is stored and no database is opened (ephemeral servers, benchmarks).
    #[arg(long, env = "ROOMCAST_PERSISTENCE", default_value = "on", value_parser = ["on", "off"])]
    pub persistence: String,

    /// Most database connections in the pool.
    #[arg(
        long,
        env = "ROOMCAST_DB_POOL_SIZE",
        default_value_t = 8,
        global = true
    )]
    pub db_pool_size: u32,

    /// Longest wait for a database connection; also bounds start-up when the
    /// database is down (the server then exits with one error line).
    #[arg(long, env = "ROOMCAST_DB_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = parse_duration, global = true)]
    pub db_acquire_timeout: Duration,

    /// Longest time one SQL statement may run (SQLite: wait for the write lock).
    #[arg(long, env = "ROOMCAST_DB_STATEMENT_TIMEOUT", default_value = "30s", value_parser = parse_duration, global = true)]
    pub db_statement_timeout: Duration,

    /// How long a write is retried on transient database errors before it fails
    /// (a doc edit that cannot be stored closes its sender with 1011).
    #[arg(long, env = "ROOMCAST_DB_RETRY_FOR", default_value = "3s", value_parser = parse_duration)]
    pub db_retry_for: Duration,

    /// Doc updates arriving within this window share one database transaction.
    #[arg(long, env = "ROOMCAST_GROUP_COMMIT_WINDOW", default_value = "2ms", value_parser = parse_duration)]
    pub group_commit_window: Duration,

    /// How often a game room is snapshotted, as GAME=DURATION (default 10s).
    #[arg(long = "snapshot-interval", env = "ROOMCAST_SNAPSHOT_INTERVALS", value_name = "GAME=DURATION", value_delimiter = ',', value_parser = parse_game_duration)]
    pub snapshot_intervals: Vec<(String, Duration)>,

    /// Snapshots kept per game room and per doc (older ones are pruned).
    #[arg(long, env = "ROOMCAST_SNAPSHOT_KEEP", default_value_t = 20)]
    pub snapshot_keep: usize,

    /// A doc's update log is compacted into a snapshot after this many updates...
    #[arg(long, env = "ROOMCAST_DOC_COMPACT_UPDATES", default_value_t = 500)]
    pub doc_compact_updates: usize,

    /// ...or when this long has passed with updates since the last compaction.
    #[arg(long, env = "ROOMCAST_DOC_COMPACT_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub doc_compact_interval: Duration,

    /// Bearer token of the admin API (`/api/v1`). Unset: the API is disabled.
    #[arg(long, env = "ROOMCAST_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Serve the operator surface (`/metrics`, `/api/v1`, `/dashboard`) on this
    /// address instead of the main one, e.g. `127.0.0.1:9090` to keep it off the
    /// public interface. Unset: everything is served on `--bind`.
    #[arg(long, env = "ROOMCAST_ADMIN_BIND")]
    pub admin_bind: Option<SocketAddr>,

    /// Log format: `text` or `json`. Levels come from RUST_LOG (default `info`).
    #[arg(long, env = "ROOMCAST_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

/// Subcommands of `roomcast`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Print a signed join token (for testing and for operators).
    Token(TokenArgs),
}

/// `roomcast token`: what the token says and how long it lasts.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct TokenArgs {
    /// The room(s): `game/GAME/ROOM`, `doc/NAME`, or a prefix ending in `*`.
    #[arg(long)]
    pub room: String,
    /// `player` or `spectator` (game rooms), `write` or `read` (doc rooms).
    #[arg(long, value_parser = ["player", "spectator", "write", "read"])]
    pub role: String,
    /// The user (or player) the token is for.
    #[arg(long, default_value = "operator")]
    pub sub: String,
    /// How long the token is valid.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub ttl: Duration,
    /// PEM private key (Ed25519 or RSA) to sign with instead of ROOMCAST_AUTH_SECRET.
    #[arg(long)]
    pub signing_key: Option<PathBuf>,
}

impl Default for Config {
    /// The defaults above, ignoring the environment (for embedding and tests).
    fn default() -> Self {
        // Cannot fail: no arguments, every field has a default. `env` attributes
        // would read the environment, so build from an empty one instead.
        let cmd = <Config as clap::CommandFactory>::command();
        let cmd = cmd.mut_args(|a| a.env(None::<&str>));
        let matches = cmd
            .try_get_matches_from(["roomcast"])
            .expect("defaults parse");
        <Config as clap::FromArgMatches>::from_arg_matches(&matches).expect("defaults parse")
    }
}

impl Config {
    /// Applies the per-game settings to a catalog; an unknown game name is an error.
    pub fn apply_to(&self, catalog: &mut GameCatalog) -> Result<(), String> {
        for (game, hz) in &self.tick_rates {
            if !catalog.configure(game, |s| s.tick_rate_hz = *hz) {
                return Err(format!(
                    "--tick-rate names unknown game {game:?} (known: {:?})",
                    catalog.names()
                ));
            }
        }
        for (game, interval) in &self.snapshot_intervals {
            if !catalog.configure(game, |s| s.snapshot_interval = *interval) {
                return Err(format!(
                    "--snapshot-interval names unknown game {game:?} (known: {:?})",
                    catalog.names()
                ));
            }
        }
        for (game, n) in &self.max_members {
            if !catalog.configure(game, |s| s.max_members = *n) {
                return Err(format!(
                    "--max-members names unknown game {game:?} (known: {:?})",
                    catalog.names()
                ));
            }
        }
        for (game, grace) in &self.resume_graces {
            if !catalog.configure(game, |s| s.resume_grace = *grace) {
                return Err(format!(
                    "--resume-grace names unknown game {game:?} (known: {:?})",
                    catalog.names()
                ));
            }
        }
        Ok(())
    }

    /// True unless persistence is switched off.
    pub fn persistence_enabled(&self) -> bool {
        self.persistence != "off"
    }

    /// The store settings of this configuration.
    pub fn store_config(&self) -> crate::store::StoreConfig {
        crate::store::StoreConfig {
            url: self.database_url.clone(),
            data_dir: self.data_dir.clone(),
            pool_size: self.db_pool_size,
            acquire_timeout: self.db_acquire_timeout,
            statement_timeout: self.db_statement_timeout,
        }
    }

    /// The persistence writers' settings of this configuration.
    pub fn persist_settings(&self) -> crate::persist::PersistSettings {
        crate::persist::PersistSettings {
            retry_for: self.db_retry_for,
            group_commit_window: self.group_commit_window,
            snapshot_keep: self.snapshot_keep,
            doc_snapshot_keep: self.snapshot_keep,
        }
    }

    /// Room threads after resolving 0 to the core count.
    pub fn room_thread_count(&self) -> usize {
        resolve_threads(self.room_threads)
    }

    /// HTTP workers after resolving 0 to the core count.
    pub fn http_worker_count(&self) -> usize {
        resolve_threads(self.http_workers)
    }
}

fn resolve_threads(n: usize) -> usize {
    if n > 0 {
        n
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    }
}

/// Parses `250ms`, `30s`, `2m`, `1h` or a plain number of seconds (fractions allowed).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (try 250ms, 30s, 2m)"))?;
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} in {s:?} (use ms, s, m or h)"
            ))
        }
    };
    if !value.is_finite() || value < 0.0 {
        return Err(format!("{s:?} is not a non-negative duration"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

fn split_game_value(s: &str) -> Result<(String, &str), String> {
    let (game, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not GAME=VALUE"))?;
    if game.trim().is_empty() {
        return Err(format!("{s:?} names no game"));
    }
    Ok((game.trim().to_owned(), value.trim()))
}

fn parse_tick_rate(s: &str) -> Result<(String, u16), String> {
    let (game, value) = split_game_value(s)?;
    let hz: u16 = value
        .parse()
        .map_err(|_| format!("tick rate {value:?} is not a whole number"))?;
    if !TICK_RATE_RANGE.contains(&hz) {
        return Err(format!(
            "tick rate {hz} Hz is outside {}..={}",
            TICK_RATE_RANGE.start(),
            TICK_RATE_RANGE.end()
        ));
    }
    Ok((game, hz))
}

fn parse_game_count(s: &str) -> Result<(String, usize), String> {
    let (game, value) = split_game_value(s)?;
    let n: usize = value
        .parse()
        .map_err(|_| format!("{value:?} is not a whole number"))?;
    if n == 0 {
        return Err("must be at least 1".into());
    }
    Ok((game, n))
}

fn parse_game_duration(s: &str) -> Result<(String, Duration), String> {
    let (game, value) = split_game_value(s)?;
    Ok((game, parse_duration(value)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3d").is_err());
    }

    #[test]
    fn tick_rates_are_bounded_and_applied() {
        assert!(parse_tick_rate("arena=0").is_err());
        assert!(parse_tick_rate("arena=121").is_err());
        let cfg = Config::try_parse_from([
            "roomcast",
            "--tick-rate",
            "arena=60",
            "--resume-grace",
            "arena=2s",
        ])
        .unwrap();
        let mut catalog = GameCatalog::with_builtin_games();
        cfg.apply_to(&mut catalog).unwrap();
        let arena = catalog.get("arena").unwrap();
        assert_eq!(arena.settings.tick_rate_hz, 60);
        assert_eq!(arena.settings.resume_grace, Duration::from_secs(2));
        let bad = Config::try_parse_from(["roomcast", "--tick-rate", "chess=10"]).unwrap();
        assert!(bad.apply_to(&mut catalog).is_err());
    }

    #[test]
    fn defaults_do_not_need_the_environment() {
        let cfg = Config::default();
        assert_eq!(cfg.bind.to_string(), DEFAULT_BIND);
        assert_eq!(cfg.max_frame_bytes, DEFAULT_MAX_FRAME_BYTES);
    }
}
