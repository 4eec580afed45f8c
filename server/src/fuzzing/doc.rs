//! A doc room's core under arbitrary y-websocket frames, with client replicas.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use yrs::block::ClientID;
use yrs::sync::awareness::AwarenessUpdateEntry;
use yrs::sync::{AwarenessUpdate, Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::{
    Array, Doc, Map, OffsetKind, Options, ReadTxn, StateVector, Text, Transact, TransactionMut,
    Update,
};

use super::Ops;
use crate::doc::{CoreSettings, DocCore, Effect, HoldLimits};
use crate::room::ConnId;
use crate::yjs::fidelity::stored_for_yrs;
use crate::yjs::json_view::json_view;
use crate::yjs::wire::{self, Inbound};

/// Clients connected at any time.
const CLIENTS: usize = 3;

/// First client id of the replicas (far from small ids, so that fuzzed
/// updates rarely claim them).
const REPLICA_IDS: u64 = 0x0007_3a5c_91d0;

/// Awareness ids the structured awareness operation picks from, shared by all
/// clients so that they contend for them.
const AWARENESS_IDS: [u64; 4] = [1, 2, 3, 0x1f_ffff_ffff_ffff];

/// Bit 3 of an operation byte (the slot takes bits 4-7, the kind bits 0-2)
/// picks a variant of some kinds.
const VARIANT: u8 = 0x08;

/// Runs the operations `data` encodes against one doc room's core
/// ([`DocCore`], persistence on) with [`CLIENTS`] connected clients, each
/// holding a replica built only from what the room sends it (as a stock
/// y-websocket client does). Operations: arbitrary frames from a client
/// (through [`wire::decode_frame`]), valid edits, edits corrupted by one
/// byte, awareness changes, leaving and reconnecting (or, as a variant,
/// editing offline and typing again before the room's sync step 2 arrives,
/// which the room holds until the client's step 2 fills the gap),
/// compaction (or, as a variant, failing the appends of the next
/// operation: the room rolls them back), awareness queries (or time passing
/// beyond every timeout). Appends are confirmed after each operation unless
/// they were to fail.
///
/// Checked, besides "nothing panics": a refused update leaves the document's
/// encoded state exactly as it was, and closes only its sender; valid edits
/// and sync answers of clients are accepted (never refused, never left
/// waiting); everything the room sends decodes with yrs's own decoder and
/// applies on the replicas; after every operation each replica, and a fresh
/// replica of the whole document, has the room's content; a connection never
/// changes awareness entries another one owns.
pub fn doc_sync(data: &[u8]) {
    let mut ops = Ops::new(data);
    let mut world = World::new();
    while let Some(op) = ops.byte() {
        let slot = usize::from(op >> 4) % CLIENTS;
        let variant = op & VARIANT != 0;
        match op % 8 {
            0 | 1 => {
                let frame = ops.chunk();
                world.send(slot, frame);
            }
            2 => {
                let (kind, at, what) = (ops.u8(), ops.u8(), ops.u8());
                match world.clients[slot].edit(kind, at, what) {
                    Some(update) => {
                        let delivered = world.send(slot, &wire::update_frame(update));
                        assert!(delivered, "a client's valid edit was refused");
                    }
                    // The replica was replaced: it syncs anew.
                    None => world.reconnect(slot),
                }
            }
            3 => {
                let (kind, at, what) = (ops.u8(), ops.u8(), ops.u8());
                let (pos, mask) = (ops.u8(), ops.u8().max(1));
                if let Some(mut update) = world.clients[slot].scratch_edit(kind, at, what) {
                    let i = usize::from(pos) % update.len();
                    update[i] ^= mask;
                    world.send(slot, &wire::update_frame(update));
                }
            }
            4 => {
                let (id, clock, state) = (ops.u8(), ops.u32(), ops.u8());
                let id = ClientID::new(AWARENESS_IDS[usize::from(id) % AWARENESS_IDS.len()]);
                let json: Arc<str> = match state {
                    0 => "null".into(),
                    n => format!("{{\"user\":{n}}}").into(),
                };
                let update = AwarenessUpdate {
                    clients: HashMap::from([(id, AwarenessUpdateEntry { clock, json })]),
                };
                world.send(slot, &wire::encode(&Message::Awareness(update)));
            }
            5 if variant => {
                let edits = [
                    (ops.u8(), ops.u8(), ops.u8()),
                    (ops.u8(), ops.u8(), ops.u8()),
                ];
                world.type_while_reconnecting(slot, edits);
            }
            5 => world.reconnect(slot),
            6 if variant => world.fail_next = true,
            6 => {
                world.room.compact();
            }
            7 if variant => world.pass_time(),
            _ => {
                world.send(slot, &wire::encode(&Message::AwarenessQuery));
            }
        };
        // The operation that asked for a failure is not the one that fails.
        if world.fail_next && !(op % 8 == 6 && variant) {
            world.fail_next = false;
            world.fail_appends();
        } else {
            world.confirm_appends();
        }
        world.check_converged();
    }
}

/// One client: its connection and its replica.
struct Client {
    /// Its current connection (a new one after each reconnect).
    conn: ConnId,
    /// Its replica of the document.
    doc: Doc,
    /// Client id for its next scratch document (corrupted edits).
    next_scratch: u64,
}

/// A document counting offsets in UTF-16 like the room's (and JavaScript's).
fn replica(client_id: u64) -> Doc {
    Doc::with_options(Options {
        offset_kind: OffsetKind::Utf16,
        ..Options::with_client_id(ClientID::new(client_id))
    })
}

impl Client {
    /// Makes an edit on the replica; returns it as an update, or `None` when
    /// yrs panicked on it and the replica was replaced by an empty one.
    fn edit(&mut self, kind: u8, at: u8, what: u8) -> Option<Vec<u8>> {
        let doc = &self.doc;
        // Fuzzed content from other clients may be something yrs's editing
        // API rejects by panicking; that is the client library's business,
        // and the replica is replaced (resynced) if it happens.
        let edited = catch_unwind(AssertUnwindSafe(|| {
            let roots = Roots::of(doc);
            let mut txn = doc.transact_mut();
            apply_edit(&roots, &mut txn, kind, at, what);
            txn.encode_update_v1()
        }));
        match edited {
            Ok(update) => Some(update),
            Err(_) => {
                self.doc = replica(self.doc.client_id().get() + 1000);
                None
            }
        }
    }

    /// An edit made on a copy of the replica (which stays as it is), for
    /// corrupting.
    fn scratch_edit(&mut self, kind: u8, at: u8, what: u8) -> Option<Vec<u8>> {
        self.next_scratch += 1;
        let scratch = replica(self.next_scratch);
        let state = self
            .doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        let update = Update::decode_v1(&state).ok()?;
        let edited = catch_unwind(AssertUnwindSafe(|| {
            scratch.transact_mut().apply_update(update).ok()?;
            let roots = Roots::of(&scratch);
            let mut txn = scratch.transact_mut();
            apply_edit(&roots, &mut txn, kind, at, what);
            Some(txn.encode_update_v1())
        }));
        edited.ok().flatten().filter(|u| !u.is_empty())
    }

    /// Receives a frame from the room; returns the frames it answers with.
    fn receive(&mut self, frame: &[u8]) -> Vec<Bytes> {
        let message = Message::decode_v1(frame)
            .unwrap_or_else(|e| panic!("the room sent a frame yrs cannot decode ({e}): {frame:?}"));
        match message {
            Message::Sync(SyncMessage::SyncStep1(sv)) => {
                let diff = self.doc.transact().encode_state_as_update_v1(&sv);
                vec![wire::encode(&Message::Sync(SyncMessage::SyncStep2(diff)))]
            }
            Message::Sync(SyncMessage::SyncStep2(update) | SyncMessage::Update(update)) => {
                if let Err(why) = crate::yjs::bounds::update_v1(&update) {
                    panic!("the room sent an update its own bounds check refuses: {why}");
                }
                // A JavaScript replica takes every value; yrs is given what
                // it can hold, as the room does.
                let for_yrs = stored_for_yrs(&update)
                    .unwrap_or_else(|e| panic!("the room sent an update that does not walk: {e}"));
                let update = Update::decode_v1(&for_yrs).unwrap_or_else(|e| {
                    panic!("the room sent an update that does not decode: {e}")
                });
                if let Err(e) = self.doc.transact_mut().apply_update(update) {
                    panic!("the room sent an update a replica cannot apply: {e}");
                }
                Vec::new()
            }
            Message::Awareness(_) | Message::Auth(_) | Message::AwarenessQuery => Vec::new(),
            Message::Custom(tag, _) => panic!("the room sent an unknown message type {tag}"),
        }
    }
}

/// The roots clients edit: `t` (text), `m` (map), `a` (array). Declared
/// before a transaction is opened (declaring takes one).
struct Roots {
    text: yrs::TextRef,
    map: yrs::MapRef,
    array: yrs::ArrayRef,
}

impl Roots {
    fn of(doc: &Doc) -> Self {
        Self {
            text: doc.get_or_insert_text("t"),
            map: doc.get_or_insert_map("m"),
            array: doc.get_or_insert_array("a"),
        }
    }
}

/// Edits a root as `kind` says.
fn apply_edit(roots: &Roots, txn: &mut TransactionMut, kind: u8, at: u8, what: u8) {
    let word = ["a", "bc", "déf", "😀", "\n"][usize::from(what) % 5];
    match kind % 6 {
        0 | 1 => {
            let text = &roots.text;
            let len = text.len(txn);
            text.insert(txn, u32::from(at) % (len + 1), word);
        }
        2 => {
            let text = &roots.text;
            let len = text.len(txn);
            if len > 0 {
                let start = u32::from(at) % len;
                text.remove_range(txn, start, (u32::from(what) % 4 + 1).min(len - start));
            }
        }
        3 => {
            roots.map.insert(txn, word, i64::from(at));
        }
        4 => {
            roots.map.remove(txn, word);
        }
        _ => {
            let array = &roots.array;
            let len = array.len(txn);
            if what.is_multiple_of(2) || len == 0 {
                array.insert(txn, u32::from(at) % (len + 1), word);
            } else {
                array.remove_range(txn, u32::from(at) % len, 1);
            }
        }
    }
}

/// The room, its clients, and the checks.
struct World {
    /// The room's core.
    room: DocCore,
    /// The connected clients.
    clients: Vec<Client>,
    /// Next connection id.
    next_conn: ConnId,
    /// The room's clock (advanced by hand).
    now: Instant,
    /// The awareness clock, Unix milliseconds (advanced by hand).
    now_ms: u64,
    /// Seqs appended and not yet confirmed.
    appended: Vec<i64>,
    /// Connections the room closed during the current operation.
    closed: Vec<ConnId>,
    /// The appends of the next operation fail.
    fail_next: bool,
}

impl World {
    fn new() -> Self {
        let settings = CoreSettings {
            max_doc_bytes: 64 << 20,
            awareness_timeout: Duration::from_secs(30),
            hold: HoldLimits::default(),
            persistent: true,
        };
        let mut world = Self {
            room: DocCore::new(settings, tracing::Span::none()),
            clients: Vec::new(),
            next_conn: 1,
            now: Instant::now(),
            now_ms: 1_000_000,
            appended: Vec::new(),
            closed: Vec::new(),
            fail_next: false,
        };
        for slot in 0..CLIENTS {
            world.clients.push(Client {
                conn: 0,
                doc: replica(REPLICA_IDS + slot as u64),
                next_scratch: 10_000 * (slot as u64 + 1),
            });
            world.connect(slot);
        }
        world
    }

    /// The slot of connection `conn`.
    fn slot_of(&self, conn: ConnId) -> Option<usize> {
        self.clients.iter().position(|c| c.conn == conn)
    }

    /// Carries out the room's effects; connections it closes are recorded.
    fn run(&mut self, effects: Vec<Effect>) {
        let mut queue: VecDeque<Effect> = effects.into();
        while let Some(effect) = queue.pop_front() {
            match effect {
                Effect::Reply { to, frame } => {
                    if let Some(slot) = self.slot_of(to) {
                        self.deliver(slot, &frame);
                    }
                }
                Effect::Broadcast(frame) => self.broadcast(&frame, None),
                Effect::Append { seq, .. } => self.appended.push(seq),
                Effect::Close { conn, .. } => self.closed.push(conn),
            }
        }
    }

    /// Closed clients reconnect.
    fn reconnect_closed(&mut self) {
        while let Some(conn) = self.closed.pop() {
            if let Some(slot) = self.slot_of(conn) {
                self.connect(slot);
            }
        }
    }

    /// The store confirms every append so far.
    fn confirm_appends(&mut self) {
        if let Some(&last) = self.appended.iter().max() {
            self.appended.clear();
            let effects = self.room.durable(last);
            self.run(effects);
        }
        self.reconnect_closed();
    }

    /// The store fails the appends not confirmed yet: the room rolls them
    /// back and closes their senders, which reconnect and send them again.
    fn fail_appends(&mut self) {
        let Some(&first) = self.appended.iter().min() else {
            return;
        };
        self.appended.clear();
        if let Some(effects) = self.room.storage_failed(first, "the fuzzer failed it") {
            if tracing_messages() {
                eprintln!("appends from seq {first} failed -> {effects:?}");
            }
            self.run(effects);
        }
        // The closed senders reconnect and send their edits again, which
        // are stored this time.
        self.reconnect_closed();
        self.confirm_appends();
    }

    /// Time passes beyond every timeout: stale awareness is swept and held
    /// updates are refused.
    fn pass_time(&mut self) {
        self.now += Duration::from_secs(60);
        self.now_ms += 60_000;
        let effects = self.room.housekeeping(self.now, self.now_ms);
        self.run(effects);
        self.reconnect_closed();
    }

    /// Connects the client in `slot` anew: the room greets it, it answers and
    /// sends its own sync step 1, as the stock client does.
    fn connect(&mut self, slot: usize) {
        let conn = self.next_conn;
        self.next_conn += 1;
        self.clients[slot].conn = conn;
        let greeting = self.room.join(conn, false);
        self.run(greeting);
        let sv = self.clients[slot].doc.transact().state_vector();
        let step1 = wire::encode(&Message::Sync(SyncMessage::SyncStep1(sv)));
        assert!(
            self.send(slot, &step1),
            "a client's sync step 1 was refused"
        );
    }

    /// The client in `slot` leaves and connects again.
    fn reconnect(&mut self, slot: usize) {
        let gone = self.room.leave(self.clients[slot].conn);
        self.clients[slot].conn = 0;
        self.run(gone);
        self.connect(slot);
    }

    /// The client in `slot` leaves, edits offline, connects again and edits
    /// once more right after its sync step 1, before the room's greeting (its
    /// sync step 1) reaches it: that edit follows the offline one, which the
    /// room does not have yet, so the room holds it until the client's step 2
    /// (its answer to the greeting) brings the offline edit.
    fn type_while_reconnecting(&mut self, slot: usize, edits: [(u8, u8, u8); 2]) {
        let gone = self.room.leave(self.clients[slot].conn);
        self.clients[slot].conn = 0;
        self.run(gone);
        let (kind, at, what) = edits[0];
        if self.clients[slot].edit(kind, at, what).is_none() {
            return self.connect(slot);
        }
        let conn = self.next_conn;
        self.next_conn += 1;
        self.clients[slot].conn = conn;
        let greeting = self.room.join(conn, false);
        let sv = self.clients[slot].doc.transact().state_vector();
        let step1 = wire::encode(&Message::Sync(SyncMessage::SyncStep1(sv)));
        assert!(
            self.send(slot, &step1),
            "a client's sync step 1 was refused"
        );
        let (kind, at, what) = edits[1];
        match self.clients[slot].edit(kind, at, what) {
            Some(update) => {
                let delivered = self.send(slot, &wire::update_frame(update));
                assert!(delivered, "an edit typed while reconnecting was refused");
            }
            None => return self.reconnect(slot),
        }
        // The greeting arrives; the client answers with its step 2, which
        // lets the room integrate the held edit (the convergence check after
        // the operation fails if it still waits).
        self.run(greeting);
        self.reconnect_closed();
    }

    /// The room's frame to one client; its answers go back to the room.
    fn deliver(&mut self, slot: usize, frame: &[u8]) {
        for answer in self.clients[slot].receive(frame) {
            assert!(
                self.send(slot, &answer),
                "a client's sync answer was refused"
            );
        }
    }

    /// A frame to every connected client (but `except`).
    fn broadcast(&mut self, frame: &[u8], except: Option<usize>) {
        for slot in 0..CLIENTS {
            if Some(slot) != except && self.room.is_member(self.clients[slot].conn) {
                self.deliver(slot, frame);
            }
        }
    }

    /// Awareness entries owned by connections other than `conn`.
    fn others_awareness(&self, conn: ConnId) -> Vec<(ClientID, u32, Option<Arc<str>>)> {
        let mut entries: Vec<_> = self
            .room
            .awareness()
            .iter()
            .filter(|(id, _)| self.room.owner(*id).is_some_and(|owner| owner != conn))
            .map(|(id, s)| (id, s.clock, s.data))
            .collect();
        entries.sort_by_key(|(id, _, _)| id.get());
        entries
    }

    /// The client in `slot` sends `frame`; returns whether its connection
    /// stays open (a refused frame closes it, and it reconnects).
    fn send(&mut self, slot: usize, frame: &[u8]) -> bool {
        let conn = self.clients[slot].conn;
        let messages = match wire::decode_frame(frame) {
            Ok(messages) => messages,
            Err(_) => {
                self.reconnect(slot);
                return false;
            }
        };
        for message in messages {
            let is_update = matches!(message, Inbound::Update(_));
            let doc_before = self.room.encode_whole();
            let others = self.others_awareness(conn);
            let shown = format!("{message:?}");
            let effects = self.room.handle(conn, vec![message], self.now);
            if tracing_messages() {
                eprintln!("conn {conn}: {shown} -> {effects:?}");
            }
            assert_eq!(
                self.others_awareness(conn),
                others,
                "a connection changed awareness entries another one owns"
            );
            let refused = effects
                .iter()
                .any(|e| matches!(e, Effect::Close { conn: c, .. } if *c == conn));
            if refused && is_update {
                let doc_after = self.room.encode_whole();
                // A rollback rebuilds the document, which may split or
                // merge blocks differently: compare what the encoding says.
                if doc_after != doc_before {
                    let (before, after) = (meaning(&doc_before), meaning(&doc_after));
                    assert_eq!(before, after, "a refused update changed the document");
                }
            }
            self.run(effects);
            if refused || !self.room.is_member(conn) {
                self.closed.retain(|c| *c != conn);
                self.reconnect_closed();
                self.connect(slot);
                return false;
            }
        }
        true
    }

    /// Every replica, and a fresh replica of the whole document, shows the
    /// room's content.
    fn check_converged(&self) {
        let fresh = fresh_view(&self.room.encode_whole());
        let (room_sv, room_content) = (clocks(&self.room.state_vector()), self.room.to_json());
        assert_eq!(fresh.0, room_sv, "a fresh replica's state vector");
        assert_eq!(fresh.1, room_content, "a fresh replica's content");
        for client in &self.clients {
            let state = client
                .doc
                .transact()
                .encode_state_as_update_v1(&StateVector::default());
            let (sv, content) = fresh_view(&state);
            assert_eq!(sv, room_sv, "client {}'s state vector", client.conn);
            assert_eq!(content, room_content, "client {}'s content", client.conn);
        }
    }
}

/// A state vector's non-zero clocks by client (a client at clock 0 is one
/// nothing is known of, whether listed or not).
fn clocks(sv: &StateVector) -> BTreeMap<u64, u32> {
    sv.iter()
        .filter(|(_, clock)| **clock > 0)
        .map(|(client, clock)| (client.get(), *clock))
        .collect()
}

/// What an encoded document says (see [`meaning`]).
type Meaning = (
    serde_json::Value,
    BTreeMap<u64, u32>,
    BTreeMap<u64, Vec<(u32, u32)>>,
);

/// What an encoded document says: the content a fresh replica shows, its
/// state vector, and every deleted id (merged into ranges).
fn meaning(state: &[u8]) -> Meaning {
    let (clocks, content) = fresh_view(state);
    let for_yrs = stored_for_yrs(state).expect("an encoded document walks");
    let update = Update::decode_v1(&for_yrs).expect("an encoded document decodes");
    let mut deleted = BTreeMap::new();
    for (client, ranges) in update.delete_set().iter() {
        let mut ranges: Vec<(u32, u32)> = ranges.iter().map(|r| (r.start, r.end)).collect();
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::new();
        for (start, end) in ranges {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        deleted.insert(client.get(), merged);
    }
    (content, clocks, deleted)
}

/// State vector and content of a new document loaded from `state` (roots
/// undeclared, as in the room, so both infer their types alike).
fn fresh_view(state: &[u8]) -> (BTreeMap<u64, u32>, serde_json::Value) {
    let doc = replica(1);
    let for_yrs = stored_for_yrs(state).expect("an encoded document walks");
    let update = Update::decode_v1(&for_yrs).expect("an encoded document decodes");
    doc.transact_mut()
        .apply_update(update)
        .expect("an encoded document applies");
    let txn = doc.transact();
    (
        clocks(&txn.state_vector()),
        json_view(&txn, OffsetKind::Utf16),
    )
}

/// Whether `ROOMCAST_FUZZ_TRACE` is set: each message and the room's answer
/// are printed (to triage a failing input).
fn tracing_messages() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("ROOMCAST_FUZZ_TRACE").is_some())
}
