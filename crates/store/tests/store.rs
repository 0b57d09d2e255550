//! The store against a real RocksDB on disk.

use std::sync::Arc;

use store::{
    AccountId, ChangeKind, DirOp, ExpungeSet, Expunged, FlagOp, Flags, MailboxRef, Store,
    StoreError, StoreOptions, Target,
};
use tempfile::TempDir;

fn open(dir: &TempDir) -> Store {
    Store::open(dir.path(), StoreOptions::default()).expect("open store")
}

async fn account(store: &Store) -> AccountId {
    store
        .create_account(|id| {
            vec![DirOp::Put(
                format!("account/{id}").into_bytes(),
                b"x".to_vec(),
            )]
        })
        .await
        .expect("create account")
}

fn inbox(account: AccountId) -> Target {
    Target {
        account,
        mailbox: MailboxRef::Inbox,
        flags: Flags::default(),
        quota_limit: None,
    }
}

fn message(n: usize, size: usize) -> Vec<u8> {
    let mut m = format!("From: a@example.org\r\nTo: b@example.org\r\nSubject: message {n}\r\n\r\n")
        .into_bytes();
    while m.len() < size {
        m.extend_from_slice(
            b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n",
        );
    }
    m
}

async fn deliver(
    store: &Store,
    bytes: &[u8],
    targets: Vec<Target>,
) -> Vec<Result<store::Appended, StoreError>> {
    let mut w = store.blob_writer();
    w.write(bytes).await.expect("write");
    store
        .deliver(w.finish(), targets, 1_700_000_000)
        .await
        .expect("deliver")
}

async fn read_all(store: &Store, blob: u64) -> Vec<u8> {
    let mut r = store.open_blob(blob).await.expect("open blob");
    let mut out = Vec::new();
    while let Some(c) = r.next_chunk().await.expect("chunk") {
        out.extend_from_slice(&c);
    }
    out
}

async fn assert_consistent(store: &Store) {
    let report = store.verify().await.expect("verify");
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
}

#[tokio::test]
async fn new_account_has_special_use_folders() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let a = account(&store).await;
    let boxes = store.mailboxes(a).await.unwrap();
    let names: Vec<_> = boxes
        .iter()
        .map(|m| {
            (
                m.info.name.as_str(),
                m.info.special_use.map(|s| s.attribute()),
            )
        })
        .collect();
    for want in [
        ("INBOX", None),
        ("Sent", Some("\\Sent")),
        ("Drafts", Some("\\Drafts")),
        ("Trash", Some("\\Trash")),
        ("Junk", Some("\\Junk")),
        ("Archive", Some("\\Archive")),
    ] {
        assert!(names.contains(&want), "{want:?} missing in {names:?}");
    }
    let validities: std::collections::HashSet<_> =
        boxes.iter().map(|m| m.info.uidvalidity).collect();
    assert_eq!(
        validities.len(),
        boxes.len(),
        "UIDVALIDITY values are unique"
    );
    assert_eq!(
        store
            .dir_get(format!("account/{a}").into_bytes())
            .await
            .unwrap(),
        Some(b"x".to_vec())
    );
}

#[tokio::test]
async fn append_list_flags_copy_move_expunge() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let a = account(&store).await;
    let inbox_id = store.mailbox(a, "inbox").await.unwrap().unwrap().id;
    let archive = store.mailbox(a, "Archive").await.unwrap().unwrap().id;

    for n in 0..3 {
        let r = deliver(&store, &message(n, 500), vec![inbox(a)]).await;
        assert_eq!(r[0].as_ref().unwrap().uid, n as u32 + 1);
    }
    let listed = store.list(a, inbox_id, 1..=u32::MAX).await.unwrap();
    assert_eq!(
        listed.iter().map(|(u, _)| *u).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(store.list(a, inbox_id, 2..=2).await.unwrap().len(), 1);
    let modseq_before = store
        .mailbox(a, "INBOX")
        .await
        .unwrap()
        .unwrap()
        .info
        .highest_modseq;

    // Flags: add \Seen and a keyword to 1 and 2; modseq grows; unseen count follows.
    let seen = Flags {
        system: Flags::SEEN,
        keywords: vec!["$Important".into()],
    };
    let (updates, modified) = store
        .set_flags(a, inbox_id, vec![1, 2, 99], FlagOp::Add, seen.clone(), None)
        .await
        .unwrap();
    assert!(modified.is_empty());
    assert_eq!(updates.len(), 2, "UID 99 does not exist");
    assert!(
        updates
            .iter()
            .all(|u| u.changed && u.flags.seen() && u.modseq > modseq_before)
    );
    let info = store.mailbox(a, "INBOX").await.unwrap().unwrap().info;
    assert_eq!((info.messages, info.unseen), (3, 1));
    assert_eq!(info.highest_modseq, updates[0].modseq);
    // Setting the same flags again changes nothing.
    let (again, _) = store
        .set_flags(a, inbox_id, vec![1], FlagOp::Add, seen.clone(), None)
        .await
        .unwrap();
    assert!(!again[0].changed);
    // UNCHANGEDSINCE below the current modseq refuses (RFC 7162).
    let (_, modified) = store
        .set_flags(
            a,
            inbox_id,
            vec![1],
            FlagOp::Remove,
            seen.clone(),
            Some(modseq_before),
        )
        .await
        .unwrap();
    assert_eq!(modified, [1]);

    // Copy 1 and 3 to Archive: new UIDs there, flags kept.
    let copied = store
        .copy(a, inbox_id, vec![1, 3], archive, None)
        .await
        .unwrap();
    assert_eq!(copied.uids, [(1, 1), (3, 2)]);
    let arch = store.list(a, archive, 1..=u32::MAX).await.unwrap();
    assert!(arch[0].1.flags.seen() && !arch[1].1.flags.seen());
    assert_eq!(
        arch[0].1.blob, listed[0].1.blob,
        "copies share the stored bytes"
    );

    // Move 2 to Archive: gone from INBOX.
    let moved = store
        .move_messages(a, inbox_id, vec![2], archive)
        .await
        .unwrap();
    assert_eq!(moved.uids, [(2, 3)]);
    assert_eq!(
        store.list(a, inbox_id, 1..=u32::MAX).await.unwrap().len(),
        2
    );

    // Expunge: only \Deleted ones for AllDeleted.
    store
        .set_flags(
            a,
            inbox_id,
            vec![3],
            FlagOp::Add,
            Flags {
                system: Flags::DELETED,
                keywords: vec![],
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .expunge(a, inbox_id, ExpungeSet::AllDeleted)
            .await
            .unwrap(),
        [3]
    );
    assert_eq!(
        store
            .expunge(a, inbox_id, ExpungeSet::DeletedAmong(vec![1]))
            .await
            .unwrap(),
        Vec::<u32>::new()
    );
    assert_eq!(
        store
            .expunge(a, inbox_id, ExpungeSet::Exactly(vec![1]))
            .await
            .unwrap(),
        [1]
    );
    let info = store.mailbox(a, "INBOX").await.unwrap().unwrap().info;
    assert_eq!(
        (info.messages, info.uidnext),
        (0, 4),
        "UIDs are never reused"
    );
    let Expunged::Logged(expunged) = store
        .expunged_since(a, inbox_id, modseq_before)
        .await
        .unwrap()
    else {
        panic!("the log of a new folder is whole");
    };
    assert_eq!(
        expunged.len(),
        3,
        "move and expunges are logged for VANISHED: {expunged:?}"
    );
    assert_consistent(&store).await;
}

#[tokio::test]
async fn quota_counter_exact_and_blob_freed_after_last_reference() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let a = account(&store).await;
    let b = account(&store).await;
    let inbox_a = store.mailbox(a, "INBOX").await.unwrap().unwrap().id;
    let trash_a = store.mailbox(a, "Trash").await.unwrap().unwrap().id;
    let inbox_b = store.mailbox(b, "INBOX").await.unwrap().unwrap().id;
    let bytes = message(0, 10_000);
    let size = bytes.len() as u64;

    // One delivery to two accounts: one blob, two references.
    let r = deliver(&store, &bytes, vec![inbox(a), inbox(b)]).await;
    assert!(r.iter().all(|r| r.is_ok()));
    assert_eq!(store.verify().await.unwrap().blobs, 1);
    assert_eq!(store.quota_used(a).await.unwrap(), size);
    assert_eq!(store.quota_used(b).await.unwrap(), size);

    // A copy counts again; a move does not.
    store
        .copy(a, inbox_a, vec![1], trash_a, None)
        .await
        .unwrap();
    assert_eq!(store.quota_used(a).await.unwrap(), 2 * size);
    store
        .move_messages(a, trash_a, vec![1], inbox_a)
        .await
        .unwrap();
    assert_eq!(store.quota_used(a).await.unwrap(), 2 * size);
    // Over-quota copy is refused and changes nothing.
    assert_eq!(
        store
            .copy(a, inbox_a, vec![1], trash_a, Some(2 * size))
            .await,
        Err(StoreError::OverQuota)
    );
    assert_eq!(store.quota_used(a).await.unwrap(), 2 * size);

    let blob = store.list(a, inbox_a, 1..=1).await.unwrap()[0].1.blob;
    assert_eq!(read_all(&store, blob).await, bytes);
    store
        .expunge(a, inbox_a, ExpungeSet::Exactly(vec![1, 2]))
        .await
        .unwrap();
    assert_eq!(store.quota_used(a).await.unwrap(), 0);
    assert_eq!(read_all(&store, blob).await, bytes, "b still references it");
    store
        .expunge(b, inbox_b, ExpungeSet::Exactly(vec![1]))
        .await
        .unwrap();
    assert!(
        store.open_blob(blob).await.is_err(),
        "freed after the last reference"
    );
    let report = store.verify().await.unwrap();
    assert_eq!(report.blobs, 0);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[tokio::test]
async fn over_quota_target_fails_alone() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let (a, b) = (account(&store).await, account(&store).await);
    let bytes = message(0, 5000);
    let full = Target {
        quota_limit: Some(100),
        ..inbox(a)
    };
    let r = deliver(&store, &bytes, vec![full, inbox(b)]).await;
    assert_eq!(r[0], Err(StoreError::OverQuota));
    assert!(r[1].is_ok());
    assert_eq!(store.quota_used(a).await.unwrap(), 0);
    // Nobody takes it: the blob is not kept.
    let r = deliver(
        &store,
        &bytes,
        vec![Target {
            quota_limit: Some(100),
            ..inbox(a)
        }],
    )
    .await;
    assert_eq!(r[0], Err(StoreError::OverQuota));
    assert_eq!(store.verify().await.unwrap().blobs, 1);
    assert_consistent(&store).await;
}

#[tokio::test]
async fn folders_hierarchy_rename_delete() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let a = account(&store).await;
    store.create_mailbox(a, "Work/Projects/2026").await.unwrap();
    assert!(
        store.mailbox(a, "Work/Projects").await.unwrap().is_some(),
        "parents are created"
    );
    assert_eq!(
        store.create_mailbox(a, "Work").await,
        Err(StoreError::MailboxExists("Work".into()))
    );
    assert!(matches!(
        store.create_mailbox(a, "Bad//Name").await,
        Err(StoreError::InvalidName(_))
    ));

    let work = store
        .mailbox(a, "Work/Projects/2026")
        .await
        .unwrap()
        .unwrap();
    deliver(
        &store,
        &message(0, 100),
        vec![Target {
            mailbox: MailboxRef::Name("Work/Projects/2026".into()),
            ..inbox(a)
        }],
    )
    .await;
    store.rename_mailbox(a, "Work", "Jobs").await.unwrap();
    assert!(store.mailbox(a, "Work").await.unwrap().is_none());
    let renamed = store
        .mailbox(a, "Jobs/Projects/2026")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (renamed.id, renamed.info.uidvalidity, renamed.info.messages),
        (work.id, work.info.uidvalidity, 1)
    );

    assert_eq!(
        store.delete_mailbox(a, "Jobs").await,
        Err(StoreError::HasChildren("Jobs".into()))
    );
    assert_eq!(
        store.delete_mailbox(a, "inbox").await,
        Err(StoreError::CannotDeleteInbox)
    );
    store.delete_mailbox(a, "Jobs/Projects/2026").await.unwrap();
    assert_eq!(
        store.quota_used(a).await.unwrap(),
        0,
        "deleting a folder frees its quota"
    );
    store.create_mailbox(a, "Jobs/Projects/2026").await.unwrap();
    let again = store
        .mailbox(a, "Jobs/Projects/2026")
        .await
        .unwrap()
        .unwrap();
    assert_ne!(
        again.info.uidvalidity, work.info.uidvalidity,
        "re-created folder gets a new UIDVALIDITY"
    );

    // RFC 3501 §6.3.5: renaming INBOX moves its messages and leaves it empty.
    deliver(&store, &message(1, 100), vec![inbox(a)]).await;
    store.rename_mailbox(a, "INBOX", "Old").await.unwrap();
    assert_eq!(
        store
            .mailbox(a, "INBOX")
            .await
            .unwrap()
            .unwrap()
            .info
            .messages,
        0
    );
    assert_eq!(
        store
            .mailbox(a, "Old")
            .await
            .unwrap()
            .unwrap()
            .info
            .messages,
        1
    );
    assert_consistent(&store).await;
}

#[tokio::test]
async fn change_feed_announces_appends_flags_expunges() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let a = account(&store).await;
    let inbox_id = store.mailbox(a, "INBOX").await.unwrap().unwrap().id;
    let mut feed = store.subscribe(a);
    deliver(&store, &message(0, 100), vec![inbox(a)]).await;
    store
        .set_flags(
            a,
            inbox_id,
            vec![1],
            FlagOp::Add,
            Flags {
                system: Flags::FLAGGED,
                keywords: vec![],
            },
            None,
        )
        .await
        .unwrap();
    store
        .expunge(a, inbox_id, ExpungeSet::Exactly(vec![1]))
        .await
        .unwrap();
    let mut kinds = Vec::new();
    for _ in 0..3 {
        let c = feed.recv().await.unwrap();
        assert_eq!((c.account, c.mailbox), (a, inbox_id));
        kinds.push(c.kind.clone());
    }
    assert_eq!(
        kinds,
        [
            ChangeKind::Appended(vec![1]),
            ChangeKind::Flags(vec![1]),
            ChangeKind::Expunged(vec![1])
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deliveries_get_unique_uids() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let a = account(&store).await;
    let bytes = Arc::new(message(0, 2000));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (store, bytes) = (store.clone(), bytes.clone());
        tasks.push(tokio::spawn(async move {
            deliver(&store, &bytes, vec![inbox(a)]).await
        }));
    }
    let mut uids = Vec::new();
    for t in tasks {
        uids.push(t.await.unwrap()[0].as_ref().unwrap().uid);
    }
    uids.sort_unstable();
    assert_eq!(uids, (1..=64).collect::<Vec<_>>());
    assert_eq!(store.quota_used(a).await.unwrap(), 64 * bytes.len() as u64);
    assert_consistent(&store).await;
}

#[tokio::test]
async fn reopen_keeps_everything() {
    let dir = TempDir::new().unwrap();
    let bytes = message(0, 3 * store::CHUNK_SIZE + 17);
    let (a, validity) = {
        let store = open(&dir);
        let a = account(&store).await;
        store.create_mailbox(a, "Keep/Me").await.unwrap();
        deliver(&store, &bytes, vec![inbox(a)]).await;
        (
            a,
            store
                .mailbox(a, "INBOX")
                .await
                .unwrap()
                .unwrap()
                .info
                .uidvalidity,
        )
    };
    let store = open(&dir);
    let inbox_box = store.mailbox(a, "INBOX").await.unwrap().unwrap();
    assert_eq!(
        (
            inbox_box.info.uidvalidity,
            inbox_box.info.messages,
            inbox_box.info.uidnext
        ),
        (validity, 1, 2)
    );
    assert!(store.mailbox(a, "Keep/Me").await.unwrap().is_some());
    let rec = store.message(a, inbox_box.id, 1).await.unwrap().unwrap();
    assert_eq!(read_all(&store, rec.blob).await, bytes);
    let summary = store.summary(rec.blob).await.unwrap();
    assert_eq!(summary.size, bytes.len() as u64);
    assert_eq!(summary.envelope.subject.as_deref(), Some("message 0"));
    // A new account after reopen gets a new id.
    assert_ne!(account(&store).await, a);
    assert_consistent(&store).await;
}

/// Uploads that never reach a commit leave no chunks behind. (A crash between the
/// chunks and the commit is the crash test's job: it SIGKILLs multi-chunk uploads.)
#[tokio::test]
async fn abandoned_upload_leaves_nothing() {
    let dir = TempDir::new().unwrap();
    let bytes = message(0, 2 * store::CHUNK_SIZE + 5);
    let store = open(&dir);
    // A client that disconnects mid-DATA: the writer is dropped.
    let mut w = store.blob_writer();
    w.write(&bytes).await.unwrap();
    drop(w);
    // A message received in full whose delivery is never attempted.
    let mut w = store.blob_writer();
    w.write(&bytes).await.unwrap();
    drop(w.finish());
    let a = account(&store).await;
    deliver(&store, &message(1, 100), vec![inbox(a)]).await;
    // Dropping hands the cleanup to the blocking pool; it is done shortly after.
    let mut report = store.verify().await.unwrap();
    for _ in 0..100 {
        if report.pending_uploads == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        report = store.verify().await.unwrap();
    }
    assert_eq!((report.blobs, report.pending_uploads), (1, 0));
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    drop(store);
    // And nothing is left for the next start to clean up either.
    let store = open(&dir);
    assert!(store.verify().await.unwrap().problems.is_empty());
}

#[tokio::test]
async fn remove_account_drops_mail_and_references() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let (a, b) = (account(&store).await, account(&store).await);
    deliver(&store, &message(0, 1000), vec![inbox(a), inbox(b)]).await;
    store
        .remove_account(a, vec![DirOp::Delete(format!("account/{a}").into_bytes())])
        .await
        .unwrap();
    assert!(store.mailboxes(a).await.unwrap().is_empty());
    assert_eq!(store.quota_used(a).await, Err(StoreError::NoSuchAccount(a)));
    assert_eq!(
        store
            .dir_get(format!("account/{a}").into_bytes())
            .await
            .unwrap(),
        None
    );
    let report = store.verify().await.unwrap();
    assert_eq!(report.blobs, 1, "b still has it");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[tokio::test]
async fn bare_lf_is_stored_as_crlf_even_across_writes() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let a = account(&store).await;
    let mut w = store.blob_writer();
    // A CRLF split between two writes stays one CRLF; bare LFs gain a CR.
    for part in [
        &b"Subject: x\r"[..],
        b"\nFrom: a@b\n\nline one\nline two\r\n",
        b"end\n",
    ] {
        w.write(part).await.unwrap();
    }
    let r = store.deliver(w.finish(), vec![inbox(a)], 0).await.unwrap();
    let expected = b"Subject: x\r\nFrom: a@b\r\n\r\nline one\r\nline two\r\nend\r\n";
    let inbox_id = r[0].as_ref().unwrap().mailbox;
    let rec = store.message(a, inbox_id, 1).await.unwrap().unwrap();
    assert_eq!(rec.size, expected.len() as u64);
    assert_eq!(read_all(&store, rec.blob).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_sees_a_consistent_view_while_writers_run() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let a = account(&store).await;
    let inbox_id = store.mailbox(a, "INBOX").await.unwrap().unwrap().id;
    let mut writers = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for n in 0..100 {
                let big = n % 10 == 0;
                let bytes = message(w * 1000 + n, if big { store::CHUNK_SIZE + 10 } else { 500 });
                deliver(&store, &bytes, vec![inbox(a)]).await;
                if n % 3 == 0 {
                    let uid = store.list(a, inbox_id, 1..=u32::MAX).await.unwrap()[0].0;
                    let _ = store
                        .expunge(a, inbox_id, ExpungeSet::Exactly(vec![uid]))
                        .await;
                }
            }
        }));
    }
    let mut checks = 0;
    while writers.iter().any(|w| !w.is_finished()) {
        let report = store.verify().await.unwrap();
        assert!(report.problems.is_empty(), "{:#?}", report.problems);
        checks += 1;
    }
    for w in writers {
        w.await.unwrap();
    }
    assert!(checks > 1, "verify ran while the writers were busy");
    assert_consistent(&store).await;
}

#[tokio::test]
async fn expunge_takes_the_deleted_set_kept_by_every_write() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let a = account(&store).await;
    let inbox_id = store.mailbox(a, "INBOX").await.unwrap().unwrap().id;
    let archive = store.mailbox(a, "Archive").await.unwrap().unwrap().id;
    let deleted = Flags {
        system: Flags::DELETED,
        keywords: Vec::new(),
    };
    // 1 arrives flagged \Deleted; 2..=6 plain.
    let mut flagged = inbox(a);
    flagged.flags = deleted.clone();
    deliver(&store, &message(1, 300), vec![flagged]).await;
    for n in 2..=6 {
        deliver(&store, &message(n, 300), vec![inbox(a)]).await;
    }
    store
        .set_flags(
            a,
            inbox_id,
            vec![2, 3, 4],
            FlagOp::Add,
            deleted.clone(),
            None,
        )
        .await
        .unwrap();
    store
        .set_flags(a, inbox_id, vec![3], FlagOp::Remove, deleted.clone(), None)
        .await
        .unwrap();
    assert_eq!(store.deleted_count(a, inbox_id).await.unwrap(), 3);
    assert_consistent(&store).await;

    // A copy keeps the flag (and joins the target's set); a move takes the
    // message out of the source's set.
    let copied = store
        .copy(a, inbox_id, vec![2], archive, None)
        .await
        .unwrap();
    store
        .move_messages(a, inbox_id, vec![4], archive)
        .await
        .unwrap();
    assert_eq!(store.deleted_count(a, inbox_id).await.unwrap(), 2);
    assert_eq!(store.deleted_count(a, archive).await.unwrap(), 2);
    assert_consistent(&store).await;

    // A flag change and an EXPUNGE queued together (one commit group): the
    // expunge sees the change.
    let (flag, gone) = tokio::join!(
        store.set_flags(a, inbox_id, vec![6], FlagOp::Add, deleted.clone(), None),
        store.expunge(a, inbox_id, ExpungeSet::AllDeleted),
    );
    flag.unwrap();
    assert_eq!(gone.unwrap(), vec![1, 2, 6]);
    assert_eq!(
        store
            .list(a, inbox_id, 1..=u32::MAX)
            .await
            .unwrap()
            .iter()
            .map(|(u, _)| *u)
            .collect::<Vec<_>>(),
        [3, 5]
    );
    assert_eq!(store.deleted_count(a, inbox_id).await.unwrap(), 0);
    let archived = store
        .expunge(a, archive, ExpungeSet::AllDeleted)
        .await
        .unwrap();
    assert_eq!(archived.len(), 2);
    assert!(archived.contains(&copied.uids[0].1));
    assert_eq!(store.folder_messages(a, archive).await.unwrap(), Vec::new());
    assert_consistent(&store).await;
}

#[tokio::test]
async fn folder_messages_stops_before_trailing_expunged_records() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let a = account(&store).await;
    let inbox_id = store.mailbox(a, "INBOX").await.unwrap().unwrap().id;
    for n in 1..=50 {
        deliver(&store, &message(n, 200), vec![inbox(a)]).await;
    }
    store
        .expunge(a, inbox_id, ExpungeSet::Exactly((11..=50).collect()))
        .await
        .unwrap();
    store
        .expunge(a, inbox_id, ExpungeSet::Exactly(vec![3]))
        .await
        .unwrap();
    let uids: Vec<u32> = store
        .folder_messages(a, inbox_id)
        .await
        .unwrap()
        .into_iter()
        .map(|(u, _)| u)
        .collect();
    assert_eq!(uids, [1, 2, 4, 5, 6, 7, 8, 9, 10]);
}

#[tokio::test]
async fn copy_and_move_of_many_deleted_messages_keep_the_set_exact() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let a = account(&store).await;
    let inbox_id = store.mailbox(a, "INBOX").await.unwrap().unwrap().id;
    let trash = store.mailbox(a, "Trash").await.unwrap().unwrap().id;
    for n in 1..=20 {
        deliver(&store, &message(n, 100), vec![inbox(a)]).await;
    }
    let deleted = Flags {
        system: Flags::DELETED,
        keywords: Vec::new(),
    };
    // Every other message: a set of ten separate ranges.
    let odd: Vec<u32> = (1..=20).filter(|u| u % 2 == 1).collect();
    store
        .set_flags(a, inbox_id, odd.clone(), FlagOp::Add, deleted, None)
        .await
        .unwrap();
    assert_eq!(store.deleted_count(a, inbox_id).await.unwrap(), 10);
    // A copy into the same folder: the set gains the ten new UIDs.
    store
        .copy(a, inbox_id, odd.clone(), inbox_id, None)
        .await
        .unwrap();
    assert_eq!(store.deleted_count(a, inbox_id).await.unwrap(), 20);
    store.move_messages(a, inbox_id, odd, trash).await.unwrap();
    assert_eq!(store.deleted_count(a, inbox_id).await.unwrap(), 10);
    assert_eq!(store.deleted_count(a, trash).await.unwrap(), 10);
    assert_consistent(&store).await;
    let gone = store
        .expunge(a, inbox_id, ExpungeSet::AllDeleted)
        .await
        .unwrap();
    assert_eq!(gone, (21..=30).collect::<Vec<u32>>());
    assert_eq!(store.deleted_count(a, inbox_id).await.unwrap(), 0);
    assert_consistent(&store).await;
}
