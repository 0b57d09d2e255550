//! Domains the server receives mail for.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use store::DirOp;
use tracing::info;

use crate::keys::{self, AddressEntry};
use crate::syntax::{parse_domain, parse_relay_host};
use crate::{Directory, DirectoryError, Result, created_now};

/// How the server treats mail for a domain's addresses that are not in the
/// directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DomainMode {
    /// Every mailbox of the domain is here: unknown addresses are refused.
    Authoritative,
    /// Addresses not here are passed on to the domain's relay host.
    Relay,
}

impl fmt::Display for DomainMode {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            DomainMode::Authoritative => "authoritative",
            DomainMode::Relay => "relay",
        })
    }
}

impl FromStr for DomainMode {
    type Err = DirectoryError;

    fn from_str(text: &str) -> Result<DomainMode> {
        match text.to_ascii_lowercase().as_str() {
            "authoritative" => Ok(DomainMode::Authoritative),
            "relay" => Ok(DomainMode::Relay),
            _ => Err(DirectoryError::InvalidDomainMode(text.to_owned())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    /// Lowercase, without a trailing dot. Stored in the key, not the value.
    #[serde(skip)]
    pub name: String,
    pub mode: DomainMode,
    /// `host:port`; set exactly when `mode` is `Relay`.
    pub relay_host: Option<String>,
    /// Unix seconds.
    pub created: u64,
}

impl Directory {
    /// Adds a domain. `name` may carry the trailing dot of an absolute name;
    /// it is stored without it.
    pub async fn add_domain(
        &self,
        name: &str,
        mode: DomainMode,
        relay_host: Option<&str>,
    ) -> Result<Domain> {
        let name = parse_domain(name, true)?;
        let relay_host = match (mode, relay_host) {
            (DomainMode::Relay, Some(host)) => Some(parse_relay_host(host)?),
            (DomainMode::Relay, None) => return Err(DirectoryError::RelayHostRequired(name)),
            (DomainMode::Authoritative, Some(_)) => {
                return Err(DirectoryError::RelayHostNotAllowed(name));
            }
            (DomainMode::Authoritative, None) => None,
        };
        let domain = Domain {
            name,
            mode,
            relay_host,
            created: created_now(),
        };
        let key = keys::domain(&domain.name);
        let value = keys::encode(&domain)?;
        let _writer = self.lock().await;
        if self.get(key.clone()).await?.is_some() {
            return Err(DirectoryError::DomainExists(domain.name));
        }
        self.write(vec![DirOp::Put(key, value)]).await?;
        info!(target: "posthorn::directory", "domain added: {} mode={}", domain.name, domain.mode);
        Ok(domain)
    }

    /// Removes a domain that has no addresses left.
    pub async fn remove_domain(&self, name: &str) -> Result<()> {
        let name = parse_domain(name, true)?;
        let _writer = self.lock().await;
        self.require_domain(&name).await?;
        let (mut accounts, mut aliases, mut forwarders) = (0, 0, 0);
        for (key, value) in self.scan(keys::domain_addresses(&name)).await? {
            match AddressEntry::decode(&key, &value)? {
                AddressEntry::Account(_) => accounts += 1,
                AddressEntry::Alias(_) => aliases += 1,
                AddressEntry::Forwarder => forwarders += 1,
            }
        }
        if accounts + aliases + forwarders > 0 {
            return Err(DirectoryError::DomainInUse {
                domain: name,
                accounts,
                aliases,
                forwarders,
            });
        }
        self.write(vec![
            DirOp::Delete(keys::domain(&name)),
            Directory::dkim_key_op_delete(&name),
        ])
        .await?;
        info!(target: "posthorn::directory", "domain removed: {name}");
        Ok(())
    }

    /// All domains, sorted by name.
    pub async fn list_domains(&self) -> Result<Vec<Domain>> {
        self.scan(keys::DOMAIN.to_vec())
            .await?
            .into_iter()
            .map(|(key, value)| {
                let mut domain: Domain = keys::decode(&key, &value)?;
                domain.name = keys::suffix(&key, keys::DOMAIN)?;
                Ok(domain)
            })
            .collect()
    }

    /// A domain by its lowercase name.
    /// The domain by name (lowercase, no trailing dot), if it is ours.
    pub async fn domain(&self, name: &str) -> Result<Option<Domain>> {
        let domain: Option<Domain> = self.get_record(keys::domain(name)).await?;
        Ok(domain.map(|domain| Domain {
            name: name.to_owned(),
            ..domain
        }))
    }

    pub(crate) async fn require_domain(&self, name: &str) -> Result<Domain> {
        self.domain(name)
            .await?
            .ok_or_else(|| DirectoryError::DomainNotFound(name.to_owned()))
    }
}
