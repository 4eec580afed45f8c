//! `roomcast-game`: joins a roomcast game room as a player, follows the room's
//! state in a mirror (snapshot + deltas), and prints the mirror as one JSON line
//! once its tick reaches `--at-tick` (or at once without it); then leaves. A way
//! to look at a room from a shell, and the Rust participant of the TypeScript
//! client's live test (both mirrors must hold the same bytes at the same tick).
//!
//! `roomcast-game --url ws://127.0.0.1:8080 --game arena --room lobby --at-tick 300`
//! prints `{"player_id": 3, "tick": 300, "entities": [{"id": 1, "data": "…hex…"}, …]}`
//! with entities in increasing id order. It sends no inputs.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use roomcast_client::{ConnectOptions, GameConnection};

/// Print a roomcast game room's state, as this player's mirror holds it.
#[derive(Debug, Parser)]
#[command(name = "roomcast-game", version)]
struct Args {
    /// Server base URL (the room is at /game/{game}/{room}).
    #[arg(long, default_value = "ws://127.0.0.1:8080")]
    url: String,
    /// Game name (e.g. arena).
    #[arg(long)]
    game: String,
    /// Room name.
    #[arg(long)]
    room: String,
    /// Print the mirror when its tick first reaches this one (default: as soon as
    /// the first state arrives).
    #[arg(long)]
    at_tick: Option<u64>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

async fn run(args: Args) -> anyhow::Result<serde_json::Value> {
    let timeout = Duration::from_secs_f64(args.timeout);
    let mut conn =
        GameConnection::connect(&args.url, &args.game, &args.room, ConnectOptions::default())
            .await
            .with_context(|| format!("join {}/{} at {}", args.game, args.room, args.url))?;
    let at = args.at_tick.unwrap_or(0);
    conn.wait_until(timeout, |m| m.tick().is_some_and(|t| t >= at))
        .await
        .with_context(|| format!("waiting for tick {at}"))?;
    let mirror = conn.mirror();
    let entities: Vec<serde_json::Value> = mirror
        .entities()
        .iter()
        .map(|(id, data)| serde_json::json!({ "id": id, "data": hex(data) }))
        .collect();
    let printed = serde_json::json!({
        "player_id": conn.player_id(),
        "tick": mirror.tick(),
        "entities": entities,
    });
    conn.leave_and_close().await.context("leave")?;
    Ok(printed)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("roomcast-game: {e:#}");
            ExitCode::FAILURE
        }
    }
}
