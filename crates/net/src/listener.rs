use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::{Stream, TlsHandle, io_reason};

/// Pause after a failed accept (EMFILE and friends) so the loop does not spin.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(200);
const LISTEN_BACKLOG: i32 = 1024;
// Dead peers (phones dropping off during IMAP IDLE) are noticed after
// about time + interval * retries = 2 minutes.
const KEEPALIVE_TIME: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
const KEEPALIVE_RETRIES: u32 = 3;

/// Process-wide connection ids, for correlating log lines.
static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// One configured listening socket.
#[derive(Debug, Clone)]
pub struct ListenerSpec {
    /// Protocol name for logs and error messages ("smtp", "imaps", ...).
    pub name: String,
    pub addr: SocketAddr,
    /// TLS handshake right after accept (ports 465, 993, 995).
    pub implicit_tls: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} for {name}: {reason}")]
pub struct BindError {
    pub name: String,
    pub addr: SocketAddr,
    pub kind: io::ErrorKind,
    reason: String,
}

impl BindError {
    fn new(spec: &ListenerSpec, e: &io::Error) -> Self {
        let reason = match e.kind() {
            io::ErrorKind::AddrInUse => format!(
                "address already in use (another mail server running? change [listeners] {})",
                spec.name
            ),
            io::ErrorKind::PermissionDenied => "permission denied (ports below 1024 need root or \
                 CAP_NET_BIND_SERVICE: AmbientCapabilities=CAP_NET_BIND_SERVICE in the systemd \
                 unit, or `setcap cap_net_bind_service=+ep` on the binary)"
                .to_owned(),
            io::ErrorKind::AddrNotAvailable => format!(
                "address not available on this host (change [listeners] {})",
                spec.name
            ),
            _ => io_reason(e),
        };
        BindError {
            name: spec.name.clone(),
            addr: spec.addr,
            kind: e.kind(),
            reason,
        }
    }
}

/// A bound socket, ready for [`serve`]. Binding early lets startup fail
/// before anything is served.
#[derive(Debug)]
pub struct BoundListener {
    spec: ListenerSpec,
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl BoundListener {
    /// The bound address (the real port when the spec asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn spec(&self) -> &ListenerSpec {
        &self.spec
    }
}

/// Binds `spec.addr`. IPv6 sockets are IPv6-only, so `0.0.0.0:25` and
/// `[::]:25` can both be configured.
pub async fn bind(spec: ListenerSpec) -> Result<BoundListener, BindError> {
    let open = || -> io::Result<TcpListener> {
        let socket = Socket::new(
            Domain::for_address(spec.addr),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        if spec.addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        // Restarts must not fail on connections lingering in TIME_WAIT.
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&spec.addr.into())?;
        socket.listen(LISTEN_BACKLOG)?;
        TcpListener::from_std(socket.into())
    };
    let listener = open().map_err(|e| BindError::new(&spec, &e))?;
    let local_addr = listener
        .local_addr()
        .map_err(|e| BindError::new(&spec, &e))?;
    Ok(BoundListener {
        spec,
        listener,
        local_addr,
    })
}

/// Limits and timeouts for [`serve`]. Connection limits count per listener.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub max_connections_per_ip: usize,
    pub max_connections: usize,
    /// Bounds the implicit TLS handshake and STARTTLS.
    pub tls_handshake_timeout: Duration,
    /// After shutdown, how long running connections may take to finish
    /// before they are aborted.
    pub shutdown_grace: Duration,
    /// Written (best effort, never blocking) to a connection refused by a
    /// limit before closing it, e.g. `b"421 too many connections\r\n"`.
    /// Not sent on implicit TLS listeners, where it would be garbage.
    pub on_reject: Option<&'static [u8]>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_connections_per_ip: 50,
            max_connections: 5000,
            tls_handshake_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            on_reject: None,
        }
    }
}

/// An accepted client connection, handed to the protocol's [`Handler`].
#[derive(Debug)]
pub struct Connection {
    /// Unique within the process; also the `conn` field of the log span.
    pub id: u64,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// [`ListenerSpec::name`].
    pub listener: String,
    /// Already TLS on implicit TLS listeners.
    pub stream: Stream,
    /// For STARTTLS; `None` when no certificate is configured.
    pub tls: Option<TlsHandle>,
    /// Becomes true when the server shuts down, so the protocol can say
    /// goodbye before the grace period ends.
    pub shutdown: watch::Receiver<bool>,
}

/// A protocol's connection handler. Any
/// `Fn(Connection) -> impl Future<Output = ()>` closure qualifies.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, conn: Connection) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

impl<F, Fut> Handler for F
where
    F: Fn(Connection) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn handle(&self, conn: Connection) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(self(conn))
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// A connection's place in the counts, released on drop (also when the
/// task is aborted or panics).
struct Slot {
    counts: Arc<Mutex<Counts>>,
    ip: IpAddr,
}

impl Slot {
    fn acquire(
        counts: &Arc<Mutex<Counts>>,
        ip: IpAddr,
        cfg: &ServeConfig,
    ) -> Result<Slot, &'static str> {
        let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
        if c.total >= cfg.max_connections {
            return Err("too many connections");
        }
        let for_ip = c.per_ip.entry(ip).or_default();
        if *for_ip >= cfg.max_connections_per_ip {
            return Err("too many connections from this address");
        }
        *for_ip += 1;
        c.total += 1;
        Ok(Slot {
            counts: counts.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

fn tune_socket(tcp: &TcpStream) {
    let keepalive = TcpKeepalive::new()
        .with_time(KEEPALIVE_TIME)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_RETRIES);
    let result = SockRef::from(tcp)
        .set_tcp_keepalive(&keepalive)
        .and_then(|()| tcp.set_nodelay(true));
    if let Err(e) = result {
        debug!(error = %e, "cannot set socket options");
    }
}

/// Accepts connections until `shutdown` becomes true (or its sender is
/// dropped), running `handler` for each in its own task. Then stops
/// accepting at once, waits up to `cfg.shutdown_grace` for running
/// connections and aborts the rest. An implicit TLS listener without `tls`
/// is a configuration error: it is logged and nothing is served.
pub async fn serve(
    listener: BoundListener,
    cfg: ServeConfig,
    tls: Option<TlsHandle>,
    shutdown: watch::Receiver<bool>,
    handler: Arc<dyn Handler>,
) {
    let BoundListener {
        spec,
        listener,
        local_addr,
    } = listener;
    let name = spec.name;
    let tls = tls.map(|t| t.with_handshake_timeout(cfg.tls_handshake_timeout));
    let implicit_tls = match (&tls, spec.implicit_tls) {
        (_, false) => None,
        (Some(t), true) => Some(t.clone()),
        (None, true) => {
            error!(listener = %name, addr = %local_addr, "implicit TLS listener has no TLS certificate configured; not serving it");
            return;
        }
    };

    let counts = Arc::new(Mutex::new(Counts::default()));
    let mut tasks = JoinSet::new();
    let conn_shutdown = shutdown.clone();
    let mut shutdown = shutdown;
    let stop = async move {
        // A dropped sender can never signal again: treat it as shutdown.
        let _ = shutdown.wait_for(|down| *down).await;
    };
    tokio::pin!(stop);

    info!(listener = %name, addr = %local_addr, "listening");
    loop {
        tokio::select! {
            biased;
            () = &mut stop => break,
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = joined
                    && e.is_panic()
                {
                    error!(listener = %name, "connection task panicked");
                }
            }
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        warn!(listener = %name, error = %e, "accept failed; retrying");
                        tokio::select! {
                            () = &mut stop => break,
                            () = tokio::time::sleep(ACCEPT_RETRY_DELAY) => continue,
                        }
                    }
                };
                let slot = match Slot::acquire(&counts, peer.ip().to_canonical(), &cfg) {
                    Ok(slot) => slot,
                    Err(why) => {
                        warn!(listener = %name, %peer, "{why}; connection refused");
                        if let (Some(line), None) = (cfg.on_reject, &implicit_tls) {
                            // try_write never blocks the accept loop; a fresh
                            // socket's send buffer has room for one line.
                            let _ = tcp.try_write(line);
                        }
                        continue;
                    }
                };
                tune_socket(&tcp);
                metrics::counter!("posthorn_connections_total", "listener" => name.clone()).increment(1);
                let id = NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed);
                let span = info_span!("conn", conn = id, peer = %peer, listener = %name, user = tracing::field::Empty);
                let local = tcp.local_addr().unwrap_or(local_addr);
                let handshake = implicit_tls.clone();
                let conn_tls = tls.clone();
                let conn_shutdown = conn_shutdown.clone();
                let listener_name = name.clone();
                let handler = handler.clone();
                tasks.spawn(
                    async move {
                        let _slot = slot;
                        debug!(%local, "connected");
                        let stream = match handshake {
                            None => Stream::Plain(tcp),
                            // Boxed: the handshake's state is large and would
                            // otherwise stay in every connection task for its
                            // whole life, idle IMAP sessions included.
                            Some(t) => match Box::pin(t.accept(tcp)).await {
                                Ok(s) => Stream::Tls(Box::new(s)),
                                Err(e) => {
                                    info!(error = %e, "TLS handshake failed");
                                    return;
                                }
                            },
                        };
                        handler
                            .handle(Connection {
                                id,
                                peer,
                                local,
                                listener: listener_name,
                                stream,
                                tls: conn_tls,
                                shutdown: conn_shutdown,
                            })
                            .await;
                        debug!("closed");
                    }
                    .instrument(span),
                );
            }
        }
    }

    drop(listener);
    if !tasks.is_empty() {
        info!(listener = %name, running = tasks.len(), "stopped accepting; waiting for connections");
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(cfg.shutdown_grace, drain)
            .await
            .is_err()
        {
            warn!(listener = %name, aborted = tasks.len(), "grace period over; aborting connections");
            tasks.shutdown().await;
        }
    }
    info!(listener = %name, "stopped");
}

/// Adds the logged-in user to the connection's span, so every later log line of
/// the session names them. Call from inside a connection handler.
pub fn record_user(user: &str) {
    tracing::Span::current().record("user", tracing::field::display(user));
}
