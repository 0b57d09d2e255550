//! `posthorn serve`: config, TLS, store, listeners, management socket, systemd
//! notification, graceful shutdown on SIGTERM/SIGINT and certificate reload on SIGHUP.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use delivery::Deliverer;
use directory::Directory;
use directory::auth::Authenticator;
use net::{Connection, Handler, ListenerSpec, ServeConfig, TlsHandle};
use outbound::{Outbound, OutboundConfig};
use store::Store;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::admin::AdminContext;
use crate::cli::Admin;
use crate::config::Config;
use crate::mgmt;

/// The listeners of the interface contract: config key, implicit TLS.
fn listener_specs(config: &Config) -> Vec<ListenerSpec> {
    let l = &config.listeners;
    let all: [(&str, Option<SocketAddr>, bool); 9] = [
        ("smtp", l.smtp, false),
        ("submission", l.submission, false),
        ("submissions", l.submissions, true),
        ("imap", l.imap, false),
        ("imaps", l.imaps, true),
        ("pop3", l.pop3, false),
        ("pop3s", l.pop3s, true),
        ("http", l.http, false),
        ("https", l.https, true),
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

/// What the protocol handlers share.
struct Services {
    hostname: String,
    max_message_size: u64,
    smtp_command_timeout: Duration,
    directory: Directory,
    deliverer: Deliverer,
    allow_plaintext_auth: bool,
    store: Store,
    auth: Authenticator,
    /// SPF for the MX listener, one resolver for all its sessions.
    spf: Arc<smtp::Spf>,
}

/// What a connection over the limits hears before it is closed, in its
/// protocol's words (plain-text listeners only).
fn too_many_connections(listener: &str) -> &'static [u8] {
    match listener {
        "smtp" | "submission" | "submissions" => {
            b"421 4.7.0 Too many connections, try again later\r\n"
        }
        "imap" | "imaps" => b"* BYE [UNAVAILABLE] Too many connections, try again later\r\n",
        "http" => {
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        }
        _ => b"-ERR [SYS/TEMP] Too many connections, try again later\r\n",
    }
}

/// The session handler for one listener.
fn handler_for(listener: &str, services: &Services, web: &web::Web) -> Arc<dyn Handler> {
    match listener {
        "http" => web::handler(web.http_router()),
        "https" => web::handler(web.https_router()),
        "smtp" | "submission" | "submissions" => smtp_handler(listener, services),
        "imap" | "imaps" => imap_handler(services),
        _ => pop3_handler(services),
    }
}

fn smtp_handler(listener: &str, services: &Services) -> Arc<dyn Handler> {
    let kind = match listener {
        "smtp" => smtp::ListenerKind::Mx,
        "submission" => smtp::ListenerKind::Submission,
        _ => smtp::ListenerKind::Submissions,
    };
    let mut config = smtp::SmtpConfig::new(services.hostname.clone(), kind);
    config.max_message_size = services.max_message_size;
    config.allow_plaintext_auth = services.allow_plaintext_auth;
    config.command_timeout = services.smtp_command_timeout;
    let mut server = smtp::SmtpServer::new(
        config,
        services.deliverer.clone(),
        services.directory.clone(),
        services.auth.clone(),
    );
    // SPF judges unauthenticated mail from other servers; submission is
    // authenticated and so skips it.
    if kind == smtp::ListenerKind::Mx {
        server = server.with_sender_check(services.spf.clone());
    }
    per_connection(server, |s, conn| async move { s.handle(conn).await })
}

fn imap_handler(services: &Services) -> Arc<dyn Handler> {
    let config = imap::ImapConfig {
        allow_plaintext_auth: services.allow_plaintext_auth,
        max_message_size: services.max_message_size,
    };
    let server = imap::ImapServer::new(
        config,
        services.store.clone(),
        services.directory.clone(),
        services.auth.clone(),
    );
    per_connection(server, |s, conn| async move { s.handle(conn).await })
}

fn pop3_handler(services: &Services) -> Arc<dyn Handler> {
    let config = pop3::Pop3Config {
        allow_plaintext_auth: services.allow_plaintext_auth,
    };
    let server = pop3::Pop3Server::new(config, services.store.clone(), services.auth.clone());
    per_connection(server, |s, conn| async move { s.handle(conn).await })
}

/// A handler that runs `session` with a clone of the protocol's server for
/// each accepted connection.
fn per_connection<S, F>(server: S, session: fn(S, Connection) -> F) -> Arc<dyn Handler>
where
    S: Clone + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    Arc::new(move |conn: Connection| session(server.clone(), conn))
}

fn load_tls(config: &Config) -> Result<TlsHandle, String> {
    let (cert, key) = (&config.tls.cert, &config.tls.key);
    if config.tls.self_signed && !cert.exists() && !key.exists() {
        net::generate_self_signed(cert, key, &config.server.hostname).map_err(|e| e.to_string())?;
        tracing::info!(cert = %cert.display(), key = %key.display(), "generated a self-signed certificate");
    }
    TlsHandle::load(cert, key).map_err(|e| e.to_string())
}

/// The delivery pipeline with the configured policy; the SRS secret lives in
/// the store so rewritten addresses stay valid across restarts.
async fn deliverer(
    config: &Config,
    store: &Store,
    directory: &Directory,
) -> Result<Deliverer, String> {
    let srs = if config.delivery.srs {
        let secret = directory
            .secret("srs")
            .await
            .map_err(|e| format!("cannot read the SRS secret: {e}"))?;
        Some(delivery::srs::Srs::new(secret))
    } else {
        None
    };
    let policy = delivery::Policy {
        hostname: config.server.hostname.clone(),
        max_hops: config.delivery.max_hops,
        autoreply_interval: i64::from(config.delivery.autoreply_interval_days) * 86_400,
        srs,
    };
    Ok(Deliverer::with_policy(
        store.clone(),
        directory.clone(),
        policy,
    ))
}

/// The management API runs the CLI's commands as the management socket does.
fn admin_fn(ctx: AdminContext) -> web::AdminFn {
    Arc::new(move |json| {
        let ctx = ctx.clone();
        Box::pin(async move {
            let cmd: Admin = serde_json::from_value(json)
                .map_err(|e| web::AdminError::BadRequest(format!("not an admin command: {e}")))?;
            if cmd.local_only() {
                return Err(web::AdminError::BadRequest(
                    "this command names files on the server: run it with the posthorn CLI there"
                        .into(),
                ));
            }
            crate::admin::execute(&ctx, cmd)
                .await
                .map_err(web::AdminError::Failed)
        })
    })
}

/// What autoconfiguration tells mail clients: `[autoconfig]`, else the
/// listeners' own ports.
fn client_ports(config: &Config) -> web::ClientPorts {
    let (a, l) = (&config.autoconfig, &config.listeners);
    // An explicit 0 hides the service.
    let port = |key: Option<u16>, listener: Option<SocketAddr>| {
        key.or(listener.map(|addr| addr.port())).filter(|&p| p != 0)
    };
    web::ClientPorts {
        hostname: a
            .hostname
            .clone()
            .unwrap_or_else(|| config.server.hostname.clone()),
        imaps: port(a.imaps_port, l.imaps),
        imap: port(a.imap_port, l.imap),
        pop3s: port(a.pop3s_port, l.pop3s),
        pop3: port(a.pop3_port, l.pop3),
        submissions: port(a.submissions_port, l.submissions),
        submission: port(a.submission_port, l.submission),
    }
}

fn outbound_config(config: &Config) -> OutboundConfig {
    let o = &config.outbound;
    OutboundConfig {
        hostname: config.server.hostname.clone(),
        smarthost: o.smarthost.clone(),
        port: o.port,
        retry_initial: Duration::from_secs(o.retry_initial_secs),
        retry_max: Duration::from_secs(o.retry_max_secs),
        give_up_after: Duration::from_secs(o.give_up_after_secs),
        warn_after: Duration::from_secs(o.warn_after_secs),
        concurrency: o.concurrency,
        timeout: Duration::from_secs(o.timeout_secs),
    }
}

pub async fn run(config_path: &Path, config: Config) -> Result<(), String> {
    let tls = load_tls(&config)?;
    std::fs::create_dir_all(&config.server.data_dir).map_err(|e| {
        format!(
            "cannot create data_dir {}: {e}",
            config.server.data_dir.display()
        )
    })?;
    let store = Store::open(&config.store_path(), config.store_options()).map_err(|e| {
        format!(
            "cannot open the store in {}: {e}",
            config.store_path().display()
        )
    })?;
    let directory = Directory::new(store.clone(), config.directory.clone());
    let resolver = smtp::resolver(&config.dns.nameservers)
        .map_err(|e| format!("cannot set up DNS (section [dns]): {e}"))?;
    let spf = smtp::Spf::new(
        config.server.hostname.clone(),
        resolver.clone(),
        config.spf.clone(),
    );
    let deliverer = deliverer(&config, &store, &directory).await?;
    let outbound = Outbound::new(deliverer.clone(), resolver, outbound_config(&config))
        .map_err(|e| format!("cannot set up outbound delivery: {e}"))?;
    let services = Services {
        hostname: config.server.hostname.clone(),
        max_message_size: config.limits.max_message_size,
        smtp_command_timeout: Duration::from_secs(config.limits.smtp_command_timeout_secs),
        directory: directory.clone(),
        deliverer: deliverer.clone(),
        allow_plaintext_auth: config.tls.allow_plaintext_auth,
        store: store.clone(),
        auth: Authenticator::new(directory.clone(), config.auth.clone()),
        spf: Arc::new(spf),
    };

    let ctx = AdminContext {
        store: store.clone(),
        directory: directory.clone(),
        queue_rescan: Some(deliverer.queue_rescan()),
    };
    let web = web::Web::new(web::WebConfig {
        directory: directory.clone(),
        store: store.clone(),
        auth: services.auth.clone(),
        admin: admin_fn(ctx.clone()),
        admin_token: config.http.admin_token()?,
        client: client_ports(&config),
        password_rate: web::RateLimit {
            attempts: config.http.password_attempts,
            window: Duration::from_secs(config.http.password_window_secs),
        },
    });
    if let Some(addr) = config.listeners.http
        && !addr.ip().is_loopback()
    {
        tracing::warn!(%addr, "the http listener (management API, plain HTTP) is not on loopback");
    }

    let mut bound = Vec::new();
    for spec in listener_specs(&config) {
        bound.push(net::bind(spec).await.map_err(|e| e.to_string())?);
    }
    let mgmt_listener = mgmt::bind(&config.socket_path())?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    if config.listeners.http.is_some() {
        let names: Vec<String> = bound.iter().map(|l| l.spec().name.clone()).collect();
        let metrics = web::metrics::install(&names)?;
        tasks.spawn(web::metrics::upkeep(metrics, shutdown_rx.clone()));
    }
    let serve_cfg = ServeConfig {
        max_connections_per_ip: config.limits.max_connections_per_ip,
        max_connections: config.limits.max_connections,
        ..ServeConfig::default()
    };
    let mut banner = String::new();
    for listener in bound {
        let name = listener.spec().name.clone();
        banner.push_str(&format!("  {:<12} {}\n", name, listener.local_addr()));
        let handler = handler_for(&name, &services, &web);
        let cfg = ServeConfig {
            on_reject: Some(too_many_connections(&name)),
            ..serve_cfg.clone()
        };
        tasks.spawn(net::serve(
            listener,
            cfg,
            Some(tls.clone()),
            shutdown_rx.clone(),
            handler,
        ));
    }
    tasks.spawn(mgmt::serve(mgmt_listener, ctx, shutdown_rx.clone()));
    if let Some(backups) =
        crate::backup::scheduled(store.clone(), &config.backup, shutdown_rx.clone())
    {
        tasks.spawn(backups);
    }
    let mut queue_shutdown = shutdown_rx.clone();
    tasks.spawn(outbound.run(async move {
        let _ = queue_shutdown.wait_for(|stop| *stop).await;
    }));

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
