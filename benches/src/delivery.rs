//! Local deliveries per second through the delivery core (directory resolution,
//! blob write, synced commit) with 1, 8 and 64 concurrent writers, 10 KB messages.
//!
//!   cargo run --release -p posthorn-benches --bin delivery-bench -- [SECONDS] [DIR]
//!
//! DIR defaults to a temporary directory on the same disk as /var/tmp, so the
//! figures include real fsyncs. Prints a table and one JSON line.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use delivery::{Deliverer, Envelope, Outcome};
use directory::{Directory, DomainMode, Policy};
use store::{Store, StoreOptions};

const ACCOUNTS: usize = 64;
const MESSAGE_SIZE: usize = 10 * 1024;

fn message(n: usize) -> Vec<u8> {
    let mut m = format!(
        "From: bench@example.net\r\nTo: user{n}@bench.example\r\nSubject: bench {n}\r\n\r\n"
    )
    .into_bytes();
    while m.len() < MESSAGE_SIZE {
        m.extend_from_slice(
            b"The quick brown fox jumps over the lazy dog. 0123456789 0123456789\r\n",
        );
    }
    m.truncate(MESSAGE_SIZE);
    m
}

struct Run {
    writers: usize,
    deliveries: u64,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
}

async fn run(deliverer: &Deliverer, writers: usize, duration: Duration) -> Run {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (deliverer, stop, count) = (deliverer.clone(), stop.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = w;
            while !stop.load(Ordering::Relaxed) {
                let rcpt = format!("user{}@bench.example", n % ACCOUNTS);
                let envelope = Envelope {
                    sender: "bench@example.net".into(),
                    recipients: vec![rcpt],
                };
                let t = Instant::now();
                let out = deliverer
                    .deliver_bytes(&envelope, &message(n))
                    .await
                    .expect("delivery");
                assert!(matches!(out[0], Outcome::Delivered { .. }), "{out:?}");
                latencies.push(t.elapsed());
                count.fetch_add(1, Ordering::Relaxed);
                n += writers;
            }
            latencies
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("writer"));
    }
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Run {
        writers,
        deliveries: count.load(Ordering::Relaxed),
        seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let tmp = tempfile::TempDir::with_prefix_in("posthorn-bench-", "/var/tmp").expect("temp dir");
    let dir = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());

    let store = Store::open(&dir, StoreOptions::default()).expect("open store");
    let directory = Directory::new(store.clone(), Policy::default());
    directory
        .add_domain("bench.example", DomainMode::Authoritative, None)
        .await
        .expect("domain");
    for i in 0..ACCOUNTS {
        directory
            .add_account(
                &format!("user{i}@bench.example"),
                "benchmark password",
                None,
                None,
            )
            .await
            .expect("account");
    }
    let deliverer = Deliverer::new(store.clone(), directory);

    println!(
        "local deliveries, {MESSAGE_SIZE} B messages, synced commits, {seconds} s per level, data in {}",
        dir.display()
    );
    println!(
        "{:>8} {:>12} {:>12} {:>10} {:>10}",
        "writers", "deliveries", "per second", "p50 ms", "p99 ms"
    );
    let mut json = Vec::new();
    for writers in [1, 8, 64] {
        let r = run(&deliverer, writers, Duration::from_secs(seconds)).await;
        let rate = r.deliveries as f64 / r.seconds;
        println!(
            "{:>8} {:>12} {:>12.0} {:>10.2} {:>10.2}",
            r.writers, r.deliveries, rate, r.p50_ms, r.p99_ms
        );
        json.push(format!(
            "{{\"writers\":{},\"deliveries\":{},\"per_second\":{rate:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3}}}",
            r.writers, r.deliveries, r.p50_ms, r.p99_ms
        ));
    }
    let report = store.verify().await.expect("verify");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    println!(
        "{{\"bench\":\"delivery\",\"message_size\":{MESSAGE_SIZE},\"runs\":[{}]}}",
        json.join(",")
    );
}
