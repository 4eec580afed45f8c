//! Joining a room, for every room kind: fresh outbox and kick channels per
//! attempt, retries with a growing wait while the room is stopping (an evicted
//! room may still be writing its final snapshot), and the writer task that drains
//! the outbox once the room has taken the member.

use std::future::Future;
use std::time::Duration;

use actix::MailboxError;
use actix_web::rt::task::JoinHandle;
use actix_ws::{CloseCode, CloseReason, Session};
use tokio::sync::oneshot;

use super::socket::{self, close_reason};
use crate::room::member::{self, OutboxSender};
use crate::room::messages::JoinRefused;

/// How many times a join is tried; waits between tries grow from 20 ms to 200 ms.
const JOIN_ATTEMPTS: u32 = 25;

/// A member the room has taken.
pub struct Joined<T> {
    /// What the room answered (and whatever the attempt kept alongside).
    pub value: T,
    /// Fires when the room wants the session closed.
    pub kick: oneshot::Receiver<CloseReason>,
    /// Drains the member's outbox onto the socket.
    pub writer: JoinHandle<()>,
}

/// Runs `attempt` with a fresh outbox and kick channel until the room takes the
/// member, refuses it for good (1011), or keeps closing (1013).
pub async fn join_room<T, F, Fut>(
    ws: &Session,
    outbox_frames: usize,
    mut attempt: F,
) -> Result<Joined<T>, CloseReason>
where
    F: FnMut(OutboxSender, oneshot::Sender<CloseReason>) -> Fut,
    Fut: Future<Output = Result<Result<T, JoinRefused>, MailboxError>>,
{
    for n in 0..JOIN_ATTEMPTS {
        if n > 0 {
            tokio::time::sleep(Duration::from_millis((10u64 << n.min(5)).min(200))).await;
        }
        let (outbox_tx, outbox_rx) = member::outbox(outbox_frames);
        let (kick_tx, kick_rx) = oneshot::channel();
        match attempt(outbox_tx, kick_tx).await {
            Ok(Ok(value)) => {
                let writer = actix_web::rt::spawn(socket::write_outbox(ws.clone(), outbox_rx));
                return Ok(Joined {
                    value,
                    kick: kick_rx,
                    writer,
                });
            }
            Ok(Err(JoinRefused::Full(max))) => {
                let why = format!("room is full ({max} members); try again later");
                crate::metrics::refused("room_full", &why);
                return Err(close_reason(CloseCode::Again, why));
            }
            Ok(Err(JoinRefused::Failed(reason))) => {
                return Err(close_reason(
                    CloseCode::Error,
                    format!("room failed: {reason}"),
                ));
            }
            Ok(Err(JoinRefused::Closing))
            | Err(MailboxError::Closed)
            | Err(MailboxError::Timeout) => continue,
        }
    }
    Err(close_reason(
        CloseCode::Again,
        "room is restarting; try again",
    ))
}
