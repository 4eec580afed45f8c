//! The room registry: room key → room actor. It creates a room on first join,
//! places it on the least-loaded arbiter of its pool (one arbiter per core by
//! default), and forgets it when the room stops. Every room lookup in the server
//! goes through here, which keeps room ownership in one place.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime};

use actix::{Actor, Addr};
use actix_rt::{Arbiter, ArbiterHandle};
use std::sync::atomic::{AtomicU64, Ordering};
use tracing::info;

use super::{
    doc_room::{DocRoom, DocSettings},
    game::GameRoom,
    messages::{StopRoom, TakeSnapshot},
    RoomId, RoomName,
};
use crate::game::GameEntry;
use crate::persist::Persistence;
use crate::store::SnapshotMeta;

/// Identifies a room across kinds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RoomKey {
    /// A game room: `/game/{game}/{room}`.
    Game {
        /// Game name.
        game: String,
        /// Room name.
        room: RoomName,
    },
    /// A doc room: `/doc/{name}`.
    Doc {
        /// Document name.
        name: RoomName,
    },
}

impl RoomKey {
    /// The room name part of the key.
    pub fn room(&self) -> &str {
        match self {
            RoomKey::Game { room, .. } => room.as_str(),
            RoomKey::Doc { name } => name.as_str(),
        }
    }

    /// The game name (empty for doc rooms).
    pub fn game(&self) -> &str {
        match self {
            RoomKey::Game { game, .. } => game,
            RoomKey::Doc { .. } => "",
        }
    }

    /// `"game"` or `"doc"`.
    pub fn kind(&self) -> &'static str {
        match self {
            RoomKey::Game { .. } => "game",
            RoomKey::Doc { .. } => "doc",
        }
    }
}

impl fmt::Display for RoomKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoomKey::Game { game, room } => write!(f, "game/{game}/{room}"),
            RoomKey::Doc { name } => write!(f, "doc/{name}"),
        }
    }
}

/// Settings every room is created with (per-game ones live in the game catalog).
#[derive(Debug, Clone)]
pub struct RoomSettings {
    /// An empty room stops after this long.
    pub idle_timeout: Duration,
    /// A member whose outbox stays full this long is disconnected (1008).
    pub lag_timeout: Duration,
    /// How many recent published states a game room keeps (resume deltas, inspection).
    pub history_ticks: usize,
}

/// The address of a room actor, of either kind.
#[derive(Clone)]
pub enum RoomAddr {
    /// A game room.
    Game(Addr<GameRoom>),
    /// A doc room.
    Doc(Addr<DocRoom>),
}

impl RoomAddr {
    /// True while the actor can still receive messages.
    pub fn connected(&self) -> bool {
        match self {
            RoomAddr::Game(a) => a.connected(),
            RoomAddr::Doc(a) => a.connected(),
        }
    }

    /// The game room's address, if this is one.
    pub fn game(&self) -> Option<&Addr<GameRoom>> {
        match self {
            RoomAddr::Game(a) => Some(a),
            RoomAddr::Doc(_) => None,
        }
    }

    /// The doc room's address, if this is one.
    pub fn doc(&self) -> Option<&Addr<DocRoom>> {
        match self {
            RoomAddr::Doc(a) => Some(a),
            RoomAddr::Game(_) => None,
        }
    }

    /// Takes a snapshot now; `Err` with a reason if the room cannot or stopped.
    pub async fn take_snapshot(&self) -> Result<SnapshotMeta, String> {
        let answer = match self {
            RoomAddr::Game(a) => a.send(TakeSnapshot).await,
            RoomAddr::Doc(a) => a.send(TakeSnapshot).await,
        };
        answer.map_err(|_| "the room stopped while answering".to_owned())?
    }

    /// Asks the room to stop (it snapshots first), and waits until it has.
    pub async fn stop(&self) {
        match self {
            RoomAddr::Game(a) => {
                let _ = a.send(StopRoom).await;
            }
            RoomAddr::Doc(a) => {
                let _ = a.send(StopRoom).await;
            }
        }
    }
}

/// A registered room.
#[derive(Clone)]
struct RoomSlot {
    /// The room's lifetime id.
    id: RoomId,
    /// Index of the arbiter it runs on.
    arbiter: usize,
    /// Its address.
    addr: RoomAddr,
    /// When it was created.
    created_at: SystemTime,
}

/// A registered room, as listed by [`RoomRegistry::rooms`].
#[derive(Clone)]
pub struct RoomEntry {
    /// Key.
    pub key: RoomKey,
    /// Lifetime id.
    pub id: RoomId,
    /// Index of the arbiter (room thread) it runs on.
    pub arbiter: usize,
    /// Address of the room actor.
    pub addr: RoomAddr,
    /// When the room was created.
    pub created_at: SystemTime,
}

/// Room key → room actor, and the arbiter pool rooms run on.
pub struct RoomRegistry {
    /// Live rooms.
    rooms: Mutex<HashMap<RoomKey, RoomSlot>>,
    /// Room threads; rooms are spread over them.
    arbiters: Vec<ArbiterHandle>,
    /// Owned arbiters, stopped at shutdown.
    owned_arbiters: Mutex<Vec<Arbiter>>,
    /// Settings for new rooms.
    settings: RoomSettings,
    /// Next room lifetime id.
    next_id: AtomicU64,
    /// The store's writers, set once the store is open (`None`: nothing persists).
    persistence: RwLock<Option<Arc<Persistence>>>,
}

impl RoomRegistry {
    /// A registry with `threads` room arbiters. Must be called inside an actix
    /// system (the arbiters register with it).
    pub fn new(threads: usize, settings: RoomSettings) -> Arc<Self> {
        let owned: Vec<Arbiter> = (0..threads.max(1)).map(|_| Arbiter::new()).collect();
        Arc::new(Self {
            rooms: Mutex::new(HashMap::new()),
            arbiters: owned.iter().map(|a| a.handle()).collect(),
            owned_arbiters: Mutex::new(owned),
            settings,
            next_id: AtomicU64::new(1),
            persistence: RwLock::new(None),
        })
    }

    /// Rooms created from now on persist through `persistence`.
    pub fn set_persistence(&self, persistence: Arc<Persistence>) {
        *self.persistence.write().unwrap_or_else(|p| p.into_inner()) = Some(persistence);
    }

    /// Drops the registry's handle to the writers (at shutdown, after the rooms).
    pub fn clear_persistence(&self) {
        *self.persistence.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The writers rooms persist through, if persistence is on.
    pub fn persistence(&self) -> Option<Arc<Persistence>> {
        self.persistence
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RoomKey, RoomSlot>> {
        // A poisoned lock only means another thread panicked while holding it; the
        // map itself is always left consistent (single inserts/removes).
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The game room for `room`, created (on the least-loaded arbiter) if absent.
    pub fn game_room(self: &Arc<Self>, game: &GameEntry, room: &RoomName) -> Addr<GameRoom> {
        let key = RoomKey::Game {
            game: game.name.to_string(),
            room: room.clone(),
        };
        let addr = self.get_or_create(key, |registry, arbiter, id, key| {
            let (entry, settings) = (game.clone(), registry.settings.clone());
            let registry = registry.clone();
            RoomAddr::Game(GameRoom::start_in_arbiter(arbiter, move |_| {
                GameRoom::new(id, key, entry, settings, registry)
            }))
        });
        // Cannot fail: a game key only ever maps to a game room.
        addr.game().expect("game key holds a game room").clone()
    }

    /// The doc room for `name`, created (on the least-loaded arbiter) if absent.
    pub fn doc_room(
        self: &Arc<Self>,
        name: &RoomName,
        doc_settings: &DocSettings,
    ) -> Addr<DocRoom> {
        let key = RoomKey::Doc { name: name.clone() };
        let addr = self.get_or_create(key, |registry, arbiter, id, key| {
            let (settings, doc_settings) = (registry.settings.clone(), doc_settings.clone());
            let registry = registry.clone();
            RoomAddr::Doc(DocRoom::start_in_arbiter(arbiter, move |_| {
                DocRoom::new(id, key, settings, doc_settings, registry)
            }))
        });
        // Cannot fail: a doc key only ever maps to a doc room.
        addr.doc().expect("doc key holds a doc room").clone()
    }

    /// The live room under `key`, or a new one made by `start` on the
    /// least-loaded arbiter.
    fn get_or_create(
        self: &Arc<Self>,
        key: RoomKey,
        start: impl FnOnce(&Arc<Self>, &ArbiterHandle, RoomId, RoomKey) -> RoomAddr,
    ) -> RoomAddr {
        let mut rooms = self.lock();
        if let Some(slot) = rooms.get(&key) {
            if slot.addr.connected() {
                return slot.addr.clone();
            }
        }
        let arbiter = self.least_loaded_arbiter(&rooms);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let addr = start(self, &self.arbiters[arbiter], id, key.clone());
        info!(%key, room_id = id, arbiter, "room created");
        crate::metrics::room_alive(key.kind(), key.game(), 1.0);
        rooms.insert(
            key,
            RoomSlot {
                id,
                arbiter,
                addr: addr.clone(),
                created_at: SystemTime::now(),
            },
        );
        addr
    }

    fn least_loaded_arbiter(&self, rooms: &HashMap<RoomKey, RoomSlot>) -> usize {
        let mut load = vec![0usize; self.arbiters.len()];
        for slot in rooms.values() {
            load[slot.arbiter] += 1;
        }
        load.iter()
            .enumerate()
            .min_by_key(|(_, n)| **n)
            .map(|(i, _)| i)
            .unwrap_or(0)
    }

    /// Unregisters a stopped room, unless the key already belongs to a successor.
    pub fn forget(&self, key: &RoomKey, id: RoomId) {
        let mut rooms = self.lock();
        if rooms.get(key).is_some_and(|slot| slot.id == id) {
            rooms.remove(key);
        }
        // Every created room is counted once and forgotten exactly once (by id).
        crate::metrics::room_alive(key.kind(), key.game(), -1.0);
    }

    /// The live room under `key`, if any.
    pub fn get(&self, key: &RoomKey) -> Option<RoomEntry> {
        self.lock().get(key).map(|s| RoomEntry {
            key: key.clone(),
            id: s.id,
            arbiter: s.arbiter,
            addr: s.addr.clone(),
            created_at: s.created_at,
        })
    }

    /// Whether a room may be created for `key`: it exists already, or fewer than
    /// `max` rooms are live.
    pub fn has_room_for(&self, key: &RoomKey, max: usize) -> bool {
        let rooms = self.lock();
        rooms.contains_key(key) || rooms.len() < max
    }

    /// Every live room, sorted by key.
    pub fn rooms(&self) -> Vec<RoomEntry> {
        let mut list: Vec<RoomEntry> = self
            .lock()
            .iter()
            .map(|(k, s)| RoomEntry {
                key: k.clone(),
                id: s.id,
                arbiter: s.arbiter,
                addr: s.addr.clone(),
                created_at: s.created_at,
            })
            .collect();
        list.sort_by(|a, b| a.key.cmp(&b.key));
        list
    }

    /// Number of room threads.
    pub fn arbiter_count(&self) -> usize {
        self.arbiters.len()
    }

    /// Stops every room (each flushes on its way out), then the room threads.
    pub async fn shutdown(&self) {
        for room in self.rooms() {
            room.addr.stop().await;
        }
        let arbiters: Vec<Arbiter> = std::mem::take(
            &mut *self
                .owned_arbiters
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for arbiter in &arbiters {
            arbiter.stop();
        }
        // Joining blocks; do it off the async thread.
        let _ = tokio::task::spawn_blocking(move || {
            for arbiter in arbiters {
                let _ = arbiter.join();
            }
        })
        .await;
    }
}
