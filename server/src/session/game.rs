//! A game-room session: join handshake, then one `select!` loop over socket frames,
//! kicks from the room, the heartbeat and server shutdown, which ends with a close
//! reason; finally the room is told the member is gone.

use std::sync::Arc;

use actix::Addr;
use actix_ws::{AggregatedMessageStream, CloseCode, CloseReason, Session};
use bytes::Bytes;
use roomcast_protocol::{
    close::error, ClientMessage, ErrorMessage, Join, ServerMessage, PROTOCOL_VERSION,
};
use tokio::sync::{mpsc::error::TrySendError, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::join::join_room;
use super::member_loop::{serve_member, Flow, FrameHandler};
use super::socket::{self, close_reason, ConnLimits, Frame};
use crate::game::{GameEntry, PlayerId};
use crate::metrics::ConnectionMetrics;
use crate::room::{
    game::GameRoom,
    inputs::{self, QueuedInput},
    member::Latency,
    messages::{Departure, JoinGame, MemberGone, PingRoom, RequestSnapshot},
    ConnId, RoomName, RoomRegistry,
};

/// Everything a game session needs besides its socket.
pub struct GameSession {
    /// This connection's id.
    pub conn: ConnId,
    /// The game of the URL.
    pub game: GameEntry,
    /// The room name of the URL.
    pub room: RoomName,
    /// Where rooms are looked up.
    pub registry: Arc<RoomRegistry>,
    /// Connection limits.
    pub limits: ConnLimits,
    /// Frames a member's outbox holds.
    pub outbox_frames: usize,
    /// Cancelled at server shutdown.
    pub shutdown: CancellationToken,
    /// Joins as a spectator: no entity; its inputs are refused (the connection stays).
    pub spectator: bool,
    /// Who the join token named (`None` with authentication off).
    pub user: Option<String>,
}

/// A joined member: its room and identity.
struct Membership {
    addr: Addr<GameRoom>,
    player: PlayerId,
    inputs: inputs::InputSender,
    writer: actix_web::rt::task::JoinHandle<()>,
    latency: Latency,
}

impl GameSession {
    /// Runs the connection to its end.
    pub async fn run(self, mut ws: Session, mut stream: AggregatedMessageStream) {
        let counters = ConnectionMetrics::opened("game");
        let reason = match self.handshake(&mut ws, &mut stream).await {
            Ok(join) => match self.join(&ws, join).await {
                Ok((membership, mut kick)) => {
                    let mut frames = GameFrames {
                        session: &self,
                        membership: &membership,
                    };
                    let (reason, departure) = serve_member(
                        &mut ws,
                        &mut stream,
                        &mut kick,
                        &self.shutdown,
                        &self.limits,
                        &counters,
                        &membership.latency,
                        &mut frames,
                    )
                    .await;
                    membership.writer.abort();
                    membership.addr.do_send(MemberGone {
                        player: membership.player,
                        conn: self.conn,
                        departure,
                    });
                    reason
                }
                Err(reason) => Some(reason),
            },
            Err(reason) => reason,
        };
        debug!(conn = self.conn, reason = ?reason, "closing");
        let code = reason.as_ref().map(|r| u16::from(r.code));
        socket::close(ws, reason).await;
        counters.closed(code);
    }

    /// Waits for the first message, which must be a `Join` of our protocol version.
    async fn handshake(
        &self,
        ws: &mut Session,
        stream: &mut AggregatedMessageStream,
    ) -> Result<Join, Option<CloseReason>> {
        let deadline = tokio::time::sleep(self.limits.join_timeout);
        tokio::pin!(deadline);
        loop {
            let frame = tokio::select! {
                _ = &mut deadline => {
                    crate::metrics::refused("join_timeout", "no Join received in time: closed with 1008");
                    return Err(Some(close_reason(CloseCode::Policy, "no Join received in time")));
                }
                _ = self.shutdown.cancelled() => return Err(Some(close_reason(CloseCode::Away, "server shutting down"))),
                frame = socket::next_frame(stream, ws, self.limits.max_frame_bytes) => frame,
            };
            match frame {
                Frame::Binary(bytes) => {
                    return match ClientMessage::decode(&bytes) {
                        Ok(ClientMessage::Join(join)) if join.protocol == PROTOCOL_VERSION => {
                            Ok(join)
                        }
                        Ok(ClientMessage::Join(join)) => {
                            let msg = format!(
                                "protocol {} is not supported (server speaks {PROTOCOL_VERSION})",
                                join.protocol
                            );
                            send_error(ws, error::UNSUPPORTED_PROTOCOL, &msg).await;
                            Err(Some(close_reason(CloseCode::Policy, msg)))
                        }
                        Ok(_) => Err(Some(close_reason(
                            CloseCode::Policy,
                            "the first message must be Join",
                        ))),
                        Err(e) => Err(Some(close_reason(
                            CloseCode::Invalid,
                            format!("bad message: {e}"),
                        ))),
                    };
                }
                Frame::Control | Frame::Pong(_) => continue,
                Frame::Close(reason) => return Err(Some(reason)),
                Frame::Ended => return Err(None),
            }
        }
    }

    /// Joins the room (retrying while it is stopping).
    async fn join(
        &self,
        ws: &Session,
        join: Join,
    ) -> Result<(Membership, oneshot::Receiver<CloseReason>), CloseReason> {
        let latency = Latency::default();
        let joined = join_room(ws, self.outbox_frames, |outbox, kick| {
            let addr = self.registry.game_room(&self.game, &self.room);
            let (inputs_tx, inputs_rx) = inputs::input_queue();
            let request = JoinGame {
                conn: self.conn,
                resume: join.resume,
                outbox,
                inputs: inputs_rx,
                kick,
                latency: latency.clone(),
                spectator: self.spectator,
                user: self.user.clone(),
            };
            async move {
                addr.send(request)
                    .await
                    .map(|r| r.map(|joined| (addr, joined, inputs_tx)))
            }
        })
        .await?;
        let (addr, answer, inputs) = joined.value;
        info!(
            conn = self.conn,
            player = answer.player,
            resumed = answer.resumed,
            "joined"
        );
        let membership = Membership {
            addr,
            player: answer.player,
            inputs,
            writer: joined.writer,
            latency,
        };
        Ok((membership, joined.kick))
    }
}

/// Handles a joined game member's messages.
struct GameFrames<'a> {
    /// The session (game, connection id).
    session: &'a GameSession,
    /// The member's room and identity.
    membership: &'a Membership,
}

impl FrameHandler for GameFrames<'_> {
    async fn on_binary(&mut self, ws: &mut Session, bytes: Bytes) -> Flow {
        let gone = Departure::Disconnected;
        let message = match ClientMessage::decode(&bytes) {
            Ok(message) => message,
            Err(e) => {
                return Flow::End(
                    close_reason(CloseCode::Invalid, format!("bad message: {e}")),
                    gone,
                )
            }
        };
        let m = self.membership;
        let (player, conn) = (m.player, self.session.conn);
        let sent = match message {
            ClientMessage::Input(_) if self.session.spectator => {
                crate::metrics::refused("input_refused", "input from a spectator");
                send_error(
                    ws,
                    error::INPUT_REFUSED,
                    "spectators send no inputs (the join token's role is spectator)",
                )
                .await;
                Ok(())
            }
            ClientMessage::Input(input) => {
                if let Err(e) = self.session.game.check_input(&input.payload) {
                    return Flow::End(close_reason(CloseCode::Invalid, e.to_string()), gone);
                }
                let queued = QueuedInput {
                    seq: input.seq,
                    payload: input.payload,
                };
                match m.inputs.try_send(queued) {
                    Ok(()) => Ok(()),
                    Err(TrySendError::Full(_)) => {
                        let reason =
                            format!("more than {} inputs between two ticks", inputs::INPUT_QUEUE);
                        return Flow::End(close_reason(CloseCode::Policy, reason), gone);
                    }
                    // The room let go of this member; its kick explains why.
                    Err(TrySendError::Closed(_)) => Ok(()),
                }
            }
            ClientMessage::Ping(ping) => {
                let ping = PingRoom {
                    player,
                    conn,
                    client_time_us: ping.client_time_us,
                };
                m.addr.send(ping).await
            }
            ClientMessage::Resync => m.addr.send(RequestSnapshot { player, conn }).await,
            ClientMessage::Leave => {
                return Flow::End(
                    close_reason(CloseCode::Normal, "left the room"),
                    Departure::Left,
                );
            }
            ClientMessage::Join(_) => {
                send_error(ws, error::UNEXPECTED_MESSAGE, "already joined").await;
                Ok(())
            }
        };
        match sent {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::End(close_reason(CloseCode::Error, "room stopped"), gone),
        }
    }
}

/// Sends an in-band error message (the connection stays open).
async fn send_error(ws: &mut Session, code: u16, message: &str) {
    let frame = ServerMessage::Error(ErrorMessage {
        code,
        message: message.to_owned(),
    })
    .encode();
    socket::try_send(ws.binary(frame)).await;
}
