//! Golden vectors: one example of every message, its exact bytes pinned in
//! `shared/golden/vectors.json`. An accidental change of the wire format fails
//! here; a deliberate one is re-pinned with `ROOMCAST_BLESS=1 cargo test -p
//! roomcast-protocol` and documented in `shared/PROTOCOL.md`. Non-Rust clients
//! test their codecs against the same file.

use bytes::Bytes;
use serde::Serialize;

use crate::games::{arena, counter};
use crate::message::*;

/// One pinned example.
#[derive(Serialize)]
struct Vector {
    /// Stable name of the example.
    name: &'static str,
    /// Rust type the bytes decode to.
    r#type: &'static str,
    /// The value, as JSON (byte strings as arrays of numbers).
    value: serde_json::Value,
    /// The exact encoding, lowercase hex.
    hex: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    crate::codec::encode(v).unwrap()
}

fn vector<T: Serialize>(name: &'static str, ty: &'static str, v: &T) -> Vector {
    Vector {
        name,
        r#type: ty,
        value: serde_json::to_value(v).unwrap(),
        hex: hex(&enc(v)),
    }
}

fn arena_player() -> arena::ArenaPlayer {
    arena::ArenaPlayer {
        x: 500.0,
        y: 250.5,
        vx: 200.0,
        vy: -200.0,
        last_input: 300,
    }
}

fn vectors() -> Vec<Vector> {
    let token = ResumeToken([
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
        0xff,
    ]);
    let input_payload = Bytes::from(enc(&arena::ArenaInput { dx: 1, dy: -1 }));
    let player = Bytes::from(enc(&arena_player()));
    vec![
        vector(
            "join",
            "ClientMessage",
            &ClientMessage::Join(Join {
                protocol: 1,
                resume: None,
            }),
        ),
        vector(
            "join_resume",
            "ClientMessage",
            &ClientMessage::Join(Join {
                protocol: 1,
                resume: Some(Resume {
                    token,
                    last_tick: 1000,
                }),
            }),
        ),
        vector(
            "input_arena",
            "ClientMessage",
            &ClientMessage::Input(Input {
                seq: 42,
                payload: input_payload,
            }),
        ),
        vector(
            "ping",
            "ClientMessage",
            &ClientMessage::Ping(Ping {
                client_time_us: 1_700_000,
            }),
        ),
        vector("leave", "ClientMessage", &ClientMessage::Leave),
        vector("resync", "ClientMessage", &ClientMessage::Resync),
        vector(
            "welcome",
            "ServerMessage",
            &ServerMessage::Welcome(Welcome {
                protocol: 1,
                player_id: 3,
                resume_token: token,
                resumed: false,
                game: "arena".into(),
                room: "lobby".into(),
                tick_rate_hz: 30,
            }),
        ),
        vector(
            "snapshot",
            "ServerMessage",
            &ServerMessage::Snapshot(Snapshot {
                tick: 7,
                entities: vec![EntityData {
                    id: 3,
                    data: player.clone(),
                }],
            }),
        ),
        vector(
            "delta",
            "ServerMessage",
            &ServerMessage::Delta(Delta {
                tick: 8,
                base_tick: 7,
                changed: vec![EntityData {
                    id: 3,
                    data: player,
                }],
                removed: vec![5, 300],
            }),
        ),
        vector(
            "delta_empty",
            "ServerMessage",
            &ServerMessage::Delta(Delta {
                tick: 9,
                base_tick: 8,
                changed: vec![],
                removed: vec![],
            }),
        ),
        vector(
            "pong",
            "ServerMessage",
            &ServerMessage::Pong(Pong {
                client_time_us: 1_700_000,
                server_tick: 70_000,
            }),
        ),
        vector(
            "error",
            "ServerMessage",
            &ServerMessage::Error(ErrorMessage {
                code: 5,
                message: "no".into(),
            }),
        ),
        vector(
            "arena_input",
            "ArenaInput",
            &arena::ArenaInput { dx: -1, dy: 0 },
        ),
        vector("arena_player", "ArenaPlayer", &arena_player()),
        vector(
            "counter_input",
            "CounterInput",
            &counter::CounterInput { add: -3 },
        ),
        vector(
            "counter_score",
            "CounterScore",
            &counter::CounterScore { score: 1_000_000 },
        ),
    ]
}

const GOLDEN_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/golden/vectors.json");

#[test]
fn encodings_match_the_pinned_golden_vectors() {
    let generated = serde_json::to_string_pretty(&vectors()).unwrap() + "\n";
    if std::env::var_os("ROOMCAST_BLESS").is_some() {
        std::fs::write(GOLDEN_PATH, &generated).unwrap();
    }
    let pinned = std::fs::read_to_string(GOLDEN_PATH)
        .expect("shared/golden/vectors.json missing: run with ROOMCAST_BLESS=1 once");
    assert!(
        pinned == generated,
        "wire format changed: compare shared/golden/vectors.json with\n{generated}"
    );
}

#[test]
fn golden_bytes_decode_back_to_their_values() {
    for v in vectors() {
        let bytes: Vec<u8> = (0..v.hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&v.hex[i..i + 2], 16).unwrap())
            .collect();
        let back = match v.r#type {
            "ClientMessage" => serde_json::to_value(ClientMessage::decode(&bytes).unwrap()),
            "ServerMessage" => serde_json::to_value(ServerMessage::decode(&bytes).unwrap()),
            "ArenaInput" => {
                serde_json::to_value(crate::codec::decode::<arena::ArenaInput>(&bytes).unwrap())
            }
            "ArenaPlayer" => {
                serde_json::to_value(crate::codec::decode::<arena::ArenaPlayer>(&bytes).unwrap())
            }
            "CounterInput" => {
                serde_json::to_value(crate::codec::decode::<counter::CounterInput>(&bytes).unwrap())
            }
            "CounterScore" => {
                serde_json::to_value(crate::codec::decode::<counter::CounterScore>(&bytes).unwrap())
            }
            other => panic!("unknown type {other}"),
        }
        .unwrap();
        assert_eq!(back, v.value, "{}", v.name);
    }
}

/// Hand-checked layouts, independent of the JSON file (see PROTOCOL.md).
#[test]
fn hand_checked_layouts() {
    // Join: variant 0, protocol u16 1 (varint: 1 byte), Option None = 0.
    assert_eq!(
        ClientMessage::Join(Join {
            protocol: 1,
            resume: None
        })
        .encode(),
        vec![0, 1, 0]
    );
    // Input: variant 1, seq 300 = 0xfb + u16 LE, payload len 2, dx 1, dy -1 (i8 raw).
    let payload = Bytes::from(vec![0x01, 0xff]);
    assert_eq!(
        ClientMessage::Input(Input { seq: 300, payload }).encode(),
        vec![1, 0xfb, 0x2c, 0x01, 2, 0x01, 0xff]
    );
    // Empty delta: variant 2, tick 9, base 8, two empty lists.
    let d = ServerMessage::Delta(Delta {
        tick: 9,
        base_tick: 8,
        changed: vec![],
        removed: vec![],
    });
    assert_eq!(&d.encode()[..], &[2, 9, 8, 0, 0]);
}
