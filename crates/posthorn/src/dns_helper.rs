//! `posthorn domain dns|check DOMAIN`: the DNS records a domain served here
//! needs (MX, SPF, DKIM, DMARC, RFC 6186/8314 SRV, autoconfig CNAMEs), printed
//! as zone-file lines, and a check of what the configured resolvers answer
//! for each of them.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use mail_auth::hickory_resolver::TokioResolver;
use mail_auth::hickory_resolver::proto::rr::{RData, RecordType};

use crate::cli::{Admin, DomainCmd};
use crate::config::Config;
use crate::spf_helper;

pub const DEFAULT_SPF: &str = "v=spf1 mx -all";
const TTL: u32 = 3600;

/// One record to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// The mail host's own address: we cannot know the public one.
    HostAddress,
    Mx {
        preference: u16,
        host: String,
    },
    Spf(String),
    Dkim(String),
    Dmarc(String),
    /// `port` 0 and target `.`: the service is not offered (RFC 6186 §4).
    Srv {
        priority: u16,
        port: u16,
        target: String,
    },
    Cname(String),
}

/// The SRV services of RFC 6186 and RFC 8314 §5.1, implicit TLS preferred.
fn services(c: &Config) -> [(&'static str, u16, Option<SocketAddr>); 6] {
    let l = &c.listeners;
    [
        ("_submissions._tcp", 0, l.submissions),
        ("_submission._tcp", 10, l.submission),
        ("_imaps._tcp", 0, l.imaps),
        ("_imap._tcp", 10, l.imap),
        ("_pop3s._tcp", 0, l.pop3s),
        ("_pop3._tcp", 10, l.pop3),
    ]
}

/// Everything to publish for `domain` served by `config.server.hostname`.
/// `dkim` is the key's record name and value, if the domain has a key.
pub fn plan(config: &Config, domain: &str, dkim: Option<(String, String)>) -> Vec<Record> {
    let host = config
        .server
        .hostname
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let rec = |name: String, kind| Record { name, kind };
    let mut out = vec![
        rec(host.clone(), Kind::HostAddress),
        rec(
            domain.into(),
            Kind::Mx {
                preference: 10,
                host: host.clone(),
            },
        ),
        rec(domain.into(), Kind::Spf(DEFAULT_SPF.into())),
    ];
    if let Some((name, value)) = dkim {
        out.push(rec(name, Kind::Dkim(value)));
    }
    out.push(rec(
        format!("_dmarc.{domain}"),
        Kind::Dmarc(format!(
            "v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}"
        )),
    ));
    for (service, priority, listener) in services(config) {
        let (port, target) = match listener {
            Some(addr) => (addr.port(), host.clone()),
            None => (0, ".".into()),
        };
        out.push(rec(
            format!("{service}.{domain}"),
            Kind::Srv {
                priority,
                port,
                target,
            },
        ));
    }
    // Outlook's autodiscover, served by the https listener.
    if let Some(https) = config.listeners.https {
        out.push(rec(
            format!("_autodiscover._tcp.{domain}"),
            Kind::Srv {
                priority: 0,
                port: https.port(),
                target: host.clone(),
            },
        ));
    }
    for name in ["autoconfig", "autodiscover"] {
        out.push(rec(format!("{name}.{domain}"), Kind::Cname(host.clone())));
    }
    out
}

/// A TXT value as zone-file strings of at most 255 bytes each.
fn txt(value: &str) -> String {
    let escaped: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|c| {
            let s = String::from_utf8_lossy(c);
            format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
        })
        .collect();
    escaped.join(" ")
}

fn fqdn(name: &str) -> String {
    if name == "." {
        ".".into()
    } else {
        format!("{}.", name.trim_end_matches('.'))
    }
}

impl Record {
    /// The zone-file line.
    pub fn line(&self) -> String {
        let (kind, value) = match &self.kind {
            Kind::HostAddress => {
                return format!(
                    "; {} needs A (and AAAA) records with this server's public addresses, and matching PTR records (ask your provider)",
                    fqdn(&self.name)
                );
            }
            Kind::Mx { preference, host } => ("MX", format!("{preference} {}", fqdn(host))),
            Kind::Spf(v) | Kind::Dkim(v) | Kind::Dmarc(v) => ("TXT", txt(v)),
            Kind::Srv {
                priority,
                port,
                target,
            } => {
                let weight = u16::from(*port != 0);
                (
                    "SRV",
                    format!("{priority} {weight} {port} {}", fqdn(target)),
                )
            }
            Kind::Cname(host) => ("CNAME", fqdn(host)),
        };
        format!("{:<40} {TTL} IN {kind:<5} {value}", fqdn(&self.name))
    }
}

/// The DKIM record of `domain` from the directory (through the daemon if it
/// runs); fails if the domain is not served here.
async fn dkim(config_path: &Path, domain: &str) -> Result<Option<(String, String)>, String> {
    let cmd = Admin::Domain(DomainCmd::DkimRecord {
        domain: domain.into(),
    });
    let out = crate::admin_command(config_path, cmd).await?;
    Ok(out
        .split_once('\t')
        .map(|(n, v)| (n.to_string(), v.to_string())))
}

/// `domain dns DOMAIN`.
pub async fn records(config_path: &Path, domain: &str) -> Result<String, String> {
    let config = Config::load(config_path)?;
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let dkim = dkim(config_path, &domain).await?;
    let mut lines = vec![format!(
        "; DNS records for {domain}, mail host {} (paste into the zone of {domain})",
        config.server.hostname
    )];
    if dkim.is_none() {
        lines.push(format!(
            "; {domain} has no DKIM key: `posthorn domain dkim {domain}` creates one"
        ));
    }
    lines.extend(plan(&config, &domain, dkim).iter().map(Record::line));
    Ok(lines.join("\n"))
}

/// What the resolvers answered for one record.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok(String),
    Missing(String),
    Wrong(String),
}

/// `domain check DOMAIN`: prints one line per record; fails if any is
/// missing or wrong.
pub async fn check(config_path: &Path, domain: &str) -> Result<String, String> {
    let config = Config::load(config_path)?;
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let dkim = dkim(config_path, &domain).await?;
    let resolver = smtp::resolver(&config.dns.nameservers)?;
    let dns = Dns {
        resolver: resolver.resolver(),
        host: config
            .server
            .hostname
            .trim_end_matches('.')
            .to_ascii_lowercase(),
    };
    let plan = plan(&config, &domain, dkim.clone());
    let mut bad = 0;
    let mut lines = Vec::new();
    if dkim.is_none() {
        bad += 1;
        lines.push(format!(
            "missing  DKIM: {domain} has no key here; `posthorn domain dkim {domain}` creates one"
        ));
    }
    for record in &plan {
        let verdict = dns.verdict(record).await;
        let (tag, text) = match &verdict {
            Verdict::Ok(t) => ("ok", t),
            Verdict::Missing(t) => ("missing", t),
            Verdict::Wrong(t) => ("wrong", t),
        };
        if !matches!(verdict, Verdict::Ok(_)) {
            bad += 1;
        }
        lines.push(format!("{tag:<8} {}: {text}", label(record)));
    }
    // The report goes to stdout either way; the error says what it means.
    println!("{}", lines.join("\n"));
    if bad > 0 {
        Err(format!(
            "{bad} of {} records are missing or wrong; `posthorn domain dns {domain}` prints what to publish",
            plan.len()
        ))
    } else {
        Ok(format!(
            "all {} records of {domain} are in place",
            plan.len()
        ))
    }
}

fn label(r: &Record) -> String {
    let kind = match r.kind {
        Kind::HostAddress => "A/AAAA",
        Kind::Mx { .. } => "MX",
        Kind::Spf(_) => "SPF",
        Kind::Dkim(_) => "DKIM",
        Kind::Dmarc(_) => "DMARC",
        Kind::Srv { .. } => "SRV",
        Kind::Cname(_) => "CNAME",
    };
    format!("{kind} {}", r.name)
}

fn same_host(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// TXT strings of one record joined, as receivers read them.
fn txt_text(data: &RData) -> Option<String> {
    let RData::TXT(t) = data else { return None };
    let bytes: Vec<u8> = t.txt_data.iter().flat_map(|s| s.iter().copied()).collect();
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The `p=` tag of a DKIM record, without whitespace.
fn dkim_key(record: &str) -> Option<String> {
    record.split(';').find_map(|tag| {
        let (k, v) = tag.split_once('=')?;
        (k.trim() == "p").then(|| v.chars().filter(|c| !c.is_whitespace()).collect())
    })
}

/// Whether `ip` is in the `ip4:`/`ip6:` network `net`.
fn in_network(ip: IpAddr, net: &str) -> bool {
    let (addr, len) = net.split_once('/').unwrap_or((net, ""));
    match (ip, addr.parse::<IpAddr>()) {
        (IpAddr::V4(ip), Ok(IpAddr::V4(n))) => {
            let len: u32 = len.parse().unwrap_or(32).min(32);
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(ip) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(ip), Ok(IpAddr::V6(n))) => {
            let len: u32 = len.parse().unwrap_or(128).min(128);
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(ip) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// How an SPF record lets `host` (at `addrs`) send, if it visibly does:
/// `include:` and `redirect=` are trusted, since following them needs more
/// lookups than this check makes.
fn spf_allows(record: &str, host: &str, addrs: &[IpAddr], mx_is_us: bool) -> Option<String> {
    for term in record.split_whitespace().skip(1) {
        let t = term.trim_start_matches('+').to_ascii_lowercase();
        let via = if (t == "mx" || t.starts_with("mx/")) && mx_is_us {
            Some("mx")
        } else if t
            .strip_prefix("a:")
            .is_some_and(|h| same_host(h.split('/').next().unwrap_or(h), host))
        {
            Some("a:")
        } else if let Some(net) = t.strip_prefix("ip4:").or_else(|| t.strip_prefix("ip6:")) {
            addrs
                .iter()
                .any(|ip| in_network(*ip, net))
                .then_some("ip4/ip6")
        } else if t.starts_with("include:") || t.starts_with("redirect=") {
            Some("include/redirect (not followed)")
        } else {
            None
        };
        if let Some(via) = via {
            return Some(via.into());
        }
    }
    None
}

struct Dns<'a> {
    resolver: &'a TokioResolver,
    /// The mail host, lower case.
    host: String,
}

impl Dns<'_> {
    /// The answers of type `t` at `name`; none for NXDOMAIN and NODATA.
    async fn lookup(&self, name: &str, t: RecordType) -> Result<Vec<RData>, String> {
        match self.resolver.lookup(fqdn(name), t).await {
            Ok(l) => Ok(l
                .answers()
                .iter()
                .filter(|r| r.record_type() == t)
                .map(|r| r.data.clone())
                .collect()),
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(Vec::new()),
            Err(e) => Err(format!("DNS lookup of {name} {t} failed: {e}")),
        }
    }

    async fn txt(&self, name: &str) -> Result<Vec<String>, String> {
        Ok(self
            .lookup(name, RecordType::TXT)
            .await?
            .iter()
            .filter_map(txt_text)
            .collect())
    }

    async fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, String> {
        let mut out = Vec::new();
        for t in [RecordType::A, RecordType::AAAA] {
            for d in self.lookup(name, t).await? {
                match d {
                    RData::A(a) => out.push(IpAddr::V4(a.0)),
                    RData::AAAA(a) => out.push(IpAddr::V6(a.0)),
                    _ => {}
                }
            }
        }
        Ok(out)
    }

    async fn mx_hosts(&self, name: &str) -> Result<Vec<String>, String> {
        Ok(self
            .lookup(name, RecordType::MX)
            .await?
            .iter()
            .filter_map(|d| match d {
                RData::MX(mx) => Some(mx.exchange.to_ascii().to_ascii_lowercase()),
                _ => None,
            })
            .collect())
    }

    async fn verdict(&self, record: &Record) -> Verdict {
        match self.try_verdict(record).await {
            Ok(v) => v,
            Err(e) => Verdict::Wrong(e),
        }
    }

    async fn try_verdict(&self, record: &Record) -> Result<Verdict, String> {
        let name = &record.name;
        Ok(match &record.kind {
            Kind::HostAddress => {
                let addrs = self.addresses(name).await?;
                if addrs.is_empty() {
                    Verdict::Missing(format!("{name} has no A or AAAA record"))
                } else {
                    let list: Vec<String> = addrs.iter().map(IpAddr::to_string).collect();
                    Verdict::Ok(list.join(", "))
                }
            }
            Kind::Mx { host, .. } => {
                let hosts = self.mx_hosts(name).await?;
                if hosts.is_empty() {
                    Verdict::Missing(format!("no MX record; publish {}", record.line()))
                } else if hosts.iter().any(|h| same_host(h, host)) {
                    Verdict::Ok(format!("points at {host}"))
                } else {
                    Verdict::Wrong(format!(
                        "points at {} instead of {host}: mail for this domain goes elsewhere",
                        hosts.join(", ")
                    ))
                }
            }
            Kind::Spf(_) => {
                let spf: Vec<String> = self
                    .txt(name)
                    .await?
                    .into_iter()
                    .filter(|t| t.to_ascii_lowercase().starts_with("v=spf1"))
                    .collect();
                match spf.as_slice() {
                    [] => Verdict::Missing(format!("no SPF record; publish {}", record.line())),
                    [one] => {
                        let report = spf_helper::check(one);
                        if !report.errors.is_empty() {
                            Verdict::Wrong(format!("{one:?}: {}", report.errors.join("; ")))
                        } else {
                            let host = &self.host;
                            let mx_is_us = self
                                .mx_hosts(name)
                                .await?
                                .iter()
                                .any(|h| same_host(h, host));
                            let addrs = self.addresses(host).await?;
                            match spf_allows(one, host, &addrs, mx_is_us) {
                                Some(via) => {
                                    Verdict::Ok(format!("{one:?} (allows {host} via {via})"))
                                }
                                None => Verdict::Wrong(format!(
                                    "{one:?} does not allow {host} to send: add \"mx\" or its address"
                                )),
                            }
                        }
                    }
                    many => Verdict::Wrong(format!(
                        "{} SPF records; receivers treat more than one as an error (RFC 7208 §4.5): merge them",
                        many.len()
                    )),
                }
            }
            Kind::Dkim(expected) => {
                let found = self.txt(name).await?;
                let want = dkim_key(expected);
                if found.is_empty() {
                    Verdict::Missing(format!("no DKIM record; publish {}", record.line()))
                } else if found.iter().any(|f| dkim_key(f) == want) {
                    Verdict::Ok("publishes this server's key".into())
                } else {
                    Verdict::Wrong(
                        "publishes a different key (an old one after `domain dkim --rotate`?); publish the one `posthorn domain dns` prints".into(),
                    )
                }
            }
            Kind::Dmarc(_) => {
                let found: Vec<String> = self
                    .txt(name)
                    .await?
                    .into_iter()
                    .filter(|t| t.starts_with("v=DMARC1"))
                    .collect();
                match found.as_slice() {
                    [] => Verdict::Missing(format!("no DMARC record; publish {}", record.line())),
                    [one] => Verdict::Ok(format!("{one:?}")),
                    many => Verdict::Wrong(format!(
                        "{} DMARC records; receivers ignore them all (RFC 7489 §6.6.3): keep one",
                        many.len()
                    )),
                }
            }
            Kind::Srv { port, target, .. } => {
                let found: Vec<(u16, String)> = self
                    .lookup(name, RecordType::SRV)
                    .await?
                    .iter()
                    .filter_map(|d| match d {
                        RData::SRV(s) => Some((s.port, s.target.to_ascii())),
                        _ => None,
                    })
                    .collect();
                if found.is_empty() {
                    Verdict::Missing(format!("no SRV record; publish {}", record.line()))
                } else if found.iter().any(|(p, t)| p == port && same_host(t, target)) {
                    Verdict::Ok(format!("port {port} on {}", fqdn(target)))
                } else {
                    let list: Vec<String> = found
                        .iter()
                        .map(|(p, t)| format!("port {p} on {t}"))
                        .collect();
                    Verdict::Wrong(format!(
                        "says {}; expected port {port} on {}",
                        list.join(", "),
                        fqdn(target)
                    ))
                }
            }
            Kind::Cname(host) => {
                let cnames: Vec<String> = self
                    .lookup(name, RecordType::CNAME)
                    .await?
                    .iter()
                    .filter_map(|d| match d {
                        RData::CNAME(c) => Some(c.0.to_ascii()),
                        _ => None,
                    })
                    .collect();
                if cnames.iter().any(|c| same_host(c, host)) {
                    Verdict::Ok(format!("CNAME {}", fqdn(host)))
                } else if let [other, ..] = cnames.as_slice() {
                    Verdict::Wrong(format!("CNAME {other} instead of {}", fqdn(host)))
                } else {
                    // Addresses of their own are fine if they are the host's.
                    let mut here = self.addresses(name).await?;
                    let mut there = self.addresses(host).await?;
                    here.sort();
                    there.sort();
                    if here.is_empty() {
                        Verdict::Missing(format!("no record; publish {}", record.line()))
                    } else if here == there {
                        Verdict::Ok(format!("same addresses as {host}"))
                    } else {
                        Verdict::Wrong(format!(
                            "addresses differ from {host}'s; publish {}",
                            record.line()
                        ))
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        Config::parse(&format!(
            "[server]\nhostname = \"Mail.Example.org\"\ndata_dir = \"/tmp/x\"\n[tls]\ncert = \"c\"\nkey = \"k\"\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn plan_lists_every_record_as_zone_lines() {
        let c = config("[listeners]\nsubmissions = \"0.0.0.0:465\"\nimaps = \"0.0.0.0:993\"\n");
        let long = "p=".to_string() + &"A".repeat(300);
        let lines: Vec<String> = plan(
            &c,
            "example.org",
            Some((
                "s1._domainkey.example.org".into(),
                format!("v=DKIM1; k=rsa; {long}"),
            )),
        )
        .iter()
        .map(Record::line)
        .collect();
        let text = lines.join("\n");
        assert!(
            text.contains(
                "example.org.                             3600 IN MX    10 mail.example.org."
            ),
            "{text}"
        );
        assert!(text.contains("IN TXT   \"v=spf1 mx -all\""), "{text}");
        assert!(text.contains("_dmarc.example.org."), "{text}");
        assert!(text.contains("\"v=DMARC1; p=quarantine; rua=mailto:postmaster@example.org\""));
        assert!(
            text.contains(
                "_submissions._tcp.example.org.           3600 IN SRV   0 1 465 mail.example.org."
            ),
            "{text}"
        );
        // Not offered: RFC 6186's "." target.
        assert!(
            text.contains("_pop3._tcp.example.org.                  3600 IN SRV   10 0 0 ."),
            "{text}"
        );
        assert!(
            text.contains(
                "autoconfig.example.org.                  3600 IN CNAME mail.example.org."
            )
        );
        assert!(text.contains("autodiscover.example.org."));
        assert!(!text.contains("_autodiscover"), "{text}");
        let c = config("[listeners]\nhttps = \"0.0.0.0:443\"\n");
        let text: Vec<String> = plan(&c, "example.org", None)
            .iter()
            .map(Record::line)
            .collect();
        assert!(
            text.iter()
                .any(|l| l.starts_with("_autodiscover._tcp.example.org.")
                    && l.ends_with("IN SRV   0 1 443 mail.example.org.")),
            "{text:?}"
        );
        // Long TXT values are split into strings of at most 255 bytes.
        let dkim = lines.iter().find(|l| l.contains("_domainkey")).unwrap();
        assert_eq!(dkim.matches('"').count(), 4, "{dkim}");
        for s in dkim.split('"').skip(1).step_by(2) {
            assert!(s.len() <= 255);
        }
    }

    #[test]
    fn spf_allowance() {
        let addrs: Vec<IpAddr> = vec!["203.0.113.10".parse().unwrap()];
        let host = "mail.example.org";
        assert_eq!(
            spf_allows("v=spf1 mx -all", host, &addrs, true).as_deref(),
            Some("mx")
        );
        assert_eq!(spf_allows("v=spf1 mx -all", host, &addrs, false), None);
        assert!(spf_allows("v=spf1 ip4:203.0.113.0/24 -all", host, &addrs, false).is_some());
        assert_eq!(
            spf_allows("v=spf1 ip4:198.51.100.0/24 -all", host, &addrs, false),
            None
        );
        assert!(spf_allows("v=spf1 a:Mail.example.org -all", host, &addrs, false).is_some());
        assert!(spf_allows("v=spf1 include:_spf.example.net -all", host, &addrs, false).is_some());
        assert!(in_network("2001:db8::1".parse().unwrap(), "2001:db8::/32"));
        assert!(!in_network("2001:db9::1".parse().unwrap(), "2001:db8::/32"));
        assert!(in_network("192.0.2.1".parse().unwrap(), "0.0.0.0/0"));
    }

    #[test]
    fn dkim_key_ignores_whitespace_and_other_tags() {
        assert_eq!(dkim_key("v=DKIM1; k=rsa; p=AB CD").as_deref(), Some("ABCD"));
        assert_eq!(dkim_key("v=DKIM1"), None);
    }
}
