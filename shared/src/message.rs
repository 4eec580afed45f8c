//! The envelope messages of a game-room connection, both ways.
//!
//! A client opens `GET /game/{game}/{room}` as a WebSocket, sends [`ClientMessage::Join`]
//! as its first binary frame, and receives [`ServerMessage::Welcome`] followed by a
//! full [`ServerMessage::Snapshot`], then one [`ServerMessage::Delta`] per room tick.
//! Each WebSocket binary frame holds exactly one message. Field order here *is* the
//! wire order: do not reorder fields or variants (append new variants at the end).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Version of this envelope; a `Join` with another version is refused.
pub const PROTOCOL_VERSION: u16 = 1;

/// Everything a client may send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClientMessage {
    /// First message of a connection: join the room named by the URL.
    Join(Join),
    /// One player input, applied at the room's next tick.
    Input(Input),
    /// Round-trip probe; the server answers with [`ServerMessage::Pong`].
    Ping(Ping),
    /// Leave the room now (no reconnection grace), then the server closes with 1000.
    Leave,
    /// Ask for a fresh full snapshot (the client's mirror is out of step).
    Resync,
}

/// Join request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Join {
    /// Must equal [`PROTOCOL_VERSION`].
    pub protocol: u16,
    /// Set when reconnecting: resume an earlier player instead of joining anew.
    pub resume: Option<Resume>,
}

/// Reconnection request carried by a [`Join`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Resume {
    /// The token the earlier [`Welcome`] carried.
    pub token: ResumeToken,
    /// The tick of the client's mirror, so the server can send a delta from there.
    pub last_tick: u64,
}

/// Opaque secret that lets a reconnecting client take back its player.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResumeToken(pub [u8; 16]);

/// A player input. `payload` is the game's own input type, encoded with the codec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    /// Client sequence number, increasing; acknowledged through the game state.
    pub seq: u32,
    /// The game-specific input (for arena: [`crate::games::arena::ArenaInput`]).
    pub payload: Bytes,
}

/// Round-trip probe.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ping {
    /// Any client clock value; echoed back unchanged.
    pub client_time_us: u64,
}

/// Everything the server may send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerMessage {
    /// Answer to `Join`.
    Welcome(Welcome),
    /// The whole room state at a tick: replaces the client's mirror.
    Snapshot(Snapshot),
    /// What changed from `base_tick` to `tick`.
    Delta(Delta),
    /// Answer to `Ping`.
    Pong(Pong),
    /// Something the client sent was refused; the connection stays open.
    Error(ErrorMessage),
}

/// Answer to `Join`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    /// The server's [`PROTOCOL_VERSION`].
    pub protocol: u16,
    /// This client's player id in the room (stable across a resume).
    pub player_id: u32,
    /// Present this token in a later `Join` to take this player back.
    pub resume_token: ResumeToken,
    /// True when this join resumed an earlier player.
    pub resumed: bool,
    /// Game name, as in the URL.
    pub game: String,
    /// Room name, as in the URL.
    pub room: String,
    /// Ticks per second of this room.
    pub tick_rate_hz: u16,
}

/// One entity of the room state: an id and the game's encoded entity value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityData {
    /// Entity id, unique within the room.
    pub id: u32,
    /// The game's entity type encoded with the codec (arena:
    /// [`crate::games::arena::ArenaPlayer`]).
    pub data: Bytes,
}

/// The whole state at `tick`, entities in increasing id order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Room tick the state belongs to.
    pub tick: u64,
    /// Every entity, in increasing id order.
    pub entities: Vec<EntityData>,
}

/// The change from the state at `base_tick` to the state at `tick`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// Room tick the resulting state belongs to.
    pub tick: u64,
    /// Tick of the state this delta applies to; a client whose mirror is at
    /// another tick must not apply it (send `Resync` instead).
    pub base_tick: u64,
    /// Entities that are new or whose encoded bytes changed, in increasing id order.
    pub changed: Vec<EntityData>,
    /// Ids of entities that no longer exist, in increasing order.
    pub removed: Vec<u32>,
}

/// Answer to `Ping`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pong {
    /// The value from the `Ping`.
    pub client_time_us: u64,
    /// The room's current tick when the ping was answered.
    pub server_tick: u64,
}

/// In-band refusal; see [`crate::close::error`] for the codes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorMessage {
    /// Numeric code from [`crate::close::error`].
    pub code: u16,
    /// Human-readable explanation.
    pub message: String,
}

impl ClientMessage {
    /// Decodes one client frame.
    pub fn decode(bytes: &[u8]) -> Result<Self, crate::CodecError> {
        crate::codec::decode(bytes)
    }

    /// Encodes this message as one binary frame.
    pub fn encode(&self) -> Vec<u8> {
        // Cannot fail: every field has a known length and no custom Serialize impl.
        crate::codec::encode(self).expect("client messages always encode")
    }
}

impl ServerMessage {
    /// Decodes one server frame.
    pub fn decode(bytes: &[u8]) -> Result<Self, crate::CodecError> {
        crate::codec::decode(bytes)
    }

    /// Encodes this message as one binary frame.
    pub fn encode(&self) -> Bytes {
        // Cannot fail: every field has a known length and no custom Serialize impl.
        Bytes::from(crate::codec::encode(self).expect("server messages always encode"))
    }
}

#[cfg(test)]
#[path = "golden.rs"]
mod golden;
