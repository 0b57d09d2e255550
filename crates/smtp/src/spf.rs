//! SPF (RFC 7208) as the MX listener's [`SenderCheck`]: the MAIL FROM
//! identity (§2.4), or the HELO identity when the reverse-path is null
//! (§2.3), evaluated by mail-auth against the configured resolvers.
//! Accepted mail gets `Received-SPF` (§9.1) and `Authentication-Results`
//! (RFC 8601); refusals use the codes of RFC 7372 (X.7.23, X.7.24).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use delivery::BoxFuture;
use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::hickory_resolver::system_conf::read_system_conf;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{MessageAuthenticator, SpfResult};
use serde::Deserialize;
use tracing::info;

use crate::{Reply, SenderCheck, SenderInfo, SenderVerdict};

/// The whole evaluation, all its lookups together: RFC 7208 §4.6.4 asks for
/// a bound on the time; past it the result is `temperror`, so a slow or
/// silent DNS server cannot hold a session.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// One query to one server; two attempts still fit in [`CHECK_TIMEOUT`].
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// What to do with mail of one SPF result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpfAction {
    /// Take it, with the result in its headers.
    Accept,
    /// Refuse MAIL FROM with a 550.
    Reject,
    /// Refuse MAIL FROM with a 451, so the client retries later.
    Defer,
}

/// `[spf]`: the action per result; `pass` is always accepted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpfPolicy {
    pub fail: SpfAction,
    pub softfail: SpfAction,
    pub neutral: SpfAction,
    pub none: SpfAction,
    /// A broken record: most MTAs accept, as RFC 7208 §8.7 leaves it to
    /// local policy.
    pub permerror: SpfAction,
    pub temperror: SpfAction,
}

impl Default for SpfPolicy {
    /// RFC 7208 §8.4 (fail: reject), §8.5 and §8.2 (softfail, neutral: do
    /// not reject on that alone), §8.6 (temperror: defer).
    fn default() -> Self {
        SpfPolicy {
            fail: SpfAction::Reject,
            softfail: SpfAction::Accept,
            neutral: SpfAction::Accept,
            none: SpfAction::Accept,
            permerror: SpfAction::Accept,
            temperror: SpfAction::Defer,
        }
    }
}

impl SpfPolicy {
    fn action(&self, result: SpfResult) -> SpfAction {
        match result {
            SpfResult::Pass => SpfAction::Accept,
            SpfResult::Fail => self.fail,
            SpfResult::SoftFail => self.softfail,
            SpfResult::Neutral => self.neutral,
            SpfResult::None => self.none,
            SpfResult::PermError => self.permerror,
            SpfResult::TempError => self.temperror,
        }
    }
}

/// The SPF check, shared by all sessions of the MX listener.
pub struct Spf {
    resolver: MessageAuthenticator,
    /// Our name: `%{r}` in macros, the authserv-id and `receiver=`.
    hostname: String,
    policy: SpfPolicy,
}

/// A resolver for `nameservers` (UDP, and TCP for truncated answers), or
/// the system's resolvers (`/etc/resolv.conf`) when the list is empty. SPF
/// and the outbound queue's MX lookups share it.
pub fn resolver(nameservers: &[SocketAddr]) -> Result<MessageAuthenticator, String> {
    let (config, mut opts) = if nameservers.is_empty() {
        read_system_conf().map_err(|e| format!("system resolver configuration: {e}"))?
    } else {
        let servers = nameservers
            .iter()
            .map(|addr| {
                let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                for connection in &mut server.connections {
                    connection.port = addr.port();
                }
                server
            })
            .collect();
        (
            ResolverConfig::from_name_servers(servers),
            ResolverOpts::default(),
        )
    };
    opts.timeout = QUERY_TIMEOUT;
    opts.attempts = 2;
    MessageAuthenticator::new(config, opts).map_err(|e| format!("DNS resolver: {e}"))
}

impl Spf {
    pub fn new(
        hostname: impl Into<String>,
        resolver: MessageAuthenticator,
        policy: SpfPolicy,
    ) -> Spf {
        Spf {
            resolver,
            hostname: hostname.into(),
            policy,
        }
    }
}

impl SenderCheck for Spf {
    fn check<'a>(&'a self, info: SenderInfo<'a>) -> BoxFuture<'a, SenderVerdict> {
        Box::pin(async move {
            // A v4 client on a dual-stack socket must match `ip4:` and be
            // shown as v4 in the headers.
            let ip = info.peer.to_canonical();
            let identity = Identity::of(&info);
            let params = match identity {
                Identity::MailFrom(sender) => {
                    SpfParameters::verify_mail_from(ip, info.helo, &self.hostname, sender)
                }
                Identity::Helo(helo) => SpfParameters::verify_ehlo(ip, helo, &self.hostname),
            };
            let lookup = self.resolver.verify_spf(params);
            let result = match tokio::time::timeout(CHECK_TIMEOUT, lookup).await {
                Ok(output) => output.result(),
                Err(_) => SpfResult::TempError,
            };
            let action = self.policy.action(result);
            info!(
                spf = %keyword(result),
                identity = %identity.name(),
                domain = %identity.domain(),
                client_ip = %ip,
                action = ?action,
                "SPF checked"
            );
            let checked = Checked {
                hostname: &self.hostname,
                ip,
                helo: info.helo,
                sender: info.sender,
                identity,
                result,
            };
            checked.verdict(action)
        })
    }
}

/// Which identity SPF authorizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Identity<'a> {
    MailFrom(&'a str),
    /// The null reverse-path (bounces): RFC 7208 §2.4 checks the HELO name.
    Helo(&'a str),
}

impl<'a> Identity<'a> {
    fn of(info: &SenderInfo<'a>) -> Identity<'a> {
        if info.sender.is_empty() {
            Identity::Helo(info.helo)
        } else {
            Identity::MailFrom(info.sender)
        }
    }

    fn name(self) -> &'static str {
        match self {
            Identity::MailFrom(_) => "mailfrom",
            Identity::Helo(_) => "helo",
        }
    }

    /// The domain whose record decides (RFC 7208 §4.1 `<domain>`).
    fn domain(self) -> &'a str {
        match self {
            Identity::MailFrom(sender) => sender.rsplit_once('@').map_or(sender, |(_, d)| d),
            Identity::Helo(helo) => helo,
        }
    }

    fn subject(self) -> &'a str {
        match self {
            Identity::MailFrom(sender) => sender,
            Identity::Helo(helo) => helo,
        }
    }
}

/// The result names of RFC 7208 §2.6 and RFC 8601 §2.7.2.
fn keyword(result: SpfResult) -> &'static str {
    match result {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::None => "none",
        SpfResult::PermError => "permerror",
        SpfResult::TempError => "temperror",
    }
}

/// One finished evaluation.
struct Checked<'a> {
    hostname: &'a str,
    ip: IpAddr,
    helo: &'a str,
    sender: &'a str,
    identity: Identity<'a>,
    result: SpfResult,
}

impl Checked<'_> {
    fn verdict(&self, action: SpfAction) -> SenderVerdict {
        let (result, domain, ip) = (keyword(self.result), self.identity.domain(), self.ip);
        match (action, self.result) {
            (SpfAction::Accept, _) => SenderVerdict::Accept {
                trace_headers: vec![self.received_spf(), self.authentication_results()],
            },
            (SpfAction::Defer, SpfResult::TempError) => SenderVerdict::Reject(Reply::new(
                451,
                "4.7.24",
                format!("SPF temporary DNS failure for {domain}, try again later"),
            )),
            (SpfAction::Defer, _) => SenderVerdict::Reject(Reply::new(
                451,
                "4.7.23",
                format!("SPF check failed: {domain} gives {result} for {ip}, try again later"),
            )),
            (SpfAction::Reject, SpfResult::TempError | SpfResult::PermError) => {
                SenderVerdict::Reject(Reply::new(
                    550,
                    "5.7.24",
                    format!("SPF validation error: {domain} gives {result}"),
                ))
            }
            (SpfAction::Reject, _) => SenderVerdict::Reject(Reply::new(
                550,
                "5.7.23",
                format!("SPF check failed: {domain} gives {result} for {ip}"),
            )),
        }
    }

    /// RFC 7208 §9.1, folded before the key-value pairs.
    fn received_spf(&self) -> String {
        let subject = comment(self.identity.subject());
        let ip = self.ip;
        let explanation = match self.result {
            SpfResult::Pass => format!("domain of {subject} designates {ip} as permitted sender"),
            SpfResult::Fail => {
                format!("domain of {subject} does not designate {ip} as permitted sender")
            }
            SpfResult::SoftFail => format!(
                "transitioning domain of {subject} does not designate {ip} as permitted sender"
            ),
            SpfResult::Neutral => {
                format!("{ip} is neither permitted nor denied by domain of {subject}")
            }
            SpfResult::None => {
                format!("domain of {subject} does not designate permitted sender hosts")
            }
            SpfResult::PermError => format!("permanent error in processing domain of {subject}"),
            SpfResult::TempError => format!("temporary error in processing domain of {subject}"),
        };
        format!(
            "Received-SPF: {} ({}: {explanation})\r\n\tclient-ip={}; envelope-from={}; helo={}; receiver={}; identity={};\r\n",
            keyword(self.result),
            comment(self.hostname),
            value(&ip.to_string()),
            value(self.sender),
            value(self.helo),
            value(self.hostname),
            self.identity.name(),
        )
    }

    /// RFC 8601 §2.2, with the `smtp.mailfrom` or `smtp.helo` property
    /// (§2.7.2) of the identity that was checked.
    fn authentication_results(&self) -> String {
        let property = match self.identity {
            Identity::MailFrom(_) => "smtp.mailfrom",
            Identity::Helo(_) => "smtp.helo",
        };
        format!(
            "Authentication-Results: {};\r\n\tspf={} {property}={}\r\n",
            value(self.hostname),
            keyword(self.result),
            pvalue(self.identity.subject()),
        )
    }
}

/// RFC 5322 atext, the characters of a dot-atom besides the dots.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

fn is_dot_atom(s: &str) -> bool {
    s.split('.')
        .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

/// A header value as dot-atom when it is one, else as quoted-string (RFC
/// 5322 §3.2.4), as RFC 7208 §9.1 key-value pairs need.
fn value(s: &str) -> String {
    if is_dot_atom(s) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// An RFC 8601 §2.2 `pvalue`: `local@domain` may stay bare.
fn pvalue(s: &str) -> String {
    match s.split_once('@') {
        Some((local, domain)) if is_dot_atom(local) && is_dot_atom(domain) => s.to_string(),
        _ => value(s),
    }
}

/// Text inside a comment (RFC 5322 §3.2.2): parentheses and backslashes
/// quoted, so an odd sender cannot end the comment early.
fn comment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '(' | ')' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked<'a>(sender: &'a str, result: SpfResult) -> Checked<'a> {
        let info = SenderInfo {
            peer: "192.0.2.1".parse().expect("ip"),
            helo: "client.example.net",
            sender,
        };
        Checked {
            hostname: "mx.example.org",
            ip: info.peer,
            helo: info.helo,
            sender,
            identity: Identity::of(&info),
            result,
        }
    }

    fn reply(verdict: SenderVerdict) -> String {
        match verdict {
            SenderVerdict::Reject(reply) => String::from_utf8_lossy(&reply.to_bytes()).into_owned(),
            SenderVerdict::Accept { .. } => panic!("accepted"),
        }
    }

    fn headers(verdict: SenderVerdict) -> Vec<String> {
        match verdict {
            SenderVerdict::Accept { trace_headers } => trace_headers,
            SenderVerdict::Reject(reply) => panic!("refused: {reply:?}"),
        }
    }

    #[test]
    fn default_policy_rejects_fail_defers_temperror_accepts_the_rest() {
        let policy = SpfPolicy::default();
        assert_eq!(policy.action(SpfResult::Fail), SpfAction::Reject);
        assert_eq!(policy.action(SpfResult::TempError), SpfAction::Defer);
        for result in [
            SpfResult::Pass,
            SpfResult::SoftFail,
            SpfResult::Neutral,
            SpfResult::None,
            SpfResult::PermError,
        ] {
            assert_eq!(policy.action(result), SpfAction::Accept, "{result:?}");
        }
    }

    #[test]
    fn pass_cannot_be_refused() {
        let policy = SpfPolicy {
            fail: SpfAction::Defer,
            softfail: SpfAction::Reject,
            neutral: SpfAction::Reject,
            none: SpfAction::Reject,
            permerror: SpfAction::Reject,
            temperror: SpfAction::Reject,
        };
        assert_eq!(policy.action(SpfResult::Pass), SpfAction::Accept);
        assert_eq!(policy.action(SpfResult::SoftFail), SpfAction::Reject);
    }

    #[test]
    fn refusals_carry_rfc7372_codes_domain_and_result() {
        let text = reply(checked("a@fail.test", SpfResult::Fail).verdict(SpfAction::Reject));
        assert_eq!(
            text,
            "550 5.7.23 SPF check failed: fail.test gives fail for 192.0.2.1\r\n"
        );
        let text = reply(checked("a@slow.test", SpfResult::TempError).verdict(SpfAction::Defer));
        assert!(
            text.starts_with("451 4.7.24 SPF temporary DNS failure for slow.test"),
            "{text}"
        );
        let text = reply(checked("a@bad.test", SpfResult::PermError).verdict(SpfAction::Reject));
        assert!(text.starts_with("550 5.7.24 "), "{text}");
        let text = reply(checked("a@soft.test", SpfResult::SoftFail).verdict(SpfAction::Defer));
        assert!(text.starts_with("451 4.7.23 "), "{text}");
    }

    #[test]
    fn accepted_mail_gets_received_spf_and_authentication_results() {
        let h = headers(checked("jdoe@example.com", SpfResult::Pass).verdict(SpfAction::Accept));
        assert_eq!(
            h,
            [
                "Received-SPF: pass (mx.example.org: domain of jdoe@example.com designates \
                 192.0.2.1 as permitted sender)\r\n\tclient-ip=192.0.2.1; \
                 envelope-from=\"jdoe@example.com\"; helo=client.example.net; \
                 receiver=mx.example.org; identity=mailfrom;\r\n",
                "Authentication-Results: mx.example.org;\r\n\tspf=pass \
                 smtp.mailfrom=jdoe@example.com\r\n",
            ]
        );
        let h = headers(checked("x@soft.test", SpfResult::SoftFail).verdict(SpfAction::Accept));
        assert!(h[0].starts_with("Received-SPF: softfail (mx.example.org: transitioning domain of x@soft.test does not designate 192.0.2.1"), "{}", h[0]);
    }

    #[test]
    fn null_sender_checks_and_reports_the_helo_identity() {
        let c = checked("", SpfResult::None);
        assert_eq!(c.identity, Identity::Helo("client.example.net"));
        assert_eq!(c.identity.domain(), "client.example.net");
        let h = headers(c.verdict(SpfAction::Accept));
        assert!(
            h[0].contains("envelope-from=\"\"; helo=client.example.net;"),
            "{}",
            h[0]
        );
        assert!(h[0].contains("identity=helo;"), "{}", h[0]);
        assert!(
            h[1].ends_with("spf=none smtp.helo=client.example.net\r\n"),
            "{}",
            h[1]
        );
    }

    #[test]
    fn odd_values_are_quoted_and_cannot_break_the_header() {
        assert_eq!(value("2001:db8::1"), "\"2001:db8::1\"");
        assert_eq!(value("a@example.com"), "\"a@example.com\"");
        assert_eq!(pvalue("first.last@example.com"), "first.last@example.com");
        assert_eq!(pvalue("\"a b\"@example.com"), "\"\\\"a b\\\"@example.com\"");
        assert_eq!(pvalue("a@[192.0.2.1]"), "\"a@[192.0.2.1]\"");
        assert_eq!(pvalue("a@b@c"), "\"a@b@c\"");
        assert_eq!(value(""), "\"\"");
        assert_eq!(comment("a(b)\\c"), "a\\(b\\)\\\\c");
        let c = checked("x)y@example.com", SpfResult::Neutral);
        let h = headers(c.verdict(SpfAction::Accept));
        assert!(h[0].contains("domain of x\\)y@example.com)"), "{}", h[0]);
    }
}
