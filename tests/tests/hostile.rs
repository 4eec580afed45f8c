//! Hostile input against one live server per room kind, as a table: each case
//! opens its own raw connection, sends bytes no well-behaved client sends, and
//! expects a close code (or an in-band error, or that the connection stays);
//! after every case a well-behaved member that joined before the table ran must
//! be unaffected (game: its mirror keeps following the deltas with no snapshot
//! or resync in between, and equals the server's state; doc: its edits still
//! reach another member and the server, whose content is exactly what the good
//! members wrote), and the room holds nobody else.
//!
//! Each outcome is printed (`cargo test --test hostile -- --nocapture`), so the
//! test output documents what the server answers to what.
//!
//! Covered elsewhere, and not repeated here:
//! - join tokens (missing, forged, expired, other room, other role kind),
//!   spectators' inputs (in-band `INPUT_REFUSED`), read-only doc edits, origins,
//!   connection/room/member limits and the message and byte rates of a game
//!   connection: `security.rs`;
//! - game: an undecodable `ff ff ff` frame, trailing bytes after `Resync`, a text
//!   frame after joining, a 70 KiB frame, an arena input out of range
//!   (`game_rooms.rs`, `bad_frames_close_only_their_own_connection`), `Resync`
//!   as the first message, an input flood between two ticks, a client that never
//!   answers pings (`game_rooms.rs`);
//! - doc: a garbage update, a short body under a declared length of 100, an
//!   unknown sync sub-type, `ff` × 12 as a varint, unknown message types
//!   (`doc_rooms.rs`, `bad_frames_close_only_their_sender_and_leave_the_doc_unchanged`),
//!   a forged awareness entry from a member, growth past the document size limit
//!   and a single frame over the doc frame limit (`doc_rooms.rs`).

use std::fmt;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use roomcast_client::{DocConnection, Event, GameConnection, Mirror};
use roomcast_e2e::{eventually, start, test_config, var_uint, TestServer};
use roomcast_protocol::close::{code, error};
use roomcast_protocol::games::arena::ArenaInput;
use roomcast_protocol::{codec, ClientMessage, Input, Join, Ping, Resume, ServerMessage};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use yrs::sync::awareness::AwarenessUpdateEntry;
use yrs::sync::{AwarenessUpdate, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{
    ClientID, Doc, GetString, Map, MapPrelim, ReadTxn, StateVector, Text, Transact, Update,
    WriteTxn,
};

/// Bound on every wait of the test.
const WAIT: Duration = Duration::from_secs(10);
/// The game room under attack.
const GAME: &str = "arena";
const ROOM: &str = "hostile";
/// The doc under attack.
const DOC: &str = "hostile";
/// `--max-frame-bytes` of the game server.
const GAME_MAX_FRAME: usize = 1024;
/// `--doc-max-frame-bytes` of the doc server.
const DOC_MAX_FRAME: usize = 8 * 1024;
/// `--doc-max-bytes` of the doc server.
const DOC_MAX_BYTES: usize = 16 * 1024;
/// `--max-messages-per-sec` of the doc server (bursts of twice as many).
const DOC_MESSAGES_PER_SEC: u32 = 20;
/// `--doc-hold-bytes` of the doc server.
const DOC_HOLD_BYTES: usize = 16 * 1024;
/// `--doc-hold-timeout` of the doc server.
const DOC_HOLD_TIMEOUT: Duration = Duration::from_secs(1);
/// RFC 6455 1002: what the WebSocket layer closes with on a framing error (not
/// in `close::code`, which lists the codes roomcast itself decides on).
const PROTOCOL_ERROR: u16 = 1002;

type Socket = WebSocketStream<TcpStream>;

/// One unit of hostile output.
#[derive(Clone)]
enum Wire {
    /// A binary message (one frame).
    Binary(Vec<u8>),
    /// A text message.
    Text(String),
    /// A hand-made frame (fragments, control frames); tungstenite masks it.
    Frame(Frame),
    /// Bytes written straight onto the TCP stream, bypassing tungstenite.
    Raw(Vec<u8>),
}

/// Where in the session a game case strikes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Right after the upgrade: the bytes are the first thing the server reads.
    Handshake,
    /// After a valid `Join` was answered with `Welcome` (doc sockets always).
    Joined,
}

/// What the server must answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// A close frame with this code.
    Close(u16),
    /// An in-band `Error` with this code, and the connection stays usable.
    Error(u16),
    /// A normal answer: the connection stays usable (game before the join: the
    /// `Welcome`; otherwise a ping or sync step 1 is answered).
    Stays,
}

/// One row of a table.
struct Case {
    name: &'static str,
    stage: Stage,
    wires: Vec<Wire>,
    expect: Expect,
}

impl Case {
    fn first(name: &'static str, wires: Vec<Wire>, expect: Expect) -> Self {
        Self {
            name,
            stage: Stage::Handshake,
            wires,
            expect,
        }
    }

    fn joined(name: &'static str, wires: Vec<Wire>, expect: Expect) -> Self {
        Self {
            name,
            stage: Stage::Joined,
            wires,
            expect,
        }
    }
}

/// What a hostile connection observed.
#[derive(Debug)]
enum Outcome {
    Closed(u16, String),
    Error(u16, String),
    Stays,
    /// The TCP connection ended without a close frame.
    Dropped,
    /// Nothing conclusive within [`WAIT`].
    TimedOut,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Closed(code, reason) => write!(f, "close {code} {reason:?}"),
            Outcome::Error(code, message) => write!(f, "in-band error {code} {message:?}"),
            Outcome::Stays => f.write_str("answered; the connection stays"),
            Outcome::Dropped => f.write_str("dropped without a close frame"),
            Outcome::TimedOut => write!(f, "nothing within {WAIT:?}"),
        }
    }
}

impl Outcome {
    fn matches(&self, expect: Expect) -> bool {
        match (self, expect) {
            (Outcome::Closed(got, _), Expect::Close(want)) => *got == want,
            (Outcome::Error(got, _), Expect::Error(want)) => *got == want,
            (Outcome::Stays, Expect::Stays) => true,
            _ => false,
        }
    }
}

// ---------------------------------------------------------------------------
// Bytes

/// A masked client frame with the given first header byte (FIN, RSV, opcode).
fn masked_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126, "short frames only");
    let mask = [0x5a, 0xa5, 0x3c, 0xc3];
    let mut out = vec![first, 0x80 | payload.len() as u8];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    out
}

/// A masked binary frame header declaring `len` payload bytes (64-bit length),
/// followed by only `sent` of them.
fn huge_frame_header(len: u64, sent: usize) -> Vec<u8> {
    let mut out = vec![0x82, 0x80 | 127];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[1, 2, 3, 4]);
    out.extend(std::iter::repeat_n(0u8, sent));
    out
}

/// `Frame::message` shorthand.
fn frame(data: Vec<u8>, opcode: OpCode, fin: bool) -> Wire {
    Wire::Frame(Frame::message(data, opcode, fin))
}

fn join_message(resume: Option<Resume>) -> Vec<u8> {
    ClientMessage::Join(Join {
        protocol: 1,
        resume,
    })
    .encode()
}

fn ping_message(client_time_us: u64) -> Vec<u8> {
    ClientMessage::Ping(Ping { client_time_us }).encode()
}

fn arena_input(seq: u32, payload: Vec<u8>) -> Vec<u8> {
    ClientMessage::Input(Input {
        seq,
        payload: payload.into(),
    })
    .encode()
}

/// A y-websocket sync-update frame.
fn update_frame(update: Vec<u8>) -> Vec<u8> {
    yrs::sync::Message::Sync(SyncMessage::Update(update)).encode_v1()
}

/// A y-websocket awareness frame setting `client` to `state` at `clock`.
fn awareness_frame(client: ClientID, clock: u32, state: &str) -> Vec<u8> {
    let mut update = AwarenessUpdate {
        clients: Default::default(),
    };
    update.clients.insert(
        client,
        AwarenessUpdateEntry {
            clock,
            json: state.into(),
        },
    );
    yrs::sync::Message::Awareness(update).encode_v1()
}

/// Sync step 1 with an empty state vector: the server answers with step 2.
const SYNC_STEP_1: [u8; 4] = [0, 0, 1, 0];

/// An update inserting `s` into text "t" of a fresh doc of client `client`.
fn text_update(client: u64, s: &str) -> Vec<u8> {
    let doc = Doc::with_client_id(client);
    let text = doc.get_or_insert_text("t");
    text.insert(&mut doc.transact_mut(), 0, s);
    let update = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    update
}

// ---------------------------------------------------------------------------
// Raw sockets

/// Sends the wires of a case, in order. A send error means the server already
/// closed; the outcome is then read from what arrived.
async fn send_wires(ws: &mut Socket, wires: &[Wire]) {
    for wire in wires {
        let sent = match wire.clone() {
            Wire::Binary(bytes) => ws.send(Message::binary(bytes)).await.is_ok(),
            Wire::Text(text) => ws.send(Message::text(text)).await.is_ok(),
            Wire::Frame(f) => ws.send(Message::Frame(f)).await.is_ok(),
            Wire::Raw(bytes) => {
                let tcp = ws.get_mut();
                tcp.write_all(&bytes).await.is_ok() && tcp.flush().await.is_ok()
            }
        };
        if !sent {
            return;
        }
    }
}

/// A raw game socket in `stage`: right after the upgrade, or joined (its
/// `Welcome` read).
async fn raw_game_socket(server: &TestServer, stage: Stage) -> Socket {
    let url = format!("{}/game/{GAME}/{ROOM}", server.url);
    let mut ws = roomcast_client::game::open_socket(&url, None)
        .await
        .expect("upgrade");
    if stage == Stage::Joined {
        ws.send(Message::binary(join_message(None))).await.unwrap();
        match game_answer(&mut ws, |m| matches!(m, ServerMessage::Welcome(_))).await {
            Outcome::Stays => {}
            other => panic!("a valid Join was not welcomed: {other}"),
        }
    }
    ws
}

/// Reads a game socket until it closes, sends an in-band error, or a message
/// `answered` holds arrives; deltas, snapshots and pongs are skipped otherwise.
async fn game_answer(ws: &mut Socket, answered: impl Fn(&ServerMessage) -> bool) -> Outcome {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let next = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Outcome::TimedOut,
            Ok(next) => next,
        };
        match next {
            Some(Ok(Message::Binary(bytes))) => {
                let message = ServerMessage::decode(&bytes).expect("server frames decode");
                if let ServerMessage::Error(e) = &message {
                    return Outcome::Error(e.code, e.message.clone());
                }
                if answered(&message) {
                    return Outcome::Stays;
                }
            }
            Some(Ok(Message::Close(Some(close)))) => {
                return Outcome::Closed(u16::from(close.code), close.reason.to_string())
            }
            Some(Ok(Message::Close(None))) | Some(Err(_)) | None => return Outcome::Dropped,
            Some(Ok(_)) => {}
        }
    }
}

/// Reads a doc socket until it closes or a sync step 2 arrives.
async fn doc_answer(ws: &mut Socket) -> Outcome {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let next = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Outcome::TimedOut,
            Ok(next) => next,
        };
        match next {
            Some(Ok(Message::Binary(bytes))) if bytes.starts_with(&[0, 1]) => {
                return Outcome::Stays
            }
            Some(Ok(Message::Close(Some(close)))) => {
                return Outcome::Closed(u16::from(close.code), close.reason.to_string())
            }
            Some(Ok(Message::Close(None))) | Some(Err(_)) | None => return Outcome::Dropped,
            Some(Ok(_)) => {}
        }
    }
}

/// Leaves a game socket that is still open: `Leave`, answered with 1000, so the
/// player is gone at once (no resume grace).
async fn leave(ws: &mut Socket, name: &str) {
    ws.send(Message::binary(ClientMessage::Leave.encode()))
        .await
        .unwrap();
    match game_answer(ws, |_| false).await {
        Outcome::Closed(code::NORMAL, _) => {}
        other => panic!("{name}: Leave was answered with {other}"),
    }
}

// ---------------------------------------------------------------------------
// The well-behaved game member

/// What the well-behaved member has seen so far.
#[derive(Clone, Default)]
struct Progress {
    /// Its mirror, after the latest event.
    mirror: Mirror,
    /// Everything that was not a delta applied in step: snapshots after the
    /// first, out-of-step deltas, closes, errors.
    gaps: Vec<String>,
}

/// A joined member read by a task of its own, so it never lags while a case runs.
struct Follower {
    player: u32,
    progress: watch::Receiver<Progress>,
}

impl Follower {
    async fn start(mut conn: GameConnection) -> Self {
        conn.wait_until(WAIT, |m| m.tick().is_some())
            .await
            .expect("first snapshot");
        let player = conn.player_id();
        let (tx, progress) = watch::channel(Progress {
            mirror: conn.mirror().clone(),
            gaps: Vec::new(),
        });
        actix_rt::spawn(async move {
            loop {
                let event = conn.next_event().await;
                let gap = match &event {
                    Ok(Event::Delta { .. }) | Ok(Event::Pong(_)) => None,
                    Ok(other) => Some(format!("{other:?}")),
                    Err(e) => Some(format!("error: {e}")),
                };
                let ended = matches!(event, Ok(Event::Closed(_)) | Err(_));
                tx.send_modify(|p| {
                    p.mirror = conn.mirror().clone();
                    p.gaps.extend(gap);
                });
                if ended || tx.is_closed() {
                    break;
                }
            }
        });
        Self { player, progress }
    }

    fn tick(&self) -> u64 {
        self.progress.borrow().mirror.tick().unwrap_or(0)
    }

    /// Waits until the mirror moved `ticks` further, every step a delta.
    async fn advance(&mut self, ticks: u64, context: &str) {
        let target = self.tick() + ticks;
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.tick() < target {
            match tokio::time::timeout_at(deadline, self.progress.changed()).await {
                Ok(Ok(())) => {}
                _ => panic!("{context}: the member stopped at tick {}", self.tick()),
            }
        }
        let gaps = self.progress.borrow().gaps.clone();
        assert!(gaps.is_empty(), "{context}: the member lost step: {gaps:?}");
    }
}

/// The game room holds only the member, it keeps ticking without a gap for the
/// member, and the member's mirror equals the server's state.
async fn assert_game_room_intact(server: &TestServer, member: &mut Follower, context: &str) {
    member.advance(3, context).await;
    let info = eventually(WAIT, "the room holds only the member", || async {
        let info = server.describe(GAME, ROOM).await?;
        (info.members.len() == 1 && info.away_players.is_empty()).then_some(info)
    })
    .await;
    assert_eq!(info.members[0].player, member.player, "{context}");
    assert!(info.failed.is_none(), "{context}: {:?}", info.failed);
    member.advance(2, context).await;
    let mirror = member.progress.borrow().mirror.clone();
    let tick = mirror.tick().unwrap();
    let state = server
        .state_at(GAME, ROOM, tick)
        .await
        .unwrap_or_else(|| panic!("{context}: the server no longer holds tick {tick}"));
    assert_eq!(
        mirror.entities(),
        &*state.entities,
        "{context}: tick {tick}"
    );
    assert_eq!(
        mirror.entities().keys().copied().collect::<Vec<_>>(),
        vec![member.player],
        "{context}: only the member's entity"
    );
}

// ---------------------------------------------------------------------------
// Game rooms

fn game_cases() -> Vec<Case> {
    use Wire::{Binary, Raw, Text};
    let with_resume = join_message(Some(Resume {
        token: roomcast_protocol::ResumeToken([7; 16]),
        last_tick: 1_000_000,
    }));
    let half_join = with_resume[..with_resume.len() / 2].to_vec();
    let still = codec::encode(&ArenaInput { dx: 0, dy: 0 }).unwrap();
    let ping = ping_message(42);
    let big_fragment = vec![0u8; GAME_MAX_FRAME / 2 + 1];
    let mut ping_with_trailing = ping.clone();
    ping_with_trailing.push(0);
    let mut payload_with_trailing = still.clone();
    payload_with_trailing.push(0);
    let mut join_with_trailing = join_message(None);
    join_with_trailing.extend_from_slice(&[0, 0]);
    let mut max_u64_length = vec![1, 1, 0xfd];
    max_u64_length.extend_from_slice(&[0xff; 8]);
    max_u64_length.push(0);
    vec![
        // The first message.
        Case::first(
            "Join with resume, cut in the middle of its token",
            vec![Binary(half_join)],
            Expect::Close(code::INVALID_PAYLOAD),
        ),
        Case::first(
            "Join whose protocol varint is fb with one byte of two",
            vec![Binary(vec![0, 0xfb, 0x01])],
            Expect::Close(code::INVALID_PAYLOAD),
        ),
        Case::first(
            "Join whose u16 protocol uses the u32 marker fc",
            vec![Binary(vec![0, 0xfc, 1, 0, 0, 0, 0])],
            Expect::Close(code::INVALID_PAYLOAD),
        ),
        Case::first(
            "Join whose protocol is the non-minimal fb 01 00 (bincode accepts it)",
            vec![Binary(vec![0, 0xfb, 0x01, 0x00, 0x00])],
            Expect::Stays,
        ),
        Case::first(
            "Join followed by two trailing bytes",
            vec![Binary(join_with_trailing)],
            Expect::Close(code::INVALID_PAYLOAD),
        ),
        Case::first(
            "unknown variant 9 as the first message",
            vec![Binary(vec![9])],
            Expect::Close(code::INVALID_PAYLOAD),
        ),
        Case::first(
            "Input before Join",
            vec![Binary(arena_input(1, still.clone()))],
            Expect::Close(code::POLICY_VIOLATION),
        ),
        Case::first(
            "text frame before Join",
            vec![Text("join me".into())],
            Expect::Close(code::UNSUPPORTED_DATA),
        ),
        Case::first(
            "continuation frame before Join",
            vec![frame(
                join_message(None),
                OpCode::Data(Data::Continue),
                true,
            )],
            Expect::Close(PROTOCOL_ERROR),
        ),
        // Joined: the message codec.
        Case::joined(
            "Ping whose u64 is fd with 3 bytes of 8",
            vec![Binary(vec![2, 0xfd, 1, 2, 3])],
            Expect::Close(code::INVALID_PAYLOAD),
        ),
        Case::joined(
            "Input whose u32 seq uses the u64 marker fd",
            vec![Binary(vec![1, 0xfd, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0])],
            Expect::Close(code::INVALID_PAYLOAD),
        ),
        Case::joined(
            "Input payload declared 2^32-1 bytes, 3 follow",
            vec![Binary(vec![1, 1, 0xfc, 0xff, 0xff, 0xff, 0xff, 1, 2, 3])],
            Expect::Close(code::INVALID_PAYLOAD),
        ),
        Case::joined(
            "Input payload declared 2^64-1 bytes, 1 follows",
            vec![Binary(max_u64_length)],
            Expect::Close(code::INVALID_PAYLOAD),
        ),
        Case::joined(
            "unknown variant tag 5",
            vec![Binary(vec![5])],
            Expect::Close(code::INVALID_PAYLOAD),
        ),
        Case::joined(
            "variant tag 2^32-1 (fc ff ff ff ff)",
            vec![Binary(vec![0xfc, 0xff, 0xff, 0xff, 0xff])],
            Expect::Close(code::INVALID_PAYLOAD),
        ),
        Case::joined(
            "Ping followed by a trailing byte",
            vec![Binary(ping_with_trailing)],
            Expect::Close(code::INVALID_PAYLOAD),
        ),
        Case::joined(
            "Input whose arena payload has a trailing byte",
            vec![Binary(arena_input(1, payload_with_trailing))],
            Expect::Close(code::INVALID_PAYLOAD),
        ),
        Case::joined(
            "empty binary frame",
            vec![Binary(Vec::new())],
            Expect::Close(code::INVALID_PAYLOAD),
        ),
        Case::joined(
            "a second Join",
            vec![Binary(join_message(None))],
            Expect::Error(error::UNEXPECTED_MESSAGE),
        ),
        // Joined: sizes.
        Case::joined(
            "garbage frame of exactly --max-frame-bytes",
            vec![Binary(vec![0xff; GAME_MAX_FRAME])],
            Expect::Close(code::INVALID_PAYLOAD),
        ),
        Case::joined(
            "frame one byte over --max-frame-bytes",
            vec![Binary(vec![0; GAME_MAX_FRAME + 1])],
            Expect::Close(code::MESSAGE_TOO_BIG),
        ),
        Case::joined(
            "two fragments, each under --max-frame-bytes, together over",
            vec![
                frame(big_fragment.clone(), OpCode::Data(Data::Binary), false),
                frame(big_fragment, OpCode::Data(Data::Continue), true),
            ],
            Expect::Close(code::MESSAGE_TOO_BIG),
        ),
        Case::joined(
            "frame header declaring 2^40 bytes, 16 follow",
            vec![Raw(huge_frame_header(1 << 40, 16))],
            Expect::Close(code::MESSAGE_TOO_BIG),
        ),
        // Joined: WebSocket framing.
        Case::joined(
            "ping with FIN clear (fragmented control frame)",
            vec![Raw(masked_frame(0x09, b"hi"))],
            Expect::Close(PROTOCOL_ERROR),
        ),
        Case::joined(
            "continuation frame without a start",
            vec![frame(ping.clone(), OpCode::Data(Data::Continue), true)],
            Expect::Close(PROTOCOL_ERROR),
        ),
        Case::joined(
            "a new binary frame inside a fragmented message",
            vec![
                frame(vec![2], OpCode::Data(Data::Binary), false),
                frame(ping.clone(), OpCode::Data(Data::Binary), true),
            ],
            Expect::Close(PROTOCOL_ERROR),
        ),
        Case::joined(
            "ping with a 126-byte payload",
            vec![Wire::Frame(Frame::ping(vec![0; 126]))],
            Expect::Close(PROTOCOL_ERROR),
        ),
        Case::joined(
            "unmasked binary frame",
            vec![Raw(vec![0x82, ping.len() as u8, ping[0], ping[1]])],
            Expect::Close(PROTOCOL_ERROR),
        ),
        Case::joined(
            "binary frame with RSV1 set (no extension negotiated)",
            vec![Raw(masked_frame(0xc2, &ping))],
            Expect::Close(PROTOCOL_ERROR),
        ),
        Case::joined(
            "reserved opcode 3",
            vec![Raw(masked_frame(0x83, &ping))],
            Expect::Close(PROTOCOL_ERROR),
        ),
        Case::joined(
            "close frame with a one-byte payload",
            vec![Raw(masked_frame(0x88, &[3]))],
            Expect::Close(PROTOCOL_ERROR),
        ),
    ]
}

/// A case that left the socket open: it still answers (a joined socket its
/// ping), then leaves cleanly.
async fn game_still_works(ws: &mut Socket, case: &Case) {
    let answered = if case.stage == Stage::Joined {
        ws.send(Message::binary(ping_message(7))).await.unwrap();
        game_answer(
            ws,
            |m| matches!(m, ServerMessage::Pong(p) if p.client_time_us == 7),
        )
        .await
    } else {
        // The answer to the first message was the Welcome.
        Outcome::Stays
    };
    assert!(
        matches!(answered, Outcome::Stays),
        "{}: the connection does not answer afterwards: {answered}",
        case.name
    );
    leave(ws, case.name).await;
}

#[actix_rt::test]
async fn hostile_game_input_closes_only_its_own_connection() {
    let server = start(roomcast_server::Config {
        max_frame_bytes: GAME_MAX_FRAME,
        // Hostile players that joined are gone soon after their close.
        resume_graces: vec![(GAME.into(), Duration::from_millis(100))],
        ..test_config()
    })
    .await;
    let mut member = Follower::start(server.join(GAME, ROOM).await).await;
    member.advance(2, "before the table").await;

    let mut failures = Vec::new();
    for case in game_cases() {
        let mut ws = raw_game_socket(&server, case.stage).await;
        send_wires(&mut ws, &case.wires).await;
        let outcome = game_answer(&mut ws, |m| matches!(m, ServerMessage::Welcome(_))).await;
        println!("game | {:<66} | {outcome}", case.name);
        if !outcome.matches(case.expect) {
            failures.push(format!(
                "{}: expected {:?}, got {outcome}",
                case.name, case.expect
            ));
            continue;
        }
        if let Outcome::Closed(_, reason) = &outcome {
            assert!(!reason.is_empty(), "{}: the close has a reason", case.name);
        } else {
            game_still_works(&mut ws, &case).await;
        }
        drop(ws);
        assert_game_room_intact(&server, &mut member, case.name).await;
    }
    assert!(failures.is_empty(), "{failures:#?}");
    server.stop().await;
}

// ---------------------------------------------------------------------------
// Doc rooms

fn doc_cases() -> Vec<Case> {
    use Wire::{Binary, Raw, Text};
    let update = update_frame(text_update(0xbad, "never applied"));
    let half_update = update[..update.len() / 2].to_vec();
    let mut valid_then_truncated = update.clone();
    valid_then_truncated.extend_from_slice(&half_update);
    let mut huge_update = vec![0, 2];
    var_uint(u64::from(u32::MAX), &mut huge_update);
    huge_update.extend_from_slice(&[1, 2, 3]);
    let mut huger_update = vec![0, 2];
    var_uint(1 << 63, &mut huger_update);
    huger_update.push(0);
    let mut huge_awareness = vec![1];
    var_uint(u64::from(u32::MAX), &mut huge_awareness);
    huge_awareness.push(0);
    let mut overlong_sub_type = vec![0];
    overlong_sub_type.extend_from_slice(&[0x80; 10]);
    overlong_sub_type.push(0x02);
    let big_fragment = vec![0u8; DOC_MAX_FRAME / 2 + 1];
    let nested = {
        let doc = Doc::with_client_id(0xbad);
        let mut txn = doc.transact_mut();
        let mut map = txn.get_or_insert_map("m");
        for _ in 0..600 {
            map = map.insert(&mut txn, "c", MapPrelim::default());
        }
        txn.encode_update_v1()
    };
    assert!(nested.len() < DOC_MAX_FRAME, "{} bytes", nested.len());
    vec![
        Case::joined(
            "maps nested 600 deep (the limit is 128)",
            vec![Binary(update_frame(nested))],
            Expect::Close(code::INVALID_PAYLOAD),
        ),
        Case::joined(
            "update cut in the middle",
            vec![Binary(half_update)],
            Expect::Close(code::INVALID_PAYLOAD),
        ),
        Case::joined(
            "valid update, then a truncated one, in one frame (neither applied)",
            vec![Binary(valid_then_truncated)],
            Expect::Close(code::INVALID_PAYLOAD),
        ),
        Case::joined(
            "message type varint that never ends",
            vec![Binary(vec![0x80; 4])],
            Expect::Close(code::INVALID_PAYLOAD),
        ),
        Case::joined(
            "update length varint that never ends",
            vec![Binary(vec![0, 2, 0x80, 0x80])],
            Expect::Close(code::INVALID_PAYLOAD),
        ),
        Case::joined(
            "sync sub-type varint of 11 bytes (over 64 bits)",
            vec![Binary(overlong_sub_type)],
            Expect::Close(code::INVALID_PAYLOAD),
        ),
        Case::joined(
            "update length declared 2^32-1, 3 bytes follow",
            vec![Binary(huge_update)],
            Expect::Close(code::INVALID_PAYLOAD),
        ),
        Case::joined(
            "update length declared 2^63, 1 byte follows",
            vec![Binary(huger_update)],
            Expect::Close(code::INVALID_PAYLOAD),
        ),
        Case::joined(
            "awareness length declared 2^32-1, 1 byte follows",
            vec![Binary(huge_awareness)],
            Expect::Close(code::INVALID_PAYLOAD),
        ),
        Case::joined(
            "text frame",
            vec![Text("hello".into())],
            Expect::Close(code::UNSUPPORTED_DATA),
        ),
        Case::joined(
            "text frame carrying a valid sync step 1",
            vec![Text(String::from_utf8(SYNC_STEP_1.to_vec()).unwrap())],
            Expect::Close(code::UNSUPPORTED_DATA),
        ),
        Case::joined(
            "frame one byte over --doc-max-frame-bytes",
            vec![Binary(vec![0; DOC_MAX_FRAME + 1])],
            Expect::Close(code::MESSAGE_TOO_BIG),
        ),
        Case::joined(
            "two fragments, each under --doc-max-frame-bytes, together over",
            vec![
                frame(big_fragment.clone(), OpCode::Data(Data::Binary), false),
                frame(big_fragment, OpCode::Data(Data::Continue), true),
            ],
            Expect::Close(code::MESSAGE_TOO_BIG),
        ),
        Case::joined(
            "frame header declaring 2^40 bytes, 16 follow",
            vec![Raw(huge_frame_header(1 << 40, 16))],
            Expect::Close(code::MESSAGE_TOO_BIG),
        ),
        Case::joined(
            "ping with FIN clear (fragmented control frame)",
            vec![Raw(masked_frame(0x09, b"hi"))],
            Expect::Close(PROTOCOL_ERROR),
        ),
        Case::joined(
            "continuation frame without a start",
            vec![frame(
                SYNC_STEP_1.to_vec(),
                OpCode::Data(Data::Continue),
                true,
            )],
            Expect::Close(PROTOCOL_ERROR),
        ),
        Case::joined(
            "unmasked binary frame",
            vec![Raw([&[0x82, 4][..], &SYNC_STEP_1].concat())],
            Expect::Close(PROTOCOL_ERROR),
        ),
        Case::joined(
            "a sync step 1 in two fragments (reassembled and answered)",
            vec![
                frame(SYNC_STEP_1[..2].to_vec(), OpCode::Data(Data::Binary), false),
                frame(
                    SYNC_STEP_1[2..].to_vec(),
                    OpCode::Data(Data::Continue),
                    true,
                ),
            ],
            Expect::Stays,
        ),
    ]
}

/// The text of doc `d`'s root "t".
fn text_of(d: &Doc) -> String {
    let t = d.get_or_insert_text("t");
    let s = t.get_string(&d.transact());
    s
}

/// Two well-behaved doc members and what they wrote so far.
struct DocMembers {
    writer: DocConnection,
    witness: DocConnection,
    /// The text both wrote, which is all the doc may hold.
    text: String,
    /// The writer's awareness state, which nobody else may change.
    presence: serde_json::Value,
}

impl DocMembers {
    async fn join(server: &TestServer) -> Self {
        let mut writer = server.join_doc(DOC).await;
        let mut witness = server.join_doc(DOC).await;
        let presence = serde_json::json!({ "user": "writer" });
        writer.set_awareness(&presence).await.unwrap();
        let id = writer.client_id();
        witness
            .wait_awareness(WAIT, |a| a.state::<serde_json::Value>(id).is_some())
            .await
            .unwrap();
        let mut members = Self {
            writer,
            witness,
            text: String::new(),
            presence,
        };
        members.edit(server, "ok", "before the table").await;
        members
    }

    /// The writer appends `s`; the witness and the server get exactly the text
    /// written so far (anything a hostile connection got relayed or applied
    /// would show), and the writer's presence is untouched.
    async fn edit(&mut self, server: &TestServer, s: &str, context: &str) {
        let at = self.text.len() as u32;
        self.writer
            .edit(|txn| txn.get_or_insert_text("t").insert(txn, at, s))
            .await
            .unwrap();
        self.text.push_str(s);
        let want = self.text.clone();
        self.witness
            .wait_until(WAIT, |d| text_of(d) == want)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{context}: the witness has {:?}, not {want:?}: {e}",
                    text_of(self.witness.doc())
                )
            });
        let info = server.inspect_doc(DOC).await.expect("doc room is live");
        assert_eq!(info.content["t"], want.as_str(), "{context}: server doc");
        assert_eq!(
            info.content.as_object().map(|o| o.len()),
            Some(1),
            "{context}: no other root type: {}",
            info.content
        );
        let id = self.writer.client_id();
        assert_eq!(
            self.witness.awareness().state::<serde_json::Value>(id),
            Some(self.presence.clone()),
            "{context}: the writer's presence"
        );
    }

    /// Takes the server's text as what the members wrote (after a test put
    /// text in on purpose), once the writer has it too.
    async fn adopt_server_text(&mut self, server: &TestServer, context: &str) {
        let info = server.inspect_doc(DOC).await.expect("doc room is live");
        let want = info.content["t"].as_str().unwrap_or_default().to_owned();
        self.writer
            .wait_until(WAIT, |d| text_of(d) == want)
            .await
            .unwrap_or_else(|e| panic!("{context}: the writer never got {want:?}: {e}"));
        self.text = want;
    }

    /// The doc holds only the good members' text and members; edits go through.
    async fn assert_intact(&mut self, server: &TestServer, n: usize, context: &str) {
        let summary = eventually(WAIT, "only the two members are left", || async {
            let info = server.inspect_doc(DOC).await?;
            (info.summary.members.len() == 2).then_some(info.summary)
        })
        .await;
        assert_eq!(summary.awareness_clients, 1, "{context}: awareness states");
        assert_eq!(text_of(self.writer.doc()), self.text, "{context}: writer");
        self.edit(server, &format!(" {n}"), context).await;
    }
}

/// A raw doc socket (the upgrade joins the doc).
async fn raw_doc_socket(server: &TestServer) -> Socket {
    let url = format!("{}/doc/{DOC}", server.url);
    roomcast_client::game::open_socket(&url, None)
        .await
        .expect("upgrade")
}

#[actix_rt::test]
async fn hostile_doc_input_closes_only_its_own_connection() {
    let server = start(roomcast_server::Config {
        doc_max_frame_bytes: DOC_MAX_FRAME,
        doc_max_bytes: DOC_MAX_BYTES,
        max_messages_per_sec: DOC_MESSAGES_PER_SEC,
        doc_hold_bytes: DOC_HOLD_BYTES,
        doc_hold_timeout: DOC_HOLD_TIMEOUT,
        ..test_config()
    })
    .await;
    let mut members = DocMembers::join(&server).await;

    let mut failures = Vec::new();
    for (n, case) in doc_cases().into_iter().enumerate() {
        let mut ws = raw_doc_socket(&server).await;
        send_wires(&mut ws, &case.wires).await;
        let outcome = doc_answer(&mut ws).await;
        println!("doc  | {:<66} | {outcome}", case.name);
        if !outcome.matches(case.expect) {
            failures.push(format!(
                "{}: expected {:?}, got {outcome}",
                case.name, case.expect
            ));
            continue;
        }
        if let Outcome::Closed(_, reason) = &outcome {
            assert!(!reason.is_empty(), "{}: the close has a reason", case.name);
        }
        drop(ws);
        members.assert_intact(&server, n, case.name).await;
    }
    assert!(failures.is_empty(), "{failures:#?}");

    an_update_skipping_clocks_waits_for_them(&server, &mut members).await;
    an_item_between_contradictory_origins_is_refused(&server, &mut members).await;
    characters_inside_an_array_are_refused(&server, &mut members).await;
    held_updates_stay_within_their_bound(&server, &mut members).await;
    an_awareness_flood_with_forged_ids_hits_the_message_rate(&server, &mut members).await;
    server.stop().await;
}

/// An update that follows clocks of its client the doc does not have yet: a
/// stock client sends one when it reconnects and types before the server's
/// sync step 2 reaches it (its offline edits follow in its own step 2). The
/// room holds it, integrating and relaying nothing, and the connection stays
/// open; once the missing clocks arrive (here from another connection) both
/// are integrated in order. One whose clocks never arrive is refused with
/// 1007 when `--doc-hold-timeout` passes, the doc as it was.
async fn an_update_skipping_clocks_waits_for_them(server: &TestServer, members: &mut DocMembers) {
    const NAME: &str = "update following clocks the doc lacks";
    let before = server.inspect_doc(DOC).await.unwrap();
    // A replica of the server's doc, as `client`, makes two edits in a row.
    let two_edits = |client: u64| {
        let replica = Doc::with_client_id(client);
        replica
            .transact_mut()
            .apply_update(Update::decode_v1(&before.state_update).unwrap())
            .unwrap();
        let text = replica.get_or_insert_text("t");
        let edit = |at: u32, s: &str| {
            let sv = replica.transact().state_vector();
            text.insert(&mut replica.transact_mut(), at, s);
            let update = replica.transact().encode_state_as_update_v1(&sv);
            update
        };
        (edit(0, "[first]"), edit(7, "[second]"))
    };
    let (first, second) = two_edits(4242);

    // The second alone (then a sync step 1, whose answer says it was handled).
    let mut late = raw_doc_socket(server).await;
    let wires = [
        Wire::Binary(update_frame(second)),
        Wire::Binary(SYNC_STEP_1.to_vec()),
    ];
    send_wires(&mut late, &wires).await;
    let outcome = doc_answer(&mut late).await;
    println!("doc  | {:<66} | {outcome}", NAME);
    assert!(matches!(outcome, Outcome::Stays), "{NAME}: {outcome}");
    let waiting = server.inspect_doc(DOC).await.unwrap();
    assert_eq!(waiting.content, before.content, "{NAME}: content");
    assert_eq!(
        waiting.summary.updates_applied, before.summary.updates_applied,
        "{NAME}: nothing integrated yet"
    );
    assert_eq!(waiting.summary.held_updates, 1, "{NAME}: held");

    // The first, from another connection: both go in, in order.
    let mut early = raw_doc_socket(server).await;
    let wires = [
        Wire::Binary(update_frame(first)),
        Wire::Binary(SYNC_STEP_1.to_vec()),
    ];
    send_wires(&mut early, &wires).await;
    assert!(matches!(doc_answer(&mut early).await, Outcome::Stays));
    let done = eventually(WAIT, "both edits integrated", || async {
        let info = server.inspect_doc(DOC).await?;
        (info.summary.updates_applied == before.summary.updates_applied + 2).then_some(info)
    })
    .await;
    assert_eq!(done.summary.held_updates, 0, "{NAME}: nothing left held");
    let text = done.content["t"].as_str().unwrap_or_default().to_owned();
    assert!(text.starts_with("[first][second]"), "{NAME}: {text}");
    let _ = late.close(None).await;
    let _ = early.close(None).await;
    members.adopt_server_text(server, NAME).await;
    members.assert_intact(server, 100, NAME).await;

    // The second edit of a client whose first never arrives.
    let (_, never) = two_edits(4343);
    let name = "update following clocks that never arrive";
    refused_untouched(server, members, name, never, "did not arrive within", 101).await;
}

/// Sends `update` from a raw connection and expects it refused with 1007
/// (the reason containing `why`), nothing integrated, the content as it
/// was, and the members unaffected (`n` numbers their next edit).
async fn refused_untouched(
    server: &TestServer,
    members: &mut DocMembers,
    name: &str,
    update: Vec<u8>,
    why: &str,
    n: usize,
) {
    let before = server.inspect_doc(DOC).await.unwrap();
    let mut ws = raw_doc_socket(server).await;
    send_wires(&mut ws, &[Wire::Binary(update_frame(update))]).await;
    let outcome = doc_answer(&mut ws).await;
    println!("doc  | {:<66} | {outcome}", name);
    assert!(
        matches!(&outcome, Outcome::Closed(1007, reason) if reason.contains(why)),
        "{name}: {outcome}"
    );
    let after = server.inspect_doc(DOC).await.unwrap();
    assert_eq!(after.content, before.content, "{name}: content");
    assert_eq!(
        after.summary.updates_applied, before.summary.updates_applied,
        "{name}: nothing integrated"
    );
    members.assert_intact(server, n, name).await;
}

/// An item that claims to sit after the writer's second character and before
/// its first. yrs would integrate it where the document's history puts it,
/// so a joiner would see other content than the members; no stock client
/// writes one. Refused with 1007, the doc as it was.
async fn an_item_between_contradictory_origins_is_refused(
    server: &TestServer,
    members: &mut DocMembers,
) {
    let writer = members.writer.client_id().get();
    let mut update = vec![1, 1];
    var_uint(0xc0ffee, &mut update);
    update.push(0);
    // Info: left origin, right origin, string content.
    update.push(0x80 | 0x40 | 4);
    for n in [writer, 1, writer, 0] {
        var_uint(n, &mut update);
    }
    update.extend_from_slice(&[1, b'x', 0]);
    let name = "item after the writer's 2nd character and before its 1st";
    refused_untouched(server, members, name, update, "lies left of", 101).await;
}

/// A new nested array under root "a" and, named as its parent, an item of
/// characters (an emoji): no client puts characters outside a text, and yrs
/// reads an array holding a two-unit character by a loop that never ends, so
/// the room's JSON view would hang its thread. Refused whole with 1007.
async fn characters_inside_an_array_are_refused(server: &TestServer, members: &mut DocMembers) {
    const CLIENT: u64 = 0xc0de;
    let mut update = vec![1, 2];
    var_uint(CLIENT, &mut update);
    update.push(0);
    // Clock 0: an array (content 7, type ref 0) under root "a".
    update.extend_from_slice(&[7, 1, 1, b'a', 0]);
    // Clock 1: a string (content 4) whose parent is the item CLIENT#0.
    update.extend_from_slice(&[4, 0]);
    var_uint(CLIENT, &mut update);
    update.push(0);
    update.push(4);
    update.extend_from_slice("😀".as_bytes());
    update.push(0);
    let name = "an emoji inside a nested array";
    refused_untouched(server, members, name, update, "not a text", 102).await;
}

/// Updates that can never be integrated (each follows clocks of a client the
/// doc has never seen), more of them than `--doc-hold-bytes`: the room holds
/// them up to that bound and closes the sender with 1008 when it would go
/// past it; the doc's content and size are untouched and edits still go
/// through. What was held is dropped when the hold timeout passes.
async fn held_updates_stay_within_their_bound(server: &TestServer, members: &mut DocMembers) {
    const NAME: &str = "held updates worth twice --doc-hold-bytes";
    let before = server.inspect_doc(DOC).await.unwrap();
    let junk = "x".repeat(DOC_MAX_FRAME / 3);
    let mut frames = Vec::new();
    let mut sent = 0;
    for client in 5000..5000 + (2 * DOC_HOLD_BYTES / junk.len()) as u64 {
        // The second edit of a client whose first never arrives.
        let doc = Doc::with_client_id(client);
        let text = doc.get_or_insert_text("t");
        text.insert(&mut doc.transact_mut(), 0, "a");
        let sv = doc.transact().state_vector();
        text.insert(&mut doc.transact_mut(), 1, &junk);
        let update = doc.transact().encode_state_as_update_v1(&sv);
        sent += update.len();
        frames.push(Wire::Binary(update_frame(update)));
    }
    frames.push(Wire::Binary(SYNC_STEP_1.to_vec()));
    let mut ws = raw_doc_socket(server).await;
    send_wires(&mut ws, &frames).await;
    let outcome = doc_answer(&mut ws).await;
    println!("doc  | {:<66} | {outcome}", NAME);
    assert!(
        matches!(&outcome, Outcome::Closed(code::POLICY_VIOLATION, why) if why.contains("waiting for clocks")),
        "{NAME}: {outcome}"
    );
    assert!(sent > DOC_HOLD_BYTES, "{NAME}: sent {sent}");
    let after = server.inspect_doc(DOC).await.unwrap();
    assert_eq!(after.content, before.content, "{NAME}: content");
    assert!(
        after.summary.held_bytes <= DOC_HOLD_BYTES,
        "{NAME}: {} bytes held, over the bound of {DOC_HOLD_BYTES}",
        after.summary.held_bytes
    );
    assert_eq!(
        after.summary.doc_bytes, before.summary.doc_bytes,
        "{NAME}: doc size"
    );
    let _ = ws.close(None).await;
    members.assert_intact(server, 150, NAME).await;
    eventually(
        WAIT,
        "held updates dropped after the hold timeout",
        || async {
            let info = server.inspect_doc(DOC).await?;
            (info.summary.held_updates == 0).then_some(())
        },
    )
    .await;
}

/// Awareness frames as fast as the socket takes them, half of them claiming the
/// writer's client id: the forged ones are dropped (ownership rule), the flood
/// hits the message rate (1008), and the flooder's own entry goes with it.
async fn an_awareness_flood_with_forged_ids_hits_the_message_rate(
    server: &TestServer,
    members: &mut DocMembers,
) {
    const NAME: &str = "awareness flood, half claiming the writer's client id";
    let writer_id = members.writer.client_id();
    let own_id = ClientID::new(777_777);
    let mut frames = Vec::new();
    for clock in 1..=(DOC_MESSAGES_PER_SEC * 10) {
        frames.push(Wire::Binary(awareness_frame(
            own_id,
            clock,
            r#"{"user":"flooder"}"#,
        )));
        frames.push(Wire::Binary(awareness_frame(
            writer_id,
            1000 + clock,
            r#"{"user":"mallory"}"#,
        )));
    }
    let mut ws = raw_doc_socket(server).await;
    send_wires(&mut ws, &frames).await;
    let outcome = doc_answer(&mut ws).await;
    println!("doc  | {:<66} | {outcome}", NAME);
    match &outcome {
        Outcome::Closed(code::POLICY_VIOLATION, reason) => {
            assert!(reason.contains("message rate"), "{NAME}: {reason}")
        }
        other => panic!("{NAME}: expected 1008, got {other}"),
    }
    // The flooder's own entry was relayed, then removed with it; the writer's
    // never changed (checked by `assert_intact`).
    for present in [true, false] {
        members
            .witness
            .wait_awareness(WAIT, |a| {
                a.state::<serde_json::Value>(own_id).is_some() == present
            })
            .await
            .unwrap_or_else(|e| panic!("{NAME}: flooder's entry present={present}: {e}"));
    }
    members.assert_intact(server, 200, NAME).await;
}
