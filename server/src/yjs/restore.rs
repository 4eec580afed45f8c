//! Restoring a doc room's document to an older snapshot, as a new edit.
//!
//! A restore cannot replace the document: every member holds the current one and
//! would sync it straight back. Instead [`restore_content`] edits the live document
//! until its content equals the snapshot's. The edit is an ordinary Yjs
//! transaction: its update reaches members like any other, every replica that
//! applies it ends with the same content, and a member that reconnects with the
//! pre-restore document brings nothing the server has not already seen (it cannot
//! undo the restore). Edits made concurrently with the restore are merged by the
//! CRDT as usual: a concurrent insertion survives next to the restored content.
//!
//! The edit is as small as the structure allows, so unchanged content keeps its
//! identity (remote cursors and nested shared types stay valid):
//! - text (`Y.Text`, `Y.XmlText`): the common prefix and suffix are kept, the middle
//!   is deleted and the target's middle inserted with its formatting; then
//!   formatting that differs on kept text is set (`format`, `null` removes). Offsets
//!   are counted the way the live document counts them (UTF-16 code units in doc
//!   rooms), on character boundaries, so a surrogate pair is never split.
//! - maps (and XML attributes): keys absent from the target are removed, differing
//!   values set, equal ones left alone; a nested shared value of the same type is
//!   restored in place, recursively.
//! - arrays (and XML children): the common prefix and suffix are kept; a middle of
//!   the same length is restored element by element (same-typed shared values in
//!   place), otherwise it is replaced.
//!
//! New shared values are created as empty prelims (`MapPrelim`, `ArrayPrelim`,
//! `DeltaPrelim`, `XmlElementPrelim`…) and then filled by the same restore code:
//! yrs's own deep-copy prelims would turn XML attribute values into strings.
//!
//! Everything that can fail is checked on a decoded copy of the target and on the
//! live roots before the first edit, so an error leaves the document untouched.
//!
//! Limits:
//! - an array (or XML children) middle whose length changed is replaced whole:
//!   shared values in it get a new identity, and edits made concurrently inside
//!   the old ones are lost with them; a nested value whose type changed is
//!   replaced too.
//! - refused: subdocuments and weak links in the target, roots that are XML
//!   elements or XML text or mix keyed entries with a sequence, text mixed with
//!   list elements, and a root whose kind differs between now and the target
//!   (arrays and XML fragments count as one kind).
//! - a text embed that is a plain string reads as text (yrs's delta shows it so);
//!   such a text is refused as mixed rather than restored wrongly.
//! - history is kept: the restore adds to the document, like any edit.

use std::any::Any as PanicPayload;
use std::collections::BTreeMap;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use yrs::branch::{Branch, BranchPtr};
use yrs::types::text::{DeltaPrelim, Diff};
use yrs::types::xml::XmlDeltaPrelim;
use yrs::types::Attrs;
use yrs::updates::decoder::Decode;
use yrs::{
    Any, Array, ArrayPrelim, ArrayRef, Doc, In, Map, MapPrelim, MapRef, OffsetKind, Options, Out,
    ReadTxn, Text, TextPrelim, TextRef, Transact, TransactionMut, Update, WriteTxn,
    XmlElementPrelim, XmlFragmentPrelim, XmlTextPrelim,
};

/// Deepest nesting of shared types a target may have (deeper is refused rather
/// than risking the stack): what a doc room accepts from clients.
const MAX_DEPTH: usize = super::item_index::MAX_TYPE_DEPTH as usize;

/// What a restore changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreSummary {
    /// Roots that were edited (created, emptied or changed), by name.
    pub changed: Vec<String>,
    /// Roots whose content already equalled the target, by name.
    pub unchanged: Vec<String>,
    /// Elementary edits made (inserts, removals, key sets, format changes).
    pub edits: usize,
}

impl RestoreSummary {
    /// True when the document already equalled the target: the transaction made
    /// no change and produces no update.
    pub fn is_noop(&self) -> bool {
        self.edits == 0
    }
}

/// The kind of a root shared type, as declared or as inferred from its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKind {
    /// `Y.Text`.
    Text,
    /// `Y.Map`.
    Map,
    /// `Y.Array`.
    Array,
    /// `Y.XmlFragment` (an array whose elements are all XML nodes).
    XmlFragment,
}

impl fmt::Display for RootKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RootKind::Text => "text",
            RootKind::Map => "map",
            RootKind::Array => "array",
            RootKind::XmlFragment => "XML fragment",
        })
    }
}

/// Why a restore was refused. The document is untouched in every case.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The target bytes are not a v1 update.
    #[error("target does not decode: {0}")]
    Decode(String),
    /// The target decodes but does not apply to an empty document.
    #[error("target does not apply: {0}")]
    Apply(String),
    /// The target depends on updates it does not contain: not a whole document.
    #[error("target is not a whole document: it depends on updates it does not contain")]
    Incomplete,
    /// A root holds content that cannot be restored (subdocument, weak link, an
    /// XML element or XML text root, text mixed with list elements…).
    #[error("root `{root}` cannot be restored: {reason}")]
    Unsupported {
        /// The root's name.
        root: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A root holds one kind of content now and another in the target.
    #[error("root `{root}` is a {current} now but a {target} in the target")]
    KindMismatch {
        /// The root's name.
        root: String,
        /// Its kind in the live document.
        current: RootKind,
        /// Its kind in the target.
        target: RootKind,
    },
}

/// Edits the document of `txn` so that its content equals the document encoded in
/// `target` (a v1 update of a whole document, e.g. a stored snapshot).
///
/// Every root of either document is restored: a root absent from the target is
/// emptied, a root absent now is created and filled. Roots the server never
/// declared are typed from their content and declared on `txn`'s document
/// (`get_or_insert_*`; this changes no encoded state). Text formatting and embeds
/// are restored too.
///
/// The edits are part of `txn`: the caller commits it and relays its update like
/// any accepted update. On error nothing was edited.
pub fn restore_content(
    txn: &mut TransactionMut,
    target: &[u8],
) -> Result<RestoreSummary, RestoreError> {
    let offsets = txn.doc().offset_kind();
    let snapshot = load_target(target, offsets)?;
    let plans = {
        let read = snapshot.transact();
        plan_roots(txn, &read, offsets)?
    };
    // Declare every root in the copy too, so a root absent from the target reads
    // as an empty one of the right kind.
    let targets: Vec<Option<BranchPtr>> = {
        let mut write = snapshot.transact_mut();
        plans
            .iter()
            .map(|plan| plan.kind.map(|kind| declare(&mut write, &plan.name, kind)))
            .collect()
    };
    let read = snapshot.transact();
    let mut restorer = Restorer {
        live: txn,
        target: &read,
        offsets,
        edits: 0,
    };
    let mut summary = RestoreSummary::default();
    for (plan, target) in plans.into_iter().zip(targets) {
        let (Some(kind), Some(target)) = (plan.kind, target) else {
            summary.unchanged.push(plan.name);
            continue;
        };
        let live = declare(restorer.live, &plan.name, kind);
        let before = restorer.edits;
        restorer.restore_node(live, target, kind.node());
        if restorer.edits > before {
            summary.changed.push(plan.name);
        } else {
            summary.unchanged.push(plan.name);
        }
    }
    summary.edits = restorer.edits;
    Ok(summary)
}

/// Decodes `bytes` into a fresh document counting offsets like the live one.
/// yrs panics on some malformed input; a panic is reported as an error.
fn load_target(bytes: &[u8], offsets: OffsetKind) -> Result<Doc, RestoreError> {
    let update = catch_unwind(|| Update::decode_v1(bytes))
        .map_err(|p| RestoreError::Decode(panic_text(p)))?
        .map_err(|e| RestoreError::Decode(e.to_string()))?;
    let doc = Doc::with_options(Options {
        offset_kind: offsets,
        ..Options::default()
    });
    let applied = catch_unwind(AssertUnwindSafe(|| {
        let mut txn = doc.transact_mut();
        txn.apply_update(update).map(|()| txn.has_missing_updates())
    }));
    match applied {
        Err(p) => Err(RestoreError::Apply(panic_text(p))),
        Ok(Err(e)) => Err(RestoreError::Apply(e.to_string())),
        Ok(Ok(true)) => Err(RestoreError::Incomplete),
        Ok(Ok(false)) => Ok(doc),
    }
}

/// The message of a caught panic.
fn panic_text(payload: Box<dyn PanicPayload + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("yrs panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("yrs panicked: {s}")
    } else {
        "yrs panicked".to_owned()
    }
}

/// One root to restore.
struct RootPlan {
    /// Its name.
    name: String,
    /// Its kind; `None` when it is empty (or absent) in both documents.
    kind: Option<RootKind>,
}

/// Decides each root's kind and checks everything the edit relies on, reading only.
fn plan_roots<L: ReadTxn, T: ReadTxn>(
    live: &L,
    target: &T,
    offsets: OffsetKind,
) -> Result<Vec<RootPlan>, RestoreError> {
    let mut roots: BTreeMap<String, (Option<Out>, Option<Out>)> = BTreeMap::new();
    for (name, value) in live.root_refs() {
        roots.entry(name.to_owned()).or_default().0 = Some(value);
    }
    for (name, value) in target.root_refs() {
        roots.entry(name.to_owned()).or_default().1 = Some(value);
    }
    let mut plans = Vec::with_capacity(roots.len());
    for (name, (now, then)) in roots {
        let unsupported = |reason: String| RestoreError::Unsupported {
            root: name.clone(),
            reason,
        };
        let current = match &now {
            Some(value) => root_kind(value, live, offsets).map_err(&unsupported)?,
            None => None,
        };
        let wanted = match &then {
            Some(value) => root_kind(value, target, offsets).map_err(&unsupported)?,
            None => None,
        };
        let kind = match (current, wanted) {
            (Some(c), Some(t)) if c == t || (c.node() == Node::List && t.node() == Node::List) => {
                Some(c)
            }
            (Some(c), Some(t)) => {
                return Err(RestoreError::KindMismatch {
                    root: name,
                    current: c,
                    target: t,
                })
            }
            (c, t) => c.or(t),
        };
        if let Some(kind) = kind {
            if let Some(branch) = now.as_ref().and_then(branch_of) {
                check_shape(branch, kind.node(), live, offsets).map_err(&unsupported)?;
            }
            if let Some(branch) = then.as_ref().and_then(branch_of) {
                check_tree(branch, kind.node(), target, offsets, 0).map_err(&unsupported)?;
            }
        }
        plans.push(RootPlan { name, kind });
    }
    Ok(plans)
}

/// A root's kind: its declared type, or inferred from its content (`None` when
/// it has none).
pub(crate) fn root_kind<T: ReadTxn>(
    value: &Out,
    txn: &T,
    offsets: OffsetKind,
) -> Result<Option<RootKind>, String> {
    match value {
        Out::YText(_) => Ok(Some(RootKind::Text)),
        Out::YMap(_) => Ok(Some(RootKind::Map)),
        Out::YArray(_) => Ok(Some(RootKind::Array)),
        Out::YXmlFragment(_) => Ok(Some(RootKind::XmlFragment)),
        Out::UndefinedRef(branch) => infer_kind(*branch, txn, offsets),
        Out::YXmlElement(_) => Err("it is an XML element".to_owned()),
        Out::YXmlText(_) => Err("it is an XML text".to_owned()),
        _ => Err("it is not a text, map, array or XML fragment".to_owned()),
    }
}

/// Infers the kind of a root that was never declared, from how yrs stores it:
/// keyed entries make a map; a sequence whose content reads as text (strings,
/// embeds, formats) and counts like one makes a text; any other sequence is an
/// array, an XML fragment when every element is an XML node.
fn infer_kind<T: ReadTxn>(
    branch: BranchPtr,
    txn: &T,
    offsets: OffsetKind,
) -> Result<Option<RootKind>, String> {
    let keyed = MapRef::from(branch).len(txn) > 0;
    let listed = branch.len() > 0;
    match (keyed, listed) {
        (false, false) => Ok(None),
        (true, false) => Ok(Some(RootKind::Map)),
        (true, true) => Err("it holds both keyed entries and a sequence \
             (an XML element or XML text root)"
            .to_owned()),
        (false, true) => {
            let pieces = pieces(branch, txn);
            let texty = pieces.iter().any(|p| match p {
                Piece::Str(..) => true,
                Piece::Embed(value, _) => matches!(value, Out::Any(_)),
            });
            if texty && units_of(&pieces, offsets) == u64::from(TextRef::from(branch).len(txn)) {
                return Ok(Some(RootKind::Text));
            }
            if pieces.iter().any(|p| matches!(p, Piece::Str(..))) {
                // Characters mixed with list content (no client writes
                // that): yrs reads such a sequence as a list by a loop that
                // never ends on a two-unit character, so it is not read.
                return Err("it mixes characters with other content".to_owned());
            }
            let xml = ArrayRef::from(branch).iter(txn).all(|v| {
                matches!(
                    v,
                    Out::YXmlElement(_) | Out::YXmlText(_) | Out::YXmlFragment(_)
                )
            });
            Ok(Some(if xml {
                RootKind::XmlFragment
            } else {
                RootKind::Array
            }))
        }
    }
}

/// Declares root `name` as `kind` and returns its branch.
fn declare<W: WriteTxn>(txn: &mut W, name: &str, kind: RootKind) -> BranchPtr {
    match kind {
        RootKind::Text => ptr(&txn.get_or_insert_text(name)),
        RootKind::Map => ptr(&txn.get_or_insert_map(name)),
        RootKind::Array => ptr(&txn.get_or_insert_array(name)),
        RootKind::XmlFragment => ptr(&txn.get_or_insert_xml_fragment(name)),
    }
}

/// The branch behind a shared ref.
fn ptr<R: AsRef<Branch>>(shared: &R) -> BranchPtr {
    BranchPtr::from(shared.as_ref())
}

/// The branch behind a shared value (`None` for plain values and subdocuments).
pub(crate) fn branch_of(value: &Out) -> Option<BranchPtr> {
    value.try_branch().map(BranchPtr::from)
}

/// The parts of a node the restore edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    /// `Y.Text`: the sequence, read as text.
    Text,
    /// `Y.Map`: the keyed entries.
    Map,
    /// `Y.Array`, `Y.XmlFragment`: the sequence, read as a list.
    List,
    /// `Y.XmlElement`: attributes (keyed) and children (list).
    Element,
    /// `Y.XmlText`: attributes (keyed) and text.
    XmlText,
}

impl Node {
    fn keyed(self) -> bool {
        matches!(self, Node::Map | Node::Element | Node::XmlText)
    }
    fn text(self) -> bool {
        matches!(self, Node::Text | Node::XmlText)
    }
    fn list(self) -> bool {
        matches!(self, Node::List | Node::Element)
    }
}

impl RootKind {
    fn node(self) -> Node {
        match self {
            RootKind::Text => Node::Text,
            RootKind::Map => Node::Map,
            RootKind::Array | RootKind::XmlFragment => Node::List,
        }
    }
}

/// What a nested shared value is made of (`None`: not a supported shared type).
fn node_of(value: &Out) -> Option<Node> {
    match value {
        Out::YText(_) => Some(Node::Text),
        Out::YMap(_) => Some(Node::Map),
        Out::YArray(_) | Out::YXmlFragment(_) => Some(Node::List),
        Out::YXmlElement(e) => e.try_tag().map(|_| Node::Element),
        Out::YXmlText(_) => Some(Node::XmlText),
        _ => None,
    }
}

/// Whether two shared values are of the same type (and tag, for XML elements).
fn same_type(a: &Out, b: &Out) -> bool {
    match (a, b) {
        (Out::YXmlElement(x), Out::YXmlElement(y)) => x.try_tag() == y.try_tag(),
        _ => std::mem::discriminant(a) == std::mem::discriminant(b),
    }
}

/// A run of a text: a string with one set of attributes, or one embed.
#[derive(Debug)]
enum Piece {
    /// Characters (adjacent runs with equal attributes are merged).
    Str(String, Attrs),
    /// An embedded value or shared type, one offset unit long.
    Embed(Out, Attrs),
}

impl Piece {
    fn attrs(&self) -> &Attrs {
        match self {
            Piece::Str(_, a) | Piece::Embed(_, a) => a,
        }
    }
    fn units(&self, offsets: OffsetKind) -> u64 {
        match self {
            Piece::Str(s, _) => s.chars().map(|c| u64::from(char_units(c, offsets))).sum(),
            Piece::Embed(..) => 1,
        }
    }
}

/// A text's content as pieces, in a canonical form (equal texts give equal pieces).
fn pieces<T: ReadTxn>(branch: BranchPtr, txn: &T) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::new();
    let diff: Vec<Diff<()>> = TextRef::from(branch).diff(txn, |_| ());
    for d in diff {
        let attrs = d.attributes.map(|a| *a).unwrap_or_default();
        match d.insert {
            Out::Any(Any::String(s)) => {
                if let Some(Piece::Str(prev, prev_attrs)) = out.last_mut() {
                    if *prev_attrs == attrs {
                        prev.push_str(&s);
                        continue;
                    }
                }
                out.push(Piece::Str(s.to_string(), attrs));
            }
            other => out.push(Piece::Embed(other, attrs)),
        }
    }
    out
}

/// Offset units of a character.
fn char_units(c: char, offsets: OffsetKind) -> u32 {
    let n = match offsets {
        OffsetKind::Utf16 => c.len_utf16(),
        OffsetKind::Bytes => c.len_utf8(),
    };
    // At most 4.
    n as u32
}

/// Offset units of pieces.
fn units_of(pieces: &[Piece], offsets: OffsetKind) -> u64 {
    pieces.iter().map(|p| p.units(offsets)).sum()
}

/// One character or embed of a text: the piece it belongs to and the character
/// (`None` for an embed).
type Token = (usize, Option<char>);

/// A text's characters and embeds, one token each.
fn tokens(pieces: &[Piece]) -> Vec<Token> {
    let mut out = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        match piece {
            Piece::Str(s, _) => out.extend(s.chars().map(|c| (i, Some(c)))),
            Piece::Embed(..) => out.push((i, None)),
        }
    }
    out
}

/// A length as a yrs index. Lengths here come from yrs's own u32 counts.
fn index(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Lengths of the common prefix and common suffix of `a` and `b` (not overlapping).
fn common_ends<A, B>(a: &[A], b: &[B], mut eq: impl FnMut(&A, &B) -> bool) -> (usize, usize) {
    let max = a.len().min(b.len());
    let mut prefix = 0;
    while prefix < max && eq(&a[prefix], &b[prefix]) {
        prefix += 1;
    }
    let mut suffix = 0;
    while suffix < max - prefix && eq(&a[a.len() - 1 - suffix], &b[b.len() - 1 - suffix]) {
        suffix += 1;
    }
    (prefix, suffix)
}

/// Checks that a node's sequence counts the way index-based edits count it: a
/// text holds only characters and embeds, a list no characters.
fn check_shape<T: ReadTxn>(
    branch: BranchPtr,
    node: Node,
    txn: &T,
    offsets: OffsetKind,
) -> Result<(), String> {
    if node.text()
        && units_of(&pieces(branch, txn), offsets) != u64::from(TextRef::from(branch).len(txn))
    {
        return Err("its text is mixed with list elements".to_owned());
    }
    if node.list() {
        let array = ArrayRef::from(branch);
        if array.iter(txn).count() != array.len(txn) as usize {
            return Err("its list is mixed with text".to_owned());
        }
    }
    Ok(())
}

/// Checks a target node and everything in it: shapes, and only values the restore
/// can re-create.
fn check_tree<T: ReadTxn>(
    branch: BranchPtr,
    node: Node,
    txn: &T,
    offsets: OffsetKind,
    depth: usize,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("shared types nest deeper than {MAX_DEPTH}"));
    }
    check_shape(branch, node, txn, offsets)?;
    if node.keyed() {
        for (key, value) in entries(branch, txn) {
            check_value(&value, txn, offsets, depth)
                .map_err(|e| format!("under key `{key}`: {e}"))?;
        }
    }
    if node.list() {
        for (i, value) in elements(branch, txn).iter().enumerate() {
            check_value(value, txn, offsets, depth).map_err(|e| format!("at index {i}: {e}"))?;
        }
    }
    if node.text() {
        for piece in pieces(branch, txn) {
            if let Piece::Embed(value, _) = &piece {
                check_value(value, txn, offsets, depth).map_err(|e| format!("in an embed: {e}"))?;
            }
        }
    }
    Ok(())
}

fn check_value<T: ReadTxn>(
    value: &Out,
    txn: &T,
    offsets: OffsetKind,
    depth: usize,
) -> Result<(), String> {
    match value {
        Out::Any(_) => Ok(()),
        Out::YDoc(_) => Err("a subdocument".to_owned()),
        other => match (node_of(other), branch_of(other)) {
            (Some(node), Some(branch)) => check_tree(branch, node, txn, offsets, depth + 1),
            _ => Err("a shared type of unknown kind (a weak link?)".to_owned()),
        },
    }
}

/// A map's (or XML node's attributes') live entries, by key.
fn entries<T: ReadTxn>(branch: BranchPtr, txn: &T) -> BTreeMap<String, Out> {
    let map = MapRef::from(branch);
    // Bound to a local: the iterator borrows `map`.
    let entries = map.iter(txn).map(|(k, v)| (k.to_owned(), v)).collect();
    entries
}

/// A list's elements.
fn elements<T: ReadTxn>(branch: BranchPtr, txn: &T) -> Vec<Out> {
    ArrayRef::from(branch).iter(txn).collect()
}

/// Deep equality of two values that live in different documents.
fn same_value<A: ReadTxn, B: ReadTxn>(a: &Out, ta: &A, b: &Out, tb: &B) -> bool {
    match (a, b) {
        (Out::Any(x), Out::Any(y)) => x == y,
        _ => match (node_of(a), branch_of(a), branch_of(b)) {
            (Some(node), Some(x), Some(y)) if same_type(a, b) => same_node(x, ta, y, tb, node),
            _ => false,
        },
    }
}

fn same_node<A: ReadTxn, B: ReadTxn>(
    a: BranchPtr,
    ta: &A,
    b: BranchPtr,
    tb: &B,
    node: Node,
) -> bool {
    if node.keyed() {
        let (x, y) = (entries(a, ta), entries(b, tb));
        let equal = x.len() == y.len()
            && x.iter()
                .zip(&y)
                .all(|((kx, vx), (ky, vy))| kx == ky && same_value(vx, ta, vy, tb));
        if !equal {
            return false;
        }
    }
    if node.list() {
        let (x, y) = (elements(a, ta), elements(b, tb));
        if x.len() != y.len() || !x.iter().zip(&y).all(|(u, v)| same_value(u, ta, v, tb)) {
            return false;
        }
    }
    if node.text() {
        let (x, y) = (pieces(a, ta), pieces(b, tb));
        let equal = x.len() == y.len()
            && x.iter().zip(&y).all(|(p, q)| match (p, q) {
                (Piece::Str(s, sa), Piece::Str(t, ta2)) => s == t && sa == ta2,
                (Piece::Embed(u, ua), Piece::Embed(v, va)) => ua == va && same_value(u, ta, v, tb),
                _ => false,
            });
        if !equal {
            return false;
        }
    }
    true
}

/// The attribute changes that turn formatting `now` into `wanted` (`null` removes).
fn attr_change(now: &Attrs, wanted: &Attrs) -> Attrs {
    let mut change = Attrs::new();
    for (key, value) in wanted {
        if now.get(key) != Some(value) {
            change.insert(key.clone(), value.clone());
        }
    }
    for key in now.keys() {
        if !wanted.contains_key(key) {
            change.insert(key.clone(), Any::Null);
        }
    }
    change
}

/// The edit in progress: the live transaction and the decoded target.
struct Restorer<'a, 'doc, T: ReadTxn> {
    /// The live document's transaction: every edit goes here.
    live: &'a mut TransactionMut<'doc>,
    /// A read transaction on the decoded target.
    target: &'a T,
    /// How the live document counts text offsets.
    offsets: OffsetKind,
    /// Elementary edits made so far.
    edits: usize,
}

impl<T: ReadTxn> Restorer<'_, '_, T> {
    /// Edits live node `live` until it equals target node `target`, both `node`.
    fn restore_node(&mut self, live: BranchPtr, target: BranchPtr, node: Node) {
        if node.keyed() {
            self.restore_entries(live, target);
        }
        if node.text() {
            self.restore_text(live, target);
        }
        if node.list() {
            self.restore_list(live, target);
        }
    }

    /// Deep equality of a live value and a target value.
    fn same(&self, live: &Out, target: &Out) -> bool {
        same_value(live, &*self.live, target, self.target)
    }

    /// If live value `live` can be restored in place into `target` (same type, and
    /// a sequence that counts as expected), the two branches and their node.
    fn in_place(&self, live: &Out, target: &Out) -> Option<(BranchPtr, BranchPtr, Node)> {
        let node = node_of(target)?;
        if !same_type(live, target) {
            return None;
        }
        let (l, t) = (branch_of(live)?, branch_of(target)?);
        check_shape(l, node, &*self.live, self.offsets).ok()?;
        Some((l, t, node))
    }

    fn restore_entries(&mut self, live: BranchPtr, target: BranchPtr) {
        let map = MapRef::from(live);
        let now = entries(live, &*self.live);
        let wanted = entries(target, self.target);
        for key in now.keys() {
            if !wanted.contains_key(key) {
                map.remove(self.live, key);
                self.edits += 1;
            }
        }
        for (key, value) in &wanted {
            if let Some(current) = now.get(key) {
                if self.same(current, value) {
                    continue;
                }
                if let Some((l, t, node)) = self.in_place(current, value) {
                    self.restore_node(l, t, node);
                    continue;
                }
            }
            self.set_entry(&map, key, value);
        }
    }

    /// Sets `map[key]` to a copy of target value `value`.
    fn set_entry(&mut self, map: &MapRef, key: &str, value: &Out) {
        match value {
            Out::Any(any) => {
                map.insert(self.live, key, any.clone());
                self.edits += 1;
            }
            shared => {
                if let Some((prelim, node)) = empty_like(shared) {
                    let created = map.insert(self.live, key, prelim);
                    self.edits += 1;
                    self.fill(&created, shared, node);
                }
            }
        }
    }

    /// Restores a just-created empty shared value from the target value it copies.
    fn fill(&mut self, created: &Out, source: &Out, node: Node) {
        if let (Some(new), Some(from)) = (branch_of(created), branch_of(source)) {
            self.restore_node(new, from, node);
        }
    }

    fn restore_list(&mut self, live: BranchPtr, target: BranchPtr) {
        let array = ArrayRef::from(live);
        let now = elements(live, &*self.live);
        let wanted = elements(target, self.target);
        let (prefix, suffix) = common_ends(&now, &wanted, |a, b| self.same(a, b));
        let old = &now[prefix..now.len() - suffix];
        let new = &wanted[prefix..wanted.len() - suffix];
        if old.len() == new.len() {
            for (i, (current, value)) in old.iter().zip(new).enumerate() {
                if self.same(current, value) {
                    continue;
                }
                if let Some((l, t, node)) = self.in_place(current, value) {
                    self.restore_node(l, t, node);
                    continue;
                }
                let at = index((prefix + i) as u64);
                array.remove_range(self.live, at, 1);
                self.edits += 1;
                self.insert_elements(&array, at, std::slice::from_ref(value));
            }
        } else {
            let at = index(prefix as u64);
            if !old.is_empty() {
                array.remove_range(self.live, at, index(old.len() as u64));
                self.edits += 1;
            }
            self.insert_elements(&array, at, new);
        }
    }

    /// Inserts copies of target values at `at`: runs of plain values as one range.
    fn insert_elements(&mut self, array: &ArrayRef, mut at: u32, values: &[Out]) {
        let mut plain: Vec<Any> = Vec::new();
        for value in values {
            if let Out::Any(any) = value {
                plain.push(any.clone());
                continue;
            }
            if !plain.is_empty() {
                let n = index(plain.len() as u64);
                array.insert_range(self.live, at, std::mem::take(&mut plain));
                self.edits += 1;
                at += n;
            }
            if let Some((prelim, node)) = empty_like(value) {
                let created = array.insert(self.live, at, prelim);
                self.edits += 1;
                at += 1;
                self.fill(&created, value, node);
            }
        }
        if !plain.is_empty() {
            array.insert_range(self.live, at, plain);
            self.edits += 1;
        }
    }

    fn restore_text(&mut self, live: BranchPtr, target: BranchPtr) {
        let text = TextRef::from(live);
        let now = pieces(live, &*self.live);
        let wanted = pieces(target, self.target);
        let (old, new) = (tokens(&now), tokens(&wanted));
        let (prefix, suffix) = common_ends(&old, &new, |a, b| match (a.1, b.1) {
            (Some(x), Some(y)) => x == y,
            (None, None) => match (&now[a.0], &wanted[b.0]) {
                (Piece::Embed(x, _), Piece::Embed(y, _)) => self.same(x, y),
                _ => false,
            },
            _ => false,
        });
        let offsets = self.offsets;
        let units = |toks: &[Token]| -> u64 {
            toks.iter()
                .map(|(_, c)| c.map_or(1, |c| u64::from(char_units(c, offsets))))
                .sum()
        };
        let start = index(units(&old[..prefix]));
        let removed = index(units(&old[prefix..old.len() - suffix]));
        if removed > 0 {
            text.remove_range(self.live, start, removed);
            self.edits += 1;
        }
        let middle = &new[prefix..new.len() - suffix];
        let mut at = start;
        let mut i = 0;
        while i < middle.len() {
            let piece = middle[i].0;
            let run = middle[i..].iter().take_while(|t| t.0 == piece).count();
            match &wanted[piece] {
                Piece::Str(_, attrs) => {
                    let chunk: String = middle[i..i + run].iter().filter_map(|t| t.1).collect();
                    text.insert_with_attributes(self.live, at, &chunk, attrs.clone());
                    at += index(units(&middle[i..i + run]));
                }
                Piece::Embed(value, attrs) => {
                    self.insert_embed(&text, at, value, attrs.clone());
                    at += 1;
                }
            }
            i += run;
            self.edits += 1;
        }
        self.restore_formatting(&text, live, target);
    }

    /// Inserts a copy of target embed `value` into `text` at `at`.
    fn insert_embed(&mut self, text: &TextRef, at: u32, value: &Out, attrs: Attrs) {
        let txn = &mut *self.live;
        let created = match value {
            Out::Any(any) => {
                text.insert_embed_with_attributes(txn, at, any.clone(), attrs);
                return;
            }
            Out::YText(_) => {
                ptr(&text.insert_embed_with_attributes(txn, at, TextPrelim::default(), attrs))
            }
            Out::YMap(_) => {
                ptr(&text.insert_embed_with_attributes(txn, at, MapPrelim::default(), attrs))
            }
            Out::YArray(_) => {
                ptr(&text.insert_embed_with_attributes(txn, at, ArrayPrelim::default(), attrs))
            }
            Out::YXmlElement(e) => match e.try_tag() {
                Some(tag) => ptr(&text.insert_embed_with_attributes(
                    txn,
                    at,
                    XmlElementPrelim::empty(tag.clone()),
                    attrs,
                )),
                None => return,
            },
            Out::YXmlText(_) => {
                ptr(&text.insert_embed_with_attributes(txn, at, XmlTextPrelim::default(), attrs))
            }
            Out::YXmlFragment(_) => ptr(&text.insert_embed_with_attributes(
                txn,
                at,
                XmlFragmentPrelim::default(),
                attrs,
            )),
            // Refused by the checks before any edit.
            _ => return,
        };
        if let (Some(node), Some(from)) = (node_of(value), branch_of(value)) {
            self.restore_node(created, from, node);
        }
    }

    /// Once the characters are equal, sets the target's formatting where it differs.
    fn restore_formatting(&mut self, text: &TextRef, live: BranchPtr, target: BranchPtr) {
        let now = pieces(live, &*self.live);
        let wanted = pieces(target, self.target);
        if units_of(&now, self.offsets) != units_of(&wanted, self.offsets) {
            return;
        }
        let runs = |pieces: &[Piece]| -> Vec<(u64, Attrs)> {
            pieces
                .iter()
                .map(|p| (p.units(self.offsets), p.attrs().clone()))
                .collect()
        };
        let (a, b) = (runs(&now), runs(&wanted));
        let mut changes: Vec<(u64, u64, Attrs)> = Vec::new();
        let (mut i, mut j, mut used_a, mut used_b, mut pos) = (0, 0, 0u64, 0u64, 0u64);
        while i < a.len() && j < b.len() {
            let step = (a[i].0 - used_a).min(b[j].0 - used_b);
            if step > 0 {
                let change = attr_change(&a[i].1, &b[j].1);
                if !change.is_empty() {
                    match changes.last_mut() {
                        Some((start, len, last)) if *start + *len == pos && *last == change => {
                            *len += step
                        }
                        _ => changes.push((pos, step, change)),
                    }
                }
            }
            pos += step;
            used_a += step;
            used_b += step;
            if used_a >= a[i].0 {
                i += 1;
                used_a = 0;
            }
            if used_b >= b[j].0 {
                j += 1;
                used_b = 0;
            }
        }
        for (start, len, change) in changes {
            text.format(self.live, index(start), index(len), change);
            self.edits += 1;
        }
    }
}

/// An empty prelim of the same type as shared value `value`, and its node.
fn empty_like(value: &Out) -> Option<(In, Node)> {
    let prelim = match value {
        Out::YText(_) => In::Text(DeltaPrelim::default()),
        Out::YMap(_) => In::Map(MapPrelim::default()),
        Out::YArray(_) => In::Array(ArrayPrelim::default()),
        Out::YXmlElement(e) => In::XmlElement(XmlElementPrelim::empty(e.try_tag()?.clone())),
        Out::YXmlText(_) => In::XmlText(XmlDeltaPrelim::default()),
        Out::YXmlFragment(_) => In::XmlFragment(XmlFragmentPrelim::default()),
        _ => return None,
    };
    Some((prelim, node_of(value)?))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use yrs::types::text::YChange;
    use yrs::types::ToJson;
    use yrs::{
        Assoc, GetString, IndexedSequence, StateVector, Xml, XmlElementRef, XmlFragment,
        XmlFragmentRef,
    };

    use super::*;

    /// A document counting offsets like a doc room's, with a fixed client id.
    fn doc(client: u64) -> Doc {
        Doc::with_options(Options {
            client_id: yrs::ClientID::new(client),
            offset_kind: OffsetKind::Utf16,
            ..Options::default()
        })
    }

    /// The whole document as one v1 update (what the store keeps as a snapshot).
    fn state(doc: &Doc) -> Vec<u8> {
        doc.transact()
            .encode_state_as_update_v1(&StateVector::default())
    }

    fn apply(doc: &Doc, update: &[u8]) {
        let update = Update::decode_v1(update).expect("test update decodes");
        doc.transact_mut()
            .apply_update(update)
            .expect("test update applies");
    }

    /// Sends `to` what `from` has and it lacks.
    fn sync(from: &Doc, to: &Doc) {
        let sv = to.transact().state_vector();
        let update = from.transact().encode_state_as_update_v1(&sv);
        apply(to, &update);
    }

    /// A server-side copy: loaded from updates, so its roots are undeclared.
    fn loaded(update: &[u8], client: u64) -> Doc {
        let d = doc(client);
        apply(&d, update);
        d
    }

    /// Restores `target` into `doc`; returns the outcome and the update the
    /// transaction produced, if any.
    fn restore(
        doc: &Doc,
        target: &[u8],
    ) -> (Result<RestoreSummary, RestoreError>, Option<Vec<u8>>) {
        let captured = Arc::new(Mutex::new(Vec::new()));
        let sink = captured.clone();
        doc.observe_update_v1("restore-test", move |_, e| {
            sink.lock().unwrap().push(e.update.clone());
        })
        .unwrap();
        let result = {
            let mut txn = doc.transact_mut();
            restore_content(&mut txn, target)
        };
        doc.unobserve_update_v1("restore-test").unwrap();
        let mut updates = captured.lock().unwrap().clone();
        assert!(updates.len() <= 1, "one transaction, one update");
        (result, updates.pop())
    }

    fn text(doc: &Doc, name: &str) -> String {
        let txn = doc.transact();
        txn.get_text(name)
            .map(|t| t.get_string(&txn))
            .unwrap_or_default()
    }

    /// Text with its formatting, runs with equal attributes merged.
    fn rich(doc: &Doc, name: &str) -> Vec<(String, Attrs)> {
        let txn = doc.transact();
        let Some(t) = txn.get_text(name) else {
            return Vec::new();
        };
        let mut out: Vec<(String, Attrs)> = Vec::new();
        for d in t.diff(&txn, YChange::identity) {
            let attrs = d.attributes.map(|a| *a).unwrap_or_default();
            let s = match d.insert {
                Out::Any(Any::String(s)) => s.to_string(),
                other => format!("<embed {}>", other.to_json(&txn)),
            };
            match out.last_mut() {
                Some((prev, a)) if *a == attrs => prev.push_str(&s),
                _ => out.push((s, attrs)),
            }
        }
        out
    }

    fn map_json(doc: &Doc, name: &str) -> Any {
        let txn = doc.transact();
        txn.get_map(name)
            .map(|m| m.to_json(&txn))
            .unwrap_or(Any::Undefined)
    }

    fn array_json(doc: &Doc, name: &str) -> Any {
        let txn = doc.transact();
        txn.get_array(name)
            .map(|a| a.to_json(&txn))
            .unwrap_or(Any::Undefined)
    }

    fn xml(doc: &Doc, name: &str) -> String {
        let txn = doc.transact();
        txn.get_xml_fragment(name)
            .map(|f| f.get_string(&txn))
            .unwrap_or_default()
    }

    fn bold() -> Attrs {
        Attrs::from([("bold".into(), true.into())])
    }

    #[test]
    fn text_restore_brings_back_the_snapshot_text() {
        let client = doc(1);
        let code = client.get_or_insert_text("code");
        let server = doc(100);
        code.push(&mut client.transact_mut(), "fn main() {}\n");
        sync(&client, &server);
        code.insert(&mut client.transact_mut(), 11, "println!(\"héllo 🎲\"); ");
        sync(&client, &server);
        let s1 = state(&server);
        let expected = text(&loaded(&s1, 7), "code");
        assert_eq!(expected, "fn main() {println!(\"héllo 🎲\"); }\n");
        {
            let mut txn = client.transact_mut();
            code.remove_range(&mut txn, 0, 3);
            code.insert(&mut txn, 0, "pub fn ");
            code.push(&mut txn, "// wörld ✓\n");
        }
        sync(&client, &server);
        {
            let mut txn = client.transact_mut();
            let len = code.len(&txn);
            code.remove_range(&mut txn, len - 4, 4);
        }
        sync(&client, &server);
        assert_ne!(text(&server, "code"), expected);

        let (result, update) = restore(&server, &s1);
        let summary = result.expect("restores");
        assert_eq!(summary.changed, vec!["code".to_owned()]);
        assert_eq!(text(&server, "code"), expected);
        // A member applying the restore update ends with the same text.
        apply(&client, &update.expect("the restore is an update"));
        assert_eq!(text(&client, "code"), expected);
    }

    #[test]
    fn restore_converges_with_a_concurrent_client_edit() {
        let client = doc(1);
        let code = client.get_or_insert_text("code");
        let meta = client.get_or_insert_map("meta");
        let server = doc(100);
        {
            let mut txn = client.transact_mut();
            code.push(&mut txn, "hello world");
            meta.insert(&mut txn, "title", "v1");
        }
        sync(&client, &server);
        let s1 = state(&server);
        {
            let mut txn = client.transact_mut();
            code.insert(&mut txn, 6, "brave new ");
            meta.insert(&mut txn, "title", "v2");
            meta.insert(&mut txn, "extra", 1);
        }
        sync(&client, &server);

        // Concurrently: the client edits, the server restores.
        {
            let mut txn = client.transact_mut();
            let len = code.len(&txn);
            code.insert(&mut txn, len, "!");
            meta.insert(&mut txn, "status", "draft");
        }
        let client_edit = server_lacks(&client, &server);
        let (result, update) = restore(&server, &s1);
        assert!(!result.expect("restores").is_noop());
        apply(&client, &update.expect("the restore is an update"));
        apply(&server, &client_edit);

        // Both kept: the restore removed "brave new " and the new keys, the
        // client's "!" and "status" survive; both replicas are identical.
        assert_eq!(text(&server, "code"), "hello world!");
        assert_eq!(text(&client, "code"), "hello world!");
        let expected = Any::from_json(r#"{"title":"v1","status":"draft"}"#).unwrap();
        assert_eq!(map_json(&server, "meta"), expected);
        assert_eq!(map_json(&client, "meta"), expected);
    }

    /// What `from` has that `to` lacks, as one update.
    fn server_lacks(from: &Doc, to: &Doc) -> Vec<u8> {
        let sv = to.transact().state_vector();
        from.transact().encode_state_as_update_v1(&sv)
    }

    #[test]
    fn an_offline_client_reconnecting_does_not_undo_the_restore() {
        let client = doc(1);
        let code = client.get_or_insert_text("code");
        let meta = client.get_or_insert_map("meta");
        let server = doc(100);
        {
            let mut txn = client.transact_mut();
            code.push(&mut txn, "version one");
            meta.insert(&mut txn, "n", 1);
        }
        sync(&client, &server);
        let s1 = state(&server);
        {
            let mut txn = client.transact_mut();
            code.remove_range(&mut txn, 8, 3);
            code.push(&mut txn, "two");
            meta.insert(&mut txn, "n", 2);
        }
        sync(&client, &server);
        // The client goes offline holding the pre-restore document.
        let (result, _) = restore(&server, &s1);
        result.expect("restores");
        assert_eq!(text(&server, "code"), "version one");

        // It reconnects and sends its whole state.
        apply(&server, &state(&client));
        assert_eq!(text(&server, "code"), "version one");
        assert_eq!(
            map_json(&server, "meta"),
            Any::from_json(r#"{"n":1}"#).unwrap()
        );
        // And catches up with the restore.
        sync(&server, &client);
        assert_eq!(text(&client, "code"), "version one");
        assert_eq!(map_json(&client, "meta"), map_json(&server, "meta"));
    }

    #[test]
    fn kept_text_keeps_its_identity_and_utf16_offsets() {
        let client = doc(1);
        let code = client.get_or_insert_text("code");
        let server = doc(100);
        code.push(&mut client.transact_mut(), "héllo 🎲 wörld");
        sync(&client, &server);
        let s1 = state(&server);
        code.insert(&mut client.transact_mut(), 9, "big ");
        sync(&client, &server);
        assert_eq!(text(&server, "code"), "héllo 🎲 big wörld");
        // A remote cursor just before "wörld" (UTF-16 index 13 now, 9 after).
        let cursor = {
            let txn = client.transact();
            code.sticky_index(&txn, 13, Assoc::After).unwrap()
        };

        let (result, update) = restore(&server, &s1);
        result.expect("restores");
        assert_eq!(text(&server, "code"), "héllo 🎲 wörld");
        apply(&client, &update.unwrap());
        let txn = client.transact();
        assert_eq!(code.get_string(&txn), "héllo 🎲 wörld");
        assert_eq!(cursor.get_offset(&txn).unwrap().index, 9);
    }

    #[test]
    fn surrogate_pairs_are_never_split() {
        let client = doc(1);
        let code = client.get_or_insert_text("code");
        code.push(&mut client.transact_mut(), "a🎲b");
        let s1 = state(&client);
        {
            let mut txn = client.transact_mut();
            code.remove_range(&mut txn, 1, 2);
            code.insert(&mut txn, 1, "🎳");
        }
        // 🎲 and 🎳 share their high surrogate.
        let server = loaded(&state(&client), 100);
        let (result, update) = restore(&server, &s1);
        result.expect("restores");
        assert_eq!(text(&server, "code"), "a🎲b");
        apply(&client, &update.unwrap());
        assert_eq!(text(&client, "code"), "a🎲b");
    }

    #[test]
    fn formatting_is_restored() {
        let client = doc(1);
        let body = client.get_or_insert_text("body");
        {
            let mut txn = client.transact_mut();
            body.push(&mut txn, "hello ");
            body.insert_with_attributes(&mut txn, 6, "world", bold());
        }
        let s1 = state(&client);
        let expected = rich(&loaded(&s1, 7), "body");
        {
            let mut txn = client.transact_mut();
            body.format(&mut txn, 6, 5, Attrs::from([("bold".into(), Any::Null)]));
            body.format(&mut txn, 0, 5, bold());
            body.insert_with_attributes(
                &mut txn,
                5,
                " big",
                Attrs::from([("italic".into(), true.into())]),
            );
        }
        let server = loaded(&state(&client), 100);
        assert_ne!(rich(&server, "body"), expected);

        let (result, update) = restore(&server, &s1);
        result.expect("restores");
        assert_eq!(rich(&server, "body"), expected);
        apply(&client, &update.unwrap());
        assert_eq!(rich(&client, "body"), expected);
    }

    #[test]
    fn text_embeds_are_restored() {
        let client = doc(1);
        let body = client.get_or_insert_text("body");
        {
            let mut txn = client.transact_mut();
            body.push(&mut txn, "see ");
            body.insert_embed(&mut txn, 4, Any::from_json(r#"{"image":"a.png"}"#).unwrap());
            body.push(&mut txn, " and ");
            let m = body.insert_embed_with_attributes(&mut txn, 10, MapPrelim::default(), bold());
            m.insert(&mut txn, "mention", "@ann");
        }
        let s1 = state(&client);
        let expected = rich(&loaded(&s1, 7), "body");
        {
            let mut txn = client.transact_mut();
            body.remove_range(&mut txn, 3, 8);
        }
        let server = loaded(&state(&client), 100);
        assert_eq!(text(&server, "body"), "see");

        let (result, update) = restore(&server, &s1);
        result.expect("restores");
        assert_eq!(rich(&server, "body"), expected);
        apply(&client, &update.unwrap());
        assert_eq!(rich(&client, "body"), expected);
    }

    /// A map with plain values, a nested text and a nested map holding an array.
    fn rich_map(client: &Doc) -> MapRef {
        let meta = client.get_or_insert_map("meta");
        let mut txn = client.transact_mut();
        meta.insert(&mut txn, "title", "v1");
        meta.insert(&mut txn, "count", 1);
        let body = meta.insert(&mut txn, "body", TextPrelim::new("first draft"));
        body.insert_with_attributes(&mut txn, 0, "A ", bold());
        let settings = meta.insert(&mut txn, "settings", MapPrelim::default());
        settings.insert(&mut txn, "theme", "dark");
        let tags = settings.insert(&mut txn, "tags", ArrayPrelim::default());
        tags.insert_range(&mut txn, 0, ["a", "b"]);
        meta.insert(&mut txn, "note", TextPrelim::new("a text note"));
        meta
    }

    #[test]
    fn maps_with_nested_texts_and_maps_are_restored() {
        let client = doc(1);
        let meta = rich_map(&client);
        let server = doc(100);
        sync(&client, &server);
        let s1 = state(&server);
        let expected = map_json(&loaded(&s1, 7), "meta");
        {
            let mut txn = client.transact_mut();
            meta.insert(&mut txn, "title", "v2");
            meta.remove(&mut txn, "count");
            let Some(Out::YText(body)) = meta.get(&txn, "body") else {
                panic!("body is a text")
            };
            body.insert(&mut txn, 2, "second and ");
            let Some(Out::YMap(settings)) = meta.get(&txn, "settings") else {
                panic!("settings is a map")
            };
            settings.insert(&mut txn, "theme", "light");
            let Some(Out::YArray(tags)) = settings.get(&txn, "tags") else {
                panic!("tags is an array")
            };
            tags.remove(&mut txn, 0);
            tags.push_back(&mut txn, "c");
            meta.insert(&mut txn, "note", "now a plain string");
            meta.insert(&mut txn, "extra", TextPrelim::new("only later"));
        }
        sync(&client, &server);
        let body_before = {
            let txn = server.transact();
            txn.get_map("meta").unwrap().get(&txn, "body")
        };

        let (result, update) = restore(&server, &s1);
        assert_eq!(result.expect("restores").changed, vec!["meta".to_owned()]);
        assert_eq!(map_json(&server, "meta"), expected);
        {
            let txn = server.transact();
            let meta = txn.get_map("meta").unwrap();
            // The nested text was edited in place, not replaced.
            assert_eq!(meta.get(&txn, "body"), body_before);
            // The note is a shared text again.
            assert!(matches!(meta.get(&txn, "note"), Some(Out::YText(_))));
        }
        apply(&client, &update.unwrap());
        assert_eq!(map_json(&client, "meta"), expected);
    }

    #[test]
    fn arrays_with_inserted_and_removed_elements_are_restored() {
        let client = doc(1);
        let items = client.get_or_insert_array("items");
        {
            let mut txn = client.transact_mut();
            items.insert_range(&mut txn, 0, [Any::from(1), Any::from("two")]);
            let m = items.push_back(&mut txn, MapPrelim::default());
            m.insert(&mut txn, "n", 3);
            items.push_back(&mut txn, 4);
        }
        let s1 = state(&client);
        let expected = array_json(&loaded(&s1, 7), "items");
        {
            let mut txn = client.transact_mut();
            items.insert(&mut txn, 1, "x");
            items.remove(&mut txn, 4);
            items.push_back(&mut txn, TextPrelim::new("tail"));
            items.push_front(&mut txn, 0);
        }
        let server = loaded(&state(&client), 100);
        let (result, update) = restore(&server, &s1);
        result.expect("restores");
        assert_eq!(array_json(&server, "items"), expected);
        apply(&client, &update.unwrap());
        assert_eq!(array_json(&client, "items"), expected);
    }

    #[test]
    fn an_edited_element_of_an_array_is_restored_in_place() {
        let client = doc(1);
        let todos = client.get_or_insert_array("todos");
        {
            let mut txn = client.transact_mut();
            for label in ["buy milk", "write tests", "ship it"] {
                let todo = todos.push_back(&mut txn, MapPrelim::default());
                todo.insert(&mut txn, "label", label);
                todo.insert(&mut txn, "done", false);
            }
        }
        let s1 = state(&client);
        {
            let mut txn = client.transact_mut();
            let Some(Out::YMap(todo)) = todos.get(&txn, 1) else {
                panic!("a map")
            };
            todo.insert(&mut txn, "done", true);
        }
        let server = loaded(&state(&client), 100);
        let second = {
            let txn = server.transact();
            txn.get_array("todos").unwrap().get(&txn, 1)
        };
        let (result, _) = restore(&server, &s1);
        assert_eq!(result.expect("restores").edits, 1);
        assert_eq!(
            array_json(&server, "todos"),
            array_json(&loaded(&s1, 7), "todos")
        );
        let txn = server.transact();
        assert_eq!(txn.get_array("todos").unwrap().get(&txn, 1), second);
    }

    #[test]
    fn a_root_only_in_the_target_is_filled_and_one_only_now_is_emptied() {
        let author = doc(1);
        {
            let mut txn = author.transact_mut();
            txn.get_or_insert_text("code").push(&mut txn, "same");
            txn.get_or_insert_map("fresh").insert(&mut txn, "k", "v");
            txn.get_or_insert_text("notes").push(&mut txn, "ünïcode ✓");
        }
        let target = state(&author);
        // The server never saw "fresh" or "notes", and has a root the target lacks.
        let server = doc(100);
        {
            let mut txn = server.transact_mut();
            txn.get_or_insert_text("code").push(&mut txn, "same");
            txn.get_or_insert_array("later").push_back(&mut txn, 1);
        }
        let server = loaded(&state(&server), 101);

        let (result, update) = restore(&server, &target);
        let summary = result.expect("restores");
        assert_eq!(summary.changed, ["fresh", "later", "notes"]);
        assert_eq!(summary.unchanged, ["code"]);
        assert_eq!(map_json(&server, "fresh"), map_json(&author, "fresh"));
        assert_eq!(text(&server, "notes"), "ünïcode ✓");
        assert_eq!(array_json(&server, "later"), Any::from_json("[]").unwrap());
        let replica = doc(102);
        apply(&replica, &state(&loaded(&state(&server), 103)));
        apply(&replica, &update.unwrap());
        assert_eq!(text(&replica, "notes"), "ünïcode ✓");
    }

    #[test]
    fn xml_fragments_are_restored() {
        let client = doc(1);
        let pm = client.get_or_insert_xml_fragment("prosemirror");
        let (heading, para) = {
            let mut txn = client.transact_mut();
            let heading: XmlElementRef = pm.push_back(&mut txn, XmlElementPrelim::empty("heading"));
            heading.insert_attribute(&mut txn, "level", 2);
            heading.push_back(&mut txn, XmlTextPrelim::new("Title"));
            let para: XmlElementRef = pm.push_back(&mut txn, XmlElementPrelim::empty("paragraph"));
            let t = para.push_back(&mut txn, XmlTextPrelim::new("Hello "));
            t.insert_with_attributes(&mut txn, 6, "world", bold());
            let last: XmlElementRef = pm.push_back(&mut txn, XmlElementPrelim::empty("paragraph"));
            last.push_back(&mut txn, XmlTextPrelim::new("Second"));
            (heading, para)
        };
        let s1 = state(&client);
        let expected = xml(&loaded(&s1, 7), "prosemirror");
        {
            let mut txn = client.transact_mut();
            heading.insert_attribute(&mut txn, "level", 3);
            let Some(yrs::XmlOut::Text(t)) = para.get(&txn, 0) else {
                panic!("text")
            };
            t.insert(&mut txn, 6, "brave ");
        }
        let server = loaded(&state(&client), 100);
        let para_before = {
            let txn = server.transact();
            txn.get_xml_fragment("prosemirror")
                .unwrap()
                .get(&txn, 1)
                .map(|n| n.id())
        };
        assert_ne!(xml(&server, "prosemirror"), expected);

        let (result, update) = restore(&server, &s1);
        result.expect("restores");
        assert_eq!(xml(&server, "prosemirror"), expected);
        {
            let txn = server.transact();
            let pm: XmlFragmentRef = txn.get_xml_fragment("prosemirror").unwrap();
            // Edited in place, and the attribute keeps its type.
            assert_eq!(pm.get(&txn, 1).map(|n| n.id()), para_before);
            let Some(yrs::XmlOut::Element(h)) = pm.get(&txn, 0) else {
                panic!("heading")
            };
            // A number, as set, not the string yrs's own prelims would make.
            assert_eq!(h.get_attribute(&txn, "level"), Some(Out::Any(Any::from(2))));
        }
        apply(&client, &update.unwrap());
        assert_eq!(xml(&client, "prosemirror"), expected);
    }

    #[test]
    fn restoring_an_equal_document_is_a_noop() {
        let client = doc(1);
        rich_map(&client);
        {
            let mut txn = client.transact_mut();
            let code = txn.get_or_insert_text("code");
            code.push(&mut txn, "héllo 🎲 ");
            code.insert_with_attributes(&mut txn, 9, "wörld", bold());
            txn.get_or_insert_array("items")
                .insert_range(&mut txn, 0, [1, 2, 3]);
        }
        let server = loaded(&state(&client), 100);
        let target = state(&server);
        let (result, update) = restore(&server, &target);
        let summary = result.expect("restores");
        assert!(summary.is_noop());
        assert!(summary.changed.is_empty());
        assert_eq!(summary.unchanged, ["code", "items", "meta"]);
        assert!(update.is_none(), "no update for a no-op");
    }

    #[test]
    fn garbage_targets_are_refused_and_the_doc_is_untouched() {
        let client = doc(1);
        client
            .get_or_insert_text("code")
            .push(&mut client.transact_mut(), "keep me");
        let server = loaded(&state(&client), 100);
        let whole = state(&server);
        for garbage in [
            &[][..],
            &[0xde, 0xad, 0xbe, 0xef, 0x01, 0x02][..],
            &[0xff; 64][..],
            &whole[..whole.len() / 2],
        ] {
            let (result, update) = restore(&server, garbage);
            assert!(result.is_err(), "{garbage:?} refused");
            assert!(update.is_none());
            assert_eq!(text(&server, "code"), "keep me");
            assert_eq!(state(&server), whole);
        }
    }

    #[test]
    fn a_root_of_another_kind_is_refused_before_any_edit() {
        let then = doc(1);
        {
            let mut txn = then.transact_mut();
            txn.get_or_insert_text("a").push(&mut txn, "old");
            txn.get_or_insert_text("b").push(&mut txn, "text");
        }
        let now = doc(2);
        {
            let mut txn = now.transact_mut();
            txn.get_or_insert_text("a").push(&mut txn, "new");
            txn.get_or_insert_map("b").insert(&mut txn, "k", 1);
        }
        let server = loaded(&state(&now), 100);
        let (result, update) = restore(&server, &state(&then));
        match result {
            Err(RestoreError::KindMismatch {
                root,
                current,
                target,
            }) => {
                assert_eq!(root, "b");
                assert_eq!((current, target), (RootKind::Map, RootKind::Text));
            }
            other => panic!("expected a kind mismatch, got {other:?}"),
        }
        assert!(update.is_none());
        assert_eq!(text(&server, "a"), "new");
    }

    #[test]
    fn a_subdocument_in_the_target_is_refused() {
        let then = doc(1);
        {
            let mut txn = then.transact_mut();
            txn.get_or_insert_map("m")
                .insert(&mut txn, "sub", Doc::new());
            txn.get_or_insert_text("code").push(&mut txn, "old");
        }
        let server = doc(100);
        server
            .get_or_insert_text("code")
            .push(&mut server.transact_mut(), "new");
        let (result, update) = restore(&server, &state(&then));
        match result {
            Err(RestoreError::Unsupported { root, reason }) => {
                assert_eq!(root, "m");
                assert!(reason.contains("subdocument"), "{reason}");
            }
            other => panic!("expected unsupported, got {other:?}"),
        }
        assert!(update.is_none());
        assert_eq!(text(&server, "code"), "new");
    }
}
