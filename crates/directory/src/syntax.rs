//! Syntax of the names the directory stores: addresses, domains, relay hosts.
//!
//! Everything is normalized to lowercase before it is stored or looked up.
//! RFC 5321 §2.4 lets a server treat local parts case-sensitively, but also
//! says it SHOULD NOT rely on that; people do type `John.Doe@`, so local parts
//! are folded like domains and every lookup is case-insensitive.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::DirectoryError;

/// RFC 5321 §4.5.3.1.1.
const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 §4.5.3.1.3 limits a path to 256 octets including `<` and `>`.
const MAX_ADDRESS: usize = 254;
/// RFC 1035 §2.3.4 (255 octets on the wire is 253 characters of text).
const MAX_DOMAIN: usize = 253;
const MAX_LABEL: usize = 63;

/// A syntactically valid, lowercased address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Address {
    pub local: String,
    pub domain: String,
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// Parses `local@domain` where the local part is an RFC 5321 §4.1.2
/// `Dot-string` (RFC 5322 §3.2.3 dot-atom) and the domain a host name.
///
/// Refused on purpose: quoted local parts (`"john doe"@`), address literals
/// (`@[192.0.2.1]`), non-ASCII (SMTPUTF8, RFC 6531) and a trailing dot on the
/// domain. They are legal on the wire in places, but no mailbox we host needs
/// them and each one is a second spelling of an address to get wrong.
pub(crate) fn parse_address(input: &str) -> Result<Address, DirectoryError> {
    let invalid = |reason: &str| DirectoryError::InvalidAddress {
        address: input.to_owned(),
        reason: reason.to_owned(),
    };
    let Some((local, domain)) = input.rsplit_once('@') else {
        return Err(invalid("missing @"));
    };
    if input.len() > MAX_ADDRESS {
        return Err(invalid("longer than 254 characters (RFC 5321 §4.5.3.1.3)"));
    }
    check_local_part(local).map_err(invalid)?;
    let domain = parse_domain(domain, false).map_err(|err| match err {
        DirectoryError::InvalidDomain { reason, .. } => invalid(&format!("domain part: {reason}")),
        other => other,
    })?;
    Ok(Address {
        local: local.to_ascii_lowercase(),
        domain,
    })
}

fn check_local_part(local: &str) -> Result<(), &'static str> {
    if local.is_empty() {
        return Err("empty local part");
    }
    if local.len() > MAX_LOCAL_PART {
        return Err("local part longer than 64 characters (RFC 5321 §4.5.3.1.1)");
    }
    if local.starts_with('"') {
        return Err("quoted local parts are not supported");
    }
    if !local.is_ascii() {
        return Err("non-ASCII local parts (SMTPUTF8) are not supported");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("a dot may not start or end the local part or follow another dot");
    }
    if let Some(bad) = local.chars().find(|&c| c != '.' && !is_atext(c)) {
        return Err(match bad {
            ' ' => "spaces are not allowed",
            '@' => "more than one @",
            _ => "the local part may hold only letters, digits, dots and !#$%&'*+-/=?^_`{|}~",
        });
    }
    Ok(())
}

/// RFC 5322 §3.2.3 `atext`.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

/// Validates and lowercases a host name (RFC 1035 §2.3.1 labels as relaxed
/// by RFC 1123 §2.1, which RFC 5321 §4.1.2 `Domain` follows).
///
/// `strip_trailing_dot` accepts the absolute form `example.org.` and stores
/// it without the dot (for `domain add`); addresses never get this leniency.
pub(crate) fn parse_domain(
    input: &str,
    strip_trailing_dot: bool,
) -> Result<String, DirectoryError> {
    let invalid = |reason: &str| DirectoryError::InvalidDomain {
        domain: input.to_owned(),
        reason: reason.to_owned(),
    };
    let name = match input.strip_suffix('.') {
        Some(stripped) if strip_trailing_dot => stripped,
        Some(_) => return Err(invalid("trailing dot")),
        None => input,
    };
    if name.is_empty() {
        return Err(invalid("empty"));
    }
    if name.starts_with('[') {
        return Err(invalid("address literals are not supported"));
    }
    if !name.is_ascii() {
        return Err(invalid(
            "internationalized names must be given in their A-label (xn--) form",
        ));
    }
    if name.len() > MAX_DOMAIN {
        return Err(invalid("longer than 253 characters"));
    }
    let name = name.to_ascii_lowercase();
    for label in name.split('.') {
        if label.is_empty() {
            return Err(invalid("empty label (two dots in a row, or a leading dot)"));
        }
        if label.len() > MAX_LABEL {
            return Err(invalid("a label is longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(invalid("labels may hold only letters, digits and hyphens"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(invalid("a label may not start or end with a hyphen"));
        }
    }
    // RFC 3696 §2: a top-level domain is never all-numeric, which also keeps
    // IPv4 addresses from passing as names.
    if name
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(invalid("the last label is all digits"));
    }
    Ok(name)
}

/// Validates a relay target `host:port`, host being a name, an IPv4 address
/// or a bracketed IPv6 address. Returns it lowercased.
pub(crate) fn parse_relay_host(input: &str) -> Result<String, DirectoryError> {
    let invalid = |reason: &str| DirectoryError::InvalidRelayHost {
        value: input.to_owned(),
        reason: reason.to_owned(),
    };
    let Some((host, port)) = input.rsplit_once(':') else {
        return Err(invalid("missing :PORT"));
    };
    match port.parse::<u16>() {
        Ok(1..) if port.bytes().all(|b| b.is_ascii_digit()) => {}
        _ => return Err(invalid("the port must be a number from 1 to 65535")),
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<Ipv6Addr>()
            .map_err(|_| invalid("not a valid IPv6 address between the brackets"))?;
    } else if host.parse::<Ipv4Addr>().is_err() {
        if host.contains(':') {
            return Err(invalid(
                "write IPv6 addresses in brackets: [2001:db8::1]:25",
            ));
        }
        parse_domain(host, false).map_err(|err| match err {
            DirectoryError::InvalidDomain { reason, .. } => invalid(&format!("host: {reason}")),
            other => other,
        })?;
    }
    Ok(input.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_lowercases_addresses() {
        let address = parse_address("John.Doe+tag@Example.ORG").unwrap();
        assert_eq!(address.to_string(), "john.doe+tag@example.org");
        assert!(parse_address("a!#$%&'*+-/=?^_`{|}~@x.example").is_ok());
        assert!(parse_address(&format!("{}@example.org", "a".repeat(64))).is_ok());
    }

    #[test]
    fn rejects_bad_addresses() {
        let long_domain = format!("{}.org", vec!["a".repeat(63); 4].join("."));
        let long_address = format!(
            "{}@{}.org",
            "a".repeat(64),
            vec!["b".repeat(62); 3].join(".")
        );
        for bad in [
            "plain",
            "@example.org",
            ".a@example.org",
            "a.@example.org",
            "a..b@example.org",
            "a b@example.org",
            "\"a b\"@example.org",
            "a(b)@example.org",
            "a,b@example.org",
            "jörg@example.org",
            "a@b@example.org",
            "a@",
            "a@example.org.",
            "a@[192.0.2.1]",
            "a@-example.org",
            "a@example..org",
            "a@192.0.2.1",
            &format!("{}@example.org", "a".repeat(65)),
            &format!("a@{long_domain}"),
            &long_address,
        ] {
            let err = parse_address(bad).unwrap_err();
            assert!(
                matches!(err, DirectoryError::InvalidAddress { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn domains() {
        assert_eq!(parse_domain("Example.ORG.", true).unwrap(), "example.org");
        assert!(parse_domain("example.org.", false).is_err());
        assert_eq!(
            parse_domain("xn--bcher-kva.example", false).unwrap(),
            "xn--bcher-kva.example"
        );
        for bad in [
            "",
            ".",
            "bücher.example",
            "a_b.example",
            &"a".repeat(64),
            "1.2.3.4",
            "a-.org",
        ] {
            assert!(parse_domain(bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn relay_hosts() {
        assert_eq!(
            parse_relay_host("MX.example.net:25").unwrap(),
            "mx.example.net:25"
        );
        assert!(parse_relay_host("192.0.2.1:2525").is_ok());
        assert!(parse_relay_host("[2001:db8::1]:25").is_ok());
        for bad in [
            "mx.example.net",
            "mx.example.net:0",
            "mx.example.net:65536",
            "2001:db8::1:25",
            ":25",
            "mx.example.net:+25",
        ] {
            assert!(parse_relay_host(bad).is_err(), "{bad}");
        }
    }
}
