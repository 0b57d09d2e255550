//! Column families and key layouts. All integers in keys are big-endian so that
//! RocksDB's byte order is numeric order (UID ranges and modseq logs scan in order).

use crate::{AccountId, BlobId, MailboxId};

/// Schema version written at creation; bump with a forward-only migration in `migrate`.
pub const SCHEMA_VERSION: u32 = 2;

pub const CF_META: &str = "meta";
/// Directory records; the `directory` crate owns the layout inside.
pub const CF_DIR: &str = "directory";
/// `account` → [`crate::records::AccountRecord`].
pub const CF_ACCOUNT: &str = "account";
/// `account 'n' name` → mailbox id; `account 'i' mailbox` → [`crate::records::MailboxRecord`];
/// `account 'd' mailbox` → [`crate::records::UidRanges`], the UIDs flagged
/// `\Deleted`, so EXPUNGE reads those alone (schema 2).
pub const CF_MAILBOX: &str = "mailbox";
/// `account mailbox uid` → [`crate::records::MessageRecord`].
pub const CF_MESSAGE: &str = "message";
/// `blob chunk` → message bytes, [`crate::blob::CHUNK_SIZE`] per chunk.
pub const CF_BLOB: &str = "blob";
/// `blob` → [`crate::records::BlobRecord`] (reference count, size, summary).
pub const CF_BLOBMETA: &str = "blobmeta";
/// `account mailbox modseq uid` → empty: expunges, for QRESYNC's VANISHED.
pub const CF_CHANGES: &str = "changes";
/// `queue id` → [`crate::queue::QueuedMessage`]: mail waiting to leave.
pub const CF_QUEUE: &str = "queue";

pub const ALL_CFS: [&str; 9] = [
    CF_META,
    CF_DIR,
    CF_ACCOUNT,
    CF_MAILBOX,
    CF_MESSAGE,
    CF_BLOB,
    CF_BLOBMETA,
    CF_CHANGES,
    CF_QUEUE,
];

pub const META_SCHEMA: &[u8] = b"schema_version";
pub const META_NEXT_ACCOUNT: &[u8] = b"next_account_id";
pub const META_NEXT_QUEUE: &[u8] = b"next_queue_id";
pub const META_LAST_UIDVALIDITY: &[u8] = b"last_uidvalidity";
/// Blobs whose chunks were written before their delivery committed; removed at startup.
pub const META_PENDING_BLOB: &[u8] = b"pending_blob/";

pub fn account(a: AccountId) -> [u8; 8] {
    a.to_be_bytes()
}

pub fn mailbox_name(a: AccountId, name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + name.len());
    k.extend_from_slice(&a.to_be_bytes());
    k.push(b'n');
    k.extend_from_slice(name.as_bytes());
    k
}

pub fn mailbox_name_prefix(a: AccountId) -> Vec<u8> {
    mailbox_name(a, "")
}

pub fn mailbox(a: AccountId, m: MailboxId) -> [u8; 13] {
    mailbox_key(a, b'i', m)
}

pub fn deleted_uids(a: AccountId, m: MailboxId) -> [u8; 13] {
    mailbox_key(a, b'd', m)
}

/// How far back the folder's expunge log (CF_CHANGES) reaches.
pub fn expunge_log(a: AccountId, m: MailboxId) -> [u8; 13] {
    mailbox_key(a, b'x', m)
}

fn mailbox_key(a: AccountId, kind: u8, m: MailboxId) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[..8].copy_from_slice(&a.to_be_bytes());
    k[8] = kind;
    k[9..].copy_from_slice(&m.to_be_bytes());
    k
}

pub fn message(a: AccountId, m: MailboxId, uid: u32) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&a.to_be_bytes());
    k[8..12].copy_from_slice(&m.to_be_bytes());
    k[12..].copy_from_slice(&uid.to_be_bytes());
    k
}

pub fn message_prefix(a: AccountId, m: MailboxId) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&a.to_be_bytes());
    k[8..].copy_from_slice(&m.to_be_bytes());
    k
}

pub fn uid_of_message_key(k: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(k.get(12..16)?.try_into().ok()?))
}

pub fn blob_chunk(b: BlobId, chunk: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&b.to_be_bytes());
    k[8..].copy_from_slice(&chunk.to_be_bytes());
    k
}

pub fn blob(b: BlobId) -> [u8; 8] {
    b.to_be_bytes()
}

pub fn pending_blob(b: BlobId) -> Vec<u8> {
    let mut k = META_PENDING_BLOB.to_vec();
    k.extend_from_slice(&b.to_be_bytes());
    k
}

pub fn change(a: AccountId, m: MailboxId, modseq: u64, uid: u32) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..8].copy_from_slice(&a.to_be_bytes());
    k[8..12].copy_from_slice(&m.to_be_bytes());
    k[12..20].copy_from_slice(&modseq.to_be_bytes());
    k[20..].copy_from_slice(&uid.to_be_bytes());
    k
}

pub fn be_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(..8)?.try_into().ok()?))
}

pub fn be_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}
