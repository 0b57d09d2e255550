//! IDLE (RFC 2177): push from the change feed, no polling.

use std::io;
use std::time::Duration;

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
    pub(super) async fn idle(&mut self, tag: &str) -> io::Result<Flow> {
        let mut out = b"+ idling\r\n".to_vec();
        out.extend(self.updates(true).await);
        self.io.write_all(&out).await?;
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
            tokio::select! {
                // One byte at a time: whatever follows DONE in the same packet
                // stays buffered for the next command (iOS Mail pipelines).
                byte = async { self.io.read_chunk(1).await.map(|b| b.first().copied()) } => {
                    let Some(b) = byte? else { return Ok(Flow::Close) };
                    deadline = Instant::now() + IDLE_MAX;
                    if b != b'\n' {
                        line.push(b);
                        if line.len() <= MAX_DONE {
                            continue;
                        }
                    }
                    let done = line.strip_suffix(b"\r").unwrap_or(&line).eq_ignore_ascii_case(b"DONE");
                    if done {
                        self.finish(tag, "OK IDLE terminated", true).await?;
                        return Ok(Flow::Continue);
                    }
                    if line.len() > MAX_DONE {
                        // Drain the rest of the long line before answering.
                        let _ = self.io.read_line(4096).await?;
                    }
                    return self.bad(Some(tag.into()), "Expected DONE").await;
                }
                change = user.changes.recv() => {
                    match change {
                        Ok(c) => self.apply_change(&c),
                        Err(RecvError::Lagged(_)) => {
                            if let Some(sel) = self.selected.as_mut() {
                                sel.lagged = true;
                            }
                        }
                        Err(RecvError::Closed) => return Ok(Flow::Close),
                    }
                    let out = self.updates(true).await;
                    if !out.is_empty() {
                        self.io.write_all(&out).await?;
                    }
                }
                () = sleep_until(keepalive) => {
                    self.io.write_all(b"* OK Still here\r\n").await?;
                    keepalive = Instant::now() + KEEPALIVE;
                }
                () = sleep_until(deadline) => {
                    self.io.write_all(b"* BYE IDLE for too long\r\n").await?;
                    return Ok(Flow::Close);
                }
                () = super::shutdown_signal(&mut self.shutdown) => {
                    self.io.write_all(b"* BYE Server shutting down\r\n").await?;
                    return Ok(Flow::Close);
                }
            }
        }
    }
}
