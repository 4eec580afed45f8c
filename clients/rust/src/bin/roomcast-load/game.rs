//! Game mode: `--rooms × --players` simulated arena players.
//!
//! Each connection is a tokio task holding a [`GameConnection`] that decodes every
//! frame and keeps a mirror like a real client, and sends arena inputs at 30 Hz.
//! After the warmup it measures, for `--duration` seconds: input-to-ack latency,
//! delta inter-arrival jitter, bytes received per client per second, the tool's
//! own CPU and optionally the server's CPU and memory. At the end of the window
//! every task stops sending, waits briefly for the acks of its last inputs, then
//! leaves and closes.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use rand::Rng;
use roomcast_client::{stats, ConnectOptions, Event, GameConnection};
use roomcast_protocol::games::arena::{ArenaInput, ArenaPlayer};
use tokio::time::{Instant, MissedTickBehavior};

use crate::common::{
    max_ms, number_json, raise_fd_limit, round_to, sample_cpu, seeded_rng, CpuFigures,
    ErrorSamples, Timeline,
};
use crate::Args;

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
    let connect_at = tl.connect_at(slot);
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
    let mut rng = seeded_rng(seed, room, player);
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
                if (seq - 1).is_multiple_of(INPUTS_PER_DIRECTION) {
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
    errors: ErrorSamples,
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
            errors: ErrorSamples::default(),
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
            self.errors.note("join failure", f);
        }
        if let Some(d) = st.disconnect {
            self.disconnects += 1;
            self.errors.note("disconnect", d);
        }
        Ok(())
    }
}

/// Runs game mode (flags already validated) and prints the report.
pub async fn run(args: &Args) -> anyhow::Result<()> {
    let total = args.connections();
    raise_fd_limit(total + 64);

    let tl = Timeline::new(total, args.connect_rate, args.warmup, args.duration);
    let ramp = tl.ramp(total);

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
                totals.errors.note("task", e.to_string());
            }
        }
    }
    if totals.joined == 0 {
        sampler.abort();
        totals.errors.print(true);
        bail!("no player could join (all {total} connections failed)");
    }
    let cpu = sampler.await.context("CPU sampler")?;

    report(args, &totals, &cpu);
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
    t.errors.print(false);

    if args.json {
        let mut out = serde_json::json!({
            "mode": "game",
            "rooms": args.rooms,
            "players": args.players,
            "duration_s": number_json(args.duration),
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
