//! Failure counting with a sliding window, for login throttling.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Recent failures per key (an IP or an account). A key with `limit`
/// failures inside the last `window` is blocked until the oldest of them
/// leaves the window. Bounded: past `capacity` keys, the key whose last
/// failure is oldest is forgotten first.
pub(crate) struct FailureLog<K> {
    limit: usize,
    window: Duration,
    capacity: usize,
    entries: HashMap<K, Failures>,
    /// Keys by the sequence number of their last failure, oldest first.
    recency: BTreeMap<u64, K>,
    next_seq: u64,
}

struct Failures {
    /// The most recent failures, oldest first, at most `limit` of them.
    times: VecDeque<Instant>,
    seq: u64,
}

impl<K: Hash + Eq + Clone> FailureLog<K> {
    /// `limit` 0 turns throttling off.
    pub(crate) fn new(limit: u32, window: Duration, capacity: usize) -> FailureLog<K> {
        FailureLog {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            window,
            capacity,
            entries: HashMap::new(),
            recency: BTreeMap::new(),
            next_seq: 0,
        }
    }

    pub(crate) fn is_blocked(&self, key: &K, now: Instant) -> bool {
        if self.limit == 0 {
            return false;
        }
        self.entries.get(key).is_some_and(|failures| {
            failures
                .times
                .iter()
                .filter(|&&time| now.saturating_duration_since(time) < self.window)
                .count()
                >= self.limit
        })
    }

    pub(crate) fn record(&mut self, key: K, now: Instant) {
        if self.limit == 0 || self.capacity == 0 {
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(failures) = self.entries.get_mut(&key) {
            self.recency.remove(&failures.seq);
            failures.seq = seq;
            failures.times.push_back(now);
            // Only the last `limit` failures can decide a block.
            while failures.times.len() > self.limit {
                failures.times.pop_front();
            }
        } else {
            while self.entries.len() >= self.capacity {
                let Some((_, stalest)) = self.recency.pop_first() else {
                    break;
                };
                self.entries.remove(&stalest);
            }
            self.entries.insert(
                key.clone(),
                Failures {
                    times: VecDeque::from([now]),
                    seq,
                },
            );
        }
        self.recency.insert(seq, key);
    }

    pub(crate) fn reset(&mut self, key: &K) {
        if let Some(failures) = self.entries.remove(key) {
            self.recency.remove(&failures.seq);
        }
    }
}

/// What failures from `ip` are counted under. An IPv6 host usually holds a
/// whole /64 and can hop between its addresses at will, so the /64 is the
/// unit; IPv4-mapped addresses count as the IPv4 address.
pub(crate) fn source(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::from(segments)
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(300);

    #[test]
    fn blocks_at_the_limit_until_the_window_passes() {
        let start = Instant::now();
        let mut log = FailureLog::new(3, WINDOW, 100);
        for i in 0..3 {
            assert!(!log.is_blocked(&"k", start));
            log.record("k", start + Duration::from_secs(i));
        }
        assert!(log.is_blocked(&"k", start + Duration::from_secs(10)));
        assert!(!log.is_blocked(&"other", start));
        // The first failure leaves the window 300 s after it happened.
        assert!(log.is_blocked(&"k", start + Duration::from_secs(299)));
        assert!(!log.is_blocked(&"k", start + Duration::from_secs(300)));
        // One more failure, and the last three are within the window again.
        log.record("k", start + Duration::from_secs(300));
        assert!(log.is_blocked(&"k", start + Duration::from_secs(300)));
        assert!(!log.is_blocked(&"k", start + Duration::from_secs(301)));
        log.reset(&"k");
        assert!(!log.is_blocked(&"k", start + Duration::from_secs(300)));
    }

    #[test]
    fn bounded_forgets_the_stalest_key() {
        let now = Instant::now();
        let mut log = FailureLog::new(1, WINDOW, 2);
        log.record(1, now);
        log.record(2, now);
        log.record(1, now);
        log.record(3, now);
        assert!(log.is_blocked(&1, now));
        assert!(!log.is_blocked(&2, now));
        assert!(log.is_blocked(&3, now));
        assert_eq!(log.entries.len(), 2);
        assert_eq!(log.recency.len(), 2);
    }

    #[test]
    fn zero_limit_never_blocks() {
        let now = Instant::now();
        let mut log = FailureLog::new(0, WINDOW, 10);
        log.record("k", now);
        assert!(!log.is_blocked(&"k", now));
    }

    #[test]
    fn ipv6_counts_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source(a), source(b));
        assert_ne!(source(a), source(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(source(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }
}
