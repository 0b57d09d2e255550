//! Consistent copies of the whole store while it runs: a RocksDB checkpoint
//! (every column family at one sequence number; SST files hard-linked when the
//! target is on the same file system, copied otherwise, so a checkpoint of a
//! large store costs little space and time).

use std::path::{Path, PathBuf};

use rocksdb::checkpoint::Checkpoint;

use crate::{Store, StoreError};

impl Store {
    /// Writes a checkpoint into `dest`, which must not exist yet (its parent
    /// must). The copy opens with `Store::open` like the original; deliveries
    /// that were still streaming their chunks are cleaned up at that open, as
    /// after a crash.
    pub async fn checkpoint(&self, dest: &Path) -> Result<(), StoreError> {
        let dest: PathBuf = dest.to_path_buf();
        self.read(move |db| {
            if dest.exists() {
                return Err(StoreError::Io(format!(
                    "{}: already exists",
                    dest.display()
                )));
            }
            // Flushes the memtables first, so the copy needs no WAL replay.
            Checkpoint::new(db)?.create_checkpoint(&dest)?;
            Ok(())
        })
        .await
    }
}
