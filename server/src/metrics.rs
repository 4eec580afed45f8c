//! Prometheus metrics: every metric name roomcast records, the recorder, and the
//! text rendering served at `GET /metrics`.
//!
//! Labels are bounded sets only — `kind` (game | doc), `game` (registered games),
//! `code` (close codes), `op` (persistence operations) — never a room id: per-room
//! figures live in the rooms and are served by the admin API instead.
//! Durations are seconds, sizes bytes, as the names say.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Open WebSocket connections (gauge; `kind`).
pub const CONNECTIONS_OPEN: &str = "roomcast_connections_open";
/// Connections opened (counter; `kind`).
pub const CONNECTIONS_OPENED: &str = "roomcast_connections_opened_total";
/// Connections closed, by the close code the server sent (counter; `kind`, `code`;
/// `code="none"` when the peer vanished without a close handshake).
pub const CONNECTIONS_CLOSED: &str = "roomcast_connections_closed_total";
/// Requests and messages refused by a limit or a check (counter; `reason`:
/// origin, token_missing, token_invalid, token_forbidden, connections,
/// connections_per_ip, rooms, room_full, message_rate, byte_rate,
/// frame_size, doc_size, join_timeout, heartbeat_timeout, input_refused,
/// update_refused).
pub const REFUSALS: &str = "roomcast_refusals_total";
/// Rooms alive (gauge; `kind`, `game` — `game=""` for doc rooms).
pub const ROOMS_ACTIVE: &str = "roomcast_rooms_active";
/// Members per room, sampled once a second per room (histogram; `kind`).
pub const ROOM_MEMBERS: &str = "roomcast_room_members";
/// Time a game tick took (histogram, seconds; `game`).
pub const TICK_DURATION: &str = "roomcast_tick_duration_seconds";
/// How late a tick started against its schedule (histogram, seconds; `game`).
pub const TICK_LATENESS: &str = "roomcast_tick_lateness_seconds";
/// Ticks that started a whole period or more late (counter; `game`).
pub const TICKS_OVERRUN: &str = "roomcast_ticks_overrun_total";
/// Ticks run (counter; `game`).
pub const TICKS: &str = "roomcast_ticks_total";
/// Messages received from clients (counter; `kind`).
pub const MESSAGES_IN: &str = "roomcast_messages_in_total";
/// Bytes received from clients (counter; `kind`).
pub const BYTES_IN: &str = "roomcast_bytes_in_total";
/// Frames queued to clients (counter; `kind`).
pub const MESSAGES_OUT: &str = "roomcast_messages_out_total";
/// Bytes queued to clients (counter; `kind`).
pub const BYTES_OUT: &str = "roomcast_bytes_out_total";
/// Frames skipped because a member's outbox was full (counter; `kind`).
pub const OUTBOX_DROPS: &str = "roomcast_outbox_drops_total";
/// Members disconnected because they stayed behind (counter; `kind`).
pub const LAGGING_DISCONNECTS: &str = "roomcast_lagging_disconnects_total";
/// Size of accepted doc updates (histogram, bytes).
pub const DOC_UPDATE_SIZE: &str = "roomcast_doc_update_bytes";
/// Size of documents, sampled once a second per doc room (histogram, bytes).
pub const DOC_SIZE: &str = "roomcast_doc_size_bytes";
/// Time a store write took, retries included (histogram, seconds; `op`).
pub const PERSIST_WRITE: &str = "roomcast_persistence_write_seconds";
/// Store writes that failed for good (counter; `op`).
pub const PERSIST_FAILURES: &str = "roomcast_persistence_failures_total";
/// Snapshots stored (counter; `kind`: game snapshots, doc compactions).
pub const SNAPSHOTS: &str = "roomcast_snapshots_total";
/// Store connections checked out of the pool (gauge).
pub const STORE_POOL_IN_USE: &str = "roomcast_store_pool_connections_in_use";

/// Latency buckets, seconds: 50 µs to 10 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];
/// Size buckets, bytes: 16 B to 64 MiB.
const BYTES_BUCKETS: &[f64] = &[
    16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];
/// Member count buckets.
const MEMBER_BUCKETS: &[f64] = &[
    0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once (later calls reuse it: several servers
/// in one process, as in tests, share one set of metrics) and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            // Cannot fail: the matchers are constants and the bucket lists are not empty.
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_bytes".into()), BYTES_BUCKETS))
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(ROOM_MEMBERS.into()), MEMBER_BUCKETS))
                .expect("valid histogram buckets")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed by an embedder; then ours
            // only renders what it saw, which is nothing, and says so in the log.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics serves roomcast's own, empty one");
            }
            handle
        })
        .clone()
}

/// Per-connection counters, resolved once per connection (not per message).
pub struct ConnectionMetrics {
    /// Room kind label.
    kind: &'static str,
    /// Messages received.
    pub messages_in: metrics::Counter,
    /// Bytes received.
    pub bytes_in: metrics::Counter,
}

impl ConnectionMetrics {
    /// Counts a new connection of `kind` and returns its counters.
    pub fn opened(kind: &'static str) -> Self {
        metrics::counter!(CONNECTIONS_OPENED, "kind" => kind).increment(1);
        metrics::gauge!(CONNECTIONS_OPEN, "kind" => kind).increment(1.0);
        Self {
            kind,
            messages_in: metrics::counter!(MESSAGES_IN, "kind" => kind),
            bytes_in: metrics::counter!(BYTES_IN, "kind" => kind),
        }
    }

    /// Counts the connection closed with `code` (`None`: no close frame sent).
    pub fn closed(self, code: Option<u16>) {
        let code = code.map(|c| c.to_string()).unwrap_or_else(|| "none".into());
        metrics::counter!(CONNECTIONS_CLOSED, "kind" => self.kind, "code" => code).increment(1);
        metrics::gauge!(CONNECTIONS_OPEN, "kind" => self.kind).decrement(1.0);
    }
}

/// A room's fan-out counters, resolved once per room.
#[derive(Clone)]
pub struct RoomMetrics {
    /// Frames queued to members.
    messages_out: metrics::Counter,
    /// Bytes queued to members.
    bytes_out: metrics::Counter,
    /// This room's own total of bytes queued (for its bytes/s figure).
    room_bytes_out: Arc<AtomicU64>,
    /// Frames skipped for lagging members.
    pub outbox_drops: metrics::Counter,
    /// Members dropped for lagging too long.
    pub lagging_disconnects: metrics::Counter,
    /// Members per room, sampled.
    pub members: metrics::Histogram,
}

impl RoomMetrics {
    /// Counters of a room of `kind`.
    pub fn new(kind: &'static str) -> Self {
        Self {
            messages_out: metrics::counter!(MESSAGES_OUT, "kind" => kind),
            bytes_out: metrics::counter!(BYTES_OUT, "kind" => kind),
            room_bytes_out: Arc::default(),
            outbox_drops: metrics::counter!(OUTBOX_DROPS, "kind" => kind),
            lagging_disconnects: metrics::counter!(LAGGING_DISCONNECTS, "kind" => kind),
            members: metrics::histogram!(ROOM_MEMBERS, "kind" => kind),
        }
    }

    /// Queues a control frame on `link` and counts it if it was taken.
    pub fn sent_if(&self, link: &crate::room::member::MemberLink, frame: bytes::Bytes) -> bool {
        let len = frame.len();
        let taken = link.send_control(frame);
        if taken {
            self.sent(1, len);
        }
        taken
    }

    /// Counts `n` frames of `len` bytes queued.
    pub fn sent(&self, n: u64, len: usize) {
        self.sent_total(n, n * len as u64);
    }

    /// Counts `frames` frames of `bytes` bytes in all queued.
    pub fn sent_total(&self, frames: u64, bytes: u64) {
        if frames > 0 {
            self.messages_out.increment(frames);
            self.bytes_out.increment(bytes);
            self.room_bytes_out.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Bytes this room has queued to its members so far.
    pub fn room_bytes_out(&self) -> u64 {
        self.room_bytes_out.load(Ordering::Relaxed)
    }
}

/// A rate over a growing total (bytes out of one room), sampled about once a
/// second by its owner: the figure is the rate over the last complete window.
#[derive(Debug, Clone)]
pub struct RateMeter {
    /// When the current window started, and the total then.
    window_start: (Instant, u64),
    /// Per second over the last complete window.
    rate: f64,
}

impl RateMeter {
    /// Shortest window a rate is computed over.
    const WINDOW: Duration = Duration::from_secs(1);

    /// A meter starting at `total`.
    pub fn new(now: Instant, total: u64) -> Self {
        Self {
            window_start: (now, total),
            rate: 0.0,
        }
    }

    /// Closes the window if it is at least a second old.
    pub fn sample(&mut self, now: Instant, total: u64) {
        let (start, start_total) = self.window_start;
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= Self::WINDOW {
            self.rate = total.saturating_sub(start_total) as f64 / elapsed.as_secs_f64();
            self.window_start = (now, total);
        }
    }

    /// Per second over the last complete window.
    pub fn per_sec(&self) -> f64 {
        self.rate
    }
}

/// A game room's tick metrics, resolved once per room.
pub struct TickMetrics {
    /// Tick durations.
    pub duration: metrics::Histogram,
    /// Tick lateness.
    pub lateness: metrics::Histogram,
    /// Late-by-a-period ticks.
    pub overruns: metrics::Counter,
    /// Ticks run.
    pub ticks: metrics::Counter,
}

impl TickMetrics {
    /// Metrics of rooms of `game`.
    pub fn new(game: &str) -> Self {
        let game = game.to_owned();
        Self {
            duration: metrics::histogram!(TICK_DURATION, "game" => game.clone()),
            lateness: metrics::histogram!(TICK_LATENESS, "game" => game.clone()),
            overruns: metrics::counter!(TICKS_OVERRUN, "game" => game.clone()),
            ticks: metrics::counter!(TICKS, "game" => game),
        }
    }
}

/// Counts a room of `kind`/`game` alive (`delta` +1 on creation, -1 when it stops).
pub fn room_alive(kind: &'static str, game: &str, delta: f64) {
    metrics::gauge!(ROOMS_ACTIVE, "kind" => kind, "game" => game.to_owned()).increment(delta);
}

/// Records one store write of `op` that took `elapsed` and succeeded or not.
pub fn store_write(op: &'static str, elapsed: std::time::Duration, ok: bool) {
    metrics::histogram!(PERSIST_WRITE, "op" => op).record(elapsed.as_secs_f64());
    if !ok {
        metrics::counter!(PERSIST_FAILURES, "op" => op).increment(1);
    }
}

/// Counts one refusal for `reason` (see [`REFUSALS`]) and logs it at warn
/// level with `why`, in the caller's span (its connection's or room's).
pub fn refused(reason: &'static str, why: &str) {
    tracing::warn!(reason, cause = why, "refused");
    metrics::counter!(REFUSALS, "reason" => reason).increment(1);
}
