//! The loop every joined member's session runs, whatever its room kind: one
//! `select!` over server shutdown, a kick from the room, the heartbeat and the
//! socket's frames, which ends with a close reason. What a binary frame means is
//! the room kind's business ([`FrameHandler`]).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use actix_ws::{AggregatedMessageStream, CloseCode, CloseReason, Session};
use bytes::Bytes;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::rate::{RateExceeded, RateLimiter};
use super::socket::{self, close_reason, ConnLimits, Frame};
use crate::metrics::ConnectionMetrics;
use crate::room::member::Latency;
use crate::room::messages::Departure;

/// What to do after a binary frame.
pub enum Flow {
    /// Keep serving.
    Continue,
    /// Close with this reason; the member left this way.
    End(CloseReason, Departure),
}

/// Handles the binary frames of one member.
pub trait FrameHandler {
    /// One binary message from the client.
    async fn on_binary(&mut self, ws: &mut Session, bytes: Bytes) -> Flow;
}

/// The instant heartbeat payloads count from (process-wide).
fn heartbeat_epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// A heartbeat ping's payload: when it was sent, microseconds since the epoch.
fn ping_payload() -> [u8; 8] {
    (heartbeat_epoch().elapsed().as_micros() as u64).to_le_bytes()
}

/// The round trip a pong reports, if it echoes one of our pings.
fn round_trip(pong: &[u8]) -> Option<Duration> {
    let sent = u64::from_le_bytes(pong.try_into().ok()?);
    let now = heartbeat_epoch().elapsed().as_micros() as u64;
    now.checked_sub(sent).map(Duration::from_micros)
}

/// Serves a joined member until something ends the connection; returns the close
/// reason to send (`None` when the peer is already gone) and how the member left.
/// Heartbeat pings go out at once and then every interval; their pongs measure
/// the member's round-trip time into `latency`.
#[allow(clippy::too_many_arguments)]
pub async fn serve_member<H: FrameHandler>(
    ws: &mut Session,
    stream: &mut AggregatedMessageStream,
    kick: &mut oneshot::Receiver<CloseReason>,
    shutdown: &CancellationToken,
    limits: &ConnLimits,
    counters: &ConnectionMetrics,
    latency: &Latency,
    handler: &mut H,
) -> (Option<CloseReason>, Departure) {
    let gone = Departure::Disconnected;
    let mut heartbeat = tokio::time::interval(limits.heartbeat_interval);
    let mut rate = RateLimiter::new(
        limits.max_messages_per_sec,
        limits.max_bytes_per_sec,
        limits.max_frame_bytes,
    );
    let mut last_heard = Instant::now();
    loop {
        let frame = tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                return (Some(close_reason(CloseCode::Away, "server shutting down")), gone);
            }
            kicked = &mut *kick => {
                let reason = kicked.unwrap_or_else(|_| close_reason(CloseCode::Error, "room stopped"));
                return (Some(reason), gone);
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > limits.heartbeat_timeout {
                    crate::metrics::refused("heartbeat_timeout", "heartbeat timeout: closed with 1008");
                    return (Some(close_reason(CloseCode::Policy, "heartbeat timeout")), gone);
                }
                socket::try_send(ws.ping(&ping_payload())).await;
                continue;
            }
            frame = socket::next_frame(stream, ws, limits.max_frame_bytes) => frame,
        };
        last_heard = Instant::now();
        match frame {
            Frame::Binary(bytes) => {
                counters.messages_in.increment(1);
                counters.bytes_in.increment(bytes.len() as u64);
                if let Err(exceeded) = rate.admit(last_heard, bytes.len()) {
                    let why = match exceeded {
                        RateExceeded::Messages => format!(
                            "message rate limit exceeded ({} per second, bursts of twice as many; \
                             --max-messages-per-sec)",
                            limits.max_messages_per_sec
                        ),
                        RateExceeded::Bytes => format!(
                            "byte rate limit exceeded ({} bytes per second; --max-bytes-per-sec)",
                            limits.max_bytes_per_sec
                        ),
                    };
                    crate::metrics::refused(exceeded.reason(), &format!("{why}: closed with 1008"));
                    return (Some(close_reason(CloseCode::Policy, why)), gone);
                }
                if let Flow::End(reason, departure) = handler.on_binary(ws, bytes).await {
                    return (Some(reason), departure);
                }
            }
            Frame::Control => {}
            Frame::Pong(payload) => {
                if let Some(rtt) = round_trip(&payload) {
                    latency.record(rtt);
                }
            }
            Frame::Close(reason) => return (Some(reason), gone),
            Frame::Ended => return (None, gone),
        }
    }
}
