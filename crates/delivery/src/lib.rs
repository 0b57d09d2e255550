//! The delivery core: given an envelope and the message bytes, resolve every
//! recipient, store one copy per target account's INBOX and queue what leaves
//! this server, in one atomic batch, and report a result per recipient.
//!
//! Delivery is a pipeline: resolution turns each envelope recipient into a
//! [`RecipientPlan`] (which accounts get the message, which addresses it goes on
//! to, or why it fails: unknown, blocked sender); [`Stage`]s then adjust the
//! [`Plan`] (loop detection); one commit stores it. SMTP resolves at RCPT time
//! and hands its plans in, so nothing is looked up twice. After the commit,
//! accounts with an active autoresponder answer (RFC 3834), and recipients that
//! failed after others succeeded get a bounce (RFC 3464), so nothing accepted is
//! silently lost.

pub mod autoreply;
pub mod dsn;
pub mod headers;
pub mod srs;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use directory::{Date, Directory, DomainMode, Resolution, now_unix};
use store::{
    AccountId, Appended, Delivery, Flags, MailboxRef, QueuedMessage, QueuedRecipient, Settle,
    StagedBlob, Store, StoreError, Summary, Target,
};
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::headers::Head;
use crate::srs::Srs;

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
    /// The recipient's blocklist refuses the sender.
    Blocked,
    /// Too many hops, or already delivered through this address.
    Loop,
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
            Failure::Blocked => (550, "5.7.1", "Sender blocked by recipient".into()),
            Failure::Loop => (554, "5.4.6", "Mail loop detected".into()),
            Failure::Temporary(why) => (451, "4.3.0", why.clone()),
        }
    }
}

/// What happened to one envelope recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stored in these folders (more than one through forwarders) and/or
    /// queued to leave (`queued` entries).
    Delivered {
        stored: Vec<Appended>,
        queued: usize,
    },
    Failed(Failure),
}

/// How a recipient resolved; decides trace headers and the envelope sender
/// of what is passed on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Route {
    /// An account's own address.
    #[default]
    Account,
    /// An alias or forwarder: copies carry `Delivered-To: <address>`, and
    /// what is forwarded elsewhere leaves with an SRS sender.
    Forward,
    /// A relay domain's address: passed to its relay host as it is.
    Relay(Option<String>),
    /// Not ours, sent on for an authenticated user or by the server itself.
    Outbound,
    /// A bounce to an SRS address we made: goes back to the original sender.
    SrsReturn,
}

/// The plan for one envelope recipient, filled in by the stages.
#[derive(Clone, Debug, Default)]
pub struct RecipientPlan {
    pub address: String,
    pub route: Route,
    /// Accounts whose INBOX gets a copy.
    pub local: Vec<AccountId>,
    /// Addresses the message goes on to (forwarders, relay domains, outbound).
    pub remote: Vec<String>,
    pub failure: Option<Failure>,
}

pub struct Plan<'a> {
    pub envelope: &'a Envelope,
    pub summary: &'a Summary,
    pub head: &'a Head,
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

/// Loop protection: a message with more `Received:` fields than `max_hops`
/// goes nowhere; one that already passed an alias or forwarder is not sent
/// through it again.
pub struct LoopGuard {
    pub max_hops: usize,
}

impl Stage for LoopGuard {
    fn name(&self) -> &'static str {
        "loop-guard"
    }

    fn apply<'a>(&'a self, plan: &'a mut Plan<'_>) -> BoxFuture<'a, Result<(), DeliveryError>> {
        let too_many_hops = plan.head.hops() > self.max_hops;
        for r in plan.recipients.iter_mut().filter(|r| r.failure.is_none()) {
            if too_many_hops || (r.route == Route::Forward && plan.head.delivered_to(&r.address)) {
                info!(rcpt = %r.address, hops = plan.head.hops(), "mail loop: not delivered");
                r.failure = Some(Failure::Loop);
            }
        }
        Box::pin(async { Ok(()) })
    }
}

/// What the pipeline needs from the server's configuration.
#[derive(Clone, Debug)]
pub struct Policy {
    /// This server's name: bounces come from `MAILER-DAEMON@hostname`.
    pub hostname: String,
    /// `Received:` fields a message may carry before it counts as looping.
    pub max_hops: usize,
    /// Seconds between two automatic replies to the same sender.
    pub autoreply_interval: i64,
    /// Rewrites senders of forwarded mail; without it they leave unchanged.
    pub srs: Option<Srs>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            hostname: "localhost".into(),
            max_hops: 50,
            autoreply_interval: 7 * 86_400,
            srs: None,
        }
    }
}

#[derive(Clone)]
pub struct Deliverer {
    store: Store,
    directory: Directory,
    policy: Arc<Policy>,
    stages: Arc<Vec<Arc<dyn Stage>>>,
    /// Woken after a commit that queued mail to leave.
    queue_wake: Arc<Notify>,
    /// Woken when existing queue entries changed outside the runner
    /// (`queue flush`).
    queue_rescan: Arc<Notify>,
    /// Distinguishes generated messages' IDs within one second.
    generated: Arc<AtomicU64>,
}

fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}

fn local_part(address: &str) -> &str {
    address.rsplit_once('@').map_or(address, |(l, _)| l)
}

impl Deliverer {
    pub fn new(store: Store, directory: Directory) -> Self {
        Deliverer::with_policy(store, directory, Policy::default())
    }

    pub fn with_policy(store: Store, directory: Directory, policy: Policy) -> Self {
        let stages: Vec<Arc<dyn Stage>> = vec![Arc::new(LoopGuard {
            max_hops: policy.max_hops,
        })];
        Deliverer {
            store,
            directory,
            policy: Arc::new(policy),
            stages: Arc::new(stages),
            queue_wake: Arc::new(Notify::new()),
            queue_rescan: Arc::new(Notify::new()),
            generated: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Notified whenever a commit adds to the outbound queue.
    pub fn queue_wake(&self) -> Arc<Notify> {
        self.queue_wake.clone()
    }

    /// Notify this after changing existing queue entries (e.g. making them
    /// due now): the runner reads the whole queue again.
    pub fn queue_rescan(&self) -> Arc<Notify> {
        self.queue_rescan.clone()
    }

    /// A fresh ID for a message this server writes (bounces, replies).
    pub fn new_id(&self) -> String {
        let n = self.generated.fetch_add(1, Ordering::Relaxed);
        format!("{:X}.G{n}", now_unix())
    }

    /// What would happen to one recipient of mail from `sender` (for
    /// RCPT-time answers). With `may_relay` (authenticated users, the server
    /// itself) an address that is not ours is sent on.
    pub async fn check_recipient(
        &self,
        sender: &str,
        address: &str,
        may_relay: bool,
    ) -> Result<RecipientPlan, DeliveryError> {
        let mut plan = self.resolve(address, may_relay).await?;
        if plan.failure.is_none() && !sender.is_empty() {
            for &id in &plan.local {
                if self.directory.is_blocked(id, sender).await? {
                    info!(rcpt = %address, %sender, "sender on the recipient's blocklist");
                    plan.failure = Some(Failure::Blocked);
                    break;
                }
            }
        }
        Ok(plan)
    }

    async fn resolve(
        &self,
        address: &str,
        may_relay: bool,
    ) -> Result<RecipientPlan, DeliveryError> {
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
            Resolution::Alias { account_id, .. } => {
                plan.route = Route::Forward;
                plan.local.push(account_id);
            }
            Resolution::Forward {
                destinations,
                keep_copy_account,
            } => {
                plan.route = Route::Forward;
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
                domain_mode: Some(mode),
                relay_host,
            } => {
                let original = self
                    .policy
                    .srs
                    .as_ref()
                    .and_then(|srs| srs.reverse(local_part(address), now_unix()));
                match (original, mode) {
                    (Some(original), _) => {
                        plan.route = Route::SrsReturn;
                        plan.remote.push(original);
                    }
                    (None, DomainMode::Authoritative) => plan.failure = Some(Failure::UnknownUser),
                    (None, DomainMode::Relay) => {
                        plan.route = Route::Relay(relay_host);
                        plan.remote.push(address.to_string());
                    }
                }
            }
            Resolution::Unknown {
                domain_mode: None, ..
            } if may_relay => {
                plan.route = Route::Outbound;
                plan.remote.push(address.to_string());
            }
            Resolution::Unknown {
                domain_mode: None, ..
            } => plan.failure = Some(Failure::NotLocal),
        }
        Ok(plan)
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

    /// Resolves every recipient as for mail from outside (nothing is relayed
    /// to domains that are not ours), runs the pipeline and commits; see
    /// [`Deliverer::deliver_planned`].
    pub async fn deliver(
        &self,
        envelope: &Envelope,
        blob: StagedBlob,
    ) -> Result<Vec<Outcome>, DeliveryError> {
        self.resolve_and_commit(envelope, blob, Vec::new(), false)
            .await
    }

    async fn resolve_and_commit(
        &self,
        envelope: &Envelope,
        blob: StagedBlob,
        settles: Vec<Settle>,
        may_relay: bool,
    ) -> Result<Vec<Outcome>, DeliveryError> {
        let mut plans = Vec::with_capacity(envelope.recipients.len());
        for address in &envelope.recipients {
            plans.push(
                self.check_recipient(&envelope.sender, address, may_relay)
                    .await?,
            );
        }
        self.commit(envelope, plans, blob, settles).await
    }

    /// Runs the pipeline on recipients already resolved (one plan per envelope
    /// recipient, in order) and commits: one stored copy of the bytes (plus one
    /// per alias, which carries its own `Delivered-To:`), one message record per
    /// distinct target account, the outbound queue entries, all in one synced
    /// batch. Returns one outcome per envelope recipient, in order. Then sends
    /// automatic replies and bounces for recipients that failed while others
    /// got the message.
    pub async fn deliver_planned(
        &self,
        envelope: &Envelope,
        recipients: Vec<RecipientPlan>,
        blob: StagedBlob,
    ) -> Result<Vec<Outcome>, DeliveryError> {
        self.commit(envelope, recipients, blob, Vec::new()).await
    }

    async fn commit(
        &self,
        envelope: &Envelope,
        recipients: Vec<RecipientPlan>,
        blob: StagedBlob,
        settles: Vec<Settle>,
    ) -> Result<Vec<Outcome>, DeliveryError> {
        let head = Head::parse(&blob.head().await?);
        let recipients = {
            let mut plan = Plan {
                envelope,
                summary: blob.summary(),
                head: &head,
                recipients,
            };
            for stage in self.stages.iter() {
                stage.apply(&mut plan).await?;
                tracing::trace!(stage = stage.name(), "delivery stage done");
            }
            plan.recipients
        };
        let now = now_unix();

        // A message reaches each account once, however many of its addresses were
        // in the envelope (RFC 5321 §3.7.2 duplicate suppression, as Postfix does).
        // Accounts reached by their own address share the received copy; one
        // reached only through an alias gets a copy that names the alias.
        let live = || recipients.iter().filter(|r| r.failure.is_none());
        let mut groups: BTreeMap<Option<&str>, BTreeSet<AccountId>> = BTreeMap::new();
        let mut placed = BTreeSet::new();
        for r in live().filter(|r| r.route != Route::Forward) {
            for &id in &r.local {
                if placed.insert(id) {
                    groups.entry(None).or_default().insert(id);
                }
            }
        }
        for r in live().filter(|r| r.route == Route::Forward) {
            for &id in &r.local {
                if placed.insert(id) {
                    groups
                        .entry(Some(r.address.as_str()))
                        .or_default()
                        .insert(id);
                }
            }
        }
        let queue = self.queue_entries(envelope, &recipients, now).await?;

        let mut deliveries = Vec::with_capacity(groups.len() + 1);
        let mut order: Vec<Vec<AccountId>> = Vec::with_capacity(groups.len() + 1);
        for (alias, accounts) in &groups {
            let Some(alias) = alias else { continue };
            let prefix = format!("Delivered-To: {alias}\r\n");
            let copy = blob
                .copy_with_prefix(self.store.blob_writer(), prefix.as_bytes())
                .await?;
            deliveries.push(Delivery {
                blob: copy,
                targets: self.targets(accounts).await?,
                queue: Vec::new(),
            });
            order.push(accounts.iter().copied().collect());
        }
        let direct = groups.get(&None).cloned().unwrap_or_default();
        deliveries.push(Delivery {
            blob,
            targets: self.targets(&direct).await?,
            queue: queue.iter().map(|(_, entry)| entry.clone()).collect(),
        });
        order.push(direct.into_iter().collect());

        let committed = self.store.commit(deliveries, settles, now).await?;
        metrics::counter!("posthorn_messages_delivered_total", "kind" => "local").increment(
            committed
                .iter()
                .flat_map(|d| &d.appended)
                .filter(|a| a.is_ok())
                .count() as u64,
        );
        let mut stored: BTreeMap<AccountId, Result<Appended, StoreError>> = BTreeMap::new();
        for (accounts, delivered) in order.iter().zip(&committed) {
            for (&id, result) in accounts.iter().zip(&delivered.appended) {
                stored.insert(id, result.clone());
            }
        }
        if committed.last().is_some_and(|d| !d.queued.is_empty()) {
            self.queue_wake.notify_one();
        }

        let outcomes: Vec<Outcome> = recipients
            .iter()
            .enumerate()
            .map(|(i, r)| {
                if let Some(f) = &r.failure {
                    return Outcome::Failed(f.clone());
                }
                let queued = queue.iter().filter(|(owner, _)| owner.contains(&i)).count();
                let mut appended = Vec::new();
                let mut failure = None;
                for id in &r.local {
                    match stored.get(id) {
                        Some(Ok(a)) => appended.push(a.clone()),
                        Some(Err(StoreError::OverQuota)) => failure = Some(Failure::OverQuota),
                        Some(Err(e)) => failure = Some(Failure::Temporary(e.to_string())),
                        None => failure = Some(Failure::Temporary("not stored".into())),
                    }
                }
                match (appended.is_empty() && queued == 0, failure) {
                    (true, Some(f)) => Outcome::Failed(f),
                    (true, None) => Outcome::Failed(Failure::Temporary("no destination".into())),
                    (false, _) => Outcome::Delivered {
                        stored: appended,
                        queued,
                    },
                }
            })
            .collect();

        self.after_commit(envelope, &recipients, &outcomes, &head, now)
            .await;
        Ok(outcomes)
    }

    async fn targets(&self, accounts: &BTreeSet<AccountId>) -> Result<Vec<Target>, DeliveryError> {
        let mut targets = Vec::with_capacity(accounts.len());
        for &id in accounts {
            let quota = self.directory.account_by_id(id).await?.map(|a| a.quota);
            targets.push(Target {
                account: id,
                mailbox: MailboxRef::Inbox,
                flags: Flags::default(),
                quota_limit: quota,
            });
        }
        Ok(targets)
    }

    /// One queue entry per destination domain and envelope sender, with the
    /// indexes of the recipients it serves.
    async fn queue_entries(
        &self,
        envelope: &Envelope,
        recipients: &[RecipientPlan],
        now: i64,
    ) -> Result<Vec<(Vec<usize>, QueuedMessage)>, DeliveryError> {
        let mut entries: Vec<(Vec<usize>, QueuedMessage)> = Vec::new();
        for (i, r) in recipients.iter().enumerate() {
            if r.failure.is_some() {
                continue;
            }
            let (sender, prepend, relay) = match &r.route {
                Route::Forward => (
                    self.forwarding_sender(&envelope.sender, domain_of(&r.address), now)
                        .await?,
                    format!("Delivered-To: {}\r\n", r.address),
                    None,
                ),
                Route::Relay(host) => (envelope.sender.clone(), String::new(), host.clone()),
                Route::Account | Route::Outbound | Route::SrsReturn => {
                    (envelope.sender.clone(), String::new(), None)
                }
            };
            for dest in &r.remote {
                let domain = domain_of(dest).to_ascii_lowercase();
                let recipient = QueuedRecipient {
                    address: dest.clone(),
                    original: r.address.clone(),
                };
                let same = entries.iter_mut().find(|(_, e)| {
                    e.domain == domain
                        && e.sender == sender
                        && e.prepend == prepend
                        && e.relay == relay
                });
                match same {
                    Some((owners, entry)) => {
                        if !entry
                            .recipients
                            .iter()
                            .any(|q| q.address.eq_ignore_ascii_case(dest))
                        {
                            entry.recipients.push(recipient);
                        }
                        if !owners.contains(&i) {
                            owners.push(i);
                        }
                    }
                    None => entries.push((
                        vec![i],
                        QueuedMessage {
                            sender: sender.clone(),
                            notify: envelope.sender.clone(),
                            recipients: vec![recipient],
                            domain,
                            relay: relay.clone(),
                            prepend: prepend.clone(),
                            created: now,
                            next_attempt: now,
                            ..Default::default()
                        },
                    )),
                }
            }
        }
        Ok(entries)
    }

    /// The envelope sender for mail forwarded through one of our addresses:
    /// SRS-rewritten into the forwarding domain, unless the sender is in one
    /// of our own domains already.
    async fn forwarding_sender(
        &self,
        sender: &str,
        forwarding_domain: &str,
        now: i64,
    ) -> Result<String, DeliveryError> {
        let Some(srs) = &self.policy.srs else {
            return Ok(sender.to_string());
        };
        if sender.is_empty()
            || self
                .directory
                .domain(domain_of(sender))
                .await
                .ok()
                .flatten()
                .is_some()
        {
            return Ok(sender.to_string());
        }
        Ok(srs.forward(sender, forwarding_domain, now))
    }

    /// Automatic replies, then a bounce for recipients that failed while the
    /// message was accepted for others. Failures here are logged: the message
    /// itself is already safe.
    async fn after_commit(
        &self,
        envelope: &Envelope,
        recipients: &[RecipientPlan],
        outcomes: &[Outcome],
        head: &Head,
        now: i64,
    ) {
        if envelope.sender.is_empty() {
            return;
        }
        let mut answered = BTreeSet::new();
        for (r, outcome) in recipients.iter().zip(outcomes) {
            let Outcome::Delivered { stored, .. } = outcome else {
                continue;
            };
            for a in stored {
                if answered.insert(a.account)
                    && let Err(e) = self.autoreply(a.account, envelope, head, now).await
                {
                    warn!(rcpt = %r.address, error = %e, "automatic reply failed");
                }
            }
        }
        let delivered = outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Delivered { .. }));
        let failed: Vec<dsn::DsnRecipient> = recipients
            .iter()
            .zip(outcomes)
            .filter_map(|(r, o)| match o {
                Outcome::Failed(f) => {
                    let (code, status, text) = f.smtp_reply();
                    Some(dsn::DsnRecipient {
                        address: r.address.clone(),
                        original: r.address.clone(),
                        status: status.to_string(),
                        diagnostic: format!("{code} {status} {text}"),
                        remote_mta: None,
                    })
                }
                Outcome::Delivered { .. } => None,
            })
            .collect();
        if delivered && !failed.is_empty() {
            let report = dsn::Dsn {
                action: dsn::Action::Failed,
                hostname: &self.policy.hostname,
                to: &envelope.sender,
                recipients: &failed,
                arrival: now,
                now,
                original_head: &head_bytes(head),
                id: &self.new_id(),
            };
            if let Err(e) = self
                .send_generated(&envelope.sender, &report.to_bytes(), Vec::new())
                .await
            {
                warn!(to = %envelope.sender, error = %e, "bounce for failed recipients not stored");
            }
        }
    }

    async fn autoreply(
        &self,
        account: AccountId,
        envelope: &Envelope,
        head: &Head,
        now: i64,
    ) -> Result<(), DeliveryError> {
        let Some(responder) = self
            .directory
            .active_autoresponder(account, Date::local(now))
            .await?
        else {
            return Ok(());
        };
        let Some(owner) = self.directory.account_by_id(account).await? else {
            return Ok(());
        };
        if !autoreply::may_reply(&envelope.sender, head) {
            return Ok(());
        }
        // Never to the account's own addresses.
        if let Ok(Resolution::Account { id } | Resolution::Alias { account_id: id, .. }) =
            self.directory.resolve(&envelope.sender).await
            && id == account
        {
            return Ok(());
        }
        if !self
            .directory
            .autoreply_due(
                account,
                &envelope.sender,
                now,
                self.policy.autoreply_interval,
            )
            .await?
        {
            return Ok(());
        }
        let reply = autoreply::AutoReply {
            from: &owner.address,
            to: &envelope.sender,
            subject_prefix: &responder.subject_prefix,
            body: &responder.body,
            original: head,
            hostname: &self.policy.hostname,
            id: &self.new_id(),
            now,
        };
        info!(account = %owner.address, to = %envelope.sender, "automatic reply");
        self.send_generated(&envelope.sender, &reply.to_bytes(), Vec::new())
            .await
    }

    /// Delivers a message this server wrote (bounce, automatic reply) from
    /// `<>` to `to`, settling queue entries in the same batch.
    pub fn send_generated<'a>(
        &'a self,
        to: &'a str,
        message: &'a [u8],
        settles: Vec<Settle>,
    ) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let mut w = self.store.blob_writer();
            w.write(message).await?;
            let envelope = Envelope {
                sender: String::new(),
                recipients: vec![to.to_string()],
            };
            let outcomes = self
                .resolve_and_commit(&envelope, w.finish(), settles, true)
                .await?;
            if let Some(Outcome::Failed(f)) = outcomes.first() {
                warn!(%to, failure = ?f, "message from the mail system not delivered");
            }
            Ok(())
        })
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

/// The header fields again as a header section (for the bounce's copy).
fn head_bytes(head: &Head) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in &head.fields {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}
