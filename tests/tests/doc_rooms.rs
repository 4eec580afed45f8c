//! Doc rooms end to end with the Rust y-websocket client: a real server, real
//! sockets, real yrs documents on both sides. (The stock npm Yjs clients are
//! tested against the same server by tests/node.)

use std::time::Duration;

use roomcast_client::{DocConnection, DocOptions};
use roomcast_e2e::{eventually, start, test_config, var_uint};
use roomcast_protocol::close::code;
use yrs::types::ToJson;
use yrs::updates::decoder::Decode;
use yrs::{Array, Doc, GetString, Map, Text, Transact, Update, WriteTxn};

const WAIT: Duration = Duration::from_secs(10);

/// The text, map and array of a doc, as JSON, for comparing replicas.
fn content(doc: &Doc) -> serde_json::Value {
    let (t, m, a) = (
        doc.get_or_insert_text("t"),
        doc.get_or_insert_map("m"),
        doc.get_or_insert_array("a"),
    );
    let txn = doc.transact();
    serde_json::json!({
        "t": t.get_string(&txn),
        "m": serde_json::to_value(m.to_json(&txn)).unwrap(),
        "a": serde_json::to_value(a.to_json(&txn)).unwrap(),
    })
}

/// The server's copy of the doc, decoded into a fresh replica.
async fn server_content(server: &roomcast_e2e::TestServer, name: &str) -> serde_json::Value {
    let info = server.inspect_doc(name).await.expect("doc room is live");
    let doc = Doc::new();
    doc.transact_mut()
        .apply_update(Update::decode_v1(&info.state_update).unwrap())
        .unwrap();
    content(&doc)
}

fn text_of(conn: &DocConnection) -> String {
    let t = conn.doc().get_or_insert_text("t");
    let s = t.get_string(&conn.doc().transact());
    s
}

#[actix_rt::test]
async fn concurrent_edits_converge_on_every_replica_and_the_server() {
    let server = start(test_config()).await;
    let mut a = server.join_doc("converge").await;
    let mut b = server.join_doc("converge").await;
    for i in 0..20 {
        a.edit(|txn| {
            let t = txn.get_or_insert_text("t");
            t.insert(txn, 0, &format!("a{i} "));
            txn.get_or_insert_map("m")
                .insert(txn, format!("a{}", i % 5), i as i64);
        })
        .await
        .unwrap();
        b.edit(|txn| {
            let t = txn.get_or_insert_text("t");
            let len = t.len(txn);
            t.insert(txn, len, &format!("b{i} "));
            txn.get_or_insert_array("a").push_back(txn, format!("b{i}"));
        })
        .await
        .unwrap();
    }
    let done = |d: &Doc| {
        let s = d.get_or_insert_text("t").get_string(&d.transact());
        s.contains("a19 ") && s.contains("b19 ")
    };
    a.wait_until(WAIT, done).await.unwrap();
    b.wait_until(WAIT, done).await.unwrap();
    let expected = content(a.doc());
    assert_eq!(content(b.doc()), expected);
    assert_eq!(server_content(&server, "converge").await, expected);
    assert_eq!(expected["a"].as_array().unwrap().len(), 20);
    server.stop().await;
}

#[actix_rt::test]
async fn a_late_joiner_receives_a_megabyte_document_through_sync_step_2() {
    let server = start(test_config()).await;
    let mut writer = server.join_doc("big").await;
    let big: String = (0..1_000_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    writer
        .edit(|txn| txn.get_or_insert_text("t").insert(txn, 0, &big))
        .await
        .unwrap();
    eventually(WAIT, "server holds the megabyte", || async {
        (server.inspect_doc("big").await?.summary.doc_bytes >= 1_000_000).then_some(())
    })
    .await;
    let late = server.join_doc("big").await;
    assert_eq!(text_of(&late).len(), 1_000_000);
    assert_eq!(text_of(&late), big);
    server.stop().await;
}

#[actix_rt::test]
async fn awareness_is_relayed_removed_on_leave_and_cannot_be_spoofed() {
    let server = start(test_config()).await;
    let mut a = server.join_doc("presence").await;
    let mut b = server.join_doc("presence").await;
    let mut c = server.join_doc("presence").await;
    a.set_awareness(&serde_json::json!({"user": {"name": "ada"}}))
        .await
        .unwrap();
    let a_id = a.client_id();
    let sees_ada = |aw: &yrs::sync::Awareness| {
        aw.state::<serde_json::Value>(a_id)
            .is_some_and(|s| s["user"]["name"] == "ada")
    };
    b.wait_awareness(WAIT, sees_ada).await.unwrap();
    c.wait_awareness(WAIT, sees_ada).await.unwrap();
    // The sender gets its own change echoed back (stock clients' keep-alive).
    a.wait_awareness(WAIT, sees_ada).await.unwrap();

    // b forges a removal and a new state for a's client id: the server drops both.
    let forged = r#"{"user":{"name":"mallory"}}"#.to_string();
    let mut spoof = yrs::sync::AwarenessUpdate {
        clients: Default::default(),
    };
    spoof.clients.insert(
        a_id,
        yrs::sync::awareness::AwarenessUpdateEntry {
            clock: 1000,
            json: forged.into(),
        },
    );
    b.send_raw(yrs::updates::encoder::Encode::encode_v1(
        &yrs::sync::Message::Awareness(spoof),
    ))
    .await
    .unwrap();
    b.set_awareness(&serde_json::json!({"user": {"name": "bob"}}))
        .await
        .unwrap();
    let b_id = b.client_id();
    c.wait_awareness(WAIT, |aw| aw.state::<serde_json::Value>(b_id).is_some())
        .await
        .unwrap();
    assert!(
        sees_ada(c.awareness()),
        "a forged update must not replace ada's presence"
    );

    // a disconnects without clearing its state: the server removes it for everyone.
    a.drop_abruptly();
    c.wait_awareness(WAIT, |aw| aw.state::<serde_json::Value>(a_id).is_none())
        .await
        .unwrap();
    b.wait_awareness(WAIT, |aw| aw.state::<serde_json::Value>(a_id).is_none())
        .await
        .unwrap();
    server.stop().await;
}

#[actix_rt::test]
async fn awareness_not_renewed_within_the_timeout_is_swept() {
    let config = roomcast_server::Config {
        awareness_timeout: Duration::from_millis(400),
        ..test_config()
    };
    let server = start(config).await;
    let mut a = server.join_doc("sweep").await;
    let mut b = server.join_doc("sweep").await;
    a.set_awareness(&serde_json::json!({"cursor": 3}))
        .await
        .unwrap();
    let a_id = a.client_id();
    b.wait_awareness(WAIT, |aw| aw.state::<serde_json::Value>(a_id).is_some())
        .await
        .unwrap();
    // a stays connected but never renews its state: the sweep removes it.
    b.wait_awareness(WAIT, |aw| aw.state::<serde_json::Value>(a_id).is_none())
        .await
        .unwrap();
    server.stop().await;
}

#[actix_rt::test]
async fn offline_edits_survive_a_reconnect() {
    let server = start(test_config()).await;
    let mut a = server.join_doc("offline").await;
    let mut b = server.join_doc("offline").await;
    a.edit(|txn| txn.get_or_insert_text("t").insert(txn, 0, "online "))
        .await
        .unwrap();
    b.wait_until(WAIT, |d| {
        d.get_or_insert_text("t").get_string(&d.transact()) == "online "
    })
    .await
    .unwrap();

    // a goes offline, keeps editing, then reconnects with its replica.
    let doc = a.into_doc();
    {
        let t = doc.get_or_insert_text("t");
        let mut txn = doc.transact_mut();
        let len = t.len(&txn);
        t.insert(&mut txn, len, "offline");
    }
    let back = server
        .join_doc_with(
            "offline",
            DocOptions {
                doc: Some(doc),
                ..Default::default()
            },
        )
        .await;
    b.wait_until(WAIT, |d| {
        d.get_or_insert_text("t").get_string(&d.transact()) == "online offline"
    })
    .await
    .unwrap();
    assert_eq!(text_of(&back), "online offline");
    assert_eq!(
        server_content(&server, "offline").await["t"],
        "online offline"
    );
    server.stop().await;
}

/// A frame: sync (0), update (2), then the given body with its declared length.
fn update_frame_with_body(declared_len: usize, body: &[u8]) -> Vec<u8> {
    let mut frame = vec![0, 2];
    var_uint(declared_len as u64, &mut frame);
    frame.extend_from_slice(body);
    frame
}

#[actix_rt::test]
async fn bad_frames_close_only_their_sender_and_leave_the_doc_unchanged() {
    let server = start(test_config()).await;
    let mut writer = server.join_doc("bad").await;
    let mut observer = server.join_doc("bad").await;
    writer
        .edit(|txn| txn.get_or_insert_text("t").insert(txn, 0, "intact"))
        .await
        .unwrap();
    observer
        .wait_until(WAIT, |d| {
            d.get_or_insert_text("t").get_string(&d.transact()) == "intact"
        })
        .await
        .unwrap();
    let before = server_content(&server, "bad").await;

    let garbage: Vec<u8> = (0..64u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(200))
        .collect();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "undecodable update",
            update_frame_with_body(garbage.len(), &garbage),
            code::INVALID_PAYLOAD,
        ),
        (
            "truncated message",
            update_frame_with_body(100, &[1, 2, 3]),
            code::INVALID_PAYLOAD,
        ),
        (
            "unknown sync sub-type",
            vec![0, 9, 0],
            code::INVALID_PAYLOAD,
        ),
        ("malformed varint", vec![0xff; 12], code::INVALID_PAYLOAD),
    ];
    for (what, frame, expected) in cases {
        let mut bad = server.join_doc("bad").await;
        bad.send_raw(frame).await.unwrap();
        let close = bad
            .wait_closed(WAIT)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{what}: no close frame"));
        assert_eq!(close.code, expected, "{what}: {}", close.reason);
        assert_eq!(
            server_content(&server, "bad").await,
            before,
            "{what} changed the doc"
        );
    }
    // An unknown message type is ignored, as the reference server does.
    let mut odd = server.join_doc("bad").await;
    odd.send_raw(vec![7, 3, 1, 2, 3]).await.unwrap();

    // The others carry on editing.
    writer
        .edit(|txn| txn.get_or_insert_text("t").insert(txn, 6, "!"))
        .await
        .unwrap();
    observer
        .wait_until(WAIT, |d| {
            d.get_or_insert_text("t").get_string(&d.transact()) == "intact!"
        })
        .await
        .unwrap();
    odd.wait_until(WAIT, |d| {
        d.get_or_insert_text("t").get_string(&d.transact()) == "intact!"
    })
    .await
    .unwrap();
    server.stop().await;
}

#[actix_rt::test]
async fn size_limits_refuse_growth_and_oversized_frames() {
    let config = roomcast_server::Config {
        doc_max_bytes: 4 * 1024,
        doc_max_frame_bytes: 64 * 1024,
        ..test_config()
    };
    let server = start(config).await;
    let mut writer = server.join_doc("limits").await;
    let mut observer = server.join_doc("limits").await;
    writer
        .edit(|txn| txn.get_or_insert_text("t").insert(txn, 0, "small"))
        .await
        .unwrap();
    observer
        .wait_until(WAIT, |d| {
            d.get_or_insert_text("t").get_string(&d.transact()) == "small"
        })
        .await
        .unwrap();

    // Growth past the document limit is refused with a clear reason.
    writer
        .edit(|txn| {
            txn.get_or_insert_text("t")
                .insert(txn, 5, &"x".repeat(8 * 1024))
        })
        .await
        .unwrap();
    let close = writer
        .wait_closed(WAIT)
        .await
        .unwrap()
        .expect("close frame");
    assert_eq!(close.code, code::MESSAGE_TOO_BIG);
    assert!(close.reason.contains("size limit"), "{}", close.reason);
    assert_eq!(server_content(&server, "limits").await["t"], "small");

    // A frame over the doc frame limit closes with 1009 too.
    let mut big = server.join_doc("limits").await;
    big.send_raw(vec![0u8; 70 * 1024]).await.unwrap();
    let close = big.wait_closed(WAIT).await.unwrap().expect("close frame");
    assert_eq!(close.code, code::MESSAGE_TOO_BIG);
    let (_, metrics) = server.http_get("/metrics").await;
    for reason in ["doc_size", "frame_size"] {
        let series = format!("roomcast_refusals_total{{reason=\"{reason}\"}}");
        assert!(metrics.contains(&series), "{series} in /metrics");
    }

    // The observer still edits within the limit.
    observer
        .edit(|txn| txn.get_or_insert_text("t").insert(txn, 5, "!"))
        .await
        .unwrap();
    eventually(WAIT, "the server applies the observer's edit", || async {
        (server_content(&server, "limits").await["t"] == "small!").then_some(())
    })
    .await;
    server.stop().await;
}

#[actix_rt::test]
async fn doc_names_are_checked_query_parameters_ignored_and_idle_docs_evicted() {
    let config = roomcast_server::Config {
        idle_timeout: Duration::from_millis(300),
        ..test_config()
    };
    let server = start(config).await;
    let refused = DocConnection::connect(&server.url, "bad%20name", DocOptions::default()).await;
    assert_eq!(refused.err().and_then(|e| e.http_status()), Some(400));

    let mut plain = server.join_doc("named").await;
    let mut with_query = server.join_doc("named?token=abc&x=1").await;
    with_query
        .edit(|txn| txn.get_or_insert_text("t").insert(txn, 0, "same doc"))
        .await
        .unwrap();
    plain
        .wait_until(WAIT, |d| {
            d.get_or_insert_text("t").get_string(&d.transact()) == "same doc"
        })
        .await
        .unwrap();
    let info = server.inspect_doc("named").await.unwrap();
    assert_eq!(info.summary.members.len(), 2);

    plain.close().await.unwrap();
    with_query.close().await.unwrap();
    eventually(WAIT, "idle doc room stopped", || async {
        server.inspect_doc("named").await.is_none().then_some(())
    })
    .await;
    server.stop().await;
}

#[actix_rt::test]
async fn graceful_shutdown_closes_doc_members_with_1001() {
    let server = start(test_config()).await;
    let mut a = server.join_doc("bye").await;
    server.shutdown.cancel();
    let close = a.wait_closed(WAIT).await.unwrap().expect("close frame");
    assert_eq!(close.code, code::GOING_AWAY);
    server.stop().await;
}

/// How many maps are nested under root map `m` of `doc` along key "child".
fn depth_of(doc: &Doc) -> usize {
    // Declare the root before reading (declaring takes a write transaction).
    let mut map = doc.get_or_insert_map("m");
    let txn = doc.transact();
    let mut depth = 0;
    while let Some(yrs::Out::YMap(child)) = map.get(&txn, "child") {
        depth += 1;
        map = child;
    }
    depth
}

/// Nests one more map at the end of the chain under root map `m`.
fn nest_one_more(txn: &mut yrs::TransactionMut) {
    let mut map = txn.get_or_insert_map("m");
    while let Some(yrs::Out::YMap(child)) = map.get(txn, "child") {
        map = child;
    }
    map.insert(txn, "child", yrs::MapPrelim::default());
}

/// An update, by a client of its own, nesting `levels` maps under root `root`.
fn nested_maps_update(client: u64, root: &str, levels: usize) -> Vec<u8> {
    let doc = Doc::with_client_id(client);
    let mut txn = doc.transact_mut();
    let mut map = txn.get_or_insert_map(root);
    for _ in 0..levels {
        map = map.insert(&mut txn, "child", yrs::MapPrelim::default());
    }
    txn.encode_update_v1()
}

/// yrs deletes, garbage-collects and views nested shared types by recursion:
/// 20,000 nested maps (a 160 kB update) used to overflow the room thread's
/// stack when deleted or viewed, aborting the whole server. Nesting past 128
/// levels is now refused with 1007 before yrs sees it, in one update or over
/// many; a document at the limit still syncs, views, and deletes.
#[actix_rt::test]
async fn shared_types_nested_past_the_limit_are_refused_and_the_limit_works() {
    let server = start(test_config()).await;
    let mut writer = server.join_doc("deep").await;
    let mut observer = server.join_doc("deep").await;
    // 128 levels, one per edit.
    for _ in 0..128 {
        writer.edit(nest_one_more).await.unwrap();
    }
    observer
        .wait_until(WAIT, |d| depth_of(d) == 128)
        .await
        .unwrap();
    let info = server.inspect_doc("deep").await.expect("doc room is live");
    let mut view = &info.content["m"];
    for level in 0..128 {
        view = view
            .get("child")
            .unwrap_or_else(|| panic!("admin view ends at level {level}"));
    }

    // A 129th level: refused, its sender closed with 1007.
    writer.edit(nest_one_more).await.unwrap();
    let close = writer
        .wait_closed(WAIT)
        .await
        .unwrap()
        .expect("close frame");
    assert_eq!(close.code, code::INVALID_PAYLOAD, "{}", close.reason);
    assert!(close.reason.contains("129 deep"), "{}", close.reason);

    // 20,000 levels in one update of its own root: refused the same way.
    let bomb = nested_maps_update(0xb0b, "bomb", 20_000);
    assert!(bomb.len() > 100_000, "{} bytes", bomb.len());
    let mut attacker = server.join_doc("deep").await;
    attacker
        .send_raw(update_frame_with_body(bomb.len(), &bomb))
        .await
        .unwrap();
    let close = attacker
        .wait_closed(WAIT)
        .await
        .unwrap()
        .expect("close frame");
    assert_eq!(close.code, code::INVALID_PAYLOAD, "{}", close.reason);
    assert!(close.reason.contains("deep"), "{}", close.reason);

    // The room lives on: a new member syncs all 128 levels, and deleting the
    // whole chain (recursion over every level) goes through and is relayed.
    let mut late = server.join_doc("deep").await;
    late.wait_until(WAIT, |d| depth_of(d) == 128).await.unwrap();
    observer
        .edit(|txn| txn.get_or_insert_map("m").remove(txn, "child"))
        .await
        .unwrap();
    late.wait_until(WAIT, |d| depth_of(d) == 0).await.unwrap();
    let info = server.inspect_doc("deep").await.expect("doc room is live");
    // (An emptied root the server never declared shows as null.)
    assert!(info.content["m"].get("child").is_none(), "{}", info.content);
    assert!(info.content.get("bomb").is_none(), "{}", info.content);
    server.stop().await;
}

/// A root holding characters and other content side by side (no client
/// writes one; the room accepts it under a root, whose kind is only how it is
/// read). yrs would read it as a list by a loop that never ends on a
/// two-unit character: the admin view shows it as null instead, and the room
/// keeps answering.
#[actix_rt::test]
async fn a_root_mixing_characters_and_values_is_viewed_without_hanging() {
    let server = start(test_config()).await;
    let mut writer = server.join_doc("mixed").await;
    writer
        .edit(|txn| txn.get_or_insert_text("mix").insert(txn, 0, "a😀"))
        .await
        .unwrap();
    // Client 77 adds two values between the "a" and the emoji.
    let writer_id = writer.client_id().get();
    let mut update = vec![1, 1];
    var_uint(77, &mut update);
    update.push(0);
    update.push(0x80 | 8); // left origin, values
    var_uint(writer_id, &mut update);
    update.push(0); // right after the "a": the emoji stays whole
    update.extend_from_slice(&[2, 125, 1, 125, 2, 0]); // [1, 2]
    let mut other = server.join_doc("mixed").await;
    other
        .send_raw(update_frame_with_body(update.len(), &update))
        .await
        .unwrap();
    // (A view that hangs would hang the room: bound the whole wait.)
    let took_it = eventually(WAIT, "the room took the value", || async {
        let info = server.inspect_doc("mixed").await?;
        (info.summary.updates_applied >= 2).then_some(info)
    });
    let info = tokio::time::timeout(2 * WAIT, took_it)
        .await
        .expect("the room answers (its JSON view did not hang)");
    assert_eq!(
        info.content["mix"],
        serde_json::Value::Null,
        "{}",
        info.content
    );
    // Still live: an edit elsewhere goes through and is viewed.
    writer
        .edit(|txn| txn.get_or_insert_text("t").insert(txn, 0, "after"))
        .await
        .unwrap();
    other
        .wait_until(WAIT, |d| {
            d.get_or_insert_text("t").get_string(&d.transact()) == "after"
        })
        .await
        .unwrap();
    assert_eq!(
        server.inspect_doc("mixed").await.unwrap().content["t"],
        "after"
    );
    server.stop().await;
}
