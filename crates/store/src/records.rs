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
