//! The `GameRoom` actor: owns one room's game instance and members.
//!
//! Each tick (scheduled from a fixed start, `start + n * period`, never "sleep a
//! period"): apply the inputs queued since the last tick, step the game by the
//! fixed dt, publish its entities, compute the generic delta against the previous
//! tick, encode it once and hand the same `Bytes` to every member's outbox. Joiners
//! get `Welcome` and a full snapshot; a lagging member gets a snapshot when it has
//! room again. Every call into game code is guarded: a panic fails this room only
//! (members closed with 1011, the last good published state kept for inspection).

use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, ResponseActFuture,
    Running, StreamHandler, WrapFuture,
};
use actix_ws::CloseCode;
use bytes::Bytes;
use roomcast_protocol::{
    close,
    state::{diff, snapshot, EntityTable},
    ErrorMessage, Pong, ResumeToken, ServerMessage, Welcome, PROTOCOL_VERSION,
};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio_stream::wrappers::IntervalStream;
use tracing::{error, info, info_span, warn};

use super::{
    inputs::{InputReceiver, QueuedInput},
    member::{Delivery, MemberLink},
    messages::*,
    registry::{RoomKey, RoomRegistry, RoomSettings},
    timing::TickTiming,
    ConnId, RoomId,
};
use crate::game::{GameEntry, GameInstance, PlayerId};
use crate::metrics::{RateMeter, RoomMetrics, TickMetrics};
use crate::persist::{with_retry, LastSnapshot, Persistence};
use crate::store::{GameSnapshot, NewGameSnapshot, SnapshotMeta, StoreError};

/// Room mailbox size: session messages wait (backpressure) beyond this.
const MAILBOX_CAPACITY: usize = 4096;

/// A connected player or spectator.
#[derive(Debug)]
struct GameMember {
    /// The connection this member is attached through.
    conn: u64,
    /// Who its join token named (`None` with authentication off).
    user: Option<String>,
    /// Outbox, lag state and kick.
    link: MemberLink,
    /// Inputs from the session, drained at each tick.
    inputs: InputReceiver,
}

impl GameMember {
    /// Takes every input queued since the last tick, in order.
    fn drain_inputs(&mut self, mut f: impl FnMut(QueuedInput)) {
        while let Ok(input) = self.inputs.try_recv() {
            f(input);
        }
    }
}

/// A restore waiting for the room's next tick.
struct PendingRestore {
    /// A fresh game instance holding the snapshot's state.
    game: Box<dyn GameInstance>,
    /// The snapshot's next new player id.
    next_player: PlayerId,
    /// Players the snapshot knows (its resume tokens').
    players: HashSet<PlayerId>,
    /// The snapshot restored, for the log.
    snapshot_id: i64,
    /// Told the outcome once the tick has run.
    done: oneshot::Sender<Result<Restored, RestoreRefused>>,
}

/// A player whose connection dropped, kept until it resumes or its grace ends.
#[derive(Debug)]
struct AwayPlayer {
    /// When the connection dropped.
    since: Instant,
}

/// One game room.
pub struct GameRoom {
    /// This room's lifetime id (see [`RoomId`]).
    id: RoomId,
    /// Registry key (game + room name).
    key: RoomKey,
    /// The game and its settings.
    game_entry: GameEntry,
    /// Room-wide settings (idle timeout, lag timeout, history).
    settings: RoomSettings,
    /// Where this room unregisters itself when it stops.
    registry: Arc<RoomRegistry>,
    /// The game logic and its state.
    game: Box<dyn GameInstance>,
    /// Number of ticks run; the published state belongs to this tick.
    tick: u64,
    /// The latest published state.
    table: Arc<EntityTable>,
    /// Recent published states (oldest first, the latest included), to answer a
    /// resume with a delta and to inspect a given tick.
    history: VecDeque<(u64, Arc<EntityTable>)>,
    /// Connected players by player id.
    members: HashMap<PlayerId, GameMember>,
    /// Connected spectators by connection id (player id 0 on the wire, no
    /// entity, no inputs).
    spectators: HashMap<ConnId, GameMember>,
    /// Disconnected players within their resume grace.
    away: HashMap<PlayerId, AwayPlayer>,
    /// Resume tokens of present and away players.
    tokens: HashMap<ResumeToken, PlayerId>,
    /// Next new player id.
    next_player: PlayerId,
    /// Since when the room has had no players at all.
    empty_since: Option<Instant>,
    /// Tick duration and lateness.
    timing: TickTiming,
    /// Set when game code panicked: the room no longer ticks nor admits members.
    failed: Option<String>,
    /// Fixed simulation step, seconds.
    dt: f32,
    /// Span every log line of this room belongs to.
    span: tracing::Span,
    /// Where snapshots go (`None`: persistence off).
    persistence: Option<Arc<Persistence>>,
    /// Set once the room is on its way out (final snapshot being written).
    closing: bool,
    /// Fan-out counters (`kind="game"`).
    room_metrics: RoomMetrics,
    /// Tick histograms of this game.
    tick_metrics: TickMetrics,
    /// Bytes per second queued to members.
    out_rate: RateMeter,
    /// The latest snapshot stored of this room.
    last_snapshot: LastSnapshot,
    /// An operator's restore, applied at the start of the next tick.
    pending_restore: Option<PendingRestore>,
}

/// What a game snapshot stores: the game's own state plus what the room needs to
/// take its players back after a restart (their ids and resume tokens).
#[derive(Debug, Serialize, Deserialize)]
struct PersistedRoom {
    /// Next new player id.
    next_player: PlayerId,
    /// Resume tokens of the players in the room.
    players: Vec<(ResumeToken, PlayerId)>,
    /// The game state, encoded by the game instance.
    state: Vec<u8>,
}

impl GameRoom {
    /// A new, empty room.
    pub fn new(
        id: RoomId,
        key: RoomKey,
        game_entry: GameEntry,
        settings: RoomSettings,
        registry: Arc<RoomRegistry>,
    ) -> Self {
        let period = Duration::from_secs_f64(1.0 / f64::from(game_entry.settings.tick_rate_hz));
        let span = info_span!("room", kind = "game", key = %key, room_id = id);
        let game = game_entry.instantiate();
        let table = Arc::new(game.publish());
        let registry_persistence = registry.persistence();
        let game_name = game_entry.name.to_string();
        Self {
            id,
            dt: 1.0 / f32::from(game_entry.settings.tick_rate_hz),
            key,
            game,
            game_entry,
            settings,
            registry,
            tick: 0,
            history: VecDeque::from([(0, table.clone())]),
            table,
            members: HashMap::new(),
            spectators: HashMap::new(),
            away: HashMap::new(),
            tokens: HashMap::new(),
            next_player: 1,
            empty_since: Some(Instant::now()),
            timing: TickTiming::new(period),
            failed: None,
            span,
            persistence: registry_persistence,
            closing: false,
            room_metrics: RoomMetrics::new("game"),
            tick_metrics: TickMetrics::new(&game_name),
            out_rate: RateMeter::new(Instant::now(), 0),
            last_snapshot: LastSnapshot::default(),
            pending_restore: None,
        }
    }

    fn period(&self) -> Duration {
        Duration::from_secs_f64(1.0 / f64::from(self.game_entry.settings.tick_rate_hz))
    }

    /// Runs game code; a panic fails the room and yields `None`.
    fn guarded<T>(&mut self, what: &str, f: impl FnOnce(&mut dyn GameInstance) -> T) -> Option<T> {
        match catch_unwind(AssertUnwindSafe(|| f(self.game.as_mut()))) {
            Ok(v) => Some(v),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                self.fail(format!("game logic panicked in {what}: {msg}"));
                None
            }
        }
    }

    /// Fails the room: members are closed with 1011, the last good state stays.
    fn fail(&mut self, reason: String) {
        let _enter = self.span.enter();
        error!(cause = %reason, tick = self.tick, "room failed; keeping its last good state");
        for (_, mut m) in self.members.drain() {
            m.link
                .kick(CloseCode::Error, format!("room failed: {reason}"));
        }
        for (_, mut m) in self.spectators.drain() {
            m.link
                .kick(CloseCode::Error, format!("room failed: {reason}"));
        }
        self.away.clear();
        self.tokens.clear();
        if let Some(restore) = self.pending_restore.take() {
            let _ = restore.done.send(Err(RestoreRefused::Conflict(format!(
                "the room failed before the restore: {reason}"
            ))));
        }
        self.failed = Some(reason);
    }

    fn encode_snapshot(&self) -> Bytes {
        ServerMessage::Snapshot(snapshot(&self.table, self.tick)).encode()
    }

    fn on_tick(&mut self, scheduled: Instant, ctx: &mut Context<Self>) {
        let started = Instant::now();
        let lateness = started.saturating_duration_since(scheduled);
        if self.failed.is_none() {
            self.run_tick(started);
        }
        self.check_idle(started, ctx);
        let duration = started.elapsed();
        self.timing.record(duration, lateness);
        let m = &self.tick_metrics;
        m.ticks.increment(1);
        m.duration.record(duration.as_secs_f64());
        m.lateness.record(lateness.as_secs_f64());
        if lateness >= self.period() {
            m.overruns.increment(1);
        }
        if self
            .tick
            .is_multiple_of(u64::from(self.game_entry.settings.tick_rate_hz))
        {
            self.room_metrics.members.record(self.members.len() as f64);
            self.out_rate
                .sample(started, self.room_metrics.room_bytes_out());
        }
    }

    fn run_tick(&mut self, now: Instant) {
        let restored = self.pending_restore.take().map(|r| self.apply_restore(r));
        let dt = self.dt;
        let mut inputs = Vec::new();
        for (player, member) in &mut self.members {
            member.drain_inputs(|input| inputs.push((*player, input)));
        }
        let Some(table) = self.guarded("tick", |g| {
            for (player, input) in inputs {
                // Checked by the session already; a refusal here is impossible
                // short of a game whose check is not deterministic.
                if let Err(e) = g.queue_input(player, input.seq, &input.payload) {
                    tracing::debug!(player, cause = %e, "input refused at tick");
                }
            }
            g.step(dt);
            g.publish()
        }) else {
            return; // the room failed (which answered a pending restore)
        };
        let base = self.tick;
        self.tick += 1;
        let table = Arc::new(table);
        let delta = ServerMessage::Delta(diff(&self.table, &table, base, self.tick)).encode();
        self.table = table;
        self.history.push_back((self.tick, self.table.clone()));
        while self.history.len() > self.settings.history_ticks.max(1) {
            self.history.pop_front();
        }
        self.broadcast(&delta, now);
        self.expire_away_players(now);
        if let Some(done) = restored {
            let outcome = match &self.failed {
                Some(reason) => Err(RestoreRefused::Conflict(format!(
                    "the room failed while restoring: {reason}"
                ))),
                None => {
                    // Store the restored state now rather than at the next period.
                    self.periodic_snapshot();
                    Ok(Restored {
                        at: i64::try_from(self.tick).ok(),
                    })
                }
            };
            let _ = done.send(outcome);
        }
    }

    /// Checks a snapshot an operator wants restored and queues it for the next
    /// tick; returns where the outcome will arrive.
    fn prepare_restore(
        &mut self,
        snapshot: GameSnapshot,
    ) -> Result<oneshot::Receiver<Result<Restored, RestoreRefused>>, RestoreRefused> {
        if let Some(reason) = &self.failed {
            return Err(RestoreRefused::Conflict(format!(
                "the room failed: {reason}"
            )));
        }
        if self.closing {
            return Err(RestoreRefused::Conflict("the room is closing".into()));
        }
        let expected = self.game.state_format_version();
        if snapshot.format_version != expected {
            return Err(RestoreRefused::Conflict(format!(
                "snapshot {} has state format {}, the game now uses {expected}",
                snapshot.meta.id, snapshot.format_version
            )));
        }
        let persisted: PersistedRoom =
            roomcast_protocol::codec::decode(&snapshot.state).map_err(|e| {
                RestoreRefused::Conflict(format!(
                    "snapshot {} does not decode: {e}",
                    snapshot.meta.id
                ))
            })?;
        let mut game = self.game_entry.instantiate();
        match catch_unwind(AssertUnwindSafe(|| game.restore_state(&persisted.state))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(RestoreRefused::Conflict(format!(
                    "snapshot {}: the game state does not decode: {e}",
                    snapshot.meta.id
                )))
            }
            Err(_) => {
                return Err(RestoreRefused::Conflict(format!(
                    "snapshot {}: the game panicked decoding its state",
                    snapshot.meta.id
                )))
            }
        }
        let (done, answer) = oneshot::channel();
        let restore = PendingRestore {
            game,
            next_player: persisted.next_player,
            players: persisted.players.iter().map(|(_, p)| *p).collect(),
            snapshot_id: snapshot.meta.id,
            done,
        };
        if let Some(earlier) = self.pending_restore.replace(restore) {
            let _ = earlier.done.send(Err(RestoreRefused::Conflict(
                "superseded by a later restore before the room's next tick".into(),
            )));
        }
        Ok(answer)
    }

    /// Swaps in a restored game state (at the start of a tick). Players here now
    /// but unknown to the snapshot join it afresh; players of the snapshot who are
    /// gone are removed; every member gets a full snapshot at the end of the tick.
    fn apply_restore(
        &mut self,
        restore: PendingRestore,
    ) -> oneshot::Sender<Result<Restored, RestoreRefused>> {
        let mut present: Vec<PlayerId> = self
            .members
            .keys()
            .chain(self.away.keys())
            .copied()
            .collect();
        present.sort_unstable();
        self.game = restore.game;
        for player in &present {
            if !restore.players.contains(player) {
                self.guarded("player_joined", |g| g.player_joined(*player));
            }
        }
        let mut gone: Vec<PlayerId> = restore
            .players
            .iter()
            .filter(|p| !present.contains(p))
            .copied()
            .collect();
        gone.sort_unstable();
        for player in gone {
            self.guarded("player_left", |g| g.player_left(player));
        }
        // The snapshot's state has them as they were then; tell the game who is away now.
        let mut away: Vec<PlayerId> = self.away.keys().copied().collect();
        away.sort_unstable();
        for player in away {
            self.guarded("player_disconnected", |g| g.player_disconnected(player));
        }
        self.next_player = self.next_player.max(restore.next_player);
        for member in self
            .members
            .values_mut()
            .chain(self.spectators.values_mut())
        {
            member.link.request_catch_up();
        }
        info!(parent: &self.span, snapshot = restore.snapshot_id, tick = self.tick, players = present.len(), "restoring snapshot at this tick");
        restore.done
    }

    /// Hands this tick's delta to every member, snapshots to those that need one.
    fn broadcast(&mut self, delta: &Bytes, now: Instant) {
        let lag_timeout = self.settings.lag_timeout;
        let mut snapshot_frame: Option<Bytes> = None;
        let (table, tick) = (&self.table, self.tick);
        let mut make_snapshot = || {
            snapshot_frame
                .get_or_insert_with(|| ServerMessage::Snapshot(snapshot(table, tick)).encode())
                .clone()
        };
        let mut tally = Tally::default();
        let (too_slow, gone) = deliver_each(
            self.members.iter_mut().map(|(p, m)| (*p, &mut m.link)),
            delta,
            &mut make_snapshot,
            now,
            lag_timeout,
            &mut tally,
        );
        let (slow_spectators, gone_spectators) = deliver_each(
            self.spectators.iter_mut().map(|(c, m)| (*c, &mut m.link)),
            delta,
            &mut make_snapshot,
            now,
            lag_timeout,
            &mut tally,
        );
        let slow = (too_slow.len() + slow_spectators.len()) as u64;
        self.room_metrics.sent_total(tally.frames, tally.bytes);
        self.room_metrics
            .outbox_drops
            .increment(tally.skipped + slow);
        self.room_metrics.lagging_disconnects.increment(slow);
        let too_slow_reason =
            format!("too slow: could not keep up with the room for {lag_timeout:?}");
        for player in too_slow {
            if let Some(mut m) = self.members.remove(&player) {
                warn!(parent: &self.span, player, conn = m.conn, skipped = m.link.frames_skipped, "disconnecting a member that cannot keep up");
                m.link.kick(CloseCode::Policy, too_slow_reason.clone());
                self.player_disconnected(player, now);
            }
        }
        for player in gone {
            if self.members.remove(&player).is_some() {
                self.player_disconnected(player, now);
            }
        }
        for conn in slow_spectators {
            if let Some(mut m) = self.spectators.remove(&conn) {
                warn!(parent: &self.span, conn, "disconnecting a spectator that cannot keep up");
                m.link.kick(CloseCode::Policy, too_slow_reason.clone());
            }
        }
        for conn in gone_spectators {
            self.spectators.remove(&conn);
        }
    }

    fn player_disconnected(&mut self, player: PlayerId, now: Instant) {
        self.away.insert(player, AwayPlayer { since: now });
        self.guarded("player_disconnected", |g| g.player_disconnected(player));
    }

    fn player_left(&mut self, player: PlayerId) {
        self.tokens.retain(|_, p| *p != player);
        self.guarded("player_left", |g| g.player_left(player));
    }

    fn expire_away_players(&mut self, now: Instant) {
        let grace = self.game_entry.settings.resume_grace;
        let expired: Vec<PlayerId> = self
            .away
            .iter()
            .filter(|(_, a)| now.duration_since(a.since) >= grace)
            .map(|(p, _)| *p)
            .collect();
        for player in expired {
            self.away.remove(&player);
            info!(parent: &self.span, player, "resume grace over; player removed");
            self.player_left(player);
        }
    }

    fn check_idle(&mut self, now: Instant, ctx: &mut Context<Self>) {
        if !self.members.is_empty() || !self.spectators.is_empty() || !self.away.is_empty() {
            self.empty_since = None;
            return;
        }
        let since = *self.empty_since.get_or_insert(now);
        if now.duration_since(since) >= self.settings.idle_timeout && !self.closing {
            info!(parent: &self.span, "room idle; stopping");
            let done = self.final_snapshot();
            ctx.wait(done.into_actor(self).map(|_, _, ctx| ctx.stop()));
        }
    }

    /// The snapshot of the current state, or `None` if the room failed or
    /// persistence is off.
    fn snapshot_record(&mut self) -> Option<NewGameSnapshot> {
        if self.failed.is_some() || self.persistence.is_none() {
            return None;
        }
        let state = match self.guarded("encode_state", |g| g.encode_state())? {
            Ok(state) => state,
            Err(e) => {
                error!(parent: &self.span, cause = %e, "game state does not encode; no snapshot");
                return None;
            }
        };
        let persisted = PersistedRoom {
            next_player: self.next_player,
            players: self.tokens.iter().map(|(t, p)| (*t, *p)).collect(),
            state,
        };
        let state = match roomcast_protocol::codec::encode(&persisted) {
            Ok(bytes) => bytes,
            Err(e) => {
                error!(parent: &self.span, cause = %e, "room snapshot does not encode");
                return None;
            }
        };
        Some(NewGameSnapshot {
            game: self.game_entry.name.to_string(),
            room: self.key.room().to_owned(),
            tick: self.tick,
            format_version: self.game.state_format_version(),
            state,
        })
    }

    /// Queues a periodic snapshot (never waits: a slow store only delays it).
    fn periodic_snapshot(&mut self) {
        if self.closing {
            return;
        }
        if let (Some(record), Some(p)) = (self.snapshot_record(), self.persistence.clone()) {
            if let Some(answer) = p.snapshots.save(record) {
                let watched = self.last_snapshot.watch(answer);
                actix::spawn(async move {
                    let _ = watched.await;
                });
            }
        }
    }

    /// Marks the room closing and writes its last snapshot; the future resolves
    /// when the store has it (or gave up).
    fn final_snapshot(&mut self) -> impl std::future::Future<Output = ()> + 'static {
        self.closing = true;
        let pending = match (self.snapshot_record(), self.persistence.clone()) {
            (Some(record), Some(p)) => Some(
                self.last_snapshot
                    .watch(p.snapshots.save_and_confirm(record)),
            ),
            _ => None,
        };
        let span = self.span.clone();
        async move {
            if let Some(saved) = pending {
                match saved.await {
                    Ok(meta) => info!(parent: &span, snapshot = meta.id, "final snapshot saved"),
                    Err(e) => error!(parent: &span, cause = %e, "final snapshot not saved"),
                }
            }
        }
    }

    /// Starts the fixed tick (after any restore, so the schedule starts then).
    fn start_ticking(&mut self, ctx: &mut Context<Self>) {
        let period = self.period();
        // tokio's interval keeps a fixed schedule (start + n * period) and, when
        // late, bursts to catch up: a late tick is measured, never skipped.
        let interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ctx.add_stream(IntervalStream::new(interval));
        if self.persistence.is_some() {
            ctx.run_interval(self.game_entry.settings.snapshot_interval, |room, _| {
                room.periodic_snapshot()
            });
        }
    }

    /// Installs a loaded snapshot (if any), or fails the room if loading failed:
    /// starting empty would later bury the real state under newer snapshots.
    fn restore(&mut self, loaded: Result<Option<GameSnapshot>, StoreError>) {
        let snapshot = match loaded {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => {
                self.fail(format!("could not load the room's snapshot: {e}"));
                return;
            }
        };
        let expected = self.game.state_format_version();
        if snapshot.format_version != expected {
            warn!(parent: &self.span, found = snapshot.format_version, expected, "snapshot format differs; starting empty");
            return;
        }
        let persisted: PersistedRoom = match roomcast_protocol::codec::decode(&snapshot.state) {
            Ok(p) => p,
            Err(e) => {
                warn!(parent: &self.span, cause = %e, "snapshot does not decode; starting empty");
                return;
            }
        };
        match self.guarded("restore_state", |g| g.restore_state(&persisted.state)) {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                warn!(parent: &self.span, cause = %e, "game state does not decode; starting empty");
                return;
            }
            None => return,
        }
        let now = Instant::now();
        self.last_snapshot.record(&snapshot.meta);
        self.tick = snapshot.tick;
        self.next_player = persisted.next_player;
        for (token, player) in persisted.players {
            self.tokens.insert(token, player);
            // Everyone is away until they resume with their token (or time out).
            self.away.insert(player, AwayPlayer { since: now });
            self.guarded("player_disconnected", |g| g.player_disconnected(player));
        }
        let Some(table) = self.guarded("publish", |g| g.publish()) else {
            return;
        };
        self.table = Arc::new(table);
        self.history = VecDeque::from([(self.tick, self.table.clone())]);
        info!(parent: &self.span, tick = self.tick, snapshot = snapshot.meta.id, players = self.away.len(), "restored from snapshot");
    }

    fn join(&mut self, msg: JoinGame, ctx: &mut Context<Self>) -> Result<Joined, JoinRefused> {
        if let Some(reason) = &self.failed {
            return Err(JoinRefused::Failed(reason.clone()));
        }
        if self.closing || ctx.state() != actix::ActorState::Running {
            return Err(JoinRefused::Closing);
        }
        let resumable = msg
            .resume
            .filter(|_| !msg.spectator)
            .and_then(|r| self.tokens.get(&r.token).map(|p| (*p, r)));
        let replaces_own = resumable.is_some_and(|(p, _)| self.members.contains_key(&p));
        let max = self.game_entry.settings.max_members;
        if !replaces_own && self.members.len() + self.spectators.len() >= max {
            return Err(JoinRefused::Full(max));
        }
        if msg.spectator {
            return Ok(self.join_spectator(msg));
        }
        let (player, token, resumed) = match resumable {
            Some((player, resume)) => {
                if let Some(mut old) = self.members.remove(&player) {
                    old.link.kick(
                        CloseCode::Policy,
                        "replaced by a newer connection of the same player",
                    );
                }
                self.away.remove(&player);
                self.guarded("player_resumed", |g| g.player_resumed(player));
                (player, resume.token, Some(resume.last_tick))
            }
            None => {
                let player = self.next_player;
                self.next_player += 1;
                let token = ResumeToken(rand::random());
                self.tokens.insert(token, player);
                self.guarded("player_joined", |g| g.player_joined(player));
                (player, token, None)
            }
        };
        if let Some(reason) = &self.failed {
            return Err(JoinRefused::Failed(reason.clone()));
        }
        let member = GameMember {
            conn: msg.conn,
            user: msg.user,
            link: MemberLink::new(msg.outbox, msg.kick, msg.latency),
            inputs: msg.inputs,
        };
        self.room_metrics
            .sent_if(&member.link, self.welcome(player, token, resumed.is_some()));
        if msg.resume.is_some() && resumed.is_none() {
            self.room_metrics.sent_if(
                &member.link,
                ServerMessage::Error(ErrorMessage {
                    code: close::error::RESUME_REJECTED,
                    message: "resume token unknown or expired; joined as a new player".into(),
                })
                .encode(),
            );
        }
        // A resumed client gets a delta from its own last tick when we still hold it.
        let held = resumed.and_then(|last| self.history.iter().find(|(t, _)| *t == last));
        let first = match held {
            Some((last, old)) => {
                ServerMessage::Delta(diff(old, &self.table, *last, self.tick)).encode()
            }
            None => self.encode_snapshot(),
        };
        self.room_metrics.sent_if(&member.link, first);
        info!(parent: &self.span, player, conn = msg.conn, resumed = resumed.is_some(), "member joined");
        self.members.insert(player, member);
        self.empty_since = None;
        Ok(Joined {
            player,
            resumed: resumed.is_some(),
        })
    }

    /// The encoded `Welcome` for a member.
    fn welcome(&self, player: PlayerId, token: ResumeToken, resumed: bool) -> Bytes {
        ServerMessage::Welcome(Welcome {
            protocol: PROTOCOL_VERSION,
            player_id: player,
            resume_token: token,
            resumed,
            game: self.game_entry.name.to_string(),
            room: self.key.room().to_owned(),
            tick_rate_hz: self.game_entry.settings.tick_rate_hz,
        })
        .encode()
    }

    /// Takes a spectator: player id 0 and an all-zero resume token in its
    /// `Welcome`, then the snapshot; it gets every delta and has no entity.
    fn join_spectator(&mut self, msg: JoinGame) -> Joined {
        let member = GameMember {
            conn: msg.conn,
            user: msg.user,
            link: MemberLink::new(msg.outbox, msg.kick, msg.latency),
            inputs: msg.inputs,
        };
        let welcome = self.welcome(SPECTATOR_PLAYER_ID, ResumeToken([0; 16]), false);
        self.room_metrics.sent_if(&member.link, welcome);
        self.room_metrics
            .sent_if(&member.link, self.encode_snapshot());
        info!(parent: &self.span, conn = msg.conn, "spectator joined");
        self.spectators.insert(msg.conn, member);
        self.empty_since = None;
        Joined {
            player: SPECTATOR_PLAYER_ID,
            resumed: false,
        }
    }

    /// The member of `player` (a spectator for player 0) if it is attached
    /// through `conn`.
    fn member(&mut self, player: PlayerId, conn: u64) -> Option<&mut GameMember> {
        if player == SPECTATOR_PLAYER_ID {
            return self.spectators.get_mut(&conn);
        }
        self.members.get_mut(&player).filter(|m| m.conn == conn)
    }
}

impl Actor for GameRoom {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        match self
            .persistence
            .clone()
            .filter(|_| self.game.restores_snapshots())
        {
            Some(p) => {
                // Nothing else (joins included) is handled until the state is in.
                let (game, room) = (self.game_entry.name.to_string(), self.key.room().to_owned());
                let load = async move {
                    with_retry("load game snapshot", p.settings.retry_for, || {
                        p.store.latest_game_snapshot(&game, &room)
                    })
                    .await
                };
                ctx.wait(load.into_actor(self).map(|loaded, room, ctx| {
                    room.restore(loaded);
                    room.start_ticking(ctx);
                }));
            }
            None => self.start_ticking(ctx),
        }
        info!(parent: &self.span, tick_rate_hz = self.game_entry.settings.tick_rate_hz, "room started");
    }

    fn stopping(&mut self, _ctx: &mut Context<Self>) -> Running {
        for (_, mut m) in self.members.drain() {
            m.link.kick(CloseCode::Away, "room closed");
        }
        for (_, mut m) in self.spectators.drain() {
            m.link.kick(CloseCode::Away, "room closed");
        }
        Running::Stop
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.registry.forget(&self.key, self.id);
        info!(parent: &self.span, tick = self.tick, "room stopped");
    }
}

impl StreamHandler<tokio::time::Instant> for GameRoom {
    fn handle(&mut self, scheduled: tokio::time::Instant, ctx: &mut Context<Self>) {
        self.on_tick(scheduled.into_std(), ctx);
    }

    /// The interval never ends; if it did, the room must not stop silently.
    fn finished(&mut self, _ctx: &mut Context<Self>) {
        error!(parent: &self.span, "tick stream ended unexpectedly");
    }
}

impl Handler<JoinGame> for GameRoom {
    type Result = Result<Joined, JoinRefused>;

    fn handle(&mut self, msg: JoinGame, ctx: &mut Context<Self>) -> Self::Result {
        self.join(msg, ctx)
    }
}

impl Handler<RequestSnapshot> for GameRoom {
    type Result = ();

    fn handle(&mut self, msg: RequestSnapshot, _ctx: &mut Context<Self>) {
        if let Some(m) = self.member(msg.player, msg.conn) {
            m.link.request_catch_up();
        }
    }
}

impl Handler<PingRoom> for GameRoom {
    type Result = ();

    fn handle(&mut self, msg: PingRoom, _ctx: &mut Context<Self>) {
        let tick = self.tick;
        let metrics = self.room_metrics.clone();
        if let Some(m) = self.member(msg.player, msg.conn) {
            let pong = Pong {
                client_time_us: msg.client_time_us,
                server_tick: tick,
            };
            metrics.sent_if(&m.link, ServerMessage::Pong(pong).encode());
        }
    }
}

impl Handler<MemberGone> for GameRoom {
    type Result = ();

    fn handle(&mut self, msg: MemberGone, _ctx: &mut Context<Self>) {
        if self.member(msg.player, msg.conn).is_none() {
            return;
        }
        if msg.player == SPECTATOR_PLAYER_ID {
            self.spectators.remove(&msg.conn);
            info!(parent: &self.span, conn = msg.conn, "spectator gone");
            return;
        }
        self.members.remove(&msg.player);
        info!(parent: &self.span, player = msg.player, conn = msg.conn, departure = ?msg.departure, "member gone");
        match msg.departure {
            Departure::Left => self.player_left(msg.player),
            Departure::Disconnected => self.player_disconnected(msg.player, Instant::now()),
        }
    }
}

impl Handler<InspectState> for GameRoom {
    type Result = Option<StateView>;

    fn handle(&mut self, msg: InspectState, _ctx: &mut Context<Self>) -> Self::Result {
        let tick = msg.at_tick.unwrap_or(self.tick);
        self.history
            .iter()
            .find(|(t, _)| *t == tick)
            .map(|(tick, entities)| StateView {
                tick: *tick,
                entities: entities.clone(),
            })
    }
}

impl Handler<DescribeRoom> for GameRoom {
    type Result = actix::MessageResult<DescribeRoom>;

    fn handle(&mut self, msg: DescribeRoom, _ctx: &mut Context<Self>) -> Self::Result {
        let state = msg.with_state.then(|| self.game.state_json());
        let players = self.members.iter().map(|(p, m)| (*p, m, false));
        let spectators = self
            .spectators
            .values()
            .map(|m| (SPECTATOR_PLAYER_ID, m, true));
        let mut members: Vec<MemberInfo> = players
            .chain(spectators)
            .map(|(player, m, spectator)| MemberInfo {
                player,
                spectator,
                user: m.user.clone(),
                conn: m.conn,
                outbox_depth: m.link.outbox_depth(),
                frames_skipped: m.link.frames_skipped,
                connected_secs: m.link.joined_at.elapsed().as_secs_f64(),
                latency_ms: m.link.latency.millis(),
            })
            .collect();
        members.sort_by_key(|m| (m.spectator, m.player, m.conn));
        let mut away_players: Vec<PlayerId> = self.away.keys().copied().collect();
        away_players.sort_unstable();
        actix::MessageResult(GameRoomInfo {
            game: self.game_entry.name.to_string(),
            room: self.key.room().to_owned(),
            tick: self.tick,
            tick_rate_hz: self.game_entry.settings.tick_rate_hz,
            members,
            away_players,
            timing: self.timing.summary(),
            failed: self.failed.clone(),
            bytes_out_per_sec: self.out_rate.per_sec(),
            last_snapshot: self.last_snapshot.get(),
            state,
        })
    }
}

impl Handler<TakeSnapshot> for GameRoom {
    type Result = ResponseActFuture<Self, Result<SnapshotMeta, String>>;

    fn handle(&mut self, _msg: TakeSnapshot, _ctx: &mut Context<Self>) -> Self::Result {
        let pending = match (self.snapshot_record(), self.persistence.clone()) {
            (Some(record), Some(p)) => Ok(self
                .last_snapshot
                .watch(p.snapshots.save_and_confirm(record))),
            (_, None) => Err("persistence is off".to_owned()),
            (None, _) => Err("the room failed; its state is not snapshotted".to_owned()),
        };
        Box::pin(async move { pending?.await }.into_actor(self))
    }
}

/// The player id a spectator's `Welcome` carries: no player has it.
pub const SPECTATOR_PLAYER_ID: PlayerId = 0;

/// What one broadcast queued and skipped.
#[derive(Debug, Default)]
struct Tally {
    frames: u64,
    bytes: u64,
    skipped: u64,
}

/// Delivers `delta` (or a catch-up snapshot) to each link; returns the keys of
/// the members too slow to keep and of those whose session is gone.
fn deliver_each<'a, K>(
    links: impl Iterator<Item = (K, &'a mut MemberLink)>,
    delta: &Bytes,
    make_snapshot: &mut dyn FnMut() -> Bytes,
    now: Instant,
    lag_timeout: Duration,
    tally: &mut Tally,
) -> (Vec<K>, Vec<K>) {
    let (mut too_slow, mut gone) = (Vec::new(), Vec::new());
    for (key, link) in links {
        match link.deliver(Some(delta), make_snapshot, now, lag_timeout) {
            Delivery::Sent(len) => {
                tally.frames += 1;
                tally.bytes += len as u64;
            }
            Delivery::Lagging => tally.skipped += 1,
            Delivery::TooSlow => too_slow.push(key),
            Delivery::Gone => gone.push(key),
        }
    }
    (too_slow, gone)
}

/// The game state stored in a snapshot, as JSON (through the game's serde).
pub fn snapshot_state_json(entry: &GameEntry, state: &[u8]) -> Result<serde_json::Value, String> {
    let persisted: PersistedRoom = roomcast_protocol::codec::decode(state)
        .map_err(|e| format!("snapshot does not decode: {e}"))?;
    let mut game = entry.instantiate();
    game.restore_state(&persisted.state)
        .map_err(|e| format!("game state does not decode: {e}"))?;
    Ok(game.state_json())
}

impl Handler<RestoreGameSnapshot> for GameRoom {
    type Result = actix::ResponseFuture<Result<Restored, RestoreRefused>>;

    fn handle(&mut self, msg: RestoreGameSnapshot, _ctx: &mut Context<Self>) -> Self::Result {
        let prepared = self.prepare_restore(msg.snapshot);
        Box::pin(async move {
            prepared?.await.unwrap_or_else(|_| {
                Err(RestoreRefused::Unavailable(
                    "the room stopped before its next tick".into(),
                ))
            })
        })
    }
}

impl Handler<StopRoom> for GameRoom {
    type Result = ResponseActFuture<Self, ()>;

    /// Writes the final snapshot, then stops; the reply comes once it is stored.
    fn handle(&mut self, _msg: StopRoom, _ctx: &mut Context<Self>) -> Self::Result {
        let done = self.final_snapshot();
        Box::pin(done.into_actor(self).map(|_, _, ctx| ctx.stop()))
    }
}
