//! Envelope paths: RFC 5321 §4.1.2 `Reverse-path` and `Forward-path`, with
//! RFC 6531 §3.3 (SMTPUTF8) letting UTF-8 into atoms, labels and quoted
//! strings.
//!
//! The parser only says what the client wrote; it never decides where mail
//! goes. In particular a `%`, `!` or quoted `@` in a local part is just a
//! local part (the directory decides whether such a mailbox exists), and a
//! source route is dropped (RFC 5321 §4.1.2 and Appendix C: "SHOULD ignore
//! the route"), so only the final mailbox is ever judged.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// RFC 5321 §4.5.3.1.1.
const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 §4.5.3.1.2.
const MAX_DOMAIN: usize = 255;
/// RFC 5321 §4.5.3.1.3, including the angle brackets.
const MAX_PATH: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Domain {
    /// A host name as written (not lowercased; lookups fold case).
    Name(String),
    /// An address literal, with its brackets: `[192.0.2.1]`, `[IPv6:::1]`.
    Literal(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// The local part in its shortest form: a quoted string that is also a
    /// valid dot-string loses its quotes (RFC 5321 §4.1.2 calls them the
    /// same), anything else keeps them.
    pub local: String,
    pub domain: Domain,
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.domain {
            Domain::Name(d) | Domain::Literal(d) => write!(f, "{}@{d}", self.local),
        }
    }
}

/// What RCPT TO names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardPath {
    Mailbox(Mailbox),
    /// `<Postmaster>` without a domain, which RFC 5321 §4.1.1.3 requires
    /// every server to accept.
    Postmaster,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Not `<...>` (or no closing bracket).
    Brackets,
    /// `<>` where a mailbox is required.
    Null,
    LocalPart,
    Domain,
    /// A second `@`, e.g. `user@other.tld@local`.
    ExtraAt,
    TooLong,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::Brackets => "address must be enclosed in <>",
            PathError::Null => "null path not allowed here",
            PathError::LocalPart => "invalid local part",
            PathError::Domain => "invalid domain",
            PathError::ExtraAt => "more than one @ outside quotes",
            PathError::TooLong => "address too long",
        })
    }
}

/// Parses `<mailbox>` or `<>` (returned as `None`) at the start of `input`
/// and returns it with what follows the `>`.
pub fn parse_reverse_path(input: &str) -> Result<(Option<Mailbox>, &str), PathError> {
    let (inner, rest) = bracketed(input)?;
    if inner.is_empty() {
        return Ok((None, rest));
    }
    Ok((Some(parse_mailbox(strip_route(inner)?)?), rest))
}

/// Parses `<mailbox>` or `<Postmaster>` at the start of `input`.
pub fn parse_forward_path(input: &str) -> Result<(ForwardPath, &str), PathError> {
    let (inner, rest) = bracketed(input)?;
    if inner.is_empty() {
        return Err(PathError::Null);
    }
    if inner.eq_ignore_ascii_case("postmaster") {
        return Ok((ForwardPath::Postmaster, rest));
    }
    Ok((
        ForwardPath::Mailbox(parse_mailbox(strip_route(inner)?)?),
        rest,
    ))
}

/// Splits `<inner>rest`. The closing bracket is the first `>` outside a
/// quoted string.
fn bracketed(input: &str) -> Result<(&str, &str), PathError> {
    let body = input.strip_prefix('<').ok_or(PathError::Brackets)?;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => {
                if i + 2 > MAX_PATH {
                    return Err(PathError::TooLong);
                }
                return Ok((&body[..i], &body[i + 1..]));
            }
            _ => {}
        }
    }
    Err(PathError::Brackets)
}

/// Drops an `A-d-l` source route (`@a.example,@b.example:`), after checking
/// that it is well formed.
fn strip_route(inner: &str) -> Result<&str, PathError> {
    if !inner.starts_with('@') {
        return Ok(inner);
    }
    let (route, mailbox) = inner.split_once(':').ok_or(PathError::Domain)?;
    for hop in route.split(',') {
        let domain = hop.strip_prefix('@').ok_or(PathError::Domain)?;
        parse_domain(domain)?;
    }
    Ok(mailbox)
}

fn parse_mailbox(input: &str) -> Result<Mailbox, PathError> {
    let (local, rest) = if input.starts_with('"') {
        quoted_local_part(input)?
    } else {
        let end = input.find('@').unwrap_or(input.len());
        let local = &input[..end];
        if !is_dot_string(local) {
            return Err(PathError::LocalPart);
        }
        (local.to_owned(), &input[end..])
    };
    let domain = rest.strip_prefix('@').ok_or(PathError::LocalPart)?;
    if domain.contains('@') {
        return Err(PathError::ExtraAt);
    }
    if local.len() > MAX_LOCAL_PART {
        return Err(PathError::TooLong);
    }
    Ok(Mailbox {
        local,
        domain: parse_domain(domain)?,
    })
}

/// RFC 5321 `Quoted-string`; returns the canonical local part and the rest.
fn quoted_local_part(input: &str) -> Result<(String, &str), PathError> {
    let mut content = String::new();
    let mut chars = input.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                let rest = &input[i + 1..];
                let local = if is_dot_string(&content) {
                    content
                } else {
                    requote(&content)
                };
                return Ok((local, rest));
            }
            // quoted-pairSMTP = %d92 %d32-126
            '\\' => match chars.next() {
                Some((_, q @ ' '..='~')) => content.push(q),
                _ => return Err(PathError::LocalPart),
            },
            // qtextSMTP = %d32-33 / %d35-91 / %d93-126, plus UTF-8.
            ' '..='~' => content.push(c),
            c if !c.is_ascii() && !c.is_control() => content.push(c),
            _ => return Err(PathError::LocalPart),
        }
    }
    Err(PathError::LocalPart)
}

fn requote(content: &str) -> String {
    let mut out = String::with_capacity(content.len() + 2);
    out.push('"');
    for c in content.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// RFC 5321 `Dot-string`: atoms of `atext` joined by single dots.
fn is_dot_string(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

/// RFC 5322 §3.2.3 `atext`, extended by RFC 6531 §3.3 with non-ASCII.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~".contains(c)
        || (!c.is_ascii() && !c.is_control())
}

/// RFC 5321 `Domain` or `address-literal`. A trailing dot is not part of
/// the grammar and is refused, so `user@local.` can never be mistaken for a
/// different, remote domain.
fn parse_domain(input: &str) -> Result<Domain, PathError> {
    if input.len() > MAX_DOMAIN {
        return Err(PathError::TooLong);
    }
    if let Some(literal) = input.strip_prefix('[') {
        let inner = literal.strip_suffix(']').ok_or(PathError::Domain)?;
        let valid = match inner.get(..5) {
            Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => {
                inner[5..].parse::<Ipv6Addr>().is_ok()
            }
            // General-address-literal tags are not registered for anything
            // we could deliver to.
            _ => inner.parse::<Ipv4Addr>().is_ok(),
        };
        return if valid {
            Ok(Domain::Literal(input.to_owned()))
        } else {
            Err(PathError::Domain)
        };
    }
    let label_ok = |label: &str| {
        let mut chars = label.chars();
        let letdig = |c: char| c.is_ascii_alphanumeric() || (!c.is_ascii() && !c.is_control());
        match (chars.next(), label.chars().last()) {
            (Some(first), Some(last)) => {
                letdig(first) && letdig(last) && label.chars().all(|c| letdig(c) || c == '-')
            }
            _ => false,
        }
    };
    if input.is_empty() || !input.split('.').all(label_ok) {
        return Err(PathError::Domain);
    }
    Ok(Domain::Name(input.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(input: &str) -> Result<Mailbox, PathError> {
        match parse_forward_path(input)? {
            (ForwardPath::Mailbox(m), "") => Ok(m),
            other => panic!("{input}: {other:?}"),
        }
    }

    fn name(local: &str, domain: &str) -> Mailbox {
        Mailbox {
            local: local.into(),
            domain: Domain::Name(domain.into()),
        }
    }

    #[test]
    fn plain_paths() {
        assert_eq!(
            mailbox("<user@example.org>"),
            Ok(name("user", "example.org"))
        );
        assert_eq!(
            mailbox("<John.Doe+tag@Example.ORG>"),
            Ok(name("John.Doe+tag", "Example.ORG"))
        );
        assert_eq!(parse_reverse_path("<>"), Ok((None, "")));
        assert_eq!(
            parse_reverse_path("<a@b.example> SIZE=10"),
            Ok((Some(name("a", "b.example")), " SIZE=10"))
        );
        assert_eq!(
            parse_forward_path("<PostMaster>"),
            Ok((ForwardPath::Postmaster, ""))
        );
        assert_eq!(parse_forward_path("<>"), Err(PathError::Null));
    }

    #[test]
    fn relay_tricks_parse_to_what_they_are() {
        // Percent hack: one local part, judged by the directory.
        assert_eq!(
            mailbox("<user%other.tld@local.example>"),
            Ok(name("user%other.tld", "local.example"))
        );
        assert_eq!(
            mailbox("<other.tld!user@local.example>"),
            Ok(name("other.tld!user", "local.example"))
        );
        // Source route: only the final mailbox counts.
        assert_eq!(
            mailbox("<@local.example:user@other.tld>"),
            Ok(name("user", "other.tld"))
        );
        assert_eq!(
            mailbox("<@a.example,@b.example:user@local.example>"),
            Ok(name("user", "local.example"))
        );
        // Quoted @ stays inside the (quoted) local part.
        assert_eq!(
            mailbox("<\"user@other.tld\"@local.example>"),
            Ok(name("\"user@other.tld\"", "local.example"))
        );
        assert_eq!(
            mailbox("<user@other.tld@local.example>"),
            Err(PathError::ExtraAt)
        );
        assert_eq!(mailbox("<user@local.example.>"), Err(PathError::Domain));
        assert_eq!(
            mailbox("<user@[127.0.0.1]>"),
            Ok(Mailbox {
                local: "user".into(),
                domain: Domain::Literal("[127.0.0.1]".into())
            })
        );
        assert!(mailbox("<user@[IPv6:::1]>").is_ok());
    }

    #[test]
    fn quoted_local_parts() {
        // Needless quotes go: the same mailbox as the dot-string.
        assert_eq!(
            mailbox("<\"user\"@x.example>"),
            Ok(name("user", "x.example"))
        );
        assert_eq!(
            mailbox("<\"john doe\"@x.example>"),
            Ok(name("\"john doe\"", "x.example"))
        );
        assert_eq!(
            mailbox("<\"a\\\"b\"@x.example>"),
            Ok(name("\"a\\\"b\"", "x.example"))
        );
        // `>` inside quotes does not close the path.
        assert_eq!(
            mailbox("<\"a>b\"@x.example>"),
            Ok(name("\"a>b\"", "x.example"))
        );
        assert_eq!(
            mailbox("<\"unterminated@x.example>"),
            Err(PathError::Brackets)
        );
        assert_eq!(mailbox("<\"a\0b\"@x.example>"), Err(PathError::LocalPart));
    }

    #[test]
    fn hostile_paths_are_errors() {
        let long_local = format!("<{}@x.example>", "a".repeat(65));
        let long_path = format!("<a@{}.example>", "b".repeat(300));
        let huge = format!("<{}>", "x".repeat(10_000));
        for bad in [
            "",
            "user@example.org",
            "<user@example.org",
            "<user>",
            "<@example.org>",
            "<user@>",
            "<.user@x.example>",
            "<user.@x.example>",
            "<us..er@x.example>",
            "<us er@x.example>",
            "<us\0er@x.example>",
            "<user@-x.example>",
            "<user@x-.example>",
            "<user@x..example>",
            "<user@x_y.example>",
            "<user@[300.0.0.1]>",
            "<user@[foo:bar]>",
            "<user@[127.0.0.1>",
            "<@:user@x.example>",
            "<@x.example user@y.example>",
            "<@bad..route:user@x.example>",
            &long_local,
            &long_path,
            &huge,
        ] {
            assert!(parse_forward_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn smtputf8_addresses() {
        let m = mailbox("<jörg@bücher.example>").unwrap();
        assert!(!m.to_string().is_ascii());
        assert_eq!(m.to_string(), "jörg@bücher.example");
    }
}
