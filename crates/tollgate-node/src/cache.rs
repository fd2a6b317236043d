//! A bounded map whose entries expire. Pure: the caller passes the clock in,
//! so expiry and eviction are tested without sleeping.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A map of at most `capacity` entries (and, when weighted, at most
/// `max_weight` in total), each valid until its own expiry. When full, the
/// entry inserted longest ago is evicted first.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    map: HashMap<K, Entry<V>>,
    /// Insertion order, with the generation that identifies the live entry.
    order: VecDeque<(K, u64)>,
    capacity: usize,
    generation: u64,
    weight: u64,
    max_weight: u64,
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    until: Instant,
    generation: u64,
    weight: u64,
}

impl<K: Eq + Hash + Clone, V> TtlCache<K, V> {
    /// An empty cache for at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Self::weighted(capacity, u64::MAX)
    }

    /// An empty cache for at most `capacity` entries whose weights (bytes,
    /// say) add up to at most `max_weight`.
    pub fn weighted(capacity: usize, max_weight: u64) -> Self {
        TtlCache {
            map: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            generation: 0,
            weight: 0,
            max_weight,
        }
    }

    /// The value for `key` if it has not expired at `now`; an expired entry is dropped.
    pub fn get(&mut self, key: &K, now: Instant) -> Option<&V> {
        let expired = self.map.get(key).is_some_and(|e| e.until <= now);
        if expired {
            self.remove(key);
            return None;
        }
        self.map.get(key).map(|e| &e.value)
    }

    fn remove(&mut self, key: &K) {
        if let Some(e) = self.map.remove(key) {
            self.weight -= e.weight;
        }
    }

    /// Stores `value` for `ttl` from `now`, evicting the oldest entries if full.
    pub fn insert(&mut self, key: K, value: V, now: Instant, ttl: Duration) {
        self.insert_weighted(key, value, 0, now, ttl);
    }

    /// Stores `value` of `weight` for `ttl` from `now`, evicting the oldest
    /// entries while the cache holds too many or weighs too much. A value
    /// heavier than the whole budget is not stored.
    pub fn insert_weighted(&mut self, key: K, value: V, weight: u64, now: Instant, ttl: Duration) {
        self.remove(&key);
        if ttl.is_zero() || weight > self.max_weight {
            return;
        }
        self.generation += 1;
        let until = now.checked_add(ttl).unwrap_or(now);
        self.map.insert(key.clone(), Entry { value, until, generation: self.generation, weight });
        self.weight += weight;
        self.order.push_back((key, self.generation));
        while self.map.len() > self.capacity || self.weight > self.max_weight {
            let Some((old, generation)) = self.order.pop_front() else { break };
            if self.map.get(&old).is_some_and(|e| e.generation == generation) {
                self.remove(&old);
            }
        }
        // Re-inserted keys leave stale order entries behind; compact now and then.
        if self.order.len() > 2 * self.capacity.max(self.map.len()) {
            let map = &self.map;
            self.order.retain(|(k, g)| map.get(k).is_some_and(|e| e.generation == *g));
        }
    }

    /// Drops every entry (a new policy makes old verdicts meaningless).
    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
        self.weight = 0;
    }

    /// How many entries are stored (expired ones included until they are looked up or evicted).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The total weight stored.
    pub fn weight(&self) -> u64 {
        self.weight
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

    #[test]
    fn a_weighted_cache_evicts_by_weight_and_refuses_what_exceeds_it() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(60);
        let mut c = TtlCache::weighted(100, 10);
        c.insert_weighted("a", 1, 4, t0, ttl);
        c.insert_weighted("b", 2, 4, t0, ttl);
        c.insert_weighted("c", 3, 4, t0, ttl); // 12 > 10: "a" goes
        assert_eq!(c.get(&"a", t0), None);
        assert_eq!(c.get(&"b", t0), Some(&2));
        assert_eq!(c.get(&"c", t0), Some(&3));
        assert_eq!(c.weight(), 8);
        c.insert_weighted("huge", 4, 11, t0, ttl);
        assert_eq!(c.get(&"huge", t0), None, "heavier than the budget: not stored");
        assert_eq!(c.weight(), 8, "and nothing else evicted for it");
        c.insert_weighted("b", 5, 1, t0, ttl);
        assert_eq!(c.weight(), 5, "a replaced entry's weight is replaced");
        assert_eq!(c.get(&"b", t0 + ttl), None);
        assert_eq!(c.weight(), 4, "an expired entry's weight is released");
    }

    proptest! {
        #[test]
        fn never_weighs_more_than_its_budget(max in 1u64..64, items in proptest::collection::vec((0u8..16, 0u64..32), 0..200)) {
            let t0 = Instant::now();
            let mut c = TtlCache::weighted(8, max);
            for (k, w) in items {
                c.insert_weighted(k, w, w, t0, Duration::from_secs(1));
                prop_assert!(c.weight() <= max);
                let sum: u64 = c.map.values().map(|e| e.weight).sum();
                prop_assert_eq!(sum, c.weight());
            }
        }

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
