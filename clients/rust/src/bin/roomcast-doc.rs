//! `roomcast-doc`: joins a roomcast doc room as a y-websocket peer, waits until it
//! has the server's state, and prints the named root types as one JSON object.
//! Useful to look at a document from a shell, and used by the interop tests as
//! the Rust participant next to the npm Yjs clients.
//!
//! `roomcast-doc --url ws://127.0.0.1:8080 --doc notes --text body --map meta --array items`
//! prints `{"body": "...", "meta": {...}, "items": [...]}`. With `--wait-text
//! NAME=SUBSTRING` it first waits until that text contains the substring.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use roomcast_client::{DocConnection, DocOptions};
use yrs::types::ToJson;
use yrs::{GetString, Transact};

/// Print a roomcast doc room's content as JSON.
#[derive(Debug, Parser)]
#[command(name = "roomcast-doc", version)]
struct Args {
    /// Server base URL (the doc is at /doc/{name}).
    #[arg(long, default_value = "ws://127.0.0.1:8080")]
    url: String,
    /// Document name.
    #[arg(long)]
    doc: String,
    /// Root Y.Text names to print.
    #[arg(long = "text")]
    texts: Vec<String>,
    /// Root Y.Map names to print.
    #[arg(long = "map")]
    maps: Vec<String>,
    /// Root Y.Array names to print.
    #[arg(long = "array")]
    arrays: Vec<String>,
    /// Wait until text NAME contains SUBSTRING before printing (NAME=SUBSTRING).
    #[arg(long = "wait-text", value_name = "NAME=SUBSTRING")]
    wait_text: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
}

async fn run(args: Args) -> anyhow::Result<serde_json::Value> {
    let timeout = Duration::from_secs_f64(args.timeout);
    let mut conn = DocConnection::connect(&args.url, &args.doc, DocOptions::default())
        .await
        .with_context(|| format!("connect to {}", args.url))?;
    // Root types must be declared locally to read remote content with its type.
    let doc = conn.doc().clone();
    let texts: Vec<_> = args
        .texts
        .iter()
        .map(|n| (n.clone(), doc.get_or_insert_text(n.as_str())))
        .collect();
    let maps: Vec<_> = args
        .maps
        .iter()
        .map(|n| (n.clone(), doc.get_or_insert_map(n.as_str())))
        .collect();
    let arrays: Vec<_> = args
        .arrays
        .iter()
        .map(|n| (n.clone(), doc.get_or_insert_array(n.as_str())))
        .collect();
    conn.wait_synced(timeout)
        .await
        .context("waiting for the server's state")?;
    if let Some(spec) = &args.wait_text {
        let Some((name, needle)) = spec.split_once('=') else {
            bail!("--wait-text takes NAME=SUBSTRING")
        };
        let text = doc.get_or_insert_text(name);
        conn.wait_until(timeout, |d| text.get_string(&d.transact()).contains(needle))
            .await
            .with_context(|| format!("waiting for text {name:?} to contain {needle:?}"))?;
    }
    let txn = doc.transact();
    let mut out = serde_json::Map::new();
    for (name, t) in &texts {
        out.insert(name.clone(), serde_json::Value::String(t.get_string(&txn)));
    }
    for (name, m) in &maps {
        out.insert(name.clone(), serde_json::to_value(m.to_json(&txn))?);
    }
    for (name, a) in &arrays {
        out.insert(name.clone(), serde_json::to_value(a.to_json(&txn))?);
    }
    drop(txn);
    let _ = conn.close().await;
    Ok(serde_json::Value::Object(out))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("roomcast-doc: {e:#}");
            ExitCode::FAILURE
        }
    }
}
