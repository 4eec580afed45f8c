//! A game-room connection: handshake, inputs, and a mirror kept from the server's
//! snapshot and deltas.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use roomcast_protocol::{
    close, codec, state::Mirror, ClientMessage, ErrorMessage, Input, Join, Ping, Pong, Resume,
    ResumeToken, ServerMessage, Welcome, PROTOCOL_VERSION,
};
use serde::Serialize;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::{
    client_async_with_config,
    tungstenite::{
        self,
        protocol::{CloseFrame, WebSocketConfig},
        Message,
    },
    WebSocketStream,
};

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `ws://host:port`.
    #[error("bad url {0:?}: expected ws://host:port")]
    BadUrl(String),
    /// TCP or WebSocket failure (including an HTTP refusal of the upgrade).
    /// Boxed: tungstenite's error is large and this enum travels in every `Result`.
    #[error("websocket: {0}")]
    WebSocket(Box<tungstenite::Error>),
    /// TCP connect failure.
    #[error("connect: {0}")]
    Io(#[from] std::io::Error),
    /// The server sent bytes that do not decode.
    #[error("undecodable server message: {0}")]
    Decode(#[from] roomcast_protocol::CodecError),
    /// The server answered the join with something other than `Welcome`.
    #[error("unexpected reply to Join: {0}")]
    Handshake(String),
    /// The connection closed.
    #[error("connection closed: {0:?}")]
    Closed(Option<CloseInfo>),
    /// No answer in time.
    #[error("timed out waiting for the server")]
    Timeout,
}

impl From<tungstenite::Error> for ClientError {
    fn from(e: tungstenite::Error) -> Self {
        ClientError::WebSocket(Box::new(e))
    }
}

impl ClientError {
    /// The HTTP status when the server refused the upgrade (404 unknown game,
    /// 400 bad room name, ...).
    pub fn http_status(&self) -> Option<u16> {
        match self {
            ClientError::WebSocket(e) => match e.as_ref() {
                tungstenite::Error::Http(response) => Some(response.status().as_u16()),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Read buffer of a client socket. tungstenite's default (128 KiB) is zeroed on
/// every read, which dominated the load tool's CPU; frames here are small.
const READ_BUFFER_BYTES: usize = 8 * 1024;
/// How long `close` waits for the server's close frame.
const CLOSE_HANDSHAKE_WAIT: Duration = Duration::from_secs(1);

/// A close frame received from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// WebSocket close code.
    pub code: u16,
    /// Close reason text.
    pub reason: String,
}

/// Something the connection received (the mirror is already updated).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A snapshot replaced the mirror.
    Snapshot {
        /// Its tick.
        tick: u64,
    },
    /// A delta was applied.
    Delta {
        /// The new tick.
        tick: u64,
    },
    /// A delta did not fit the mirror; a resync was requested.
    OutOfStep,
    /// Answer to a ping.
    Pong(Pong),
    /// In-band error from the server.
    Error(ErrorMessage),
    /// The server closed the connection (`None`: no close frame).
    Closed(Option<CloseInfo>),
}

/// How to connect.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Resume an earlier player.
    pub resume: Option<Resume>,
    /// Set the socket's receive buffer (bytes), e.g. to simulate a slow reader.
    pub recv_buffer: Option<u32>,
    /// Time allowed for the handshake (default 10 s).
    pub handshake_timeout: Option<Duration>,
    /// Start from this mirror (the one of an earlier connection being resumed), so
    /// the server's resume delta applies to it.
    pub mirror: Option<Mirror>,
    /// Join token (sent as `?token=`), for servers with authentication on.
    pub token: Option<String>,
}

/// A joined game-room connection.
pub struct GameConnection {
    /// The socket.
    ws: WebSocketStream<TcpStream>,
    /// The server's welcome.
    welcome: Welcome,
    /// Room state from snapshot + deltas.
    mirror: Mirror,
    /// Set after a close was received.
    closed: Option<Option<CloseInfo>>,
    /// Binary bytes received so far (payload bytes of binary frames).
    bytes_received: u64,
    /// A delta did not fit the mirror: a `Resync` is owed (sent at the next
    /// `next_event`, so a cancelled call cannot lose it) or in flight until the
    /// snapshot arrives; further mismatched deltas are ignored meanwhile.
    resync: ResyncState,
}

/// Where a client is in recovering from an out-of-step mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResyncState {
    /// The mirror follows the deltas.
    InStep,
    /// A `Resync` must be sent.
    Owed,
    /// `Resync` sent; waiting for the snapshot.
    Requested,
}

/// Sends a close frame and reads until the server's close frame (at most
/// [`CLOSE_HANDSHAKE_WAIT`]): the handshake is complete then, and waiting for the
/// TCP end as well would cost the server's disconnect timeout.
pub(crate) async fn close_handshake(
    ws: &mut WebSocketStream<TcpStream>,
) -> Result<(), ClientError> {
    ws.close(None).await?;
    let drain = async {
        while let Some(Ok(message)) = ws.next().await {
            if message.is_close() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_HANDSHAKE_WAIT, drain).await;
    Ok(())
}

/// Splits `ws://host:port[/...]` into the `host:port` to connect to.
fn authority(base: &str) -> Result<String, ClientError> {
    let rest = base
        .strip_prefix("ws://")
        .ok_or_else(|| ClientError::BadUrl(base.to_owned()))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(ClientError::BadUrl(base.to_owned()));
    }
    Ok(host.to_owned())
}

/// Opens a WebSocket to `url` (a full `ws://host:port/path`), with socket options.
pub async fn open_socket(
    url: &str,
    recv_buffer: Option<u32>,
) -> Result<WebSocketStream<TcpStream>, ClientError> {
    let host = authority(url)?;
    let addr = tokio::net::lookup_host(&host)
        .await?
        .next()
        .ok_or_else(|| ClientError::BadUrl(url.to_owned()))?;
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size)?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    let (ws, _response) = client_async_with_config(url, stream, Some(config)).await?;
    Ok(ws)
}

/// The URL of a game room under a server base URL (`ws://host:port`).
pub fn game_url(base: &str, game: &str, room: &str) -> String {
    format!("{}/game/{game}/{room}", base.trim_end_matches('/'))
}

/// `url` with `?token=` appended when there is a token (JWTs are URL-safe).
pub fn with_token(url: String, token: Option<&str>) -> String {
    match token {
        Some(token) => format!("{url}?token={token}"),
        None => url,
    }
}

pub(crate) fn close_info(frame: Option<CloseFrame>) -> Option<CloseInfo> {
    frame.map(|f| CloseInfo {
        code: u16::from(f.code),
        reason: f.reason.to_string(),
    })
}

impl GameConnection {
    /// Connects to `base` (`ws://host:port`), joins `game`/`room`, and waits for
    /// the `Welcome`.
    pub async fn connect(
        base: &str,
        game: &str,
        room: &str,
        options: ConnectOptions,
    ) -> Result<Self, ClientError> {
        let timeout = options.handshake_timeout.unwrap_or(Duration::from_secs(10));
        tokio::time::timeout(timeout, Self::connect_inner(base, game, room, options))
            .await
            .map_err(|_| ClientError::Timeout)?
    }

    async fn connect_inner(
        base: &str,
        game: &str,
        room: &str,
        options: ConnectOptions,
    ) -> Result<Self, ClientError> {
        let url = with_token(game_url(base, game, room), options.token.as_deref());
        let mut ws = open_socket(&url, options.recv_buffer).await?;
        let join = ClientMessage::Join(Join {
            protocol: PROTOCOL_VERSION,
            resume: options.resume,
        });
        ws.send(Message::binary(join.encode())).await?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(bytes))) => match ServerMessage::decode(&bytes)? {
                    ServerMessage::Welcome(welcome) => {
                        let mirror = options.mirror.unwrap_or_default();
                        return Ok(Self {
                            ws,
                            welcome,
                            mirror,
                            closed: None,
                            bytes_received: 0,
                            resync: ResyncState::InStep,
                        });
                    }
                    other => return Err(ClientError::Handshake(format!("{other:?}"))),
                },
                Some(Ok(Message::Close(frame))) => {
                    return Err(ClientError::Closed(close_info(frame)))
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => return Err(ClientError::Closed(None)),
            }
        }
    }

    /// The server's welcome (player id, resume token, tick rate).
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// This client's player id.
    pub fn player_id(&self) -> u32 {
        self.welcome.player_id
    }

    /// What to present to resume this player later.
    pub fn resume_request(&self) -> Resume {
        Resume {
            token: self.welcome.resume_token,
            last_tick: self.mirror.tick().unwrap_or(0),
        }
    }

    /// Options that resume this player on a new connection, keeping this mirror.
    pub fn resume_options(&self) -> ConnectOptions {
        ConnectOptions {
            resume: Some(self.resume_request()),
            mirror: Some(self.mirror.clone()),
            ..Default::default()
        }
    }

    /// The resume token.
    pub fn resume_token(&self) -> ResumeToken {
        self.welcome.resume_token
    }

    /// The room state as this client knows it.
    pub fn mirror(&self) -> &Mirror {
        &self.mirror
    }

    /// Payload bytes of binary frames received so far.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Sends one input with the game's payload type.
    pub async fn send_input<T: Serialize>(
        &mut self,
        seq: u32,
        input: &T,
    ) -> Result<(), ClientError> {
        let payload = Bytes::from(codec::encode(input)?);
        self.send(&ClientMessage::Input(Input { seq, payload }))
            .await
    }

    /// Sends any client message.
    pub async fn send(&mut self, message: &ClientMessage) -> Result<(), ClientError> {
        self.ws.send(Message::binary(message.encode())).await?;
        Ok(())
    }

    /// Sends a raw WebSocket message (for tests of bad input).
    pub async fn send_raw(&mut self, message: Message) -> Result<(), ClientError> {
        self.ws.send(message).await?;
        Ok(())
    }

    /// Sends a ping carrying `client_time_us`.
    pub async fn ping(&mut self, client_time_us: u64) -> Result<(), ClientError> {
        self.send(&ClientMessage::Ping(Ping { client_time_us }))
            .await
    }

    /// Sends `Leave`; the server closes with 1000.
    pub async fn leave(&mut self) -> Result<(), ClientError> {
        self.send(&ClientMessage::Leave).await
    }

    /// Waits for the next event and applies it to the mirror. After `Closed`,
    /// keeps returning `Closed`.
    pub async fn next_event(&mut self) -> Result<Event, ClientError> {
        if let Some(info) = &self.closed {
            return Ok(Event::Closed(info.clone()));
        }
        if self.resync == ResyncState::Owed {
            self.send(&ClientMessage::Resync).await?;
            self.resync = ResyncState::Requested;
        }
        loop {
            let message = match self.ws.next().await {
                Some(Ok(m)) => m,
                Some(Err(tungstenite::Error::ConnectionClosed)) | None => {
                    self.closed = Some(None);
                    return Ok(Event::Closed(None));
                }
                Some(Err(e)) => {
                    self.closed = Some(None);
                    return Err(e.into());
                }
            };
            match message {
                Message::Binary(bytes) => {
                    self.bytes_received += bytes.len() as u64;
                    return self.apply(&bytes);
                }
                Message::Close(frame) => {
                    let info = close_info(frame);
                    self.closed = Some(info.clone());
                    return Ok(Event::Closed(info));
                }
                _ => continue,
            }
        }
    }

    fn apply(&mut self, bytes: &[u8]) -> Result<Event, ClientError> {
        Ok(match ServerMessage::decode(bytes)? {
            ServerMessage::Snapshot(s) => {
                self.mirror.apply_snapshot(&s);
                self.resync = ResyncState::InStep;
                Event::Snapshot { tick: s.tick }
            }
            ServerMessage::Delta(d) => match self.mirror.apply_delta(&d) {
                Ok(()) => Event::Delta { tick: d.tick },
                Err(_) => {
                    if self.resync == ResyncState::InStep {
                        self.resync = ResyncState::Owed;
                    }
                    Event::OutOfStep
                }
            },
            ServerMessage::Pong(p) => Event::Pong(p),
            ServerMessage::Error(e) => Event::Error(e),
            ServerMessage::Welcome(w) => Event::Error(ErrorMessage {
                code: close::error::UNEXPECTED_MESSAGE,
                message: format!("unexpected second Welcome: {w:?}"),
            }),
        })
    }

    /// Reads events until `done(mirror)` holds, or `timeout` passes.
    pub async fn wait_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&Mirror) -> bool,
    ) -> Result<(), ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        while !done(&self.mirror) {
            match tokio::time::timeout_at(deadline, self.next_event()).await {
                Err(_) => return Err(ClientError::Timeout),
                Ok(Ok(Event::Closed(info))) => return Err(ClientError::Closed(info)),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads until the server closes; returns its close frame (`None` if none came).
    pub async fn wait_closed(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<CloseInfo>, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.next_event()).await {
                Err(_) => return Err(ClientError::Timeout),
                Ok(Ok(Event::Closed(info))) => return Ok(info),
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return Ok(None),
            }
        }
    }

    /// Drops the socket without a close handshake (a crashed client).
    pub fn drop_abruptly(self) {
        drop(self.ws);
    }

    /// Closes politely: sends a close frame, then reads until the server's close
    /// arrives (at most one second), so nothing sent before is lost to a reset.
    pub async fn close(mut self) -> Result<(), ClientError> {
        close_handshake(&mut self.ws).await
    }

    /// Sends `Leave` and waits (at most one second) for the server's close: the
    /// player is removed at once instead of waiting out its resume grace.
    pub async fn leave_and_close(mut self) -> Result<(), ClientError> {
        self.leave().await?;
        match self.wait_closed(CLOSE_HANDSHAKE_WAIT).await {
            // The server closed (its answer to Leave): the handshake is done.
            Ok(_) => Ok(()),
            // It did not in time: close from this side.
            Err(_) => self.close().await,
        }
    }
}
