//! Game logic is pluggable: the [`Game`] trait is what a game implements (state,
//! input, fixed-dt tick, join/leave hooks, the entities it publishes), and the
//! [`GameCatalog`] maps game names (the `{game}` of `/game/{game}/{room}`) to games
//! and their per-game settings. Rooms only ever see a [`GameInstance`], the
//! object-safe face of a typed game plus its state, so the room actor is written
//! once for every game. Delta sync is generic (see `roomcast_protocol::state`): a
//! game only lists its entities.

pub mod arena;
pub mod counter;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use roomcast_protocol::state::EntityTable;
use serde::{de::DeserializeOwned, Serialize};

/// A player's id within one room; the first player gets 1.
pub type PlayerId = u32;

/// Default ticks per second of a game that does not say otherwise.
pub const DEFAULT_TICK_RATE_HZ: u16 = 30;
/// Allowed tick rates.
pub const TICK_RATE_RANGE: std::ops::RangeInclusive<u16> = 1..=120;
/// Default time between two snapshots of a game room.
pub const DEFAULT_SNAPSHOT_INTERVAL: Duration = Duration::from_secs(10);
/// Default most members of one game room.
pub const DEFAULT_MAX_MEMBERS: usize = 64;
/// Default time a disconnected player may take to resume.
pub const DEFAULT_RESUME_GRACE: Duration = Duration::from_secs(10);

/// A server-authoritative game. One value of the implementing type serves every
/// room of that game (it holds configuration, not room state); each room has its
/// own [`Game::State`].
pub trait Game: Send + Sync + 'static {
    /// The whole simulation state of one room. It is persisted in snapshots
    /// (encoded with the wire codec), so it must round-trip through serde.
    type State: Serialize + DeserializeOwned + Send + 'static;
    /// What a player sends, decoded from [`roomcast_protocol::Input::payload`].
    type Input: DeserializeOwned + Send + 'static;
    /// What the state is published as, one value per entity id.
    type Entity: Serialize;

    /// The state of a new room.
    fn new_state(&self) -> Self::State;

    /// Ticks per second unless the operator overrides it.
    fn default_tick_rate_hz(&self) -> u16 {
        DEFAULT_TICK_RATE_HZ
    }

    /// Version of [`Game::State`]'s persisted format. Bump it on an incompatible
    /// change: snapshots of another version are not restored.
    fn state_format_version(&self) -> u32 {
        1
    }

    /// Whether a new room of this game restores the latest snapshot of its name.
    /// Default: yes.
    fn restores_snapshots(&self) -> bool {
        true
    }

    /// Refuses an input that decoded but is not acceptable (the connection is
    /// closed with 1007 and the reason). Default: everything that decodes is fine.
    fn check_input(&self, _input: &Self::Input) -> Result<(), String> {
        Ok(())
    }

    /// A new player joined.
    fn player_joined(&self, state: &mut Self::State, player: PlayerId);

    /// The player's connection dropped; it may resume within the grace period.
    /// Its entity stays; the game decides what it does meanwhile. Default: nothing.
    fn player_disconnected(&self, _state: &mut Self::State, _player: PlayerId) {}

    /// A disconnected player resumed. Default: nothing.
    fn player_resumed(&self, _state: &mut Self::State, _player: PlayerId) {}

    /// The player is gone for good (left, or its grace period ran out).
    fn player_left(&self, state: &mut Self::State, player: PlayerId);

    /// Applies one input; called at the start of a tick, in arrival order, for
    /// every input received since the previous tick.
    fn apply_input(&self, state: &mut Self::State, player: PlayerId, seq: u32, input: Self::Input);

    /// Advances the simulation by `dt` seconds (always `1 / tick rate`).
    fn tick(&self, state: &mut Self::State, dt: f32);

    /// Calls `emit` once per entity of the state, with its id.
    fn entities(&self, state: &Self::State, emit: &mut dyn FnMut(u32, &Self::Entity));
}

/// Why an input was refused; the sender is closed with 1007.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The payload is not the game's input type.
    #[error("input payload does not decode: {0}")]
    Decode(#[from] roomcast_protocol::CodecError),
    /// The game refused the decoded input.
    #[error("input refused: {0}")]
    Refused(String),
}

/// Object-safe face of one room's game: a typed [`Game`], its state, and the
/// inputs queued for the next tick.
pub trait GameInstance: Send {
    /// Decodes and checks an input and queues it for the next tick.
    fn queue_input(&mut self, player: PlayerId, seq: u32, payload: &[u8])
        -> Result<(), InputError>;
    /// Applies the queued inputs, then advances the simulation by `dt`.
    fn step(&mut self, dt: f32);
    /// See [`Game::player_joined`].
    fn player_joined(&mut self, player: PlayerId);
    /// See [`Game::player_disconnected`].
    fn player_disconnected(&mut self, player: PlayerId);
    /// See [`Game::player_resumed`].
    fn player_resumed(&mut self, player: PlayerId);
    /// See [`Game::player_left`]; also drops the player's queued inputs.
    fn player_left(&mut self, player: PlayerId);
    /// Encodes every entity into a fresh table.
    fn publish(&self) -> EntityTable;
    /// The whole state as JSON (through its serde implementation), for operators.
    fn state_json(&self) -> serde_json::Value;
    /// The state encoded for a snapshot.
    fn encode_state(&self) -> Result<Vec<u8>, roomcast_protocol::CodecError>;
    /// Replaces the state with a decoded snapshot (queued inputs are dropped).
    fn restore_state(&mut self, bytes: &[u8]) -> Result<(), roomcast_protocol::CodecError>;
    /// See [`Game::state_format_version`].
    fn state_format_version(&self) -> u32;
    /// See [`Game::restores_snapshots`].
    fn restores_snapshots(&self) -> bool;
}

/// Pairs a typed game with one room's state.
struct TypedInstance<G: Game> {
    /// The shared game (configuration and rules).
    game: Arc<G>,
    /// This room's state.
    state: G::State,
    /// Inputs received since the last tick, in arrival order.
    queued: Vec<(PlayerId, u32, G::Input)>,
}

impl<G: Game> GameInstance for TypedInstance<G> {
    fn queue_input(
        &mut self,
        player: PlayerId,
        seq: u32,
        payload: &[u8],
    ) -> Result<(), InputError> {
        let input: G::Input = roomcast_protocol::codec::decode(payload)?;
        self.game.check_input(&input).map_err(InputError::Refused)?;
        self.queued.push((player, seq, input));
        Ok(())
    }

    fn step(&mut self, dt: f32) {
        for (player, seq, input) in self.queued.drain(..) {
            self.game.apply_input(&mut self.state, player, seq, input);
        }
        self.game.tick(&mut self.state, dt);
    }

    fn player_joined(&mut self, player: PlayerId) {
        self.game.player_joined(&mut self.state, player);
    }

    fn player_disconnected(&mut self, player: PlayerId) {
        self.game.player_disconnected(&mut self.state, player);
    }

    fn player_resumed(&mut self, player: PlayerId) {
        self.game.player_resumed(&mut self.state, player);
    }

    fn player_left(&mut self, player: PlayerId) {
        self.queued.retain(|(p, _, _)| *p != player);
        self.game.player_left(&mut self.state, player);
    }

    fn encode_state(&self) -> Result<Vec<u8>, roomcast_protocol::CodecError> {
        roomcast_protocol::codec::encode(&self.state)
    }

    fn restore_state(&mut self, bytes: &[u8]) -> Result<(), roomcast_protocol::CodecError> {
        self.state = roomcast_protocol::codec::decode(bytes)?;
        self.queued.clear();
        Ok(())
    }

    fn state_format_version(&self) -> u32 {
        self.game.state_format_version()
    }

    fn state_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.state)
            .unwrap_or_else(|e| serde_json::json!({ "error": format!("state is not JSON: {e}") }))
    }

    fn restores_snapshots(&self) -> bool {
        self.game.restores_snapshots()
    }

    fn publish(&self) -> EntityTable {
        let mut table = EntityTable::new();
        let mut buf = Vec::with_capacity(64);
        self.game.entities(&self.state, &mut |id, entity| {
            buf.clear();
            // Cannot fail for serde types with known lengths; a game whose entity
            // does not encode is a programming error caught by its own tests.
            roomcast_protocol::codec::encode_into(entity, &mut buf)
                .expect("game entity must encode with the wire codec");
            table.insert(id, Bytes::copy_from_slice(&buf));
        });
        table
    }
}

/// Per-game settings a room is created with.
#[derive(Debug, Clone, PartialEq)]
pub struct GameSettings {
    /// Ticks per second, within [`TICK_RATE_RANGE`].
    pub tick_rate_hz: u16,
    /// How long a disconnected player's entity waits for it to resume.
    pub resume_grace: Duration,
    /// How often a room of this game is snapshotted (when persistence is on).
    pub snapshot_interval: Duration,
    /// Most connected members (players and spectators) a room of this game
    /// admits; further joins are closed with 1013.
    pub max_members: usize,
}

/// Creates a fresh [`GameInstance`] for a new room.
type InstanceFactory = Arc<dyn Fn() -> Box<dyn GameInstance> + Send + Sync>;

/// Decodes and checks an input payload without any room state.
type InputChecker = Arc<dyn Fn(&[u8]) -> Result<(), InputError> + Send + Sync>;

/// A registered game: how to make an instance, and its settings.
#[derive(Clone)]
pub struct GameEntry {
    /// The name in URLs.
    pub name: Arc<str>,
    /// The room settings of this game.
    pub settings: GameSettings,
    /// Makes the per-room instance.
    factory: InstanceFactory,
    /// Validates inputs in the session, so a bad one closes its own connection
    /// before it reaches the room.
    checker: InputChecker,
}

impl GameEntry {
    /// A new instance with fresh state, for a new room.
    pub fn instantiate(&self) -> Box<dyn GameInstance> {
        (self.factory)()
    }

    /// Decodes and checks an input payload as the game's input type.
    pub fn check_input(&self, payload: &[u8]) -> Result<(), InputError> {
        (self.checker)(payload)
    }
}

/// Game names → games. Built-in games are registered by [`GameCatalog::with_builtin_games`];
/// an embedder adds its own with [`GameCatalog::register`].
#[derive(Clone, Default)]
pub struct GameCatalog {
    /// Registered games by name.
    games: HashMap<String, GameEntry>,
}

impl GameCatalog {
    /// A catalog with `arena` and `counter`.
    pub fn with_builtin_games() -> Self {
        let mut catalog = Self::default();
        catalog.register("arena", arena::Arena);
        catalog.register("counter", counter::Counter);
        catalog
    }

    /// Registers (or replaces) a game under `name` with its default settings.
    pub fn register<G: Game>(&mut self, name: &str, game: G) {
        let settings = GameSettings {
            tick_rate_hz: game
                .default_tick_rate_hz()
                .clamp(*TICK_RATE_RANGE.start(), *TICK_RATE_RANGE.end()),
            resume_grace: DEFAULT_RESUME_GRACE,
            snapshot_interval: DEFAULT_SNAPSHOT_INTERVAL,
            max_members: DEFAULT_MAX_MEMBERS,
        };
        let game = Arc::new(game);
        let checking = game.clone();
        let checker: InputChecker = Arc::new(move |payload| {
            let input: G::Input = roomcast_protocol::codec::decode(payload)?;
            checking.check_input(&input).map_err(InputError::Refused)
        });
        let factory: InstanceFactory = Arc::new(move || {
            Box::new(TypedInstance {
                game: game.clone(),
                state: game.new_state(),
                queued: Vec::new(),
            })
        });
        self.games.insert(
            name.to_owned(),
            GameEntry {
                name: name.into(),
                settings,
                factory,
                checker,
            },
        );
    }

    /// The game registered under `name`.
    pub fn get(&self, name: &str) -> Option<&GameEntry> {
        self.games.get(name)
    }

    /// Changes a registered game's settings; false if no such game.
    pub fn configure(&mut self, name: &str, f: impl FnOnce(&mut GameSettings)) -> bool {
        match self.games.get_mut(name) {
            Some(entry) => {
                f(&mut entry.settings);
                true
            }
            None => false,
        }
    }

    /// Registered game names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.games.keys().cloned().collect();
        names.sort();
        names
    }
}
