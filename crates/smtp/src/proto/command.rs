//! SMTP command lines (RFC 5321 §4.1.1) and the ESMTP parameters we offer:
//! SIZE (RFC 1870), BODY (RFC 6152), SMTPUTF8 (RFC 6531), AUTH (RFC 4954 §5).

use super::address::{ForwardPath, Mailbox, PathError, parse_forward_path, parse_reverse_path};
use super::reply::Reply;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    /// `from` is `None` for the null reverse-path `<>`.
    Mail {
        from: Option<Mailbox>,
        params: MailParams,
    },
    Rcpt(ForwardPath),
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    Help,
    StartTls,
    Auth {
        mechanism: String,
        /// Base64 as sent; `=` stands for an empty response (RFC 4954 §4).
        initial: Option<String>,
    },
    /// A command defined somewhere that this server does not implement.
    NotImplemented(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    SevenBit,
    EightBitMime,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    /// Declared size; absurd values saturate so they are "too big", not
    /// a syntax error.
    pub size: Option<u64>,
    pub body: Option<Body>,
    pub smtputf8: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// 500: not a command at all.
    Unrecognized,
    /// 501 with a description.
    Syntax(&'static str),
    /// 501 for a path in MAIL (`sender == true`) or RCPT.
    Path { sender: bool, error: PathError },
    /// 555 (RFC 5321 §4.1.1.11): a parameter we do not offer.
    UnsupportedParam(String),
}

impl CommandError {
    pub fn reply(&self) -> Reply {
        match self {
            CommandError::Unrecognized => Reply::new(500, "5.5.1", "Command unrecognized"),
            CommandError::Syntax(why) => Reply::new(501, "5.5.4", format!("Syntax error: {why}")),
            CommandError::Path {
                sender: true,
                error,
            } => Reply::new(501, "5.1.7", format!("Bad sender address syntax: {error}")),
            CommandError::Path {
                sender: false,
                error,
            } => Reply::new(
                501,
                "5.1.3",
                format!("Bad recipient address syntax: {error}"),
            ),
            CommandError::UnsupportedParam(name) => {
                Reply::new(555, "5.5.4", format!("Unsupported parameter {name}"))
            }
        }
    }
}

/// Parses one command line without its line ending.
pub fn parse_command(line: &[u8]) -> Result<Command, CommandError> {
    let end = line
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |i| i + 1);
    let line = &line[..end];
    let verb_end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let verb = line[..verb_end].to_ascii_uppercase();
    if !VERBS.contains(&verb.as_slice()) {
        return Err(CommandError::Unrecognized);
    }
    // Commands are text: a NUL or a bare CR in one is an attack or garbage,
    // and would otherwise reach logs and the Received header.
    if line.iter().any(|&b| b.is_ascii_control() && b != b'\t') {
        return Err(CommandError::Syntax("control characters in command"));
    }
    let Ok(args) = std::str::from_utf8(line.get(verb_end + 1..).unwrap_or_default()) else {
        return Err(CommandError::Syntax("command is not valid UTF-8"));
    };
    let no_args = |cmd: Command| {
        if args.trim().is_empty() {
            Ok(cmd)
        } else {
            Err(CommandError::Syntax("this command takes no arguments"))
        }
    };
    match verb.as_slice() {
        b"EHLO" => Ok(Command::Ehlo(hello_name(args)?)),
        b"HELO" => Ok(Command::Helo(hello_name(args)?)),
        b"MAIL" => parse_mail(args),
        b"RCPT" => parse_rcpt(args),
        b"DATA" => no_args(Command::Data),
        b"RSET" => no_args(Command::Rset),
        b"QUIT" => no_args(Command::Quit),
        b"STARTTLS" => no_args(Command::StartTls),
        b"NOOP" => Ok(Command::Noop),
        b"HELP" => Ok(Command::Help),
        b"VRFY" if args.trim().is_empty() => Err(CommandError::Syntax("VRFY needs an argument")),
        b"VRFY" => Ok(Command::Vrfy),
        b"EXPN" => Ok(Command::Expn),
        b"AUTH" => parse_auth(args),
        b"BDAT" => Ok(Command::NotImplemented("BDAT")),
        b"TURN" => Ok(Command::NotImplemented("TURN")),
        b"ETRN" => Ok(Command::NotImplemented("ETRN")),
        b"ATRN" => Ok(Command::NotImplemented("ATRN")),
        _ => Ok(Command::NotImplemented("SEND/SOML/SAML")),
    }
}

/// Every verb [`parse_command`] knows; anything else is "unrecognized".
const VERBS: &[&[u8]] = &[
    b"EHLO",
    b"HELO",
    b"MAIL",
    b"RCPT",
    b"DATA",
    b"RSET",
    b"QUIT",
    b"STARTTLS",
    b"NOOP",
    b"HELP",
    b"VRFY",
    b"EXPN",
    b"AUTH",
    b"BDAT",
    b"TURN",
    b"ETRN",
    b"ATRN",
    b"SEND",
    b"SOML",
    b"SAML",
];

/// The EHLO/HELO argument. RFC 5321 wants a domain or address literal, but
/// many clients send a bare host name or junk; we keep any single printable
/// token, since it only ends up in the Received header as a claim.
fn hello_name(args: &str) -> Result<String, CommandError> {
    let name = args.trim();
    if name.is_empty() {
        return Err(CommandError::Syntax("EHLO/HELO needs a host name"));
    }
    if name.len() > 255 || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CommandError::Syntax("invalid host name"));
    }
    Ok(name.to_owned())
}

/// Strips `keyword` (e.g. `FROM:`) case-insensitively, then any spaces:
/// Outlook and others send `MAIL FROM: <x>`.
fn after_keyword<'a>(args: &'a str, keyword: &str) -> Result<&'a str, CommandError> {
    match args.get(..keyword.len()) {
        Some(head) if head.eq_ignore_ascii_case(keyword) => {
            Ok(args[keyword.len()..].trim_start_matches(' '))
        }
        _ => Err(CommandError::Syntax(if keyword == "FROM:" {
            "use MAIL FROM:<address>"
        } else {
            "use RCPT TO:<address>"
        })),
    }
}

fn parse_mail(args: &str) -> Result<Command, CommandError> {
    let path = after_keyword(args, "FROM:")?;
    let (from, rest) = parse_reverse_path(path).map_err(|error| CommandError::Path {
        sender: true,
        error,
    })?;
    let mut params = MailParams::default();
    let mut seen = Vec::new();
    for (key, value) in parameters(rest)? {
        let upper = key.to_ascii_uppercase();
        if seen.contains(&upper) {
            return Err(CommandError::Syntax("duplicate parameter"));
        }
        match (upper.as_str(), value) {
            ("SIZE", Some(v)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                params.size = Some(v.parse().unwrap_or(u64::MAX));
            }
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("7BIT") => {
                params.body = Some(Body::SevenBit)
            }
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("8BITMIME") => {
                params.body = Some(Body::EightBitMime)
            }
            // BINARYMIME needs CHUNKING (RFC 3030), which is not offered.
            ("BODY", Some(v)) if !v.is_empty() => {
                return Err(CommandError::UnsupportedParam(format!(
                    "BODY={}",
                    v.to_ascii_uppercase()
                )));
            }
            ("SMTPUTF8", None) => params.smtputf8 = true,
            // RFC 4954 §5: the identity a trusted relay vouches for. We
            // trust no one's claim, so it is accepted and ignored.
            ("AUTH", Some(_)) => {}
            ("SIZE" | "BODY" | "SMTPUTF8" | "AUTH", _) => {
                return Err(CommandError::Syntax("invalid parameter value"));
            }
            _ => return Err(CommandError::UnsupportedParam(upper)),
        }
        seen.push(upper);
    }
    Ok(Command::Mail { from, params })
}

fn parse_rcpt(args: &str) -> Result<Command, CommandError> {
    let path = after_keyword(args, "TO:")?;
    let (to, rest) = parse_forward_path(path).map_err(|error| CommandError::Path {
        sender: false,
        error,
    })?;
    // No RCPT parameters are offered (DSN's NOTIFY/ORCPT would be).
    if let Some((key, _)) = parameters(rest)?.into_iter().next() {
        return Err(CommandError::UnsupportedParam(key.to_ascii_uppercase()));
    }
    Ok(Command::Rcpt(to))
}

/// RFC 5321 §4.1.2 `Mail-parameters`: `esmtp-keyword ["=" esmtp-value]`
/// separated by spaces, after at least one space.
fn parameters(rest: &str) -> Result<Vec<(&str, Option<&str>)>, CommandError> {
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    if !rest.starts_with(' ') {
        return Err(CommandError::Syntax("expected a space after the address"));
    }
    rest.split(' ')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (key, value) = match p.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (p, None),
            };
            let key_ok = key.starts_with(|c: char| c.is_ascii_alphanumeric())
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            // esmtp-value = 1*(%d33-60 / %d62-126), UTF-8 allowed by RFC 6531.
            let value_ok = value.is_none_or(|v| {
                !v.is_empty()
                    && v.chars()
                        .all(|c| c != '=' && (c.is_ascii_graphic() || !c.is_ascii()))
            });
            if key_ok && value_ok {
                Ok((key, value))
            } else {
                Err(CommandError::Syntax("malformed parameter"))
            }
        })
        .collect()
}

fn parse_auth(args: &str) -> Result<Command, CommandError> {
    let mut words = args.split(' ').filter(|w| !w.is_empty());
    let Some(mechanism) = words.next() else {
        return Err(CommandError::Syntax("AUTH needs a mechanism"));
    };
    let initial = words.next().map(str::to_owned);
    if words.next().is_some() {
        return Err(CommandError::Syntax("too many arguments to AUTH"));
    }
    Ok(Command::Auth {
        mechanism: mechanism.to_ascii_uppercase(),
        initial,
    })
}

#[cfg(test)]
mod tests {
    use super::super::address::Domain;
    use super::*;

    fn parse(s: &str) -> Result<Command, CommandError> {
        parse_command(s.as_bytes())
    }

    fn sender(local: &str, domain: &str) -> Option<Mailbox> {
        Some(Mailbox {
            local: local.into(),
            domain: Domain::Name(domain.into()),
        })
    }

    #[test]
    fn simple_commands() {
        assert_eq!(
            parse("EHLO client.example"),
            Ok(Command::Ehlo("client.example".into()))
        );
        assert_eq!(
            parse("helo [192.0.2.1]"),
            Ok(Command::Helo("[192.0.2.1]".into()))
        );
        assert_eq!(parse("DATA"), Ok(Command::Data));
        assert_eq!(parse("data  "), Ok(Command::Data));
        assert_eq!(parse("QUIT"), Ok(Command::Quit));
        assert_eq!(parse("RSET"), Ok(Command::Rset));
        assert_eq!(parse("NOOP whatever"), Ok(Command::Noop));
        assert_eq!(parse("HELP"), Ok(Command::Help));
        assert_eq!(parse("VRFY root"), Ok(Command::Vrfy));
        assert_eq!(parse("StartTLS"), Ok(Command::StartTls));
        assert_eq!(parse("BDAT 10 LAST"), Ok(Command::NotImplemented("BDAT")));
    }

    #[test]
    fn mail_from_variants() {
        assert_eq!(
            parse("MAIL FROM:<a@b.example>"),
            Ok(Command::Mail {
                from: sender("a", "b.example"),
                params: MailParams::default()
            })
        );
        // Outlook's space after the colon.
        assert!(matches!(
            parse("mail from: <a@b.example>"),
            Ok(Command::Mail { .. })
        ));
        assert_eq!(
            parse("MAIL FROM:<>"),
            Ok(Command::Mail {
                from: None,
                params: MailParams::default()
            })
        );
        assert_eq!(
            parse("MAIL FROM:<a@b.example> SIZE=1000 BODY=8bitmime SMTPUTF8 AUTH=<>"),
            Ok(Command::Mail {
                from: sender("a", "b.example"),
                params: MailParams {
                    size: Some(1000),
                    body: Some(Body::EightBitMime),
                    smtputf8: true
                }
            })
        );
        let Ok(Command::Mail { params, .. }) =
            parse("MAIL FROM:<a@b.example> SIZE=99999999999999999999999999")
        else {
            panic!()
        };
        assert_eq!(params.size, Some(u64::MAX));
    }

    #[test]
    fn mail_errors() {
        use CommandError::*;
        assert_eq!(
            parse("MAIL FROM:<a@b.example> RET=FULL"),
            Err(UnsupportedParam("RET".into()))
        );
        assert_eq!(
            parse("MAIL FROM:<a@b.example> BODY=BINARYMIME"),
            Err(UnsupportedParam("BODY=BINARYMIME".into()))
        );
        for bad in [
            "MAIL",
            "MAIL TO:<a@b.example>",
            "MAIL FROM:a@b.example",
            "MAIL FROM:<a@b.example>SIZE=1",
            "MAIL FROM:<a@b.example> SIZE=",
            "MAIL FROM:<a@b.example> SIZE=-1",
            "MAIL FROM:<a@b.example> SIZE=1 SIZE=2",
            "MAIL FROM:<a@b.example> =x",
            "MAIL FROM:<a@b.example> SMTPUTF8=yes",
            "MAIL FROM:<a@b@c.example>",
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.reply().code, 501, "{bad}: {err:?}");
        }
    }

    #[test]
    fn rcpt() {
        assert!(matches!(
            parse("RCPT TO:<a@b.example>"),
            Ok(Command::Rcpt(ForwardPath::Mailbox(_)))
        ));
        assert!(matches!(
            parse("rcpt to: <a@b.example>"),
            Ok(Command::Rcpt(_))
        ));
        assert_eq!(
            parse("RCPT TO:<postmaster>"),
            Ok(Command::Rcpt(ForwardPath::Postmaster))
        );
        assert_eq!(
            parse("RCPT TO:<a@b.example> NOTIFY=NEVER"),
            Err(CommandError::UnsupportedParam("NOTIFY".into()))
        );
        assert_eq!(parse("RCPT TO:<>").unwrap_err().reply().code, 501);
        assert_eq!(
            parse("RCPT TO:<a@b.example.>")
                .unwrap_err()
                .reply()
                .to_bytes()[..9],
            *b"501 5.1.3"
        );
    }

    #[test]
    fn auth() {
        assert_eq!(
            parse("AUTH plain dGVzdAB0ZXN0AHRlc3Q="),
            Ok(Command::Auth {
                mechanism: "PLAIN".into(),
                initial: Some("dGVzdAB0ZXN0AHRlc3Q=".into())
            })
        );
        assert_eq!(
            parse("AUTH LOGIN"),
            Ok(Command::Auth {
                mechanism: "LOGIN".into(),
                initial: None
            })
        );
        assert!(parse("AUTH").is_err());
        assert!(parse("AUTH PLAIN a b").is_err());
    }

    /// Pseudo-random lines over the characters that matter to the path and
    /// parameter grammar (including multi-byte UTF-8): errors, never panics.
    #[test]
    fn random_paths_never_panic() {
        let alphabet: Vec<char> = "<>@\":\\.[]%!, =\0\tabIPv6:0123456789ö€-".chars().collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut line = String::from(if x.is_multiple_of(2) {
                "MAIL FROM:"
            } else {
                "RCPT TO:"
            });
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for i in 0..(x % 40) {
                line.push(alphabet[((x >> (i % 48)) as usize + i as usize) % alphabet.len()]);
            }
            let _ = parse_command(line.as_bytes());
        }
    }

    #[test]
    fn garbage() {
        assert_eq!(parse(""), Err(CommandError::Unrecognized));
        assert_eq!(parse("FOO bar"), Err(CommandError::Unrecognized));
        assert_eq!(parse_command(b"\0\0\0"), Err(CommandError::Unrecognized));
        assert_eq!(parse_command(b"\xff\xfe"), Err(CommandError::Unrecognized));
        assert_eq!(
            parse_command(b"EHLO a\0b"),
            Err(CommandError::Syntax("control characters in command"))
        );
        assert_eq!(
            parse_command(b"EHLO a\rInjected: yes"),
            Err(CommandError::Syntax("control characters in command"))
        );
        assert!(parse_command(b"MAIL FROM:<\xff@x.example>").is_err());
        assert!(parse("EHLO").is_err());
        assert!(parse("DATA now").is_err());
        let long = format!("MAIL FROM:<{}@x.example>", "a".repeat(10_000));
        assert!(parse(&long).is_err());
        let long = "X".repeat(10_000);
        assert_eq!(parse(&long), Err(CommandError::Unrecognized));
        // Every byte value as a one-byte command, and a few random mixes:
        // errors, never panics.
        for b in 0..=255u8 {
            let _ = parse_command(&[b]);
            let _ = parse_command(&[
                b'M', b'A', b'I', b'L', b' ', b'F', b'R', b'O', b'M', b':', b'<', b,
            ]);
        }
    }
}
