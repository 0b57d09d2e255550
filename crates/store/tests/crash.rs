//! Crash safety: a child process delivers messages and is killed with SIGKILL at
//! random moments. After reopening, every message it reported as committed is
//! there exactly once, and every counter is exact. `CRASH_ROUNDS` sets the number of
//! kills (default 8 for CI; run 100 by hand).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use rand::Rng;
use store::{Store, StoreOptions};

/// The child process, `examples/crash_child.rs`, built by `cargo test` beside this test.
fn child_exe() -> std::path::PathBuf {
    let deps = std::env::current_exe().unwrap();
    deps.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("crash_child")
}

#[tokio::test]
async fn sigkill_never_loses_or_duplicates_acknowledged_messages() {
    let rounds: u32 = std::env::var("CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(8);
    let dir = tempfile::TempDir::new().unwrap();
    let exe = child_exe();
    let mut committed = Vec::new();
    let mut rng = rand::rng();
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .arg(dir.path())
            .arg(round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.strip_prefix("committed ").map(str::to_string))
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(300..1500)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let got = reader.join().unwrap();
        println!("round {round}: {} acknowledged before the kill", got.len());
        committed.extend(got);
    }
    assert!(committed.len() > rounds as usize, "the child made progress");

    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    for account in [1, 2] {
        let inbox = store.mailbox(account, "INBOX").await.unwrap().unwrap();
        let mut seen: HashMap<String, u32> = HashMap::new();
        for (_, rec) in store.list(account, inbox.id, 1..=u32::MAX).await.unwrap() {
            let subject = store
                .summary(rec.blob)
                .await
                .unwrap()
                .envelope
                .subject
                .unwrap_or_default();
            *seen.entry(subject).or_default() += 1;
        }
        for token in &committed {
            assert_eq!(
                seen.get(token),
                Some(&1),
                "account {account}: acknowledged {token} must be there exactly once"
            );
        }
        assert!(seen.values().all(|&n| n == 1), "no message stored twice");
    }
    let report = store.verify().await.unwrap();
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    assert_eq!(
        report.pending_uploads, 0,
        "uploads cut by the kills were removed at open"
    );
    println!(
        "{} acknowledged messages survived {rounds} SIGKILLs; store consistent",
        committed.len()
    );
}
