//! The connection as the session sees it: lines and DATA in, replies out.
//!
//! Replies are queued and written when the client has nothing more
//! buffered, so a pipelined group (RFC 2920 §3.2) gets its replies in one
//! write, and a client waiting for an answer always gets it.

use std::io;
use std::time::Duration;

use net::{Line, LineReader, Stream, TlsHandle};

use crate::proto::data::DataDecoder;
use crate::proto::reply::Reply;

/// Largest piece of DATA decoded at once (the blob writer collects them
/// into its chunks).
const DATA_READ: usize = 16 * 1024;
/// Queued replies beyond this are written even while input is waiting.
const MAX_QUEUED: usize = 16 * 1024;
/// How long a goodbye (and TLS close_notify) may take to leave.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) enum DataRead {
    More,
    End,
}

pub(super) struct Io {
    reader: LineReader<Stream>,
    /// Bytes read past the end of a DATA stream: commands the client
    /// pipelined after it. Read before anything new.
    pending: Vec<u8>,
    out: Vec<u8>,
}

impl Io {
    pub fn new(stream: Stream, timeout: Duration) -> Io {
        Io {
            reader: LineReader::new(stream, timeout),
            pending: Vec::new(),
            out: Vec::new(),
        }
    }

    pub fn is_tls(&self) -> bool {
        self.reader.is_tls()
    }

    /// `TLSv1_3 with TLS13_AES_256_GCM_SHA384`, for the Received header.
    pub fn tls_info(&self) -> Option<String> {
        let tls = self.reader.get_ref().tls_connection()?;
        let version = tls.protocol_version()?;
        let suite = tls.negotiated_cipher_suite()?;
        Some(format!("{version:?} with {:?}", suite.suite()))
    }

    pub fn queue(&mut self, reply: &Reply) {
        reply.write_to(&mut self.out);
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        let result = self.reader.write_all(&out).await;
        // Keep the allocation for the next replies.
        self.out = out;
        self.out.clear();
        result
    }

    /// Writes queued replies before a read that may wait for the client:
    /// when no complete line is left over and nothing is buffered. (A
    /// partial line in the reader's buffer cannot be seen from here; a
    /// client does not stop in the middle of a command to wait for replies.)
    async fn flush_before_read(&mut self) -> io::Result<()> {
        let idle = !self.pending.contains(&b'\n') && self.reader.buffered() == 0;
        if idle || self.out.len() > MAX_QUEUED {
            self.flush().await?;
        }
        Ok(())
    }

    /// One line of at most `max` bytes; see [`LineReader::read_line`].
    pub async fn read_line(&mut self, max: usize) -> io::Result<Line> {
        self.flush_before_read().await?;
        if self.pending.is_empty() {
            return self.reader.read_line(max).await;
        }
        if let Some(lf) = self.pending.iter().position(|&b| b == b'\n') {
            let mut data: Vec<u8> = self.pending.drain(..=lf).collect();
            data.pop();
            let crlf = data.last() == Some(&b'\r');
            if crlf {
                data.pop();
            }
            return Ok(if data.len() > max {
                Line::TooLong
            } else {
                Line::Complete { data, crlf }
            });
        }
        // A partial line: the rest of it is still to come from the socket.
        let mut head = std::mem::take(&mut self.pending);
        Ok(
            match self
                .reader
                .read_line(max.saturating_sub(head.len()))
                .await?
            {
                Line::Complete { data, crlf } => {
                    // A CR at the end of `head` and an LF first on the
                    // socket make a CRLF.
                    let crlf = crlf || (data.is_empty() && head.last() == Some(&b'\r'));
                    if crlf && data.is_empty() {
                        head.pop();
                    }
                    head.extend_from_slice(&data);
                    if head.len() > max {
                        Line::TooLong
                    } else {
                        Line::Complete { data: head, crlf }
                    }
                }
                other => other,
            },
        )
    }

    /// Decodes the next piece of DATA into `out`. Whatever follows the end
    /// of data stays for [`Io::read_line`]. `UnexpectedEof` if the client
    /// closes first.
    pub async fn read_data(
        &mut self,
        decoder: &mut DataDecoder,
        out: &mut Vec<u8>,
    ) -> io::Result<DataRead> {
        self.flush_before_read().await?;
        let fed = if self.pending.is_empty() {
            let chunk = self.reader.read_chunk(DATA_READ).await?;
            if chunk.is_empty() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let fed = decoder.feed(chunk, out);
            self.pending.extend_from_slice(&chunk[fed.consumed..]);
            fed
        } else {
            let fed = decoder.feed(&self.pending, out);
            self.pending.drain(..fed.consumed);
            fed
        };
        Ok(if fed.done {
            DataRead::End
        } else {
            DataRead::More
        })
    }

    /// Writes what is queued (the 220 to STARTTLS), forgets everything the
    /// client sent after STARTTLS (CVE-2011-0411: it must not be taken as
    /// coming through TLS) and handshakes.
    pub async fn starttls(mut self, tls: &TlsHandle) -> io::Result<Io> {
        self.flush().await?;
        self.pending.clear();
        let reader = self.reader.starttls(tls).await?;
        Ok(Io {
            reader,
            pending: Vec::new(),
            out: self.out,
        })
    }

    /// Writes what is queued and closes (with TLS close_notify).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.flush()).await;
        let _ = tokio::time::timeout(
            CLOSE_TIMEOUT,
            tokio::io::AsyncWriteExt::shutdown(self.reader.get_mut()),
        )
        .await;
    }
}
