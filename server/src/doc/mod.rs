//! The doc core: one collaborative document's logic without I/O, shared by
//! the doc room actor (`room::doc_room`), the fuzz target and the tests.
//!
//! - [`DocCore`] (`doc_core`): members, messages in, [`Effect`]s out.
//! - `document`: the `yrs::Doc`, its update log and rollback, the item index
//!   and the content kept as clients wrote it.
//! - `held`: updates waiting for clocks the document lacks.
//! - `awareness`: who may change which awareness entry.
//!
//! # What a doc room refuses, and why
//!
//! The rule: an edit a stock Yjs client can produce is never refused. Every
//! refusal below protects against something no stock client sends, or is a
//! limit the operator sets; each is logged at warn level with its reason and
//! counted in `roomcast_refusals_total{reason}`. The compatibility suite in
//! `tests/node/compat` drives stock clients (yjs, y-websocket, y-prosemirror,
//! syncedstore, real keystroke traces, random edits with reconnects) and
//! checks that none of these counters moves.
//!
//! | reason | close | what | why no stock client trips it |
//! |---|---|---|---|
//! | `bad_frame` | 1007 | a frame that does not decode: truncated, bad varints, counts beyond the bytes, client ids over 53 bits, clocks past `u32::MAX`, an item between two equal origins, an empty deleted range, legacy JSON content, malformed values (`yjs::bounds`, `yjs::wire`) | Yjs writes none of these (32-bit client ids, items between distinct neighbours, values as `Any` content) |
//! | `update_invalid` | 1007 | an update yrs cannot apply, or one that would nest shared types over 128 deep, put characters outside a text, place an item between contradictory origins, or rewrite known clocks under another parent (`yjs::item_index`) | editors nest a few levels; Yjs inserts characters only into texts and between neighbours it sees side by side; a client resends its own items unchanged |
//! | `awareness_invalid` | 1007 | an awareness update yrs refuses | y-protocols writes valid ones |
//! | `update_held_expired` | 1007 | an update still missing what it follows after `--doc-hold-timeout` | the stock client sends what it follows in its sync step 2, right behind it |
//! | `update_held_limit` | 1008 | more than `--doc-hold-bytes` waiting for one connection (or `--doc-hold-doc-bytes` for the document) | the edits typed while reconnecting are a few kB |
//! | `doc_size` | 1009 | an edit growing the document past `--doc-max-bytes` | an operator's limit |
//! | `update_refused` | — | an edit from a read-only member (dropped, not closed) | a limit of the member's token |
//!
//! Content that yrs holds differently from how a client wrote it (object key
//! order, `-0`, BigInts, format attributes and embeds, subdocument options)
//! or cannot take at all (values nested over 64 levels, JSON serde_json
//! refuses) is accepted and kept as written ([`crate::yjs::fidelity`]).

mod awareness;
mod doc_core;
mod document;
mod held;
#[cfg(test)]
mod tests;

pub use doc_core::{Close, CloseKind, CoreSettings, DocCore, Effect};
pub use document::stored_json;
pub use held::HoldLimits;
