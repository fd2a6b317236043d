//! A bounded map whose entries expire. Pure: the caller passes the clock in,
//! so expiry and eviction are tested without sleeping.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A map of at most `capacity` entries, each valid until its own expiry.
/// When full, the entry inserted longest ago is evicted first.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    map: HashMap<K, (V, Instant, u64)>,
    /// Insertion order, with the generation that identifies the live entry.
    order: VecDeque<(K, u64)>,
    capacity: usize,
    generation: u64,
}

impl<K: Eq + Hash + Clone, V> TtlCache<K, V> {
    /// An empty cache for at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        TtlCache { map: HashMap::new(), order: VecDeque::new(), capacity: capacity.max(1), generation: 0 }
    }

    /// The value for `key` if it has not expired at `now`; an expired entry is dropped.
    pub fn get(&mut self, key: &K, now: Instant) -> Option<&V> {
        let expired = self.map.get(key).is_some_and(|(_, until, _)| *until <= now);
        if expired {
            self.map.remove(key);
            return None;
        }
        self.map.get(key).map(|(v, _, _)| v)
    }

    /// Stores `value` for `ttl` from `now`, evicting the oldest entries if full.
    pub fn insert(&mut self, key: K, value: V, now: Instant, ttl: Duration) {
        if ttl.is_zero() {
            self.map.remove(&key);
            return;
        }
        self.generation += 1;
        let until = now.checked_add(ttl).unwrap_or(now);
        let replaced = self.map.insert(key.clone(), (value, until, self.generation)).is_some();
        self.order.push_back((key, self.generation));
        if !replaced {
            while self.map.len() > self.capacity {
                let Some((old, generation)) = self.order.pop_front() else { break };
                if self.map.get(&old).is_some_and(|(_, _, g)| *g == generation) {
                    self.map.remove(&old);
                }
            }
        }
        // Re-inserted keys leave stale order entries behind; compact now and then.
        if self.order.len() > 2 * self.capacity.max(self.map.len()) {
            let map = &self.map;
            self.order.retain(|(k, g)| map.get(k).is_some_and(|(_, _, live)| live == g));
        }
    }

    /// Drops every entry (a new policy makes old verdicts meaningless).
    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
    }

    /// How many entries are stored (expired ones included until they are looked up or evicted).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn entries_expire_at_their_own_ttl() {
        let t0 = Instant::now();
        let mut c = TtlCache::new(10);
        c.insert("allow", 1, t0, Duration::from_secs(60));
        c.insert("deny", 2, t0, Duration::from_secs(5));
        assert_eq!(c.get(&"deny", t0 + Duration::from_secs(4)), Some(&2));
        assert_eq!(c.get(&"deny", t0 + Duration::from_secs(5)), None);
        assert_eq!(c.get(&"allow", t0 + Duration::from_secs(59)), Some(&1));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn the_oldest_insert_is_evicted_first() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(60);
        let mut c = TtlCache::new(2);
        c.insert("a", 1, t0, ttl);
        c.insert("b", 2, t0, ttl);
        c.insert("a", 3, t0, ttl); // refreshed: now the newest
        c.insert("c", 4, t0, ttl);
        assert_eq!(c.get(&"b", t0), None);
        assert_eq!(c.get(&"a", t0), Some(&3));
        assert_eq!(c.get(&"c", t0), Some(&4));
    }

    proptest! {
        #[test]
        fn never_holds_more_than_capacity(cap in 1usize..8, keys in proptest::collection::vec(0u8..16, 0..200)) {
            let t0 = Instant::now();
            let mut c = TtlCache::new(cap);
            for (i, k) in keys.iter().enumerate() {
                c.insert(*k, i, t0, Duration::from_secs(1));
                prop_assert!(c.len() <= cap);
                prop_assert_eq!(c.get(k, t0), Some(&i));
                prop_assert!(c.order.len() <= 2 * cap + 1);
            }
        }
    }
}
