//! Restoring rooms to stored snapshots through the admin API, with clients
//! connected, on both stores: game rooms reset at their next tick and every
//! member's mirror follows; doc rooms are brought back by a new update that every
//! member receives, and which clients holding the older content cannot undo.

use std::time::Duration;

use roomcast_client::{DocOptions, Mirror};
use roomcast_e2e::{on_both_stores, persistent_config, start, TestServer};
use roomcast_protocol::games::counter::{CounterInput, CounterScore, TOTAL_ENTITY};
use roomcast_server::store::testing::TestDatabase;
use serde_json::Value;
use yrs::{GetString, Map, Text, Transact, WriteTxn};

const TOKEN: &str = "restore-token";
const WAIT: Duration = Duration::from_secs(15);

on_both_stores!(
    a_game_room_and_its_members_follow_a_restore,
    a_doc_restore_reaches_every_member_and_survives_reconnecting_clients,
);

async fn call(server: &TestServer, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (status, text) = server
        .http_request_with_body(method, path, Some(TOKEN), body)
        .await;
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
    (status, json)
}

async fn start_persistent(db: &TestDatabase) -> TestServer {
    start(roomcast_server::Config {
        admin_token: Some(TOKEN.into()),
        ..persistent_config(db)
    })
    .await
}

fn score(m: &Mirror, entity: u32) -> Option<i64> {
    m.entity::<CounterScore>(entity)
        .and_then(Result::ok)
        .map(|s| s.score)
}

async fn a_game_room_and_its_members_follow_a_restore(db: TestDatabase) {
    let server = start_persistent(&db).await;
    let mut first = server.join("counter", "r").await;
    let first_id = first.player_id();
    first.send_input(1, &CounterInput { add: 5 }).await.unwrap();
    first
        .wait_until(WAIT, |m| score(m, TOTAL_ENTITY) == Some(5))
        .await
        .unwrap();
    let (status, taken) = call(
        &server,
        "POST",
        "/api/v1/rooms/game/counter:r/snapshots",
        "",
    )
    .await;
    assert_eq!(status, 201, "{taken}");
    let n = taken["snapshot"]["id"].as_i64().unwrap();

    // Play on: more score, and a second player the snapshot does not know.
    first.send_input(2, &CounterInput { add: 7 }).await.unwrap();
    let mut second = server.join("counter", "r").await;
    let second_id = second.player_id();
    second
        .send_input(1, &CounterInput { add: 100 })
        .await
        .unwrap();
    for player in [&mut first, &mut second] {
        player
            .wait_until(WAIT, |m| score(m, TOTAL_ENTITY) == Some(112))
            .await
            .unwrap();
    }

    let (status, restored) = call(
        &server,
        "POST",
        "/api/v1/rooms/game/counter:r/restore",
        &format!(r#"{{"snapshot": {n}}}"#),
    )
    .await;
    assert_eq!(status, 200, "{restored}");
    assert_eq!(restored["restored_from"], n);
    // Both mirrors follow (a full snapshot); the newcomer is in the restored
    // state with a fresh score, the first player has its score of then.
    for player in [&mut first, &mut second] {
        player
            .wait_until(WAIT, |m| {
                score(m, TOTAL_ENTITY) == Some(5)
                    && score(m, first_id) == Some(5)
                    && score(m, second_id) == Some(0)
            })
            .await
            .unwrap();
    }
    // The room goes on from there, for everyone.
    second
        .send_input(2, &CounterInput { add: 1 })
        .await
        .unwrap();
    for player in [&mut first, &mut second] {
        player
            .wait_until(WAIT, |m| score(m, TOTAL_ENTITY) == Some(6))
            .await
            .unwrap();
    }
    let (_, room) = call(&server, "GET", "/api/v1/rooms/game/counter:r", "").await;
    assert_eq!(room["state"]["total"], 6, "{room}");
    assert!(room["last_snapshot"]["id"].as_i64().unwrap() > n, "{room}");

    // Bad input gets the documented status.
    let path = "/api/v1/rooms/game/counter:r/restore";
    for (body, status, code) in [
        ("{\"snapshot\": 999999}", 404, "not_found"),
        ("{\"snapshot\": \"one\"}", 400, "bad_request"),
        ("{\"snapshot\": ", 400, "bad_request"),
        ("", 400, "bad_request"),
    ] {
        let (got, err) = call(&server, "POST", path, body).await;
        assert_eq!((got, err["error"].as_str()), (status, Some(code)), "{body}");
    }
    let (got, _) = server
        .http_request_with_body("POST", path, None, &format!(r#"{{"snapshot": {n}}}"#))
        .await;
    assert_eq!(got, 401);
    server.stop().await;
}

/// The text and map content of a replica.
fn content(doc: &yrs::Doc) -> (String, Value) {
    let mut txn = doc.transact_mut();
    let text = txn.get_or_insert_text("t").get_string(&txn);
    let map = txn.get_or_insert_map("m");
    let map = serde_json::to_value(yrs::types::ToJson::to_json(&map, &txn)).unwrap();
    (text, map)
}

async fn a_doc_restore_reaches_every_member_and_survives_reconnecting_clients(db: TestDatabase) {
    let server = start_persistent(&db).await;
    let mut writer = server.join_doc("story").await;
    let mut reader = server.join_doc("story").await;
    writer
        .edit(|txn| {
            txn.get_or_insert_text("t").insert(txn, 0, "hello wörld 🎲");
            txn.get_or_insert_map("m").insert(txn, "v", 1.0);
        })
        .await
        .unwrap();
    let then = ("hello wörld 🎲".to_owned(), serde_json::json!({ "v": 1 }));
    let r = reader.wait_until(WAIT, |d| content(d) == then).await;
    assert!(r.is_ok(), "{r:?} {:?}", content(reader.doc()));
    let (status, taken) = call(&server, "POST", "/api/v1/rooms/doc/story/snapshots", "").await;
    assert_eq!(status, 201, "{taken}");
    let n = taken["snapshot"]["id"].as_i64().unwrap();

    // Edit on; keep a replica of this later content for an offline client.
    writer
        .edit(|txn| {
            let t = txn.get_or_insert_text("t");
            t.remove_range(txn, 0, 5);
            t.insert(txn, 0, "goodbye");
            let m = txn.get_or_insert_map("m");
            m.insert(txn, "v", 2.0);
            m.insert(txn, "extra", "x");
        })
        .await
        .unwrap();
    let later = (
        "goodbye wörld 🎲".to_owned(),
        serde_json::json!({ "v": 2, "extra": "x" }),
    );
    let mut offline = server.join_doc("story").await;
    offline
        .wait_until(WAIT, |d| content(d) == later)
        .await
        .unwrap();
    let offline_doc = offline.into_doc();
    reader
        .wait_until(WAIT, |d| content(d) == later)
        .await
        .unwrap();

    let (status, restored) = call(
        &server,
        "POST",
        "/api/v1/rooms/doc/story/restore",
        &format!(r#"{{"snapshot": {n}}}"#),
    )
    .await;
    assert_eq!(status, 200, "{restored}");
    assert!(restored["at"].as_i64().is_some(), "{restored}");
    for member in [&mut writer, &mut reader] {
        member
            .wait_until(WAIT, |d| content(d) == then)
            .await
            .unwrap();
    }
    let (_, room) = call(&server, "GET", "/api/v1/rooms/doc/story", "").await;
    assert_eq!(room["state"]["t"], then.0, "{room}");

    // A client that was offline with the later content reconnects and syncs
    // both ways: the restore stands, for it and for everyone.
    let mut returning = roomcast_client::DocConnection::connect(
        &server.url,
        "story",
        DocOptions {
            doc: Some(offline_doc),
            ..DocOptions::default()
        },
    )
    .await
    .unwrap();
    returning
        .wait_until(WAIT, |d| content(d) == then)
        .await
        .unwrap();
    // Its next edit reaches the others after everything it sent on reconnecting.
    returning
        .edit(|txn| txn.get_or_insert_map("m").insert(txn, "back", true))
        .await
        .unwrap();
    let after = (then.0.clone(), serde_json::json!({ "v": 1, "back": true }));
    writer
        .wait_until(WAIT, |d| content(d) == after)
        .await
        .unwrap();
    let (_, room) = call(&server, "GET", "/api/v1/rooms/doc/story", "").await;
    assert_eq!(room["state"]["t"], then.0, "{room}");

    // Restoring again undoes the returning client's later edit too; once the
    // content is the snapshot's, a restore has nothing to change.
    let body = format!(r#"{{"snapshot": {n}}}"#);
    let (status, again) = call(&server, "POST", "/api/v1/rooms/doc/story/restore", &body).await;
    assert_eq!(status, 200, "{again}");
    assert!(again["at"].as_i64().is_some(), "{again}");
    for member in [&mut writer, &mut reader, &mut returning] {
        member
            .wait_until(WAIT, |d| content(d) == then)
            .await
            .unwrap();
    }
    let (status, noop) = call(&server, "POST", "/api/v1/rooms/doc/story/restore", &body).await;
    assert_eq!((status, noop["at"].clone()), (200, Value::Null), "{noop}");
    server.stop().await;
}
