//! The PostgreSQL [`Store`]: a sqlx connection pool whose every connection has
//! `statement_timeout` set, the PostgreSQL dialect of the schema
//! (`migrations/postgres/`), and the queries. Durability of a commit is
//! PostgreSQL's (`synchronous_commit`, on by default).

use std::str::FromStr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::error::DatabaseError;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection};

use super::{
    bytes_from_db, format_version_from_db, from_migrate, from_sqlx, now_millis, prune_offset,
    tick_from_db, tick_to_db, DocSnapshot, DocUpdateRecord, GameSnapshot, NewGameSnapshot,
    SnapshotMeta, Store, StoreConfig, StoreError, StoredDoc,
};

/// The embedded PostgreSQL migrations.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// `application_name` of roomcast's connections (visible in `pg_stat_activity`).
const APPLICATION_NAME: &str = "roomcast";
/// First pause between connection attempts while the server refuses connections.
const FIRST_RETRY: Duration = Duration::from_millis(50);
/// Longest pause between connection attempts.
const MAX_RETRY: Duration = Duration::from_secs(1);

/// A [`Store`] on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    /// The connection pool; every connection has `statement_timeout` set.
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to the PostgreSQL database `url` names, with the pool settings of
    /// `config`. Fails within `config.acquire_timeout` if it cannot: a server that
    /// refuses connections (starting up) is retried until then, anything else
    /// (unknown host, bad password, missing database) fails at once.
    pub async fn connect(url: &str, config: &StoreConfig) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|err| StoreError::Config(format!("invalid PostgreSQL URL: {err}")))?
            .application_name(APPLICATION_NAME);
        let target = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("(default database)")
        );
        // A first connection outside the pool: the pool would retry a refused
        // connection until its timeout and then report only "timed out"; this keeps
        // the cause for the error message.
        probe(&options, &target, config.acquire_timeout).await?;

        let set_timeout = format!(
            "SET statement_timeout = {}",
            config.statement_timeout.as_millis()
        );
        let pool = PgPoolOptions::new()
            .max_connections(config.pool_size.max(1))
            .acquire_timeout(config.acquire_timeout)
            .after_connect(move |conn, _meta| {
                let set_timeout = set_timeout.clone();
                Box::pin(async move {
                    conn.execute(set_timeout.as_str()).await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|err| {
                StoreError::Unavailable(format!("cannot connect to PostgreSQL at {target}: {err}"))
            })?;
        tracing::info!(target = %target, pool_size = config.pool_size.max(1), "store connected (postgres)");
        Ok(Self { pool })
    }

    /// The underlying pool (for tests of this module's connection settings).
    #[cfg(test)]
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Opens and closes one connection, retrying refused connections until
/// `timeout`; the error names `target` and the cause.
async fn probe(
    options: &PgConnectOptions,
    target: &str,
    timeout: Duration,
) -> Result<(), StoreError> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut pause = FIRST_RETRY;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let err = match tokio::time::timeout(remaining, PgConnection::connect_with(options)).await {
            Ok(Ok(conn)) => {
                // Only the connection's success mattered; a failed goodbye does not.
                let _ = conn.close().await;
                return Ok(());
            }
            Ok(Err(err)) => err,
            Err(_elapsed) => {
                return Err(StoreError::Unavailable(format!(
                    "PostgreSQL at {target} did not answer within {timeout:?}"
                )))
            }
        };
        let refused = match &err {
            sqlx::Error::Io(io) => io.kind() == std::io::ErrorKind::ConnectionRefused,
            // 57P03 cannot_connect_now: the server is starting up.
            sqlx::Error::Database(db) => db.code().as_deref() == Some("57P03"),
            _ => false,
        };
        if !refused || Instant::now() + pause >= deadline {
            let tried = if refused {
                format!(" (retried for {} ms)", started.elapsed().as_millis())
            } else {
                String::new()
            };
            return Err(StoreError::Unavailable(format!(
                "cannot connect to PostgreSQL at {target}{tried}: {err}"
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_RETRY);
    }
}

/// PostgreSQL errors worth retrying: connection exceptions (class 08), insufficient
/// resources (53), operator intervention (57: shutdown, statement timeout), and
/// serialization failures and deadlocks (40001, 40P01).
fn transient(err: &dyn DatabaseError) -> bool {
    let Some(code) = err.code() else {
        return false;
    };
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57")
        || code == "40001"
        || code == "40P01"
}

/// [`super::from_sqlx`] with PostgreSQL's transient errors.
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
impl Store for PostgresStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|err| from_migrate(&err, transient))?;
        tracing::info!(kind = "postgres", "store migrated");
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
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
        let mut tx = self.pool.begin().await.map_err(db_err(OP))?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO game_snapshots (game, room, tick, format_version, state, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
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
            "DELETE FROM game_snapshots WHERE game = $1 AND room = $2 AND id < \
             (SELECT id FROM game_snapshots WHERE game = $1 AND room = $2 \
              ORDER BY id DESC LIMIT 1 OFFSET $3)",
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
             WHERE game = $1 AND room = $2 ORDER BY id DESC LIMIT 1",
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
            "SELECT id, created_at, octet_length(state)::BIGINT, tick FROM game_snapshots \
             WHERE game = $1 AND room = $2 ORDER BY id DESC",
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
             WHERE id = $1 AND game = $2 AND room = $3",
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
        if batch.is_empty() {
            return Ok(());
        }
        let docs: Vec<&str> = batch.iter().map(|u| u.doc.as_str()).collect();
        let seqs: Vec<i64> = batch.iter().map(|u| u.seq).collect();
        let updates: Vec<&[u8]> = batch.iter().map(|u| u.update.as_slice()).collect();
        // One statement (hence one transaction) for the whole batch, whatever its
        // size: arrays, not one bind parameter per value.
        sqlx::query(
            "INSERT INTO doc_updates (doc, seq, data, created_at) \
             SELECT u.doc, u.seq, u.data, $4 \
             FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::BYTEA[]) AS u (doc, seq, data)",
        )
        .bind(docs)
        .bind(seqs)
        .bind(updates)
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map_err(db_err("append_doc_updates"))?;
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
        let mut tx = self.pool.begin().await.map_err(db_err(OP))?;
        let inserted: Option<(i64,)> = sqlx::query_as(
            "INSERT INTO doc_snapshots (doc, through_seq, state, created_at) \
             SELECT $1, $2, $3, $4 WHERE NOT EXISTS \
             (SELECT 1 FROM doc_snapshots WHERE doc = $1 AND through_seq > $2) \
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
        sqlx::query("DELETE FROM doc_updates WHERE doc = $1 AND seq <= $2")
            .bind(doc)
            .bind(through_seq)
            .execute(&mut *tx)
            .await
            .map_err(db_err(OP))?;
        sqlx::query(
            "DELETE FROM doc_snapshots WHERE doc = $1 AND id < \
             (SELECT id FROM doc_snapshots WHERE doc = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
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
        // Both reads from one snapshot of the database, so a compaction committing
        // in between cannot hide updates.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .map_err(db_err(OP))?;
        let snapshot: Option<DocRow> = sqlx::query_as(
            "SELECT id, created_at, through_seq, state FROM doc_snapshots \
             WHERE doc = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(doc)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err(OP))?;
        let snapshot = snapshot.map(doc_from_row);
        let after = snapshot.as_ref().map_or(i64::MIN, |s| s.through_seq);
        let updates: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT seq, data FROM doc_updates WHERE doc = $1 AND seq > $2 ORDER BY seq",
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
            "SELECT id, created_at, octet_length(state)::BIGINT, through_seq FROM doc_snapshots \
             WHERE doc = $1 ORDER BY id DESC",
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
             WHERE id = $1 AND doc = $2",
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

    /// Every pooled connection runs with the configured statement timeout.
    #[tokio::test]
    async fn connections_have_the_statement_timeout() -> anyhow::Result<()> {
        let db = TestDatabase::postgres().await?;
        let mut config = db.config().clone();
        config.statement_timeout = Duration::from_millis(1234);
        let url = config.url.clone().unwrap_or_default();
        let store = PostgresStore::connect(&url, &config).await?;
        let (timeout,): (String,) = sqlx::query_as("SHOW statement_timeout")
            .fetch_one(store.pool())
            .await?;
        assert_eq!(timeout, "1234ms");
        // A statement running longer is cancelled, and that counts as transient.
        let err = sqlx::query("SELECT pg_sleep(3)")
            .execute(store.pool())
            .await
            .map_err(db_err("sleep"))
            .expect_err("statement timeout");
        assert!(err.is_transient(), "{err}");
        store.pool.close().await;
        Ok(())
    }
}
