//! `posthorn serve`: config, TLS, store, listeners, management socket, systemd
//! notification, graceful shutdown on SIGTERM/SIGINT and certificate reload on SIGHUP.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use directory::Directory;
use net::{Connection, ListenerSpec, ServeConfig, TlsHandle};
use store::{Store, StoreOptions};
use tokio::io::AsyncWriteExt;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::admin::AdminContext;
use crate::config::Config;
use crate::mgmt;

/// The listeners of the interface contract: config key, implicit TLS.
fn listener_specs(config: &Config) -> Vec<ListenerSpec> {
    let l = &config.listeners;
    let all: [(&str, Option<SocketAddr>, bool); 7] = [
        ("smtp", l.smtp, false),
        ("submission", l.submission, false),
        ("submissions", l.submissions, true),
        ("imap", l.imap, false),
        ("imaps", l.imaps, true),
        ("pop3", l.pop3, false),
        ("pop3s", l.pop3s, true),
    ];
    all.into_iter()
        .filter_map(|(name, addr, implicit_tls)| {
            addr.map(|addr| ListenerSpec {
                name: name.into(),
                addr,
                implicit_tls,
            })
        })
        .collect()
}

/// Until a protocol's sessions land, its listener answers with that protocol's
/// own temporary-failure greeting, so clients retry instead of hanging.
fn placeholder_greeting(listener: &str, hostname: &str) -> Vec<u8> {
    match listener {
        "smtp" | "submission" | "submissions" => {
            format!("421 4.3.2 {hostname} service not available yet, try again later\r\n")
        }
        "imap" | "imaps" => "* BYE [UNAVAILABLE] IMAP service not available yet\r\n".into(),
        _ => "-ERR [SYS/TEMP] POP3 service not available yet\r\n".into(),
    }
    .into_bytes()
}

fn load_tls(config: &Config) -> Result<TlsHandle, String> {
    let (cert, key) = (&config.tls.cert, &config.tls.key);
    if config.tls.self_signed && !cert.exists() && !key.exists() {
        net::generate_self_signed(cert, key, &config.server.hostname).map_err(|e| e.to_string())?;
        tracing::info!(cert = %cert.display(), key = %key.display(), "generated a self-signed certificate");
    }
    TlsHandle::load(cert, key).map_err(|e| e.to_string())
}

pub async fn run(config_path: &Path, config: Config) -> Result<(), String> {
    let tls = load_tls(&config)?;
    std::fs::create_dir_all(&config.server.data_dir).map_err(|e| {
        format!(
            "cannot create data_dir {}: {e}",
            config.server.data_dir.display()
        )
    })?;
    let store = Store::open(&config.store_path(), StoreOptions::default()).map_err(|e| {
        format!(
            "cannot open the store in {}: {e}",
            config.store_path().display()
        )
    })?;
    let directory = Directory::new(store.clone(), config.directory.clone());

    let mut bound = Vec::new();
    for spec in listener_specs(&config) {
        bound.push(net::bind(spec).await.map_err(|e| e.to_string())?);
    }
    let mgmt_listener = mgmt::bind(&config.socket_path())?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let serve_cfg = ServeConfig {
        max_connections_per_ip: config.limits.max_connections_per_ip,
        max_connections: config.limits.max_connections,
        ..ServeConfig::default()
    };
    let mut tasks = tokio::task::JoinSet::new();
    let mut banner = String::new();
    for listener in bound {
        let name = listener.spec().name.clone();
        banner.push_str(&format!("  {:<12} {}\n", name, listener.local_addr()));
        let greeting: Arc<[u8]> = placeholder_greeting(&name, &config.server.hostname).into();
        let handler = Arc::new(move |mut conn: Connection| {
            let greeting = greeting.clone();
            async move {
                let _ = conn.stream.write_all(&greeting).await;
                let _ = conn.stream.shutdown().await;
            }
        });
        tasks.spawn(net::serve(
            listener,
            serve_cfg.clone(),
            Some(tls.clone()),
            shutdown_rx.clone(),
            handler,
        ));
    }
    let ctx = AdminContext {
        store: store.clone(),
        directory,
    };
    tasks.spawn(mgmt::serve(mgmt_listener, ctx, shutdown_rx.clone()));

    notify(&[sd_notify::NotifyState::Ready]);
    tracing::info!(
        hostname = %config.server.hostname,
        data_dir = %config.server.data_dir.display(),
        nameservers = ?config.dns.nameservers,
        "posthorn ready"
    );
    println!(
        "posthorn is running as {} with data in {}\nlisteners:\n{banner}manage it with: posthorn --config {} account add you@example.org --password ...  (after `domain add example.org`)",
        config.server.hostname,
        config.server.data_dir.display(),
        config_path.display()
    );

    wait_for_shutdown(&config, &tls).await;
    notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!("shutting down: no new connections, letting sessions finish");
    let _ = shutdown_tx.send(true);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(15), drain)
        .await
        .is_err()
    {
        tracing::warn!("sessions did not finish in time");
    }
    let _ = std::fs::remove_file(config.socket_path());
    store
        .flush()
        .await
        .map_err(|e| format!("flushing the store: {e}"))?;
    tracing::info!("stopped");
    Ok(())
}

/// Returns on SIGTERM or SIGINT; reloads the certificate on SIGHUP (a bad new
/// one keeps the old and says why).
async fn wait_for_shutdown(config: &Config, tls: &TlsHandle) {
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => match tls.reload(&config.tls.cert, &config.tls.key) {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(e) => tracing::error!(error = %e, "TLS certificate reload failed; keeping the old one"),
            },
        }
    }
}

fn notify(state: &[sd_notify::NotifyState]) {
    // Only meaningful under systemd (NOTIFY_SOCKET set); harmless elsewhere.
    if let Err(e) = sd_notify::notify(false, state) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}
