//! A doc-room session: joins its document right away (y-websocket has no join
//! message), then decodes each frame's y-websocket messages and hands them to the
//! room, closing with the refusal's code when the room refuses one.

use std::sync::Arc;

use actix::Addr;
use actix_ws::{AggregatedMessageStream, CloseCode, CloseReason, Session};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::join::{join_room, Joined};
use super::member_loop::{serve_member, Flow, FrameHandler};
use super::socket::{self, close_reason, ConnLimits};
use crate::metrics::ConnectionMetrics;
use crate::room::{
    doc_room::{close_code, DocRoom, DocSettings},
    member::Latency,
    messages::{Departure, DocMessages, JoinDoc, LeaveDoc},
    ConnId, RoomName, RoomRegistry,
};
use crate::yjs::wire;

/// Everything a doc session needs besides its socket.
pub struct DocSession {
    /// This connection's id.
    pub conn: ConnId,
    /// The document name of the URL.
    pub name: RoomName,
    /// Where rooms are looked up.
    pub registry: Arc<RoomRegistry>,
    /// Settings for a doc room this session may create.
    pub doc_settings: DocSettings,
    /// Connection limits.
    pub limits: ConnLimits,
    /// Frames a member's outbox holds.
    pub outbox_frames: usize,
    /// Cancelled at server shutdown.
    pub shutdown: CancellationToken,
    /// Read-only: its updates are dropped (it is told so once), its awareness relayed.
    pub read_only: bool,
    /// Who the join token named (`None` with authentication off).
    pub user: Option<String>,
}

/// Forwards a doc member's frames to its room.
struct DocFrames<'a> {
    /// The member's room.
    addr: &'a Addr<DocRoom>,
    /// The member's connection.
    conn: ConnId,
}

impl FrameHandler for DocFrames<'_> {
    async fn on_binary(&mut self, _ws: &mut Session, bytes: Bytes) -> Flow {
        let gone = Departure::Disconnected;
        let messages = match wire::decode_frame(&bytes) {
            Ok(messages) => messages,
            Err(e) => {
                let why = format!("bad y-websocket message: {e}");
                crate::metrics::refused(
                    "bad_frame",
                    &format!("conn {}: closed with 1007: {why}", self.conn),
                );
                return Flow::End(close_reason(CloseCode::Invalid, why), gone);
            }
        };
        if messages.is_empty() {
            return Flow::Continue;
        }
        match self
            .addr
            .send(DocMessages {
                conn: self.conn,
                messages,
            })
            .await
        {
            Ok(Ok(())) => Flow::Continue,
            // The room logged and counted its refusal.
            Ok(Err(close)) => Flow::End(close_reason(close_code(close.kind), close.message), gone),
            Err(_) => Flow::End(close_reason(CloseCode::Error, "room stopped"), gone),
        }
    }
}

impl DocSession {
    /// Runs the connection to its end.
    pub async fn run(self, mut ws: Session, mut stream: AggregatedMessageStream) {
        let counters = ConnectionMetrics::opened("doc");
        let latency = Latency::default();
        let reason = match self.join(&ws, &latency).await {
            Ok(Joined {
                value: addr,
                mut kick,
                writer,
            }) => {
                let mut frames = DocFrames {
                    addr: &addr,
                    conn: self.conn,
                };
                let (reason, _) = serve_member(
                    &mut ws,
                    &mut stream,
                    &mut kick,
                    &self.shutdown,
                    &self.limits,
                    &counters,
                    &latency,
                    &mut frames,
                )
                .await;
                writer.abort();
                addr.do_send(LeaveDoc { conn: self.conn });
                reason
            }
            Err(reason) => Some(reason),
        };
        debug!(conn = self.conn, reason = ?reason, "closing");
        let code = reason.as_ref().map(|r| u16::from(r.code));
        socket::close(ws, reason).await;
        counters.closed(code);
    }

    /// Joins the document's room (retrying while it is stopping).
    async fn join(
        &self,
        ws: &Session,
        latency: &Latency,
    ) -> Result<Joined<Addr<DocRoom>>, CloseReason> {
        let joined = join_room(ws, self.outbox_frames, |outbox, kick| {
            let addr = self.registry.doc_room(&self.name, &self.doc_settings);
            let request = JoinDoc {
                conn: self.conn,
                outbox,
                kick,
                latency: latency.clone(),
                read_only: self.read_only,
                user: self.user.clone(),
            };
            async move { addr.send(request).await.map(|r| r.map(|()| addr)) }
        })
        .await?;
        info!(conn = self.conn, "joined");
        Ok(joined)
    }
}
