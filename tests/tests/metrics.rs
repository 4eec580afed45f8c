//! `GET /metrics` after a scripted session shows the expected series with
//! plausible values. Metrics are process-wide (tests in this binary share them),
//! so values are checked as lower bounds.

use std::collections::HashMap;
use std::time::Duration;

use roomcast_e2e::{eventually, start, test_config};
use roomcast_protocol::games::arena::ArenaInput;
use roomcast_server::store::testing::TestDatabase;
use yrs::{Text, WriteTxn};

const WAIT: Duration = Duration::from_secs(10);

/// Parses Prometheus text into series (name with labels, as printed) → value.
fn parse(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The value of the series whose name is `name` and whose labels include all of `labels`.
fn value(metrics: &HashMap<String, f64>, name: &str, labels: &[&str]) -> f64 {
    metrics
        .iter()
        .filter(|(series, _)| {
            let (n, rest) = series.split_once('{').unwrap_or((series.as_str(), ""));
            n == name && labels.iter().all(|l| rest.contains(l))
        })
        .map(|(_, v)| *v)
        .sum()
}

#[actix_rt::test]
async fn metrics_after_a_scripted_session_are_plausible() {
    let db = TestDatabase::sqlite().unwrap();
    let store = db.config();
    let config = roomcast_server::Config {
        persistence: "on".into(),
        database_url: store.url.clone(),
        data_dir: store.data_dir.clone(),
        snapshot_intervals: vec![("arena".into(), Duration::from_millis(200))],
        ..test_config()
    };
    let server = start(config).await;
    let mut a = server.join("arena", "metrics").await;
    let mut b = server.join("arena", "metrics").await;
    a.send_input(1, &ArenaInput { dx: 1, dy: 0 }).await.unwrap();
    b.send_input(1, &ArenaInput { dx: -1, dy: 0 })
        .await
        .unwrap();
    for c in [&mut a, &mut b] {
        let id = c.player_id();
        c.wait_until(WAIT, |m| {
            m.entity::<roomcast_protocol::games::arena::ArenaPlayer>(id)
                .and_then(Result::ok)
                .is_some_and(|p| p.last_input == 1)
        })
        .await
        .unwrap();
    }
    let mut doc = server.join_doc("metrics").await;
    doc.edit(|txn| txn.get_or_insert_text("t").insert(txn, 0, "hello"))
        .await
        .unwrap();
    doc.wait_until(WAIT, |_| true).await.unwrap();
    a.close().await.unwrap();

    let m = eventually(WAIT, "metrics to show the session", || async {
        let (status, body) = server.http_get("/metrics").await;
        assert_eq!(status, 200);
        let m = parse(&body);
        let ready = value(&m, "roomcast_snapshots_total", &["kind=\"game\""]) >= 1.0
            && value(
                &m,
                "roomcast_persistence_write_seconds_count",
                &["op=\"doc_append\""],
            ) >= 1.0
            && value(&m, "roomcast_connections_closed_total", &["kind=\"game\""]) >= 1.0;
        ready.then_some(m)
    })
    .await;

    assert!(value(&m, "roomcast_connections_opened_total", &["kind=\"game\""]) >= 2.0);
    assert!(value(&m, "roomcast_connections_opened_total", &["kind=\"doc\""]) >= 1.0);
    assert!(value(&m, "roomcast_connections_open", &["kind=\"game\""]) >= 1.0);
    assert!(
        value(
            &m,
            "roomcast_connections_closed_total",
            &["kind=\"game\"", "code=\"1000\""]
        ) >= 1.0
    );
    assert!(
        value(
            &m,
            "roomcast_rooms_active",
            &["kind=\"game\"", "game=\"arena\""]
        ) >= 1.0
    );
    assert!(value(&m, "roomcast_rooms_active", &["kind=\"doc\""]) >= 1.0);
    assert!(value(&m, "roomcast_ticks_total", &["game=\"arena\""]) >= 1.0);
    assert!(
        value(
            &m,
            "roomcast_tick_duration_seconds_count",
            &["game=\"arena\""]
        ) >= 1.0
    );
    assert!(
        value(
            &m,
            "roomcast_tick_lateness_seconds_count",
            &["game=\"arena\""]
        ) >= 1.0
    );
    assert!(value(&m, "roomcast_messages_in_total", &["kind=\"game\""]) >= 2.0);
    assert!(value(&m, "roomcast_bytes_in_total", &["kind=\"game\""]) > 0.0);
    assert!(value(&m, "roomcast_messages_out_total", &["kind=\"game\""]) >= 2.0);
    assert!(value(&m, "roomcast_bytes_out_total", &["kind=\"game\""]) > 0.0);
    assert!(value(&m, "roomcast_bytes_out_total", &["kind=\"doc\""]) > 0.0);
    assert!(value(&m, "roomcast_doc_update_bytes_count", &[]) >= 1.0);
    assert!(
        value(
            &m,
            "roomcast_persistence_write_seconds_count",
            &["op=\"game_snapshot\""]
        ) >= 1.0
    );
    assert!(m
        .keys()
        .any(|k| k.starts_with("roomcast_store_pool_connections_in_use")));
    // Tick durations are plausible: well under a second on average.
    let ticks = value(
        &m,
        "roomcast_tick_duration_seconds_count",
        &["game=\"arena\""],
    );
    let total = value(
        &m,
        "roomcast_tick_duration_seconds_sum",
        &["game=\"arena\""],
    );
    assert!(total / ticks < 0.1, "mean tick {} s", total / ticks);
    // No room id is ever a label.
    assert!(
        !m.keys()
            .any(|k| k.contains("metrics\"") || k.contains("room=")),
        "room ids are not labels"
    );
    server.stop().await;
}
