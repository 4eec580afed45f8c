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
//! - **Characters outside texts.** Only a text (or XML text) holds characters;
//!   stock Yjs never puts them in an array, a map or an XML element. yrs lets
//!   such an item in, and then reads an array or XML node holding one by a
//!   loop that never ends when a character takes two UTF-16 units (an emoji):
//!   the JSON view of the document (the admin API, restores) hung the room's
//!   thread for good. Each range records the kind of its items' parent, so an
//!   item of characters under any other shared type is refused. (Roots take
//!   their kind from how they are read; the room's views read a root holding
//!   characters as a text, see `json_view`.)
//! - **Known clocks under another parent** ([`ItemIndex::trim_known`]). A
//!   block that repeats clocks the document has and goes on is integrated as
//!   yrs slices it, but yrs keeps the parent the block names instead of its
//!   known part's; each range records its parent's identity, and a block
//!   naming another is refused.
//!
//! Stock clients never trip these: every check of the compatibility suite
//! (`tests/node/compat`: nested maps and arrays, XML fragments from
//! y-prosemirror with nested lists, syncedstore's nested objects, typing
//! anywhere in real keystroke traces, thousands of random edits on every
//! shared type with reconnects) fails when `roomcast_refusals_total` moves,
//! and `accepts_what_editing_anywhere_writes` below feeds the index what yrs
//! itself writes.
//!
//! Depths count shared types: an item directly under a root has parent depth
//! 0, and a map inserted there is at depth 1. Items whose anchor is unknown
//! (yrs keeps them pending until they arrive, which the room never lets it
//! do, or discards them as garbage) count as depth 0.

use std::collections::HashMap;

use super::bounds::{item_identity, Anchor, BlockShape, Held, Id, UpdateShape};

/// Deepest nesting of shared types accepted. Editor documents nest a few
/// levels (ProseMirror lists in lists perhaps a few dozen); yrs's recursion
/// over 128 levels stays far within a 2 MiB thread stack, debug builds
/// included (a debug build overflowed it between 500 and 2,000 levels).
pub const MAX_TYPE_DEPTH: u32 = 128;

/// Most ranges followed along a chain of left origins: bounds the check's
/// cost. On a document cut into 20,000 runs (edits at random places), the
/// whole index costs a median 6.8 µs an edit at 16 (10.9 µs at 64), about
/// what yrs spends decoding and applying the same edit; see
/// `benches/doc_item_index.rs`.
pub const MAX_ORIGIN_HOPS: usize = 16;

/// The kind of a parent: a yrs type ref (0 array, 1 map, 2 text, 3 XML
/// element, 4 XML fragment, 5 XML hook, 6 XML text, …), [`ROOT`] or
/// [`UNKNOWN`].
type Kind = u8;
/// A root type (its kind is how it is read).
const ROOT: Kind = 0xfe;
/// Not known: the parent is missing (yrs keeps the item pending, which the
/// room refuses) or is not a shared type (yrs discards the item).
const UNKNOWN: Kind = 0xff;
/// Type refs of the shared types that hold characters: text, XML text.
const TEXT_KINDS: [Kind; 2] = [2, 6];

/// Where the items of a block hang: how deep, in what kind of parent, and
/// which one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parent {
    /// Depth of the parent (0: a root).
    depth: u32,
    /// Its kind.
    kind: Kind,
    /// Its identity ([`super::bounds::root_identity`],
    /// [`super::bounds::item_identity`]); [`NO_IDENTITY`] when unknown.
    id: u64,
}

/// `Parent::id` of an unknown parent.
const NO_IDENTITY: u64 = 0;

impl Parent {
    fn root(id: u64) -> Parent {
        Parent {
            depth: 0,
            kind: ROOT,
            id,
        }
    }
    const UNKNOWN: Parent = Parent {
        depth: 0,
        kind: UNKNOWN,
        id: NO_IDENTITY,
    };
}

/// Consecutive clocks of one client, typed one after another under one
/// parent; or one shared type. 32 bytes: clocks fit in `u32` (`bounds`
/// refuses larger ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    start: u32,
    end: u32,
    /// Clock of the left origin of the item at `start`; each later item
    /// follows the one before it.
    origin_clock: u32,
    /// Depth of the parent of these items (0: a root), saturating.
    parent_depth: u16,
    /// Kind of that parent.
    parent_kind: Kind,
    /// The type ref of the shared type this run's one item holds, or
    /// [`UNKNOWN`] for a run of other items.
    holds: Kind,
    /// Client of that origin, [`NO_ORIGIN`] when it has none.
    origin_client: u64,
    /// Identity of the parent of these items.
    parent_id: u64,
}

/// `Run::origin_client` of a run whose first item has no left origin.
const NO_ORIGIN: u64 = u64::MAX;

/// A clock as a run stores it (`bounds` refuses clocks past `u32::MAX`).
fn clock32(clock: u64) -> u32 {
    u32::try_from(clock).unwrap_or(u32::MAX)
}

/// The kind of parent the items inside what `held` holds hang in.
fn kind_held(held: Held) -> Kind {
    match held {
        Held::Type(type_ref) => type_ref,
        Held::Text | Held::Other => UNKNOWN,
    }
}

impl Run {
    fn new(start: u64, end: u64, parent: Parent, holds: Kind, origin: Option<Id>) -> Self {
        let (origin_client, origin_clock) = origin.map_or((NO_ORIGIN, 0), |(c, k)| (c, clock32(k)));
        Self {
            start: clock32(start),
            end: clock32(end),
            origin_clock,
            parent_depth: u16::try_from(parent.depth).unwrap_or(u16::MAX),
            parent_kind: parent.kind,
            holds,
            origin_client,
            parent_id: parent.id,
        }
    }

    fn parent(&self) -> Parent {
        Parent {
            depth: self.parent_depth.into(),
            kind: self.parent_kind,
            id: self.parent_id,
        }
    }

    /// Where the items inside the type this run (of `client`) holds hang.
    fn inside(&self, client: u64) -> Parent {
        Parent {
            depth: u32::from(self.parent_depth) + 1,
            kind: self.holds,
            id: item_identity((client, self.start.into())),
        }
    }

    fn origin(&self) -> Option<Id> {
        (self.origin_client != NO_ORIGIN).then_some((self.origin_client, self.origin_clock.into()))
    }

    fn contains(&self, clock: u64) -> bool {
        (u64::from(self.start)..u64::from(self.end)).contains(&clock)
    }
}

/// Where everything a document has integrated hangs (parent depth and kind)
/// and the origins of its runs, by client and clock.
#[derive(Debug, Default, Clone)]
pub struct ItemIndex {
    /// Each client's runs, sorted by clock and not overlapping.
    runs: HashMap<u64, Vec<Run>>,
}

/// What a block's parent depends on.
enum Needs {
    /// Known.
    Known(Parent),
    /// Block `index` of the same update: inside the type it holds, or
    /// (`inside` false) beside it, under the same parent.
    Block { index: usize, inside: bool },
}

/// Where the items inside what `block` holds hang, `block` hanging at `parent`.
fn inside(block: &BlockShape, parent: Parent) -> Parent {
    Parent {
        depth: parent.depth.saturating_add(1),
        kind: kind_held(block.held),
        id: item_identity((block.client, block.clock)),
    }
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

    /// How many runs the index holds (32 bytes each, plus the vectors' slack).
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
        let (id, inside) = match local.blocks[index].anchor {
            Anchor::Root(name) => return Needs::Known(Parent::root(name)),
            Anchor::Nowhere => return Needs::Known(Parent::UNKNOWN),
            // Under the type an item holds.
            Anchor::Parent(id) => (id, true),
            Anchor::Beside(id) => (id, false),
        };
        if let Some(run) = self.run(id) {
            return Needs::Known(match inside {
                true => run.inside(id.0),
                false => run.parent(),
            });
        }
        match local.find(id) {
            Some(index) => Needs::Block { index, inside },
            None => Needs::Known(Parent::UNKNOWN),
        }
    }

    /// The parent of every block of `local`, resolved against this document
    /// and the update's own blocks (in any order: a block may hang on one
    /// encoded after it). Cycles, which yrs cannot integrate, are unknown.
    fn resolve(&self, local: &Local<'_>) -> Vec<Parent> {
        let n = local.blocks.len();
        let mut parents: Vec<Option<Parent>> = vec![None; n];
        let mut on_stack = vec![false; n];
        for first in 0..n {
            let mut stack = vec![first];
            while let Some(&index) = stack.last() {
                if parents[index].is_some() {
                    stack.pop();
                    continue;
                }
                match self.needs(local, index) {
                    Needs::Known(parent) => {
                        parents[index] = Some(parent);
                        stack.pop();
                    }
                    Needs::Block { index: on, inside } => match parents[on] {
                        Some(parent) => {
                            parents[index] = Some(match inside {
                                true => self::inside(&local.blocks[on], parent),
                                false => parent,
                            });
                            stack.pop();
                        }
                        None if on_stack[on] => {
                            parents[index] = Some(Parent::UNKNOWN);
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
        parents
            .into_iter()
            .map(|parent| parent.unwrap_or(Parent::UNKNOWN))
            .collect()
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

    /// The blocks of `shape` as yrs integrates them into a document that
    /// knows each client's clocks below `known(client)`: wholly known blocks
    /// (a resend) are left out, and a block straddling the known clock keeps
    /// only its new part, which follows the known item before it (yrs slices
    /// it so). yrs keeps the parent such a block names explicitly instead of
    /// taking its new left neighbour's: a straddling block that names another
    /// parent than its known part has (which only a client reusing ids
    /// writes) is refused, as it would link items of two parents together.
    /// A stock client's straddling block is its own earlier one sent again
    /// longer, whose known part hangs where the block says.
    pub fn trim_known(
        &self,
        shape: &UpdateShape,
        known: impl Fn(u64) -> u64,
    ) -> Result<UpdateShape, String> {
        let mut blocks = Vec::with_capacity(shape.blocks.len());
        for block in &shape.blocks {
            let clock = known(block.client);
            let end = block.clock.saturating_add(block.len);
            if end <= clock {
                continue;
            }
            if block.clock >= clock {
                blocks.push(*block);
                continue;
            }
            if block.anchor == Anchor::Nowhere {
                blocks.push(BlockShape {
                    clock,
                    len: end - clock,
                    ..*block
                });
                continue;
            }
            let last_known = (block.client, clock - 1);
            let named = match block.anchor {
                Anchor::Root(name) => Some(name),
                Anchor::Parent(id) => Some(item_identity(id)),
                Anchor::Beside(_) | Anchor::Nowhere => None,
            };
            if let Some(named) = named {
                let known_parent = self.run(last_known).map(|run| run.parent_id);
                if known_parent != Some(named) {
                    return Err(format!(
                        "update rewrites clocks {}..{clock} of client {} under another parent",
                        block.clock, block.client
                    ));
                }
            }
            blocks.push(BlockShape {
                clock,
                len: end - clock,
                origin: Some(last_known),
                anchor: Anchor::Beside(last_known),
                ..*block
            });
        }
        Ok(UpdateShape {
            blocks,
            deletes: shape.deletes.clone(),
        })
    }

    /// Refuses an update that would put a shared type deeper than
    /// [`MAX_TYPE_DEPTH`] into this document, characters into a shared type
    /// other than a text, or an item between origins that contradict each
    /// other.
    pub fn check(&self, shape: &UpdateShape) -> Result<(), String> {
        let local = Local::new(&shape.blocks);
        let parents = self.resolve(&local);
        for (block, parent) in shape.blocks.iter().zip(parents) {
            let depth = parent.depth.saturating_add(1);
            if block.held.is_type() && depth > MAX_TYPE_DEPTH {
                return Err(format!(
                    "update nests shared types {depth} deep (at most {MAX_TYPE_DEPTH})"
                ));
            }
            let holds_text =
                matches!(parent.kind, ROOT | UNKNOWN) || TEXT_KINDS.contains(&parent.kind);
            if block.held == Held::Text && !holds_text {
                return Err(format!(
                    "characters inside a shared type that is not a text (type ref {})",
                    parent.kind
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
        let parents = self.resolve(&Local::new(&shape.blocks));
        for (block, parent) in shape.blocks.iter().zip(parents) {
            if block.len > 0 {
                self.insert(block, parent);
            }
        }
    }

    /// Adds the clocks of `block` under `parent`, except those already known.
    fn insert(&mut self, block: &BlockShape, parent: Parent) {
        let (client, start) = (block.client, block.clock);
        let end = start.saturating_add(block.len);
        let holds = kind_held(block.held);
        let runs = self.runs.entry(client).or_default();
        // The first item of a piece starting inside the block follows the
        // item before it.
        let piece = |from: u64, to: u64| {
            let origin = match from == start {
                true => block.origin,
                false => Some((client, from - 1)),
            };
            Run::new(from, to, parent, holds, origin)
        };
        match runs.last_mut() {
            None => runs.push(piece(start, end)),
            // The usual case: the client's next clocks.
            Some(last) if u64::from(last.end) <= start => {
                // A shared type keeps a run of its own (its type ref).
                let follows = u64::from(last.end) == start
                    && last.parent() == parent
                    && last.holds == UNKNOWN
                    && holds == UNKNOWN
                    && start > 0
                    && block.origin == Some((client, start - 1));
                if follows {
                    last.end = clock32(end);
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
    use crate::yjs::bounds::Id;
    use crate::yjs::bounds::{root_identity, update_shape_v1};
    use yrs::types::ToJson;
    use yrs::updates::decoder::Decode;
    use yrs::{
        Array, ArrayPrelim, Doc, Map, MapPrelim, MapRef, ReadTxn, StateVector, Text, Transact,
        Update, WriteTxn, XmlElementPrelim, XmlFragment, XmlTextPrelim,
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
    fn a_run_takes_32_bytes() {
        assert_eq!(std::mem::size_of::<Run>(), 32);
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
        assert_eq!(blocks[0].anchor, Anchor::Root(root_identity(b"t")));
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
        let (map, array) = (1, 0);
        let kinds = |parents: Vec<Parent>| -> Vec<(u32, Kind)> {
            parents.iter().map(|p| (p.depth, p.kind)).collect()
        };
        assert_eq!(kinds(depths), vec![(5, map), (6, array), (6, array)]);
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
        assert_eq!(
            kinds(nesting.resolve(&Local::new(&shape.blocks))),
            vec![(6, array)]
        );
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
    fn refuses_characters_outside_texts() {
        let doc = Doc::with_client_id(1);
        let update = {
            let mut txn = doc.transact_mut();
            let text = txn.get_or_insert_text("t");
            text.insert(&mut txn, 0, "ab");
            let array = txn.get_or_insert_array("a");
            array.push_back(&mut txn, 1);
            let nested = array.push_back(&mut txn, ArrayPrelim::default());
            nested.push_back(&mut txn, 2);
            let xml = txn.get_or_insert_xml_fragment("x");
            let p = xml.push_back(&mut txn, XmlElementPrelim::empty("p"));
            let inner = p.push_back(&mut txn, XmlTextPrelim::new("in xml text"));
            inner.push(&mut txn, "!");
            txn.encode_update_v1()
        };
        let index = checked_one_by_one(&[update]);
        // Characters beside the nested array's value (1#4), that is inside
        // the nested array: refused; beside the text's own: fine.
        let err = index
            .check(&shape(&item_between(9, (1, 4), (1, 4 + 1000))))
            .unwrap_err();
        assert!(err.contains("not a text"), "{err}");
        index
            .check(&shape(&item_between(9, (1, 0), (1, 1))))
            .unwrap();
        // Characters directly inside the nested array (named as parent).
        let mut direct = vec![1, 1];
        push_var(&mut direct, 9);
        push_var(&mut direct, 0);
        direct.extend_from_slice(&[4, 0]); // string, parent by id
        for n in [1, 3] {
            push_var(&mut direct, n); // 1#3: the nested array
        }
        direct.extend_from_slice(&[1, b'x', 0]);
        let err = index.check(&shape(&direct)).unwrap_err();
        assert!(err.contains("not a text"), "{err}");
        // Into the XML element, next to its XML text: refused too.
        let p_child = shape(&item_between(9, (1, 6), (1, 6 + 1000)));
        assert!(index.check(&p_child).is_err());
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
