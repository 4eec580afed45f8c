//! Crash safety: the real `roomcast` binary runs as a child process, clients edit
//! a doc and play a game room, and the test kills the server with SIGKILL in the
//! middle of the edits. After a restart on the same database:
//! - every edit an observing client had received before the kill is in the doc
//!   (updates are stored before they are relayed);
//! - the game room resumes from a snapshot no older than its snapshot interval.
//!
//! Same body against a fresh PostgreSQL database and a fresh SQLite file.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use roomcast_client::{ConnectOptions, DocConnection, DocOptions, GameConnection};
use roomcast_protocol::games::counter::{CounterInput, CounterScore, TOTAL_ENTITY};
use roomcast_server::store::testing::TestDatabase;
use yrs::{GetString, Text, Transact, WriteTxn};

const WAIT: Duration = Duration::from_secs(15);
/// Counter ticks at 10 Hz; snapshots every second = every 10 ticks.
const SNAPSHOT_INTERVAL_TICKS: u64 = 10;
/// Slack for the snapshot taken just before the kill still being written.
const WRITE_SLACK_TICKS: u64 = 5;

/// A roomcast child process and the port it listens on.
struct ServerProcess {
    child: Child,
    url: String,
    /// The log reader; yields the warnings the server logged once it exits.
    log: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl ServerProcess {
    /// Starts the binary on an ephemeral port with persistence into `db`.
    fn start(db: &TestDatabase) -> Self {
        let store = db.config();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_roomcast"));
        cmd.args([
            "--bind",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--http-workers",
            "1",
        ])
        .args(["--snapshot-interval", "counter=1s"])
        .arg("--data-dir")
        .arg(&store.data_dir)
        .env("RUST_LOG", "info")
        .env_remove("ROOMCAST_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        if let Some(url) = &store.url {
            cmd.args(["--database-url", url]);
        }
        let mut child = cmd.spawn().expect("start roomcast");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        // Keep draining the log so the child never blocks on a full pipe.
        let log = std::thread::spawn(move || {
            let mut warnings = Vec::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(rec) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if rec["level"] == "WARN" || rec["level"] == "ERROR" {
                    warnings.push(line.clone());
                }
                if rec["fields"]["message"] == "roomcast listening" {
                    let _ = tx.send(
                        rec["fields"]["addr"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                }
            }
            warnings
        });
        let addr = rx.recv_timeout(WAIT).expect("roomcast reports its address");
        Self {
            child,
            url: format!("ws://{addr}"),
            log: Some(log),
        }
    }

    /// SIGKILL: no flush, no goodbye.
    fn kill(mut self) {
        self.child.kill().expect("kill roomcast");
        self.child.wait().expect("reap roomcast");
    }

    /// SIGTERM; the server must flush and exit 0 within a bounded time, with every
    /// connection closed and both persistence writers drained in time.
    fn stop(mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("poll roomcast") {
                break status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "roomcast did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "graceful shutdown exits 0, got {status}");
        let warnings = self
            .log
            .take()
            .map(|l| l.join().unwrap())
            .unwrap_or_default();
        let unclean: Vec<_> = warnings.iter().filter(|w| w.contains("in time")).collect();
        assert!(unclean.is_empty(), "shutdown was not clean: {unclean:#?}");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn total(m: &roomcast_client::Mirror) -> Option<i64> {
    m.entity::<CounterScore>(TOTAL_ENTITY)
        .and_then(Result::ok)
        .map(|s| s.score)
}

async fn killed_mid_edit_keeps_every_observed_edit(db: TestDatabase) {
    let server = ServerProcess::start(&db);
    let mut writer = DocConnection::connect(&server.url, "crash", DocOptions::default())
        .await
        .unwrap();
    let mut observer = DocConnection::connect(&server.url, "crash", DocOptions::default())
        .await
        .unwrap();
    writer.wait_synced(WAIT).await.unwrap();
    observer.wait_synced(WAIT).await.unwrap();
    let mut player =
        GameConnection::connect(&server.url, "counter", "crash", ConnectOptions::default())
            .await
            .unwrap();

    // Edit and play; kill the server after the observer has seen 60 edits, while
    // the writer keeps editing.
    let text = observer.doc().get_or_insert_text("t");
    let mut seen = String::new();
    let mut game_tick = 0;
    for i in 0..10_000u32 {
        writer
            .edit(|txn| txn.get_or_insert_text("t").push(txn, &format!("<{i}>")))
            .await
            .unwrap();
        if i % 5 == 0 {
            player
                .send_input(i, &CounterInput { add: 1 })
                .await
                .unwrap();
        }
        // Let the observer and the player catch up with what has arrived.
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(2), observer.next_event()).await
        {}
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(1), player.next_event()).await
        {}
        seen = text.get_string(&observer.doc().transact());
        game_tick = player.mirror().tick().unwrap_or(0);
        if seen.matches('<').count() >= 60 && game_tick > 2 * SNAPSHOT_INTERVAL_TICKS {
            break;
        }
    }
    assert!(
        seen.matches('<').count() >= 60,
        "observer saw too little before the kill"
    );
    server.kill();
    drop((writer, observer, player));

    let server = ServerProcess::start(&db);
    let mut fresh = DocConnection::connect(&server.url, "crash", DocOptions::default())
        .await
        .unwrap();
    fresh.wait_synced(WAIT).await.unwrap();
    let restored = fresh
        .doc()
        .get_or_insert_text("t")
        .get_string(&fresh.doc().transact());
    assert!(
        restored.starts_with(&seen),
        "every edit the observer saw survives the crash\nseen:     {seen}\nrestored: {restored}"
    );
    let mut back =
        GameConnection::connect(&server.url, "counter", "crash", ConnectOptions::default())
            .await
            .unwrap();
    back.wait_until(WAIT, |m| m.tick().is_some()).await.unwrap();
    let restored_tick = back.mirror().tick().unwrap();
    assert!(
        restored_tick + SNAPSHOT_INTERVAL_TICKS + WRITE_SLACK_TICKS >= game_tick,
        "game resumed at tick {restored_tick}, the player had seen tick {game_tick}"
    );
    assert!(
        total(back.mirror()).unwrap_or(0) > 0,
        "the game state came back"
    );
    server.stop();
}

#[actix_rt::test]
async fn crash_postgres() {
    killed_mid_edit_keeps_every_observed_edit(TestDatabase::postgres().await.unwrap()).await;
}

#[actix_rt::test]
async fn crash_sqlite() {
    killed_mid_edit_keeps_every_observed_edit(TestDatabase::sqlite().unwrap()).await;
}
