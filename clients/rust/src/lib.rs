//! roomcast-client: an async client for roomcast game rooms and doc rooms.
//!
//! [`GameConnection`] joins a room (`Join` → `Welcome`), sends inputs, and keeps a
//! [`Mirror`] of the room state by applying the snapshot and deltas it receives;
//! a delta that does not fit the mirror makes it ask for a fresh snapshot. The
//! same decoding a real client does is what `roomcast-load` measures.
//!
//! [`DocConnection`] keeps a `yrs::Doc` in sync with a doc room over the
//! y-websocket protocol, sending local edits as updates.
//!
//! Modules: [`game`] (game-room connection), [`doc`] (doc-room connection), [`stats`] (latency histograms and CPU
//! figures used by the load tool).

pub mod doc;
pub mod game;
pub mod stats;

pub use doc::{new_doc, DocConnection, DocEvent, DocOptions};
pub use game::{ClientError, CloseInfo, ConnectOptions, Event, GameConnection};
pub use roomcast_protocol::state::Mirror;
