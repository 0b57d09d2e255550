//! SMTP replies (RFC 5321 §4.2) with enhanced status codes (RFC 2034, RFC 3463).

use std::fmt::Write as _;

/// One reply, possibly multi-line. `status` is the enhanced status code;
/// RFC 2034 §3 puts it on 2xx, 4xx and 5xx replies, so it is `None` only for
/// the greeting, the EHLO response, 334 and 354.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub status: Option<&'static str>,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, status: &'static str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            status: Some(status),
            lines: vec![text.into()],
        }
    }

    /// A reply without an enhanced status code.
    pub fn bare(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            status: None,
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply; an empty `lines` gives one empty line.
    pub fn multiline(code: u16, status: Option<&'static str>, lines: Vec<String>) -> Reply {
        Reply {
            code,
            status,
            lines,
        }
    }

    /// Appends the wire form. Control characters in the text (which may come
    /// from a client or an error message) become spaces, so a reply can never
    /// turn into two.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let last = self.lines.len().saturating_sub(1);
        let empty = [String::new()];
        let lines: &[String] = if self.lines.is_empty() {
            &empty
        } else {
            &self.lines
        };
        let mut text = String::new();
        for (i, line) in lines.iter().enumerate() {
            text.clear();
            // RFC 5321 §4.2.1: "-" after the code on all but the last line.
            let sep = if i < last { '-' } else { ' ' };
            let _ = write!(text, "{:03}{sep}", self.code);
            if let Some(status) = self.status {
                text.push_str(status);
                if !line.is_empty() {
                    text.push(' ');
                }
            }
            text.extend(line.chars().map(|c| if c.is_control() { ' ' } else { c }));
            out.extend_from_slice(text.trim_end_matches(' ').as_bytes());
            if self.status.is_none() && line.is_empty() {
                // "334 " keeps its space: RFC 4954 §4 requires it.
                out.push(b' ');
            }
            out.extend_from_slice(b"\r\n");
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: &Reply) -> String {
        String::from_utf8(r.to_bytes()).unwrap()
    }

    #[test]
    fn single_line_with_status() {
        assert_eq!(
            text(&Reply::new(550, "5.7.1", "relay not permitted")),
            "550 5.7.1 relay not permitted\r\n"
        );
    }

    #[test]
    fn multiline_marks_all_but_last() {
        let r = Reply::multiline(
            250,
            None,
            vec!["mail.test".into(), "PIPELINING".into(), "SIZE 10".into()],
        );
        assert_eq!(
            text(&r),
            "250-mail.test\r\n250-PIPELINING\r\n250 SIZE 10\r\n"
        );
        let r = Reply::multiline(214, Some("2.0.0"), vec!["a".into(), "b".into()]);
        assert_eq!(text(&r), "214-2.0.0 a\r\n214 2.0.0 b\r\n");
    }

    #[test]
    fn sasl_challenge_keeps_space() {
        assert_eq!(text(&Reply::bare(334, "")), "334 \r\n");
        assert_eq!(
            text(&Reply::bare(334, "VXNlcm5hbWU6")),
            "334 VXNlcm5hbWU6\r\n"
        );
        assert_eq!(
            text(&Reply::multiline(250, None, vec![])),
            "250 \r\n",
            "never an empty reply"
        );
    }

    #[test]
    fn control_characters_cannot_split_a_reply() {
        let r = Reply::new(451, "4.3.0", "bad\r\n250 2.0.0 injected\0");
        assert_eq!(text(&r), "451 4.3.0 bad  250 2.0.0 injected\r\n");
    }
}
