//! Sessions: one task per WebSocket connection. A session reads frames, enforces
//! the connection's limits (frame size, message and byte rates, join timeout,
//! heartbeat), decodes with the
//! protocol crate and forwards to its room; a separate writer drains the member's
//! bounded outbox onto the socket. It owns no room state.

pub mod doc;
mod frame_guard;
pub mod game;
mod join;
mod member_loop;
mod rate;
mod socket;

pub use frame_guard::guard_payload;
pub use socket::{close_reason, ConnLimits};
