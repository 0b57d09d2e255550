//! IMAP4rev1 server (RFC 3501) with the extensions modern clients use, and
//! IDLE push (RFC 2177) driven by the store's change feed.
//!
//! `proto` is the pure grammar and formatting; `session` the per-connection
//! state machine, one file per command family.

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
