//! A game member's input queue: the session (which has already checked each input
//! against the game) `try_send`s, and the room drains every member's queue at the
//! start of each tick. The room thread is not woken per input; a member that fills
//! its queue between two ticks is closed (1008).

use bytes::Bytes;
use tokio::sync::mpsc;

/// Inputs a member may queue between two ticks.
pub const INPUT_QUEUE: usize = 64;

/// One input waiting for the next tick.
#[derive(Debug)]
pub struct QueuedInput {
    /// Client sequence number.
    pub seq: u32,
    /// The game's encoded input (already checked by the session).
    pub payload: Bytes,
}

/// Sending half of a member's input queue (held by the session).
pub type InputSender = mpsc::Sender<QueuedInput>;
/// Receiving half of a member's input queue (held by the room).
pub type InputReceiver = mpsc::Receiver<QueuedInput>;

/// Creates an input queue of [`INPUT_QUEUE`] inputs.
pub fn input_queue() -> (InputSender, InputReceiver) {
    mpsc::channel(INPUT_QUEUE)
}
