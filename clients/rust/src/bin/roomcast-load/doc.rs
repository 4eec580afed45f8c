//! Doc mode: `--docs × --clients-per-doc` y-websocket peers editing one Y.Text.
//!
//! Each client is a tokio task with its own [`DocConnection`] (its own `yrs`
//! replica). Once synced it inserts a short marker `[{doc}.{client}.{seq}]` into
//! the root Y.Text `text` at a seeded-random position, `--rate` times per second,
//! until the end of the measured window.
//!
//! Latency is measured from one client's edit to its observation by another
//! client of the same doc: the sender notes, per doc, the clock at which the
//! edit's characters start (its yrs client id and state-vector clock) with the
//! send time; a Y.Text observer on every replica looks up the ids each remote
//! transaction inserted (`insert_set`) and records now − send time. The
//! markers make the text readable but are not parsed (a later insert may land
//! inside one); looking up ids costs the same however long the text is, whereas
//! computing a text delta walks the whole text on every update.
//!
//! Only edits sent inside the measured window count toward the latency figures
//! and `edits_sent` (their observations count until the end of the run);
//! `edits_delivered_per_s` counts the (edit, receiving client) observations that
//! happen inside the window.
//!
//! At the end every client stops editing and keeps reading until all replicas of
//! its doc hold the same text (or 5 s pass); `converged` says whether every doc's
//! replicas ended identical.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use rand::Rng;
use roomcast_client::{stats, DocConnection, DocEvent, DocOptions};
use serde::Serialize;
use tokio::sync::oneshot;
use tokio::time::{Instant, MissedTickBehavior};
use yrs::block::ClientID;
use yrs::{GetString, Observable, ReadTxn, Text, TextRef, Transact};

use crate::common::{
    max_ms, number_json, raise_fd_limit, round_to, sample_cpu, seeded_rng, CpuFigures,
    ErrorSamples, Timeline,
};
use crate::Args;

/// The root Y.Text every client edits.
const TEXT: &str = "text";
/// Key of the latency observer on each replica's text.
const OBSERVER_KEY: &str = "roomcast-load";
/// Time allowed for one connection's handshake and initial sync.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// After the measured window, how long clients wait for their doc's replicas to
/// become equal.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a stopped client checks whether its doc converged.
const CONVERGE_POLL: Duration = Duration::from_millis(20);
/// Time allowed for the close handshake at the end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the server's resident memory is sampled.
const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(100);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where a client is, as far as the convergence check cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settle {
    /// Still connecting or editing.
    Busy,
    /// Never joined, or disconnected: not part of the comparison.
    Gone,
    /// Stopped editing; the hash of its replica's text now.
    Stopped(u64),
}

/// What the clients of one doc share.
struct DocShared {
    /// Edits sent into this doc: sender's yrs client id → (clock of the edit's
    /// first character → send time). Low-rate, so one mutex is fine.
    sent: Mutex<HashMap<ClientID, BTreeMap<u32, Instant>>>,
    /// Per client of the doc: its state for the convergence check.
    settle: Mutex<Vec<Settle>>,
}

impl DocShared {
    fn new(clients: u32) -> Self {
        Self {
            sent: Mutex::new(HashMap::new()),
            settle: Mutex::new(vec![Settle::Busy; clients as usize]),
        }
    }

    fn set(&self, client: u32, state: Settle) {
        lock(&self.settle)[client as usize] = state;
    }

    /// True when no client is busy and every stopped one holds the same text.
    fn settled(&self) -> bool {
        let settle = lock(&self.settle);
        let mut first = None;
        for s in settle.iter() {
            match *s {
                Settle::Busy => return false,
                Settle::Gone => {}
                Settle::Stopped(h) => {
                    if *first.get_or_insert(h) != h {
                        return false;
                    }
                }
            }
        }
        true
    }
}

/// What a client's text observer records (post-warmup figures only).
struct Observed {
    /// Set once the client's initial sync is done: what the sync brings in is
    /// old, not delivered.
    active: bool,
    /// Edit-to-observation latency of edits sent inside the window, µs.
    latency: Histogram<u64>,
    /// Observations of edits sent inside the window.
    measured: u64,
    /// Observations (any edit) made inside the window.
    in_window: u64,
    /// Remote inserts whose send time was not found (should stay 0).
    unknown: u64,
}

impl Observed {
    fn new() -> Self {
        Self {
            active: false,
            latency: stats::latency_histogram(),
            measured: 0,
            in_window: 0,
            unknown: 0,
        }
    }
}

/// Watches `text` on a replica whose yrs client id is `own`: every insert made
/// by another client is looked up in `shared.sent` and recorded.
fn observe_deliveries(
    text: &TextRef,
    own: ClientID,
    shared: Arc<DocShared>,
    observed: Arc<Mutex<Observed>>,
    tl: Timeline,
) {
    text.observe(OBSERVER_KEY, move |txn, _event| {
        let now = Instant::now();
        let mut obs = lock(&observed);
        if !obs.active {
            return;
        }
        let sent = lock(&shared.sent);
        for (client, ranges) in txn.insert_set().iter() {
            if *client == own {
                continue;
            }
            let Some(edits) = sent.get(client) else {
                obs.unknown += ranges.len() as u64;
                continue;
            };
            for range in ranges.iter() {
                for (_, &sent_at) in edits.range(range.clone()) {
                    if tl.in_window(now) {
                        obs.in_window += 1;
                    }
                    if tl.in_window(sent_at) {
                        obs.measured += 1;
                        stats::record(&mut obs.latency, now - sent_at);
                    }
                }
            }
        }
    });
}

/// What one client did.
struct ClientStats {
    joined: bool,
    /// Connect/sync error.
    failure: Option<String>,
    /// Closed by the server or errored before the end.
    disconnect: Option<String>,
    /// Edits sent inside the measured window.
    edits_sent: u64,
    /// Filled by the text observer.
    observed: Arc<Mutex<Observed>>,
    /// The replica's text at the end (connected clients only).
    final_text: Option<String>,
}

/// Who a client is and when things happen.
struct ClientPlan {
    url: String,
    doc_name: String,
    doc: u32,
    client: u32,
    seed: u64,
    slot: u64,
    rate: f64,
    tl: Timeline,
    shared: Arc<DocShared>,
}

fn text_hash(text: &TextRef, conn: &DocConnection) -> u64 {
    let mut h = DefaultHasher::new();
    text.get_string(&conn.doc().transact()).hash(&mut h);
    h.finish()
}

/// Why the connection ended, if `event` says it did (also used by idle mode).
pub fn closed_reason(event: Result<DocEvent, roomcast_client::ClientError>) -> Option<String> {
    match event {
        Ok(DocEvent::Closed(info)) => Some(match info {
            Some(c) => format!("closed by server: {} {}", c.code, c.reason),
            None => "connection dropped without a close frame".to_owned(),
        }),
        Ok(_) => None,
        Err(e) => Some(format!("receive failed: {e}")),
    }
}

/// One client; one that did not end connected leaves the convergence check.
async fn run_client(plan: ClientPlan) -> ClientStats {
    let (shared, client) = (plan.shared.clone(), plan.client);
    let st = client_inner(plan).await;
    if st.final_text.is_none() {
        shared.set(client, Settle::Gone);
    }
    st
}

async fn client_inner(plan: ClientPlan) -> ClientStats {
    let tl = plan.tl;
    let observed = Arc::new(Mutex::new(Observed::new()));
    let mut st = ClientStats {
        joined: false,
        failure: None,
        disconnect: None,
        edits_sent: 0,
        observed: observed.clone(),
        final_text: None,
    };
    tokio::time::sleep_until(tl.connect_at(plan.slot)).await;
    if Instant::now() >= tl.deadline {
        st.failure = Some("not connected before the end of the run".to_owned());
        return st;
    }

    // Connect, declare the text, watch it, and wait for the server's state.
    let joined =
        tokio::time::timeout_at(tl.deadline.min(Instant::now() + HANDSHAKE_TIMEOUT), async {
            let mut conn =
                DocConnection::connect(&plan.url, &plan.doc_name, DocOptions::default()).await?;
            let text = conn.doc().get_or_insert_text(TEXT);
            observe_deliveries(
                &text,
                conn.doc().client_id(),
                plan.shared.clone(),
                observed.clone(),
                tl,
            );
            conn.wait_synced(HANDSHAKE_TIMEOUT).await?;
            Ok::<_, roomcast_client::ClientError>((conn, text))
        })
        .await;
    let (mut conn, text) = match joined {
        Ok(Ok(joined)) => joined,
        Ok(Err(e)) => {
            st.failure = Some(e.to_string());
            return st;
        }
        Err(_) => {
            st.failure = Some("connect and sync did not finish in time".to_owned());
            return st;
        }
    };
    st.joined = true;
    lock(&observed).active = true;

    let own = conn.doc().client_id();
    let marker_prefix = format!("[{}.{}.", plan.doc, plan.client);
    let mut rng = seeded_rng(plan.seed, plan.doc, plan.client);
    let period = Duration::from_secs_f64(1.0 / plan.rate);
    // A random phase, so that the clients' edits do not come in bursts.
    let first = Instant::now() + period.mul_f64(rng.gen::<f64>());
    let mut ticker = tokio::time::interval_at(first, period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let converge_by = tl.deadline + CONVERGE_TIMEOUT;
    let stop = tokio::time::sleep_until(tl.deadline);
    tokio::pin!(stop);
    let mut seq: u32 = 0;

    // Edit until the deadline.
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let marker = format!("{marker_prefix}{seq}]");
                seq += 1;
                let shared = &plan.shared;
                let rng = &mut rng;
                let text = &text;
                let edit = conn.edit(move |txn| {
                    let pos = rng.gen_range(0..=text.len(txn));
                    let clock = txn.state_vector().get(&own);
                    let sent_at = Instant::now();
                    lock(&shared.sent).entry(own).or_default().insert(clock, sent_at);
                    text.insert(txn, pos, &marker);
                    sent_at
                });
                // Bounded: a server that stops reading must not hold the task past the run.
                match tokio::time::timeout_at(converge_by, edit).await {
                    Ok(Ok(sent_at)) => {
                        if tl.in_window(sent_at) {
                            st.edits_sent += 1;
                        }
                    }
                    Ok(Err(e)) => {
                        st.disconnect = Some(format!("send failed: {e}"));
                        return st;
                    }
                    Err(_) => {
                        st.disconnect = Some("send stalled past the end of the run".to_owned());
                        return st;
                    }
                }
            }
            () = &mut stop => break,
            event = conn.next_event() => {
                if let Some(why) = closed_reason(event) {
                    st.disconnect = Some(why);
                    return st;
                }
            }
        }
    }

    // Stopped: keep applying what arrives until the doc's replicas agree.
    plan.shared
        .set(plan.client, Settle::Stopped(text_hash(&text, &conn)));
    let mut poll = tokio::time::interval(CONVERGE_POLL);
    poll.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let give_up = tokio::time::sleep_until(converge_by);
    tokio::pin!(give_up);
    while !plan.shared.settled() {
        tokio::select! {
            _ = poll.tick() => {}
            () = &mut give_up => break,
            event = conn.next_event() => {
                let changed = matches!(event, Ok(DocEvent::Update | DocEvent::Synced));
                if let Some(why) = closed_reason(event) {
                    st.disconnect = Some(why);
                    return st;
                }
                if changed {
                    plan.shared
                        .set(plan.client, Settle::Stopped(text_hash(&text, &conn)));
                }
            }
        }
    }
    st.final_text = Some(text.get_string(&conn.doc().transact()));
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.close()).await;
    st
}

/// Tracks the largest resident memory of `pid` until told to stop.
async fn sample_rss(pid: u32, mut stop: oneshot::Receiver<()>) -> Option<u64> {
    let mut ticker = tokio::time::interval(RSS_SAMPLE_EVERY);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut peak = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if let Some(rss) = stats::process_rss_bytes(pid) {
                    peak = peak.max(Some(rss));
                }
            }
            _ = &mut stop => return peak,
        }
    }
}

/// Everything merged.
struct Totals {
    latency: Histogram<u64>,
    joined: u64,
    failures: u64,
    disconnects: u64,
    edits_sent: u64,
    /// Observations of edits sent inside the window.
    measured_deliveries: u64,
    /// Observations made inside the window.
    window_deliveries: u64,
    unknown: u64,
    /// Docs whose connected replicas all ended with the same text.
    docs_converged: u64,
    /// Length of the longest final text, bytes.
    longest_text: usize,
    errors: ErrorSamples,
}

impl Totals {
    fn new() -> Self {
        Self {
            latency: stats::latency_histogram(),
            joined: 0,
            failures: 0,
            disconnects: 0,
            edits_sent: 0,
            measured_deliveries: 0,
            window_deliveries: 0,
            unknown: 0,
            docs_converged: 0,
            longest_text: 0,
            errors: ErrorSamples::default(),
        }
    }

    /// Adds one client; returns its final text.
    fn add(&mut self, st: ClientStats) -> anyhow::Result<Option<String>> {
        let obs = lock(&st.observed);
        self.latency
            .add(&obs.latency)
            .context("merging latency histograms")?;
        self.measured_deliveries += obs.measured;
        self.window_deliveries += obs.in_window;
        self.unknown += obs.unknown;
        drop(obs);
        self.joined += u64::from(st.joined);
        self.edits_sent += st.edits_sent;
        if let Some(f) = st.failure {
            self.failures += 1;
            self.errors.note("join failure", f);
        }
        if let Some(d) = st.disconnect {
            self.disconnects += 1;
            self.errors.note("disconnect", d);
        }
        if let Some(t) = &st.final_text {
            self.longest_text = self.longest_text.max(t.len());
        }
        Ok(st.final_text)
    }
}

/// Server memory figures (with --server-pid).
struct Memory {
    /// Largest VmRSS sampled during the run.
    rss_max: Option<u64>,
    /// VmHWM at the end: the peak over the server's whole life.
    hwm: Option<u64>,
}

/// Runs doc mode (flags already validated) and prints the report.
pub async fn run(args: &Args) -> anyhow::Result<()> {
    let total = args.connections();
    raise_fd_limit(total + 64);
    let tl = Timeline::new(total, args.connect_rate, args.warmup, args.duration);

    eprintln!(
        "roomcast-load: {} docs x {} clients = {total} connections to {}, {} edits/s each (ramp {:.1} s, warmup {} s, measuring {} s)",
        args.docs,
        args.clients_per_doc,
        args.url,
        args.rate,
        tl.ramp(total).as_secs_f64(),
        args.warmup,
        args.duration
    );

    let mut docs = Vec::with_capacity(args.docs as usize);
    for doc in 0..args.docs {
        let shared = Arc::new(DocShared::new(args.clients_per_doc));
        let mut handles = Vec::with_capacity(args.clients_per_doc as usize);
        for client in 0..args.clients_per_doc {
            handles.push(tokio::spawn(run_client(ClientPlan {
                url: args.url.clone(),
                doc_name: format!("{}-doc-{doc}", args.room_prefix),
                doc,
                client,
                seed: args.seed,
                slot: u64::from(doc) * u64::from(args.clients_per_doc) + u64::from(client),
                rate: args.rate,
                tl,
                shared: shared.clone(),
            })));
        }
        docs.push(handles);
    }
    let cpu_sampler = tokio::spawn(sample_cpu(tl, args.server_pid));
    let (stop_rss, stop_rss_rx) = oneshot::channel();
    let rss_sampler = args
        .server_pid
        .map(|pid| tokio::spawn(sample_rss(pid, stop_rss_rx)));

    let mut totals = Totals::new();
    for handles in docs {
        let mut texts = Vec::with_capacity(handles.len());
        for handle in handles {
            match handle.await {
                Ok(st) => texts.extend(totals.add(st)?),
                Err(e) => {
                    totals.failures += 1;
                    totals.errors.note("task", e.to_string());
                }
            }
        }
        if texts.windows(2).all(|w| w[0] == w[1]) {
            totals.docs_converged += 1;
        }
    }
    let _ = stop_rss.send(());
    if totals.joined == 0 {
        cpu_sampler.abort();
        totals.errors.print(true);
        bail!("no client could join (all {total} connections failed)");
    }
    let cpu = cpu_sampler.await.context("CPU sampler")?;
    let memory = Memory {
        rss_max: match rss_sampler {
            Some(h) => h.await.context("RSS sampler")?,
            None => None,
        },
        hwm: args.server_pid.and_then(stats::process_peak_rss_bytes),
    };

    report(args, &totals, &cpu, &memory);
    Ok(())
}

/// Latency quantiles as they appear in the JSON.
#[derive(Serialize)]
struct LatencyJson {
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

/// The JSON summary, fields in this order.
#[derive(Serialize)]
struct Summary {
    mode: &'static str,
    docs: u32,
    clients_per_doc: u32,
    rate: serde_json::Value,
    latency_ms: LatencyJson,
    edits_sent: u64,
    edits_delivered_per_s: f64,
    converged: bool,
    failures: u64,
    load_cpu_percent: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_cpu_percent: Option<Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_rss_bytes: Option<Option<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_peak_rss_bytes: Option<Option<u64>>,
}

fn report(args: &Args, t: &Totals, cpu: &CpuFigures, memory: &Memory) {
    let lat = |q: f64| round_to(stats::quantile_ms(&t.latency, q), 3);
    let delivered_per_s = t.window_deliveries as f64 / args.duration;
    let converged = t.docs_converged == u64::from(args.docs);
    let mib = |b: Option<u64>| match b {
        Some(b) => format!("{:.1}", b as f64 / (1024.0 * 1024.0)),
        None => "n/a".to_owned(),
    };

    println!(
        "roomcast-load  doc  docs={}  clients/doc={}  rate={}/s  measured {} s after {} s warmup",
        args.docs, args.clients_per_doc, args.rate, args.duration, args.warmup
    );
    println!(
        "  {:<28}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "", "p50", "p90", "p99", "p99.9", "max"
    );
    println!(
        "  {:<28}{:>10.2}{:>10.2}{:>10.2}{:>10.2}{:>10.2}",
        "edit-to-peer latency (ms)",
        lat(0.5),
        lat(0.9),
        lat(0.99),
        lat(0.999),
        max_ms(&t.latency)
    );
    println!(
        "  {:<28}{:>10} / {} attempted",
        "joined",
        t.joined,
        args.connections()
    );
    println!("  {:<28}{:>10}", "join failures", t.failures);
    println!("  {:<28}{:>10}", "disconnects", t.disconnects);
    println!(
        "  {:<28}{:>10} sent, {} observations by peers",
        "edits (measured)", t.edits_sent, t.measured_deliveries
    );
    println!("  {:<28}{:>10.1}", "deliveries/s", delivered_per_s);
    if t.unknown > 0 {
        println!("  {:<28}{:>10}", "unattributed inserts", t.unknown);
    }
    println!(
        "  {:<28}{:>10} / {} docs (longest text {} bytes)",
        "converged", t.docs_converged, args.docs, t.longest_text
    );
    println!("  {:<28}{:>10.1}", "load tool CPU %", cpu.load_percent);
    if args.server_pid.is_some() {
        match cpu.server_percent {
            Some(p) => println!("  {:<28}{:>10.1}", "server CPU %", p),
            None => println!("  {:<28}{:>10}", "server CPU %", "n/a"),
        }
        println!(
            "  {:<28}{:>10} (VmHWM {} MiB)",
            "server max RSS (MiB)",
            mib(memory.rss_max),
            mib(memory.hwm)
        );
    }
    t.errors.print(false);

    if args.json {
        let server = args.server_pid.is_some();
        let summary = Summary {
            mode: "doc",
            docs: args.docs,
            clients_per_doc: args.clients_per_doc,
            rate: number_json(args.rate),
            latency_ms: LatencyJson {
                p50: lat(0.5),
                p90: lat(0.9),
                p99: lat(0.99),
                p999: lat(0.999),
                max: round_to(max_ms(&t.latency), 3),
            },
            edits_sent: t.edits_sent,
            edits_delivered_per_s: round_to(delivered_per_s, 1),
            converged,
            failures: t.failures + t.disconnects,
            load_cpu_percent: round_to(cpu.load_percent, 1),
            server_cpu_percent: server.then(|| cpu.server_percent.map(|p| round_to(p, 1))),
            server_rss_bytes: server.then_some(memory.rss_max),
            server_peak_rss_bytes: server.then_some(memory.hwm),
        };
        match serde_json::to_string(&summary) {
            Ok(line) => println!("{line}"),
            Err(e) => eprintln!("roomcast-load: cannot encode the JSON summary: {e}"),
        }
    }
}
