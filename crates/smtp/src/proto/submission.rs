//! What a submission server adds to a message (RFC 6409 §8.2, §8.3): `Date:` and
//! `Message-ID:` when the client left them out. Needs the header section, which
//! the session holds back (bounded) until it has seen the empty line.

/// Header bytes held back at most; past this the header is judged as it is.
pub const MAX_HEAD: usize = 64 * 1024;

/// Collects the start of a message until the end of its header section.
#[derive(Debug, Default)]
pub struct HeaderScan {
    bytes: Vec<u8>,
    /// Where the search for the empty line goes on, so a client that sends a
    /// byte at a time costs linear time, not quadratic.
    searched: usize,
    complete: bool,
}

impl HeaderScan {
    pub fn push(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
        if self.complete {
            return;
        }
        let from = self.searched.saturating_sub(3);
        self.complete = self.bytes.starts_with(b"\r\n")
            || self.bytes[from..].windows(4).any(|w| w == b"\r\n\r\n")
            || self.bytes.len() >= MAX_HEAD;
        self.searched = self.bytes.len();
    }

    /// The header section is complete (or too long to wait for).
    pub fn complete(&self) -> bool {
        self.complete
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Whether the header section has a field called `name` (case-insensitive,
    /// at the start of a line, not in a folded continuation).
    fn has_field(&self, name: &str) -> bool {
        let end = self
            .bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(self.bytes.len(), |p| p + 2);
        self.bytes[..end].split(|&b| b == b'\n').any(|line| {
            line.len() > name.len()
                && line[..name.len()].eq_ignore_ascii_case(name.as_bytes())
                && line[name.len()..].trim_ascii_start().first() == Some(&b':')
        })
    }

    /// The fields to add before the message's own header.
    pub fn missing_fields(&self, id: &str, hostname: &str, date: &str) -> String {
        let mut out = String::new();
        if !self.has_field("Date") {
            out.push_str(&format!("Date: {date}\r\n"));
        }
        if !self.has_field("Message-ID") {
            out.push_str(&format!("Message-ID: <{id}@{hostname}>\r\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(bytes: &[u8]) -> HeaderScan {
        let mut s = HeaderScan::default();
        for chunk in bytes.chunks(3) {
            s.push(chunk);
        }
        s
    }

    #[test]
    fn adds_only_what_is_missing() {
        let date = "Mon, 23 Nov 2026 21:01:00 +0000";
        let none = scan(b"From: a@b\r\nSubject: x\r\n\r\nDate: in the body\r\n");
        assert!(none.complete());
        assert_eq!(
            none.missing_fields("ID1", "mail.test", date),
            format!("Date: {date}\r\nMessage-ID: <ID1@mail.test>\r\n")
        );
        let both =
            scan(b"date: Sun, 1 Nov 2026 00:00:00 +0000\r\nMESSAGE-ID : <x@y>\r\n\r\nbody\r\n");
        assert_eq!(both.missing_fields("ID1", "mail.test", date), "");
        // A folded line that mentions Date: is not a Date field.
        let folded = scan(b"Subject: x\r\n Date: no\r\nMessage-Id: <a@b>\r\n\r\n");
        assert_eq!(
            folded.missing_fields("I", "h", date),
            format!("Date: {date}\r\n")
        );
    }

    #[test]
    fn byte_at_a_time_finds_the_end_of_the_header() {
        let mut s = HeaderScan::default();
        for &b in b"Subject: x\r\nFrom: a@b\r\n" {
            s.push(&[b]);
            assert!(!s.complete());
        }
        s.push(b"\r");
        assert!(!s.complete());
        s.push(b"\n");
        assert!(s.complete());
    }

    #[test]
    fn completes_on_empty_line_or_cap() {
        assert!(!scan(b"From: a@b\r\nSubject: x\r\n").complete());
        assert!(scan(b"\r\nbody").complete(), "no header at all");
        let mut long = HeaderScan::default();
        long.push(&vec![b'x'; MAX_HEAD]);
        assert!(long.complete());
    }
}
