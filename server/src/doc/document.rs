//! A doc room's document: the `yrs::Doc` (inside its awareness), the update
//! log over a merged base that lets a failed update be rolled back, the item
//! index that guards yrs, and the content kept as clients wrote it.
//!
//! Everything stored or sent is the clients' own encoding: the base and the
//! log hold yrs's encoding of what it integrated with [`Originals`] put back,
//! and so do sync answers and catch-ups. yrs itself is only ever given
//! [`fidelity::for_yrs`] of those bytes.

use std::borrow::Cow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use yrs::block::ClientID;
use yrs::sync::Awareness;
use yrs::updates::decoder::Decode;
use yrs::{Doc, OffsetKind, Options, ReadTxn, StateVector, Transact, Update};

use crate::store::StoredDoc;
use crate::yjs::bounds::{self, UpdateShape};
use crate::yjs::fidelity::{self, Originals};
use crate::yjs::item_index::ItemIndex;
use crate::yjs::wire::ClientUpdate;

/// A document that counts text offsets in UTF-16 code units, like JavaScript
/// Yjs, should the server ever edit text by index.
pub(crate) fn new_doc() -> Doc {
    Doc::with_options(Options {
        offset_kind: OffsetKind::Utf16,
        ..Options::default()
    })
}

/// A state vector as a lookup of known clocks by client (all of a client's
/// clocks below the one it gives are known).
pub(crate) fn known_in(sv: &StateVector) -> impl Fn(u64) -> u64 + '_ {
    move |client| u64::from(sv.get(&ClientID::new(client)))
}

/// Decodes stored or logged bytes (the clients' encoding) for yrs.
fn decode_stored(bytes: &[u8]) -> Result<Update, String> {
    let for_yrs = fidelity::stored_for_yrs(bytes)?;
    Update::decode_v1(&for_yrs).map_err(|e| e.to_string())
}

/// The document with its update log: a merged base plus the updates since, each
/// numbered (`seq`) and durable once the store has it. Rolling back rebuilds the
/// doc from the base and the updates kept.
pub(crate) struct Document {
    /// The document and its awareness states.
    pub(crate) awareness: Awareness,
    /// Updates integrated by the current transaction, filled by the doc observer.
    captured: Arc<Mutex<Vec<Vec<u8>>>>,
    /// The whole document as of the last compaction (encoded v1 update); every
    /// update it covers is durable.
    pub(crate) base: Vec<u8>,
    /// Updates since the base, in seq order.
    log: Vec<(i64, Bytes)>,
    /// Sum of `log` sizes.
    log_bytes: usize,
    /// Highest seq the store holds (all of `log` up to it is durable).
    pub(crate) durable_through: i64,
    /// Seq of the next accepted update.
    next_seq: i64,
    /// Parent depth, kind and origins of the document's items (for the checks
    /// of [`ItemIndex`]).
    items: ItemIndex,
    /// Content yrs does not give back as written, as the clients wrote it.
    originals: Originals,
}

impl Document {
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
            items: ItemIndex::default(),
            originals: Originals::default(),
        }
    }

    /// An empty document.
    pub(crate) fn empty() -> Self {
        let doc = new_doc();
        let base = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        Self::with_doc(doc, base)
    }

    /// A document loaded from the store: its snapshot plus the updates after it.
    pub(crate) fn from_stored(stored: StoredDoc) -> Result<Self, String> {
        let doc = new_doc();
        let base = match &stored.snapshot {
            Some(s) => s.state.clone(),
            None => new_doc()
                .transact()
                .encode_state_as_update_v1(&StateVector::default()),
        };
        let last = stored.last_seq().unwrap_or(0);
        let mut state = Self::with_doc(doc, base);
        for (seq, update) in stored.updates {
            state.log_bytes += update.len();
            state.log.push((seq, Bytes::from(update)));
        }
        state.durable_through = last;
        state.next_seq = last + 1;
        state.load_parts()?;
        Ok(state)
    }

    /// Applies the base and the log to the (empty) document and indexes them.
    fn load_parts(&mut self) -> Result<(), String> {
        {
            let mut txn = self.awareness.doc().transact_mut();
            for part in std::iter::once(self.base.as_slice())
                .chain(self.log.iter().map(|(_, b)| b.as_ref()))
            {
                let update = decode_stored(part)
                    .map_err(|e| format!("stored update does not decode: {e}"))?;
                txn.apply_update(update)
                    .map_err(|e| format!("stored update does not apply: {e}"))?;
            }
        }
        self.take_captured();
        self.reindex();
        Ok(())
    }

    /// Approximate encoded size: the base plus the updates since.
    pub(crate) fn size(&self) -> usize {
        self.base.len() + self.log_bytes
    }

    /// Bytes of the updates since the base.
    pub(crate) fn log_bytes(&self) -> usize {
        self.log_bytes
    }

    /// Updates accepted so far (the seq of the last one).
    pub(crate) fn last_seq(&self) -> i64 {
        self.next_seq - 1
    }

    /// Checks `update` against what the document holds (its state vector is
    /// `sv`), as yrs would integrate it (known parts left out): the item
    /// index's refusals.
    pub(crate) fn check(&self, update: &ClientUpdate, sv: &StateVector) -> Result<(), String> {
        let effective: UpdateShape = self.items.trim_known(&update.shape, known_in(sv))?;
        // Before yrs integrates anything: deleting or viewing too deep a
        // nesting would overflow the room thread's stack, contradictory
        // origins would make fresh replicas disagree with the room, and
        // characters outside a text would hang yrs's readers.
        self.items.check(&effective)
    }

    /// Applies a client's update whose needs are met and which passed
    /// [`Self::check`] (against the state vector `sv`, the current one);
    /// returns what it integrated (possibly nothing new), each with its new
    /// seq, or why it failed, in which case the document is as it was before.
    pub(crate) fn apply(
        &mut self,
        update: ClientUpdate,
        sv: &StateVector,
    ) -> Result<Vec<(i64, Bytes)>, String> {
        let known = known_in(sv);
        let ClientUpdate {
            body,
            units,
            update,
            ..
        } = update;
        let integrated = self.edit("the update made yrs panic", |txn| {
            txn.apply_update(update).map_err(|e| e.to_string())?;
            // Its needs were met: yrs keeps nothing pending. Should it, the
            // update is refused rather than kept out of the log.
            match txn.has_missing_updates() {
                true => Err("update refers to content the document does not have".to_owned()),
                false => Ok(()),
            }
        })?;
        if !units.is_empty() {
            self.originals
                .keep(&body, &units, |client, clock| clock >= known(client));
        }
        Ok(self.log_integrated(integrated))
    }

    /// Makes the content equal to the document `target` encodes (stored
    /// bytes), by a new edit on top of the current one; returns what it
    /// integrated, each with its new seq (nothing when the content already
    /// matched), or why it could not, in which case the document is as it was.
    pub(crate) fn restore_to(&mut self, target: &[u8]) -> Result<Vec<(i64, Bytes)>, String> {
        let target =
            fidelity::stored_for_yrs(target).map_err(|e| format!("target does not decode: {e}"))?;
        let integrated = self.edit("restoring made yrs panic", |txn| {
            crate::yjs::restore::restore_content(txn, &target)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })?;
        Ok(self.log_integrated(integrated))
    }

    /// Runs `change` in one transaction, guarded: on an error or a panic (told
    /// as `panicked`) the document is rebuilt as it was; otherwise returns
    /// what the transaction integrated (yrs's encoding).
    fn edit(
        &mut self,
        panicked: &str,
        change: impl FnOnce(&mut yrs::TransactionMut) -> Result<(), String>,
    ) -> Result<Vec<Vec<u8>>, String> {
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
        Ok(integrated)
    }

    /// Numbers integrated updates (yrs's encoding), puts the kept content
    /// back, appends them to the log and indexes their items.
    fn log_integrated(&mut self, integrated: Vec<Vec<u8>>) -> Vec<(i64, Bytes)> {
        integrated
            .into_iter()
            .map(|update| {
                match bounds::update_shape_v1(&update) {
                    Ok(shape) => self.items.record(&shape),
                    Err(why) => tracing::error!(cause = %why, "an integrated update does not walk"),
                }
                let seq = self.next_seq;
                self.next_seq += 1;
                let bytes = Bytes::from(self.originals.restore(update));
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
    pub(crate) fn durable_in_log(&self) -> usize {
        self.log
            .iter()
            .take_while(|(seq, _)| *seq <= self.durable_through)
            .count()
    }

    /// Folds the durable part of the log into the base; returns the new base and
    /// the seq it covers, or `None` when there was nothing to fold.
    pub(crate) fn compact(&mut self) -> Option<(Vec<u8>, i64)> {
        let n = self.durable_in_log();
        if n == 0 {
            return None;
        }
        let merged = if n == self.log.len() {
            // All of the log is durable: the document itself is what folding
            // gives, and encoding it is one pass over it (yrs merges many
            // small updates in time that grows with their number squared).
            Ok(self
                .awareness
                .doc()
                .transact()
                .encode_state_as_update_v1(&StateVector::default()))
        } else {
            // Stored bytes are the clients' encoding: yrs reads them as they
            // are unless they hold a unit it cannot take.
            let placeholders = self.originals.needs_placeholders();
            let parts: Result<Vec<Cow<'_, [u8]>>, String> = std::iter::once(self.base.as_slice())
                .chain(self.log[..n].iter().map(|(_, b)| b.as_ref()))
                .map(|part| match placeholders {
                    true => fidelity::stored_for_yrs(part),
                    false => Ok(Cow::Borrowed(part)),
                })
                .collect();
            parts.and_then(|parts| yrs::merge_updates_v1(parts).map_err(|e| e.to_string()))
        };
        match merged {
            Ok(merged) => {
                let base = self.originals.restore(merged);
                let through = self.log[n - 1].0;
                let folded: usize = self.log.drain(..n).map(|(_, b)| b.len()).sum();
                self.log_bytes -= folded;
                self.base = base.clone();
                // Content deleted since is gone from the base: keep only what
                // the base and the log still hold.
                if !self.originals.is_empty() {
                    self.rekeep();
                }
                Some((base, through))
            }
            Err(e) => {
                tracing::error!(cause = %e, "merging the update log failed; not compacted");
                None
            }
        }
    }

    /// The document's content the state vector `sv` lacks, as one v1 update
    /// (the clients' encoding).
    pub(crate) fn diff(&self, sv: &StateVector) -> Vec<u8> {
        let update = self
            .awareness
            .doc()
            .transact()
            .encode_state_as_update_v1(sv);
        self.originals.restore(update)
    }

    /// The whole document as one v1 update (the clients' encoding).
    pub(crate) fn encode_whole(&self) -> Vec<u8> {
        self.diff(&StateVector::default())
    }

    /// The document's state vector.
    pub(crate) fn state_vector(&self) -> StateVector {
        self.awareness.doc().transact().state_vector()
    }

    /// Drops the updates from `from_seq` on and rebuilds the document without them.
    pub(crate) fn roll_back_from(&mut self, from_seq: i64) {
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
    pub(crate) fn rebuild(&mut self) {
        let mut rebuilt = Document::with_doc(new_doc(), std::mem::take(&mut self.base));
        rebuilt.log = std::mem::take(&mut self.log);
        rebuilt.log_bytes = self.log_bytes;
        rebuilt.durable_through = self.durable_through;
        rebuilt.next_seq = self.next_seq;
        if let Err(why) = rebuilt.load_parts() {
            // Cannot happen: every byte here was accepted from this document.
            tracing::error!(cause = %why, "re-applying accepted updates failed during rollback");
        }
        // Only the document changes: the awareness states stay exactly as they
        // are (removed ones and every clock included).
        std::mem::swap(rebuilt.awareness.doc_mut(), self.awareness.doc_mut());
        std::mem::swap(&mut rebuilt.awareness, &mut self.awareness);
        *self = rebuilt;
    }

    /// Rebuilds the item index and the kept content from the base and the log.
    fn reindex(&mut self) {
        let parts = || {
            std::iter::once(self.base.as_slice()).chain(self.log.iter().map(|(_, b)| b.as_ref()))
        };
        self.items = ItemIndex::of_updates(parts());
        self.rekeep();
    }

    /// Rebuilds the kept content from the base and the log.
    fn rekeep(&mut self) {
        let mut originals = Originals::default();
        for part in
            std::iter::once(self.base.as_slice()).chain(self.log.iter().map(|(_, b)| b.as_ref()))
        {
            if let Err(why) = originals.keep_stored(part) {
                tracing::error!(cause = %why, "a stored update does not walk");
            }
        }
        self.originals = originals;
    }

    /// How much content is kept as written: units and bytes.
    pub(crate) fn kept(&self) -> (usize, usize) {
        (self.originals.len(), self.originals.bytes())
    }

    /// A JSON view of the root types (see [`crate::yjs::json_view`]).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let doc = self.awareness.doc();
        crate::yjs::json_view::json_view(&doc.transact(), doc.offset_kind())
    }
}

/// A stored doc state (a v1 update, the clients' encoding) as JSON: yrs's
/// view of its root types (a root the server never declared shows as yrs
/// infers it).
pub fn stored_json(state: &[u8]) -> Result<serde_json::Value, String> {
    let doc = new_doc();
    let update = decode_stored(state).map_err(|e| format!("snapshot does not decode: {e}"))?;
    doc.transact_mut()
        .apply_update(update)
        .map_err(|e| format!("snapshot does not apply: {e}"))?;
    let view = crate::yjs::json_view::json_view(&doc.transact(), doc.offset_kind());
    Ok(view)
}
