//! A bounds check of message bodies before yrs decodes them.
//!
//! yrs's decoders trust what a hostile client controls in several ways:
//! - a declared count reserves that many entries up front: for a hash map,
//!   `try_reserve` succeeds on an overcommitting system and zeroes the control
//!   bytes, so a five-byte body makes the server touch 512 MB and spend a
//!   quarter of a second;
//! - client ids beyond 53 bits and clocks that overflow `u32` trip assertions
//!   (debug builds) or wrap;
//! - an item whose left and right origins are the same is placed differently
//!   depending on history, and an empty deleted range splits an item without
//!   any visible change to relay (a split emoji becomes two U+FFFD), so the
//!   replicas would not converge;
//! - yrs reads legacy JSON content (content ref 2) with one string more than
//!   its count says, so it misreads what follows it.
//!
//! This walk follows the lib0 v1 layout of updates, state vectors and
//! awareness updates without allocating or recursing, and refuses a count
//! larger than the bytes left, client ids beyond 53 bits, clocks past
//! `u32::MAX`, such items, empty deleted ranges and JSON content. None of
//! these is anything a stock Yjs client writes: Yjs client ids are 32-bit,
//! every item goes between two different neighbours, Yjs never lists an
//! empty deleted range, and Yjs 13 writes JSON values as `Any` content
//! (content ref 8), reading ref 2 only from documents of older versions.
//! Values (`Any`) are checked by [`super::value::scan`], which refuses only
//! malformed ones; values yrs cannot hold as they are (too deep, or encoded
//! otherwise by yrs) are for [`super::fidelity`] to keep. That stock clients
//! never trip the walk is what every check of the compatibility suite
//! (`tests/node/compat`) asserts with `roomcast_refusals_total{reason=
//! "bad_frame"}`; `accepts_what_yrs_encodes` below does the same for yrs.
//! Whatever else is wrong is left to yrs. Walking an update also gives its
//! [`UpdateShape`]: each block's id range, origins, where it hangs and where
//! its content lies, which the room checks against what its document holds
//! ([`super::item_index`]) and what it lacks ([`super::deps`]).

use std::hash::BuildHasher;
use std::sync::OnceLock;

use super::lib0::{Checked, Reader};
use super::value;

/// Largest client id (Yjs client ids are 53-bit integers).
const MAX_CLIENT: u64 = (1 << 53) - 1;

/// Where a block hangs in the document, as far as its own encoding tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// Directly under the root type whose name hashes to this
    /// ([`root_identity`]).
    Root(u64),
    /// Under the shared type held by this item.
    Parent(Id),
    /// Next to this item (its left origin, or else its right one), so under
    /// the same parent as that item.
    Beside(Id),
    /// Nowhere: garbage-collected content or a skipped range.
    Nowhere,
}

/// `BlockShape::content_ref` of a garbage-collected range (its clocks are
/// known, its content gone).
pub const GC_BLOCK: u8 = 0;
/// `BlockShape::content_ref` of a skip: clocks the update does not carry.
pub const SKIP_BLOCK: u8 = 10;

/// An item id: client and clock.
pub type Id = (u64, u64);

/// One block of an update: its id range, origins and where it hangs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockShape {
    /// Its client.
    pub client: u64,
    /// Its first clock.
    pub clock: u64,
    /// How many clocks it takes.
    pub len: u64,
    /// Where it hangs.
    pub anchor: Anchor,
    /// The item its first item was inserted right after (the later items of
    /// the block each follow the one before).
    pub origin: Option<Id>,
    /// The item it was inserted right before.
    pub right_origin: Option<Id>,
    /// What it holds.
    pub held: Held,
    /// Its content ref (lib0: 1 deleted, 3 binary, 4 string, 5 embed,
    /// 6 format, 7 shared type, 8 values, 9 subdocument), or
    /// [`GC_BLOCK`] / [`SKIP_BLOCK`].
    pub content_ref: u8,
    /// Where its content lies in the body, byte offsets (start, end).
    pub content: (usize, usize),
}

/// What a block holds, as far as the room's checks tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Characters (which only texts hold).
    Text,
    /// A shared type, by its type ref (0 array, 1 map, 2 text, 3 XML
    /// element, 4 XML fragment, 5 XML hook, 6 XML text, 15 undefined…).
    Type(u8),
    /// Anything else: values, binary, embeds, formats, deleted or collected
    /// content, subdocuments.
    Other,
}

impl Held {
    /// Whether it is a shared type.
    pub fn is_type(self) -> bool {
        matches!(self, Held::Type(_))
    }
}

/// The blocks of an update, in their encoded order, and its delete set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateShape {
    /// Every block, client by client.
    pub blocks: Vec<BlockShape>,
    /// Deleted ranges: client, first clock, length.
    pub deletes: Vec<(u64, u64, u64)>,
}

/// The identity of a root type named `name` as the room's checks compare
/// parents: a hash, keyed per process (so that no client can aim for a
/// collision), that never equals an item's ([`item_identity`]).
pub fn root_identity(name: &[u8]) -> u64 {
    hasher().hash_one((0u8, name))
}

/// The identity of the shared type held by item `id`, as [`root_identity`].
pub fn item_identity(id: Id) -> u64 {
    hasher().hash_one((1u8, id))
}

fn hasher() -> &'static std::collections::hash_map::RandomState {
    static KEYS: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    KEYS.get_or_init(Default::default)
}

/// The reads of update, state vector and awareness bodies, refusing what yrs
/// should not be handed.
impl Reader<'_> {
    /// A length-prefixed UTF-8 string; returns its length in UTF-16 code
    /// units, which is how many clocks Yjs gives it. (Invalid UTF-8 is left
    /// to yrs, which refuses it.)
    fn string_units(&mut self) -> Checked<u64> {
        let bytes = self.buf()?;
        // Every byte but continuation bytes starts a character; the four-byte
        // ones are outside the BMP and take a surrogate pair.
        Ok(bytes
            .iter()
            .map(|&b| match b {
                0x80..=0xbf => 0,
                0xf0..=0xff => 2,
                _ => 1,
            })
            .sum())
    }

    fn client(&mut self) -> Checked<u64> {
        let client = self.var()?;
        if client > MAX_CLIENT {
            return Err(format!("client id {client} is beyond 53 bits"));
        }
        Ok(client)
    }

    /// A client id and a clock.
    fn id(&mut self) -> Checked<(u64, u64)> {
        Ok((self.client()?, self.clock()?))
    }

    /// A clock, which must stay within `u32`.
    fn clock(&mut self) -> Checked<u64> {
        let clock = self.var()?;
        if clock > u64::from(u32::MAX) {
            return Err(format!("clock {clock} overflows"));
        }
        Ok(clock)
    }

    /// One `Any` value (see [`value::scan`]).
    fn value(&mut self) -> Checked<()> {
        self.pos = value::scan(self.buf, self.pos)?.end;
        Ok(())
    }

    /// One block of an update (but its client and clock, which its caller
    /// knows).
    fn block(&mut self) -> Checked<BlockShape> {
        const HAS_ORIGIN: u8 = 0x80;
        const HAS_RIGHT_ORIGIN: u8 = 0x40;
        const HAS_PARENT_SUB: u8 = 0x20;
        let info = self.u8()?;
        // GC and skip: a length.
        if info == 0 || info == 10 {
            let len = self.var()?;
            return Ok(BlockShape {
                client: 0,
                clock: 0,
                len,
                anchor: Anchor::Nowhere,
                origin: None,
                right_origin: None,
                held: Held::Other,
                content_ref: info,
                content: (self.pos, self.pos),
            });
        }
        let origin = if info & HAS_ORIGIN != 0 {
            Some(self.id()?)
        } else {
            None
        };
        let right_origin = if info & HAS_RIGHT_ORIGIN != 0 {
            Some(self.id()?)
        } else {
            None
        };
        if origin.is_some() && origin == right_origin {
            // No client writes this (an item goes between two others); yrs
            // places it differently depending on what it integrated before,
            // so replicas would disagree.
            return Err(format!(
                "item with the same left and right origin {origin:?}"
            ));
        }
        let anchor = match origin.or(right_origin) {
            Some(beside) => Anchor::Beside(beside),
            None => {
                // The parent: a root's name, or the id of the item holding it.
                let parent = if self.var()? == 1 {
                    Anchor::Root(root_identity(self.buf()?))
                } else {
                    Anchor::Parent(self.id()?)
                };
                if info & HAS_PARENT_SUB != 0 {
                    self.buf()?;
                }
                parent
            }
        };
        let start = self.pos;
        let (len, held) = self.content(info)?;
        Ok(BlockShape {
            client: 0,
            clock: 0,
            len,
            anchor,
            origin,
            right_origin,
            held,
            content_ref: info & 0x0f,
            content: (start, self.pos),
        })
    }

    /// The content of an item whose info byte is `info`: how many clocks it
    /// takes and what it holds.
    fn content(&mut self, info: u8) -> Checked<(u64, Held)> {
        let len = match info & 0x0f {
            // deleted
            1 => self.var(),
            // JSON (legacy): yrs reads one string more than the count says,
            // so it would misread what follows; Yjs 13 writes values as ref 8.
            2 => Err("legacy JSON content (content ref 2), which yrs misreads".to_owned()),
            // binary, embed (JSON)
            3 | 5 => self.buf().map(|_| 1),
            // string
            4 => return Ok((self.string_units()?, Held::Text)),
            // format: key and JSON value
            6 => {
                self.buf()?;
                self.buf().map(|_| 1)
            }
            // a nested type; an XML element has a name
            7 => {
                let type_ref = self.u8()?;
                match type_ref {
                    3 => drop(self.buf()?),
                    0..=6 | 9 | 15 => {}
                    other => return Err(format!("unsupported type ref {other}")),
                };
                return Ok((1, Held::Type(type_ref)));
            }
            // values
            8 => {
                let n = self.count(1)?;
                for _ in 0..n {
                    self.value()?;
                }
                Ok(n)
            }
            // a subdocument: guid and options
            9 => {
                self.buf()?;
                self.value().map(|_| 1)
            }
            other => Err(format!("unknown content type {other}")),
        }?;
        Ok((len, Held::Other))
    }
}

/// Checks an update (v1): its blocks by client, then its delete set.
pub fn update_v1(body: &[u8]) -> Checked<()> {
    walk_update(body, |_| ()).map(drop)
}

/// Checks an update (v1) as [`update_v1`] does and returns its shape.
pub fn update_shape_v1(body: &[u8]) -> Checked<UpdateShape> {
    let mut shape = UpdateShape::default();
    let deletes = walk_update(body, |block| shape.blocks.push(block))?;
    shape.deletes = deletes;
    Ok(shape)
}

/// Walks an update's blocks by client, handing each to `visit`, then its
/// delete set, which it returns.
fn walk_update(body: &[u8], mut visit: impl FnMut(BlockShape)) -> Checked<Vec<(u64, u64, u64)>> {
    let mut w = Reader::at(body, 0);
    // Each client: block count, client id, first clock.
    for _ in 0..w.count(3)? {
        let blocks = w.count(1)?;
        let client = w.client()?;
        let mut clock = w.var()?;
        for _ in 0..blocks {
            let block = BlockShape {
                client,
                clock,
                ..w.block()?
            };
            visit(block);
            clock = clock.saturating_add(block.len);
            if clock > u64::from(u32::MAX) {
                return Err(format!("blocks run past clock {}", u32::MAX));
            }
        }
    }
    delete_set(&mut w)
}

/// The delete set ending an update: by client, ranges of clock and length.
fn delete_set(w: &mut Reader<'_>) -> Checked<Vec<(u64, u64, u64)>> {
    let mut deletes = Vec::new();
    for _ in 0..w.count(2)? {
        let client = w.client()?;
        for _ in 0..w.count(2)? {
            let clock = w.var()?;
            let len = w.var()?;
            if clock.saturating_add(len) > u64::from(u32::MAX) {
                return Err(format!("deleted range {clock}+{len} overflows"));
            }
            if len == 0 {
                // Deletes nothing, but yrs splits the item there (a split
                // emoji turns into two U+FFFD) and tells nobody.
                return Err(format!("empty deleted range at clock {clock}"));
            }
            deletes.push((client, clock, len));
        }
    }
    Ok(deletes)
}

/// Checks a state vector (v1): client ids and clocks.
pub fn state_vector_v1(body: &[u8]) -> Checked<()> {
    let mut w = Reader::at(body, 0);
    for _ in 0..w.count(2)? {
        w.id()?;
    }
    Ok(())
}

/// Checks an awareness update: client id, clock and JSON state of each entry.
pub fn awareness_v1(body: &[u8]) -> Checked<()> {
    let mut w = Reader::at(body, 0);
    for _ in 0..w.count(3)? {
        w.id()?;
        w.buf()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::updates::decoder::Decode;
    use yrs::{Any, Array, Doc, Map, ReadTxn, StateVector, Text, Transact, Update};

    #[test]
    fn accepts_what_yrs_encodes() {
        let doc = Doc::with_client_id(7);
        let (text, map, array) = (
            doc.get_or_insert_text("t"),
            doc.get_or_insert_map("m"),
            doc.get_or_insert_array("a"),
        );
        {
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, 0, "héllo 😀");
            text.remove_range(&mut txn, 1, 2);
            map.insert(&mut txn, "n", Any::from(vec![Any::from(1.5), Any::Null]));
            let deep = (0..value::MAX_DEPTH).fold(Any::Null, |inner, _| Any::from(vec![inner]));
            map.insert(&mut txn, "deep", deep);
            array.insert(&mut txn, 0, yrs::MapPrelim::default());
            array.push_back(&mut txn, "x");
            array.remove_range(&mut txn, 1, 1);
        }
        let update = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        assert_eq!(update_v1(&update), Ok(()));
        Update::decode_v1(&update).unwrap();
        let sv = yrs::updates::encoder::Encode::encode_v1(&doc.transact().state_vector());
        assert_eq!(state_vector_v1(&sv), Ok(()));
    }

    #[test]
    fn refuses_counts_beyond_the_body() {
        // 2^28 clients declared in four bytes.
        assert!(update_v1(&[0x80, 0x80, 0x80, 0x80, 0x01]).is_err());
        assert!(state_vector_v1(&[0x80, 0x80, 0x80, 0x80, 0x01]).is_err());
        assert!(awareness_v1(&[0x80, 0x80, 0x80, 0x80, 0x01]).is_err());
        // A map value declaring 2^28 entries.
        let body = [
            1, 1, 7, 0, 8, 1, 1, b't', 1, 118, 0x80, 0x80, 0x80, 0x80, 0x01, 0,
        ];
        assert!(update_v1(&body).is_err());
    }

    #[test]
    fn walks_deep_values_and_refuses_wide_ids() {
        // Deep values are walked (without recursion) and left to
        // `fidelity`; only malformed ones are refused.
        let mut body = vec![1, 1, 7, 0, 8, 1, 1, b't', 1];
        for _ in 0..10_000 {
            body.extend_from_slice(&[117, 1]);
        }
        body.extend_from_slice(&[126, 0]);
        assert_eq!(update_v1(&body), Ok(()));
        let last_value = body.len() - 2;
        body[last_value] = 99;
        assert!(update_v1(&body).unwrap_err().contains("tag 99"));
        // Client id 2^53 in a state vector.
        let mut sv = vec![1];
        sv.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10, 0]);
        assert!(state_vector_v1(&sv).unwrap_err().contains("53 bits"));
    }
}
