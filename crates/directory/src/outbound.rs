//! Directory state for mail that leaves this server: per-domain DKIM keys,
//! server secrets (SRS) and the memory of which senders got an automatic
//! reply recently.

use mail_auth::dkim::generate::DkimKeyPair;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use store::{AccountId, DirOp};
use tracing::info;

use crate::syntax::parse_domain;
use crate::{Directory, DirectoryError, Result};

const SECRET: &[u8] = b"secret/";
const DKIM: &[u8] = b"dkim/";
const AUTOREPLIED: &[u8] = b"autoreplied/";

/// The DKIM selector of generated keys: `<selector>._domainkey.<domain>`.
pub const DKIM_SELECTOR: &str = "posthorn";
const DKIM_BITS: usize = 2048;

/// A domain's DKIM signing key (RFC 6376, rsa-sha256).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DkimKey {
    pub selector: String,
    /// PKCS#1 DER.
    pub private_key: Vec<u8>,
    /// Base64 of the PKCS#1 public key, as the TXT record's `p=`.
    pub public_key: String,
}

impl std::fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimKey")
            .field("selector", &self.selector)
            .finish_non_exhaustive()
    }
}

impl DkimKey {
    /// The record to publish: its name and TXT value.
    pub fn dns_record(&self, domain: &str) -> (String, String) {
        (
            format!("{}._domainkey.{domain}", self.selector),
            format!("v=DKIM1; k=rsa; p={}", self.public_key),
        )
    }
}

fn dkim_key(domain: &str) -> Vec<u8> {
    [DKIM, domain.as_bytes()].concat()
}

fn autoreplied_key(account: AccountId, sender: &str) -> Vec<u8> {
    let mut key = AUTOREPLIED.to_vec();
    key.extend_from_slice(&account.to_be_bytes());
    key.extend_from_slice(sender.to_ascii_lowercase().as_bytes());
    key
}

impl Directory {
    /// A 32-byte secret by name, created on first use and kept in the store
    /// so that it survives restarts (SRS addresses must stay valid).
    pub async fn secret(&self, name: &str) -> Result<[u8; 32]> {
        let key = [SECRET, name.as_bytes()].concat();
        let _writer = self.lock().await;
        if let Some(value) = self.get(key.clone()).await? {
            return value.try_into().map_err(|_| DirectoryError::Corrupt {
                key: format!("secret/{name}"),
                reason: "not 32 bytes".into(),
            });
        }
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        self.write(vec![DirOp::Put(key, secret.to_vec())]).await?;
        Ok(secret)
    }

    /// The domain's DKIM key, if it has one.
    pub async fn dkim_key(&self, domain: &str) -> Result<Option<DkimKey>> {
        let domain = parse_domain(domain, true)?;
        self.get_record(dkim_key(&domain)).await
    }

    /// Generates (or replaces) the domain's DKIM key.
    pub async fn generate_dkim_key(&self, domain: &str) -> Result<DkimKey> {
        let domain = parse_domain(domain, true)?;
        self.require_domain(&domain).await?;
        let pair = tokio::task::spawn_blocking(|| DkimKeyPair::generate_rsa(DKIM_BITS))
            .await
            .map_err(|e| DirectoryError::Crypto(e.to_string()))?
            .map_err(|e| DirectoryError::Crypto(e.to_string()))?;
        let key = DkimKey {
            selector: DKIM_SELECTOR.to_string(),
            public_key: pair.encoded_public_key(),
            private_key: pair.private_key().to_vec(),
        };
        self.write(vec![DirOp::Put(
            dkim_key(&domain),
            crate::keys::encode(&key)?,
        )])
        .await?;
        info!(target: "posthorn::directory", "dkim key generated: {domain} selector={}", key.selector);
        Ok(key)
    }

    pub(crate) fn dkim_key_op_delete(domain: &str) -> DirOp {
        DirOp::Delete(dkim_key(domain))
    }

    /// Whether `account` may send an automatic reply to `sender` now (none in
    /// the last `interval` seconds); if so, records that it does. Recording
    /// first means a crash can cost a reply, never send two.
    pub async fn autoreply_due(
        &self,
        account: AccountId,
        sender: &str,
        now: i64,
        interval: i64,
    ) -> Result<bool> {
        let key = autoreplied_key(account, sender);
        let _writer = self.lock().await;
        if let Some(value) = self.get(key.clone()).await? {
            let last = value
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, i64::from_be_bytes);
            if now.saturating_sub(last) < interval {
                return Ok(false);
            }
        }
        self.write(vec![DirOp::Put(key, now.to_be_bytes().to_vec())])
            .await?;
        Ok(true)
    }
}
