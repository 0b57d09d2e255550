//! Forwarders: mail to an address is passed on to other addresses, local or
//! external. A forwarder stands alone or sits on an account's address, where
//! it may keep a copy in the mailbox.
//!
//! Forwarding loops between addresses (a -> b -> a) cannot be ruled out here,
//! since destinations may be anywhere; delivery stops them by counting hops.

use serde::{Deserialize, Serialize};
use store::DirOp;
use tracing::info;

use crate::keys::{self, AddressEntry};
use crate::syntax::parse_address;
use crate::{Directory, DirectoryError, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forwarding {
    /// Lowercase addresses, in the order they were added.
    pub destinations: Vec<String>,
    /// Also deliver to the account at the forwarding address. Only ever set
    /// on account addresses.
    pub keep_copy: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwarderInfo {
    pub address: String,
    pub forwarding: Forwarding,
}

impl Directory {
    /// Adds `destination` to the forwarder at `address`, creating it if
    /// needed. `keep_copy` applies to the whole address and every call sets
    /// it, so the last `forward add` decides; it needs `address` to be an
    /// account.
    pub async fn add_forwarder(
        &self,
        address: &str,
        destination: &str,
        keep_copy: bool,
    ) -> Result<()> {
        let address = parse_address(address)?;
        let destination = parse_address(destination)?;
        if destination == address {
            return Err(DirectoryError::ForwardToSelf(address.to_string()));
        }
        let destination = destination.to_string();
        let _writer = self.lock().await;
        self.require_domain(&address.domain).await?;
        let entry = self.address_entry(&address).await?;
        match entry {
            Some(AddressEntry::Alias(id)) => {
                let account = self
                    .account_by_id(id)
                    .await?
                    .map_or_else(|| format!("(missing account {id})"), |a| a.address);
                return Err(DirectoryError::ForwardOnAlias {
                    address: address.to_string(),
                    account,
                });
            }
            Some(AddressEntry::Account(_)) => {}
            Some(AddressEntry::Forwarder) | None if keep_copy => {
                return Err(DirectoryError::KeepCopyNeedsAccount(address.to_string()));
            }
            Some(AddressEntry::Forwarder) | None => {}
        }
        let key = keys::forward(&address);
        let mut forwarding = self.get_record(key.clone()).await?.unwrap_or(Forwarding {
            destinations: Vec::new(),
            keep_copy: false,
        });
        if forwarding.destinations.contains(&destination) {
            return Err(DirectoryError::ForwarderExists {
                address: address.to_string(),
                destination,
            });
        }
        let limit = self.policy().max_forward_destinations;
        if forwarding.destinations.len() >= limit {
            return Err(DirectoryError::ForwarderLimit {
                address: address.to_string(),
                limit,
            });
        }
        forwarding.destinations.push(destination.clone());
        forwarding.keep_copy = keep_copy;
        let mut ops = vec![DirOp::Put(key, keys::encode(&forwarding)?)];
        if entry.is_none() {
            ops.push(DirOp::Put(
                keys::address(&address),
                AddressEntry::Forwarder.encode(),
            ));
        }
        self.write(ops).await?;
        info!(
            target: "posthorn::directory",
            "forwarder added: {address} -> {destination} keep_copy={keep_copy}"
        );
        Ok(())
    }

    /// Removes one destination; the forwarder goes when its last one does.
    pub async fn remove_forwarder(&self, address: &str, destination: &str) -> Result<()> {
        let address = parse_address(address)?;
        let destination = parse_address(destination)?.to_string();
        let _writer = self.lock().await;
        let key = keys::forward(&address);
        let not_found = || DirectoryError::ForwarderNotFound {
            address: address.to_string(),
            destination: destination.clone(),
        };
        let mut forwarding: Forwarding =
            self.get_record(key.clone()).await?.ok_or_else(not_found)?;
        let before = forwarding.destinations.len();
        forwarding.destinations.retain(|d| *d != destination);
        if forwarding.destinations.len() == before {
            return Err(not_found());
        }
        let ops = if forwarding.destinations.is_empty() {
            let mut ops = vec![DirOp::Delete(key)];
            if self.address_entry(&address).await? == Some(AddressEntry::Forwarder) {
                ops.push(DirOp::Delete(keys::address(&address)));
            }
            ops
        } else {
            vec![DirOp::Put(key, keys::encode(&forwarding)?)]
        };
        self.write(ops).await?;
        info!(target: "posthorn::directory", "forwarder removed: {address} -> {destination}");
        Ok(())
    }

    /// All forwarders, sorted by domain, then local part.
    pub async fn list_forwarders(&self) -> Result<Vec<ForwarderInfo>> {
        self.scan(keys::FORWARD.to_vec())
            .await?
            .into_iter()
            .map(|(key, value)| {
                Ok(ForwarderInfo {
                    address: keys::address_of(&key, keys::FORWARD)?,
                    forwarding: keys::decode(&key, &value)?,
                })
            })
            .collect()
    }
}
