//! Persistence end to end, with the same test bodies against a fresh PostgreSQL
//! database (127.0.0.1:5432) and a fresh SQLite file: real server, real sockets,
//! real databases.

use std::time::Duration;

use roomcast_client::{ConnectOptions, DocOptions};
use roomcast_e2e::{eventually, on_both_stores, persistent_config, start};
use roomcast_protocol::games::counter::{CounterInput, CounterScore, TOTAL_ENTITY};
use roomcast_server::store::testing::TestDatabase;
use roomcast_server::Config;
use yrs::{GetString, Text, Transact, WriteTxn};

const WAIT: Duration = Duration::from_secs(15);

on_both_stores!(
    an_evicted_game_room_resumes_from_its_snapshot,
    a_player_resumes_across_a_server_restart,
    a_doc_survives_a_server_restart,
    compaction_keeps_the_content_and_shortens_the_log,
    the_database_going_away_stops_nothing_and_loses_nothing_acknowledged,
);

fn total(m: &roomcast_client::Mirror) -> Option<i64> {
    m.entity::<CounterScore>(TOTAL_ENTITY)
        .and_then(Result::ok)
        .map(|s| s.score)
}

async fn an_evicted_game_room_resumes_from_its_snapshot(db: TestDatabase) {
    let config = Config {
        idle_timeout: Duration::from_millis(300),
        ..persistent_config(&db)
    };
    let server = start(config).await;
    let mut player = server.join("counter", "evicted").await;
    player
        .send_input(1, &CounterInput { add: 7 })
        .await
        .unwrap();
    player
        .wait_until(WAIT, |m| total(m) == Some(7))
        .await
        .unwrap();
    let tick_before = player.mirror().tick().unwrap();
    player.leave().await.unwrap();
    player.wait_closed(WAIT).await.unwrap();
    eventually(WAIT, "the idle room is evicted", || async {
        server
            .describe("counter", "evicted")
            .await
            .is_none()
            .then_some(())
    })
    .await;

    // A new room of the same name starts from the final snapshot.
    let mut back = server.join("counter", "evicted").await;
    back.wait_until(WAIT, |m| m.tick().is_some()).await.unwrap();
    assert_eq!(total(back.mirror()), Some(7), "total restored");
    assert!(
        back.mirror().tick().unwrap() >= tick_before,
        "tick resumes, not restarts"
    );
    back.send_input(1, &CounterInput { add: 1 }).await.unwrap();
    back.wait_until(WAIT, |m| total(m) == Some(8))
        .await
        .unwrap();
    server.stop().await;
}

async fn a_player_resumes_across_a_server_restart(db: TestDatabase) {
    let server = start(persistent_config(&db)).await;
    let mut player = server.join("counter", "restart").await;
    player
        .send_input(1, &CounterInput { add: 5 })
        .await
        .unwrap();
    player
        .wait_until(WAIT, |m| total(m) == Some(5))
        .await
        .unwrap();
    let (id, options) = (player.player_id(), player.resume_options());
    // Graceful shutdown writes a final snapshot.
    server.stop().await;

    let server = start(persistent_config(&db)).await;
    let options = ConnectOptions {
        mirror: None,
        ..options
    };
    let mut back = server.join_with("counter", "restart", options).await;
    assert!(
        back.welcome().resumed,
        "the resume token survives the restart"
    );
    assert_eq!(back.player_id(), id);
    back.wait_until(WAIT, |m| {
        m.entities().contains_key(&id) && total(m) == Some(5)
    })
    .await
    .unwrap();
    server.stop().await;
}

async fn a_doc_survives_a_server_restart(db: TestDatabase) {
    let server = start(persistent_config(&db)).await;
    let mut writer = server.join_doc("kept").await;
    for i in 0..30 {
        writer
            .edit(|txn| txn.get_or_insert_text("t").insert(txn, 0, &format!("{i},")))
            .await
            .unwrap();
    }
    let expected: String = (0..30).rev().map(|i| format!("{i},")).collect();
    let mut observer = server.join_doc("kept").await;
    observer
        .wait_until(WAIT, |d| {
            d.get_or_insert_text("t").get_string(&d.transact()) == expected
        })
        .await
        .unwrap();
    server.stop().await;

    let server = start(persistent_config(&db)).await;
    let fresh = server.join_doc_with("kept", DocOptions::default()).await;
    let t = fresh.doc().get_or_insert_text("t");
    assert_eq!(t.get_string(&fresh.doc().transact()), expected);
    server.stop().await;
}

async fn compaction_keeps_the_content_and_shortens_the_log(db: TestDatabase) {
    let config = Config {
        doc_compact_updates: 10,
        ..persistent_config(&db)
    };
    let server = start(config).await;
    let mut writer = server.join_doc("compacted").await;
    for i in 0..45 {
        writer
            .edit(|txn| txn.get_or_insert_text("t").insert(txn, 0, &format!("{i};")))
            .await
            .unwrap();
    }
    let expected: String = (0..45).rev().map(|i| format!("{i};")).collect();
    writer
        .wait_until(WAIT, |d| {
            d.get_or_insert_text("t").get_string(&d.transact()) == expected
        })
        .await
        .unwrap();
    // The store ends up with a snapshot and only the tail of the log, which
    // together are exactly the document.
    let store = roomcast_server::store::connect(db.config()).await.unwrap();
    let rebuilt = |stored: &roomcast_server::store::StoredDoc| {
        use yrs::updates::decoder::Decode;
        let doc = yrs::Doc::new();
        let mut txn = doc.transact_mut();
        let parts = stored
            .snapshot
            .iter()
            .map(|s| &s.state)
            .chain(stored.updates.iter().map(|(_, u)| u));
        for part in parts {
            txn.apply_update(yrs::Update::decode_v1(part).unwrap())
                .unwrap();
        }
        drop(txn);
        let t = doc.get_or_insert_text("t").get_string(&doc.transact());
        t
    };
    let stored = eventually(WAIT, "compactions stored", || async {
        let stored = store.load_doc("compacted").await.ok()?;
        (stored.snapshot.is_some() && stored.updates.len() < 10 && rebuilt(&stored) == expected)
            .then_some(stored)
    })
    .await;
    assert!(stored.snapshot.as_ref().unwrap().through_seq >= 36);
    server.stop().await;
}

async fn the_database_going_away_stops_nothing_and_loses_nothing_acknowledged(db: TestDatabase) {
    let config = Config {
        db_retry_for: Duration::from_millis(500),
        db_statement_timeout: Duration::from_millis(300),
        db_acquire_timeout: Duration::from_secs(1),
        ..persistent_config(&db)
    };
    let server = start(config.clone()).await;
    assert_eq!(server.http_get("/readyz").await.0, 200);
    let mut player = server.join("counter", "outage").await;
    let mut writer = server.join_doc("outage").await;
    let mut observer = server.join_doc("outage").await;
    let text = |d: &yrs::Doc| d.get_or_insert_text("t").get_string(&d.transact());
    writer
        .edit(|txn| txn.get_or_insert_text("t").insert(txn, 0, "before;"))
        .await
        .unwrap();
    observer
        .wait_until(WAIT, |d| text(d) == "before;")
        .await
        .unwrap();

    let outage = db.outage().await.expect("take the database away");
    eventually(WAIT, "/readyz reports the store down", || async {
        let (status, body) = server.http_get("/readyz").await;
        (status == 503 && body.contains("store")).then_some(())
    })
    .await;
    // Rooms keep running: the game ticks on.
    let tick = player.mirror().tick().unwrap_or(0);
    player
        .wait_until(WAIT, |m| m.tick().unwrap_or(0) >= tick + 5)
        .await
        .unwrap();
    // An edit that cannot be stored is not relayed; its sender is told (1011).
    writer
        .edit(|txn| txn.get_or_insert_text("t").push(txn, "during;"))
        .await
        .unwrap();
    let close = writer
        .wait_closed(WAIT)
        .await
        .unwrap()
        .expect("close frame");
    assert_eq!(
        close.code,
        roomcast_protocol::close::code::INTERNAL_ERROR,
        "{}",
        close.reason
    );
    assert!(close.reason.contains("could not store"), "{}", close.reason);
    assert_eq!(
        text(observer.doc()),
        "before;",
        "an unstored edit is never relayed"
    );

    outage.end().await.expect("bring the database back");
    eventually(WAIT, "/readyz recovers", || async {
        (server.http_get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    // The writer reconnects with its replica: its unstored edit goes through now.
    let writer = server
        .join_doc_with(
            "outage",
            DocOptions {
                doc: Some(writer.into_doc()),
                ..Default::default()
            },
        )
        .await;
    observer
        .wait_until(WAIT, |d| text(d) == "before;during;")
        .await
        .unwrap();
    drop(writer);
    server.stop().await;

    // Everything acknowledged is in the store.
    let server = start(config).await;
    let fresh = server.join_doc("outage").await;
    assert_eq!(text(fresh.doc()), "before;during;");
    server.stop().await;
}
