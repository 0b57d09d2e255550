//! Message operations: deliver/append, copy, move, flags, expunge. Each validates
//! everything before it stages its first write (see `writer`), and keeps the quota,
//! folder counters and blob reference counts exact in the same batch.

use crate::blob::StagedBlob;
use crate::feed::{Change, ChangeKind};
use crate::mailbox::{self, INBOX};
use crate::records::{
    BlobRecord, ExpungeLog, FlagOp, Flags, MailboxRecord, MessageRecord, UidRanges, decode, encode,
};
use crate::writer::Txn;
use crate::{AccountId, BlobId, MailboxId, Store, StoreError, keys};

/// Where a delivered or appended message goes.
#[derive(Clone, Debug)]
pub enum MailboxRef {
    Inbox,
    Name(String),
    Id(MailboxId),
}

#[derive(Clone, Debug)]
pub struct Target {
    pub account: AccountId,
    pub mailbox: MailboxRef,
    pub flags: Flags,
    /// Refuse with [`StoreError::OverQuota`] if the account would exceed this.
    pub quota_limit: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    pub account: AccountId,
    pub mailbox: MailboxId,
    pub uidvalidity: u32,
    pub uid: u32,
}

/// Result of COPY/MOVE: source and destination UIDs (RFC 4315 COPYUID).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyResult {
    pub uidvalidity: u32,
    pub uids: Vec<(u32, u32)>,
}

#[derive(Clone, Debug)]
pub enum ExpungeSet {
    /// Every message flagged \Deleted (IMAP EXPUNGE, CLOSE).
    AllDeleted,
    /// Those of these UIDs flagged \Deleted (UID EXPUNGE).
    DeletedAmong(Vec<u32>),
    /// These UIDs whatever their flags (POP3 DELE at QUIT).
    Exactly(Vec<u32>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagUpdate {
    pub uid: u32,
    pub flags: Flags,
    pub modseq: u64,
    pub changed: bool,
}

pub(crate) fn summary_key(blob: BlobId) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[..8].copy_from_slice(&blob.to_be_bytes());
    k[8] = b's';
    k
}

fn load_blob(txn: &Txn<'_>, blob: BlobId) -> Result<BlobRecord, StoreError> {
    let v = txn
        .get(keys::CF_BLOBMETA, &keys::blob(blob))?
        .ok_or_else(|| StoreError::Corrupt(format!("blob {blob} missing")))?;
    decode("blob", &v)
}

/// Changes a blob's reference count; frees its chunks and summary at zero.
pub(crate) fn adjust_refs(txn: &mut Txn<'_>, blob: BlobId, delta: i64) -> Result<(), StoreError> {
    let mut rec = load_blob(txn, blob)?;
    let refs = i64::from(rec.refs) + delta;
    if refs <= 0 {
        txn.delete_chunks(blob, rec.chunks)?;
        txn.delete(keys::CF_BLOBMETA, &keys::blob(blob))?;
        txn.delete(keys::CF_BLOBMETA, &summary_key(blob))
    } else {
        rec.refs = refs as u32;
        txn.put(keys::CF_BLOBMETA, &keys::blob(blob), encode(&rec))
    }
}

fn resolve(txn: &Txn<'_>, a: AccountId, m: &MailboxRef) -> Result<MailboxId, StoreError> {
    match m {
        MailboxRef::Id(id) => Ok(*id),
        MailboxRef::Inbox => {
            mailbox::lookup(txn, a, INBOX)?.ok_or_else(|| StoreError::NoSuchMailbox(INBOX.into()))
        }
        MailboxRef::Name(n) => {
            let n = mailbox::normalize_name(n)?;
            mailbox::lookup(txn, a, &n)?.ok_or(StoreError::NoSuchMailbox(n))
        }
    }
}

fn load_message(
    txn: &Txn<'_>,
    a: AccountId,
    m: MailboxId,
    uid: u32,
) -> Result<Option<MessageRecord>, StoreError> {
    txn.get(keys::CF_MESSAGE, &keys::message(a, m, uid))?
        .map(|v| decode("message", &v))
        .transpose()
}

/// Writes a message record whose `\Deleted` flag was `was_deleted` and notes
/// a change of that flag for the folder's set.
fn put_message(
    txn: &mut Txn<'_>,
    folder: &mut FolderChanges,
    uid: u32,
    rec: &MessageRecord,
    was_deleted: bool,
) -> Result<(), StoreError> {
    txn.put(
        keys::CF_MESSAGE,
        &keys::message(folder.account, folder.mailbox, uid),
        encode(rec),
    )?;
    match (was_deleted, rec.flags.deleted()) {
        (false, true) => folder.added.push(uid),
        (true, false) => folder.removed.push(uid),
        _ => {}
    }
    Ok(())
}

/// The UIDs of the folder's messages flagged `\Deleted`.
fn load_deleted(txn: &Txn<'_>, a: AccountId, m: MailboxId) -> Result<UidRanges, StoreError> {
    decode_deleted(txn.get(keys::CF_MAILBOX, &keys::deleted_uids(a, m))?)
}

fn decode_deleted(value: Option<Vec<u8>>) -> Result<UidRanges, StoreError> {
    value
        .map(|v| decode("deleted uids", &v))
        .transpose()
        .map(Option::unwrap_or_default)
}

/// Expunge log entries a folder keeps; past `LOG_MAX` the oldest are pruned
/// down to `LOG_KEEP`. A client whose state is older than the log is told
/// of every UID that is gone instead (see `Store::expunged_since`).
#[cfg(not(test))]
const LOG_MAX: u64 = 10_000;
#[cfg(not(test))]
const LOG_KEEP: u64 = 5_000;
#[cfg(test)]
const LOG_MAX: u64 = 8;
#[cfg(test)]
const LOG_KEEP: u64 = 4;

/// What one operation did to a folder's `\Deleted` set and expunge log,
/// written with one read and one write of each however many messages it
/// touched.
struct FolderChanges {
    account: AccountId,
    mailbox: MailboxId,
    added: Vec<u32>,
    removed: Vec<u32>,
    expunged: u64,
}

impl FolderChanges {
    fn new(account: AccountId, mailbox: MailboxId) -> Self {
        FolderChanges {
            account,
            mailbox,
            added: Vec::new(),
            removed: Vec::new(),
            expunged: 0,
        }
    }

    fn save(self, txn: &mut Txn<'_>) -> Result<(), StoreError> {
        if self.expunged > 0 {
            count_expunges(txn, self.account, self.mailbox, self.expunged)?;
        }
        if self.added.is_empty() && self.removed.is_empty() {
            return Ok(());
        }
        let mut set = load_deleted(txn, self.account, self.mailbox)?;
        for uid in self.removed {
            set.remove(uid);
        }
        for uid in self.added {
            set.insert(uid);
        }
        let key = keys::deleted_uids(self.account, self.mailbox);
        if set.is_empty() {
            txn.delete(keys::CF_MAILBOX, &key)
        } else {
            txn.put(keys::CF_MAILBOX, &key, encode(&set))
        }
    }
}

/// Counts `added` new expunge log entries of a folder and prunes the oldest
/// committed ones when the log grows past `LOG_MAX`. Point deletes of the
/// pruned keys: the entries this group adds all have higher modseqs.
fn count_expunges(
    txn: &mut Txn<'_>,
    a: AccountId,
    m: MailboxId,
    added: u64,
) -> Result<(), StoreError> {
    let key = keys::expunge_log(a, m);
    let mut log: ExpungeLog = match txn.get(keys::CF_MAILBOX, &key)? {
        Some(v) => decode("expunge log", &v)?,
        None => ExpungeLog::default(),
    };
    log.entries += added;
    if log.entries > LOG_MAX {
        let prefix = keys::message_prefix(a, m);
        let mut pruned = 0;
        for k in txn.first_keys(keys::CF_CHANGES, &prefix, log.entries - LOG_KEEP)? {
            if let Some(modseq) = k.get(12..20).and_then(keys::be_u64) {
                log.floor = log.floor.max(modseq);
            }
            txn.delete(keys::CF_CHANGES, &k)?;
            pruned += 1;
        }
        log.entries = log.entries.saturating_sub(pruned);
    }
    txn.put(keys::CF_MAILBOX, &key, encode(&log))
}

/// Adds a message record to a folder; the caller saves `mrec` and the account.
fn insert_message(
    txn: &mut Txn<'_>,
    folder: &mut FolderChanges,
    mrec: &mut MailboxRecord,
    mut rec: MessageRecord,
    modseq: u64,
) -> Result<u32, StoreError> {
    let uid = mrec.uidnext;
    mrec.uidnext = mrec
        .uidnext
        .checked_add(1)
        .ok_or_else(|| StoreError::Corrupt(format!("folder {} ran out of UIDs", mrec.name)))?;
    mrec.messages += 1;
    mrec.unseen += u32::from(!rec.flags.seen());
    mrec.size += rec.size;
    mrec.highest_modseq = modseq;
    rec.modseq = modseq;
    put_message(txn, folder, uid, &rec, false)?;
    Ok(uid)
}

/// Removes a message record and logs the expunge; blob and quota are the caller's.
fn remove_message(
    txn: &mut Txn<'_>,
    folder: &mut FolderChanges,
    mrec: &mut MailboxRecord,
    uid: u32,
    rec: &MessageRecord,
    modseq: u64,
) -> Result<(), StoreError> {
    let (a, m) = (folder.account, folder.mailbox);
    mrec.messages = mrec.messages.saturating_sub(1);
    mrec.unseen = mrec.unseen.saturating_sub(u32::from(!rec.flags.seen()));
    mrec.size = mrec.size.saturating_sub(rec.size);
    mrec.highest_modseq = modseq;
    txn.delete(keys::CF_MESSAGE, &keys::message(a, m, uid))?;
    if rec.flags.deleted() {
        folder.removed.push(uid);
    }
    folder.expunged += 1;
    txn.put(
        keys::CF_CHANGES,
        &keys::change(a, m, modseq, uid),
        Vec::new(),
    )
}

/// Stores the blob for `targets` plus `extra_refs` holders (outbound queue
/// entries the caller writes in the same batch).
pub(crate) fn deliver(
    txn: &mut Txn<'_>,
    blob: &StagedBlob,
    targets: &[Target],
    extra_refs: u32,
    internal_date: i64,
) -> Result<Vec<Result<Appended, StoreError>>, StoreError> {
    let mut results = Vec::with_capacity(targets.len());
    let mut refs = extra_refs;
    for t in targets {
        let mut acct = match mailbox::load_account(txn, t.account) {
            Ok(acct) => acct,
            Err(e @ StoreError::NoSuchAccount(_)) => {
                results.push(Err(e));
                continue;
            }
            Err(e) => return Err(e),
        };
        let m = match resolve(txn, t.account, &t.mailbox) {
            Ok(m) => m,
            Err(e @ (StoreError::NoSuchMailbox(_) | StoreError::InvalidName(_))) => {
                results.push(Err(e));
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut mrec = match mailbox::load(txn, t.account, m) {
            Ok(r) => r,
            Err(e @ StoreError::NoSuchMailbox(_)) => {
                results.push(Err(e));
                continue;
            }
            Err(e) => return Err(e),
        };
        if t.quota_limit
            .is_some_and(|limit| acct.quota_used.saturating_add(blob.size) > limit)
        {
            results.push(Err(StoreError::OverQuota));
            continue;
        }
        acct.modseq += 1;
        acct.quota_used += blob.size;
        let rec = MessageRecord {
            blob: blob.id,
            size: blob.size,
            internal_date,
            flags: t.flags.clone(),
            modseq: 0,
        };
        let mut changes = FolderChanges::new(t.account, m);
        let uid = insert_message(txn, &mut changes, &mut mrec, rec, acct.modseq)?;
        changes.save(txn)?;
        mailbox::save(txn, t.account, m, &mrec)?;
        mailbox::save_account(txn, t.account, &acct)?;
        txn.publish(Change {
            account: t.account,
            mailbox: m,
            modseq: acct.modseq,
            kind: ChangeKind::Appended(vec![uid]),
        });
        refs += 1;
        results.push(Ok(Appended {
            account: t.account,
            mailbox: m,
            uidvalidity: mrec.uidvalidity,
            uid,
        }));
    }
    if refs == 0 {
        // Nobody took it: the chunks written while receiving go away with the marker.
        txn.delete_chunks(blob.id, blob.flushed)?;
    } else {
        if !blob.tail.is_empty() {
            txn.put(
                keys::CF_BLOB,
                &keys::blob_chunk(blob.id, blob.flushed),
                blob.tail.clone(),
            )?;
        }
        let rec = BlobRecord {
            refs,
            size: blob.size,
            chunks: blob.chunks(),
        };
        txn.put(keys::CF_BLOBMETA, &keys::blob(blob.id), encode(&rec))?;
        txn.put(
            keys::CF_BLOBMETA,
            &summary_key(blob.id),
            encode(&blob.summary),
        )?;
    }
    if blob.flushed > 0 {
        txn.delete(keys::CF_META, &keys::pending_blob(blob.id))?;
    }
    Ok(results)
}

/// COPY and MOVE (RFC 6851): new UIDs in `to`, in the order of `uids`.
fn transfer(
    txn: &mut Txn<'_>,
    a: AccountId,
    from: MailboxId,
    uids: &[u32],
    to: MailboxId,
    quota_limit: Option<u64>,
    remove_source: bool,
) -> Result<CopyResult, StoreError> {
    let mut acct = mailbox::load_account(txn, a)?;
    let mut src = mailbox::load(txn, a, from)?;
    mailbox::load(txn, a, to)?;
    let mut found = Vec::with_capacity(uids.len());
    for &uid in uids {
        if let Some(rec) = load_message(txn, a, from, uid)? {
            found.push((uid, rec));
        }
    }
    let added: u64 = found.iter().map(|(_, r)| r.size).sum();
    if !remove_source
        && quota_limit.is_some_and(|limit| acct.quota_used.saturating_add(added) > limit)
    {
        return Err(StoreError::OverQuota);
    }
    acct.modseq += 1;
    let modseq = acct.modseq;
    let mut pairs = Vec::with_capacity(found.len());
    let (mut src_changes, mut dst_changes) =
        (FolderChanges::new(a, from), FolderChanges::new(a, to));
    for (uid, rec) in &found {
        if remove_source {
            remove_message(txn, &mut src_changes, &mut src, *uid, rec, modseq)?;
            mailbox::save(txn, a, from, &src)?;
        } else {
            adjust_refs(txn, rec.blob, 1)?;
            acct.quota_used += rec.size;
        }
        // Reload: with from == to the source's counters just changed.
        let mut dst = mailbox::load(txn, a, to)?;
        let new_uid = insert_message(txn, &mut dst_changes, &mut dst, rec.clone(), modseq)?;
        mailbox::save(txn, a, to, &dst)?;
        pairs.push((*uid, new_uid));
    }
    // Source first: with from == to both change the same set.
    src_changes.save(txn)?;
    dst_changes.save(txn)?;
    mailbox::save_account(txn, a, &acct)?;
    let dst = mailbox::load(txn, a, to)?;
    if !pairs.is_empty() {
        if remove_source {
            let gone = pairs.iter().map(|p| p.0).collect();
            txn.publish(Change {
                account: a,
                mailbox: from,
                modseq,
                kind: ChangeKind::Expunged(gone),
            });
        }
        let new = pairs.iter().map(|p| p.1).collect();
        txn.publish(Change {
            account: a,
            mailbox: to,
            modseq,
            kind: ChangeKind::Appended(new),
        });
    }
    Ok(CopyResult {
        uidvalidity: dst.uidvalidity,
        uids: pairs,
    })
}

fn expunge(
    txn: &mut Txn<'_>,
    a: AccountId,
    m: MailboxId,
    set: ExpungeSet,
) -> Result<Vec<u32>, StoreError> {
    let mut acct = mailbox::load_account(txn, a)?;
    let mut mrec = mailbox::load(txn, a, m)?;
    let victims: Vec<(u32, MessageRecord)> = match set {
        ExpungeSet::AllDeleted => {
            let mut out = Vec::new();
            for uid in load_deleted(txn, a, m)?.iter() {
                if let Some(rec) = load_message(txn, a, m, uid)?
                    && rec.flags.deleted()
                {
                    out.push((uid, rec));
                }
            }
            out
        }
        ExpungeSet::DeletedAmong(uids) | ExpungeSet::Exactly(uids) if uids.is_empty() => Vec::new(),
        ExpungeSet::DeletedAmong(uids) => collect(txn, a, m, &uids, true)?,
        ExpungeSet::Exactly(uids) => collect(txn, a, m, &uids, false)?,
    };
    if victims.is_empty() {
        return Ok(Vec::new());
    }
    acct.modseq += 1;
    let mut changes = FolderChanges::new(a, m);
    for (uid, rec) in &victims {
        remove_message(txn, &mut changes, &mut mrec, *uid, rec, acct.modseq)?;
        adjust_refs(txn, rec.blob, -1)?;
        acct.quota_used = acct.quota_used.saturating_sub(rec.size);
    }
    changes.save(txn)?;
    mailbox::save(txn, a, m, &mrec)?;
    mailbox::save_account(txn, a, &acct)?;
    let uids: Vec<u32> = victims.into_iter().map(|(uid, _)| uid).collect();
    txn.publish(Change {
        account: a,
        mailbox: m,
        modseq: acct.modseq,
        kind: ChangeKind::Expunged(uids.clone()),
    });
    Ok(uids)
}

fn collect(
    txn: &Txn<'_>,
    a: AccountId,
    m: MailboxId,
    uids: &[u32],
    only_deleted: bool,
) -> Result<Vec<(u32, MessageRecord)>, StoreError> {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = Vec::with_capacity(sorted.len());
    for uid in sorted {
        if let Some(rec) = load_message(txn, a, m, uid)?
            && (!only_deleted || rec.flags.deleted())
        {
            out.push((uid, rec));
        }
    }
    Ok(out)
}

fn set_flags(
    txn: &mut Txn<'_>,
    a: AccountId,
    m: MailboxId,
    uids: &[u32],
    op: FlagOp,
    with: &Flags,
    unchanged_since: Option<u64>,
) -> Result<(Vec<FlagUpdate>, Vec<u32>), StoreError> {
    let mut acct = mailbox::load_account(txn, a)?;
    let mut mrec = mailbox::load(txn, a, m)?;
    let mut updates = Vec::with_capacity(uids.len());
    let mut modified = Vec::new();
    let modseq = acct.modseq + 1;
    let mut changed_uids = Vec::new();
    let mut changes = FolderChanges::new(a, m);
    for (uid, mut rec) in collect(txn, a, m, uids, false)? {
        // RFC 7162 §3.1.3: messages changed after UNCHANGEDSINCE are left alone.
        if unchanged_since.is_some_and(|since| rec.modseq > since) {
            modified.push(uid);
            continue;
        }
        let (was_seen, was_deleted) = (rec.flags.seen(), rec.flags.deleted());
        let changed = rec.flags.apply(op, with);
        if changed {
            rec.modseq = modseq;
            mrec.unseen =
                (mrec.unseen + u32::from(was_seen)).saturating_sub(u32::from(rec.flags.seen()));
            put_message(txn, &mut changes, uid, &rec, was_deleted)?;
            changed_uids.push(uid);
        }
        updates.push(FlagUpdate {
            uid,
            flags: rec.flags,
            modseq: rec.modseq,
            changed,
        });
    }
    changes.save(txn)?;
    if !changed_uids.is_empty() {
        acct.modseq = modseq;
        mrec.highest_modseq = modseq;
        mailbox::save(txn, a, m, &mrec)?;
        mailbox::save_account(txn, a, &acct)?;
        txn.publish(Change {
            account: a,
            mailbox: m,
            modseq,
            kind: ChangeKind::Flags(changed_uids),
        });
    }
    Ok((updates, modified))
}

/// INBOX rename: every message moves, UIDs kept, into the new folder `to`.
pub(crate) fn move_all(
    txn: &mut Txn<'_>,
    a: AccountId,
    from: MailboxId,
    to: MailboxId,
) -> Result<(), StoreError> {
    let mut acct = mailbox::load_account(txn, a)?;
    let mut src = mailbox::load(txn, a, from)?;
    let mut dst = mailbox::load(txn, a, to)?;
    acct.modseq += 1;
    let mut uids = Vec::new();
    let (mut src_changes, mut dst_changes) =
        (FolderChanges::new(a, from), FolderChanges::new(a, to));
    for (k, v) in txn.scan(keys::CF_MESSAGE, &keys::message_prefix(a, from))? {
        let Some(uid) = keys::uid_of_message_key(&k) else {
            continue;
        };
        let mut rec: MessageRecord = decode("message", &v)?;
        remove_message(txn, &mut src_changes, &mut src, uid, &rec, acct.modseq)?;
        rec.modseq = acct.modseq;
        put_message(txn, &mut dst_changes, uid, &rec, false)?;
        dst.messages += 1;
        dst.unseen += u32::from(!rec.flags.seen());
        dst.size += rec.size;
        uids.push(uid);
    }
    src_changes.save(txn)?;
    dst_changes.save(txn)?;
    dst.uidnext = src.uidnext;
    dst.highest_modseq = acct.modseq;
    mailbox::save(txn, a, from, &src)?;
    mailbox::save(txn, a, to, &dst)?;
    mailbox::save_account(txn, a, &acct)?;
    if !uids.is_empty() {
        txn.publish(Change {
            account: a,
            mailbox: from,
            modseq: acct.modseq,
            kind: ChangeKind::Expunged(uids.clone()),
        });
        txn.publish(Change {
            account: a,
            mailbox: to,
            modseq: acct.modseq,
            kind: ChangeKind::Appended(uids),
        });
    }
    Ok(())
}

/// Drops every message of a folder that is being deleted.
pub(crate) fn delete_mailbox_messages(
    txn: &mut Txn<'_>,
    a: AccountId,
    m: MailboxId,
) -> Result<(), StoreError> {
    let prefix = keys::message_prefix(a, m);
    let mut acct = mailbox::load_account(txn, a)?;
    for (_, v) in txn.scan(keys::CF_MESSAGE, &prefix)? {
        let rec: MessageRecord = decode("message", &v)?;
        adjust_refs(txn, rec.blob, -1)?;
        acct.quota_used = acct.quota_used.saturating_sub(rec.size);
    }
    let end = keys::message_prefix(a, m.wrapping_add(1));
    if m == MailboxId::MAX {
        return Err(StoreError::Corrupt("mailbox id overflow".into()));
    }
    txn.delete_range(keys::CF_MESSAGE, &prefix, &end)?;
    txn.delete_range(keys::CF_CHANGES, &prefix, &end)?;
    txn.delete(keys::CF_MAILBOX, &keys::deleted_uids(a, m))?;
    txn.delete(keys::CF_MAILBOX, &keys::expunge_log(a, m))?;
    mailbox::save_account(txn, a, &acct)
}

/// Drops all mail data of an account.
pub(crate) fn remove_account_data(txn: &mut Txn<'_>, a: AccountId) -> Result<(), StoreError> {
    if txn.get(keys::CF_ACCOUNT, &keys::account(a))?.is_none() {
        return Err(StoreError::NoSuchAccount(a));
    }
    let (from, to) = (keys::account(a), keys::account(a + 1));
    for (_, v) in txn.scan(keys::CF_MESSAGE, &from)? {
        let rec: MessageRecord = decode("message", &v)?;
        adjust_refs(txn, rec.blob, -1)?;
    }
    for cf in [keys::CF_MESSAGE, keys::CF_MAILBOX, keys::CF_CHANGES] {
        txn.delete_range(cf, &from, &to)?;
    }
    txn.delete(keys::CF_ACCOUNT, &from)
}

impl Store {
    /// Stores one copy of the message bytes and a message record in each target
    /// folder, in one synced batch. Per-target results: over quota or a missing
    /// folder fail only that target. The blob is freed if no target took it.
    pub async fn deliver(
        &self,
        mut blob: StagedBlob,
        targets: Vec<Target>,
        internal_date: i64,
    ) -> Result<Vec<Result<Appended, StoreError>>, StoreError> {
        self.submit(false, move |txn| {
            // From here the commit owns the chunks; if it fails, the pending marker
            // makes the next start remove them.
            blob.committed = true;
            deliver(txn, &blob, &targets, 0, internal_date)
        })
        .await
    }

    pub async fn copy(
        &self,
        a: AccountId,
        from: MailboxId,
        uids: Vec<u32>,
        to: MailboxId,
        quota_limit: Option<u64>,
    ) -> Result<CopyResult, StoreError> {
        self.submit(false, move |txn| {
            transfer(txn, a, from, &uids, to, quota_limit, false)
        })
        .await
    }

    pub async fn move_messages(
        &self,
        a: AccountId,
        from: MailboxId,
        uids: Vec<u32>,
        to: MailboxId,
    ) -> Result<CopyResult, StoreError> {
        self.submit(false, move |txn| {
            transfer(txn, a, from, &uids, to, None, true)
        })
        .await
    }

    /// Sets, adds or removes flags; returns every existing message's new flags and
    /// the UIDs left alone because they changed after `unchanged_since`.
    pub async fn set_flags(
        &self,
        a: AccountId,
        m: MailboxId,
        uids: Vec<u32>,
        op: FlagOp,
        flags: Flags,
        unchanged_since: Option<u64>,
    ) -> Result<(Vec<FlagUpdate>, Vec<u32>), StoreError> {
        self.submit(false, move |txn| {
            set_flags(txn, a, m, &uids, op, &flags, unchanged_since)
        })
        .await
    }

    /// How many messages of the folder are flagged `\Deleted` (STATUS DELETED).
    pub async fn deleted_count(&self, a: AccountId, m: MailboxId) -> Result<u32, StoreError> {
        self.read_small(move |r| {
            Ok(decode_deleted(r.get(keys::CF_MAILBOX, &keys::deleted_uids(a, m))?)?.len())
        })
        .await
    }

    /// Removes messages; returns the expunged UIDs in ascending order.
    pub async fn expunge(
        &self,
        a: AccountId,
        m: MailboxId,
        set: ExpungeSet,
    ) -> Result<Vec<u32>, StoreError> {
        self.submit(false, move |txn| expunge(txn, a, m, set)).await
    }
}
