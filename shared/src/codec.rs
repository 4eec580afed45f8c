//! The one codec: every encode and decode of a roomcast binary message goes through
//! this module, so replacing bincode is a one-file change.
//!
//! Configuration (fixed, documented in `shared/PROTOCOL.md`): bincode 2 `standard()`
//! — little endian, variable-length integers — with a decode limit of
//! [`MAX_DECODE_BYTES`], so a hostile length prefix cannot make the decoder allocate
//! more than that. A decode must consume the whole input: trailing bytes are an error.

use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use serde::{de::DeserializeOwned, Serialize};

/// Upper bound on what one decode may allocate (and so on any declared length).
pub const MAX_DECODE_BYTES: usize = 16 * 1024 * 1024;

type WireConfig = Configuration<LittleEndian, Varint, Limit<MAX_DECODE_BYTES>>;

const CONFIG: WireConfig = bincode::config::standard().with_limit::<MAX_DECODE_BYTES>();

/// Why bytes could not be turned into a message (or, never for roomcast's own
/// types, a message into bytes).
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The bytes are not a valid encoding of the expected type.
    #[error("malformed message: {0}")]
    Malformed(#[from] bincode::error::DecodeError),
    /// A valid message was followed by extra bytes.
    #[error("{0} unexpected trailing bytes after the message")]
    TrailingBytes(usize),
    /// The value could not be encoded.
    #[error("cannot encode message: {0}")]
    Encode(#[from] bincode::error::EncodeError),
}

/// Encodes any serde value with the wire configuration.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(bincode::serde::encode_to_vec(value, CONFIG)?)
}

/// Encodes into an existing buffer (appending), to reuse allocations on hot paths.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    bincode::serde::encode_into_std_write(value, out, CONFIG)?;
    Ok(())
}

/// Decodes a whole buffer as one `T`; trailing bytes are refused.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, used) = bincode::serde::decode_from_slice::<T, _>(bytes, CONFIG)?;
    if used != bytes.len() {
        return Err(CodecError::TrailingBytes(bytes.len() - used));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_trailing_bytes() {
        let bytes = encode(&(7u32, String::from("hi"))).unwrap();
        assert_eq!(decode::<(u32, String)>(&bytes).unwrap(), (7, "hi".into()));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            decode::<(u32, String)>(&longer),
            Err(CodecError::TrailingBytes(1))
        ));
    }

    #[test]
    fn refuses_lengths_over_the_limit_without_allocating() {
        // A Vec<u8> declaring 2^40 elements: u64 length marker 253 + 8 bytes.
        let mut bytes = vec![253u8];
        bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(matches!(
            decode::<Vec<u8>>(&bytes),
            Err(CodecError::Malformed(_))
        ));
    }

    #[test]
    fn empty_and_truncated_input_is_an_error_not_a_panic() {
        assert!(decode::<(u32, u64)>(&[]).is_err());
        assert!(decode::<String>(&[5, b'a']).is_err());
    }
}
