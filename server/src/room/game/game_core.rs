//! [`GameCore`]: one game room's state and members without the actor: the game
//! instance, the published tables and their history, players, spectators and
//! away players, resume tokens, and the guard around game code. The actor
//! ([`super::GameRoom`]) drives it with timers and the store; the unit tests
//! (`super::tests`) drive it by hand, members' outboxes being plain channels.
//!
//! What it does lives by concern: joining, resuming and leaving in
//! [`super::membership`], the tick and its fan-out in [`super::tick`],
//! snapshots and restores in [`super::persist`], operators' views in
//! [`super::admin`].

use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use actix_ws::CloseCode;
use bytes::Bytes;
use roomcast_protocol::{
    state::{snapshot, EntityTable},
    ResumeToken, ServerMessage,
};
use tracing::error;

use super::membership::{AwayPlayer, GameMember};
use super::persist::PendingRestore;
use crate::game::{GameEntry, GameInstance, PlayerId};
use crate::metrics::{RoomMetrics, TickMetrics};
use crate::room::messages::RestoreRefused;
use crate::room::registry::{RoomKey, RoomSettings};
use crate::room::timing::TickTiming;
use crate::room::ConnId;

/// One game room's state and members.
pub(crate) struct GameCore {
    /// Registry key (game + room name).
    pub(super) key: RoomKey,
    /// The game and its settings.
    pub(super) game_entry: GameEntry,
    /// Room-wide settings (idle timeout, lag timeout, history).
    pub(super) settings: RoomSettings,
    /// The game logic and its state.
    pub(super) game: Box<dyn GameInstance>,
    /// Number of ticks run; the published state belongs to this tick.
    pub(super) tick: u64,
    /// The latest published state.
    pub(super) table: Arc<EntityTable>,
    /// Recent published states (oldest first, the latest included), to answer a
    /// resume with a delta and to inspect a given tick.
    pub(super) history: VecDeque<(u64, Arc<EntityTable>)>,
    /// Connected players by player id.
    pub(super) members: HashMap<PlayerId, GameMember>,
    /// Connected spectators by connection id (player id 0 on the wire, no
    /// entity, no inputs).
    pub(super) spectators: HashMap<ConnId, GameMember>,
    /// Disconnected players within their resume grace.
    pub(super) away: HashMap<PlayerId, AwayPlayer>,
    /// Resume tokens of present and away players.
    pub(super) tokens: HashMap<ResumeToken, PlayerId>,
    /// Next new player id.
    pub(super) next_player: PlayerId,
    /// Tick duration and lateness.
    pub(super) timing: TickTiming,
    /// Set when game code panicked: the room no longer ticks nor admits members.
    pub(super) failed: Option<String>,
    /// Fixed simulation step, seconds.
    pub(super) dt: f32,
    /// Span every log line of this room belongs to.
    pub(super) span: tracing::Span,
    /// Fan-out counters (`kind="game"`).
    pub(super) room_metrics: RoomMetrics,
    /// Tick histograms of this game.
    pub(super) tick_metrics: TickMetrics,
    /// An operator's restore, applied at the start of the next tick.
    pub(super) pending_restore: Option<PendingRestore>,
}

impl GameCore {
    /// A new room of `game_entry` with fresh state and nobody in it.
    pub(crate) fn new(
        key: RoomKey,
        game_entry: GameEntry,
        settings: RoomSettings,
        span: tracing::Span,
        room_metrics: RoomMetrics,
    ) -> Self {
        let game = game_entry.instantiate();
        let table = Arc::new(game.publish());
        let tick_metrics = TickMetrics::new(&game_entry.name);
        let hz = game_entry.settings.tick_rate_hz;
        Self {
            key,
            dt: 1.0 / f32::from(hz),
            timing: TickTiming::new(Duration::from_secs_f64(1.0 / f64::from(hz))),
            game,
            game_entry,
            settings,
            tick: 0,
            history: VecDeque::from([(0, table.clone())]),
            table,
            members: HashMap::new(),
            spectators: HashMap::new(),
            away: HashMap::new(),
            tokens: HashMap::new(),
            next_player: 1,
            failed: None,
            span,
            room_metrics,
            tick_metrics,
            pending_restore: None,
        }
    }

    /// Time between two ticks.
    pub(crate) fn period(&self) -> Duration {
        Duration::from_secs_f64(1.0 / f64::from(self.game_entry.settings.tick_rate_hz))
    }

    /// Whether anybody is in the room: players, spectators, or players within
    /// their resume grace.
    pub(crate) fn occupied(&self) -> bool {
        !self.members.is_empty() || !self.spectators.is_empty() || !self.away.is_empty()
    }

    /// Why the room failed, if it did.
    pub(crate) fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Runs game code; a panic fails the room and yields `None`.
    pub(super) fn guarded<T>(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut dyn GameInstance) -> T,
    ) -> Option<T> {
        match catch_unwind(AssertUnwindSafe(|| f(self.game.as_mut()))) {
            Ok(v) => Some(v),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                self.fail(format!("game logic panicked in {what}: {msg}"));
                None
            }
        }
    }

    /// Fails the room: members are closed with 1011, the last good state stays.
    pub(crate) fn fail(&mut self, reason: String) {
        let _enter = self.span.enter();
        error!(cause = %reason, tick = self.tick, "room failed; keeping its last good state");
        for (_, mut m) in self.members.drain() {
            m.link
                .kick(CloseCode::Error, format!("room failed: {reason}"));
        }
        for (_, mut m) in self.spectators.drain() {
            m.link
                .kick(CloseCode::Error, format!("room failed: {reason}"));
        }
        self.away.clear();
        self.tokens.clear();
        if let Some(restore) = self.pending_restore.take() {
            let _ = restore.done.send(Err(RestoreRefused::Conflict(format!(
                "the room failed before the restore: {reason}"
            ))));
        }
        self.failed = Some(reason);
    }

    /// The encoded snapshot of the latest published state.
    pub(super) fn encode_snapshot(&self) -> Bytes {
        ServerMessage::Snapshot(snapshot(&self.table, self.tick)).encode()
    }

    /// Closes every member with `code` and `reason` (the room is stopping).
    pub(crate) fn close_all(&mut self, code: CloseCode, reason: &str) {
        for (_, mut m) in self.members.drain() {
            m.link.kick(code, reason);
        }
        for (_, mut m) in self.spectators.drain() {
            m.link.kick(code, reason);
        }
    }
}
