//! The selected folder as this client sees it: UIDs in sequence order
//! (message n is `uids[n - 1]`), updated from the change feed only at the
//! moments RFC 3501 §5.2 and §7.4.1 allow, so sequence numbers always agree
//! with what the client was told.

use std::sync::Arc;

use store::{Change, ChangeKind, FolderHold, MailboxId};
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
    /// UIDs of the last `SEARCH RETURN (SAVE)`, for `$` (RFC 5182); reset
    /// with the selection.
    pub saved: Vec<u32>,
    /// Keeps the folder's records in memory for SEARCH and flag reads;
    /// let go while idling, where nothing reads them.
    pub hold: Option<FolderHold>,
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
            saved: Vec::new(),
            hold: None,
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
        if set.is_saved() {
            // `$` names the same messages in UID and number commands.
            out.extend(
                self.saved
                    .iter()
                    .filter_map(|&u| self.seq_of(u).map(|s| (s, u))),
            );
        } else if uid {
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
    /// (RFC 3501 §9: a BAD for a non-existent message number). Ranges ending
    /// in `*` are let through: clients send `1:*` to empty mailboxes.
    pub fn out_of_range(&self, set: &SeqSet) -> bool {
        use crate::proto::seqset::SeqNum::Num;
        let count = self.uids.len() as u32;
        set.0.iter().any(|&(a, b)| match (a, b) {
            (Num(a), Num(b)) => a.max(b) > count,
            _ => false,
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

    /// Removes announced-expunged UIDs and reports them: `* n EXPUNGE`
    /// lines, or one `* VANISHED uids` with QRESYNC (RFC 7162 §3.2.10).
    pub fn expunge_now(&mut self, out: &mut Vec<u8>, vanished: bool) {
        let mut gone = std::mem::take(&mut self.expunged);
        gone.sort_unstable();
        gone.dedup();
        let mut removed = Vec::new();
        for u in gone {
            if let Ok(i) = self.uids.binary_search(&u) {
                self.uids.remove(i);
                if i >= self.announced {
                    // Appended and expunged before EXISTS told the client
                    // of it: it never existed for the client.
                    continue;
                }
                self.announced -= 1;
                removed.push(u);
                if !vanished {
                    out.extend_from_slice(format!("* {} EXPUNGE\r\n", i + 1).as_bytes());
                }
            }
        }
        if vanished && !removed.is_empty() {
            let line = format!("* VANISHED {}\r\n", format::uid_set(removed.into_iter()));
            out.extend_from_slice(line.as_bytes());
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
            self.drop_changes();
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
            if let Ok(list) = self.inner.store.folder_messages(account, mailbox).await {
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
            sel.expunge_now(&mut out, self.qresync);
        }
        if sel.uids.len() != sel.announced {
            out.extend_from_slice(format!("* {} EXISTS\r\n", sel.uids.len()).as_bytes());
            sel.announced = sel.uids.len();
        }
        let condstore = self.condstore;
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
                    let modseq = if condstore {
                        format!(" MODSEQ ({})", rec.modseq)
                    } else {
                        String::new()
                    };
                    let line = format!(
                        "* {seq} FETCH (FLAGS ({}) UID {uid}{modseq})\r\n",
                        format::flags(&rec.flags)
                    );
                    out.extend_from_slice(line.as_bytes());
                }
            }
        }
        out
    }

    /// Holds the selected folder's records in memory again after IDLE let
    /// them go; a failure only means reads go to the store.
    pub(super) async fn hold_selected(&mut self) {
        let Some(sel) = self.selected.as_ref().filter(|s| s.hold.is_none()) else {
            return;
        };
        let account = self.account();
        if let Ok(hold) = self.inner.store.hold_folder(account, sel.id).await
            && let Some(sel) = self.selected.as_mut()
        {
            sel.hold = Some(hold);
        }
    }

    /// Forgets queued changes, e.g. those a SELECT snapshot already shows.
    pub(super) fn drop_changes(&mut self) {
        if let Some(user) = self.user.as_mut() {
            while !matches!(
                user.changes.try_recv(),
                Err(TryRecvError::Empty | TryRecvError::Closed)
            ) {}
        }
    }

    /// Queues a change received outside `updates` (IDLE's `recv`).
    pub(super) fn apply_change(&mut self, change: &Arc<Change>) {
        if let Some(sel) = self.selected.as_mut() {
            sel.apply(change);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(mailbox: MailboxId, modseq: u64, kind: ChangeKind) -> Change {
        Change {
            account: 1,
            mailbox,
            modseq,
            kind,
        }
    }

    #[test]
    fn resolve_by_number_and_uid() {
        let sel = Selected::new(7, false, vec![3, 5, 9, 12]);
        let set = |s: &[u8]| SeqSet::parse(s).unwrap();
        assert_eq!(
            sel.resolve(&set(b"2:*"), false),
            vec![(2, 5), (3, 9), (4, 12)]
        );
        assert_eq!(sel.resolve(&set(b"4:9"), true), vec![(2, 5), (3, 9)]);
        // RFC 3501 §6.4.8: n:* with n above every UID still names the last.
        assert_eq!(sel.resolve(&set(b"100:*"), true), vec![(4, 12)]);
        assert!(sel.out_of_range(&set(b"5")));
        assert!(!sel.out_of_range(&set(b"1:*")));
        assert!(!Selected::new(7, false, vec![]).out_of_range(&set(b"1:*")));
        assert!(Selected::new(7, false, vec![]).out_of_range(&set(b"1")));
    }

    #[test]
    fn expunges_wait_and_renumber() {
        let mut sel = Selected::new(7, false, vec![3, 5, 9]);
        sel.apply(&change(7, 10, ChangeKind::Appended(vec![11, 12])));
        sel.apply(&change(7, 11, ChangeKind::Expunged(vec![3, 9])));
        sel.apply(&change(8, 12, ChangeKind::Appended(vec![1])));
        // Until an EXPUNGE may be sent, numbers stay as the client knows them.
        assert_eq!(sel.uids, vec![3, 5, 9, 11, 12]);
        assert_eq!(sel.seq_of(11), Some(4));
        // ...but expunged messages are not served.
        let all = SeqSet::parse(b"1:*").unwrap();
        assert_eq!(sel.resolve(&all, false), vec![(2, 5), (4, 11), (5, 12)]);
        let mut out = Vec::new();
        sel.expunge_now(&mut out, false);
        // Each EXPUNGE counts against the state after the previous one.
        assert_eq!(out, b"* 1 EXPUNGE\r\n* 2 EXPUNGE\r\n");
        assert_eq!(sel.uids, vec![5, 11, 12]);
        // `updates` then announces the appended ones: `* 3 EXISTS`.
        sel.announced = sel.uids.len();
        // Duplicated events (our own EXPUNGE, then the feed) are harmless.
        sel.apply(&change(7, 11, ChangeKind::Expunged(vec![3])));
        sel.apply(&change(7, 10, ChangeKind::Appended(vec![11])));
        out.clear();
        sel.expunge_now(&mut out, false);
        assert!(out.is_empty());
        assert_eq!(sel.uids, vec![5, 11, 12]);
        sel.apply(&change(7, 12, ChangeKind::Expunged(vec![5, 12])));
        sel.expunge_now(&mut out, true);
        assert_eq!(out, b"* VANISHED 5,12\r\n");
        assert_eq!(sel.uids, vec![11]);
    }

    #[test]
    fn unannounced_messages_vanish_silently() {
        // E.g. a MULTIAPPEND undone, or another client's append and expunge
        // between two commands of this one.
        let mut sel = Selected::new(7, false, vec![3, 5]);
        sel.apply(&change(7, 10, ChangeKind::Appended(vec![8, 9])));
        sel.apply(&change(7, 11, ChangeKind::Expunged(vec![5, 8, 9])));
        let mut out = Vec::new();
        sel.expunge_now(&mut out, false);
        assert_eq!(out, b"* 2 EXPUNGE\r\n");
        assert_eq!((sel.uids.clone(), sel.announced), (vec![3], 1));
    }

    #[test]
    fn own_flag_changes_are_not_echoed() {
        let mut sel = Selected::new(7, false, vec![1, 2]);
        sel.own_modseqs.push(20);
        sel.apply(&change(7, 20, ChangeKind::Flags(vec![1])));
        sel.apply(&change(7, 21, ChangeKind::Flags(vec![2])));
        assert_eq!(sel.flag_changes, vec![2]);
    }
}
