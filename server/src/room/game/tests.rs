//! The game core driven by hand: members' outboxes and input queues are plain
//! channels, ticks are called with made-up instants. No socket, no actor.

use std::time::{Duration, Instant};

use actix_ws::{CloseCode, CloseReason};
use bytes::Bytes;
use roomcast_protocol::{
    close,
    games::arena::{ArenaInput, ArenaPlayer},
    state::Mirror,
    Resume, ServerMessage,
};
use tokio::sync::oneshot;

use super::GameCore;
use crate::game::{Game, GameCatalog, PlayerId};
use crate::metrics::RoomMetrics;
use crate::room::inputs::{input_queue, InputSender, QueuedInput};
use crate::room::member::{outbox, Latency, OutboxReceiver};
use crate::room::messages::{Departure, JoinGame, JoinRefused};
use crate::room::registry::{RoomKey, RoomSettings};
use crate::room::RoomName;

/// A room of `game` from `catalog`, with short graces.
fn room_of(catalog: &GameCatalog, game: &str) -> GameCore {
    let entry = catalog.get(game).expect("a registered game").clone();
    let key = RoomKey::Game {
        game: game.to_owned(),
        room: RoomName::parse("test").expect("a valid name"),
    };
    let settings = RoomSettings {
        idle_timeout: Duration::from_secs(30),
        lag_timeout: Duration::from_secs(5),
        history_ticks: 8,
    };
    GameCore::new(
        key,
        entry,
        settings,
        tracing::Span::none(),
        RoomMetrics::new("game"),
    )
}

fn arena() -> GameCore {
    let mut catalog = GameCatalog::with_builtin_games();
    catalog.configure("arena", |s| {
        s.max_members = 3;
        s.resume_grace = Duration::from_secs(1);
    });
    room_of(&catalog, "arena")
}

/// One member's end of its channels.
struct Client {
    frames: OutboxReceiver,
    inputs: InputSender,
    kicked: oneshot::Receiver<CloseReason>,
    mirror: Mirror,
}

impl Client {
    /// Every frame queued so far, decoded.
    fn received(&mut self) -> Vec<ServerMessage> {
        let mut out = Vec::new();
        while let Ok(frame) = self.frames.try_recv() {
            let message = ServerMessage::decode(&frame).expect("a server frame decodes");
            match &message {
                ServerMessage::Snapshot(s) => self.mirror.apply_snapshot(s),
                ServerMessage::Delta(d) => {
                    self.mirror.apply_delta(d).expect("deltas apply in order")
                }
                _ => {}
            }
            out.push(message);
        }
        out
    }

    /// The arena player `player` as this client's mirror has it.
    fn player(&self, player: PlayerId) -> Option<ArenaPlayer> {
        let data = self.mirror.entities().get(&player)?;
        roomcast_protocol::codec::decode(data).ok()
    }

    fn input(&self, seq: u32, dx: i8, dy: i8) {
        let payload = roomcast_protocol::codec::encode(&ArenaInput { dx, dy }).unwrap();
        self.inputs
            .try_send(QueuedInput {
                seq,
                payload: Bytes::from(payload),
            })
            .expect("room for the input");
    }
}

/// Joins `conn` (a player unless `spectator`), resuming with `resume`.
fn join(
    room: &mut GameCore,
    conn: u64,
    resume: Option<Resume>,
    spectator: bool,
) -> (Result<crate::room::messages::Joined, JoinRefused>, Client) {
    let (tx, frames) = outbox(16);
    let (inputs, input_rx) = input_queue();
    let (kick, kicked) = oneshot::channel();
    let joined = room.join(
        JoinGame {
            conn,
            resume,
            outbox: tx,
            inputs: input_rx,
            kick,
            latency: Latency::default(),
            spectator,
            user: None,
        },
        false,
    );
    let client = Client {
        frames,
        inputs,
        kicked,
        mirror: Mirror::default(),
    };
    (joined, client)
}

/// Runs one tick on time at `at`.
fn tick(room: &mut GameCore, at: Instant) {
    assert!(room.on_tick(at, at).is_none());
}

#[test]
fn a_joiner_gets_welcome_and_snapshot_then_a_delta_per_tick_with_its_inputs_applied() {
    let mut room = arena();
    let (joined, mut a) = join(&mut room, 1, None, false);
    let player = joined.expect("joined").player;
    let first = a.received();
    assert!(matches!(&first[0], ServerMessage::Welcome(w) if w.player_id == player && !w.resumed));
    assert!(matches!(&first[1], ServerMessage::Snapshot(_)));
    a.input(1, 1, 0);
    a.input(2, 1, 0);
    let now = Instant::now();
    tick(&mut room, now);
    let frames = a.received();
    assert_eq!(frames.len(), 1);
    assert!(matches!(&frames[0], ServerMessage::Delta(d) if d.tick == 1 && d.base_tick == 0));
    let me = a.player(player).expect("its own entity");
    assert_eq!(me.last_input, 2, "both inputs applied, in order");
    assert!(me.vx > 0.0);
    // Another tick: it moved.
    let period = room.period();
    tick(&mut room, now + period);
    a.received();
    assert!(a.player(player).unwrap().x > me.x);
}

#[test]
fn a_dropped_player_resumes_with_its_token_and_gets_a_delta_from_its_last_tick() {
    let mut room = arena();
    let (joined, mut a) = join(&mut room, 1, None, false);
    let player = joined.unwrap().player;
    let token = match &a.received()[0] {
        ServerMessage::Welcome(w) => w.resume_token,
        other => panic!("{other:?}"),
    };
    let now = Instant::now();
    tick(&mut room, now);
    a.received();
    let last_tick = a.mirror.tick().expect("a mirror at a tick");
    room.member_gone(player, 1, Departure::Disconnected);
    assert!(room.occupied(), "within its grace the player still counts");
    let period = room.period();
    tick(&mut room, now + period);
    let (joined, mut b) = join(&mut room, 2, Some(Resume { token, last_tick }), false);
    assert_eq!(joined.unwrap().player, player);
    // The client keeps its mirror across the reconnect.
    b.mirror = std::mem::take(&mut a.mirror);
    let frames = b.received();
    assert!(matches!(&frames[0], ServerMessage::Welcome(w) if w.resumed));
    assert!(
        matches!(&frames[1], ServerMessage::Delta(d) if d.base_tick == last_tick),
        "a delta from the client's own tick: {:?}",
        frames[1]
    );
    // An unknown token joins anew and says so.
    let (joined, mut c) = join(
        &mut room,
        3,
        Some(Resume {
            token: roomcast_protocol::ResumeToken([7; 16]),
            last_tick: 0,
        }),
        false,
    );
    assert_ne!(joined.unwrap().player, player);
    let frames = c.received();
    assert!(frames
        .iter()
        .any(|m| matches!(m, ServerMessage::Error(e) if e.code == close::error::RESUME_REJECTED)));
}

#[test]
fn the_member_limit_refuses_further_joins_and_spectators_see_everything_without_an_entity() {
    let mut room = arena();
    let (_, _a) = join(&mut room, 1, None, false);
    let (spectator, mut s) = join(&mut room, 2, None, true);
    assert_eq!(spectator.unwrap().player, super::SPECTATOR_PLAYER_ID);
    let (_, _b) = join(&mut room, 3, None, false);
    let (full, _) = join(&mut room, 4, None, false);
    assert!(matches!(full, Err(JoinRefused::Full(3))));
    tick(&mut room, Instant::now());
    let frames = s.received();
    assert!(matches!(&frames[0], ServerMessage::Welcome(w) if w.player_id == 0));
    assert_eq!(
        s.mirror.entities().len(),
        2,
        "the two players, no spectator entity"
    );
}

#[test]
fn a_player_away_past_its_grace_is_removed() {
    let mut room = arena();
    let (joined, _a) = join(&mut room, 1, None, false);
    let player = joined.unwrap().player;
    let (_, mut b) = join(&mut room, 2, None, false);
    let now = Instant::now();
    room.member_gone(player, 1, Departure::Disconnected);
    tick(&mut room, now);
    b.received();
    assert!(b.player(player).is_some(), "its entity waits for it");
    // The tick after the grace removes it; the next one publishes that.
    tick(&mut room, now + Duration::from_millis(1100));
    tick(&mut room, now + Duration::from_millis(1200));
    b.received();
    assert!(b.player(player).is_none(), "gone after the grace");
}

/// A game whose tick panics once asked to (a player joining with id 2).
struct Fragile;

impl Game for Fragile {
    type State = Vec<PlayerId>;
    type Input = ();
    type Entity = u32;

    fn new_state(&self) -> Self::State {
        Vec::new()
    }
    fn player_joined(&self, state: &mut Self::State, player: PlayerId) {
        state.push(player);
    }
    fn player_left(&self, state: &mut Self::State, player: PlayerId) {
        state.retain(|p| *p != player);
    }
    fn apply_input(&self, _: &mut Self::State, _: PlayerId, _: u32, _: ()) {}
    fn tick(&self, state: &mut Self::State, _dt: f32) {
        assert!(!state.contains(&2), "the game's own bug");
    }
    fn entities(&self, state: &Self::State, emit: &mut dyn FnMut(u32, &u32)) {
        for p in state {
            emit(*p, p);
        }
    }
}

#[test]
fn a_panic_in_game_code_fails_only_the_room_and_closes_its_members_with_1011() {
    let mut catalog = GameCatalog::default();
    catalog.register("fragile", Fragile);
    let mut room = room_of(&catalog, "fragile");
    let (_, mut a) = join(&mut room, 1, None, false);
    let now = Instant::now();
    tick(&mut room, now);
    assert!(room.failure().is_none());
    let (_, _b) = join(&mut room, 2, None, false);
    let period = room.period();
    tick(&mut room, now + period);
    let reason = room.failure().expect("failed").to_owned();
    assert!(reason.contains("the game's own bug"), "{reason}");
    let kicked = a.kicked.try_recv().expect("closed");
    assert_eq!(kicked.code, CloseCode::Error);
    let (refused, _) = join(&mut room, 3, None, false);
    assert!(matches!(refused, Err(JoinRefused::Failed(_))));
}
