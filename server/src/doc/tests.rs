//! The doc core driven by hand with what stock clients send: JSON objects,
//! `-0`, formats, edits typed while reconnecting, resent blocks, and the
//! persistence path. None of it may be refused.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use yrs::sync::{Message, SyncMessage};
use yrs::types::ToJson;
use yrs::updates::decoder::Decode;
use yrs::{Any, Array, Doc, Map, ReadTxn, StateVector, Text, Transact, Update, WriteTxn};

use super::{CloseKind, CoreSettings, DocCore, Effect, HoldLimits};
use crate::yjs::wire::{self, Inbound};

fn settings(persistent: bool) -> CoreSettings {
    CoreSettings {
        max_doc_bytes: 64 << 20,
        awareness_timeout: Duration::from_secs(30),
        hold: HoldLimits {
            conn_bytes: 64 << 10,
            doc_bytes: 256 << 10,
            timeout: Duration::from_secs(5),
        },
        persistent,
    }
}

/// A core with members 1 and 2.
fn room(persistent: bool) -> DocCore {
    let mut core = DocCore::new(settings(persistent), tracing::Span::none());
    core.join(1, false);
    core.join(2, false);
    core
}

/// The messages of an update frame carrying `update`.
fn update_message(update: &[u8]) -> Vec<Inbound> {
    wire::decode_frame(&wire::update_frame(update.to_vec())).expect("a client's update decodes")
}

/// The updates of every broadcast in `effects`.
fn broadcast_updates(effects: &[Effect]) -> Vec<Vec<u8>> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Broadcast(frame) => match Message::decode_v1(frame).ok()? {
                Message::Sync(SyncMessage::Update(u)) => Some(u),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn closes(effects: &[Effect]) -> Vec<(u64, CloseKind, String)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Close { conn, close } => Some((*conn, close.kind, close.message.clone())),
            _ => None,
        })
        .collect()
}

/// The update a late joiner gets in answer to an empty sync step 1.
fn late_joiner_state(core: &mut DocCore) -> Vec<u8> {
    core.join(99, false);
    let step1 = wire::encode(&Message::Sync(SyncMessage::SyncStep1(
        StateVector::default(),
    )));
    let effects = core.handle(99, wire::decode_frame(&step1).unwrap(), Instant::now());
    core.leave(99);
    effects
        .iter()
        .find_map(|e| match e {
            Effect::Reply { to: 99, frame } => match Message::decode_v1(frame).ok()? {
                Message::Sync(SyncMessage::SyncStep2(u)) => Some(u),
                _ => None,
            },
            _ => None,
        })
        .expect("a sync step 2")
}

/// The bytes of every value (`Any` content) of an update, by item id.
fn values(update: &[u8]) -> Vec<((u64, u64), Vec<u8>)> {
    let shape = crate::yjs::bounds::update_shape_v1(update).unwrap();
    let mut out = Vec::new();
    for block in shape.blocks.iter().filter(|b| b.content_ref == 8) {
        let mut r = crate::yjs::lib0::Reader::at(update, block.content.0);
        let count = r.var().unwrap();
        for i in 0..count {
            let end = crate::yjs::value::scan(update, r.pos).unwrap().end;
            out.push(((block.client, block.clock + i), update[r.pos..end].to_vec()));
            r.pos = end;
        }
    }
    out.sort();
    out
}

/// An object of `n` keys.
fn object(n: usize, salt: usize) -> Any {
    Any::from(
        (0..n)
            .map(|k| (format!("key{k}"), Any::from(format!("v{salt}.{k}"))))
            .collect::<HashMap<_, _>>(),
    )
}

#[test]
fn json_objects_in_maps_and_arrays_are_never_refused_and_relayed_as_sent() {
    let mut core = room(false);
    let client = Doc::with_client_id(7);
    for round in 0..60 {
        let n = [2, 5, 20][round % 3];
        let update = {
            let mut txn = client.transact_mut();
            let map = txn.get_or_insert_map("m");
            map.insert(&mut txn, format!("k{round}"), object(n, round));
            let array = txn.get_or_insert_array("a");
            array.push_back(&mut txn, object(n, round + 1000));
            array.push_back(&mut txn, Any::from(vec![object(n, round), Any::Null]));
            txn.encode_update_v1()
        };
        let effects = core.handle(1, update_message(&update), Instant::now());
        assert_eq!(closes(&effects), vec![], "round {round}: refused");
        let relayed = broadcast_updates(&effects);
        assert_eq!(relayed.len(), 1, "round {round}: relayed once");
        assert_eq!(
            values(&relayed[0]),
            values(&update),
            "round {round}: values relayed as the client wrote them"
        );
    }
    // A late joiner gets the author's bytes too: its state applies to a
    // replica and equals the author's document.
    let state = late_joiner_state(&mut core);
    let replica = Doc::new();
    replica
        .transact_mut()
        .apply_update(Update::decode_v1(&state).unwrap())
        .unwrap();
    let author = client.get_or_insert_map("m").to_json(&client.transact());
    assert_eq!(
        replica.get_or_insert_map("m").to_json(&replica.transact()),
        author
    );
}

#[test]
fn minus_zero_reaches_members_and_late_joiners_as_minus_zero() {
    let mut core = room(false);
    // map m: k = -0, as a JavaScript client writes it (yrs cannot).
    let update = vec![1, 1, 9, 0, 0x28, 1, 1, b'm', 1, b'k', 1, 125, 0x40, 0];
    let effects = core.handle(1, update_message(&update), Instant::now());
    assert_eq!(broadcast_updates(&effects), vec![update.clone()]);
    let state = late_joiner_state(&mut core);
    assert!(
        state.windows(2).any(|w| w == [125, 0x40]),
        "the late joiner's state keeps -0: {state:?}"
    );
}

#[test]
fn edits_typed_while_reconnecting_wait_for_the_step_2_and_go_out_in_order() {
    let mut core = room(true);
    let client = Doc::with_client_id(5);
    let text = client.get_or_insert_text("t");
    let type_at = |at: u32, s: &str| {
        let mut txn = client.transact_mut();
        text.insert(&mut txn, at, s);
        txn.encode_update_v1()
    };
    let first = type_at(0, "online ");
    let now = Instant::now();
    let effects = core.handle(1, update_message(&first), now);
    let Some(Effect::Append { seq, .. }) = effects.first() else {
        panic!("appended first: {effects:?}");
    };
    assert_eq!(broadcast_updates(&core.durable(*seq)).len(), 1);
    // Offline: typed, not sent. Reconnected: typed again right away.
    let server_sv = core.state_vector();
    let _offline = type_at(7, "offline ");
    let typed = type_at(15, "typed");
    core.leave(1);
    core.join(3, false);
    let effects = core.handle(3, update_message(&typed), now);
    assert_eq!(effects, vec![], "held: nothing relayed, nobody closed");
    assert_eq!(core.held().0, 1);
    // Its step 2 (the answer to the server's step 1) brings the offline edit.
    let step2 = client.transact().encode_state_as_update_v1(&server_sv);
    let effects = core.handle(3, update_message(&step2), now);
    assert_eq!(closes(&effects), vec![]);
    let appended: Vec<i64> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Append { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(
        appended.len(),
        1,
        "the step 2 carried both; the held one adds nothing"
    );
    assert_eq!(core.held(), (0, 0));
    core.durable(appended[0]);
    assert_eq!(core.to_json()["t"], "online offline typed");
    // An update whose gap never fills is refused when the hold times out.
    let stranger = Doc::with_client_id(6);
    let stext = stranger.get_or_insert_text("t");
    stext.insert(&mut stranger.transact_mut(), 0, "a");
    let sv = stranger.transact().state_vector();
    stext.insert(&mut stranger.transact_mut(), 1, "b");
    let gap = stranger.transact().encode_state_as_update_v1(&sv);
    assert_eq!(core.handle(2, update_message(&gap), now), vec![]);
    assert_eq!(
        closes(&core.housekeeping(now + Duration::from_secs(1), 0)),
        vec![]
    );
    let effects = core.housekeeping(now + Duration::from_secs(6), 0);
    let closed = closes(&effects);
    assert_eq!(closed.len(), 1);
    assert_eq!((closed[0].0, closed[0].1), (2, CloseKind::Invalid));
    assert!(
        closed[0].2.contains("did not arrive within"),
        "{}",
        closed[0].2
    );
}

#[test]
fn a_block_sent_again_longer_is_taken_and_one_rewriting_its_parent_is_refused() {
    let mut core = room(false);
    let client = Doc::with_client_id(8);
    let text = client.get_or_insert_text("t");
    let first = {
        let mut txn = client.transact_mut();
        text.insert(&mut txn, 0, "ab");
        txn.encode_update_v1()
    };
    core.handle(1, update_message(&first), Instant::now());
    text.insert(&mut client.transact_mut(), 2, "cd");
    // The whole of it again (as a step 2 computed against an older state
    // vector): one block 0..4, straddling the known clock 2. The same clocks
    // under another root first: refused, nothing changes.
    let whole = client
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let mut forged = whole.clone();
    let at = forged
        .windows(2)
        .position(|w| w == [1, b't'])
        .expect("the root name");
    forged[at + 1] = b'u';
    let effects = core.handle(2, update_message(&forged), Instant::now());
    let closed = closes(&effects);
    assert_eq!(closed.len(), 1, "{effects:?}");
    assert!(closed[0].2.contains("another parent"), "{}", closed[0].2);
    assert_eq!(core.to_json()["t"], "ab");
    let effects = core.handle(1, update_message(&whole), Instant::now());
    assert_eq!(closes(&effects), vec![]);
    assert_eq!(core.to_json()["t"], "abcd");
}

#[test]
fn a_failed_append_rolls_back_and_closes_its_sender_only() {
    let mut core = room(true);
    let update = |client: u64, s: &str| {
        let doc = Doc::with_client_id(client);
        let text = doc.get_or_insert_text(s);
        let mut txn = doc.transact_mut();
        text.insert(&mut txn, 0, s);
        txn.encode_update_v1()
    };
    let effects = core.handle(1, update_message(&update(1, "kept")), Instant::now());
    let Some(Effect::Append { seq: kept, .. }) = effects.first().cloned() else {
        panic!("{effects:?}");
    };
    core.durable(kept);
    let effects = core.handle(2, update_message(&update(2, "lost")), Instant::now());
    let Some(Effect::Append { seq: lost, .. }) = effects.first().cloned() else {
        panic!("{effects:?}");
    };
    let effects = core.storage_failed(lost, "disk full").expect("not stale");
    assert_eq!(
        closes(&effects)
            .into_iter()
            .map(|(c, k, _)| (c, k))
            .collect::<Vec<_>>(),
        vec![(2, CloseKind::Error)]
    );
    assert!(core.storage_failed(lost, "again").is_none(), "stale");
    let json = core.to_json();
    assert_eq!(json["kept"], "kept");
    assert!(json.get("lost").is_none(), "{json}");
    assert!(core.is_member(1) && !core.is_member(2));
}

#[test]
fn read_only_members_edits_are_dropped_and_told_once() {
    let mut core = room(false);
    core.join(3, true);
    let doc = Doc::with_client_id(3);
    let text = doc.get_or_insert_text("t");
    for s in ["a", "b"] {
        let update = {
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, 0, s);
            txn.encode_update_v1()
        };
        let effects = core.handle(3, update_message(&update), Instant::now());
        let told = effects
            .iter()
            .filter(|e| matches!(e, Effect::Reply { to: 3, frame } if frame.first() == Some(&2)))
            .count();
        assert_eq!(told, usize::from(s == "a"), "{effects:?}");
        assert_eq!(broadcast_updates(&effects), Vec::<Vec<u8>>::new());
    }
    assert!(core.is_member(3));
    assert_eq!(core.to_json().get("t"), None);
}
