//! Join time of a doc-room client: how long from opening the WebSocket to holding
//! the whole document (sync step 2 applied), for a document of 1 MB of text.
//! Starts a real server in-process on a loopback port; run with
//! `cargo bench -p roomcast-client --bench doc_join` (release build).

use std::net::TcpListener;
use std::time::{Duration, Instant};

use roomcast_client::{DocConnection, DocOptions};
use tokio_util::sync::CancellationToken;
use yrs::{GetString, Text, Transact, WriteTxn};

const DOC_BYTES: usize = 1_000_000;

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this once as a
    // smoke test.
    let joins: usize = if std::env::args().any(|a| a == "--bench") {
        20
    } else {
        1
    };
    actix_rt::System::new().block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("ws://{}", listener.local_addr().expect("addr"));
        let shutdown = CancellationToken::new();
        let server = actix_rt::spawn(roomcast_server::run(listener, roomcast_server::Config { persistence: "off".into(), ..Default::default() }, shutdown.clone()));

        // One writer fills the doc and stays connected (keeps the room alive).
        let mut writer = DocConnection::connect(&url, "join-bench", DocOptions::default()).await.expect("writer");
        writer.wait_synced(Duration::from_secs(10)).await.expect("writer sync");
        let text: String = (0..DOC_BYTES).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        writer.edit(|txn| txn.get_or_insert_text("t").insert(txn, 0, &text)).await.expect("write");
        // The first joiner also proves the server holds the whole text.
        let mut probe = DocConnection::connect(&url, "join-bench", DocOptions::default()).await.expect("probe");
        let t = probe.doc().get_or_insert_text("t");
        probe
            .wait_until(Duration::from_secs(30), |d| t.get_string(&d.transact()).len() == DOC_BYTES)
            .await
            .expect("probe sees the whole doc");
        drop(probe);

        let mut times = Vec::with_capacity(joins);
        for _ in 0..joins {
            let started = Instant::now();
            let mut conn = DocConnection::connect(&url, "join-bench", DocOptions::default()).await.expect("join");
            conn.wait_synced(Duration::from_secs(30)).await.expect("sync");
            times.push(started.elapsed());
            let t = conn.doc().get_or_insert_text("t");
            assert_eq!(t.len(&conn.doc().transact()) as usize, DOC_BYTES);
            let _ = conn.close().await;
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "doc_join: {joins} joins of a {DOC_BYTES}-byte text doc: min {:.1} ms, median {:.1} ms, max {:.1} ms",
            ms(times[0]),
            ms(times[joins / 2]),
            ms(times[joins - 1])
        );
        shutdown.cancel();
        let _ = server.await;
    });
}
