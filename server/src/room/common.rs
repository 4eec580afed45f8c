//! What every room actor has, whatever its kind: its identity and place in the
//! registry, its log span, the store's writers, its fan-out figures, its latest
//! snapshot, and the rule that stops it once it has stayed empty.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::info_span;

use super::registry::{RoomKey, RoomRegistry};
use super::RoomId;
use crate::metrics::{RateMeter, RoomMetrics};
use crate::persist::{LastSnapshot, Persistence};

/// The fields and idle handling game and doc rooms share.
pub(crate) struct RoomBase {
    /// This room's lifetime id (see [`RoomId`]).
    pub id: RoomId,
    /// Registry key.
    pub key: RoomKey,
    /// Where this room unregisters itself when it stops.
    pub registry: Arc<RoomRegistry>,
    /// Span every log line of this room belongs to.
    pub span: tracing::Span,
    /// The store's writers (`None`: persistence off).
    pub persistence: Option<Arc<Persistence>>,
    /// Set once the room is on its way out (final snapshot under way).
    pub closing: bool,
    /// Fan-out counters of this room's kind.
    pub room_metrics: RoomMetrics,
    /// Bytes per second queued to members.
    pub out_rate: RateMeter,
    /// The latest snapshot stored of this room.
    pub last_snapshot: LastSnapshot,
    /// Since when the room has had nobody in it.
    empty_since: Option<Instant>,
}

impl RoomBase {
    /// A room of `kind` ("game" or "doc") just created.
    pub fn new(id: RoomId, key: RoomKey, registry: Arc<RoomRegistry>, kind: &'static str) -> Self {
        let span = info_span!("room", kind, key = %key, room_id = id);
        let persistence = registry.persistence();
        Self {
            id,
            key,
            registry,
            span,
            persistence,
            closing: false,
            room_metrics: RoomMetrics::new(kind),
            out_rate: RateMeter::new(Instant::now(), 0),
            last_snapshot: LastSnapshot::default(),
            empty_since: Some(Instant::now()),
        }
    }

    /// Whether the room should stop now: it is not `occupied` and has not been
    /// for `idle_timeout`, and is not already closing.
    pub fn idle(&mut self, occupied: bool, now: Instant, idle_timeout: Duration) -> bool {
        if occupied {
            self.empty_since = None;
            return false;
        }
        let since = *self.empty_since.get_or_insert(now);
        now.duration_since(since) >= idle_timeout && !self.closing
    }

    /// Samples the room's bytes-out rate (about once a second).
    pub fn sample_out_rate(&mut self, now: Instant) {
        self.out_rate
            .sample(now, self.room_metrics.room_bytes_out());
    }

    /// Unregisters the room (when its actor has stopped).
    pub fn forget(&self) {
        self.registry.forget(&self.key, self.id);
    }
}
