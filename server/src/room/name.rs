//! Room names: 1 to 128 bytes of `[A-Za-z0-9_.-]`, for game and doc rooms alike.

use std::fmt;

/// Longest accepted room name, in bytes.
pub const MAX_ROOM_NAME_BYTES: usize = 128;

/// A validated room name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName(String);

/// Why a room name was refused (HTTP 400 before the upgrade).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomNameError {
    /// Empty name.
    #[error("room name is empty")]
    Empty,
    /// Over [`MAX_ROOM_NAME_BYTES`].
    #[error("room name is {0} bytes long; the maximum is {MAX_ROOM_NAME_BYTES}")]
    TooLong(usize),
    /// A character outside `[A-Za-z0-9_.-]`.
    #[error("room name contains {0:?}; allowed are A-Z a-z 0-9 _ . -")]
    BadCharacter(char),
}

impl RoomName {
    /// Checks `name` against the rules.
    pub fn parse(name: &str) -> Result<Self, RoomNameError> {
        if name.is_empty() {
            return Err(RoomNameError::Empty);
        }
        if name.len() > MAX_ROOM_NAME_BYTES {
            return Err(RoomNameError::TooLong(name.len()));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(RoomNameError::BadCharacter(c));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet_and_refuses_the_rest() {
        assert!(RoomName::parse("Lobby_1.a-b").is_ok());
        assert_eq!(RoomName::parse(""), Err(RoomNameError::Empty));
        assert_eq!(
            RoomName::parse(&"a".repeat(129)),
            Err(RoomNameError::TooLong(129))
        );
        assert!(RoomName::parse(&"a".repeat(128)).is_ok());
        assert_eq!(
            RoomName::parse("a b"),
            Err(RoomNameError::BadCharacter(' '))
        );
        assert_eq!(RoomName::parse("é"), Err(RoomNameError::BadCharacter('é')));
        assert_eq!(
            RoomName::parse("a/b"),
            Err(RoomNameError::BadCharacter('/'))
        );
    }
}
