//! What a doc room knows of every item of its document, kept by client and
//! clock range, to refuse updates before yrs integrates them into a document
//! that would break:
//!
//! - **Nesting.** yrs deletes a shared type, garbage-collects it and turns it
//!   into JSON by recursing into the types it holds, one stack frame (or
//!   several) a level: a chain of some twenty thousand nested maps, a 163 kB
//!   update, overflowed the room thread's stack when it was deleted or viewed,
//!   which aborts the whole server. An update may not put a shared type deeper
//!   than [`MAX_TYPE_DEPTH`]. [`bounds`](super::bounds) cannot tell alone, as
//!   most items name their parent only through a neighbour that may be
//!   anywhere in the document; so each range records how deep its items'
//!   parent is.
//! - **Contradictory origins.** An item says it was inserted right after its
//!   origin L and right before its right origin R. Stock Yjs never writes one
//!   where R lies left of L (a client inserts between neighbours it sees side
//!   by side), but yrs integrates such an item without complaint, and where it
//!   lands depends on the order the document was built in: a fresh replica
//!   (a joiner, a reloaded room) then shows other content than the room and
//!   its members, for good. An item is refused when R lies on L's chain of
//!   left origins, which is where the fuzzer found every such case; each range
//!   records the origin of its first item, and the items after it in the
//!   range each follow the one before (typed one after another), so the chain
//!   is followed a range at a time, at most [`MAX_ORIGIN_HOPS`] ranges.
//!   (An R left of L that those ranges do not reach is not detected.)
//!
//! Depths count shared types: an item directly under a root has parent depth
//! 0, and a map inserted there is at depth 1. Items whose anchor is unknown
//! (yrs would keep them pending, which the room refuses anyway, or discard
//! them as garbage) count as depth 0.

use std::collections::HashMap;

use super::bounds::{Anchor, BlockShape, Id, UpdateShape};

/// Deepest nesting of shared types accepted. Editor documents nest a few
/// levels (ProseMirror lists in lists perhaps a few dozen); yrs's recursion
/// over 128 levels stays far within a 2 MiB thread stack, debug builds
/// included (a debug build overflowed it between 500 and 2,000 levels).
pub const MAX_TYPE_DEPTH: u32 = 128;

/// Most ranges followed along a chain of left origins: bounds the check's
/// cost. On a document cut into 20,000 runs (edits at random places), the
/// whole index costs a median 6.7 µs an edit at 16 (10.9 µs at 64), about
/// what yrs spends decoding and applying the same edit; see
/// `benches/doc_item_index.rs`.
pub const MAX_ORIGIN_HOPS: usize = 16;

/// Consecutive clocks of one client, typed one after another under one
/// parent. 24 bytes: clocks fit in `u32` (`bounds` refuses larger ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    start: u32,
    end: u32,
    /// Clock of the left origin of the item at `start`; each later item
    /// follows the one before it.
    origin_clock: u32,
    /// Depth of the parent of these items (0: a root), saturating.
    parent_depth: u16,
    /// Client of that origin, [`NO_ORIGIN`] when it has none.
    origin_client: u64,
}

/// `Run::origin_client` of a run whose first item has no left origin.
const NO_ORIGIN: u64 = u64::MAX;

impl Run {
    fn new(start: u64, end: u64, parent_depth: u32, origin: Option<Id>) -> Self {
        let clock = |c: u64| u32::try_from(c).unwrap_or(u32::MAX);
        let (origin_client, origin_clock) = origin.map_or((NO_ORIGIN, 0), |(c, k)| (c, clock(k)));
        Self {
            start: clock(start),
            end: clock(end),
            origin_clock,
            parent_depth: u16::try_from(parent_depth).unwrap_or(u16::MAX),
            origin_client,
        }
    }

    fn origin(&self) -> Option<Id> {
        (self.origin_client != NO_ORIGIN).then_some((self.origin_client, self.origin_clock.into()))
    }

    fn contains(&self, clock: u64) -> bool {
        (u64::from(self.start)..u64::from(self.end)).contains(&clock)
    }
}

/// Parent depths and origins of everything a document has integrated, by
/// client and clock.
#[derive(Debug, Default, Clone)]
pub struct ItemIndex {
    /// Each client's runs, sorted by clock and not overlapping.
    runs: HashMap<u64, Vec<Run>>,
}

/// What a block's parent depth depends on.
enum Needs {
    /// Known: this depth.
    Depth(u32),
    /// The parent depth of block `index` of the same update, plus `plus`.
    Block { index: usize, plus: u32 },
}

/// The blocks of one update by client, to look up ids inside it.
struct Local<'a> {
    blocks: &'a [BlockShape],
    /// Client → (first clock, index) of its blocks, sorted by clock.
    by_client: HashMap<u64, Vec<(u64, usize)>>,
}

impl<'a> Local<'a> {
    fn new(blocks: &'a [BlockShape]) -> Self {
        let mut by_client: HashMap<u64, Vec<(u64, usize)>> = HashMap::new();
        for (index, block) in blocks.iter().enumerate() {
            by_client
                .entry(block.client)
                .or_default()
                .push((block.clock, index));
        }
        for list in by_client.values_mut() {
            list.sort_unstable();
        }
        Self { blocks, by_client }
    }

    /// The block holding `id`.
    fn find(&self, (client, clock): Id) -> Option<usize> {
        let list = self.by_client.get(&client)?;
        let at = list.partition_point(|&(start, _)| start <= clock);
        let (_, index) = *list.get(at.checked_sub(1)?)?;
        let block = &self.blocks[index];
        (clock < block.clock.saturating_add(block.len)).then_some(index)
    }
}

impl ItemIndex {
    /// The index of a document built from `updates` (encoded v1, in the
    /// order they were integrated), e.g. a stored base and the log after it.
    pub fn of_updates<'u>(updates: impl IntoIterator<Item = &'u [u8]>) -> Self {
        let mut index = Self::default();
        for update in updates {
            match super::bounds::update_shape_v1(update) {
                Ok(shape) => index.record(&shape),
                Err(why) => tracing::error!(cause = %why, "an integrated update does not walk"),
            }
        }
        index
    }

    /// How many runs the index holds (24 bytes each, plus the vectors' slack).
    pub fn run_count(&self) -> usize {
        self.runs.values().map(Vec::len).sum()
    }

    /// The run holding `id`, if the document has it.
    fn run(&self, (client, clock): Id) -> Option<&Run> {
        let runs = self.runs.get(&client)?;
        let at = runs.partition_point(|run| u64::from(run.start) <= clock);
        let run = runs.get(at.checked_sub(1)?)?;
        run.contains(clock).then_some(run)
    }

    /// What block `index` of `local` hangs on.
    fn needs(&self, local: &Local<'_>, index: usize) -> Needs {
        let (id, plus) = match local.blocks[index].anchor {
            Anchor::Root | Anchor::Nowhere => return Needs::Depth(0),
            // Under the type an item holds: one deeper than that item.
            Anchor::Parent(client, clock) => ((client, clock), 1),
            Anchor::Beside(client, clock) => ((client, clock), 0),
        };
        if let Some(run) = self.run(id) {
            return Needs::Depth(u32::from(run.parent_depth).saturating_add(plus));
        }
        match local.find(id) {
            Some(index) => Needs::Block { index, plus },
            None => Needs::Depth(0),
        }
    }

    /// The parent depth of every block of `shape`, resolved against this
    /// document and the update's own blocks (in any order: a block may hang
    /// on one encoded after it). Cycles, which yrs cannot integrate, count 0.
    fn resolve(&self, local: &Local<'_>) -> Vec<u32> {
        let n = local.blocks.len();
        let mut depth: Vec<Option<u32>> = vec![None; n];
        let mut on_stack = vec![false; n];
        for first in 0..n {
            let mut stack = vec![first];
            while let Some(&index) = stack.last() {
                if depth[index].is_some() {
                    stack.pop();
                    continue;
                }
                match self.needs(local, index) {
                    Needs::Depth(d) => {
                        depth[index] = Some(d);
                        stack.pop();
                    }
                    Needs::Block { index: on, plus } => match depth[on] {
                        Some(d) => {
                            depth[index] = Some(d.saturating_add(plus));
                            stack.pop();
                        }
                        None if on_stack[on] => {
                            depth[index] = Some(0);
                            stack.pop();
                        }
                        None => {
                            on_stack[index] = true;
                            on_stack[on] = true;
                            stack.push(on);
                        }
                    },
                }
            }
        }
        depth.into_iter().map(Option::unwrap_or_default).collect()
    }

    /// Whether `target` lies on the chain of left origins from `from` (is
    /// `from` itself or left of it), following at most [`MAX_ORIGIN_HOPS`]
    /// runs of this document or blocks of `local`.
    fn on_left_chain(&self, local: &Local<'_>, from: Id, target: Id) -> bool {
        let mut at = from;
        for _ in 0..MAX_ORIGIN_HOPS {
            let (start, origin) = match self.run(at) {
                Some(run) => (u64::from(run.start), run.origin()),
                None => match local.find(at) {
                    Some(index) => (local.blocks[index].clock, local.blocks[index].origin),
                    None => return false,
                },
            };
            // From `start` to `at`, each item follows the one before.
            if target.0 == at.0 && (start..=at.1).contains(&target.1) {
                return true;
            }
            match origin {
                Some(next) => at = next,
                None => return false,
            }
        }
        false
    }

    /// Refuses an update that would put a shared type deeper than
    /// [`MAX_TYPE_DEPTH`] into this document, or an item between origins
    /// that contradict each other.
    pub fn check(&self, shape: &UpdateShape) -> Result<(), String> {
        let local = Local::new(&shape.blocks);
        let depths = self.resolve(&local);
        for (block, parent_depth) in shape.blocks.iter().zip(depths) {
            let depth = parent_depth.saturating_add(1);
            if block.is_type && depth > MAX_TYPE_DEPTH {
                return Err(format!(
                    "update nests shared types {depth} deep (at most {MAX_TYPE_DEPTH})"
                ));
            }
        }
        for block in &shape.blocks {
            if let (Some(left), Some(right)) = (block.origin, block.right_origin) {
                if self.on_left_chain(&local, left, right) {
                    return Err(format!(
                        "contradictory origins: right {right:?} lies left of left {left:?}"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Records the blocks of an update the document integrated; ranges it
    /// already has are left as they are.
    pub fn record(&mut self, shape: &UpdateShape) {
        let depths = self.resolve(&Local::new(&shape.blocks));
        for (block, parent_depth) in shape.blocks.iter().zip(depths) {
            if block.len > 0 {
                self.insert(block, parent_depth);
            }
        }
    }

    /// Adds the clocks of `block` at `parent_depth`, except those already
    /// known.
    fn insert(&mut self, block: &BlockShape, parent_depth: u32) {
        let (client, start) = (block.client, block.clock);
        let end = start.saturating_add(block.len);
        let runs = self.runs.entry(client).or_default();
        // The first item of a piece starting inside the block follows the
        // item before it.
        let piece = |from: u64, to: u64| {
            let origin = match from == start {
                true => block.origin,
                false => Some((client, from - 1)),
            };
            Run::new(from, to, parent_depth, origin)
        };
        match runs.last_mut() {
            None => runs.push(piece(start, end)),
            // The usual case: the client's next clocks.
            Some(last) if u64::from(last.end) <= start => {
                let follows = u64::from(last.end) == start
                    && u32::from(last.parent_depth) == parent_depth
                    && start > 0
                    && block.origin == Some((client, start - 1));
                if follows {
                    last.end = Run::new(start, end, 0, None).end;
                } else {
                    runs.push(piece(start, end));
                }
            }
            Some(_) => {
                // Fill only the gaps between known runs (rare: a document
                // built from pieces out of clock order).
                let mut gaps = Vec::new();
                let mut from = start;
                let overlapping = runs
                    .iter()
                    .map(|r| (u64::from(r.start), u64::from(r.end)))
                    .filter(|&(s, e)| e > start && s < end);
                for (known_start, known_end) in overlapping {
                    if known_start > from {
                        gaps.push((from, known_start));
                    }
                    from = from.max(known_end);
                }
                if from < end {
                    gaps.push((from, end));
                }
                for (from, to) in gaps {
                    let at = runs.partition_point(|r| u64::from(r.start) < from);
                    runs.insert(at, piece(from, to));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yjs_wire::bounds::update_shape_v1;
    use crate::yjs_wire::bounds::Id;
    use yrs::types::ToJson;
    use yrs::updates::decoder::Decode;
    use yrs::{
        Array, ArrayPrelim, Doc, Map, MapPrelim, MapRef, ReadTxn, StateVector, Text, Transact,
        Update, WriteTxn,
    };

    /// `levels` maps nested under root map `m` (the innermost at depth
    /// `levels`), one per transaction; returns the updates and the innermost.
    fn nested_maps(doc: &Doc, levels: usize) -> (Vec<Vec<u8>>, MapRef) {
        let mut updates = Vec::new();
        let mut map = doc.get_or_insert_map("m");
        for _ in 0..levels {
            let mut txn = doc.transact_mut();
            map = map.insert(&mut txn, "child", MapPrelim::default());
            updates.push(txn.encode_update_v1());
        }
        (updates, map)
    }

    /// The nesting after `updates`, each checked (and accepted) in turn.
    fn checked_one_by_one(updates: &[Vec<u8>]) -> ItemIndex {
        let mut nesting = ItemIndex::default();
        for update in updates {
            let shape = shape(update);
            nesting.check(&shape).unwrap();
            nesting.record(&shape);
        }
        nesting
    }

    fn shape(update: &[u8]) -> UpdateShape {
        update_shape_v1(update).expect("a yrs update walks")
    }

    #[test]
    fn a_run_takes_24_bytes() {
        assert_eq!(std::mem::size_of::<Run>(), 24);
    }

    #[test]
    fn counts_string_clocks_in_utf16_units() {
        let doc = Doc::with_client_id(1);
        let text = doc.get_or_insert_text("t");
        let update = {
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, 0, "aé€😀");
            txn.encode_update_v1()
        };
        let blocks = shape(&update).blocks;
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].len, 5, "1 + 1 + 1 + 2 UTF-16 units");
        assert_eq!(blocks[0].anchor, Anchor::Root);
    }

    #[test]
    fn tracks_depth_across_updates_and_origins() {
        let doc = Doc::with_client_id(1);
        let (updates, inner) = nested_maps(&doc, 5);
        let mut nesting = checked_one_by_one(&updates);
        // An array in the innermost map (depth 5), then items after one
        // another: each names only its left neighbour.
        let update = {
            let mut txn = doc.transact_mut();
            let array = inner.insert(&mut txn, "list", ArrayPrelim::default());
            array.push_back(&mut txn, MapPrelim::default());
            array.push_back(&mut txn, MapPrelim::default());
            txn.encode_update_v1()
        };
        let shape = shape(&update);
        let depths = nesting.resolve(&Local::new(&shape.blocks));
        assert_eq!(depths, vec![5, 6, 6]);
        nesting.record(&shape);
        let update = {
            let mut txn = doc.transact_mut();
            let array = inner
                .get(&txn, "list")
                .unwrap()
                .cast::<yrs::ArrayRef>()
                .unwrap();
            array.push_back(&mut txn, 1);
            txn.encode_update_v1()
        };
        let shape = super::tests::shape(&update);
        assert_eq!(nesting.resolve(&Local::new(&shape.blocks)), vec![6]);
    }

    #[test]
    fn refuses_one_level_too_deep_over_many_updates() {
        let doc = Doc::with_client_id(1);
        let (updates, inner) = nested_maps(&doc, MAX_TYPE_DEPTH as usize);
        let nesting = checked_one_by_one(&updates);
        let update = {
            let mut txn = doc.transact_mut();
            inner.insert(&mut txn, "child", MapPrelim::default());
            txn.encode_update_v1()
        };
        let err = nesting.check(&shape(&update)).unwrap_err();
        assert!(err.contains("129 deep"), "{err}");
        // A plain value at the deepest level is fine.
        let update = {
            let mut txn = doc.transact_mut();
            inner.insert(&mut txn, "leaf", 1);
            txn.encode_update_v1()
        };
        nesting.check(&shape(&update)).unwrap();
    }

    /// Merges updates (a test helper on `Vec<Vec<u8>>`).
    trait Concat {
        fn concat_updates(&self) -> Vec<u8>;
    }
    impl Concat for Vec<Vec<u8>> {
        fn concat_updates(&self) -> Vec<u8> {
            yrs::merge_updates_v1(self.iter().map(Vec::as_slice)).unwrap()
        }
    }

    #[test]
    fn a_whole_document_in_one_update_resolves_like_its_history() {
        let doc = Doc::with_client_id(1);
        let (updates, _) = nested_maps(&doc, 40);
        let whole = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        let from_history = ItemIndex::of_updates(updates.iter().map(Vec::as_slice));
        let from_whole = ItemIndex::of_updates([whole.as_slice()]);
        assert_eq!(from_history.runs, from_whole.runs);
        let merged = updates.concat_updates();
        assert_eq!(
            ItemIndex::of_updates([merged.as_slice()]).runs,
            from_whole.runs
        );
    }

    #[test]
    fn refuses_a_deep_chain_sent_at_once_and_an_array_chain() {
        let doc = Doc::with_client_id(3);
        let (updates, _) = nested_maps(&doc, 2_000);
        let merged = updates.concat_updates();
        let err = ItemIndex::default().check(&shape(&merged)).unwrap_err();
        assert!(err.contains("deep"), "{err}");
        // Arrays in arrays: each new array names its parent only through a
        // neighbour once the parent has content.
        let doc = Doc::with_client_id(4);
        let mut array = doc.get_or_insert_array("a");
        {
            let mut txn = doc.transact_mut();
            for _ in 0..200 {
                array.push_back(&mut txn, "x");
                array = array.push_back(&mut txn, ArrayPrelim::default());
            }
        }
        let whole = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        assert!(ItemIndex::default().check(&shape(&whole)).is_err());
    }

    /// Text `s` typed by `client` at the end of root text `t` of `doc`
    /// (a replica of what the index holds); returns the update.
    fn type_at(doc: &Doc, at: u32, s: &str) -> Vec<u8> {
        let text = doc.get_or_insert_text("t");
        let mut txn = doc.transact_mut();
        text.insert(&mut txn, at, s);
        txn.encode_update_v1()
    }

    /// The update of one text item by `client` with the given origins (what
    /// no stock client writes when the origins contradict).
    fn item_between(client: u64, left: Id, right: Id) -> Vec<u8> {
        let mut update = vec![1, 1];
        for n in [client, 0] {
            push_var(&mut update, n);
        }
        update.push(0x80 | 0x40 | 4);
        for n in [left.0, left.1, right.0, right.1] {
            push_var(&mut update, n);
        }
        update.extend_from_slice(&[1, b'x', 0]);
        update
    }

    fn push_var(out: &mut Vec<u8>, mut n: u64) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }

    #[test]
    fn refuses_origins_that_contradict_along_the_left_chain() {
        let a = Doc::with_client_id(1);
        let mut updates = vec![type_at(&a, 0, "déf")];
        // Client 2 types "xyz" after 'f' (its first item follows 1#2).
        let b = Doc::with_client_id(2);
        b.transact_mut()
            .apply_update(Update::decode_v1(&updates[0]).unwrap())
            .unwrap();
        updates.push(type_at(&b, 3, "xyz"));
        let index = checked_one_by_one(&updates);
        // The fuzzer's case: after 'f' and before 'é', in one run.
        let err = index
            .check(&shape(&item_between(3, (1, 2), (1, 1))))
            .unwrap_err();
        assert!(err.contains("lies left of"), "{err}");
        // Two runs apart: after 'y' (2#1) and before 'é' (1#1).
        assert!(index
            .check(&shape(&item_between(3, (2, 1), (1, 1))))
            .is_err());
        // Legit: between neighbours, in either order of clocks.
        index
            .check(&shape(&item_between(3, (1, 1), (1, 2))))
            .unwrap();
        index
            .check(&shape(&item_between(3, (1, 2), (2, 0))))
            .unwrap();
        // The same case in one update with the run it points into.
        let c = Doc::with_client_id(4);
        let run = type_at(&c, 0, "abc");
        let both =
            yrs::merge_updates_v1([run.as_slice(), &item_between(5, (4, 2), (4, 0))]).unwrap();
        assert!(ItemIndex::default().check(&shape(&both)).is_err());
    }

    #[test]
    fn accepts_what_editing_anywhere_writes() {
        // Typing at the end, at the start and in the middle, by two clients
        // taking turns: every update a real client writes passes.
        let (a, b) = (Doc::with_client_id(1), Doc::with_client_id(2));
        let mut index = ItemIndex::default();
        let mut len = 0u32;
        for i in 0..60u32 {
            let (doc, other) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
            let at = match i % 3 {
                0 => len,
                1 => 0,
                _ => len / 2,
            };
            let update = type_at(doc, at, "ab");
            len += 2;
            let shape = shape(&update);
            index
                .check(&shape)
                .unwrap_or_else(|e| panic!("edit {i}: {e}"));
            index.record(&shape);
            other
                .transact_mut()
                .apply_update(Update::decode_v1(&update).unwrap())
                .unwrap();
        }
        let whole = a
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        ItemIndex::default().check(&shape(&whole)).unwrap();
    }

    #[test]
    fn the_deepest_accepted_document_deletes_and_views_on_a_small_stack() {
        // The room threads have the default 2 MiB stack; so does this one.
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                let doc = Doc::with_client_id(1);
                let (updates, inner) = nested_maps(&doc, MAX_TYPE_DEPTH as usize);
                let nesting = ItemIndex::of_updates(updates.iter().map(Vec::as_slice));
                assert_eq!(
                    nesting
                        .run((1, updates.len() as u64 - 1))
                        .map(|r| r.parent_depth as u32),
                    Some(127)
                );
                {
                    let mut txn = doc.transact_mut();
                    inner.insert(&mut txn, "leaf", "text");
                }
                let root = doc.get_or_insert_map("m");
                let json = root.to_json(&doc.transact());
                let _view = serde_json::to_value(&json).unwrap();
                let other = Doc::with_client_id(2);
                other
                    .transact_mut()
                    .apply_update(
                        Update::decode_v1(
                            &doc.transact()
                                .encode_state_as_update_v1(&StateVector::default()),
                        )
                        .unwrap(),
                    )
                    .unwrap();
                let mut txn = doc.transact_mut();
                root.remove(&mut txn, "child");
                let text = txn.get_or_insert_text("t");
                text.insert(&mut txn, 0, "still works");
            })
            .unwrap()
            .join()
            .expect("no stack overflow at the depth limit");
    }
}
