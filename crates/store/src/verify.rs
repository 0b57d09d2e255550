//! `posthorn verify`: recomputes every derived counter from the records and
//! reports mismatches. Also the crash test's judge.

use std::collections::{HashMap, HashSet};

use rocksdb::{DB, IteratorMode, Snapshot};

use crate::records::{AccountRecord, BlobRecord, MailboxRecord, MessageRecord, UidRanges, decode};
use crate::writer::handle;
use crate::{AccountId, BlobId, MailboxId, StoreError, keys};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub accounts: u64,
    pub mailboxes: u64,
    pub messages: u64,
    pub blobs: u64,
    /// Outbound queue entries.
    pub queued: u64,
    /// Messages being received right now (chunks written, delivery not committed).
    pub pending_uploads: u64,
    /// One line per broken invariant; empty when the store is consistent.
    pub problems: Vec<String>,
}

fn each(
    db: &DB,
    snap: &Snapshot<'_>,
    cf: &str,
    mut f: impl FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    for item in snap.iterator_cf(handle(db, cf)?, IteratorMode::Start) {
        let (k, v) = item?;
        f(&k, &v)?;
    }
    Ok(())
}

pub(crate) fn verify(db: &DB) -> Result<VerifyReport, StoreError> {
    // One consistent view, so a daemon writing meanwhile cannot cause false alarms.
    let snap = db.snapshot();
    let mut report = VerifyReport::default();
    let mut quota: HashMap<AccountId, u64> = HashMap::new();
    let mut folders: HashMap<(AccountId, MailboxId), (u32, u32, u64, u32)> = HashMap::new();
    let mut refs: HashMap<BlobId, u32> = HashMap::new();
    let mut deleted: HashMap<(AccountId, MailboxId), UidRanges> = HashMap::new();
    each(db, &snap, keys::CF_MESSAGE, |k, v| {
        let (Some(a), Some(m), Some(uid)) = (
            keys::be_u64(k),
            k.get(8..).and_then(keys::be_u32),
            keys::uid_of_message_key(k),
        ) else {
            report.problems.push(format!("bad message key {k:?}"));
            return Ok(());
        };
        let rec: MessageRecord = decode("message", v)?;
        report.messages += 1;
        *quota.entry(a).or_default() += rec.size;
        let f = folders.entry((a, m)).or_default();
        f.0 += 1;
        f.1 += u32::from(!rec.flags.seen());
        f.2 += rec.size;
        f.3 = f.3.max(uid);
        *refs.entry(rec.blob).or_default() += 1;
        if rec.flags.deleted() {
            deleted.entry((a, m)).or_default().insert(uid);
        }
        Ok(())
    })?;
    each(db, &snap, keys::CF_QUEUE, |_, v| {
        let rec: crate::QueuedMessage = decode("queue", v)?;
        report.queued += 1;
        *refs.entry(rec.blob).or_default() += 1;
        Ok(())
    })?;
    each(db, &snap, keys::CF_ACCOUNT, |k, v| {
        let a = keys::be_u64(k).unwrap_or(0);
        let rec: AccountRecord = decode("account", v)?;
        report.accounts += 1;
        let counted = quota.remove(&a).unwrap_or(0);
        if rec.quota_used != counted {
            report.problems.push(format!(
                "account {a}: quota counter {} but messages sum to {counted}",
                rec.quota_used
            ));
        }
        Ok(())
    })?;
    for (a, bytes) in quota {
        report.problems.push(format!(
            "messages of {bytes} bytes belong to missing account {a}"
        ));
    }
    each(db, &snap, keys::CF_MAILBOX, |k, v| {
        let (Some(a), Some(m)) = (keys::be_u64(k), k.get(9..).and_then(keys::be_u32)) else {
            return Ok(());
        };
        if k.get(8) == Some(&b'd') {
            let set: UidRanges = decode("deleted uids", v)?;
            if deleted.remove(&(a, m)).unwrap_or_default() != set {
                report.problems.push(format!(
                    "account {a} folder {m}: \\Deleted set does not match the flags"
                ));
            }
            return Ok(());
        }
        if k.get(8) != Some(&b'i') {
            return Ok(());
        }
        let rec: MailboxRecord = decode("mailbox", v)?;
        report.mailboxes += 1;
        let (count, unseen, size, max_uid) = folders.remove(&(a, m)).unwrap_or_default();
        if (rec.messages, rec.unseen, rec.size) != (count, unseen, size) {
            report.problems.push(format!(
                "account {a} folder {}: counters (messages {}, unseen {}, size {}) but records say ({count}, {unseen}, {size})",
                rec.name, rec.messages, rec.unseen, rec.size
            ));
        }
        if max_uid >= rec.uidnext {
            report.problems.push(format!(
                "account {a} folder {}: UID {max_uid} not below UIDNEXT {}",
                rec.name, rec.uidnext
            ));
        }
        Ok(())
    })?;
    for ((a, m), (count, ..)) in folders {
        report.problems.push(format!(
            "{count} messages in missing folder {m} of account {a}"
        ));
    }
    for (a, m) in deleted.into_keys() {
        report.problems.push(format!(
            "account {a} folder {m}: \\Deleted messages missing from its \\Deleted set"
        ));
    }
    let blob_cf = handle(db, keys::CF_BLOB)?;
    let mut known = HashSet::new();
    each(db, &snap, keys::CF_BLOBMETA, |k, v| {
        if k.len() != 8 {
            return Ok(());
        }
        let b = keys::be_u64(k).unwrap_or(0);
        let rec: BlobRecord = decode("blob", v)?;
        report.blobs += 1;
        known.insert(b);
        let counted = refs.remove(&b).unwrap_or(0);
        if rec.refs != counted {
            report.problems.push(format!(
                "blob {b}: reference count {} but {counted} messages use it",
                rec.refs
            ));
        }
        for chunk in 0..rec.chunks {
            if snap
                .get_pinned_cf(blob_cf, keys::blob_chunk(b, chunk))?
                .is_none()
            {
                report
                    .problems
                    .push(format!("blob {b}: chunk {chunk} missing"));
            }
        }
        Ok(())
    })?;
    for (b, n) in refs {
        report
            .problems
            .push(format!("{n} messages use missing blob {b}"));
    }
    // Chunks nobody owns: neither a committed blob nor an upload in progress.
    let meta_cf = handle(db, keys::CF_META)?;
    let mut last_orphan = None;
    for item in snap.iterator_cf(blob_cf, IteratorMode::Start) {
        let (k, _) = item?;
        let b = keys::be_u64(&k).unwrap_or(0);
        if known.contains(&b) || last_orphan == Some(b) {
            continue;
        }
        if snap
            .get_pinned_cf(meta_cf, keys::pending_blob(b))?
            .is_none()
        {
            report
                .problems
                .push(format!("blob {b}: chunks without a blob record"));
        } else {
            report.pending_uploads += 1;
        }
        last_orphan = Some(b);
    }
    Ok(report)
}
