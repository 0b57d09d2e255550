//! One SMTP session: the RFC 5321 state machine over a connection.
//! Command families live in their own files: `mail.rs` (MAIL, RCPT),
//! `data.rs` (DATA and delivery), `auth.rs` (AUTH).

mod auth;
mod data;
mod io;
mod mail;

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use directory::auth::AuthedAccount;
use net::{Connection, Line, TlsHandle};
use tracing::{Span, debug, info};

use self::io::Io;
use crate::proto::capability::{Offer, ehlo_keywords};
use crate::proto::command::{Command, parse_command};
use crate::proto::reply::Reply;
use crate::{Inner, ListenerKind};

/// RFC 5321 §4.5.3.1.4: 512 octets for a command line, raised to 1000 (the
/// text line limit, §4.5.3.1.6) for ESMTP parameters; without the CRLF.
const MAX_COMMAND_LINE: usize = 998;
/// RFC 4954 §4: AUTH lines may be up to 12288 octets (long initial
/// responses). Every line is read up to this, then checked by verb.
const MAX_AUTH_LINE: usize = 12_288;
/// Errors (5xx replies) after which the session is closed, as Postfix's
/// `smtpd_hard_error_limit`.
const MAX_ERRORS: u32 = 20;

/// What the main loop does after a command.
enum Flow {
    Continue,
    Close,
    /// The 220 is queued; upgrade the connection.
    StartTls,
}

struct Helo {
    name: String,
    /// EHLO rather than HELO.
    extended: bool,
}

/// The mail transaction between MAIL and the end of DATA (or RSET).
struct Transaction {
    /// Empty for `<>`.
    sender: String,
    recipients: Vec<String>,
    /// The SIZE the client declared at MAIL (RFC 1870), 0 when it did not.
    declared_size: u64,
    /// What RCPT resolved each recipient to, handed to delivery as is.
    plans: Vec<delivery::RecipientPlan>,
    /// From the sender check (SPF), added to the message.
    trace_headers: Vec<String>,
}

struct Session<'a> {
    server: &'a Inner,
    conn_id: u64,
    peer: SocketAddr,
    tls: Option<TlsHandle>,
    span: Span,
    helo: Option<Helo>,
    auth: Option<AuthedAccount>,
    tx: Option<Transaction>,
    errors: u32,
    /// Messages accepted or attempted, for ids.
    messages: u32,
}

pub(crate) async fn run(server: &Inner, conn: Connection, span: Span) {
    let Connection {
        id,
        peer,
        stream,
        tls,
        mut shutdown,
        ..
    } = conn;
    let config = &server.config;
    let mut io = Io::new(stream, config.command_timeout);
    let mut session = Session {
        server,
        conn_id: id,
        peer,
        tls,
        span,
        helo: None,
        auth: None,
        tx: None,
        errors: 0,
        messages: 0,
    };
    if *shutdown.borrow() {
        io.queue(&shutting_down(&config.hostname));
        io.close().await;
        return;
    }
    io.queue(&Reply::bare(
        220,
        format!("{} ESMTP posthorn", config.hostname),
    ));
    loop {
        let line = tokio::select! {
            line = io.read_line(MAX_AUTH_LINE) => line,
            () = stopping(&mut shutdown) => {
                io.queue(&shutting_down(&config.hostname));
                break;
            }
        };
        let flow = match line {
            Ok(Line::Complete { data, .. }) => session.command(&mut io, &data).await,
            Ok(Line::TooLong) => {
                session.reply(&mut io, Reply::new(500, "5.5.2", "Line too long"));
                Ok(Flow::Continue)
            }
            Ok(Line::Eof) => {
                debug!("client closed the connection");
                break;
            }
            Err(e) => Err(e),
        };
        match flow {
            Ok(Flow::Continue) if session.errors > MAX_ERRORS => {
                info!(errors = session.errors, "too many errors; closing");
                io.queue(&Reply::new(
                    421,
                    "4.7.0",
                    format!("{} Error: too many errors", config.hostname),
                ));
                break;
            }
            Ok(Flow::Continue) => {}
            Ok(Flow::Close) => break,
            Ok(Flow::StartTls) => {
                let Some(tls) = session.tls.clone() else {
                    break;
                };
                io = match io.starttls(&tls).await {
                    Ok(io) => io,
                    Err(e) => {
                        info!(error = %e, "STARTTLS handshake failed");
                        return;
                    }
                };
                // RFC 3207 §4.2: forget everything learned before TLS.
                session.helo = None;
                session.tx = None;
                session.auth = None;
                debug!(tls = ?io.tls_info(), "STARTTLS done");
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                info!("timeout; closing");
                io.queue(&Reply::new(
                    421,
                    "4.4.2",
                    format!("{} Error: timeout exceeded", config.hostname),
                ));
                break;
            }
            Err(e) => {
                debug!(error = %e, "connection lost");
                return;
            }
        }
    }
    io.close().await;
}

fn shutting_down(hostname: &str) -> Reply {
    Reply::new(
        421,
        "4.3.2",
        format!("{hostname} Service shutting down, try again later"),
    )
}

/// Resolves when the server shuts down; never if the sender is gone.
async fn stopping(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    if shutdown.wait_for(|down| *down).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Session<'_> {
    /// Queues a reply; 5xx replies count as errors.
    fn reply(&mut self, io: &mut Io, reply: Reply) {
        if reply.code >= 500 {
            self.errors += 1;
        }
        io.queue(&reply);
    }

    fn kind(&self) -> ListenerKind {
        self.server.config.kind
    }

    /// Whether AUTH may be used now (and is offered in EHLO).
    fn auth_available(&self, io: &Io) -> bool {
        match self.kind() {
            ListenerKind::Mx => false,
            ListenerKind::Submission => io.is_tls() || self.server.config.allow_plaintext_auth,
            ListenerKind::Submissions => true,
        }
    }

    async fn command(&mut self, io: &mut Io, line: &[u8]) -> std::io::Result<Flow> {
        let is_auth = line
            .get(..5)
            .is_some_and(|verb| verb.eq_ignore_ascii_case(b"AUTH "));
        if line.len() > MAX_COMMAND_LINE && !is_auth {
            self.reply(io, Reply::new(500, "5.5.2", "Line too long"));
            return Ok(Flow::Continue);
        }
        let command = match parse_command(line) {
            Ok(command) => command,
            Err(e) => {
                debug!(error = ?e, "bad command");
                self.reply(io, e.reply());
                return Ok(Flow::Continue);
            }
        };
        let reply = match command {
            Command::Ehlo(name) => self.ehlo(io, name),
            Command::Helo(name) => {
                self.helo = Some(Helo {
                    name,
                    extended: false,
                });
                self.tx = None;
                Reply::bare(250, self.server.config.hostname.clone())
            }
            Command::Mail { from, params } => self.mail(from, params).await,
            Command::Rcpt(to) => self.rcpt(to).await,
            Command::Data => return self.data(io).await,
            Command::Auth { mechanism, initial } => self.auth(io, &mechanism, initial).await?,
            Command::StartTls => return Ok(self.starttls(io)),
            Command::Rset => {
                self.tx = None;
                Reply::new(250, "2.0.0", "Ok")
            }
            Command::Noop => Reply::new(250, "2.0.0", "Ok"),
            Command::Quit => {
                io.queue(&Reply::new(221, "2.0.0", "Bye"));
                return Ok(Flow::Close);
            }
            // RFC 5321 §3.5.3: neither confirm nor deny, so VRFY cannot be
            // used to harvest addresses.
            Command::Vrfy => Reply::new(
                252,
                "2.5.0",
                "Cannot VRFY user, but will accept message and attempt delivery",
            ),
            Command::Expn => Reply::new(502, "5.5.1", "EXPN not available"),
            Command::Help => Reply::new(
                214,
                "2.0.0",
                "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY STARTTLS AUTH",
            ),
            Command::NotImplemented(verb) => {
                Reply::new(502, "5.5.1", format!("{verb} not implemented"))
            }
        };
        self.reply(io, reply);
        Ok(Flow::Continue)
    }

    fn ehlo(&mut self, io: &Io, name: String) -> Reply {
        // RFC 5321 §4.1.4: EHLO resets the transaction like RSET.
        self.tx = None;
        self.helo = Some(Helo {
            name,
            extended: true,
        });
        let offer = Offer {
            max_size: self.server.config.max_message_size,
            starttls: !io.is_tls() && self.tls.is_some(),
            auth: self.auth_available(io),
        };
        let mut lines = vec![self.server.config.hostname.clone()];
        lines.extend(ehlo_keywords(&offer));
        Reply::multiline(250, None, lines)
    }

    fn starttls(&mut self, io: &mut Io) -> Flow {
        let reply = if io.is_tls() {
            Reply::new(503, "5.5.1", "TLS already active")
        } else if self.tls.is_none() {
            Reply::new(454, "4.7.0", "TLS not available")
        } else {
            io.queue(&Reply::new(220, "2.0.0", "Ready to start TLS"));
            return Flow::StartTls;
        };
        self.reply(io, reply);
        Flow::Continue
    }
}
