//! The delivery core: given an envelope and the message bytes, resolve every
//! recipient, store one copy per target account's INBOX in one atomic batch, and
//! report a result per recipient.
//!
//! Delivery is a pipeline: resolution turns each envelope recipient into a
//! [`RecipientPlan`] (which accounts get the message, which addresses it goes on
//! to, or why it fails); [`Stage`]s then adjust the [`Plan`]; one commit stores
//! it. SMTP resolves at RCPT time and hands its plans in, so nothing is looked up
//! twice. Blocklists, quota pre-checks, forwarding through the outbound queue and
//! autoresponders plug in as further stages without touching the protocols.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use directory::{Directory, DomainMode, Resolution};
use store::{
    AccountId, Appended, Flags, MailboxRef, StagedBlob, Store, StoreError, Summary, Target,
};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// SMTP's view of a message: the envelope sender (empty for `<>`) and recipients.
#[derive(Clone, Debug, Default)]
pub struct Envelope {
    pub sender: String,
    pub recipients: Vec<String>,
}

/// Why a recipient did not get the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No such address in an authoritative domain.
    UnknownUser,
    /// Not one of our domains; relaying is the SMTP layer's decision.
    NotLocal,
    /// Syntactically unusable address.
    BadAddress(String),
    OverQuota,
    /// Try again later (the message was not stored for this recipient).
    Temporary(String),
}

impl Failure {
    /// The SMTP reply (RFC 5321 code, RFC 3463 enhanced code, text) for this failure.
    pub fn smtp_reply(&self) -> (u16, &'static str, String) {
        match self {
            Failure::UnknownUser => (550, "5.1.1", "User unknown".into()),
            Failure::NotLocal => (550, "5.7.1", "relay not permitted".into()),
            Failure::BadAddress(why) => (501, "5.1.3", format!("Bad recipient address: {why}")),
            Failure::OverQuota => (552, "5.2.2", "Mailbox full".into()),
            Failure::Temporary(why) => (451, "4.3.0", why.clone()),
        }
    }
}

/// What happened to one envelope recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stored in these folders (more than one through forwarders).
    Delivered(Vec<Appended>),
    Failed(Failure),
}

/// The plan for one envelope recipient, filled in by the stages.
#[derive(Clone, Debug, Default)]
pub struct RecipientPlan {
    pub address: String,
    /// Accounts whose INBOX gets a copy.
    pub local: Vec<AccountId>,
    /// Addresses the message goes on to (forwarders, relay domains).
    pub remote: Vec<String>,
    pub failure: Option<Failure>,
}

pub struct Plan<'a> {
    pub envelope: &'a Envelope,
    pub summary: &'a Summary,
    pub recipients: Vec<RecipientPlan>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Directory(#[from] directory::DirectoryError),
}

/// One step of the pipeline. A stage may fail recipients, add or remove targets;
/// it must not store anything itself (the commit does, atomically).
pub trait Stage: Send + Sync {
    fn name(&self) -> &'static str;
    fn apply<'a>(&'a self, plan: &'a mut Plan<'_>) -> BoxFuture<'a, Result<(), DeliveryError>>;
}

/// Resolves recipients through the directory: accounts, aliases, forwarders.
pub struct Resolve {
    directory: Directory,
}

impl Resolve {
    pub fn new(directory: Directory) -> Self {
        Resolve { directory }
    }

    /// The plan for one address, on its own (SMTP asks this at RCPT time).
    pub async fn recipient(&self, address: &str) -> Result<RecipientPlan, DeliveryError> {
        let mut plan = RecipientPlan {
            address: address.to_string(),
            ..Default::default()
        };
        let resolution = match self.directory.resolve(address).await {
            Ok(r) => r,
            Err(
                directory::DirectoryError::InvalidAddress { reason, .. }
                | directory::DirectoryError::InvalidDomain { reason, .. },
            ) => {
                plan.failure = Some(Failure::BadAddress(reason));
                return Ok(plan);
            }
            Err(e) => return Err(e.into()),
        };
        match resolution {
            Resolution::Account { id } => plan.local.push(id),
            Resolution::Alias { account_id, .. } => plan.local.push(account_id),
            Resolution::Forward {
                destinations,
                keep_copy_account,
            } => {
                plan.local.extend(keep_copy_account);
                for dest in destinations {
                    // One level: a local destination lands in its account directly;
                    // anything else leaves through the outbound queue.
                    match self.directory.resolve(&dest).await {
                        Ok(Resolution::Account { id })
                        | Ok(Resolution::Alias { account_id: id, .. }) => plan.local.push(id),
                        _ => plan.remote.push(dest),
                    }
                }
            }
            Resolution::Unknown {
                domain_mode: Some(DomainMode::Authoritative),
                ..
            } => plan.failure = Some(Failure::UnknownUser),
            Resolution::Unknown {
                domain_mode: Some(DomainMode::Relay),
                ..
            } => plan.remote.push(address.to_string()),
            Resolution::Unknown {
                domain_mode: None, ..
            } => plan.failure = Some(Failure::NotLocal),
        }
        Ok(plan)
    }
}

/// Until the outbound queue exists, a recipient that needs mail to leave this
/// server is deferred as a whole, so nothing is stored twice when it is retried.
pub struct NoOutbound;

impl Stage for NoOutbound {
    fn name(&self) -> &'static str {
        "no-outbound"
    }

    fn apply<'a>(&'a self, plan: &'a mut Plan<'_>) -> BoxFuture<'a, Result<(), DeliveryError>> {
        for r in plan
            .recipients
            .iter_mut()
            .filter(|r| !r.remote.is_empty() && r.failure.is_none())
        {
            r.local.clear();
            r.failure = Some(Failure::Temporary(
                "outbound delivery is not available yet".into(),
            ));
        }
        Box::pin(async { Ok(()) })
    }
}

#[derive(Clone)]
pub struct Deliverer {
    store: Store,
    directory: Directory,
    resolve: Arc<Resolve>,
    stages: Arc<Vec<Arc<dyn Stage>>>,
}

impl Deliverer {
    pub fn new(store: Store, directory: Directory) -> Self {
        let resolve = Arc::new(Resolve::new(directory.clone()));
        let stages: Vec<Arc<dyn Stage>> = vec![Arc::new(NoOutbound)];
        Deliverer {
            store,
            directory,
            resolve,
            stages: Arc::new(stages),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// What would happen to one recipient (for RCPT-time answers).
    pub async fn check_recipient(&self, address: &str) -> Result<RecipientPlan, DeliveryError> {
        self.resolve.recipient(address).await
    }

    /// Whether the account has room for `size` more bytes: the RCPT-time quota
    /// answer (the commit checks again, exactly).
    pub async fn has_room(&self, account: AccountId, size: u64) -> Result<bool, DeliveryError> {
        let Some(a) = self.directory.account_by_id(account).await? else {
            return Ok(false);
        };
        let used = self.store.quota_used(account).await?;
        Ok(used.saturating_add(size.max(1)) <= a.quota)
    }

    /// Resolves every recipient, runs the pipeline and commits; see
    /// [`Deliverer::deliver_planned`].
    pub async fn deliver(
        &self,
        envelope: &Envelope,
        blob: StagedBlob,
    ) -> Result<Vec<Outcome>, DeliveryError> {
        let mut plans = Vec::with_capacity(envelope.recipients.len());
        for address in &envelope.recipients {
            plans.push(self.resolve.recipient(address).await?);
        }
        self.deliver_planned(envelope, plans, blob).await
    }

    /// Runs the pipeline on recipients already resolved (one plan per envelope
    /// recipient, in order) and commits: one stored copy of the bytes, one message
    /// record per distinct target account, all in one synced batch. Returns one
    /// outcome per envelope recipient, in order.
    pub async fn deliver_planned(
        &self,
        envelope: &Envelope,
        recipients: Vec<RecipientPlan>,
        blob: StagedBlob,
    ) -> Result<Vec<Outcome>, DeliveryError> {
        let recipients = {
            let mut plan = Plan {
                envelope,
                summary: blob.summary(),
                recipients,
            };
            for stage in self.stages.iter() {
                stage.apply(&mut plan).await?;
                tracing::trace!(stage = stage.name(), "delivery stage done");
            }
            plan.recipients
        };

        // A message reaches each account once, however many of its addresses were
        // in the envelope (RFC 5321 §3.7.2 duplicate suppression, as Postfix does).
        let mut accounts: BTreeMap<AccountId, Option<Result<Appended, StoreError>>> =
            BTreeMap::new();
        for r in recipients.iter().filter(|r| r.failure.is_none()) {
            accounts.extend(r.local.iter().map(|&id| (id, None)));
        }
        let mut targets = Vec::with_capacity(accounts.len());
        for &id in accounts.keys() {
            let quota = self.directory.account_by_id(id).await?.map(|a| a.quota);
            targets.push(Target {
                account: id,
                mailbox: MailboxRef::Inbox,
                flags: Flags::default(),
                quota_limit: quota,
            });
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let results = self.store.deliver(blob, targets, now).await?;
        for (slot, result) in accounts.values_mut().zip(results) {
            *slot = Some(result);
        }

        Ok(recipients
            .into_iter()
            .map(|r| {
                if let Some(f) = r.failure {
                    return Outcome::Failed(f);
                }
                let mut stored = Vec::new();
                let mut failure = None;
                for id in &r.local {
                    match accounts.get(id) {
                        Some(Some(Ok(a))) => stored.push(a.clone()),
                        Some(Some(Err(StoreError::OverQuota))) => {
                            failure = Some(Failure::OverQuota)
                        }
                        Some(Some(Err(e))) => failure = Some(Failure::Temporary(e.to_string())),
                        _ => failure = Some(Failure::Temporary("not stored".into())),
                    }
                }
                match (stored.is_empty(), failure) {
                    (true, Some(f)) => Outcome::Failed(f),
                    (true, None) => Outcome::Failed(Failure::Temporary("no destination".into())),
                    (false, _) => Outcome::Delivered(stored),
                }
            })
            .collect())
    }

    /// Convenience for a message already in memory.
    pub async fn deliver_bytes(
        &self,
        envelope: &Envelope,
        bytes: &[u8],
    ) -> Result<Vec<Outcome>, DeliveryError> {
        let mut w = self.store.blob_writer();
        w.write(bytes).await?;
        self.deliver(envelope, w.finish()).await
    }
}
