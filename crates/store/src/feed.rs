//! The change feed: after a batch commits, the writer publishes what changed per
//! account; IMAP sessions (IDLE included) subscribe and wake at once, no polling.
//! A subscriber that falls behind gets `Lagged` and catches up from the change log
//! (`Store::changes_since`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::{AccountId, MailboxId};

/// Events kept per account for slow subscribers before they see `Lagged`.
const CAPACITY: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// New messages (delivery, APPEND, COPY, MOVE target), by UID.
    Appended(Vec<u32>),
    /// Flags changed, by UID.
    Flags(Vec<u32>),
    /// Messages removed (EXPUNGE, MOVE source, POP3 DELE), by UID.
    Expunged(Vec<u32>),
    MailboxCreated,
    MailboxRenamed,
    MailboxDeleted,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub account: AccountId,
    pub mailbox: MailboxId,
    pub modseq: u64,
    pub kind: ChangeKind,
}

#[derive(Default)]
pub(crate) struct Feed {
    senders: Mutex<HashMap<AccountId, broadcast::Sender<Arc<Change>>>>,
}

impl Feed {
    pub fn subscribe(&self, account: AccountId) -> broadcast::Receiver<Arc<Change>> {
        let mut senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        senders
            .entry(account)
            .or_insert_with(|| broadcast::channel(CAPACITY).0)
            .subscribe()
    }

    pub fn publish(&self, change: Change) {
        let mut senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        let account = change.account;
        // Nobody listens any more: forget the account's channel.
        if let Some(tx) = senders.get(&account)
            && tx.send(Arc::new(change)).is_err()
        {
            senders.remove(&account);
        }
    }
}
