//! Directory tests against a real store on disk.

mod accounts;
mod aliases;
mod auth;
mod autoresponder;
mod blocklist;
mod domains;
mod forwarders;
mod resolve;

use directory::{Directory, DomainMode, Policy};
use store::{Store, StoreOptions};
use tempfile::TempDir;

pub const PASSWORD: &str = "correct horse battery";

/// A directory on a fresh store; the store lives as long as the `TempDir`.
pub struct TestDirectory {
    pub directory: Directory,
    pub store: Store,
    _dir: TempDir,
}

impl std::ops::Deref for TestDirectory {
    type Target = Directory;

    fn deref(&self) -> &Directory {
        &self.directory
    }
}

pub fn open(policy: Policy) -> TestDirectory {
    let dir = TempDir::new().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    TestDirectory {
        directory: Directory::new(store.clone(), policy),
        store,
        _dir: dir,
    }
}

impl TestDirectory {
    /// An account with the test password; panics (fails the test) on error.
    pub async fn create_account(&self, address: &str) -> directory::Account {
        self.add_account(address, PASSWORD, None, None)
            .await
            .unwrap()
    }

    /// An authoritative domain; panics (fails the test) on error.
    pub async fn create_domain(&self, name: &str) -> directory::Domain {
        self.add_domain(name, DomainMode::Authoritative, None)
            .await
            .unwrap()
    }
}

/// A directory with the authoritative domain `example.org`.
pub async fn with_domain() -> TestDirectory {
    let directory = open(Policy::default());
    directory.create_domain("example.org").await;
    directory
}
