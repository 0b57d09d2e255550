//! POP3 grammar (RFC 1939, RFC 2449, RFC 5034): command parsing, reply formatting,
//! byte-stuffing of multi-line responses. No I/O.

/// RFC 2449 §4: a command line is at most 255 octets; SASL responses (RFC 5034)
/// may be longer, so the session reads lines up to this.
pub const MAX_LINE: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    User(String),
    /// The rest of the line: passwords may contain spaces (RFC 1939 §7).
    Pass(Vec<u8>),
    Auth {
        mechanism: Option<String>,
        initial: Option<String>,
    },
    Capa,
    Stls,
    Stat,
    List(Option<u32>),
    Uidl(Option<u32>),
    Retr(u32),
    Top(u32, u32),
    Dele(u32),
    Noop,
    Rset,
    Quit,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    Unknown,
    Syntax(&'static str),
}

fn number(arg: Option<&[u8]>) -> Result<u32, ParseError> {
    let arg = arg.ok_or(ParseError::Syntax("message number required"))?;
    std::str::from_utf8(arg)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or(ParseError::Syntax("invalid number"))
}

fn text(arg: Option<&[u8]>, what: &'static str) -> Result<String, ParseError> {
    let arg = arg.ok_or(ParseError::Syntax(what))?;
    String::from_utf8(arg.to_vec()).map_err(|_| ParseError::Syntax("not UTF-8"))
}

/// Parses one command line (without its line ending). Keywords are
/// case-insensitive (RFC 1939 §3).
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let (keyword, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], Some(&line[i + 1..])),
        None => (line, None),
    };
    let mut args = rest
        .unwrap_or_default()
        .split(|&b| b == b' ')
        .filter(|a| !a.is_empty());
    let keyword = keyword.to_ascii_uppercase();
    let cmd = match &keyword[..] {
        b"USER" => Command::User(text(args.next(), "user name required")?),
        b"PASS" => Command::Pass(
            rest.filter(|r| !r.is_empty())
                .ok_or(ParseError::Syntax("password required"))?
                .to_vec(),
        ),
        b"AUTH" => Command::Auth {
            mechanism: args
                .next()
                .map(|m| String::from_utf8_lossy(m).to_ascii_uppercase()),
            initial: args.next().map(|i| String::from_utf8_lossy(i).into_owned()),
        },
        b"CAPA" => Command::Capa,
        b"STLS" => Command::Stls,
        b"STAT" => Command::Stat,
        b"LIST" => Command::List(args.next().map(|a| number(Some(a))).transpose()?),
        b"UIDL" => Command::Uidl(args.next().map(|a| number(Some(a))).transpose()?),
        b"RETR" => Command::Retr(number(args.next())?),
        b"TOP" => {
            let n = number(args.next())?;
            Command::Top(
                n,
                number(args.next()).map_err(|_| {
                    ParseError::Syntax("TOP needs a message number and a line count")
                })?,
            )
        }
        b"DELE" => Command::Dele(number(args.next())?),
        b"NOOP" => Command::Noop,
        b"RSET" => Command::Rset,
        b"QUIT" => Command::Quit,
        _ => return Err(ParseError::Unknown),
    };
    if args.next().is_some() && !matches!(cmd, Command::Pass(_)) {
        return Err(ParseError::Syntax("too many arguments"));
    }
    Ok(cmd)
}

/// Byte-stuffs a message for a multi-line response (RFC 1939 §3): a line that
/// starts with "." gets another one. Works across chunk boundaries.
#[derive(Debug)]
pub struct DotStuffer {
    at_line_start: bool,
    ends_with_crlf: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer {
            at_line_start: true,
            ends_with_crlf: true,
        }
    }
}

impl DotStuffer {
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + 16);
        for &b in input {
            if self.at_line_start && b == b'.' {
                out.push(b'.');
            }
            out.push(b);
            self.at_line_start = b == b'\n';
        }
        if let Some(&last) = input.last() {
            self.ends_with_crlf = last == b'\n';
        }
    }

    /// Ends the response: a final CRLF if the message lacked one, then ".".
    pub fn finish(self, out: &mut Vec<u8>) {
        if !self.ends_with_crlf {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// For TOP: passes the header, the empty line and `lines` lines of the body.
#[derive(Debug)]
pub struct TopFilter {
    in_body: bool,
    lines_left: u32,
    at_line_start: bool,
    done: bool,
}

impl TopFilter {
    pub fn new(lines: u32) -> Self {
        TopFilter {
            in_body: false,
            lines_left: lines,
            at_line_start: true,
            done: false,
        }
    }

    pub fn done(&self) -> bool {
        self.done
    }

    /// The part of `input` that belongs to the response.
    pub fn filter<'a>(&mut self, input: &'a [u8]) -> &'a [u8] {
        if self.done {
            return &[];
        }
        for (i, &b) in input.iter().enumerate() {
            if self.in_body && self.at_line_start && self.lines_left == 0 {
                self.done = true;
                return &input[..i];
            }
            if b == b'\n' {
                if self.in_body {
                    self.lines_left = self.lines_left.saturating_sub(1);
                } else if self.at_line_start {
                    // The empty line that ends the header (a lone LF or CRLF).
                    self.in_body = true;
                }
                self.at_line_start = true;
            } else if b != b'\r' {
                self.at_line_start = false;
            }
        }
        input
    }
}

/// A stable unique id per message (RFC 1939 §7 UIDL): UIDVALIDITY and UID never
/// repeat for another message of the folder, so clients that leave mail on the
/// server never download twice.
pub fn uidl(uidvalidity: u32, uid: u32) -> String {
    format!("{uidvalidity:08x}{uid:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_case_insensitively() {
        assert_eq!(
            parse(b"user anna@example.org"),
            Ok(Command::User("anna@example.org".into()))
        );
        assert_eq!(
            parse(b"PASS two words "),
            Ok(Command::Pass(b"two words ".to_vec()))
        );
        assert_eq!(parse(b"list"), Ok(Command::List(None)));
        assert_eq!(parse(b"LIST 3"), Ok(Command::List(Some(3))));
        assert_eq!(parse(b"Top 1 10"), Ok(Command::Top(1, 10)));
        assert_eq!(
            parse(b"AUTH PLAIN AGEAYg=="),
            Ok(Command::Auth {
                mechanism: Some("PLAIN".into()),
                initial: Some("AGEAYg==".into())
            })
        );
        assert_eq!(
            parse(b"AUTH"),
            Ok(Command::Auth {
                mechanism: None,
                initial: None
            })
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"\0\0\0",
            b"RETR",
            b"RETR x",
            b"RETR -1",
            b"RETR 99999999999",
            b"TOP 1",
            b"DELE 1 2",
            b"PASS",
            b"USER",
            b"\xff\xfe",
            b"LIST 1 2 3",
            b"RETR +1",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse(b"XYZZY"), Err(ParseError::Unknown));
    }

    fn stuff(chunks: &[&[u8]]) -> Vec<u8> {
        let mut s = DotStuffer::default();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        s.finish(&mut out);
        out
    }

    #[test]
    fn dot_stuffing_across_chunks() {
        let whole = stuff(&[b".hidden\r\nline\r\n..two\r\n.\r\nend"]);
        assert_eq!(whole, b"..hidden\r\nline\r\n...two\r\n..\r\nend\r\n.\r\n");
        let split = stuff(&[b".hid", b"den\r", b"\nline\r\n", b".", b".two\r\n.\r\nend"]);
        assert_eq!(split, whole);
        assert_eq!(stuff(&[b"a\r\n"]), b"a\r\n.\r\n");
        assert_eq!(stuff(&[]), b".\r\n");
    }

    #[test]
    fn top_stops_after_n_body_lines() {
        let msg = b"Subject: s\r\nFrom: f\r\n\r\nl1\r\nl2\r\nl3\r\n";
        let mut f = TopFilter::new(2);
        assert_eq!(f.filter(msg), b"Subject: s\r\nFrom: f\r\n\r\nl1\r\nl2\r\n");
        let mut f = TopFilter::new(0);
        assert_eq!(f.filter(msg), b"Subject: s\r\nFrom: f\r\n\r\n");
        // Byte by byte gives the same.
        let mut f = TopFilter::new(1);
        let mut out = Vec::new();
        for b in msg.chunks(1) {
            out.extend_from_slice(f.filter(b));
        }
        assert_eq!(out, b"Subject: s\r\nFrom: f\r\n\r\nl1\r\n");
        assert!(f.done());
        // More lines than the body has: the whole message.
        let mut f = TopFilter::new(100);
        assert_eq!(f.filter(msg), msg);
    }

    #[test]
    fn uidl_is_printable_and_unique() {
        assert_eq!(uidl(1, 2), "0000000100000002");
        assert_ne!(uidl(1, 23), uidl(12, 3));
    }
}
