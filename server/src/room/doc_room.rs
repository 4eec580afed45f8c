//! The `DocRoom` actor: one collaborative Yjs document (a `yrs::Doc` inside its
//! `Awareness`) and the members editing it, speaking y-websocket.
//!
//! - Join: the member gets the server's sync step 1 and the known awareness
//!   states; its step 1 is answered with step 2.
//! - Updates (step 2 or update messages) are applied in one transaction; what the
//!   transaction actually integrated (observed on the doc) is encoded once and
//!   broadcast to every member, the sender included, as the reference server does.
//!   Accepted updates are kept as a log over a merged base, so an update that fails
//!   to apply (or panics inside yrs) is rolled back by rebuilding the doc: a bad
//!   update closes its sender (1007) and leaves the doc as it was.
//! - Awareness: a connection may only set or clear the client ids it introduced;
//!   changes are applied and broadcast to everyone (the echo is the stock client's
//!   keep-alive); ids of a member that leaves are removed and the removal broadcast;
//!   states not renewed within the awareness timeout are swept.
//! - Members share the game rooms' outbox machinery ([`MemberLink`]): a member that
//!   lags gets the whole document as one update when it has room again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Recipient,
    ResponseActFuture, Running, WrapFuture,
};
use actix_ws::CloseCode;
use bytes::Bytes;
use tracing::{error, info, info_span, warn};
use yrs::block::ClientID;
use yrs::sync::awareness::AwarenessUpdateEntry;
use yrs::sync::{Awareness, AwarenessUpdate, Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::{Doc, OffsetKind, Options, ReadTxn, StateVector, Transact, Update};

use super::{
    member::{Delivery, MemberLink},
    messages::{
        DocMessages, DocRefusal, DocRoomInfo, InspectDoc, JoinDoc, JoinRefused, LeaveDoc, StopRoom,
    },
    registry::{RoomKey, RoomRegistry, RoomSettings},
    ConnId, RoomId,
};
use crate::metrics::{RateMeter, RoomMetrics};
use crate::persist::doc_log::DocLogResult;
use crate::persist::{with_retry, LastSnapshot, Persistence};
use crate::room::messages::{
    DescribeDoc, DocMemberInfo, DocRoomSummary, RestoreDocSnapshot, RestoreRefused, Restored,
    TakeSnapshot,
};
use crate::store::{DocSnapshot, DocUpdateRecord, SnapshotMeta, StoredDoc};
use crate::yjs::bounds::UpdateShape;
use crate::yjs::item_index::ItemIndex;
use crate::yjs::wire::{self, Inbound};
use tokio::sync::oneshot;

/// How often a doc room sweeps awareness, catches up lagging members and checks idleness.
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(250);
/// Room mailbox size: session messages wait (backpressure) beyond this.
const MAILBOX_CAPACITY: usize = 1024;

/// Per-server settings of doc rooms.
#[derive(Debug, Clone)]
pub struct DocSettings {
    /// A document may not grow beyond this many bytes (encoded state, approximately).
    pub max_doc_bytes: usize,
    /// Awareness states not renewed within this long are removed.
    pub awareness_timeout: Duration,
    /// Most connected members; further joins are refused (1013).
    pub max_members: usize,
    /// Compact the update log into a snapshot after this many durable updates...
    pub compact_updates: usize,
    /// ...or when this long has passed since the last compaction.
    pub compact_interval: Duration,
}

/// An accepted update waiting for the store before it is relayed.
#[derive(Debug)]
struct PendingRelay {
    /// Its seq in the log.
    seq: i64,
    /// The encoded frame to broadcast.
    frame: Bytes,
    /// Who sent it (closed with 1011 if it cannot be stored); `None` for the
    /// server's own edits (a restore).
    sender: Option<ConnId>,
}

/// A document that counts text offsets in UTF-16 code units, like JavaScript
/// Yjs, should the server ever edit text by index.
fn new_doc() -> Doc {
    Doc::with_options(Options {
        offset_kind: OffsetKind::Utf16,
        ..Options::default()
    })
}

/// Why `update` must be refused because a block of it is misplaced against
/// what the document knows of its client (its clock, `known`):
/// - after a hole: yrs integrates such a block at once (behind a placeholder)
///   when nothing else it refers to is missing, but leaves it out of the
///   transaction's update event, so it would never be relayed nor logged;
/// - straddling the known clock: yrs keeps the new part, placed after the
///   known one but under the parent the block claims, which a client reusing
///   ids can make contradict it (the document then encodes differently from
///   what it shows).
///
/// A client's own edits start at its clock, and its sync step 2 at the room's
/// state vector; wholly known blocks (a resend) are fine. Only a client that
/// forwards edits it got elsewhere (several providers) can be refused by
/// mistake, and it sends what the room lacks when it reconnects.
fn out_of_order(known: &StateVector, update: &Update) -> Option<String> {
    for (client, ranges) in update.insertions(true).iter() {
        let mut ranges: Vec<_> = ranges.iter().cloned().collect();
        ranges.sort_unstable_by_key(|r| r.start);
        let clock = known.get(client);
        let mut next = clock;
        for range in ranges {
            if range.start > next {
                return Some(format!(
                    "update skips clocks {next}..{} of client {}",
                    range.start,
                    client.get()
                ));
            }
            if range.start < clock && range.end > clock {
                return Some(format!(
                    "update rewrites clocks {}..{clock} of client {}",
                    range.start,
                    client.get()
                ));
            }
            next = next.max(range.end);
        }
    }
    None
}

/// Removes a client's awareness state. yrs's `remove_state` adds one to the
/// clock, which overflows (a panic in debug builds) for a state a client set
/// at clock `u32::MAX`; such a state is removed at its own clock instead, which
/// yrs and Yjs clients also take as a removal.
fn remove_awareness_state(awareness: &mut Awareness, id: ClientID) {
    if !matches!(awareness.meta(id), Some((u32::MAX, _))) {
        awareness.remove_state(id);
        return;
    }
    let removal = AwarenessUpdateEntry {
        clock: u32::MAX,
        json: "null".into(),
    };
    let update = AwarenessUpdate {
        clients: HashMap::from([(id, removal)]),
    };
    if let Err(e) = awareness.apply_update(update) {
        warn!(cause = %e, "cannot remove an awareness state");
    }
}

/// Why an update is refused when it refers to content the document does not
/// have (yrs would keep it pending): pending content is not relayed nor
/// logged, a rollback drops it, and a later update reusing its ids makes the
/// document encode differently from what it shows. A client's edits only refer
/// to what it got from the room; one refused for this sends what the room
/// lacks in its sync step 2 when it reconnects.
fn pending_refused() -> String {
    "update refers to content the document does not have".to_owned()
}

/// Why `update` must be refused because yrs cannot read back its own encoding
/// of it (some odd contents do not round-trip): once in the document, such
/// content would make every later encoding of it (sync answers, catch-ups,
/// snapshots) fail or panic inside yrs.
fn not_reencodable(update: &Update) -> Option<String> {
    use yrs::updates::encoder::Encode;
    let reread = catch_unwind(AssertUnwindSafe(|| {
        let bytes = update.encode_v1();
        let again = Update::decode_v1(&bytes).map_err(|e| e.to_string())?;
        Ok::<_, String>(again.encode_v1() == bytes)
    }));
    match reread {
        Ok(Ok(true)) => None,
        Ok(Ok(false)) => Some("update does not encode stably".into()),
        Ok(Err(e)) => Some(format!("update does not decode once re-encoded: {e}")),
        Err(_) => Some("re-encoding the update made yrs panic".into()),
    }
}

/// One connected editor.
#[derive(Debug)]
struct DocMember {
    /// Outbox, lag state and kick.
    link: MemberLink,
    /// Awareness client ids this connection introduced (it may change only these).
    clients: HashSet<ClientID>,
    /// Read-only: its updates are dropped.
    read_only: bool,
    /// It was told its edits are dropped (once per connection).
    told_read_only: bool,
    /// Who its join token named (`None` with authentication off).
    user: Option<String>,
}

/// The document with its update log: a merged base plus the updates since, each
/// numbered (`seq`) and durable once the store has it. Rolling back rebuilds the
/// doc from the base and the updates kept.
struct DocState {
    /// The document and its awareness states.
    awareness: Awareness,
    /// Updates integrated by the current transaction, filled by the doc observer.
    captured: Arc<Mutex<Vec<Vec<u8>>>>,
    /// The whole document as of the last compaction (encoded v1 update); every
    /// update it covers is durable.
    base: Vec<u8>,
    /// Updates since the base, in seq order.
    log: Vec<(i64, Bytes)>,
    /// Sum of `log` sizes.
    log_bytes: usize,
    /// Highest seq the store holds (all of `log` up to it is durable).
    durable_through: i64,
    /// Seq of the next accepted update.
    next_seq: i64,
    /// Bytes of the updates received while yrs held updates waiting for missing
    /// dependencies (an upper bound of what it keeps pending); 0 once nothing is.
    pending_bytes: usize,
    /// Parent depth and origins of the document's items (for the checks of
    /// [`ItemIndex`]).
    items: ItemIndex,
}

impl DocState {
    fn with_doc(doc: Doc, base: Vec<u8>) -> Self {
        let captured = Arc::new(Mutex::new(Vec::new()));
        let sink = captured.clone();
        // Cannot fail: a fresh doc has no observer under this key yet.
        doc.observe_update_v1("roomcast-relay", move |_txn, event| {
            sink.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(event.update.clone());
        })
        .expect("fresh doc accepts its observer");
        Self {
            awareness: Awareness::new(doc),
            captured,
            base,
            log: Vec::new(),
            log_bytes: 0,
            durable_through: 0,
            next_seq: 1,
            pending_bytes: 0,
            items: ItemIndex::default(),
        }
    }

    /// An empty document.
    fn empty() -> Self {
        let doc = new_doc();
        let base = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        Self::with_doc(doc, base)
    }

    /// A document loaded from the store: its snapshot plus the updates after it.
    fn from_stored(stored: StoredDoc) -> Result<Self, String> {
        let doc = new_doc();
        let mut parts: Vec<&[u8]> = Vec::new();
        if let Some(s) = &stored.snapshot {
            parts.push(&s.state);
        }
        parts.extend(stored.updates.iter().map(|(_, u)| u.as_slice()));
        {
            let mut txn = doc.transact_mut();
            for part in &parts {
                let update = Update::decode_v1(part)
                    .map_err(|e| format!("stored update does not decode: {e}"))?;
                txn.apply_update(update)
                    .map_err(|e| format!("stored update does not apply: {e}"))?;
            }
        }
        let base = match &stored.snapshot {
            Some(s) => s.state.clone(),
            None => new_doc()
                .transact()
                .encode_state_as_update_v1(&StateVector::default()),
        };
        let last = stored.last_seq().unwrap_or(0);
        let mut state = Self::with_doc(doc, base);
        state.take_captured();
        for (seq, update) in stored.updates {
            state.log_bytes += update.len();
            state.log.push((seq, Bytes::from(update)));
        }
        state.durable_through = last;
        state.next_seq = last + 1;
        state.reindex();
        Ok(state)
    }

    /// Approximate encoded size: the base plus the updates since, plus what
    /// waits for missing dependencies (kept in memory and sent to joiners too).
    fn size(&self) -> usize {
        self.base.len() + self.log_bytes + self.pending_bytes
    }

    /// Counts an applied update of `len` bytes toward [`Self::pending_bytes`]
    /// while the doc holds pending updates.
    fn count_pending(&mut self, len: usize) {
        let pending = self.awareness.doc().transact().has_missing_updates();
        self.pending_bytes = if pending { self.pending_bytes + len } else { 0 };
    }

    /// Applies an update (`shape` is its walk); returns what it integrated
    /// (possibly nothing new), each with its new seq, or why it failed, in
    /// which case the document is as it was before.
    fn apply(&mut self, update: Update, shape: &UpdateShape) -> Result<Vec<(i64, Bytes)>, String> {
        let known = self.awareness.doc().transact().state_vector();
        if let Some(why) = out_of_order(&known, &update) {
            return Err(why);
        }
        // Before yrs integrates anything: deleting or viewing too deep a
        // nesting would overflow the room thread's stack, and contradictory
        // origins would make fresh replicas disagree with the room.
        self.items.check(shape)?;
        if let Some(why) = not_reencodable(&update) {
            return Err(why);
        }
        self.edit("the update made yrs panic", |txn| {
            txn.apply_update(update).map_err(|e| e.to_string())?;
            // yrs would keep what it cannot integrate yet as pending; the room
            // holds none (see `pending_refused`).
            match txn.has_missing_updates() {
                true => Err(pending_refused()),
                false => Ok(()),
            }
        })
    }

    /// Makes the content equal to the document `target` encodes, by a new edit
    /// on top of the current one; returns what it integrated, each with its new
    /// seq (nothing when the content already matched), or why it could not, in
    /// which case the document is as it was.
    fn restore_to(&mut self, target: &[u8]) -> Result<Vec<(i64, Bytes)>, String> {
        self.edit("restoring made yrs panic", |txn| {
            crate::yjs::restore::restore_content(txn, target)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }

    /// Runs `change` in one transaction, guarded: on an error or a panic (told
    /// as `panicked`) the document is rebuilt as it was; otherwise what the
    /// transaction integrated is numbered and logged.
    fn edit(
        &mut self,
        panicked: &str,
        change: impl FnOnce(&mut yrs::TransactionMut) -> Result<(), String>,
    ) -> Result<Vec<(i64, Bytes)>, String> {
        self.take_captured();
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut txn = self.awareness.doc().transact_mut();
            change(&mut txn)
        }));
        let failure = match result {
            Ok(Ok(())) => None,
            Ok(Err(why)) => Some(why),
            Err(_) => Some(panicked.to_owned()),
        };
        let integrated = self.take_captured();
        if let Some(why) = failure {
            self.rebuild();
            return Err(why);
        }
        Ok(self.log_integrated(integrated))
    }

    /// Numbers integrated updates, appends them to the log and indexes their
    /// items.
    fn log_integrated(&mut self, integrated: Vec<Vec<u8>>) -> Vec<(i64, Bytes)> {
        for update in &integrated {
            match crate::yjs::bounds::update_shape_v1(update) {
                Ok(shape) => self.items.record(&shape),
                Err(why) => error!(cause = %why, "an integrated update does not walk"),
            }
        }
        integrated
            .into_iter()
            .map(|u| {
                let seq = self.next_seq;
                self.next_seq += 1;
                let bytes = Bytes::from(u);
                self.log_bytes += bytes.len();
                self.log.push((seq, bytes.clone()));
                (seq, bytes)
            })
            .collect()
    }

    fn take_captured(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.captured.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Durable updates not yet folded into the base.
    fn durable_in_log(&self) -> usize {
        self.log
            .iter()
            .take_while(|(seq, _)| *seq <= self.durable_through)
            .count()
    }

    /// Folds the durable part of the log into the base; returns the new base and
    /// the seq it covers, or `None` when there was nothing to fold.
    fn compact(&mut self) -> Option<(Vec<u8>, i64)> {
        let n = self.durable_in_log();
        if n == 0 {
            return None;
        }
        let merged = {
            let parts = std::iter::once(self.base.as_slice())
                .chain(self.log[..n].iter().map(|(_, b)| b.as_ref()));
            yrs::merge_updates_v1(parts)
        };
        match merged {
            Ok(base) => {
                let through = self.log[n - 1].0;
                let folded: usize = self.log.drain(..n).map(|(_, b)| b.len()).sum();
                self.log_bytes -= folded;
                self.base = base.clone();
                Some((base, through))
            }
            Err(e) => {
                error!(cause = %e, "merging the update log failed; not compacted");
                None
            }
        }
    }

    /// The whole document as one v1 update.
    fn encode_whole(&self) -> Vec<u8> {
        self.awareness
            .doc()
            .transact()
            .encode_state_as_update_v1(&StateVector::default())
    }

    /// Drops the updates from `from_seq` on and rebuilds the document without them.
    fn roll_back_from(&mut self, from_seq: i64) {
        let dropped: usize = self
            .log
            .iter()
            .filter(|(seq, _)| *seq >= from_seq)
            .map(|(_, b)| b.len())
            .sum();
        self.log.retain(|(seq, _)| *seq < from_seq);
        self.log_bytes -= dropped;
        self.rebuild();
    }

    /// Rebuilds the document from the base and the logged updates, keeping the
    /// awareness states: undoes whatever a failed update left half-applied.
    fn rebuild(&mut self) {
        let doc = new_doc();
        {
            let mut txn = doc.transact_mut();
            for bytes in std::iter::once(self.base.as_slice())
                .chain(self.log.iter().map(|(_, b)| b.as_ref()))
            {
                // Cannot fail: every byte here was produced by yrs from an accepted state.
                let update = Update::decode_v1(bytes).expect("logged updates decode");
                if let Err(e) = txn.apply_update(update) {
                    error!(cause = %e, "re-applying an accepted update failed during rollback");
                }
            }
        }
        let mut rebuilt = DocState::with_doc(doc, std::mem::take(&mut self.base));
        rebuilt.take_captured();
        rebuilt.log = std::mem::take(&mut self.log);
        rebuilt.log_bytes = self.log_bytes;
        rebuilt.durable_through = self.durable_through;
        rebuilt.next_seq = self.next_seq;
        rebuilt.reindex();
        // Only the document changes: the awareness states stay exactly as they
        // are (removed ones and every clock included).
        std::mem::swap(rebuilt.awareness.doc_mut(), self.awareness.doc_mut());
        std::mem::swap(&mut rebuilt.awareness, &mut self.awareness);
        *self = rebuilt;
    }

    /// Rebuilds the item index from the base and the log.
    fn reindex(&mut self) {
        self.items = ItemIndex::of_updates(
            std::iter::once(self.base.as_slice()).chain(self.log.iter().map(|(_, b)| b.as_ref())),
        );
    }

    /// A JSON view of the root types (see [`crate::yjs::json_view`]).
    fn to_json(&self) -> serde_json::Value {
        let doc = self.awareness.doc();
        crate::yjs::json_view::json_view(&doc.transact(), doc.offset_kind())
    }
}

/// The awareness ownership rule: keeps only the entries of `update` that `conn`
/// may change (ids nobody introduced yet, or that `conn` introduced), records
/// `conn` as the owner of the new ones and returns those.
fn retain_owned(
    owners: &mut HashMap<ClientID, ConnId>,
    conn: ConnId,
    update: &mut AwarenessUpdate,
) -> Vec<ClientID> {
    update.clients.retain(|id, _| match owners.get(id) {
        Some(owner) => *owner == conn,
        None => true,
    });
    update
        .clients
        .keys()
        .filter(|id| owners.insert(**id, conn).is_none())
        .copied()
        .collect()
}

/// One doc room.
pub struct DocRoom {
    /// This room's lifetime id.
    id: RoomId,
    /// Registry key.
    key: RoomKey,
    /// Room-wide settings (idle timeout, lag timeout).
    settings: RoomSettings,
    /// Doc-room settings (size limit, awareness timeout).
    doc_settings: DocSettings,
    /// Where this room unregisters itself when it stops.
    registry: Arc<RoomRegistry>,
    /// The document.
    state: DocState,
    /// Connected members.
    members: HashMap<ConnId, DocMember>,
    /// Awareness client id → the connection that introduced it.
    owners: HashMap<ClientID, ConnId>,
    /// Updates applied that changed the document.
    updates_applied: u64,
    /// Since when the room has had no members.
    empty_since: Option<Instant>,
    /// Span every log line of this room belongs to.
    span: tracing::Span,
    /// The store's writers (`None`: persistence off, updates relay at once).
    persistence: Option<Arc<Persistence>>,
    /// Accepted updates waiting to be durable, in seq order.
    pending: VecDeque<PendingRelay>,
    /// Restores waiting for their update to be stored: (its last seq, answer).
    restore_waiters: Vec<(i64, oneshot::Sender<Result<Restored, RestoreRefused>>)>,
    /// Failures of appends from seqs up to this one were already handled by a
    /// rollback (later notifications about them are stale).
    rolled_back_through: i64,
    /// When the log was last compacted.
    last_compaction: Instant,
    /// Set when the document could not be loaded: the room admits nobody.
    failed: Option<String>,
    /// Set once the room is on its way out (final compaction under way).
    closing: bool,
    /// Fan-out counters (`kind="doc"`).
    room_metrics: RoomMetrics,
    /// Sizes of accepted updates.
    update_size: metrics::Histogram,
    /// Document size, sampled.
    doc_size: metrics::Histogram,
    /// Bytes per second queued to members.
    out_rate: RateMeter,
    /// The latest snapshot (compaction) stored of this document.
    last_snapshot: LastSnapshot,
    /// Housekeeping passes so far (to sample once a second).
    housekeeping_runs: u64,
}

impl DocRoom {
    /// A new room holding an empty document.
    pub fn new(
        id: RoomId,
        key: RoomKey,
        settings: RoomSettings,
        doc_settings: DocSettings,
        registry: Arc<RoomRegistry>,
    ) -> Self {
        let span = info_span!("room", kind = "doc", key = %key, room_id = id);
        let registry_persistence = registry.persistence();
        Self {
            id,
            key,
            settings,
            doc_settings,
            registry,
            state: DocState::empty(),
            members: HashMap::new(),
            owners: HashMap::new(),
            updates_applied: 0,
            empty_since: Some(Instant::now()),
            span,
            persistence: registry_persistence,
            pending: VecDeque::new(),
            restore_waiters: Vec::new(),
            rolled_back_through: 0,
            last_compaction: Instant::now(),
            failed: None,
            closing: false,
            room_metrics: RoomMetrics::new("doc"),
            update_size: metrics::histogram!(crate::metrics::DOC_UPDATE_SIZE),
            doc_size: metrics::histogram!(crate::metrics::DOC_SIZE),
            out_rate: RateMeter::new(Instant::now(), 0),
            last_snapshot: LastSnapshot::default(),
            housekeeping_runs: 0,
        }
    }

    /// Sends `frame` to every member (the whole doc to those catching up).
    fn broadcast(&mut self, frame: &Bytes) {
        self.deliver_all(Some(frame));
    }

    /// Delivers a shared frame (or only owed catch-ups when `None`) to everyone.
    fn deliver_all(&mut self, frame: Option<&Bytes>) {
        let now = Instant::now();
        let lag_timeout = self.settings.lag_timeout;
        let mut whole: Option<Bytes> = None;
        let (state, span) = (&self.state, &self.span);
        let mut catch_up = || {
            whole
                .get_or_insert_with(|| wire::update_frame(state.encode_whole()))
                .clone()
        };
        let mut dropped = Vec::new();
        let (mut frames, mut bytes, mut skipped, mut too_slow) = (0u64, 0u64, 0u64, 0u64);
        for (conn, member) in &mut self.members {
            match member.link.deliver(frame, &mut catch_up, now, lag_timeout) {
                Delivery::Sent(0) => {}
                Delivery::Sent(len) => {
                    frames += 1;
                    bytes += len as u64;
                }
                Delivery::Lagging => skipped += u64::from(frame.is_some()),
                Delivery::TooSlow => {
                    too_slow += 1;
                    warn!(parent: span, conn, "disconnecting a member that cannot keep up");
                    member.link.kick(
                        CloseCode::Policy,
                        format!(
                            "too slow: could not keep up with the document for {lag_timeout:?}"
                        ),
                    );
                    dropped.push(*conn);
                }
                Delivery::Gone => dropped.push(*conn),
            }
        }
        let m = &self.room_metrics;
        m.sent_total(frames, bytes);
        m.outbox_drops.increment(skipped + too_slow);
        m.lagging_disconnects.increment(too_slow);
        for conn in dropped {
            self.remove_member(conn);
        }
    }

    /// Drops an edit of a read-only member; the first time it sent something
    /// (not the empty step 2 every client sends on connecting), tells it with
    /// the y-protocols auth message "permission denied", which the stock
    /// client logs as a warning. Its awareness is still relayed.
    fn refuse_read_only_edit(&mut self, conn: ConnId, empty: bool) {
        if empty {
            return;
        }
        crate::metrics::refused("update_refused");
        let Some(member) = self.members.get_mut(&conn) else {
            return;
        };
        if std::mem::replace(&mut member.told_read_only, true) {
            return;
        }
        let denied = Message::Auth(Some(
            "read-only access: your edits are not applied nor relayed".to_owned(),
        ));
        self.reply(conn, wire::encode(&denied));
    }

    /// Sends a reply to one member; if its outbox is full, it gets the whole
    /// document as soon as it has room (a step 2 must never be lost).
    fn reply(&mut self, conn: ConnId, frame: Bytes) {
        if let Some(m) = self.members.get_mut(&conn) {
            let len = frame.len();
            if m.link.send_control(frame) {
                self.room_metrics.sent(1, len);
            } else {
                m.link.request_catch_up();
            }
        }
    }

    /// Removes a member and its awareness states, broadcasting the removal.
    fn remove_member(&mut self, conn: ConnId) {
        let Some(member) = self.members.remove(&conn) else {
            return;
        };
        let ids: Vec<ClientID> = member.clients.into_iter().collect();
        for id in &ids {
            self.owners.remove(id);
            remove_awareness_state(&mut self.state.awareness, *id);
        }
        info!(parent: &self.span, conn, awareness_ids = ids.len(), "member gone");
        self.broadcast_awareness(ids);
    }

    fn broadcast_awareness(&mut self, ids: Vec<ClientID>) {
        if ids.is_empty() {
            return;
        }
        match self.state.awareness.update_with_clients(ids) {
            Ok(update) => {
                let frame = wire::encode(&Message::Awareness(update));
                self.broadcast(&frame);
            }
            Err(e) => warn!(parent: &self.span, cause = %e, "cannot encode awareness change"),
        }
    }

    /// Keeps only the entries `conn` may change, and records ids it introduces.
    fn filter_awareness(&mut self, conn: ConnId, mut update: AwarenessUpdate) -> AwarenessUpdate {
        let introduced = retain_owned(&mut self.owners, conn, &mut update);
        if let Some(m) = self.members.get_mut(&conn) {
            m.clients.extend(introduced);
        }
        update
    }

    /// An update was integrated: relay it now (persistence off) or once the
    /// store has it.
    fn accepted(
        &mut self,
        sender: Option<ConnId>,
        seq: i64,
        update: Bytes,
        notify: &Recipient<DocLogResult>,
    ) {
        self.update_size.record(update.len() as f64);
        let frame = wire::update_frame(update.to_vec());
        let Some(p) = &self.persistence else {
            self.state.durable_through = seq;
            self.broadcast(&frame);
            return;
        };
        let record = DocUpdateRecord {
            doc: self.key.room().to_owned(),
            seq,
            update: update.to_vec(),
        };
        if p.doc_log.try_append(record, notify.clone()) {
            self.pending.push_back(PendingRelay { seq, frame, sender });
        } else {
            self.pending.push_back(PendingRelay { seq, frame, sender });
            self.storage_failed(seq, "the update log writer is overloaded".into());
        }
    }

    /// The store holds every update through `through_seq`: relay them.
    fn durable(&mut self, through_seq: i64) {
        self.state.durable_through = self.state.durable_through.max(through_seq);
        while self.pending.front().is_some_and(|p| p.seq <= through_seq) {
            if let Some(p) = self.pending.pop_front() {
                self.broadcast(&p.frame);
            }
        }
        let (done, waiting) = std::mem::take(&mut self.restore_waiters)
            .into_iter()
            .partition(|(seq, _)| *seq <= through_seq);
        self.restore_waiters = waiting;
        for (seq, answer) in done {
            let _ = answer.send(Ok(Restored { at: Some(seq) }));
        }
        if self.state.durable_in_log() >= self.doc_settings.compact_updates {
            self.compact_soon();
        }
    }

    /// Updates from `from_seq` on could not be stored: undo them, close their
    /// senders (their clients still hold the edits and send them again when they
    /// reconnect), and let the writer accept this doc's appends again.
    fn storage_failed(&mut self, from_seq: i64, reason: String) {
        if from_seq <= self.rolled_back_through {
            return; // an append already covered by an earlier rollback
        }
        self.rolled_back_through = self.state.next_seq - 1;
        error!(parent: &self.span, from_seq, cause = %reason, "edits could not be stored; rolling them back");
        let mut senders: Vec<ConnId> = self
            .pending
            .iter()
            .filter(|p| p.seq >= from_seq)
            .filter_map(|p| p.sender)
            .collect();
        senders.sort_unstable();
        senders.dedup();
        self.pending.retain(|p| p.seq < from_seq);
        let (failed, waiting) = std::mem::take(&mut self.restore_waiters)
            .into_iter()
            .partition(|(seq, _)| *seq >= from_seq);
        self.restore_waiters = waiting;
        for (_, answer) in failed {
            let _ = answer.send(Err(RestoreRefused::Unavailable(format!(
                "the restoring edit could not be stored ({reason}); the document is unchanged"
            ))));
        }
        self.state.roll_back_from(from_seq);
        for conn in senders {
            if let Some(m) = self.members.get_mut(&conn) {
                m.link.kick(
                    CloseCode::Error,
                    format!("could not store the edit ({reason}); reconnect to retry"),
                );
            }
            self.remove_member(conn);
        }
        if let Some(p) = &self.persistence {
            p.doc_log.reset(self.key.room().to_owned());
        }
    }

    /// Brings the document back to a snapshot's content with a new edit (see
    /// [`RestoreDocSnapshot`]); returns where the outcome arrives once the edit is
    /// stored, or `None` when the content already matched.
    #[allow(clippy::type_complexity)]
    fn restore(
        &mut self,
        snapshot: DocSnapshot,
        notify: &Recipient<DocLogResult>,
    ) -> Result<Option<oneshot::Receiver<Result<Restored, RestoreRefused>>>, RestoreRefused> {
        if let Some(reason) = &self.failed {
            return Err(RestoreRefused::Conflict(format!(
                "the room failed: {reason}"
            )));
        }
        if self.closing {
            return Err(RestoreRefused::Conflict("the room is closing".into()));
        }
        let integrated = self.state.restore_to(&snapshot.state).map_err(|why| {
            RestoreRefused::Conflict(format!("snapshot {}: {why}", snapshot.meta.id))
        })?;
        let Some(last) = integrated.last().map(|(seq, _)| *seq) else {
            return Ok(None);
        };
        info!(parent: &self.span, snapshot = snapshot.meta.id, through_seq = last, "restoring snapshot");
        let (done, answer) = oneshot::channel();
        if self.persistence.is_some() {
            self.restore_waiters.push((last, done));
        } else {
            // Relayed at once below: nothing to wait for.
            let _ = done.send(Ok(Restored { at: Some(last) }));
        }
        for (seq, update) in integrated {
            self.updates_applied += 1;
            self.accepted(None, seq, update, notify);
        }
        Ok(Some(answer))
    }

    /// Folds the durable log into a snapshot (in the store too, ordered after the
    /// appends it covers); returns where the store's answer arrives.
    fn compact(
        &mut self,
    ) -> Option<impl std::future::Future<Output = Result<SnapshotMeta, String>> + 'static> {
        self.last_compaction = Instant::now();
        let (base, through) = self.state.compact()?;
        let p = self.persistence.as_ref()?;
        let answer = p.doc_log.compact(self.key.room().to_owned(), through, base);
        Some(self.last_snapshot.watch(answer))
    }

    /// Compacts in the background (the outcome is logged by the writer).
    fn compact_soon(&mut self) {
        if let Some(stored) = self.compact() {
            actix::spawn(async move {
                let _ = stored.await;
            });
        }
    }

    /// Marks the room closing and compacts what is durable; the future resolves
    /// when the store has the snapshot (or gave up).
    fn final_compaction(&mut self) -> impl std::future::Future<Output = ()> + 'static {
        self.closing = true;
        let pending = self.compact();
        let span = self.span.clone();
        async move {
            if let Some(stored) = pending {
                match stored.await {
                    Ok(meta) => info!(parent: &span, snapshot = meta.id, "final compaction stored"),
                    Err(e) => {
                        error!(parent: &span, cause = %e, "final compaction failed; the log stays")
                    }
                }
            }
        }
    }

    fn handle_messages(
        &mut self,
        conn: ConnId,
        messages: Vec<Inbound>,
        notify: &Recipient<DocLogResult>,
    ) -> Result<(), DocRefusal> {
        for message in messages {
            if !self.members.contains_key(&conn) {
                return Ok(()); // dropped meanwhile (lagging); its kick explains
            }
            match message {
                Inbound::SyncStep1(sv) => {
                    let diff = self
                        .state
                        .awareness
                        .doc()
                        .transact()
                        .encode_state_as_update_v1(&sv);
                    self.reply(
                        conn,
                        wire::encode(&Message::Sync(SyncMessage::SyncStep2(diff))),
                    );
                }
                Inbound::Update { update, .. }
                    if self.members.get(&conn).is_some_and(|m| m.read_only) =>
                {
                    self.refuse_read_only_edit(conn, update.is_empty());
                }
                Inbound::Update { update, len, shape } => {
                    let limit = self.doc_settings.max_doc_bytes;
                    if self.state.size() + len > limit && self.state.pending_bytes > 0 {
                        // Updates still waiting for their dependencies were never
                        // relayed or stored: drop them rather than refuse an edit.
                        warn!(parent: &self.span, bytes = self.state.pending_bytes, "dropping pending updates at the size limit");
                        self.state.rebuild();
                    }
                    if self.state.size() + len > limit {
                        return Err(DocRefusal::TooLarge(format!(
                            "document size limit reached ({limit} bytes); further edits are refused"
                        )));
                    }
                    let integrated = self.state.apply(update, &shape).map_err(|why| {
                        warn!(parent: &self.span, conn, cause = %why, "update refused; doc rolled back");
                        DocRefusal::Invalid(format!("update does not apply: {why}"))
                    })?;
                    self.state.count_pending(len);
                    for (seq, update) in integrated {
                        self.updates_applied += 1;
                        self.accepted(Some(conn), seq, update, notify);
                    }
                }
                Inbound::Awareness(update) => {
                    let update = self.filter_awareness(conn, update);
                    if update.clients.is_empty() {
                        continue;
                    }
                    match self.state.awareness.apply_update_summary(update) {
                        Ok(Some(summary)) => {
                            let mut ids = summary.added;
                            ids.extend(summary.updated);
                            ids.extend(summary.removed);
                            self.broadcast_awareness(ids);
                        }
                        Ok(None) => {}
                        Err(e) => {
                            return Err(DocRefusal::Invalid(format!("bad awareness update: {e}")))
                        }
                    }
                }
                Inbound::AwarenessQuery => {
                    if let Ok(update) = self.state.awareness.update() {
                        self.reply(conn, wire::encode(&Message::Awareness(update)));
                    }
                }
                Inbound::Ignored => {}
            }
        }
        Ok(())
    }

    /// Removes awareness states nobody renewed within the timeout.
    fn sweep_awareness(&mut self) {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let timeout_ms = self.doc_settings.awareness_timeout.as_millis() as u64;
        let stale: Vec<ClientID> = self
            .state
            .awareness
            .iter()
            .filter(|(_, s)| s.data.is_some() && now_ms.saturating_sub(s.last_updated) > timeout_ms)
            .map(|(id, _)| id)
            .collect();
        for id in &stale {
            remove_awareness_state(&mut self.state.awareness, *id);
        }
        self.broadcast_awareness(stale);
    }

    fn housekeeping(&mut self, ctx: &mut Context<Self>) {
        self.housekeeping_runs += 1;
        if self.housekeeping_runs.is_multiple_of(4) {
            // About once a second.
            self.room_metrics.members.record(self.members.len() as f64);
            self.doc_size.record(self.state.size() as f64);
            self.out_rate
                .sample(Instant::now(), self.room_metrics.room_bytes_out());
        }
        self.sweep_awareness();
        if self.members.values().any(|m| m.link.is_lagging()) {
            self.deliver_all(None);
        }
        let now = Instant::now();
        if self.persistence.is_some()
            && self.state.durable_in_log() > 0
            && now.duration_since(self.last_compaction) >= self.doc_settings.compact_interval
        {
            self.compact_soon();
        }
        if !self.members.is_empty() {
            self.empty_since = None;
            return;
        }
        let since = *self.empty_since.get_or_insert(now);
        if now.duration_since(since) >= self.settings.idle_timeout
            && !self.closing
            && self.pending.is_empty()
        {
            info!(parent: &self.span, "room idle; stopping");
            let done = self.final_compaction();
            ctx.wait(done.into_actor(self).map(|_, _, ctx| ctx.stop()));
        }
    }
}

impl Actor for DocRoom {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        ctx.run_interval(HOUSEKEEPING_EVERY, |room, ctx| room.housekeeping(ctx));
        if let Some(p) = self.persistence.clone() {
            // Nothing else (joins and their sync step 1 included) is handled until
            // the document is loaded: nobody is ever answered with an empty doc.
            let name = self.key.room().to_owned();
            let load = async move {
                with_retry("load doc", p.settings.retry_for, || p.store.load_doc(&name)).await
            };
            ctx.wait(load.into_actor(self).map(|loaded, room, _ctx| {
                let loaded_snapshot = loaded
                    .as_ref()
                    .ok()
                    .and_then(|s| s.snapshot.as_ref().map(|s| s.meta.clone()));
                let result = loaded.map_err(|e| e.to_string()).and_then(DocState::from_stored);
                match result {
                    Ok(state) => {
                        if let Some(meta) = loaded_snapshot {
                            room.last_snapshot.record(&meta);
                        }
                        info!(parent: &room.span, bytes = state.size(), through_seq = state.durable_through, "document loaded");
                        room.state = state;
                    }
                    Err(why) => {
                        error!(parent: &room.span, cause = %why, "document could not be loaded; the room refuses members");
                        room.failed = Some(format!("document could not be loaded: {why}"));
                    }
                }
            }));
        }
        info!(parent: &self.span, "room started");
    }

    fn stopping(&mut self, _ctx: &mut Context<Self>) -> Running {
        for (_, mut m) in self.members.drain() {
            m.link.kick(CloseCode::Away, "room closed");
        }
        Running::Stop
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.registry.forget(&self.key, self.id);
        info!(parent: &self.span, updates = self.updates_applied, "room stopped");
    }
}

impl Handler<JoinDoc> for DocRoom {
    type Result = Result<(), JoinRefused>;

    fn handle(&mut self, msg: JoinDoc, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(reason) = &self.failed {
            return Err(JoinRefused::Failed(reason.clone()));
        }
        if self.closing || ctx.state() != actix::ActorState::Running {
            return Err(JoinRefused::Closing);
        }
        let max = self.doc_settings.max_members;
        if self.members.len() >= max {
            return Err(JoinRefused::Full(max));
        }
        let link = MemberLink::new(msg.outbox, msg.kick, msg.latency);
        for frame in wire::greeting(&self.state.awareness) {
            let len = frame.len();
            if link.send_control(frame) {
                self.room_metrics.sent(1, len);
            }
        }
        self.members.insert(
            msg.conn,
            DocMember {
                link,
                clients: HashSet::new(),
                read_only: msg.read_only,
                told_read_only: false,
                user: msg.user,
            },
        );
        self.empty_since = None;
        info!(parent: &self.span, conn = msg.conn, "member joined");
        Ok(())
    }
}

impl Handler<DocMessages> for DocRoom {
    type Result = Result<(), DocRefusal>;

    fn handle(&mut self, msg: DocMessages, ctx: &mut Context<Self>) -> Self::Result {
        let notify = ctx.address().recipient();
        self.handle_messages(msg.conn, msg.messages, &notify)
    }
}

impl Handler<DocLogResult> for DocRoom {
    type Result = ();

    fn handle(&mut self, msg: DocLogResult, _ctx: &mut Context<Self>) {
        match msg {
            DocLogResult::Durable { through_seq } => self.durable(through_seq),
            DocLogResult::Failed { from_seq, reason } => self.storage_failed(from_seq, reason),
        }
    }
}

impl Handler<LeaveDoc> for DocRoom {
    type Result = ();

    fn handle(&mut self, msg: LeaveDoc, _ctx: &mut Context<Self>) {
        self.remove_member(msg.conn);
    }
}

impl DocRoom {
    /// The room's figures, without encoding the document.
    fn summary(&self) -> DocRoomSummary {
        let mut members: Vec<DocMemberInfo> = self
            .members
            .iter()
            .map(|(conn, m)| DocMemberInfo {
                conn: *conn,
                outbox_depth: m.link.outbox_depth(),
                frames_skipped: m.link.frames_skipped,
                connected_secs: m.link.joined_at.elapsed().as_secs_f64(),
                latency_ms: m.link.latency.millis(),
                awareness_clients: m.clients.len(),
                read_only: m.read_only,
                user: m.user.clone(),
            })
            .collect();
        members.sort_unstable_by_key(|m| m.conn);
        DocRoomSummary {
            name: self.key.room().to_owned(),
            members,
            doc_bytes: self.state.size(),
            updates_applied: self.updates_applied,
            awareness_clients: self
                .state
                .awareness
                .iter()
                .filter(|(_, s)| s.data.is_some())
                .count(),
            pending_updates: self.pending.len(),
            bytes_out_per_sec: self.out_rate.per_sec(),
            last_snapshot: self.last_snapshot.get(),
        }
    }
}

impl Handler<InspectDoc> for DocRoom {
    type Result = actix::MessageResult<InspectDoc>;

    fn handle(&mut self, _msg: InspectDoc, _ctx: &mut Context<Self>) -> Self::Result {
        let summary = self.summary();
        actix::MessageResult(DocRoomInfo {
            summary,
            content: self.state.to_json(),
            state_update: self.state.encode_whole(),
        })
    }
}

impl Handler<DescribeDoc> for DocRoom {
    type Result = actix::MessageResult<DescribeDoc>;

    fn handle(&mut self, _msg: DescribeDoc, _ctx: &mut Context<Self>) -> Self::Result {
        actix::MessageResult(self.summary())
    }
}

impl Handler<TakeSnapshot> for DocRoom {
    type Result = ResponseActFuture<Self, Result<SnapshotMeta, String>>;

    fn handle(&mut self, _msg: TakeSnapshot, _ctx: &mut Context<Self>) -> Self::Result {
        self.last_compaction = Instant::now();
        let pending = match self.persistence.clone() {
            None => Err("persistence is off".to_owned()),
            Some(p) => {
                // Fold what is durable; with nothing new, store the base again.
                let (state, through) = self
                    .state
                    .compact()
                    .unwrap_or_else(|| (self.state.base.clone(), self.state.durable_through));
                let answer = p
                    .doc_log
                    .compact(self.key.room().to_owned(), through, state);
                Ok(self.last_snapshot.watch(answer))
            }
        };
        Box::pin(async move { pending?.await }.into_actor(self))
    }
}

/// A stored doc state (a v1 update) as JSON: yrs's view of its root types (a
/// root the server never declared shows as yrs infers it).
pub fn doc_state_json(state: &[u8]) -> Result<serde_json::Value, String> {
    let doc = new_doc();
    let update = Update::decode_v1(state).map_err(|e| format!("snapshot does not decode: {e}"))?;
    doc.transact_mut()
        .apply_update(update)
        .map_err(|e| format!("snapshot does not apply: {e}"))?;
    let state = DocState::with_doc(doc, Vec::new());
    Ok(state.to_json())
}

impl Handler<RestoreDocSnapshot> for DocRoom {
    type Result = actix::ResponseFuture<Result<Restored, RestoreRefused>>;

    /// Applies the restoring edit now; answers once it is stored (and relayed to
    /// every member), at once when nothing needed to change.
    fn handle(&mut self, msg: RestoreDocSnapshot, ctx: &mut Context<Self>) -> Self::Result {
        let answer = self.restore(msg.snapshot, &ctx.address().recipient());
        Box::pin(async move {
            match answer {
                Ok(Some(stored)) => stored.await.unwrap_or_else(|_| {
                    Err(RestoreRefused::Unavailable(
                        "the room stopped before the restore was stored".into(),
                    ))
                }),
                Ok(None) => Ok(Restored { at: None }),
                Err(refused) => Err(refused),
            }
        })
    }
}

impl Handler<StopRoom> for DocRoom {
    type Result = ResponseActFuture<Self, ()>;

    /// Compacts what is durable, then stops; appends still in flight complete in
    /// the writer (it drains before the server exits) and load after the snapshot.
    fn handle(&mut self, _msg: StopRoom, _ctx: &mut Context<Self>) -> Self::Result {
        let done = self.final_compaction();
        Box::pin(done.into_actor(self).map(|_, _, ctx| ctx.stop()))
    }
}

/// The document state driven without the actor, for [`crate::fuzzing`].
pub(crate) mod harness;
