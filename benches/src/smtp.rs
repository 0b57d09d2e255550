//! SMTP ingest load generator. Speaks plain RFC 5321 only, so it can be pointed at
//! posthorn or any other server on this machine.
//!
//!   smtp-bench ADDR RCPT [SESSIONS] [SECONDS] [SIZE_BYTES] [SERVER_PID]
//!
//! Each session sends messages back to back (MAIL, RCPT, DATA per message) for
//! SECONDS and counts the 250 replies after DATA. With SERVER_PID, the server's
//! peak RSS (VmHWM) is read afterwards. Prints a table line and one JSON line.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Reads one (possibly multi-line) reply; returns its code.
async fn reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> std::io::Result<u16> {
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "server closed",
            ));
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| std::io::Error::other(line.clone()));
        }
    }
}

async fn expect(
    r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    code: u16,
) -> std::io::Result<()> {
    match reply(r).await? {
        c if c == code => Ok(()),
        c => Err(std::io::Error::other(format!("expected {code}, got {c}"))),
    }
}

fn body(size: usize, rcpt: &str) -> Vec<u8> {
    let mut m = format!("From: bench@example.net\r\nTo: {rcpt}\r\nSubject: smtp bench\r\n\r\n")
        .into_bytes();
    while m.len() < size {
        m.extend_from_slice(
            b"The quick brown fox jumps over the lazy dog. 0123456789 0123456789\r\n",
        );
    }
    m.extend_from_slice(b".\r\n");
    m
}

async fn session(
    addr: String,
    rcpt: String,
    size: usize,
    stop: Arc<AtomicBool>,
) -> std::io::Result<Vec<Duration>> {
    let stream = TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut r = BufReader::new(read);
    expect(&mut r, 220).await?;
    write.write_all(b"EHLO bench.example\r\n").await?;
    expect(&mut r, 250).await?;
    let message = body(size, &rcpt);
    let envelope = format!("MAIL FROM:<bench@example.net>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n");
    let mut latencies = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        // PIPELINING (RFC 2920): the envelope in one write, then the message.
        write.write_all(envelope.as_bytes()).await?;
        expect(&mut r, 250).await?;
        expect(&mut r, 250).await?;
        expect(&mut r, 354).await?;
        write.write_all(&message).await?;
        expect(&mut r, 250).await?;
        latencies.push(t.elapsed());
    }
    write.write_all(b"QUIT\r\n").await?;
    Ok(latencies)
}

fn peak_rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(addr), Some(rcpt)) = (args.first(), args.get(1)) else {
        eprintln!("usage: smtp-bench ADDR RCPT [SESSIONS] [SECONDS] [SIZE_BYTES] [SERVER_PID]");
        std::process::exit(2);
    };
    let sessions: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20);
    let seconds: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10);
    let size: usize = args
        .get(4)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10 * 1024);
    let pid = args.get(5);

    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let tasks: Vec<_> = (0..sessions)
        .map(|_| tokio::spawn(session(addr.clone(), rcpt.clone(), size, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let mut failed = 0;
    for t in tasks {
        match t.await {
            Ok(Ok(l)) => latencies.extend(l),
            Ok(Err(e)) => {
                failed += 1;
                eprintln!("session failed: {e}");
            }
            Err(e) => eprintln!("session panicked: {e}"),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1));
        latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let rate = latencies.len() as f64 / elapsed;
    let rss = pid.and_then(|p| peak_rss_kib(p));
    println!(
        "{sessions} sessions, {size} B messages: {} accepted in {elapsed:.1} s = {rate:.0} msg/s, p50 {:.2} ms, p99 {:.2} ms, failed sessions {failed}{}",
        latencies.len(),
        pct(0.5),
        pct(0.99),
        rss.map(|k| format!(", server peak RSS {} MiB", k / 1024))
            .unwrap_or_default()
    );
    println!(
        "{{\"bench\":\"smtp\",\"sessions\":{sessions},\"message_size\":{size},\"accepted\":{},\"per_second\":{rate:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"failed_sessions\":{failed},\"server_peak_rss_kib\":{}}}",
        latencies.len(),
        pct(0.5),
        pct(0.99),
        rss.map_or("null".to_string(), |k| k.to_string())
    );
}
