//! Failure isolation in game rooms: a member that stops reading cannot slow the
//! room down, and a game that panics takes down only its own room. Both use games
//! the test registers itself, the way an embedder would.

use std::time::{Duration, Instant};

use bytes::Bytes;
use roomcast_client::{ConnectOptions, Event, GameConnection};
use roomcast_e2e::{eventually, start_with, test_config};
use roomcast_protocol::close::code;
use roomcast_server::game::{Game, PlayerId};

const WAIT: Duration = Duration::from_secs(20);

/// A game whose one entity is rewritten with `size` fresh bytes every tick, so
/// every delta is big: a reader that stops reading fills its buffers quickly.
struct Blob {
    size: usize,
}

impl Game for Blob {
    type State = u64;
    type Input = u8;
    type Entity = Bytes;

    fn new_state(&self) -> u64 {
        0
    }
    fn player_joined(&self, _: &mut u64, _: PlayerId) {}
    fn player_left(&self, _: &mut u64, _: PlayerId) {}
    fn apply_input(&self, _: &mut u64, _: PlayerId, _: u32, _: u8) {}
    fn tick(&self, state: &mut u64, _dt: f32) {
        *state += 1;
    }
    fn entities(&self, state: &u64, emit: &mut dyn FnMut(u32, &Bytes)) {
        emit(0, &Bytes::from(vec![(*state % 251) as u8; self.size]));
    }
}

/// A game that panics when a player sends 13.
struct Fragile;

impl Game for Fragile {
    type State = u32;
    type Input = u8;
    type Entity = u32;

    fn new_state(&self) -> u32 {
        0
    }
    fn player_joined(&self, _: &mut u32, _: PlayerId) {}
    fn player_left(&self, _: &mut u32, _: PlayerId) {}
    fn apply_input(&self, state: &mut u32, _: PlayerId, _: u32, input: u8) {
        assert_ne!(input, 13, "unlucky input");
        *state += u32::from(input);
    }
    fn tick(&self, _: &mut u32, _: f32) {}
    fn entities(&self, state: &u32, emit: &mut dyn FnMut(u32, &u32)) {
        emit(0, state);
    }
}

/// Reads `conn` for `ticks` deltas, returning the largest gap between two deltas
/// and asserting that every delta applied in order (no skip, no resync).
async fn watch_deltas(conn: &mut GameConnection, ticks: u64) -> Duration {
    let mut last: Option<Instant> = None;
    let mut worst = Duration::ZERO;
    let mut seen = 0;
    while seen < ticks {
        match tokio::time::timeout(WAIT, conn.next_event())
            .await
            .expect("deltas keep coming")
            .unwrap()
        {
            Event::Delta { .. } => {
                let now = Instant::now();
                if let Some(prev) = last {
                    worst = worst.max(now - prev);
                }
                last = Some(now);
                seen += 1;
            }
            Event::Pong(_) | Event::Error(_) => {}
            other => panic!("a healthy member must only get consecutive deltas, got {other:?}"),
        }
    }
    worst
}

#[actix_rt::test]
async fn a_member_that_stops_reading_is_disconnected_without_delaying_the_room() {
    let config = roomcast_server::Config {
        lag_timeout: Duration::from_millis(500),
        outbox_frames: 8,
        ..test_config()
    };
    let server = start_with(config, |s| {
        s.register_game("blob", Blob { size: 48 * 1024 });
    })
    .await;
    let mut healthy = server.join("blob", "slow").await;
    let mut slow = server
        .join_with(
            "blob",
            "slow",
            ConnectOptions {
                recv_buffer: Some(4096),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(
        healthy.next_event().await.unwrap(),
        Event::Snapshot {
            tick: healthy.mirror().tick().unwrap()
        }
    );

    // `slow` reads nothing from here on. The healthy member keeps getting every
    // tick while the server gives up on the slow one.
    let healthy_id = healthy.player_id();
    let watch = watch_deltas(&mut healthy, 30);
    let worst_gap = watch.await;
    let slow_gone = eventually(WAIT, "the slow member is disconnected", || async {
        let info = server.describe("blob", "slow").await?;
        (info.members.len() == 1 && info.members[0].player == healthy_id).then_some(info)
    })
    .await;
    assert!(
        slow_gone.away_players.contains(&slow.player_id()),
        "a dropped member may still resume"
    );
    let worst_after = watch_deltas(&mut healthy, 30).await;
    // Generous bound (the tick period is 33 ms): a room blocked on the slow member
    // would stall for the whole lag timeout and beyond.
    assert!(
        worst_gap.max(worst_after) < Duration::from_millis(400),
        "healthy member saw a {worst_gap:?} gap"
    );

    // Once it reads again, the slow client finds its connection closed with 1008.
    match slow.wait_closed(WAIT).await.unwrap() {
        Some(close) => {
            assert_eq!(close.code, code::POLICY_VIOLATION, "{}", close.reason);
            assert!(close.reason.contains("too slow"), "{}", close.reason);
        }
        None => panic!("the slow member's connection ended without a close frame"),
    }
    server.stop().await;
}

#[actix_rt::test]
async fn a_panicking_game_stops_only_its_room_and_its_arbiter_keeps_ticking_others() {
    // One room thread: both rooms share the same arbiter.
    let config = roomcast_server::Config {
        room_threads: 1,
        ..test_config()
    };
    let server = start_with(config, |s| {
        s.register_game("fragile", Fragile);
    })
    .await;
    let mut doomed = server.join("fragile", "doomed").await;
    let mut survivor = server.join("fragile", "survivor").await;
    survivor
        .wait_until(WAIT, |m| m.tick().is_some())
        .await
        .unwrap();
    let doomed_room = server
        .registry
        .get(&roomcast_e2e::game_key("fragile", "doomed"))
        .unwrap();
    let survivor_room = server
        .registry
        .get(&roomcast_e2e::game_key("fragile", "survivor"))
        .unwrap();
    assert_eq!(
        doomed_room.arbiter, survivor_room.arbiter,
        "both rooms on one arbiter"
    );

    doomed.send_input(1, &2u8).await.unwrap();
    doomed
        .wait_until(WAIT, |m| m.entity::<u32>(0).and_then(Result::ok) == Some(2))
        .await
        .unwrap();
    doomed.send_input(2, &13u8).await.unwrap();
    let close = doomed
        .wait_closed(WAIT)
        .await
        .unwrap()
        .expect("close frame");
    assert_eq!(close.code, code::INTERNAL_ERROR);
    assert!(close.reason.contains("panicked"), "{}", close.reason);

    // The failed room keeps its last good state and refuses new members.
    let info = server
        .describe("fragile", "doomed")
        .await
        .expect("failed room still inspectable");
    assert!(info.failed.is_some());
    let kept = server
        .state_at("fragile", "doomed", info.tick)
        .await
        .unwrap();
    assert_eq!(
        kept.entities.get(&0).map(|b| b.to_vec()),
        Some(roomcast_protocol::codec::encode(&2u32).unwrap())
    );
    match GameConnection::connect(&server.url, "fragile", "doomed", ConnectOptions::default()).await
    {
        Err(roomcast_client::ClientError::Closed(Some(c))) => {
            assert_eq!(c.code, code::INTERNAL_ERROR)
        }
        Err(e) => panic!("expected a 1011 refusal, got {e}"),
        Ok(_) => panic!("a failed room must not admit members"),
    }

    // The other room on the same arbiter keeps ticking and accepting input.
    watch_deltas(&mut survivor, 20).await;
    survivor.send_input(1, &4u8).await.unwrap();
    survivor
        .wait_until(WAIT, |m| m.entity::<u32>(0).and_then(Result::ok) == Some(4))
        .await
        .unwrap();
    server.stop().await;
}
