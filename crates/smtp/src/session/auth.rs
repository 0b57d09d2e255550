//! AUTH (RFC 4954) with PLAIN and LOGIN. Passwords are passed on to the
//! authenticator and never logged.

use std::io;

use directory::auth::AuthError;
use net::Line;
use tracing::info;

use super::{Io, ListenerKind, MAX_AUTH_LINE, Session};
use crate::proto::reply::Reply;
use directory::auth::sasl::{
    LOGIN_PASSWORD_CHALLENGE, LOGIN_USERNAME_CHALLENGE, Mechanism, SaslError, decode_response,
    login_name, parse_plain,
};

/// Why an exchange ended before credentials could be checked.
enum Abort {
    Reply(Reply),
    Io(io::Error),
}

impl From<SaslError> for Abort {
    fn from(e: SaslError) -> Abort {
        Abort::Reply(match e {
            SaslError::Cancelled => Reply::new(501, "5.7.0", "Authentication cancelled"),
            SaslError::Base64 => Reply::new(501, "5.5.2", "Invalid base64 data"),
            SaslError::Malformed => Reply::new(501, "5.5.2", "Malformed authentication data"),
            SaslError::Authzid => Reply::new(535, "5.7.8", "Authentication credentials invalid"),
        })
    }
}

impl Session<'_> {
    pub(super) async fn auth(
        &mut self,
        io: &mut Io,
        mechanism: &str,
        initial: Option<String>,
    ) -> io::Result<Reply> {
        if !self.helo.as_ref().is_some_and(|h| h.extended) {
            return Ok(Reply::new(503, "5.5.1", "Send EHLO first"));
        }
        if !self.auth_available(io) {
            return Ok(if self.kind() == ListenerKind::Mx {
                Reply::new(503, "5.5.1", "Authentication not enabled")
            } else {
                // RFC 4954 §6.
                Reply::new(
                    538,
                    "5.7.11",
                    "Encryption required for requested authentication mechanism",
                )
            });
        }
        if self.auth.is_some() {
            return Ok(Reply::new(503, "5.5.1", "Already authenticated"));
        }
        // RFC 4954 §4: not during a mail transaction.
        if self.tx.is_some() {
            return Ok(Reply::new(
                503,
                "5.5.1",
                "AUTH not allowed during a mail transaction",
            ));
        }
        let Some(mechanism) = Mechanism::from_name(mechanism) else {
            return Ok(Reply::new(504, "5.5.4", "Unrecognized authentication type"));
        };
        let credentials = match mechanism {
            Mechanism::Plain => plain(io, initial).await,
            Mechanism::Login => login(io, initial).await,
        };
        let (login, password) = match credentials {
            Ok(c) => c,
            Err(Abort::Reply(reply)) => return Ok(reply),
            Err(Abort::Io(e)) => return Err(e),
        };
        let result = self
            .server
            .auth
            .authenticate(&login, &password, self.peer.ip(), "smtp")
            .await;
        Ok(match result {
            Ok(account) => {
                self.span
                    .record("user", tracing::field::display(&account.address));
                net::record_user(&account.address);
                info!(login = %login, "authenticated");
                self.auth = Some(account);
                Reply::new(235, "2.7.0", "Authentication successful")
            }
            // The authenticator logs failures (for fail2ban).
            Err(AuthError::InvalidCredentials | AuthError::Disabled) => {
                Reply::new(535, "5.7.8", "Authentication credentials invalid")
            }
            Err(AuthError::Throttled | AuthError::Temporary(_)) => {
                Reply::new(454, "4.7.0", "Temporary authentication failure")
            }
        })
    }
}

/// PLAIN, with the credentials in the initial response or after `334 `.
async fn plain(io: &mut Io, initial: Option<String>) -> Result<(String, Vec<u8>), Abort> {
    let response = match initial {
        Some(initial) => decode_response(initial.as_bytes())?,
        None => challenge(io, "").await?,
    };
    let creds = parse_plain(&response)?;
    Ok((creds.login, creds.password))
}

/// LOGIN: user name (possibly the initial response), then password.
async fn login(io: &mut Io, initial: Option<String>) -> Result<(String, Vec<u8>), Abort> {
    let user = match initial {
        Some(initial) => decode_response(initial.as_bytes())?,
        None => challenge(io, LOGIN_USERNAME_CHALLENGE).await?,
    };
    let login = login_name(&user)?;
    let password = challenge(io, LOGIN_PASSWORD_CHALLENGE).await?;
    Ok((login, password))
}

/// Sends `334 text` and decodes the client's answer.
async fn challenge(io: &mut Io, text: &str) -> Result<Vec<u8>, Abort> {
    io.queue(&Reply::bare(334, text));
    match io.read_line(MAX_AUTH_LINE).await {
        Ok(Line::Complete { data, .. }) => Ok(decode_response(&data)?),
        Ok(Line::TooLong) => Err(Abort::Reply(Reply::new(
            500,
            "5.5.6",
            "Authentication exchange line is too long",
        ))),
        Ok(Line::Eof) => Err(Abort::Io(io::ErrorKind::UnexpectedEof.into())),
        Err(e) => Err(Abort::Io(e)),
    }
}
