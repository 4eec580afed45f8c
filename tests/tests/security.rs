//! Authentication, roles, origin checks and limits against a live server over
//! real sockets: join tokens (HS256 secret, EdDSA and RS256 public keys) in the
//! query or the WebSocket protocol header, refusals before the upgrade with
//! their status and JSON reason, spectators and read-only doc members, the
//! Origin allow-list, connection/room/member limits and per-connection rates.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use roomcast_client::{ClientError, ConnectOptions, DocOptions, Event, GameConnection};
use roomcast_e2e::{start, test_config, TestServer};
use roomcast_protocol::close::{code, error};
use roomcast_protocol::games::arena::{ArenaInput, ArenaPlayer};
use roomcast_protocol::{ClientMessage, Ping};
use roomcast_server::auth::{self, Claims, Role};
use serde_json::Value;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};
use yrs::{GetString, Text, Transact, WriteTxn};

const SECRET: &str = "a-test-secret-of-enough-bytes";
const WAIT: Duration = Duration::from_secs(10);

fn token(room: &str, role: Role) -> String {
    auth::mint(
        Some(SECRET),
        None,
        "alice",
        room,
        role,
        Duration::from_secs(300),
    )
    .unwrap()
}

fn with_auth() -> roomcast_server::Config {
    roomcast_server::Config {
        auth_secret: Some(SECRET.into()),
        ..test_config()
    }
}

fn player(token: &str) -> ConnectOptions {
    ConnectOptions {
        token: Some(token.to_owned()),
        ..ConnectOptions::default()
    }
}

async fn refused_status(
    server: &TestServer,
    game: &str,
    room: &str,
    options: ConnectOptions,
) -> u16 {
    match GameConnection::connect(&server.url, game, room, options).await {
        Ok(_) => panic!("{game}/{room}: the upgrade was accepted"),
        Err(e) => e
            .http_status()
            .unwrap_or_else(|| panic!("not an HTTP refusal: {e}")),
    }
}

type RawSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// An upgrade request with extra headers; the socket and the response, or
/// the refusal status.
async fn connect_with(
    url: &str,
    headers: &[(&'static str, &str)],
) -> Result<(RawSocket, tungstenite::handshake::client::Response), u16> {
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok(answer) => Ok(answer),
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("{url}: {e}"),
    }
}

/// An upgrade request with extra headers; the response or the refusal status.
async fn upgrade_with(
    url: &str,
    headers: &[(&'static str, &str)],
) -> Result<tungstenite::handshake::client::Response, u16> {
    connect_with(url, headers)
        .await
        .map(|(_, response)| response)
}

#[actix_rt::test]
async fn upgrades_need_a_valid_token_for_their_room_when_auth_is_on() {
    let server = start(with_auth()).await;
    let none = ConnectOptions::default();
    assert_eq!(refused_status(&server, "arena", "lobby", none).await, 401);
    let forged = auth::mint(
        Some("some-other-secret-entirely"),
        None,
        "mallory",
        "*",
        Role::Player,
        Duration::from_secs(300),
    )
    .unwrap();
    assert_eq!(
        refused_status(&server, "arena", "lobby", player(&forged)).await,
        401
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = auth::sign(
        Some(SECRET),
        None,
        &Claims {
            sub: "alice".into(),
            room: "*".into(),
            role: Role::Player,
            exp: now - 3600,
            iat: None,
        },
    )
    .unwrap();
    assert_eq!(
        refused_status(&server, "arena", "lobby", player(&expired)).await,
        401
    );
    let other_room = token("game/arena/other", Role::Player);
    assert_eq!(
        refused_status(&server, "arena", "lobby", player(&other_room)).await,
        403
    );
    let doc_role = token("*", Role::Write);
    assert_eq!(
        refused_status(&server, "arena", "lobby", player(&doc_role)).await,
        403
    );

    // The reason is JSON, before any upgrade.
    let (status, body) = server.http_get("/game/arena/lobby").await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("token_missing")),
        "{body}"
    );
    let (status, body) = server
        .http_get(&format!("/doc/notes?token={other_room}"))
        .await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("token_forbidden")),
        "{body}"
    );

    // Exact rooms and prefix patterns admit.
    let exact = token("game/arena/lobby", Role::Player);
    let mut a = GameConnection::connect(&server.url, "arena", "lobby", player(&exact))
        .await
        .unwrap();
    let pattern = token("game/arena/*", Role::Player);
    let b = GameConnection::connect(&server.url, "arena", "lobby", player(&pattern))
        .await
        .unwrap();
    let id = b.player_id();
    a.wait_until(WAIT, |m| m.entities().contains_key(&id))
        .await
        .unwrap();

    // Browsers may send the token as a WebSocket protocol; the answer selects ours.
    let response = upgrade_with(
        &format!("{}/doc/notes", server.url),
        &[(
            "sec-websocket-protocol",
            &format!("roomcast, roomcast.token.{}", token("doc/*", Role::Write)),
        )],
    )
    .await
    .expect("accepted");
    assert_eq!(
        response.headers()["sec-websocket-protocol"]
            .to_str()
            .unwrap(),
        "roomcast"
    );

    let (_, metrics) = server.http_get("/metrics").await;
    for reason in ["token_missing", "token_invalid", "token_forbidden"] {
        assert!(
            metrics.contains(&format!("roomcast_refusals_total{{reason=\"{reason}\"}}")),
            "{reason} counted:\n{metrics}"
        );
    }
    server.stop().await;
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/auth")
        .join(name)
}

#[actix_rt::test]
async fn tokens_signed_with_ed25519_or_rsa_keys_verify_against_the_public_key() {
    for (public, private, other) in [
        (
            "ed25519-public.pem",
            "ed25519-private.pem",
            "rsa-private.pem",
        ),
        ("rsa-public.pem", "rsa-private.pem", "ed25519-private.pem"),
    ] {
        let server = start(roomcast_server::Config {
            auth_public_key: Some(fixture(public)),
            ..test_config()
        })
        .await;
        let mint = |key: &str| {
            auth::mint(
                None,
                Some(&fixture(key)),
                "bob",
                "game/counter/*",
                Role::Player,
                Duration::from_secs(60),
            )
            .unwrap()
        };
        GameConnection::connect(&server.url, "counter", "keys", player(&mint(private)))
            .await
            .unwrap_or_else(|e| panic!("{public}: {e}"));
        assert_eq!(
            refused_status(&server, "counter", "keys", player(&mint(other))).await,
            401,
            "{public} refuses a token signed by another key"
        );
        server.stop().await;
    }
}

#[actix_rt::test]
async fn spectators_watch_without_an_entity_and_their_inputs_are_refused() {
    let server = start(with_auth()).await;
    let mut playing = GameConnection::connect(
        &server.url,
        "arena",
        "show",
        player(&token("game/arena/show", Role::Player)),
    )
    .await
    .unwrap();
    let mut watching = GameConnection::connect(
        &server.url,
        "arena",
        "show",
        player(&token("game/arena/show", Role::Spectator)),
    )
    .await
    .unwrap();
    assert_eq!(watching.player_id(), 0, "spectators are player 0");
    let id = playing.player_id();
    playing
        .send_input(1, &ArenaInput { dx: 1, dy: 0 })
        .await
        .unwrap();
    // The spectator sees the player move, and only the player.
    watching
        .wait_until(WAIT, |m| {
            m.entity::<ArenaPlayer>(id)
                .and_then(Result::ok)
                .is_some_and(|p| p.last_input == 1)
        })
        .await
        .unwrap();
    assert_eq!(watching.mirror().entities().len(), 1);
    // Its input is refused in band; the connection stays and keeps following.
    watching
        .send_input(1, &ArenaInput { dx: 0, dy: 1 })
        .await
        .unwrap();
    let refused = loop {
        match watching.next_event().await.unwrap() {
            Event::Error(e) => break e,
            Event::Closed(info) => panic!("closed: {info:?}"),
            _ => {}
        }
    };
    assert_eq!(refused.code, error::INPUT_REFUSED, "{refused:?}");
    let tick = watching.mirror().tick().unwrap();
    watching
        .wait_until(WAIT, |m| m.tick().is_some_and(|t| t > tick + 3))
        .await
        .unwrap();
    assert_eq!(watching.mirror().entities().len(), 1);
    // Operators see who is who.
    let info = server.describe("arena", "show").await.unwrap();
    assert_eq!(
        info.members
            .iter()
            .map(|m| (m.spectator, m.user.as_deref()))
            .collect::<Vec<_>>(),
        vec![(false, Some("alice")), (true, Some("alice"))]
    );
    server.stop().await;
}

#[actix_rt::test]
async fn read_only_doc_members_get_every_update_but_their_edits_are_dropped() {
    let server = start(with_auth()).await;
    let options = |role| DocOptions {
        token: Some(token("doc/shared", role)),
        ..DocOptions::default()
    };
    let mut writer =
        roomcast_client::DocConnection::connect(&server.url, "shared", options(Role::Write))
            .await
            .unwrap();
    let mut reader =
        roomcast_client::DocConnection::connect(&server.url, "shared", options(Role::Read))
            .await
            .unwrap();
    writer.wait_synced(WAIT).await.unwrap();
    reader.wait_synced(WAIT).await.unwrap();
    let text = |d: &yrs::Doc| {
        let t = d.get_or_insert_text("t");
        let txn = d.transact();
        t.get_string(&txn)
    };
    writer
        .edit(|txn| txn.get_or_insert_text("t").insert(txn, 0, "by the writer"))
        .await
        .unwrap();
    reader
        .wait_until(WAIT, |d| text(d) == "by the writer")
        .await
        .unwrap();
    // The reader's edit is dropped and it is told so; its presence is relayed.
    reader
        .edit(|txn| txn.get_or_insert_text("t").insert(txn, 0, "NOT "))
        .await
        .unwrap();
    reader
        .set_awareness(&serde_json::json!({ "user": "reader" }))
        .await
        .unwrap();
    let reader_id = reader.client_id();
    writer
        .wait_awareness(WAIT, |a| {
            a.iter().any(|(id, s)| id == reader_id && s.data.is_some())
        })
        .await
        .unwrap();
    loop {
        if reader.permission_denied().is_some() {
            break;
        }
        tokio::time::timeout(WAIT, reader.next_event())
            .await
            .expect("told in time")
            .unwrap();
    }
    assert!(reader.permission_denied().unwrap().contains("read-only"));
    writer
        .edit(|txn| txn.get_or_insert_text("t").push(txn, "!"))
        .await
        .unwrap();
    // The writer's next edit reaches the reader, over the reader's own: the
    // server never took it.
    reader
        .wait_until(WAIT, |d| text(d).ends_with("by the writer!"))
        .await
        .unwrap();
    let info = server.inspect_doc("shared").await.unwrap();
    assert_eq!(info.content["t"], "by the writer!");
    server.stop().await;
}

#[actix_rt::test]
async fn browser_origins_must_be_allowed() {
    let server = start(test_config()).await;
    let host = server.url.trim_start_matches("ws://").to_owned();
    let url = format!("{}/doc/origin", server.url);
    // No allow-list: the server's own origin only; clients without Origin pass.
    assert!(upgrade_with(&url, &[]).await.is_ok());
    assert!(upgrade_with(&url, &[("origin", &format!("http://{host}"))])
        .await
        .is_ok());
    assert_eq!(
        upgrade_with(&url, &[("origin", "https://evil.example")])
            .await
            .unwrap_err(),
        403
    );
    server.stop().await;

    let server = start(roomcast_server::Config {
        allowed_origins: vec!["https://app.example".into()],
        ..test_config()
    })
    .await;
    let url = format!("{}/game/arena/origin", server.url);
    assert!(upgrade_with(&url, &[("origin", "https://app.example")])
        .await
        .is_ok());
    assert_eq!(
        upgrade_with(&url, &[("origin", "https://evil.example")])
            .await
            .unwrap_err(),
        403
    );
    server.stop().await;
}

#[actix_rt::test]
async fn a_connection_flood_over_the_limits_is_refused_while_members_keep_ticking() {
    let server = start(roomcast_server::Config {
        max_connections: 6,
        max_connections_per_ip: 4,
        max_rooms: 3,
        max_members: vec![("counter".into(), 2)],
        ..test_config()
    })
    .await;
    let mut member = server.join("counter", "steady").await;
    member
        .wait_until(WAIT, |m| m.tick().is_some())
        .await
        .unwrap();
    let first_tick = member.mirror().tick().unwrap();
    // Per address: the fifth connection from 127.0.0.1 is refused (429).
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(server.join("arena", "many").await);
    }
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let refused =
            GameConnection::connect(&server.url, "arena", "many", ConnectOptions::default()).await;
        statuses.push(refused.err().and_then(|e| e.http_status()));
    }
    assert!(statuses.iter().all(|s| *s == Some(429)), "{statuses:?}");
    // The member never missed a tick meanwhile (no resync, no gap) and goes on.
    member
        .wait_until(WAIT, |m| m.tick().is_some_and(|t| t > first_tick + 10))
        .await
        .unwrap();
    drop(held);
    server.stop().await;

    // Rooms and members.
    let server = start(roomcast_server::Config {
        max_rooms: 2,
        max_members: vec![("counter".into(), 2)],
        ..test_config()
    })
    .await;
    let _one = server.join("counter", "one").await;
    let _two = server.join("counter", "two").await;
    let (status, body) = server.http_get("/game/counter/three").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"rooms\""), "{body}");
    let _again = server.join("counter", "one").await;
    let full =
        GameConnection::connect(&server.url, "counter", "one", ConnectOptions::default()).await;
    match full {
        Err(ClientError::Closed(Some(info))) => {
            assert_eq!(info.code, code::TRY_AGAIN_LATER, "{info:?}");
            assert!(info.reason.contains("full"), "{info:?}");
        }
        other => panic!("expected 1013, got {:?}", other.map(|c| c.player_id())),
    }
    server.stop().await;
}

#[actix_rt::test]
async fn message_and_byte_rates_over_the_limit_close_with_1008() {
    let server = start(roomcast_server::Config {
        max_messages_per_sec: 5,
        doc_max_frame_bytes: 4096,
        max_bytes_per_sec: 1000,
        ..test_config()
    })
    .await;
    // Messages: a burst of twice the rate passes, a flood does not.
    let mut pinger = server.join("counter", "rate").await;
    for n in 0..40u64 {
        let ping = ClientMessage::Ping(Ping { client_time_us: n });
        if pinger.send(&ping).await.is_err() {
            break;
        }
    }
    let close = pinger
        .wait_closed(WAIT)
        .await
        .unwrap()
        .expect("close frame");
    assert_eq!(close.code, code::POLICY_VIOLATION);
    assert!(close.reason.contains("message rate"), "{close:?}");
    // Bytes: one largest frame passes, then the bucket is empty.
    let mut doc = server.join_doc("rate").await;
    let big = "x".repeat(1500);
    for _ in 0..4 {
        if doc
            .set_awareness(&serde_json::json!({ "pad": big }))
            .await
            .is_err()
        {
            break;
        }
    }
    let close = doc.wait_closed(WAIT).await.unwrap().expect("close frame");
    assert_eq!(close.code, code::POLICY_VIOLATION);
    assert!(close.reason.contains("byte rate"), "{close:?}");
    let (_, metrics) = server.http_get("/metrics").await;
    assert!(metrics.contains("roomcast_refusals_total{reason=\"message_rate\"}"));
    assert!(metrics.contains("roomcast_refusals_total{reason=\"byte_rate\"}"));
    server.stop().await;
}

#[actix_rt::test]
async fn a_raw_websocket_with_a_token_in_the_query_string_joins() {
    // The stock y-websocket provider passes `params: { token }` as the query.
    let server = start(with_auth()).await;
    let url = format!(
        "{}/doc/raw?token={}",
        server.url,
        token("doc/raw", Role::Write)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    // Sync step 1 with an empty state vector: the server answers (step 1 + 2).
    ws.send(tungstenite::Message::binary(vec![0u8, 0, 1, 0]))
        .await
        .unwrap();
    let first = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
    assert!(
        matches!(first, Some(Ok(tungstenite::Message::Binary(_)))),
        "{first:?}"
    );
    server.stop().await;
}

/// Opens `url` (from 127.0.0.1, like a proxy on this host would), with
/// `X-Forwarded-For: forwarded` when given; the open socket or the refusal
/// status.
async fn open_forwarded(url: &str, forwarded: Option<&str>) -> Result<RawSocket, u16> {
    let headers: Vec<(&'static str, &str)> = forwarded
        .map(|f| ("x-forwarded-for", f))
        .into_iter()
        .collect();
    connect_with(url, &headers).await.map(|(socket, _)| socket)
}

#[actix_rt::test]
async fn behind_a_trusted_proxy_the_per_ip_limit_counts_forwarded_clients() {
    let server = start(roomcast_server::Config {
        max_connections_per_ip: 2,
        trusted_proxies: vec!["127.0.0.1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()],
        ..test_config()
    })
    .await;
    let url = format!("{}/doc/proxied", server.url);
    let mut held = Vec::new();
    // Two connections of client 203.0.113.7, the second through an inner
    // proxy and with a forged address of its own in front.
    held.push(open_forwarded(&url, Some("203.0.113.7")).await.unwrap());
    held.push(
        open_forwarded(&url, Some("198.51.100.1, 203.0.113.7, 10.1.2.3"))
            .await
            .unwrap(),
    );
    let third = open_forwarded(&url, Some("203.0.113.7")).await;
    assert_eq!(third.err(), Some(429), "a third from 203.0.113.7");
    // Another client behind the same proxy is not held back by the first.
    held.push(open_forwarded(&url, Some("203.0.113.8")).await.unwrap());
    // Without the header, connections count as the proxy's own address.
    held.push(open_forwarded(&url, None).await.unwrap());
    held.push(open_forwarded(&url, None).await.unwrap());
    assert_eq!(open_forwarded(&url, None).await.err(), Some(429));
    drop(held);
    server.stop().await;

    // With no trusted proxy the header is ignored: a client cannot dodge the
    // limit by naming other addresses.
    let server = start(roomcast_server::Config {
        max_connections_per_ip: 2,
        ..test_config()
    })
    .await;
    let url = format!("{}/doc/proxied", server.url);
    let _one = open_forwarded(&url, Some("203.0.113.1")).await.unwrap();
    let _two = open_forwarded(&url, Some("203.0.113.2")).await.unwrap();
    let third = open_forwarded(&url, Some("203.0.113.3")).await;
    assert_eq!(third.err(), Some(429), "the header must not count");
    server.stop().await;
}

#[actix_rt::test]
async fn a_game_connection_that_never_joins_is_closed_after_the_join_timeout() {
    let server = start(roomcast_server::Config {
        join_timeout: Duration::from_millis(300),
        ..test_config()
    })
    .await;
    let url = format!("{}/game/counter/lobby", server.url);
    let mut silent = open_forwarded(&url, None).await.unwrap();
    // Never sends Join (but answers pings, as any client library does).
    let close = next_close(&mut silent).await;
    assert_eq!(u16::from(close.code), code::POLICY_VIOLATION, "{close:?}");
    assert!(close.reason.contains("no Join"), "{close:?}");
    let (_, metrics) = server.http_get("/metrics").await;
    assert!(metrics.contains("roomcast_refusals_total{reason=\"join_timeout\"}"));
    server.stop().await;
}

/// Reads `socket` until the server's close frame (within the wait).
async fn next_close(socket: &mut RawSocket) -> tungstenite::protocol::CloseFrame {
    let close = tokio::time::timeout(WAIT, async {
        while let Some(message) = socket.next().await {
            if let Ok(tungstenite::Message::Close(frame)) = message {
                return frame;
            }
        }
        None
    });
    close
        .await
        .expect("closed within the wait")
        .expect("a close frame")
}

#[actix_rt::test]
async fn a_doc_room_over_its_member_limit_closes_further_joins_with_1013() {
    let server = start(roomcast_server::Config {
        doc_max_members: 2,
        ..test_config()
    })
    .await;
    let _one = server.join_doc("crowded").await;
    let _two = server.join_doc("crowded").await;
    let url = format!("{}/doc/crowded", server.url);
    let mut third = open_forwarded(&url, None).await.unwrap();
    let close = next_close(&mut third).await;
    assert_eq!(u16::from(close.code), code::TRY_AGAIN_LATER, "{close:?}");
    assert!(close.reason.contains("full"), "{close:?}");
    // Another doc is not affected.
    let _elsewhere = server.join_doc("quiet").await;
    let (_, metrics) = server.http_get("/metrics").await;
    assert!(metrics.contains("roomcast_refusals_total{reason=\"room_full\"}"));
    server.stop().await;
}
