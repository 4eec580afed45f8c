//! Helpers for the end-to-end tests: start a real roomcast server on an ephemeral
//! loopback port (through the same `Server::run` the binary uses), connect real
//! clients, and wait on conditions with a timeout instead of sleeping.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use roomcast_client::{ConnectOptions, GameConnection};
use roomcast_server::{room::RoomRegistry, Config, Server};
use tokio_util::sync::CancellationToken;

/// A running server.
pub struct TestServer {
    /// `ws://127.0.0.1:PORT`.
    pub url: String,
    /// `http://127.0.0.1:PORT`.
    pub http_url: String,
    /// The server's room registry (for looking at rooms from the test).
    pub registry: Arc<RoomRegistry>,
    /// Cancels the server.
    pub shutdown: CancellationToken,
    /// The server task.
    task: actix_rt::task::JoinHandle<Result<(), roomcast_server::ServerError>>,
}

/// A config suited to tests: one HTTP worker, two room threads, quick timeouts,
/// persistence off (the persistence tests name their own database).
pub fn test_config() -> Config {
    Config {
        persistence: "off".into(),
        http_workers: 1,
        room_threads: 2,
        shutdown_timeout: Duration::from_secs(5),
        ..Config::default()
    }
}

/// A test config persisting into the fresh database `db`.
pub fn persistent_config(db: &roomcast_server::store::testing::TestDatabase) -> Config {
    let store = db.config();
    Config {
        persistence: "on".into(),
        database_url: store.url.clone(),
        data_dir: store.data_dir.clone(),
        ..test_config()
    }
}

/// For each named `async fn name(db: TestDatabase)`, a module `name` with one test
/// per store kind (`postgres`, `sqlite`), each on a fresh database.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[actix_rt::test]
            async fn postgres() {
                let db = roomcast_server::store::testing::TestDatabase::postgres().await.expect("fresh postgres database");
                super::$name(db).await;
            }
            #[actix_rt::test]
            async fn sqlite() {
                let db = roomcast_server::store::testing::TestDatabase::sqlite().expect("fresh sqlite directory");
                super::$name(db).await;
            }
        }
    )*};
}

/// Starts a server with `config`; `setup` may register extra games.
pub async fn start_with(config: Config, setup: impl FnOnce(&mut Server)) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    let port = listener.local_addr().expect("local addr").port();
    let mut server = Server::new(config);
    setup(&mut server);
    let registry = server.registry();
    let shutdown = CancellationToken::new();
    let task = actix_rt::spawn(server.run(listener, shutdown.clone()));
    TestServer {
        url: format!("ws://127.0.0.1:{port}"),
        http_url: format!("http://127.0.0.1:{port}"),
        registry,
        shutdown,
        task,
    }
}

/// Starts a server with `config` and the built-in games.
pub async fn start(config: Config) -> TestServer {
    start_with(config, |_| {}).await
}

impl TestServer {
    /// Joins `game`/`room` as a new player.
    pub async fn join(&self, game: &str, room: &str) -> GameConnection {
        self.join_with(game, room, ConnectOptions::default()).await
    }

    /// Joins with options.
    pub async fn join_with(
        &self,
        game: &str,
        room: &str,
        options: ConnectOptions,
    ) -> GameConnection {
        GameConnection::connect(&self.url, game, room, options)
            .await
            .unwrap_or_else(|e| panic!("join {game}/{room}: {e}"))
    }

    /// Shuts the server down gracefully and waits for `run` to return.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let result = tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("server stops within 20 s")
            .expect("server task did not panic");
        result.expect("server run returned an error");
    }
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Appends `n` as a lib0 varuint (the y-websocket encoding of lengths,
/// clients and clocks), for tests that write bytes by hand.
pub fn var_uint(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The registry key of a game room.
pub fn game_key(game: &str, room: &str) -> roomcast_server::room::RoomKey {
    roomcast_server::room::RoomKey::Game {
        game: game.to_owned(),
        room: roomcast_server::room::RoomName::parse(room).expect("valid room name"),
    }
}

impl TestServer {
    /// The published state of a live room at `tick` (`None` if the room is gone
    /// or no longer holds that tick).
    pub async fn state_at(
        &self,
        game: &str,
        room: &str,
        tick: u64,
    ) -> Option<roomcast_server::room::messages::StateView> {
        let entry = self.registry.get(&game_key(game, room))?;
        entry
            .addr
            .game()?
            .send(roomcast_server::room::messages::InspectState {
                at_tick: Some(tick),
            })
            .await
            .ok()?
    }

    /// Figures of a live room.
    pub async fn describe(
        &self,
        game: &str,
        room: &str,
    ) -> Option<roomcast_server::room::messages::GameRoomInfo> {
        let entry = self.registry.get(&game_key(game, room))?;
        entry
            .addr
            .game()?
            .send(roomcast_server::room::messages::DescribeRoom::default())
            .await
            .ok()
    }
}

impl TestServer {
    /// Joins doc `name` and waits until it holds the server's state.
    pub async fn join_doc(&self, name: &str) -> roomcast_client::DocConnection {
        self.join_doc_with(name, roomcast_client::DocOptions::default())
            .await
    }

    /// Joins doc `name` with options and waits until synced.
    pub async fn join_doc_with(
        &self,
        name: &str,
        options: roomcast_client::DocOptions,
    ) -> roomcast_client::DocConnection {
        let mut conn = roomcast_client::DocConnection::connect(&self.url, name, options)
            .await
            .unwrap_or_else(|e| panic!("join doc {name}: {e}"));
        conn.wait_synced(Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("sync doc {name}: {e}"));
        conn
    }

    /// Figures and content of a live doc room.
    pub async fn inspect_doc(
        &self,
        name: &str,
    ) -> Option<roomcast_server::room::messages::DocRoomInfo> {
        let key = roomcast_server::room::RoomKey::Doc {
            name: roomcast_server::room::RoomName::parse(name).expect("valid doc name"),
        };
        let entry = self.registry.get(&key)?;
        entry
            .addr
            .doc()?
            .send(roomcast_server::room::messages::InspectDoc)
            .await
            .ok()
    }
}

impl TestServer {
    /// `GET path` over a plain HTTP/1.1 connection: (status, body).
    pub async fn http_get(&self, path: &str) -> (u16, String) {
        self.http_get_with_token(path, None).await
    }

    /// `GET path` with `Authorization: Bearer token` when given: (status, body).
    pub async fn http_get_with_token(&self, path: &str, token: Option<&str>) -> (u16, String) {
        self.http_request("GET", path, token).await
    }

    /// `method path` (no body) with an optional bearer token: (status, body).
    pub async fn http_request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
    ) -> (u16, String) {
        self.http_request_with_body(method, path, token, "").await
    }

    /// `method path` with a JSON body and an optional bearer token: (status, body).
    pub async fn http_request_with_body(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, String) {
        let host = self.http_url.trim_start_matches("http://");
        http_request(host, method, path, token, body).await
    }
}

/// `method path` to `host` (`127.0.0.1:PORT`) over a plain HTTP/1.1 connection,
/// with a JSON body and an optional bearer token: (status, body).
pub async fn http_request(
    host: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .expect("connect for HTTP");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send HTTP request");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .expect("read HTTP response");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
