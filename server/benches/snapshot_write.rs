//! Snapshot write time of a 1,000-player arena room: encoding the state (what the
//! room thread pays) and writing it through the store (what the snapshot writer
//! pays, off the room thread), against a fresh SQLite file and a fresh PostgreSQL
//! database. Run with `cargo bench -p roomcast-server --bench snapshot_write`;
//! under `cargo test --all-targets` it runs once as a smoke test.

use std::time::{Duration, Instant};

use roomcast_protocol::games::arena::ArenaInput;
use roomcast_server::game::GameCatalog;
use roomcast_server::store::testing::TestDatabase;
use roomcast_server::store::{self, NewGameSnapshot};

const PLAYERS: u32 = 1_000;

fn quantiles(mut v: Vec<Duration>) -> String {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!(
        "median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(at(0.5)),
        ms(at(0.99)),
        ms(v[v.len() - 1])
    )
}

fn main() {
    let rounds: usize = if std::env::args().any(|a| a == "--bench") {
        100
    } else {
        2
    };
    let catalog = GameCatalog::with_builtin_games();
    let arena = catalog.get("arena").expect("arena is built in");
    let mut room = arena.instantiate();
    for p in 1..=PLAYERS {
        room.player_joined(p);
        let input = roomcast_protocol::codec::encode(&ArenaInput {
            dx: (p % 3) as i8 - 1,
            dy: 1,
        })
        .unwrap();
        room.queue_input(p, 1, &input).unwrap();
    }
    room.step(1.0 / 30.0);

    let mut encode_times = Vec::new();
    let mut state = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        state = room.encode_state().expect("arena state encodes");
        encode_times.push(started.elapsed());
    }
    println!(
        "snapshot_write: {PLAYERS}-player arena state is {} bytes; encode {}",
        state.len(),
        quantiles(encode_times)
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for (kind, db) in [
            ("sqlite", TestDatabase::sqlite().expect("temp sqlite")),
            (
                "postgres",
                TestDatabase::postgres()
                    .await
                    .expect("fresh postgres database"),
            ),
        ] {
            let store = store::connect(db.config()).await.expect("connect");
            store.migrate().await.expect("migrate");
            let mut times = Vec::new();
            for tick in 0..rounds as u64 {
                let snapshot = NewGameSnapshot {
                    game: "arena".into(),
                    room: "bench".into(),
                    tick,
                    format_version: 1,
                    state: state.clone(),
                };
                let started = Instant::now();
                store.save_game_snapshot(&snapshot, 20).await.expect("save");
                times.push(started.elapsed());
            }
            println!(
                "snapshot_write: {kind}: save + prune to 20, {rounds} writes: {}",
                quantiles(times)
            );
        }
    });
}
