//! POP3 server (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 SASL, RFC 3206
//! response codes). The maildrop is the account's INBOX as it was at login;
//! deletions happen only at QUIT, in one store operation that IMAP sessions see
//! as EXPUNGE.

pub mod proto;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use directory::auth::{AuthError, AuthedAccount, Authenticator, sasl};
use net::{Connection, Line, LineReader, Stream, TlsHandle};
use store::{AccountId, ExpungeSet, MailboxId, Store};
use tracing::{info, warn};

use crate::proto::{Command, DotStuffer, MAX_LINE, ParseError, TopFilter};

/// RFC 1939 §3: the autologout timer is at least 10 minutes.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Bad commands before the connection is closed.
const MAX_ERRORS: u32 = 10;

#[derive(Clone, Debug)]
pub struct Pop3Config {
    /// Allow USER/PASS and AUTH on a connection without TLS (off by default).
    pub allow_plaintext_auth: bool,
}

/// One per listener kind; cheap to clone.
#[derive(Clone)]
pub struct Pop3Server {
    inner: Arc<Inner>,
}

struct Inner {
    config: Pop3Config,
    store: Store,
    auth: Authenticator,
    /// Maildrops with a session in the transaction state (RFC 1939 §8: one at a time).
    in_use: Mutex<HashSet<AccountId>>,
}

/// Holds a maildrop's lock for the life of a session.
struct MaildropLock {
    inner: Arc<Inner>,
    account: AccountId,
}

impl Drop for MaildropLock {
    fn drop(&mut self) {
        self.inner
            .in_use
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.account);
    }
}

struct Message {
    uid: u32,
    size: u64,
    deleted: bool,
}

struct Maildrop {
    account: AccountId,
    mailbox: MailboxId,
    uidvalidity: u32,
    messages: Vec<Message>,
    _lock: MaildropLock,
}

impl Maildrop {
    fn get(&self, n: u32) -> Result<&Message, &'static str> {
        match n.checked_sub(1).and_then(|i| self.messages.get(i as usize)) {
            Some(m) if !m.deleted => Ok(m),
            Some(_) => Err("message already deleted"),
            None => Err("no such message"),
        }
    }
}

/// The capability list (RFC 2449 §6), in one place.
fn capabilities(tls_active: bool, tls_available: bool, auth_allowed: bool) -> String {
    let mut caps = vec![
        "TOP",
        "UIDL",
        "RESP-CODES",
        "AUTH-RESP-CODE",
        "PIPELINING",
        "EXPIRE NEVER",
        "LOGIN-DELAY 0",
    ];
    if auth_allowed {
        caps.extend(["USER", "SASL PLAIN"]);
    }
    if tls_available && !tls_active {
        caps.push("STLS");
    }
    caps.push("IMPLEMENTATION posthorn");
    let mut out = String::from("+OK Capability list follows\r\n");
    for c in caps {
        out.push_str(c);
        out.push_str("\r\n");
    }
    out.push_str(".\r\n");
    out
}

enum Flow {
    Continue,
    Close,
}

impl Pop3Server {
    pub fn new(config: Pop3Config, store: Store, auth: Authenticator) -> Self {
        Pop3Server {
            inner: Arc::new(Inner {
                config,
                store,
                auth,
                in_use: Mutex::new(HashSet::new()),
            }),
        }
    }

    pub async fn handle(&self, conn: Connection) {
        let Connection {
            stream, peer, tls, ..
        } = conn;
        let io = LineReader::new(stream, IDLE_TIMEOUT);
        if let Err(e) = self.session(io, peer.ip(), tls).await {
            info!(error = %e, "pop3 session ended");
        }
    }

    async fn session(
        &self,
        mut io: LineReader<Stream>,
        peer: std::net::IpAddr,
        tls: Option<TlsHandle>,
    ) -> std::io::Result<()> {
        io.write_all(b"+OK posthorn POP3 ready\r\n").await?;
        let Some((mut io, maildrop)) = self.authorization(io, peer, tls).await? else {
            return Ok(());
        };
        io.write_all(
            format!("+OK maildrop has {} messages\r\n", maildrop.messages.len()).as_bytes(),
        )
        .await?;
        self.transaction(&mut io, maildrop).await
    }

    /// AUTHORIZATION state (RFC 1939 §4); `None` when the client leaves.
    async fn authorization(
        &self,
        mut io: LineReader<Stream>,
        peer: std::net::IpAddr,
        tls: Option<TlsHandle>,
    ) -> std::io::Result<Option<(LineReader<Stream>, Maildrop)>> {
        let mut errors = 0;
        let mut user: Option<String> = None;
        loop {
            let Some(line) = self.read_command(&mut io).await? else {
                return Ok(None);
            };
            let auth_allowed = io.is_tls() || self.inner.config.allow_plaintext_auth;
            let reply: String = match proto::parse(&line) {
                Ok(Command::Capa) => capabilities(io.is_tls(), tls.is_some(), auth_allowed),
                Ok(Command::Stls) => match (&tls, io.is_tls()) {
                    (Some(handle), false) => {
                        io.write_all(b"+OK Begin TLS negotiation\r\n").await?;
                        // Anything pipelined after STLS is discarded by starttls
                        // (RFC 2595 §4, CVE-2011-0411).
                        io = io.starttls(handle).await?;
                        user = None;
                        continue;
                    }
                    _ => "-ERR STLS not available\r\n".into(),
                },
                Ok(Command::Quit) => {
                    io.write_all(b"+OK bye\r\n").await?;
                    return Ok(None);
                }
                Ok(Command::Noop) => "+OK\r\n".into(),
                Ok(Command::User(_) | Command::Pass(_) | Command::Auth { .. }) if !auth_allowed => {
                    "-ERR [AUTH] Plaintext authentication is not allowed without TLS: use STLS first\r\n".into()
                }
                Ok(Command::User(name)) => {
                    user = Some(name);
                    "+OK\r\n".into()
                }
                Ok(Command::Pass(password)) => match user.take() {
                    None => "-ERR USER first\r\n".into(),
                    Some(login) => match self.login(&login, &password, peer).await {
                        Ok(m) => return Ok(Some((io, m))),
                        Err(reply) => reply,
                    },
                },
                Ok(Command::Auth { mechanism: None, .. }) => "+OK\r\nPLAIN\r\n.\r\n".into(),
                Ok(Command::Auth { mechanism: Some(m), initial }) if m == "PLAIN" => {
                    let response = match initial {
                        Some(i) => i,
                        None => {
                            io.write_all(b"+ \r\n").await?;
                            let Some(line) = self.read_command(&mut io).await? else { return Ok(None) };
                            String::from_utf8_lossy(&line).into_owned()
                        }
                    };
                    let credentials = sasl::decode_response(response.as_bytes()).and_then(|r| sasl::parse_plain(&r));
                    match credentials {
                        Err(sasl::SaslError::Cancelled) => "-ERR authentication cancelled\r\n".into(),
                        Err(_) => "-ERR invalid SASL PLAIN response\r\n".into(),
                        Ok(c) => match self.login(&c.login, &c.password, peer).await {
                            Ok(m) => return Ok(Some((io, m))),
                            Err(reply) => reply,
                        },
                    }
                }
                Ok(Command::Auth { .. }) => "-ERR unsupported SASL mechanism\r\n".into(),
                Ok(_) => "-ERR not allowed before login\r\n".into(),
                Err(e) => {
                    errors += 1;
                    error_reply(e)
                }
            };
            if errors > MAX_ERRORS {
                io.write_all(b"-ERR too many errors, bye\r\n").await?;
                return Ok(None);
            }
            io.write_all(reply.as_bytes()).await?;
        }
    }

    /// One command line; `None` when the client is gone or sends nothing but
    /// overlong lines.
    async fn read_command(&self, io: &mut LineReader<Stream>) -> std::io::Result<Option<Vec<u8>>> {
        for _ in 0..=MAX_ERRORS {
            match io.read_line(MAX_LINE).await? {
                Line::Complete { data, .. } => return Ok(Some(data)),
                Line::TooLong => io.write_all(b"-ERR line too long\r\n").await?,
                Line::Eof => return Ok(None),
            }
        }
        io.write_all(b"-ERR too many errors, bye\r\n").await?;
        Ok(None)
    }

    async fn login(
        &self,
        login: &str,
        password: &[u8],
        peer: std::net::IpAddr,
    ) -> Result<Maildrop, String> {
        let account = match self
            .inner
            .auth
            .authenticate(login, password, peer, "pop3")
            .await
        {
            Ok(a) => a,
            Err(AuthError::InvalidCredentials) => {
                return Err("-ERR [AUTH] Authentication failed\r\n".into());
            }
            Err(AuthError::Throttled) => {
                return Err("-ERR [AUTH] Too many failed logins, try again later\r\n".into());
            }
            Err(AuthError::Disabled) => return Err("-ERR [SYS/PERM] Account disabled\r\n".into()),
            Err(AuthError::Temporary(e)) => {
                warn!(error = %e, "pop3 login failed");
                return Err("-ERR [SYS/TEMP] Temporary failure, try again later\r\n".into());
            }
        };
        self.open_maildrop(&account).await
    }

    async fn open_maildrop(&self, account: &AuthedAccount) -> Result<Maildrop, String> {
        let lock = {
            let mut in_use = self
                .inner
                .in_use
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !in_use.insert(account.id) {
                return Err("-ERR [IN-USE] Maildrop is in use by another POP3 session\r\n".into());
            }
            MaildropLock {
                inner: self.inner.clone(),
                account: account.id,
            }
        };
        let temp = |e: store::StoreError| {
            warn!(error = %e, "pop3 cannot open maildrop");
            "-ERR [SYS/TEMP] Cannot open maildrop, try again later\r\n".to_string()
        };
        let store = &self.inner.store;
        let inbox = store
            .mailbox(account.id, store::INBOX)
            .await
            .map_err(temp)?
            .ok_or_else(|| "-ERR [SYS/PERM] Account has no INBOX\r\n".to_string())?;
        let messages = store
            .list(account.id, inbox.id, 1..=u32::MAX)
            .await
            .map_err(temp)?
            .into_iter()
            .map(|(uid, rec)| Message {
                uid,
                size: rec.size,
                deleted: false,
            })
            .collect();
        net::record_user(&account.address);
        info!(user = %account.address, "pop3 login");
        Ok(Maildrop {
            account: account.id,
            mailbox: inbox.id,
            uidvalidity: inbox.info.uidvalidity,
            messages,
            _lock: lock,
        })
    }

    /// TRANSACTION state (RFC 1939 §5), then UPDATE at QUIT (§6).
    async fn transaction(
        &self,
        io: &mut LineReader<Stream>,
        mut drop: Maildrop,
    ) -> std::io::Result<()> {
        let mut errors = 0;
        loop {
            let Some(line) = self.read_command(io).await? else {
                // Connection gone without QUIT: nothing is deleted (RFC 1939 §6).
                return Ok(());
            };
            let flow = match proto::parse(&line) {
                Ok(cmd) => self.command(io, &mut drop, cmd).await?,
                Err(e) => {
                    errors += 1;
                    io.write_all(error_reply(e).as_bytes()).await?;
                    if errors > MAX_ERRORS {
                        io.write_all(b"-ERR too many errors, bye\r\n").await?;
                        return Ok(());
                    }
                    Flow::Continue
                }
            };
            if let Flow::Close = flow {
                return Ok(());
            }
        }
    }

    async fn command(
        &self,
        io: &mut LineReader<Stream>,
        drop: &mut Maildrop,
        cmd: Command,
    ) -> std::io::Result<Flow> {
        let live = || drop.messages.iter().filter(|m| !m.deleted);
        let reply = match cmd {
            Command::Stat => {
                format!(
                    "+OK {} {}\r\n",
                    live().count(),
                    live().map(|m| m.size).sum::<u64>()
                )
            }
            Command::List(Some(n)) => match drop.get(n) {
                Ok(m) => format!("+OK {n} {}\r\n", m.size),
                Err(e) => format!("-ERR {e}\r\n"),
            },
            Command::Uidl(Some(n)) => match drop.get(n) {
                Ok(m) => format!("+OK {n} {}\r\n", proto::uidl(drop.uidvalidity, m.uid)),
                Err(e) => format!("-ERR {e}\r\n"),
            },
            Command::List(None) | Command::Uidl(None) => {
                let uidl = matches!(cmd, Command::Uidl(_));
                let mut out = String::from("+OK\r\n");
                for (i, m) in drop.messages.iter().enumerate().filter(|(_, m)| !m.deleted) {
                    let value = if uidl {
                        proto::uidl(drop.uidvalidity, m.uid)
                    } else {
                        m.size.to_string()
                    };
                    out.push_str(&format!("{} {value}\r\n", i + 1));
                }
                out.push_str(".\r\n");
                out
            }
            Command::Retr(n) => return self.send(io, drop, n, None).await.map(|()| Flow::Continue),
            Command::Top(n, lines) => {
                return self
                    .send(io, drop, n, Some(lines))
                    .await
                    .map(|()| Flow::Continue);
            }
            Command::Dele(n) => match drop.get(n) {
                Ok(_) => {
                    if let Some(m) = drop.messages.get_mut(n as usize - 1) {
                        m.deleted = true;
                    }
                    format!("+OK message {n} deleted\r\n")
                }
                Err(e) => format!("-ERR {e}\r\n"),
            },
            Command::Rset => {
                drop.messages.iter_mut().for_each(|m| m.deleted = false);
                format!("+OK maildrop has {} messages\r\n", drop.messages.len())
            }
            Command::Noop => "+OK\r\n".into(),
            Command::Quit => {
                let reply = self.update(drop).await;
                io.write_all(reply.as_bytes()).await?;
                return Ok(Flow::Close);
            }
            Command::Capa => capabilities(io.is_tls(), false, true),
            Command::User(_) | Command::Pass(_) | Command::Auth { .. } | Command::Stls => {
                "-ERR already logged in\r\n".into()
            }
        };
        io.write_all(reply.as_bytes()).await?;
        Ok(Flow::Continue)
    }

    /// UPDATE state: removes the deleted messages in one atomic store operation.
    async fn update(&self, drop: &Maildrop) -> String {
        let uids: Vec<u32> = drop
            .messages
            .iter()
            .filter(|m| m.deleted)
            .map(|m| m.uid)
            .collect();
        if uids.is_empty() {
            return "+OK bye\r\n".into();
        }
        match self
            .inner
            .store
            .expunge(drop.account, drop.mailbox, ExpungeSet::Exactly(uids))
            .await
        {
            Ok(gone) => format!("+OK bye, {} messages deleted\r\n", gone.len()),
            Err(e) => {
                warn!(error = %e, "pop3 update failed");
                "-ERR [SYS/TEMP] Some deleted messages not removed\r\n".into()
            }
        }
    }

    /// RETR and TOP: streams the message chunk by chunk, byte-stuffed.
    async fn send(
        &self,
        io: &mut LineReader<Stream>,
        drop: &Maildrop,
        n: u32,
        top: Option<u32>,
    ) -> std::io::Result<()> {
        let msg = match drop.get(n) {
            Ok(m) => m,
            Err(e) => return io.write_all(format!("-ERR {e}\r\n").as_bytes()).await,
        };
        let store = &self.inner.store;
        let reader = match store.message(drop.account, drop.mailbox, msg.uid).await {
            Ok(Some(rec)) => store.open_blob(rec.blob).await,
            Ok(None) => {
                return io
                    .write_all(b"-ERR message was deleted by another session\r\n")
                    .await;
            }
            Err(e) => Err(e),
        };
        let mut reader = match reader {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "pop3 cannot read message");
                return io
                    .write_all(b"-ERR [SYS/TEMP] cannot read message\r\n")
                    .await;
            }
        };
        io.write_all(format!("+OK {} octets\r\n", msg.size).as_bytes())
            .await?;
        let mut stuffer = DotStuffer::default();
        let mut filter = top.map(TopFilter::new);
        let mut out = Vec::new();
        loop {
            let chunk = match reader.next_chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    // Mid-response there is no way to say -ERR: end the connection.
                    warn!(error = %e, "pop3 read failed mid-message");
                    return Err(std::io::Error::other(e.to_string()));
                }
            };
            let part = match filter.as_mut() {
                Some(f) => f.filter(&chunk),
                None => &chunk[..],
            };
            out.clear();
            stuffer.push(part, &mut out);
            io.write_all(&out).await?;
            if filter.as_ref().is_some_and(TopFilter::done) {
                break;
            }
        }
        out.clear();
        stuffer.finish(&mut out);
        io.write_all(&out).await
    }
}

fn error_reply(e: ParseError) -> String {
    match e {
        ParseError::Unknown => "-ERR unknown command\r\n".into(),
        ParseError::Syntax(why) => format!("-ERR {why}\r\n"),
    }
}
