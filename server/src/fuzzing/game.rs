//! Game room instances under arbitrary operation sequences.

use std::collections::BTreeMap;

use roomcast_protocol::games::arena::{ArenaPlayer, SPEED, WORLD_SIZE};
use roomcast_protocol::games::counter::{CounterScore, TOTAL_ENTITY};
use roomcast_protocol::state::{diff, snapshot, EntityTable, Mirror};
use roomcast_protocol::{codec, ServerMessage};

use super::Ops;
use crate::game::{GameCatalog, GameEntry, GameInstance, PlayerId, TICK_RATE_RANGE};

/// Whether a player's connection is up (it may send inputs) or it waits to resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presence {
    Connected,
    Away,
}

/// Runs the operations `data` encodes on a fresh room instance of every
/// built-in game, the way the room and the sessions call the game: players
/// join with increasing ids, leave, disconnect and resume; connected players
/// send inputs (checked by the session's checker first: a refused input closes
/// its connection); the room steps, publishes and snapshots.
///
/// Checked: nothing panics; the session's check and the room's queueing agree;
/// publishing is deterministic and lists exactly the present players (plus the
/// game's own entities); a delta from the previous table brings a client mirror
/// to the new one; a snapshot restores to the same table; arbitrary snapshot
/// bytes either are refused or restore a state that publishes and round-trips.
pub fn game_input(data: &[u8]) {
    let catalog = GameCatalog::with_builtin_games();
    for name in catalog.names() {
        let entry = catalog.get(&name).expect("listed games exist");
        Room::new(&name, entry).run(Ops::new(data));
    }
}

/// One room instance and the model of its players.
struct Room<'a> {
    /// Game name, for messages and game-specific checks.
    name: &'a str,
    /// The catalog entry: factory and the session's input checker.
    entry: &'a GameEntry,
    /// The room's game.
    game: Box<dyn GameInstance>,
    /// Present players.
    players: BTreeMap<PlayerId, Presence>,
    /// Next player id (the room hands them out from 1).
    next_player: PlayerId,
    /// The table last published, and its tick.
    published: EntityTable,
    /// Ticks so far.
    tick: u64,
    /// Inputs accepted by the sessions since the last tick (each member's input
    /// queue), in arrival order; a member that goes away drops its own.
    pending: Vec<(PlayerId, u32, Vec<u8>)>,
    /// A snapshot taken earlier (state and the players it knows), to restore.
    saved: Option<(Vec<u8>, Vec<PlayerId>)>,
}

impl<'a> Room<'a> {
    fn new(name: &'a str, entry: &'a GameEntry) -> Self {
        let game = entry.instantiate();
        let published = game.publish();
        Self {
            name,
            entry,
            game,
            players: BTreeMap::new(),
            next_player: 1,
            published,
            tick: 0,
            pending: Vec::new(),
            saved: None,
        }
    }

    /// The `pick`-th present player (modulo), if any, with the given presence.
    fn pick(&self, pick: u8, presence: Option<Presence>) -> Option<PlayerId> {
        let ids: Vec<PlayerId> = self
            .players
            .iter()
            .filter(|(_, p)| presence.is_none_or(|want| **p == want))
            .map(|(id, _)| *id)
            .collect();
        (!ids.is_empty()).then(|| ids[usize::from(pick) % ids.len()])
    }

    fn run(mut self, mut ops: Ops<'_>) {
        while let Some(op) = ops.byte() {
            match op % 10 {
                0 => {
                    let id = self.next_player;
                    self.next_player += 1;
                    self.game.player_joined(id);
                    self.players.insert(id, Presence::Connected);
                }
                1 => {
                    if let Some(id) = self.pick(ops.u8(), None) {
                        self.pending.retain(|(p, _, _)| *p != id);
                        self.game.player_left(id);
                        self.players.remove(&id);
                    }
                }
                2 => {
                    if let Some(id) = self.pick(ops.u8(), Some(Presence::Connected)) {
                        self.disconnect(id);
                    }
                }
                3 => {
                    if let Some(id) = self.pick(ops.u8(), Some(Presence::Away)) {
                        self.game.player_resumed(id);
                        self.players.insert(id, Presence::Connected);
                    }
                }
                4 => {
                    let who = ops.u8();
                    let seq = ops.u32();
                    let payload = ops.chunk();
                    if let Some(id) = self.pick(who, Some(Presence::Connected)) {
                        self.input(id, seq, payload);
                    }
                }
                5 => {
                    let span = TICK_RATE_RANGE.end() - TICK_RATE_RANGE.start() + 1;
                    let hz = TICK_RATE_RANGE.start() + u16::from(ops.u8()) % span;
                    self.tick_once(1.0 / f32::from(hz));
                }
                6 => self.publish_and_check(),
                7 => self.snapshot_round_trip(),
                8 => self.restore_saved(),
                _ => self.restore_arbitrary(ops.chunk()),
            }
        }
        self.publish_and_check();
        self.snapshot_round_trip();
    }

    fn disconnect(&mut self, id: PlayerId) {
        self.pending.retain(|(p, _, _)| *p != id);
        self.game.player_disconnected(id);
        self.players.insert(id, Presence::Away);
    }

    /// An input as the session handles it: checked, then queued for the room.
    fn input(&mut self, id: PlayerId, seq: u32, payload: &[u8]) {
        match self.entry.check_input(payload) {
            Ok(()) => self.pending.push((id, seq, payload.to_vec())),
            // The session closes the connection (1007): the player is away.
            Err(_) => self.disconnect(id),
        }
    }

    /// A room tick: the inputs the sessions accepted are queued (which must
    /// not refuse any), the game steps, the table is published.
    fn tick_once(&mut self, dt: f32) {
        for (id, seq, payload) in std::mem::take(&mut self.pending) {
            if let Err(e) = self.game.queue_input(id, seq, &payload) {
                panic!(
                    "{}: the session accepted an input the room refuses: {e}",
                    self.name
                );
            }
        }
        self.game.step(dt);
        self.publish_and_check();
    }

    /// Publishes, checks the table, and checks that the generic delta from the
    /// previous table brings a client mirror to this one.
    fn publish_and_check(&mut self) {
        let table = self.game.publish();
        assert_eq!(
            table,
            self.game.publish(),
            "{}: publish is deterministic",
            self.name
        );
        self.check_table(&table);
        let state = self.game.state_json();
        assert!(
            state.get("error").is_none(),
            "{}: state is not JSON: {state}",
            self.name
        );

        let mut mirror = Mirror::new();
        mirror.apply_snapshot(&snapshot(&self.published, self.tick));
        let delta = diff(&self.published, &table, self.tick, self.tick + 1);
        let frame = ServerMessage::Delta(delta.clone()).encode();
        assert_eq!(
            ServerMessage::decode(&frame).expect("a delta decodes"),
            ServerMessage::Delta(delta.clone())
        );
        mirror
            .apply_delta(&delta)
            .expect("a delta applies to its base");
        assert_eq!(
            mirror.entities(),
            &table,
            "{}: the mirror follows",
            self.name
        );
        self.tick += 1;
        self.published = table;
    }

    /// The built-in games' own rules about what they publish.
    fn check_table(&self, table: &EntityTable) {
        let players: Vec<u32> = self.players.keys().copied().collect();
        match self.name {
            "arena" => {
                assert_eq!(table.keys().copied().collect::<Vec<_>>(), players);
                for (id, bytes) in table {
                    let p: ArenaPlayer = codec::decode(bytes).expect("arena entity decodes");
                    let on_board = |v: f32| (0.0..=WORLD_SIZE).contains(&v);
                    let speed = |v: f32| [-SPEED, 0.0, SPEED].contains(&v);
                    assert!(on_board(p.x) && on_board(p.y), "arena {id}: {p:?}");
                    assert!(speed(p.vx) && speed(p.vy), "arena {id}: {p:?}");
                    if self.players[id] == Presence::Away {
                        assert_eq!((p.vx, p.vy), (0.0, 0.0), "arena {id} is away: {p:?}");
                    }
                }
            }
            "counter" => {
                let mut expected = vec![TOTAL_ENTITY];
                expected.extend(&players);
                assert_eq!(table.keys().copied().collect::<Vec<_>>(), expected);
                for bytes in table.values() {
                    codec::decode::<CounterScore>(bytes).expect("counter entity decodes");
                }
            }
            _ => {}
        }
    }

    /// Snapshot → a fresh instance → the same table and the same bytes; the room
    /// goes on with the restored instance, and the snapshot is kept for
    /// [`Room::restore_saved`].
    fn snapshot_round_trip(&mut self) {
        let bytes = self.game.encode_state().expect("game state encodes");
        let mut restored = self.entry.instantiate();
        restored
            .restore_state(&bytes)
            .expect("a snapshot of the game restores");
        assert_eq!(
            restored.publish(),
            self.game.publish(),
            "{}: restored table",
            self.name
        );
        assert_eq!(restored.encode_state().expect("encodes"), bytes);
        self.game = restored;
        self.saved = Some((bytes, self.players.keys().copied().collect()));
    }

    /// Restores the snapshot saved by the last [`Room::snapshot_round_trip`]
    /// as the room applies a restore: present players the snapshot does not
    /// know join it afresh, players it knows who are gone leave it, players
    /// away now are disconnected in it.
    fn restore_saved(&mut self) {
        let Some((bytes, known)) = self.saved.clone() else {
            return;
        };
        let mut game = self.entry.instantiate();
        game.restore_state(&bytes)
            .expect("a saved snapshot restores");
        self.game = game;
        for id in self.players.keys() {
            if !known.contains(id) {
                self.game.player_joined(*id);
            }
        }
        for id in known {
            if !self.players.contains_key(&id) {
                self.game.player_left(id);
            }
        }
        for (id, presence) in &self.players {
            if *presence == Presence::Away {
                self.game.player_disconnected(*id);
            }
        }
        self.publish_and_check();
    }

    /// Arbitrary snapshot bytes on a scratch instance: refused, or a state that
    /// publishes, steps and round-trips.
    fn restore_arbitrary(&self, bytes: &[u8]) {
        let mut scratch = self.entry.instantiate();
        if scratch.restore_state(bytes).is_err() {
            return;
        }
        let table = scratch.publish();
        let encoded = scratch.encode_state().expect("a restored state encodes");
        let mut again = self.entry.instantiate();
        again
            .restore_state(&encoded)
            .expect("a re-encoded state restores");
        assert_eq!(
            again.publish(),
            table,
            "{}: arbitrary state round trip",
            self.name
        );
        scratch.step(1.0 / 30.0);
        scratch.publish();
        let _ = scratch.state_json();
    }
}
