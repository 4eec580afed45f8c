//! What a doc room's item index (`wire::item_index`: the nesting and
//! contradictory-origin checks) costs per update, next to what yrs itself
//! spends integrating the same update, and how big the index grows.
//!
//! Four clients take turns typing two characters at seeded random places of
//! one Y.Text (so the document is cut into many runs: the index's worst case
//! for ordinary editing), each edit applied to a room-side document as the
//! room does: walk (bounds + shape), check, yrs apply, record. Run with
//! `cargo bench -p roomcast-server --bench doc_item_index`; under
//! `cargo test --all-targets` it runs a short smoke round.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use roomcast_server::yjs::bounds::update_shape_v1;
use roomcast_server::yjs::item_index::ItemIndex;
use yrs::updates::decoder::Decode;
use yrs::{Doc, ReadTxn, StateVector, Text, Transact, Update};

const CLIENTS: u64 = 4;

fn quantiles(mut v: Vec<Duration>) -> String {
    v.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!(
        "median {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        us(at(0.5)),
        us(at(0.99)),
        us(v[v.len() - 1])
    )
}

fn main() {
    let edits: usize = if std::env::args().any(|a| a == "--bench") {
        20_000
    } else {
        200
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let clients: Vec<Doc> = (1..=CLIENTS).map(Doc::with_client_id).collect();
    let room = Doc::new();
    let mut index = ItemIndex::default();
    let (mut index_times, mut yrs_times) = (Vec::new(), Vec::new());
    for i in 0..edits {
        let doc = &clients[i % clients.len()];
        let text = doc.get_or_insert_text("t");
        let update = {
            let mut txn = doc.transact_mut();
            let at = rng.gen_range(0..=text.len(&txn));
            text.insert(&mut txn, at, "ab");
            txn.encode_update_v1()
        };

        let started = Instant::now();
        let shape = update_shape_v1(&update).expect("a client's update walks");
        index.check(&shape).expect("a client's update passes");
        let checked = started.elapsed();

        let started = Instant::now();
        room.transact_mut()
            .apply_update(Update::decode_v1(&update).expect("decodes"))
            .expect("applies");
        yrs_times.push(started.elapsed());

        let started = Instant::now();
        index.record(&shape);
        index_times.push(checked + started.elapsed());

        for other in clients.iter().filter(|d| !std::ptr::eq(*d, doc)) {
            other
                .transact_mut()
                .apply_update(Update::decode_v1(&update).unwrap())
                .unwrap();
        }
    }
    let whole = room
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let started = Instant::now();
    let rebuilt = ItemIndex::of_updates([whole.as_slice()]);
    let rebuild = started.elapsed();
    println!(
        "doc_item_index: {edits} edits by {CLIENTS} clients at random places; \
         index walk+check+record {}; yrs decode+apply {}",
        quantiles(index_times),
        quantiles(yrs_times)
    );
    println!(
        "doc_item_index: document {} bytes encoded, index {} runs (~{} bytes); \
         index rebuilt from the whole document in {:.2} ms",
        whole.len(),
        rebuilt.run_count(),
        rebuilt.run_count() * 24,
        rebuild.as_secs_f64() * 1e3
    );
}
