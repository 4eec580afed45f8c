//! `roomcast-load`: a load generator for roomcast game rooms and doc rooms.
//!
//! Game mode (the default, [`game`]) opens `--rooms × --players` simulated arena
//! players and measures input-to-ack latency, delta jitter and bandwidth. Doc
//! mode (`--doc`, [`doc`]) opens `--docs × --clients-per-doc` y-websocket peers
//! that insert short texts at `--rate` per second and measures how long an edit
//! takes to reach the other clients of its doc, and whether all replicas
//! converge. Idle doc mode (`--doc --idle`, [`idle`]) opens peers that sync and
//! then stay quiet, to measure what open idle connections cost the server. All
//! report the tool's own CPU and optionally the server's CPU and memory; they
//! print a short table and, with `--json`, one JSON object as the last line of
//! stdout.
//!
//! Timeline: connections are opened at `--connect-rate` per second (the ramp);
//! the warmup starts when the last connection is due; the measured window is the
//! `--duration` seconds after the warmup.

mod common;
mod doc;
mod game;
mod idle;

use std::process::ExitCode;

use anyhow::{ensure, Context};
use clap::Parser;
use roomcast_client::stats;

/// Load generator for a roomcast server.
///
/// Game mode (default): many simulated arena players, with input-to-ack latency,
/// delta jitter, bandwidth and CPU figures. Doc mode (--doc): y-websocket peers
/// inserting short texts into the Y.Text "text" of doc rooms, with
/// edit-to-other-client latency, delivery rate, a convergence check and CPU
/// figures. Idle doc mode (--doc --idle): peers that sync, then only read
/// (answering the server's pings) until the end, then close; it reports joins,
/// join failures and disconnects.
///
/// Timeline: connections open at --connect-rate per second; the warmup starts
/// when the last one is due; then --duration seconds are measured. Total run time
/// is about connections/connect-rate + warmup + duration (+ up to 0.5 s to
/// collect the last acks in game mode, up to 5 s for the replicas to converge in
/// doc mode).
///
/// Exit status: 0 when the run completed, even if some connections failed (see
/// `failures` and `disconnects`); 1 on a bad flag value or when no client could
/// join at all; 2 on an unknown or unparsable flag.
#[derive(Debug, Parser)]
#[command(name = "roomcast-load", version)]
struct Args {
    /// Server base URL, ws://host:port (rooms are reached at /game/{game}/{room},
    /// docs at /doc/{name}).
    #[arg(long, default_value = "ws://127.0.0.1:8080")]
    url: String,

    /// Game to load. Only `arena` is supported (its state acknowledges inputs).
    #[arg(long, default_value = "arena")]
    game: String,

    /// Number of rooms, named {room-prefix}-0 .. {room-prefix}-{rooms-1}.
    #[arg(long, default_value_t = 1)]
    rooms: u32,

    /// Simulated players (connections) per room.
    #[arg(long, default_value_t = 10)]
    players: u32,

    /// Doc mode: load doc rooms with text edits instead of game rooms.
    #[arg(long, conflicts_with_all = ["game", "rooms", "players"])]
    doc: bool,

    /// Doc mode: number of docs, named {room-prefix}-doc-0 .. {room-prefix}-doc-{docs-1}.
    #[arg(long, default_value_t = 1, requires = "doc")]
    docs: u32,

    /// Doc mode: clients (connections, each with its own replica) per doc; at
    /// least 2 (1 with --idle).
    #[arg(long, default_value_t = 4, requires = "doc")]
    clients_per_doc: u32,

    /// Doc mode: text edits per second per client (fractions allowed).
    #[arg(long, default_value_t = 1.0, requires = "doc")]
    rate: f64,

    /// Doc mode: idle clients that sync, then send nothing (they keep reading, so
    /// they answer the server's pings) until the end of --duration, then close.
    #[arg(long, requires = "doc", conflicts_with = "rate")]
    idle: bool,

    /// Measured window in seconds, after the warmup (fractions allowed).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,

    /// Seconds of load before measuring starts (fractions allowed; 0 for none).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,

    /// Prefix of the room names: rooms are {room-prefix}-{i}, docs {room-prefix}-doc-{i}.
    #[arg(long, default_value = "load")]
    room_prefix: String,

    /// Seed of the simulated clients' choices (game: input directions; doc: edit
    /// timing and positions); client j of room/doc i draws from an RNG seeded from
    /// (seed, i, j), so runs with the same seed are comparable.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// PID of the server process: also report its CPU over the measured window
    /// and its resident memory (Linux /proc).
    #[arg(long)]
    server_pid: Option<u32>,

    /// New connections per second while ramping up.
    #[arg(long, default_value_t = 200.0)]
    connect_rate: f64,

    /// Print the results as one JSON object on the last line of stdout.
    #[arg(long)]
    json: bool,
}

impl Args {
    fn validate(&self) -> anyhow::Result<()> {
        let rest = self
            .url
            .strip_prefix("ws://")
            .context("--url must look like ws://host:port")?;
        ensure!(
            !rest.is_empty() && !rest.starts_with('/'),
            "--url must look like ws://host:port, got {:?}",
            self.url
        );
        let longest = if self.doc {
            ensure!(self.docs >= 1, "--docs must be at least 1");
            if self.idle {
                ensure!(
                    self.clients_per_doc >= 1,
                    "--clients-per-doc must be at least 1"
                );
            } else {
                ensure!(
                    self.clients_per_doc >= 2,
                    "--clients-per-doc must be at least 2 (latency is measured between clients)"
                );
                ensure!(
                    self.rate.is_finite() && self.rate > 0.0,
                    "--rate must be a positive number of edits per second"
                );
            }
            format!("{}-doc-{}", self.room_prefix, self.docs - 1)
        } else {
            ensure!(
                self.game == "arena",
                "--game {:?} is not supported: only `arena` is",
                self.game
            );
            ensure!(self.rooms >= 1, "--rooms must be at least 1");
            ensure!(self.players >= 1, "--players must be at least 1");
            format!("{}-{}", self.room_prefix, self.rooms - 1)
        };
        ensure!(
            self.duration.is_finite() && self.duration > 0.0,
            "--duration must be a positive number of seconds"
        );
        ensure!(
            self.warmup.is_finite() && self.warmup >= 0.0,
            "--warmup must be zero or a positive number of seconds"
        );
        ensure!(
            self.connect_rate.is_finite() && self.connect_rate > 0.0,
            "--connect-rate must be positive"
        );
        ensure!(
            longest.len() <= 128,
            "--room-prefix is too long: room names must be at most 128 bytes"
        );
        ensure!(
            self.room_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)),
            "--room-prefix may only contain A-Z a-z 0-9 _ . -"
        );
        if let Some(pid) = self.server_pid {
            ensure!(
                stats::other_process_cpu_time(pid).is_some(),
                "--server-pid {pid}: no such process (cannot read /proc/{pid}/stat)"
            );
        }
        Ok(())
    }

    /// Connections the run opens.
    fn connections(&self) -> u64 {
        if self.doc {
            u64::from(self.docs) * u64::from(self.clients_per_doc)
        } else {
            u64::from(self.rooms) * u64::from(self.players)
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    args.validate()?;
    if args.idle {
        idle::run(&args).await
    } else if args.doc {
        doc::run(&args).await
    } else {
        game::run(&args).await
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roomcast-load: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
