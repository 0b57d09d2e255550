use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::{Stream, TlsHandle};

/// Read buffer per connection while data flows; lines are collected
/// separately, bounded by the caller's `max`. It exists only while there are
/// unread bytes or a read is being attempted: a connection waiting for its
/// peer (IMAP IDLE, a pause between commands) holds no buffer at all.
const BUF_SIZE: usize = 8 * 1024;

/// Result of [`LineReader::read_line`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A line without its ending; `crlf` is false for a bare LF.
    Complete { data: Vec<u8>, crlf: bool },
    /// The line exceeded `max`; it has been read up to its end and discarded.
    TooLong,
    /// The peer closed the connection. An unterminated final line is
    /// dropped, since it may be a truncated command.
    Eof,
}

/// Buffered, 8-bit clean reader for line-based protocols, with write access
/// to the same stream. Every read and write waits at most the idle timeout
/// and then fails with `io::ErrorKind::TimedOut`.
///
/// The read buffer is allocated when a read is attempted and released as
/// soon as the stream has nothing to give (the read is pending) while no
/// received bytes are left, so an idle connection costs no buffer memory.
pub struct LineReader<S> {
    inner: S,
    /// `buf[start..end]` is received and not yet returned; empty, without
    /// capacity, while waiting for the peer.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    idle_timeout: Duration,
    /// Written by [`LineReader::write_later`], not sent yet; empty, without
    /// capacity, between replies.
    pending: Vec<u8>,
}

/// Bytes [`LineReader::write_later`] holds back at most.
const PENDING_LIMIT: usize = 64 * 1024;

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "idle timeout")
}

impl<S: AsyncRead + AsyncWrite + Unpin> LineReader<S> {
    pub fn new(inner: S, idle_timeout: Duration) -> Self {
        LineReader {
            inner,
            buf: Vec::new(),
            start: 0,
            end: 0,
            idle_timeout,
            pending: Vec::new(),
        }
    }

    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// Changes the timeout for subsequent reads and writes (e.g. longer
    /// after authentication or during IMAP IDLE).
    pub fn set_idle_timeout(&mut self, timeout: Duration) {
        self.idle_timeout = timeout;
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Direct access to the stream. Bypasses the idle timeout; reading from
    /// it skips whatever is buffered here.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Bytes received but not yet returned.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Drops buffered input, e.g. commands pipelined after STARTTLS
    /// (CVE-2011-0411).
    pub fn discard_buffered(&mut self) {
        self.release();
    }

    /// Whether a read buffer is allocated now (for tests of idle memory).
    pub fn holds_buffer(&self) -> bool {
        self.buf.capacity() > 0
    }

    fn release(&mut self) {
        self.start = 0;
        self.end = 0;
        self.buf = Vec::new();
    }

    /// Refills the empty buffer; returns 0 at EOF.
    async fn fill(&mut self) -> io::Result<usize> {
        self.start = 0;
        self.end = 0;
        let timeout = self.idle_timeout;
        tokio::time::timeout(timeout, poll_fn(|cx| self.poll_fill(cx)))
            .await
            .map_err(|_| timed_out())?
    }

    /// One read attempt into a fresh buffer, which is dropped again if the
    /// stream has nothing yet: the buffer never outlives a pending read.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.len() < BUF_SIZE {
            self.buf = vec![0; BUF_SIZE];
        }
        let mut rb = ReadBuf::new(&mut self.buf);
        match Pin::new(&mut self.inner).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                self.end = n;
                if n == 0 {
                    self.release();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => {
                self.release();
                Poll::Ready(Err(e))
            }
            Poll::Pending => {
                self.release();
                Poll::Pending
            }
        }
    }

    /// Reads one line terminated by LF (optionally preceded by CR). Lines
    /// longer than `max` bytes (without the ending) are consumed and
    /// reported as [`Line::TooLong`] without being held in memory.
    pub async fn read_line(&mut self, max: usize) -> io::Result<Line> {
        let mut line = Vec::new();
        let mut too_long = false;
        loop {
            if self.start == self.end && self.fill().await? == 0 {
                return Ok(Line::Eof);
            }
            let avail = &self.buf[self.start..self.end];
            let newline = avail.iter().position(|&b| b == b'\n');
            let chunk = &avail[..newline.unwrap_or(avail.len())];
            // One extra byte for the CR of a CRLF split from its LF.
            if !too_long && line.len() + chunk.len() > max.saturating_add(1) {
                too_long = true;
                line = Vec::new();
            }
            if !too_long {
                line.extend_from_slice(chunk);
            }
            self.start += chunk.len();
            if newline.is_some() {
                self.start += 1;
                let crlf = line.last() == Some(&b'\r');
                if crlf {
                    line.pop();
                }
                if too_long || line.len() > max {
                    return Ok(Line::TooLong);
                }
                return Ok(Line::Complete { data: line, crlf });
            }
        }
    }

    /// Returns up to `max` bytes, buffered ones first, waiting for more only
    /// when the buffer is empty. An empty slice means EOF (or `max == 0`).
    /// For counted data (IMAP literals, BDAT) in bounded pieces.
    pub async fn read_chunk(&mut self, max: usize) -> io::Result<&[u8]> {
        if max > 0 && self.start == self.end {
            self.fill().await?;
        }
        let from = self.start;
        let n = max.min(self.end - from);
        self.start += n;
        Ok(&self.buf[from..from + n])
    }

    /// Appends exactly `n` bytes to `out`; `UnexpectedEof` if the peer
    /// closes first. `out` grows only as data arrives, so a client that
    /// announces a huge size cannot make us allocate it up front.
    pub async fn read_exact_into(&mut self, n: usize, out: &mut Vec<u8>) -> io::Result<()> {
        let mut left = n;
        while left > 0 {
            let chunk = self.read_chunk(left).await?;
            if chunk.is_empty() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            left -= chunk.len();
            out.extend_from_slice(chunk);
        }
        Ok(())
    }

    /// Queues `data` to go out with the next [`LineReader::write_all`], so a
    /// command's untagged responses and its tagged reply leave in one
    /// segment (one system call, one wake-up of the client). Past 64 KiB it
    /// sends at once: a large reply never sits whole in memory.
    pub async fn write_later(&mut self, data: &[u8]) -> io::Result<()> {
        self.pending.extend_from_slice(data);
        if self.pending.len() < PENDING_LIMIT {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        self.send(&pending).await
    }

    /// Writes and flushes what [`LineReader::write_later`] queued, then `data`.
    /// Fails with `TimedOut` when the peer accepts nothing for the idle
    /// timeout, so a client that stops reading cannot hold the connection; a
    /// large but moving write is fine.
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        if self.pending.is_empty() {
            return self.send(data).await;
        }
        let mut pending = std::mem::take(&mut self.pending);
        pending.extend_from_slice(data);
        self.send(&pending).await
    }

    async fn send(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = tokio::time::timeout(self.idle_timeout, self.inner.write(data))
                .await
                .map_err(|_| timed_out())??;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            data = &data[n..];
        }
        tokio::time::timeout(self.idle_timeout, self.inner.flush())
            .await
            .map_err(|_| timed_out())?
    }
}

impl LineReader<Stream> {
    pub fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }

    /// Upgrades to TLS: discards anything pipelined after the STARTTLS
    /// command, then handshakes within the handle's handshake timeout.
    /// Fails on a connection that already uses TLS.
    pub async fn starttls(mut self, tls: &TlsHandle) -> io::Result<Self> {
        self.discard_buffered();
        let tcp = match self.inner {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(_) => return Err(io::Error::other("TLS is already active")),
        };
        // Boxed: the handshake state would otherwise enlarge the future of
        // every session that can call this, for the session's whole life.
        self.inner = Stream::Tls(Box::new(Box::pin(tls.accept(tcp)).await?));
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// An idle connection holds no read buffer: it is released while the
    /// read waits, and what was received stays readable across that.
    #[tokio::test]
    async fn write_later_goes_out_with_the_next_write_all_or_past_the_limit() {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let mut r = LineReader::new(server, Duration::from_secs(10));
        r.write_later(b"* 1 EXISTS\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        let nothing = tokio::time::timeout(Duration::from_millis(50), client.read(&mut buf));
        assert!(nothing.await.is_err(), "queued bytes were sent early");
        r.write_all(b"a1 OK done\r\n").await.unwrap();
        let n = client.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"* 1 EXISTS\r\na1 OK done\r\n");
        assert_eq!(r.pending.capacity(), 0, "no buffer kept between replies");

        let big = vec![b'x'; PENDING_LIMIT];
        r.write_later(&big).await.unwrap();
        let mut got = vec![0u8; PENDING_LIMIT];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(got, big);
    }

    #[tokio::test]
    async fn waiting_reader_holds_no_buffer() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut r = LineReader::new(server, Duration::from_secs(10));
        assert!(!r.holds_buffer());
        client.write_all(b"a1 NOOP\r\na2 ID").await.unwrap();
        let first = r.read_line(100).await.unwrap();
        assert_eq!(
            first,
            Line::Complete {
                data: b"a1 NOOP".to_vec(),
                crlf: true
            }
        );
        // "a2 ID" is buffered; the rest of its line has not arrived.
        assert!(r.holds_buffer());
        let second = tokio::spawn(async move {
            let line = r.read_line(100).await.unwrap();
            (line, r)
        });
        tokio::task::yield_now().await;
        client.write_all(b" NIL\r\n").await.unwrap();
        let (line, mut r) = second.await.unwrap();
        assert_eq!(
            line,
            Line::Complete {
                data: b"a2 ID NIL".to_vec(),
                crlf: true
            }
        );
        // Waiting for the next line: the buffer goes away.
        let pending = tokio::time::timeout(Duration::from_millis(20), r.read_line(100)).await;
        assert!(pending.is_err());
        assert!(!r.holds_buffer());
        client.write_all(b"a3 LOGOUT\r\n").await.unwrap();
        let third = r.read_line(100).await.unwrap();
        assert!(matches!(third, Line::Complete { data, .. } if data == b"a3 LOGOUT"));
    }
}
