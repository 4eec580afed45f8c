//! roomcast-protocol: everything that crosses the wire between a roomcast game
//! room and its clients, and nothing that does I/O.
//!
//! Modules:
//! - [`message`]: the envelope messages both ways ([`ClientMessage`], [`ServerMessage`]).
//! - [`codec`]: the one place that encodes and decodes bytes (bincode 2, one fixed
//!   configuration, an explicit decode size limit). Swapping the codec is a
//!   change to that one file.
//! - [`state`]: the entity table a room's state is published as, the generic delta
//!   between two tables, and the [`state::Mirror`] a client keeps from snapshot + deltas.
//! - [`close`]: WebSocket close codes and in-band error codes, with their meaning.
//! - [`games`]: wire types of the built-in games (inputs and entities), shared by
//!   the server's game logic and the clients.
//!
//! The byte layout of every message is documented in `shared/PROTOCOL.md`; the
//! golden-vector tests in [`message`] pin it.

pub mod close;
pub mod codec;
pub mod games;
pub mod message;
pub mod state;

pub use codec::CodecError;
pub use message::{
    ClientMessage, Delta, EntityData, ErrorMessage, Input, Join, Ping, Pong, Resume, ResumeToken,
    ServerMessage, Snapshot, Welcome, PROTOCOL_VERSION,
};
