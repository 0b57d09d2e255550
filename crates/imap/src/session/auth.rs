//! Not-authenticated state: CAPABILITY, STARTTLS, LOGIN, AUTHENTICATE PLAIN.

use std::io;

use directory::auth::{AuthError, sasl};
use net::Line;
use tracing::{info, warn};

use super::{AUTH_TIMEOUT, Flow, MAX_LINE, Session, User};

/// Capabilities always advertised, with where they are specified. Not (yet)
/// advertised because not implemented: UTF8=ACCEPT (RFC 6855).
const CAPABILITIES: &[(&str, &str)] = &[
    ("IMAP4rev1", "RFC 3501"),
    // Both revisions: a session speaks rev1 until ENABLE IMAP4rev2
    // (RFC 9051 §6.3.1).
    ("IMAP4rev2", "RFC 9051"),
    ("LITERAL+", "RFC 7888"),
    ("SASL-IR", "RFC 4959"),
    ("IDLE", "RFC 2177"),
    ("NAMESPACE", "RFC 2342"),
    ("UIDPLUS", "RFC 4315"),
    ("MOVE", "RFC 6851"),
    ("SPECIAL-USE", "RFC 6154"),
    ("UNSELECT", "RFC 3691"),
    ("CHILDREN", "RFC 3348"),
    ("ENABLE", "RFC 5161"),
    ("ID", "RFC 2971"),
    ("QUOTA", "RFC 9208"),
    ("CONDSTORE", "RFC 7162"),
    ("QRESYNC", "RFC 7162 §3.2"),
    ("QUOTA=RES-STORAGE", "RFC 9208 §5.1"),
    ("ESEARCH", "RFC 4731"),
    ("MULTIAPPEND", "RFC 3502"),
    ("LIST-EXTENDED", "RFC 5258"),
    ("LIST-STATUS", "RFC 5819"),
    ("STATUS=SIZE", "RFC 8438"),
    ("SEARCHRES", "RFC 5182"),
    ("BINARY", "RFC 3516"),
];

/// The CAPABILITY list for a connection's state.
pub fn capabilities(
    tls_active: bool,
    tls_available: bool,
    auth_allowed: bool,
    authenticated: bool,
) -> String {
    let mut caps: Vec<&str> = CAPABILITIES.iter().map(|(c, _)| *c).collect();
    if !authenticated {
        if tls_available && !tls_active {
            caps.push("STARTTLS"); // RFC 3501 §6.2.1
        }
        if auth_allowed {
            caps.push("AUTH=PLAIN"); // RFC 4616
        } else {
            caps.push("LOGINDISABLED"); // RFC 3501 §6.2.3
        }
    }
    caps.join(" ")
}

impl Session {
    pub(super) async fn starttls(&mut self, tag: &str) -> io::Result<Flow> {
        let handle = match (&self.tls, self.io.is_tls(), &self.user) {
            (Some(h), false, None) => h.clone(),
            _ => return self.bad(Some(tag.into()), "STARTTLS not available").await,
        };
        self.io
            .write_all(format!("{tag} OK Begin TLS negotiation now\r\n").as_bytes())
            .await?;
        // The upgrade itself needs the reader by value: see `run`.
        Ok(Flow::StartTls(handle))
    }

    pub(super) async fn login(&mut self, user: &str, password: &[u8]) -> io::Result<String> {
        if self.user.is_some() {
            return Ok("BAD Already logged in".into());
        }
        if !self.auth_allowed() {
            return Ok("NO [PRIVACYREQUIRED] Use STARTTLS first".into());
        }
        let account = match self
            .inner
            .auth
            .authenticate(user, password, self.peer, "imap")
            .await
        {
            Ok(a) => a,
            Err(AuthError::InvalidCredentials) => {
                return Ok("NO [AUTHENTICATIONFAILED] Authentication failed".into());
            }
            Err(AuthError::Throttled) => {
                return Ok("NO [UNAVAILABLE] Too many failed logins, try again later".into());
            }
            Err(AuthError::Disabled) => {
                return Ok("NO [AUTHORIZATIONFAILED] Account disabled".into());
            }
            Err(AuthError::Temporary(e)) => {
                warn!(error = %e, "imap login failed");
                return Ok("NO [UNAVAILABLE] Temporary failure, try again later".into());
            }
        };
        net::record_user(&account.address);
        info!(user = %account.address, "imap login");
        self.user = Some(User {
            account: account.id,
            changes: self.inner.store.subscribe(account.id),
        });
        self.io.set_idle_timeout(AUTH_TIMEOUT);
        Ok(format!("OK [CAPABILITY {}] Logged in", self.capabilities()))
    }

    /// AUTHENTICATE (RFC 3501 §6.2.2) with PLAIN (RFC 4616) and an optional
    /// initial response (RFC 4959). `None` when the client is gone.
    pub(super) async fn authenticate(
        &mut self,
        mechanism: &str,
        initial: Option<String>,
    ) -> io::Result<Option<String>> {
        if self.user.is_some() {
            return Ok(Some("BAD Already logged in".into()));
        }
        if !self.auth_allowed() {
            return Ok(Some("NO [PRIVACYREQUIRED] Use STARTTLS first".into()));
        }
        if mechanism != "PLAIN" {
            return Ok(Some("NO [CANNOT] Unsupported mechanism".into()));
        }
        let response = match initial {
            Some(r) => r,
            None => {
                self.io.write_all(b"+ \r\n").await?;
                match self.io.read_line(MAX_LINE).await? {
                    Line::Complete { data, .. } => String::from_utf8_lossy(&data).into_owned(),
                    Line::TooLong => return Ok(Some("BAD Response too long".into())),
                    Line::Eof => return Ok(None),
                }
            }
        };
        match sasl::decode_response(response.as_bytes()).and_then(|r| sasl::parse_plain(&r)) {
            Err(sasl::SaslError::Cancelled) => Ok(Some("BAD Authentication cancelled".into())),
            Err(_) => Ok(Some("BAD Invalid SASL PLAIN response".into())),
            Ok(c) => self.login(&c.login, &c.password).await.map(Some),
        }
    }

    pub(super) fn account(&self) -> u64 {
        self.user.as_ref().map_or(0, |u| u.account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_list() {
        let plain = capabilities(false, true, false, false);
        assert!(plain.starts_with("IMAP4rev1 "));
        for c in [
            "IDLE",
            "LITERAL+",
            "SASL-IR",
            "UIDPLUS",
            "MOVE",
            "SPECIAL-USE",
        ] {
            assert!(plain.split(' ').any(|x| x == c), "{c}");
        }
        assert!(plain.contains("STARTTLS") && plain.contains("LOGINDISABLED"));
        assert!(!plain.contains("AUTH=PLAIN"));
        let tls = capabilities(true, true, true, false);
        assert!(!tls.contains("STARTTLS") && !tls.contains("LOGINDISABLED"));
        assert!(tls.contains("AUTH=PLAIN"));
        let authed = capabilities(true, true, true, true);
        assert!(!authed.contains("AUTH=") && authed.contains("IDLE"));
    }
}
