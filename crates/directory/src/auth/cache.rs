//! The auth cache, after Dovecot's `auth_cache`: a successful argon2 check
//! is remembered so clients that log in every few seconds (phones polling
//! POP3, many IMAP connections) do not pay ~20 ms of CPU each time.
//!
//! Entries are keyed by a keyed BLAKE2b MAC of (login, password) under a
//! secret drawn at startup, so the cache never holds a password or anything
//! that can be tested offline against guesses. An entry names the account
//! and a fingerprint of the PHC hash string it was verified against; a hit
//! counts only while the account's current hash has the same fingerprint,
//! so a password change (by any process) invalidates it at once.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use blake2::digest::consts::{U16, U32};
use blake2::digest::{Digest, KeyInit, Mac};
use blake2::{Blake2b, Blake2bMac};
use rand::RngCore;
use store::AccountId;

pub(crate) type CacheKey = [u8; 32];
pub(crate) type Fingerprint = [u8; 16];

/// The per-process MAC secret.
pub(crate) struct CacheSecret(blake2::digest::Key<Blake2bMac<U32>>);

impl CacheSecret {
    pub(crate) fn random() -> CacheSecret {
        let mut key = blake2::digest::Key::<Blake2bMac<U32>>::default();
        rand::rng().fill_bytes(&mut key);
        CacheSecret(key)
    }

    /// MAC of the login (lowercased by the caller) and password. The login is
    /// length-prefixed so that ("ab", "c") and ("a", "bc") differ.
    pub(crate) fn key(&self, login: &str, password: &[u8]) -> CacheKey {
        let mut mac = <Blake2bMac<U32> as KeyInit>::new(&self.0);
        Mac::update(&mut mac, &(login.len() as u64).to_be_bytes());
        Mac::update(&mut mac, login.as_bytes());
        Mac::update(&mut mac, password);
        mac.finalize().into_bytes().into()
    }
}

/// Identifies a stored PHC string without keeping it.
pub(crate) fn fingerprint(password_hash: &str) -> Fingerprint {
    Blake2b::<U16>::digest(password_hash.as_bytes()).into()
}

struct Entry {
    account: AccountId,
    fingerprint: Fingerprint,
    inserted: Instant,
    /// Position in `AuthCache::age`.
    seq: u64,
}

/// Bounded map of successful checks; the oldest entry goes first.
pub(crate) struct AuthCache {
    capacity: usize,
    ttl: Duration,
    entries: HashMap<CacheKey, Entry>,
    /// Insertion order, oldest first, for eviction.
    age: BTreeMap<u64, CacheKey>,
    next_seq: u64,
}

impl AuthCache {
    pub(crate) fn new(capacity: usize, ttl: Duration) -> AuthCache {
        AuthCache {
            capacity,
            ttl,
            entries: HashMap::new(),
            age: BTreeMap::new(),
            next_seq: 0,
        }
    }

    /// Whether `key` was verified for `account` against the hash with
    /// `fingerprint` less than the TTL ago. A stale entry is dropped.
    pub(crate) fn hit(
        &mut self,
        key: &CacheKey,
        account: AccountId,
        fingerprint: &Fingerprint,
        now: Instant,
    ) -> bool {
        let Some(entry) = self.entries.get(key) else {
            return false;
        };
        let fresh = entry.account == account
            && entry.fingerprint == *fingerprint
            && now.saturating_duration_since(entry.inserted) < self.ttl;
        if !fresh {
            self.remove(key);
        }
        fresh
    }

    pub(crate) fn insert(
        &mut self,
        key: CacheKey,
        account: AccountId,
        fingerprint: Fingerprint,
        now: Instant,
    ) {
        if self.capacity == 0 || self.ttl.is_zero() {
            return;
        }
        self.remove(&key);
        while self.entries.len() >= self.capacity {
            let Some((_, oldest)) = self.age.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.age.insert(seq, key);
        self.entries.insert(
            key,
            Entry {
                account,
                fingerprint,
                inserted: now,
                seq,
            },
        );
    }

    fn remove(&mut self, key: &CacheKey) {
        if let Some(entry) = self.entries.remove(key) {
            self.age.remove(&entry.seq);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    #[test]
    fn keys_depend_on_secret_login_and_password() {
        let secret = CacheSecret::random();
        let key = secret.key("ann@example.org", b"pw");
        assert_eq!(key, secret.key("ann@example.org", b"pw"));
        assert_ne!(key, secret.key("ann@example.org", b"pW"));
        assert_ne!(secret.key("ab", b"c"), secret.key("a", b"bc"));
        assert_ne!(key, CacheSecret::random().key("ann@example.org", b"pw"));
    }

    #[test]
    fn hits_only_for_same_account_hash_and_age() {
        let now = Instant::now();
        let mut cache = AuthCache::new(10, TTL);
        let fp = fingerprint("$argon2id$old");
        cache.insert([1; 32], 7, fp, now);
        assert!(cache.hit(&[1; 32], 7, &fp, now + Duration::from_secs(59)));
        assert!(!cache.hit(&[1; 32], 8, &fp, now));
        // The miss dropped the entry.
        assert!(!cache.hit(&[1; 32], 7, &fp, now));

        cache.insert([2; 32], 7, fp, now);
        assert!(!cache.hit(&[2; 32], 7, &fingerprint("$argon2id$new"), now));
        cache.insert([3; 32], 7, fp, now);
        assert!(!cache.hit(&[3; 32], 7, &fp, now + TTL));
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn evicts_the_oldest() {
        let now = Instant::now();
        let mut cache = AuthCache::new(3, TTL);
        let fp = fingerprint("h");
        for i in 0..5 {
            cache.insert([i; 32], u64::from(i), fp, now);
        }
        assert_eq!(cache.len(), 3);
        assert!(!cache.hit(&[0; 32], 0, &fp, now));
        assert!(!cache.hit(&[1; 32], 1, &fp, now));
        assert!(cache.hit(&[4; 32], 4, &fp, now));
        // Re-inserting refreshes an entry's age.
        cache.insert([2; 32], 2, fp, now);
        cache.insert([9; 32], 9, fp, now);
        assert!(cache.hit(&[2; 32], 2, &fp, now));
        assert!(!cache.hit(&[3; 32], 3, &fp, now));
    }

    #[test]
    fn zero_capacity_disables() {
        let mut cache = AuthCache::new(0, TTL);
        cache.insert([1; 32], 1, fingerprint("h"), Instant::now());
        assert_eq!(cache.len(), 0);
    }
}
