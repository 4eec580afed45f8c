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
    // Per-room figures: bytes/s out, and each member's measured round trip
    // (the client answers the server's heartbeat pings while it reads).
    let _ = a.wait_until(Duration::from_millis(1500), |_| false).await;
    let (_, room) = get(&server, "/api/v1/rooms/game/arena:lobby").await;
    assert!(room["bytes_out_per_sec"].as_f64().unwrap() > 0.0, "{room}");
    let me = room["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["player"] == id)
        .unwrap();
    assert!(
        me["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{me}"
    );
    let (status, doc_room) = get(&server, "/api/v1/rooms/doc/notes").await;
    assert_eq!(status, 200);
    assert_eq!(doc_room["members"].as_array().unwrap().len(), 1);
    assert!(doc_room["doc_bytes"].as_u64().unwrap() > 0);
    // The server never declared "t": its kind is read off its content.
    assert_eq!(doc_room["state"]["t"], "hello", "{doc_room}");

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

async fn call(server: &TestServer, method: &str, path: &str) -> (u16, Value) {
    let (status, body) = server.http_request(method, path, Some(TOKEN)).await;
    (
        status,
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {body}")),
    )
}

#[actix_rt::test]
async fn snapshots_are_taken_listed_viewed_and_a_room_is_closed_through_the_api() {
    let db = roomcast_server::store::testing::TestDatabase::sqlite().unwrap();
    let store = db.config();
    let config = roomcast_server::Config {
        admin_token: Some(TOKEN.into()),
        persistence: "on".into(),
        database_url: store.url.clone(),
        data_dir: store.data_dir.clone(),
        ..test_config()
    };
    let server = start(config).await;
    let mut player = server.join("counter", "ops").await;
    player
        .send_input(
            1,
            &roomcast_protocol::games::counter::CounterInput { add: 9 },
        )
        .await
        .unwrap();
    player
        .wait_until(WAIT, |m| {
            m.entity::<roomcast_protocol::games::counter::CounterScore>(0)
                .and_then(Result::ok)
                .is_some_and(|s| s.score == 9)
        })
        .await
        .unwrap();
    let mut doc = server.join_doc("ops").await;
    doc.edit(|txn| txn.get_or_insert_text("t").insert(txn, 0, "kept"))
        .await
        .unwrap();
    doc.wait_until(WAIT, |_| true).await.unwrap();

    // Take one now, list it, view it (state as JSON).
    let (status, taken) = call(&server, "POST", "/api/v1/rooms/game/counter:ops/snapshots").await;
    assert_eq!(status, 201, "{taken}");
    let n = taken["snapshot"]["id"].as_i64().unwrap();
    let (_, list) = call(&server, "GET", "/api/v1/rooms/game/counter:ops/snapshots").await;
    assert!(list["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["id"] == n));
    let (status, view) = call(
        &server,
        "GET",
        &format!("/api/v1/rooms/game/counter:ops/snapshots/{n}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(view["state"]["total"], 9, "{view}");
    let (status, err) = call(
        &server,
        "GET",
        "/api/v1/rooms/game/counter:ops/snapshots/999999",
    )
    .await;
    assert_eq!((status, err["error"].as_str()), (404, Some("not_found")));
    let (status, err) = call(
        &server,
        "GET",
        "/api/v1/rooms/game/counter:ops/snapshots/abc",
    )
    .await;
    assert_eq!((status, err["error"].as_str()), (400, Some("bad_request")));

    // Doc rooms too.
    let (status, taken) = call(&server, "POST", "/api/v1/rooms/doc/ops/snapshots").await;
    assert_eq!(status, 201, "{taken}");
    let doc_snapshot = taken["snapshot"]["id"].as_i64().unwrap();
    let (_, list) = call(&server, "GET", "/api/v1/rooms/doc/ops/snapshots").await;
    assert!(!list["snapshots"].as_array().unwrap().is_empty());
    let (_, rooms) = call(&server, "GET", "/api/v1/rooms?kind=doc").await;
    assert_eq!(
        rooms["rooms"][0]["last_snapshot"]["id"], doc_snapshot,
        "{rooms}"
    );

    // Closing a room: snapshot, then members are closed with 1001.
    let (status, closed) = call(&server, "DELETE", "/api/v1/rooms/game/counter:ops").await;
    assert_eq!((status, closed["closed"].as_bool()), (200, Some(true)));
    let close = player
        .wait_closed(WAIT)
        .await
        .unwrap()
        .expect("close frame");
    assert_eq!(close.code, roomcast_protocol::close::code::GOING_AWAY);
    let (status, _) = call(&server, "GET", "/api/v1/rooms/game/counter:ops").await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[test]
fn the_openapi_document_lists_exactly_the_routes_the_server_registers() {
    let doc: Value =
        serde_json::from_str(roomcast_server::http::api::OPENAPI).expect("OpenAPI is JSON");
    assert_eq!(
        doc["openapi"].as_str().map(|v| v.starts_with("3.")),
        Some(true)
    );
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_some() {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    let mut registered: Vec<(String, String)> = roomcast_server::http::api::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    documented.sort();
    registered.sort();
    assert_eq!(documented, registered);
}

#[actix_rt::test]
async fn every_documented_route_is_served_and_others_are_not() {
    let config = roomcast_server::Config {
        admin_token: Some(TOKEN.into()),
        ..test_config()
    };
    let server = start(config).await;
    for (method, path) in roomcast_server::http::api::ROUTES {
        let concrete = path
            .replace("{kind}", "game")
            .replace("{id}", "arena:x")
            .replace("{n}", "1");
        let (status, body) = server
            .http_request(method, &format!("/api/v1{concrete}"), Some(TOKEN))
            .await;
        assert!(
            !body.contains("no API route"),
            "{method} {path} is documented but not served ({status}: {body})"
        );
    }
    for (method, path) in [
        ("PUT", "/api/v1/rooms"),
        ("GET", "/api/v1/rooms/game/arena:x/other"),
    ] {
        let (status, body) = server.http_request(method, path, Some(TOKEN)).await;
        assert_eq!(status, 404, "{method} {path}");
        assert!(body.contains("no API route"), "{method} {path}: {body}");
    }
    let (status, body) = server
        .http_request("GET", "/api/v1/openapi.json", None)
        .await;
    assert_eq!(status, 200, "the document needs no token");
    assert!(body.contains("\"openapi\""));
    server.stop().await;
}

#[actix_rt::test]
async fn with_an_admin_port_the_operator_surface_moves_there() {
    let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    admin.set_nonblocking(true).unwrap();
    let admin_host = admin.local_addr().unwrap().to_string();
    let config = roomcast_server::Config {
        admin_token: Some(TOKEN.into()),
        ..test_config()
    };
    let server = roomcast_e2e::start_with(config, move |s| {
        s.set_admin_listener(admin);
    })
    .await;
    let _player = server.join("arena", "ops").await;
    let on_admin = |path: &'static str| {
        let host = admin_host.clone();
        async move { roomcast_e2e::http_request(&host, "GET", path, Some(TOKEN), "").await }
    };
    // The operator surface is on the admin port...
    let (status, metrics) = on_admin("/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("roomcast_connections_open"), "{metrics}");
    let (status, rooms) = on_admin("/api/v1/rooms").await;
    assert_eq!(status, 200);
    assert!(rooms.contains("arena:ops"), "{rooms}");
    assert_eq!(on_admin("/dashboard").await.0, 200);
    assert_eq!(on_admin("/readyz").await.0, 200);
    // ...and nowhere else; clients keep theirs.
    for path in ["/metrics", "/api/v1/rooms", "/dashboard"] {
        let (status, _) = server.http_get_with_token(path, Some(TOKEN)).await;
        assert_eq!(status, 404, "{path} on the main port");
    }
    assert_eq!(server.http_get("/healthz").await.0, 200);
    assert_eq!(on_admin("/game/arena/ops").await.0, 404);
    server.stop().await;
}
