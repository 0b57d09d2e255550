//! The RocksDB message store: accounts' folders, messages with UIDs, flags and
//! modseq, chunked reference-counted message bytes, exact quota counters and a change
//! feed. All writes go through one writer thread with group commit (see `writer`).
//! Reads never wait for the disk on the reactor: small ones try memtables and the
//! block cache first and go to tokio's blocking pool only if that is not enough
//! (see `read`); large ones always run there.

mod backup;
mod blob;
mod feed;
mod index;
mod keys;
mod mailbox;
mod message;
mod queue;
mod read;
mod records;
mod verify;
mod writer;

use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};

use bytes::Bytes;
use rocksdb::{ColumnFamilyDescriptor, DB, IteratorMode, Options};
use tokio::sync::broadcast;

pub use blob::{BlobReader, BlobWriter, CHUNK_SIZE, StagedBlob};
pub use feed::{Change, ChangeKind};
pub use index::FolderHold;
pub use mailbox::{INBOX, Mailbox};
pub use message::{Appended, CopyResult, ExpungeSet, FlagUpdate, MailboxRef, Target};
pub use queue::{Delivered, Delivery, QueueId, QueuedMessage, QueuedRecipient, Settle};
pub use records::{AccountRecord, FlagOp, Flags, MailboxRecord, MessageRecord, SpecialUse};
pub use summary::{Limits as SummaryLimits, Summary};
pub use verify::VerifyReport;

use records::{BlobRecord, decode};
use writer::{Job, handle, job, scan_prefix};

pub type AccountId = u64;
pub type MailboxId = u32;
pub type BlobId = u64;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(String),
    #[error(
        "database is locked by another process: {0} (is `posthorn serve` running? admin commands reach it through its management socket)"
    )]
    Locked(String),
    #[error("store corrupt: {0}")]
    Corrupt(String),
    #[error("I/O error: {0}")]
    Io(String),
    #[error("store was written by a newer posthorn (schema {found}, this build knows {known})")]
    SchemaTooNew { found: u32, known: u32 },
    #[error("no such account: {0}")]
    NoSuchAccount(AccountId),
    #[error("no such folder: {0}")]
    NoSuchMailbox(String),
    #[error("folder already exists: {0}")]
    MailboxExists(String),
    #[error("folder has subfolders, delete them first: {0}")]
    HasChildren(String),
    #[error("invalid folder name: {0}")]
    InvalidName(String),
    #[error("INBOX cannot be deleted")]
    CannotDeleteInbox,
    #[error("quota exceeded")]
    OverQuota,
    #[error("modified since UNCHANGEDSINCE")]
    Modified,
    #[error("commit aborted after an error in the same batch")]
    Aborted,
    #[error("store is shut down")]
    Closed,
}

impl From<rocksdb::Error> for StoreError {
    fn from(e: rocksdb::Error) -> Self {
        StoreError::Db(e.into_string())
    }
}

/// What a folder's expunge log says about the time after a modseq.
#[derive(Debug, PartialEq, Eq)]
pub enum Expunged {
    /// These UIDs were expunged since.
    Logged(Vec<u32>),
    /// The log was pruned and no longer reaches back that far: any UID below
    /// `uidnext` that is not in the folder now may have been.
    Pruned { uidnext: u32 },
}

/// One write of the directory's key space; the `directory` crate owns its layout.
#[derive(Clone, Debug)]
pub enum DirOp {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Limits for the MIME summary parsed at delivery.
    pub summary_limits: summary::Limits,
    /// Memtable size of the blob column family; bounds the memory that message
    /// bytes occupy before they are flushed to SST files.
    pub blob_write_buffer: usize,
    /// RocksDB's block cache, shared by all column families: recently read
    /// message bytes and records are served from it without a system call.
    pub block_cache: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            summary_limits: summary::Limits::default(),
            blob_write_buffer: 16 << 20,
            block_cache: 256 << 20,
        }
    }
}

/// Message records a read may cover and still be tried on the calling thread
/// (a few hundred microseconds): a SEARCH of a typical folder is one.
const SMALL_LIST: u64 = 2048;
/// Summaries (larger, with strings to decode) likewise.
const SMALL_SUMMARIES: usize = 64;

/// Memtable size of the column families whose records are rewritten all the
/// time: messages (about 10,000 records), folders and accounts.
const HOT_WRITE_BUFFER: usize = 1 << 20;

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<DB>,
    /// `None` only while dropping.
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
    feed: Arc<feed::Feed>,
    indexes: Arc<index::Indexes>,
    next_blob: AtomicU64,
    opts: StoreOptions,
}

impl Store {
    /// Opens (or creates) the store, migrates its schema, removes the chunks of
    /// deliveries that never committed, and starts the writer thread.
    pub fn open(path: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        std::fs::create_dir_all(path)
            .map_err(|e| StoreError::Io(format!("{}: {e}", path.display())))?;
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_keep_log_file_num(5);
        db_opts.increase_parallelism(2);
        // Column families written rarely would otherwise keep every WAL alive
        // (by default up to gigabytes, all replayed at the next start); past
        // this size they are flushed.
        db_opts.set_max_total_wal_size(64 << 20);
        let cache = rocksdb::Cache::new_lru_cache(opts.block_cache);
        let cfs = keys::ALL_CFS.iter().map(|name| {
            let mut o = Options::default();
            let mut table = rocksdb::BlockBasedOptions::default();
            table.set_block_cache(&cache);
            if *name != keys::CF_BLOB {
                // Point lookups skip files that cannot hold the key.
                table.set_bloom_filter(10.0, false);
            }
            o.set_block_based_table_factory(&table);
            if *name == keys::CF_BLOB {
                o.set_write_buffer_size(opts.blob_write_buffer);
                o.set_max_write_buffer_number(3);
            } else {
                if *name == keys::CF_MESSAGE {
                    // Every flag change writes a new version of a record; a scan steps
                    // over all versions still in the memtable, so keep it small: a
                    // flush keeps only the newest version.
                    o.set_write_buffer_size(HOT_WRITE_BUFFER);
                    // Files dense with expunged records are compacted early, which
                    // drops the deletion markers that scans would step over.
                    o.add_compact_on_deletion_collector_factory(1024, 256, 0.5);
                }
                if *name == keys::CF_MAILBOX || *name == keys::CF_ACCOUNT {
                    // A few small records rewritten by every write: a large memtable
                    // would hold millions of old versions that each lookup has to
                    // seek through.
                    o.set_write_buffer_size(HOT_WRITE_BUFFER);
                }
                o.set_compression_type(rocksdb::DBCompressionType::Lz4);
            }
            ColumnFamilyDescriptor::new(*name, o)
        });
        let db = DB::open_cf_descriptors(&db_opts, path, cfs).map_err(|e| {
            let msg = e.into_string();
            if msg.contains("lock") {
                StoreError::Locked(format!("{}: {msg}", path.display()))
            } else {
                StoreError::Db(msg)
            }
        })?;
        migrate(&db)?;
        let removed = writer::remove_pending_blobs(&db)?;
        if removed > 0 {
            tracing::info!(removed, "removed chunks of deliveries that never committed");
        }
        let next_blob = last_blob_id(&db)? + 1;
        let db = Arc::new(db);
        let feed = Arc::new(feed::Feed::default());
        let indexes = Arc::new(index::Indexes::default());
        let (jobs, writer) = writer::spawn(db.clone(), feed.clone(), indexes.clone())
            .map_err(|e| StoreError::Io(e.to_string()))?;
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                jobs: Some(jobs),
                writer: Some(writer),
                feed,
                indexes,
                next_blob: AtomicU64::new(next_blob),
                opts,
            }),
        })
    }

    /// Subscribes to the change feed of one account.
    pub fn subscribe(&self, account: AccountId) -> broadcast::Receiver<Arc<Change>> {
        self.inner.feed.subscribe(account)
    }

    /// Flushes memtables to SST files (used at shutdown; every write is already
    /// durable through the synced WAL).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.read(|db| {
            for cf in keys::ALL_CFS {
                db.flush_cf(handle(db, cf)?)?;
            }
            Ok(())
        })
        .await
    }

    async fn submit<T, F>(&self, needs_clean: bool, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut writer::Txn<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (job, reply) = job(needs_clean, f);
        let jobs = self.inner.jobs.as_ref().ok_or(StoreError::Closed)?;
        jobs.send(job).map_err(|_| StoreError::Closed)?;
        reply.await.map_err(|_| StoreError::Closed)?
    }

    fn db(&self) -> Arc<DB> {
        self.inner.db.clone()
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&DB) -> Result<T, StoreError> + Send + 'static,
    {
        let db = self.inner.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StoreError::Io(e.to_string()))?
    }

    // ---- directory key space -------------------------------------------------

    pub async fn dir_get(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>, StoreError> {
        self.read_small(move |r| r.get(keys::CF_DIR, &key)).await
    }

    /// Every directory record whose key starts with `prefix`, sorted by key.
    pub async fn dir_scan(&self, prefix: Vec<u8>) -> Result<writer::KeyValues, StoreError> {
        self.read(move |db| scan_prefix(db, keys::CF_DIR, &prefix))
            .await
    }

    /// Applies directory writes atomically and durably.
    pub async fn dir_write(&self, ops: Vec<DirOp>) -> Result<(), StoreError> {
        self.submit(false, move |txn| apply_dir_ops(txn, ops)).await
    }

    /// Allocates an account id, then writes `ops(id)`, the account's counters and its
    /// default folders in one atomic, synced batch.
    pub async fn create_account<F>(&self, ops: F) -> Result<AccountId, StoreError>
    where
        F: FnOnce(AccountId) -> Vec<DirOp> + Send + 'static,
    {
        self.submit(false, move |txn| {
            let id = match txn.get(keys::CF_META, keys::META_NEXT_ACCOUNT)? {
                Some(v) => {
                    keys::be_u64(&v).ok_or_else(|| StoreError::Corrupt("next_account_id".into()))?
                }
                None => 1,
            };
            mailbox::create_defaults(txn, id)?;
            txn.put(
                keys::CF_META,
                keys::META_NEXT_ACCOUNT,
                (id + 1).to_be_bytes().to_vec(),
            )?;
            apply_dir_ops(txn, ops(id))?;
            Ok(id)
        })
        .await
    }

    /// Deletes every folder and message of the account (dropping blob references)
    /// and applies `ops`, atomically.
    pub async fn remove_account(&self, id: AccountId, ops: Vec<DirOp>) -> Result<(), StoreError> {
        self.submit(true, move |txn| {
            message::remove_account_data(txn, id)?;
            apply_dir_ops(txn, ops)
        })
        .await
    }

    pub async fn account(&self, id: AccountId) -> Result<Option<AccountRecord>, StoreError> {
        self.read_small(move |r| {
            r.get(keys::CF_ACCOUNT, &keys::account(id))?
                .map(|v| decode("account", &v))
                .transpose()
        })
        .await
    }

    /// Bytes of all messages in all folders of the account.
    pub async fn quota_used(&self, id: AccountId) -> Result<u64, StoreError> {
        Ok(self
            .account(id)
            .await?
            .ok_or(StoreError::NoSuchAccount(id))?
            .quota_used)
    }

    // ---- messages --------------------------------------------------------------

    /// Starts receiving a message; see [`BlobWriter`].
    pub fn blob_writer(&self) -> BlobWriter {
        let id = self.inner.next_blob.fetch_add(1, Ordering::Relaxed);
        BlobWriter::new(self.inner.db.clone(), id, self.inner.opts.summary_limits)
    }

    /// Message records with UIDs in `uids`, in UID order.
    pub async fn list(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uids: RangeInclusive<u32>,
    ) -> Result<Vec<(u32, MessageRecord)>, StoreError> {
        self.list_where(account, mailbox, uids, |_, _| true).await
    }

    /// Like `list`, but only the records `keep` accepts: SEARCH copies its
    /// hits, not the whole folder.
    pub async fn list_where<F>(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uids: RangeInclusive<u32>,
        keep: F,
    ) -> Result<Vec<(u32, MessageRecord)>, StoreError>
    where
        F: Fn(u32, &MessageRecord) -> bool + Send + Sync + 'static,
    {
        let folder = (account, mailbox);
        let small = u64::from(*uids.end()).saturating_sub(u64::from(*uids.start())) < SMALL_LIST;
        let keep = Arc::new(keep);
        if small && let Some(list) = self.inner.indexes.range(folder, uids.clone(), &*keep) {
            return Ok(list);
        }
        let wanted = uids.clone();
        let filter = keep.clone();
        let read = move |r: &read::Reader<'_>| {
            let from = keys::message(account, mailbox, *uids.start());
            let upper = match uids.end().checked_add(1) {
                Some(next) => Some(keys::message(account, mailbox, next).to_vec()),
                None => writer::prefix_end(&keys::message_prefix(account, mailbox)),
            };
            let mut out = Vec::new();
            r.each(keys::CF_MESSAGE, &from, upper, |k, v| {
                let uid = keys::uid_of_message_key(k)
                    .ok_or_else(|| StoreError::Corrupt("message key".into()))?;
                let rec = decode("message", v)?;
                if filter(uid, &rec) {
                    out.push((uid, rec));
                }
                Ok(())
            })?;
            Ok(out)
        };
        if small {
            self.read_small(read).await
        } else {
            // A long copy from memory is CPU work the reactor should not wait on either.
            let indexes = self.inner.indexes.clone();
            self.read_large(move |r| match indexes.range(folder, wanted, &*keep) {
                Some(list) => Ok(list),
                None => read(r),
            })
            .await
        }
    }

    /// Every message of a folder, in UID order.
    pub async fn folder_messages(
        &self,
        account: AccountId,
        mailbox: MailboxId,
    ) -> Result<Vec<(u32, MessageRecord)>, StoreError> {
        let indexes = self.inner.indexes.clone();
        self.read(
            move |db| match indexes.range((account, mailbox), 1..=u32::MAX, |_, _| true) {
                Some(list) => Ok(list),
                None => scan_folder(db, account, mailbox),
            },
        )
        .await
    }

    /// Keeps the folder's message records in memory while the hold lives, so
    /// `list`, `folder_messages` and `message` are answered without reading
    /// the database (see `index`). Returns once they are loaded.
    pub async fn hold_folder(
        &self,
        account: AccountId,
        mailbox: MailboxId,
    ) -> Result<FolderHold, StoreError> {
        let (index, fresh) = self.inner.indexes.register((account, mailbox));
        if fresh {
            // Loaded on the pool even if this caller goes away: other holders
            // may be waiting for the copy to become usable.
            let db = self.db();
            let loading = index.clone();
            tokio::task::spawn_blocking(move || {
                loading.finish_load(scan_folder(&db, account, mailbox));
            })
            .await
            .map_err(|e| StoreError::Io(e.to_string()))?;
        }
        Ok(FolderHold::new(index))
    }

    pub async fn message(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uid: u32,
    ) -> Result<Option<MessageRecord>, StoreError> {
        if let Some(rec) = self.inner.indexes.get((account, mailbox), uid) {
            return Ok(rec);
        }
        self.read_small(move |r| {
            r.get(keys::CF_MESSAGE, &keys::message(account, mailbox, uid))?
                .map(|v| decode("message", &v))
                .transpose()
        })
        .await
    }

    /// The MIME summary parsed at delivery.
    pub async fn summary(&self, blob: BlobId) -> Result<Summary, StoreError> {
        self.read_small(move |r| {
            let v = r
                .get(keys::CF_BLOBMETA, &message::summary_key(blob))?
                .ok_or_else(|| StoreError::Corrupt(format!("summary of blob {blob} missing")))?;
            decode("summary", &v)
        })
        .await
    }

    /// The summaries of several blobs in one read (FETCH ENVELOPE over many
    /// messages), in the order asked.
    pub async fn summaries(&self, blobs: Vec<BlobId>) -> Result<Vec<Summary>, StoreError> {
        let small = blobs.len() <= SMALL_SUMMARIES;
        let read = move |r: &read::Reader<'_>| {
            let keys = blobs.iter().map(|&b| message::summary_key(b).to_vec());
            r.multi_get(keys::CF_BLOBMETA, keys)?
                .into_iter()
                .zip(&blobs)
                .map(|(v, blob)| {
                    let v = v.ok_or_else(|| {
                        StoreError::Corrupt(format!("summary of blob {blob} missing"))
                    })?;
                    decode("summary", &v)
                })
                .collect()
        };
        if small {
            self.read_small(read).await
        } else {
            self.read_large(read).await
        }
    }

    pub async fn open_blob(&self, blob: BlobId) -> Result<BlobReader, StoreError> {
        let rec: BlobRecord = self
            .read_small(move |r| {
                let v = r
                    .get(keys::CF_BLOBMETA, &keys::blob(blob))?
                    .ok_or_else(|| StoreError::Corrupt(format!("blob {blob} missing")))?;
                decode("blob", &v)
            })
            .await?;
        Ok(BlobReader::new(self.clone(), blob, rec.size, rec.chunks))
    }

    /// One chunk of a committed blob.
    pub(crate) async fn read_chunk(&self, blob: BlobId, index: u32) -> Result<Bytes, StoreError> {
        self.read_small(move |r| {
            r.get(keys::CF_BLOB, &keys::blob_chunk(blob, index))?
                .map(Bytes::from)
                .ok_or_else(|| StoreError::Corrupt(format!("blob {blob} chunk {index} missing")))
        })
        .await
    }

    /// What was expunged from the mailbox after `modseq` (QRESYNC VANISHED).
    pub async fn expunged_since(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        modseq: u64,
    ) -> Result<Expunged, StoreError> {
        self.read(move |db| {
            let snap = db.snapshot();
            let cf = handle(db, keys::CF_MAILBOX)?;
            let log: records::ExpungeLog =
                match snap.get_cf(cf, keys::expunge_log(account, mailbox))? {
                    Some(v) => decode("expunge log", &v)?,
                    None => records::ExpungeLog::default(),
                };
            if modseq < log.floor {
                let uidnext = match snap.get_cf(cf, keys::mailbox(account, mailbox))? {
                    Some(v) => decode::<MailboxRecord>("mailbox", &v)?.uidnext,
                    None => 1,
                };
                return Ok(Expunged::Pruned { uidnext });
            }
            let upper = writer::prefix_end(&keys::message_prefix(account, mailbox));
            let from = keys::change(account, mailbox, modseq.saturating_add(1), 0);
            let mut out = Vec::new();
            let mut opts = rocksdb::ReadOptions::default();
            opts.set_snapshot(&snap);
            for item in writer::range(db, keys::CF_CHANGES, &from, upper, opts)? {
                let (k, _) = item?;
                if let Some(uid) = k.get(20..).and_then(keys::be_u32) {
                    out.push(uid);
                }
            }
            Ok(Expunged::Logged(out))
        })
        .await
    }

    /// Recomputes quota counters, folder counters and blob reference counts and
    /// reports every mismatch (`posthorn verify`).
    pub async fn verify(&self) -> Result<VerifyReport, StoreError> {
        self.read(verify::verify).await
    }
}

impl Drop for Inner {
    /// Lets the writer finish queued jobs, so the database is closed (and its lock
    /// released) when the last handle goes.
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn apply_dir_ops(txn: &mut writer::Txn<'_>, ops: Vec<DirOp>) -> Result<(), StoreError> {
    for op in ops {
        match op {
            DirOp::Put(k, v) => txn.put(keys::CF_DIR, &k, v)?,
            DirOp::Delete(k) => txn.delete(keys::CF_DIR, &k)?,
        }
    }
    Ok(())
}

/// Writes the schema version into a new store; refuses a store from the future.
/// Later layout changes add forward-only steps here.
fn migrate(db: &DB) -> Result<(), StoreError> {
    let meta = handle(db, keys::CF_META)?;
    let mut batch = rocksdb::WriteBatch::default();
    match db.get_cf(meta, keys::META_SCHEMA)? {
        None => {}
        Some(v) => {
            let found =
                keys::be_u32(&v).ok_or_else(|| StoreError::Corrupt("schema_version".into()))?;
            if found > keys::SCHEMA_VERSION {
                return Err(StoreError::SchemaTooNew {
                    found,
                    known: keys::SCHEMA_VERSION,
                });
            }
            if found == keys::SCHEMA_VERSION {
                return Ok(());
            }
            if found < 2 {
                index_deleted(db, &mut batch)?;
            }
            tracing::info!(
                from = found,
                to = keys::SCHEMA_VERSION,
                "store schema upgraded"
            );
        }
    }
    batch.put_cf(meta, keys::META_SCHEMA, keys::SCHEMA_VERSION.to_be_bytes());
    let mut o = rocksdb::WriteOptions::default();
    o.set_sync(true);
    db.write_opt(batch, &o)?;
    Ok(())
}

/// Schema 2: each folder's set of `\Deleted` UIDs, built from the message records.
fn index_deleted(db: &DB, batch: &mut rocksdb::WriteBatch) -> Result<(), StoreError> {
    let mut sets: std::collections::BTreeMap<[u8; 13], records::UidRanges> = Default::default();
    for item in db.iterator_cf(handle(db, keys::CF_MESSAGE)?, IteratorMode::Start) {
        let (k, v) = item?;
        let rec: MessageRecord = decode("message", &v)?;
        if let (true, Some(a), Some(m), Some(uid)) = (
            rec.flags.deleted(),
            keys::be_u64(&k),
            k.get(8..).and_then(keys::be_u32),
            keys::uid_of_message_key(&k),
        ) {
            sets.entry(keys::deleted_uids(a, m))
                .or_default()
                .insert(uid);
        }
    }
    let cf = handle(db, keys::CF_MAILBOX)?;
    for (key, set) in sets {
        batch.put_cf(cf, key, records::encode(&set));
    }
    Ok(())
}

/// Every message of a folder, in UID order. The folder's message count and
/// the records are read under one snapshot and the scan stops at that count,
/// so it never steps over the deletion markers that expunged messages leave
/// after the last one until compaction removes them.
fn scan_folder(
    db: &DB,
    account: AccountId,
    mailbox: MailboxId,
) -> Result<Vec<(u32, MessageRecord)>, StoreError> {
    let snap = db.snapshot();
    let Some(folder) = snap.get_cf(
        handle(db, keys::CF_MAILBOX)?,
        keys::mailbox(account, mailbox),
    )?
    else {
        return Ok(Vec::new());
    };
    let count = decode::<MailboxRecord>("mailbox", &folder)?.messages as usize;
    let prefix = keys::message_prefix(account, mailbox);
    let mut opts = rocksdb::ReadOptions::default();
    opts.set_snapshot(&snap);
    let mut out = Vec::with_capacity(count);
    let iter = writer::range(
        db,
        keys::CF_MESSAGE,
        &prefix,
        writer::prefix_end(&prefix),
        opts,
    )?;
    for item in iter.take(count) {
        let (k, v) = item?;
        let uid = keys::uid_of_message_key(&k)
            .ok_or_else(|| StoreError::Corrupt("message key".into()))?;
        out.push((uid, decode("message", &v)?));
    }
    Ok(out)
}

/// The highest blob id in use, so new ids never reuse a live one.
fn last_blob_id(db: &DB) -> Result<BlobId, StoreError> {
    let mut last = 0;
    for cf in [keys::CF_BLOB, keys::CF_BLOBMETA] {
        if let Some(item) = db.iterator_cf(handle(db, cf)?, IteratorMode::End).next() {
            let (k, _) = item?;
            last = last.max(keys::be_u64(&k).unwrap_or(0));
        }
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store in `dir` with one new account; returns it, the account and
    /// its INBOX.
    pub(crate) async fn with_account(dir: &Path) -> (Store, AccountId, MailboxId) {
        let store = Store::open(dir, StoreOptions::default()).unwrap();
        let a = store.create_account(|_| Vec::new()).await.unwrap();
        let inbox = store.mailbox(a, INBOX).await.unwrap().unwrap().id;
        (store, a, inbox)
    }

    /// Delivers `bytes` into one folder with the system flags `system`.
    pub(crate) async fn deliver(
        store: &Store,
        a: AccountId,
        m: MailboxId,
        system: u8,
        bytes: &[u8],
    ) {
        let mut w = store.blob_writer();
        w.write(bytes).await.unwrap();
        let target = Target {
            account: a,
            mailbox: MailboxRef::Id(m),
            flags: Flags {
                system,
                keywords: Vec::new(),
            },
            quota_limit: None,
        };
        store.deliver(w.finish(), vec![target], 0).await.unwrap();
    }

    fn raw(path: &Path) -> DB {
        DB::open_cf(&Options::default(), path, keys::ALL_CFS).expect("open raw")
    }

    #[tokio::test]
    async fn schema_1_stores_get_their_deleted_sets_and_verify_checks_them() {
        let dir = tempfile::TempDir::new().unwrap();
        let (a, inbox) = {
            let (store, a, inbox) = with_account(dir.path()).await;
            for n in 0..4u8 {
                let system = if n % 2 == 0 { Flags::DELETED } else { 0 };
                deliver(&store, a, inbox, system, &[b'x', n, b'\r', b'\n']).await;
            }
            (a, inbox)
        };
        // What a schema 1 store looks like: no deleted sets.
        {
            let db = raw(dir.path());
            let mailbox_cf = handle(&db, keys::CF_MAILBOX).unwrap();
            db.delete_cf(mailbox_cf, keys::deleted_uids(a, inbox))
                .unwrap();
            let meta = handle(&db, keys::CF_META).unwrap();
            db.put_cf(meta, keys::META_SCHEMA, 1u32.to_be_bytes())
                .unwrap();
        }
        {
            let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
            assert_eq!(store.deleted_count(a, inbox).await.unwrap(), 2);
            assert!(store.verify().await.unwrap().problems.is_empty());
            let gone = store
                .expunge(a, inbox, ExpungeSet::AllDeleted)
                .await
                .unwrap();
            assert_eq!(gone, vec![1, 3]);
        }
        // A set that disagrees with the flags is reported.
        {
            let db = raw(dir.path());
            let mailbox_cf = handle(&db, keys::CF_MAILBOX).unwrap();
            let mut wrong = records::UidRanges::default();
            wrong.insert(2);
            db.put_cf(
                mailbox_cf,
                keys::deleted_uids(a, inbox),
                records::encode(&wrong),
            )
            .unwrap();
        }
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let problems = store.verify().await.unwrap().problems;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("\\Deleted set"), "{problems:?}");
    }

    /// After a restart nothing is in memory: the first, memory-only try of a
    /// small read misses, and the read is answered from disk on the pool.
    #[tokio::test]
    async fn small_reads_fall_back_to_the_disk() {
        let dir = tempfile::TempDir::new().unwrap();
        let (a, inbox) = {
            let (store, a, inbox) = with_account(dir.path()).await;
            deliver(&store, a, inbox, 0, b"Subject: x\r\n\r\nbody\r\n").await;
            store.flush().await.unwrap();
            (a, inbox)
        };
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let db = store.db();
        let memory = read::Reader::new(&db, true);
        assert!(
            memory
                .get(keys::CF_MESSAGE, &keys::message(a, inbox, 1))
                .is_err()
        );
        assert!(memory.missed());
        let rec = store.message(a, inbox, 1).await.unwrap().unwrap();
        assert_eq!(
            store.list(a, inbox, 1..=1).await.unwrap(),
            vec![(1, rec.clone())]
        );
        let mut reader = store.open_blob(rec.blob).await.unwrap();
        let body = reader.next_chunk().await.unwrap().unwrap();
        assert_eq!(&body[..], b"Subject: x\r\n\r\nbody\r\n");
    }

    /// With the test limits (pruned past 8 entries down to 4), a client whose
    /// state predates the log is told so, and later ones get the log.
    #[tokio::test]
    async fn the_expunge_log_is_pruned_and_says_so() {
        let dir = tempfile::TempDir::new().unwrap();
        let (store, a, inbox) = with_account(dir.path()).await;
        let other = store.create_mailbox(a, "Other").await.unwrap();
        for m in [
            inbox, inbox, inbox, inbox, inbox, inbox, inbox, inbox, inbox, other,
        ] {
            deliver(&store, a, m, 0, b"x\r\n").await;
        }
        let start = store
            .mailbox(a, INBOX)
            .await
            .unwrap()
            .unwrap()
            .info
            .highest_modseq;
        let mut modseqs = Vec::new();
        for uid in 1..=9 {
            store
                .expunge(a, inbox, ExpungeSet::Exactly(vec![uid]))
                .await
                .unwrap();
            modseqs.push(
                store
                    .mailbox(a, INBOX)
                    .await
                    .unwrap()
                    .unwrap()
                    .info
                    .highest_modseq,
            );
            if uid == 8 {
                // Eight entries: all kept.
                let logged = store.expunged_since(a, inbox, start).await.unwrap();
                assert_eq!(logged, Expunged::Logged((1..=8).collect()));
            }
        }
        // The ninth pruned the oldest five.
        let pruned = store.expunged_since(a, inbox, start).await.unwrap();
        assert_eq!(pruned, Expunged::Pruned { uidnext: 10 });
        let since_fifth = store.expunged_since(a, inbox, modseqs[4]).await.unwrap();
        assert_eq!(since_fifth, Expunged::Logged(vec![6, 7, 8, 9]));
        let db = store.db();
        let prefix = keys::message_prefix(a, inbox);
        assert_eq!(
            scan_prefix(&db, keys::CF_CHANGES, &prefix).unwrap().len(),
            4
        );
        // A deleted folder leaves no log behind.
        store
            .expunge(a, other, ExpungeSet::Exactly(vec![1]))
            .await
            .unwrap();
        store.delete_mailbox(a, "Other").await.unwrap();
        let cf = handle(&db, keys::CF_MAILBOX).unwrap();
        assert!(
            db.get_cf(cf, keys::expunge_log(a, other))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn prefix_end_is_the_first_key_after_the_prefix() {
        assert_eq!(writer::prefix_end(&[1, 2, 3]), Some(vec![1, 2, 4]));
        assert_eq!(writer::prefix_end(&[1, 0xff, 0xff]), Some(vec![2]));
        assert_eq!(writer::prefix_end(&[0xff, 0xff]), None);
    }
}
