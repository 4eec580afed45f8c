//! The SQLite [`Store`] (the embedded default): a sqlx pool over one database file
//! in WAL mode, the SQLite dialect of the schema (`migrations/sqlite/`), and the
//! queries.
//!
//! Durability: `journal_mode=WAL` with `synchronous=FULL`. In WAL mode, NORMAL
//! syncs the WAL only at checkpoints, so a transaction whose commit returned can
//! still roll back after a power loss or OS crash (SQLite documents this: "WAL mode
//! does lose durability" under NORMAL). FULL syncs the WAL on every commit, so when
//! [`Store::append_doc_updates`] returns the updates are on disk, which is what
//! relaying an update only after it is stored promises. The cost is one fsync per
//! commit, shared by every update of a group commit.
//!
//! Writers take the write lock at `BEGIN IMMEDIATE` and wait up to `busy_timeout`
//! for it, so concurrent writers queue instead of failing with `SQLITE_BUSY`
//! half-way through a transaction.

use std::path::Path;
use std::str::FromStr;

use async_trait::async_trait;
use sqlx::error::DatabaseError;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::{
    bytes_from_db, format_version_from_db, from_migrate, from_sqlx, now_millis, prune_offset,
    tick_from_db, tick_to_db, DocSnapshot, DocUpdateRecord, GameSnapshot, NewGameSnapshot,
    SnapshotMeta, Store, StoreConfig, StoreError, StoredDoc, DEFAULT_STATEMENT_TIMEOUT,
};

/// The embedded SQLite migrations.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// Starts a write transaction holding the write lock (waiting `busy_timeout` for it).
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// A [`Store`] on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// The connection pool (one connection for an in-memory database).
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating it and its directory if missing) the database file `path`.
    pub async fn connect_file(path: &Path, config: &StoreConfig) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new().filename(path);
        Self::open(options, false, &path.display().to_string(), config).await
    }

    /// Opens the database a `sqlite:` URL names: `sqlite://PATH` (created if
    /// missing, with its directory) or `sqlite::memory:` (private to this store,
    /// gone when it is dropped).
    pub async fn connect_url(url: &str, config: &StoreConfig) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|err| StoreError::Config(format!("invalid SQLite URL {url:?}: {err}")))?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let location = if in_memory {
            "memory".to_owned()
        } else {
            options.get_filename().display().to_string()
        };
        Self::open(options, in_memory, &location, config).await
    }

    async fn open(
        options: SqliteConnectOptions,
        in_memory: bool,
        location: &str,
        config: &StoreConfig,
    ) -> Result<Self, StoreError> {
        let busy_timeout = if config.statement_timeout.is_zero() {
            DEFAULT_STATEMENT_TIMEOUT
        } else {
            config.statement_timeout
        };
        let options = options
            .create_if_missing(true)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(busy_timeout);
        let pool = if in_memory {
            // An in-memory database lives as long as one of its connections, and
            // connections sharing it lock whole tables (no busy_timeout there): keep
            // exactly one connection, forever.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            if let Some(dir) = options.get_filename().parent() {
                if !dir.as_os_str().is_empty() {
                    tokio::fs::create_dir_all(dir).await.map_err(|err| {
                        StoreError::Unavailable(format!(
                            "cannot create the directory {} for the SQLite database: {err}",
                            dir.display()
                        ))
                    })?;
                }
            }
            SqlitePoolOptions::new().max_connections(config.pool_size.max(1))
        };
        let options = if in_memory {
            options
        } else {
            options.journal_mode(SqliteJournalMode::Wal)
        };
        let pool = pool
            .acquire_timeout(config.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(|err| {
                StoreError::Unavailable(format!("cannot open SQLite database {location}: {err}"))
            })?;
        tracing::info!(location, "store connected (sqlite)");
        Ok(Self { pool })
    }

    /// The underlying pool (for tests of this module's connection settings).
    #[cfg(test)]
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// SQLite errors worth retrying: the database is busy or locked (primary result
/// codes 5 and 6, with any extended code).
fn transient(err: &dyn DatabaseError) -> bool {
    let code = err.code().and_then(|code| code.parse::<i32>().ok());
    matches!(code.map(|code| code & 0xff), Some(5 | 6))
}

/// [`super::from_sqlx`] with SQLite's transient errors.
fn db_err(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |err| from_sqlx(op, err, transient)
}

/// A game snapshot row: id, created_at, tick, format_version, state.
type GameRow = (i64, i64, i64, i64, Vec<u8>);
/// A doc snapshot row: id, created_at, through_seq, state.
type DocRow = (i64, i64, i64, Vec<u8>);

fn game_from_row(game: &str, room: &str, row: GameRow) -> Result<GameSnapshot, StoreError> {
    let (id, created_at, tick, format_version, state) = row;
    Ok(GameSnapshot {
        meta: SnapshotMeta {
            id,
            created_at,
            bytes: state.len() as u64,
            tick_or_seq: tick,
        },
        game: game.to_owned(),
        room: room.to_owned(),
        tick: tick_from_db(tick)?,
        format_version: format_version_from_db(format_version)?,
        state,
    })
}

fn doc_from_row(row: DocRow) -> DocSnapshot {
    let (id, created_at, through_seq, state) = row;
    DocSnapshot {
        meta: SnapshotMeta {
            id,
            created_at,
            bytes: state.len() as u64,
            tick_or_seq: through_seq,
        },
        through_seq,
        state,
    }
}

fn meta_from_row((id, created_at, bytes, tick_or_seq): (i64, i64, i64, i64)) -> SnapshotMeta {
    SnapshotMeta {
        id,
        created_at,
        bytes: bytes_from_db(bytes),
        tick_or_seq,
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|err| from_migrate(&err, transient))?;
        tracing::info!(kind = "sqlite", "store migrated");
        Ok(())
    }

    /// A write probe: an embedded database "goes away" as a write lock it cannot
    /// get or a disk it cannot write, which a plain `SELECT 1` would not notice.
    /// Waits at most `busy_timeout` for the lock.
    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db_err("ping"))?;
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *conn)
            .await
            .map_err(db_err("ping"))?;
        sqlx::query("ROLLBACK")
            .execute(&mut *conn)
            .await
            .map_err(db_err("ping"))?;
        Ok(())
    }

    fn pool_in_use(&self) -> u32 {
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        self.pool.size().saturating_sub(idle)
    }

    async fn save_game_snapshot(
        &self,
        s: &NewGameSnapshot,
        keep: usize,
    ) -> Result<SnapshotMeta, StoreError> {
        const OP: &str = "save_game_snapshot";
        let tick = tick_to_db(s.tick)?;
        let created_at = now_millis();
        let mut tx = self
            .pool
            .begin_with(BEGIN_WRITE)
            .await
            .map_err(db_err(OP))?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO game_snapshots (game, room, tick, format_version, state, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        )
        .bind(&s.game)
        .bind(&s.room)
        .bind(tick)
        .bind(i64::from(s.format_version))
        .bind(&s.state)
        .bind(created_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err(OP))?;
        // Everything older than the keep-th newest goes (nothing if there are fewer).
        sqlx::query(
            "DELETE FROM game_snapshots WHERE game = ?1 AND room = ?2 AND id < \
             (SELECT id FROM game_snapshots WHERE game = ?1 AND room = ?2 \
              ORDER BY id DESC LIMIT 1 OFFSET ?3)",
        )
        .bind(&s.game)
        .bind(&s.room)
        .bind(prune_offset(keep))
        .execute(&mut *tx)
        .await
        .map_err(db_err(OP))?;
        tx.commit().await.map_err(db_err(OP))?;
        Ok(SnapshotMeta {
            id,
            created_at,
            bytes: s.state.len() as u64,
            tick_or_seq: tick,
        })
    }

    async fn latest_game_snapshot(
        &self,
        game: &str,
        room: &str,
    ) -> Result<Option<GameSnapshot>, StoreError> {
        let row: Option<GameRow> = sqlx::query_as(
            "SELECT id, created_at, tick, format_version, state FROM game_snapshots \
             WHERE game = ?1 AND room = ?2 ORDER BY id DESC LIMIT 1",
        )
        .bind(game)
        .bind(room)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err("latest_game_snapshot"))?;
        row.map(|row| game_from_row(game, room, row)).transpose()
    }

    async fn list_game_snapshots(
        &self,
        game: &str,
        room: &str,
    ) -> Result<Vec<SnapshotMeta>, StoreError> {
        let rows: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT id, created_at, length(state), tick FROM game_snapshots \
             WHERE game = ?1 AND room = ?2 ORDER BY id DESC",
        )
        .bind(game)
        .bind(room)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err("list_game_snapshots"))?;
        Ok(rows.into_iter().map(meta_from_row).collect())
    }

    async fn game_snapshot(
        &self,
        game: &str,
        room: &str,
        id: i64,
    ) -> Result<Option<GameSnapshot>, StoreError> {
        let row: Option<GameRow> = sqlx::query_as(
            "SELECT id, created_at, tick, format_version, state FROM game_snapshots \
             WHERE id = ?1 AND game = ?2 AND room = ?3",
        )
        .bind(id)
        .bind(game)
        .bind(room)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err("game_snapshot"))?;
        row.map(|row| game_from_row(game, room, row)).transpose()
    }

    async fn append_doc_updates(&self, batch: &[DocUpdateRecord]) -> Result<(), StoreError> {
        const OP: &str = "append_doc_updates";
        if batch.is_empty() {
            return Ok(());
        }
        let created_at = now_millis();
        let mut tx = self
            .pool
            .begin_with(BEGIN_WRITE)
            .await
            .map_err(db_err(OP))?;
        // One prepared statement executed per row, all in one transaction (one
        // fsync): in-process, a row costs microseconds and no bind-parameter limit
        // applies to the batch size.
        for update in batch {
            sqlx::query(
                "INSERT INTO doc_updates (doc, seq, data, created_at) VALUES (?1, ?2, ?3, ?4)",
            )
            .bind(&update.doc)
            .bind(update.seq)
            .bind(&update.update)
            .bind(created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err(OP))?;
        }
        tx.commit().await.map_err(db_err(OP))?;
        Ok(())
    }

    async fn compact_doc(
        &self,
        doc: &str,
        through_seq: i64,
        state: &[u8],
        keep_snapshots: usize,
    ) -> Result<SnapshotMeta, StoreError> {
        const OP: &str = "compact_doc";
        let created_at = now_millis();
        let mut tx = self
            .pool
            .begin_with(BEGIN_WRITE)
            .await
            .map_err(db_err(OP))?;
        let inserted: Option<(i64,)> = sqlx::query_as(
            "INSERT INTO doc_snapshots (doc, through_seq, state, created_at) \
             SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS \
             (SELECT 1 FROM doc_snapshots WHERE doc = ?1 AND through_seq > ?2) \
             RETURNING id",
        )
        .bind(doc)
        .bind(through_seq)
        .bind(state)
        .bind(created_at)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err(OP))?;
        let Some((id,)) = inserted else {
            return Err(StoreError::Database(format!(
                "{OP}: doc {doc:?} already has a snapshot beyond seq {through_seq}; \
                 a snapshot may not go back"
            )));
        };
        sqlx::query("DELETE FROM doc_updates WHERE doc = ?1 AND seq <= ?2")
            .bind(doc)
            .bind(through_seq)
            .execute(&mut *tx)
            .await
            .map_err(db_err(OP))?;
        sqlx::query(
            "DELETE FROM doc_snapshots WHERE doc = ?1 AND id < \
             (SELECT id FROM doc_snapshots WHERE doc = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        )
        .bind(doc)
        .bind(prune_offset(keep_snapshots))
        .execute(&mut *tx)
        .await
        .map_err(db_err(OP))?;
        tx.commit().await.map_err(db_err(OP))?;
        Ok(SnapshotMeta {
            id,
            created_at,
            bytes: state.len() as u64,
            tick_or_seq: through_seq,
        })
    }

    async fn load_doc(&self, doc: &str) -> Result<StoredDoc, StoreError> {
        const OP: &str = "load_doc";
        // A read transaction: in WAL mode both reads see the database as of the
        // first one, so a compaction committing in between cannot hide updates.
        let mut tx = self.pool.begin().await.map_err(db_err(OP))?;
        let snapshot: Option<DocRow> = sqlx::query_as(
            "SELECT id, created_at, through_seq, state FROM doc_snapshots \
             WHERE doc = ?1 ORDER BY id DESC LIMIT 1",
        )
        .bind(doc)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err(OP))?;
        let snapshot = snapshot.map(doc_from_row);
        let after = snapshot.as_ref().map_or(i64::MIN, |s| s.through_seq);
        let updates: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT seq, data FROM doc_updates WHERE doc = ?1 AND seq > ?2 ORDER BY seq",
        )
        .bind(doc)
        .bind(after)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err(OP))?;
        tx.commit().await.map_err(db_err(OP))?;
        Ok(StoredDoc { snapshot, updates })
    }

    async fn list_doc_snapshots(&self, doc: &str) -> Result<Vec<SnapshotMeta>, StoreError> {
        let rows: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT id, created_at, length(state), through_seq FROM doc_snapshots \
             WHERE doc = ?1 ORDER BY id DESC",
        )
        .bind(doc)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err("list_doc_snapshots"))?;
        Ok(rows.into_iter().map(meta_from_row).collect())
    }

    async fn doc_snapshot(&self, doc: &str, id: i64) -> Result<Option<DocSnapshot>, StoreError> {
        let row: Option<DocRow> = sqlx::query_as(
            "SELECT id, created_at, through_seq, state FROM doc_snapshots \
             WHERE id = ?1 AND doc = ?2",
        )
        .bind(id)
        .bind(doc)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err("doc_snapshot"))?;
        Ok(row.map(doc_from_row))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::TestDatabase;

    /// The durability settings the module doc promises are in force on a file
    /// database.
    #[tokio::test]
    async fn file_database_is_wal_with_full_sync() -> anyhow::Result<()> {
        let db = TestDatabase::sqlite()?;
        let path = db.config().data_dir.join(crate::store::SQLITE_FILE_NAME);
        let store = SqliteStore::connect_file(&path, db.config()).await?;
        let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(store.pool())
            .await?;
        assert_eq!(mode, "wal");
        let (sync,): (i64,) = sqlx::query_as("PRAGMA synchronous")
            .fetch_one(store.pool())
            .await?;
        assert_eq!(sync, 2, "synchronous=FULL");
        let (busy,): (i64,) = sqlx::query_as("PRAGMA busy_timeout")
            .fetch_one(store.pool())
            .await?;
        assert_eq!(
            busy,
            i64::try_from(db.config().statement_timeout.as_millis())?
        );
        assert!(path.is_file());
        store.pool.close().await;
        Ok(())
    }

    /// A writer that cannot get the write lock within busy_timeout fails with a
    /// transient error; a duplicate seq is a permanent one.
    #[tokio::test]
    async fn busy_is_transient_duplicates_are_not() -> anyhow::Result<()> {
        let db = TestDatabase::sqlite()?;
        let mut config = db.config().clone();
        config.statement_timeout = std::time::Duration::from_millis(100);
        let path = config.data_dir.join(crate::store::SQLITE_FILE_NAME);
        let store = SqliteStore::connect_file(&path, &config).await?;
        store.migrate().await?;
        let record = |seq| DocUpdateRecord {
            doc: "d".into(),
            seq,
            update: vec![1],
        };
        store.append_doc_updates(&[record(1)]).await?;
        let err = store
            .append_doc_updates(&[record(1)])
            .await
            .expect_err("duplicate seq");
        assert!(matches!(err, StoreError::Database(_)), "{err}");

        let holder = store.pool().begin_with(BEGIN_WRITE).await?;
        let err = store
            .append_doc_updates(&[record(2)])
            .await
            .expect_err("write lock held elsewhere");
        assert!(err.is_transient(), "{err}");
        holder.rollback().await?;
        store.append_doc_updates(&[record(2)]).await?;
        store.pool.close().await;
        Ok(())
    }
}
