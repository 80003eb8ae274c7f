//! Maps that keep their gauges in step: a [`TalliedMap`] is a hash map whose entries each
//! contribute to a [`Tally`] (counts by state, scalar sums), updated on every change, so a
//! `/metrics` scrape reads the tally instead of walking every agent and task.
//!
//! How changes are seen without a hook at every mutation site: `get_mut` and `values_mut`
//! hand out plain `&mut` references and remember what they handed out; the next call that
//! needs the map mutably, or the tally, first re-counts exactly those entries ("settles").
//! The borrow checker guarantees the references are gone by then, so what is re-counted is
//! the entry's final state. Each entry keeps the mark it was counted with, so re-counting
//! takes out exactly what was put in. A scrape therefore costs the changes made since the
//! last one (each of which the actor already paid for), never the size of the map.
//!
//! Owns the bookkeeping only; what an entry contributes is the [`Tally`]'s business. Must
//! never hand out a reference it does not settle afterwards.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::ops::Index;

/// What a map's entries add up to.
pub trait Tally: Default {
    type Entry;
    /// Everything an entry contributes, as the tally needs it to take it out again.
    type Mark: PartialEq;

    fn mark(entry: &Self::Entry) -> Self::Mark;
    fn add(&mut self, mark: &Self::Mark);
    fn sub(&mut self, mark: &Self::Mark);
}

/// An entry and the mark it was counted with (the map's storage; not for callers).
pub struct Slot<T: Tally> {
    entry: T::Entry,
    mark: T::Mark,
}

/// Entries handed out mutably and not yet re-counted.
enum Lent<K> {
    None,
    One(K),
    All,
}

/// A `HashMap` that keeps a [`Tally`] of its entries.
pub struct TalliedMap<K, T: Tally> {
    map: HashMap<K, Slot<T>>,
    tally: T,
    lent: Lent<K>,
}

impl<K, T: Tally> Default for TalliedMap<K, T> {
    fn default() -> Self {
        TalliedMap {
            map: HashMap::new(),
            tally: T::default(),
            lent: Lent::None,
        }
    }
}

impl<K: Hash + Eq + Clone, T: Tally> TalliedMap<K, T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Re-count what was handed out mutably.
    fn settle(&mut self) {
        match std::mem::replace(&mut self.lent, Lent::None) {
            Lent::None => {}
            Lent::One(key) => {
                if let Some(slot) = self.map.get_mut(&key) {
                    Self::recount_slot(&mut self.tally, slot);
                }
            }
            Lent::All => {
                for slot in self.map.values_mut() {
                    Self::recount_slot(&mut self.tally, slot);
                }
            }
        }
    }

    fn recount_slot(tally: &mut T, slot: &mut Slot<T>) {
        let mark = T::mark(&slot.entry);
        if mark != slot.mark {
            tally.sub(&slot.mark);
            tally.add(&mark);
            slot.mark = mark;
        }
    }

    /// The tally of every entry as it is now.
    pub fn tally(&mut self) -> &T {
        self.settle();
        &self.tally
    }

    /// The tally counted from scratch (for checks: it must equal [`tally`](Self::tally)).
    pub fn recount(&self) -> T {
        let mut t = T::default();
        for slot in self.map.values() {
            t.add(&T::mark(&slot.entry));
        }
        t
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&T::Entry>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key).map(|s| &s.entry)
    }

    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut T::Entry>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.settle();
        let (owned, _) = self.map.get_key_value(key)?;
        self.lent = Lent::One(owned.clone());
        self.map.get_mut(key).map(|s| &mut s.entry)
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.contains_key(key)
    }

    pub fn insert(&mut self, key: K, entry: T::Entry) -> Option<T::Entry> {
        self.settle();
        let mark = T::mark(&entry);
        self.tally.add(&mark);
        let old = self.map.insert(key, Slot { entry, mark })?;
        self.tally.sub(&old.mark);
        Some(old.entry)
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<T::Entry>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.settle();
        let old = self.map.remove(key)?;
        self.tally.sub(&old.mark);
        Some(old.entry)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.map.keys()
    }

    pub fn values(&self) -> impl Iterator<Item = &T::Entry> {
        self.map.values().map(|s| &s.entry)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &T::Entry)> {
        self.map.iter().map(|(k, s)| (k, &s.entry))
    }

    /// Every entry, mutably; all of them are re-counted at the next settle.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T::Entry> {
        self.settle();
        self.lent = Lent::All;
        self.map.values_mut().map(|s| &mut s.entry)
    }
}

impl<K, Q, T> Index<&Q> for TalliedMap<K, T>
where
    K: Hash + Eq + Clone + Borrow<Q>,
    Q: Hash + Eq + ?Sized,
    T: Tally,
{
    type Output = T::Entry;

    fn index(&self, key: &Q) -> &T::Entry {
        &self.map[key].entry
    }
}

impl<'a, K, T: Tally> IntoIterator for &'a TalliedMap<K, T> {
    type Item = (&'a K, &'a T::Entry);
    type IntoIter = std::iter::Map<
        std::collections::hash_map::Iter<'a, K, Slot<T>>,
        fn((&'a K, &'a Slot<T>)) -> (&'a K, &'a T::Entry),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.map.iter().map(|(k, s)| (k, &s.entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Entries are (state, amount); the tally counts states and sums amounts of state 1.
    #[derive(Default, Debug, Clone, PartialEq)]
    struct Toy {
        by_state: [i64; 3],
        sum_of_ones: i64,
    }

    impl Tally for Toy {
        type Entry = (usize, i64);
        type Mark = (usize, i64);

        fn mark(e: &(usize, i64)) -> (usize, i64) {
            *e
        }
        fn add(&mut self, m: &(usize, i64)) {
            self.by_state[m.0] += 1;
            if m.0 == 1 {
                self.sum_of_ones += m.1;
            }
        }
        fn sub(&mut self, m: &(usize, i64)) {
            self.by_state[m.0] -= 1;
            if m.0 == 1 {
                self.sum_of_ones -= m.1;
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, usize, i64),
        Remove(u8),
        Change(u8, usize, i64),
        ChangeAll(usize),
        Read,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..8, 0usize..3, -5i64..50).prop_map(|(k, s, a)| Op::Insert(k, s, a)),
            (0u8..8).prop_map(Op::Remove),
            (0u8..8, 0usize..3, -5i64..50).prop_map(|(k, s, a)| Op::Change(k, s, a)),
            (0usize..3).prop_map(Op::ChangeAll),
            Just(Op::Read),
        ]
    }

    #[test]
    fn changes_through_get_mut_are_counted_at_the_next_access() {
        let mut m: TalliedMap<String, Toy> = TalliedMap::new();
        m.insert("a".into(), (0, 10));
        m.insert("b".into(), (1, 7));
        assert_eq!(m.tally().by_state, [1, 1, 0]);
        if let Some(e) = m.get_mut("a") {
            *e = (1, 3);
        }
        // The next access re-counts the entry handed out.
        assert_eq!(m.recount().sum_of_ones, 10);
        assert_eq!(m.tally().sum_of_ones, 10);
        assert_eq!(m.tally().by_state, [0, 2, 0]);
        for e in m.values_mut() {
            e.0 = 2;
        }
        assert_eq!(
            m.tally(),
            &Toy {
                by_state: [0, 0, 2],
                sum_of_ones: 0
            }
        );
        assert_eq!(m.remove("a"), Some((2, 3)));
        assert_eq!(m.insert("b".into(), (1, 1)), Some((2, 7)));
        let recount = m.recount();
        assert_eq!(m.tally(), &recount);
        assert_eq!(m["b"], (1, 1));
        assert_eq!(m.len(), 1);
    }

    proptest! {
        #[test]
        fn the_tally_always_equals_a_recount(ops in proptest::collection::vec(op(), 0..60)) {
            let mut m: TalliedMap<u8, Toy> = TalliedMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, s, a) => {
                        m.insert(k, (s, a));
                    }
                    Op::Remove(k) => {
                        m.remove(&k);
                    }
                    Op::Change(k, s, a) => {
                        if let Some(e) = m.get_mut(&k) {
                            *e = (s, a);
                        }
                    }
                    Op::ChangeAll(s) => {
                        for e in m.values_mut() {
                            e.0 = s;
                        }
                    }
                    Op::Read => {
                        let recount = m.recount();
                        prop_assert_eq!(m.tally(), &recount);
                    }
                }
            }
            let recount = m.recount();
            prop_assert_eq!(m.tally(), &recount);
        }
    }
}
