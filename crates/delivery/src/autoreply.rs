//! Automatic replies (RFC 3834): the out-of-office message an account sends
//! back to the envelope sender, built here and delivered like any message.

use base64::Engine;
use directory::rfc5322_date;

use crate::headers::Head;

/// Whether an automatic reply may go to `sender` for a message with `head`
/// (RFC 3834 §2): never to `<>`, to list or bulk mail, to automatic
/// messages, or to addresses that are themselves automatic.
pub fn may_reply(sender: &str, head: &Head) -> bool {
    let Some((local, _)) = sender.rsplit_once('@') else {
        return false;
    };
    let local = local.to_ascii_lowercase();
    let automatic_sender = local == "mailer-daemon"
        || local == "postmaster"
        || local.starts_with("owner-")
        || local.ends_with("-request")
        || local.starts_with("bounce")
        || local.starts_with("noreply")
        || local.starts_with("no-reply")
        || local.starts_with("srs0=")
        || local.starts_with("srs1=");
    !automatic_sender && !head.is_automatic_or_list()
}

/// `text` as an RFC 2047 encoded-word when it is not plain ASCII.
fn encode_word(text: &str) -> String {
    if text.is_ascii() {
        text.to_string()
    } else {
        format!(
            "=?utf-8?b?{}?=",
            base64::engine::general_purpose::STANDARD.encode(text)
        )
    }
}

/// The subject prefix, encoded if needed, with its trailing space kept
/// outside the encoded-word (RFC 2047 §6.2 drops space between words).
fn encode_prefix(prefix: &str) -> String {
    let word = prefix.trim_end();
    format!("{}{}", encode_word(word), &prefix[word.len()..])
}

/// Base64 body lines of at most 76 characters (RFC 2045 §6.8).
fn base64_lines(text: &str) -> String {
    let normalized = text.replace("\r\n", "\n").replace('\n', "\r\n");
    let encoded = base64::engine::general_purpose::STANDARD.encode(normalized);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 38);
    for line in encoded.as_bytes().chunks(76) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push_str("\r\n");
    }
    out
}

fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

pub struct AutoReply<'a> {
    /// The account's address: the reply's From.
    pub from: &'a str,
    /// The envelope sender of the original: the reply's only recipient.
    pub to: &'a str,
    pub subject_prefix: &'a str,
    pub body: &'a str,
    pub original: &'a Head,
    pub hostname: &'a str,
    pub id: &'a str,
    pub now: i64,
}

impl AutoReply<'_> {
    pub fn to_bytes(&self) -> Vec<u8> {
        let subject = self.original.get("subject").unwrap_or("");
        let mut out = format!(
            "From: <{from}>\r\n\
             To: <{to}>\r\n\
             Subject: {prefix}{subject}\r\n\
             Date: {date}\r\n\
             Message-ID: <{id}.auto@{host}>\r\n\
             Auto-Submitted: auto-replied\r\n",
            from = one_line(self.from),
            to = one_line(self.to),
            prefix = encode_prefix(self.subject_prefix),
            subject = one_line(subject),
            date = rfc5322_date(self.now),
            id = self.id,
            host = self.hostname,
        );
        if let Some(message_id) = self.original.get("message-id").map(one_line) {
            let references = match self.original.get("references").map(one_line) {
                Some(refs) => format!("{refs} {message_id}"),
                None => message_id.clone(),
            };
            out.push_str(&format!(
                "In-Reply-To: {message_id}\r\nReferences: {references}\r\n"
            ));
        }
        out.push_str(
            "MIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: base64\r\n\
             \r\n",
        );
        out.push_str(&base64_lines(self.body));
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_carry_rfc3834_fields_and_thread() {
        let head =
            Head::parse(b"Subject: Meeting\r\nMessage-ID: <m1@x>\r\nReferences: <m0@x>\r\n\r\n");
        let reply = AutoReply {
            from: "anna@example.org",
            to: "bob@remote.example",
            subject_prefix: "Abwesend: ",
            body: "Ich bin bis Montag nicht im Büro.\nGrüße",
            original: &head,
            hostname: "mail.test",
            id: "A1",
            now: 0,
        }
        .to_bytes();
        let msg = mail_parser::MessageParser::new().parse(&reply).unwrap();
        assert_eq!(msg.subject(), Some("Abwesend: Meeting"));
        assert_eq!(
            msg.header_raw("Auto-Submitted").map(str::trim),
            Some("auto-replied")
        );
        assert_eq!(msg.in_reply_to().as_text(), Some("m1@x"));
        assert_eq!(
            msg.body_text(0).as_deref(),
            Some("Ich bin bis Montag nicht im Büro.\r\nGrüße")
        );
        let umlaut = AutoReply {
            subject_prefix: "Abwesenheitsnotiz für: ",
            ..AutoReply {
                from: "a@b",
                to: "c@d",
                subject_prefix: "",
                body: "x",
                original: &head,
                hostname: "h",
                id: "1",
                now: 0,
            }
        }
        .to_bytes();
        let msg = mail_parser::MessageParser::new().parse(&umlaut).unwrap();
        assert_eq!(msg.subject(), Some("Abwesenheitsnotiz für: Meeting"));
    }

    #[test]
    fn automatic_senders_and_list_mail_get_no_reply() {
        let plain = Head::parse(b"Subject: hi\r\n\r\n");
        assert!(may_reply("bob@remote.example", &plain));
        for sender in [
            "",
            "MAILER-DAEMON@x.example",
            "owner-list@x.example",
            "list-request@x.example",
            "noreply@x.example",
        ] {
            assert!(!may_reply(sender, &plain), "{sender}");
        }
        let list = Head::parse(b"List-Id: <l.x.example>\r\n\r\n");
        assert!(!may_reply("bob@remote.example", &list));
    }
}
