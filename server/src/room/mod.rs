//! Rooms: one actix actor per room, placed on a pool of arbiters by the registry.
//!
//! - [`registry`]: room key → actor address; creates rooms on demand, spreads them
//!   over the arbiter pool, forgets them when they stop. Every room lookup goes
//!   through it (the seam for multi-node later).
//! - [`game`]: game rooms: the `GameRoom` actor and the `GameCore` it drives
//!   (fixed tick, inputs, generic deltas, fan-out of one encoded frame per tick,
//!   reconnection, failure isolation), split by concern.
//! - `common`: what every room actor shares (identity, span, store writers,
//!   fan-out figures, idle rule).
//! - [`doc_room`]: the `DocRoom` actor: drives a [`crate::doc::DocCore`] (a Yjs
//!   document, its awareness and guards) with members' sockets and the store.
//! - [`messages`]: every message a room accepts, one type each.
//! - [`member`]: a member's bounded outbox and what happens when it is full.
//! - [`inputs`]: a game member's bounded input queue, drained at each tick.
//! - [`name`]: the rules for room names.
//! - [`timing`]: tick duration and lateness measurement.

mod common;
pub mod doc_room;
pub mod game;
pub mod inputs;
pub mod member;
pub mod messages;
pub mod name;
pub mod registry;
pub mod timing;

pub use name::{RoomName, RoomNameError};
pub use registry::{RoomKey, RoomRegistry, RoomSettings};

/// Unique id of one room actor's lifetime (a room name reused after eviction gets
/// a new id), so a stopping room cannot unregister its successor.
pub type RoomId = u64;

/// Unique id of one WebSocket connection.
pub type ConnId = u64;
