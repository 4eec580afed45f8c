//! Idle doc mode (`--doc --idle`): `--docs × --clients-per-doc` connections that
//! join a doc room, complete the y-websocket sync, then send nothing.
//!
//! Each client is a tokio task with its own [`DocConnection`]. Once synced it only
//! reads (so the server's heartbeat pings are answered and anything the room
//! relays is applied) until the end of the measured window, then closes. It is
//! the load of many open but quiet browser tabs: what an idle connection costs
//! the server in memory, file descriptors and CPU.
//!
//! Doc rooms rather than game rooms because a doc room sends an idle member
//! nothing unless someone edits; a game member receives every tick's delta
//! whether it plays or not.
//!
//! The report counts the clients that joined, those that could not
//! (`failures`) and those the server closed or lost before the end
//! (`disconnects`).

use std::time::Duration;

use anyhow::{bail, Context};
use roomcast_client::{DocConnection, DocOptions};
use tokio::time::Instant;

use crate::common::{
    number_json, raise_fd_limit, round_to, sample_cpu, CpuFigures, ErrorSamples, Timeline,
};
use crate::doc::closed_reason;
use crate::Args;

/// Time allowed for one connection's handshake and initial sync.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for the close handshake at the end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// What one idle client did.
#[derive(Default)]
struct ClientStats {
    joined: bool,
    /// Connect/sync error.
    failure: Option<String>,
    /// Closed by the server or errored before the end.
    disconnect: Option<String>,
}

/// One idle client: connect at its slot, sync, read until the deadline, close.
async fn run_client(url: String, doc_name: String, slot: u64, tl: Timeline) -> ClientStats {
    let mut st = ClientStats::default();
    tokio::time::sleep_until(tl.connect_at(slot)).await;
    if Instant::now() >= tl.deadline {
        st.failure = Some("not connected before the end of the run".to_owned());
        return st;
    }
    let joined =
        tokio::time::timeout_at(tl.deadline.min(Instant::now() + HANDSHAKE_TIMEOUT), async {
            let mut conn = DocConnection::connect(&url, &doc_name, DocOptions::default()).await?;
            conn.wait_synced(HANDSHAKE_TIMEOUT).await?;
            Ok::<_, roomcast_client::ClientError>(conn)
        })
        .await;
    let mut conn = match joined {
        Ok(Ok(conn)) => conn,
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

    // Reading is what answers the heartbeat pings (tungstenite queues the pong
    // and flushes it on the next read).
    let stop = tokio::time::sleep_until(tl.deadline);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            event = conn.next_event() => {
                if let Some(why) = closed_reason(event) {
                    st.disconnect = Some(why);
                    return st;
                }
            }
        }
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.close()).await;
    st
}

/// Everything merged.
#[derive(Default)]
struct Totals {
    joined: u64,
    failures: u64,
    disconnects: u64,
    errors: ErrorSamples,
}

impl Totals {
    fn add(&mut self, st: ClientStats) {
        self.joined += u64::from(st.joined);
        if let Some(f) = st.failure {
            self.failures += 1;
            self.errors.note("join failure", f);
        }
        if let Some(d) = st.disconnect {
            self.disconnects += 1;
            self.errors.note("disconnect", d);
        }
    }
}

/// Runs idle doc mode (flags already validated) and prints the report.
pub async fn run(args: &Args) -> anyhow::Result<()> {
    let total = args.connections();
    raise_fd_limit(total + 64);
    let tl = Timeline::new(total, args.connect_rate, args.warmup, args.duration);

    eprintln!(
        "roomcast-load: {} docs x {} idle clients = {total} connections to {} (ramp {:.1} s, warmup {} s, held {} s)",
        args.docs,
        args.clients_per_doc,
        args.url,
        tl.ramp(total).as_secs_f64(),
        args.warmup,
        args.duration
    );

    let mut handles = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for doc in 0..args.docs {
        let doc_name = format!("{}-doc-{doc}", args.room_prefix);
        for client in 0..args.clients_per_doc {
            let slot = u64::from(doc) * u64::from(args.clients_per_doc) + u64::from(client);
            handles.push(tokio::spawn(run_client(
                args.url.clone(),
                doc_name.clone(),
                slot,
                tl,
            )));
        }
    }
    let sampler = tokio::spawn(sample_cpu(tl, args.server_pid));

    let mut totals = Totals::default();
    for handle in handles {
        match handle.await {
            Ok(st) => totals.add(st),
            Err(e) => {
                totals.failures += 1;
                totals.errors.note("task", e.to_string());
            }
        }
    }
    if totals.joined == 0 {
        sampler.abort();
        totals.errors.print(true);
        bail!("no client could join (all {total} connections failed)");
    }
    let cpu = sampler.await.context("CPU sampler")?;

    report(args, &totals, &cpu);
    Ok(())
}

fn report(args: &Args, t: &Totals, cpu: &CpuFigures) {
    println!(
        "roomcast-load  doc idle  docs={}  clients/doc={}  held {} s after {} s warmup",
        args.docs, args.clients_per_doc, args.duration, args.warmup
    );
    println!(
        "  {:<28}{:>10} / {} attempted",
        "joined",
        t.joined,
        args.connections()
    );
    println!("  {:<28}{:>10}", "join failures", t.failures);
    println!("  {:<28}{:>10}", "disconnects", t.disconnects);
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
            "mode": "doc-idle",
            "docs": args.docs,
            "clients_per_doc": args.clients_per_doc,
            "duration_s": number_json(args.duration),
            "joined": t.joined,
            "failures": t.failures,
            "disconnects": t.disconnects,
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
