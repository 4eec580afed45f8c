//! roomcast-client: an async client for roomcast game rooms.
//!
//! [`GameConnection`] joins a room (`Join` → `Welcome`), sends inputs, and keeps a
//! [`Mirror`] of the room state by applying the snapshot and deltas it receives;
//! a delta that does not fit the mirror makes it ask for a fresh snapshot. The
//! same decoding a real client does is what `roomcast-load` measures.
//!
//! Modules: [`game`] (the connection), [`stats`] (latency histograms and CPU
//! figures used by the load tool).

pub mod game;
pub mod stats;

pub use game::{ClientError, CloseInfo, ConnectOptions, Event, GameConnection};
pub use roomcast_protocol::state::Mirror;
