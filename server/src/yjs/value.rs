//! lib0 `Any` values as bytes: the content of map entries and array items
//! (and the options of subdocuments), scanned without recursion and judged
//! against what yrs keeps of them.
//!
//! yrs decodes a value into its own `Any`, which cannot hold everything a
//! stock Yjs client writes, and encodes it back from there:
//! - an object's keys are kept in a hash map, so every encoding lists them in
//!   another order (JavaScript keeps insertion order);
//! - `-0` is read as an integer and comes back as `0`;
//! - a `BigInt` is read as a plain integer and comes back as a number when it
//!   fits one (`5n` becomes `5`);
//! - a float32 NaN comes back as a float64; a float64 that fits a float32
//!   comes back as a float32; an integer written in more bytes than needed
//!   comes back shorter (no JavaScript client writes these three, other
//!   lib0 encoders may).
//!
//! And yrs decodes, clones, compares and drops values by recursion, so a value
//! nested deep enough overflows the thread's stack. [`scan`] tells these cases
//! apart; [`super::fidelity`] keeps the client's own bytes of every value yrs
//! would not give back as it got them.

use super::lib0::Reader;

/// Deepest nesting of values yrs is given (an array or object directly in an
/// item is at depth 0, what it holds at depth 1…); deeper values are kept
/// aside by [`super::fidelity`]. serde_json's default recursion limit is 128;
/// yrs's recursion over 64 levels stays far within any thread's stack.
pub const MAX_DEPTH: usize = 64;

/// What yrs makes of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fidelity {
    /// yrs encodes it back byte for byte.
    Exact,
    /// yrs holds an equivalent value but encodes it otherwise (key order,
    /// `-0`, a `BigInt`, a number written unusually).
    Reencoded,
    /// yrs must not be given it: nested deeper than [`MAX_DEPTH`], or an
    /// integer so long that yrs's reader overflows on it.
    Unsafe,
}

impl Fidelity {
    /// The worse of two.
    fn and(self, other: Fidelity) -> Fidelity {
        match (self, other) {
            (Fidelity::Unsafe, _) | (_, Fidelity::Unsafe) => Fidelity::Unsafe,
            (Fidelity::Reencoded, _) | (_, Fidelity::Reencoded) => Fidelity::Reencoded,
            _ => Fidelity::Exact,
        }
    }
}

/// One scanned value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scanned {
    /// Where the value ends.
    pub end: usize,
    /// How deep it nests (0: a scalar, 1: a container of scalars…).
    pub depth: usize,
    /// What yrs makes of it.
    pub fidelity: Fidelity,
}

/// A container being scanned: how many values it still holds, and whether
/// each comes with a key.
struct Open {
    remaining: u64,
    keyed: bool,
}

/// The lib0 encoding of a signed integer, as yrs (and lib0) writes it.
fn signed_var(value: i64) -> Vec<u8> {
    let negative = value < 0;
    let mut rest = value.unsigned_abs();
    let mut out = Vec::with_capacity(5);
    let more = |rest: u64, bits: u32| if rest >> bits > 0 { 0x80 } else { 0 };
    out.push(more(rest, 6) | if negative { 0x40 } else { 0 } | (rest & 0x3f) as u8);
    rest >>= 6;
    while rest > 0 {
        out.push(more(rest, 7) | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    out
}

/// What yrs makes of an integer tag (125) whose varint is `bytes`: yrs reads
/// it as an `i64` and writes it back as the shortest varint when it fits 31
/// bits, and as a float otherwise.
fn integer_fidelity(bytes: &[u8]) -> Fidelity {
    // JavaScript writes at most 31 bits: 5 bytes. Longer ones make yrs's
    // reader shift past 64 bits or negate i64::MIN (a panic in debug builds).
    if bytes.len() > 5 {
        return Fidelity::Unsafe;
    }
    let negative = bytes[0] & 0x40 != 0;
    let mut magnitude = u64::from(bytes[0] & 0x3f);
    for (i, byte) in bytes[1..].iter().enumerate() {
        magnitude |= u64::from(byte & 0x7f) << (6 + 7 * i);
    }
    let value = if negative {
        -(magnitude as i64)
    } else {
        magnitude as i64
    };
    let fits = (-0x7FFF_FFFF..=0x7FFF_FFFF).contains(&value);
    // `-0` (the sign with a zero magnitude) is read as 0.
    if fits && signed_var(value) == bytes {
        Fidelity::Exact
    } else {
        Fidelity::Reencoded
    }
}

/// What yrs makes of a BigInt (tag 122): it reads a plain integer and writes
/// it back as the first of varint, float32, float64 or BigInt that holds it.
fn bigint_fidelity(value: i64) -> Fidelity {
    let as_varint = (-0x7FFF_FFFF..=0x7FFF_FFFF).contains(&value);
    let as_f32 = (value as f32) as i64 == value;
    let as_f64 = (value as f64) as i64 == value;
    if as_varint || as_f32 || as_f64 {
        Fidelity::Reencoded
    } else {
        Fidelity::Exact
    }
}

/// Scans the value at `pos` of `buf` without recursing: checks that it is
/// well formed (known tags, counts within the bytes left) and tells where it
/// ends, how deep it nests and what yrs makes of it.
pub fn scan(buf: &[u8], pos: usize) -> Result<Scanned, String> {
    let mut r = Reader::at(buf, pos);
    let mut open: Vec<Open> = Vec::new();
    let (mut depth, mut fidelity) = (0usize, Fidelity::Exact);
    loop {
        depth = depth.max(open.len());
        let value = match r.u8()? {
            // undefined, null, true, false
            127 | 126 | 121 | 120 => Fidelity::Exact,
            125 => {
                let start = r.pos;
                r.var()?;
                integer_fidelity(&buf[start..r.pos])
            }
            124 => {
                let bytes = r.take(4)?;
                let value = f32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
                // yrs writes a float32 NaN back as a float64.
                match value.is_nan() {
                    true => Fidelity::Reencoded,
                    false => Fidelity::Exact,
                }
            }
            123 => {
                let mut be = [0u8; 8];
                be.copy_from_slice(r.take(8)?);
                let value = f64::from_be_bytes(be);
                // yrs writes a float64 that a float32 holds as a float32.
                match (value as f32) as f64 == value {
                    true => Fidelity::Reencoded,
                    false => Fidelity::Exact,
                }
            }
            122 => {
                let mut be = [0u8; 8];
                be.copy_from_slice(r.take(8)?);
                bigint_fidelity(i64::from_be_bytes(be))
            }
            // string, buffer
            119 | 116 => {
                r.buf()?;
                Fidelity::Exact
            }
            118 => {
                let n = r.count(2)?;
                open.push(Open {
                    remaining: n,
                    keyed: true,
                });
                // More than one key: yrs lists them in its own order.
                match n > 1 {
                    true => Fidelity::Reencoded,
                    false => Fidelity::Exact,
                }
            }
            117 => {
                let n = r.count(1)?;
                open.push(Open {
                    remaining: n,
                    keyed: false,
                });
                Fidelity::Exact
            }
            tag => return Err(format!("unknown value tag {tag}")),
        };
        fidelity = fidelity.and(value);
        // Move to the next value of the innermost open container, closing
        // the finished ones; done when none is left open.
        loop {
            match open.last_mut() {
                None => {
                    if depth > MAX_DEPTH {
                        fidelity = Fidelity::Unsafe;
                    }
                    return Ok(Scanned {
                        end: r.pos,
                        depth,
                        fidelity,
                    });
                }
                Some(container) if container.remaining == 0 => {
                    open.pop();
                }
                Some(container) => {
                    container.remaining -= 1;
                    if container.keyed {
                        r.buf()?;
                    }
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use yrs::Any;

    fn encoded(any: &Any) -> Vec<u8> {
        use yrs::updates::encoder::{Encoder, EncoderV1};
        let mut enc = EncoderV1::new();
        enc.write_any(any);
        enc.to_vec()
    }

    fn fidelity(bytes: &[u8]) -> Fidelity {
        let scanned = scan(bytes, 0).expect("a value scans");
        assert_eq!(scanned.end, bytes.len(), "the whole value is scanned");
        scanned.fidelity
    }

    #[test]
    fn what_yrs_writes_is_exact() {
        let values = [
            Any::Null,
            Any::Undefined,
            Any::Bool(true),
            Any::from(-5),
            Any::from(0x7FFF_FFFF),
            Any::from(1.5),
            Any::from(0.1),
            Any::from(1e300),
            Any::from("héllo 😀"),
            Any::from(vec![1u8, 2, 3]),
            Any::from(vec![Any::from(1), Any::Null]),
            Any::from(HashMap::from([("k".to_owned(), Any::from("v"))])),
        ];
        for value in &values {
            assert_eq!(fidelity(&encoded(value)), Fidelity::Exact, "{value:?}");
        }
    }

    #[test]
    fn what_yrs_gives_back_otherwise_is_reencoded() {
        // -0 as JavaScript writes it.
        assert_eq!(fidelity(&[125, 0x40]), Fidelity::Reencoded);
        // An object of two keys.
        let map = Any::from(HashMap::from([
            ("a".to_owned(), Any::from(1)),
            ("b".to_owned(), Any::from(2)),
        ]));
        assert_eq!(fidelity(&encoded(&map)), Fidelity::Reencoded);
        // 5n, as lib0 writes BigInts (big-endian).
        let mut five = vec![122];
        five.extend_from_slice(&5i64.to_be_bytes());
        assert_eq!(fidelity(&five), Fidelity::Reencoded);
        // A BigInt no number holds stays a BigInt.
        let mut big = vec![122];
        big.extend_from_slice(&((1i64 << 62) + 1).to_be_bytes());
        assert_eq!(fidelity(&big), Fidelity::Exact);
        // 1 written in two bytes.
        assert_eq!(fidelity(&[125, 0x81, 0x00]), Fidelity::Reencoded);
        // A float64 a float32 holds.
        let mut half = vec![123];
        half.extend_from_slice(&0.5f64.to_be_bytes());
        assert_eq!(fidelity(&half), Fidelity::Reencoded);
    }

    #[test]
    fn deep_and_overlong_values_are_unsafe_and_scanned_without_recursion() {
        let mut deep = Vec::new();
        for _ in 0..100_000 {
            deep.extend_from_slice(&[117, 1]);
        }
        deep.push(126);
        let scanned = scan(&deep, 0).unwrap();
        assert_eq!((scanned.end, scanned.depth), (deep.len(), 100_000));
        assert_eq!(scanned.fidelity, Fidelity::Unsafe);
        let mut at_limit = Vec::new();
        for _ in 0..MAX_DEPTH {
            at_limit.extend_from_slice(&[117, 1]);
        }
        at_limit.push(126);
        assert_eq!(fidelity(&at_limit), Fidelity::Exact);
        assert_eq!(
            fidelity(&[125, 0x81, 0x80, 0x80, 0x80, 0x80, 0x00]),
            Fidelity::Unsafe
        );
    }

    #[test]
    fn malformed_values_are_errors() {
        assert!(scan(&[118, 0x80, 0x80, 0x80, 0x80, 0x01], 0).is_err());
        assert!(scan(&[117, 2, 126], 0).is_err());
        assert!(scan(&[99], 0).is_err());
        assert!(scan(&[119, 5, b'a'], 0).is_err());
    }
}
