//! Where a queued message goes: the smarthost, a relay domain's host, or the
//! destination domain's MX hosts (RFC 5321 §5.1), in preference order.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use mail_auth::common::cache::NoCache;
use mail_auth::{IpLookupStrategy, MX, MessageAuthenticator, RecordSet};

/// A host to try, with its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub name: String,
    pub addrs: Vec<SocketAddr>,
}

/// Why no host could be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// Try again later (DNS failure).
    Temporary(String),
    /// The domain does not take mail (null MX, RFC 7505) or does not exist.
    Permanent(String),
}

/// `host`, `host:port`, `[ip]` or `[ip]:port`.
pub fn split_host_port(spec: &str, default_port: u16) -> (String, u16) {
    if let Some(rest) = spec.strip_prefix('[')
        && let Some((host, tail)) = rest.split_once(']')
    {
        let port = tail
            .strip_prefix(':')
            .and_then(|p| p.parse().ok())
            .unwrap_or(default_port);
        return (host.to_string(), port);
    }
    match spec.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(port) => (host.to_string(), port),
            Err(_) => (spec.to_string(), default_port),
        },
        _ => (spec.to_string(), default_port),
    }
}

pub struct Router<'a> {
    pub resolver: &'a MessageAuthenticator,
    /// The port at MX hosts (25; tests point it elsewhere).
    pub port: u16,
}

impl Router<'_> {
    async fn addresses(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, RouteError> {
        if let Ok(ip) = host.trim_start_matches("IPv6:").parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        match self
            .resolver
            .ip_lookup(
                host,
                IpLookupStrategy::Ipv4thenIpv6,
                10,
                None::<&NoCache<Box<str>, RecordSet<Ipv4Addr>>>,
                None::<&NoCache<Box<str>, RecordSet<Ipv6Addr>>>,
            )
            .await
        {
            Ok(ips) => Ok(ips
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect()),
            Err(mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(_))) => Ok(Vec::new()),
            Err(e) => Err(RouteError::Temporary(format!("{host}: {e}"))),
        }
    }

    /// A fixed next hop (smarthost, relay host).
    pub async fn fixed(&self, spec: &str) -> Result<Vec<Hop>, RouteError> {
        let (host, port) = split_host_port(spec, 25);
        let addrs = self.addresses(&host, port).await?;
        if addrs.is_empty() {
            return Err(RouteError::Temporary(format!("{host}: no address")));
        }
        Ok(vec![Hop { name: host, addrs }])
    }

    /// The MX hosts of `domain`, or the domain itself when it has none.
    pub async fn mx(&self, domain: &str) -> Result<Vec<Hop>, RouteError> {
        if domain.starts_with('[') {
            return self.fixed(&format!("{domain}:{}", self.port)).await;
        }
        let names: Vec<String> = match self
            .resolver
            .mx_lookup(domain, None::<&NoCache<Box<str>, RecordSet<MX>>>)
            .await
        {
            Ok(set) => {
                let names: Vec<String> = set
                    .rrset
                    .iter()
                    .flat_map(|mx| mx.exchanges.iter())
                    .map(|e| e.trim_end_matches('.').to_string())
                    .collect();
                if names.len() == 1 && names[0].is_empty() {
                    return Err(RouteError::Permanent(format!(
                        "{domain} does not accept mail (null MX)"
                    )));
                }
                names
            }
            Err(mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(_))) => Vec::new(),
            Err(e) => return Err(RouteError::Temporary(format!("MX of {domain}: {e}"))),
        };
        // RFC 5321 §5.1: no MX means the domain itself is the host.
        let names = if names.is_empty() {
            vec![domain.to_string()]
        } else {
            names
        };
        let mut hops = Vec::with_capacity(names.len());
        let mut last_error = None;
        for name in names {
            match self.addresses(&name, self.port).await {
                Ok(addrs) if !addrs.is_empty() => hops.push(Hop { name, addrs }),
                Ok(_) => {}
                Err(e) => last_error = Some(e),
            }
        }
        match (hops.is_empty(), last_error) {
            (false, _) => Ok(hops),
            (true, Some(e)) => Err(e),
            (true, None) => Err(RouteError::Permanent(format!(
                "{domain}: no mail host found (no MX and no address)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_specs() {
        assert_eq!(split_host_port("mx.example", 25), ("mx.example".into(), 25));
        assert_eq!(
            split_host_port("mx.example:2525", 25),
            ("mx.example".into(), 2525)
        );
        assert_eq!(split_host_port("[192.0.2.1]", 25), ("192.0.2.1".into(), 25));
        assert_eq!(
            split_host_port("[192.0.2.1]:26", 25),
            ("192.0.2.1".into(), 26)
        );
        assert_eq!(
            split_host_port("[IPv6:2001:db8::1]", 25),
            ("IPv6:2001:db8::1".into(), 25)
        );
        assert_eq!(
            split_host_port("mx.example:bad", 25),
            ("mx.example:bad".into(), 25)
        );
    }
}
