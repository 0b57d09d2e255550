//! The management API: the CLI's admin commands over HTTP/JSON, behind a
//! bearer token. `POST /api/v1/admin` takes exactly the JSON the management
//! socket takes (the CLI's `Admin` enum, e.g. `{"Domain":{"Add":{...}}}`) and
//! answers `{"ok": bool, "output": "what the CLI prints"}`; a few GET routes
//! return the same data as JSON objects.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Extension, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::conn::Peer;
use crate::{AdminError, Web};

/// An autoresponder body is at most 64 KiB; JSON escaping may double it.
const MAX_BODY: usize = 1 << 20;

#[derive(Serialize)]
struct Answer {
    ok: bool,
    output: String,
}

fn answer(status: StatusCode, ok: bool, output: String) -> Response {
    (status, axum::Json(Answer { ok, output })).into_response()
}

pub fn routes(web: Web) -> Router<Web> {
    Router::new()
        .route("/api/v1/admin", post(admin))
        .route("/api/v1/domains", get(domains))
        .route("/api/v1/accounts", get(accounts))
        .route("/api/v1/queue", get(queue))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .route_layer(middleware::from_fn_with_state(web, require_token))
}

/// Equal-time comparison, so response times do not reveal how much of a
/// guessed token was right.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn token_ok(headers: &HeaderMap, expected: Option<&str>) -> bool {
    let (Some(expected), Some(given)) = (expected, headers.get(header::AUTHORIZATION)) else {
        return false;
    };
    let given = given.as_bytes();
    let Some(token) = given
        .strip_prefix(b"Bearer ")
        .or_else(|| given.strip_prefix(b"bearer "))
    else {
        return false;
    };
    same(token, expected.as_bytes())
}

async fn require_token(
    State(web): State<Web>,
    peer: Option<Extension<Peer>>,
    request: Request,
    next: Next,
) -> Response {
    if token_ok(request.headers(), web.config().admin_token.as_deref()) {
        return next.run(request).await;
    }
    let ip = peer.map_or_else(|| "-".into(), |Extension(Peer(p))| p.ip().to_string());
    tracing::warn!(target: "posthorn::auth", "auth failed: user=admin-api ip={ip} protocol=api reason=bad-token");
    metrics::counter!(crate::metrics::AUTH_FAILURES, "protocol" => "api").increment(1);
    let mut response = answer(
        StatusCode::UNAUTHORIZED,
        false,
        "missing or wrong admin token (Authorization: Bearer <http.admin_token>)".into(),
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// `POST /api/v1/admin`: one admin command.
async fn admin(State(web): State<Web>, body: Bytes) -> Response {
    let command: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return answer(StatusCode::BAD_REQUEST, false, format!("bad JSON: {e}")),
    };
    tracing::info!(command = %command_name(&command), "admin command over http");
    match (web.config().admin)(command).await {
        Ok(output) => answer(StatusCode::OK, true, output),
        Err(AdminError::BadRequest(e)) => answer(StatusCode::BAD_REQUEST, false, e),
        Err(AdminError::Failed(e)) => answer(StatusCode::UNPROCESSABLE_ENTITY, false, e),
    }
}

/// The command's name path, e.g. `Account.Add`, for the log: never its
/// arguments, which may hold a password.
/// An admin command's name (`Account.Add`) without its arguments, which may
/// hold passwords: what the logs say.
pub fn command_name(command: &Value) -> String {
    let mut names = Vec::new();
    let mut v = command;
    while let Some((name, inner)) = v
        .as_object()
        .and_then(|m| m.iter().next())
        .filter(|(name, _)| name.starts_with(char::is_uppercase))
    {
        names.push(name.as_str());
        v = inner;
    }
    names.extend(v.as_str());
    names.join(".")
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "management API read failed");
    answer(StatusCode::INTERNAL_SERVER_ERROR, false, e.to_string())
}

/// `GET /api/v1/domains`
async fn domains(State(web): State<Web>) -> Response {
    match web.config().directory.list_domains().await {
        Ok(list) => axum::Json(
            list.into_iter()
                .map(|d| {
                    json!({
                        "name": d.name,
                        "mode": d.mode.to_string(),
                        "relay_host": d.relay_host,
                        "created": d.created,
                    })
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
struct AccountsQuery {
    domain: Option<String>,
}

/// `GET /api/v1/accounts[?domain=D]`
async fn accounts(State(web): State<Web>, Query(q): Query<AccountsQuery>) -> Response {
    let config = web.config();
    let list = match config.directory.list_accounts(q.domain.as_deref()).await {
        Ok(list) => list,
        Err(e) => {
            return answer(StatusCode::UNPROCESSABLE_ENTITY, false, e.to_string());
        }
    };
    let mut out = Vec::with_capacity(list.len());
    for a in list {
        let used = match config.store.quota_used(a.id).await {
            Ok(used) => used,
            Err(e) => return internal(e),
        };
        out.push(json!({
            "address": a.address,
            "login_id": a.short_login,
            "name": a.display_name,
            "quota": a.quota,
            "quota_used": used,
            "disabled": a.disabled,
            "created": a.created,
        }));
    }
    axum::Json(out).into_response()
}

/// `GET /api/v1/queue`
async fn queue(State(web): State<Web>) -> Response {
    match web.config().store.queue().await {
        Ok(list) => axum::Json(
            list.into_iter()
                .map(|(id, e)| {
                    json!({
                        "id": id,
                        "sender": e.sender,
                        "recipients": e.recipients.iter().map(|r| &r.address).collect::<Vec<_>>(),
                        "size": e.size,
                        "attempts": e.attempts,
                        "created": e.created,
                        "next_attempt": e.next_attempt,
                        "last_error": e.last_error,
                    })
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => internal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_must_match_exactly() {
        let mut h = HeaderMap::new();
        assert!(!token_ok(&h, Some("secret-token")));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer secret-token"),
        );
        assert!(token_ok(&h, Some("secret-token")));
        assert!(!token_ok(&h, Some("secret-tokem")));
        assert!(!token_ok(&h, Some("secret-token2")));
        assert!(!token_ok(&h, None));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic secret-token"),
        );
        assert!(!token_ok(&h, Some("secret-token")));
    }

    #[test]
    fn describe_names_the_command_not_its_arguments() {
        let v: Value = serde_json::from_str(
            r#"{"Account":{"Add":{"address":"a@b","password":{"password":"pw"}}}}"#,
        )
        .unwrap_or_default();
        assert_eq!(command_name(&v), "Account.Add");
        assert_eq!(command_name(&json!({"Queue": "List"})), "Queue.List");
    }
}
