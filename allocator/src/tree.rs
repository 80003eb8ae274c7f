//! The role tree and its incrementally sorted order.
//!
//! Owns: one node per role ever named (by a framework, a reservation, a weight or a
//! quota), with its weight, quota, and the scalar amounts of its subtree (allocated,
//! reserved, reserved-and-allocated); and, per node, a sorted set of its children that
//! may receive offers. A node's children are its sub-roles plus one virtual "own" leaf
//! for the frameworks subscribed to exactly that role (as Mesos does with `role/.`);
//! frameworks of the own leaf are sorted in a second set. Keys are
//! `(weighted dominant share, tie-break)` (a tie is ordered afresh by each walk), so a walk in order visits the most
//! under-served role first, then inside it the most under-served framework.
//!
//! Keys are updated in `O(depth * log n)` when an allocation changes (`sync_path`), never
//! re-sorted per agent. Must never: hold a node in its parent's set while it has no
//! eligible framework below it or has reached its quota limit (so suppressed and capped
//! roles cost nothing per agent), or decide anything by itself (the policy decides).

use std::collections::{BTreeMap, BTreeSet};

use agora_resources::Resources;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::kinds::{self, Amounts, Kinds};

pub(crate) const ROOT: u32 = 0;
const NO_SOLO: u32 = u32::MAX;

/// Sort key: (quantised weighted share, tie-break drawn from the seeded RNG).
pub(crate) type Key = (u64, u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Child {
    /// The virtual leaf of frameworks subscribed to exactly this role.
    Own,
    Role(u32),
}

#[derive(Clone, Debug)]
pub(crate) struct Quota {
    pub guarantee: Resources,
    pub limit: Option<Resources>,
    pub g: Amounts,
    /// Per kind; kinds the limit does not name are unlimited (`u64::MAX`).
    pub l: Option<Amounts>,
}

impl Quota {
    pub(crate) fn limit_at(&self, k: usize) -> u64 {
        match &self.l {
            Some(l) => l.get(k).copied().unwrap_or(u64::MAX),
            None => u64::MAX,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct RoleNode {
    pub name: String,
    pub parent: Option<u32>,
    pub children: BTreeMap<String, u32>,
    pub weight: f64,
    pub weight_set: bool,
    pub quota: Option<Quota>,
    /// Allocated (offered or used) in the subtree, any reservation.
    pub alloc: Amounts,
    /// Allocated to frameworks of exactly this role.
    pub own_alloc: Amounts,
    /// Reservations for roles of the subtree.
    pub reserved: Amounts,
    /// Part of `reserved` that is allocated.
    pub reserved_alloc: Amounts,
    /// Eligible members in the subtree / of exactly this role.
    pub active: u32,
    pub own_active: u32,
    pub capped: bool,
    /// Entry in the parent's `sorted`, if listed.
    pub listed: Option<Key>,
    pub own_listed: Option<Key>,
    pub sorted: BTreeSet<(u64, u64, Child)>,
    pub members: BTreeSet<(u64, u64, u32)>,
}

impl RoleNode {
    fn new(name: String, parent: Option<u32>) -> RoleNode {
        RoleNode {
            name,
            parent,
            children: BTreeMap::new(),
            weight: 1.0,
            weight_set: false,
            quota: None,
            alloc: Vec::new(),
            own_alloc: Vec::new(),
            reserved: Vec::new(),
            reserved_alloc: Vec::new(),
            active: 0,
            own_active: 0,
            capped: false,
            listed: None,
            own_listed: None,
            sorted: BTreeSet::new(),
            members: BTreeSet::new(),
        }
    }

    /// Allocated plus unallocated reservations of the subtree: what the role holds, the
    /// basis of its share and its quota.
    pub(crate) fn consumption(&self) -> Amounts {
        let mut c = self.alloc.clone();
        kinds::add(&mut c, &self.reserved);
        kinds::sub(&mut c, &self.reserved_alloc);
        c
    }

    pub(crate) fn consumption_at(&self, k: usize) -> u64 {
        kinds::at(&self.alloc, k)
            .saturating_add(kinds::at(&self.reserved, k))
            .saturating_sub(kinds::at(&self.reserved_alloc, k))
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Tree {
    pub nodes: Vec<RoleNode>,
    /// Per node, its only eligible member when it has exactly one and no eligible
    /// sub-role (`NO_SOLO` otherwise): lets a walk visit such a role without descending.
    solo: Vec<u32>,
    pub by_name: BTreeMap<String, u32>,
    /// Tie-breaks, seeded from the policy's RNG.
    rng: SmallRng,
}

impl Tree {
    pub(crate) fn new(rng: &mut SmallRng) -> Tree {
        Tree {
            nodes: vec![RoleNode::new(String::new(), None)],
            solo: vec![NO_SOLO],
            by_name: BTreeMap::new(),
            rng: SmallRng::seed_from_u64(rng.random()),
        }
    }

    pub(crate) fn node(&self, n: u32) -> &RoleNode {
        &self.nodes[n as usize]
    }

    pub(crate) fn node_mut(&mut self, n: u32) -> &mut RoleNode {
        &mut self.nodes[n as usize]
    }

    pub(crate) fn get(&self, role: &str) -> Option<u32> {
        self.by_name.get(role).copied()
    }

    /// The node of `role`, created with its ancestors. The role must be valid.
    pub(crate) fn intern(&mut self, role: &str) -> u32 {
        if let Some(n) = self.get(role) {
            return n;
        }
        let mut parent = ROOT;
        let mut path = String::new();
        for seg in role.split('/') {
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(seg);
            parent = match self.by_name.get(&path) {
                Some(n) => *n,
                None => {
                    let n = self.nodes.len() as u32;
                    self.nodes.push(RoleNode::new(path.clone(), Some(parent)));
                    self.solo.push(NO_SOLO);
                    self.node_mut(parent).children.insert(seg.to_string(), n);
                    self.by_name.insert(path.clone(), n);
                    n
                }
            };
        }
        parent
    }

    /// `n` and its ancestors, `n` first, the root excluded.
    pub(crate) fn path(&self, n: u32) -> impl Iterator<Item = u32> + '_ {
        std::iter::successors(Some(n), |x| self.node(*x).parent).filter(|x| *x != ROOT)
    }

    pub(crate) fn is_ancestor_or_self(&self, anc: u32, n: u32) -> bool {
        self.path(n).any(|x| x == anc)
    }

    pub(crate) fn weighted_share(&self, n: u32, kinds: &Kinds, totals: &[u64]) -> f64 {
        let node = self.node(n);
        let mut share = 0.0_f64;
        for (k, t) in totals.iter().enumerate() {
            if *t == 0 || kinds.is_excluded(k) {
                continue;
            }
            let c = node.consumption_at(k);
            if c > 0 {
                share = share.max(c as f64 / *t as f64);
            }
        }
        share / node.weight
    }

    fn capped(node: &RoleNode) -> bool {
        let Some(q) = &node.quota else {
            return false;
        };
        let Some(l) = &q.l else {
            return false;
        };
        let mut any = false;
        for (k, lim) in l.iter().enumerate() {
            if *lim == u64::MAX {
                continue;
            }
            any = true;
            if node.consumption_at(k) < *lim {
                return false;
            }
        }
        any
    }

    /// Bring `n`'s own-leaf entry and its entry in its parent up to date. The tie-break
    /// part of a key only makes it unique; ties are decided per walk (`walk`'s salt).
    pub(crate) fn sync(&mut self, n: u32, kinds: &Kinds, totals: &[u64]) {
        let node = self.node(n);
        let own_share = (node.own_active > 0)
            .then(|| kinds::share_key(kinds::dominant_share(kinds, &node.own_alloc, totals)));
        let want_own = match (own_share, node.own_listed) {
            (Some(s), Some((old, t))) if s == old => Some((s, t)),
            (Some(s), _) => Some((s, self.rng.random())),
            (None, _) => None,
        };
        let node = self.node(n);
        if want_own != node.own_listed {
            let old = node.own_listed;
            let node = self.node_mut(n);
            if let Some((s, t)) = old {
                node.sorted.remove(&(s, t, Child::Own));
            }
            if let Some((s, t)) = want_own {
                node.sorted.insert((s, t, Child::Own));
            }
            node.own_listed = want_own;
        }
        let capped = Self::capped(self.node(n));
        self.node_mut(n).capped = capped;
        let node = self.node(n);
        let solo = if node.active == 1 && node.own_active == 1 {
            node.members.first().map_or(NO_SOLO, |(_, _, m)| *m)
        } else {
            NO_SOLO
        };
        if let Some(slot) = self.solo.get_mut(n as usize) {
            *slot = solo;
        }
        let node = self.node(n);
        let Some(parent) = node.parent else {
            return;
        };
        let share = (node.active > 0 && !capped)
            .then(|| kinds::share_key(self.weighted_share(n, kinds, totals)));
        let want = match (share, node.listed) {
            (Some(s), Some((old, t))) if s == old => Some((s, t)),
            (Some(s), _) => Some((s, self.rng.random())),
            (None, _) => None,
        };
        let node = self.node(n);
        if want != node.listed {
            let old = node.listed;
            let p = self.node_mut(parent);
            if let Some((s, t)) = old {
                p.sorted.remove(&(s, t, Child::Role(n)));
            }
            if let Some((s, t)) = want {
                p.sorted.insert((s, t, Child::Role(n)));
            }
            self.node_mut(n).listed = want;
        }
    }

    pub(crate) fn sync_path(&mut self, n: u32, kinds: &Kinds, totals: &[u64]) {
        let mut cur = Some(n);
        while let Some(x) = cur {
            if x == ROOT {
                break;
            }
            self.sync(x, kinds, totals);
            cur = self.node(x).parent;
        }
    }

    /// Re-key every node (after the cluster totals changed).
    pub(crate) fn sync_all(&mut self, kinds: &Kinds, totals: &[u64]) {
        for n in 1..self.nodes.len() as u32 {
            self.sync(n, kinds, totals);
        }
    }

    /// Count an eligible member in or out of `n` and its ancestors.
    pub(crate) fn count_member(&mut self, n: u32, eligible: bool, kinds: &Kinds, totals: &[u64]) {
        {
            let node = self.node_mut(n);
            if eligible {
                node.own_active += 1;
            } else {
                node.own_active = node.own_active.saturating_sub(1);
            }
        }
        let path: Vec<u32> = self.path(n).collect();
        for x in &path {
            let node = self.node_mut(*x);
            if eligible {
                node.active += 1;
            } else {
                node.active = node.active.saturating_sub(1);
            }
        }
        for x in path {
            self.sync(x, kinds, totals);
        }
    }

    /// Visit eligible members below `start` in sorted order until `visit` says stop;
    /// returns whether it stopped. Entries of equal share (a tie) are visited in an order
    /// drawn afresh from `salt` (the caller draws it from the seeded RNG per decision), so
    /// every tie is a new coin flip: the stored tie-breaks only make the keys unique, they
    /// never decide a tie on their own (a loser's stored value is biased by having lost).
    /// A tie of up to `TIE_SHUFFLE_MAX` entries is visited in a fresh random permutation;
    /// a longer one from a fresh random point of the circle of stored tie-breaks (the
    /// winner of a tie re-draws its own when its share moves, so over the decisions each
    /// is first equally often) at `O(log n)` instead of sorting the whole tie per walk.
    pub(crate) fn walk(&self, start: u32, salt: u64, visit: &mut impl FnMut(u32) -> bool) -> bool {
        let node = self.node(start);
        walk_ties(
            &node.sorted,
            salt,
            Child::Own,
            Child::Role(u32::MAX),
            &mut |c| self.visit_child(start, c, salt, visit),
        )
    }

    fn visit_child(
        &self,
        at: u32,
        child: Child,
        salt: u64,
        visit: &mut impl FnMut(u32) -> bool,
    ) -> bool {
        match child {
            Child::Own => walk_ties(&self.node(at).members, salt, 0, u32::MAX, visit),
            Child::Role(c) => {
                let solo = self.solo.get(c as usize).copied().unwrap_or(NO_SOLO);
                if solo != NO_SOLO {
                    visit(solo)
                } else {
                    self.walk(c, salt, visit)
                }
            }
        }
    }
}

/// Ties of at most this many entries are visited in a full random permutation (sorted by
/// a salted hash); longer ones from a random starting point.
const TIE_SHUFFLE_MAX: usize = 16;

/// Visit `set` (keys `(share, tie-break, item)`) in order of share, ties as `Tree::walk`
/// says; `lo` and `hi` are the smallest and largest items. Returns whether `visit` stopped.
fn walk_ties<T: Copy + Ord>(
    set: &BTreeSet<(u64, u64, T)>,
    salt: u64,
    lo: T,
    hi: T,
    visit: &mut impl FnMut(T) -> bool,
) -> bool {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    let mut after: Option<(u64, u64, T)> = None;
    let mut run: Vec<(u64, T)> = Vec::new();
    loop {
        let mut it = match after {
            None => set.range::<(u64, u64, T), (
                std::ops::Bound<(u64, u64, T)>,
                std::ops::Bound<(u64, u64, T)>,
            )>((Unbounded, Unbounded)),
            Some(k) => set.range((Excluded(k), Unbounded)),
        };
        let Some(&first) = it.next() else {
            return false;
        };
        let share = first.0;
        run.clear();
        run.push((tie_order(salt, first.1), first.2));
        let mut last = first;
        for &e in it.by_ref() {
            if e.0 != share || run.len() > TIE_SHUFFLE_MAX {
                break;
            }
            run.push((tie_order(salt, e.1), e.2));
            last = e;
        }
        if run.len() <= TIE_SHUFFLE_MAX {
            run.sort_unstable();
            for (_, item) in &run {
                if visit(*item) {
                    return true;
                }
            }
            after = Some(last);
            continue;
        }
        // A long tie: from a random point of the circle of tie-breaks, wrapping around.
        let pivot = tie_order(salt, share);
        let upper = set
            .range((
                Included((share, pivot, lo)),
                Included((share, u64::MAX, hi)),
            ))
            .chain(set.range((Included((share, 0, lo)), Excluded((share, pivot, lo)))));
        for &(_, _, item) in upper {
            if visit(item) {
                return true;
            }
        }
        after = Some((share, u64::MAX, hi));
    }
}

/// Position of a tied entry for one decision: its stored tie-break mixed with the
/// decision's salt (splitmix64's finaliser), a fresh permutation of the tie per salt.
fn tie_order(salt: u64, tie: u64) -> u64 {
    let mut z = salt ^ tie;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
