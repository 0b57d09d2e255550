//! The selected folder as this client sees it: UIDs in sequence order
//! (message n is `uids[n - 1]`), updated from the change feed only at the
//! moments RFC 3501 §5.2 and §7.4.1 allow, so sequence numbers always agree
//! with what the client was told.

use std::sync::Arc;

use store::{Change, ChangeKind, MailboxId};
use tokio::sync::broadcast::error::TryRecvError;

use super::Session;
use crate::proto::SeqSet;
use crate::proto::format;

pub(super) struct Selected {
    pub id: MailboxId,
    pub read_only: bool,
    pub uids: Vec<u32>,
    /// Expunged in the store, still numbered for the client until an
    /// EXPUNGE response may be sent.
    pub expunged: Vec<u32>,
    /// Flag changes not yet announced.
    pub flag_changes: Vec<u32>,
    /// Modseqs of this session's own STORE, whose results it already sent.
    pub own_modseqs: Vec<u64>,
    /// EXISTS as last announced.
    pub announced: usize,
    /// The feed dropped events: reload the UID list.
    pub lagged: bool,
}

impl Selected {
    pub fn new(id: MailboxId, read_only: bool, uids: Vec<u32>) -> Self {
        Selected {
            id,
            read_only,
            announced: uids.len(),
            uids,
            expunged: Vec::new(),
            flag_changes: Vec::new(),
            own_modseqs: Vec::new(),
            lagged: false,
        }
    }

    /// Sequence number of a UID.
    pub fn seq_of(&self, uid: u32) -> Option<u32> {
        self.uids.binary_search(&uid).ok().map(|i| i as u32 + 1)
    }

    /// `(seq, uid)` of the messages a set names, in sequence order. Messages
    /// expunged but not yet announced are left out.
    pub fn resolve(&self, set: &SeqSet, uid: bool) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        if uid {
            let largest = self.uids.last().copied().unwrap_or(0);
            for (lo, hi) in set.ranges(largest) {
                let from = self.uids.partition_point(|&u| u < lo);
                let to = self.uids.partition_point(|&u| u <= hi);
                out.extend((from..to).map(|i| (i as u32 + 1, self.uids[i])));
            }
        } else {
            let count = self.uids.len() as u32;
            for (lo, hi) in set.ranges(count) {
                let hi = hi.min(count);
                out.extend((lo.max(1)..=hi).map(|s| (s, self.uids[s as usize - 1])));
            }
        }
        out.retain(|(_, u)| !self.expunged.contains(u));
        out
    }

    /// Whether a non-UID set names a message number beyond the mailbox
    /// (RFC 3501 §9: a BAD for a non-existent message number).
    pub fn out_of_range(&self, set: &SeqSet) -> bool {
        let count = self.uids.len() as u32;
        set.0.iter().any(|&(a, b)| {
            [a, b]
                .into_iter()
                .any(|n| matches!(n, crate::proto::seqset::SeqNum::Num(n) if n > count))
        })
    }

    fn apply(&mut self, change: &Change) {
        if change.mailbox != self.id {
            return;
        }
        match &change.kind {
            ChangeKind::Appended(uids) => {
                for &u in uids {
                    if self.uids.last().is_none_or(|&last| u > last) {
                        self.uids.push(u);
                    }
                }
            }
            ChangeKind::Expunged(uids) => self.expunged.extend(uids),
            ChangeKind::Flags(uids) if !self.own_modseqs.contains(&change.modseq) => {
                self.flag_changes.extend(uids);
            }
            _ => {}
        }
    }

    /// Removes announced-expunged UIDs; `* n EXPUNGE` lines into `out`.
    pub fn expunge_now(&mut self, out: &mut Vec<u8>) {
        let mut gone = std::mem::take(&mut self.expunged);
        gone.sort_unstable();
        gone.dedup();
        for u in gone {
            if let Ok(i) = self.uids.binary_search(&u) {
                self.uids.remove(i);
                self.announced = self.announced.saturating_sub(1);
                out.extend_from_slice(format!("* {} EXPUNGE\r\n", i + 1).as_bytes());
            }
        }
        self.flag_changes
            .retain(|u| self.uids.binary_search(u).is_ok());
    }
}

impl Session {
    /// Applies what the change feed has queued and returns the untagged
    /// responses to send now.
    pub(super) async fn updates(&mut self, expunge_ok: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let (Some(user), Some(sel)) = (self.user.as_mut(), self.selected.as_mut()) else {
            // Nothing selected: drop what queued so it does not pile up.
            if let Some(user) = self.user.as_mut() {
                while !matches!(
                    user.changes.try_recv(),
                    Err(TryRecvError::Empty | TryRecvError::Closed)
                ) {}
            }
            return out;
        };
        loop {
            match user.changes.try_recv() {
                Ok(change) => sel.apply(&change),
                Err(TryRecvError::Lagged(_)) => sel.lagged = true,
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        sel.own_modseqs.clear();
        let (account, mailbox) = (user.account, sel.id);
        if sel.lagged {
            // Rebuild from the store: what is gone is expunged, what is new
            // is appended (RFC 3501 §5.2 lets us report either at any
            // allowed moment).
            if let Ok(list) = self.inner.store.list(account, mailbox, 1..=u32::MAX).await {
                let Some(sel) = self.selected.as_mut() else {
                    return out;
                };
                let now: Vec<u32> = list.into_iter().map(|(u, _)| u).collect();
                let last = sel.uids.last().copied().unwrap_or(0);
                for &u in &sel.uids {
                    if now.binary_search(&u).is_err() {
                        sel.expunged.push(u);
                    }
                }
                sel.uids.extend(now.iter().filter(|&&u| u > last));
                sel.lagged = false;
            }
        }
        let Some(sel) = self.selected.as_mut() else {
            return out;
        };
        if expunge_ok {
            sel.expunge_now(&mut out);
        }
        if sel.uids.len() != sel.announced {
            out.extend_from_slice(format!("* {} EXISTS\r\n", sel.uids.len()).as_bytes());
            sel.announced = sel.uids.len();
        }
        let mut changed = std::mem::take(&mut sel.flag_changes);
        changed.sort_unstable();
        changed.dedup();
        if let (Some(&lo), Some(&hi)) = (changed.first(), changed.last())
            && let Ok(list) = self.inner.store.list(account, mailbox, lo..=hi).await
            && let Some(sel) = self.selected.as_ref()
        {
            for (uid, rec) in list {
                if changed.binary_search(&uid).is_err() || sel.expunged.contains(&uid) {
                    continue;
                }
                if let Some(seq) = sel.seq_of(uid) {
                    let line = format!(
                        "* {seq} FETCH (FLAGS ({}) UID {uid})\r\n",
                        format::flags(&rec.flags)
                    );
                    out.extend_from_slice(line.as_bytes());
                }
            }
        }
        out
    }

    /// Queues a change received outside `updates` (IDLE's `recv`).
    pub(super) fn apply_change(&mut self, change: &Arc<Change>) {
        if let Some(sel) = self.selected.as_mut() {
            sel.apply(change);
        }
    }
}
