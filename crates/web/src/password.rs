//! The self-service password page (`/password` on the https listener).
//!
//! A user gives their address or short login id, the current password and the
//! new one twice. The current password is checked by the authenticator the
//! mail protocols use (same throttling, same `auth failed` log line for
//! fail2ban); the new one goes through `Directory::set_password` (the
//! password policy), and IMAP, POP3 and SMTP take it at once (the auth cache
//! is keyed to the stored hash).
//!
//! CSRF: a random token in a `__Host-` cookie (`Secure`, `HttpOnly`,
//! `SameSite=Strict`) must equal the form's hidden field (double submit), and
//! a POST whose `Origin` is another site is refused. Attempts are limited per
//! client address.

use std::collections::HashMap;
use std::fmt::Write;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Extension, Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use directory::auth::AuthError;
use serde::Deserialize;

use crate::Web;
use crate::conn::Peer;
use crate::escape::Esc;

const COOKIE: &str = "__Host-posthorn_csrf";

/// Four short fields and a token.
const MAX_FORM: usize = 16 * 1024;

/// Most client addresses remembered by the limiter.
const MAX_TRACKED: usize = 100_000;

/// At most `attempts` POSTs per client address within `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub attempts: u32,
    pub window: Duration,
}

/// Fixed-window counter per client address.
pub(crate) struct Limiter {
    limit: RateLimit,
    seen: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Limiter {
    pub(crate) fn new(limit: RateLimit) -> Limiter {
        Limiter {
            limit,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one attempt from `ip`; false when it is over the limit.
    fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let window = self.limit.window;
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_TRACKED {
            seen.retain(|_, (start, _)| now.duration_since(*start) < window);
            if seen.len() >= MAX_TRACKED {
                seen.clear();
            }
        }
        let entry = seen.entry(source(ip)).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= self.limit.attempts
    }
}

/// The client an address stands for: an IPv4 address, or an IPv6 /64 (one
/// customer's network; counting single IPv6 addresses would be no limit).
fn source(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (!0u128 << 64))),
        v4 => v4,
    }
}

pub fn routes(web: Web) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/password") }))
        .route("/password", get(show).post(change))
        .layer(DefaultBodyLimit::max(MAX_FORM))
        .with_state(web)
}

#[derive(Deserialize)]
struct ChangeForm {
    #[serde(default)]
    login: String,
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    csrf: String,
}

/// What the page says above the form.
enum Notice<'a> {
    None,
    Error(&'a str),
    Done(&'a str),
}

fn new_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The CSRF token of the request's cookie, if it has a well-formed one.
fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .find(|t| {
            t.len() == 43
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_string)
}

/// A POST from another site: its `Origin` (sent by browsers on every form
/// POST) names a host other than the one the request went to.
fn cross_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let host = headers.get(header::HOST).map(HeaderValue::as_bytes);
    let origin = origin.as_bytes();
    match (origin.strip_prefix(b"https://"), host) {
        (Some(o), Some(h)) => !o.eq_ignore_ascii_case(h),
        _ => true,
    }
}

fn page(status: StatusCode, token: &str, login: &str, notice: Notice) -> Response {
    html(status, page_body(token, login, notice))
}

fn page_body(token: &str, login: &str, notice: Notice) -> String {
    let mut body = String::with_capacity(2048);
    body.push_str(concat!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<title>Change your mail password</title><style>",
        "body{font-family:system-ui,sans-serif;max-width:28em;margin:3em auto;padding:0 1em;color:#222}",
        "label{display:block;margin-top:1em}input{width:100%;padding:.4em;box-sizing:border-box}",
        "button{margin-top:1.5em;padding:.5em 1.5em}",
        ".error{background:#fdd;border:1px solid #c66;padding:.6em}",
        ".done{background:#dfd;border:1px solid #6a6;padding:.6em}",
        "</style></head><body>\n<h1>Change your mail password</h1>\n"
    ));
    match notice {
        Notice::None => {}
        Notice::Error(msg) => {
            let _ = writeln!(
                body,
                "<p class=\"error\" id=\"error\" role=\"alert\">{}</p>",
                Esc(msg)
            );
        }
        Notice::Done(address) => {
            let _ = writeln!(
                body,
                "<p class=\"done\" id=\"done\">The password of {} has been changed. \
                 Use the new password in your mail apps (IMAP, POP3 and SMTP) from now on.</p>\n\
                 </body></html>",
                Esc(address)
            );
            return body;
        }
    }
    let _ = write!(
        body,
        concat!(
            "<form method=\"post\" action=\"/password\">\n",
            "<input type=\"hidden\" name=\"csrf\" value=\"{token}\">\n",
            "<label for=\"login\">Email address or login id</label>",
            "<input id=\"login\" name=\"login\" value=\"{login}\" autocomplete=\"username\" required>\n",
            "<label for=\"current\">Current password</label>",
            "<input id=\"current\" name=\"current\" type=\"password\" autocomplete=\"current-password\" required>\n",
            "<label for=\"new\">New password</label>",
            "<input id=\"new\" name=\"new\" type=\"password\" autocomplete=\"new-password\" required>\n",
            "<label for=\"confirm\">New password again</label>",
            "<input id=\"confirm\" name=\"confirm\" type=\"password\" autocomplete=\"new-password\" required>\n",
            "<button id=\"submit\" type=\"submit\">Change password</button>\n",
            "</form>\n</body></html>\n"
        ),
        token = Esc(token),
        login = Esc(login),
    );
    body
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        ],
        body,
    )
        .into_response()
}

/// Sets the CSRF cookie on `response` (the page's hidden field holds the
/// same value).
fn with_cookie(mut response: Response, token: &str) -> Response {
    let cookie = format!("{COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// `GET /password`
async fn show(headers: HeaderMap) -> Response {
    let token = cookie_token(&headers).unwrap_or_else(new_token);
    with_cookie(page(StatusCode::OK, &token, "", Notice::None), &token)
}

/// `POST /password`
async fn change(
    State(web): State<Web>,
    Extension(Peer(peer)): Extension<Peer>,
    headers: HeaderMap,
    Form(form): Form<ChangeForm>,
) -> Response {
    let cookie = cookie_token(&headers);
    let token_matches = cookie
        .as_deref()
        .is_some_and(|c| crate::api::same(c.as_bytes(), form.csrf.as_bytes()));
    if !token_matches || cross_origin(&headers) {
        tracing::warn!(ip = %peer.ip(), "password form refused: CSRF check failed");
        let token = new_token();
        let msg = "This form expired or was sent from another site. Please try again.";
        return with_cookie(
            page(StatusCode::FORBIDDEN, &token, "", Notice::Error(msg)),
            &token,
        );
    }
    let token = form.csrf.as_str();
    let login = form.login.trim();
    let fail = |status, msg: &str| page(status, token, login, Notice::Error(msg));
    if !web.inner.limiter.allow(peer.ip(), Instant::now()) {
        tracing::warn!(ip = %peer.ip(), "password form: too many attempts");
        return fail(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts from your address. Please wait a few minutes and try again.",
        );
    }
    if form.new != form.confirm {
        return fail(
            StatusCode::BAD_REQUEST,
            "The two new passwords do not match.",
        );
    }
    let config = web.config();
    let account = match config
        .auth
        .authenticate(login, form.current.as_bytes(), peer.ip(), "web")
        .await
    {
        Ok(account) => account,
        Err(AuthError::InvalidCredentials) => {
            return fail(
                StatusCode::FORBIDDEN,
                "The address or the current password is wrong.",
            );
        }
        Err(AuthError::Disabled) => {
            return fail(StatusCode::FORBIDDEN, "This account is disabled.");
        }
        Err(AuthError::Throttled) => {
            return fail(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed logins. Please try again later.",
            );
        }
        Err(AuthError::Temporary(e)) => {
            tracing::warn!(error = %e, "password form: directory unavailable");
            return fail(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server cannot check passwords right now. Please try again later.",
            );
        }
    };
    if form.new == form.current {
        return fail(
            StatusCode::BAD_REQUEST,
            "The new password is the same as the current one.",
        );
    }
    match config
        .directory
        .set_password(&account.address, &form.new)
        .await
    {
        Ok(()) => {
            tracing::info!(account = %account.address, ip = %peer.ip(), "password changed on the web page");
            page(StatusCode::OK, token, login, Notice::Done(&account.address))
        }
        // Policy errors say what is wrong, e.g. "at least 8 characters".
        Err(e) => fail(
            StatusCode::BAD_REQUEST,
            &format!("The new password cannot be used: {e}."),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_counts_per_address_and_window() {
        let l = Limiter::new(RateLimit {
            attempts: 2,
            window: Duration::from_secs(60),
        });
        let (a, b): (IpAddr, IpAddr) = ([192, 0, 2, 1].into(), [192, 0, 2, 2].into());
        let t = Instant::now();
        assert!(l.allow(a, t));
        assert!(l.allow(a, t));
        assert!(!l.allow(a, t + Duration::from_secs(1)));
        assert!(l.allow(b, t));
        assert!(l.allow(a, t + Duration::from_secs(61)));
        // One IPv6 /64 is one client; an IPv4-mapped address is its IPv4 one.
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap_or(a);
        assert!(l.allow(v6("2001:db8::1"), t));
        assert!(l.allow(v6("2001:db8::2"), t));
        assert!(!l.allow(v6("2001:db8::ffff:1"), t));
        assert!(l.allow(v6("2001:db8:0:1::1"), t));
        assert!(l.allow(v6("::ffff:192.0.2.1"), t + Duration::from_secs(62)));
        assert!(!l.allow(a, t + Duration::from_secs(63)));
    }

    #[test]
    fn cookie_token_takes_only_well_formed_tokens() {
        let token = new_token();
        let mut h = HeaderMap::new();
        let v = format!("other=1; {COOKIE}={token}");
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static("")),
        );
        assert_eq!(cookie_token(&h).as_deref(), Some(token.as_str()));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("__Host-posthorn_csrf=short"),
        );
        assert_eq!(cookie_token(&h), None);
    }

    #[test]
    fn cross_origin_posts_are_recognised() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("mail.example.org"));
        assert!(!cross_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://mail.example.org"),
        );
        assert!(!cross_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(cross_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(cross_origin(&h));
    }

    #[test]
    fn echoed_values_are_escaped() {
        let body = page_body("t\"x", "<script>x</script>", Notice::Error("<b>"));
        assert!(
            !body.contains("<script>") && !body.contains("<b>"),
            "{body}"
        );
        assert!(body.contains("&lt;script&gt;x&lt;/script&gt;"), "{body}");
        assert!(body.contains("value=\"t&quot;x\""), "{body}");
    }
}
