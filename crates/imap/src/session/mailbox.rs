//! Folder commands: SELECT/EXAMINE, CREATE, DELETE, RENAME, (UN)SUBSCRIBE,
//! LIST/LSUB, STATUS, CLOSE/UNSELECT.

use std::io;

use store::{ExpungeSet, Flags, MailboxRecord};

use super::Session;
use super::view::Selected;
use crate::proto::command::Qresync;
use crate::proto::format;
use crate::proto::{ListCommand, StatusItem};

/// Longest LIST pattern; matching is O(pattern × name).
const MAX_PATTERN: usize = 1024;

/// RFC 3501 §6.3.8 wildcards: `*` matches anything, `%` anything but the
/// hierarchy delimiter.
fn matches(pattern: &[u8], name: &[u8]) -> bool {
    // reach[j]: the pattern so far can match name[..j].
    let mut reach = vec![false; name.len() + 1];
    reach[0] = true;
    for &p in pattern {
        let mut next = vec![false; name.len() + 1];
        match p {
            b'*' | b'%' => {
                let mut on = false;
                for j in 0..=name.len() {
                    on = on || reach[j];
                    next[j] = on;
                    if p == b'%' && j < name.len() && name[j] == b'/' {
                        // `%` cannot run past a delimiter.
                        on = false;
                    }
                }
            }
            c => {
                for j in 0..name.len() {
                    next[j + 1] = reach[j] && name[j] == c;
                }
            }
        }
        reach = next;
    }
    reach[name.len()]
}

/// INBOX is case-insensitive (RFC 3501 §5.1): spell it so in patterns.
fn normalize_pattern(p: &str) -> String {
    match p.get(..5) {
        Some(head) if head.eq_ignore_ascii_case("INBOX") => format!("INBOX{}", &p[5..]),
        _ => p.to_string(),
    }
}

impl Session {
    pub(super) async fn select(
        &mut self,
        name: &str,
        read_only: bool,
        qresync: Option<Qresync>,
    ) -> io::Result<String> {
        // RFC 3501 §6.3.1: a failed SELECT leaves no mailbox selected;
        // RFC 7162 §3.2.11: [CLOSED] marks where the old one's responses end.
        if self.selected.take().is_some() {
            self.io
                .write_all(b"* OK [CLOSED] Previous mailbox closed\r\n")
                .await?;
        }
        let a = self.account();
        let store = &self.inner.store;
        let mb = match store.mailbox(a, name).await {
            Ok(Some(mb)) => mb,
            Ok(None) => return Ok("NO [NONEXISTENT] No such mailbox".into()),
            Err(e) => return Ok(super::store_error(e)),
        };
        // The snapshot below shows every change queued so far; what comes
        // after it is applied again harmlessly (appends and expunges are
        // idempotent on the view).
        self.drop_changes();
        let store = &self.inner.store;
        let hold = match store.hold_folder(a, mb.id).await {
            Ok(h) => h,
            Err(e) => return Ok(super::store_error(e)),
        };
        let list = match store.folder_messages(a, mb.id).await {
            Ok(l) => l,
            Err(e) => return Ok(super::store_error(e)),
        };
        let first_unseen = list.iter().position(|(_, r)| !r.flags.seen());
        let uids: Vec<u32> = list.iter().map(|(u, _)| *u).collect();
        let mut out = format!(
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n* {} EXISTS\r\n",
            uids.len()
        );
        // RFC 9051 §6.3.2 and Appendix E: IMAP4rev2 has neither RECENT
        // nor the UNSEEN response code.
        if !self.rev2 {
            out.push_str("* 0 RECENT\r\n");
            if let Some(i) = first_unseen {
                out.push_str(&format!("* OK [UNSEEN {}] First unseen\r\n", i + 1));
            }
        }
        out.push_str(&format!(
            "* OK [UIDVALIDITY {}] UIDs valid\r\n* OK [UIDNEXT {}] Predicted next UID\r\n",
            mb.info.uidvalidity,
            mb.info.uidnext.max(uids.last().map_or(1, |u| u + 1))
        ));
        // RFC 7162 §3.1.2.1; modseqs are never 0.
        out.push_str(&format!(
            "* OK [HIGHESTMODSEQ {}] Highest\r\n",
            mb.info.highest_modseq.max(1)
        ));
        out.push_str(if read_only {
            "* OK [PERMANENTFLAGS ()] Read-only\r\n"
        } else {
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Limited\r\n"
        });
        let mut out = out.into_bytes();
        // RFC 7162 §3.2.5.1: what changed since the client's last sync.
        if let Some(q) = qresync.filter(|q| q.uidvalidity == mb.info.uidvalidity) {
            let largest = uids.last().copied().unwrap_or(0);
            let ranges = match &q.known_uids {
                Some(known) => known.ranges(largest),
                None => vec![(1, u32::MAX)],
            };
            let gone = match self.vanished_since(mb.id, q.modseq, &ranges).await {
                Ok(g) => g,
                Err(e) => return Ok(super::store_error(e)),
            };
            if !gone.is_empty() {
                let line = format!("* VANISHED (EARLIER) {gone}\r\n");
                out.extend_from_slice(line.as_bytes());
            }
            for (i, (uid, rec)) in list.iter().enumerate() {
                if rec.modseq > q.modseq {
                    let line = format!(
                        "* {} FETCH (UID {uid} FLAGS ({}) MODSEQ ({}))\r\n",
                        i + 1,
                        format::flags(&rec.flags),
                        rec.modseq
                    );
                    out.extend_from_slice(line.as_bytes());
                }
            }
        }
        drop(list);
        self.io.write_later(&out).await?;
        let mut selected = Selected::new(mb.id, read_only, uids);
        selected.hold = Some(hold);
        self.selected = Some(selected);
        Ok(if read_only {
            "OK [READ-ONLY] EXAMINE completed"
        } else {
            "OK [READ-WRITE] SELECT completed"
        }
        .into())
    }

    pub(super) async fn create(&mut self, name: &str) -> String {
        // RFC 3501 §6.3.3: a trailing delimiter only declares intent.
        let name = name.strip_suffix('/').unwrap_or(name);
        match self.inner.store.create_mailbox(self.account(), name).await {
            Ok(_) => "OK CREATE completed".into(),
            Err(e) => super::store_error(e),
        }
    }

    pub(super) async fn delete(&mut self, name: &str) -> String {
        match self.inner.store.delete_mailbox(self.account(), name).await {
            Ok(()) => "OK DELETE completed".into(),
            Err(e) => super::store_error(e),
        }
    }

    pub(super) async fn rename(&mut self, from: &str, to: &str) -> String {
        match self
            .inner
            .store
            .rename_mailbox(self.account(), from, to)
            .await
        {
            Ok(()) => "OK RENAME completed".into(),
            Err(e) => super::store_error(e),
        }
    }

    pub(super) async fn subscribe(&mut self, name: &str, on: bool) -> String {
        match self
            .inner
            .store
            .set_subscribed(self.account(), name, on)
            .await
        {
            Ok(()) => "OK completed".into(),
            Err(e) => super::store_error(e),
        }
    }

    /// LIST and LSUB (RFC 3501 §6.3.8-9) with CHILDREN (RFC 3348) and
    /// SPECIAL-USE (RFC 6154) attributes, and STATUS per folder (RFC 5819).
    pub(super) async fn list(&mut self, l: &ListCommand) -> io::Result<String> {
        let verb = if l.lsub { "LSUB" } else { "LIST" };
        if l.patterns.len() == 1 && l.patterns[0].is_empty() {
            // The hierarchy delimiter query.
            self.io
                .write_all(format!("* {verb} (\\Noselect) \"/\" \"\"\r\n").as_bytes())
                .await?;
            return Ok(format!("OK {verb} completed"));
        }
        let mut patterns = Vec::new();
        for p in &l.patterns {
            if l.reference.len() + p.len() > MAX_PATTERN {
                return Ok("BAD Pattern too long".into());
            }
            patterns.push(normalize_pattern(&format!("{}{p}", l.reference)));
        }
        let mailboxes = match self.inner.store.mailboxes(self.account()).await {
            Ok(m) => m,
            Err(e) => return Ok(super::store_error(e)),
        };
        let mut names: Vec<&str> = mailboxes.iter().map(|m| m.info.name.as_str()).collect();
        names.sort_unstable();
        let subscribed_only = l.lsub || l.subscribed_only;
        // RFC 5258 §3.5: with RECURSIVEMATCH, parents of subscribed folders
        // are listed too, saying why.
        let mut subscribed_parents = std::collections::HashSet::new();
        if l.recursive_match && l.subscribed_only {
            for m in mailboxes.iter().filter(|m| m.info.subscribed) {
                let name = m.info.name.as_str();
                subscribed_parents.extend(name.match_indices('/').map(|(i, _)| &name[..i]));
            }
        }
        let mut out = Vec::new();
        for mb in &mailboxes {
            let name = mb.info.name.as_str();
            let prefix = format!("{name}/");
            let child_subscribed = subscribed_parents.contains(name);
            if (subscribed_only && !mb.info.subscribed && !child_subscribed)
                || (l.special_use_only && mb.info.special_use.is_none())
                || !patterns
                    .iter()
                    .any(|p| matches(p.as_bytes(), name.as_bytes()))
            {
                continue;
            }
            // `names` is sorted: children, if any, follow at once.
            let at = names.partition_point(|n| *n < prefix.as_str());
            let has_children = names.get(at).is_some_and(|n| n.starts_with(&prefix));
            let mut attrs = vec![if has_children {
                "\\HasChildren"
            } else {
                "\\HasNoChildren"
            }];
            if (l.subscribed_only || l.return_subscribed) && mb.info.subscribed {
                attrs.push("\\Subscribed"); // RFC 5258 §3.1, §3.2
            }
            if let Some(su) = mb.info.special_use {
                attrs.push(su.attribute());
            }
            out.extend_from_slice(format!("* {verb} ({}) \"/\" ", attrs.join(" ")).as_bytes());
            format::mailbox(&mut out, name, self.rev2);
            if child_subscribed && !l.lsub {
                out.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            out.extend_from_slice(b"\r\n");
            if let Some(items) = &l.status {
                match self.deleted_count(mb.id, items).await {
                    Ok(deleted) => status_line(&mut out, &mb.info, items, deleted, self.rev2),
                    Err(e) => return Ok(super::store_error(e)),
                }
            }
        }
        self.io.write_all(&out).await?;
        Ok(format!("OK {verb} completed"))
    }

    pub(super) async fn status(&mut self, name: &str, items: &[StatusItem]) -> io::Result<String> {
        let mb = match self.inner.store.mailbox(self.account(), name).await {
            Ok(Some(mb)) => mb,
            Ok(None) => return Ok("NO [NONEXISTENT] No such mailbox".into()),
            Err(e) => return Ok(super::store_error(e)),
        };
        let deleted = match self.deleted_count(mb.id, items).await {
            Ok(d) => d,
            Err(e) => return Ok(super::store_error(e)),
        };
        let mut out = Vec::new();
        status_line(&mut out, &mb.info, items, deleted, self.rev2);
        self.io.write_all(&out).await?;
        Ok("OK STATUS completed".into())
    }

    /// Messages flagged \Deleted, when STATUS asks for DELETED (RFC 9051
    /// §6.3.11). No counter is kept for it, so the folder's records (not
    /// the messages) are read.
    async fn deleted_count(
        &self,
        mailbox: store::MailboxId,
        items: &[StatusItem],
    ) -> Result<u32, store::StoreError> {
        if !items.contains(&StatusItem::Deleted) {
            return Ok(0);
        }
        self.inner
            .store
            .deleted_count(self.account(), mailbox)
            .await
    }

    /// CLOSE expunges silently (RFC 3501 §6.4.2); UNSELECT does not (RFC 3691).
    pub(super) async fn close(&mut self, expunge: bool) -> String {
        let Some(sel) = self.selected.take() else {
            return "BAD No mailbox selected".into();
        };
        if expunge && !sel.read_only {
            let r = self
                .inner
                .store
                .expunge(self.account(), sel.id, ExpungeSet::AllDeleted)
                .await;
            if let Err(e) = r {
                return super::store_error(e);
            }
        }
        "OK completed".into()
    }
}

/// `* STATUS name (...)` from the folder's counters; no message is read.
fn status_line(
    out: &mut Vec<u8>,
    i: &MailboxRecord,
    items: &[StatusItem],
    deleted: u32,
    utf8: bool,
) {
    let values: Vec<String> = items
        .iter()
        .map(|item| match item {
            StatusItem::Messages => format!("MESSAGES {}", i.messages),
            StatusItem::Recent => "RECENT 0".into(),
            StatusItem::UidNext => format!("UIDNEXT {}", i.uidnext),
            StatusItem::UidValidity => format!("UIDVALIDITY {}", i.uidvalidity),
            StatusItem::Unseen => format!("UNSEEN {}", i.unseen),
            StatusItem::Size => format!("SIZE {}", i.size),
            StatusItem::HighestModSeq => format!("HIGHESTMODSEQ {}", i.highest_modseq.max(1)),
            StatusItem::Deleted => format!("DELETED {deleted}"),
        })
        .collect();
    out.extend_from_slice(b"* STATUS ");
    format::mailbox(out, &i.name, utf8);
    out.extend_from_slice(format!(" ({})\r\n", values.join(" ")).as_bytes());
}

/// Flags to set on messages this session fetches without PEEK.
pub(super) fn seen() -> Flags {
    Flags {
        system: Flags::SEEN,
        keywords: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(matches(b"*", b"a/b/c"));
        assert!(matches(b"%", b"INBOX"));
        assert!(!matches(b"%", b"a/b"));
        assert!(matches(b"a/%", b"a/b"));
        assert!(!matches(b"a/%", b"a/b/c"));
        assert!(matches(b"a*c", b"a/b/c"));
        assert!(matches(b"%/%", b"a/b"));
        assert!(!matches(b"b*", b"a"));
        assert!(matches(b"", b""));
        // Many stars stay linear per character.
        let stars = vec![b'*'; 1000];
        assert!(matches(&stars, &[b'x'; 255]));
        assert_eq!(normalize_pattern("inbox/%"), "INBOX/%");
        assert_eq!(normalize_pattern("in"), "in");
    }
}
