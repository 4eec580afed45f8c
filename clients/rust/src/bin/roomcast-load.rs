//! `roomcast-load`: a load generator for roomcast game rooms.
//!
//! It opens `--rooms × --players` connections (rooms `{prefix}-{i}`), each one a
//! tokio task holding a [`GameConnection`] that decodes every frame and keeps a
//! mirror like a real client, and sends arena inputs at 30 Hz. After the warmup it
//! measures, for `--duration` seconds: input-to-ack latency, delta inter-arrival
//! jitter, bytes received per client per second, the tool's own CPU and
//! optionally the server's CPU and memory. It prints a short table and, with
//! `--json`, one JSON object as the last line of stdout.
//!
//! Timeline: connections are opened at `--connect-rate` per second (the ramp);
//! the warmup starts when the last connection is due; the measured window is the
//! `--duration` seconds after the warmup. At its end every task stops sending,
//! waits briefly for the acks of its last inputs, then leaves and closes.

use std::collections::VecDeque;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use clap::Parser;
use hdrhistogram::Histogram;
use rand::{rngs::StdRng, Rng, SeedableRng};
use roomcast_client::{stats, ConnectOptions, Event, GameConnection};
use roomcast_protocol::games::arena::{ArenaInput, ArenaPlayer};
use tokio::time::{Instant, MissedTickBehavior};

/// Inputs per second each simulated player sends.
const INPUT_RATE_HZ: f64 = 30.0;
/// A player draws a new direction every this many inputs.
const INPUTS_PER_DIRECTION: u32 = 15;
/// After the measured window, how long a task keeps reading to collect the acks
/// of its last inputs (it stops earlier once all are acknowledged).
const ACK_DRAIN: Duration = Duration::from_millis(500);
/// Time allowed for `Leave` + the server's close at the end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Time allowed for one connection's handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How many distinct error messages the summary shows.
const MAX_ERROR_SAMPLES: usize = 5;

/// Load generator for a roomcast server: many simulated arena players, with
/// input-to-ack latency, delta jitter, bandwidth and CPU figures.
///
/// Timeline: connections open at --connect-rate per second; the warmup starts
/// when the last one is due; then --duration seconds are measured. Total run time
/// is about rooms*players/connect-rate + warmup + duration (+ up to 0.5 s to
/// collect the last acks).
///
/// Exit status: 0 when the run completed, even if some connections failed (see
/// `failures` and `disconnects`); 1 on a bad flag value or when no player could
/// join at all; 2 on an unknown or unparsable flag.
#[derive(Debug, Parser)]
#[command(name = "roomcast-load", version)]
struct Args {
    /// Server base URL, ws://host:port (rooms are reached at /game/{game}/{room}).
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

    /// Measured window in seconds, after the warmup (fractions allowed).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,

    /// Seconds of load before measuring starts (fractions allowed; 0 for none).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,

    /// Prefix of the room names: rooms are {room-prefix}-{i}.
    #[arg(long, default_value = "load")]
    room_prefix: String,

    /// Seed of the players' input directions; player j of room i draws from an
    /// RNG seeded from (seed, i, j), so runs with the same seed are comparable.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// PID of the server process: also report its CPU over the measured window
    /// and its resident memory at the end (Linux /proc).
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
        ensure!(
            self.game == "arena",
            "--game {:?} is not supported: only `arena` is",
            self.game
        );
        ensure!(self.rooms >= 1, "--rooms must be at least 1");
        ensure!(self.players >= 1, "--players must be at least 1");
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
        let longest = format!("{}-{}", self.room_prefix, self.rooms - 1);
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

    fn connections(&self) -> u64 {
        u64::from(self.rooms) * u64::from(self.players)
    }
}

/// When things happen, shared by all tasks.
#[derive(Debug, Clone, Copy)]
struct Timeline {
    /// Start of the run (first connection).
    start: Instant,
    /// Seconds between two connection starts.
    connect_gap: Duration,
    /// Measuring starts.
    measure_start: Instant,
    /// Measuring ends; tasks stop sending.
    deadline: Instant,
}

/// What one simulated player measured (post-warmup figures only).
struct PlayerStats {
    /// Input-to-ack latency, µs.
    latency: Histogram<u64>,
    /// |delta inter-arrival − tick period|, µs.
    jitter: Histogram<u64>,
    joined: bool,
    /// Connect/handshake error.
    failure: Option<String>,
    /// Closed by the server or errored before the end.
    disconnect: Option<String>,
    inputs_sent: u64,
    inputs_acked: u64,
    /// Bytes received inside the measured window.
    bytes: u64,
    /// Seconds this connection was joined inside the measured window.
    window_secs: f64,
    /// Deltas that did not fit the mirror (resync requested).
    resyncs: u64,
    /// Snapshots after the first one.
    extra_snapshots: u64,
    /// In-band errors received.
    inband_errors: u64,
}

impl PlayerStats {
    fn new() -> Self {
        Self {
            latency: stats::latency_histogram(),
            jitter: stats::latency_histogram(),
            joined: false,
            failure: None,
            disconnect: None,
            inputs_sent: 0,
            inputs_acked: 0,
            bytes: 0,
            window_secs: 0.0,
            resyncs: 0,
            extra_snapshots: 0,
            inband_errors: 0,
        }
    }
}

/// SplitMix64 finaliser: spreads (seed, room, player) into independent seeds.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn player_rng(seed: u64, room: u32, player: u32) -> StdRng {
    StdRng::seed_from_u64(mix(mix(mix(seed) ^ u64::from(room)) ^ u64::from(player)))
}

/// Where (measured) `bytes_received` started counting for the window.
enum ByteMark {
    /// Window not started yet.
    Before,
    /// Counter value and time at which counting started.
    Started(u64, Instant),
    /// Window over; final figures taken.
    Done,
}

/// One simulated player: connect at its slot, play until the deadline, leave.
async fn run_player(
    url: String,
    room_name: String,
    room: u32,
    player: u32,
    seed: u64,
    slot: u64,
    tl: Timeline,
) -> PlayerStats {
    let mut st = PlayerStats::new();
    let connect_at = tl.start + tl.connect_gap.mul_f64(slot as f64);
    tokio::time::sleep_until(connect_at).await;
    if Instant::now() >= tl.deadline {
        st.failure = Some("not connected before the end of the run".to_owned());
        return st;
    }
    let options = ConnectOptions {
        handshake_timeout: Some(HANDSHAKE_TIMEOUT),
        ..ConnectOptions::default()
    };
    let connected = tokio::time::timeout_at(
        tl.deadline,
        GameConnection::connect(&url, "arena", &room_name, options),
    )
    .await;
    let mut conn = match connected {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            st.failure = Some(e.to_string());
            return st;
        }
        Err(_) => {
            st.failure = Some("handshake not finished before the end of the run".to_owned());
            return st;
        }
    };
    st.joined = true;

    let me = conn.player_id();
    let tick_hz = conn.welcome().tick_rate_hz.max(1);
    let tick_period = Duration::from_secs_f64(1.0 / f64::from(tick_hz));
    let mut rng = player_rng(seed, room, player);
    let mut input = ArenaInput { dx: 0, dy: 0 };
    let mut seq: u32 = 0;
    // (seq, send time, sent inside the measured window)
    let mut pending: VecDeque<(u32, Instant, bool)> = VecDeque::with_capacity(16);
    let mut last_delta: Option<Instant> = None;
    let mut seen_snapshot = false;
    let mut bytes_mark = ByteMark::Before;

    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / INPUT_RATE_HZ));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    // Fires at the deadline, then (re-armed) at the end of the ack drain.
    let timer = tokio::time::sleep_until(tl.deadline);
    tokio::pin!(timer);
    let mut sending = true;
    let drain_end = tl.deadline + ACK_DRAIN;

    loop {
        // Window bookkeeping for the bytes counter (checked once per wake-up).
        let now = Instant::now();
        if let ByteMark::Before = bytes_mark {
            if now >= tl.measure_start {
                bytes_mark = ByteMark::Started(conn.bytes_received(), now);
            }
        }
        if !sending && pending.is_empty() {
            break;
        }
        tokio::select! {
            _ = ticker.tick(), if sending => {
                seq += 1;
                if (seq - 1) % INPUTS_PER_DIRECTION == 0 {
                    input = ArenaInput { dx: rng.gen_range(-1..=1), dy: rng.gen_range(-1..=1) };
                }
                let sent_at = Instant::now();
                let measured = sent_at >= tl.measure_start;
                // Bounded: a server that stops reading must not hold the task past the run.
                match tokio::time::timeout_at(drain_end, conn.send_input(seq, &input)).await {
                    Ok(Ok(())) => {
                        pending.push_back((seq, sent_at, measured));
                        if measured {
                            st.inputs_sent += 1;
                        }
                    }
                    Ok(Err(e)) => {
                        st.disconnect = Some(format!("send failed: {e}"));
                        break;
                    }
                    Err(_) => {
                        st.disconnect = Some("send stalled past the end of the run".to_owned());
                        break;
                    }
                }
            }
            () = &mut timer => {
                if !sending {
                    break;
                }
                sending = false;
                timer.as_mut().reset(drain_end);
                if let ByteMark::Started(at_start, since) = bytes_mark {
                    st.bytes = conn.bytes_received() - at_start;
                    st.window_secs = tl.deadline.saturating_duration_since(since).as_secs_f64();
                }
                bytes_mark = ByteMark::Done;
                if pending.is_empty() {
                    break;
                }
            }
            event = conn.next_event() => {
                let now = Instant::now();
                let in_window = now >= tl.measure_start && now <= tl.deadline;
                match event {
                    Ok(Event::Delta { .. }) => {
                        if in_window {
                            if let Some(prev) = last_delta {
                                if prev >= tl.measure_start {
                                    let gap = now - prev;
                                    let off = gap.abs_diff(tick_period);
                                    stats::record(&mut st.jitter, off);
                                }
                            }
                        }
                        last_delta = Some(now);
                        ack(&conn, me, &mut pending, now, &mut st);
                    }
                    Ok(Event::Snapshot { .. }) => {
                        if seen_snapshot {
                            st.extra_snapshots += 1;
                        }
                        seen_snapshot = true;
                        last_delta = None;
                        ack(&conn, me, &mut pending, now, &mut st);
                    }
                    Ok(Event::OutOfStep) => {
                        st.resyncs += 1;
                        last_delta = None;
                    }
                    Ok(Event::Pong(_)) => {}
                    Ok(Event::Error(_)) => st.inband_errors += 1,
                    Ok(Event::Closed(info)) => {
                        if sending {
                            st.disconnect = Some(match info {
                                Some(c) => format!("closed by server: {} {}", c.code, c.reason),
                                None => "connection dropped without a close frame".to_owned(),
                            });
                        }
                        break;
                    }
                    Err(e) => {
                        if sending {
                            st.disconnect = Some(format!("receive failed: {e}"));
                        }
                        break;
                    }
                }
            }
        }
    }

    // Ended early (disconnect): count the part of the window it was present for.
    if let ByteMark::Started(at_start, since) = bytes_mark {
        let end = Instant::now().min(tl.deadline);
        st.bytes = conn.bytes_received() - at_start;
        st.window_secs = end.saturating_duration_since(since).as_secs_f64();
    }
    if st.disconnect.is_none() {
        // Leave, then let the server close (1000) before dropping the socket, so
        // the player is removed at once rather than after its resume grace.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT * 2, conn.leave_and_close()).await;
    }
    st
}

/// Acknowledges every pending input up to the own entity's `last_input`.
fn ack(
    conn: &GameConnection,
    me: u32,
    pending: &mut VecDeque<(u32, Instant, bool)>,
    now: Instant,
    st: &mut PlayerStats,
) {
    let Some(&(oldest, _, _)) = pending.front() else {
        return;
    };
    let last_input = match conn.mirror().entity::<ArenaPlayer>(me) {
        Some(Ok(p)) => p.last_input,
        _ => return,
    };
    if last_input < oldest {
        return;
    }
    while let Some(&(seq, sent_at, measured)) = pending.front() {
        if seq > last_input {
            break;
        }
        pending.pop_front();
        if measured {
            stats::record(&mut st.latency, now - sent_at);
            st.inputs_acked += 1;
        }
    }
}

/// Raises the open-file soft limit so that `needed` sockets fit (best effort).
fn raise_fd_limit(needed: u64) {
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        let want = (needed as libc::rlim_t).min(lim.rlim_max);
        if lim.rlim_cur < want {
            lim.rlim_cur = want;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// CPU figures of the measured window.
struct CpuFigures {
    load_percent: f64,
    server_percent: Option<f64>,
    server_rss: Option<u64>,
}

/// Samples CPU at the start and end of the measured window.
async fn sample_cpu(tl: Timeline, server_pid: Option<u32>) -> CpuFigures {
    tokio::time::sleep_until(tl.measure_start).await;
    let wall0 = Instant::now();
    let self0 = stats::process_cpu_time();
    let server0 = server_pid.and_then(stats::other_process_cpu_time);
    tokio::time::sleep_until(tl.deadline).await;
    let wall = wall0.elapsed().as_secs_f64().max(1e-9);
    let self1 = stats::process_cpu_time();
    let server1 = server_pid.and_then(stats::other_process_cpu_time);
    let percent = |a: Duration, b: Duration| b.saturating_sub(a).as_secs_f64() / wall * 100.0;
    CpuFigures {
        load_percent: percent(self0, self1),
        server_percent: match (server0, server1) {
            (Some(a), Some(b)) => Some(percent(a, b)),
            _ => None,
        },
        server_rss: server_pid.and_then(stats::process_rss_bytes),
    }
}

/// Everything merged.
struct Totals {
    latency: Histogram<u64>,
    jitter: Histogram<u64>,
    joined: u64,
    failures: u64,
    disconnects: u64,
    inputs_sent: u64,
    inputs_acked: u64,
    bytes: u64,
    client_secs: f64,
    resyncs: u64,
    extra_snapshots: u64,
    inband_errors: u64,
    errors: Vec<(String, u64)>,
}

impl Totals {
    fn new() -> Self {
        Self {
            latency: stats::latency_histogram(),
            jitter: stats::latency_histogram(),
            joined: 0,
            failures: 0,
            disconnects: 0,
            inputs_sent: 0,
            inputs_acked: 0,
            bytes: 0,
            client_secs: 0.0,
            resyncs: 0,
            extra_snapshots: 0,
            inband_errors: 0,
            errors: Vec::new(),
        }
    }

    fn note_error(&mut self, what: &str, message: String) {
        let text = format!("{what}: {message}");
        if let Some(entry) = self.errors.iter_mut().find(|(m, _)| *m == text) {
            entry.1 += 1;
        } else if self.errors.len() < MAX_ERROR_SAMPLES {
            self.errors.push((text, 1));
        }
    }

    fn add(&mut self, st: PlayerStats) -> anyhow::Result<()> {
        self.latency
            .add(&st.latency)
            .context("merging latency histograms")?;
        self.jitter
            .add(&st.jitter)
            .context("merging jitter histograms")?;
        self.joined += u64::from(st.joined);
        self.inputs_sent += st.inputs_sent;
        self.inputs_acked += st.inputs_acked;
        self.bytes += st.bytes;
        self.client_secs += st.window_secs;
        self.resyncs += st.resyncs;
        self.extra_snapshots += st.extra_snapshots;
        self.inband_errors += st.inband_errors;
        if let Some(f) = st.failure {
            self.failures += 1;
            self.note_error("join failure", f);
        }
        if let Some(d) = st.disconnect {
            self.disconnects += 1;
            self.note_error("disconnect", d);
        }
        Ok(())
    }
}

fn round_to(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Seconds as a JSON number: an integer when whole.
fn seconds_json(s: f64) -> serde_json::Value {
    if s.fract() == 0.0 && s < 1e15 {
        serde_json::json!(s as u64)
    } else {
        serde_json::json!(s)
    }
}

fn max_ms(h: &Histogram<u64>) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.max() as f64 / 1000.0
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    args.validate()?;
    let total = args.connections();
    raise_fd_limit(total + 64);

    let connect_gap = Duration::from_secs_f64(1.0 / args.connect_rate);
    let start = Instant::now() + Duration::from_millis(10);
    let ramp = connect_gap.mul_f64(total.saturating_sub(1) as f64);
    let measure_start = start + ramp + Duration::from_secs_f64(args.warmup);
    let deadline = measure_start + Duration::from_secs_f64(args.duration);
    let tl = Timeline {
        start,
        connect_gap,
        measure_start,
        deadline,
    };

    eprintln!(
        "roomcast-load: {} rooms x {} players = {total} connections to {} (ramp {:.1} s, warmup {} s, measuring {} s)",
        args.rooms,
        args.players,
        args.url,
        ramp.as_secs_f64(),
        args.warmup,
        args.duration
    );

    let mut handles = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for room in 0..args.rooms {
        let room_name = format!("{}-{room}", args.room_prefix);
        for player in 0..args.players {
            let slot = u64::from(room) * u64::from(args.players) + u64::from(player);
            handles.push(tokio::spawn(run_player(
                args.url.clone(),
                room_name.clone(),
                room,
                player,
                args.seed,
                slot,
                tl,
            )));
        }
    }
    let sampler = tokio::spawn(sample_cpu(tl, args.server_pid));

    let mut totals = Totals::new();
    for handle in handles {
        match handle.await {
            Ok(st) => totals.add(st)?,
            Err(e) => {
                totals.failures += 1;
                totals.note_error("task", e.to_string());
            }
        }
    }
    if totals.joined == 0 {
        sampler.abort();
        for (message, count) in &totals.errors {
            eprintln!("  {count} x {message}");
        }
        bail!("no player could join (all {total} connections failed)");
    }
    let cpu = sampler.await.context("CPU sampler")?;

    report(&args, &totals, &cpu);
    Ok(())
}

fn report(args: &Args, t: &Totals, cpu: &CpuFigures) {
    let lat = |q: f64| round_to(stats::quantile_ms(&t.latency, q), 3);
    let bytes_per_client_per_s = if t.client_secs > 0.0 {
        t.bytes as f64 / t.client_secs
    } else {
        0.0
    };

    println!(
        "roomcast-load  game={}  rooms={}  players/room={}  measured {} s after {} s warmup",
        args.game, args.rooms, args.players, args.duration, args.warmup
    );
    println!(
        "  {:<28}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "", "p50", "p90", "p99", "p99.9", "max"
    );
    println!(
        "  {:<28}{:>10.2}{:>10.2}{:>10.2}{:>10.2}{:>10.2}",
        "input-to-ack latency (ms)",
        lat(0.5),
        lat(0.9),
        lat(0.99),
        lat(0.999),
        max_ms(&t.latency)
    );
    println!(
        "  {:<28}{:>10}{:>10}{:>10.2}{:>10}{:>10.2}",
        "delta jitter (ms)",
        "",
        "",
        stats::quantile_ms(&t.jitter, 0.99),
        "",
        max_ms(&t.jitter)
    );
    println!(
        "  {:<28}{:>10} / {} attempted",
        "joined",
        t.joined,
        args.connections()
    );
    println!("  {:<28}{:>10}", "failures", t.failures);
    println!("  {:<28}{:>10}", "disconnects", t.disconnects);
    println!(
        "  {:<28}{:>10} sent, {} acked",
        "inputs (measured)", t.inputs_sent, t.inputs_acked
    );
    println!("  {:<28}{:>10.1}", "bytes/client/s", bytes_per_client_per_s);
    println!(
        "  {:<28}{:>10} resyncs, {} extra snapshots, {} in-band errors",
        "mirror", t.resyncs, t.extra_snapshots, t.inband_errors
    );
    println!("  {:<28}{:>10.1}", "load tool CPU %", cpu.load_percent);
    if args.server_pid.is_some() {
        match cpu.server_percent {
            Some(p) => println!("  {:<28}{:>10.1}", "server CPU %", p),
            None => println!("  {:<28}{:>10}", "server CPU %", "n/a"),
        }
        match cpu.server_rss {
            Some(b) => println!(
                "  {:<28}{:>10.1}",
                "server RSS (MiB)",
                b as f64 / (1024.0 * 1024.0)
            ),
            None => println!("  {:<28}{:>10}", "server RSS (MiB)", "n/a"),
        }
    }
    for (message, count) in &t.errors {
        println!("  {count} x {message}");
    }

    if args.json {
        let mut out = serde_json::json!({
            "mode": "game",
            "rooms": args.rooms,
            "players": args.players,
            "duration_s": seconds_json(args.duration),
            "latency_ms": {
                "p50": lat(0.5),
                "p90": lat(0.9),
                "p99": lat(0.99),
                "p999": lat(0.999),
                "max": round_to(max_ms(&t.latency), 3),
            },
            "jitter_ms": {
                "p99": round_to(stats::quantile_ms(&t.jitter, 0.99), 3),
                "max": round_to(max_ms(&t.jitter), 3),
            },
            "bytes_per_client_per_s": round_to(bytes_per_client_per_s, 1),
            "joined": t.joined,
            "failures": t.failures,
            "disconnects": t.disconnects,
            "inputs_sent": t.inputs_sent,
            "inputs_acked": t.inputs_acked,
            "load_cpu_percent": round_to(cpu.load_percent, 1),
        });
        if args.server_pid.is_some() {
            out["server_cpu_percent"] =
                serde_json::json!(cpu.server_percent.map(|p| round_to(p, 1)));
            out["server_rss_bytes"] = serde_json::json!(cpu.server_rss);
        }
        println!("{out}");
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
