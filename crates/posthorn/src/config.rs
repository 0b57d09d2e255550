//! The TOML configuration (interface contract in DESIGN.md). Unknown keys and bad
//! values are startup errors that name the file and the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: Server,
    #[serde(default)]
    pub listeners: Listeners,
    pub tls: Tls,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub dns: Dns,
    /// `[spf]`: what to do per SPF result on the MX listener.
    #[serde(default)]
    pub spf: smtp::SpfPolicy,
    #[serde(default)]
    pub directory: directory::Policy,
    /// `[auth]`: failure throttling and the auth cache, shared by all protocols.
    #[serde(default)]
    pub auth: directory::auth::AuthPolicy,
    #[serde(default)]
    pub log: Log,
    /// `[outbound]`: the queue of mail leaving this server.
    #[serde(default)]
    pub outbound: Outbound,
    /// `[delivery]`: loop limit, autoreply interval, SRS.
    #[serde(default)]
    pub delivery: Delivery,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Outbound {
    /// `host:port` that takes all outbound mail (a smarthost), instead of
    /// the recipients' MX hosts.
    pub smarthost: Option<String>,
    /// SMTP port at MX hosts.
    pub port: u16,
    /// First retry after this long, doubling up to `retry_max_secs`.
    pub retry_initial_secs: u64,
    pub retry_max_secs: u64,
    /// Bounce what is still undelivered after this long (5 days).
    pub give_up_after_secs: u64,
    /// Tell the sender mail is delayed after this long (4 hours).
    pub warn_after_secs: u64,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Connecting, and waiting for each reply.
    pub timeout_secs: u64,
}

impl Default for Outbound {
    fn default() -> Self {
        Outbound {
            smarthost: None,
            port: 25,
            retry_initial_secs: 60,
            retry_max_secs: 3600,
            give_up_after_secs: 5 * 86_400,
            warn_after_secs: 4 * 3600,
            concurrency: 16,
            timeout_secs: 300,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Delivery {
    /// `Received:` fields a message may carry before it counts as a loop.
    pub max_hops: usize,
    /// Days between two automatic replies to the same sender.
    pub autoreply_interval_days: u32,
    /// Rewrite the envelope sender of forwarded mail (SRS) so SPF passes at
    /// the destination.
    pub srs: bool,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            max_hops: 50,
            autoreply_interval_days: 7,
            srs: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Greeting and Received headers.
    pub hostname: String,
    pub data_dir: PathBuf,
}

/// `addr:port` per protocol; a missing key turns that listener off.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listeners {
    pub smtp: Option<SocketAddr>,
    pub submission: Option<SocketAddr>,
    pub submissions: Option<SocketAddr>,
    pub imap: Option<SocketAddr>,
    pub imaps: Option<SocketAddr>,
    pub pop3: Option<SocketAddr>,
    pub pop3s: Option<SocketAddr>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Generate a self-signed pair for `server.hostname` when both files are
    /// missing (the local quickstart); never for production.
    #[serde(default)]
    pub self_signed: bool,
    /// Accept passwords on connections without TLS (ports 110/143/587 before
    /// STARTTLS). Off: clients must use TLS first, as RFC 8314 recommends.
    #[serde(default)]
    pub allow_plaintext_auth: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_message_size: u64,
    /// Seconds an SMTP client may take per command (RFC 5321 §4.5.3.2: 5 min).
    pub smtp_command_timeout_secs: u64,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 52_428_800,
            smtp_command_timeout_secs: 300,
            max_connections: 5000,
            max_connections_per_ip: 50,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    /// Resolvers for SPF and MX lookups; empty means the system resolver.
    #[serde(default)]
    pub nameservers: Vec<SocketAddr>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// A tracing filter such as `info` or `posthorn=debug,info`; `RUST_LOG` wins.
    pub level: String,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: "info".into(),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        Config::parse(&text).map_err(|e| format!("config file {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config =
            toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        if self.server.hostname.trim().is_empty()
            || self.server.hostname.contains(char::is_whitespace)
        {
            return Err("key server.hostname: must be a host name such as mail.example.org".into());
        }
        if self.limits.max_message_size < 1024 {
            return Err("key limits.max_message_size: must be at least 1024 bytes".into());
        }
        if self.limits.smtp_command_timeout_secs == 0 {
            return Err("key limits.smtp_command_timeout_secs: must be at least 1".into());
        }
        if self.limits.max_connections_per_ip == 0 || self.limits.max_connections == 0 {
            return Err("keys limits.max_connections*: must be at least 1".into());
        }
        if self.outbound.concurrency == 0 || self.outbound.timeout_secs == 0 {
            return Err(
                "keys outbound.concurrency and outbound.timeout_secs: must be at least 1".into(),
            );
        }
        if self.outbound.retry_initial_secs == 0
            || self.outbound.retry_max_secs < self.outbound.retry_initial_secs
        {
            return Err("keys outbound.retry_*: retry_initial_secs must be at least 1 and at most retry_max_secs".into());
        }
        if self.delivery.max_hops == 0 {
            return Err("key delivery.max_hops: must be at least 1".into());
        }
        self.directory
            .validate()
            .map_err(|e| format!("section [directory]: {e}"))?;
        Ok(())
    }

    /// The management socket the CLI uses to reach a running daemon.
    pub fn socket_path(&self) -> PathBuf {
        self.server.data_dir.join("posthorn.sock")
    }

    pub fn store_path(&self) -> PathBuf {
        self.server.data_dir.join("db")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[server]
hostname = "mail.example.org"
data_dir = "/tmp/x"
[tls]
cert = "c.pem"
key = "k.pem"
"#;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::parse(MINIMAL).expect("parses");
        assert_eq!(c.limits.max_message_size, 52_428_800);
        assert!(c.listeners.smtp.is_none());
    }

    #[test]
    fn unknown_key_is_named() {
        let err =
            Config::parse(&format!("{MINIMAL}\n[limits]\nmax_mesage_size = 5\n")).unwrap_err();
        assert!(err.contains("max_mesage_size"), "{err}");
    }

    #[test]
    fn bad_listener_value_is_named() {
        let err =
            Config::parse(&format!("{MINIMAL}\n[listeners]\nsmtp = \"nonsense\"\n")).unwrap_err();
        assert!(err.contains("smtp"), "{err}");
    }

    #[test]
    fn auth_section_takes_policy_keys_and_refuses_others() {
        let c = Config::parse(&format!("{MINIMAL}\n[auth]\nmax_failures_per_ip = 5\n"))
            .expect("parses");
        assert_eq!(c.auth.max_failures_per_ip, 5);
        let err = Config::parse(&format!("{MINIMAL}\n[auth]\nbogus = 1\n")).unwrap_err();
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn spf_section_sets_actions_per_result() {
        let c = Config::parse(MINIMAL).expect("parses");
        assert_eq!(c.spf, smtp::SpfPolicy::default());
        let c = Config::parse(&format!(
            "{MINIMAL}\n[spf]\npermerror = \"reject\"\nsoftfail = \"defer\"\n"
        ))
        .expect("parses");
        assert_eq!(c.spf.permerror, smtp::SpfAction::Reject);
        assert_eq!(c.spf.softfail, smtp::SpfAction::Defer);
        assert_eq!(c.spf.fail, smtp::SpfAction::Reject);
        let err = Config::parse(&format!("{MINIMAL}\n[spf]\nfail = \"drop\"\n")).unwrap_err();
        assert!(err.contains("drop"), "{err}");
        let err = Config::parse(&format!("{MINIMAL}\n[spf]\npass = \"reject\"\n")).unwrap_err();
        assert!(err.contains("pass"), "{err}");
    }

    #[test]
    fn shipped_configs_parse() {
        for file in ["posthorn.toml", "local.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../config")
                .join(file);
            Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
