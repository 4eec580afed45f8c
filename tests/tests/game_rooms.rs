//! Game rooms end to end: a real server on an ephemeral port, real WebSocket
//! clients decoding every frame.

use std::time::Duration;

use roomcast_client::{ConnectOptions, Event, GameConnection};
use roomcast_e2e::{eventually, start, test_config, TestServer};
use roomcast_protocol::games::{
    arena::{ArenaInput, ArenaPlayer},
    counter::{CounterInput, CounterScore, TOTAL_ENTITY},
};
use roomcast_protocol::{close::code, ClientMessage};
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(10);

/// Eight compass directions and standing still.
const DIRECTIONS: [(i8, i8); 8] = [
    (1, 0),
    (-1, 0),
    (0, 1),
    (0, -1),
    (1, 1),
    (-1, -1),
    (1, -1),
    (-1, 1),
];

fn own(conn: &GameConnection) -> Option<ArenaPlayer> {
    conn.mirror()
        .entity::<ArenaPlayer>(conn.player_id())
        .map(|r| r.expect("arena entity decodes"))
}

/// Reads until the client's own entity acknowledges `seq`.
async fn wait_acked(conn: &mut GameConnection, seq: u32) {
    let id = conn.player_id();
    conn.wait_until(WAIT, |m| {
        m.entity::<ArenaPlayer>(id)
            .and_then(Result::ok)
            .is_some_and(|p| p.last_input >= seq)
    })
    .await
    .unwrap_or_else(|e| panic!("player {id} never saw input {seq} acknowledged: {e}"));
}

/// Asserts the client's mirror equals the server's published state at the same tick.
async fn assert_mirror_matches_server(
    server: &TestServer,
    game: &str,
    room: &str,
    conn: &GameConnection,
) {
    let tick = conn.mirror().tick().expect("mirror has a tick");
    let state = server
        .state_at(game, room, tick)
        .await
        .unwrap_or_else(|| panic!("server no longer holds tick {tick}"));
    assert_eq!(state.tick, tick);
    assert_eq!(
        conn.mirror().entities(),
        &*state.entities,
        "player {} mirror at tick {tick}",
        conn.player_id()
    );
}

/// Reads events until the mirror's tick has advanced by `ticks`.
async fn advance(conn: &mut GameConnection, ticks: u64) {
    let start = conn.mirror().tick().unwrap_or(0);
    conn.wait_until(WAIT, |m| m.tick().unwrap_or(0) >= start + ticks)
        .await
        .unwrap_or_else(|e| panic!("player {} stopped receiving ticks: {e}", conn.player_id()));
}

#[actix_rt::test]
async fn eight_players_moving_converge_exactly_on_the_server_state() {
    let server = start(test_config()).await;
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(server.join("arena", "converge").await);
    }
    let mut starts = Vec::new();
    for c in clients.iter_mut() {
        let id = c.player_id();
        c.wait_until(WAIT, |m| m.entities().contains_key(&id))
            .await
            .unwrap();
        starts.push(own(c).unwrap());
    }
    // Everyone moves in its own direction for 10 inputs, then stops.
    for seq in 1..=10u32 {
        for (i, c) in clients.iter_mut().enumerate() {
            let (dx, dy) = DIRECTIONS[i];
            c.send_input(seq, &ArenaInput { dx, dy }).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(33)).await;
    }
    for c in clients.iter_mut() {
        c.send_input(11, &ArenaInput { dx: 0, dy: 0 })
            .await
            .unwrap();
    }
    for c in clients.iter_mut() {
        wait_acked(c, 11).await;
    }
    // Once stopped, a few more ticks change nothing; every mirror equals the server.
    for c in clients.iter_mut() {
        advance(c, 3).await;
    }
    for c in &clients {
        assert_mirror_matches_server(&server, "arena", "converge", c).await;
        assert_eq!(c.mirror().entities().len(), 8);
        let me = own(c).unwrap();
        assert_eq!((me.vx, me.vy, me.last_input), (0.0, 0.0, 11));
    }
    // Each player really moved in its own direction.
    for (i, c) in clients.iter().enumerate() {
        let (dx, dy) = DIRECTIONS[i];
        let (end, start) = (own(c).unwrap(), starts[i]);
        let moved = |d: f32, dir: i8| {
            if dir == 0 {
                d == 0.0
            } else {
                d.signum() == f32::from(dir)
            }
        };
        assert!(
            moved(end.x - start.x, dx) && moved(end.y - start.y, dy),
            "player {i} moved {dx},{dy}"
        );
    }
    server.stop().await;
}

#[actix_rt::test]
async fn late_joiner_gets_the_full_state_and_a_leaver_disappears_everywhere() {
    let server = start(test_config()).await;
    let mut early = vec![
        server.join("arena", "late").await,
        server.join("arena", "late").await,
    ];
    for (i, c) in early.iter_mut().enumerate() {
        let (dx, dy) = DIRECTIONS[i];
        c.send_input(1, &ArenaInput { dx, dy }).await.unwrap();
    }
    for c in early.iter_mut() {
        wait_acked(c, 1).await;
    }
    let mut late = server.join("arena", "late").await;
    match late.next_event().await.unwrap() {
        Event::Snapshot { .. } => {}
        other => panic!("a joiner's first state must be a snapshot, got {other:?}"),
    }
    // The snapshot holds the early players (the joiner itself appears at the next tick).
    for c in &early {
        assert!(late.mirror().entities().contains_key(&c.player_id()));
    }
    advance(&mut late, 2).await;
    assert!(late.mirror().entities().contains_key(&late.player_id()));
    assert_mirror_matches_server(&server, "arena", "late", &late).await;

    // The first early player leaves: it vanishes from every mirror.
    let leaver = early.remove(0);
    let gone = leaver.player_id();
    let mut leaver = leaver;
    leaver.leave().await.unwrap();
    let close = leaver
        .wait_closed(WAIT)
        .await
        .unwrap()
        .expect("close frame");
    assert_eq!(close.code, code::NORMAL);
    for c in early.iter_mut().chain(std::iter::once(&mut late)) {
        c.wait_until(WAIT, |m| !m.entities().contains_key(&gone))
            .await
            .unwrap();
    }
    for c in early.iter_mut().chain(std::iter::once(&mut late)) {
        advance(c, 1).await;
        assert_mirror_matches_server(&server, "arena", "late", c).await;
    }
    server.stop().await;
}

#[actix_rt::test]
async fn bad_frames_close_only_their_own_connection() {
    let server = start(test_config()).await;
    let mut observer = server.join("arena", "bad").await;
    let oversized = vec![0u8; 70 * 1024];
    let bad_arena_input = ClientMessage::Input(roomcast_protocol::Input {
        seq: 1,
        payload: roomcast_protocol::codec::encode(&ArenaInput { dx: 5, dy: 0 })
            .unwrap()
            .into(),
    });
    let cases: Vec<(&str, Message, u16)> = vec![
        (
            "undecodable binary",
            Message::binary(vec![0xff, 0xff, 0xff]),
            code::INVALID_PAYLOAD,
        ),
        (
            "trailing bytes",
            Message::binary([ClientMessage::Resync.encode(), vec![0]].concat()),
            code::INVALID_PAYLOAD,
        ),
        ("text frame", Message::text("hello"), code::UNSUPPORTED_DATA),
        (
            "oversized frame",
            Message::binary(oversized),
            code::MESSAGE_TOO_BIG,
        ),
        (
            "input the game refuses",
            Message::binary(bad_arena_input.encode()),
            code::INVALID_PAYLOAD,
        ),
    ];
    for (what, frame, expected) in cases {
        let mut bad = server.join("arena", "bad").await;
        bad.send_raw(frame).await.unwrap();
        let close = bad
            .wait_closed(WAIT)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{what}: no close frame"));
        assert_eq!(close.code, expected, "{what}: {}", close.reason);
        assert!(
            !close.reason.is_empty(),
            "{what}: the close carries a reason"
        );
        // The room and its other member carry on.
        advance(&mut observer, 3).await;
    }
    let info = server.describe("arena", "bad").await.unwrap();
    assert_eq!(info.members.len(), 1);
    assert!(info.failed.is_none());
    server.stop().await;
}

#[actix_rt::test]
async fn unknown_game_is_404_and_bad_room_name_is_400_before_the_upgrade() {
    let server = start(test_config()).await;
    let status = |r: Result<GameConnection, roomcast_client::ClientError>| match r {
        Err(e) => e
            .http_status()
            .unwrap_or_else(|| panic!("expected an HTTP refusal, got {e}")),
        Ok(_) => panic!("expected an HTTP refusal, got a connection"),
    };
    let opts = ConnectOptions::default;
    assert_eq!(
        status(GameConnection::connect(&server.url, "chess", "a", opts()).await),
        404
    );
    assert_eq!(
        status(GameConnection::connect(&server.url, "arena", "bad%20name", opts()).await),
        400
    );
    let long = "a".repeat(129);
    assert_eq!(
        status(GameConnection::connect(&server.url, "arena", &long, opts()).await),
        400
    );
    server.stop().await;
}

#[actix_rt::test]
async fn first_message_must_be_a_join_of_our_protocol() {
    let server = start(test_config()).await;
    let url = format!("{}/game/arena/handshake", server.url);
    let mut ws = roomcast_client::game::open_socket(&url, None)
        .await
        .unwrap();
    use futures_util::{SinkExt, StreamExt};
    ws.send(Message::binary(ClientMessage::Resync.encode()))
        .await
        .unwrap();
    let mut code_seen = None;
    while let Some(Ok(m)) = ws.next().await {
        if let Message::Close(Some(frame)) = m {
            code_seen = Some(u16::from(frame.code));
            break;
        }
    }
    assert_eq!(code_seen, Some(code::POLICY_VIOLATION));
    server.stop().await;
}

#[actix_rt::test]
async fn rooms_are_isolated_and_an_empty_room_is_stopped_after_the_idle_timeout() {
    let config = roomcast_server::Config {
        idle_timeout: Duration::from_millis(300),
        ..test_config()
    };
    let server = start(config).await;
    let mut a = server.join("counter", "iso-a").await;
    let mut b = server.join("counter", "iso-b").await;
    a.send_input(1, &CounterInput { add: 5 }).await.unwrap();
    let total =
        |m: &roomcast_client::Mirror| m.entity::<CounterScore>(TOTAL_ENTITY).and_then(Result::ok);
    a.wait_until(WAIT, |m| total(m).is_some_and(|t| t.score == 5))
        .await
        .unwrap();
    advance(&mut b, 3).await;
    assert_eq!(
        total(b.mirror()).unwrap().score,
        0,
        "room b is untouched by room a's input"
    );
    assert_eq!(
        b.mirror().entities().len(),
        2,
        "room b holds only its total and its own player"
    );

    // Room a empties (Leave: no resume grace) and is stopped; b stays.
    a.leave().await.unwrap();
    a.wait_closed(WAIT).await.unwrap();
    eventually(WAIT, "idle room a stopped", || async {
        server
            .registry
            .get(&roomcast_e2e::game_key("counter", "iso-a"))
            .is_none()
            .then_some(())
    })
    .await;
    assert!(server
        .registry
        .get(&roomcast_e2e::game_key("counter", "iso-b"))
        .is_some());
    advance(&mut b, 3).await;
    server.stop().await;
}

#[actix_rt::test]
async fn a_player_that_reconnects_with_its_token_keeps_its_id_and_position() {
    let server = start(test_config()).await;
    let mut observer = server.join("arena", "resume").await;
    let mut player = server.join("arena", "resume").await;
    let id = player.player_id();
    player
        .send_input(1, &ArenaInput { dx: 1, dy: 1 })
        .await
        .unwrap();
    for _ in 0..5 {
        advance(&mut player, 1).await;
    }
    player
        .send_input(2, &ArenaInput { dx: 0, dy: 0 })
        .await
        .unwrap();
    wait_acked(&mut player, 2).await;
    let before = own(&player).unwrap();
    let options = player.resume_options();
    player.drop_abruptly();

    // The entity stays while the player is away.
    advance(&mut observer, 5).await;
    let seen = observer
        .mirror()
        .entity::<ArenaPlayer>(id)
        .unwrap()
        .unwrap();
    assert_eq!((seen.x, seen.y), (before.x, before.y));

    let mut back = server.join_with("arena", "resume", options).await;
    assert!(back.welcome().resumed);
    assert_eq!(back.player_id(), id);
    // The room still holds the client's last tick: it resumes with a delta.
    match back.next_event().await.unwrap() {
        Event::Delta { .. } => {}
        other => panic!("expected a resume delta, got {other:?}"),
    }
    let after = own(&back).unwrap();
    assert_eq!(
        (after.x, after.y, after.last_input),
        (before.x, before.y, 2)
    );
    advance(&mut back, 2).await;
    assert_mirror_matches_server(&server, "arena", "resume", &back).await;
    // And it can move again.
    back.send_input(3, &ArenaInput { dx: -1, dy: 0 })
        .await
        .unwrap();
    wait_acked(&mut back, 3).await;
    server.stop().await;
}

#[actix_rt::test]
async fn a_resume_after_the_grace_period_is_a_new_player_and_the_old_one_is_gone() {
    let config = roomcast_server::Config {
        resume_graces: vec![("counter".into(), Duration::from_millis(200))],
        ..test_config()
    };
    let server = start(config).await;
    let mut observer = server.join("counter", "grace").await;
    let player = server.join("counter", "grace").await;
    let id = player.player_id();
    observer
        .wait_until(WAIT, |m| m.entities().contains_key(&id))
        .await
        .unwrap();
    let options = player.resume_options();
    player.drop_abruptly();
    observer
        .wait_until(WAIT, |m| !m.entities().contains_key(&id))
        .await
        .unwrap();
    let back = server.join_with("counter", "grace", options).await;
    assert!(!back.welcome().resumed);
    assert_ne!(back.player_id(), id);
    server.stop().await;
}

#[actix_rt::test]
async fn graceful_shutdown_closes_members_with_1001() {
    let server = start(test_config()).await;
    let mut a = server.join("arena", "bye").await;
    let mut b = server.join("counter", "bye").await;
    advance(&mut a, 1).await;
    advance(&mut b, 1).await;
    server.shutdown.cancel();
    for c in [&mut a, &mut b] {
        let close = c.wait_closed(WAIT).await.unwrap().expect("close frame");
        assert_eq!(close.code, code::GOING_AWAY);
    }
    server.stop().await;
}

#[actix_rt::test]
async fn ping_is_answered_with_the_room_tick() {
    let server = start(test_config()).await;
    let mut c = server.join("arena", "ping").await;
    advance(&mut c, 2).await;
    c.ping(12345).await.unwrap();
    let pong = loop {
        if let Event::Pong(p) = c.next_event().await.unwrap() {
            break p;
        }
    };
    assert_eq!(pong.client_time_us, 12345);
    assert!(pong.server_tick >= 2);
    server.stop().await;
}

#[actix_rt::test]
async fn a_client_that_never_answers_pings_is_closed_after_the_heartbeat_timeout() {
    let config = roomcast_server::Config {
        heartbeat_interval: Duration::from_millis(100),
        heartbeat_timeout: Duration::from_millis(400),
        ..test_config()
    };
    let server = start(config).await;
    let mut silent = server.join("counter", "heartbeat").await;
    // Not reading means not answering pings (tungstenite pongs only while read).
    tokio::time::sleep(Duration::from_millis(800)).await;
    let close = silent
        .wait_closed(WAIT)
        .await
        .unwrap()
        .expect("close frame");
    assert_eq!(close.code, code::POLICY_VIOLATION);
    assert!(close.reason.contains("heartbeat"), "{}", close.reason);
    let (_, metrics) = server.http_get("/metrics").await;
    assert!(
        metrics.contains("roomcast_refusals_total{reason=\"heartbeat_timeout\"}"),
        "counted in /metrics"
    );
    server.stop().await;
}

#[actix_rt::test]
async fn an_input_flood_between_two_ticks_closes_that_connection_with_1008() {
    let server = start(test_config()).await;
    let mut observer = server.join("counter", "flood").await;
    let mut flooder = server.join("counter", "flood").await;
    // counter ticks at 10 Hz: 200 inputs sent at once cannot all fit one tick's queue.
    for seq in 1..=200u32 {
        if flooder
            .send_input(seq, &CounterInput { add: 1 })
            .await
            .is_err()
        {
            break;
        }
    }
    let close = flooder
        .wait_closed(WAIT)
        .await
        .unwrap()
        .expect("close frame");
    assert_eq!(close.code, code::POLICY_VIOLATION);
    assert!(
        close.reason.contains("inputs between two ticks"),
        "{}",
        close.reason
    );
    advance(&mut observer, 3).await;
    server.stop().await;
}

#[actix_rt::test]
async fn leave_and_close_ends_cleanly_when_the_server_closes_first() {
    let server = start(test_config()).await;
    let leaver = server.join("arena", "bye").await;
    let mut stayer = server.join("arena", "bye").await;
    let gone = leaver.player_id();
    // The server answers Leave with its close: that completes the handshake.
    leaver.leave_and_close().await.expect("a clean leave");
    stayer
        .wait_until(WAIT, |m| !m.entities().contains_key(&gone))
        .await
        .unwrap();
    server.stop().await;
}
