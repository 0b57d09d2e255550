//! One IMAP connection: reading commands (with literals bounded before they
//! are read), the state machine of RFC 3501 §3, and the selected folder's
//! view kept consistent with the change feed (§5.2, §7.4.1).

mod append;
mod auth;
mod fetch;
mod idle;
mod mailbox;
mod message;
mod search;
mod view;

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use net::{Connection, Line, LineReader, Stream, TlsHandle};
use store::{AccountId, Change, StoreError};
use tokio::sync::{broadcast, watch};
use tracing::{info, warn};

use crate::Inner;
use crate::proto::{self, Command, before_literal, literal_suffix, parse_append_head, tag_of};

pub use auth::capabilities;
use view::Selected;

/// RFC 3501 §5.4: unauthenticated sessions go after a short while...
const UNAUTH_TIMEOUT: Duration = Duration::from_secs(60);
/// ...authenticated ones after at least 30 minutes of inactivity.
const AUTH_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Longest command line, literals excluded.
const MAX_LINE: usize = 64 * 1024;
/// Largest literal outside APPEND.
const MAX_LITERAL: u64 = 64 * 1024;
/// Literals per command, and bytes of a whole command with its literals.
const MAX_LITERALS: usize = 16;
const MAX_COMMAND: u64 = 256 * 1024;
/// Bad commands before the connection is closed.
const MAX_ERRORS: u32 = 20;

/// What one read from the client produced.
enum Input {
    /// A whole command with its literals embedded as on the wire.
    Command(Vec<u8>),
    /// An APPEND up to its message literal, which is still unread.
    Append {
        head: proto::AppendHead,
        size: u64,
        non_sync: bool,
    },
    LineTooLong,
    /// A literal over the limits; it has not been read.
    LiteralTooBig {
        tag: Option<String>,
        non_sync: bool,
    },
    Eof,
}

/// Whether the session goes on after a command.
enum Flow {
    Continue,
    Close,
    /// Upgrade to TLS, then go on.
    StartTls(TlsHandle),
    /// Enter IDLE for this tag. IDLE runs from [`run`], beside the command
    /// loop rather than inside it: an idle session then holds only IDLE's
    /// state, not the command loop's as well.
    Idle(String),
}

struct User {
    account: AccountId,
    changes: broadcast::Receiver<Arc<Change>>,
}

struct Session {
    inner: Arc<Inner>,
    io: LineReader<Stream>,
    peer: IpAddr,
    tls: Option<TlsHandle>,
    shutdown: watch::Receiver<bool>,
    user: Option<User>,
    selected: Option<Selected>,
    /// CONDSTORE is enabled (RFC 7162 §3.1): FETCH responses carry MODSEQ.
    condstore: bool,
    /// QRESYNC is enabled (RFC 7162 §3.2): VANISHED replaces EXPUNGE.
    qresync: bool,
    /// IMAP4rev2 is enabled (RFC 9051): its response forms where they
    /// differ from IMAP4rev1 (ESEARCH, UTF-8 mailbox names, no RECENT).
    rev2: bool,
    /// Set while a FETCH runs when a BINARY item failed: the response code
    /// of its tagged NO (RFC 3516 §4.3).
    binary_failure: Option<&'static str>,
    errors: u32,
}

pub(crate) async fn run(inner: Arc<Inner>, conn: Connection) {
    let Connection {
        stream,
        peer,
        tls,
        shutdown,
        ..
    } = conn;
    let mut s = Session {
        inner,
        io: LineReader::new(stream, UNAUTH_TIMEOUT),
        peer: peer.ip(),
        tls,
        shutdown,
        user: None,
        selected: None,
        condstore: false,
        qresync: false,
        rev2: false,
        binary_failure: None,
        errors: 0,
    };
    // Not held across the session's life: a `let` here would keep the
    // string allocated for hours in every idle session.
    let greeting = Box::pin(
        s.io.write_all(
            format!(
                "* OK [CAPABILITY {}] posthorn IMAP4rev1 ready\r\n",
                s.capabilities()
            )
            .as_bytes(),
        ),
    )
    .await;
    if greeting.is_err() {
        return;
    }
    let result = loop {
        match s.serve().await {
            Ok(Flow::StartTls(handle)) => {
                // Anything pipelined after STARTTLS is discarded by `starttls`
                // (RFC 3501 §6.2.1, CVE-2011-0411); capabilities are asked anew.
                let io = s.io;
                match io.starttls(&handle).await {
                    Ok(io) => s.io = io,
                    Err(e) => {
                        info!(error = %e, "imap STARTTLS failed");
                        return;
                    }
                }
            }
            Ok(Flow::Idle(tag)) => match s.idle(&tag).await {
                Ok(Flow::Continue) => {}
                other => break other,
            },
            other => break other,
        }
    };
    match result {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::TimedOut => {
            // Best effort and brief: the client may be gone or not reading.
            let bye = s.io.write_all(b"* BYE Autologout; idle for too long\r\n");
            let _ = tokio::time::timeout(Duration::from_secs(5), bye).await;
        }
        Err(e) => info!(error = %e, "imap session ended"),
    }
}

/// Resolves when the server shuts down; never if it cannot tell any more.
async fn shutdown_signal(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|&down| down).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn store_error(e: StoreError) -> String {
    match e {
        StoreError::NoSuchMailbox(_) => "NO [NONEXISTENT] No such mailbox".into(),
        StoreError::MailboxExists(_) => "NO [ALREADYEXISTS] Mailbox already exists".into(),
        StoreError::InvalidName(why) => format!("NO [CANNOT] Invalid mailbox name: {why}"),
        StoreError::HasChildren(_) => "NO [INUSE] Mailbox has subfolders; delete them first".into(),
        StoreError::CannotDeleteInbox => "NO [CANNOT] INBOX cannot be deleted".into(),
        StoreError::OverQuota => "NO [OVERQUOTA] Quota exceeded".into(),
        e => {
            warn!(error = %e, "imap store operation failed");
            "NO [UNAVAILABLE] Temporary failure, try again later".into()
        }
    }
}

impl Session {
    /// Serves commands until the session ends or upgrades to TLS.
    async fn serve(&mut self) -> io::Result<Flow> {
        loop {
            let Some(input) = self.next_input().await? else {
                self.io.write_all(b"* BYE Server shutting down\r\n").await?;
                return Ok(Flow::Close);
            };
            let flow = match input {
                Input::Eof => return Ok(Flow::Close),
                Input::LineTooLong => self.bad(None, "Line too long").await?,
                Input::LiteralTooBig { tag, non_sync } => {
                    let tag = tag.unwrap_or_else(|| "*".into());
                    let reply = format!("{tag} BAD [TOOBIG] Literal too large\r\n");
                    self.io.write_all(reply.as_bytes()).await?;
                    if non_sync {
                        // The client sends the bytes anyway; they must never
                        // be read as commands (RFC 7888 §4).
                        self.io
                            .write_all(b"* BYE Literal too large, closing\r\n")
                            .await?;
                        return Ok(Flow::Close);
                    }
                    self.count_error().await?
                }
                Input::Append {
                    head,
                    size,
                    non_sync,
                } => Box::pin(self.append(head, size, non_sync)).await?,
                Input::Command(buf) => match proto::parse(&buf) {
                    Ok((tag, cmd)) => self.dispatch(tag, cmd).await?,
                    Err(e) => {
                        let msg = e.message().to_string();
                        self.bad(e.tag().map(str::to_owned), &msg).await?
                    }
                },
            };
            if !matches!(flow, Flow::Continue) {
                return Ok(flow);
            }
        }
    }

    /// The next command, or `None` when the server shuts down. (A function
    /// of its own: its state then shares memory with the command's.)
    async fn next_input(&mut self) -> io::Result<Option<Input>> {
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            input = self.read_input() => input.map(Some),
            // Cancelling a half-read command is fine: the session ends.
            () = shutdown_signal(&mut shutdown) => Ok(None),
        }
    }

    /// Reads one command; literals other than an APPEND message are read
    /// here after their size is checked (RFC 7888 for `{n+}`).
    async fn read_input(&mut self) -> io::Result<Input> {
        let mut buf = Vec::new();
        let mut literals = 0;
        loop {
            let line = match self.io.read_line(MAX_LINE).await? {
                Line::Eof => return Ok(Input::Eof),
                Line::TooLong => return Ok(Input::LineTooLong),
                Line::Complete { data, .. } => data,
            };
            buf.extend_from_slice(&line);
            let Some((size, non_sync)) = literal_suffix(&line) else {
                return Ok(Input::Command(buf));
            };
            if let Some(head) = parse_append_head(before_literal(&buf)) {
                return Ok(Input::Append {
                    head,
                    size,
                    non_sync,
                });
            }
            literals += 1;
            if size > MAX_LITERAL
                || literals > MAX_LITERALS
                || buf.len() as u64 + size > MAX_COMMAND
            {
                return Ok(Input::LiteralTooBig {
                    tag: tag_of(&buf),
                    non_sync,
                });
            }
            if !non_sync {
                self.io.write_all(b"+ Ready for literal data\r\n").await?;
            }
            buf.extend_from_slice(b"\r\n");
            self.io.read_exact_into(size as usize, &mut buf).await?;
        }
    }

    async fn count_error(&mut self) -> io::Result<Flow> {
        self.errors += 1;
        if self.errors > MAX_ERRORS {
            self.io.write_all(b"* BYE Too many errors\r\n").await?;
            return Ok(Flow::Close);
        }
        Ok(Flow::Continue)
    }

    async fn bad(&mut self, tag: Option<String>, msg: &str) -> io::Result<Flow> {
        let tag = tag.unwrap_or_else(|| "*".into());
        self.io
            .write_all(format!("{tag} BAD {msg}\r\n").as_bytes())
            .await?;
        self.count_error().await
    }

    /// Whether LOGIN and AUTHENTICATE may be used now (RFC 3501 §6.2.3).
    fn auth_allowed(&self) -> bool {
        self.io.is_tls() || self.inner.config.allow_plaintext_auth
    }

    fn capabilities(&self) -> String {
        capabilities(
            self.io.is_tls(),
            self.tls.is_some(),
            self.auth_allowed(),
            self.user.is_some(),
        )
    }

    /// Runs one command. A session's future is as large as the largest
    /// state of any command it awaits inline, and an idle session keeps it
    /// for hours: so commands run boxed, allocated only while they run.
    async fn dispatch(&mut self, tag: String, cmd: Command) -> io::Result<Flow> {
        Box::pin(self.command(tag, cmd)).await
    }

    async fn command(&mut self, tag: String, cmd: Command) -> io::Result<Flow> {
        use Command as C;
        // RFC 3501 §7.4.1: no EXPUNGE responses during FETCH, STORE or SEARCH
        // by sequence number; the UID forms may have them.
        let expunge_ok = !matches!(
            cmd,
            C::Fetch { uid: false, .. }
                | C::Store { uid: false, .. }
                | C::Search { uid: false, .. }
        );
        let reply = match cmd {
            C::Capability => {
                let caps = format!("* CAPABILITY {}\r\n", self.capabilities());
                self.io.write_all(caps.as_bytes()).await?;
                "OK CAPABILITY completed".to_string()
            }
            C::Noop | C::Check => "OK completed".into(),
            C::Logout => {
                self.io.write_all(b"* BYE posthorn logging out\r\n").await?;
                self.io
                    .write_all(format!("{tag} OK LOGOUT completed\r\n").as_bytes())
                    .await?;
                return Ok(Flow::Close);
            }
            C::Id => {
                self.io
                    .write_all(b"* ID (\"name\" \"posthorn\")\r\n")
                    .await?;
                "OK ID completed".into()
            }
            C::StartTls => return self.starttls(&tag).await,
            C::Login { user, password } => self.login(&user, &password).await?,
            C::Authenticate { mechanism, initial } => {
                match self.authenticate(&mechanism, initial).await? {
                    Some(r) => r,
                    None => return Ok(Flow::Close),
                }
            }
            _ if self.user.is_none() => {
                return self.bad(Some(tag), "Log in first").await;
            }
            C::Namespace => {
                // RFC 2342: one personal namespace, no others.
                self.io
                    .write_all(b"* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n")
                    .await?;
                "OK NAMESPACE completed".into()
            }
            C::Enable(names) => {
                let mut line = String::from("* ENABLED");
                for name in ["CONDSTORE", "QRESYNC", "IMAP4rev2"] {
                    if names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                        line.push(' ');
                        line.push_str(name);
                    }
                }
                // RFC 7162 §3.2.3: QRESYNC implies CONDSTORE.
                self.qresync |= names.iter().any(|n| n == "QRESYNC");
                self.condstore |= self.qresync || names.iter().any(|n| n == "CONDSTORE");
                // RFC 9051 §6.3.1: a server offering both revisions starts
                // in IMAP4rev1 and switches when the client enables rev2.
                self.rev2 |= names.iter().any(|n| n == "IMAP4REV2");
                line.push_str("\r\n");
                self.io.write_all(line.as_bytes()).await?;
                "OK ENABLE completed".into()
            }
            C::Select {
                qresync: Some(_), ..
            } if !self.qresync => {
                // RFC 7162 §3.2.5: QRESYNC must be enabled first.
                return self.bad(Some(tag), "Enable QRESYNC first").await;
            }
            C::Select {
                mailbox,
                read_only,
                condstore,
                qresync,
            } => {
                self.condstore |= condstore;
                self.select(&mailbox, read_only, qresync).await?
            }
            C::Create(m) => self.create(&m).await,
            C::Delete(m) => self.delete(&m).await,
            C::Rename(from, to) => self.rename(&from, &to).await,
            C::Subscribe(m, on) => self.subscribe(&m, on).await,
            C::List(list) => self.list(&list).await?,
            C::Status { mailbox, items } => self.status(&mailbox, &items).await?,
            C::GetQuotaRoot(mailbox) => self.quota(Some(&mailbox)).await?,
            C::GetQuota(root) if root.is_empty() => self.quota(None).await?,
            C::GetQuota(_) => "NO [NONEXISTENT] No such quota root".into(),
            C::Idle => return Ok(Flow::Idle(tag)),
            _ if self.selected.is_none() => {
                return self.bad(Some(tag), "No mailbox selected").await;
            }
            C::Close => self.close(true).await,
            C::Unselect => self.close(false).await,
            C::Expunge { uids } => self.expunge(uids).await?,
            C::Fetch {
                uid,
                set,
                items,
                changed_since,
                vanished,
            } => {
                if vanished && !self.qresync {
                    return self.bad(Some(tag), "Enable QRESYNC first").await;
                }
                // RFC 7162 §3.1: using a CONDSTORE item enables it.
                self.condstore |= items.contains(&proto::FetchAtt::ModSeq);
                if vanished && let Some(since) = changed_since {
                    self.vanished_earlier(&set, since).await?;
                }
                self.fetch(uid, &set, &items, changed_since).await?
            }
            C::Store {
                uid,
                set,
                op,
                silent,
                flags,
                unchanged_since,
            } => {
                self.condstore |= unchanged_since.is_some();
                self.store(uid, &set, op, silent, flags, unchanged_since)
                    .await?
            }
            C::Copy {
                uid,
                set,
                mailbox,
                moving,
            } => self.copy(uid, &set, &mailbox, moving).await?,
            C::Search { uid, key, ret } => self.search(&tag, uid, &key, ret).await?,
        };
        self.finish(&tag, &reply, expunge_ok).await?;
        Ok(Flow::Continue)
    }

    /// Sends pending folder updates, then the tagged reply.
    async fn finish(&mut self, tag: &str, reply: &str, expunge_ok: bool) -> io::Result<()> {
        let mut out = self.updates(expunge_ok).await;
        out.extend_from_slice(format!("{tag} {reply}\r\n").as_bytes());
        self.io.write_all(&out).await
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    fn future_size<A, B, F: Future>(_: impl Fn(A, B) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// A session's future lives as long as the connection, idle or not;
    /// large command states are boxed so it stays small (issue #5: at most
    /// 6 KiB of memory per idle session, buffers and task included). Before
    /// the boxing it was 4.2 KiB.
    #[test]
    fn session_future_is_small() {
        let size = future_size(super::run);
        // 2026-11: 1,624 bytes; IDLE's own state (timers, the feed
        // receiver, the read) is about 800 of them.
        assert!(size <= 1792, "session future is {size} bytes");
    }
}
