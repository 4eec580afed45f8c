//! WebSocket close codes the server uses, and the numeric codes of in-band
//! [`crate::ErrorMessage`]s. Both are part of the public contract
//! (`shared/PROTOCOL.md`).

/// Close codes (RFC 6455 section 7.4.1) and what roomcast means by each.
pub mod code {
    /// Normal closure: the client sent `Leave`, or closed itself.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down (or the room was closed by an operator).
    pub const GOING_AWAY: u16 = 1001;
    /// The client broke WebSocket framing (sent by the WebSocket layer).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text frame arrived: roomcast game rooms speak binary frames only.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A binary frame did not decode as a client message (or its game input).
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// Policy: the client stayed behind too long, broke the join handshake, or
    /// exceeded a limit.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A frame was larger than the configured maximum.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The room failed (its game logic panicked); its last good state is kept.
    pub const INTERNAL_ERROR: u16 = 1011;
    /// The room is restarting or full: reconnect with backoff.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// Codes carried by an in-band `Error` message; the connection stays open.
pub mod error {
    /// The message is not valid at this point of the session (e.g. `Input`
    /// before `Join`, or a second `Join`).
    pub const UNEXPECTED_MESSAGE: u16 = 1;
    /// The client speaks a protocol version the server does not.
    pub const UNSUPPORTED_PROTOCOL: u16 = 2;
    /// A resume token was unknown or its grace period had passed; the client
    /// joined as a new player instead.
    pub const RESUME_REJECTED: u16 = 3;
    /// The room is closing; reconnect to get a fresh room.
    pub const ROOM_CLOSING: u16 = 4;
    /// The input was refused (for example the member may not send inputs).
    pub const INPUT_REFUSED: u16 = 5;
}
