//! The delivery core against a real store and directory on disk.

use delivery::{Deliverer, Envelope, Failure, Outcome};
use directory::{Directory, DomainMode, Policy};
use store::{Store, StoreOptions};
use tempfile::TempDir;

const MESSAGE: &[u8] =
    b"From: sender@remote.example\r\nTo: info@example.org\r\nSubject: hello\r\n\r\nHi!\r\n";

async fn setup(dir: &TempDir) -> (Store, Directory, Deliverer) {
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let directory = Directory::new(store.clone(), Policy::default());
    directory
        .add_domain("example.org", DomainMode::Authoritative, None)
        .await
        .unwrap();
    directory
        .add_domain(
            "relay.example",
            DomainMode::Relay,
            Some("exchange.internal:25"),
        )
        .await
        .unwrap();
    let deliverer = Deliverer::new(store.clone(), directory.clone());
    (store, directory, deliverer)
}

fn envelope(rcpts: &[&str]) -> Envelope {
    Envelope {
        sender: "sender@remote.example".into(),
        recipients: rcpts.iter().map(|s| s.to_string()).collect(),
    }
}

async fn inbox_count(store: &Store, account: u64) -> u32 {
    store
        .mailbox(account, "INBOX")
        .await
        .unwrap()
        .unwrap()
        .info
        .messages
}

#[tokio::test]
async fn alias_lands_in_account_once() {
    let dir = TempDir::new().unwrap();
    let (store, directory, deliverer) = setup(&dir).await;
    let anna = directory
        .add_account("anna@example.org", "correct horse", None, None)
        .await
        .unwrap();
    directory
        .add_alias("info@example.org", "anna@example.org")
        .await
        .unwrap();

    let out = deliverer
        .deliver_bytes(&envelope(&["info@example.org"]), MESSAGE)
        .await
        .unwrap();
    let Outcome::Delivered { stored, .. } = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(stored[0].account, anna.id);
    assert_eq!(inbox_count(&store, anna.id).await, 1);

    // Address, alias and a different case of the address in one envelope: one copy.
    let out = deliverer
        .deliver_bytes(
            &envelope(&["anna@example.org", "INFO@example.org", "Anna@EXAMPLE.org"]),
            MESSAGE,
        )
        .await
        .unwrap();
    assert!(
        out.iter().all(|o| matches!(o, Outcome::Delivered { .. })),
        "{out:?}"
    );
    assert_eq!(inbox_count(&store, anna.id).await, 2);
    let inbox = store.mailbox(anna.id, "INBOX").await.unwrap().unwrap();
    let (_, rec) = &store.list(anna.id, inbox.id, 1..=1).await.unwrap()[0];
    let mut reader = store.open_blob(rec.blob).await.unwrap();
    let stored = reader.next_chunk().await.unwrap().unwrap();
    // The alias is named in the copy, for the user's filters.
    assert_eq!(
        &stored[..],
        [&b"Delivered-To: info@example.org\r\n"[..], MESSAGE].concat()
    );
}

#[tokio::test]
async fn many_recipients_share_one_stored_copy() {
    let dir = TempDir::new().unwrap();
    let (store, directory, deliverer) = setup(&dir).await;
    let mut rcpts = Vec::new();
    for i in 0..5 {
        let a = format!("user{i}@example.org");
        directory
            .add_account(&a, "correct horse", None, None)
            .await
            .unwrap();
        rcpts.push(a);
    }
    let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let out = deliverer
        .deliver_bytes(&envelope(&refs), MESSAGE)
        .await
        .unwrap();
    assert!(out.iter().all(|o| matches!(o, Outcome::Delivered { .. })));
    let report = store.verify().await.unwrap();
    assert_eq!((report.messages, report.blobs), (5, 1));
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[tokio::test]
async fn per_recipient_failures() {
    let dir = TempDir::new().unwrap();
    let (store, directory, deliverer) = setup(&dir).await;
    let small = directory
        .add_account("small@example.org", "correct horse", Some(1 << 20), None)
        .await
        .unwrap();
    let ok = directory
        .add_account("ok@example.org", "correct horse", None, None)
        .await
        .unwrap();
    // Fill `small` to its quota.
    let big = vec![b'x'; (1 << 20) - 10];
    deliverer
        .deliver_bytes(&envelope(&["small@example.org"]), &big)
        .await
        .unwrap();

    let out = deliverer
        .deliver_bytes(
            &envelope(&[
                "nobody@example.org",
                "someone@elsewhere.example",
                "small@example.org",
                "ok@example.org",
                "x@relay.example",
            ]),
            MESSAGE,
        )
        .await
        .unwrap();
    assert_eq!(out[0], Outcome::Failed(Failure::UnknownUser));
    assert_eq!(out[1], Outcome::Failed(Failure::NotLocal));
    assert_eq!(out[2], Outcome::Failed(Failure::OverQuota));
    assert!(matches!(out[3], Outcome::Delivered { .. }));
    assert!(
        matches!(out[4], Outcome::Delivered { queued: 1, .. }),
        "a relay domain's address is queued for its relay host"
    );
    assert_eq!(inbox_count(&store, small.id).await, 1);
    assert_eq!(inbox_count(&store, ok.id).await, 1);
    assert_eq!(
        Failure::NotLocal.smtp_reply(),
        (550, "5.7.1", "relay not permitted".into())
    );
}

#[tokio::test]
async fn forwarder_to_local_accounts_with_keep_copy() {
    let dir = TempDir::new().unwrap();
    let (store, directory, deliverer) = setup(&dir).await;
    let boss = directory
        .add_account("boss@example.org", "correct horse", None, None)
        .await
        .unwrap();
    let team = directory
        .add_account("team@example.org", "correct horse", None, None)
        .await
        .unwrap();
    directory
        .add_forwarder("boss@example.org", "team@example.org", true)
        .await
        .unwrap();
    let out = deliverer
        .deliver_bytes(&envelope(&["boss@example.org"]), MESSAGE)
        .await
        .unwrap();
    let Outcome::Delivered { stored, .. } = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(stored.len(), 2);
    assert_eq!(
        (
            inbox_count(&store, boss.id).await,
            inbox_count(&store, team.id).await
        ),
        (1, 1)
    );
}
