//! `counter`, a tiny second built-in game: each player adds to its score, entity 0
//! holds the room total. Its input and entity types differ from arena's and it
//! publishes an entity that is not a player, which keeps the `Game` trait honest.

use std::collections::BTreeMap;

use roomcast_protocol::games::counter::{CounterInput, CounterScore, TOTAL_ENTITY};

use super::{Game, PlayerId};

/// The counter game.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counter;

/// Counter room state.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CounterState {
    /// Sum of every input ever applied in the room (players who left included).
    pub total: i64,
    /// Each present player's own sum.
    pub scores: BTreeMap<PlayerId, i64>,
}

impl Game for Counter {
    type State = CounterState;
    type Input = CounterInput;
    type Entity = CounterScore;

    fn new_state(&self) -> CounterState {
        CounterState::default()
    }

    fn default_tick_rate_hz(&self) -> u16 {
        10
    }

    fn player_joined(&self, state: &mut CounterState, player: PlayerId) {
        state.scores.insert(player, 0);
    }

    fn player_left(&self, state: &mut CounterState, player: PlayerId) {
        state.scores.remove(&player);
    }

    fn apply_input(
        &self,
        state: &mut CounterState,
        player: PlayerId,
        _seq: u32,
        input: CounterInput,
    ) {
        if let Some(score) = state.scores.get_mut(&player) {
            *score = score.saturating_add(i64::from(input.add));
            state.total = state.total.saturating_add(i64::from(input.add));
        }
    }

    fn tick(&self, _state: &mut CounterState, _dt: f32) {}

    fn entities(&self, state: &CounterState, emit: &mut dyn FnMut(u32, &CounterScore)) {
        emit(TOTAL_ENTITY, &CounterScore { score: state.total });
        for (id, score) in &state.scores {
            emit(*id, &CounterScore { score: *score });
        }
    }
}
