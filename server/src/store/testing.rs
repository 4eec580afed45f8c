//! Throw-away databases for tests: this crate's and the end-to-end tests'. Not used
//! by the server itself.
//!
//! [`TestDatabase::sqlite`] makes an empty directory under the system temp dir for
//! the default SQLite file; [`TestDatabase::postgres`] creates a fresh database
//! `roomcast_test_<random hex>` through the maintenance database that
//! [`POSTGRES_URL_ENV`] names (default [`DEFAULT_POSTGRES_URL`]). Either way
//! [`TestDatabase::config`] is a [`StoreConfig`] for [`connect`](super::connect),
//! and dropping the `TestDatabase` removes it again (the directory; the database
//! with `DROP DATABASE … WITH (FORCE)`, which also ends connections still open),
//! also when the test panics. Only a killed test process leaves one behind.
//!
//! This module is compiled into the library, not behind a cargo feature: a feature
//! would have to be switched on for every test target that uses it (a self
//! dev-dependency or `required-features`), and what it costs the server binary is a
//! few unused functions.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use super::{StoreConfig, StoreError};

/// Environment variable naming the PostgreSQL maintenance database tests create
/// their databases through.
pub const POSTGRES_URL_ENV: &str = "ROOMCAST_TEST_POSTGRES_URL";
/// The maintenance database used when [`POSTGRES_URL_ENV`] is unset: the local
/// server with trust authentication.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Prefix of every test database's name (the rest is random hex).
pub const TEST_DATABASE_PREFIX: &str = "roomcast_test_";
/// Longest wait for the maintenance database, and the tests' acquire timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A database that exists for one test and is removed when dropped.
#[derive(Debug)]
pub struct TestDatabase {
    /// How to reach it.
    config: StoreConfig,
    /// What to remove on drop.
    cleanup: Cleanup,
}

/// What dropping a [`TestDatabase`] removes.
#[derive(Debug)]
enum Cleanup {
    /// The temp directory holding the SQLite file.
    SqliteDir(PathBuf),
    /// A PostgreSQL database, dropped through the maintenance database.
    Postgres {
        /// URL of the maintenance database.
        maintenance_url: String,
        /// Name of the test database.
        name: String,
    },
}

impl TestDatabase {
    /// An empty temp directory as the data directory: [`connect`](super::connect)
    /// creates the default SQLite file in it.
    pub fn sqlite() -> Result<Self, StoreError> {
        let dir = std::env::temp_dir().join(format!(
            "roomcast-test-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).map_err(|err| {
            StoreError::Unavailable(format!("cannot create {}: {err}", dir.display()))
        })?;
        Ok(Self {
            config: test_config(None, dir.clone()),
            cleanup: Cleanup::SqliteDir(dir),
        })
    }

    /// A fresh, empty (unmigrated) PostgreSQL database.
    pub async fn postgres() -> Result<Self, StoreError> {
        let maintenance_url = std::env::var(POSTGRES_URL_ENV)
            .ok()
            .filter(|url| !url.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned());
        let name = format!("{TEST_DATABASE_PREFIX}{:016x}", rand::random::<u64>());
        let url = with_database(&maintenance_url, &name)?;
        let mut conn = maintenance(&maintenance_url).await?;
        // The name is our own prefix and hex digits: nothing to escape.
        let created = sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await;
        // The database exists or not; closing the maintenance connection cleanly
        // changes nothing about it.
        let _ = conn.close().await;
        created.map_err(|err| {
            StoreError::Database(format!("cannot create test database {name}: {err}"))
        })?;
        Ok(Self {
            config: test_config(Some(url), std::env::temp_dir()),
            cleanup: Cleanup::Postgres {
                maintenance_url,
                name,
            },
        })
    }

    /// The configuration that reaches this database.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::SqliteDir(dir) => {
                if let Err(err) = std::fs::remove_dir_all(dir) {
                    tracing::warn!(dir = %dir.display(), cause = %err, "test database directory left behind");
                }
            }
            Cleanup::Postgres {
                maintenance_url,
                name,
            } => {
                // Drop may run inside the test's runtime (where blocking on a future
                // is not allowed) or during a panic: drop the database from a thread
                // of its own with its own small runtime, and wait for it.
                let (url, name) = (maintenance_url.clone(), name.clone());
                let dropped = std::thread::spawn(move || drop_database(&url, &name)).join();
                match dropped {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => {
                        tracing::warn!(cause = %err, "test database left behind")
                    }
                    Err(_panic) => tracing::warn!("dropping the test database panicked"),
                }
            }
        }
    }
}

/// A simulated database outage, made by [`TestDatabase::outage`]; ended by
/// [`Outage::end`] (or on drop, for PostgreSQL only after `end`).
pub struct Outage {
    /// What to undo.
    kind: OutageKind,
}

/// How an outage was made.
enum OutageKind {
    /// The database refuses connections and its sessions were terminated.
    Postgres {
        /// URL of the maintenance database.
        maintenance_url: String,
        /// Name of the test database.
        name: String,
    },
    /// Another connection holds the write lock.
    Sqlite(sqlx::SqliteConnection),
}

impl TestDatabase {
    /// Makes the database unavailable to the server under test, without touching
    /// any other database: PostgreSQL stops accepting connections to it and ends
    /// the open ones; SQLite gets its write lock taken by another connection.
    pub async fn outage(&self) -> Result<Outage, StoreError> {
        match &self.cleanup {
            Cleanup::Postgres {
                maintenance_url,
                name,
            } => {
                let mut conn = maintenance(maintenance_url).await?;
                let statements = [
                    format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false"),
                    format!(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                    ),
                ];
                for sql in statements {
                    sqlx::raw_sql(&sql)
                        .execute(&mut conn)
                        .await
                        .map_err(|e| StoreError::Database(format!("outage: {e}")))?;
                }
                let _ = conn.close().await;
                Ok(Outage {
                    kind: OutageKind::Postgres {
                        maintenance_url: maintenance_url.clone(),
                        name: name.clone(),
                    },
                })
            }
            Cleanup::SqliteDir(dir) => {
                use sqlx::sqlite::SqliteConnectOptions;
                let options =
                    SqliteConnectOptions::new().filename(dir.join(super::SQLITE_FILE_NAME));
                let mut conn = sqlx::SqliteConnection::connect_with(&options)
                    .await
                    .map_err(|e| StoreError::Unavailable(format!("outage: {e}")))?;
                sqlx::raw_sql("BEGIN EXCLUSIVE")
                    .execute(&mut conn)
                    .await
                    .map_err(|e| StoreError::Database(format!("outage: {e}")))?;
                Ok(Outage {
                    kind: OutageKind::Sqlite(conn),
                })
            }
        }
    }
}

impl Outage {
    /// Makes the database available again.
    pub async fn end(self) -> Result<(), StoreError> {
        match self.kind {
            OutageKind::Postgres {
                maintenance_url,
                name,
            } => {
                let mut conn = maintenance(&maintenance_url).await?;
                sqlx::raw_sql(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true"))
                    .execute(&mut conn)
                    .await
                    .map_err(|e| StoreError::Database(format!("ending outage: {e}")))?;
                let _ = conn.close().await;
                Ok(())
            }
            OutageKind::Sqlite(mut conn) => {
                sqlx::raw_sql("ROLLBACK")
                    .execute(&mut conn)
                    .await
                    .map_err(|e| StoreError::Database(format!("ending outage: {e}")))?;
                let _ = conn.close().await;
                Ok(())
            }
        }
    }
}

/// The settings tests use, for `url` / `data_dir`.
fn test_config(url: Option<String>, data_dir: PathBuf) -> StoreConfig {
    StoreConfig {
        url,
        data_dir,
        pool_size: 4,
        acquire_timeout: CONNECT_TIMEOUT,
        statement_timeout: Duration::from_secs(30),
    }
}

/// A connection to the maintenance database, with an error that says how to point
/// the tests at another server.
async fn maintenance(url: &str) -> Result<PgConnection, StoreError> {
    let unavailable = |cause: String| {
        StoreError::Unavailable(format!(
            "tests need PostgreSQL: cannot reach the maintenance database \
             (set {POSTGRES_URL_ENV}, default {DEFAULT_POSTGRES_URL}): {cause}"
        ))
    };
    let options = PgConnectOptions::from_str(url)
        .map_err(|err| StoreError::Config(format!("{POSTGRES_URL_ENV} is not a URL: {err}")))?;
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(err)) => Err(unavailable(err.to_string())),
        Err(_) => Err(unavailable(format!("no answer within {CONNECT_TIMEOUT:?}"))),
    }
}

/// Drops database `name` (ending its connections) through `maintenance_url`, on a
/// runtime of its own.
fn drop_database(maintenance_url: &str, name: &str) -> Result<(), StoreError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| StoreError::Unavailable(format!("cannot start a runtime: {err}")))?;
    runtime.block_on(async {
        let mut conn = maintenance(maintenance_url).await?;
        let result = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut conn)
            .await;
        // Dropped or not, the maintenance connection is done either way.
        let _ = conn.close().await;
        result.map_err(|err| StoreError::Database(format!("cannot drop {name}: {err}")))?;
        Ok(())
    })
}

/// `url` with its database (path) replaced by `name`, keeping any query string.
fn with_database(url: &str, name: &str) -> Result<String, StoreError> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority = base.find("://").map(|i| i + 3).ok_or_else(|| {
        StoreError::Config(format!(
            "{POSTGRES_URL_ENV} must look like postgres://USER@HOST:PORT/DB"
        ))
    })?;
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    let mut out = format!("{}/{name}", &base[..path]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_replaced_in_urls() {
        let replaced = |url| with_database(url, "t").unwrap();
        assert_eq!(
            replaced("postgres://u@h:5432/postgres"),
            "postgres://u@h:5432/t"
        );
        assert_eq!(replaced("postgres://u@h"), "postgres://u@h/t");
        assert_eq!(
            replaced("postgresql://u:p@h/db?sslmode=disable"),
            "postgresql://u:p@h/t?sslmode=disable"
        );
        assert!(with_database("h:5432", "t").is_err());
    }

    #[test]
    fn sqlite_directories_are_removed_on_drop() {
        let db = TestDatabase::sqlite().unwrap();
        let dir = db.config().data_dir.clone();
        assert!(dir.is_dir());
        drop(db);
        assert!(!dir.exists());
    }
}
