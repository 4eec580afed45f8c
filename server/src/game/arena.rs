//! The reference game `arena`, exactly as DESIGN.md defines it: the latest input
//! of each player sets its velocity to `dir * 200` units/s, position integrates
//! and is clamped to 0..1000, `last_input` records the applied `seq`.

use std::collections::BTreeMap;

use roomcast_protocol::games::arena::{ArenaInput, ArenaPlayer, SPEED, WORLD_SIZE};

use super::{Game, PlayerId};

/// The arena game (no configuration yet).
#[derive(Debug, Default, Clone)]
pub struct Arena;

/// Arena room state: players by id.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ArenaState {
    /// Every player in the room, connected or waiting to resume.
    pub players: BTreeMap<PlayerId, ArenaPlayer>,
}

/// Deterministic spawn point spread over the world, so players do not overlap.
fn spawn_point(player: PlayerId) -> (f32, f32) {
    let i = player as f32;
    let x = 100.0 + (i * 137.0) % 800.0;
    let y = 100.0 + (i * 271.0) % 800.0;
    (x, y)
}

impl Game for Arena {
    type State = ArenaState;
    type Input = ArenaInput;
    type Entity = ArenaPlayer;

    fn new_state(&self) -> ArenaState {
        ArenaState::default()
    }

    fn check_input(&self, input: &ArenaInput) -> Result<(), String> {
        if input.is_valid() {
            Ok(())
        } else {
            Err(format!(
                "arena direction out of range: dx={} dy={}",
                input.dx, input.dy
            ))
        }
    }

    fn player_joined(&self, state: &mut ArenaState, player: PlayerId) {
        let (x, y) = spawn_point(player);
        state.players.insert(
            player,
            ArenaPlayer {
                x,
                y,
                vx: 0.0,
                vy: 0.0,
                last_input: 0,
            },
        );
    }

    /// A disconnected player stops where it is until it resumes or times out.
    fn player_disconnected(&self, state: &mut ArenaState, player: PlayerId) {
        if let Some(p) = state.players.get_mut(&player) {
            p.vx = 0.0;
            p.vy = 0.0;
        }
    }

    fn player_left(&self, state: &mut ArenaState, player: PlayerId) {
        state.players.remove(&player);
    }

    fn apply_input(&self, state: &mut ArenaState, player: PlayerId, seq: u32, input: ArenaInput) {
        if let Some(p) = state.players.get_mut(&player) {
            p.vx = f32::from(input.dx) * SPEED;
            p.vy = f32::from(input.dy) * SPEED;
            p.last_input = seq;
        }
    }

    fn tick(&self, state: &mut ArenaState, dt: f32) {
        for p in state.players.values_mut() {
            p.x = (p.x + p.vx * dt).clamp(0.0, WORLD_SIZE);
            p.y = (p.y + p.vy * dt).clamp(0.0, WORLD_SIZE);
        }
    }

    fn entities(&self, state: &ArenaState, emit: &mut dyn FnMut(u32, &ArenaPlayer)) {
        for (id, p) in &state.players {
            emit(*id, p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_at_speed_and_clamps_to_bounds() {
        let arena = Arena;
        let mut s = arena.new_state();
        arena.player_joined(&mut s, 1);
        let start = s.players[&1];
        arena.apply_input(&mut s, 1, 7, ArenaInput { dx: 1, dy: -1 });
        arena.tick(&mut s, 0.5);
        let p = s.players[&1];
        assert_eq!(p.last_input, 7);
        assert_eq!(p.x, (start.x + 100.0).min(WORLD_SIZE));
        assert_eq!(p.y, (start.y - 100.0).max(0.0));
        for _ in 0..100 {
            arena.tick(&mut s, 0.5);
        }
        let p = s.players[&1];
        assert_eq!((p.x, p.y), (WORLD_SIZE, 0.0));
    }

    #[test]
    fn state_round_trips_through_a_snapshot() {
        let catalog = crate::game::GameCatalog::with_builtin_games();
        let entry = catalog.get("arena").unwrap();
        let mut room = entry.instantiate();
        room.player_joined(1);
        room.player_joined(2);
        let input = roomcast_protocol::codec::encode(&ArenaInput { dx: 1, dy: 1 }).unwrap();
        room.queue_input(1, 9, &input).unwrap();
        room.step(1.0 / 30.0);
        let bytes = room.encode_state().unwrap();
        let mut restored = entry.instantiate();
        restored.restore_state(&bytes).unwrap();
        assert_eq!(restored.publish(), room.publish());
        assert!(restored.restore_state(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn latest_input_wins_and_bad_directions_are_refused() {
        let arena = Arena;
        let mut s = arena.new_state();
        arena.player_joined(&mut s, 1);
        arena.apply_input(&mut s, 1, 1, ArenaInput { dx: 1, dy: 0 });
        arena.apply_input(&mut s, 1, 2, ArenaInput { dx: 0, dy: 1 });
        assert_eq!(
            (s.players[&1].vx, s.players[&1].vy, s.players[&1].last_input),
            (0.0, SPEED, 2)
        );
        assert!(arena.check_input(&ArenaInput { dx: 2, dy: 0 }).is_err());
    }
}
