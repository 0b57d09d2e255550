//! A 50 MB message is stored and read back byte-identical while the process's Rust
//! heap never holds more than a few chunks of it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use store::{DirOp, Flags, MailboxRef, Store, StoreOptions, Target};

struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SIZE: usize = 50 * 1024 * 1024;
const PIECE: usize = 64 * 1024;

/// Deterministic message bytes: a header, then numbered lines.
fn piece(index: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(PIECE);
    if index == 0 {
        p.extend_from_slice(b"From: big@example.org\r\nSubject: fifty megabytes\r\nContent-Type: text/plain\r\n\r\n");
    }
    let mut line = index * 10_000;
    while p.len() < PIECE {
        p.extend_from_slice(
            format!("line {line:012} of a very large message body...\r\n").as_bytes(),
        );
        line += 1;
    }
    p.truncate(PIECE);
    p
}

#[tokio::test]
async fn fifty_megabytes_round_trip_in_bounded_memory() {
    let dir = tempfile::TempDir::new().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let a = store.create_account(|_| Vec::<DirOp>::new()).await.unwrap();

    let baseline = CURRENT.load(Ordering::Relaxed);
    PEAK.store(baseline, Ordering::Relaxed);
    let mut w = store.blob_writer();
    for i in 0..SIZE / PIECE {
        w.write(&piece(i)).await.unwrap();
    }
    let staged = w.finish();
    let target = Target {
        account: a,
        mailbox: MailboxRef::Inbox,
        flags: Flags::default(),
        quota_limit: None,
    };
    let r = store.deliver(staged, vec![target], 0).await.unwrap();
    let uid = r[0].as_ref().unwrap().uid;
    let inbox = store.mailbox(a, "INBOX").await.unwrap().unwrap().id;
    let rec = store.message(a, inbox, uid).await.unwrap().unwrap();
    assert_eq!(rec.size, SIZE as u64);

    // Stream it back and compare piece by piece.
    let mut reader = store.open_blob(rec.blob).await.unwrap();
    let (mut pending, mut index) = (Vec::new(), 0);
    while let Some(chunk) = reader.next_chunk().await.unwrap() {
        pending.extend_from_slice(&chunk);
        while pending.len() >= PIECE {
            assert!(
                pending[..PIECE] == piece(index)[..],
                "piece {index} differs"
            );
            pending.drain(..PIECE);
            index += 1;
        }
    }
    assert!(pending.is_empty());
    assert_eq!(index, SIZE / PIECE);
    let range = reader.read_range(SIZE as u64 - 10, 100).await.unwrap();
    assert_eq!(&range[..], &piece(SIZE / PIECE - 1)[PIECE - 10..]);

    let peak = PEAK.load(Ordering::Relaxed) - baseline;
    println!(
        "peak Rust heap above baseline while storing and reading 50 MiB: {} KiB",
        peak / 1024
    );
    assert!(
        peak < 4 * 1024 * 1024,
        "peak heap {peak} bytes: the message was buffered"
    );
    let summary = store.summary(rec.blob).await.unwrap();
    assert_eq!(summary.envelope.subject.as_deref(), Some("fifty megabytes"));
    assert_eq!(summary.root.body_offset, 77);
}
