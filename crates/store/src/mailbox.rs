//! Folders: hierarchy with `/` as delimiter, INBOX rules (RFC 3501 §5.1, §6.3.4-5)
//! and the default special-use folders (RFC 6154) every account starts with.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::feed::{Change, ChangeKind};
use crate::records::{AccountRecord, MailboxRecord, SpecialUse, decode, encode};
use crate::writer::{Txn, scan_prefix};
use crate::{AccountId, MailboxId, Store, StoreError, keys, message};

pub const INBOX: &str = "INBOX";
pub const DELIMITER: char = '/';
const MAX_NAME: usize = 512;
const MAX_DEPTH: usize = 32;

const DEFAULTS: [(&str, Option<SpecialUse>); 6] = [
    (INBOX, None),
    ("Sent", Some(SpecialUse::Sent)),
    ("Drafts", Some(SpecialUse::Drafts)),
    ("Trash", Some(SpecialUse::Trash)),
    ("Junk", Some(SpecialUse::Junk)),
    ("Archive", Some(SpecialUse::Archive)),
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mailbox {
    pub id: MailboxId,
    pub info: MailboxRecord,
}

/// Checks a folder name and spells INBOX (any case, also as a parent) as `INBOX`.
pub fn normalize_name(name: &str) -> Result<String, StoreError> {
    let bad = |why: &str| StoreError::InvalidName(format!("{name:?}: {why}"));
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(bad("empty or too long"));
    }
    if name.chars().any(|c| c.is_control() || c == '*' || c == '%') {
        return Err(bad(
            "control characters and the wildcards * % are not allowed",
        ));
    }
    let parts: Vec<&str> = name.split(DELIMITER).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(bad("empty hierarchy level"));
    }
    if parts.len() > MAX_DEPTH {
        return Err(bad("too deep"));
    }
    let mut out = String::with_capacity(name.len());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(DELIMITER);
        }
        out.push_str(if i == 0 && part.eq_ignore_ascii_case(INBOX) {
            INBOX
        } else {
            part
        });
    }
    Ok(out)
}

/// Parent names of `name`, outermost first: "a/b/c" → ["a", "a/b"].
fn parents(name: &str) -> impl Iterator<Item = &str> {
    name.match_indices(DELIMITER).map(|(i, _)| &name[..i])
}

pub(crate) fn load_account(txn: &Txn<'_>, a: AccountId) -> Result<AccountRecord, StoreError> {
    let v = txn
        .get(keys::CF_ACCOUNT, &keys::account(a))?
        .ok_or(StoreError::NoSuchAccount(a))?;
    decode("account", &v)
}

pub(crate) fn save_account(
    txn: &mut Txn<'_>,
    a: AccountId,
    rec: &AccountRecord,
) -> Result<(), StoreError> {
    txn.put(keys::CF_ACCOUNT, &keys::account(a), encode(rec))
}

pub(crate) fn lookup(
    txn: &Txn<'_>,
    a: AccountId,
    name: &str,
) -> Result<Option<MailboxId>, StoreError> {
    Ok(txn
        .get(keys::CF_MAILBOX, &keys::mailbox_name(a, name))?
        .and_then(|v| keys::be_u32(&v)))
}

pub(crate) fn load(txn: &Txn<'_>, a: AccountId, m: MailboxId) -> Result<MailboxRecord, StoreError> {
    let v = txn
        .get(keys::CF_MAILBOX, &keys::mailbox(a, m))?
        .ok_or_else(|| StoreError::NoSuchMailbox(format!("#{m}")))?;
    decode("mailbox", &v)
}

pub(crate) fn save(
    txn: &mut Txn<'_>,
    a: AccountId,
    m: MailboxId,
    rec: &MailboxRecord,
) -> Result<(), StoreError> {
    txn.put(keys::CF_MAILBOX, &keys::mailbox(a, m), encode(rec))
}

/// A UIDVALIDITY never handed out before in this store (RFC 3501 §2.3.1.1): a
/// folder deleted and created again under the same name must get a new one.
fn new_uidvalidity(txn: &mut Txn<'_>) -> Result<u32, StoreError> {
    let last = txn
        .get(keys::CF_META, keys::META_LAST_UIDVALIDITY)?
        .and_then(|v| keys::be_u32(&v))
        .unwrap_or(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0);
    let next = now.max(last.wrapping_add(1)).max(1);
    txn.put(
        keys::CF_META,
        keys::META_LAST_UIDVALIDITY,
        next.to_be_bytes().to_vec(),
    )?;
    Ok(next)
}

/// Creates one folder whose name is known to be free; returns its id.
fn insert(
    txn: &mut Txn<'_>,
    a: AccountId,
    acct: &mut AccountRecord,
    name: &str,
    special_use: Option<SpecialUse>,
) -> Result<MailboxId, StoreError> {
    let id = acct.next_mailbox;
    acct.next_mailbox += 1;
    acct.modseq += 1;
    let rec = MailboxRecord {
        name: name.to_string(),
        special_use,
        uidvalidity: new_uidvalidity(txn)?,
        uidnext: 1,
        highest_modseq: acct.modseq,
        subscribed: true,
        messages: 0,
        unseen: 0,
        size: 0,
    };
    save(txn, a, id, &rec)?;
    txn.put(
        keys::CF_MAILBOX,
        &keys::mailbox_name(a, name),
        id.to_be_bytes().to_vec(),
    )?;
    txn.publish(Change {
        account: a,
        mailbox: id,
        modseq: acct.modseq,
        kind: ChangeKind::MailboxCreated,
    });
    Ok(id)
}

pub(crate) fn create_defaults(txn: &mut Txn<'_>, a: AccountId) -> Result<(), StoreError> {
    let mut acct = AccountRecord {
        quota_used: 0,
        next_mailbox: 1,
        modseq: 0,
    };
    for (name, special_use) in DEFAULTS {
        insert(txn, a, &mut acct, name, special_use)?;
    }
    save_account(txn, a, &acct)
}

/// Creates `name` and any missing parents; errors if `name` exists.
fn create(txn: &mut Txn<'_>, a: AccountId, name: &str) -> Result<MailboxId, StoreError> {
    let mut acct = load_account(txn, a)?;
    if lookup(txn, a, name)?.is_some() {
        return Err(StoreError::MailboxExists(name.to_string()));
    }
    for parent in parents(name) {
        if lookup(txn, a, parent)?.is_none() {
            insert(txn, a, &mut acct, parent, None)?;
        }
    }
    let id = insert(txn, a, &mut acct, name, None)?;
    save_account(txn, a, &acct)?;
    Ok(id)
}

impl Store {
    /// All folders of the account, sorted by name.
    pub async fn mailboxes(&self, a: AccountId) -> Result<Vec<Mailbox>, StoreError> {
        self.read(move |db| {
            let names = scan_prefix(db, keys::CF_MAILBOX, &keys::mailbox_name_prefix(a))?;
            let cf = crate::writer::handle(db, keys::CF_MAILBOX)?;
            let mut out = Vec::with_capacity(names.len());
            for (_, id) in names {
                let id =
                    keys::be_u32(&id).ok_or_else(|| StoreError::Corrupt("mailbox id".into()))?;
                if let Some(v) = db.get_cf(cf, keys::mailbox(a, id))? {
                    out.push(Mailbox {
                        id,
                        info: decode("mailbox", &v)?,
                    });
                }
            }
            Ok(out)
        })
        .await
    }

    /// The folder called `name` (INBOX in any case), if it exists.
    pub async fn mailbox(&self, a: AccountId, name: &str) -> Result<Option<Mailbox>, StoreError> {
        let name = normalize_name(name)?;
        self.read_small(move |r| {
            let Some(id) = r
                .get(keys::CF_MAILBOX, &keys::mailbox_name(a, &name))?
                .and_then(|v| keys::be_u32(&v))
            else {
                return Ok(None);
            };
            Ok(r.get(keys::CF_MAILBOX, &keys::mailbox(a, id))?
                .map(|v| decode("mailbox", &v))
                .transpose()?
                .map(|info| Mailbox { id, info }))
        })
        .await
    }

    pub async fn create_mailbox(&self, a: AccountId, name: &str) -> Result<MailboxId, StoreError> {
        let name = normalize_name(name)?;
        self.submit(false, move |txn| create(txn, a, &name)).await
    }

    /// Renames a folder and its subfolders. Renaming INBOX moves its messages into
    /// the new folder and leaves INBOX empty (RFC 3501 §6.3.5).
    pub async fn rename_mailbox(
        &self,
        a: AccountId,
        from: &str,
        to: &str,
    ) -> Result<(), StoreError> {
        let (from, to) = (normalize_name(from)?, normalize_name(to)?);
        self.submit(true, move |txn| {
            let from_id =
                lookup(txn, a, &from)?.ok_or_else(|| StoreError::NoSuchMailbox(from.clone()))?;
            if lookup(txn, a, &to)?.is_some() {
                return Err(StoreError::MailboxExists(to.clone()));
            }
            if to.starts_with(&format!("{from}{DELIMITER}")) {
                return Err(StoreError::InvalidName(format!(
                    "{to:?} is inside {from:?}"
                )));
            }
            if from == INBOX {
                let to_id = create(txn, a, &to)?;
                return message::move_all(txn, a, from_id, to_id);
            }
            let mut acct = load_account(txn, a)?;
            for parent in parents(&to) {
                if lookup(txn, a, parent)?.is_none() {
                    insert(txn, a, &mut acct, parent, None)?;
                }
            }
            let prefix = format!("{from}{DELIMITER}");
            let mut moves = vec![(from.clone(), from_id)];
            for (k, v) in txn.scan(keys::CF_MAILBOX, &keys::mailbox_name(a, &prefix))? {
                let name = String::from_utf8_lossy(&k[9..]).into_owned();
                moves.push((
                    name,
                    keys::be_u32(&v).ok_or_else(|| StoreError::Corrupt("mailbox id".into()))?,
                ));
            }
            acct.modseq += 1;
            for (old, id) in moves {
                let new = format!("{to}{}", &old[from.len()..]);
                let mut rec = load(txn, a, id)?;
                rec.name = new.clone();
                save(txn, a, id, &rec)?;
                txn.delete(keys::CF_MAILBOX, &keys::mailbox_name(a, &old))?;
                txn.put(
                    keys::CF_MAILBOX,
                    &keys::mailbox_name(a, &new),
                    id.to_be_bytes().to_vec(),
                )?;
                txn.publish(Change {
                    account: a,
                    mailbox: id,
                    modseq: acct.modseq,
                    kind: ChangeKind::MailboxRenamed,
                });
            }
            save_account(txn, a, &acct)
        })
        .await
    }

    /// Deletes a folder and its messages. Like Dovecot, a folder with subfolders
    /// must have them deleted first.
    pub async fn delete_mailbox(&self, a: AccountId, name: &str) -> Result<(), StoreError> {
        let name = normalize_name(name)?;
        if name == INBOX {
            return Err(StoreError::CannotDeleteInbox);
        }
        self.submit(true, move |txn| {
            let id =
                lookup(txn, a, &name)?.ok_or_else(|| StoreError::NoSuchMailbox(name.clone()))?;
            let children = keys::mailbox_name(a, &format!("{name}{DELIMITER}"));
            if !txn.scan(keys::CF_MAILBOX, &children)?.is_empty() {
                return Err(StoreError::HasChildren(name.clone()));
            }
            message::delete_mailbox_messages(txn, a, id)?;
            let mut acct = load_account(txn, a)?;
            acct.modseq += 1;
            txn.delete(keys::CF_MAILBOX, &keys::mailbox(a, id))?;
            txn.delete(keys::CF_MAILBOX, &keys::mailbox_name(a, &name))?;
            save_account(txn, a, &acct)?;
            txn.publish(Change {
                account: a,
                mailbox: id,
                modseq: acct.modseq,
                kind: ChangeKind::MailboxDeleted,
            });
            Ok(())
        })
        .await
    }

    pub async fn set_subscribed(
        &self,
        a: AccountId,
        name: &str,
        subscribed: bool,
    ) -> Result<(), StoreError> {
        let name = normalize_name(name)?;
        self.submit(false, move |txn| {
            let id =
                lookup(txn, a, &name)?.ok_or_else(|| StoreError::NoSuchMailbox(name.clone()))?;
            let mut rec = load(txn, a, id)?;
            rec.subscribed = subscribed;
            save(txn, a, id, &rec)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_inbox_normalized() {
        assert_eq!(normalize_name("inbox").as_deref(), Ok("INBOX"));
        assert_eq!(normalize_name("InBoX/Sub").as_deref(), Ok("INBOX/Sub"));
        assert_eq!(normalize_name("Work/inbox").as_deref(), Ok("Work/inbox"));
        for bad in ["", "/a", "a/", "a//b", "a*", "a%b", "a\u{0}b"] {
            assert!(normalize_name(bad).is_err(), "{bad:?}");
        }
        assert!(normalize_name("a/".repeat(40).trim_end_matches('/')).is_err());
    }

    #[test]
    fn parents_outermost_first() {
        assert_eq!(parents("a/b/c").collect::<Vec<_>>(), ["a", "a/b"]);
        assert_eq!(parents("a").count(), 0);
    }
}
