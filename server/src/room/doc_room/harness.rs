//! A doc room's document and awareness without the actor: the same [`DocState`]
//! (apply with rollback, whole-document encoding) and the same awareness
//! ownership rule ([`retain_owned`]), driven by plain calls, so the fuzz targets
//! and their regression tests exercise the room's own code. Not a stable API.
//!
//! [`DocHarness::handle`] follows `DocRoom::handle_messages` message by message
//! (no read-only members, no size limit, no persistence: updates are relayed at
//! once); keep the two in step.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use yrs::block::ClientID;
use yrs::sync::{Awareness, Message, SyncMessage};
use yrs::{ReadTxn, Transact};

use super::{remove_awareness_state, retain_owned, DocState};
use crate::room::ConnId;
use crate::yjs::wire::{self, Inbound};

/// A frame the room sends in answer to a member's messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// To the sender only.
    Reply(Bytes),
    /// To every member, the sender included.
    Broadcast(Bytes),
}

/// One doc room's state and its members' awareness ownership.
pub struct DocHarness {
    /// The document, its update log and awareness, as the room holds them.
    state: DocState,
    /// Awareness client id → the connection that introduced it.
    owners: HashMap<ClientID, ConnId>,
    /// Connected members and the awareness ids each introduced.
    members: HashMap<ConnId, HashSet<ClientID>>,
}

impl Default for DocHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl DocHarness {
    /// An empty document with no members.
    pub fn new() -> Self {
        Self {
            state: DocState::empty(),
            owners: HashMap::new(),
            members: HashMap::new(),
        }
    }

    /// A member joins; returns its greeting frames (sync step 1, awareness).
    pub fn join(&mut self, conn: ConnId) -> Vec<Bytes> {
        self.members.insert(conn, HashSet::new());
        wire::greeting(&self.state.awareness)
    }

    /// A member leaves (or is closed): its awareness states are removed; returns
    /// the frames broadcast to the others.
    pub fn leave(&mut self, conn: ConnId) -> Vec<Bytes> {
        let Some(clients) = self.members.remove(&conn) else {
            return Vec::new();
        };
        let ids: Vec<ClientID> = clients.into_iter().collect();
        for id in &ids {
            self.owners.remove(id);
            remove_awareness_state(&mut self.state.awareness, *id);
        }
        self.awareness_frame(ids).into_iter().collect()
    }

    /// Handles one frame's decoded messages from `conn` as the room does; an
    /// error is what closes the sender (1007), with the document as it was
    /// before the refused update.
    pub fn handle(&mut self, conn: ConnId, messages: Vec<Inbound>) -> Result<Vec<Sent>, String> {
        let mut sent = Vec::new();
        for message in messages {
            match message {
                Inbound::SyncStep1(sv) => {
                    let diff = self
                        .state
                        .awareness
                        .doc()
                        .transact()
                        .encode_state_as_update_v1(&sv);
                    sent.push(Sent::Reply(wire::encode(&Message::Sync(
                        SyncMessage::SyncStep2(diff),
                    ))));
                }
                Inbound::Update { update, shape, .. } => {
                    let integrated = self
                        .state
                        .apply(update, &shape)
                        .map_err(|why| format!("update does not apply: {why}"))?;
                    for (seq, update) in integrated {
                        self.state.durable_through = seq;
                        sent.push(Sent::Broadcast(wire::update_frame(update.to_vec())));
                    }
                }
                Inbound::Awareness(mut update) => {
                    let introduced = retain_owned(&mut self.owners, conn, &mut update);
                    if let Some(clients) = self.members.get_mut(&conn) {
                        clients.extend(introduced);
                    }
                    if update.clients.is_empty() {
                        continue;
                    }
                    match self.state.awareness.apply_update_summary(update) {
                        Ok(Some(summary)) => {
                            let mut ids = summary.added;
                            ids.extend(summary.updated);
                            ids.extend(summary.removed);
                            sent.extend(self.awareness_frame(ids).map(Sent::Broadcast));
                        }
                        Ok(None) => {}
                        Err(e) => return Err(format!("bad awareness update: {e}")),
                    }
                }
                Inbound::AwarenessQuery => {
                    if let Ok(update) = self.state.awareness.update() {
                        sent.push(Sent::Reply(wire::encode(&Message::Awareness(update))));
                    }
                }
                Inbound::Ignored => {}
            }
        }
        Ok(sent)
    }

    /// The awareness broadcast for `ids`, as the room encodes it.
    fn awareness_frame(&self, ids: Vec<ClientID>) -> Option<Bytes> {
        if ids.is_empty() {
            return None;
        }
        let update = self.state.awareness.update_with_clients(ids).ok()?;
        Some(wire::encode(&Message::Awareness(update)))
    }

    /// The whole document as one v1 update (what a lagging member is sent).
    pub fn encode_whole(&self) -> Vec<u8> {
        self.state.encode_whole()
    }

    /// The document's state vector.
    pub fn state_vector(&self) -> yrs::StateVector {
        self.state.awareness.doc().transact().state_vector()
    }

    /// The root types as JSON (the admin API's view).
    pub fn content(&self) -> serde_json::Value {
        self.state.to_json()
    }

    /// The awareness states.
    pub fn awareness(&self) -> &Awareness {
        &self.state.awareness
    }

    /// The connection that introduced awareness id `id`.
    pub fn owner(&self, id: ClientID) -> Option<ConnId> {
        self.owners.get(&id).copied()
    }

    /// Folds the log into the base as the room does once updates are durable.
    pub fn compact(&mut self) {
        self.state.compact();
    }
}
