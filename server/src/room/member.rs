//! A room member's side of the fan-out: a bounded outbox of encoded frames that
//! the member's session drains onto its socket.
//!
//! The room never waits on a member. It `try_send`s into the outbox; when the
//! outbox is full the member is *lagging*: it skips deltas (they are useless to it
//! once one is missed) and is marked for a catch-up frame (a fresh snapshot of
//! the room), which it receives as soon as its outbox has room again. A member that stays lagging longer than the
//! room's lag timeout is disconnected with close code 1008.
//!
//! The same [`MemberLink`] serves game rooms (where the catch-up frame is a full
//! snapshot) and doc rooms (where it is the whole document as one update).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_ws::{CloseCode, CloseReason};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

/// Sending half of a member's outbox (held by the room).
pub type OutboxSender = mpsc::Sender<Bytes>;
/// Receiving half of a member's outbox (held by the session).
pub type OutboxReceiver = mpsc::Receiver<Bytes>;
/// Fewest frames an outbox holds: a joiner's `Welcome` and snapshot always fit.
pub const MIN_OUTBOX_FRAMES: usize = 4;

/// Creates an outbox of `frames` frames (at least [`MIN_OUTBOX_FRAMES`]).
pub fn outbox(frames: usize) -> (OutboxSender, OutboxReceiver) {
    mpsc::channel(frames.max(MIN_OUTBOX_FRAMES))
}

/// A member's latest measured round-trip time (WebSocket ping → pong), written by
/// its session at each heartbeat and read by the room for inspection.
#[derive(Debug, Clone, Default)]
pub struct Latency(Arc<AtomicU64>);

impl Latency {
    /// No measurement yet.
    const UNKNOWN: u64 = 0;

    /// Records one round trip.
    pub fn record(&self, rtt: Duration) {
        let micros = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX).max(1);
        self.0.store(micros, Ordering::Relaxed);
    }

    /// The latest round trip, if one was measured.
    pub fn get(&self) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            Self::UNKNOWN => None,
            micros => Some(Duration::from_micros(micros)),
        }
    }

    /// The latest round trip in milliseconds, if one was measured.
    pub fn millis(&self) -> Option<f64> {
        self.get().map(|d| d.as_secs_f64() * 1000.0)
    }
}

/// What delivering a frame to a member came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Queued a frame of this many bytes (0: nothing was due).
    Sent(usize),
    /// Outbox full: the member is lagging and will need a snapshot.
    Lagging,
    /// Lagging for longer than allowed: disconnect it.
    TooSlow,
    /// The session is gone.
    Gone,
}

/// The room's end of one member's connection: its outbox, its lag state, and the
/// means to make its session close.
#[derive(Debug)]
pub struct MemberLink {
    /// Frames to the session.
    outbox: OutboxSender,
    /// Fires once to make the session close with this reason.
    kick: Option<oneshot::Sender<CloseReason>>,
    /// Since when the outbox has been too full to take a frame.
    lagging_since: Option<Instant>,
    /// A frame was skipped: the next one must be a catch-up frame.
    needs_catch_up: bool,
    /// Frames skipped because the outbox was full (for inspection).
    pub frames_skipped: u64,
    /// When the member joined (or resumed).
    pub joined_at: Instant,
    /// Round-trip time measured by the session.
    pub latency: Latency,
}

impl MemberLink {
    /// A link over `outbox`, closed through `kick`, whose round-trip time the
    /// session measures into `latency`.
    pub fn new(outbox: OutboxSender, kick: oneshot::Sender<CloseReason>, latency: Latency) -> Self {
        Self {
            outbox,
            kick: Some(kick),
            lagging_since: None,
            needs_catch_up: false,
            frames_skipped: 0,
            joined_at: Instant::now(),
            latency,
        }
    }

    /// Queues a frame outside the shared stream (welcome, pong, error, a reply to
    /// this member only). Dropped if the outbox is full.
    pub fn send_control(&self, frame: Bytes) -> bool {
        self.outbox.try_send(frame).is_ok()
    }

    /// Asks for a catch-up frame instead of the next shared one.
    pub fn request_catch_up(&mut self) {
        self.needs_catch_up = true;
    }

    /// True while the member has skipped frames and awaits its catch-up.
    pub fn is_lagging(&self) -> bool {
        self.needs_catch_up
    }

    /// Delivers a frame of the shared stream (`None`: nothing new, only catch up
    /// if owed): the frame itself, or — for a member that needs one — a catch-up
    /// frame made at most once per call site by `catch_up`.
    pub fn deliver(
        &mut self,
        frame: Option<&Bytes>,
        catch_up: &mut dyn FnMut() -> Bytes,
        now: Instant,
        lag_timeout: Duration,
    ) -> Delivery {
        if self.outbox.is_closed() {
            return Delivery::Gone;
        }
        if !self.needs_catch_up && frame.is_none() {
            return Delivery::Sent(0);
        }
        // Only the room sends on this outbox, so room seen now stays room until
        // the try_send below: a full outbox never costs a catch-up encode.
        if self.outbox.capacity() > 0 {
            let next = match frame {
                Some(f) if !self.needs_catch_up => f.clone(),
                _ => catch_up(),
            };
            let len = next.len();
            if self.outbox.try_send(next).is_ok() {
                self.needs_catch_up = false;
                self.lagging_since = None;
                return Delivery::Sent(len);
            }
        }
        if frame.is_some() {
            self.frames_skipped += 1;
        }
        self.needs_catch_up = true;
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
