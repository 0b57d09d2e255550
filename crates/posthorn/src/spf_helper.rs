//! `posthorn spf build|check`: an SPF assistant like a hosting panel's, run
//! locally (no daemon, no store). `check` explains in plain words what a
//! receiving server would object to (RFC 7208), and counts the terms that cost
//! DNS lookups against the limit of 10 (§4.6.4).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use mail_auth::common::parse::TxtRecordParser;

use crate::cli::SpfCmd;

/// RFC 7208 §4.6.4: more than 10 terms that query DNS is a permanent error.
pub const MAX_LOOKUPS: usize = 10;

/// What `check` found: errors make receivers treat the record as broken
/// (`permerror`), warnings are legal but probably not what was meant.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub lookups: usize,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

impl Report {
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        for e in &self.errors {
            out.push(format!("error: {e}"));
        }
        for w in &self.warnings {
            out.push(format!("warning: {w}"));
        }
        out.push(format!(
            "{} DNS lookups of at most {MAX_LOOKUPS}",
            self.lookups
        ));
        if self.errors.is_empty() {
            out.push("record is valid".into());
        }
        out.join("\n")
    }
}

/// Runs `spf build` or `spf check`; the text is printed on success.
pub fn run(cmd: SpfCmd) -> Result<String, String> {
    match cmd {
        SpfCmd::Build {
            mx,
            a,
            ip4,
            ip6,
            include,
            strict: _,
            soft,
        } => {
            let record = build(&Build {
                mx,
                a,
                ip4,
                ip6,
                include,
                soft,
            })?;
            Ok(record)
        }
        SpfCmd::Check { record } => {
            let report = check(&record);
            if report.errors.is_empty() {
                Ok(report.render())
            } else {
                Err(format!("the SPF record is broken\n{}", report.render()))
            }
        }
    }
}

/// What `spf build` was asked for.
#[derive(Debug, Default)]
pub struct Build {
    pub mx: bool,
    pub a: bool,
    pub ip4: Vec<String>,
    pub ip6: Vec<String>,
    pub include: Vec<String>,
    /// `~all` (softfail) instead of `-all`.
    pub soft: bool,
}

/// The record for `b`, checked: a record `check` calls broken is refused.
pub fn build(b: &Build) -> Result<String, String> {
    let mut terms = vec!["v=spf1".to_string()];
    if b.mx {
        terms.push("mx".into());
    }
    if b.a {
        terms.push("a".into());
    }
    for net in &b.ip4 {
        check_ip4(net).map_err(|e| format!("--ip4 {net}: {e}"))?;
        terms.push(format!("ip4:{net}"));
    }
    for net in &b.ip6 {
        check_ip6(net).map_err(|e| format!("--ip6 {net}: {e}"))?;
        terms.push(format!("ip6:{net}"));
    }
    for domain in &b.include {
        check_domain_spec(domain).map_err(|e| format!("--include {domain}: {e}"))?;
        terms.push(format!("include:{domain}"));
    }
    terms.push(if b.soft { "~all" } else { "-all" }.into());
    let record = terms.join(" ");
    let report = check(&record);
    if !report.errors.is_empty() {
        return Err(report.errors.join("\n"));
    }
    Ok(record)
}

/// The record as published: quotes from a zone file are removed and
/// `"part one" "part two"` joined, as receivers join TXT strings.
fn unquote(text: &str) -> String {
    let t = text.trim();
    if !t.starts_with('"') {
        return t.to_string();
    }
    let mut out = String::new();
    let mut inside = false;
    for c in t.chars() {
        match c {
            '"' => inside = !inside,
            c if inside => out.push(c),
            _ => {}
        }
    }
    out
}

/// Checks a record's syntax, the lookup limit and common mistakes.
pub fn check(text: &str) -> Report {
    let record = unquote(text);
    let mut r = Report::default();
    let mut terms = record.split(' ').filter(|t| !t.is_empty());
    match terms.next() {
        Some(v) if v.eq_ignore_ascii_case("v=spf1") => {}
        Some(v) if v.to_ascii_lowercase().starts_with("v=spf") => {
            r.errors.push(format!(
                "the record must start with \"v=spf1\", not \"{v}\" (there is no other SPF version)"
            ));
            return r;
        }
        _ => {
            r.errors.push(
                "the record must start with \"v=spf1\": receivers ignore TXT records without it"
                    .into(),
            );
            return r;
        }
    }
    if record.contains(['\t', '\r', '\n']) {
        r.errors
            .push("terms must be separated by single spaces, not tabs or line breaks".into());
    }
    let (mut redirect, mut exp, mut all_seen) = (false, false, false);
    let mut mechanisms = 0;
    for term in terms {
        if let Some((name, value)) = modifier(term) {
            match name.to_ascii_lowercase().as_str() {
                "redirect" => {
                    if redirect {
                        r.errors
                            .push("\"redirect=\" appears twice; at most one is allowed".into());
                    }
                    redirect = true;
                    r.lookups += 1;
                    domain_arg(&mut r, term, value);
                }
                "exp" => {
                    if exp {
                        r.errors
                            .push("\"exp=\" appears twice; at most one is allowed".into());
                    }
                    exp = true;
                    domain_arg(&mut r, term, value);
                }
                "include" | "a" | "mx" | "ptr" | "exists" | "ip4" | "ip6" => {
                    r.errors.push(format!(
                        "\"{term}\": a mechanism takes its value after a colon: \"{name}:{value}\""
                    ))
                }
                _ => r.warnings.push(format!(
                    "\"{term}\" is an unknown modifier; receivers ignore it"
                )),
            }
            continue;
        }
        mechanisms += 1;
        if all_seen {
            r.warnings.push(format!(
                "\"{term}\" comes after \"all\" and is never used: \"all\" matches every sender"
            ));
        }
        directive(&mut r, term, &mut all_seen);
    }
    if r.lookups > MAX_LOOKUPS {
        r.errors.push(format!(
            "{} terms need DNS lookups (include, a, mx, ptr, exists, redirect); receivers stop at {MAX_LOOKUPS} and treat the record as broken: replace some with ip4:/ip6: ranges",
            r.lookups
        ));
    }
    if redirect && all_seen {
        r.warnings
            .push("\"redirect=\" is ignored because the record has an \"all\"".into());
    }
    if !redirect && !all_seen {
        r.warnings.push(
            "no \"all\" at the end: mail from anywhere else gets a neutral result; end with \"-all\" (or \"~all\" while testing)"
                .into(),
        );
    }
    if mechanisms == 0 && !redirect {
        r.warnings
            .push("no mechanism: nobody is allowed to send mail for this domain".into());
    }
    if record.len() > 450 {
        r.warnings.push(format!(
            "the record is {} bytes; above 450 the DNS answer may not fit one UDP packet (RFC 7208 §3.4)",
            record.len()
        ));
    }
    if r.errors.is_empty() && mail_auth::spf::Spf::parse(record.as_bytes()).is_err() {
        r.errors
            .push("the record does not parse as SPF (mail-auth's parser refuses it)".into());
    }
    r
}

/// `name=value` where name is a modifier name (RFC 7208 §12: ALPHA
/// *( ALPHA / DIGIT / "-" / "_" / "." )).
fn modifier(term: &str) -> Option<(&str, &str)> {
    let (name, value) = term.split_once('=')?;
    let mut chars = name.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    .then_some((name, value))
}

fn domain_arg(r: &mut Report, term: &str, value: &str) {
    if let Err(e) = check_domain_spec(value) {
        r.errors.push(format!("\"{term}\": {e}"));
    }
}

fn directive(r: &mut Report, term: &str, all_seen: &mut bool) {
    let (qualifier, rest) = match term.as_bytes().first() {
        Some(b'+' | b'-' | b'~' | b'?') => term.split_at(1),
        _ => ("", term),
    };
    let (name, arg) = match rest.find([':', '/']) {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    let arg_after_colon = arg.and_then(|a| a.strip_prefix(':'));
    match name.to_ascii_lowercase().as_str() {
        "all" => {
            if arg.is_some() {
                r.errors
                    .push(format!("\"{term}\": \"all\" takes no value"));
            }
            if matches!(qualifier, "" | "+") {
                r.warnings.push(format!(
                    "\"{term}\" lets every server on the internet send mail as this domain; use \"-all\" or \"~all\""
                ));
            }
            *all_seen = true;
        }
        "include" | "exists" => {
            r.lookups += 1;
            match arg_after_colon {
                Some(domain) => domain_arg(r, term, domain),
                None => r.errors.push(format!(
                    "\"{term}\": {name} needs a domain, as in \"{name}:_spf.example.net\""
                )),
            }
        }
        "a" | "mx" => {
            r.lookups += 1;
            let (domain, cidr) = match arg {
                None => (None, None),
                Some(a) => match a.strip_prefix(':') {
                    Some(d) => match d.find('/') {
                        Some(i) => (Some(&d[..i]), Some(&d[i..])),
                        None => (Some(d), None),
                    },
                    None => (None, Some(a)),
                },
            };
            if let Some(d) = domain {
                domain_arg(r, term, d);
            }
            if let Some(c) = cidr
                && let Err(e) = dual_cidr(c)
            {
                r.errors.push(format!("\"{term}\": {e}"));
            }
        }
        "ptr" => {
            r.lookups += 1;
            if let Some(d) = arg_after_colon {
                domain_arg(r, term, d);
            }
            r.warnings.push(format!(
                "\"{term}\": ptr is slow and unreliable, and RFC 7208 §5.5 says not to use it"
            ));
        }
        "ip4" | "ip6" => {
            let (v6, example) = if name.eq_ignore_ascii_case("ip6") {
                (true, "ip6:2001:db8::/32")
            } else {
                (false, "ip4:203.0.113.0/24")
            };
            match arg_after_colon.map(|net| check_network(net, v6)) {
                Some(Ok(())) => {}
                Some(Err(e)) => r.errors.push(format!("\"{term}\": {e}")),
                None => r.errors.push(format!(
                    "\"{term}\": {name} needs an address, as in \"{example}\""
                )),
            }
        }
        "ipv4" | "ipv6" => r.errors.push(format!(
            "\"{term}\": the mechanism is spelled \"{}\"",
            if name.eq_ignore_ascii_case("ipv4") {
                "ip4"
            } else {
                "ip6"
            }
        )),
        _ => r.errors.push(format!(
            "\"{term}\" is not an SPF mechanism (all, include, a, mx, ptr, ip4, ip6, exists) nor a modifier (redirect=, exp=)"
        )),
    }
}

fn prefix(text: &str, max: u8) -> Result<u8, String> {
    match text.parse::<u8>() {
        Ok(n) if n <= max && !text.starts_with('0') || text == "0" => Ok(n.min(max)),
        _ => Err(format!(
            "\"/{text}\" is not a prefix length from 0 to {max}"
        )),
    }
}

/// `/24`, `//64` or `/24//64` after a or mx.
fn dual_cidr(text: &str) -> Result<(), String> {
    let (v4, v6) = match text.split_once("//") {
        Some((v4, v6)) => (v4, Some(v6)),
        None => (text, None),
    };
    if let Some(n) = v4.strip_prefix('/') {
        prefix(n, 32)?;
    } else if !v4.is_empty() {
        return Err(format!("\"{text}\" is not a prefix length"));
    }
    if let Some(n) = v6 {
        prefix(n, 128)?;
    }
    Ok(())
}

/// An IPv4 address or network, e.g. `203.0.113.0/24`.
pub fn check_ip4(text: &str) -> Result<(), String> {
    check_network(text, false)
}

/// An IPv6 address or network, e.g. `2001:db8::/32`.
pub fn check_ip6(text: &str) -> Result<(), String> {
    check_network(text, true)
}

/// An address with an optional prefix length whose host bits are zero.
fn check_network(text: &str, v6: bool) -> Result<(), String> {
    let (bits, family) = if v6 { (128, "IPv6") } else { (32, "IPv4") };
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, prefix(l, bits)?),
        None => (text, bits),
    };
    let ip = addr
        .parse::<IpAddr>()
        .ok()
        .filter(|ip| ip.is_ipv6() == v6)
        .ok_or_else(|| format!("\"{addr}\" is not an {family} address"))?;
    let value = match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    // The host part: the low `bits - len` bits.
    let host = u128::MAX
        .checked_shr(128 - u32::from(bits) + u32::from(len))
        .unwrap_or(0);
    if value & host != 0 {
        let net = value & !host;
        let net = if v6 {
            IpAddr::V6(Ipv6Addr::from(net))
        } else {
            IpAddr::V4(Ipv4Addr::from(u32::try_from(net).unwrap_or(0)))
        };
        return Err(format!(
            "{addr} has bits set past /{len}; the network is {net}/{len}"
        ));
    }
    Ok(())
}

/// A domain, possibly with macros (`%{i}`, `%{d}`...; RFC 7208 §7).
pub fn check_domain_spec(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("the domain is empty".into());
    }
    if text.len() > 253 && !text.contains('%') {
        return Err("the domain is longer than 253 characters".into());
    }
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('%' | '_' | '-') => {}
                Some('{') => {
                    let letter = chars.next();
                    if !matches!(letter, Some(l) if "slodiphvcrtSLODIPHVCRT".contains(l)) {
                        return Err("a macro must be %{s}, %{l}, %{o}, %{d}, %{i}, %{p}, %{h} or %{v} (with optional digits, r and delimiters)".into());
                    }
                    if !chars.by_ref().any(|c| c == '}') {
                        return Err("a macro is missing its closing \"}\"".into());
                    }
                }
                _ => {
                    return Err("\"%\" starts a macro: write \"%%\" for a percent sign".into());
                }
            }
        } else if !c.is_ascii_graphic() {
            return Err(format!("{c:?} cannot appear in a domain"));
        }
    }
    if !text.contains('%') {
        let labels: Vec<&str> = text.trim_end_matches('.').split('.').collect();
        if labels.len() < 2 {
            return Err(format!(
                "\"{text}\" is not a full domain name (e.g. _spf.example.net)"
            ));
        }
        for l in labels {
            if l.is_empty() || l.len() > 63 {
                return Err(format!(
                    "\"{text}\" has an empty or over-long (more than 63 characters) label"
                ));
            }
            if !l
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(format!("\"{text}\" has characters not allowed in a domain"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_record_is_valid_with_one_lookup() {
        let r = check("v=spf1 mx -all");
        assert_eq!(r.errors, Vec::<String>::new());
        assert_eq!(r.warnings, Vec::<String>::new());
        assert_eq!(r.lookups, 1);
    }

    #[test]
    fn quoted_and_split_zone_text_is_joined() {
        let r = check(r#""v=spf1 ip4:192.0.2.0/24 " "include:_spf.example.net -all""#);
        assert!(r.errors.is_empty(), "{r:?}");
        assert_eq!(r.lookups, 1);
    }

    #[test]
    fn eleven_lookups_break_the_record() {
        let includes: Vec<String> = (0..11)
            .map(|i| format!("include:s{i}.example.net"))
            .collect();
        let r = check(&format!("v=spf1 {} -all", includes.join(" ")));
        assert_eq!(r.lookups, 11);
        assert!(
            r.errors.iter().any(|e| e.contains("receivers stop at 10")),
            "{r:?}"
        );
        let r = check(&format!("v=spf1 {} -all", includes[..10].join(" ")));
        assert!(r.errors.is_empty(), "{r:?}");
    }

    #[test]
    fn every_lookup_term_counts() {
        let r = check(
            "v=spf1 a mx/24 ptr exists:%{i}.bl.example.net include:x.example.net a:b.example.net/24//64 ip4:192.0.2.1 ip6:2001:db8::/32 redirect=r.example.net",
        );
        assert_eq!(r.lookups, 7, "{r:?}");
        assert!(r.errors.is_empty(), "{r:?}");
    }

    #[test]
    fn mistakes_are_explained() {
        let cases = [
            ("v=spf2 mx -all", "must start with \"v=spf1\""),
            ("mx -all", "must start with \"v=spf1\""),
            ("v=spf1 ipv4:192.0.2.1 -all", "spelled \"ip4\""),
            ("v=spf1 ip4:192.0.2.300 -all", "not an IPv4 address"),
            ("v=spf1 ip4:192.0.2.0/33 -all", "prefix length from 0 to 32"),
            (
                "v=spf1 ip4:192.0.2.1/24 -all",
                "the network is 192.0.2.0/24",
            ),
            ("v=spf1 ip6:2001:db8::1/129 -all", "0 to 128"),
            ("v=spf1 include -all", "needs a domain"),
            ("v=spf1 include=x.example.net -all", "after a colon"),
            ("v=spf1 include:localhost -all", "not a full domain"),
            ("v=spf1 mx all:foo", "takes no value"),
            ("v=spf1 foo -all", "not an SPF mechanism"),
            (
                "v=spf1 redirect=a.example.net redirect=b.example.net",
                "twice",
            ),
            ("v=spf1 exists:%{x}.example.net -all", "a macro must be"),
        ];
        for (record, needle) in cases {
            let r = check(record);
            assert!(
                r.errors.iter().any(|e| e.contains(needle)),
                "{record}: {r:?}"
            );
        }
    }

    #[test]
    fn legal_but_risky_gives_warnings_only() {
        for (record, needle) in [
            ("v=spf1 +all", "every server on the internet"),
            ("v=spf1 mx", "no \"all\""),
            ("v=spf1 -all mx", "never used"),
            ("v=spf1 ptr -all", "RFC 7208 §5.5"),
            ("v=spf1 mx -all foo=bar", "unknown modifier"),
        ] {
            let r = check(record);
            assert!(r.errors.is_empty(), "{record}: {r:?}");
            assert!(
                r.warnings.iter().any(|w| w.contains(needle)),
                "{record}: {r:?}"
            );
        }
    }

    #[test]
    fn build_like_a_panel() {
        let b = Build {
            mx: true,
            a: true,
            ip4: vec!["203.0.113.0/24".into()],
            ip6: vec!["2001:db8::/32".into()],
            include: vec!["_spf.other.example".into()],
            soft: false,
        };
        assert_eq!(
            build(&b).unwrap(),
            "v=spf1 mx a ip4:203.0.113.0/24 ip6:2001:db8::/32 include:_spf.other.example -all"
        );
        let soft = Build {
            mx: true,
            soft: true,
            ..Default::default()
        };
        assert_eq!(build(&soft).unwrap(), "v=spf1 mx ~all");
        let bad = Build {
            ip4: vec!["203.0.113.7/24".into()],
            ..Default::default()
        };
        assert!(build(&bad).unwrap_err().contains("--ip4 203.0.113.7/24"));
        let many = Build {
            include: (0..11).map(|i| format!("i{i}.example.net")).collect(),
            ..Default::default()
        };
        assert!(build(&many).unwrap_err().contains("receivers stop at 10"));
    }
}
