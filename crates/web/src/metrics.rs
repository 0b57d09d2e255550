//! The Prometheus registry. Other crates count through the `metrics` facade
//! (one line each at the place where the event happens); this module installs
//! the process-wide recorder and renders it on `GET /metrics`.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `posthorn_connections_total` | counter | `listener` (smtp, imaps, https, ...) |
//! | `posthorn_messages_received_total` | counter | (SMTP messages accepted) |
//! | `posthorn_messages_delivered_total` | counter | `kind`: `local` (per mailbox), `outbound` (per remote recipient) |
//! | `posthorn_messages_bounced_total` | counter | (recipients that failed for good) |
//! | `posthorn_queue_size` | gauge | (messages in the outbound queue) |
//! | `posthorn_auth_failures_total` | counter | `protocol` (imap, pop3, smtp, web, api) |
//! | `posthorn_store_commit_seconds` | histogram | (synced store commits) |
//! | `posthorn_store_reads_from_disk_total` | counter | (small reads that memory could not answer) |

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::sync::watch;

use crate::Web;

pub const CONNECTIONS: &str = "posthorn_connections_total";
pub const RECEIVED: &str = "posthorn_messages_received_total";
pub const DELIVERED: &str = "posthorn_messages_delivered_total";
pub const BOUNCED: &str = "posthorn_messages_bounced_total";
pub const QUEUE_SIZE: &str = "posthorn_queue_size";
pub const AUTH_FAILURES: &str = "posthorn_auth_failures_total";
pub const COMMIT_SECONDS: &str = "posthorn_store_commit_seconds";
pub const READS_FROM_DISK: &str = "posthorn_store_reads_from_disk_total";

/// Commit latency buckets: a synced write takes well under a millisecond on
/// an SSD and tens of milliseconds on a busy disk.
const COMMIT_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// How often histogram samples are folded into their buckets, so memory
/// stays bounded between scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls return the same
/// handle) and starts every counter at zero, so a scrape shows each series
/// before its first event. `listeners` are the configured listener names.
pub fn install(listeners: &[String]) -> Result<PrometheusHandle, String> {
    let handle = HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(COMMIT_SECONDS.into()), COMMIT_BUCKETS)
                .and_then(PrometheusBuilder::install_recorder)
                .map_err(|e| format!("cannot install the metrics recorder: {e}"))
        })
        .clone()?;
    describe();
    for name in listeners {
        metrics::counter!(CONNECTIONS, "listener" => name.clone()).increment(0);
    }
    metrics::counter!(RECEIVED).increment(0);
    metrics::counter!(DELIVERED, "kind" => "local").increment(0);
    metrics::counter!(DELIVERED, "kind" => "outbound").increment(0);
    metrics::counter!(BOUNCED).increment(0);
    metrics::gauge!(QUEUE_SIZE).set(0.0);
    metrics::counter!(READS_FROM_DISK).increment(0);
    Ok(handle)
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(CONNECTIONS, "Connections accepted, per listener.");
    describe_counter!(RECEIVED, "Messages accepted over SMTP.");
    describe_counter!(
        DELIVERED,
        "Deliveries: local per mailbox, outbound per remote recipient."
    );
    describe_counter!(BOUNCED, "Outbound recipients that failed for good.");
    describe_gauge!(QUEUE_SIZE, "Messages waiting in the outbound queue.");
    describe_counter!(AUTH_FAILURES, "Failed logins, per protocol.");
    describe_histogram!(
        COMMIT_SECONDS,
        Unit::Seconds,
        "Synced store commits (one fsync per group of writes)."
    );
    describe_counter!(
        READS_FROM_DISK,
        "Small store reads that memtables and the block cache could not answer, run on the blocking pool."
    );
}

/// Folds histogram samples into buckets every few seconds until shutdown.
pub async fn upkeep(handle: PrometheusHandle, mut shutdown: watch::Receiver<bool>) {
    let stop = async move {
        let _ = shutdown.wait_for(|down| *down).await;
    };
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => handle.run_upkeep(),
            () = &mut stop => return,
        }
    }
}

/// `GET /metrics`: the Prometheus text exposition format.
pub(crate) async fn endpoint(State(web): State<Web>) -> Response {
    let Some(Ok(handle)) = HANDLE.get() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "metrics are not enabled\n").into_response();
    };
    match web.config().store.queue().await {
        Ok(queue) => metrics::gauge!(QUEUE_SIZE).set(queue.len() as f64),
        Err(e) => tracing::warn!(error = %e, "cannot read the queue size for /metrics"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}
