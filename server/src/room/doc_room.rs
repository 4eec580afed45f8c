//! The `DocRoom` actor: drives one [`DocCore`] (the document, its members'
//! awareness and every guard; see [`crate::doc`]) with sockets and the store.
//!
//! The actor owns what is I/O: each member's outbox and kick ([`MemberLink`]:
//! a member that lags gets the whole document as one update when it has room
//! again), the store's writers (appends, compactions, the load at start), the
//! housekeeping timer, and the answers to the registry and the admin API.
//! Everything the core asks for ([`Effect`]) it carries out in order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Recipient,
    ResponseActFuture, Running, WrapFuture,
};
use actix_ws::CloseCode;
use bytes::Bytes;
use tracing::{error, info, warn};

use super::{
    common::RoomBase,
    member::{Delivery, MemberLink},
    messages::{DocMessages, DocRoomInfo, InspectDoc, JoinDoc, JoinRefused, LeaveDoc, StopRoom},
    registry::{RoomKey, RoomRegistry, RoomSettings},
    ConnId, RoomId,
};
use crate::doc::{Close, CloseKind, CoreSettings, DocCore, Effect, HoldLimits};
use crate::persist::doc_log::DocLogResult;
use crate::persist::with_retry;
use crate::room::messages::{
    DescribeDoc, DocMemberInfo, DocRoomSummary, RestoreDocSnapshot, RestoreRefused, Restored,
    TakeSnapshot,
};
use crate::store::{DocSnapshot, DocUpdateRecord, SnapshotMeta};
use crate::yjs::wire;
use tokio::sync::oneshot;

/// How often a doc room sweeps awareness, refuses held updates that waited
/// too long, catches up lagging members and checks idleness.
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(250);
/// Room mailbox size: session messages wait (backpressure) beyond this.
const MAILBOX_CAPACITY: usize = 1024;

/// Per-server settings of doc rooms.
#[derive(Debug, Clone)]
pub struct DocSettings {
    /// A document may not grow beyond this many bytes (encoded state, approximately).
    pub max_doc_bytes: usize,
    /// Awareness states not renewed within this long are removed.
    pub awareness_timeout: Duration,
    /// Most connected members; further joins are refused (1013).
    pub max_members: usize,
    /// Compact the update log into a snapshot after this many durable updates...
    pub compact_updates: usize,
    /// ...or when this long has passed since the last compaction.
    pub compact_interval: Duration,
    /// How much may wait for clocks a document lacks.
    pub hold: HoldLimits,
}

/// The WebSocket close code of a core's close.
pub fn close_code(kind: CloseKind) -> CloseCode {
    match kind {
        CloseKind::Invalid => CloseCode::Invalid,
        CloseKind::TooLarge => CloseCode::Size,
        CloseKind::Policy => CloseCode::Policy,
        CloseKind::Error => CloseCode::Error,
    }
}

/// One connected editor's link (the core knows the rest of it).
#[derive(Debug)]
struct DocMember {
    /// Outbox, lag state and kick.
    link: MemberLink,
    /// Read-only: its updates are dropped.
    read_only: bool,
    /// Who its join token named (`None` with authentication off).
    user: Option<String>,
}

/// One doc room.
pub struct DocRoom {
    /// Identity, registry, span, store writers, fan-out figures, idleness.
    base: RoomBase,
    /// Room-wide settings (idle timeout, lag timeout).
    settings: RoomSettings,
    /// Doc-room settings (size limit, awareness timeout, compaction).
    doc_settings: DocSettings,
    /// The document, its members' awareness and every guard.
    core: DocCore,
    /// Connected members' links.
    members: HashMap<ConnId, DocMember>,
    /// Restores waiting for their update to be stored: (its last seq, answer).
    restore_waiters: Vec<(i64, oneshot::Sender<Result<Restored, RestoreRefused>>)>,
    /// When the log was last compacted.
    last_compaction: Instant,
    /// Set when the document could not be loaded: the room admits nobody.
    failed: Option<String>,
    /// Document size, sampled.
    doc_size: metrics::Histogram,
    /// Housekeeping passes so far (to sample once a second).
    housekeeping_runs: u64,
}

impl DocRoom {
    /// A new room holding an empty document.
    pub fn new(
        id: RoomId,
        key: RoomKey,
        settings: RoomSettings,
        doc_settings: DocSettings,
        registry: Arc<RoomRegistry>,
    ) -> Self {
        let base = RoomBase::new(id, key, registry, "doc");
        let core = DocCore::new(
            CoreSettings {
                max_doc_bytes: doc_settings.max_doc_bytes,
                awareness_timeout: doc_settings.awareness_timeout,
                hold: doc_settings.hold,
                persistent: base.persistence.is_some(),
            },
            base.span.clone(),
        );
        Self {
            base,
            settings,
            doc_settings,
            core,
            members: HashMap::new(),
            restore_waiters: Vec::new(),
            last_compaction: Instant::now(),
            failed: None,
            doc_size: metrics::histogram!(crate::metrics::DOC_SIZE),
            housekeeping_runs: 0,
        }
    }

    /// Carries out the core's effects in order. A close of `sender` (the
    /// member whose frame is being handled) is returned instead, for its
    /// session to close with.
    fn run(
        &mut self,
        effects: Vec<Effect>,
        sender: Option<ConnId>,
        notify: &Recipient<DocLogResult>,
    ) -> Option<Close> {
        let mut own_close = None;
        let mut queue: std::collections::VecDeque<Effect> = effects.into();
        while let Some(effect) = queue.pop_front() {
            match effect {
                Effect::Reply { to, frame } => self.reply(to, frame),
                Effect::Broadcast(frame) => self.deliver_all(Some(&frame)),
                Effect::Append { seq, update } => {
                    if !self.append(seq, update, notify) {
                        if let Some(more) =
                            self.storage_failed(seq, "the update log writer is overloaded".into())
                        {
                            queue.extend(more);
                        }
                    }
                }
                Effect::Close { conn, close } => {
                    if Some(conn) == sender {
                        self.members.remove(&conn);
                        own_close = Some(close);
                    } else if let Some(mut member) = self.members.remove(&conn) {
                        member.link.kick(close_code(close.kind), close.message);
                    }
                }
            }
        }
        own_close
    }

    /// Hands an accepted update to the store's log writer; `false` when the
    /// writer cannot take it.
    fn append(&mut self, seq: i64, update: Bytes, notify: &Recipient<DocLogResult>) -> bool {
        let Some(p) = &self.base.persistence else {
            return true;
        };
        let record = DocUpdateRecord {
            doc: self.base.key.room().to_owned(),
            seq,
            update: update.to_vec(),
        };
        p.doc_log.try_append(record, notify.clone())
    }

    /// Delivers a shared frame (or only owed catch-ups when `None`) to everyone.
    fn deliver_all(&mut self, frame: Option<&Bytes>) {
        let now = Instant::now();
        let lag_timeout = self.settings.lag_timeout;
        let mut whole: Option<Bytes> = None;
        let (core, span) = (&self.core, &self.base.span);
        let mut catch_up = || {
            whole
                .get_or_insert_with(|| wire::update_frame(core.encode_whole()))
                .clone()
        };
        let mut dropped = Vec::new();
        let (mut frames, mut bytes, mut skipped, mut too_slow) = (0u64, 0u64, 0u64, 0u64);
        for (conn, member) in &mut self.members {
            match member.link.deliver(frame, &mut catch_up, now, lag_timeout) {
                Delivery::Sent(0) => {}
                Delivery::Sent(len) => {
                    frames += 1;
                    bytes += len as u64;
                }
                Delivery::Lagging => skipped += u64::from(frame.is_some()),
                Delivery::TooSlow => {
                    too_slow += 1;
                    warn!(parent: span, conn, "disconnecting a member that cannot keep up");
                    member.link.kick(
                        CloseCode::Policy,
                        format!(
                            "too slow: could not keep up with the document for {lag_timeout:?}"
                        ),
                    );
                    dropped.push(*conn);
                }
                Delivery::Gone => dropped.push(*conn),
            }
        }
        let m = &self.base.room_metrics;
        m.sent_total(frames, bytes);
        m.outbox_drops.increment(skipped + too_slow);
        m.lagging_disconnects.increment(too_slow);
        for conn in dropped {
            self.remove_member(conn);
        }
    }

    /// Sends a reply to one member; if its outbox is full, it gets the whole
    /// document as soon as it has room (a step 2 must never be lost).
    fn reply(&mut self, conn: ConnId, frame: Bytes) {
        if let Some(m) = self.members.get_mut(&conn) {
            let len = frame.len();
            if m.link.send_control(frame) {
                self.base.room_metrics.sent(1, len);
            } else {
                m.link.request_catch_up();
            }
        }
    }

    /// Removes a member (its link and, in the core, its awareness states,
    /// whose removal is broadcast).
    fn remove_member(&mut self, conn: ConnId) {
        if self.members.remove(&conn).is_none() && !self.core.is_member(conn) {
            return;
        }
        let effects = self.core.leave(conn);
        for effect in effects {
            if let Effect::Broadcast(frame) = effect {
                self.deliver_all(Some(&frame));
            }
        }
    }

    /// The store holds every update through `through_seq`: relay them, answer
    /// the restores they complete, compact when the log is long.
    fn durable(&mut self, through_seq: i64, notify: &Recipient<DocLogResult>) {
        let effects = self.core.durable(through_seq);
        self.run(effects, None, notify);
        let (done, waiting) = std::mem::take(&mut self.restore_waiters)
            .into_iter()
            .partition(|(seq, _)| *seq <= through_seq);
        self.restore_waiters = waiting;
        for (seq, answer) in done {
            let _ = answer.send(Ok(Restored { at: Some(seq) }));
        }
        if self.core.durable_in_log() >= self.doc_settings.compact_updates {
            self.compact_soon();
        }
    }

    /// Updates from `from_seq` on could not be stored: the core rolls them
    /// back and closes their senders; restores among them fail, and the writer
    /// accepts this doc's appends again. Returns the core's effects (`None`
    /// when an earlier rollback already covered them).
    fn storage_failed(&mut self, from_seq: i64, reason: String) -> Option<Vec<Effect>> {
        let effects = self.core.storage_failed(from_seq, &reason)?;
        let (failed, waiting) = std::mem::take(&mut self.restore_waiters)
            .into_iter()
            .partition(|(seq, _)| *seq >= from_seq);
        self.restore_waiters = waiting;
        for (_, answer) in failed {
            let _ = answer.send(Err(RestoreRefused::Unavailable(format!(
                "the restoring edit could not be stored ({reason}); the document is unchanged"
            ))));
        }
        if let Some(p) = &self.base.persistence {
            p.doc_log.reset(self.base.key.room().to_owned());
        }
        Some(effects)
    }

    /// Brings the document back to a snapshot's content with a new edit (see
    /// [`RestoreDocSnapshot`]); returns where the outcome arrives once the edit is
    /// stored, or `None` when the content already matched.
    #[allow(clippy::type_complexity)]
    fn restore(
        &mut self,
        snapshot: DocSnapshot,
        notify: &Recipient<DocLogResult>,
    ) -> Result<Option<oneshot::Receiver<Result<Restored, RestoreRefused>>>, RestoreRefused> {
        if let Some(reason) = &self.failed {
            return Err(RestoreRefused::Conflict(format!(
                "the room failed: {reason}"
            )));
        }
        if self.base.closing {
            return Err(RestoreRefused::Conflict("the room is closing".into()));
        }
        let (effects, last) = self.core.restore_to(&snapshot.state).map_err(|why| {
            RestoreRefused::Conflict(format!("snapshot {}: {why}", snapshot.meta.id))
        })?;
        let Some(last) = last else {
            return Ok(None);
        };
        info!(parent: &self.base.span, snapshot = snapshot.meta.id, through_seq = last, "restoring snapshot");
        let (done, answer) = oneshot::channel();
        if self.base.persistence.is_some() {
            self.restore_waiters.push((last, done));
        } else {
            // Relayed at once below: nothing to wait for.
            let _ = done.send(Ok(Restored { at: Some(last) }));
        }
        self.run(effects, None, notify);
        Ok(Some(answer))
    }

    /// Folds the durable log into a snapshot (in the store too, ordered after the
    /// appends it covers); returns where the store's answer arrives.
    fn compact(
        &mut self,
    ) -> Option<impl std::future::Future<Output = Result<SnapshotMeta, String>> + 'static> {
        self.last_compaction = Instant::now();
        let p = self.base.persistence.as_ref()?;
        let (base, through) = self.core.compact()?;
        let answer = p
            .doc_log
            .compact(self.base.key.room().to_owned(), through, base);
        Some(self.base.last_snapshot.watch(answer))
    }

    /// Compacts in the background (the outcome is logged by the writer).
    fn compact_soon(&mut self) {
        if let Some(stored) = self.compact() {
            actix::spawn(async move {
                let _ = stored.await;
            });
        }
    }

    /// Marks the room closing and compacts what is durable; the future resolves
    /// when the store has the snapshot (or gave up).
    fn final_compaction(&mut self) -> impl std::future::Future<Output = ()> + 'static {
        self.base.closing = true;
        let pending = self.compact();
        let span = self.base.span.clone();
        async move {
            if let Some(stored) = pending {
                match stored.await {
                    Ok(meta) => info!(parent: &span, snapshot = meta.id, "final compaction stored"),
                    Err(e) => {
                        error!(parent: &span, cause = %e, "final compaction failed; the log stays")
                    }
                }
            }
        }
    }

    fn housekeeping(&mut self, ctx: &mut Context<Self>) {
        self.housekeeping_runs += 1;
        if self.housekeeping_runs.is_multiple_of(4) {
            // About once a second.
            self.base
                .room_metrics
                .members
                .record(self.members.len() as f64);
            self.doc_size.record(self.core.size() as f64);
            self.base.sample_out_rate(Instant::now());
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let effects = self.core.housekeeping(Instant::now(), now_ms);
        self.run(effects, None, &ctx.address().recipient());
        if self.members.values().any(|m| m.link.is_lagging()) {
            self.deliver_all(None);
        }
        let now = Instant::now();
        if self.base.persistence.is_some()
            && self.core.durable_in_log() > 0
            && now.duration_since(self.last_compaction) >= self.doc_settings.compact_interval
        {
            self.compact_soon();
        }
        if self.base.persistence.is_none() && self.core.log_outgrew_base() {
            // Nothing is stored, but the log (kept to roll back a failed
            // update) is folded all the same, so that it does not grow with
            // the document's whole history: once it holds as many bytes as
            // the base, so that folding costs a constant share of each edit.
            self.core.compact();
        }
        let occupied = !self.members.is_empty();
        if self.base.idle(occupied, now, self.settings.idle_timeout)
            && self.core.pending_relays() == 0
        {
            info!(parent: &self.base.span, "room idle; stopping");
            let done = self.final_compaction();
            ctx.wait(done.into_actor(self).map(|_, _, ctx| ctx.stop()));
        }
    }

    /// The room's figures, without encoding the document.
    fn summary(&self) -> DocRoomSummary {
        let mut members: Vec<DocMemberInfo> = self
            .members
            .iter()
            .map(|(conn, m)| DocMemberInfo {
                conn: *conn,
                outbox_depth: m.link.outbox_depth(),
                frames_skipped: m.link.frames_skipped,
                connected_secs: m.link.joined_at.elapsed().as_secs_f64(),
                latency_ms: m.link.latency.millis(),
                awareness_clients: self.core.awareness_clients(*conn),
                read_only: m.read_only,
                user: m.user.clone(),
            })
            .collect();
        members.sort_unstable_by_key(|m| m.conn);
        let (held_updates, held_bytes) = self.core.held();
        let (kept_values, kept_bytes) = self.core.kept();
        DocRoomSummary {
            name: self.base.key.room().to_owned(),
            members,
            doc_bytes: self.core.size(),
            updates_applied: self.core.updates_applied(),
            awareness_clients: self.core.awareness_count(),
            pending_updates: self.core.pending_relays(),
            held_updates,
            held_bytes,
            kept_values,
            kept_bytes,
            bytes_out_per_sec: self.base.out_rate.per_sec(),
            last_snapshot: self.base.last_snapshot.get(),
        }
    }
}

impl Actor for DocRoom {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        ctx.run_interval(HOUSEKEEPING_EVERY, |room, ctx| room.housekeeping(ctx));
        if let Some(p) = self.base.persistence.clone() {
            // Nothing else (joins and their sync step 1 included) is handled until
            // the document is loaded: nobody is ever answered with an empty doc.
            let name = self.base.key.room().to_owned();
            let load = async move {
                with_retry("load doc", p.settings.retry_for, || p.store.load_doc(&name)).await
            };
            ctx.wait(load.into_actor(self).map(|loaded, room, _ctx| {
                let loaded = loaded.map_err(|e| e.to_string());
                let snapshot = loaded
                    .as_ref()
                    .ok()
                    .and_then(|s| s.snapshot.as_ref().map(|s| s.meta.clone()));
                match loaded.and_then(|stored| room.core.load(stored)) {
                    Ok(()) => {
                        if let Some(meta) = snapshot {
                            room.base.last_snapshot.record(&meta);
                        }
                        info!(parent: &room.base.span, bytes = room.core.size(), through_seq = room.core.durable_through(), "document loaded");
                    }
                    Err(why) => {
                        error!(parent: &room.base.span, cause = %why, "document could not be loaded; the room refuses members");
                        room.failed = Some(format!("document could not be loaded: {why}"));
                    }
                }
            }));
        }
        info!(parent: &self.base.span, "room started");
    }

    fn stopping(&mut self, _ctx: &mut Context<Self>) -> Running {
        for (_, mut m) in self.members.drain() {
            m.link.kick(CloseCode::Away, "room closed");
        }
        Running::Stop
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.base.forget();
        info!(parent: &self.base.span, updates = self.core.updates_applied(), "room stopped");
    }
}

impl Handler<JoinDoc> for DocRoom {
    type Result = Result<(), JoinRefused>;

    fn handle(&mut self, msg: JoinDoc, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(reason) = &self.failed {
            return Err(JoinRefused::Failed(reason.clone()));
        }
        if self.base.closing || ctx.state() != actix::ActorState::Running {
            return Err(JoinRefused::Closing);
        }
        let max = self.doc_settings.max_members;
        if self.members.len() >= max {
            return Err(JoinRefused::Full(max));
        }
        self.members.insert(
            msg.conn,
            DocMember {
                link: MemberLink::new(msg.outbox, msg.kick, msg.latency),
                read_only: msg.read_only,
                user: msg.user,
            },
        );
        let greeting = self.core.join(msg.conn, msg.read_only);
        self.run(greeting, None, &ctx.address().recipient());
        self.base
            .idle(true, Instant::now(), self.settings.idle_timeout);
        info!(parent: &self.base.span, conn = msg.conn, "member joined");
        Ok(())
    }
}

impl Handler<DocMessages> for DocRoom {
    type Result = Result<(), Close>;

    fn handle(&mut self, msg: DocMessages, ctx: &mut Context<Self>) -> Self::Result {
        if !self.members.contains_key(&msg.conn) {
            return Ok(()); // dropped meanwhile (lagging); its kick explains
        }
        let effects = self.core.handle(msg.conn, msg.messages, Instant::now());
        match self.run(effects, Some(msg.conn), &ctx.address().recipient()) {
            Some(close) => Err(close),
            None => Ok(()),
        }
    }
}

impl Handler<DocLogResult> for DocRoom {
    type Result = ();

    fn handle(&mut self, msg: DocLogResult, ctx: &mut Context<Self>) {
        let notify = ctx.address().recipient();
        match msg {
            DocLogResult::Durable { through_seq } => self.durable(through_seq, &notify),
            DocLogResult::Failed { from_seq, reason } => {
                if let Some(effects) = self.storage_failed(from_seq, reason) {
                    self.run(effects, None, &notify);
                }
            }
        }
    }
}

impl Handler<LeaveDoc> for DocRoom {
    type Result = ();

    fn handle(&mut self, msg: LeaveDoc, _ctx: &mut Context<Self>) {
        self.remove_member(msg.conn);
    }
}

impl Handler<InspectDoc> for DocRoom {
    type Result = actix::MessageResult<InspectDoc>;

    fn handle(&mut self, _msg: InspectDoc, _ctx: &mut Context<Self>) -> Self::Result {
        actix::MessageResult(DocRoomInfo {
            summary: self.summary(),
            content: self.core.to_json(),
            state_update: self.core.encode_whole(),
        })
    }
}

impl Handler<DescribeDoc> for DocRoom {
    type Result = actix::MessageResult<DescribeDoc>;

    fn handle(&mut self, _msg: DescribeDoc, _ctx: &mut Context<Self>) -> Self::Result {
        actix::MessageResult(self.summary())
    }
}

impl Handler<TakeSnapshot> for DocRoom {
    type Result = ResponseActFuture<Self, Result<SnapshotMeta, String>>;

    fn handle(&mut self, _msg: TakeSnapshot, _ctx: &mut Context<Self>) -> Self::Result {
        self.last_compaction = Instant::now();
        let pending = match self.base.persistence.clone() {
            None => Err("persistence is off".to_owned()),
            Some(p) => {
                // Fold what is durable; with nothing new, store the base again.
                let (state, through) = self.core.compact().unwrap_or_else(|| self.core.base());
                let answer = p
                    .doc_log
                    .compact(self.base.key.room().to_owned(), through, state);
                Ok(self.base.last_snapshot.watch(answer))
            }
        };
        Box::pin(async move { pending?.await }.into_actor(self))
    }
}

impl Handler<RestoreDocSnapshot> for DocRoom {
    type Result = actix::ResponseFuture<Result<Restored, RestoreRefused>>;

    /// Applies the restoring edit now; answers once it is stored (and relayed to
    /// every member), at once when nothing needed to change.
    fn handle(&mut self, msg: RestoreDocSnapshot, ctx: &mut Context<Self>) -> Self::Result {
        let answer = self.restore(msg.snapshot, &ctx.address().recipient());
        Box::pin(async move {
            match answer {
                Ok(Some(stored)) => stored.await.unwrap_or_else(|_| {
                    Err(RestoreRefused::Unavailable(
                        "the room stopped before the restore was stored".into(),
                    ))
                }),
                Ok(None) => Ok(Restored { at: None }),
                Err(refused) => Err(refused),
            }
        })
    }
}

impl Handler<StopRoom> for DocRoom {
    type Result = ResponseActFuture<Self, ()>;

    /// Compacts what is durable, then stops; appends still in flight complete in
    /// the writer (it drains before the server exits) and load after the snapshot.
    fn handle(&mut self, _msg: StopRoom, _ctx: &mut Context<Self>) -> Self::Result {
        let done = self.final_compaction();
        Box::pin(done.into_actor(self).map(|_, _, ctx| ctx.stop()))
    }
}
