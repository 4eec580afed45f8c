//! Updates waiting for clocks the document lacks (see [`crate::yjs::deps`]),
//! bounded in bytes per connection and per document, and in time.
//!
//! A stock client that reconnects sends its sync step 1, then the edits typed
//! since the socket opened, then (once the server's step 1 arrives) its step
//! 2 with the edits made offline, which those typed edits follow. The typed
//! edits are held until the step 2 fills their gap, then integrated, logged
//! and relayed in the order they arrived. Only what stays unfillable past the
//! bounds is refused. `tests/node/compat/reconnects.test.mjs` types through
//! stock clients' reconnects (offline edits, edits between the socket's open
//! and the step 2, abrupt drops) and fails on any refusal; the doc core's
//! `edits_typed_while_reconnecting_wait_for_the_step_2_and_go_out_in_order`
//! and the fuzz target (`fuzzing::doc_sync`) drive the same path.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::room::ConnId;
use crate::yjs::deps::Needs;
use crate::yjs::wire::ClientUpdate;

/// How much a doc room holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldLimits {
    /// Bytes of held updates one connection may have waiting.
    pub conn_bytes: usize,
    /// Bytes of held updates one document may have waiting, all connections
    /// together.
    pub doc_bytes: usize,
    /// How long an update may wait; past it, it is refused (its sender, if
    /// still connected, is closed with 1007).
    pub timeout: Duration,
}

impl Default for HoldLimits {
    fn default() -> Self {
        Self {
            conn_bytes: 4 << 20,
            doc_bytes: 16 << 20,
            timeout: Duration::from_secs(30),
        }
    }
}

/// One held update.
#[derive(Debug)]
pub(crate) struct HeldUpdate {
    /// The connection that sent it (it may have left since).
    pub conn: ConnId,
    /// The update.
    pub update: ClientUpdate,
    /// What it waits for.
    pub needs: Needs,
    /// When it arrived.
    pub since: Instant,
}

/// The held updates of one document, in arrival order.
#[derive(Debug, Default)]
pub(crate) struct Held {
    /// Waiting updates, oldest first.
    queue: VecDeque<HeldUpdate>,
    /// Their bytes.
    bytes: usize,
    /// Their bytes by sender.
    by_conn: HashMap<ConnId, usize>,
}

impl Held {
    /// Why an update of `len` bytes from `conn` cannot be held, if it cannot.
    pub fn refusal(&self, conn: ConnId, len: usize, limits: &HoldLimits) -> Option<String> {
        let mine = self.by_conn.get(&conn).copied().unwrap_or(0);
        if mine + len > limits.conn_bytes {
            return Some(format!(
                "too many updates waiting for clocks the document lacks \
                 ({} bytes from this connection; at most {})",
                mine + len,
                limits.conn_bytes
            ));
        }
        if self.bytes + len > limits.doc_bytes {
            return Some(format!(
                "too many updates waiting for clocks the document lacks \
                 ({} bytes for this document; at most {})",
                self.bytes + len,
                limits.doc_bytes
            ));
        }
        None
    }

    /// Holds an update.
    pub fn push(&mut self, held: HeldUpdate) {
        let len = held.update.len();
        self.bytes += len;
        *self.by_conn.entry(held.conn).or_default() += len;
        self.queue.push_back(held);
    }

    fn forget(&mut self, held: &HeldUpdate) {
        let len = held.update.len();
        self.bytes -= len;
        if let Some(mine) = self.by_conn.get_mut(&held.conn) {
            *mine -= len;
            if *mine == 0 {
                self.by_conn.remove(&held.conn);
            }
        }
    }

    /// Takes the oldest update whose needs a document knowing `known` meets.
    pub fn take_ready(&mut self, known: impl Fn(u64) -> u64) -> Option<HeldUpdate> {
        let at = self.queue.iter().position(|h| h.needs.met_by(&known))?;
        let held = self.queue.remove(at)?;
        self.forget(&held);
        Some(held)
    }

    /// Takes the updates that have waited longer than `timeout` at `now`.
    pub fn take_expired(&mut self, now: Instant, timeout: Duration) -> Vec<HeldUpdate> {
        let (expired, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|h| now.saturating_duration_since(h.since) > timeout);
        self.queue = kept.into();
        for held in &expired {
            self.forget(held);
        }
        expired
    }

    /// Held updates.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Their bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}
