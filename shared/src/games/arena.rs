//! `arena`, the reference game: players move in a 1000×1000 square.
//!
//! Each player is one entity whose id is its player id. Input sets the direction;
//! at every tick `v = dir * SPEED`, `pos += v * dt`, clamped to the bounds, and
//! `last_input` becomes the `seq` of the latest input applied.

use serde::{Deserialize, Serialize};

/// Side of the square world, in world units.
pub const WORLD_SIZE: f32 = 1000.0;
/// Speed of a moving player, in units per second.
pub const SPEED: f32 = 200.0;

/// The arena input payload: a direction on each axis, each −1, 0 or 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArenaInput {
    /// Horizontal direction: −1, 0 or 1.
    pub dx: i8,
    /// Vertical direction: −1, 0 or 1.
    pub dy: i8,
}

impl ArenaInput {
    /// True when both components are −1, 0 or 1.
    pub fn is_valid(&self) -> bool {
        (-1..=1).contains(&self.dx) && (-1..=1).contains(&self.dy)
    }
}

/// One player as published in the room state.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ArenaPlayer {
    /// Position, 0..=1000.
    pub x: f32,
    /// Position, 0..=1000.
    pub y: f32,
    /// Velocity, units per second.
    pub vx: f32,
    /// Velocity, units per second.
    pub vy: f32,
    /// `seq` of the latest input the server applied for this player.
    pub last_input: u32,
}
