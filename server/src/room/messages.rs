//! Every message a room actor accepts, one type each, with its reply type.

use std::sync::Arc;

use actix::Message;
use actix_ws::CloseReason;
use roomcast_protocol::{state::EntityTable, Resume};
use tokio::sync::oneshot;

use super::{
    inputs::InputReceiver,
    member::{Latency, OutboxSender},
    timing::TickTimingSummary,
    ConnId,
};
use crate::game::PlayerId;

/// A connection asks to join (or resume) a game room.
#[derive(Message)]
#[rtype(result = "Result<Joined, JoinRefused>")]
pub struct JoinGame {
    /// The joining connection.
    pub conn: ConnId,
    /// Resume request from the client's `Join`, if any.
    pub resume: Option<Resume>,
    /// Where the room sends this member's frames.
    pub outbox: OutboxSender,
    /// Where the room takes this member's inputs from at each tick.
    pub inputs: InputReceiver,
    /// How the room makes the session close.
    pub kick: oneshot::Sender<CloseReason>,
    /// The member's round-trip time, measured by the session.
    pub latency: Latency,
    /// Joins as a spectator: no entity, no inputs (player id 0).
    pub spectator: bool,
    /// Who the join token named (`None` with authentication off).
    pub user: Option<String>,
}

/// A successful join.
#[derive(Debug, Clone, Copy)]
pub struct Joined {
    /// The member's player id.
    pub player: PlayerId,
    /// True when an earlier player was resumed.
    pub resumed: bool,
}

/// Why a join was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JoinRefused {
    /// The room is stopping; look it up again to get a fresh one.
    #[error("room is closing")]
    Closing,
    /// The room's game failed; it refuses members until it is evicted.
    #[error("room failed: {0}")]
    Failed(String),
    /// The room holds its most members.
    #[error("room is full ({0} members)")]
    Full(usize),
}

/// A member asks for a fresh snapshot.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RequestSnapshot {
    /// Asking player.
    pub player: PlayerId,
    /// Asking connection.
    pub conn: ConnId,
}

/// A member's ping, answered with a `Pong` carrying the room tick.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PingRoom {
    /// Pinging player.
    pub player: PlayerId,
    /// Pinging connection.
    pub conn: ConnId,
    /// Echoed back.
    pub client_time_us: u64,
}

/// How a member's connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// The client sent `Leave`: remove the player now.
    Left,
    /// The connection dropped or was closed: keep the player for the resume grace.
    Disconnected,
}

/// A member's connection ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MemberGone {
    /// The player.
    pub player: PlayerId,
    /// The connection that ended (ignored if the player has since resumed on another).
    pub conn: ConnId,
    /// Left for good, or may come back.
    pub departure: Departure,
}

/// The published state at a tick (the current one when `at_tick` is `None`), if
/// the room still holds it.
#[derive(Message)]
#[rtype(result = "Option<StateView>")]
pub struct InspectState {
    /// Which tick; `None` for the latest.
    pub at_tick: Option<u64>,
}

/// A published room state.
#[derive(Debug, Clone)]
pub struct StateView {
    /// Tick of the state.
    pub tick: u64,
    /// Entity table at that tick.
    pub entities: Arc<EntityTable>,
}

/// Figures about a room, for operators and tests.
#[derive(Message, Default)]
#[rtype(result = "GameRoomInfo")]
pub struct DescribeRoom {
    /// Include the game state as JSON.
    pub with_state: bool,
}

/// What [`DescribeRoom`] answers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GameRoomInfo {
    /// Game name.
    pub game: String,
    /// Room name.
    pub room: String,
    /// Current tick.
    pub tick: u64,
    /// Ticks per second.
    pub tick_rate_hz: u16,
    /// Connected members.
    pub members: Vec<MemberInfo>,
    /// Players disconnected and waiting out their resume grace.
    pub away_players: Vec<PlayerId>,
    /// Tick timing so far.
    pub timing: TickTimingSummary,
    /// Why the room failed, if it did.
    pub failed: Option<String>,
    /// Bytes per second queued to members (over the last second or so).
    pub bytes_out_per_sec: f64,
    /// The latest stored snapshot of the room.
    pub last_snapshot: Option<crate::store::SnapshotMeta>,
    /// The game state as JSON, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<serde_json::Value>,
}

/// One member in [`GameRoomInfo`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct MemberInfo {
    /// Player id (0 for spectators).
    pub player: PlayerId,
    /// A spectator (no entity, no inputs).
    pub spectator: bool,
    /// Who its join token named (`None` with authentication off).
    pub user: Option<String>,
    /// Connection id.
    pub conn: ConnId,
    /// Frames waiting in its outbox.
    pub outbox_depth: usize,
    /// Frames skipped because it lagged.
    pub frames_skipped: u64,
    /// Seconds since it joined.
    pub connected_secs: f64,
    /// Latest WebSocket ping round trip, milliseconds (`None` until measured).
    pub latency_ms: Option<f64>,
}

/// One member of a doc room, for inspection.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DocMemberInfo {
    /// Connection id.
    pub conn: ConnId,
    /// Frames waiting in its outbox.
    pub outbox_depth: usize,
    /// Frames skipped because it lagged.
    pub frames_skipped: u64,
    /// Seconds since it joined.
    pub connected_secs: f64,
    /// Latest WebSocket ping round trip, milliseconds (`None` until measured).
    pub latency_ms: Option<f64>,
    /// Awareness client ids it introduced.
    pub awareness_clients: usize,
    /// Read-only member.
    pub read_only: bool,
    /// Who its join token named (`None` with authentication off).
    pub user: Option<String>,
}

/// Stops the room (graceful shutdown or operator request).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopRoom;

/// A connection joins a doc room.
#[derive(Message)]
#[rtype(result = "Result<(), JoinRefused>")]
pub struct JoinDoc {
    /// The joining connection.
    pub conn: ConnId,
    /// Where the room sends this member's frames.
    pub outbox: OutboxSender,
    /// How the room makes the session close.
    pub kick: oneshot::Sender<CloseReason>,
    /// The member's round-trip time, measured by the session.
    pub latency: Latency,
    /// Read-only: its updates are dropped (it is told so), its awareness relayed.
    pub read_only: bool,
    /// Who the join token named (`None` with authentication off).
    pub user: Option<String>,
}

/// The decoded messages of one frame from a doc member.
#[derive(Message)]
#[rtype(result = "Result<(), crate::doc::Close>")]
pub struct DocMessages {
    /// The sending connection.
    pub conn: ConnId,
    /// Its messages, in order.
    pub messages: Vec<crate::yjs::wire::Inbound>,
}

/// A doc member's connection ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct LeaveDoc {
    /// The connection.
    pub conn: ConnId,
}

/// Asks a doc room for its figures and content.
#[derive(Message)]
#[rtype(result = "DocRoomInfo")]
pub struct InspectDoc;

/// What [`InspectDoc`] answers.
#[derive(Debug, Clone)]
pub struct DocRoomInfo {
    /// The room's figures.
    pub summary: DocRoomSummary,
    /// JSON view of the root types (their types inferred from their content).
    pub content: serde_json::Value,
    /// The whole document as one v1 update (decode it into a `yrs::Doc` to read it).
    pub state_update: Vec<u8>,
}

/// Asks a doc room for its figures (cheap: no document encoding).
#[derive(Message)]
#[rtype(result = "DocRoomSummary")]
pub struct DescribeDoc;

/// What [`DescribeDoc`] answers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DocRoomSummary {
    /// Document name.
    pub name: String,
    /// Connected members, by connection id.
    pub members: Vec<DocMemberInfo>,
    /// Approximate encoded size of the document, bytes.
    pub doc_bytes: usize,
    /// Updates that changed the document since the room started.
    pub updates_applied: u64,
    /// Awareness states present.
    pub awareness_clients: usize,
    /// Updates accepted but not yet stored.
    pub pending_updates: usize,
    /// Updates waiting for clocks the document lacks (sent by a reconnecting
    /// client before its sync step 2).
    pub held_updates: usize,
    /// Their bytes.
    pub held_bytes: usize,
    /// Values kept as clients wrote them, because yrs would encode them
    /// otherwise (object key order, `-0`, BigInts, formats, embeds).
    pub kept_values: usize,
    /// Their bytes.
    pub kept_bytes: usize,
    /// Bytes per second queued to members (over the last second or so).
    pub bytes_out_per_sec: f64,
    /// The latest stored snapshot (compaction) of the document.
    pub last_snapshot: Option<crate::store::SnapshotMeta>,
}

/// Takes a snapshot now (game: the current state; doc: a compaction of the
/// stored log). Answers once the store has it.
#[derive(Message)]
#[rtype(result = "Result<crate::store::SnapshotMeta, String>")]
pub struct TakeSnapshot;

/// Why a room refused to restore a snapshot.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RestoreRefused {
    /// The snapshot cannot be restored into this room as it is (the room failed
    /// or is closing, the snapshot's format differs, its content does not decode).
    #[error("{0}")]
    Conflict(String),
    /// The room stopped or its edit could not be stored.
    #[error("{0}")]
    Unavailable(String),
}

/// What a successful restore came to.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Restored {
    /// Game rooms: the tick whose state is the restored one (members received it
    /// as a full snapshot). Doc rooms: the seq of the update that brought the
    /// document back (`None` when the content was already the snapshot's).
    pub at: Option<i64>,
}

/// Resets a game room to a stored snapshot at its next tick: every member then
/// receives a full snapshot. Players connected now but absent from the snapshot
/// join the restored state as new entities; players in the snapshot who are not
/// here any more are removed. Answers once the tick has run.
#[derive(Message)]
#[rtype(result = "Result<Restored, RestoreRefused>")]
pub struct RestoreGameSnapshot {
    /// The snapshot, as loaded from the store.
    pub snapshot: crate::store::GameSnapshot,
}

/// Brings a doc room back to a stored snapshot's content with a new update that
/// every member receives (so the restore converges with their copies instead of
/// being undone by them). Answers once that update is stored (and relayed).
#[derive(Message)]
#[rtype(result = "Result<Restored, RestoreRefused>")]
pub struct RestoreDocSnapshot {
    /// The snapshot, as loaded from the store.
    pub snapshot: crate::store::DocSnapshot,
}
