//! Compact scalar vectors: the hot path's view of resources.
//!
//! Owns the registry of scalar resource names ("kinds", indexed from 0 in order of first
//! sight) and arithmetic on `Vec<u64>` amounts in thousandths indexed by kind. Vectors may
//! be shorter than the registry (missing entries are zero) and grow on demand. Only
//! non-revocable scalars are ever counted here. Must never allocate per call on the hot
//! path beyond growing a vector, and never panic on any amount (arithmetic saturates).

use agora_resources::{Resources, Value};

#[derive(Clone, Debug, Default)]
pub(crate) struct Kinds {
    names: Vec<String>,
    /// Parallel to `names`: left out of dominant shares.
    excluded: Vec<bool>,
    excluded_names: Vec<String>,
}

pub(crate) type Amounts = Vec<u64>;

/// Interned first, in this order, so `get` can answer them without a search.
const BUILT_INS: [&str; 4] = ["cpus", "mem", "disk", "gpus"];

impl Kinds {
    pub(crate) fn new(excluded_names: &[String]) -> Kinds {
        let mut k = Kinds {
            excluded_names: excluded_names.to_vec(),
            ..Kinds::default()
        };
        // Built-ins first so their indices are stable across runs.
        for n in BUILT_INS {
            k.names.push(n.to_string());
            k.excluded.push(excluded_names.iter().any(|x| x == n));
        }
        k
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    pub(crate) fn name(&self, k: usize) -> &str {
        self.names.get(k).map(String::as_str).unwrap_or("")
    }

    pub(crate) fn is_excluded(&self, k: usize) -> bool {
        self.excluded.get(k).copied().unwrap_or(false)
    }

    pub(crate) fn get(&self, name: &str) -> Option<usize> {
        // The built-ins were interned first, in this order (see `new`).
        match name {
            "cpus" => Some(0),
            "mem" => Some(1),
            "disk" => Some(2),
            "gpus" => Some(3),
            _ => self
                .names
                .iter()
                .skip(4)
                .position(|n| n == name)
                .map(|i| i + 4),
        }
    }

    /// (all, unreserved) non-revocable scalar amounts of `r`, in one pass, into reused
    /// vectors.
    pub(crate) fn amounts_split_into(
        &self,
        r: &Resources,
        all: &mut Amounts,
        unreserved: &mut Amounts,
    ) {
        all.clear();
        all.resize(self.len(), 0);
        unreserved.clear();
        unreserved.resize(self.len(), 0);
        for e in r {
            if let Value::Scalar(s) = e.value
                && !e.revocable
                && let Some(k) = self.get(&e.name)
            {
                all[k] = all[k].saturating_add(s.thousandths());
                if e.reservation.is_none() {
                    unreserved[k] = unreserved[k].saturating_add(s.thousandths());
                }
            }
        }
    }

    pub(crate) fn intern(&mut self, name: &str) -> usize {
        if let Some(k) = self.get(name) {
            return k;
        }
        self.names.push(name.to_string());
        self.excluded
            .push(self.excluded_names.iter().any(|n| n == name));
        self.names.len() - 1
    }

    /// Register every scalar name of `r`.
    pub(crate) fn intern_all(&mut self, r: &Resources) {
        for e in r {
            if matches!(e.value, Value::Scalar(_)) {
                self.intern(&e.name);
            }
        }
    }

    /// Non-revocable scalar amounts of `r` that pass `keep`. Names must be interned.
    pub(crate) fn amounts_where(
        &self,
        r: &Resources,
        keep: impl Fn(&agora_resources::Resource) -> bool,
    ) -> Amounts {
        let mut out: Amounts = vec![0; self.len()];
        for e in r {
            if let Value::Scalar(s) = e.value
                && !e.revocable
                && keep(e)
                && let Some(k) = self.get(&e.name)
            {
                out[k] = out[k].saturating_add(s.thousandths());
            }
        }
        out
    }

    pub(crate) fn amounts(&self, r: &Resources) -> Amounts {
        self.amounts_where(r, |_| true)
    }

    /// Back to resources (unreserved scalars), skipping zeros.
    pub(crate) fn to_resources(&self, a: &[u64]) -> Resources {
        let mut out = Resources::new();
        for (k, v) in a.iter().enumerate() {
            if *v > 0 {
                let r = agora_resources::Resource::new(
                    self.name(k),
                    agora_resources::Scalar::from_thousandths(*v),
                );
                // A name in the registry came from a valid resource; a refusal here (a
                // name re-used with another type) just leaves the entry out of a report.
                let _ = out.push(r);
            }
        }
        out
    }
}

pub(crate) fn at(a: &[u64], k: usize) -> u64 {
    a.get(k).copied().unwrap_or(0)
}

pub(crate) fn add(a: &mut Amounts, b: &[u64]) {
    if a.len() < b.len() {
        a.resize(b.len(), 0);
    }
    for (x, y) in a.iter_mut().zip(b) {
        *x = x.saturating_add(*y);
    }
}

pub(crate) fn sub(a: &mut Amounts, b: &[u64]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x = x.saturating_sub(*y);
    }
}

pub(crate) fn is_zero(a: &[u64]) -> bool {
    a.iter().all(|x| *x == 0)
}

/// Dominant share of `held` against `totals`, skipping excluded kinds.
pub(crate) fn dominant_share(kinds: &Kinds, held: &[u64], totals: &[u64]) -> f64 {
    let mut share = 0.0_f64;
    for (k, h) in held.iter().enumerate() {
        if *h == 0 || kinds.is_excluded(k) {
            continue;
        }
        let t = at(totals, k);
        if t == 0 {
            continue;
        }
        share = share.max(*h as f64 / t as f64);
    }
    share
}

/// A share turned into an integer sort key; shares within 1e-12 of each other compare
/// equal, so float noise cannot break a tie that the tables call a tie.
pub(crate) fn share_key(share: f64) -> u64 {
    let scaled = (share * 1e12).round();
    if scaled.is_nan() || scaled < 0.0 {
        0
    } else if scaled >= u64::MAX as f64 {
        u64::MAX
    } else {
        scaled as u64
    }
}
