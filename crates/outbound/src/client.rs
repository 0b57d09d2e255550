//! One SMTP transaction to one host: EHLO, STARTTLS when offered
//! (opportunistic, RFC 3207 / RFC 7435: certificates are not checked, as no
//! MTA can without DANE or MTA-STS), MAIL, one RCPT per recipient, DATA.
//! The answer is per recipient, as RFC 5321 §3.3 lets each RCPT succeed or
//! fail on its own.

use std::net::SocketAddr;
use std::time::Duration;

use mail_send::SmtpClient;
use mail_send::smtp::message::Parameters;
use smtp_proto::{EXT_START_TLS, Response};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsConnector;

/// A recipient's result at one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptResult {
    Delivered,
    /// 4xx or a broken connection: try again later.
    Temporary(String),
    /// 5xx: bounce, with the RFC 3463 status.
    Permanent {
        status: String,
        reply: String,
    },
}

/// The host could not be talked to at all: try the next one.
#[derive(Debug)]
pub struct Unreachable(pub String);

fn describe(r: &Response<String>) -> String {
    let esc = if r.esc[0] > 0 {
        format!(" {}.{}.{}", r.esc[0], r.esc[1], r.esc[2])
    } else {
        String::new()
    };
    let text = r.message.replace(['\r', '\n'], " ");
    format!("{}{esc} {}", r.code, text.trim())
}

/// The result a reply gives every recipient it applies to.
fn from_reply(r: &Response<String>) -> RcptResult {
    let reply = describe(r);
    if r.code >= 500 {
        let status = if r.esc[0] == 5 {
            format!("{}.{}.{}", r.esc[0], r.esc[1], r.esc[2])
        } else {
            "5.0.0".to_string()
        };
        RcptResult::Permanent { status, reply }
    } else {
        RcptResult::Temporary(reply)
    }
}

fn from_error(e: mail_send::Error) -> RcptResult {
    match e {
        mail_send::Error::UnexpectedReply(r) => from_reply(&r),
        other => RcptResult::Temporary(other.to_string()),
    }
}

pub struct Transaction<'a> {
    pub helo: &'a str,
    pub sender: &'a str,
    pub recipients: &'a [String],
    /// The whole message, CRLF line ends, as it goes after DATA.
    pub message: &'a [u8],
    pub timeout: Duration,
}

impl Transaction<'_> {
    /// Runs the transaction at `addr` (`host` names it for TLS and logs).
    pub async fn run(
        &self,
        addr: SocketAddr,
        host: &str,
        tls: &TlsConnector,
    ) -> Result<Vec<RcptResult>, Unreachable> {
        let unreachable = |e: mail_send::Error| Unreachable(format!("{host} [{addr}]: {e}"));
        let mut client = SmtpClient::connect(addr, self.timeout)
            .await
            .map_err(unreachable)?;
        let greeting = tokio::time::timeout(self.timeout, client.read())
            .await
            .map_err(|_| Unreachable(format!("{host} [{addr}]: no greeting")))?
            .map_err(unreachable)?;
        if greeting.code != 220 {
            return Err(Unreachable(format!(
                "{host} [{addr}] greeted with {}",
                describe(&greeting)
            )));
        }
        let ehlo = client.ehlo(self.helo).await.map_err(unreachable)?;
        if ehlo.has_capability(EXT_START_TLS) {
            let mut client = client
                .start_tls(tls, host.trim_start_matches("IPv6:"))
                .await
                .map_err(unreachable)?;
            client.ehlo(self.helo).await.map_err(unreachable)?;
            Ok(self.send(&mut client).await)
        } else {
            Ok(self.send(&mut client).await)
        }
    }

    async fn send<T: AsyncRead + AsyncWrite + Unpin>(
        &self,
        client: &mut SmtpClient<T>,
    ) -> Vec<RcptResult> {
        let none = Parameters::new();
        if let Err(e) = client.mail_from(self.sender, &none).await {
            let result = from_error(e);
            return vec![result; self.recipients.len()];
        }
        let mut results = Vec::with_capacity(self.recipients.len());
        let mut accepted = Vec::new();
        for (i, rcpt) in self.recipients.iter().enumerate() {
            match client.rcpt_to(rcpt, &none).await {
                Ok(()) => {
                    accepted.push(i);
                    results.push(RcptResult::Delivered);
                }
                Err(e) => results.push(from_error(e)),
            }
        }
        if accepted.is_empty() {
            let _ = client.rset().await;
        } else {
            // mail-send ends the data with CRLF.CRLF itself.
            let body = self.message.strip_suffix(b"\r\n").unwrap_or(self.message);
            if let Err(e) = client.data(body).await {
                let result = from_error(e);
                for i in accepted {
                    results[i] = result.clone();
                }
            }
        }
        // QUIT without waiting for its reply: the results are final, and each
        // round trip before the queue records them widens the window in which
        // a crash makes us send the message again.
        let _ = client.stream.write_all(b"QUIT\r\n").await;
        let _ = client.stream.flush().await;
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: u16, esc: [u8; 3], text: &str) -> Response<String> {
        Response {
            code,
            esc,
            message: text.to_string(),
        }
    }

    #[test]
    fn reply_classes_decide_retry_or_bounce() {
        assert_eq!(
            from_reply(&reply(550, [5, 1, 1], "no such user")),
            RcptResult::Permanent {
                status: "5.1.1".into(),
                reply: "550 5.1.1 no such user".into()
            }
        );
        assert_eq!(
            from_reply(&reply(554, [0, 0, 0], "go away\r\nnow")),
            RcptResult::Permanent {
                status: "5.0.0".into(),
                reply: "554 go away  now".into()
            }
        );
        assert_eq!(
            from_reply(&reply(451, [4, 3, 0], "later")),
            RcptResult::Temporary("451 4.3.0 later".into())
        );
    }
}
