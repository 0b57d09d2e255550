//! IDLE (RFC 2177): push from the change feed, no polling.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use store::Change;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Instant, sleep_until};

use super::{AUTH_TIMEOUT, Flow, Session};

/// Keepalive interval, well under NAT and phone-carrier idle cuts.
const KEEPALIVE: Duration = Duration::from_secs(120);
/// Silence from the client after which an IDLE ends. Clients re-IDLE every
/// 29 minutes (RFC 2177 §3), so this must be comfortably longer than 30.
const IDLE_MAX: Duration = Duration::from_secs(35 * 60);
/// Longest line accepted while idling (it should be `DONE`).
const MAX_DONE: usize = 64;

impl Session {
    /// Thousands of phones sit in here for hours, so this future stays
    /// small: the larger ones it awaits (updates, finish) are boxed, and
    /// nothing is awaited while the wait's own futures are alive.
    pub(super) async fn idle(&mut self, tag: &str) -> io::Result<Flow> {
        let updates = Box::pin(self.updates(true)).await;
        if let Some(sel) = self.selected.as_mut() {
            sel.hold = None;
        }
        let mut out = b"+ idling\r\n".to_vec();
        out.extend(updates);
        Box::pin(self.io.write_all(&out)).await?;
        drop(out);
        self.io.set_idle_timeout(IDLE_MAX);
        let result = self.idle_loop(tag).await;
        self.io.set_idle_timeout(AUTH_TIMEOUT);
        result
    }

    async fn idle_loop(&mut self, tag: &str) -> io::Result<Flow> {
        let mut line = Vec::new();
        let mut deadline = Instant::now() + IDLE_MAX;
        let mut keepalive = Instant::now() + KEEPALIVE;
        loop {
            let Some(user) = self.user.as_mut() else {
                return Ok(Flow::Close);
            };
            let event = tokio::select! {
                // One byte at a time: whatever follows DONE in the same packet
                // stays buffered for the next command (iOS Mail pipelines).
                byte = self.io.read_chunk(1) => Event::Byte(byte.map(|b| b.first().copied())),
                change = user.changes.recv() => Event::Change(change),
                () = sleep_until(keepalive.min(deadline)) => Event::Timer,
                () = super::shutdown_signal(&mut self.shutdown) => Event::Shutdown,
            };
            match event {
                Event::Byte(byte) => {
                    let Some(b) = byte? else {
                        return Ok(Flow::Close);
                    };
                    deadline = Instant::now() + IDLE_MAX;
                    if b != b'\n' {
                        line.push(b);
                        if line.len() <= MAX_DONE {
                            continue;
                        }
                    }
                    let done = line
                        .strip_suffix(b"\r")
                        .unwrap_or(&line)
                        .eq_ignore_ascii_case(b"DONE");
                    if done {
                        Box::pin(self.finish(tag, "OK IDLE terminated", true)).await?;
                        return Ok(Flow::Continue);
                    }
                    if line.len() > MAX_DONE {
                        // Drain the rest of the long line before answering.
                        let _ = Box::pin(self.io.read_line(4096)).await?;
                    }
                    return Box::pin(self.bad(Some(tag.into()), "Expected DONE")).await;
                }
                Event::Change(change) => {
                    match change {
                        Ok(c) => self.apply_change(&c),
                        Err(RecvError::Lagged(_)) => {
                            if let Some(sel) = self.selected.as_mut() {
                                sel.lagged = true;
                            }
                        }
                        Err(RecvError::Closed) => return Ok(Flow::Close),
                    }
                    let out = Box::pin(self.updates(true)).await;
                    if !out.is_empty() {
                        Box::pin(self.io.write_all(&out)).await?;
                    }
                }
                Event::Timer if Instant::now() >= deadline => {
                    Box::pin(self.io.write_all(b"* BYE IDLE for too long\r\n")).await?;
                    return Ok(Flow::Close);
                }
                Event::Timer => {
                    Box::pin(self.io.write_all(b"* OK Still here\r\n")).await?;
                    keepalive = Instant::now() + KEEPALIVE;
                }
                Event::Shutdown => {
                    Box::pin(self.io.write_all(b"* BYE Server shutting down\r\n")).await?;
                    return Ok(Flow::Close);
                }
            }
        }
    }
}

/// What ended one wait of IDLE.
enum Event {
    Byte(io::Result<Option<u8>>),
    Change(Result<Arc<Change>, RecvError>),
    /// The keepalive or the IDLE deadline, whichever is first.
    Timer,
    Shutdown,
}
