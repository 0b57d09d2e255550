//! APPEND (RFC 3501 §6.3.11) with LITERAL+ (RFC 7888) and APPENDUID
//! (RFC 4315). The message literal streams into the store's blob writer in
//! bounded pieces; it is never held whole in memory.

use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use net::Line;
use store::{MailboxRef, StoreError, Target};

use super::{Flow, MAX_LINE, Session};
use crate::proto::AppendHead;

/// Bytes moved from the socket to the blob writer per step.
const PIECE: usize = 64 * 1024;

impl Session {
    pub(super) async fn append(
        &mut self,
        head: AppendHead,
        size: u64,
        non_sync: bool,
    ) -> io::Result<Flow> {
        let tag = head.tag.clone();
        let reply = self.append_inner(head, size, non_sync).await?;
        match reply {
            Some(reply) => {
                self.finish(&tag, &reply, true).await?;
                Ok(Flow::Continue)
            }
            None => {
                // An over-limit LITERAL+ literal is on its way and must not be
                // read as commands (RFC 7888 §4).
                let msg = format!("{tag} NO [TOOBIG] Message too large\r\n* BYE Closing\r\n");
                self.io.write_all(msg.as_bytes()).await?;
                Ok(Flow::Close)
            }
        }
    }

    /// The tagged reply; `None` when the connection must close.
    async fn append_inner(
        &mut self,
        head: AppendHead,
        size: u64,
        non_sync: bool,
    ) -> io::Result<Option<String>> {
        if self.user.is_none() {
            if non_sync {
                return Ok(None);
            }
            return Ok(Some("BAD Log in first".into()));
        }
        if size > self.inner.config.max_message_size {
            if non_sync {
                return Ok(None);
            }
            return Ok(Some("NO [TOOBIG] Message too large".into()));
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
        if !non_sync {
            self.io.write_all(b"+ Ready for literal data\r\n").await?;
        }
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
                // Keep reading so the literal is not taken for commands.
                failed = Some(e);
            }
        }
        // The rest of the command line: empty, since MULTIAPPEND is not offered.
        match self.io.read_line(MAX_LINE).await? {
            Line::Complete { data, .. } if data.is_empty() => {}
            Line::Eof => return Err(io::ErrorKind::UnexpectedEof.into()),
            _ => return Ok(Some("BAD Unexpected data after the message".into())),
        }
        if let Some(e) = failed {
            return Ok(Some(super::store_error(e)));
        }
        if size == 0 {
            return Ok(Some("NO Empty message".into()));
        }
        let staged = writer.finish();
        let date = head.date.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        });
        let target = Target {
            account: a,
            mailbox: MailboxRef::Id(mailbox.id),
            flags: head.flags,
            quota_limit: self.quota_limit().await,
        };
        let result = self.inner.store.deliver(staged, vec![target], date).await;
        Ok(Some(match result.map(|mut r| r.pop()) {
            Ok(Some(Ok(appended))) => format!(
                "OK [APPENDUID {} {}] APPEND completed",
                appended.uidvalidity, appended.uid
            ),
            Ok(Some(Err(StoreError::OverQuota))) => "NO [OVERQUOTA] Quota exceeded".into(),
            Ok(Some(Err(e))) | Err(e) => super::store_error(e),
            Ok(None) => "NO [UNAVAILABLE] Temporary failure".into(),
        }))
    }

    /// Refuses an APPEND before its literal: a synchronizing one was never
    /// sent, a non-synchronizing one is read and dropped.
    async fn refuse(
        &mut self,
        non_sync: bool,
        size: u64,
        reply: String,
    ) -> io::Result<Option<String>> {
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
        Ok(Some(reply))
    }
}
