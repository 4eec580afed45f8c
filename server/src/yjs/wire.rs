//! The y-websocket wire format (lib0 encoding) as the npm `y-websocket` client
//! speaks it: a binary frame holds one or more messages, each a varuint type
//! (0 sync, 1 awareness, 2 auth, 3 query-awareness) and its body. Bodies are
//! decoded and encoded with `yrs::sync` only; this module adds what yrs leaves
//! out: finding message boundaries (so a truncated message is an error rather
//! than silently dropped), deciding what is ignored, refusing bodies yrs
//! cannot safely decode ([`bounds`]) and setting aside the content yrs would
//! not give back as written ([`fidelity`]).

use super::bounds;
use super::fidelity;
use bytes::Bytes;
use yrs::sync::{Awareness, AwarenessUpdate, Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{StateVector, Update};

/// Message types of the y-websocket protocol.
const MSG_SYNC: u64 = 0;
const MSG_AWARENESS: u64 = 1;
const MSG_AUTH: u64 = 2;
const MSG_QUERY_AWARENESS: u64 = 3;

/// One decoded client message.
#[derive(Debug)]
pub enum Inbound {
    /// Sync step 1: the client's state vector; answered with step 2.
    SyncStep1(StateVector),
    /// Sync step 2 or an update: document changes to apply and relay.
    Update(ClientUpdate),
    /// Awareness states to apply and relay.
    Awareness(AwarenessUpdate),
    /// A request for every known awareness state.
    AwarenessQuery,
    /// A message the server accepts and ignores (auth, unknown types), as the
    /// reference server does.
    Ignored,
}

/// An update as a client sent it, walked and decoded.
#[derive(Debug)]
pub struct ClientUpdate {
    /// Its bytes as the client wrote them (what the room stores and relays,
    /// once integrated, is yrs's encoding with these bytes' units put back).
    pub body: Bytes,
    /// Its blocks' ids, origins, anchors and content (for the room's
    /// [`super::item_index`] and [`super::deps`] checks).
    pub shape: bounds::UpdateShape,
    /// Its units of content yrs does not give back as written.
    pub units: Vec<fidelity::Unit>,
    /// Decoded by yrs, with placeholders for what yrs cannot take.
    pub update: Update,
}

impl ClientUpdate {
    /// Walks and decodes an update body (v1).
    pub fn decode(body: &[u8]) -> Result<Self, WireError> {
        let shape = bounds::update_shape_v1(body).map_err(|cause| WireError::Body {
            what: "update",
            cause,
        })?;
        let units = fidelity::units(body, &shape).map_err(|cause| WireError::Body {
            what: "update",
            cause,
        })?;
        // Already checked by the walk that gave the shape.
        let update = decode_body("update", &fidelity::for_yrs(body, &units), |_| Ok(()))?;
        Ok(Self {
            body: Bytes::copy_from_slice(body),
            shape,
            units,
            update,
        })
    }

    /// Its size, bytes.
    pub fn len(&self) -> usize {
        self.body.len()
    }

    /// Whether it changes nothing (the empty sync step 2 of a new client).
    pub fn is_empty(&self) -> bool {
        self.update.is_empty()
    }
}

/// Why a frame was refused (the connection closes with 1007).
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// A message ended before its declared length.
    #[error("message truncated at byte {0}")]
    Truncated(usize),
    /// A varuint longer than 64 bits.
    #[error("malformed varint at byte {0}")]
    BadVarint(usize),
    /// A sync message of an unknown sub-type.
    #[error("unknown sync message type {0}")]
    UnknownSyncType(u64),
    /// A message body that yrs could not decode.
    #[error("undecodable {what}: {cause}")]
    Body {
        /// Which message.
        what: &'static str,
        /// yrs's explanation.
        cause: String,
    },
}

/// Reads lib0 variable-length values from a frame, tracking the position.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn var_uint(&mut self) -> Result<u64, WireError> {
        let start = self.pos;
        let mut value: u64 = 0;
        let mut shift = 0u32;
        loop {
            let byte = *self.buf.get(self.pos).ok_or(WireError::Truncated(start))?;
            self.pos += 1;
            if shift >= 64 || (shift == 63 && byte > 1) {
                return Err(WireError::BadVarint(start));
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
            shift += 7;
        }
    }

    /// A varuint length and that many bytes.
    fn var_buf(&mut self) -> Result<&'a [u8], WireError> {
        let start = self.pos;
        let len = self.var_uint()?;
        let len = usize::try_from(len).map_err(|_| WireError::Truncated(start))?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|e| *e <= self.buf.len())
            .ok_or(WireError::Truncated(start))?;
        let body = &self.buf[self.pos..end];
        self.pos = end;
        Ok(body)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

/// Decodes a message body with yrs once `bounds` found nothing yrs cannot
/// be trusted with; a panic in yrs is an undecodable body too.
fn decode_body<T: Decode>(
    what: &'static str,
    body: &[u8],
    check: fn(&[u8]) -> Result<(), String>,
) -> Result<T, WireError> {
    let cause = match check(body) {
        Err(why) => why,
        Ok(()) => match std::panic::catch_unwind(|| T::decode_v1(body)) {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "yrs panicked decoding it".to_owned(),
        },
    };
    Err(WireError::Body { what, cause })
}

/// Decodes every message of a frame. A message of an unknown type ends the frame
/// (its length cannot be known): it and anything after it are ignored, as the
/// reference server ignores unknown types.
pub fn decode_frame(frame: &[u8]) -> Result<Vec<Inbound>, WireError> {
    let mut r = Reader { buf: frame, pos: 0 };
    let mut out = Vec::new();
    while !r.at_end() {
        match r.var_uint()? {
            MSG_SYNC => {
                let sub = r.var_uint()?;
                let body = r.var_buf()?;
                out.push(match sub {
                    0 => Inbound::SyncStep1(decode_body(
                        "state vector",
                        body,
                        bounds::state_vector_v1,
                    )?),
                    1 | 2 => Inbound::Update(ClientUpdate::decode(body)?),
                    other => return Err(WireError::UnknownSyncType(other)),
                });
            }
            MSG_AWARENESS => {
                let body = r.var_buf()?;
                out.push(Inbound::Awareness(decode_body(
                    "awareness update",
                    body,
                    bounds::awareness_v1,
                )?));
            }
            MSG_AUTH => {
                // permission (varuint), then a reason string when denied.
                if r.var_uint()? == 0 {
                    r.var_buf()?;
                }
                out.push(Inbound::Ignored);
            }
            MSG_QUERY_AWARENESS => out.push(Inbound::AwarenessQuery),
            _ => {
                out.push(Inbound::Ignored);
                break;
            }
        }
    }
    Ok(out)
}

/// Encodes one message as a frame.
pub fn encode(message: &Message) -> Bytes {
    Bytes::from(message.encode_v1())
}

/// A sync-update frame carrying `update` (encoded v1).
pub fn update_frame(update: Vec<u8>) -> Bytes {
    encode(&Message::Sync(SyncMessage::Update(update)))
}

/// The frames a joining client gets first: the server's sync step 1 and the
/// known awareness states (only when there are any).
pub fn greeting(awareness: &Awareness) -> Vec<Bytes> {
    use yrs::{ReadTxn, Transact};
    let sv = awareness.doc().transact().state_vector();
    let mut frames = vec![encode(&Message::Sync(SyncMessage::SyncStep1(sv)))];
    if let Ok(update) = awareness.update() {
        if !update.clients.is_empty() {
            frames.push(encode(&Message::Awareness(update)));
        }
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{Doc, GetString, Text, Transact};

    fn text_update(s: &str) -> Vec<u8> {
        use yrs::ReadTxn;
        let doc = Doc::new();
        let text = doc.get_or_insert_text("t");
        text.insert(&mut doc.transact_mut(), 0, s);
        let update = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        update
    }

    #[test]
    fn decodes_several_messages_in_one_frame() {
        let mut frame = update_frame(text_update("hello")).to_vec();
        frame.extend_from_slice(&encode(&Message::AwarenessQuery));
        frame.extend_from_slice(&encode(&Message::Sync(SyncMessage::SyncStep1(
            StateVector::default(),
        ))));
        let mut msgs = decode_frame(&frame).unwrap().into_iter();
        match msgs.next() {
            Some(Inbound::Update(update)) => {
                let doc = Doc::new();
                let text = doc.get_or_insert_text("t");
                doc.transact_mut().apply_update(update.update).unwrap();
                assert_eq!(text.get_string(&doc.transact()), "hello");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(msgs.next(), Some(Inbound::AwarenessQuery)));
        assert!(matches!(msgs.next(), Some(Inbound::SyncStep1(_))));
        assert!(msgs.next().is_none());
    }

    #[test]
    fn refuses_truncated_messages_and_bad_varints() {
        let frame = update_frame(text_update("hello"));
        for cut in 1..frame.len() {
            assert!(decode_frame(&frame[..cut]).is_err(), "cut at {cut}");
        }
        assert!(matches!(
            decode_frame(&[0xff; 11]),
            Err(WireError::BadVarint(0))
        ));
        assert!(matches!(
            decode_frame(&[0, 7, 0]),
            Err(WireError::UnknownSyncType(7))
        ));
        // A huge declared length is refused without allocating it.
        assert!(matches!(
            decode_frame(&[0, 2, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            Err(WireError::Truncated(_))
        ));
    }

    #[test]
    fn ignores_auth_and_stops_at_unknown_types() {
        let mut frame = vec![2, 1]; // auth: permission granted
        frame.extend_from_slice(&[9, 1, 2, 3]); // unknown type 9
        let msgs = decode_frame(&frame).unwrap();
        assert!(matches!(
            msgs.as_slice(),
            [Inbound::Ignored, Inbound::Ignored]
        ));
    }
}
