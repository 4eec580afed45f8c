//! The fixed tick of a game room: apply the inputs queued since the last tick,
//! step the game by the fixed dt, publish its entities, compute the generic
//! delta against the previous tick, encode it once and hand the same `Bytes`
//! to every member's outbox (a snapshot to those catching up).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_ws::CloseCode;
use bytes::Bytes;
use roomcast_protocol::{
    state::{diff, snapshot},
    ServerMessage,
};
use tokio::sync::oneshot;
use tracing::warn;

use super::game_core::GameCore;
use crate::room::member::{Delivery, MemberLink};
use crate::room::messages::{RestoreRefused, Restored};

/// A restore that the tick just applied: the room stores the restored state
/// and then tells the operator.
pub(crate) struct AppliedRestore {
    /// Where the outcome goes.
    pub done: oneshot::Sender<Result<Restored, RestoreRefused>>,
}

impl GameCore {
    /// Runs the tick scheduled for `scheduled`, started at `started`, unless
    /// the room failed; records its timing. Returns the restore it applied, if
    /// any (the caller snapshots the restored state, then answers it).
    pub(crate) fn on_tick(
        &mut self,
        scheduled: Instant,
        started: Instant,
    ) -> Option<AppliedRestore> {
        let lateness = started.saturating_duration_since(scheduled);
        let applied = match self.failed {
            None => self.run_tick(started),
            Some(_) => None,
        };
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
        }
        applied
    }

    /// One tick at `now`.
    fn run_tick(&mut self, now: Instant) -> Option<AppliedRestore> {
        let restored = self.pending_restore.take().map(|r| self.apply_restore(r));
        let dt = self.dt;
        let mut inputs = Vec::new();
        for (player, member) in &mut self.members {
            member.drain_inputs(|input| inputs.push((*player, input)));
        }
        let table = self.guarded("tick", |g| {
            for (player, input) in inputs {
                // Checked by the session already; a refusal here is impossible
                // short of a game whose check is not deterministic.
                if let Err(e) = g.queue_input(player, input.seq, &input.payload) {
                    tracing::debug!(player, cause = %e, "input refused at tick");
                }
            }
            g.step(dt);
            g.publish()
        })?; // None: the room failed (which answered a pending restore)
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
        let done = restored?;
        if let Some(reason) = &self.failed {
            let _ = done.send(Err(RestoreRefused::Conflict(format!(
                "the room failed while restoring: {reason}"
            ))));
            return None;
        }
        Some(AppliedRestore { done })
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
}

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
