//! Delivery status notifications (RFC 3464): the bounce a sender gets when
//! mail to some recipients failed for good, or a warning that it is delayed.
//! A `multipart/report` with a human-readable part, the machine-readable
//! `message/delivery-status` and the original header section.

use directory::rfc5322_date;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Failed,
    Delayed,
}

/// One recipient's line in the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DsnRecipient {
    pub address: String,
    /// The envelope recipient as it first reached us (ORCPT).
    pub original: String,
    /// RFC 3463 status, e.g. `5.1.1`.
    pub status: String,
    /// What went wrong, e.g. the remote server's reply.
    pub diagnostic: String,
    /// The server that gave the reply, if one did.
    pub remote_mta: Option<String>,
}

pub struct Dsn<'a> {
    pub action: Action,
    /// This server's name (Reporting-MTA, the From: address's domain).
    pub hostname: &'a str,
    /// Who the report goes to: the envelope sender of the original message.
    pub to: &'a str,
    pub recipients: &'a [DsnRecipient],
    /// When the original message arrived (seconds since the epoch).
    pub arrival: i64,
    pub now: i64,
    /// The original message's header section (without the blank line).
    pub original_head: &'a [u8],
    pub id: &'a str,
}

/// Keeps a header value on one line and free of anything that could start
/// a new field.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// The header section of `message`, at most `limit` bytes, ending in CRLF.
pub fn header_section(message: &[u8], limit: usize) -> &[u8] {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(message.len(), |p| p + 2);
    let mut cut = end.min(limit);
    // Never cut a line in half.
    if cut < end {
        cut = message[..cut]
            .windows(2)
            .rposition(|w| w == b"\r\n")
            .map_or(0, |p| p + 2);
    }
    &message[..cut]
}

impl Dsn<'_> {
    pub fn to_bytes(&self) -> Vec<u8> {
        let boundary = format!("{}/{}", self.id, self.hostname);
        let (subject, intro) = match self.action {
            Action::Failed => (
                "Undelivered Mail Returned to Sender",
                "Your message could not be delivered to one or more recipients.\r\n\
                 It has not been delivered and will not be retried.",
            ),
            Action::Delayed => (
                "Delayed Mail (still being retried)",
                "Your message has not been delivered yet to one or more recipients.\r\n\
                 The server keeps trying; you do not need to send it again.",
            ),
        };
        let mut out = String::new();
        out.push_str(&format!(
            "From: Mail Delivery System <MAILER-DAEMON@{host}>\r\n\
             To: <{to}>\r\n\
             Subject: {subject}\r\n\
             Date: {date}\r\n\
             Message-ID: <{id}.dsn@{host}>\r\n\
             Auto-Submitted: auto-replied\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status;\r\n\
             \tboundary=\"{boundary}\"\r\n\
             \r\n\
             This is a MIME-encapsulated message.\r\n\
             \r\n\
             --{boundary}\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Description: Notification\r\n\
             \r\n\
             This is the mail system at {host}.\r\n\
             \r\n\
             {intro}\r\n\
             \r\n",
            host = self.hostname,
            to = one_line(self.to),
            date = rfc5322_date(self.now),
            id = self.id,
        ));
        for r in self.recipients {
            out.push_str(&format!(
                "<{}>: {}\r\n",
                one_line(&r.address),
                one_line(&r.diagnostic)
            ));
        }
        out.push_str(&format!(
            "\r\n--{boundary}\r\n\
             Content-Type: message/delivery-status\r\n\
             Content-Description: Delivery report\r\n\
             \r\n\
             Reporting-MTA: dns; {host}\r\n\
             Arrival-Date: {arrival}\r\n",
            host = self.hostname,
            arrival = rfc5322_date(self.arrival),
        ));
        let action = match self.action {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
        };
        for r in self.recipients {
            out.push_str("\r\n");
            if !r.original.is_empty() {
                out.push_str(&format!(
                    "Original-Recipient: rfc822; {}\r\n",
                    one_line(&r.original)
                ));
            }
            out.push_str(&format!(
                "Final-Recipient: rfc822; {}\r\nAction: {action}\r\nStatus: {}\r\n",
                one_line(&r.address),
                one_line(&r.status)
            ));
            if let Some(mta) = &r.remote_mta {
                out.push_str(&format!("Remote-MTA: dns; {}\r\n", one_line(mta)));
            }
            out.push_str(&format!(
                "Diagnostic-Code: smtp; {}\r\n",
                one_line(&r.diagnostic)
            ));
        }
        out.push_str(&format!(
            "\r\n--{boundary}\r\n\
             Content-Type: text/rfc822-headers\r\n\
             Content-Description: Undelivered message headers\r\n\
             \r\n"
        ));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(header_section(self.original_head, 64 * 1024));
        bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bounce_is_a_parseable_multipart_report() {
        let recipients = [DsnRecipient {
            address: "bob@remote.example".into(),
            original: "bob@remote.example".into(),
            status: "5.1.1".into(),
            diagnostic: "550 5.1.1 <bob@remote.example>: no such user\r\nInjected: x".into(),
            remote_mta: Some("mx.remote.example".into()),
        }];
        let dsn = Dsn {
            action: Action::Failed,
            hostname: "mail.test",
            to: "alice@example.org",
            recipients: &recipients,
            arrival: 0,
            now: 60,
            original_head: b"Subject: hello\r\nFrom: alice@example.org\r\n\r\nbody text\r\n",
            id: "Q1",
        }
        .to_bytes();
        let text = String::from_utf8(dsn.clone()).unwrap();
        assert!(
            !text.contains("\r\nInjected:"),
            "diagnostic stays on one line"
        );
        assert!(
            !text.contains("body text"),
            "only the header section is returned"
        );
        let msg = mail_parser::MessageParser::new().parse(&dsn).unwrap();
        assert_eq!(msg.subject(), Some("Undelivered Mail Returned to Sender"));
        assert_eq!(msg.parts.len(), 4, "root and three parts");
        let status = String::from_utf8_lossy(msg.parts[2].contents());
        assert!(status.contains("Action: failed"), "{status}");
        assert!(status.contains("Status: 5.1.1"), "{status}");
        assert!(status.contains("Final-Recipient: rfc822; bob@remote.example"));
        assert!(status.contains("Remote-MTA: dns; mx.remote.example"));
        assert!(String::from_utf8_lossy(msg.parts[3].contents()).contains("Subject: hello"));
    }

    #[test]
    fn the_header_section_is_cut_at_a_line_boundary() {
        let m = b"A: 1\r\nB: 2\r\n\r\nbody";
        assert_eq!(header_section(m, 1000), b"A: 1\r\nB: 2\r\n");
        assert_eq!(header_section(m, 8), b"A: 1\r\n");
        assert_eq!(header_section(b"A: 1\r\nno end", 1000), b"A: 1\r\nno end");
    }
}
