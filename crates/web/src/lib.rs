//! posthorn's HTTP side, served by the same listener machinery as the mail
//! protocols (`net::serve`: connection limits, TLS with the reloadable
//! certificate, graceful shutdown):
//!
//! - the `http` listener (loopback): the management API (`/api/v1/*`, bearer
//!   token), `/metrics` (Prometheus text), `/healthz`, client autoconfiguration;
//! - the `https` listener: the self-service password page (`/password`),
//!   client autoconfiguration, `/healthz`.
//!
//! Every request body is bounded; every value taken from a request is
//! HTML/XML-escaped before it is echoed.

mod api;
mod autoconfig;
mod conn;
mod escape;
pub mod metrics;
mod password;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::get;
use directory::Directory;
use directory::auth::Authenticator;
use store::Store;

pub use api::command_name;
pub use autoconfig::ClientPorts;
pub use conn::handler;
pub use password::RateLimit;

/// Why an admin command did not run.
#[derive(Debug)]
pub enum AdminError {
    /// The JSON is not a command (HTTP 400).
    BadRequest(String),
    /// The command ran and failed, e.g. an unknown domain (HTTP 422).
    Failed(String),
}

/// The result of one admin command: the text the CLI would print.
pub type AdminFuture = Pin<Box<dyn Future<Output = Result<String, AdminError>> + Send>>;

/// Runs one admin command given as the JSON the management socket takes
/// (the CLI's `Admin` enum); supplied by the binary, which owns that enum.
pub type AdminFn = Arc<dyn Fn(serde_json::Value) -> AdminFuture + Send + Sync>;

/// What the web side needs from the rest of the server.
pub struct WebConfig {
    pub directory: Directory,
    pub store: Store,
    /// The authenticator the mail protocols use: the password page shares
    /// its throttling and its `auth failed` log line.
    pub auth: Authenticator,
    pub admin: AdminFn,
    /// Bearer token of the management API; `None`: the API answers 401 to
    /// everything.
    pub admin_token: Option<String>,
    /// Server name and ports that autoconfiguration hands to mail clients.
    pub client: ClientPorts,
    /// Password change attempts per client address.
    pub password_rate: RateLimit,
}

struct Inner {
    config: WebConfig,
    limiter: password::Limiter,
}

/// Shared by every request of both listeners; cheap to clone.
#[derive(Clone)]
pub struct Web {
    inner: Arc<Inner>,
}

impl Web {
    pub fn new(config: WebConfig) -> Web {
        let limiter = password::Limiter::new(config.password_rate);
        Web {
            inner: Arc::new(Inner { config, limiter }),
        }
    }

    fn config(&self) -> &WebConfig {
        &self.inner.config
    }

    /// Routes of the loopback `http` listener: management API, metrics,
    /// health, autoconfiguration.
    pub fn http_router(&self) -> Router {
        Router::new()
            .merge(api::routes(self.clone()))
            .route("/metrics", get(metrics::endpoint))
            .with_state(self.clone())
            .merge(self.common_routes())
            .layer(axum::middleware::map_response(security_headers))
    }

    /// Routes of the `https` listener: password page, health,
    /// autoconfiguration.
    pub fn https_router(&self) -> Router {
        password::routes(self.clone())
            .merge(self.common_routes())
            .layer(axum::middleware::map_response(security_headers))
    }

    fn common_routes(&self) -> Router {
        autoconfig::routes(self.clone()).route("/healthz", get(healthz))
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Headers for every response: nothing here may be framed, cached by a
/// proxy, or send its address as a referrer to another site.
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}
