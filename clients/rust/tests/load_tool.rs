//! Runs the real `roomcast-load` binary briefly against a real server and checks
//! that its JSON summary is complete and its figures plausible.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

#[actix_rt::test]
async fn load_tool_reports_a_complete_json_summary() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = roomcast_server::Config {
        persistence: "off".into(),
        http_workers: 1,
        room_threads: 1,
        ..Default::default()
    };
    let shutdown = CancellationToken::new();
    let server = actix_rt::spawn(roomcast_server::run(listener, config, shutdown.clone()));

    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_roomcast-load"))
            .args([
                "--url",
                &format!("ws://127.0.0.1:{port}"),
                "--game",
                "arena",
            ])
            .args([
                "--rooms",
                "2",
                "--players",
                "3",
                "--duration",
                "1.5",
                "--warmup",
                "0.5",
                "--json",
            ])
            .args(["--server-pid", &std::process::id().to_string()])
            .output()
            .expect("run roomcast-load")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "roomcast-load failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().expect("some output");
    let v: serde_json::Value = serde_json::from_str(last).expect("last line is JSON");
    assert_eq!(v["mode"], "game");
    assert_eq!(
        (v["rooms"].as_u64(), v["players"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(v["joined"].as_u64(), Some(6));
    assert_eq!(v["failures"].as_u64(), Some(0));
    assert_eq!(v["disconnects"].as_u64(), Some(0));
    let sent = v["inputs_sent"].as_u64().unwrap();
    let acked = v["inputs_acked"].as_u64().unwrap();
    assert!(
        sent > 0 && acked > 0 && acked <= sent,
        "sent {sent}, acked {acked}"
    );
    let latency = &v["latency_ms"];
    for q in ["p50", "p90", "p99", "p999", "max"] {
        assert!(
            latency[q].as_f64().is_some_and(|ms| ms > 0.0),
            "latency {q}: {latency}"
        );
    }
    assert!(latency["p50"].as_f64() <= latency["max"].as_f64());
    assert!(v["jitter_ms"]["p99"].is_number() && v["jitter_ms"]["max"].is_number());
    assert!(v["bytes_per_client_per_s"]
        .as_f64()
        .is_some_and(|b| b > 0.0));
    assert!(v["load_cpu_percent"].is_number());
    assert!(v["server_cpu_percent"].is_number());

    shutdown.cancel();
    server.await.unwrap().unwrap();
}

#[actix_rt::test]
async fn load_tool_doc_mode_reports_converged_replicas() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = roomcast_server::Config {
        persistence: "off".into(),
        http_workers: 1,
        room_threads: 1,
        ..Default::default()
    };
    let shutdown = CancellationToken::new();
    let server = actix_rt::spawn(roomcast_server::run(listener, config, shutdown.clone()));

    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_roomcast-load"))
            .args(["--url", &format!("ws://127.0.0.1:{port}"), "--doc"])
            .args([
                "--docs",
                "2",
                "--clients-per-doc",
                "3",
                "--rate",
                "5",
                "--duration",
                "1.5",
                "--warmup",
                "0.5",
                "--json",
            ])
            .args(["--server-pid", &std::process::id().to_string()])
            .output()
            .expect("run roomcast-load")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "roomcast-load failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().expect("some output");
    assert!(
        last.starts_with(r#"{"mode":"doc","docs":2,"clients_per_doc":3,"rate":5,"#),
        "{last}"
    );
    let v: serde_json::Value = serde_json::from_str(last).expect("last line is JSON");
    assert_eq!(v["converged"], true, "{last}");
    assert_eq!(v["failures"].as_u64(), Some(0), "{last}");
    // 6 clients at 5 edits/s for 1.5 s: about 45 edits, each seen by 2 peers.
    let sent = v["edits_sent"].as_u64().unwrap();
    assert!((20..=60).contains(&sent), "edits_sent {sent}");
    let delivered = v["edits_delivered_per_s"].as_f64().unwrap();
    assert!(delivered > 0.0, "edits_delivered_per_s {delivered}");
    let latency = &v["latency_ms"];
    for q in ["p50", "p90", "p99", "p999", "max"] {
        assert!(
            latency[q].as_f64().is_some_and(|ms| ms > 0.0),
            "latency {q}: {latency}"
        );
    }
    assert!(latency["p50"].as_f64() <= latency["max"].as_f64());
    assert!(v["load_cpu_percent"].is_number());
    assert!(v["server_cpu_percent"].is_number());
    assert!(v["server_rss_bytes"].as_u64().is_some_and(|b| b > 0));
    assert!(v["server_peak_rss_bytes"].as_u64().is_some_and(|b| b > 0));

    shutdown.cancel();
    server.await.unwrap().unwrap();
}

#[actix_rt::test]
async fn load_tool_idle_doc_mode_stays_connected() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    // Pings every 100 ms and a 400 ms timeout: the idle clients stay well past
    // it, so they stay connected only if they answer the pings.
    let config = roomcast_server::Config {
        persistence: "off".into(),
        http_workers: 1,
        room_threads: 1,
        heartbeat_interval: Duration::from_millis(100),
        heartbeat_timeout: Duration::from_millis(400),
        ..Default::default()
    };
    let shutdown = CancellationToken::new();
    let server = actix_rt::spawn(roomcast_server::run(listener, config, shutdown.clone()));

    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_roomcast-load"))
            .args([
                "--url",
                &format!("ws://127.0.0.1:{port}"),
                "--doc",
                "--idle",
            ])
            .args([
                "--docs",
                "2",
                "--clients-per-doc",
                "3",
                "--duration",
                "1.5",
                "--warmup",
                "0.5",
                "--json",
            ])
            .args(["--server-pid", &std::process::id().to_string()])
            .output()
            .expect("run roomcast-load")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "roomcast-load failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().expect("some output");
    let v: serde_json::Value = serde_json::from_str(last).expect("last line is JSON");
    assert_eq!(v["mode"], "doc-idle", "{last}");
    assert_eq!(
        (v["docs"].as_u64(), v["clients_per_doc"].as_u64()),
        (Some(2), Some(3)),
        "{last}"
    );
    assert_eq!(v["joined"].as_u64(), Some(6), "{last}");
    assert_eq!(v["failures"].as_u64(), Some(0), "{last}");
    assert_eq!(v["disconnects"].as_u64(), Some(0), "{last}");
    assert!(v["load_cpu_percent"].is_number());
    assert!(v["server_cpu_percent"].is_number());
    assert!(v["server_rss_bytes"].as_u64().is_some_and(|b| b > 0));

    shutdown.cancel();
    server.await.unwrap().unwrap();
}
