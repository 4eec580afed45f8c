//! Room state as the wire sees it: an [`EntityTable`] (entity id → encoded entity),
//! the generic [`diff`] between two tables that every game gets for free, and the
//! [`Mirror`] a client rebuilds from a snapshot and the deltas that follow.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::message::{Delta, EntityData, Snapshot};

/// Entity id → the entity's encoded bytes. Ordered, so snapshots and deltas list
/// entities in increasing id order and equal states encode to equal bytes.
pub type EntityTable = BTreeMap<u32, Bytes>;

/// The delta that turns `old` (at `base_tick`) into `new` (at `tick`): entities
/// whose bytes differ or are new are resent whole, vanished ids are listed.
pub fn diff(old: &EntityTable, new: &EntityTable, base_tick: u64, tick: u64) -> Delta {
    let mut changed = Vec::new();
    let mut removed = Vec::new();
    let mut old_iter = old.iter().peekable();
    // Merge walk over two sorted maps: O(len(old) + len(new)).
    for (id, data) in new {
        while let Some((old_id, _)) = old_iter.peek() {
            if *old_id < id {
                removed.push(**old_id);
                old_iter.next();
            } else {
                break;
            }
        }
        match old_iter.peek() {
            Some((old_id, old_data)) if *old_id == id => {
                if *old_data != data {
                    changed.push(EntityData {
                        id: *id,
                        data: data.clone(),
                    });
                }
                old_iter.next();
            }
            _ => changed.push(EntityData {
                id: *id,
                data: data.clone(),
            }),
        }
    }
    removed.extend(old_iter.map(|(id, _)| *id));
    Delta {
        tick,
        base_tick,
        changed,
        removed,
    }
}

/// The full snapshot message of a table.
pub fn snapshot(table: &EntityTable, tick: u64) -> Snapshot {
    Snapshot {
        tick,
        entities: table
            .iter()
            .map(|(id, data)| EntityData {
                id: *id,
                data: data.clone(),
            })
            .collect(),
    }
}

/// Why a delta could not be applied to a mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MirrorError {
    /// The mirror has not received a snapshot yet.
    #[error("no snapshot received yet")]
    NoSnapshot,
    /// The delta was computed against another tick than the mirror holds.
    #[error("delta applies to tick {base_tick}, mirror is at tick {mirror_tick}")]
    BaseMismatch {
        /// The delta's base tick.
        base_tick: u64,
        /// The mirror's tick.
        mirror_tick: u64,
    },
}

/// A client's copy of the room state, kept from a snapshot and the deltas after it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mirror {
    /// Tick of the state held, `None` until the first snapshot.
    tick: Option<u64>,
    /// The entities at that tick.
    entities: EntityTable,
}

impl Mirror {
    /// An empty mirror, waiting for its first snapshot.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the whole state.
    pub fn apply_snapshot(&mut self, snapshot: &Snapshot) {
        self.entities = snapshot
            .entities
            .iter()
            .map(|e| (e.id, e.data.clone()))
            .collect();
        self.tick = Some(snapshot.tick);
    }

    /// Applies a delta whose base is the mirror's tick; anything else is refused
    /// and leaves the mirror unchanged.
    pub fn apply_delta(&mut self, delta: &Delta) -> Result<(), MirrorError> {
        let mirror_tick = self.tick.ok_or(MirrorError::NoSnapshot)?;
        if delta.base_tick != mirror_tick {
            return Err(MirrorError::BaseMismatch {
                base_tick: delta.base_tick,
                mirror_tick,
            });
        }
        for id in &delta.removed {
            self.entities.remove(id);
        }
        for e in &delta.changed {
            self.entities.insert(e.id, e.data.clone());
        }
        self.tick = Some(delta.tick);
        Ok(())
    }

    /// Tick of the state held (`None` before the first snapshot).
    pub fn tick(&self) -> Option<u64> {
        self.tick
    }

    /// The entities at [`Mirror::tick`].
    pub fn entities(&self) -> &EntityTable {
        &self.entities
    }

    /// One entity decoded as the game's entity type.
    pub fn entity<T: serde::de::DeserializeOwned>(
        &self,
        id: u32,
    ) -> Option<Result<T, crate::CodecError>> {
        self.entities.get(&id).map(|b| crate::codec::decode(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(items: &[(u32, &'static [u8])]) -> EntityTable {
        items
            .iter()
            .map(|(id, b)| (*id, Bytes::from_static(b)))
            .collect()
    }

    #[test]
    fn diff_lists_changed_new_and_removed() {
        let old = table(&[(1, b"a"), (2, b"b"), (4, b"d"), (9, b"z")]);
        let new = table(&[(2, b"B"), (3, b"c"), (4, b"d"), (10, b"y")]);
        let d = diff(&old, &new, 5, 6);
        let changed: Vec<u32> = d.changed.iter().map(|e| e.id).collect();
        assert_eq!(changed, vec![2, 3, 10]);
        assert_eq!(d.removed, vec![1, 9]);
        assert_eq!((d.base_tick, d.tick), (5, 6));
    }

    #[test]
    fn mirror_follows_snapshot_and_deltas_exactly() {
        let states = [
            table(&[(1, b"a")]),
            table(&[(1, b"a"), (2, b"b")]),
            table(&[(2, b"bb")]),
            table(&[]),
            table(&[(7, b"x"), (8, b"y")]),
        ];
        let mut mirror = Mirror::new();
        mirror.apply_snapshot(&snapshot(&states[0], 10));
        for (i, pair) in states.windows(2).enumerate() {
            let t = 10 + i as u64;
            mirror
                .apply_delta(&diff(&pair[0], &pair[1], t, t + 1))
                .unwrap();
            assert_eq!(mirror.entities(), &pair[1]);
            assert_eq!(mirror.tick(), Some(t + 1));
        }
    }

    #[test]
    fn mirror_refuses_a_delta_against_another_tick() {
        let mut mirror = Mirror::new();
        let d = diff(&table(&[]), &table(&[(1, b"a")]), 3, 4);
        assert_eq!(mirror.apply_delta(&d), Err(MirrorError::NoSnapshot));
        mirror.apply_snapshot(&snapshot(&table(&[]), 2));
        assert_eq!(
            mirror.apply_delta(&d),
            Err(MirrorError::BaseMismatch {
                base_tick: 3,
                mirror_tick: 2
            })
        );
        assert_eq!(mirror.tick(), Some(2));
    }
}
