//! roomcast-server: an actor-per-room real-time server on actix.
//!
//! Modules, and what each owns:
//! - [`auth`]: join tokens (JWT): verification, claims and roles, minting.
//! - [`config`]: the one configuration struct (CLI flags = `ROOMCAST_*` env vars).
//! - [`doc`]: the doc core: one collaborative document's logic (members,
//!   guards, held updates, the update log) without I/O, driven by the doc room
//!   actor, the fuzz target and the tests.
//! - `fuzzing` (hidden): entry points for the fuzz targets and their regression
//!   tests; not a stable API.
//! - [`game`]: the pluggable [`game::Game`] trait, the catalog of games by name, and
//!   the built-in games (`arena`, `counter`).
//! - [`room`]: room actors (game rooms, doc rooms) and the registry that creates,
//!   places and forgets them.
//! - [`session`]: one task per WebSocket connection: limits, decoding, forwarding,
//!   writing the member's outbox.
//! - [`yjs`]: Yjs-specific algorithms without rooms or I/O: the y-websocket
//!   framing, the bounds walk and item index that guard yrs, restores, the
//!   JSON view.
//! - [`http`]: routes, shared state, upgrade handlers.
//! - [`metrics`]: every Prometheus metric name, the recorder and `/metrics`.
//! - [`persist`]: the background writers between rooms and the store (doc log
//!   group commit, game snapshots), with retries.
//! - [`store`]: persistence, the one place with SQL: the [`store::Store`] trait
//!   over PostgreSQL or SQLite (game snapshots, doc update log and snapshots),
//!   the embedded migrations, and throw-away databases for tests.
//! - [`server`]: [`Server`] / [`run`]: start everything on a listener and shut it
//!   down gracefully when a token is cancelled.
//!
//! The binary `roomcast` only parses the config, installs logging, binds and
//! calls [`run`]; tests call the same function.

pub mod auth;
pub mod config;
pub mod doc;
#[doc(hidden)]
pub mod fuzzing;
pub mod game;
pub mod http;
pub mod metrics;
pub mod persist;
pub mod room;
pub mod server;
pub mod session;
pub mod store;
pub mod yjs;

pub use config::Config;
pub use server::{run, Server, ServerError};
