//! IMAP4rev1 (RFC 3501) and IMAP4rev2 (RFC 9051) server with the extensions modern clients use, and
//! IDLE push (RFC 2177) driven by the store's change feed.
//!
//! `proto` is the pure grammar and formatting; `session` the per-connection
//! state machine, one file per command family.
//!
//! | RFC | what | status |
//! |---|---|---|
//! | 3501 | IMAP4rev1 | done, except: SEARCH HEADER on fields outside the envelope decodes no RFC 2047 words, ENVELOPE strings are UTF-8 as the summary stores them |
//! | 2177 | IDLE | done: change feed push, `* OK Still here` every 2 min, 35 min IDLE limit |
//! | 7888 | LITERAL+ | done; over-limit `{n+}` closes the connection |
//! | 4959 | SASL-IR | done (PLAIN only, RFC 4616) |
//! | 4315 | UIDPLUS | done: APPENDUID, COPYUID, UID EXPUNGE |
//! | 6851 | MOVE | done |
//! | 6154 | SPECIAL-USE | done, plus the `(SPECIAL-USE)` LIST selection option |
//! | 3348 | CHILDREN | done |
//! | 2342 | NAMESPACE | done (one personal namespace) |
//! | 3691 | UNSELECT | done |
//! | 5161 | ENABLE | done (CONDSTORE, QRESYNC) |
//! | 2971 | ID | done |
//! | 9208 | QUOTA | GETQUOTA/GETQUOTAROOT, `[OVERQUOTA]` on APPEND/COPY; no SETQUOTA |
//! | 7162 | CONDSTORE, QRESYNC | done; SELECT's sequence match data is accepted and ignored |
//! | 5258/5819 | LIST-EXTENDED, LIST-STATUS | selection SUBSCRIBED, SPECIAL-USE, RECURSIVEMATCH, REMOTE; RETURN SUBSCRIBED, CHILDREN, STATUS |
//! | 4731 | ESEARCH | done |
//! | 3502 | MULTIAPPEND | done: all or none |
//! | 8438 | STATUS=SIZE | done |
//! | 9051 | IMAP4rev2 | after `ENABLE IMAP4rev2`: ESEARCH, UTF-8 names, no RECENT; STATUS DELETED |
//! | 3516 | BINARY | done (parts up to 16 MiB) |
//! | 5182 | SEARCHRES | done |

pub mod proto;
mod session;

use std::sync::Arc;

use directory::Directory;
use directory::auth::Authenticator;
use net::Connection;
use store::Store;

pub use session::capabilities;

#[derive(Clone, Debug)]
pub struct ImapConfig {
    /// Allow LOGIN and AUTHENTICATE on a connection without TLS.
    pub allow_plaintext_auth: bool,
    /// Largest APPEND literal accepted (`[limits] max_message_size`).
    pub max_message_size: u64,
}

/// One per listener kind; cheap to clone.
#[derive(Clone)]
pub struct ImapServer {
    inner: Arc<Inner>,
}

struct Inner {
    config: ImapConfig,
    store: Store,
    directory: Directory,
    auth: Authenticator,
}

impl ImapServer {
    pub fn new(
        config: ImapConfig,
        store: Store,
        directory: Directory,
        auth: Authenticator,
    ) -> Self {
        ImapServer {
            inner: Arc::new(Inner {
                config,
                store,
                directory,
                auth,
            }),
        }
    }

    /// Serves one connection until LOGOUT, error, timeout or shutdown.
    pub async fn handle(&self, conn: Connection) {
        session::run(self.inner.clone(), conn).await;
    }
}
