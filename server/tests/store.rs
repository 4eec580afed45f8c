//! The store against real databases. Every test body below runs twice, through
//! `store::connect`: on SQLite (the default file in a fresh temp directory) and on
//! PostgreSQL (a fresh database `roomcast_test_<hex>` per test, dropped afterwards;
//! see `store::testing`). Then come the connection tests that need no schema.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use roomcast_server::store::testing::TestDatabase;
use roomcast_server::store::{
    self, DocUpdateRecord, NewGameSnapshot, Store, StoreConfig, StoreError,
};
use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, ReadTxn, StateVector, Text, Transact, Update};

/// A migrated store on `db`, and `db` itself (dropped after the store: declared first).
async fn open(db: TestDatabase) -> anyhow::Result<(TestDatabase, Arc<dyn Store>)> {
    let store = store::connect(db.config()).await?;
    store.migrate().await?;
    Ok((db, store))
}

/// Runs each named `async fn(&dyn Store) -> anyhow::Result<()>` on both stores.
macro_rules! on_both_stores {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() -> anyhow::Result<()> {
                    let (_db, store) = super::open(super::TestDatabase::sqlite()?).await?;
                    assert_eq!(store.kind(), "sqlite");
                    super::$test(store.as_ref()).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() -> anyhow::Result<()> {
                    let (_db, store) = super::open(super::TestDatabase::postgres().await?).await?;
                    assert_eq!(store.kind(), "postgres");
                    super::$test(store.as_ref()).await
                }
            )*
        }
    };
}

on_both_stores!(
    migrate_twice_is_idempotent,
    game_snapshots_keep_the_newest,
    game_snapshots_latest_list_and_by_id,
    doc_updates_append_in_one_transaction,
    doc_compaction_keeps_content_loadable,
    doc_snapshots_cannot_go_back,
    concurrent_writers_all_commit,
);

fn game(room: &str, tick: u64, state: &[u8]) -> NewGameSnapshot {
    NewGameSnapshot {
        game: "arena".into(),
        room: room.into(),
        tick,
        format_version: 3,
        state: state.to_vec(),
    }
}

fn update(doc: &str, seq: i64, bytes: &[u8]) -> DocUpdateRecord {
    DocUpdateRecord {
        doc: doc.into(),
        seq,
        update: bytes.to_vec(),
    }
}

fn now_millis() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since_epoch.as_millis()).expect("millis fit i64")
}

async fn migrate_twice_is_idempotent(store: &dyn Store) -> anyhow::Result<()> {
    // `open` migrated once already.
    store.migrate().await?;
    store.migrate().await?;
    store.ping().await?;
    store.save_game_snapshot(&game("r", 1, b"s"), 3).await?;
    store.migrate().await?;
    ensure!(store.list_game_snapshots("arena", "r").await?.len() == 1);
    // Connections go back to the pool in the background once a call is done.
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.pool_in_use() != 0 {
        ensure!(Instant::now() < deadline, "connections stay checked out");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

async fn game_snapshots_keep_the_newest(store: &dyn Store) -> anyhow::Result<()> {
    let other = store.save_game_snapshot(&game("other", 1, b"o"), 1).await?;
    for tick in 1..=5 {
        store
            .save_game_snapshot(&game("r", tick * 10, &[tick as u8]), 3)
            .await?;
    }
    let listed = store.list_game_snapshots("arena", "r").await?;
    let ticks: Vec<i64> = listed.iter().map(|m| m.tick_or_seq).collect();
    ensure!(ticks == [50, 40, 30], "kept {ticks:?}");

    // A smaller keep prunes further; 0 still keeps the snapshot just saved.
    let last = store.save_game_snapshot(&game("r", 60, b"six"), 0).await?;
    let listed = store.list_game_snapshots("arena", "r").await?;
    ensure!(listed == [last.clone()], "{listed:?}");

    // Pruning one room leaves the others alone, and ids are not reused.
    ensure!(store.list_game_snapshots("arena", "other").await? == std::slice::from_ref(&other));
    let next = store
        .save_game_snapshot(&game("r", 70, b"seven"), 5)
        .await?;
    ensure!(next.id > last.id && last.id > other.id);
    Ok(())
}

async fn game_snapshots_latest_list_and_by_id(store: &dyn Store) -> anyhow::Result<()> {
    ensure!(store.latest_game_snapshot("arena", "r").await?.is_none());
    ensure!(store.list_game_snapshots("arena", "r").await?.is_empty());

    let before = now_millis();
    let first = store.save_game_snapshot(&game("r", 7, b""), 10).await?;
    let second = store
        .save_game_snapshot(
            &NewGameSnapshot {
                tick: i64::MAX as u64,
                format_version: u32::MAX,
                ..game("r", 0, &[0xff; 3000])
            },
            10,
        )
        .await?;
    let after = now_millis();
    ensure!(first.bytes == 0 && second.bytes == 3000);
    ensure!((before..=after).contains(&second.created_at), "{second:?}");

    let latest = store
        .latest_game_snapshot("arena", "r")
        .await?
        .context("latest")?;
    ensure!(latest.meta == second, "{:?} vs {second:?}", latest.meta);
    ensure!(latest.game == "arena" && latest.room == "r");
    ensure!(latest.tick == i64::MAX as u64 && latest.format_version == u32::MAX);
    ensure!(latest.state == [0xff; 3000]);

    ensure!(store.list_game_snapshots("arena", "r").await? == [second.clone(), first.clone()]);

    let by_id = store
        .game_snapshot("arena", "r", first.id)
        .await?
        .context("by id")?;
    ensure!(by_id.meta == first && by_id.tick == 7 && by_id.state.is_empty());
    // An id of another room, or no id at all, is not found.
    ensure!(store.game_snapshot("arena", "x", first.id).await?.is_none());
    ensure!(store.game_snapshot("other", "r", first.id).await?.is_none());
    ensure!(store
        .game_snapshot("arena", "r", second.id + 100)
        .await?
        .is_none());

    // A tick beyond BIGINT is refused before it reaches the database.
    let err = store
        .save_game_snapshot(&game("r", u64::MAX, b"x"), 10)
        .await
        .expect_err("tick too large");
    ensure!(matches!(err, StoreError::Database(_)) && !err.is_transient());
    Ok(())
}

async fn doc_updates_append_in_one_transaction(store: &dyn Store) -> anyhow::Result<()> {
    let empty = store.load_doc("a").await?;
    ensure!(empty.snapshot.is_none() && empty.updates.is_empty());
    ensure!(empty.last_seq().is_none());
    store.append_doc_updates(&[]).await?;

    // Two docs in one call, interleaved and out of order within a doc.
    store
        .append_doc_updates(&[
            update("a", 2, b"a2"),
            update("b", 1, b"b1"),
            update("a", 1, b"a1"),
        ])
        .await?;
    let a = store.load_doc("a").await?;
    ensure!(
        a.updates == [(1, b"a1".to_vec()), (2, b"a2".to_vec())],
        "{a:?}"
    );
    let b = store.load_doc("b").await?;
    ensure!(b.updates == [(1, b"b1".to_vec())] && b.last_seq() == Some(1));

    // A batch with one seq already stored fails whole: the new rows are not there.
    let err = store
        .append_doc_updates(&[update("b", 2, b"b2"), update("a", 2, b"again")])
        .await
        .expect_err("duplicate seq");
    ensure!(matches!(err, StoreError::Database(_)), "{err}");
    ensure!(store.load_doc("b").await?.updates.len() == 1);
    ensure!(store.load_doc("a").await?.updates[1] == (2, b"a2".to_vec()));

    // A large batch: many more bind values than one statement could take.
    let many: Vec<_> = (3..=20_002).map(|seq| update("c", seq, b"u")).collect();
    store.append_doc_updates(&many).await?;
    ensure!(store.load_doc("c").await?.updates.len() == 20_000);
    Ok(())
}

/// Edits a Yjs text, returning the update each edit produced.
fn edit(doc: &Doc, at: u32, text: &str) -> Vec<u8> {
    let field = doc.get_or_insert_text("t");
    let mut txn = doc.transact_mut();
    field.insert(&mut txn, at, text);
    txn.encode_update_v1()
}

/// Rebuilds a doc as the doc room does: snapshot state, then the logged updates.
fn rebuild(stored: &store::StoredDoc) -> anyhow::Result<String> {
    let doc = Doc::new();
    let field = doc.get_or_insert_text("t");
    let mut txn = doc.transact_mut();
    let state = stored.snapshot.iter().map(|s| s.state.as_slice());
    for bytes in state.chain(stored.updates.iter().map(|(_, u)| u.as_slice())) {
        txn.apply_update(Update::decode_v1(bytes)?)?;
    }
    Ok(field.get_string(&txn))
}

async fn doc_compaction_keeps_content_loadable(store: &dyn Store) -> anyhow::Result<()> {
    let doc = Doc::new();
    let words = ["hello", " brave", " new", " world", "!"];
    let mut at = 0;
    let mut log = Vec::new();
    for (seq, word) in (1..).zip(words) {
        log.push(update("d", seq, &edit(&doc, at, word)));
        at += word.len() as u32;
    }
    store.append_doc_updates(&log[..3]).await?;
    ensure!(rebuild(&store.load_doc("d").await?)? == "hello brave new");

    // Compact through seq 3 while 4 and 5 are logged after it.
    store.append_doc_updates(&log[3..]).await?;
    let upto3 = Doc::new();
    for record in &log[..3] {
        upto3
            .transact_mut()
            .apply_update(Update::decode_v1(&record.update)?)?;
    }
    let state3 = upto3
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let first = store.compact_doc("d", 3, &state3, 2).await?;
    ensure!(first.tick_or_seq == 3 && first.bytes == state3.len() as u64);
    let loaded = store.load_doc("d").await?;
    let snapshot = loaded.snapshot.clone().context("snapshot")?;
    ensure!(snapshot.meta == first && snapshot.through_seq == 3 && snapshot.state == state3);
    let seqs: Vec<i64> = loaded.updates.iter().map(|(seq, _)| *seq).collect();
    ensure!(
        seqs == [4, 5],
        "covered updates deleted, later kept: {seqs:?}"
    );
    ensure!(rebuild(&loaded)? == "hello brave new world!");
    ensure!(loaded.last_seq() == Some(5));

    // Compact everything; then once more with nothing new (same through_seq).
    let full = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let second = store.compact_doc("d", 5, &full, 2).await?;
    let loaded = store.load_doc("d").await?;
    ensure!(loaded.updates.is_empty() && loaded.last_seq() == Some(5));
    ensure!(rebuild(&loaded)? == "hello brave new world!");
    let third = store.compact_doc("d", 5, &full, 2).await?;

    // keep_snapshots = 2: the first snapshot is pruned; newest first.
    ensure!(store.list_doc_snapshots("d").await? == [third.clone(), second.clone()]);
    ensure!(store.doc_snapshot("d", first.id).await?.is_none());
    let got = store.doc_snapshot("d", second.id).await?.context("by id")?;
    ensure!(got.meta == second && got.through_seq == 5 && got.state == full);
    ensure!(store.doc_snapshot("other", second.id).await?.is_none());
    ensure!(store.list_doc_snapshots("other").await?.is_empty());

    // Editing goes on after compaction.
    store
        .append_doc_updates(&[update("d", 6, &edit(&doc, 0, ">> "))])
        .await?;
    ensure!(rebuild(&store.load_doc("d").await?)? == ">> hello brave new world!");
    Ok(())
}

async fn doc_snapshots_cannot_go_back(store: &dyn Store) -> anyhow::Result<()> {
    store
        .append_doc_updates(&[update("d", 1, b"1"), update("d", 2, b"2")])
        .await?;
    let snap = store.compact_doc("d", 2, b"state", 1).await?;
    store.append_doc_updates(&[update("d", 3, b"3")]).await?;
    let err = store
        .compact_doc("d", 1, b"older", 1)
        .await
        .expect_err("through_seq behind the latest snapshot");
    ensure!(matches!(err, StoreError::Database(_)), "{err}");
    // Nothing changed.
    ensure!(store.list_doc_snapshots("d").await? == [snap]);
    ensure!(store.load_doc("d").await?.updates == [(3, b"3".to_vec())]);
    Ok(())
}

async fn concurrent_writers_all_commit(store: &dyn Store) -> anyhow::Result<()> {
    // More writers than pool connections, each with its own doc and room.
    let writes = (0..12).map(|i| async move {
        let doc = format!("doc{i}");
        for seq in 1..=5 {
            store.append_doc_updates(&[update(&doc, seq, b"u")]).await?;
        }
        store.compact_doc(&doc, 3, b"s", 1).await?;
        store
            .save_game_snapshot(&game(&format!("room{i}"), 1, b"g"), 1)
            .await?;
        anyhow::Ok(())
    });
    for result in futures_util::future::join_all(writes).await {
        result?;
    }
    for i in 0..12 {
        let loaded = store.load_doc(&format!("doc{i}")).await?;
        ensure!(loaded.updates.len() == 2 && loaded.snapshot.is_some());
    }
    Ok(())
}

// ---- connecting -------------------------------------------------------------

fn config(url: &str, acquire_timeout: Duration) -> StoreConfig {
    StoreConfig {
        url: Some(url.to_owned()),
        acquire_timeout,
        ..StoreConfig::default()
    }
}

/// Result of `connect` as an error (a store has no `Debug`).
async fn connect_err(config: &StoreConfig) -> StoreError {
    match store::connect(config).await {
        Ok(store) => panic!("connected to a {} store", store.kind()),
        Err(err) => err,
    }
}

#[tokio::test]
async fn unreachable_postgres_fails_fast_and_says_where() {
    let started = Instant::now();
    let err = connect_err(&config("postgres://127.0.0.1:1/x", Duration::from_secs(1))).await;
    let elapsed = started.elapsed();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(err.is_transient());
    let message = err.to_string();
    assert!(message.contains("127.0.0.1:1/x"), "{message}");
    assert!(message.to_lowercase().contains("refused"), "{message}");
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
}

#[tokio::test]
async fn silent_postgres_is_bounded_by_acquire_timeout() -> anyhow::Result<()> {
    // Accepts connections and never answers the startup message.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let started = Instant::now();
    let url = format!("postgres://roomcast@127.0.0.1:{port}/x");
    let err = connect_err(&config(&url, Duration::from_millis(300))).await;
    let elapsed = started.elapsed();
    silent.abort();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("did not answer"), "{err}");
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    Ok(())
}

#[tokio::test]
async fn missing_postgres_database_is_a_clear_error() -> anyhow::Result<()> {
    // A real server, a database that does not exist: fails at once, not after retries.
    let db = TestDatabase::postgres().await?;
    let url = db.config().url.clone().context("postgres url")?;
    let missing = format!("{}_missing", url.split('?').next().unwrap_or(&url));
    let started = Instant::now();
    let err = connect_err(&config(&missing, Duration::from_secs(5))).await;
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    Ok(())
}

#[tokio::test]
async fn bad_urls_are_config_errors_without_secrets() {
    let err = connect_err(&config("mysql://root:hunter2@db/x", Duration::from_secs(1))).await;
    assert!(matches!(err, StoreError::Config(_)), "{err}");
    assert!(!err.is_transient());
    let message = err.to_string();
    assert!(
        message.contains("\"mysql\"") && message.contains("postgres://"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");

    let err = connect_err(&config("data/roomcast.db", Duration::from_secs(1))).await;
    assert!(matches!(err, StoreError::Config(_)), "{err}");

    let err = connect_err(&config("postgres://h:notaport/x", Duration::from_secs(1))).await;
    assert!(matches!(err, StoreError::Config(_)), "{err}");
}

#[tokio::test]
async fn sqlite_urls_and_the_default_file_are_created() -> anyhow::Result<()> {
    let db = TestDatabase::sqlite()?;
    let root = db.config().data_dir.clone();

    // No URL: data_dir/roomcast.db, creating missing directories.
    let data_dir = root.join("new").join("data");
    let store = store::connect(&StoreConfig {
        data_dir: data_dir.clone(),
        ..db.config().clone()
    })
    .await?;
    store.migrate().await?;
    ensure!(data_dir.join(store::SQLITE_FILE_NAME).is_file());
    // An empty URL (an env var set to nothing) means the same.
    let again = store::connect(&StoreConfig {
        url: Some(String::new()),
        data_dir: data_dir.clone(),
        ..db.config().clone()
    })
    .await?;
    store.save_game_snapshot(&game("r", 1, b"x"), 1).await?;
    ensure!(again.latest_game_snapshot("arena", "r").await?.is_some());

    // sqlite://PATH, directory created too.
    let path = root.join("other").join("x.db");
    let url = format!("sqlite://{}", path.display());
    let by_url = store::connect(&config(&url, Duration::from_secs(5))).await?;
    by_url.migrate().await?;
    ensure!(by_url.kind() == "sqlite" && path.is_file());

    // sqlite::memory: is one private database, shared by every call on the store.
    let memory = store::connect(&config("sqlite::memory:", Duration::from_secs(5))).await?;
    memory.migrate().await?;
    memory.save_game_snapshot(&game("m", 9, b"mem"), 1).await?;
    let latest = memory.latest_game_snapshot("arena", "m").await?;
    ensure!(latest.map(|s| s.tick) == Some(9));
    let other_memory = store::connect(&config("sqlite::memory:", Duration::from_secs(5))).await?;
    other_memory.migrate().await?;
    ensure!(other_memory
        .latest_game_snapshot("arena", "m")
        .await?
        .is_none());
    Ok(())
}
