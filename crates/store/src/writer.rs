//! The single writer thread. Every mutation is a job run against a [`Txn`]; the
//! thread packs all jobs that queued up during the previous commit into one
//! `WriteBatch` written with `sync = true`, so concurrent writers share one fsync
//! (group commit) and read-modify-write sequences (UIDNEXT, quota, reference counts)
//! never race. Nothing is acknowledged before its batch is in the synced WAL.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc;

use rocksdb::{DB, IteratorMode, WriteBatch, WriteOptions};
use tokio::sync::oneshot;

use crate::StoreError;
use crate::feed::{Change, Feed};
use crate::index::{Indexes, MessageWrite};
use crate::keys;

/// Upper bound on jobs per batch, so one commit never grows without limit.
const MAX_GROUP: usize = 512;

pub(crate) type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// Stages a job's writes; returns its completion and whether the job succeeded.
pub(crate) type Stager = Box<dyn FnOnce(&mut Txn<'_>) -> (Completion, bool) + Send>;
pub(crate) type KeyValues = Vec<(Vec<u8>, Vec<u8>)>;

pub(crate) struct Job {
    /// Jobs that scan key ranges need every earlier job committed first, because
    /// scans read the database directly rather than through the overlay.
    pub needs_clean: bool,
    pub run: Stager,
}

/// A group of staged writes with read-your-writes for point lookups.
pub(crate) struct Txn<'a> {
    pub db: &'a DB,
    batch: WriteBatch,
    overlay: HashMap<(&'static str, Vec<u8>), Option<Vec<u8>>>,
    changes: Vec<Change>,
    /// For the in-memory copies of open folders, applied once committed.
    message_writes: Vec<MessageWrite>,
}

impl<'a> Txn<'a> {
    fn new(db: &'a DB) -> Self {
        Txn {
            db,
            batch: WriteBatch::default(),
            overlay: HashMap::new(),
            changes: Vec::new(),
            message_writes: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    pub fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.overlay.get(&(cf, key.to_vec())) {
            return Ok(v.clone());
        }
        Ok(self.db.get_cf(handle(self.db, cf)?, key)?)
    }

    pub fn put(&mut self, cf: &'static str, key: &[u8], value: Vec<u8>) -> Result<(), StoreError> {
        self.batch.put_cf(handle(self.db, cf)?, key, &value);
        if cf == keys::CF_MESSAGE
            && let Ok(key) = key.try_into()
        {
            self.message_writes
                .push(MessageWrite::Put(key, value.clone()));
        }
        self.overlay.insert((cf, key.to_vec()), Some(value));
        Ok(())
    }

    pub fn delete(&mut self, cf: &'static str, key: &[u8]) -> Result<(), StoreError> {
        self.batch.delete_cf(handle(self.db, cf)?, key);
        if cf == keys::CF_MESSAGE
            && let Ok(key) = key.try_into()
        {
            self.message_writes.push(MessageWrite::Delete(key));
        }
        self.overlay.insert((cf, key.to_vec()), None);
        Ok(())
    }

    /// Deletes the first `chunks` chunks of a blob. Point deletes, not a range:
    /// every range tombstone in a memtable is re-read by each later read of
    /// the column family, and a busy server frees blobs all the time.
    pub fn delete_chunks(&mut self, blob: crate::BlobId, chunks: u32) -> Result<(), StoreError> {
        let cf = handle(self.db, keys::CF_BLOB)?;
        for index in 0..chunks {
            self.batch.delete_cf(cf, keys::blob_chunk(blob, index));
        }
        Ok(())
    }

    /// Deletes `[from, to)` (a removed folder or account); only for keys no
    /// point lookup in this group reads back.
    pub fn delete_range(
        &mut self,
        cf: &'static str,
        from: &[u8],
        to: &[u8],
    ) -> Result<(), StoreError> {
        self.batch.delete_range_cf(handle(self.db, cf)?, from, to);
        if cf == keys::CF_MESSAGE {
            self.message_writes
                .push(MessageWrite::DeleteRange(from.to_vec(), to.to_vec()));
        }
        Ok(())
    }

    /// All committed keys with `prefix`. Only valid in `needs_clean` jobs, before
    /// their own writes touch the range.
    pub fn scan(&self, cf: &'static str, prefix: &[u8]) -> Result<KeyValues, StoreError> {
        scan_prefix(self.db, cf, prefix)
    }

    /// The first `n` keys with `prefix`, committed and not deleted in this
    /// group; keys this group added are not seen.
    pub fn first_keys(
        &self,
        cf: &'static str,
        prefix: &[u8],
        n: u64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::new();
        let opts = rocksdb::ReadOptions::default();
        for item in range(self.db, cf, prefix, prefix_end(prefix), opts)? {
            if out.len() as u64 >= n {
                break;
            }
            let (k, _) = item?;
            if !matches!(self.overlay.get(&(cf, k.to_vec())), Some(None)) {
                out.push(k.into_vec());
            }
        }
        Ok(out)
    }

    pub fn publish(&mut self, change: Change) {
        self.changes.push(change);
    }
}

pub(crate) fn handle<'d>(db: &'d DB, cf: &str) -> Result<&'d rocksdb::ColumnFamily, StoreError> {
    db.cf_handle(cf)
        .ok_or_else(|| StoreError::Corrupt(format!("column family {cf} missing")))
}

pub(crate) fn scan_prefix(db: &DB, cf: &str, prefix: &[u8]) -> Result<KeyValues, StoreError> {
    let mut out = Vec::new();
    let opts = rocksdb::ReadOptions::default();
    for item in range(db, cf, prefix, prefix_end(prefix), opts)? {
        let (k, v) = item?;
        out.push((k.into_vec(), v.into_vec()));
    }
    Ok(out)
}

/// Iterates keys from `from` up to (not including) `upper`. The bound lets
/// RocksDB stop at the range's end instead of stepping over the deletion
/// markers that follow it.
pub(crate) fn range<'d>(
    db: &'d DB,
    cf: &str,
    from: &[u8],
    upper: Option<Vec<u8>>,
    mut opts: rocksdb::ReadOptions,
) -> Result<rocksdb::DBIteratorWithThreadMode<'d, DB>, StoreError> {
    if let Some(upper) = upper {
        opts.set_iterate_upper_bound(upper);
    }
    Ok(db.iterator_cf_opt(
        handle(db, cf)?,
        opts,
        IteratorMode::From(from, rocksdb::Direction::Forward),
    ))
}

/// The first key after every key that starts with `prefix`; `None` when
/// there is none (an all-0xff prefix).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

pub(crate) fn spawn(
    db: Arc<DB>,
    feed: Arc<Feed>,
    indexes: Arc<Indexes>,
) -> std::io::Result<(mpsc::Sender<Job>, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel::<Job>();
    let handle = std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || run(&db, &feed, &indexes, rx))?;
    Ok((tx, handle))
}

fn run(db: &DB, feed: &Feed, indexes: &Indexes, rx: mpsc::Receiver<Job>) {
    let mut sync = WriteOptions::default();
    sync.set_sync(true);
    // A job taken from the queue that must wait for the current group to commit.
    let mut carried: Option<Job> = None;
    loop {
        let first = match carried.take() {
            Some(job) => job,
            None => match rx.recv() {
                Ok(job) => job,
                Err(_) => return, // every Store handle dropped
            },
        };
        let mut txn = Txn::new(db);
        let mut done = Vec::new();
        // A job that failed after staging writes (an I/O error mid-way) would leave
        // half an operation in the batch: then nothing of this group is written.
        let mut poisoned = false;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            let needs_clean = job.needs_clean;
            let staged_before = txn.batch.len();
            let (complete, ok) = (job.run)(&mut txn);
            poisoned |= !ok && txn.batch.len() != staged_before;
            done.push(complete);
            if needs_clean || done.len() >= MAX_GROUP {
                break;
            }
            match rx.try_recv() {
                Ok(job) if job.needs_clean && !txn.is_empty() => carried = Some(job),
                Ok(job) => next = Some(job),
                Err(_) => {}
            }
        }
        let Txn {
            batch,
            changes,
            message_writes,
            ..
        } = txn;
        let started = std::time::Instant::now();
        let result = if poisoned {
            Err(StoreError::Aborted)
        } else if batch.is_empty() {
            Ok(())
        } else {
            db.write_opt(batch, &sync).map_err(StoreError::from)
        };
        metrics::histogram!("posthorn_store_commit_seconds").record(started.elapsed());
        if let Err(e) = &result {
            tracing::error!(error = %e, jobs = done.len(), "store commit failed");
        }
        // Update open folders' copies, then publish, then acknowledge: whoever
        // sees a write succeed or hears of it reads it from memory too, and
        // can rely on every subscriber having been told.
        if result.is_ok() {
            indexes.apply(&message_writes);
            for change in changes {
                feed.publish(change);
            }
        }
        for complete in done {
            complete(result.clone());
        }
    }
}

/// Runs once at open, before the writer starts: removes blobs whose delivery never
/// committed (the process died between writing chunks and the commit).
pub(crate) fn remove_pending_blobs(db: &DB) -> Result<usize, StoreError> {
    let pending = scan_prefix(db, keys::CF_META, keys::META_PENDING_BLOB)?;
    if pending.is_empty() {
        return Ok(0);
    }
    let mut batch = WriteBatch::default();
    for (k, _) in &pending {
        let Some(id) = k
            .get(keys::META_PENDING_BLOB.len()..)
            .and_then(keys::be_u64)
        else {
            continue;
        };
        batch.delete_range_cf(
            handle(db, keys::CF_BLOB)?,
            keys::blob_chunk(id, 0),
            keys::blob_chunk(id + 1, 0),
        );
        batch.delete_cf(handle(db, keys::CF_META)?, k);
    }
    let mut sync = WriteOptions::default();
    sync.set_sync(true);
    db.write_opt(batch, &sync)?;
    Ok(pending.len())
}

/// Wraps a job closure and its reply channel into a [`Job`].
pub(crate) fn job<T, F>(needs_clean: bool, f: F) -> (Job, oneshot::Receiver<Result<T, StoreError>>)
where
    T: Send + 'static,
    F: FnOnce(&mut Txn<'_>) -> Result<T, StoreError> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let job = Job {
        needs_clean,
        run: Box::new(move |txn| {
            let staged = f(txn);
            let ok = staged.is_ok();
            let complete: Completion = Box::new(move |commit: Result<(), StoreError>| {
                let _ = tx.send(commit.and(staged));
            });
            (complete, ok)
        }),
    };
    (job, rx)
}
