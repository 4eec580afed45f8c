//! [`DocCore`]: one doc room's logic without I/O. Messages go in (a member
//! joins, sends a frame's messages, leaves; the store confirms or fails an
//! append; time passes), [`Effect`]s come out (reply to one member, broadcast
//! to all, append to the log, close a member with a reason). The `DocRoom`
//! actor drives it with sockets and the store; the fuzz target and the tests
//! drive it by hand, so all of them exercise the same code.
//!
//! - Join: the member gets the server's sync step 1 and the known awareness
//!   states; its step 1 is answered with step 2.
//! - Updates (step 2 or update messages) that the document has everything for
//!   are checked ([`Document::check`]) and applied in one transaction; what
//!   the transaction integrated is encoded once and broadcast to every member,
//!   the sender included, as the reference server does: at once, or (with
//!   persistence) once the store has it. A bad update closes its sender
//!   (1007) and leaves the document as it was.
//! - Updates that follow clocks the document lacks are held (see
//!   [`super::held`]) and integrated once those arrive.
//! - Read-only members' updates are dropped; they are told once.
//! - Awareness: a connection may only set or clear the client ids it
//!   introduced; changes are applied and broadcast to everyone (the echo is
//!   the stock client's keep-alive); ids of a member that leaves are removed
//!   and the removal broadcast; states not renewed within the awareness
//!   timeout are swept.
//!
//! Every refusal is logged at warn level with its reason and counted in
//! `roomcast_refusals_total{reason}`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{debug, error, info, warn};
use yrs::block::ClientID;
use yrs::sync::{Awareness, Message, SyncMessage};
use yrs::StateVector;

use super::awareness::{remove_awareness_state, retain_owned};
use super::document::{known_in, Document};
use super::held::{Held, HeldUpdate, HoldLimits};
use crate::room::ConnId;
use crate::store::StoredDoc;
use crate::yjs::deps;
use crate::yjs::wire::{self, ClientUpdate, Inbound};

/// Settings of one doc core.
#[derive(Debug, Clone)]
pub struct CoreSettings {
    /// A document may not grow beyond this many bytes (encoded, approximately).
    pub max_doc_bytes: usize,
    /// Awareness states not renewed within this long are removed.
    pub awareness_timeout: Duration,
    /// How much may wait for missing clocks.
    pub hold: HoldLimits,
    /// Whether accepted updates are stored before they are relayed.
    pub persistent: bool,
}

/// How a member's connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseKind {
    /// 1007: an update or awareness message the room refuses.
    Invalid,
    /// 1009: the document would exceed its size limit.
    TooLarge,
    /// 1008: a limit on what the room holds for a connection.
    Policy,
    /// 1011: the edit could not be stored (the client still has it).
    Error,
}

impl CloseKind {
    /// The WebSocket close code.
    pub fn code(self) -> u16 {
        match self {
            CloseKind::Invalid => 1007,
            CloseKind::TooLarge => 1009,
            CloseKind::Policy => 1008,
            CloseKind::Error => 1011,
        }
    }
}

/// Why a member is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Close {
    /// Which close code.
    pub kind: CloseKind,
    /// The reason sent with it.
    pub message: String,
}

/// What the core asks its driver to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send a frame to one member.
    Reply {
        /// The member.
        to: ConnId,
        /// The frame.
        frame: Bytes,
    },
    /// Send a frame to every member.
    Broadcast(Bytes),
    /// Append an accepted update to the store's log; its relay waits for
    /// [`DocCore::durable`] (or [`DocCore::storage_failed`] rolls it back).
    Append {
        /// Its seq.
        seq: i64,
        /// The update (v1, the clients' encoding).
        update: Bytes,
    },
    /// Close a member's connection; the core has already forgotten it.
    Close {
        /// The member.
        conn: ConnId,
        /// Why.
        close: Close,
    },
}

/// One connected editor, as the core knows it.
#[derive(Debug, Default)]
struct Member {
    /// Awareness client ids this connection introduced (it may change only these).
    clients: HashSet<ClientID>,
    /// Read-only: its updates are dropped.
    read_only: bool,
    /// It was told its edits are dropped (once per connection).
    told_read_only: bool,
}

/// An accepted update waiting for the store before it is relayed.
#[derive(Debug)]
struct PendingRelay {
    /// Its seq in the log.
    seq: i64,
    /// The encoded frame to broadcast.
    frame: Bytes,
    /// Who sent it (closed with 1011 if it cannot be stored); `None` for the
    /// server's own edits (a restore) and held updates whose sender left.
    sender: Option<ConnId>,
}

/// One doc room's document, members and guards, without I/O.
pub struct DocCore {
    /// The document, its log and awareness.
    doc: Document,
    /// Connected members.
    members: HashMap<ConnId, Member>,
    /// Awareness client id → the connection that introduced it.
    owners: HashMap<ClientID, ConnId>,
    /// Updates waiting for clocks the document lacks.
    held: Held,
    /// Accepted updates waiting to be durable, in seq order.
    pending: VecDeque<PendingRelay>,
    /// Failures of appends from seqs up to this one were already handled by a
    /// rollback (later notifications about them are stale).
    rolled_back_through: i64,
    /// Limits and persistence.
    settings: CoreSettings,
    /// Updates applied that changed the document.
    updates_applied: u64,
    /// Sizes of accepted updates.
    update_size: metrics::Histogram,
    /// Span every log line of the room belongs to.
    span: tracing::Span,
}

impl DocCore {
    /// A core holding an empty document.
    pub fn new(settings: CoreSettings, span: tracing::Span) -> Self {
        Self {
            doc: Document::empty(),
            members: HashMap::new(),
            owners: HashMap::new(),
            held: Held::default(),
            pending: VecDeque::new(),
            rolled_back_through: 0,
            settings,
            updates_applied: 0,
            update_size: metrics::histogram!(crate::metrics::DOC_UPDATE_SIZE),
            span,
        }
    }

    /// Replaces the (empty) document by one loaded from the store.
    pub fn load(&mut self, stored: StoredDoc) -> Result<(), String> {
        self.doc = Document::from_stored(stored)?;
        Ok(())
    }

    /// A member joins; returns its greeting.
    pub fn join(&mut self, conn: ConnId, read_only: bool) -> Vec<Effect> {
        self.members.insert(
            conn,
            Member {
                read_only,
                ..Member::default()
            },
        );
        wire::greeting(&self.doc.awareness)
            .into_iter()
            .map(|frame| Effect::Reply { to: conn, frame })
            .collect()
    }

    /// A member leaves (or is dropped): its awareness states are removed and
    /// the removal broadcast.
    pub fn leave(&mut self, conn: ConnId) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.forget(conn, &mut fx);
        fx
    }

    /// Whether `conn` is a member.
    pub fn is_member(&self, conn: ConnId) -> bool {
        self.members.contains_key(&conn)
    }

    /// Handles the messages of one frame from `conn`, in order, at `now`;
    /// stops at the first one that closes it.
    pub fn handle(&mut self, conn: ConnId, messages: Vec<Inbound>, now: Instant) -> Vec<Effect> {
        let mut fx = Vec::new();
        for message in messages {
            if !self.members.contains_key(&conn) {
                break; // closed by an earlier message of the frame, or dropped
            }
            match message {
                Inbound::SyncStep1(sv) => {
                    let diff = self.doc.diff(&sv);
                    fx.push(Effect::Reply {
                        to: conn,
                        frame: wire::encode(&Message::Sync(SyncMessage::SyncStep2(diff))),
                    });
                }
                Inbound::Update(update) if self.members[&conn].read_only => {
                    self.refuse_read_only_edit(conn, update.is_empty(), &mut fx);
                }
                Inbound::Update(update) => self.on_update(conn, update, now, &mut fx),
                Inbound::Awareness(mut update) => {
                    let introduced = retain_owned(&mut self.owners, conn, &mut update);
                    if let Some(m) = self.members.get_mut(&conn) {
                        m.clients.extend(introduced);
                    }
                    if update.clients.is_empty() {
                        continue;
                    }
                    match self.doc.awareness.apply_update_summary(update) {
                        Ok(Some(summary)) => {
                            let mut ids = summary.added;
                            ids.extend(summary.updated);
                            ids.extend(summary.removed);
                            self.broadcast_awareness(ids, &mut fx);
                        }
                        Ok(None) => {}
                        Err(e) => self.refuse(
                            Some(conn),
                            CloseKind::Invalid,
                            "awareness_invalid",
                            format!("bad awareness update: {e}"),
                            &mut fx,
                        ),
                    }
                }
                Inbound::AwarenessQuery => {
                    if let Ok(update) = self.doc.awareness.update() {
                        fx.push(Effect::Reply {
                            to: conn,
                            frame: wire::encode(&Message::Awareness(update)),
                        });
                    }
                }
                Inbound::Ignored => {}
            }
        }
        fx
    }

    /// An update from a member that may edit: integrated now, or held until
    /// what it follows arrives.
    fn on_update(
        &mut self,
        conn: ConnId,
        update: ClientUpdate,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        let sv = self.doc.state_vector();
        let needs = deps::needs(&update.shape, known_in(&sv));
        if !needs.is_empty() {
            if let Some(why) = self.held.refusal(conn, update.len(), &self.settings.hold) {
                return self.refuse(Some(conn), CloseKind::Policy, "update_held_limit", why, fx);
            }
            debug!(parent: &self.span, conn, needs = %needs.describe(), "holding an update until what it follows arrives");
            self.held.push(HeldUpdate {
                conn,
                update,
                needs,
                since: now,
            });
            return;
        }
        if self.integrate(Some(conn), update, &sv, fx) {
            self.integrate_ready(fx);
        }
    }

    /// Checks and applies an update whose needs are met (`sv`: the current
    /// state vector); returns whether it integrated anything. A refused
    /// update closes its sender (when given and still connected).
    fn integrate(
        &mut self,
        sender: Option<ConnId>,
        update: ClientUpdate,
        sv: &StateVector,
        fx: &mut Vec<Effect>,
    ) -> bool {
        let limit = self.settings.max_doc_bytes;
        if self.doc.size() + update.len() > limit {
            self.refuse(
                sender,
                CloseKind::TooLarge,
                "doc_size",
                format!("document size limit reached ({limit} bytes); further edits are refused"),
                fx,
            );
            return false;
        }
        let applied = self
            .doc
            .check(&update, sv)
            .and_then(|()| self.doc.apply(update, sv));
        match applied {
            Ok(integrated) => {
                let any = !integrated.is_empty();
                for (seq, update) in integrated {
                    self.updates_applied += 1;
                    self.accepted(sender, seq, update, fx);
                }
                any
            }
            Err(why) => {
                self.refuse(
                    sender,
                    CloseKind::Invalid,
                    "update_invalid",
                    format!("update does not apply: {why}"),
                    fx,
                );
                false
            }
        }
    }

    /// Integrates the held updates whose needs are now met, oldest first,
    /// until none is ready.
    fn integrate_ready(&mut self, fx: &mut Vec<Effect>) {
        while self.held.len() > 0 {
            let sv = self.doc.state_vector();
            let Some(held) = self.held.take_ready(known_in(&sv)) else {
                break;
            };
            let sender = self.members.contains_key(&held.conn).then_some(held.conn);
            self.integrate(sender, held.update, &sv, fx);
        }
    }

    /// An update was integrated: relay it now (persistence off) or once the
    /// store has it.
    fn accepted(&mut self, sender: Option<ConnId>, seq: i64, update: Bytes, fx: &mut Vec<Effect>) {
        self.update_size.record(update.len() as f64);
        let frame = wire::update_frame(update.to_vec());
        if !self.settings.persistent {
            self.doc.durable_through = seq;
            fx.push(Effect::Broadcast(frame));
            return;
        }
        fx.push(Effect::Append { seq, update });
        self.pending.push_back(PendingRelay { seq, frame, sender });
    }

    /// The store holds every update through `through_seq`: relay them.
    pub fn durable(&mut self, through_seq: i64) -> Vec<Effect> {
        self.doc.durable_through = self.doc.durable_through.max(through_seq);
        let mut fx = Vec::new();
        while self.pending.front().is_some_and(|p| p.seq <= through_seq) {
            if let Some(p) = self.pending.pop_front() {
                fx.push(Effect::Broadcast(p.frame));
            }
        }
        fx
    }

    /// Updates from `from_seq` on could not be stored: undo them and close
    /// their senders (their clients still hold the edits and send them again
    /// when they reconnect). `None` when an earlier rollback already covered
    /// them.
    pub fn storage_failed(&mut self, from_seq: i64, reason: &str) -> Option<Vec<Effect>> {
        if from_seq <= self.rolled_back_through {
            return None;
        }
        self.rolled_back_through = self.doc.last_seq();
        error!(parent: &self.span, from_seq, cause = %reason, "edits could not be stored; rolling them back");
        let mut senders: Vec<ConnId> = self
            .pending
            .iter()
            .filter(|p| p.seq >= from_seq)
            .filter_map(|p| p.sender)
            .collect();
        senders.sort_unstable();
        senders.dedup();
        self.pending.retain(|p| p.seq < from_seq);
        self.doc.roll_back_from(from_seq);
        let mut fx = Vec::new();
        for conn in senders {
            self.close(
                conn,
                Close {
                    kind: CloseKind::Error,
                    message: format!("could not store the edit ({reason}); reconnect to retry"),
                },
                &mut fx,
            );
        }
        Some(fx)
    }

    /// Time passed: sweeps awareness states not renewed within the timeout
    /// (`now_ms`: the awareness clock, Unix milliseconds) and refuses held
    /// updates that waited too long (at `now`).
    pub fn housekeeping(&mut self, now: Instant, now_ms: u64) -> Vec<Effect> {
        let mut fx = Vec::new();
        let timeout_ms = self.settings.awareness_timeout.as_millis() as u64;
        let stale: Vec<ClientID> = self
            .doc
            .awareness
            .iter()
            .filter(|(_, s)| s.data.is_some() && now_ms.saturating_sub(s.last_updated) > timeout_ms)
            .map(|(id, _)| id)
            .collect();
        for id in &stale {
            remove_awareness_state(&mut self.doc.awareness, *id);
        }
        self.broadcast_awareness(stale, &mut fx);
        let timeout = self.settings.hold.timeout;
        for held in self.held.take_expired(now, timeout) {
            let sender = self.members.contains_key(&held.conn).then_some(held.conn);
            self.refuse(
                sender,
                CloseKind::Invalid,
                "update_held_expired",
                format!(
                    "update follows {} that did not arrive within {timeout:?}",
                    held.needs.describe()
                ),
                &mut fx,
            );
        }
        fx
    }

    /// Brings the document back to a stored state's content with a new edit
    /// (see [`crate::yjs::restore`]); returns the effects and the seq of its
    /// last update (`None` when the content already matched), or why it could
    /// not, in which case the document is as it was.
    pub fn restore_to(&mut self, target: &[u8]) -> Result<(Vec<Effect>, Option<i64>), String> {
        let integrated = self.doc.restore_to(target)?;
        let last = integrated.last().map(|(seq, _)| *seq);
        let mut fx = Vec::new();
        for (seq, update) in integrated {
            self.updates_applied += 1;
            self.accepted(None, seq, update, &mut fx);
        }
        Ok((fx, last))
    }

    /// Folds the durable log into the base; returns the new base and the seq
    /// it covers, or `None` when there was nothing to fold.
    pub fn compact(&mut self) -> Option<(Vec<u8>, i64)> {
        self.doc.compact()
    }

    /// The base as it is (to store again when nothing is new) and the seq it covers.
    pub fn base(&self) -> (Vec<u8>, i64) {
        (self.doc.base.clone(), self.doc.durable_through)
    }

    /// Durable updates not yet folded into the base.
    pub fn durable_in_log(&self) -> usize {
        self.doc.durable_in_log()
    }

    /// Whether the log holds as many bytes as the base (at least 64 KiB):
    /// when a room that stores nothing folds it.
    pub fn log_outgrew_base(&self) -> bool {
        self.doc.log_bytes() >= self.doc.base.len().max(64 << 10)
    }

    /// Highest seq the store holds.
    pub fn durable_through(&self) -> i64 {
        self.doc.durable_through
    }

    /// Approximate encoded size of the document.
    pub fn size(&self) -> usize {
        self.doc.size()
    }

    /// The whole document as one v1 update (the clients' encoding).
    pub fn encode_whole(&self) -> Vec<u8> {
        self.doc.encode_whole()
    }

    /// The document's state vector.
    pub fn state_vector(&self) -> yrs::StateVector {
        self.doc.state_vector()
    }

    /// The root types as JSON (the admin API's view).
    pub fn to_json(&self) -> serde_json::Value {
        self.doc.to_json()
    }

    /// The awareness states.
    pub fn awareness(&self) -> &Awareness {
        &self.doc.awareness
    }

    /// The connection that introduced awareness id `id`.
    pub fn owner(&self, id: ClientID) -> Option<ConnId> {
        self.owners.get(&id).copied()
    }

    /// Awareness client ids `conn` introduced.
    pub fn awareness_clients(&self, conn: ConnId) -> usize {
        self.members.get(&conn).map_or(0, |m| m.clients.len())
    }

    /// Awareness states present.
    pub fn awareness_count(&self) -> usize {
        self.doc
            .awareness
            .iter()
            .filter(|(_, s)| s.data.is_some())
            .count()
    }

    /// Accepted updates waiting for the store.
    pub fn pending_relays(&self) -> usize {
        self.pending.len()
    }

    /// Held updates and their bytes.
    pub fn held(&self) -> (usize, usize) {
        (self.held.len(), self.held.bytes())
    }

    /// Content kept as clients wrote it: units and bytes.
    pub fn kept(&self) -> (usize, usize) {
        self.doc.kept()
    }

    /// Updates applied that changed the document.
    pub fn updates_applied(&self) -> u64 {
        self.updates_applied
    }

    /// Forgets a member and broadcasts the removal of its awareness states.
    fn forget(&mut self, conn: ConnId, fx: &mut Vec<Effect>) {
        let Some(member) = self.members.remove(&conn) else {
            return;
        };
        let ids: Vec<ClientID> = member.clients.into_iter().collect();
        for id in &ids {
            self.owners.remove(id);
            remove_awareness_state(&mut self.doc.awareness, *id);
        }
        info!(parent: &self.span, conn, awareness_ids = ids.len(), "member gone");
        self.broadcast_awareness(ids, fx);
    }

    /// Closes a member: it is forgotten at once.
    fn close(&mut self, conn: ConnId, close: Close, fx: &mut Vec<Effect>) {
        if !self.members.contains_key(&conn) {
            return;
        }
        fx.push(Effect::Close { conn, close });
        self.forget(conn, fx);
    }

    /// Refuses what `sender` sent: logged at warn level with its reason,
    /// counted under `reason`, and the sender (if still connected) closed.
    fn refuse(
        &mut self,
        sender: Option<ConnId>,
        kind: CloseKind,
        reason: &'static str,
        message: String,
        fx: &mut Vec<Effect>,
    ) {
        {
            let _room = self.span.enter();
            let why = match sender {
                Some(conn) => format!("conn {conn} closed with {}: {message}", kind.code()),
                None => format!("sender gone: {message}"),
            };
            crate::metrics::refused(reason, &why);
        }
        if let Some(conn) = sender {
            self.close(conn, Close { kind, message }, fx);
        }
    }

    /// Drops an edit of a read-only member; the first time it sent something
    /// (not the empty step 2 every client sends on connecting), tells it with
    /// the y-protocols auth message "permission denied", which the stock
    /// client logs as a warning. Its awareness is still relayed.
    fn refuse_read_only_edit(&mut self, conn: ConnId, empty: bool, fx: &mut Vec<Effect>) {
        if empty {
            return;
        }
        {
            let _room = self.span.enter();
            crate::metrics::refused(
                "update_refused",
                &format!("conn {conn} is read-only: its edit is dropped"),
            );
        }
        let Some(member) = self.members.get_mut(&conn) else {
            return;
        };
        if std::mem::replace(&mut member.told_read_only, true) {
            return;
        }
        let denied = Message::Auth(Some(
            "read-only access: your edits are not applied nor relayed".to_owned(),
        ));
        fx.push(Effect::Reply {
            to: conn,
            frame: wire::encode(&denied),
        });
    }

    fn broadcast_awareness(&mut self, ids: Vec<ClientID>, fx: &mut Vec<Effect>) {
        if ids.is_empty() {
            return;
        }
        match self.doc.awareness.update_with_clients(ids) {
            Ok(update) => fx.push(Effect::Broadcast(wire::encode(&Message::Awareness(update)))),
            Err(e) => warn!(parent: &self.span, cause = %e, "cannot encode awareness change"),
        }
    }
}
