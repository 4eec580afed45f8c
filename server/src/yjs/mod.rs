//! Yjs-specific algorithms, with no rooms and no I/O: what a doc room needs to
//! know about the Yjs formats and about how `yrs` behaves on them.
//!
//! - [`wire`]: the y-websocket framing (message boundaries, encoding through
//!   `yrs::sync`).
//! - [`bounds`]: a walk of update, state vector and awareness bodies that
//!   refuses what yrs cannot safely decode, and gives each update's shape.
//! - [`item_index`]: what a document knows of each of its items (parent depth,
//!   kind and origins), to refuse updates that would break yrs.
//! - [`deps`]: what an update needs that a document lacks.
//! - [`value`], [`fidelity`]: values as bytes, and the content yrs would not
//!   give back as a client wrote it, kept as written.
//! - [`lib0`]: reading lib0's encoding from untrusted bytes.
//! - [`restore`]: bringing a document back to a snapshot's content by a new edit.
//! - [`json_view`]: the document's root types as JSON.

pub mod bounds;
pub mod deps;
pub mod fidelity;
pub mod item_index;
pub mod json_view;
pub mod lib0;
pub mod restore;
pub mod value;
pub mod wire;
