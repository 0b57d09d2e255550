//! APPEND (RFC 3501 §6.3.11) with LITERAL+ (RFC 7888), APPENDUID
//! (RFC 4315) and MULTIAPPEND (RFC 3502). Each message literal streams into
//! the store's blob writer in bounded pieces; it is never held whole in
//! memory. The messages of a MULTIAPPEND are all staged before any is
//! added to the folder, so a refused one (too large, empty, over quota)
//! leaves the folder as it was.

use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use net::Line;
use store::{Appended, ExpungeSet, Flags, MailboxRef, StagedBlob, StoreError, Target};

use super::{Flow, MAX_LINE, Session};
use crate::proto::{AppendHead, before_literal, format, literal_suffix, parse_append_next};

/// Bytes moved from the socket to the blob writer per step.
const PIECE: usize = 64 * 1024;
/// Messages in one MULTIAPPEND. Each staged message keeps up to one store
/// chunk (256 KiB) in memory until the commit, so this bounds a session's
/// memory to 16 MiB.
const MAX_MESSAGES: usize = 64;

/// How an APPEND ends.
enum Outcome {
    /// The tagged reply; the session goes on.
    Reply(String),
    /// The tagged reply, then the connection closes: a refused LITERAL+
    /// literal is on its way and must not be read as commands (RFC 7888 §4).
    Close(String),
}

/// One message read from the client and staged in the store.
struct Message {
    blob: StagedBlob,
    flags: Flags,
    date: i64,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Session {
    pub(super) async fn append(
        &mut self,
        head: AppendHead,
        size: u64,
        non_sync: bool,
    ) -> io::Result<Flow> {
        let tag = head.tag.clone();
        match self.append_inner(head, size, non_sync).await? {
            Outcome::Reply(reply) => {
                self.finish(&tag, &reply, true).await?;
                Ok(Flow::Continue)
            }
            Outcome::Close(reply) => {
                let msg = format!("{tag} {reply}\r\n* BYE Closing\r\n");
                self.io.write_all(msg.as_bytes()).await?;
                Ok(Flow::Close)
            }
        }
    }

    async fn append_inner(
        &mut self,
        head: AppendHead,
        size: u64,
        non_sync: bool,
    ) -> io::Result<Outcome> {
        if self.user.is_none() {
            return Ok(refused(non_sync, "BAD Log in first"));
        }
        if size > self.inner.config.max_message_size {
            return Ok(refused(non_sync, "NO [TOOBIG] Message too large"));
        }
        let a = self.account();
        let mailbox = match self.inner.store.mailbox(a, &head.mailbox).await {
            Ok(m) => m,
            Err(e) => return self.refuse(non_sync, size, super::store_error(e)).await,
        };
        let Some(mailbox) = mailbox else {
            // RFC 3501 §6.3.11: the client may create it and retry.
            return self
                .refuse(non_sync, size, "NO [TRYCREATE] No such mailbox".into())
                .await;
        };
        let mut messages = Vec::new();
        let mut failed: Option<String> = None;
        let (mut flags, mut date, mut size, mut non_sync) = (head.flags, head.date, size, non_sync);
        loop {
            if !non_sync {
                self.io.write_all(b"+ Ready for literal data\r\n").await?;
            }
            let blob = self.read_message(size).await?;
            match blob {
                _ if failed.is_some() => {}
                Err(e) => failed = Some(super::store_error(e)),
                Ok(_) if size == 0 => failed = Some("NO Empty message".into()),
                Ok(blob) => messages.push(Message {
                    blob,
                    flags: std::mem::take(&mut flags),
                    date: date.unwrap_or_else(now),
                }),
            }
            // The rest of the command line: empty, or the next message of a
            // MULTIAPPEND (RFC 3502).
            let line = match self.io.read_line(MAX_LINE).await? {
                Line::Complete { data, .. } => data,
                Line::Eof => return Err(io::ErrorKind::UnexpectedEof.into()),
                // Its end may have announced a LITERAL+ literal that is
                // already coming: close rather than read it as commands.
                Line::TooLong => return Ok(Outcome::Close("BAD Line too long".into())),
            };
            if line.is_empty() {
                break;
            }
            let Some((next_size, next_non_sync)) = literal_suffix(&line) else {
                return Ok(Outcome::Reply(
                    "BAD Unexpected data after the message".into(),
                ));
            };
            non_sync = next_non_sync;
            let refusal = match parse_append_next(before_literal(&line)) {
                None => Some("BAD Invalid flags or date before the message"),
                Some(_) if messages.len() >= MAX_MESSAGES => {
                    Some("NO [LIMIT] Too many messages in one APPEND")
                }
                Some(_) if next_size > self.inner.config.max_message_size => {
                    Some("NO [TOOBIG] Message too large")
                }
                Some(options) => {
                    (flags, date) = options;
                    size = next_size;
                    None
                }
            };
            if let Some(reply) = refusal {
                // The staged messages are dropped, hence discarded.
                return Ok(refused(non_sync, reply));
            }
        }
        if let Some(reply) = failed {
            return Ok(Outcome::Reply(reply));
        }
        Ok(Outcome::Reply(
            self.add_messages(mailbox.id, messages).await,
        ))
    }

    /// Streams one message literal of `size` bytes into a staged blob. The
    /// whole literal is read even when the store fails, so that it is never
    /// taken for commands.
    async fn read_message(&mut self, size: u64) -> io::Result<Result<StagedBlob, StoreError>> {
        let mut writer = self.inner.store.blob_writer();
        let mut left = size;
        let mut failed: Option<StoreError> = None;
        while left > 0 {
            let piece = self.io.read_chunk(left.min(PIECE as u64) as usize).await?;
            if piece.is_empty() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            left -= piece.len() as u64;
            if failed.is_none()
                && let Err(e) = writer.write(piece).await
            {
                failed = Some(e);
            }
        }
        Ok(match failed {
            Some(e) => Err(e),
            None => Ok(writer.finish()),
        })
    }

    /// Adds staged messages to a folder, all or none: the quota is checked
    /// for their sum first, and if one is refused anyway (a concurrent
    /// delivery used the room) those already added are expunged again.
    async fn add_messages(&mut self, mailbox: store::MailboxId, messages: Vec<Message>) -> String {
        let a = self.account();
        let quota_limit = self.quota_limit().await;
        if let Some(limit) = quota_limit
            && messages.len() > 1
        {
            let total: u64 = messages.iter().map(|m| m.blob.size()).sum();
            match self.inner.store.quota_used(a).await {
                Ok(used) if used.saturating_add(total) > limit => {
                    return "NO [OVERQUOTA] Quota exceeded".into();
                }
                Ok(_) => {}
                Err(e) => return super::store_error(e),
            }
        }
        let mut added: Vec<Appended> = Vec::with_capacity(messages.len());
        let mut failure = None;
        for m in messages {
            let target = Target {
                account: a,
                mailbox: MailboxRef::Id(mailbox),
                flags: m.flags,
                quota_limit,
            };
            let result = self.inner.store.deliver(m.blob, vec![target], m.date).await;
            match result.map(|mut r| r.pop()) {
                Ok(Some(Ok(appended))) => added.push(appended),
                Ok(Some(Err(e))) | Err(e) => {
                    failure = Some(e);
                    break;
                }
                Ok(None) => {
                    failure = Some(StoreError::Io("no delivery result".into()));
                    break;
                }
            }
        }
        let Some(e) = failure else {
            let uidvalidity = added.first().map_or(0, |ap| ap.uidvalidity);
            let uids = format::uid_set(added.iter().map(|ap| ap.uid));
            return format!("OK [APPENDUID {uidvalidity} {uids}] APPEND completed");
        };
        if !added.is_empty() {
            let uids = added.iter().map(|ap| ap.uid).collect();
            if let Err(e) = self
                .inner
                .store
                .expunge(a, mailbox, ExpungeSet::Exactly(uids))
                .await
            {
                tracing::warn!(error = %e, "imap MULTIAPPEND: cannot undo a partial append");
            }
        }
        match e {
            StoreError::OverQuota => "NO [OVERQUOTA] Quota exceeded".into(),
            e => super::store_error(e),
        }
    }

    /// Refuses an APPEND before its literal: a synchronizing one was never
    /// sent, a non-synchronizing one is read and dropped.
    async fn refuse(&mut self, non_sync: bool, size: u64, reply: String) -> io::Result<Outcome> {
        if non_sync {
            let mut left = size;
            while left > 0 {
                let n = self
                    .io
                    .read_chunk(left.min(PIECE as u64) as usize)
                    .await?
                    .len();
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                left -= n as u64;
            }
            if let Line::Eof = self.io.read_line(MAX_LINE).await? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(Outcome::Reply(reply))
    }
}

/// A message refused before its literal is read: with LITERAL+ its bytes
/// are already coming, so the connection closes; otherwise the client was
/// never asked for them.
fn refused(non_sync: bool, reply: &str) -> Outcome {
    if non_sync {
        Outcome::Close(reply.into())
    } else {
        Outcome::Reply(reply.into())
    }
}
