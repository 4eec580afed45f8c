//! The `DocRoom` actor: one collaborative Yjs document (a `yrs::Doc` inside its
//! `Awareness`) and the members editing it, speaking y-websocket.
//!
//! - Join: the member gets the server's sync step 1 and the known awareness
//!   states; its step 1 is answered with step 2.
//! - Updates (step 2 or update messages) are applied in one transaction; what the
//!   transaction actually integrated (observed on the doc) is encoded once and
//!   broadcast to every member, the sender included, as the reference server does.
//!   Accepted updates are kept as a log over a merged base, so an update that fails
//!   to apply (or panics inside yrs) is rolled back by rebuilding the doc: a bad
//!   update closes its sender (1007) and leaves the doc as it was.
//! - Awareness: a connection may only set or clear the client ids it introduced;
//!   changes are applied and broadcast to everyone (the echo is the stock client's
//!   keep-alive); ids of a member that leaves are removed and the removal broadcast;
//!   states not renewed within the awareness timeout are swept.
//! - Members share the game rooms' outbox machinery ([`MemberLink`]): a member that
//!   lags gets the whole document as one update when it has room again.

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, AsyncContext, Context, Handler, Running};
use actix_ws::CloseCode;
use bytes::Bytes;
use tracing::{error, info, info_span, warn};
use yrs::block::ClientID;
use yrs::sync::{Awareness, AwarenessUpdate, Message, SyncMessage};
use yrs::types::ToJson;
use yrs::updates::decoder::Decode;
use yrs::{Doc, OffsetKind, Options, ReadTxn, StateVector, Transact, Update};

use super::{
    member::{Delivery, MemberLink},
    messages::{
        DocMessages, DocRefusal, DocRoomInfo, InspectDoc, JoinDoc, JoinRefused, LeaveDoc, StopRoom,
    },
    registry::{RoomKey, RoomRegistry, RoomSettings},
    ConnId, RoomId,
};
use crate::yjs_wire::{self, Inbound};

/// How often a doc room sweeps awareness, catches up lagging members and checks idleness.
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(250);
/// Room mailbox size: session messages wait (backpressure) beyond this.
const MAILBOX_CAPACITY: usize = 1024;
/// Compact the update log into the base once it holds this many updates...
const COMPACT_AFTER_UPDATES: usize = 512;
/// ...or once it is larger than the base and at least this many bytes.
const COMPACT_AFTER_BYTES: usize = 256 * 1024;

/// Per-server settings of doc rooms.
#[derive(Debug, Clone)]
pub struct DocSettings {
    /// A document may not grow beyond this many bytes (encoded state, approximately).
    pub max_doc_bytes: usize,
    /// Awareness states not renewed within this long are removed.
    pub awareness_timeout: Duration,
}

/// A document that counts text offsets in UTF-16 code units, like JavaScript
/// Yjs, should the server ever edit text by index.
fn new_doc() -> Doc {
    Doc::with_options(Options {
        offset_kind: OffsetKind::Utf16,
        ..Options::default()
    })
}

/// One connected editor.
#[derive(Debug)]
struct DocMember {
    /// Outbox, lag state and kick.
    link: MemberLink,
    /// Awareness client ids this connection introduced (it may change only these).
    clients: HashSet<ClientID>,
}

/// The document with its rollback log.
struct DocState {
    /// The document and its awareness states.
    awareness: Awareness,
    /// Updates integrated by the current transaction, filled by the doc observer.
    captured: Arc<Mutex<Vec<Vec<u8>>>>,
    /// The whole document as of the last compaction (encoded v1 update).
    base: Vec<u8>,
    /// Updates accepted since the last compaction, in order.
    log: Vec<Bytes>,
    /// Sum of `log` sizes.
    log_bytes: usize,
}

impl DocState {
    fn new(doc: Doc, base: Vec<u8>) -> Self {
        let captured = Arc::new(Mutex::new(Vec::new()));
        let sink = captured.clone();
        // Cannot fail: a fresh doc has no observer under this key yet.
        doc.observe_update_v1("roomcast-relay", move |_txn, event| {
            sink.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(event.update.clone());
        })
        .expect("fresh doc accepts its observer");
        Self {
            awareness: Awareness::new(doc),
            captured,
            base,
            log: Vec::new(),
            log_bytes: 0,
        }
    }

    /// An empty document.
    fn empty() -> Self {
        let doc = new_doc();
        let base = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        Self::new(doc, base)
    }

    /// Approximate encoded size: the base plus the updates since.
    fn size(&self) -> usize {
        self.base.len() + self.log_bytes
    }

    /// Applies an update; returns what it integrated (possibly nothing new), or
    /// why it failed, in which case the document is as it was before.
    fn apply(&mut self, update: Update) -> Result<Vec<Vec<u8>>, String> {
        self.take_captured();
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut txn = self.awareness.doc().transact_mut();
            txn.apply_update(update)
        }));
        let failure = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("the update made yrs panic".to_owned()),
        };
        let integrated = self.take_captured();
        if let Some(why) = failure {
            self.rebuild();
            return Err(why);
        }
        for u in &integrated {
            self.log_bytes += u.len();
            self.log.push(Bytes::copy_from_slice(u));
        }
        if self.log.len() >= COMPACT_AFTER_UPDATES
            || (self.log_bytes >= COMPACT_AFTER_BYTES && self.log_bytes > self.base.len())
        {
            self.compact();
        }
        Ok(integrated)
    }

    fn take_captured(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.captured.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Folds the log into the base.
    fn compact(&mut self) {
        self.base = self.encode_whole();
        self.log.clear();
        self.log_bytes = 0;
    }

    /// The whole document as one v1 update.
    fn encode_whole(&self) -> Vec<u8> {
        self.awareness
            .doc()
            .transact()
            .encode_state_as_update_v1(&StateVector::default())
    }

    /// Rebuilds the document from the base and the accepted updates, keeping the
    /// awareness states: undoes whatever a failed update left half-applied.
    fn rebuild(&mut self) {
        let doc = new_doc();
        {
            let mut txn = doc.transact_mut();
            for bytes in
                std::iter::once(self.base.as_slice()).chain(self.log.iter().map(|b| b.as_ref()))
            {
                // Cannot fail: every byte here was produced by yrs from an accepted state.
                let update = Update::decode_v1(bytes).expect("logged updates decode");
                if let Err(e) = txn.apply_update(update) {
                    error!(cause = %e, "re-applying an accepted update failed during rollback");
                }
            }
        }
        let states = self.awareness.update().ok();
        let log = std::mem::take(&mut self.log);
        let (base, log_bytes) = (std::mem::take(&mut self.base), self.log_bytes);
        *self = DocState::new(doc, base);
        self.log = log;
        self.log_bytes = log_bytes;
        if let Some(states) = states {
            let _ = self.awareness.apply_update(states);
        }
    }

    /// A JSON view of the root types that have a known type on the server.
    fn to_json(&self) -> serde_json::Value {
        let txn = self.awareness.doc().transact();
        let mut map = serde_json::Map::new();
        for (name, value) in txn.root_refs() {
            let any = value.to_json(&txn);
            map.insert(
                name.to_owned(),
                serde_json::to_value(&any).unwrap_or(serde_json::Value::Null),
            );
        }
        serde_json::Value::Object(map)
    }
}

/// One doc room.
pub struct DocRoom {
    /// This room's lifetime id.
    id: RoomId,
    /// Registry key.
    key: RoomKey,
    /// Room-wide settings (idle timeout, lag timeout).
    settings: RoomSettings,
    /// Doc-room settings (size limit, awareness timeout).
    doc_settings: DocSettings,
    /// Where this room unregisters itself when it stops.
    registry: Arc<RoomRegistry>,
    /// The document.
    state: DocState,
    /// Connected members.
    members: HashMap<ConnId, DocMember>,
    /// Awareness client id → the connection that introduced it.
    owners: HashMap<ClientID, ConnId>,
    /// Updates applied that changed the document.
    updates_applied: u64,
    /// Since when the room has had no members.
    empty_since: Option<Instant>,
    /// Span every log line of this room belongs to.
    span: tracing::Span,
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
        let span = info_span!("room", kind = "doc", key = %key, room_id = id);
        Self {
            id,
            key,
            settings,
            doc_settings,
            registry,
            state: DocState::empty(),
            members: HashMap::new(),
            owners: HashMap::new(),
            updates_applied: 0,
            empty_since: Some(Instant::now()),
            span,
        }
    }

    /// Sends `frame` to every member (the whole doc to those catching up).
    fn broadcast(&mut self, frame: &Bytes) {
        self.deliver_all(Some(frame));
    }

    /// Delivers a shared frame (or only owed catch-ups when `None`) to everyone.
    fn deliver_all(&mut self, frame: Option<&Bytes>) {
        let now = Instant::now();
        let lag_timeout = self.settings.lag_timeout;
        let mut whole: Option<Bytes> = None;
        let (state, span) = (&self.state, &self.span);
        let mut catch_up = || {
            whole
                .get_or_insert_with(|| yjs_wire::update_frame(state.encode_whole()))
                .clone()
        };
        let mut dropped = Vec::new();
        for (conn, member) in &mut self.members {
            match member.link.deliver(frame, &mut catch_up, now, lag_timeout) {
                Delivery::Sent | Delivery::Lagging => {}
                Delivery::TooSlow => {
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
        for conn in dropped {
            self.remove_member(conn);
        }
    }

    /// Sends a reply to one member; if its outbox is full, it gets the whole
    /// document as soon as it has room (a step 2 must never be lost).
    fn reply(&mut self, conn: ConnId, frame: Bytes) {
        if let Some(m) = self.members.get_mut(&conn) {
            if !m.link.send_control(frame) {
                m.link.request_catch_up();
            }
        }
    }

    /// Removes a member and its awareness states, broadcasting the removal.
    fn remove_member(&mut self, conn: ConnId) {
        let Some(member) = self.members.remove(&conn) else {
            return;
        };
        let ids: Vec<ClientID> = member.clients.into_iter().collect();
        for id in &ids {
            self.owners.remove(id);
            self.state.awareness.remove_state(*id);
        }
        info!(parent: &self.span, conn, awareness_ids = ids.len(), "member gone");
        self.broadcast_awareness(ids);
    }

    fn broadcast_awareness(&mut self, ids: Vec<ClientID>) {
        if ids.is_empty() {
            return;
        }
        match self.state.awareness.update_with_clients(ids) {
            Ok(update) => {
                let frame = yjs_wire::encode(&Message::Awareness(update));
                self.broadcast(&frame);
            }
            Err(e) => warn!(parent: &self.span, cause = %e, "cannot encode awareness change"),
        }
    }

    /// Keeps only the entries `conn` may change, and records ids it introduces.
    fn filter_awareness(&mut self, conn: ConnId, mut update: AwarenessUpdate) -> AwarenessUpdate {
        update.clients.retain(|id, _| match self.owners.get(id) {
            Some(owner) => *owner == conn,
            None => true,
        });
        for id in update.clients.keys() {
            if self.owners.insert(*id, conn).is_none() {
                if let Some(m) = self.members.get_mut(&conn) {
                    m.clients.insert(*id);
                }
            }
        }
        update
    }

    fn handle_messages(&mut self, conn: ConnId, messages: Vec<Inbound>) -> Result<(), DocRefusal> {
        for message in messages {
            if !self.members.contains_key(&conn) {
                return Ok(()); // dropped meanwhile (lagging); its kick explains
            }
            match message {
                Inbound::SyncStep1(sv) => {
                    let diff = self
                        .state
                        .awareness
                        .doc()
                        .transact()
                        .encode_state_as_update_v1(&sv);
                    self.reply(
                        conn,
                        yjs_wire::encode(&Message::Sync(SyncMessage::SyncStep2(diff))),
                    );
                }
                Inbound::Update { update, len } => {
                    let limit = self.doc_settings.max_doc_bytes;
                    if self.state.size() + len > limit {
                        return Err(DocRefusal::TooLarge(format!(
                            "document size limit reached ({limit} bytes); further edits are refused"
                        )));
                    }
                    let integrated = self.state.apply(update).map_err(|why| {
                        warn!(parent: &self.span, conn, cause = %why, "update refused; doc rolled back");
                        DocRefusal::Invalid(format!("update does not apply: {why}"))
                    })?;
                    for u in integrated {
                        self.updates_applied += 1;
                        self.broadcast(&yjs_wire::update_frame(u));
                    }
                }
                Inbound::Awareness(update) => {
                    let update = self.filter_awareness(conn, update);
                    if update.clients.is_empty() {
                        continue;
                    }
                    match self.state.awareness.apply_update_summary(update) {
                        Ok(Some(summary)) => {
                            let mut ids = summary.added;
                            ids.extend(summary.updated);
                            ids.extend(summary.removed);
                            self.broadcast_awareness(ids);
                        }
                        Ok(None) => {}
                        Err(e) => {
                            return Err(DocRefusal::Invalid(format!("bad awareness update: {e}")))
                        }
                    }
                }
                Inbound::AwarenessQuery => {
                    if let Ok(update) = self.state.awareness.update() {
                        self.reply(conn, yjs_wire::encode(&Message::Awareness(update)));
                    }
                }
                Inbound::Ignored => {}
            }
        }
        Ok(())
    }

    /// Removes awareness states nobody renewed within the timeout.
    fn sweep_awareness(&mut self) {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let timeout_ms = self.doc_settings.awareness_timeout.as_millis() as u64;
        let stale: Vec<ClientID> = self
            .state
            .awareness
            .iter()
            .filter(|(_, s)| s.data.is_some() && now_ms.saturating_sub(s.last_updated) > timeout_ms)
            .map(|(id, _)| id)
            .collect();
        for id in &stale {
            self.state.awareness.remove_state(*id);
        }
        self.broadcast_awareness(stale);
    }

    fn housekeeping(&mut self, ctx: &mut Context<Self>) {
        self.sweep_awareness();
        if self.members.values().any(|m| m.link.is_lagging()) {
            self.deliver_all(None);
        }
        let now = Instant::now();
        if !self.members.is_empty() {
            self.empty_since = None;
            return;
        }
        let since = *self.empty_since.get_or_insert(now);
        if now.duration_since(since) >= self.settings.idle_timeout {
            info!(parent: &self.span, "room idle; stopping");
            ctx.stop();
        }
    }
}

impl Actor for DocRoom {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        ctx.run_interval(HOUSEKEEPING_EVERY, |room, ctx| room.housekeeping(ctx));
        info!(parent: &self.span, "room started");
    }

    fn stopping(&mut self, _ctx: &mut Context<Self>) -> Running {
        for (_, mut m) in self.members.drain() {
            m.link.kick(CloseCode::Away, "room closed");
        }
        Running::Stop
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.registry.forget(&self.key, self.id);
        info!(parent: &self.span, updates = self.updates_applied, "room stopped");
    }
}

impl Handler<JoinDoc> for DocRoom {
    type Result = Result<(), JoinRefused>;

    fn handle(&mut self, msg: JoinDoc, ctx: &mut Context<Self>) -> Self::Result {
        if ctx.state() != actix::ActorState::Running {
            return Err(JoinRefused::Closing);
        }
        let link = MemberLink::new(msg.outbox, msg.kick);
        for frame in yjs_wire::greeting(&self.state.awareness) {
            link.send_control(frame);
        }
        self.members.insert(
            msg.conn,
            DocMember {
                link,
                clients: HashSet::new(),
            },
        );
        self.empty_since = None;
        info!(parent: &self.span, conn = msg.conn, "member joined");
        Ok(())
    }
}

impl Handler<DocMessages> for DocRoom {
    type Result = Result<(), DocRefusal>;

    fn handle(&mut self, msg: DocMessages, _ctx: &mut Context<Self>) -> Self::Result {
        self.handle_messages(msg.conn, msg.messages)
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
        let mut members: Vec<ConnId> = self.members.keys().copied().collect();
        members.sort_unstable();
        actix::MessageResult(DocRoomInfo {
            name: self.key.room().to_owned(),
            members,
            doc_bytes: self.state.size(),
            updates_applied: self.updates_applied,
            awareness_clients: self
                .state
                .awareness
                .iter()
                .filter(|(_, s)| s.data.is_some())
                .count(),
            content: self.state.to_json(),
            state_update: self.state.encode_whole(),
        })
    }
}

impl Handler<StopRoom> for DocRoom {
    type Result = ();

    fn handle(&mut self, _msg: StopRoom, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
