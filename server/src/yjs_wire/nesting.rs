//! How deep shared types nest in a doc room's document.
//!
//! yrs deletes a shared type, garbage-collects it and turns it into JSON by
//! recursing into the types it holds, one stack frame (or several) a level: a
//! chain of some twenty thousand nested maps, a 163 kB update, overflows the
//! room thread's stack when it is deleted or viewed, which aborts the whole
//! server. [`bounds`](super::bounds) cannot see this in the update alone,
//! since most items name their parent only through a neighbour that may be
//! anywhere in the document. So each room keeps a [`Nesting`]: for every
//! clock range of every client, how deep the parent of those items is, built
//! from the updates the document integrated. An update is checked against it
//! before yrs sees it, and refused (1007) when it would put a shared type
//! deeper than [`MAX_TYPE_DEPTH`].
//!
//! Depths count shared types: an item directly under a root has parent depth
//! 0, and a map inserted there is at depth 1. Items whose anchor is unknown
//! (yrs would keep them pending, which the room refuses anyway, or discard
//! them as garbage) count as depth 0.

use std::collections::HashMap;

use super::bounds::{Anchor, BlockShape, UpdateShape};

/// Deepest nesting of shared types accepted. Editor documents nest a few
/// levels (ProseMirror lists in lists perhaps a few dozen); yrs's recursion
/// over 128 levels stays far within a 2 MiB thread stack, debug builds
/// included.
pub const MAX_TYPE_DEPTH: u32 = 128;

/// Consecutive clocks of one client whose items share a parent depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    start: u64,
    end: u64,
    /// Depth of the parent of these items (0: a root).
    parent_depth: u32,
}

/// Parent depths of everything a document has integrated, by client and clock.
#[derive(Debug, Default, Clone)]
pub struct Nesting {
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

    /// The block holding clock `clock` of `client`.
    fn find(&self, client: u64, clock: u64) -> Option<usize> {
        let list = self.by_client.get(&client)?;
        let at = list.partition_point(|&(start, _)| start <= clock);
        let (_, index) = *list.get(at.checked_sub(1)?)?;
        let block = &self.blocks[index];
        (clock < block.clock.saturating_add(block.len)).then_some(index)
    }
}

impl Nesting {
    /// The nesting of a document built from `updates` (encoded v1, in the
    /// order they were integrated), e.g. a stored base and the log after it.
    pub fn of_updates<'u>(updates: impl IntoIterator<Item = &'u [u8]>) -> Self {
        let mut nesting = Self::default();
        for update in updates {
            match super::bounds::update_shape_v1(update) {
                Ok(shape) => nesting.record(&shape),
                Err(why) => tracing::error!(cause = %why, "an integrated update does not walk"),
            }
        }
        nesting
    }

    /// Parent depth of clock `clock` of `client`, if the document has it.
    fn lookup(&self, client: u64, clock: u64) -> Option<u32> {
        let runs = self.runs.get(&client)?;
        let at = runs.partition_point(|run| run.start <= clock);
        let run = runs.get(at.checked_sub(1)?)?;
        (clock < run.end).then_some(run.parent_depth)
    }

    /// What block `index` of `local` hangs on.
    fn needs(&self, local: &Local<'_>, index: usize) -> Needs {
        let (client, clock, plus) = match local.blocks[index].anchor {
            Anchor::Root | Anchor::Nowhere => return Needs::Depth(0),
            // Under the type an item holds: one deeper than that item.
            Anchor::Parent(client, clock) => (client, clock, 1),
            Anchor::Beside(client, clock) => (client, clock, 0),
        };
        if let Some(depth) = self.lookup(client, clock) {
            return Needs::Depth(depth.saturating_add(plus));
        }
        match local.find(client, clock) {
            Some(index) => Needs::Block { index, plus },
            None => Needs::Depth(0),
        }
    }

    /// The parent depth of every block of `shape`, resolved against this
    /// document and the update's own blocks (in any order: a block may hang
    /// on one encoded after it). Cycles, which yrs cannot integrate, count 0.
    fn resolve(&self, shape: &UpdateShape) -> Vec<u32> {
        let local = Local::new(&shape.blocks);
        let n = shape.blocks.len();
        let mut depth: Vec<Option<u32>> = vec![None; n];
        let mut on_stack = vec![false; n];
        for first in 0..n {
            let mut stack = vec![first];
            while let Some(&index) = stack.last() {
                if depth[index].is_some() {
                    stack.pop();
                    continue;
                }
                match self.needs(&local, index) {
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

    /// Refuses an update that would put a shared type deeper than
    /// [`MAX_TYPE_DEPTH`] into this document.
    pub fn check(&self, shape: &UpdateShape) -> Result<(), String> {
        let depths = self.resolve(shape);
        for (block, parent_depth) in shape.blocks.iter().zip(depths) {
            let depth = parent_depth.saturating_add(1);
            if block.is_type && depth > MAX_TYPE_DEPTH {
                return Err(format!(
                    "update nests shared types {depth} deep (at most {MAX_TYPE_DEPTH})"
                ));
            }
        }
        Ok(())
    }

    /// Records the blocks of an update the document integrated; ranges it
    /// already has are left as they are.
    pub fn record(&mut self, shape: &UpdateShape) {
        let depths = self.resolve(shape);
        for (block, parent_depth) in shape.blocks.iter().zip(depths) {
            if block.len > 0 {
                let end = block.clock.saturating_add(block.len);
                self.insert(block.client, block.clock, end, parent_depth);
            }
        }
    }

    /// Adds clocks `start..end` of `client` at `parent_depth`, except those
    /// already known.
    fn insert(&mut self, client: u64, start: u64, end: u64, parent_depth: u32) {
        let runs = self.runs.entry(client).or_default();
        let run = Run {
            start,
            end,
            parent_depth,
        };
        match runs.last_mut() {
            None => runs.push(run),
            // The usual case: the client's next clocks.
            Some(last) if last.end <= start => {
                if last.end == start && last.parent_depth == parent_depth {
                    last.end = end;
                } else {
                    runs.push(run);
                }
            }
            Some(_) => {
                // Fill only the gaps between known runs (rare: a document
                // built from pieces out of clock order).
                let mut gaps = Vec::new();
                let mut from = start;
                for known in runs.iter().filter(|r| r.end > start && r.start < end) {
                    if known.start > from {
                        gaps.push((from, known.start));
                    }
                    from = from.max(known.end);
                }
                if from < end {
                    gaps.push((from, end));
                }
                for (start, end) in gaps {
                    let at = runs.partition_point(|r| r.start < start);
                    runs.insert(
                        at,
                        Run {
                            start,
                            end,
                            parent_depth,
                        },
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yjs_wire::bounds::update_shape_v1;
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
    fn checked_one_by_one(updates: &[Vec<u8>]) -> Nesting {
        let mut nesting = Nesting::default();
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
        let depths = nesting.resolve(&shape);
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
        assert_eq!(nesting.resolve(&super::tests::shape(&update)), vec![6]);
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
        let from_history = Nesting::of_updates(updates.iter().map(Vec::as_slice));
        let from_whole = Nesting::of_updates([whole.as_slice()]);
        assert_eq!(from_history.runs, from_whole.runs);
        let merged = updates.concat_updates();
        assert_eq!(
            Nesting::of_updates([merged.as_slice()]).runs,
            from_whole.runs
        );
    }

    #[test]
    fn refuses_a_deep_chain_sent_at_once_and_an_array_chain() {
        let doc = Doc::with_client_id(3);
        let (updates, _) = nested_maps(&doc, 2_000);
        let merged = updates.concat_updates();
        let err = Nesting::default().check(&shape(&merged)).unwrap_err();
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
        assert!(Nesting::default().check(&shape(&whole)).is_err());
    }

    #[test]
    fn the_deepest_accepted_document_deletes_and_views_on_a_small_stack() {
        // The room threads have the default 2 MiB stack; so does this one.
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                let doc = Doc::with_client_id(1);
                let (updates, inner) = nested_maps(&doc, MAX_TYPE_DEPTH as usize);
                let nesting = Nesting::of_updates(updates.iter().map(Vec::as_slice));
                assert_eq!(nesting.lookup(1, updates.len() as u64 - 1), Some(127));
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
