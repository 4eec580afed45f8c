//! Awareness (presence, cursors) of a doc room: who may change which entry,
//! and removing entries safely.

use std::collections::HashMap;

use tracing::warn;
use yrs::block::ClientID;
use yrs::sync::awareness::AwarenessUpdateEntry;
use yrs::sync::{Awareness, AwarenessUpdate};

use crate::room::ConnId;

/// Removes a client's awareness state. yrs's `remove_state` adds one to the
/// clock, which overflows (a panic in debug builds) for a state a client set
/// at clock `u32::MAX`; such a state is removed at its own clock instead, which
/// yrs and Yjs clients also take as a removal.
pub(crate) fn remove_awareness_state(awareness: &mut Awareness, id: ClientID) {
    if !matches!(awareness.meta(id), Some((u32::MAX, _))) {
        awareness.remove_state(id);
        return;
    }
    let removal = AwarenessUpdateEntry {
        clock: u32::MAX,
        json: "null".into(),
    };
    let update = AwarenessUpdate {
        clients: HashMap::from([(id, removal)]),
    };
    if let Err(e) = awareness.apply_update(update) {
        warn!(cause = %e, "cannot remove an awareness state");
    }
}

/// The awareness ownership rule: keeps only the entries of `update` that `conn`
/// may change (ids nobody introduced yet, or that `conn` introduced), records
/// `conn` as the owner of the new ones and returns those.
pub(crate) fn retain_owned(
    owners: &mut HashMap<ClientID, ConnId>,
    conn: ConnId,
    update: &mut AwarenessUpdate,
) -> Vec<ClientID> {
    update.clients.retain(|id, _| match owners.get(id) {
        Some(owner) => *owner == conn,
        None => true,
    });
    update
        .clients
        .keys()
        .filter(|id| owners.insert(**id, conn).is_none())
        .copied()
        .collect()
}
