//! SMTP server sessions for the three SMTP listeners: inbound MX on port 25,
//! submission with STARTTLS on 587 and with implicit TLS on 465 (RFC 5321,
//! RFC 6409, RFC 8314).
//!
//! [`proto`] is the pure grammar (commands, paths, replies, the DATA
//! decoder, SASL); `session` is the state machine over a connection. Mail is
//! streamed into the store's blob writer as it arrives and handed to the
//! delivery pipeline, which stores local copies and queues what leaves for
//! the outbound queue in one commit before the `250`.

pub mod proto;
mod session;
mod spf;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use delivery::{BoxFuture, Deliverer};
use directory::Directory;
use directory::auth::Authenticator;
use tracing::Instrument;

pub use proto::reply::Reply;
pub use spf::{Spf, SpfAction, SpfPolicy, resolver};

/// Which listener a session runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// Port 25: mail for local recipients from anyone, no AUTH.
    Mx,
    /// Port 587: AUTH required to send, offered after STARTTLS.
    Submission,
    /// Port 465: like submission, TLS from the first byte.
    Submissions,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// Greeting, EHLO and Received headers.
    pub hostname: String,
    /// SIZE limit (RFC 1870) and the most a DATA stream may carry.
    pub max_message_size: u64,
    /// Recipients per message; more get 452 (RFC 5321 §4.5.3.1.8 asks for
    /// at least 100).
    pub max_recipients: usize,
    pub kind: ListenerKind,
    /// Offer AUTH on a plain submission connection (only for testing or a
    /// trusted network: passwords would cross in clear text).
    pub allow_plaintext_auth: bool,
    /// An authenticated user may only send as their address or an alias.
    pub enforce_sender: bool,
    /// How long to wait for each command or piece of data (RFC 5321
    /// §4.5.3.2 suggests 5 minutes).
    pub command_timeout: Duration,
}

impl SmtpConfig {
    /// The defaults for a listener: 50 MB, 100 recipients, 5 minutes.
    pub fn new(hostname: impl Into<String>, kind: ListenerKind) -> SmtpConfig {
        SmtpConfig {
            hostname: hostname.into(),
            max_message_size: 52_428_800,
            max_recipients: 100,
            kind,
            allow_plaintext_auth: false,
            enforce_sender: true,
            command_timeout: Duration::from_secs(300),
        }
    }
}

/// What a [`SenderCheck`] sees at MAIL FROM.
#[derive(Debug, Clone)]
pub struct SenderInfo<'a> {
    pub peer: IpAddr,
    pub helo: &'a str,
    /// The envelope sender; empty for `<>`.
    pub sender: &'a str,
}

pub enum SenderVerdict {
    /// Go on; the header lines (each ending in CRLF, e.g. `Received-SPF:`
    /// and `Authentication-Results:`) are added to the message.
    Accept { trace_headers: Vec<String> },
    /// Refuse MAIL FROM with this reply.
    Reject(Reply),
}

/// Checks an unauthenticated sender on the MX listener at MAIL FROM: the
/// place where SPF plugs in. Authenticated sessions and the submission
/// listeners skip it.
pub trait SenderCheck: Send + Sync {
    fn check<'a>(&'a self, info: SenderInfo<'a>) -> BoxFuture<'a, SenderVerdict>;
}

/// Serves SMTP connections; cheap to clone, one per listener.
#[derive(Clone)]
pub struct SmtpServer {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    config: SmtpConfig,
    deliverer: Deliverer,
    directory: Directory,
    auth: Authenticator,
    sender_check: Option<Arc<dyn SenderCheck>>,
}

impl SmtpServer {
    pub fn new(
        config: SmtpConfig,
        deliverer: Deliverer,
        directory: Directory,
        auth: Authenticator,
    ) -> SmtpServer {
        SmtpServer {
            inner: Arc::new(Inner {
                config,
                deliverer,
                directory,
                auth,
                sender_check: None,
            }),
        }
    }

    /// Adds a check of MAIL FROM on the MX listener (SPF).
    pub fn with_sender_check(self, check: Arc<dyn SenderCheck>) -> SmtpServer {
        let mut inner = Arc::unwrap_or_clone(self.inner);
        inner.sender_check = Some(check);
        SmtpServer {
            inner: Arc::new(inner),
        }
    }

    /// Runs one session to its end. Log lines carry the connection span of
    /// the listener (`conn`, `peer`) and `user` once authenticated.
    pub async fn handle(&self, conn: net::Connection) {
        let span = tracing::info_span!("smtp", user = tracing::field::Empty);
        session::run(&self.inner, conn, span.clone())
            .instrument(span)
            .await;
    }
}
