//! Per-account automatic replies ("vacation messages").

use serde::{Deserialize, Serialize};
use store::{AccountId, DirOp};
use tracing::info;

use crate::date::Date;
use crate::keys;
use crate::syntax::parse_address;
use crate::{Directory, DirectoryError, Result};

/// Largest autoresponder body in bytes.
pub const MAX_AUTORESPONDER_BODY: usize = 64 * 1024;
const MAX_SUBJECT_PREFIX: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Autoresponder {
    pub active: bool,
    /// Put before the original subject in the reply.
    pub subject_prefix: String,
    pub body: String,
    /// First day (UTC) replies are sent; `None` is "from now".
    pub start: Option<Date>,
    /// Last day (UTC) replies are sent, inclusive; `None` is "until turned off".
    pub end: Option<Date>,
    /// Delete the autoresponder once `end` has passed instead of keeping it
    /// for next time.
    pub delete_after_end: bool,
}

impl Default for Autoresponder {
    fn default() -> Autoresponder {
        Autoresponder {
            active: true,
            subject_prefix: "Re: ".to_owned(),
            body: String::new(),
            start: None,
            end: None,
            delete_after_end: false,
        }
    }
}

impl Autoresponder {
    /// Whether replies go out on `today`.
    pub fn is_active_on(&self, today: Date) -> bool {
        self.active
            && self.start.is_none_or(|start| start <= today)
            && self.end.is_none_or(|end| today <= end)
    }

    fn validate(&self) -> Result<()> {
        if let (Some(start), Some(end)) = (self.start, self.end)
            && start > end
        {
            return Err(DirectoryError::AutoresponderDates {
                start: start.to_string(),
                end: end.to_string(),
            });
        }
        if self.body.trim().is_empty() {
            return Err(DirectoryError::AutoresponderBodyEmpty);
        }
        if self.body.len() > MAX_AUTORESPONDER_BODY {
            return Err(DirectoryError::AutoresponderBodyTooLarge {
                size: self.body.len(),
                max: MAX_AUTORESPONDER_BODY,
            });
        }
        // RFC 5322 §2.3 has no room for NUL in a message body.
        if self.body.contains('\0') {
            return Err(DirectoryError::AutoresponderBodyNul);
        }
        // The prefix goes into the Subject header: a line break there would
        // let it add headers of its own.
        if self.subject_prefix.chars().any(char::is_control) {
            return Err(DirectoryError::InvalidSubjectPrefix(
                "control characters (line breaks) are not allowed".to_owned(),
            ));
        }
        if self.subject_prefix.chars().count() > MAX_SUBJECT_PREFIX {
            return Err(DirectoryError::InvalidSubjectPrefix(format!(
                "longer than {MAX_SUBJECT_PREFIX} characters"
            )));
        }
        Ok(())
    }
}

impl Directory {
    /// Sets (replaces) the autoresponder of the account at `address`.
    pub async fn set_autoresponder(
        &self,
        address: &str,
        autoresponder: Autoresponder,
    ) -> Result<()> {
        let address = parse_address(address)?;
        autoresponder.validate()?;
        let value = keys::encode(&autoresponder)?;
        let _writer = self.lock().await;
        let account = self.require_account(&address).await?;
        self.write(vec![DirOp::Put(keys::autoresponder(account.id), value)])
            .await?;
        info!(target: "posthorn::directory", "autoresponder set: {address} active={}", autoresponder.active);
        Ok(())
    }

    /// The autoresponder of the account at `address`, active or not.
    pub async fn autoresponder(&self, address: &str) -> Result<Option<Autoresponder>> {
        let address = parse_address(address)?;
        let account = self.require_account(&address).await?;
        self.get_record(keys::autoresponder(account.id)).await
    }

    /// Turns the autoresponder off, keeping its text for next time. Turning
    /// off an account that has none is not an error.
    pub async fn autoresponder_off(&self, address: &str) -> Result<()> {
        let address = parse_address(address)?;
        let _writer = self.lock().await;
        let account = self.require_account(&address).await?;
        let key = keys::autoresponder(account.id);
        let Some(mut autoresponder) = self.get_record::<Autoresponder>(key.clone()).await? else {
            return Ok(());
        };
        autoresponder.active = false;
        self.write(vec![DirOp::Put(key, keys::encode(&autoresponder)?)])
            .await?;
        info!(target: "posthorn::directory", "autoresponder off: {address}");
        Ok(())
    }

    /// For delivery: the autoresponder that should answer mail to account
    /// `id` on `today`, if any. An autoresponder past its end with
    /// `delete_after_end` is deleted here, the first time mail finds it so.
    pub async fn active_autoresponder(
        &self,
        id: AccountId,
        today: Date,
    ) -> Result<Option<Autoresponder>> {
        let key = keys::autoresponder(id);
        let Some(autoresponder) = self.get_record::<Autoresponder>(key.clone()).await? else {
            return Ok(None);
        };
        if autoresponder.delete_after_end && autoresponder.end.is_some_and(|end| end < today) {
            let _writer = self.lock().await;
            // Re-read under the lock: it may have been replaced meanwhile.
            let current: Option<Autoresponder> = self.get_record(key.clone()).await?;
            if current.as_ref() == Some(&autoresponder) {
                self.write(vec![DirOp::Delete(key)]).await?;
            }
            return Ok(None);
        }
        Ok(autoresponder.is_active_on(today).then_some(autoresponder))
    }
}
