//! Values stored in the column families, encoded with postcard. Layout changes need a
//! schema version bump and a migration.

use serde::{Deserialize, Serialize};

use crate::{BlobId, StoreError};

/// Per-account counters. `modseq` is shared by all folders of the account: it only
/// grows, which is all RFC 7162 asks of a per-mailbox HIGHESTMODSEQ.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccountRecord {
    pub quota_used: u64,
    pub next_mailbox: u32,
    pub modseq: u64,
}

/// RFC 6154 special-use attributes of the default folders.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum SpecialUse {
    Sent,
    Drafts,
    Trash,
    Junk,
    Archive,
}

impl SpecialUse {
    pub fn attribute(self) -> &'static str {
        match self {
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Trash => "\\Trash",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Archive => "\\Archive",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MailboxRecord {
    pub name: String,
    pub special_use: Option<SpecialUse>,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highest_modseq: u64,
    pub subscribed: bool,
    /// Kept exact on every append/expunge/flag change so STATUS never scans.
    pub messages: u32,
    pub unseen: u32,
    pub size: u64,
}

/// System flags as bits; keywords beside them.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Flags {
    pub system: u8,
    pub keywords: Vec<String>,
}

impl Flags {
    pub const SEEN: u8 = 1;
    pub const ANSWERED: u8 = 2;
    pub const FLAGGED: u8 = 4;
    pub const DELETED: u8 = 8;
    pub const DRAFT: u8 = 16;

    pub fn seen(&self) -> bool {
        self.system & Self::SEEN != 0
    }

    pub fn deleted(&self) -> bool {
        self.system & Self::DELETED != 0
    }

    /// Applies `op` and reports whether anything changed.
    pub fn apply(&mut self, op: FlagOp, with: &Flags) -> bool {
        let before = self.clone();
        match op {
            FlagOp::Replace => *self = with.clone(),
            FlagOp::Add => {
                self.system |= with.system;
                for k in &with.keywords {
                    if !self.keywords.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                        self.keywords.push(k.clone());
                    }
                }
            }
            FlagOp::Remove => {
                self.system &= !with.system;
                self.keywords
                    .retain(|x| !with.keywords.iter().any(|k| k.eq_ignore_ascii_case(x)));
            }
        }
        *self != before
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagOp {
    Replace,
    Add,
    Remove,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MessageRecord {
    pub blob: BlobId,
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub internal_date: i64,
    pub flags: Flags,
    pub modseq: u64,
}

/// The extent of a folder's log of expunged UIDs (for QRESYNC): the entries
/// with modseqs up to `floor` were pruned, `entries` are kept. A folder
/// without this record has its whole log.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExpungeLog {
    pub floor: u64,
    pub entries: u64,
}

/// A set of UIDs as sorted, disjoint, non-adjacent inclusive ranges: a
/// folder marked `\Deleted` wholesale is one range.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct UidRanges(Vec<(u32, u32)>);

impl UidRanges {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many UIDs the set holds (at most `u32::MAX`).
    pub fn len(&self) -> u32 {
        let total: u64 = self
            .0
            .iter()
            .map(|&(lo, hi)| u64::from(hi.saturating_sub(lo)) + 1)
            .sum();
        u32::try_from(total).unwrap_or(u32::MAX)
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().flat_map(|&(lo, hi)| lo..=hi)
    }

    pub fn insert(&mut self, uid: u32) {
        // The first range that ends at or after uid - 1 (so it may absorb uid).
        let i = self
            .0
            .partition_point(|&(_, hi)| hi.saturating_add(1) < uid);
        match self.0.get(i).copied() {
            Some((lo, hi)) if lo <= uid && uid <= hi => {}
            Some((lo, hi)) if hi.saturating_add(1) == uid => {
                self.0[i].1 = uid;
                // uid may now touch the next range.
                if let Some(&(next_lo, next_hi)) = self.0.get(i + 1)
                    && next_lo == uid.saturating_add(1)
                {
                    self.0[i] = (lo, next_hi);
                    self.0.remove(i + 1);
                }
            }
            Some((lo, _)) if uid.saturating_add(1) == lo => self.0[i].0 = uid,
            _ => self.0.insert(i, (uid, uid)),
        }
    }

    pub fn remove(&mut self, uid: u32) {
        let i = self.0.partition_point(|&(_, hi)| hi < uid);
        let Some((lo, hi)) = self.0.get(i).copied() else {
            return;
        };
        if uid < lo {
            return;
        }
        match (lo == uid, hi == uid) {
            (true, true) => {
                self.0.remove(i);
            }
            (true, false) => self.0[i].0 = uid + 1,
            (false, true) => self.0[i].1 = uid - 1,
            (false, false) => {
                self.0[i].1 = uid - 1;
                self.0.insert(i + 1, (uid + 1, hi));
            }
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlobRecord {
    /// Number of message records that point at this blob; freed at zero.
    pub refs: u32,
    pub size: u64,
    pub chunks: u32,
}

pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // postcard only fails for types serde cannot express, never for these records.
    postcard::to_stdvec(v).unwrap_or_default()
}

pub fn decode<T: for<'de> Deserialize<'de>>(what: &'static str, b: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(b).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::UidRanges;

    fn set(uids: &[u32]) -> UidRanges {
        let mut s = UidRanges::default();
        for &u in uids {
            s.insert(u);
        }
        s
    }

    #[test]
    fn uid_ranges_merge_and_split() {
        let mut s = set(&[5, 3, 4, 10, 1, 9, 11, 4, u32::MAX, 0]);
        assert_eq!(s.len(), 9);
        assert_eq!(s.0, vec![(0, 1), (3, 5), (9, 11), (u32::MAX, u32::MAX)]);
        s.insert(2);
        assert_eq!(s.0, vec![(0, 5), (9, 11), (u32::MAX, u32::MAX)]);
        s.remove(3);
        s.remove(11);
        s.remove(9);
        s.remove(7);
        s.remove(u32::MAX);
        assert_eq!(s.0, vec![(0, 2), (4, 5), (10, 10)]);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 1, 2, 4, 5, 10]);
        assert_eq!(s.len(), 6);
        for u in [0, 1, 2, 4, 5, 10] {
            s.remove(u);
        }
        assert!(s.is_empty());
    }

    #[test]
    fn uid_ranges_match_a_plain_set() {
        // A deterministic shuffle of inserts and removes against BTreeSet.
        let mut s = UidRanges::default();
        let mut model = std::collections::BTreeSet::new();
        let mut x: u32 = 12345;
        for _ in 0..20_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let uid = (x >> 8) % 200;
            if x & 1 == 0 {
                s.insert(uid);
                model.insert(uid);
            } else {
                s.remove(uid);
                model.remove(&uid);
            }
            assert!(s.0.windows(2).all(|w| w[0].1 + 1 < w[1].0), "{:?}", s.0);
        }
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            model.into_iter().collect::<Vec<_>>()
        );
    }
}
