//! Aliases: further addresses of an account.
//!
//! An alias always points at an account, never at another alias, so alias
//! chains and loops cannot be expressed at all.

use std::collections::HashMap;

use store::{AccountId, DirOp};
use tracing::info;

use crate::keys::{self, AddressEntry};
use crate::syntax::parse_address;
use crate::{Directory, DirectoryError, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasInfo {
    pub alias: String,
    pub account_id: AccountId,
    /// The account's address.
    pub account: String,
}

impl Directory {
    /// Makes `alias` a further address of the account at `account_address`.
    pub async fn add_alias(&self, alias: &str, account_address: &str) -> Result<()> {
        let alias = parse_address(alias)?;
        let target = parse_address(account_address)?;
        if alias == target {
            return Err(DirectoryError::AliasToSelf {
                alias: alias.to_string(),
            });
        }
        let _writer = self.lock().await;
        self.require_domain(&alias.domain).await?;
        let id = match self.address_entry(&target).await? {
            Some(AddressEntry::Account(id)) => id,
            Some(AddressEntry::Alias(_)) => {
                return Err(DirectoryError::AliasOfAlias {
                    alias: alias.to_string(),
                    target: target.to_string(),
                });
            }
            Some(AddressEntry::Forwarder) => {
                return Err(DirectoryError::AliasOfForwarder {
                    target: target.to_string(),
                });
            }
            None => return Err(DirectoryError::AccountNotFound(target.to_string())),
        };
        if let Some(entry) = self.address_entry(&alias).await? {
            return Err(DirectoryError::AddressInUse {
                address: alias.to_string(),
                used_as: self.describe(entry).await?,
            });
        }
        let limit = self.policy().max_aliases_per_account;
        if self.scan(keys::aliases_of(id)).await?.len() >= limit {
            return Err(DirectoryError::AliasLimit {
                account: target.to_string(),
                limit,
            });
        }
        self.write(vec![
            DirOp::Put(keys::address(&alias), AddressEntry::Alias(id).encode()),
            DirOp::Put(keys::alias_of(id, &alias), Vec::new()),
        ])
        .await?;
        info!(target: "posthorn::directory", "alias added: {alias} -> {target}");
        Ok(())
    }

    pub async fn remove_alias(&self, alias: &str) -> Result<()> {
        let alias = parse_address(alias)?;
        let _writer = self.lock().await;
        let Some(AddressEntry::Alias(id)) = self.address_entry(&alias).await? else {
            return Err(DirectoryError::AliasNotFound(alias.to_string()));
        };
        self.write(vec![
            DirOp::Delete(keys::address(&alias)),
            DirOp::Delete(keys::alias_of(id, &alias)),
        ])
        .await?;
        info!(target: "posthorn::directory", "alias removed: {alias}");
        Ok(())
    }

    /// All aliases, sorted by domain, then local part.
    pub async fn list_aliases(&self) -> Result<Vec<AliasInfo>> {
        let mut accounts: HashMap<AccountId, String> = HashMap::new();
        let mut aliases = Vec::new();
        for (key, value) in self.scan(keys::ADDRESS.to_vec()).await? {
            let AddressEntry::Alias(account_id) = AddressEntry::decode(&key, &value)? else {
                continue;
            };
            let account = match accounts.get(&account_id) {
                Some(address) => address.clone(),
                None => {
                    let address = self
                        .account_by_id(account_id)
                        .await?
                        .map(|account| account.address)
                        .unwrap_or_else(|| format!("(missing account {account_id})"));
                    accounts.insert(account_id, address.clone());
                    address
                }
            };
            aliases.push(AliasInfo {
                alias: keys::address_of(&key, keys::ADDRESS)?,
                account_id,
                account,
            });
        }
        Ok(aliases)
    }

    /// The aliases of one account, sorted.
    pub(crate) async fn aliases_of(&self, id: AccountId) -> Result<Vec<String>> {
        let prefix = keys::aliases_of(id);
        self.scan(prefix.clone())
            .await?
            .iter()
            .map(|(key, _)| keys::suffix(key, &prefix))
            .collect()
    }
}
