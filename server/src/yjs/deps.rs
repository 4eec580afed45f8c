//! What an update needs that a document lacks.
//!
//! An update depends on the clocks it does not carry: a client's clocks
//! before its first block (Yjs numbers each client's items without gaps), the
//! items it names as origins or parents, and the items its delete set
//! deletes. A stock client sends such an update when it reconnects and types
//! before the server's sync step 2 arrives: those edits follow its offline
//! ones, which it sends only in its own step 2, a moment later.
//!
//! Yjs keeps such an update pending until the missing part arrives; yrs does
//! too, but integrates a block after a gap at once (behind a placeholder) and
//! leaves it out of the update it reports, so it would never be relayed nor
//! logged. The room therefore never hands yrs an update whose needs are not
//! met: it holds it (see `doc::held`) and integrates it whole once they are.

use std::collections::HashMap;

use super::bounds::{Anchor, UpdateShape, SKIP_BLOCK};

/// Clocks of one client that a document must know first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    /// The client.
    pub client: u64,
    /// Its clocks the document knew when the need was found…
    pub from: u64,
    /// …and the clock it must reach.
    pub to: u64,
}

/// What an update needs, by client (empty: it can be integrated now).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs(Vec<Need>);

impl Needs {
    /// Whether nothing is missing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a document that knows each client's clocks below
    /// `known(client)` has everything needed.
    pub fn met_by(&self, known: impl Fn(u64) -> u64) -> bool {
        self.0.iter().all(|need| known(need.client) >= need.to)
    }

    /// The needs, by client.
    pub fn iter(&self) -> impl Iterator<Item = &Need> {
        self.0.iter()
    }

    /// What is missing, for logs and close reasons.
    pub fn describe(&self) -> String {
        self.0
            .iter()
            .map(|n| format!("clocks {}..{} of client {}", n.from, n.to, n.client))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The clock ranges an update carries, by client.
struct Carried(HashMap<u64, Vec<(u64, u64)>>);

impl Carried {
    fn of(shape: &UpdateShape) -> Self {
        let mut by_client: HashMap<u64, Vec<(u64, u64)>> = HashMap::new();
        for block in shape.blocks.iter().filter(|b| b.content_ref != SKIP_BLOCK) {
            by_client
                .entry(block.client)
                .or_default()
                .push((block.clock, block.clock.saturating_add(block.len)));
        }
        for ranges in by_client.values_mut() {
            ranges.sort_unstable();
        }
        Self(by_client)
    }

    /// The first clock in `from..to` of `client` neither below `known` nor
    /// carried, if any.
    fn first_missing(&self, client: u64, from: u64, to: u64, known: u64) -> Option<u64> {
        let mut at = from.max(known);
        if let Some(ranges) = self.0.get(&client) {
            for &(start, end) in ranges {
                if at >= to {
                    break;
                }
                if start > at {
                    return Some(at);
                }
                at = at.max(end);
            }
        }
        (at < to).then_some(at)
    }
}

/// What `shape` needs from a document that knows each client's clocks below
/// `known(client)`.
pub fn needs(shape: &UpdateShape, known: impl Fn(u64) -> u64) -> Needs {
    let carried = Carried::of(shape);
    let mut needed: HashMap<u64, u64> = HashMap::new();
    let mut need = |client: u64, to: u64| {
        let at = needed.entry(client).or_insert(0);
        *at = (*at).max(to);
    };
    // Each block's clocks before it, and each id it names.
    for block in shape.blocks.iter().filter(|b| b.content_ref != SKIP_BLOCK) {
        if carried
            .first_missing(block.client, 0, block.clock, known(block.client))
            .is_some()
        {
            need(block.client, block.clock);
        }
        let parent = match block.anchor {
            Anchor::Parent(id) => Some(id),
            _ => None,
        };
        for (client, clock) in [block.origin, block.right_origin, parent]
            .into_iter()
            .flatten()
        {
            let end = clock.saturating_add(1);
            if carried
                .first_missing(client, clock, end, known(client))
                .is_some()
            {
                need(client, end);
            }
        }
    }
    for &(client, clock, len) in &shape.deletes {
        let end = clock.saturating_add(len);
        if carried
            .first_missing(client, clock, end, known(client))
            .is_some()
        {
            need(client, end);
        }
    }
    let mut needs: Vec<Need> = needed
        .into_iter()
        .map(|(client, to)| Need {
            client,
            from: known(client),
            to,
        })
        .collect();
    needs.sort_unstable_by_key(|n| n.client);
    Needs(needs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yjs::bounds::update_shape_v1;
    use yrs::{Doc, ReadTxn, StateVector, Text, Transact};

    fn shape(update: &[u8]) -> UpdateShape {
        update_shape_v1(update).expect("a yrs update walks")
    }

    #[test]
    fn an_update_after_offline_edits_needs_them_and_they_need_nothing() {
        let doc = Doc::with_client_id(7);
        let text = doc.get_or_insert_text("t");
        let online = {
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, 0, "abc");
            txn.encode_update_v1()
        };
        let server = doc.transact().state_vector();
        let offline = {
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, 3, "def");
            txn.encode_update_v1()
        };
        let typed_after = {
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, 6, "g");
            text.remove_range(&mut txn, 4, 1);
            txn.encode_update_v1()
        };
        let known = |sv: &StateVector| {
            let sv = sv.clone();
            move |c: u64| u64::from(sv.get(&yrs::block::ClientID::new(c)))
        };
        assert!(needs(&shape(&online), known(&StateVector::default())).is_empty());
        let held = needs(&shape(&typed_after), known(&server));
        assert_eq!(
            held.iter().copied().collect::<Vec<_>>(),
            vec![Need {
                client: 7,
                from: 3,
                to: 6
            }]
        );
        assert_eq!(held.describe(), "clocks 3..6 of client 7");
        assert!(needs(&shape(&offline), known(&server)).is_empty());
        // Once the offline edits are in, the held one's needs are met.
        let after_step2 = doc.transact().state_vector();
        assert!(held.met_by(known(&after_step2)));
        // The client's step 2 carries both at once: nothing missing.
        let step2 = doc.transact().encode_state_as_update_v1(&server);
        assert!(needs(&shape(&step2), known(&server)).is_empty());
    }

    #[test]
    fn origins_parents_and_deletes_of_other_clients_count() {
        let a = Doc::with_client_id(1);
        let first = {
            let text = a.get_or_insert_text("t");
            let mut txn = a.transact_mut();
            text.insert(&mut txn, 0, "xy");
            txn.encode_update_v1()
        };
        let b = Doc::with_client_id(2);
        b.transact_mut()
            .apply_update(yrs::updates::decoder::Decode::decode_v1(&first).unwrap())
            .unwrap();
        let text = b.get_or_insert_text("t");
        let between = {
            let mut txn = b.transact_mut();
            text.insert(&mut txn, 1, "!");
            txn.encode_update_v1()
        };
        let delete = {
            let mut txn = b.transact_mut();
            text.remove_range(&mut txn, 0, 1);
            txn.encode_update_v1()
        };
        let nothing = |_: u64| 0;
        let needs_of = |u: &[u8]| -> Vec<(u64, u64)> {
            needs(&shape(u), nothing)
                .iter()
                .map(|n| (n.client, n.to))
                .collect()
        };
        assert_eq!(needs_of(&between), vec![(1, 2)]);
        assert_eq!(needs_of(&delete), vec![(1, 1)]);
        let has_a = |c: u64| if c == 1 { 2 } else { 0 };
        assert!(needs(&shape(&between), has_a).is_empty());
    }
}
