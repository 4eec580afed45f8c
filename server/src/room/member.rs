//! A room member's side of the fan-out: a bounded outbox of encoded frames that
//! the member's session drains onto its socket.
//!
//! The room never waits on a member. It `try_send`s into the outbox; when the
//! outbox is full the member is *lagging*: it skips deltas (they are useless to it
//! once one is missed) and is marked for a fresh snapshot, which it receives as
//! soon as its outbox has room again. A member that stays lagging longer than the
//! room's lag timeout is disconnected with close code 1008.
//!
//! Inputs travel the other way through a second bounded queue per member: the
//! session (which has already checked them) `try_send`s, and the room drains every
//! member's queue at the start of each tick. The room thread is not woken per
//! input; a member that fills its queue between two ticks is closed (1008).

use std::time::{Duration, Instant};

use actix_ws::{CloseCode, CloseReason};
use bytes::Bytes;
use roomcast_protocol::ResumeToken;
use tokio::sync::{mpsc, oneshot};

use super::ConnId;

/// Sending half of a member's outbox (held by the room).
pub type OutboxSender = mpsc::Sender<Bytes>;
/// Receiving half of a member's outbox (held by the session).
pub type OutboxReceiver = mpsc::Receiver<Bytes>;
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

/// Fewest frames an outbox holds: a joiner's `Welcome` and snapshot always fit.
pub const MIN_OUTBOX_FRAMES: usize = 4;

/// Creates an outbox of `frames` frames (at least [`MIN_OUTBOX_FRAMES`]).
pub fn outbox(frames: usize) -> (OutboxSender, OutboxReceiver) {
    mpsc::channel(frames.max(MIN_OUTBOX_FRAMES))
}

/// What delivering a frame to a member came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Queued.
    Sent,
    /// Outbox full: the member is lagging and will need a snapshot.
    Lagging,
    /// Lagging for longer than allowed: disconnect it.
    TooSlow,
    /// The session is gone.
    Gone,
}

/// One connected member of a room.
#[derive(Debug)]
pub struct Member {
    /// The connection this member is attached through.
    pub conn: ConnId,
    /// The token that lets this player resume.
    pub token: ResumeToken,
    /// Frames to the session.
    outbox: OutboxSender,
    /// Inputs from the session, drained at each tick.
    inputs: InputReceiver,
    /// Fires once to make the session close with this reason.
    kick: Option<oneshot::Sender<CloseReason>>,
    /// Since when the outbox has been too full to take a frame.
    lagging_since: Option<Instant>,
    /// A delta was skipped: the next frame must be a full snapshot.
    needs_snapshot: bool,
    /// Frames skipped because the outbox was full (for inspection).
    pub frames_skipped: u64,
    /// When the member joined (or resumed).
    pub joined_at: Instant,
}

impl Member {
    /// A member attached through `conn`.
    pub fn new(
        conn: ConnId,
        token: ResumeToken,
        outbox: OutboxSender,
        inputs: InputReceiver,
        kick: oneshot::Sender<CloseReason>,
    ) -> Self {
        Self {
            conn,
            token,
            outbox,
            inputs,
            kick: Some(kick),
            lagging_since: None,
            needs_snapshot: false,
            frames_skipped: 0,
            joined_at: Instant::now(),
        }
    }

    /// Takes every input queued since the last tick, in order.
    pub fn drain_inputs(&mut self, mut f: impl FnMut(QueuedInput)) {
        while let Ok(input) = self.inputs.try_recv() {
            f(input);
        }
    }

    /// Queues a frame that is not part of the delta stream (welcome, pong,
    /// error, a requested snapshot). Dropped if the outbox is full.
    pub fn send_control(&self, frame: Bytes) -> bool {
        self.outbox.try_send(frame).is_ok()
    }

    /// Asks for a snapshot instead of the next delta.
    pub fn request_snapshot(&mut self) {
        self.needs_snapshot = true;
    }

    /// Delivers this tick's frame: the shared delta, or — for a member that needs
    /// one — a snapshot made at most once per tick by `snapshot`.
    pub fn deliver_tick(
        &mut self,
        delta: &Bytes,
        snapshot: &mut dyn FnMut() -> Bytes,
        now: Instant,
        lag_timeout: Duration,
    ) -> Delivery {
        if self.outbox.is_closed() {
            return Delivery::Gone;
        }
        // Only the room sends on this outbox, so room seen now stays room until
        // the try_send below: a full outbox never costs a snapshot encode.
        if self.outbox.capacity() > 0 {
            let frame = if self.needs_snapshot {
                snapshot()
            } else {
                delta.clone()
            };
            if self.outbox.try_send(frame).is_ok() {
                self.needs_snapshot = false;
                self.lagging_since = None;
                return Delivery::Sent;
            }
        }
        self.frames_skipped += 1;
        self.needs_snapshot = true;
        let since = *self.lagging_since.get_or_insert(now);
        if now.duration_since(since) > lag_timeout {
            Delivery::TooSlow
        } else {
            Delivery::Lagging
        }
    }

    /// Frames waiting in the outbox.
    pub fn outbox_depth(&self) -> usize {
        self.outbox.max_capacity() - self.outbox.capacity()
    }

    /// Tells the session to close with `code` and `reason` (once).
    pub fn kick(&mut self, code: CloseCode, reason: impl Into<String>) {
        if let Some(kick) = self.kick.take() {
            let _ = kick.send(CloseReason {
                code,
                description: Some(reason.into()),
            });
        }
    }
}
