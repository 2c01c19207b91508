//! The flow index: open addressing with linear probing over 8-byte entries (32 bits of hash,
//! 32-bit slot number). Keys live in the connections themselves, so a lookup touches one index
//! cache line plus the connection it needed anyway; std's map would store 60-byte keys in its
//! buckets and cost an extra cache miss per packet. Deletion shifts entries back (no
//! tombstones), so probe lengths never degrade under churn (SYN floods).

const EMPTY: u64 = 0;

/// Maps a hash to slot numbers; the caller confirms candidates by comparing keys.
pub(crate) struct Index {
    /// `hash_lo << 32 | (slot + 1)`; 0 is empty.
    entries: Vec<u64>,
    mask: usize,
    len: usize,
}

#[inline]
fn hash_lo(e: u64) -> u32 {
    (e >> 32) as u32
}

#[inline]
fn slot_of(e: u64) -> u32 {
    (e as u32).wrapping_sub(1)
}

impl Index {
    /// An empty index; allocates nothing until the first insert (an idle table holds no heap).
    pub fn new() -> Self {
        Index {
            entries: Vec::new(),
            mask: 0,
            len: 0,
        }
    }

    /// Bytes allocated for entries.
    pub fn bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<u64>()
    }

    /// The slot whose key `is_key` accepts, among those filed under `hash`.
    #[inline]
    pub fn find(&self, hash: u64, mut is_key: impl FnMut(u32) -> bool) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        let h = hash as u32;
        let mut i = h as usize & self.mask;
        loop {
            let e = self.entries[i];
            if e == EMPTY {
                return None;
            }
            if hash_lo(e) == h && is_key(slot_of(e)) {
                return Some(slot_of(e));
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Files `slot` under `hash` (the caller has checked it is not there yet).
    pub fn insert(&mut self, hash: u64, slot: u32) {
        if (self.len + 1) * 2 > self.entries.len() {
            self.grow();
        }
        self.place((hash as u32 as u64) << 32 | (slot as u64 + 1));
        self.len += 1;
    }

    fn place(&mut self, e: u64) {
        let mut i = hash_lo(e) as usize & self.mask;
        while self.entries[i] != EMPTY {
            i = (i + 1) & self.mask;
        }
        self.entries[i] = e;
    }

    fn grow(&mut self) {
        let cap = (self.entries.len() * 2).max(16);
        let old = std::mem::replace(&mut self.entries, vec![EMPTY; cap]);
        self.mask = self.entries.len() - 1;
        for e in old.into_iter().filter(|e| *e != EMPTY) {
            self.place(e);
        }
    }

    /// Removes `slot` filed under `hash`; false if it was not there.
    pub fn remove(&mut self, hash: u64, slot: u32) -> bool {
        if self.len == 0 {
            return false;
        }
        let h = hash as u32;
        let mut i = h as usize & self.mask;
        loop {
            let e = self.entries[i];
            if e == EMPTY {
                return false;
            }
            if hash_lo(e) == h && slot_of(e) == slot {
                break;
            }
            i = (i + 1) & self.mask;
        }
        self.entries[i] = EMPTY;
        self.len -= 1;
        // Backward shift: pull later entries of the cluster into the hole when their home
        // position does not lie cyclically in (i, j].
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let e = self.entries[j];
            if e == EMPTY {
                break;
            }
            let k = hash_lo(e) as usize & self.mask;
            let stays = if i <= j {
                i < k && k <= j
            } else {
                i < k || k <= j
            };
            if !stays {
                self.entries[i] = e;
                self.entries[j] = EMPTY;
                i = j;
            }
        }
        true
    }

    /// Forgets everything and releases the memory.
    pub fn clear(&mut self) {
        *self = Index::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn matches_a_model_under_churn() {
        let mut idx = Index::new();
        let mut model: HashMap<u32, u64> = HashMap::new();
        let mut x: u64 = 0x1234_5678;
        for step in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let slot = (x % 5000) as u32;
            // Few distinct hash values: long clusters and wraparound get exercised.
            let hash = (slot as u64 % 97).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            match model.get(&slot) {
                Some(&h) => {
                    assert_eq!(idx.find(h, |s| s == slot), Some(slot));
                    assert!(idx.remove(h, slot));
                    model.remove(&slot);
                    assert_eq!(idx.find(h, |s| s == slot), None);
                }
                None => {
                    idx.insert(hash, slot);
                    model.insert(slot, hash);
                }
            }
            if step % 10_000 == 0 {
                for (&s, &h) in &model {
                    assert_eq!(idx.find(h, |c| c == s), Some(s));
                }
            }
        }
        assert_eq!(idx.len, model.len());
    }
}
