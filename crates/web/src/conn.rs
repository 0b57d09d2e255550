//! HTTP/1.1 over a connection accepted by `net::serve` (already TLS on the
//! https listener), so the web listeners get the same connection limits,
//! certificate reloads and graceful shutdown as the mail protocols.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tower::ServiceExt;

/// The client's address, in every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// A client has this long to send a request's headers (slowloris).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest request head (line and headers).
const MAX_HEAD: usize = 64 * 1024;

/// The `net::Handler` that serves `router` on each connection.
pub fn handler(router: Router) -> Arc<dyn net::Handler> {
    Arc::new(move |conn: net::Connection| serve(router.clone(), conn))
}

async fn serve(router: Router, conn: net::Connection) {
    let peer = conn.peer;
    let mut shutdown = conn.shutdown.clone();
    let stop = async move {
        let _ = shutdown.wait_for(|down| *down).await;
    };
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(Peer(peer));
        router.clone().oneshot(request)
    });
    let http = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(conn.stream), service);
    tokio::pin!(http);
    let result = tokio::select! {
        result = http.as_mut() => result,
        () = stop => {
            // Finish the request in flight, then close.
            http.as_mut().graceful_shutdown();
            http.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "http connection ended");
    }
}
