//! Game rooms. The [`GameRoom`] actor drives a [`GameCore`] (the game instance,
//! its published states, its members) with a fixed tick, the store and the
//! messages sessions and operators send.
//!
//! Each tick (scheduled from a fixed start, `start + n * period`, never "sleep a
//! period"): apply the inputs queued since the last tick, step the game by the
//! fixed dt, publish its entities, compute the generic delta against the previous
//! tick, encode it once and hand the same `Bytes` to every member's outbox. Joiners
//! get `Welcome` and a full snapshot; a lagging member gets a snapshot when it has
//! room again. Every call into game code is guarded: a panic fails this room only
//! (members closed with 1011, the last good published state kept for inspection).
//!
//! - `game_core`: [`GameCore`], the room without the actor.
//! - `membership`: joins, resumes, spectators, departures, resume graces.
//! - `tick`: the tick and its fan-out.
//! - `persist`: snapshots, loading the latest, operators' restores.
//! - `admin`: operators' views of the room.

mod admin;
mod game_core;
mod membership;
mod persist;
#[cfg(test)]
mod tests;
mod tick;

use std::sync::Arc;
use std::time::Instant;

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, ResponseActFuture,
    Running, StreamHandler, WrapFuture,
};
use actix_ws::CloseCode;
use tokio_stream::wrappers::IntervalStream;
use tracing::{error, info};

pub(crate) use game_core::GameCore;
pub use membership::SPECTATOR_PLAYER_ID;
pub use persist::snapshot_state_json;

use super::{
    common::RoomBase,
    messages::*,
    registry::{RoomKey, RoomRegistry, RoomSettings},
    RoomId,
};
use crate::game::GameEntry;
use crate::persist::with_retry;
use crate::store::SnapshotMeta;

/// Room mailbox size: session messages wait (backpressure) beyond this.
const MAILBOX_CAPACITY: usize = 4096;

/// One game room.
pub struct GameRoom {
    /// Identity, registry, span, store writers, fan-out figures, idleness.
    base: RoomBase,
    /// The game, its state and its members.
    core: GameCore,
    /// Room-wide settings (idle timeout, lag timeout, history).
    settings: RoomSettings,
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
        let base = RoomBase::new(id, key.clone(), registry, "game");
        let core = GameCore::new(
            key,
            game_entry,
            settings.clone(),
            base.span.clone(),
            base.room_metrics.clone(),
        );
        Self {
            base,
            core,
            settings,
        }
    }

    fn on_tick(&mut self, scheduled: Instant, ctx: &mut Context<Self>) {
        let started = Instant::now();
        if let Some(applied) = self.core.on_tick(scheduled, started) {
            // Store the restored state now rather than at the next period.
            self.periodic_snapshot();
            let tick = self.core.tick;
            let _ = applied.done.send(Ok(Restored {
                at: i64::try_from(tick).ok(),
            }));
        }
        if self
            .core
            .tick
            .is_multiple_of(u64::from(self.core.game_entry.settings.tick_rate_hz))
        {
            self.base.sample_out_rate(started);
        }
        if self
            .base
            .idle(self.core.occupied(), started, self.settings.idle_timeout)
        {
            info!(parent: &self.base.span, "room idle; stopping");
            let done = self.final_snapshot();
            ctx.wait(done.into_actor(self).map(|_, _, ctx| ctx.stop()));
        }
    }

    /// Queues a periodic snapshot (never waits: a slow store only delays it).
    fn periodic_snapshot(&mut self) {
        if self.base.closing {
            return;
        }
        let Some(p) = self.base.persistence.clone() else {
            return;
        };
        if let Some(record) = self.core.snapshot_record() {
            if let Some(answer) = p.snapshots.save(record) {
                let watched = self.base.last_snapshot.watch(answer);
                actix::spawn(async move {
                    let _ = watched.await;
                });
            }
        }
    }

    /// Marks the room closing and writes its last snapshot; the future resolves
    /// when the store has it (or gave up).
    fn final_snapshot(&mut self) -> impl std::future::Future<Output = ()> + 'static {
        self.base.closing = true;
        let record = self.base.persistence.clone().and_then(|p| {
            let record = self.core.snapshot_record()?;
            Some(p.snapshots.save_and_confirm(record))
        });
        let pending = record.map(|answer| self.base.last_snapshot.watch(answer));
        let span = self.base.span.clone();
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
        let period = self.core.period();
        // tokio's interval keeps a fixed schedule (start + n * period) and, when
        // late, bursts to catch up: a late tick is measured, never skipped.
        let interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ctx.add_stream(IntervalStream::new(interval));
        if self.base.persistence.is_some() {
            ctx.run_interval(
                self.core.game_entry.settings.snapshot_interval,
                |room, _| room.periodic_snapshot(),
            );
        }
    }
}

impl Actor for GameRoom {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        match self
            .base
            .persistence
            .clone()
            .filter(|_| self.core.restores_snapshots())
        {
            Some(p) => {
                // Nothing else (joins included) is handled until the state is in.
                let game = self.core.game_entry.name.to_string();
                let room = self.base.key.room().to_owned();
                let load = async move {
                    with_retry("load game snapshot", p.settings.retry_for, || {
                        p.store.latest_game_snapshot(&game, &room)
                    })
                    .await
                };
                ctx.wait(load.into_actor(self).map(|loaded, room, ctx| {
                    if let Some(snapshot) = room.core.load(loaded) {
                        room.base.last_snapshot.record(&snapshot.meta);
                    }
                    room.start_ticking(ctx);
                }));
            }
            None => self.start_ticking(ctx),
        }
        info!(parent: &self.base.span, tick_rate_hz = self.core.game_entry.settings.tick_rate_hz, "room started");
    }

    fn stopping(&mut self, _ctx: &mut Context<Self>) -> Running {
        self.core.close_all(CloseCode::Away, "room closed");
        Running::Stop
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.base.forget();
        info!(parent: &self.base.span, tick = self.core.tick, "room stopped");
    }
}

impl StreamHandler<tokio::time::Instant> for GameRoom {
    fn handle(&mut self, scheduled: tokio::time::Instant, ctx: &mut Context<Self>) {
        self.on_tick(scheduled.into_std(), ctx);
    }

    /// The interval never ends; if it did, the room must not stop silently.
    fn finished(&mut self, _ctx: &mut Context<Self>) {
        error!(parent: &self.base.span, "tick stream ended unexpectedly");
    }
}

impl Handler<JoinGame> for GameRoom {
    type Result = Result<Joined, JoinRefused>;

    fn handle(&mut self, msg: JoinGame, ctx: &mut Context<Self>) -> Self::Result {
        let closing = self.base.closing || ctx.state() != actix::ActorState::Running;
        let joined = self.core.join(msg, closing)?;
        // Occupied again: the idle clock restarts.
        self.base
            .idle(true, Instant::now(), self.settings.idle_timeout);
        Ok(joined)
    }
}

impl Handler<RequestSnapshot> for GameRoom {
    type Result = ();

    fn handle(&mut self, msg: RequestSnapshot, _ctx: &mut Context<Self>) {
        self.core.request_snapshot(msg.player, msg.conn);
    }
}

impl Handler<PingRoom> for GameRoom {
    type Result = ();

    fn handle(&mut self, msg: PingRoom, _ctx: &mut Context<Self>) {
        self.core.ping(msg.player, msg.conn, msg.client_time_us);
    }
}

impl Handler<MemberGone> for GameRoom {
    type Result = ();

    fn handle(&mut self, msg: MemberGone, _ctx: &mut Context<Self>) {
        self.core.member_gone(msg.player, msg.conn, msg.departure);
    }
}

impl Handler<InspectState> for GameRoom {
    type Result = Option<StateView>;

    fn handle(&mut self, msg: InspectState, _ctx: &mut Context<Self>) -> Self::Result {
        self.core.state_at(msg.at_tick)
    }
}

impl Handler<DescribeRoom> for GameRoom {
    type Result = actix::MessageResult<DescribeRoom>;

    fn handle(&mut self, msg: DescribeRoom, _ctx: &mut Context<Self>) -> Self::Result {
        actix::MessageResult(self.core.describe(
            msg.with_state,
            self.base.out_rate.per_sec(),
            &self.base.last_snapshot,
        ))
    }
}

impl Handler<TakeSnapshot> for GameRoom {
    type Result = ResponseActFuture<Self, Result<SnapshotMeta, String>>;

    fn handle(&mut self, _msg: TakeSnapshot, _ctx: &mut Context<Self>) -> Self::Result {
        let pending = match self.base.persistence.clone() {
            None => Err("persistence is off".to_owned()),
            Some(p) => match self.core.snapshot_record() {
                Some(record) => Ok(self
                    .base
                    .last_snapshot
                    .watch(p.snapshots.save_and_confirm(record))),
                None => Err("the room failed; its state is not snapshotted".to_owned()),
            },
        };
        Box::pin(async move { pending?.await }.into_actor(self))
    }
}

impl Handler<RestoreGameSnapshot> for GameRoom {
    type Result = actix::ResponseFuture<Result<Restored, RestoreRefused>>;

    fn handle(&mut self, msg: RestoreGameSnapshot, _ctx: &mut Context<Self>) -> Self::Result {
        let prepared = self.core.prepare_restore(msg.snapshot, self.base.closing);
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
