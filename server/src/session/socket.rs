//! What every session does with its socket, whatever the room kind: read the next
//! frame with the limits applied, drain an outbox onto the socket, close with a
//! reason within a bounded time.

use std::time::Duration;

use actix_ws::{
    AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, ProtocolError, Session,
};
use bytes::Bytes;
use tokio::sync::mpsc;

/// How long a session waits to hand its close frame to a socket whose peer may
/// have stopped reading.
pub const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Per-connection limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Largest frame (and aggregated message), bytes.
    pub max_frame_bytes: usize,
    /// The first message must arrive within this long.
    pub join_timeout: Duration,
    /// Ping the peer this often.
    pub heartbeat_interval: Duration,
    /// Close a peer silent for this long.
    pub heartbeat_timeout: Duration,
    /// Messages per second the peer may send (bursts of twice as many).
    pub max_messages_per_sec: u32,
    /// Bytes per second the peer may send (bursts up to `max_frame_bytes`).
    pub max_bytes_per_sec: u32,
}

/// A close reason with a description.
pub fn close_reason(code: CloseCode, description: impl Into<String>) -> CloseReason {
    CloseReason {
        code,
        description: Some(description.into()),
    }
}

/// What one read from the socket came to.
pub enum Frame {
    /// A binary message.
    Binary(Bytes),
    /// Something only the session itself cares about (a ping, answered).
    Control,
    /// A pong, with its payload.
    Pong(Bytes),
    /// The connection must close with this reason.
    Close(CloseReason),
    /// The peer closed (its close frame, if any, answered) or vanished.
    Ended,
}

/// Reads the next message and turns protocol-level problems into close reasons.
pub async fn next_frame(
    stream: &mut AggregatedMessageStream,
    session: &mut Session,
    max_frame: usize,
) -> Frame {
    match stream.recv().await {
        None => Frame::Ended,
        Some(Ok(AggregatedMessage::Binary(bytes))) => Frame::Binary(bytes),
        Some(Ok(AggregatedMessage::Text(_))) => Frame::Close(close_reason(
            CloseCode::Unsupported,
            "text frames are not supported: send binary frames",
        )),
        Some(Ok(AggregatedMessage::Ping(bytes))) => {
            try_send(session.pong(&bytes)).await;
            Frame::Control
        }
        Some(Ok(AggregatedMessage::Pong(bytes))) => Frame::Pong(bytes),
        Some(Ok(AggregatedMessage::Close(_))) => {
            Frame::Close(close_reason(CloseCode::Normal, "closed by client"))
        }
        Some(Err(e)) if too_big(&e) => {
            let why = format!("frame larger than {max_frame} bytes");
            crate::metrics::refused("frame_size", &why);
            Frame::Close(close_reason(CloseCode::Size, why))
        }
        Some(Err(e)) => Frame::Close(close_reason(
            CloseCode::Protocol,
            format!("websocket protocol error: {e}"),
        )),
    }
}

/// Whether a read failed on a message over the size limit: actix-http's own
/// check, or the header check of [`super::frame_guard`] (which actix-ws reports
/// as an I/O error wrapping its `PayloadError::Overflow`).
fn too_big(e: &ProtocolError) -> bool {
    match e {
        ProtocolError::Overflow => true,
        ProtocolError::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<actix_web::error::PayloadError>())
            .is_some_and(|p| matches!(p, actix_web::error::PayloadError::Overflow)),
        _ => false,
    }
}

/// Hands a control frame to the socket only if it can take it right now.
///
/// A session must never block on its own socket: a peer that stopped reading
/// would stall the loop that notices kicks and shutdown. tokio's `timeout` polls
/// the inner future before looking at the deadline, so a zero timeout is a
/// non-blocking attempt; a frame that does not fit is dropped.
pub async fn try_send<F: std::future::Future>(send: F) {
    let _ = tokio::time::timeout(Duration::ZERO, send).await;
}

/// Drains `outbox` onto the socket until either side closes.
pub async fn write_outbox(mut session: Session, mut outbox: mpsc::Receiver<Bytes>) {
    while let Some(frame) = outbox.recv().await {
        if session.binary(frame).await.is_err() {
            break;
        }
    }
}

/// Sends the close frame, giving up after [`CLOSE_WAIT`] if the peer is not reading.
pub async fn close(session: Session, reason: Option<CloseReason>) {
    let _ = tokio::time::timeout(CLOSE_WAIT, session.close(reason)).await;
}
