//! Per-account sender blocklists: a full address or every sender of a
//! domain (`*@domain`). Matching is case-insensitive; patterns are stored
//! lowercase and senders are lowercased before lookup.

use store::{AccountId, DirOp};
use tracing::info;

use crate::keys;
use crate::syntax::{parse_address, parse_domain};
use crate::{Directory, DirectoryError, Result};

/// A blocklist pattern in canonical (lowercase) form.
fn parse_pattern(input: &str) -> Result<String> {
    let invalid = |err: DirectoryError| DirectoryError::InvalidSenderPattern {
        value: input.to_owned(),
        reason: match err {
            DirectoryError::InvalidAddress { reason, .. }
            | DirectoryError::InvalidDomain { reason, .. } => reason,
            other => other.to_string(),
        },
    };
    match input.strip_prefix("*@") {
        Some(domain) => Ok(format!(
            "*@{}",
            parse_domain(domain, false).map_err(invalid)?
        )),
        None => Ok(parse_address(input).map_err(invalid)?.to_string()),
    }
}

impl Directory {
    /// Blocks `sender` (an address or `*@domain`) for the account at `address`.
    pub async fn block_sender(&self, address: &str, sender: &str) -> Result<()> {
        let address = parse_address(address)?;
        let pattern = parse_pattern(sender)?;
        let _writer = self.lock().await;
        let account = self.require_account(&address).await?;
        let key = keys::block(account.id, &pattern);
        if self.get(key.clone()).await?.is_some() {
            return Err(DirectoryError::BlocklistExists {
                account: account.address,
                sender: pattern,
            });
        }
        let limit = self.policy().max_blocked_senders_per_account;
        if self.scan(keys::blocklist(account.id)).await?.len() >= limit {
            return Err(DirectoryError::BlocklistLimit {
                account: account.address,
                limit,
            });
        }
        self.write(vec![DirOp::Put(key, Vec::new())]).await?;
        info!(target: "posthorn::directory", "blocklist: {address} blocks {pattern}");
        Ok(())
    }

    pub async fn unblock_sender(&self, address: &str, sender: &str) -> Result<()> {
        let address = parse_address(address)?;
        let pattern = parse_pattern(sender)?;
        let _writer = self.lock().await;
        let account = self.require_account(&address).await?;
        let key = keys::block(account.id, &pattern);
        if self.get(key.clone()).await?.is_none() {
            return Err(DirectoryError::BlocklistNotFound {
                account: account.address,
                sender: pattern,
            });
        }
        self.write(vec![DirOp::Delete(key)]).await?;
        info!(target: "posthorn::directory", "blocklist: {address} unblocks {pattern}");
        Ok(())
    }

    /// The blocked sender patterns of the account at `address`, sorted.
    pub async fn blocked_senders(&self, address: &str) -> Result<Vec<String>> {
        let address = parse_address(address)?;
        let account = self.require_account(&address).await?;
        let prefix = keys::blocklist(account.id);
        self.scan(prefix.clone())
            .await?
            .iter()
            .map(|(key, _)| keys::suffix(key, &prefix))
            .collect()
    }

    /// For delivery: whether account `id` blocks mail from `sender` (the
    /// envelope or header sender, any syntax). The null sender `<>` of
    /// bounces is never blocked: it names nobody.
    pub async fn is_blocked(&self, id: AccountId, sender: &str) -> Result<bool> {
        let sender = sender.to_ascii_lowercase();
        let Some((_, domain)) = sender.rsplit_once('@') else {
            return Ok(false);
        };
        if self.get(keys::block(id, &sender)).await?.is_some() {
            return Ok(true);
        }
        Ok(self
            .get(keys::block(id, &format!("*@{domain}")))
            .await?
            .is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert_eq!(
            parse_pattern("Spam@Example.COM").unwrap(),
            "spam@example.com"
        );
        assert_eq!(parse_pattern("*@Example.COM").unwrap(), "*@example.com");
        for bad in ["*@", "*", "*@*.example.com", "spam", "a@b@"] {
            let err = parse_pattern(bad).unwrap_err();
            assert!(
                matches!(err, DirectoryError::InvalidSenderPattern { .. }),
                "{bad}: {err}"
            );
        }
    }
}
