//! The few header fields the pipeline reads from a message it is delivering:
//! trace fields for loop detection and the RFC 3834 fields that decide
//! whether an automatic reply may be sent.

/// Unfolded header fields of a message's header section; stops at the
/// blank line or at the end of `head` (at most one chunk is ever passed).
pub fn fields(head: &[u8]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(line);
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some((_, value)) = out.last_mut() {
                value.push(' ');
                value.push_str(text.trim());
            }
            continue;
        }
        if let Some((name, value)) = text.split_once(':') {
            out.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    out
}

/// The header fields of interest, looked up once per delivery.
#[derive(Debug, Default, Clone)]
pub struct Head {
    pub fields: Vec<(String, String)>,
}

impl Head {
    pub fn parse(head: &[u8]) -> Head {
        Head {
            fields: fields(head),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `Received:` fields: one per hop (RFC 5321 §6.3 loop detection).
    pub fn hops(&self) -> usize {
        self.all("received").count()
    }

    /// Whether a `Delivered-To:` field names `address`: this message has
    /// passed through that address before.
    pub fn delivered_to(&self, address: &str) -> bool {
        self.all("delivered-to").any(|v| {
            v.trim_matches(|c| c == '<' || c == '>')
                .eq_ignore_ascii_case(address)
        })
    }

    /// RFC 3834 §2 and common practice: automatic replies must not go to
    /// mailing lists, bulk mail or other automatic messages.
    pub fn is_automatic_or_list(&self) -> bool {
        let auto_submitted = self.get("auto-submitted").is_some_and(|v| {
            !v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("no")
        });
        let precedence = self.get("precedence").is_some_and(|v| {
            ["bulk", "junk", "list"]
                .iter()
                .any(|p| v.trim().eq_ignore_ascii_case(p))
        });
        let list = ["list-id", "list-unsubscribe", "list-post", "list-help"]
            .iter()
            .any(|n| self.get(n).is_some());
        auto_submitted || precedence || list || self.get("x-autoreply").is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_fields_are_joined_and_the_body_is_not_read() {
        let head = Head::parse(
            b"Received: from a\r\n\tby b\r\nReceived: from c\r\nSubject: Hi\r\n there\r\n\r\nReceived: body\r\n",
        );
        assert_eq!(head.hops(), 2);
        assert_eq!(head.get("subject"), Some("Hi there"));
        assert_eq!(head.get("SUBJECT"), Some("Hi there"));
    }

    #[test]
    fn delivered_to_matches_case_insensitively() {
        let head = Head::parse(b"Delivered-To: Info@Example.org\r\n\r\n");
        assert!(head.delivered_to("info@example.org"));
        assert!(!head.delivered_to("sales@example.org"));
    }

    #[test]
    fn lists_bulk_and_automatic_mail_are_recognised() {
        for h in [
            "List-Id: <x.example.org>",
            "List-Unsubscribe: <mailto:u@x>",
            "Precedence: bulk",
            "Precedence: junk",
            "Auto-Submitted: auto-replied",
            "Auto-Submitted: auto-generated; foo",
        ] {
            let head = Head::parse(format!("{h}\r\n\r\n").as_bytes());
            assert!(head.is_automatic_or_list(), "{h}");
        }
        for h in [
            "Auto-Submitted: no",
            "Precedence: first-class",
            "Subject: List-Id",
        ] {
            let head = Head::parse(format!("{h}\r\n\r\n").as_bytes());
            assert!(!head.is_automatic_or_list(), "{h}");
        }
    }
}
