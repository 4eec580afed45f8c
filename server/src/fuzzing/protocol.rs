//! The wire codec under arbitrary bytes.

use std::fmt::Debug;

use roomcast_protocol::codec;
use roomcast_protocol::games::arena::{ArenaInput, ArenaPlayer};
use roomcast_protocol::games::counter::{CounterInput, CounterScore};
use roomcast_protocol::{ClientMessage, ServerMessage};
use serde::{de::DeserializeOwned, Serialize};

use crate::game::arena::ArenaState;
use crate::game::counter::CounterState;

/// Decodes `data` as every message and payload type the server reads or
/// writes: decoding must not panic, and whatever decodes must encode to bytes
/// that decode to the same value (and encode to the same bytes again).
pub fn protocol_decode(data: &[u8]) {
    if let Ok(message) = ClientMessage::decode(data) {
        let bytes = message.encode();
        let again = ClientMessage::decode(&bytes).expect("a re-encoded client message decodes");
        assert_eq!(again, message, "client message round trip");
        assert_eq!(again.encode(), bytes, "client message re-encoding");
    }
    if let Ok(message) = ServerMessage::decode(data) {
        let bytes = message.encode();
        let again = ServerMessage::decode(&bytes).expect("a re-encoded server message decodes");
        assert_eq!(again, message, "server message round trip");
        assert_eq!(again.encode(), bytes, "server message re-encoding");
    }
    round_trip::<ArenaInput>(data, true);
    round_trip::<CounterInput>(data, true);
    round_trip::<CounterScore>(data, true);
    round_trip::<CounterState>(data, true);
    // Floats: NaN is not equal to itself; the bytes must still round-trip.
    round_trip::<ArenaPlayer>(data, false);
    round_trip::<ArenaState>(data, false);
}

/// Decodes `data` as a `T` with the wire codec; if it decodes, checks the round
/// trip (the value itself when `compare_values`, the bytes always).
fn round_trip<T>(data: &[u8], compare_values: bool)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let Ok(value) = codec::decode::<T>(data) else {
        return;
    };
    let bytes = codec::encode(&value).expect("a decoded value encodes");
    let again: T = codec::decode(&bytes).expect("a re-encoded value decodes");
    if compare_values {
        assert_eq!(again, value, "{} round trip", std::any::type_name::<T>());
    }
    let twice = codec::encode(&again).expect("a decoded value encodes");
    assert_eq!(twice, bytes, "{} re-encoding", std::any::type_name::<T>());
}
