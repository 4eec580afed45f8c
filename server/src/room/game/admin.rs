//! What operators see of a game room: its figures and members, the published
//! state at a recent tick, the game state as JSON.

use super::game_core::GameCore;
use super::membership::SPECTATOR_PLAYER_ID;
use crate::game::PlayerId;
use crate::persist::LastSnapshot;
use crate::room::messages::{GameRoomInfo, MemberInfo, StateView};

impl GameCore {
    /// The published state at `at_tick` (the latest when `None`), if still held.
    pub(crate) fn state_at(&self, at_tick: Option<u64>) -> Option<StateView> {
        let tick = at_tick.unwrap_or(self.tick);
        self.history
            .iter()
            .find(|(t, _)| *t == tick)
            .map(|(tick, entities)| StateView {
                tick: *tick,
                entities: entities.clone(),
            })
    }

    /// The room's figures for operators (`bytes_out_per_sec` and the latest
    /// snapshot come from the actor), with the game state as JSON if asked.
    pub(crate) fn describe(
        &self,
        with_state: bool,
        bytes_out_per_sec: f64,
        last_snapshot: &LastSnapshot,
    ) -> GameRoomInfo {
        let state = with_state.then(|| self.game.state_json());
        let players = self.members.iter().map(|(p, m)| (*p, m, false));
        let spectators = self
            .spectators
            .values()
            .map(|m| (SPECTATOR_PLAYER_ID, m, true));
        let mut members: Vec<MemberInfo> = players
            .chain(spectators)
            .map(|(player, m, spectator)| MemberInfo {
                player,
                spectator,
                user: m.user.clone(),
                conn: m.conn,
                outbox_depth: m.link.outbox_depth(),
                frames_skipped: m.link.frames_skipped,
                connected_secs: m.link.joined_at.elapsed().as_secs_f64(),
                latency_ms: m.link.latency.millis(),
            })
            .collect();
        members.sort_by_key(|m| (m.spectator, m.player, m.conn));
        let mut away_players: Vec<PlayerId> = self.away.keys().copied().collect();
        away_players.sort_unstable();
        GameRoomInfo {
            game: self.game_entry.name.to_string(),
            room: self.key.room().to_owned(),
            tick: self.tick,
            tick_rate_hz: self.game_entry.settings.tick_rate_hz,
            members,
            away_players,
            timing: self.timing.summary(),
            failed: self.failure().map(str::to_owned),
            bytes_out_per_sec,
            last_snapshot: last_snapshot.get(),
            state,
        }
    }
}
