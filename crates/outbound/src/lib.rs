//! The outbound queue runner: delivers the store's queued messages to other
//! servers over SMTP, retries with exponential backoff, and ends each entry
//! with a delivery, a bounce (RFC 3464) to its sender, or both. Entries live
//! in the store, so the queue resumes after a restart; an entry is settled in
//! the same batch as the bounce that reports on it.

mod client;
pub mod dkim;
pub mod route;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use delivery::Deliverer;
use delivery::dsn::{Action, Dsn, DsnRecipient};
use delivery::headers::Head;
use directory::{Directory, now_unix};
use mail_auth::MessageAuthenticator;
use store::{QueueId, QueuedMessage, QueuedRecipient, Settle, Store};
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;
use tracing::{Instrument, info, warn};

pub use client::RcptResult;
use client::Transaction;
use route::{RouteError, Router};

#[derive(Debug, Clone)]
pub struct OutboundConfig {
    /// EHLO name and `Reporting-MTA`.
    pub hostname: String,
    /// Send everything to this `host:port` instead of the MX hosts.
    pub smarthost: Option<String>,
    /// SMTP port at MX hosts (25).
    pub port: u16,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub give_up_after: Duration,
    pub warn_after: Duration,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Connect, and each command's reply.
    pub timeout: Duration,
}

impl OutboundConfig {
    pub fn new(hostname: impl Into<String>) -> OutboundConfig {
        OutboundConfig {
            hostname: hostname.into(),
            smarthost: None,
            port: 25,
            retry_initial: Duration::from_secs(60),
            retry_max: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(5 * 86_400),
            warn_after: Duration::from_secs(4 * 3600),
            concurrency: 16,
            timeout: Duration::from_secs(300),
        }
    }

    /// Seconds until the next attempt after `attempts` failed ones.
    fn backoff(&self, attempts: u32) -> i64 {
        let initial = self.retry_initial.as_secs().max(1);
        let delay = initial.saturating_mul(1u64 << attempts.min(30));
        delay.min(self.retry_max.as_secs().max(initial)) as i64
    }
}

/// Runs the queue; cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    directory: Directory,
    deliverer: Deliverer,
    resolver: MessageAuthenticator,
    tls: TlsConnector,
    config: OutboundConfig,
}

/// The queue as the runner sees it.
#[derive(Default)]
struct Schedule {
    /// Waiting entries by due time.
    due: BTreeSet<(i64, QueueId)>,
    /// Being delivered right now.
    busy: HashSet<QueueId>,
    /// The newest entry seen; newer ones are read on a wake-up.
    last_id: QueueId,
}

impl Schedule {
    fn add(&mut self, id: QueueId, at: i64) {
        if !self.busy.contains(&id) {
            self.due.insert((at, id));
        }
        self.last_id = self.last_id.max(id);
    }
}

impl Outbound {
    pub fn new(
        deliverer: Deliverer,
        resolver: MessageAuthenticator,
        config: OutboundConfig,
    ) -> Result<Outbound, String> {
        let tls = mail_send::smtp::tls::build_tls_connector(true)?;
        Ok(Outbound {
            inner: Arc::new(Inner {
                store: deliverer.store().clone(),
                directory: deliverer.directory().clone(),
                deliverer,
                resolver,
                tls,
                config,
            }),
        })
    }

    /// The scheduler: starts every due entry (up to the concurrency limit),
    /// then sleeps until the next one is due, new mail is queued or a
    /// delivery ends. It reads the whole queue once at start (and after
    /// `queue flush`); later it only reads entries newer than the last it
    /// saw, so a long queue costs nothing per new message. Returns when
    /// `shutdown` resolves, after letting deliveries in flight finish for a
    /// few seconds.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let wake = self.inner.deliverer.queue_wake();
        let rescan = self.inner.deliverer.queue_rescan();
        let mut schedule = Schedule::default();
        let mut tasks = JoinSet::new();
        let mut spawned: HashMap<tokio::task::Id, QueueId> = HashMap::new();
        let mut reload = true;
        tokio::pin!(shutdown);
        loop {
            let loaded = if reload {
                self.inner.store.queue().await
            } else {
                self.inner.store.queue_after(schedule.last_id).await
            };
            match loaded {
                Ok(entries) => {
                    if reload {
                        schedule.due.clear();
                    }
                    reload = false;
                    for (id, entry) in entries {
                        schedule.add(id, entry.next_attempt);
                    }
                }
                Err(e) => {
                    warn!(error = %e, "outbound queue unreadable; retrying in 10 s");
                    reload = true;
                }
            }
            self.start_due(&mut schedule, &mut tasks, &mut spawned);
            let sleep = match (reload, schedule.due.first()) {
                (true, _) => Duration::from_secs(10),
                (false, Some(&(at, _))) => {
                    Duration::from_secs((at - now_unix()).clamp(1, 3600) as u64)
                }
                (false, None) => Duration::from_secs(3600),
            };
            tokio::select! {
                _ = wake.notified() => {}
                _ = rescan.notified() => reload = true,
                _ = tokio::time::sleep(sleep) => {}
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    let (task, next) = match done {
                        Ok((task, next)) => (task, next),
                        // A delivery that panicked is tried again later.
                        Err(e) => (e.id(), Some(now_unix() + 60)),
                    };
                    if let Some(id) = spawned.remove(&task) {
                        schedule.busy.remove(&id);
                        if let Some(at) = next {
                            schedule.due.insert((at, id));
                        }
                    }
                }
                _ = &mut shutdown => break,
            }
        }
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(10), drain)
            .await
            .is_err()
        {
            info!("outbound deliveries cut short by shutdown; they are retried after restart");
        }
    }

    /// Starts due entries while there is room.
    fn start_due(
        &self,
        schedule: &mut Schedule,
        tasks: &mut JoinSet<Option<i64>>,
        spawned: &mut HashMap<tokio::task::Id, QueueId>,
    ) {
        let now = now_unix();
        while tasks.len() < self.inner.config.concurrency {
            let Some(&(at, id)) = schedule.due.first() else {
                break;
            };
            if at > now {
                break;
            }
            schedule.due.pop_first();
            schedule.busy.insert(id);
            let this = self.clone();
            let task = tasks.spawn(async move { this.attempt(id).await });
            spawned.insert(task.id(), id);
        }
    }

    async fn message(&self, entry: &QueuedMessage) -> Result<Vec<u8>, store::StoreError> {
        let mut reader = self.inner.store.open_blob(entry.blob).await?;
        let mut body = Vec::with_capacity(entry.size as usize + entry.prepend.len());
        body.extend_from_slice(entry.prepend.as_bytes());
        while let Some(chunk) = reader.next_chunk().await? {
            body.extend_from_slice(&chunk);
        }
        // Mail from one of our domains leaves signed.
        let head = Head::parse(&body);
        if let Some(domain) = head.get("from").and_then(dkim::from_domain)
            && let Ok(Some(key)) = self.inner.directory.dkim_key(&domain).await
        {
            match dkim::sign(&key, &domain, &body) {
                Ok(signature) => {
                    let mut signed = signature.into_bytes();
                    signed.extend_from_slice(&body);
                    return Ok(signed);
                }
                Err(e) => warn!(%domain, error = %e, "DKIM signing failed; sending unsigned"),
            }
        }
        Ok(body)
    }

    /// One delivery attempt of one entry, then its settlement; returns when
    /// the entry is due again, or `None` once it is gone.
    async fn attempt(&self, id: QueueId) -> Option<i64> {
        let entry = match self.inner.store.queue_entry(id).await {
            Ok(Some(entry)) => entry,
            Ok(None) => return None,
            Err(e) => {
                warn!(queue_id = id, error = %e, "queue entry unreadable");
                return Some(now_unix() + 60);
            }
        };
        if entry.next_attempt > now_unix() {
            return Some(entry.next_attempt);
        }
        let span = tracing::info_span!("outbound", queue_id = id, domain = %entry.domain);
        async move {
            let message = match self.message(&entry).await {
                Ok(m) => m,
                Err(e) => {
                    warn!(error = %e, "queued message unreadable");
                    let results =
                        vec![RcptResult::Temporary(e.to_string()); entry.recipients.len()];
                    return self.settle(id, entry, &results, None, b"").await;
                }
            };
            let (results, mta) = self.send(&entry, &message).await;
            self.settle(id, entry, &results, mta.as_deref(), &message)
                .await
        }
        .instrument(span)
        .await
    }

    /// Tries each host in turn until one takes the transaction.
    async fn send(
        &self,
        entry: &QueuedMessage,
        message: &[u8],
    ) -> (Vec<RcptResult>, Option<String>) {
        let config = &self.inner.config;
        let all = |r: RcptResult| vec![r; entry.recipients.len()];
        let router = Router {
            resolver: &self.inner.resolver,
            port: config.port,
        };
        let hops = match (&config.smarthost, &entry.relay) {
            (Some(host), _) | (None, Some(host)) => router.fixed(host).await,
            (None, None) => router.mx(&entry.domain).await,
        };
        let hops = match hops {
            Ok(hops) => hops,
            Err(RouteError::Temporary(e)) => return (all(RcptResult::Temporary(e)), None),
            Err(RouteError::Permanent(e)) => {
                let r = RcptResult::Permanent {
                    status: "5.1.2".into(),
                    reply: e,
                };
                return (all(r), None);
            }
        };
        let recipients: Vec<String> = entry.recipients.iter().map(|r| r.address.clone()).collect();
        let transaction = Transaction {
            helo: &config.hostname,
            sender: &entry.sender,
            recipients: &recipients,
            message,
            timeout: config.timeout,
        };
        let mut last = String::from("no host tried");
        for hop in &hops {
            for &addr in &hop.addrs {
                match transaction.run(addr, &hop.name, &self.inner.tls).await {
                    Ok(results) => return (results, Some(hop.name.clone())),
                    Err(e) => {
                        info!(host = %hop.name, %addr, error = %e.0, "host unreachable");
                        last = e.0;
                    }
                }
            }
        }
        (all(RcptResult::Temporary(last)), None)
    }

    /// Removes delivered and failed recipients, schedules the rest, and
    /// bounces or warns the sender, in one commit. Returns when the entry is
    /// due again (`None`: it is gone).
    async fn settle(
        &self,
        id: QueueId,
        entry: QueuedMessage,
        results: &[RcptResult],
        mta: Option<&str>,
        message: &[u8],
    ) -> Option<i64> {
        let config = &self.inner.config;
        let now = now_unix();
        let expired = now - entry.created >= config.give_up_after.as_secs() as i64;
        let mut remaining: Vec<QueuedRecipient> = Vec::new();
        let mut failed = Vec::new();
        let mut last_error = String::new();
        for (rcpt, result) in entry.recipients.iter().zip(results) {
            let dsn = |status: &str, diagnostic: String| DsnRecipient {
                address: rcpt.address.clone(),
                original: rcpt.original.clone(),
                status: status.to_string(),
                diagnostic,
                remote_mta: mta.map(str::to_string),
            };
            match result {
                RcptResult::Delivered => {
                    info!(to = %rcpt.address, host = mta.unwrap_or(""), "delivered");
                    metrics::counter!("posthorn_messages_delivered_total", "kind" => "outbound")
                        .increment(1);
                }
                RcptResult::Permanent { status, reply } => {
                    info!(to = %rcpt.address, %reply, "bounced");
                    failed.push(dsn(status, reply.clone()));
                }
                RcptResult::Temporary(why) if expired => {
                    info!(to = %rcpt.address, %why, "gave up");
                    failed.push(dsn(
                        "4.4.7",
                        format!("delivery time expired; last error: {why}"),
                    ));
                }
                RcptResult::Temporary(why) => {
                    info!(to = %rcpt.address, %why, attempt = entry.attempts + 1, "deferred");
                    last_error = why.clone();
                    remaining.push(rcpt.clone());
                }
            }
        }
        metrics::counter!("posthorn_messages_bounced_total").increment(failed.len() as u64);
        let warn_now = !remaining.is_empty()
            && !entry.warned
            && now - entry.created >= config.warn_after.as_secs() as i64;
        let delayed: Vec<DsnRecipient> = if warn_now {
            remaining
                .iter()
                .map(|r| DsnRecipient {
                    address: r.address.clone(),
                    original: r.original.clone(),
                    status: "4.4.7".into(),
                    diagnostic: last_error.clone(),
                    remote_mta: mta.map(str::to_string),
                })
                .collect()
        } else {
            Vec::new()
        };
        let retry_at = now + config.backoff(entry.attempts);
        let next = (!remaining.is_empty()).then_some(retry_at);
        let settle = if remaining.is_empty() {
            Settle::Remove(id)
        } else {
            let attempts = entry.attempts + 1;
            Settle::Replace(
                id,
                Box::new(QueuedMessage {
                    recipients: remaining,
                    attempts,
                    next_attempt: retry_at,
                    last_error,
                    warned: entry.warned || warn_now,
                    ..entry.clone()
                }),
            )
        };
        let head = delivery::dsn::header_section(message, 64 * 1024);
        let mut settle = Some(settle);
        for (action, recipients) in [(Action::Failed, &failed), (Action::Delayed, &delayed)] {
            if recipients.is_empty() || entry.notify.is_empty() {
                continue;
            }
            let report = Dsn {
                action,
                hostname: &config.hostname,
                to: &entry.notify,
                recipients,
                arrival: entry.created,
                now,
                original_head: head,
                id: &self.inner.deliverer.new_id(),
            }
            .to_bytes();
            let settles = settle.take().into_iter().collect();
            if let Err(e) = self
                .inner
                .deliverer
                .send_generated(&entry.notify, &report, settles)
                .await
            {
                warn!(error = %e, "bounce not stored; the entry is retried");
                return Some(retry_at);
            }
        }
        if let Some(settle) = settle
            && let Err(e) = self.inner.store.settle_queue(vec![settle]).await
        {
            warn!(error = %e, "queue entry not updated; it is retried");
            return Some(retry_at);
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let c = OutboundConfig::new("h");
        assert_eq!(c.backoff(0), 60);
        assert_eq!(c.backoff(1), 120);
        assert_eq!(c.backoff(5), 1920);
        assert_eq!(c.backoff(6), 3600);
        assert_eq!(c.backoff(100), 3600);
    }
}
