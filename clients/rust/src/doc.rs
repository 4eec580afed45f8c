//! A doc-room connection: a `yrs::Doc` kept in sync with a roomcast doc room over
//! the y-websocket protocol, like the npm `WebsocketProvider` does.
//!
//! On connect it sends its sync step 1; it answers the server's step 1 with step 2
//! and applies what the server sends. Local edits made through
//! [`DocConnection::edit`] are sent as updates; awareness (presence) is set with
//! [`DocConnection::set_awareness`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::{tungstenite::Message as WsMessage, WebSocketStream};
use yrs::block::ClientID;
use yrs::sync::{Awareness, Message, MessageReader, SyncMessage};
use yrs::updates::decoder::{Decode, DecoderV1};
use yrs::updates::encoder::Encode;
use yrs::{Doc, OffsetKind, Options, ReadTxn, StateVector, Transact, TransactionMut, Update};

use crate::game::{close_handshake, close_info, open_socket, ClientError, CloseInfo};

/// Something a doc connection received (already applied to the doc/awareness).
#[derive(Debug, Clone, PartialEq)]
pub enum DocEvent {
    /// The server's sync step 2 arrived: the doc now holds everything the server had.
    Synced,
    /// A document update was applied.
    Update,
    /// Awareness states changed.
    Awareness,
    /// Something else (the server's step 1, answered; an ignored message).
    Other,
    /// The server closed the connection.
    Closed(Option<CloseInfo>),
}

/// How to connect.
#[derive(Debug, Clone, Default)]
pub struct DocOptions {
    /// Start from this document (e.g. one with offline edits) instead of an empty
    /// one made by [`new_doc`].
    pub doc: Option<Doc>,
    /// Socket receive buffer, bytes.
    pub recv_buffer: Option<u32>,
    /// Join token (sent as `?token=`), for servers with authentication on.
    pub token: Option<String>,
}

/// A connection to one doc room.
pub struct DocConnection {
    /// The socket.
    ws: WebSocketStream<TcpStream>,
    /// The local replica and its awareness states.
    awareness: Awareness,
    /// Updates the local doc emitted, captured by an observer.
    captured: Arc<Mutex<Vec<Vec<u8>>>>,
    /// True once the server's step 2 was applied.
    synced: bool,
    /// Set once the connection closed.
    closed: Option<Option<CloseInfo>>,
    /// Binary bytes received.
    bytes_received: u64,
    /// The reason of the server's "permission denied" auth message, if one came
    /// (a read-only member whose edit was dropped).
    permission_denied: Option<String>,
}

/// The URL of a doc under a server base URL (`ws://host:port`).
pub fn doc_url(base: &str, name: &str) -> String {
    format!("{}/doc/{name}", base.trim_end_matches('/'))
}

/// A new replica that counts text offsets in UTF-16 code units, as JavaScript
/// Yjs does, so indexes mean the same on both sides.
pub fn new_doc() -> Doc {
    Doc::with_options(Options {
        offset_kind: OffsetKind::Utf16,
        ..Options::default()
    })
}

fn frame(message: &Message) -> WsMessage {
    WsMessage::binary(message.encode_v1())
}

impl DocConnection {
    /// Connects to doc `name` on `base` (`ws://host:port`) and starts syncing
    /// (use [`DocConnection::wait_synced`] to wait for the server's state).
    pub async fn connect(base: &str, name: &str, options: DocOptions) -> Result<Self, ClientError> {
        let url = crate::game::with_token(doc_url(base, name), options.token.as_deref());
        let ws = open_socket(&url, options.recv_buffer).await?;
        let doc = options.doc.unwrap_or_else(new_doc);
        let captured = Arc::new(Mutex::new(Vec::new()));
        let sink = captured.clone();
        doc.observe_update_v1("roomcast-client", move |_txn, event| {
            sink.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(event.update.clone());
        })
        .map_err(|e| ClientError::Handshake(format!("cannot observe the local doc: {e}")))?;
        let mut conn = Self {
            ws,
            awareness: Awareness::new(doc),
            captured,
            synced: false,
            closed: None,
            bytes_received: 0,
            permission_denied: None,
        };
        let sv = conn.awareness.doc().transact().state_vector();
        conn.ws
            .send(frame(&Message::Sync(SyncMessage::SyncStep1(sv))))
            .await?;
        Ok(conn)
    }

    /// The reason of the server's "permission denied" message, if one came: the
    /// server dropped an edit of this read-only member.
    pub fn permission_denied(&self) -> Option<&str> {
        self.permission_denied.as_deref()
    }

    /// The local replica.
    pub fn doc(&self) -> &Doc {
        self.awareness.doc()
    }

    /// The awareness states known locally (own and remote).
    pub fn awareness(&self) -> &Awareness {
        &self.awareness
    }

    /// This replica's awareness client id.
    pub fn client_id(&self) -> ClientID {
        self.awareness.client_id()
    }

    /// True once the server's state has been received.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// Binary bytes received so far.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    fn take_captured(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.captured.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Edits the local doc in one transaction and sends the resulting update.
    pub async fn edit<R>(
        &mut self,
        f: impl FnOnce(&mut TransactionMut) -> R,
    ) -> Result<R, ClientError> {
        self.take_captured();
        let result = {
            let mut txn = self.awareness.doc().transact_mut();
            f(&mut txn)
        };
        for update in self.take_captured() {
            self.ws
                .send(frame(&Message::Sync(SyncMessage::Update(update))))
                .await?;
        }
        Ok(result)
    }

    /// Sets this replica's awareness state (any JSON) and sends it.
    pub async fn set_awareness(&mut self, state: &serde_json::Value) -> Result<(), ClientError> {
        self.awareness.set_local_state_raw(state.to_string());
        self.send_own_awareness().await
    }

    /// Clears this replica's awareness state (as a client does when it leaves).
    pub async fn clear_awareness(&mut self) -> Result<(), ClientError> {
        self.awareness.clean_local_state();
        self.send_own_awareness().await
    }

    async fn send_own_awareness(&mut self) -> Result<(), ClientError> {
        let update = self
            .awareness
            .update_with_clients([self.client_id()])
            .map_err(|e| ClientError::Handshake(format!("awareness: {e}")))?;
        self.ws.send(frame(&Message::Awareness(update))).await?;
        Ok(())
    }

    /// Sends raw bytes as one binary frame (for tests of bad input).
    pub async fn send_raw(&mut self, bytes: Vec<u8>) -> Result<(), ClientError> {
        self.ws.send(WsMessage::binary(bytes)).await?;
        Ok(())
    }

    /// Waits for the next event and applies it.
    pub async fn next_event(&mut self) -> Result<DocEvent, ClientError> {
        if let Some(info) = &self.closed {
            return Ok(DocEvent::Closed(info.clone()));
        }
        loop {
            let bytes = match self.ws.next().await {
                Some(Ok(WsMessage::Binary(bytes))) => bytes,
                Some(Ok(WsMessage::Close(frame))) => {
                    let info = close_info(frame);
                    self.closed = Some(info.clone());
                    return Ok(DocEvent::Closed(info));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    self.closed = Some(None);
                    return Err(e.into());
                }
                None => {
                    self.closed = Some(None);
                    return Ok(DocEvent::Closed(None));
                }
            };
            self.bytes_received += bytes.len() as u64;
            return self.apply_frame(&bytes).await;
        }
    }

    async fn apply_frame(&mut self, bytes: &[u8]) -> Result<DocEvent, ClientError> {
        let mut decoder = DecoderV1::from(bytes);
        let messages: Vec<Message> = MessageReader::new(&mut decoder)
            .collect::<Result<_, _>>()
            .map_err(|e| ClientError::Handshake(format!("undecodable y-websocket frame: {e}")))?;
        let mut event = DocEvent::Other;
        for message in messages {
            match message {
                Message::Sync(SyncMessage::SyncStep1(sv)) => {
                    let diff = self
                        .awareness
                        .doc()
                        .transact()
                        .encode_state_as_update_v1(&sv);
                    self.ws
                        .send(frame(&Message::Sync(SyncMessage::SyncStep2(diff))))
                        .await?;
                }
                Message::Sync(SyncMessage::SyncStep2(update)) => {
                    self.apply_remote(&update)?;
                    self.synced = true;
                    event = DocEvent::Synced;
                }
                Message::Sync(SyncMessage::Update(update)) => {
                    self.apply_remote(&update)?;
                    if event == DocEvent::Other {
                        event = DocEvent::Update;
                    }
                }
                Message::Awareness(update) => {
                    self.awareness.apply_update(update).map_err(|e| {
                        ClientError::Handshake(format!("bad awareness from server: {e}"))
                    })?;
                    if event == DocEvent::Other {
                        event = DocEvent::Awareness;
                    }
                }
                Message::AwarenessQuery => self.send_own_awareness().await?,
                Message::Auth(reason) => {
                    self.permission_denied = Some(reason.unwrap_or_default());
                }
                Message::Custom(..) => {}
            }
        }
        Ok(event)
    }

    fn apply_remote(&mut self, update: &[u8]) -> Result<(), ClientError> {
        let update = Update::decode_v1(update)
            .map_err(|e| ClientError::Handshake(format!("undecodable update from server: {e}")))?;
        self.awareness
            .doc()
            .transact_mut()
            .apply_update(update)
            .map_err(|e| ClientError::Handshake(format!("server update does not apply: {e}")))?;
        // Remote changes are not ours to send back.
        self.take_captured();
        Ok(())
    }

    /// Reads events until the server's state has arrived.
    pub async fn wait_synced(&mut self, timeout: Duration) -> Result<(), ClientError> {
        self.wait_until(timeout, |_| true).await
    }

    /// Reads events until synced and `done(doc)` holds, or `timeout` passes.
    pub async fn wait_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&Doc) -> bool,
    ) -> Result<(), ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        while !(self.synced && done(self.awareness.doc())) {
            match tokio::time::timeout_at(deadline, self.next_event()).await {
                Err(_) => return Err(ClientError::Timeout),
                Ok(Ok(DocEvent::Closed(info))) => return Err(ClientError::Closed(info)),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads until the awareness states satisfy `done`, or `timeout` passes.
    pub async fn wait_awareness(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&Awareness) -> bool,
    ) -> Result<(), ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        while !done(&self.awareness) {
            match tokio::time::timeout_at(deadline, self.next_event()).await {
                Err(_) => return Err(ClientError::Timeout),
                Ok(Ok(DocEvent::Closed(info))) => return Err(ClientError::Closed(info)),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads until the server closes; returns its close frame.
    pub async fn wait_closed(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<CloseInfo>, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.next_event()).await {
                Err(_) => return Err(ClientError::Timeout),
                Ok(Ok(DocEvent::Closed(info))) => return Ok(info),
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return Ok(None),
            }
        }
    }

    /// The whole local document as one v1 update.
    pub fn encode_state(&self) -> Vec<u8> {
        self.awareness
            .doc()
            .transact()
            .encode_state_as_update_v1(&StateVector::default())
    }

    /// Closes politely (close frame, then waits up to a second for the server's).
    pub async fn close(mut self) -> Result<(), ClientError> {
        close_handshake(&mut self.ws).await
    }

    /// Drops the socket without a close handshake.
    pub fn drop_abruptly(self) {
        drop(self.ws);
    }

    /// Gives back the local replica (e.g. to reconnect with its offline edits).
    pub fn into_doc(self) -> Doc {
        self.awareness.doc().clone()
    }
}
