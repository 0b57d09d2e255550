//! STORE, COPY, MOVE, EXPUNGE and their UID forms.

use std::io;

use store::{ExpungeSet, FlagOp, Flags, StoreError};

use super::Session;
use crate::proto::SeqSet;
use crate::proto::format;

impl Session {
    /// The account's quota for COPY and APPEND (0: none).
    pub(super) async fn quota_limit(&self) -> Option<u64> {
        match self.inner.directory.account_by_id(self.account()).await {
            Ok(Some(acc)) if acc.quota > 0 => Some(acc.quota),
            _ => None,
        }
    }

    /// GETQUOTAROOT / GETQUOTA: one root `""` for the whole account, in KiB
    /// (RFC 9208 §5.1).
    pub(super) async fn quota(&mut self, mailbox: Option<&str>) -> io::Result<String> {
        let a = self.account();
        let mut out = Vec::new();
        if let Some(name) = mailbox {
            match self.inner.store.mailbox(a, name).await {
                Ok(Some(mb)) => {
                    out.extend_from_slice(b"* QUOTAROOT ");
                    format::mailbox(&mut out, &mb.info.name, self.rev2);
                    out.extend_from_slice(b" \"\"\r\n");
                }
                Ok(None) => return Ok("NO [NONEXISTENT] No such mailbox".into()),
                Err(e) => return Ok(super::store_error(e)),
            }
        }
        let used = match self.inner.store.quota_used(a).await {
            Ok(u) => u,
            Err(e) => return Ok(super::store_error(e)),
        };
        if let Some(limit) = self.quota_limit().await {
            let line = format!(
                "* QUOTA \"\" (STORAGE {} {})\r\n",
                used.div_ceil(1024),
                limit / 1024
            );
            out.extend_from_slice(line.as_bytes());
        }
        self.io.write_later(&out).await?;
        Ok("OK completed".into())
    }

    pub(super) async fn store(
        &mut self,
        uid: bool,
        set: &SeqSet,
        op: FlagOp,
        silent: bool,
        flags: Flags,
        unchanged_since: Option<u64>,
    ) -> io::Result<String> {
        let Some(sel) = self.selected.as_ref() else {
            return Ok("BAD No mailbox selected".into());
        };
        if sel.read_only {
            return Ok("NO [READ-ONLY] Mailbox is read-only".into());
        }
        if !uid && sel.out_of_range(set) {
            return Ok("BAD Message number out of range".into());
        }
        let uids: Vec<u32> = sel.resolve(set, uid).into_iter().map(|(_, u)| u).collect();
        let mailbox = sel.id;
        if uids.is_empty() {
            return Ok("OK STORE completed".into());
        }
        let (updates, modified) = match self
            .inner
            .store
            .set_flags(self.account(), mailbox, uids, op, flags, unchanged_since)
            .await
        {
            Ok(r) => r,
            Err(e) => return Ok(super::store_error(e)),
        };
        let Some(sel) = self.selected.as_mut() else {
            return Ok("OK STORE completed".into());
        };
        let mut out = Vec::new();
        for up in updates {
            sel.own_modseqs.push(up.modseq);
            // RFC 7162 §3.1.3: with CONDSTORE the new MODSEQ is reported even
            // for .SILENT.
            if silent && !(self.condstore && up.changed) {
                continue;
            }
            let Some(seq) = sel.seq_of(up.uid) else {
                continue;
            };
            let mut items = Vec::new();
            if !silent {
                items.push(format!("FLAGS ({})", format::flags(&up.flags)));
            }
            if uid {
                items.push(format!("UID {}", up.uid));
            }
            if self.condstore {
                items.push(format!("MODSEQ ({})", up.modseq));
            }
            out.extend_from_slice(format!("* {seq} FETCH ({})\r\n", items.join(" ")).as_bytes());
        }
        self.io.write_later(&out).await?;
        if modified.is_empty() {
            return Ok("OK STORE completed".into());
        }
        // RFC 7162 §3.1.3: MODIFIED names what UNCHANGEDSINCE left alone,
        // by UID for UID STORE and by number otherwise.
        let mut ids: Vec<u32> = if uid {
            modified
        } else {
            modified.iter().filter_map(|u| sel.seq_of(*u)).collect()
        };
        ids.sort_unstable();
        Ok(format!(
            "OK [MODIFIED {}] Conditional STORE failed for some",
            format::uid_set(ids.into_iter())
        ))
    }

    pub(super) async fn copy(
        &mut self,
        uid: bool,
        set: &SeqSet,
        target: &str,
        moving: bool,
    ) -> io::Result<String> {
        let Some(sel) = self.selected.as_ref() else {
            return Ok("BAD No mailbox selected".into());
        };
        if moving && sel.read_only {
            return Ok("NO [READ-ONLY] Mailbox is read-only".into());
        }
        if !uid && sel.out_of_range(set) {
            return Ok("BAD Message number out of range".into());
        }
        let uids: Vec<u32> = sel.resolve(set, uid).into_iter().map(|(_, u)| u).collect();
        let from = sel.id;
        let a = self.account();
        let to = match self.inner.store.mailbox(a, target).await {
            Ok(Some(mb)) => mb.id,
            // RFC 3501 §6.4.7: tell the client it may create the target.
            Ok(None) => return Ok("NO [TRYCREATE] No such mailbox".into()),
            Err(e) => return Ok(super::store_error(e)),
        };
        let verb = if moving { "MOVE" } else { "COPY" };
        if uids.is_empty() {
            return Ok(format!("OK {verb} completed"));
        }
        let result = if moving {
            self.inner.store.move_messages(a, from, uids, to).await
        } else {
            let quota = self.quota_limit().await;
            self.inner.store.copy(a, from, uids, to, quota).await
        };
        let result = match result {
            Ok(r) => r,
            Err(StoreError::OverQuota) => return Ok("NO [OVERQUOTA] Quota exceeded".into()),
            Err(e) => return Ok(super::store_error(e)),
        };
        let code = format!(
            "COPYUID {} {} {}",
            result.uidvalidity,
            format::uid_set(result.uids.iter().map(|p| p.0)),
            format::uid_set(result.uids.iter().map(|p| p.1))
        );
        if !moving {
            return Ok(format!("OK [{code}] COPY completed"));
        }
        // RFC 6851 §4.3: COPYUID comes untagged before the EXPUNGEs.
        let mut out = format!("* OK [{code}] Moved\r\n").into_bytes();
        if let Some(sel) = self.selected.as_mut() {
            sel.expunged.extend(result.uids.iter().map(|p| p.0));
            sel.expunge_now(&mut out, self.qresync);
        }
        self.io.write_later(&out).await?;
        Ok("OK MOVE completed".into())
    }

    /// EXPUNGE and UID EXPUNGE (RFC 4315 §2.1).
    pub(super) async fn expunge(&mut self, uids: Option<SeqSet>) -> io::Result<String> {
        let Some(sel) = self.selected.as_ref() else {
            return Ok("BAD No mailbox selected".into());
        };
        if sel.read_only {
            return Ok("NO [READ-ONLY] Mailbox is read-only".into());
        }
        let set = match &uids {
            None => ExpungeSet::AllDeleted,
            Some(s) => {
                ExpungeSet::DeletedAmong(sel.resolve(s, true).into_iter().map(|(_, u)| u).collect())
            }
        };
        let mailbox = sel.id;
        let gone = match self.inner.store.expunge(self.account(), mailbox, set).await {
            Ok(g) => g,
            Err(e) => return Ok(super::store_error(e)),
        };
        let mut out = Vec::new();
        if let Some(sel) = self.selected.as_mut() {
            sel.expunged.extend(gone);
            sel.expunge_now(&mut out, self.qresync);
        }
        self.io.write_later(&out).await?;
        Ok("OK EXPUNGE completed".into())
    }
}
