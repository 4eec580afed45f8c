//! Content yrs does not give back as a client wrote it, kept as written.
//!
//! yrs holds item content in its own types and encodes it anew whenever the
//! room relays, answers a sync step, catches a member up or stores the
//! document. For most content that is byte for byte what the client sent;
//! for some it is not (see [`super::value`]):
//! - JSON objects in map values and array items: yrs lists their keys in hash
//!   order, different in every encoding (the reference server keeps the
//!   author's order);
//! - `-0`, which arrives as `0`; `BigInt`s, which arrive as numbers;
//! - text embeds and format attributes (`{ link: { href, target } }`), kept
//!   as JSON strings that yrs parses and prints again, keys reordered;
//! - subdocuments, whose options yrs rewrites (adding its own, dropping
//!   `meta`).
//!
//! And some content yrs cannot take at all: values nested deeper than
//! [`super::value::MAX_DEPTH`] (yrs recurses over them, and a deep enough one
//! overflows the stack), and JSON strings serde_json refuses (a lone UTF-16
//! surrogate, which `JSON.stringify` escapes as `"\ud83d"`; nesting beyond 128).
//!
//! So the room keeps, for every such unit of content (one value, embed,
//! format or subdocument: one clock), the client's own bytes by item id
//! ([`Originals`]); yrs is given a placeholder (`null`) for the units it
//! cannot take ([`for_yrs`]); and every encoding the room sends or stores
//! has the kept bytes put back ([`Originals::restore`]). Replicas, late
//! joiners and reloaded rooms get exactly what the author wrote. The room's
//! own views (the admin API's JSON, restores) see what yrs holds: a
//! placeholder shows as `null`, `-0` as `0`.
//!
//! `tests/node/compat/json-values.test.mjs` and `rich-text.test.mjs` check
//! with stock clients that objects (2, 5 and 20 keys, nested), `-0`,
//! BigInts, formats and embeds reach every replica and a late joiner with
//! their types and key order, and are never refused.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use super::bounds::{update_shape_v1, BlockShape, UpdateShape};
use super::lib0::Reader;
use super::value::{self, Fidelity};

/// Content refs whose units may need keeping.
const EMBED: u8 = 5;
const FORMAT: u8 = 6;
const VALUES: u8 = 8;
const SUBDOC: u8 = 9;

/// One unit of content yrs does not reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unit {
    /// Its item's client.
    pub client: u64,
    /// Its item's clock (one clock per unit).
    pub clock: u64,
    /// Where its bytes lie in the update.
    pub span: (usize, usize),
    /// What yrs makes of it (never `Exact`).
    pub fidelity: Fidelity,
    /// Its block's content ref.
    content_ref: u8,
}

/// Reads a varuint at `pos`; returns it and where it ends.
fn var(buf: &[u8], pos: usize) -> Result<(u64, usize), String> {
    let mut r = Reader::at(buf, pos);
    Ok((r.var()?, r.pos))
}

/// Reads a length-prefixed string at `pos`; returns it and where it ends.
fn string(buf: &[u8], pos: usize) -> Result<(&[u8], usize), String> {
    let mut r = Reader::at(buf, pos);
    Ok((r.buf()?, r.pos))
}

/// What yrs makes of a JSON string (an embed or a format value): it parses it
/// with serde_json and prints it again.
fn json_fidelity(json: &[u8]) -> Fidelity {
    let Ok(text) = std::str::from_utf8(json) else {
        return Fidelity::Unsafe;
    };
    let Ok(parsed) = yrs::Any::from_json(text) else {
        return Fidelity::Unsafe;
    };
    let mut printed = String::new();
    parsed.to_json(&mut printed);
    if has_wide_object(&parsed) || printed != text {
        Fidelity::Reencoded
    } else {
        Fidelity::Exact
    }
}

/// Whether `any` holds an object of more than one key (whose keys yrs lists
/// in hash order). serde_json's recursion limit bounds the depth.
fn has_wide_object(any: &yrs::Any) -> bool {
    match any {
        yrs::Any::Map(map) => map.len() > 1 || map.values().any(has_wide_object),
        yrs::Any::Array(items) => items.iter().any(has_wide_object),
        _ => false,
    }
}

/// The units of `block` (of an update `body`) that yrs does not reproduce.
fn block_units(body: &[u8], block: &BlockShape, out: &mut Vec<Unit>) -> Result<(), String> {
    let (start, end) = block.content;
    let unit = |clock: u64, span: (usize, usize), fidelity: Fidelity| Unit {
        client: block.client,
        clock,
        span,
        fidelity,
        content_ref: block.content_ref,
    };
    match block.content_ref {
        VALUES => {
            let (count, mut at) = var(body, start)?;
            for i in 0..count {
                let scanned = value::scan(body, at)?;
                if scanned.fidelity != Fidelity::Exact {
                    out.push(unit(block.clock + i, (at, scanned.end), scanned.fidelity));
                }
                at = scanned.end;
            }
        }
        EMBED | FORMAT => {
            // A format's key comes first.
            let at = match block.content_ref {
                FORMAT => string(body, start)?.1,
                _ => start,
            };
            let fidelity = json_fidelity(string(body, at)?.0);
            if fidelity != Fidelity::Exact {
                out.push(unit(block.clock, (start, end), fidelity));
            }
        }
        SUBDOC => {
            // yrs always writes its own options.
            let (_, at) = string(body, start)?;
            let fidelity = match value::scan(body, at)?.fidelity {
                Fidelity::Unsafe => Fidelity::Unsafe,
                _ => Fidelity::Reencoded,
            };
            out.push(unit(block.clock, (start, end), fidelity));
        }
        _ => {}
    }
    Ok(())
}

/// The units of an update (`body`, walked as `shape`) that yrs does not
/// reproduce, in their order in the body.
pub fn units(body: &[u8], shape: &UpdateShape) -> Result<Vec<Unit>, String> {
    let mut out = Vec::new();
    for block in &shape.blocks {
        block_units(body, block, &mut out)?;
    }
    Ok(out)
}

/// What yrs is given in place of a unit it cannot take: the same kind of
/// content holding `null` (an embed or format keeps its key; a subdocument
/// its guid, with no options).
fn placeholder(body: &[u8], unit: &Unit) -> Vec<u8> {
    const NULL_JSON: [u8; 5] = [4, b'n', b'u', b'l', b'l'];
    match unit.content_ref {
        VALUES => vec![126],
        FORMAT | SUBDOC => {
            // The key (format) or guid (subdocument) stays; `units` read it.
            let (_, after) = string(body, unit.span.0).unwrap_or((&[], unit.span.0));
            let mut out = body[unit.span.0..after].to_vec();
            match unit.content_ref {
                FORMAT => out.extend_from_slice(&NULL_JSON),
                _ => out.extend_from_slice(&[118, 0]),
            }
            out
        }
        _ => NULL_JSON.to_vec(),
    }
}

/// A span of an update (byte offsets) and the bytes that replace it.
type Replacement<'r> = ((usize, usize), Cow<'r, [u8]>);

/// Copies `body` with some spans replaced, in order; `None` when none is.
fn splice<'r>(
    body: &[u8],
    replacements: impl IntoIterator<Item = Replacement<'r>>,
) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    for ((start, end), bytes) in replacements {
        let out = out.get_or_insert_with(|| Vec::with_capacity(body.len()));
        out.extend_from_slice(&body[copied..start]);
        out.extend_from_slice(&bytes);
        copied = end;
    }
    out.map(|mut out| {
        out.extend_from_slice(&body[copied..]);
        out
    })
}

/// The update yrs is given for a client's `body`: the body itself, or a copy
/// with placeholders for the units yrs cannot take (`units` of the body).
pub fn for_yrs<'b>(body: &'b [u8], units: &[Unit]) -> Cow<'b, [u8]> {
    let unsafe_units = units.iter().filter(|u| u.fidelity == Fidelity::Unsafe);
    let replaced = splice(
        body,
        unsafe_units.map(|u| (u.span, Cow::Owned(placeholder(body, u)))),
    );
    match replaced {
        Some(copy) => Cow::Owned(copy),
        None => Cow::Borrowed(body),
    }
}

/// The update yrs is given for a stored or logged `body` (as [`for_yrs`]),
/// walking it first.
pub fn stored_for_yrs(body: &[u8]) -> Result<Cow<'_, [u8]>, String> {
    let shape = update_shape_v1(body)?;
    let units = units(body, &shape)?;
    Ok(match for_yrs(body, &units) {
        Cow::Borrowed(_) => Cow::Borrowed(body),
        Cow::Owned(copy) => Cow::Owned(copy),
    })
}

/// The client's own bytes of every unit of a document that yrs does not
/// reproduce, by item id.
#[derive(Debug, Default, Clone)]
pub struct Originals {
    /// Client → clock → the unit's bytes as the client wrote them.
    by_client: HashMap<u64, BTreeMap<u64, Box<[u8]>>>,
    /// Sum of the kept bytes.
    bytes: usize,
    /// Whether a unit yrs cannot take was ever kept (the document's stored
    /// bytes then need [`stored_for_yrs`] before yrs reads them).
    unsafe_kept: bool,
}

impl Originals {
    /// Whether nothing is kept (every encoding of yrs is then faithful).
    pub fn is_empty(&self) -> bool {
        self.by_client.is_empty()
    }

    /// How many units are kept.
    pub fn len(&self) -> usize {
        self.by_client.values().map(BTreeMap::len).sum()
    }

    /// The kept bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether the document's stored bytes may hold a unit yrs cannot take
    /// (see [`stored_for_yrs`]); when not, yrs can read them as they are.
    pub fn needs_placeholders(&self) -> bool {
        self.unsafe_kept
    }

    /// Keeps the units of `body` (`units` of it) whose items are new to the
    /// document (`is_new(client, clock)`): yrs ignores content it already
    /// has, and so does this, so that nobody can change what others get by
    /// sending an item again with other content.
    pub fn keep(&mut self, body: &[u8], units: &[Unit], is_new: impl Fn(u64, u64) -> bool) {
        for unit in units.iter().filter(|u| is_new(u.client, u.clock)) {
            self.unsafe_kept |= unit.fidelity == Fidelity::Unsafe;
            let kept: Box<[u8]> = body[unit.span.0..unit.span.1].into();
            self.bytes += kept.len();
            if let Some(old) = self
                .by_client
                .entry(unit.client)
                .or_default()
                .insert(unit.clock, kept)
            {
                self.bytes -= old.len();
            }
        }
    }

    /// Keeps every unit of a stored or logged `body` (the document's own).
    pub fn keep_stored(&mut self, body: &[u8]) -> Result<(), String> {
        let shape = update_shape_v1(body)?;
        let units = units(body, &shape)?;
        self.keep(body, &units, |_, _| true);
        Ok(())
    }

    /// `encoded` (an update yrs encoded from the document) with the kept
    /// bytes put back in place of yrs's encoding of those units.
    pub fn restore(&self, encoded: Vec<u8>) -> Vec<u8> {
        if self.is_empty() {
            return encoded;
        }
        let shape = match update_shape_v1(&encoded) {
            Ok(shape) => shape,
            Err(why) => {
                tracing::error!(cause = %why, "an update yrs encoded does not walk; sent as is");
                return encoded;
            }
        };
        let mut replacements = Vec::new();
        for block in &shape.blocks {
            let Some(kept) = self.by_client.get(&block.client) else {
                continue;
            };
            let end = block.clock.saturating_add(block.len);
            if kept.range(block.clock..end).next().is_none() {
                continue;
            }
            if let Err(why) = self.block_replacements(&encoded, block, kept, &mut replacements) {
                tracing::error!(cause = %why, "an update yrs encoded does not walk; sent as is");
                return encoded;
            }
        }
        splice(&encoded, replacements).unwrap_or(encoded)
    }

    /// The spans of `block` (of `encoded`) to replace with kept bytes.
    fn block_replacements<'k>(
        &self,
        encoded: &[u8],
        block: &BlockShape,
        kept: &'k BTreeMap<u64, Box<[u8]>>,
        out: &mut Vec<Replacement<'k>>,
    ) -> Result<(), String> {
        let (start, end) = block.content;
        match block.content_ref {
            VALUES => {
                let (count, mut at) = var(encoded, start)?;
                for i in 0..count {
                    let value_end = value::scan(encoded, at)?.end;
                    if let Some(bytes) = kept.get(&(block.clock + i)) {
                        out.push(((at, value_end), Cow::Borrowed(&bytes[..])));
                    }
                    at = value_end;
                }
            }
            EMBED | FORMAT | SUBDOC => {
                if let Some(bytes) = kept.get(&block.clock) {
                    out.push(((start, end), Cow::Borrowed(&bytes[..])));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap as StdMap;
    use yrs::updates::decoder::Decode;
    use yrs::{Any, Array, Doc, Map, ReadTxn, StateVector, Text, Transact, Update, WriteTxn};

    /// An update of client 1 setting map `m`'s key `k` to the value `bytes`
    /// encode (lib0 `Any`), as a JavaScript client would write it.
    fn map_set(bytes: &[u8]) -> Vec<u8> {
        let mut update = vec![1, 1, 1, 0, 0x28, 1, 1, b'm', 1, b'k', 1];
        update.extend_from_slice(bytes);
        update.push(0);
        update
    }

    fn apply(doc: &Doc, body: &[u8]) {
        let shape = update_shape_v1(body).unwrap();
        let units = units(body, &shape).unwrap();
        let update = Update::decode_v1(&for_yrs(body, &units)).unwrap();
        doc.transact_mut().apply_update(update).unwrap();
    }

    /// A new document given `body` as the room gives it to yrs: its whole
    /// encoding, with what the room keeps put back.
    fn round_trip(body: &[u8]) -> Vec<u8> {
        let doc = Doc::new();
        apply(&doc, body);
        let mut kept = Originals::default();
        kept.keep_stored(body).unwrap();
        let whole = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        kept.restore(whole)
    }

    #[test]
    fn minus_zero_and_key_order_come_back_as_written() {
        // {b: 1, a: -0} in that order.
        let value = [118, 2, 1, b'b', 125, 1, 1, b'a', 125, 0x40];
        let body = map_set(&value);
        let shape = update_shape_v1(&body).unwrap();
        let units = units(&body, &shape).unwrap();
        assert_eq!(units.len(), 1);
        assert_eq!(units[0].fidelity, Fidelity::Reencoded);
        let doc = Doc::new();
        apply(&doc, &body);
        let mut kept = Originals::default();
        kept.keep(&body, &units, |_, _| true);
        for _ in 0..20 {
            let whole = doc
                .transact()
                .encode_state_as_update_v1(&StateVector::default());
            assert_eq!(kept.restore(whole), body, "every encoding is the author's");
        }
    }

    #[test]
    fn too_deep_values_and_unparsable_json_reach_yrs_as_null() {
        let mut deep = Vec::new();
        for _ in 0..1000 {
            deep.extend_from_slice(&[117, 1]);
        }
        deep.push(120);
        let body = map_set(&deep);
        let doc = Doc::new();
        apply(&doc, &body);
        let m = doc.get_or_insert_map("m");
        assert_eq!(m.get(&doc.transact(), "k"), Some(yrs::Out::Any(Any::Null)));
        assert_eq!(round_trip(&body), body);
        // A format whose JSON holds a lone surrogate, as JSON.stringify
        // writes it: serde_json refuses it, so yrs would refuse the update.
        let json = br#"{"t":"\ud83d"}"#;
        let mut body = vec![1, 1, 2, 0, 6, 1, 1, b't', 1, b'b', json.len() as u8];
        body.extend_from_slice(json);
        body.push(0);
        assert!(Update::decode_v1(&body).is_err());
        assert_eq!(round_trip(&body), body);
    }

    #[test]
    fn exact_content_is_not_kept_and_known_items_are_not_replaced() {
        let doc = Doc::with_client_id(3);
        let update = {
            let mut txn = doc.transact_mut();
            let text = txn.get_or_insert_text("t");
            text.insert(&mut txn, 0, "hi");
            let array = txn.get_or_insert_array("a");
            array.push_back(&mut txn, 1.5);
            array.push_back(&mut txn, Any::from(StdMap::from([("x".into(), Any::Null)])));
            let map = txn.get_or_insert_map("m");
            map.insert(&mut txn, "n", "v");
            txn.encode_update_v1()
        };
        let shape = update_shape_v1(&update).unwrap();
        assert!(units(&update, &shape).unwrap().is_empty());
        // A value kept for a new item is not taken for one already known.
        let body = map_set(&[125, 0x40]);
        let shape = update_shape_v1(&body).unwrap();
        let units = units(&body, &shape).unwrap();
        let mut kept = Originals::default();
        kept.keep(&body, &units, |_, _| false);
        assert!(kept.is_empty());
    }
}
