//! `counter`, a tiny second game that proves the `Game` trait generic: every
//! player adds to its own score, and entity [`TOTAL_ENTITY`] holds the room total.
//! Entity ids of players are their player ids; player ids start at 1.

use serde::{Deserialize, Serialize};

/// Entity id of the room-wide total.
pub const TOTAL_ENTITY: u32 = 0;

/// The counter input payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterInput {
    /// Added to the player's score (and the total) at the next tick.
    pub add: i32,
}

/// A player's score, or (for entity [`TOTAL_ENTITY`]) the room total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterScore {
    /// Sum of everything added.
    pub score: i64,
}
