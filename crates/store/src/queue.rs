//! The outbound queue: messages waiting to leave this server. Each entry
//! holds a reference on its blob like a message record does, so a message
//! both stored locally and queued is kept once. Entries are written in the
//! same synced batch as the delivery that creates them and removed in the
//! same batch as the bounce that ends them: a crash never loses one or
//! sends its bounce twice.

use serde::{Deserialize, Serialize};

use crate::blob::StagedBlob;
use crate::message::{self, Appended, Target};
use crate::records::{decode, encode};
use crate::writer::{Txn, handle};
use crate::{BlobId, Store, StoreError, keys};

pub type QueueId = u64;

/// One message for one destination domain (one SMTP transaction there).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct QueuedMessage {
    /// MAIL FROM at the destination; empty for `<>` (bounces, autoreplies).
    pub sender: String,
    /// Who is told when delivery fails (RFC 3464); empty: nobody.
    pub notify: String,
    /// Recipients still to be delivered; all in `domain`.
    pub recipients: Vec<QueuedRecipient>,
    pub domain: String,
    /// Where to send instead of the domain's MX (a relay domain's host).
    pub relay: Option<String>,
    /// Header lines (CRLF-terminated) sent before the stored message.
    pub prepend: String,
    /// Sign with this local domain's DKIM key when sending.
    pub dkim_domain: Option<String>,
    /// Seconds since the Unix epoch.
    pub created: i64,
    pub next_attempt: i64,
    pub attempts: u32,
    pub last_error: String,
    /// A delay warning was sent.
    pub warned: bool,
    /// Set by the store when the entry is written.
    pub blob: BlobId,
    pub size: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct QueuedRecipient {
    pub address: String,
    /// The envelope recipient as it reached us (RFC 3461 ORCPT), for DSNs.
    pub original: String,
}

/// A change to an existing queue entry made with a delivery.
#[derive(Clone, Debug)]
pub enum Settle {
    Remove(QueueId),
    Replace(QueueId, Box<QueuedMessage>),
    /// Due at this time (`queue flush`), whatever else changed meanwhile.
    DueAt(QueueId, i64),
}

/// One message to commit: the local folders it goes to and the queue entries
/// that take it further.
pub struct Delivery {
    pub blob: StagedBlob,
    pub targets: Vec<Target>,
    pub queue: Vec<QueuedMessage>,
}

#[derive(Debug)]
pub struct Delivered {
    /// Per target, in order.
    pub appended: Vec<Result<Appended, StoreError>>,
    pub queued: Vec<QueueId>,
}

fn next_queue_id(txn: &mut Txn<'_>) -> Result<QueueId, StoreError> {
    let id = match txn.get(keys::CF_META, keys::META_NEXT_QUEUE)? {
        Some(v) => keys::be_u64(&v).ok_or_else(|| StoreError::Corrupt("next_queue_id".into()))?,
        None => 1,
    };
    txn.put(
        keys::CF_META,
        keys::META_NEXT_QUEUE,
        (id + 1).to_be_bytes().to_vec(),
    )?;
    Ok(id)
}

fn settle(txn: &mut Txn<'_>, op: Settle) -> Result<(), StoreError> {
    let id = match &op {
        Settle::Remove(id) | Settle::Replace(id, _) | Settle::DueAt(id, _) => *id,
    };
    let key = id.to_be_bytes();
    let Some(old) = txn.get(keys::CF_QUEUE, &key)? else {
        // Removed meanwhile (`queue remove`): nothing to settle.
        return Ok(());
    };
    let old: QueuedMessage = decode("queue", &old)?;
    match op {
        Settle::Remove(_) => {
            txn.delete(keys::CF_QUEUE, &key)?;
            message::adjust_refs(txn, old.blob, -1)
        }
        Settle::Replace(_, mut new) => {
            new.blob = old.blob;
            new.size = old.size;
            txn.put(keys::CF_QUEUE, &key, encode(&new))
        }
        Settle::DueAt(_, at) => {
            let mut new = old;
            new.next_attempt = new.next_attempt.min(at);
            txn.put(keys::CF_QUEUE, &key, encode(&new))
        }
    }
}

impl Store {
    /// Commits messages to local folders and the outbound queue, and settles
    /// queue entries, all in one synced batch.
    pub async fn commit(
        &self,
        deliveries: Vec<Delivery>,
        settles: Vec<Settle>,
        internal_date: i64,
    ) -> Result<Vec<Delivered>, StoreError> {
        self.submit(false, move |txn| {
            let mut out = Vec::with_capacity(deliveries.len());
            for mut d in deliveries {
                d.blob.committed = true;
                let refs = u32::try_from(d.queue.len())
                    .map_err(|_| StoreError::Corrupt("too many queue entries".into()))?;
                let appended = message::deliver(txn, &d.blob, &d.targets, refs, internal_date)?;
                let mut queued = Vec::with_capacity(d.queue.len());
                for mut entry in d.queue {
                    let id = next_queue_id(txn)?;
                    entry.blob = d.blob.id;
                    entry.size = d.blob.size;
                    txn.put(keys::CF_QUEUE, &id.to_be_bytes(), encode(&entry))?;
                    queued.push(id);
                }
                out.push(Delivered { appended, queued });
            }
            for op in settles {
                settle(txn, op)?;
            }
            Ok(out)
        })
        .await
    }

    /// Settles queue entries without delivering anything.
    pub async fn settle_queue(&self, settles: Vec<Settle>) -> Result<(), StoreError> {
        self.submit(false, move |txn| {
            for op in settles {
                settle(txn, op)?;
            }
            Ok(())
        })
        .await
    }

    /// Every queue entry, oldest first.
    pub async fn queue(&self) -> Result<Vec<(QueueId, QueuedMessage)>, StoreError> {
        self.queue_after(0).await
    }

    /// Queue entries with ids above `id` (ids only grow): what was queued
    /// since the runner last looked, without reading the whole queue.
    pub async fn queue_after(
        &self,
        id: QueueId,
    ) -> Result<Vec<(QueueId, QueuedMessage)>, StoreError> {
        self.read(move |db| {
            let from = id.saturating_add(1).to_be_bytes();
            let mut out = Vec::new();
            for item in db.iterator_cf(
                handle(db, keys::CF_QUEUE)?,
                rocksdb::IteratorMode::From(&from, rocksdb::Direction::Forward),
            ) {
                let (k, v) = item?;
                let id = keys::be_u64(&k).ok_or_else(|| StoreError::Corrupt("queue key".into()))?;
                out.push((id, decode("queue", &v)?));
            }
            Ok(out)
        })
        .await
    }

    pub async fn queue_entry(&self, id: QueueId) -> Result<Option<QueuedMessage>, StoreError> {
        self.read(move |db| {
            db.get_cf(handle(db, keys::CF_QUEUE)?, id.to_be_bytes())?
                .map(|v| decode("queue", &v))
                .transpose()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MailboxRef, StoreOptions};

    fn entry(domain: &str) -> QueuedMessage {
        QueuedMessage {
            sender: "a@example.org".into(),
            notify: "a@example.org".into(),
            recipients: vec![QueuedRecipient {
                address: format!("b@{domain}"),
                original: format!("b@{domain}"),
            }],
            domain: domain.into(),
            ..Default::default()
        }
    }

    async fn staged(store: &Store, text: &[u8]) -> StagedBlob {
        let mut w = store.blob_writer();
        w.write(text).await.unwrap();
        w.finish()
    }

    #[tokio::test]
    async fn a_queued_message_keeps_its_blob_until_settled() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let blob = staged(&store, b"Subject: x\r\n\r\nbody\r\n").await;
        let out = store
            .commit(
                vec![Delivery {
                    blob,
                    targets: vec![],
                    queue: vec![entry("remote.example"), entry("other.example")],
                }],
                vec![],
                0,
            )
            .await
            .unwrap();
        let ids = out[0].queued.clone();
        assert_eq!(ids.len(), 2);
        let queue = store.queue().await.unwrap();
        assert_eq!(queue.len(), 2);
        let blob = queue[0].1.blob;
        assert_eq!(queue[0].1.size, 20);
        let mut r = store.open_blob(blob).await.unwrap();
        assert_eq!(
            &r.next_chunk().await.unwrap().unwrap()[..],
            b"Subject: x\r\n\r\nbody\r\n"
        );

        let mut changed = queue[1].1.clone();
        changed.attempts = 3;
        store
            .settle_queue(vec![
                Settle::Remove(ids[0]),
                Settle::Replace(ids[1], Box::new(changed)),
            ])
            .await
            .unwrap();
        assert!(store.verify().await.unwrap().problems.is_empty());
        assert!(store.open_blob(blob).await.is_ok());
        assert_eq!(
            store.queue_entry(ids[1]).await.unwrap().unwrap().attempts,
            3
        );

        assert_eq!(store.queue_after(ids[0]).await.unwrap().len(), 1);
        assert!(store.queue_after(ids[1]).await.unwrap().is_empty());
        store
            .settle_queue(vec![Settle::Remove(ids[1])])
            .await
            .unwrap();
        assert!(store.queue().await.unwrap().is_empty());
        assert!(
            store.open_blob(blob).await.is_err(),
            "blob freed with its last holder"
        );
        let report = store.verify().await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.blobs, 0);
    }

    #[tokio::test]
    async fn local_copies_and_queue_entries_share_one_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let account = store.create_account(|_| vec![]).await.unwrap();
        let blob = staged(&store, b"Subject: y\r\n\r\nhi\r\n").await;
        let out = store
            .commit(
                vec![Delivery {
                    blob,
                    targets: vec![Target {
                        account,
                        mailbox: MailboxRef::Inbox,
                        flags: Default::default(),
                        quota_limit: None,
                    }],
                    queue: vec![entry("remote.example")],
                }],
                vec![],
                0,
            )
            .await
            .unwrap();
        assert!(out[0].appended[0].is_ok());
        let report = store.verify().await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.blobs, 1);
        store
            .settle_queue(vec![Settle::Remove(out[0].queued[0])])
            .await
            .unwrap();
        let report = store.verify().await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.blobs, 1, "the INBOX copy still holds it");
    }
}
