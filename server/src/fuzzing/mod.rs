//! Entry points for the fuzz targets (`fuzz/`) and their regression tests
//! (`server/tests/fuzz_regressions.rs`); not a stable API.
//!
//! Each entry point takes arbitrary bytes, drives the server's own code with
//! them and panics when an invariant breaks; a panic that does not come from an
//! assertion here is a bug the fuzzer found. The fuzz targets call these
//! functions and nothing else, so a committed input replays identically under
//! `cargo test`.
//!
//! - [`protocol_decode`]: the wire codec (envelopes and the built-in games'
//!   payloads): decoding never panics and what decodes round-trips.
//! - [`game_input`]: joins, leaves, inputs, ticks, snapshots on a room instance
//!   of every built-in game.
//! - [`doc_sync`]: y-websocket frames through [`crate::yjs::wire`] into a doc
//!   room's document and awareness, with client replicas that must converge.

mod doc;
mod game;
mod protocol;

pub use doc::doc_sync;
pub use game::game_input;
pub use protocol::protocol_decode;

/// What a fuzz target runs on each input.
pub type EntryPoint = fn(&[u8]);

/// The fuzz targets, by name (the directory names under `fuzz/regressions/`).
pub const TARGETS: [(&str, EntryPoint); 3] = [
    ("protocol_decode", protocol_decode),
    ("game_input", game_input),
    ("doc_sync", doc_sync),
];

/// Reads operations out of fuzz input; running out of bytes yields zeros (so
/// every input is a valid operation sequence), [`Ops::byte`] tells the end.
struct Ops<'a> {
    /// What is left of the input.
    data: &'a [u8],
}

impl<'a> Ops<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// The next byte, `None` at the end of the input.
    fn byte(&mut self) -> Option<u8> {
        let (first, rest) = self.data.split_first()?;
        self.data = rest;
        Some(*first)
    }

    /// The next byte, 0 past the end.
    fn u8(&mut self) -> u8 {
        self.byte().unwrap_or(0)
    }

    /// A little-endian u32 (missing bytes are 0).
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// A length byte and up to that many bytes (255: everything left).
    fn chunk(&mut self) -> &'a [u8] {
        let len = match self.u8() {
            u8::MAX => self.data.len(),
            len => usize::from(len).min(self.data.len()),
        };
        let (chunk, rest) = self.data.split_at(len);
        self.data = rest;
        chunk
    }
}
