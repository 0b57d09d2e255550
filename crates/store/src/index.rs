//! In-memory copies of the message records of folders a session holds open
//! (an IMAP client's selected folder), so SELECT, SEARCH and flag reads are
//! answered from memory instead of by scanning RocksDB. Dovecot keeps the
//! same data in its index files.
//!
//! The writer thread keeps every copy exact: after a group commits, and
//! before anyone is told of it (acknowledgement or change feed), it applies
//! the group's message writes to the copies of the folders they touch. A copy
//! being loaded collects those writes and replays them on top of what it
//! read, so no commit slips between the read and the registration. After the
//! last hold goes, a copy stays for a while (the most recently released
//! ones, within a budget of records and copies): a phone that logs in again
//! finds its folder in memory.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, RwLock, Weak};

use crate::records::{MessageRecord, decode};
use crate::{AccountId, MailboxId, keys};

type Folder = (AccountId, MailboxId);

/// Records kept in copies nobody holds (about 85 bytes each in memory).
const RELEASED_RECORDS: usize = 100_000;
/// Copies nobody holds (each release looks through the list).
const RELEASED_COPIES: usize = 1024;

/// One write of the message column family, as the writer staged it.
pub(crate) enum MessageWrite {
    Put([u8; 16], Vec<u8>),
    Delete([u8; 16]),
    /// A folder or account removed: every key in `[from, to)`.
    DeleteRange(Vec<u8>, Vec<u8>),
}

/// The open folders' copies, by folder.
#[derive(Default)]
pub(crate) struct Indexes {
    folders: Mutex<HashMap<Folder, Weak<FolderIndex>>>,
    released: Mutex<Released>,
}

/// Copies whose holds are gone, least recently released first.
#[derive(Default)]
struct Released {
    copies: VecDeque<(Arc<FolderIndex>, usize)>,
    records: usize,
}

impl Released {
    fn remove(&mut self, index: &Arc<FolderIndex>) -> Option<Arc<FolderIndex>> {
        let at = self
            .copies
            .iter()
            .position(|(c, _)| Arc::ptr_eq(c, index))?;
        let (copy, records) = self.copies.remove(at)?;
        self.records -= records;
        Some(copy)
    }
}

/// Keeps a folder's records in memory while it lives; see the module notes.
pub struct FolderHold {
    index: Arc<FolderIndex>,
}

pub(crate) struct FolderIndex {
    folder: Folder,
    state: RwLock<State>,
    indexes: Weak<Indexes>,
}

enum State {
    /// Being read from the store; the writes committed meanwhile, in order.
    Loading(Vec<Update>),
    Loaded(BTreeMap<u32, MessageRecord>),
    /// Loading failed or a write could not be decoded: reads go to the store.
    Unusable,
}

enum Update {
    Put(u32, MessageRecord),
    Delete(u32),
    Clear,
    /// A write that could not be decoded: the copy cannot follow the store.
    Unusable,
}

impl Indexes {
    /// The folder's copy, and whether the caller created it and must load it.
    pub fn register(self: &Arc<Self>, folder: Folder) -> (Arc<FolderIndex>, bool) {
        let mut folders = lock(&self.folders);
        if let Some(index) = folders.get(&folder).and_then(Weak::upgrade) {
            return (index, false);
        }
        let index = Arc::new(FolderIndex {
            folder,
            state: RwLock::new(State::Loading(Vec::new())),
            indexes: Arc::downgrade(self),
        });
        folders.insert(folder, Arc::downgrade(&index));
        (index, true)
    }

    /// Runs `f` on the folder's records if the folder is held and loaded.
    fn with_loaded<T>(
        &self,
        folder: Folder,
        f: impl FnOnce(&BTreeMap<u32, MessageRecord>) -> T,
    ) -> Option<T> {
        let index = lock(&self.folders).get(&folder)?.upgrade()?;
        let state = read(&index.state);
        match &*state {
            State::Loaded(records) => Some(f(records)),
            State::Loading(_) | State::Unusable => None,
        }
    }

    /// Records with UIDs in `uids` that `keep` accepts, if the folder is
    /// held and loaded.
    pub fn range(
        &self,
        folder: Folder,
        uids: RangeInclusive<u32>,
        keep: impl Fn(u32, &MessageRecord) -> bool,
    ) -> Option<Vec<(u32, MessageRecord)>> {
        self.with_loaded(folder, |records| {
            records
                .range(uids)
                .filter(|(u, r)| keep(**u, r))
                .map(|(&u, r)| (u, r.clone()))
                .collect()
        })
    }

    /// One record (`Some(None)`: no such message), if the folder is loaded.
    pub fn get(&self, folder: Folder, uid: u32) -> Option<Option<MessageRecord>> {
        self.with_loaded(folder, |records| records.get(&uid).cloned())
    }

    /// Applies a committed group's message writes (writer thread only).
    pub fn apply(&self, writes: &[MessageWrite]) {
        if writes.is_empty() {
            return;
        }
        // Take the copies out of the registry first: the last reference may
        // drop here, and dropping one locks the registry.
        let mut touched: Vec<(Arc<FolderIndex>, Update)> = Vec::new();
        {
            let folders = lock(&self.folders);
            if folders.is_empty() {
                return;
            }
            for write in writes {
                match write {
                    MessageWrite::Put(key, value) => {
                        if let Some((index, uid)) = lookup(&folders, key) {
                            let update = match decode("message", value) {
                                Ok(rec) => Update::Put(uid, rec),
                                Err(_) => Update::Unusable,
                            };
                            touched.push((index, update));
                        }
                    }
                    MessageWrite::Delete(key) => {
                        if let Some((index, uid)) = lookup(&folders, key) {
                            touched.push((index, Update::Delete(uid)));
                        }
                    }
                    MessageWrite::DeleteRange(from, to) => {
                        for (&(a, m), weak) in folders.iter() {
                            let prefix = keys::message_prefix(a, m);
                            if from.as_slice() <= prefix.as_slice()
                                && prefix.as_slice() < to.as_slice()
                                && let Some(index) = weak.upgrade()
                            {
                                touched.push((index, Update::Clear));
                            }
                        }
                    }
                }
            }
        }
        for (index, update) in touched {
            index.update(update);
        }
    }
}

/// The held copy a message key belongs to, and the key's UID.
fn lookup(
    folders: &HashMap<Folder, Weak<FolderIndex>>,
    key: &[u8; 16],
) -> Option<(Arc<FolderIndex>, u32)> {
    let a = keys::be_u64(key)?;
    let m = keys::be_u32(key.get(8..)?)?;
    let uid = keys::uid_of_message_key(key)?;
    Some((folders.get(&(a, m))?.upgrade()?, uid))
}

impl FolderIndex {
    /// Fills a copy from the records read after its registration, then
    /// replays the writes committed meanwhile. Replaying a write the read
    /// already saw is harmless: every later write is replayed after it.
    pub fn finish_load(&self, read: Result<Vec<(u32, MessageRecord)>, crate::StoreError>) {
        let mut state = write(&self.state);
        let State::Loading(pending) = &mut *state else {
            return;
        };
        let pending = std::mem::take(pending);
        *state = match read {
            Ok(list) => {
                let mut records: BTreeMap<u32, MessageRecord> = list.into_iter().collect();
                for update in pending {
                    apply_update(&mut records, update);
                }
                State::Loaded(records)
            }
            Err(e) => {
                tracing::warn!(error = %e, "loading a folder into memory failed; reading it from the store");
                State::Unusable
            }
        };
    }

    fn update(&self, update: Update) {
        let mut state = write(&self.state);
        match (&mut *state, update) {
            (State::Unusable, _) => {}
            (_, Update::Unusable) => *state = State::Unusable,
            (State::Loading(pending), update) => pending.push(update),
            (State::Loaded(records), update) => apply_update(records, update),
        }
    }
}

fn apply_update(records: &mut BTreeMap<u32, MessageRecord>, update: Update) {
    match update {
        Update::Put(uid, rec) => {
            records.insert(uid, rec);
        }
        Update::Delete(uid) => {
            records.remove(&uid);
        }
        Update::Clear => records.clear(),
        // `update` turns the copy unusable instead.
        Update::Unusable => {}
    }
}

impl Drop for FolderIndex {
    fn drop(&mut self) {
        if let Some(indexes) = self.indexes.upgrade() {
            let mut folders = lock(&indexes.folders);
            // A new copy may have been registered since the last hold went.
            if folders
                .get(&self.folder)
                .is_some_and(|w| w.strong_count() == 0)
            {
                folders.remove(&self.folder);
            }
        }
    }
}

impl FolderHold {
    pub(crate) fn new(index: Arc<FolderIndex>) -> Self {
        if let Some(indexes) = index.indexes.upgrade() {
            // Held again: no longer counts against the released budget.
            let copy = lock(&indexes.released).remove(&index);
            drop(copy);
        }
        FolderHold { index }
    }
}

impl Drop for FolderHold {
    /// Keeps the copy among the released ones, dropping the least recently
    /// released beyond the budget (counted as of each release). A copy
    /// another session still holds is listed too, which only keeps it longer.
    fn drop(&mut self) {
        let Some(indexes) = self.index.indexes.upgrade() else {
            return;
        };
        let records = match &*read(&self.index.state) {
            State::Loaded(records) => records.len(),
            State::Loading(_) | State::Unusable => return,
        };
        if records > RELEASED_RECORDS {
            return;
        }
        let mut evicted = Vec::new();
        {
            let mut released = lock(&indexes.released);
            if let Some(copy) = released.remove(&self.index) {
                evicted.push(copy);
            }
            released.copies.push_back((self.index.clone(), records));
            released.records += records;
            while released.records > RELEASED_RECORDS || released.copies.len() > RELEASED_COPIES {
                let Some((copy, n)) = released.copies.pop_front() else {
                    break;
                };
                released.records -= n;
                evicted.push(copy);
            }
        }
        // Dropped outside the lock: the last reference locks the registry.
        drop(evicted);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::{ExpungeSet, FlagOp, Flags, Store};

    async fn deliver(store: &Store, a: AccountId, m: MailboxId, system: u8) {
        crate::tests::deliver(store, a, m, system, b"Subject: x\r\n\r\nbody\r\n").await;
    }

    /// The copy against the database itself.
    fn assert_exact(store: &Store, a: AccountId, m: MailboxId) {
        let copy = store.inner.indexes.range((a, m), 1..=u32::MAX, |_, _| true);
        let stored = crate::scan_folder(&store.db(), a, m).unwrap();
        assert_eq!(copy, Some(stored), "copy of folder {m} differs");
    }

    #[tokio::test]
    async fn copies_follow_every_kind_of_write() {
        let dir = tempfile::TempDir::new().unwrap();
        let (store, a, inbox) = crate::tests::with_account(dir.path()).await;
        let other = store.create_mailbox(a, "Other").await.unwrap();
        let _held = (
            store.hold_folder(a, inbox).await.unwrap(),
            store.hold_folder(a, other).await.unwrap(),
        );
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for step in 0..300 {
            let m = if rng.random_bool(0.5) { inbox } else { other };
            let uids: Vec<u32> = store
                .list(a, m, 1..=u32::MAX)
                .await
                .unwrap()
                .into_iter()
                .map(|(u, _)| u)
                .filter(|_| rng.random_bool(0.3))
                .collect();
            match rng.random_range(0..6) {
                0 | 1 => deliver(&store, a, m, rng.random_range(0..32)).await,
                2 => {
                    let op = [FlagOp::Add, FlagOp::Remove, FlagOp::Replace][step % 3];
                    let flags = Flags {
                        system: rng.random_range(0..32),
                        keywords: vec!["$label1".into()],
                    };
                    store.set_flags(a, m, uids, op, flags, None).await.unwrap();
                }
                3 => {
                    let to = if m == inbox { other } else { inbox };
                    store.copy(a, m, uids, to, None).await.unwrap();
                }
                4 => {
                    let to = if m == inbox { other } else { inbox };
                    store.move_messages(a, m, uids, to).await.unwrap();
                }
                _ => {
                    store.expunge(a, m, ExpungeSet::AllDeleted).await.unwrap();
                }
            }
            assert_exact(&store, a, inbox);
            assert_exact(&store, a, other);
        }
        store.delete_mailbox(a, "Other").await.unwrap();
        let copy = store
            .inner
            .indexes
            .range((a, other), 1..=u32::MAX, |_, _| true);
        assert_eq!(copy, Some(Vec::new()));
    }

    /// Writes that commit while a copy loads are in it, whether or not the
    /// read saw them.
    #[tokio::test]
    async fn writes_during_a_load_are_replayed() {
        let dir = tempfile::TempDir::new().unwrap();
        let (store, a, inbox) = crate::tests::with_account(dir.path()).await;
        for _ in 0..3 {
            deliver(&store, a, inbox, 0).await;
        }
        let (index, fresh) = store.inner.indexes.register((a, inbox));
        assert!(fresh);
        deliver(&store, a, inbox, 0).await; // seen by the read and replayed
        let read = crate::scan_folder(&store.db(), a, inbox);
        deliver(&store, a, inbox, Flags::SEEN).await; // replayed only
        let seen = Flags {
            system: Flags::FLAGGED,
            keywords: Vec::new(),
        };
        store
            .set_flags(a, inbox, vec![1, 4], FlagOp::Add, seen, None)
            .await
            .unwrap();
        store
            .expunge(a, inbox, ExpungeSet::Exactly(vec![2]))
            .await
            .unwrap();
        // Not loaded yet: reads go to the database.
        assert!(
            store
                .inner
                .indexes
                .range((a, inbox), 1..=9, |_, _| true)
                .is_none()
        );
        index.finish_load(read);
        let _held = FolderHold::new(index);
        assert_exact(&store, a, inbox);
        let uids: Vec<u32> = store
            .list(a, inbox, 1..=9)
            .await
            .unwrap()
            .into_iter()
            .map(|(u, _)| u)
            .collect();
        assert_eq!(uids, vec![1, 3, 4, 5]);
    }

    fn loaded(indexes: &Arc<Indexes>, folder: Folder, records: u32) -> FolderHold {
        let (index, fresh) = indexes.register(folder);
        assert!(fresh);
        let record = MessageRecord {
            blob: 1,
            size: 1,
            internal_date: 0,
            flags: Flags::default(),
            modseq: 1,
        };
        index.finish_load(Ok((1..=records).map(|u| (u, record.clone())).collect()));
        FolderHold::new(index)
    }

    #[test]
    fn released_copies_stay_within_the_budget() {
        let indexes = Arc::new(Indexes::default());
        let half = RELEASED_RECORDS as u32 / 2 + 1;
        let first = loaded(&indexes, (1, 1), half);
        let second = loaded(&indexes, (1, 2), half);
        drop(first);
        // Released but kept: holding it again needs no load.
        assert!(indexes.with_loaded((1, 1), |_| ()).is_some());
        let (again, fresh) = indexes.register((1, 1));
        assert!(!fresh);
        let first = FolderHold::new(again);
        drop(first);
        // Over the budget: the least recently released copy goes, and with
        // it its registration.
        drop(second);
        assert!(indexes.with_loaded((1, 1), |_| ()).is_none());
        assert!(indexes.with_loaded((1, 2), |_| ()).is_some());
        assert_eq!(lock(&indexes.folders).len(), 1);
        // Nor more copies than the limit, however small.
        for m in 10..10 + RELEASED_COPIES as u32 {
            drop(loaded(&indexes, (2, m), 0));
        }
        assert!(indexes.with_loaded((1, 2), |_| ()).is_none());
        assert_eq!(lock(&indexes.released).copies.len(), RELEASED_COPIES);
        // A copy larger than the whole budget is not kept at all.
        drop(loaded(&indexes, (1, 3), RELEASED_RECORDS as u32 + 1));
        assert!(indexes.with_loaded((1, 3), |_| ()).is_none());
        assert_eq!(lock(&indexes.folders).len(), RELEASED_COPIES);
    }
}
