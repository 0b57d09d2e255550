//! Small reads tried on the calling thread first. A read that finds its data
//! in a memtable or RocksDB's block cache needs microseconds, less than the
//! two thread switches of a trip to tokio's blocking pool; one that would have
//! to wait for the disk is stopped by RocksDB (`ReadTier::BlockCache` makes it
//! return `Incomplete` instead of reading a file) and run again on the pool.

use std::cell::Cell;

use rocksdb::{DB, ErrorKind, ReadOptions, ReadTier};

use crate::writer::handle;
use crate::{Store, StoreError};

pub(crate) struct Reader<'a> {
    db: &'a DB,
    /// Reads may use memtables and the block cache only.
    memory_only: bool,
    /// A read needed the disk: the result is void, run again off the reactor.
    missed: Cell<bool>,
}

impl<'a> Reader<'a> {
    pub fn new(db: &'a DB, memory_only: bool) -> Self {
        Reader {
            db,
            memory_only,
            missed: Cell::new(false),
        }
    }

    /// Whether a read needed the disk (its result is then an error).
    pub fn missed(&self) -> bool {
        self.missed.get()
    }

    fn options(&self) -> ReadOptions {
        let mut opts = ReadOptions::default();
        if self.memory_only {
            opts.set_read_tier(ReadTier::BlockCache);
        }
        opts
    }

    fn check<T>(&self, result: Result<T, rocksdb::Error>) -> Result<T, StoreError> {
        result.map_err(|e| {
            if e.kind() == ErrorKind::Incomplete {
                self.missed.set(true);
            }
            StoreError::from(e)
        })
    }

    pub fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let cf = handle(self.db, cf)?;
        self.check(self.db.get_cf_opt(cf, key, &self.options()))
    }

    /// Values of `keys` in one call, in the order asked.
    pub fn multi_get(
        &self,
        cf: &str,
        keys: impl IntoIterator<Item = Vec<u8>>,
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let cf = handle(self.db, cf)?;
        let keys: Vec<_> = keys.into_iter().map(|k| (cf, k)).collect();
        self.db
            .multi_get_cf_opt(keys, &self.options())
            .into_iter()
            .map(|v| self.check(v))
            .collect()
    }

    /// Visits the keys from `from` up to (not including) `upper` in order,
    /// without copying each entry out of RocksDB.
    pub fn each(
        &self,
        cf: &str,
        from: &[u8],
        upper: Option<Vec<u8>>,
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut opts = self.options();
        if let Some(upper) = upper {
            opts.set_iterate_upper_bound(upper);
        }
        let mut it = self.db.raw_iterator_cf_opt(handle(self.db, cf)?, opts);
        it.seek(from);
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            visit(k, v)?;
            it.next();
        }
        self.check(it.status())
    }
}

impl Store {
    /// Runs a read of a few records: first here, from memory only; again on
    /// the blocking pool if that was not enough.
    pub(crate) async fn read_small<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Reader<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let db = self.db();
        let first = Reader::new(&db, true);
        match f(&first) {
            Err(_) if first.missed() => {}
            done => return done,
        }
        metrics::counter!("posthorn_store_reads_from_disk_total").increment(1);
        tokio::task::spawn_blocking(move || f(&Reader::new(&db, false)))
            .await
            .map_err(|e| StoreError::Io(e.to_string()))?
    }

    /// Runs a read that may be long (a whole folder) on the blocking pool.
    pub(crate) async fn read_large<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Reader<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.read(move |db| f(&Reader::new(db, false))).await
    }
}
