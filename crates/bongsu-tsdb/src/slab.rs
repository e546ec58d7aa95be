//! The head's series by id: a slab of fixed-size pages, ids handed out densely and reused.
//!
//! A hash map from id to series holds, per series, its key, a control byte and the empty
//! slots of a table that doubles (at 103 200 series, 131 072 slots of 112 bytes: 14.8 MB).
//! Here an id is the series' slot: pages of [`PAGE_SLOTS`] slots are added as needed and
//! never moved, so the slack is under one page, and a lookup is an index. The id of a removed
//! series is given to the next new one; everything that keeps an id across a release of the
//! head's lock (the consumer's series refs) checks the labels before use.

/// Slots per page.
pub(crate) const PAGE_SLOTS: usize = 1024;

/// Values by dense `u32` id (see the module docs).
#[derive(Debug)]
pub(crate) struct Slab<T> {
    pages: Vec<Box<[Option<T>]>>,
    /// Ids of empty slots below `next`, reused first.
    free: Vec<u32>,
    /// Slots ever used: every id below it is either live or in `free`.
    next: u32,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self {
            pages: Vec::new(),
            free: Vec::new(),
            next: 0,
            len: 0,
        }
    }
}

fn split(id: u32) -> (usize, usize) {
    (id as usize / PAGE_SLOTS, id as usize % PAGE_SLOTS)
}

impl<T> Slab<T> {
    /// The id the next [`Slab::insert`] will return.
    pub(crate) fn vacant_id(&self) -> u32 {
        self.free.last().copied().unwrap_or(self.next)
    }

    /// Stores `value` in a free slot; returns its id.
    pub(crate) fn insert(&mut self, value: T) -> u32 {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                let id = self.next;
                self.next += 1;
                if split(id).0 == self.pages.len() {
                    self.pages
                        .push((0..PAGE_SLOTS).map(|_| None).collect::<Box<[_]>>());
                }
                id
            }
        };
        let (p, s) = split(id);
        debug_assert!(self.pages[p][s].is_none(), "slot {id} handed out twice");
        self.pages[p][s] = Some(value);
        self.len += 1;
        id
    }

    pub(crate) fn get(&self, id: u32) -> Option<&T> {
        let (p, s) = split(id);
        self.pages.get(p)?.get(s)?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        let (p, s) = split(id);
        self.pages.get_mut(p)?.get_mut(s)?.as_mut()
    }

    pub(crate) fn remove(&mut self, id: u32) -> Option<T> {
        let (p, s) = split(id);
        let v = self.pages.get_mut(p)?.get_mut(s)?.take()?;
        self.free.push(id);
        self.len -= 1;
        Some(v)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Slots allocated (live or empty).
    pub(crate) fn slots(&self) -> usize {
        self.pages.len() * PAGE_SLOTS
    }

    /// Live values with their ids, in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.pages
            .iter()
            .flat_map(|p| p.iter())
            .enumerate()
            .filter_map(|(i, v)| Some((i as u32, v.as_ref()?)))
    }

    /// Live values with their ids, in id order, mutably.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (u32, &mut T)> {
        self.pages
            .iter_mut()
            .flat_map(|p| p.iter_mut())
            .enumerate()
            .filter_map(|(i, v)| Some((i as u32, v.as_mut()?)))
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &T> {
        self.iter().map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Random inserts and removes agree with a map from id to value after every step,
        /// and ids stay dense: every slot below the highest id is live or free.
        #[test]
        fn agrees_with_a_map(ops in proptest::collection::vec((any::<bool>(), 0usize..3000), 1..3000)) {
            let mut slab = Slab::default();
            let mut model: BTreeMap<u32, usize> = BTreeMap::new();
            for (i, (insert, pick)) in ops.into_iter().enumerate() {
                if insert || model.is_empty() {
                    let id = slab.insert(i);
                    prop_assert!(model.insert(id, i).is_none(), "id {} given twice", id);
                } else {
                    let id = *model.keys().nth(pick % model.len()).unwrap();
                    prop_assert_eq!(slab.remove(id), model.remove(&id));
                    prop_assert_eq!(slab.remove(id), None);
                }
                prop_assert_eq!(slab.len(), model.len());
            }
            let got: Vec<(u32, usize)> = slab.iter().map(|(id, &v)| (id, v)).collect();
            let want: Vec<(u32, usize)> = model.iter().map(|(&id, &v)| (id, v)).collect();
            prop_assert_eq!(got, want);
            for (&id, &v) in &model {
                prop_assert_eq!(slab.get(id), Some(&v));
            }
            prop_assert_eq!(slab.len() + slab.free.len(), slab.next as usize);
            prop_assert!(slab.slots() < slab.next as usize + PAGE_SLOTS);
            prop_assert_eq!(slab.get(slab.next + 5), None);
        }
    }

    #[test]
    fn ids_of_removed_values_are_reused() {
        let mut slab = Slab::default();
        let ids: Vec<u32> = (0..2000).map(|i| slab.insert(i)).collect();
        assert_eq!(ids, (0..2000).collect::<Vec<u32>>());
        assert_eq!(slab.vacant_id(), 2000);
        assert_eq!(slab.remove(7), Some(7));
        assert_eq!(slab.vacant_id(), 7);
        assert_eq!(slab.insert(99), 7);
        assert_eq!(slab.slots(), 2 * PAGE_SLOTS);
        if let Some(v) = slab.get_mut(1500) {
            *v = 1;
        }
        assert_eq!(slab.get(1500), Some(&1));
        assert_eq!(slab.iter_mut().count(), 2000);
    }
}
