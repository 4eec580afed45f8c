//! The admin REST API over real HTTP against a live server with rooms in play.

use std::time::Duration;

use roomcast_e2e::{start, test_config, TestServer};
use roomcast_protocol::games::arena::ArenaInput;
use serde_json::Value;
use yrs::{Text, WriteTxn};

const TOKEN: &str = "s3cret-admin-token";
const WAIT: Duration = Duration::from_secs(10);

async fn get(server: &TestServer, path: &str) -> (u16, Value) {
    let (status, body) = server.http_get_with_token(path, Some(TOKEN)).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}")),
    )
}

#[actix_rt::test]
async fn without_a_token_configured_the_api_is_disabled() {
    let server = start(test_config()).await;
    for path in ["/api/v1/rooms", "/api/v1/rooms/doc/x", "/api/v1/nothing"] {
        let (status, body) = server.http_get_with_token(path, Some("anything")).await;
        assert_eq!(status, 404, "{path}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"], "api_disabled");
    }
    server.stop().await;
}

#[actix_rt::test]
async fn the_api_lists_and_inspects_live_rooms_behind_its_token() {
    let config = roomcast_server::Config {
        admin_token: Some(TOKEN.into()),
        ..test_config()
    };
    let server = start(config).await;
    let mut a = server.join("arena", "lobby").await;
    let _b = server.join("arena", "lobby").await;
    let _c = server.join("counter", "solo").await;
    let mut doc = server.join_doc("notes").await;
    doc.edit(|txn| txn.get_or_insert_text("t").insert(txn, 0, "hello"))
        .await
        .unwrap();
    a.send_input(1, &ArenaInput { dx: 1, dy: 0 }).await.unwrap();
    let id = a.player_id();
    a.wait_until(WAIT, |m| {
        m.entity::<roomcast_protocol::games::arena::ArenaPlayer>(id)
            .and_then(Result::ok)
            .is_some_and(|p| p.last_input == 1)
    })
    .await
    .unwrap();

    // Token checks.
    assert_eq!(server.http_get("/api/v1/rooms").await.0, 401);
    assert_eq!(
        server
            .http_get_with_token("/api/v1/rooms", Some("wrong"))
            .await
            .0,
        403
    );

    // Listing, filtering, paging.
    let (status, all) = get(&server, "/api/v1/rooms").await;
    assert_eq!(status, 200);
    assert_eq!(all["total"], 3);
    let lobby = all["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "arena:lobby")
        .unwrap();
    assert_eq!(
        (lobby["kind"].as_str(), lobby["members"].as_u64()),
        (Some("game"), Some(2))
    );
    assert_eq!(lobby["tick_rate_hz"], 30);
    assert!(lobby["tick_p99_ms"].as_f64().is_some());
    let (_, games) = get(&server, "/api/v1/rooms?kind=game&game=arena").await;
    assert_eq!(games["total"], 1);
    let (_, docs) = get(&server, "/api/v1/rooms?kind=doc").await;
    assert_eq!(
        (docs["total"].as_u64(), docs["rooms"][0]["id"].as_str()),
        (Some(1), Some("notes"))
    );
    let (_, page) = get(&server, "/api/v1/rooms?limit=2&offset=2").await;
    assert_eq!(
        (
            page["total"].as_u64(),
            page["rooms"].as_array().unwrap().len()
        ),
        (Some(3), 1)
    );

    // Room detail: members and the state as JSON.
    let (status, room) = get(&server, "/api/v1/rooms/game/arena:lobby").await;
    assert_eq!(status, 200);
    assert_eq!(room["members"].as_array().unwrap().len(), 2);
    let player = &room["state"]["players"][id.to_string()];
    assert_eq!(player["last_input"], 1, "{room}");
    let (status, doc_room) = get(&server, "/api/v1/rooms/doc/notes").await;
    assert_eq!(status, 200);
    assert_eq!(doc_room["members"].as_array().unwrap().len(), 1);
    assert!(doc_room["doc_bytes"].as_u64().unwrap() > 0);

    // Errors are JSON with the right status.
    let (status, err) = get(&server, "/api/v1/rooms/game/arena:nowhere").await;
    assert_eq!((status, err["error"].as_str()), (404, Some("not_found")));
    let (status, err) = get(&server, "/api/v1/rooms/chess/x").await;
    assert_eq!((status, err["error"].as_str()), (400, Some("bad_request")));
    let (status, err) = get(&server, "/api/v1/rooms/game/no-colon").await;
    assert_eq!((status, err["error"].as_str()), (400, Some("bad_request")));
    let (status, err) = get(&server, "/api/v1/rooms?kind=chess").await;
    assert_eq!((status, err["error"].as_str()), (400, Some("bad_request")));
    let (status, err) = get(&server, "/api/v1/nothing/here").await;
    assert_eq!((status, err["error"].as_str()), (404, Some("not_found")));
    server.stop().await;
}
