//! Persistence: the [`Store`] trait, its two implementations ([`postgres`] for
//! production, [`sqlite`] as the embedded default) and [`connect`], which picks one
//! from a URL. This module and its children are the only place in roomcast that
//! contains SQL; the schema lives in `migrations/{postgres,sqlite}/` (one schema,
//! two dialects) and is embedded into the binary, applied by [`Store::migrate`].
//!
//! What is stored:
//! - **game snapshots**: a game room's encoded state at a tick, with the game's
//!   format version; the store keeps the newest K per (game, room).
//! - **doc update log**: every accepted Yjs update of a doc room, numbered by the
//!   room (`seq`, increasing per doc), appended in group commits
//!   ([`Store::append_doc_updates`]) before the update is relayed.
//! - **doc snapshots**: compactions of a prefix of the log ([`Store::compact_doc`]);
//!   a doc is loaded as its latest snapshot plus the log after it.
//!
//! Conventions shared by both implementations:
//! - "newest" means highest `id`: ids only grow and are never reused.
//! - timestamps ([`SnapshotMeta::created_at`]) are unix time in milliseconds, taken
//!   from the server's clock when the row is written and stored as `BIGINT`.
//! - every method is one transaction (or one statement); none leaves partial writes.
//!
//! [`testing`] holds the helpers that give a test a fresh, throw-away database.

pub mod postgres;
pub mod sqlite;
pub mod testing;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::Serialize;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// File name of the SQLite database inside [`StoreConfig::data_dir`].
pub const SQLITE_FILE_NAME: &str = "roomcast.db";
/// Default data directory (relative to the working directory).
pub const DEFAULT_DATA_DIR: &str = "./data";
/// Default most connections a store's pool opens.
pub const DEFAULT_POOL_SIZE: u32 = 8;
/// Default longest wait for a connection (also bounds [`connect`]).
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default longest time one statement may run (SQLite: wait for the write lock).
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the store lives and how its connection pool behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Database URL: `postgres://…` / `postgresql://…` for PostgreSQL,
    /// `sqlite://PATH` or `sqlite::memory:` for SQLite. `None` (or an empty string,
    /// as an unset-but-present env var gives) means the SQLite file
    /// [`SQLITE_FILE_NAME`] in [`data_dir`](Self::data_dir).
    pub url: Option<String>,
    /// Directory of the default SQLite file; created on first start.
    pub data_dir: PathBuf,
    /// Most connections the pool opens (at least 1; `sqlite::memory:` always uses 1).
    pub pool_size: u32,
    /// Longest wait for a pooled connection; also bounds [`connect`], so an
    /// unreachable database fails startup within it. Must be greater than zero.
    pub acquire_timeout: Duration,
    /// PostgreSQL: `statement_timeout` of every connection (zero disables it).
    /// SQLite: `busy_timeout`, how long a statement waits for the write lock
    /// (zero means [`DEFAULT_STATEMENT_TIMEOUT`], since SQLite would fail at once).
    pub statement_timeout: Duration,
}

impl Default for StoreConfig {
    /// SQLite under `./data`, with the `DEFAULT_*` pool settings.
    fn default() -> Self {
        Self {
            url: None,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            pool_size: DEFAULT_POOL_SIZE,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
        }
    }
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The configuration names no usable database (bad URL, unknown scheme).
    #[error("store configuration: {0}")]
    Config(String),
    /// The database could not be reached or did not answer in time (connect, I/O,
    /// pool or statement timeout, lock contention): retrying later may succeed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The database rejected a statement or returned data the store cannot read.
    #[error("store database error: {0}")]
    Database(String),
    /// Applying the embedded migrations failed.
    #[error("store migration failed: {0}")]
    Migrate(String),
}

impl StoreError {
    /// Whether retrying the same operation later may succeed (only
    /// [`StoreError::Unavailable`]).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// One stored snapshot, without its state (what listings return).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotMeta {
    /// The snapshot's id: unique within its table, increasing, never reused.
    pub id: i64,
    /// When it was written: unix time in milliseconds (server clock).
    pub created_at: i64,
    /// Size of the stored state in bytes.
    pub bytes: u64,
    /// Game snapshots: the tick; doc snapshots: the `through_seq`.
    pub tick_or_seq: i64,
}

/// A game snapshot to save.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGameSnapshot {
    /// Game type name (the catalog key, e.g. `arena`).
    pub game: String,
    /// Room name within the game.
    pub room: String,
    /// Tick the state was taken at (at most `i64::MAX`: stored as `BIGINT`).
    pub tick: u64,
    /// Version of the game's state encoding, so a restore can refuse what it
    /// cannot decode.
    pub format_version: u32,
    /// The encoded game state.
    pub state: Vec<u8>,
}

/// A stored game snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GameSnapshot {
    /// Id, time and size (`tick_or_seq` is the tick).
    pub meta: SnapshotMeta,
    /// Game type name.
    pub game: String,
    /// Room name within the game.
    pub room: String,
    /// Tick the state was taken at.
    pub tick: u64,
    /// Version of the game's state encoding.
    pub format_version: u32,
    /// The encoded game state.
    pub state: Vec<u8>,
}

/// One update of a doc's log, to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocUpdateRecord {
    /// Doc (room) name.
    pub doc: String,
    /// Position in the doc's log: unique per doc and increasing, assigned by the
    /// doc's room. Must be greater than the latest snapshot's `through_seq`, or
    /// loading will skip it.
    pub seq: i64,
    /// The Yjs update (v1 encoding) as accepted by the room.
    pub update: Vec<u8>,
}

/// A stored doc snapshot: the doc state covering every update with
/// `seq <= through_seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocSnapshot {
    /// Id, time and size (`tick_or_seq` is `through_seq`).
    pub meta: SnapshotMeta,
    /// Last update seq folded into `state`.
    pub through_seq: i64,
    /// The doc state (a Yjs v1 update encoding the whole doc).
    pub state: Vec<u8>,
}

/// Everything needed to rebuild a doc: apply the snapshot's state (if any), then
/// the updates in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredDoc {
    /// The latest snapshot, if the doc was ever compacted.
    pub snapshot: Option<DocSnapshot>,
    /// `(seq, update)` of every logged update after the snapshot, in seq order.
    pub updates: Vec<(i64, Vec<u8>)>,
}

impl StoredDoc {
    /// The highest seq the stored doc covers (its last update, else the
    /// snapshot's `through_seq`), or `None` for a doc never stored: the room
    /// numbers its next update after it.
    pub fn last_seq(&self) -> Option<i64> {
        self.updates
            .last()
            .map(|(seq, _)| *seq)
            .or(self.snapshot.as_ref().map(|s| s.through_seq))
    }
}

/// The persistence interface rooms, the registry and the REST API use. Every
/// method is one transaction; implementations are cheap to share (`Arc<dyn Store>`)
/// and safe to call from many tasks at once.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `"postgres"` or `"sqlite"`.
    fn kind(&self) -> &'static str;

    /// Applies the embedded migrations that are not applied yet. Idempotent; on
    /// PostgreSQL several nodes may run it at once (sqlx takes an advisory lock).
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Runs `SELECT 1` (readiness probe).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Connections currently checked out of the pool (for metrics).
    fn pool_in_use(&self) -> u32;

    /// Saves a game snapshot and, in the same transaction, deletes all but the
    /// newest `keep` snapshots of that (game, room). `keep` 0 counts as 1: the
    /// snapshot just saved is always kept.
    async fn save_game_snapshot(
        &self,
        snapshot: &NewGameSnapshot,
        keep: usize,
    ) -> Result<SnapshotMeta, StoreError>;

    /// The newest snapshot of a game room, if any.
    async fn latest_game_snapshot(
        &self,
        game: &str,
        room: &str,
    ) -> Result<Option<GameSnapshot>, StoreError>;

    /// Every stored snapshot of a game room, newest first.
    async fn list_game_snapshots(
        &self,
        game: &str,
        room: &str,
    ) -> Result<Vec<SnapshotMeta>, StoreError>;

    /// One snapshot of a game room by id (`None` if it does not exist or belongs to
    /// another room).
    async fn game_snapshot(
        &self,
        game: &str,
        room: &str,
        id: i64,
    ) -> Result<Option<GameSnapshot>, StoreError>;

    /// Appends updates of any number of docs in one transaction (group commit): all
    /// are durable when this returns `Ok`, none when it returns `Err`. A `(doc, seq)`
    /// already stored fails the whole batch ([`StoreError::Database`]): a seq is
    /// written once, by the one room that owns the doc. An empty batch does nothing.
    async fn append_doc_updates(&self, batch: &[DocUpdateRecord]) -> Result<(), StoreError>;

    /// In one transaction: stores `state` as a snapshot of `doc` covering every
    /// update with `seq <= through_seq`, deletes those updates from the log, and
    /// deletes all but the newest `keep_snapshots` (0 counts as 1) snapshots of the
    /// doc. A `through_seq` below the latest snapshot's is refused
    /// ([`StoreError::Database`]): its updates are gone, the result would lose them.
    async fn compact_doc(
        &self,
        doc: &str,
        through_seq: i64,
        state: &[u8],
        keep_snapshots: usize,
    ) -> Result<SnapshotMeta, StoreError>;

    /// The latest snapshot of `doc` (if any) and the logged updates after it, in seq
    /// order, read from one consistent view. A doc never stored loads empty.
    async fn load_doc(&self, doc: &str) -> Result<StoredDoc, StoreError>;

    /// Every stored snapshot of a doc, newest first.
    async fn list_doc_snapshots(&self, doc: &str) -> Result<Vec<SnapshotMeta>, StoreError>;

    /// One snapshot of a doc by id (`None` if it does not exist or belongs to
    /// another doc).
    async fn doc_snapshot(&self, doc: &str, id: i64) -> Result<Option<DocSnapshot>, StoreError>;
}

/// Opens the store `config` names: checks the URL, connects (failing within
/// `acquire_timeout` with [`StoreError::Unavailable`] if the database cannot be
/// reached), and returns it. Does not migrate: call [`Store::migrate`].
pub async fn connect(config: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    let url = config.url.as_deref().map(str::trim).unwrap_or("");
    if url.is_empty() {
        let path = config.data_dir.join(SQLITE_FILE_NAME);
        return Ok(Arc::new(SqliteStore::connect_file(&path, config).await?));
    }
    if url.starts_with("sqlite:") {
        return Ok(Arc::new(SqliteStore::connect_url(url, config).await?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(PostgresStore::connect(url, config).await?));
    }
    // Name only the scheme: the rest of a URL may hold a password.
    let scheme = match url.split_once(':') {
        Some((scheme, _)) => format!("scheme {scheme:?}"),
        None => "no scheme".to_owned(),
    };
    Err(StoreError::Config(format!(
        "unsupported database URL ({scheme}): use postgres://USER@HOST:PORT/DB, \
         sqlite://PATH or sqlite::memory:, or no URL for the SQLite file in the data directory"
    )))
}

/// Now, as unix milliseconds (the `created_at` of rows written now).
pub(crate) fn now_millis() -> i64 {
    // A clock before 1970 is a broken clock; store 0 rather than fail the write.
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// `keep` as a SQL `OFFSET`: rows at or past it (newest first) are pruned.
pub(crate) fn prune_offset(keep: usize) -> i64 {
    i64::try_from(keep.max(1) - 1).unwrap_or(i64::MAX)
}

/// A tick as stored (`BIGINT`).
pub(crate) fn tick_to_db(tick: u64) -> Result<i64, StoreError> {
    i64::try_from(tick).map_err(|_| {
        StoreError::Database(format!(
            "tick {tick} does not fit the tick column (at most {})",
            i64::MAX
        ))
    })
}

/// A stored tick, back as the API's `u64`.
pub(crate) fn tick_from_db(tick: i64) -> Result<u64, StoreError> {
    u64::try_from(tick).map_err(|_| StoreError::Database(format!("stored tick {tick} is negative")))
}

/// A stored format version, back as the API's `u32`.
pub(crate) fn format_version_from_db(version: i64) -> Result<u32, StoreError> {
    u32::try_from(version)
        .map_err(|_| StoreError::Database(format!("stored format version {version} is not a u32")))
}

/// A stored length, back as `u64`.
pub(crate) fn bytes_from_db(bytes: i64) -> u64 {
    // Lengths are never negative; 0 is the harmless reading of a broken value.
    u64::try_from(bytes).unwrap_or(0)
}

/// Maps a sqlx error of operation `op` to a [`StoreError`]: connection-level
/// failures and database errors `transient` recognises become
/// [`StoreError::Unavailable`], everything else [`StoreError::Database`].
pub(crate) fn from_sqlx(
    op: &str,
    err: sqlx::Error,
    transient: fn(&dyn sqlx::error::DatabaseError) -> bool,
) -> StoreError {
    use sqlx::Error as E;
    match &err {
        E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => {
            StoreError::Unavailable(format!("{op}: {err}"))
        }
        E::Database(db) if transient(db.as_ref()) => {
            StoreError::Unavailable(format!("{op}: {err}"))
        }
        E::Migrate(inner) => from_migrate(inner, transient),
        _ => StoreError::Database(format!("{op}: {err}")),
    }
}

/// Maps a migration failure: one caused by an unreachable database is
/// [`StoreError::Unavailable`], anything else [`StoreError::Migrate`].
pub(crate) fn from_migrate(
    err: &sqlx::migrate::MigrateError,
    transient: fn(&dyn sqlx::error::DatabaseError) -> bool,
) -> StoreError {
    use sqlx::migrate::MigrateError as M;
    let cause = match err {
        M::Execute(cause) | M::ExecuteMigration(cause, _) => Some(cause),
        _ => None,
    };
    let unavailable = cause.is_some_and(|cause| {
        matches!(
            cause,
            sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
        ) || cause.as_database_error().is_some_and(transient)
    });
    if unavailable {
        StoreError::Unavailable(format!("migrate: {err}"))
    } else {
        StoreError::Migrate(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_is_unavailable_only() {
        assert!(StoreError::Unavailable("x".into()).is_transient());
        assert!(!StoreError::Database("x".into()).is_transient());
        assert!(!StoreError::Config("x".into()).is_transient());
        assert!(!StoreError::Migrate("x".into()).is_transient());
    }

    #[test]
    fn prune_offset_keeps_at_least_one() {
        assert_eq!(prune_offset(0), 0);
        assert_eq!(prune_offset(1), 0);
        assert_eq!(prune_offset(5), 4);
    }

    #[test]
    fn ticks_beyond_bigint_are_refused() {
        assert_eq!(tick_to_db(7), Ok(7));
        assert!(tick_to_db(u64::MAX).is_err());
        assert!(tick_from_db(-1).is_err());
    }

    #[test]
    fn last_seq_prefers_the_log() {
        let mut doc = StoredDoc::default();
        assert_eq!(doc.last_seq(), None);
        doc.snapshot = Some(DocSnapshot {
            meta: SnapshotMeta {
                id: 1,
                created_at: 0,
                bytes: 0,
                tick_or_seq: 4,
            },
            through_seq: 4,
            state: Vec::new(),
        });
        assert_eq!(doc.last_seq(), Some(4));
        doc.updates.push((6, vec![1]));
        assert_eq!(doc.last_seq(), Some(6));
    }
}
