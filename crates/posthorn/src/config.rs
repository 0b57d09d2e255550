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
    /// `[http]`: the management API's token, the password page's rate limit.
    #[serde(default)]
    pub http: Http,
    /// `[autoconfig]`: the server name and ports mail clients are told.
    #[serde(default)]
    pub autoconfig: Autoconfig,
    /// `[outbound]`: the queue of mail leaving this server.
    #[serde(default)]
    pub outbound: Outbound,
    /// `[delivery]`: loop limit, autoreply interval, SRS.
    #[serde(default)]
    pub delivery: Delivery,
    /// `[backup]`: scheduled checkpoints of the whole store.
    #[serde(default)]
    pub backup: Backup,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Backup {
    /// Folder for backups; none: no scheduled backups and no `backup create`.
    pub dir: Option<PathBuf>,
    /// Hours between two scheduled backups.
    pub interval_hours: u64,
    /// Backups older than this are deleted (the newest one is always kept).
    pub keep_days: u64,
}

impl Default for Backup {
    fn default() -> Self {
        Backup {
            dir: None,
            interval_hours: 24,
            keep_days: 7,
        }
    }
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
    /// Bytes of RocksDB's block cache (recently read records and bodies).
    #[serde(default = "default_cache_size")]
    pub cache_size: u64,
}

fn default_cache_size() -> u64 {
    256 << 20
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
    /// Management API, metrics, health (plain HTTP: keep it on loopback).
    pub http: Option<SocketAddr>,
    /// Password page and client autoconfiguration (TLS).
    pub https: Option<SocketAddr>,
}

/// `[http]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// Bearer token of the management API; required with the http listener.
    pub admin_token: Option<String>,
    /// A file whose first line is the token, instead of `admin_token`.
    pub admin_token_file: Option<PathBuf>,
    /// Password page: attempts per client address within the window.
    pub password_attempts: u32,
    pub password_window_secs: u64,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            admin_token: None,
            admin_token_file: None,
            password_attempts: 10,
            password_window_secs: 600,
        }
    }
}

/// Shortest admin token accepted.
const MIN_TOKEN_LEN: usize = 16;

impl Http {
    /// The management API's token, read from `admin_token_file` if that is
    /// the key given.
    pub fn admin_token(&self) -> Result<Option<String>, String> {
        let token = match (&self.admin_token, &self.admin_token_file) {
            (Some(t), None) => t.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| {
                    format!(
                        "key http.admin_token_file: cannot read {}: {e}",
                        path.display()
                    )
                })?
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_string(),
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err("keys http.admin_token and http.admin_token_file: set only one".into());
            }
        };
        check_token(&token)?;
        Ok(Some(token))
    }
}

fn check_token(token: &str) -> Result<(), String> {
    if token.len() < MIN_TOKEN_LEN || token.contains(char::is_whitespace) {
        return Err(format!(
            "key http.admin_token: must be at least {MIN_TOKEN_LEN} characters without spaces (e.g. from `openssl rand -hex 32`)"
        ));
    }
    Ok(())
}

/// `[autoconfig]`: what autoconfiguration tells mail clients. A port key
/// left out means the port of that listener (if it is on); set one where
/// clients reach the server through a port mapping, or 0 to not offer it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Autoconfig {
    /// Server name clients connect to; default `server.hostname`.
    pub hostname: Option<String>,
    pub imaps_port: Option<u16>,
    pub imap_port: Option<u16>,
    pub pop3s_port: Option<u16>,
    pub pop3_port: Option<u16>,
    pub submissions_port: Option<u16>,
    pub submission_port: Option<u16>,
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
    /// `text` (one human-readable line per event) or `json` (one JSON object
    /// per line, for log shippers).
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: "info".into(),
            format: LogFormat::Text,
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
        if self.server.cache_size < 1 << 20 {
            return Err("key server.cache_size: must be at least 1048576 bytes (1 MiB)".into());
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
        if self.backup.interval_hours == 0 || self.backup.keep_days == 0 {
            return Err(
                "keys backup.interval_hours and backup.keep_days: must be at least 1".into(),
            );
        }
        if self.delivery.max_hops == 0 {
            return Err("key delivery.max_hops: must be at least 1".into());
        }
        if self.listeners.http.is_some()
            && self.http.admin_token.is_none()
            && self.http.admin_token_file.is_none()
        {
            return Err("key http.admin_token (or http.admin_token_file): required when listener http is on; the management API refuses to run without a token".into());
        }
        if let Some(t) = &self.http.admin_token {
            check_token(t)?;
        }
        if self.http.password_attempts == 0 || self.http.password_window_secs == 0 {
            return Err(
                "keys http.password_attempts and http.password_window_secs: must be at least 1"
                    .into(),
            );
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

    pub fn store_options(&self) -> store::StoreOptions {
        store::StoreOptions {
            block_cache: usize::try_from(self.server.cache_size).unwrap_or(usize::MAX),
            ..Default::default()
        }
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
    fn cache_size_has_a_default_and_a_floor() {
        let c = Config::parse(MINIMAL).expect("parses");
        assert_eq!(c.store_options().block_cache, 256 << 20);
        let small = MINIMAL.replace("data_dir", "cache_size = 67108864\ndata_dir");
        let c = Config::parse(&small).expect("parses");
        assert_eq!(c.store_options().block_cache, 64 << 20);
        let tiny = MINIMAL.replace("data_dir", "cache_size = 1000\ndata_dir");
        let err = Config::parse(&tiny).unwrap_err();
        assert!(err.contains("server.cache_size"), "{err}");
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
    fn backup_and_log_format_keys() {
        let c = Config::parse(MINIMAL).expect("parses");
        assert!(c.backup.dir.is_none());
        assert_eq!((c.backup.interval_hours, c.backup.keep_days), (24, 7));
        assert_eq!(c.log.format, LogFormat::Text);
        let c = Config::parse(&format!(
            "{MINIMAL}\n[backup]\ndir = \"/b\"\nkeep_days = 3\n[log]\nformat = \"json\"\n"
        ))
        .expect("parses");
        assert_eq!(c.backup.dir.as_deref(), Some(Path::new("/b")));
        assert_eq!(c.backup.keep_days, 3);
        assert_eq!(c.log.format, LogFormat::Json);
        let err = Config::parse(&format!("{MINIMAL}\n[log]\nformat = \"xml\"\n")).unwrap_err();
        assert!(err.contains("xml"), "{err}");
        let err = Config::parse(&format!("{MINIMAL}\n[backup]\ninterval_hours = 0\n")).unwrap_err();
        assert!(err.contains("backup.interval_hours"), "{err}");
    }

    #[test]
    fn http_listener_needs_a_token() {
        let err = Config::parse(&format!(
            "{MINIMAL}\n[listeners]\nhttp = \"127.0.0.1:8080\"\n"
        ))
        .unwrap_err();
        assert!(err.contains("http.admin_token"), "{err}");
        let err = Config::parse(&format!(
            "{MINIMAL}\n[listeners]\nhttp = \"127.0.0.1:8080\"\n[http]\nadmin_token = \"short\"\n"
        ))
        .unwrap_err();
        assert!(err.contains("at least 16"), "{err}");
        let c = Config::parse(&format!(
            "{MINIMAL}\n[listeners]\nhttp = \"127.0.0.1:8080\"\n[http]\nadmin_token = \"0123456789abcdef\"\n"
        ))
        .expect("parses");
        assert_eq!(
            c.http.admin_token().ok().flatten().as_deref(),
            Some("0123456789abcdef")
        );
        let err = Config::parse(&format!("{MINIMAL}\n[autoconfig]\nimaps = 993\n")).unwrap_err();
        assert!(err.contains("imaps"), "{err}");
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
