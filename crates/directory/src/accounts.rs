//! Accounts: a mailbox, its password and quota, and its short login id.

use rand::Rng;
use serde::{Deserialize, Serialize};
use store::{AccountId, DirOp};
use tracing::info;

use crate::forwarders::Forwarding;
use crate::keys::{self, AddressEntry};
use crate::syntax::{Address, parse_address, parse_domain};
use crate::{Directory, DirectoryError, Result, created_now, password};

/// Short login ids use lowercase letters and digits without the look-alikes
/// 0/o, 1/l/i: 31 symbols, so six of them give about 887 million ids.
const LOGIN_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
const LOGIN_LEN: usize = 6;
/// Collisions are rare until hundreds of millions of ids exist; this many
/// misses in a row means something else is wrong.
const LOGIN_ATTEMPTS: usize = 64;
const MAX_DISPLAY_NAME: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Stored in the key, not the value.
    #[serde(skip)]
    pub id: AccountId,
    /// Lowercase `local@domain`.
    pub address: String,
    /// Six characters from an unambiguous alphabet; a login name that is
    /// easy to type on a phone and does not reveal the address.
    pub short_login: String,
    pub display_name: Option<String>,
    /// Bytes.
    pub quota: u64,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Unix seconds.
    pub created: u64,
    /// A disabled account keeps its mail and receives more, but cannot log in.
    pub disabled: bool,
}

/// What `posthorn account show` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountDetails {
    pub account: Account,
    /// Bytes of mail stored, from the store's quota counter.
    pub quota_used: u64,
    /// Addresses that are aliases of this account, sorted.
    pub aliases: Vec<String>,
    /// Forwarding set on the account's own address.
    pub forwarding: Option<Forwarding>,
}

impl Directory {
    /// Creates an account with its default folders. The address's domain
    /// must exist and the address must be free.
    pub async fn add_account(
        &self,
        address: &str,
        password: &str,
        quota: Option<u64>,
        display_name: Option<String>,
    ) -> Result<Account> {
        let address = parse_address(address)?;
        self.check_password(password)?;
        let quota = quota.unwrap_or(self.policy().default_quota);
        self.check_quota(quota)?;
        let display_name = check_display_name(display_name)?;
        // Fail fast on an unknown domain before spending time on hashing.
        self.require_domain(&address.domain).await?;
        let password_hash = password::hash_blocking(password).await?;

        let _writer = self.lock().await;
        self.require_domain(&address.domain).await?;
        if let Some(entry) = self.address_entry(&address).await? {
            return Err(DirectoryError::AddressInUse {
                address: address.to_string(),
                used_as: self.describe(entry).await?,
            });
        }
        let mut account = Account {
            id: 0,
            address: address.to_string(),
            short_login: self.free_login_id().await?,
            display_name,
            quota,
            password_hash,
            created: created_now(),
            disabled: false,
        };
        let record = keys::encode(&account)?;
        let address_key = keys::address(&address);
        let login_key = keys::login(&account.short_login);
        account.id = self
            .store()
            .create_account(move |id| {
                vec![
                    DirOp::Put(keys::account(id), record),
                    DirOp::Put(address_key, AddressEntry::Account(id).encode()),
                    DirOp::Put(login_key, id.to_be_bytes().to_vec()),
                ]
            })
            .await?;
        info!(
            target: "posthorn::directory",
            "account added: {} id={} login={}", account.address, account.id, account.short_login
        );
        Ok(account)
    }

    /// Sets a new password. Cached logins with the old one stop working at
    /// once: the auth cache checks the stored hash on every hit.
    pub async fn set_password(&self, address: &str, password: &str) -> Result<()> {
        let address = parse_address(address)?;
        self.check_password(password)?;
        self.require_account(&address).await?;
        let password_hash = password::hash_blocking(password).await?;
        self.update_account(&address, |account| account.password_hash = password_hash)
            .await?;
        info!(target: "posthorn::directory", "password changed: {address}");
        Ok(())
    }

    pub async fn set_quota(&self, address: &str, quota: u64) -> Result<()> {
        let address = parse_address(address)?;
        self.check_quota(quota)?;
        self.update_account(&address, |account| account.quota = quota)
            .await
    }

    /// Disables or re-enables logins of an account.
    pub async fn set_disabled(&self, address: &str, disabled: bool) -> Result<()> {
        let address = parse_address(address)?;
        self.update_account(&address, |account| account.disabled = disabled)
            .await?;
        info!(target: "posthorn::directory", "account {address} disabled={disabled}");
        Ok(())
    }

    /// Removes an account with everything that belongs to it: its mail, its
    /// aliases, the forwarder on its address, its autoresponder, blocklist
    /// and login id. Forwarders elsewhere that name it as a destination are
    /// left alone: they are plain addresses and may point anywhere.
    pub async fn remove_account(&self, address: &str) -> Result<()> {
        let address = parse_address(address)?;
        let _writer = self.lock().await;
        let account = self.require_account(&address).await?;
        let id = account.id;
        let mut ops = vec![
            DirOp::Delete(keys::account(id)),
            DirOp::Delete(keys::address(&address)),
            DirOp::Delete(keys::forward(&address)),
            DirOp::Delete(keys::login(&account.short_login)),
            DirOp::Delete(keys::autoresponder(id)),
        ];
        let alias_prefix = keys::aliases_of(id);
        for (key, _) in self.scan(alias_prefix.clone()).await? {
            let alias = parse_address(&keys::suffix(&key, &alias_prefix)?)?;
            ops.push(DirOp::Delete(keys::address(&alias)));
            ops.push(DirOp::Delete(key));
        }
        for (key, _) in self.scan(keys::blocklist(id)).await? {
            ops.push(DirOp::Delete(key));
        }
        self.store().remove_account(id, ops).await?;
        info!(target: "posthorn::directory", "account removed: {address} id={id}");
        Ok(())
    }

    /// Accounts sorted by address, all of them or those of one domain.
    pub async fn list_accounts(&self, domain: Option<&str>) -> Result<Vec<Account>> {
        let suffix = match domain {
            Some(domain) => {
                let domain = parse_domain(domain, true)?;
                self.require_domain(&domain).await?;
                Some(format!("@{domain}"))
            }
            None => None,
        };
        let mut accounts = Vec::new();
        // One scan over all accounts: directories here hold thousands of
        // accounts, not millions, and the address index does not carry them.
        for (key, value) in self.scan(keys::ACCOUNT.to_vec()).await? {
            let mut account: Account = keys::decode(&key, &value)?;
            if suffix
                .as_deref()
                .is_some_and(|suffix| !account.address.ends_with(suffix))
            {
                continue;
            }
            account.id = keys::decode_id(&key, key.get(keys::ACCOUNT.len()..).unwrap_or_default())?;
            accounts.push(account);
        }
        accounts.sort_by(|a, b| a.address.cmp(&b.address));
        Ok(accounts)
    }

    /// An account with its quota use, aliases and forwarding.
    pub async fn show_account(&self, address: &str) -> Result<AccountDetails> {
        let address = parse_address(address)?;
        let account = self.require_account(&address).await?;
        let quota_used = self.store().quota_used(account.id).await?;
        let aliases = self.aliases_of(account.id).await?;
        let forwarding = self.get_record(keys::forward(&address)).await?;
        Ok(AccountDetails {
            account,
            quota_used,
            aliases,
            forwarding,
        })
    }

    /// The account at `address` (case-insensitive), if that address is an
    /// account. Aliases do not count.
    pub async fn account(&self, address: &str) -> Result<Option<Account>> {
        let address = parse_address(address)?;
        match self.address_entry(&address).await? {
            Some(AddressEntry::Account(id)) => self.account_by_id(id).await,
            _ => Ok(None),
        }
    }

    pub async fn account_by_id(&self, id: AccountId) -> Result<Option<Account>> {
        let account: Option<Account> = self.get_record(keys::account(id)).await?;
        Ok(account.map(|account| Account { id, ..account }))
    }

    /// The account a user name given at login names: its full address or its
    /// short login id, both case-insensitive. `None` for anything else,
    /// including malformed names: a login attempt is not an admin command.
    pub async fn account_by_login(&self, login: &str) -> Result<Option<Account>> {
        if login.contains('@') {
            let Ok(address) = parse_address(login) else {
                return Ok(None);
            };
            return match self.address_entry(&address).await? {
                Some(AddressEntry::Account(id)) => self.account_by_id(id).await,
                _ => Ok(None),
            };
        }
        let login = login.to_ascii_lowercase();
        if login.len() != LOGIN_LEN || !login.bytes().all(|b| LOGIN_ALPHABET.contains(&b)) {
            return Ok(None);
        }
        let key = keys::login(&login);
        match self.get(key.clone()).await? {
            Some(value) => self.account_by_id(keys::decode_id(&key, &value)?).await,
            None => Ok(None),
        }
    }

    /// The account at `address`, or an error saying there is none.
    pub(crate) async fn require_account(&self, address: &Address) -> Result<Account> {
        let Some(AddressEntry::Account(id)) = self.address_entry(address).await? else {
            return Err(DirectoryError::AccountNotFound(address.to_string()));
        };
        self.account_by_id(id)
            .await?
            .ok_or_else(|| DirectoryError::Corrupt {
                key: format!("account/{id}"),
                reason: format!("missing, but {address} points at it"),
            })
    }

    /// Read-modify-write of an account record under the writer lock.
    async fn update_account(
        &self,
        address: &Address,
        change: impl FnOnce(&mut Account),
    ) -> Result<()> {
        let _writer = self.lock().await;
        let mut account = self.require_account(address).await?;
        change(&mut account);
        self.write(vec![DirOp::Put(
            keys::account(account.id),
            keys::encode(&account)?,
        )])
        .await
    }

    /// A random short login id nobody has. Call with the writer lock held.
    async fn free_login_id(&self) -> Result<String> {
        for _ in 0..LOGIN_ATTEMPTS {
            let candidate = random_login_id();
            if self.get(keys::login(&candidate)).await?.is_none() {
                return Ok(candidate);
            }
        }
        Err(DirectoryError::LoginIdsExhausted(LOGIN_ATTEMPTS))
    }

    fn check_password(&self, password: &str) -> Result<()> {
        let policy = self.policy();
        let length = password.chars().count();
        if length < policy.password_min_len {
            return Err(DirectoryError::PasswordTooShort {
                min: policy.password_min_len,
            });
        }
        if length > policy.password_max_len {
            return Err(DirectoryError::PasswordTooLong {
                max: policy.password_max_len,
            });
        }
        // SASL PLAIN (RFC 4616) separates fields with NUL; IMAP LOGIN and
        // POP3 PASS are lines. A password holding these could never be used.
        if password.contains(['\0', '\r', '\n']) {
            return Err(DirectoryError::PasswordBadCharacter);
        }
        Ok(())
    }

    fn check_quota(&self, quota: u64) -> Result<()> {
        let policy = self.policy();
        if quota < policy.quota_min || quota > policy.quota_max {
            return Err(DirectoryError::QuotaOutOfRange {
                quota,
                min: policy.quota_min,
                max: policy.quota_max,
            });
        }
        Ok(())
    }
}

fn random_login_id() -> String {
    let mut rng = rand::rng();
    (0..LOGIN_LEN)
        .map(|_| char::from(LOGIN_ALPHABET[rng.random_range(0..LOGIN_ALPHABET.len())]))
        .collect()
}

/// A display name ends up in headers (autoreplies): no control characters.
fn check_display_name(name: Option<String>) -> Result<Option<String>> {
    let Some(name) = name else {
        return Ok(None);
    };
    let name = name.trim();
    if name.is_empty() {
        return Ok(None);
    }
    if name.chars().count() > MAX_DISPLAY_NAME {
        return Err(DirectoryError::InvalidDisplayName(format!(
            "longer than {MAX_DISPLAY_NAME} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(DirectoryError::InvalidDisplayName(
            "control characters are not allowed".to_owned(),
        ));
    }
    Ok(Some(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_ids_use_the_unambiguous_alphabet() {
        for _ in 0..1000 {
            let id = random_login_id();
            assert_eq!(id.len(), LOGIN_LEN);
            assert!(!id.contains(['0', 'o', '1', 'l', 'i']), "{id}");
            assert!(id.bytes().all(|b| LOGIN_ALPHABET.contains(&b)));
        }
        assert_eq!(LOGIN_ALPHABET.len(), 31);
    }

    #[test]
    fn display_names() {
        assert_eq!(
            check_display_name(Some("  Ann  ".into()))
                .unwrap()
                .as_deref(),
            Some("Ann")
        );
        assert_eq!(check_display_name(Some(" ".into())).unwrap(), None);
        assert!(check_display_name(Some("a\r\nBcc: x".into())).is_err());
        assert!(check_display_name(Some("x".repeat(129))).is_err());
    }
}
