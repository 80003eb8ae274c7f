//! Bit sets indexed by member: which members are filtered on an agent, and which fail
//! their offer constraints there. A cycle tests a bit per member instead of looking a
//! filter up. Owns nothing but the bit arithmetic; must never allocate except to grow a
//! set to the index it is given.

pub(super) fn bit(v: &[u64], i: u32) -> bool {
    v.get(i as usize / 64)
        .is_some_and(|w| w & (1 << (i % 64)) != 0)
}

/// Set bit `i`; true when it was clear.
pub(super) fn set_bit(v: &mut Vec<u64>, i: u32) -> bool {
    let w = i as usize / 64;
    if v.len() <= w {
        v.resize(w + 1, 0);
    }
    let was = v[w] & (1 << (i % 64)) != 0;
    v[w] |= 1 << (i % 64);
    !was
}

/// Clear bit `i`; true when it was set.
pub(super) fn clear_bit(v: &mut [u64], i: u32) -> bool {
    match v.get_mut(i as usize / 64) {
        Some(w) => {
            let was = *w & (1 << (i % 64)) != 0;
            *w &= !(1 << (i % 64));
            was
        }
        None => false,
    }
}
