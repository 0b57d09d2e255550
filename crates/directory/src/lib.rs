//! The directory: domains, accounts, aliases, forwarders, autoresponders and
//! blocklists, with the validation rules that keep them consistent, and
//! authentication against it ([`auth`]).
//!
//! It lives in the store's directory key space (layout in `keys.rs`). Reads
//! go straight to the store; every read-check-write sequence holds one
//! writer lock, which is enough because only one process writes (the daemon,
//! or the CLI when no daemon runs).

mod accounts;
mod aliases;
pub mod auth;
mod autoresponder;
mod blocklist;
mod date;
mod domains;
mod error;
mod forwarders;
mod keys;
mod outbound;
mod password;
mod policy;
mod resolve;
mod size;
mod syntax;

use std::sync::Arc;

pub use store::AccountId;
use store::{DirOp, Store};
use tokio::sync::{Mutex, MutexGuard};

pub use accounts::{Account, AccountDetails};
pub use aliases::AliasInfo;
pub use autoresponder::{Autoresponder, MAX_AUTORESPONDER_BODY};
pub use date::{Date, now_unix, rfc5322_date};
pub use domains::{Domain, DomainMode};
pub use error::DirectoryError;
pub use forwarders::{ForwarderInfo, Forwarding};
pub use outbound::{DKIM_SELECTOR, DkimKey};
pub use policy::Policy;
pub use resolve::Resolution;
pub use size::{format_size, parse_size};

use keys::AddressEntry;
use syntax::Address;

pub type Result<T, E = DirectoryError> = std::result::Result<T, E>;

/// Handle to the directory; cheap to clone.
#[derive(Clone)]
pub struct Directory {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    policy: Policy,
    writer: Mutex<()>,
}

impl Directory {
    pub fn new(store: Store, policy: Policy) -> Directory {
        Directory {
            inner: Arc::new(Inner {
                store,
                policy,
                writer: Mutex::new(()),
            }),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Serializes read-check-write sequences so two commands cannot both see
    /// an address as free and both take it.
    async fn lock(&self) -> MutexGuard<'_, ()> {
        self.inner.writer.lock().await
    }

    async fn get(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>> {
        Ok(self.store().dir_get(key).await?)
    }

    async fn get_record<T: serde::de::DeserializeOwned>(&self, key: Vec<u8>) -> Result<Option<T>> {
        match self.store().dir_get(key.clone()).await? {
            Some(value) => keys::decode(&key, &value).map(Some),
            None => Ok(None),
        }
    }

    async fn scan(&self, prefix: Vec<u8>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(self.store().dir_scan(prefix).await?)
    }

    async fn write(&self, ops: Vec<DirOp>) -> Result<()> {
        Ok(self.store().dir_write(ops).await?)
    }

    async fn address_entry(&self, address: &Address) -> Result<Option<AddressEntry>> {
        let key = keys::address(address);
        match self.get(key.clone()).await? {
            Some(value) => AddressEntry::decode(&key, &value).map(Some),
            None => Ok(None),
        }
    }

    /// What an address in use is, for "already in use as ..." messages.
    async fn describe(&self, entry: AddressEntry) -> Result<String> {
        Ok(match entry {
            AddressEntry::Account(_) => "an account".to_owned(),
            AddressEntry::Alias(id) => match self.account_by_id(id).await? {
                Some(account) => format!("an alias of {}", account.address),
                None => "an alias".to_owned(),
            },
            AddressEntry::Forwarder => "a forwarder".to_owned(),
        })
    }
}

/// Seconds since the Unix epoch, for `created` stamps.
fn created_now() -> u64 {
    now_unix().max(0) as u64
}
