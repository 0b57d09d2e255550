//! Child process of `tests/crash.rs`: delivers forever from 8 tasks into two
//! accounts and prints each token after its delivery was acknowledged.
//! Usage: crash_child DATA_DIR ROUND

use store::{DirOp, Flags, MailboxRef, Store, StoreOptions, Target};

fn message(token: &str, big: bool) -> Vec<u8> {
    let mut m = format!("From: a@example.org\r\nSubject: {token}\r\n\r\n").into_bytes();
    let size = if big { 3 * store::CHUNK_SIZE / 2 } else { 2000 };
    while m.len() < size {
        m.extend_from_slice(b"body body body body body body body body body body\r\n");
    }
    m
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: crash_child DATA_DIR ROUND");
    let round: u32 = args.next().and_then(|r| r.parse().ok()).unwrap_or(0);
    let store = Store::open(std::path::Path::new(&dir), StoreOptions::default()).expect("open");
    // Accounts 1 and 2 exist from the first round on.
    while store.account(2).await.expect("account").is_none() {
        store
            .create_account(|_| Vec::<DirOp>::new())
            .await
            .expect("create account");
    }
    let mut tasks = Vec::new();
    for task in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0.. {
                let token = format!("r{round}-t{task}-n{n}");
                let mut w = store.blob_writer();
                w.write(&message(&token, n % 7 == 3)).await.expect("write");
                let targets = [1, 2]
                    .map(|account| Target {
                        account,
                        mailbox: MailboxRef::Inbox,
                        flags: Flags::default(),
                        quota_limit: None,
                    })
                    .to_vec();
                let results = store
                    .deliver(w.finish(), targets, 0)
                    .await
                    .expect("deliver");
                assert!(results.iter().all(|r| r.is_ok()));
                println!("committed {token}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
}
