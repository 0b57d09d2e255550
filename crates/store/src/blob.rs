//! Message bytes, stored once per delivery however many recipients it has, in
//! chunks so a 50 MB message never has to sit whole in memory. Chunks of a message
//! that is still arriving are written without fsync under a "pending" marker; the
//! delivery's synced commit covers them (the WAL is one append-only stream) and
//! removes the marker. A crash before that leaves a marker that `open` cleans up.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use rocksdb::{DB, WriteBatch};
use summary::{Limits, Summary, SummaryBuilder};

use crate::writer::handle;
use crate::{BlobId, Store, StoreError, keys};

/// Chunk size: large enough that a 50 MB message is 200 writes, small enough that a
/// thousand sessions receiving at once hold little memory.
pub const CHUNK_SIZE: usize = 256 * 1024;

/// Streams a message into the store. Call [`BlobWriter::finish`] and hand the
/// result to `Store::deliver`; dropping either before that removes the chunks.
pub struct BlobWriter {
    db: Arc<DB>,
    id: BlobId,
    buf: Vec<u8>,
    flushed: u32,
    size: u64,
    summary: Option<SummaryBuilder>,
    /// The last byte written was CR (a CRLF may be split between writes).
    last_cr: bool,
}

impl BlobWriter {
    pub(crate) fn new(db: Arc<DB>, id: BlobId, limits: Limits) -> Self {
        BlobWriter {
            db,
            id,
            buf: Vec::new(),
            flushed: 0,
            size: 0,
            summary: Some(SummaryBuilder::new(limits)),
            last_cr: false,
        }
    }

    /// Stored messages end every line in CRLF (RFC 5322 §2.1): a bare LF becomes
    /// CRLF, so the stored size is the size on the wire for POP3 LIST and IMAP
    /// RFC822.SIZE, with no scan at read time.
    fn normalize<'a>(&mut self, data: &'a [u8]) -> Cow<'a, [u8]> {
        let mut prev_cr = self.last_cr;
        let bare_lf = data.iter().any(|&b| {
            let bare = b == b'\n' && !prev_cr;
            prev_cr = b == b'\r';
            bare
        });
        if !bare_lf {
            self.last_cr = prev_cr;
            return Cow::Borrowed(data);
        }
        let mut out = Vec::with_capacity(data.len() + data.len() / 16);
        for &b in data {
            if b == b'\n' && !self.last_cr {
                out.push(b'\r');
            }
            out.push(b);
            self.last_cr = b == b'\r';
        }
        Cow::Owned(out)
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends bytes; every full chunk is written off the async reactor.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        let data = self.normalize(data);
        let mut rest = &data[..];
        while let Some(chunk) = self.fill(&mut rest) {
            let db = self.db.clone();
            let (id, index) = (self.id, self.flushed);
            let mut summary = self.summary.take();
            let summary = tokio::task::spawn_blocking(move || {
                if let Some(s) = summary.as_mut() {
                    s.feed(&chunk);
                }
                write_chunk(&db, id, index, &chunk).map(|()| summary)
            })
            .await
            .map_err(|e| StoreError::Io(e.to_string()))??;
            self.summary = summary;
            self.flushed += 1;
        }
        Ok(())
    }

    /// Same as [`BlobWriter::write`] for callers already off the reactor.
    pub fn write_blocking(&mut self, data: &[u8]) -> Result<(), StoreError> {
        let data = self.normalize(data);
        let mut rest = &data[..];
        while let Some(chunk) = self.fill(&mut rest) {
            if let Some(s) = self.summary.as_mut() {
                s.feed(&chunk);
            }
            write_chunk(&self.db, self.id, self.flushed, &chunk)?;
            self.flushed += 1;
        }
        Ok(())
    }

    /// Moves bytes from `rest` into the buffer; returns a full chunk when one is ready.
    fn fill(&mut self, rest: &mut &[u8]) -> Option<Vec<u8>> {
        if rest.is_empty() {
            return None;
        }
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(CHUNK_SIZE.min(rest.len().max(4096)));
        }
        let take = (CHUNK_SIZE - self.buf.len()).min(rest.len());
        self.buf.extend_from_slice(&rest[..take]);
        self.size += take as u64;
        *rest = &rest[take..];
        (self.buf.len() == CHUNK_SIZE).then(|| std::mem::take(&mut self.buf))
    }

    /// Ends the message. The tail (at most one chunk) goes into the commit batch.
    pub fn finish(mut self) -> StagedBlob {
        let tail = std::mem::take(&mut self.buf);
        let mut builder = self
            .summary
            .take()
            .unwrap_or_else(|| SummaryBuilder::new(Limits::default()));
        builder.feed(&tail);
        let staged = StagedBlob {
            db: self.db.clone(),
            id: self.id,
            size: self.size,
            flushed: self.flushed,
            tail,
            summary: builder.finish(),
            committed: false,
        };
        // The chunks now belong to `staged`; keep Drop from removing them.
        self.flushed = 0;
        staged
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.flushed > 0 {
            discard(self.db.clone(), self.id, self.flushed);
        }
    }
}

fn write_chunk(db: &DB, id: BlobId, index: u32, chunk: &[u8]) -> Result<(), StoreError> {
    let mut batch = WriteBatch::default();
    if index == 0 {
        batch.put_cf(handle(db, keys::CF_META)?, keys::pending_blob(id), []);
    }
    batch.put_cf(
        handle(db, keys::CF_BLOB)?,
        keys::blob_chunk(id, index),
        chunk,
    );
    db.write(batch)?;
    Ok(())
}

/// Removes the chunks of a blob that will never be committed, off the reactor when
/// dropped inside one. Not synced: if this is lost in a crash, the pending marker
/// makes `open` do it again.
fn discard(db: Arc<DB>, id: BlobId, chunks: u32) {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => drop(rt.spawn_blocking(move || discard_now(&db, id, chunks))),
        Err(_) => discard_now(&db, id, chunks),
    }
}

fn discard_now(db: &DB, id: BlobId, chunks: u32) {
    let (Ok(blob_cf), Ok(meta_cf)) = (handle(db, keys::CF_BLOB), handle(db, keys::CF_META)) else {
        return;
    };
    let mut batch = WriteBatch::default();
    for index in 0..chunks {
        batch.delete_cf(blob_cf, keys::blob_chunk(id, index));
    }
    batch.delete_cf(meta_cf, keys::pending_blob(id));
    if let Err(e) = db.write(batch) {
        tracing::warn!(blob = id, error = %e, "could not discard uncommitted blob; removed at next start");
    }
}

/// A fully received message whose delivery has not committed yet.
pub struct StagedBlob {
    db: Arc<DB>,
    pub(crate) id: BlobId,
    pub(crate) size: u64,
    pub(crate) flushed: u32,
    pub(crate) tail: Vec<u8>,
    pub(crate) summary: Summary,
    pub(crate) committed: bool,
}

impl StagedBlob {
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    pub(crate) fn chunks(&self) -> u32 {
        self.flushed + u32::from(!self.tail.is_empty())
    }

    /// One chunk of the message before it is committed.
    pub async fn chunk(&self, index: u32) -> Result<Vec<u8>, StoreError> {
        if index >= self.flushed {
            return Ok(if index == self.flushed {
                self.tail.clone()
            } else {
                Vec::new()
            });
        }
        let (db, id) = (self.db.clone(), self.id);
        tokio::task::spawn_blocking(move || {
            db.get_cf(handle(&db, keys::CF_BLOB)?, keys::blob_chunk(id, index))?
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("staged blob {id} chunk {index} missing"))
                })
        })
        .await
        .map_err(|e| StoreError::Io(e.to_string()))?
    }

    /// The start of the message, at most one chunk: its header section for
    /// the pipeline's loop and mailing-list checks.
    pub async fn head(&self) -> Result<Vec<u8>, StoreError> {
        self.chunk(0).await
    }

    /// A new staged copy with `prefix` (header lines) in front, e.g. a
    /// per-recipient `Delivered-To:`.
    pub async fn copy_with_prefix(
        &self,
        mut writer: BlobWriter,
        prefix: &[u8],
    ) -> Result<StagedBlob, StoreError> {
        writer.write(prefix).await?;
        for index in 0..self.chunks() {
            writer.write(&self.chunk(index).await?).await?;
        }
        Ok(writer.finish())
    }
}

impl Drop for StagedBlob {
    fn drop(&mut self) {
        if !self.committed && self.flushed > 0 {
            discard(self.db.clone(), self.id, self.flushed);
        }
    }
}

/// Reads a stored message chunk by chunk, or a byte range of it.
pub struct BlobReader {
    store: Store,
    id: BlobId,
    size: u64,
    chunks: u32,
    next: u32,
}

impl BlobReader {
    pub(crate) fn new(store: Store, id: BlobId, size: u64, chunks: u32) -> Self {
        BlobReader {
            store,
            id,
            size,
            chunks,
            next: 0,
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The next chunk in order, `None` at the end.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        if self.next >= self.chunks {
            return Ok(None);
        }
        let chunk = self.store.read_chunk(self.id, self.next).await?;
        self.next += 1;
        Ok(Some(chunk))
    }

    /// Bytes `[offset, offset + len)`, clipped to the message. Callers bound `len`
    /// (IMAP partial FETCH streams large ranges piecewise).
    pub async fn read_range(&self, offset: u64, len: u64) -> Result<Bytes, StoreError> {
        let end = offset.saturating_add(len).min(self.size);
        if offset >= end {
            return Ok(Bytes::new());
        }
        let chunk = CHUNK_SIZE as u64;
        let (first, last) = (offset / chunk, (end - 1) / chunk);
        let mut out = Vec::with_capacity((end - offset) as usize);
        for index in first..=last {
            let data = self.store.read_chunk(self.id, index as u32).await?;
            let base = index * chunk;
            let from = offset.saturating_sub(base) as usize;
            let to = ((end - base) as usize).min(data.len());
            out.extend_from_slice(data.get(from..to).unwrap_or_default());
        }
        Ok(Bytes::from(out))
    }
}
