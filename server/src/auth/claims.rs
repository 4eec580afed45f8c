//! What a join token says: who (`sub`), which rooms (`room`, exact or a prefix
//! pattern), with what role, until when (`exp`).

use serde::{Deserialize, Serialize};

/// A member's role, named by its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Game rooms: plays (sends inputs, has an entity).
    Player,
    /// Game rooms: watches (receives the state, sends no inputs, has no entity).
    Spectator,
    /// Doc rooms: edits.
    Write,
    /// Doc rooms: reads; its updates are dropped (it is told so), its awareness
    /// (presence, cursor) is still relayed.
    Read,
}

impl Role {
    /// Whether this role applies to rooms of `kind` (`game` or `doc`).
    pub fn fits(self, kind: &str) -> bool {
        match self {
            Role::Player | Role::Spectator => kind == "game",
            Role::Write | Role::Read => kind == "doc",
        }
    }

    /// The role's name, as in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Player => "player",
            Role::Spectator => "spectator",
            Role::Write => "write",
            Role::Read => "read",
        }
    }
}

/// The claims of a join token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user (or player) the token was issued to.
    pub sub: String,
    /// The room(s) it admits to: a room path (`game/arena/lobby`, `doc/notes`),
    /// or a prefix of one followed by `*` (`game/arena/*`, `doc/team-*`, `*`).
    pub room: String,
    /// What the holder may do there.
    pub role: Role,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issued at, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
}

impl Claims {
    /// Whether the token admits to the room at `path` (`game/{game}/{room}` or
    /// `doc/{name}`).
    pub fn admits(&self, path: &str) -> bool {
        match self.room.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => self.room == path,
        }
    }
}

/// The room path a token names for a game room.
pub fn game_room_path(game: &str, room: &str) -> String {
    format!("game/{game}/{room}")
}

/// The room path a token names for a doc room.
pub fn doc_room_path(name: &str) -> String {
    format!("doc/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(room: &str) -> Claims {
        Claims {
            sub: "u".into(),
            room: room.into(),
            role: Role::Player,
            exp: 0,
            iat: None,
        }
    }

    #[test]
    fn exact_rooms_and_prefix_patterns() {
        let lobby = game_room_path("arena", "lobby");
        assert!(claims("game/arena/lobby").admits(&lobby));
        assert!(!claims("game/arena/lobby").admits("game/arena/lobby2"));
        assert!(!claims("game/arena/lob").admits(&lobby));
        assert!(claims("game/arena/*").admits(&lobby));
        assert!(claims("*").admits(&doc_room_path("notes")));
        assert!(!claims("game/*").admits(&doc_room_path("notes")));
        assert!(claims("doc/team-*").admits(&doc_room_path("team-a")));
        assert!(!claims("doc/team-*").admits(&doc_room_path("other")));
    }

    #[test]
    fn roles_fit_their_room_kind() {
        assert!(Role::Player.fits("game") && Role::Spectator.fits("game"));
        assert!(Role::Write.fits("doc") && Role::Read.fits("doc"));
        assert!(!Role::Player.fits("doc") && !Role::Read.fits("game"));
    }
}
