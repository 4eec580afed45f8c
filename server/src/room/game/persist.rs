//! A game room's snapshots: what a snapshot stores (the game's state plus the
//! players' ids and resume tokens), taking one, loading the latest when the
//! room starts, and an operator's restore, applied at the next tick.

use std::collections::{HashSet, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use roomcast_protocol::ResumeToken;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tracing::{error, info, warn};

use super::game_core::GameCore;
use super::membership::AwayPlayer;
use crate::game::{GameEntry, GameInstance, PlayerId};
use crate::room::messages::{RestoreRefused, Restored};
use crate::store::{GameSnapshot, NewGameSnapshot, StoreError};

/// What a game snapshot stores: the game's own state plus what the room needs to
/// take its players back after a restart (their ids and resume tokens).
#[derive(Debug, Serialize, Deserialize)]
struct PersistedRoom {
    /// Next new player id.
    next_player: PlayerId,
    /// Resume tokens of the players in the room.
    players: Vec<(ResumeToken, PlayerId)>,
    /// The game state, encoded by the game instance.
    state: Vec<u8>,
}

/// A restore waiting for the room's next tick.
pub(crate) struct PendingRestore {
    /// A fresh game instance holding the snapshot's state.
    game: Box<dyn GameInstance>,
    /// The snapshot's next new player id.
    next_player: PlayerId,
    /// Players the snapshot knows (its resume tokens').
    players: HashSet<PlayerId>,
    /// The snapshot restored, for the log.
    snapshot_id: i64,
    /// Told the outcome once the tick has run.
    pub(super) done: oneshot::Sender<Result<Restored, RestoreRefused>>,
}

impl GameCore {
    /// The snapshot of the current state, or `None` if the room failed or the
    /// state does not encode.
    pub(crate) fn snapshot_record(&mut self) -> Option<NewGameSnapshot> {
        if self.failed.is_some() {
            return None;
        }
        let state = match self.guarded("encode_state", |g| g.encode_state())? {
            Ok(state) => state,
            Err(e) => {
                error!(parent: &self.span, cause = %e, "game state does not encode; no snapshot");
                return None;
            }
        };
        let persisted = PersistedRoom {
            next_player: self.next_player,
            players: self.tokens.iter().map(|(t, p)| (*t, *p)).collect(),
            state,
        };
        let state = match roomcast_protocol::codec::encode(&persisted) {
            Ok(bytes) => bytes,
            Err(e) => {
                error!(parent: &self.span, cause = %e, "room snapshot does not encode");
                return None;
            }
        };
        Some(NewGameSnapshot {
            game: self.game_entry.name.to_string(),
            room: self.key.room().to_owned(),
            tick: self.tick,
            format_version: self.game.state_format_version(),
            state,
        })
    }

    /// Whether a new room of this game restores its latest snapshot.
    pub(crate) fn restores_snapshots(&self) -> bool {
        self.game.restores_snapshots()
    }

    /// Installs a loaded snapshot (if any), or fails the room if loading failed:
    /// starting empty would later bury the real state under newer snapshots.
    /// Returns the snapshot installed.
    pub(crate) fn load(
        &mut self,
        loaded: Result<Option<GameSnapshot>, StoreError>,
    ) -> Option<GameSnapshot> {
        let snapshot = match loaded {
            Ok(Some(s)) => s,
            Ok(None) => return None,
            Err(e) => {
                self.fail(format!("could not load the room's snapshot: {e}"));
                return None;
            }
        };
        let expected = self.game.state_format_version();
        if snapshot.format_version != expected {
            warn!(parent: &self.span, found = snapshot.format_version, expected, "snapshot format differs; starting empty");
            return None;
        }
        let persisted: PersistedRoom = match roomcast_protocol::codec::decode(&snapshot.state) {
            Ok(p) => p,
            Err(e) => {
                warn!(parent: &self.span, cause = %e, "snapshot does not decode; starting empty");
                return None;
            }
        };
        match self.guarded("restore_state", |g| g.restore_state(&persisted.state)) {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                warn!(parent: &self.span, cause = %e, "game state does not decode; starting empty");
                return None;
            }
            None => return None,
        }
        let now = Instant::now();
        self.tick = snapshot.tick;
        self.next_player = persisted.next_player;
        for (token, player) in persisted.players {
            self.tokens.insert(token, player);
            // Everyone is away until they resume with their token (or time out).
            self.away.insert(player, AwayPlayer { since: now });
            self.guarded("player_disconnected", |g| g.player_disconnected(player));
        }
        let table = self.guarded("publish", |g| g.publish())?;
        self.table = Arc::new(table);
        self.history = VecDeque::from([(self.tick, self.table.clone())]);
        info!(parent: &self.span, tick = self.tick, snapshot = snapshot.meta.id, players = self.away.len(), "restored from snapshot");
        Some(snapshot)
    }

    /// Checks a snapshot an operator wants restored and queues it for the next
    /// tick (`closing`: the room is on its way out); returns where the outcome
    /// will arrive.
    pub(crate) fn prepare_restore(
        &mut self,
        snapshot: GameSnapshot,
        closing: bool,
    ) -> Result<oneshot::Receiver<Result<Restored, RestoreRefused>>, RestoreRefused> {
        if let Some(reason) = &self.failed {
            return Err(RestoreRefused::Conflict(format!(
                "the room failed: {reason}"
            )));
        }
        if closing {
            return Err(RestoreRefused::Conflict("the room is closing".into()));
        }
        let expected = self.game.state_format_version();
        if snapshot.format_version != expected {
            return Err(RestoreRefused::Conflict(format!(
                "snapshot {} has state format {}, the game now uses {expected}",
                snapshot.meta.id, snapshot.format_version
            )));
        }
        let persisted: PersistedRoom =
            roomcast_protocol::codec::decode(&snapshot.state).map_err(|e| {
                RestoreRefused::Conflict(format!(
                    "snapshot {} does not decode: {e}",
                    snapshot.meta.id
                ))
            })?;
        let mut game = self.game_entry.instantiate();
        match catch_unwind(AssertUnwindSafe(|| game.restore_state(&persisted.state))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(RestoreRefused::Conflict(format!(
                    "snapshot {}: the game state does not decode: {e}",
                    snapshot.meta.id
                )))
            }
            Err(_) => {
                return Err(RestoreRefused::Conflict(format!(
                    "snapshot {}: the game panicked decoding its state",
                    snapshot.meta.id
                )))
            }
        }
        let (done, answer) = oneshot::channel();
        let restore = PendingRestore {
            game,
            next_player: persisted.next_player,
            players: persisted.players.iter().map(|(_, p)| *p).collect(),
            snapshot_id: snapshot.meta.id,
            done,
        };
        if let Some(earlier) = self.pending_restore.replace(restore) {
            let _ = earlier.done.send(Err(RestoreRefused::Conflict(
                "superseded by a later restore before the room's next tick".into(),
            )));
        }
        Ok(answer)
    }

    /// Swaps in a restored game state (at the start of a tick). Players here now
    /// but unknown to the snapshot join it afresh; players of the snapshot who are
    /// gone are removed; every member gets a full snapshot at the end of the tick.
    pub(super) fn apply_restore(
        &mut self,
        restore: PendingRestore,
    ) -> oneshot::Sender<Result<Restored, RestoreRefused>> {
        let mut present: Vec<PlayerId> = self
            .members
            .keys()
            .chain(self.away.keys())
            .copied()
            .collect();
        present.sort_unstable();
        self.game = restore.game;
        for player in &present {
            if !restore.players.contains(player) {
                self.guarded("player_joined", |g| g.player_joined(*player));
            }
        }
        let mut gone: Vec<PlayerId> = restore
            .players
            .iter()
            .filter(|p| !present.contains(p))
            .copied()
            .collect();
        gone.sort_unstable();
        for player in gone {
            self.guarded("player_left", |g| g.player_left(player));
        }
        // The snapshot's state has them as they were then; tell the game who is away now.
        let mut away: Vec<PlayerId> = self.away.keys().copied().collect();
        away.sort_unstable();
        for player in away {
            self.guarded("player_disconnected", |g| g.player_disconnected(player));
        }
        self.next_player = self.next_player.max(restore.next_player);
        for member in self
            .members
            .values_mut()
            .chain(self.spectators.values_mut())
        {
            member.link.request_catch_up();
        }
        info!(parent: &self.span, snapshot = restore.snapshot_id, tick = self.tick, players = present.len(), "restoring snapshot at this tick");
        restore.done
    }
}

/// The game state stored in a snapshot, as JSON (through the game's serde).
pub fn snapshot_state_json(entry: &GameEntry, state: &[u8]) -> Result<serde_json::Value, String> {
    let persisted: PersistedRoom = roomcast_protocol::codec::decode(state)
        .map_err(|e| format!("snapshot does not decode: {e}"))?;
    let mut game = entry.instantiate();
    game.restore_state(&persisted.state)
        .map_err(|e| format!("game state does not decode: {e}"))?;
    Ok(game.state_json())
}
