//! Who is in a game room: joining (new players, resumes, spectators), pings and
//! resync requests, connections that end, and players whose resume grace runs
//! out.

use std::time::Instant;

use actix_ws::CloseCode;
use bytes::Bytes;
use roomcast_protocol::{
    close, state::diff, ErrorMessage, Pong, ResumeToken, ServerMessage, Welcome, PROTOCOL_VERSION,
};
use tracing::info;

use super::game_core::GameCore;
use crate::game::PlayerId;
use crate::room::inputs::{InputReceiver, QueuedInput};
use crate::room::member::MemberLink;
use crate::room::messages::{Departure, JoinGame, JoinRefused, Joined};
use crate::room::ConnId;

/// The player id a spectator's `Welcome` carries: no player has it.
pub const SPECTATOR_PLAYER_ID: PlayerId = 0;

/// A connected player or spectator.
#[derive(Debug)]
pub(crate) struct GameMember {
    /// The connection this member is attached through.
    pub(super) conn: ConnId,
    /// Who its join token named (`None` with authentication off).
    pub(super) user: Option<String>,
    /// Outbox, lag state and kick.
    pub(super) link: MemberLink,
    /// Inputs from the session, drained at each tick.
    pub(super) inputs: InputReceiver,
}

impl GameMember {
    /// Takes every input queued since the last tick, in order.
    pub(super) fn drain_inputs(&mut self, mut f: impl FnMut(QueuedInput)) {
        while let Ok(input) = self.inputs.try_recv() {
            f(input);
        }
    }
}

/// A player whose connection dropped, kept until it resumes or its grace ends.
#[derive(Debug)]
pub(crate) struct AwayPlayer {
    /// When the connection dropped.
    pub(super) since: Instant,
}

impl GameCore {
    /// Admits a member (a new player, a resumed one, or a spectator) and sends
    /// it `Welcome` and the state; `closing` says the room is on its way out.
    pub(crate) fn join(&mut self, msg: JoinGame, closing: bool) -> Result<Joined, JoinRefused> {
        if let Some(reason) = &self.failed {
            return Err(JoinRefused::Failed(reason.clone()));
        }
        if closing {
            return Err(JoinRefused::Closing);
        }
        let resumable = msg
            .resume
            .filter(|_| !msg.spectator)
            .and_then(|r| self.tokens.get(&r.token).map(|p| (*p, r)));
        let replaces_own = resumable.is_some_and(|(p, _)| self.members.contains_key(&p));
        let max = self.game_entry.settings.max_members;
        if !replaces_own && self.members.len() + self.spectators.len() >= max {
            return Err(JoinRefused::Full(max));
        }
        if msg.spectator {
            return Ok(self.join_spectator(msg));
        }
        let (player, token, resumed) = match resumable {
            Some((player, resume)) => {
                if let Some(mut old) = self.members.remove(&player) {
                    old.link.kick(
                        CloseCode::Policy,
                        "replaced by a newer connection of the same player",
                    );
                }
                self.away.remove(&player);
                self.guarded("player_resumed", |g| g.player_resumed(player));
                (player, resume.token, Some(resume.last_tick))
            }
            None => {
                let player = self.next_player;
                self.next_player += 1;
                let token = ResumeToken(rand::random());
                self.tokens.insert(token, player);
                self.guarded("player_joined", |g| g.player_joined(player));
                (player, token, None)
            }
        };
        if let Some(reason) = &self.failed {
            return Err(JoinRefused::Failed(reason.clone()));
        }
        let member = GameMember {
            conn: msg.conn,
            user: msg.user,
            link: MemberLink::new(msg.outbox, msg.kick, msg.latency),
            inputs: msg.inputs,
        };
        self.room_metrics
            .sent_if(&member.link, self.welcome(player, token, resumed.is_some()));
        if msg.resume.is_some() && resumed.is_none() {
            self.room_metrics.sent_if(
                &member.link,
                ServerMessage::Error(ErrorMessage {
                    code: close::error::RESUME_REJECTED,
                    message: "resume token unknown or expired; joined as a new player".into(),
                })
                .encode(),
            );
        }
        // A resumed client gets a delta from its own last tick when we still hold it.
        let held = resumed.and_then(|last| self.history.iter().find(|(t, _)| *t == last));
        let first = match held {
            Some((last, old)) => {
                ServerMessage::Delta(diff(old, &self.table, *last, self.tick)).encode()
            }
            None => self.encode_snapshot(),
        };
        self.room_metrics.sent_if(&member.link, first);
        info!(parent: &self.span, player, conn = msg.conn, resumed = resumed.is_some(), "member joined");
        self.members.insert(player, member);
        Ok(Joined {
            player,
            resumed: resumed.is_some(),
        })
    }

    /// The encoded `Welcome` for a member.
    fn welcome(&self, player: PlayerId, token: ResumeToken, resumed: bool) -> Bytes {
        ServerMessage::Welcome(Welcome {
            protocol: PROTOCOL_VERSION,
            player_id: player,
            resume_token: token,
            resumed,
            game: self.game_entry.name.to_string(),
            room: self.key.room().to_owned(),
            tick_rate_hz: self.game_entry.settings.tick_rate_hz,
        })
        .encode()
    }

    /// Takes a spectator: player id 0 and an all-zero resume token in its
    /// `Welcome`, then the snapshot; it gets every delta and has no entity.
    fn join_spectator(&mut self, msg: JoinGame) -> Joined {
        let member = GameMember {
            conn: msg.conn,
            user: msg.user,
            link: MemberLink::new(msg.outbox, msg.kick, msg.latency),
            inputs: msg.inputs,
        };
        let welcome = self.welcome(SPECTATOR_PLAYER_ID, ResumeToken([0; 16]), false);
        self.room_metrics.sent_if(&member.link, welcome);
        self.room_metrics
            .sent_if(&member.link, self.encode_snapshot());
        info!(parent: &self.span, conn = msg.conn, "spectator joined");
        self.spectators.insert(msg.conn, member);
        Joined {
            player: SPECTATOR_PLAYER_ID,
            resumed: false,
        }
    }

    /// The member of `player` (a spectator for player 0) if it is attached
    /// through `conn`.
    pub(super) fn member(&mut self, player: PlayerId, conn: ConnId) -> Option<&mut GameMember> {
        if player == SPECTATOR_PLAYER_ID {
            return self.spectators.get_mut(&conn);
        }
        self.members.get_mut(&player).filter(|m| m.conn == conn)
    }

    /// A member asks for a fresh snapshot: it gets one with the next frame.
    pub(crate) fn request_snapshot(&mut self, player: PlayerId, conn: ConnId) {
        if let Some(m) = self.member(player, conn) {
            m.link.request_catch_up();
        }
    }

    /// Answers a member's ping with the room's tick.
    pub(crate) fn ping(&mut self, player: PlayerId, conn: ConnId, client_time_us: u64) {
        let (tick, metrics) = (self.tick, self.room_metrics.clone());
        if let Some(m) = self.member(player, conn) {
            let pong = Pong {
                client_time_us,
                server_tick: tick,
            };
            metrics.sent_if(&m.link, ServerMessage::Pong(pong).encode());
        }
    }

    /// A member's connection ended (`conn`: ignored if the player has since
    /// resumed on another).
    pub(crate) fn member_gone(&mut self, player: PlayerId, conn: ConnId, departure: Departure) {
        if self.member(player, conn).is_none() {
            return;
        }
        if player == SPECTATOR_PLAYER_ID {
            self.spectators.remove(&conn);
            info!(parent: &self.span, conn, "spectator gone");
            return;
        }
        self.members.remove(&player);
        info!(parent: &self.span, player, conn, departure = ?departure, "member gone");
        match departure {
            Departure::Left => self.player_left(player),
            Departure::Disconnected => self.player_disconnected(player, Instant::now()),
        }
    }

    /// The player's connection dropped: it may resume within its grace.
    pub(super) fn player_disconnected(&mut self, player: PlayerId, now: Instant) {
        self.away.insert(player, AwayPlayer { since: now });
        self.guarded("player_disconnected", |g| g.player_disconnected(player));
    }

    /// The player is gone for good.
    pub(super) fn player_left(&mut self, player: PlayerId) {
        self.tokens.retain(|_, p| *p != player);
        self.guarded("player_left", |g| g.player_left(player));
    }

    /// Removes the away players whose resume grace is over at `now`.
    pub(super) fn expire_away_players(&mut self, now: Instant) {
        let grace = self.game_entry.settings.resume_grace;
        let expired: Vec<PlayerId> = self
            .away
            .iter()
            .filter(|(_, a)| now.duration_since(a.since) >= grace)
            .map(|(p, _)| *p)
            .collect();
        for player in expired {
            self.away.remove(&player);
            info!(parent: &self.span, player, "resume grace over; player removed");
            self.player_left(player);
        }
    }
}
