//! Authentication of IMAP, POP3 and SMTP AUTH logins against the directory.
//!
//! The user name is an account's full address or its short login id. The
//! argon2 check runs on tokio's blocking pool, at most as many at a time as
//! there are cores, so a login storm queues there instead of starving the
//! reactor. Successful checks are cached (see `cache.rs`): measured by the
//! `cached_vs_uncached_timing` test on the 2-core dev machine (debug build,
//! argon2 at opt-level 3), a login costs ~37 ms uncached and ~0.1-0.5 ms
//! cached, the rest being the account lookup in the store. Failures are
//! counted per source IP and per account; past the limits, attempts are
//! refused without running argon2.
//!
//! Every failure logs one WARN line, target `posthorn::auth`:
//!
//! ```text
//! auth failed: user=<login> ip=<address> protocol=<protocol> reason=<reason>
//! ```
//!
//! The user name is made whitespace-free so each field is one token. For
//! fail2ban: `failregex = auth failed: user=\S* ip=<HOST> `. Refusals of
//! disabled accounts log `auth refused:` instead, which that regex leaves
//! alone: the client knows the password, it is not guessing.

mod cache;
pub mod sasl;
mod throttle;

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use serde::Deserialize;
use store::AccountId;
use tracing::{debug, warn};

use self::cache::{AuthCache, CacheSecret};
use self::throttle::FailureLog;
use crate::{Directory, DirectoryError, password};

/// Throttling and cache settings (the `[auth]` configuration section).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthPolicy {
    /// Failures from one IPv4 address or IPv6 /64 within the window after
    /// which it is refused. 0 turns this off.
    pub max_failures_per_ip: u32,
    /// Failures against one account within the window after which it is
    /// refused, whoever tries. 0 turns this off.
    pub max_failures_per_account: u32,
    pub failure_window_secs: u64,
    /// How long a successful check is remembered. 0 turns the cache off.
    pub cache_ttl_secs: u64,
    /// Most remembered checks; the oldest goes first.
    pub cache_size: usize,
    /// Most IPs (and, separately, accounts) whose failures are tracked; the
    /// one that failed longest ago is forgotten first.
    pub max_tracked: usize,
}

impl Default for AuthPolicy {
    fn default() -> AuthPolicy {
        AuthPolicy {
            max_failures_per_ip: 10,
            max_failures_per_account: 20,
            failure_window_secs: 300,
            cache_ttl_secs: 3600,
            cache_size: 10_000,
            max_tracked: 100_000,
        }
    }
}

/// The account a login authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthedAccount {
    pub id: AccountId,
    pub address: String,
    pub short_login: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown user or wrong password: deliberately one error, so a client
    /// cannot tell which.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Right password, but the account is disabled (POP3 says [SYS/PERM]).
    #[error("account disabled")]
    Disabled,
    #[error("too many failed logins, try again later")]
    Throttled,
    /// The directory could not be read: a temporary failure, not a wrong
    /// password.
    #[error("authentication temporarily unavailable: {0}")]
    Temporary(#[from] DirectoryError),
}

/// Checks logins; cheap to clone, one per process.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    directory: Directory,
    secret: CacheSecret,
    cache: Mutex<AuthCache>,
    by_ip: Mutex<FailureLog<IpAddr>>,
    by_account: Mutex<FailureLog<AccountId>>,
}

impl Authenticator {
    pub fn new(directory: Directory, policy: AuthPolicy) -> Authenticator {
        let window = Duration::from_secs(policy.failure_window_secs);
        Authenticator {
            inner: Arc::new(Inner {
                directory,
                secret: CacheSecret::random(),
                cache: Mutex::new(AuthCache::new(
                    policy.cache_size,
                    Duration::from_secs(policy.cache_ttl_secs),
                )),
                by_ip: Mutex::new(FailureLog::new(
                    policy.max_failures_per_ip,
                    window,
                    policy.max_tracked,
                )),
                by_account: Mutex::new(FailureLog::new(
                    policy.max_failures_per_account,
                    window,
                    policy.max_tracked,
                )),
            }),
        }
    }

    /// Authenticates `login` (full address or short login id, any case) with
    /// `password` for a client at `peer` speaking `protocol` ("imap",
    /// "pop3", "smtp"; for the log).
    pub async fn authenticate(
        &self,
        login: &str,
        password: &[u8],
        peer: IpAddr,
        protocol: &'static str,
    ) -> Result<AuthedAccount, AuthError> {
        let inner = &*self.inner;
        let source = throttle::source(peer);
        let ip_blocked = lock(&inner.by_ip).is_blocked(&source, Instant::now());
        if ip_blocked {
            log_failure(login, peer, protocol, "throttled-ip");
            return Err(AuthError::Throttled);
        }

        let login_key = login.to_ascii_lowercase();
        let Some(account) = inner.directory.account_by_login(&login_key).await? else {
            // Spend the same argon2 time as for a real account, so response
            // times do not tell which logins exist.
            self.verify(None, password).await?;
            self.record_failure(login, peer, protocol, None, "unknown-user");
            return Err(AuthError::InvalidCredentials);
        };

        let account_blocked = lock(&inner.by_account).is_blocked(&account.id, Instant::now());
        if account_blocked {
            log_failure(login, peer, protocol, "throttled-account");
            return Err(AuthError::Throttled);
        }

        // A password longer than any the policy allows cannot match; do not
        // feed megabytes to argon2 (4 bytes per character in UTF-8 at most).
        let max_bytes = inner.directory.policy().password_max_len.saturating_mul(4);
        if password.len() > max_bytes {
            self.record_failure(login, peer, protocol, Some(account.id), "password-too-long");
            return Err(AuthError::InvalidCredentials);
        }

        let cache_key = inner.secret.key(&login_key, password);
        let fingerprint = cache::fingerprint(&account.password_hash);
        let cached = lock(&inner.cache).hit(&cache_key, account.id, &fingerprint, Instant::now());
        if !cached {
            if !self
                .verify(Some(account.password_hash.clone()), password)
                .await?
            {
                self.record_failure(login, peer, protocol, Some(account.id), "bad-password");
                return Err(AuthError::InvalidCredentials);
            }
            lock(&inner.cache).insert(cache_key, account.id, fingerprint, Instant::now());
        }

        if account.disabled {
            warn!(
                target: "posthorn::auth",
                "auth refused: user={} ip={peer} protocol={protocol} reason=account-disabled",
                loggable(login)
            );
            return Err(AuthError::Disabled);
        }
        // Only the account's counter: resetting the IP's would let one
        // known account launder guesses against all the others.
        lock(&inner.by_account).reset(&account.id);
        debug!(
            target: "posthorn::auth",
            "auth ok: user={} ip={peer} protocol={protocol} account={} cached={cached}",
            loggable(login), account.address
        );
        Ok(AuthedAccount {
            id: account.id,
            address: account.address,
            short_login: account.short_login,
        })
    }

    /// Runs an argon2 check on the password threads; `None` checks against
    /// a dummy hash.
    async fn verify(&self, hash: Option<String>, password: &[u8]) -> Result<bool, AuthError> {
        let password = password.to_vec();
        password::off_reactor(move || {
            password::verify(hash.as_deref().unwrap_or_else(|| dummy_hash()), &password)
        })
        .await
        .map_err(AuthError::Temporary)
    }

    fn record_failure(
        &self,
        login: &str,
        peer: IpAddr,
        protocol: &str,
        account: Option<AccountId>,
        reason: &str,
    ) {
        let now = Instant::now();
        lock(&self.inner.by_ip).record(throttle::source(peer), now);
        if let Some(id) = account {
            lock(&self.inner.by_account).record(id, now);
        }
        log_failure(login, peer, protocol, reason);
    }
}

fn log_failure(login: &str, peer: IpAddr, protocol: &str, reason: &str) {
    metrics::counter!("posthorn_auth_failures_total", "protocol" => protocol.to_string())
        .increment(1);
    warn!(
        target: "posthorn::auth",
        "auth failed: user={} ip={peer} protocol={protocol} reason={reason}",
        loggable(login)
    );
}

/// A client-chosen user name as it may appear in a log line: at most 64
/// characters, whitespace and control characters replaced by `?`, so it can
/// neither break the line nor forge an `ip=` field of its own.
fn loggable(login: &str) -> String {
    login
        .chars()
        .take(64)
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '?'
            } else {
                c
            }
        })
        .collect()
}

/// A real argon2id hash to check unknown users against. Made once, on the
/// blocking pool where the first check needs it.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    // If hashing failed, the empty string fails to parse and the check is
    // merely faster: a timing hint, not a security hole.
    DUMMY.get_or_init(|| password::hash(b"posthorn timing equalizer").unwrap_or_default())
}

/// The maps are only touched briefly, never across an await; a panic while
/// one was held leaves it consistent enough to keep using.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_keep_one_token_per_field() {
        assert_eq!(loggable("ann@example.org"), "ann@example.org");
        assert_eq!(loggable("x ip=192.0.2.1\r\nfake"), "x?ip=192.0.2.1??fake");
        assert_eq!(loggable(&"a".repeat(100)).len(), 64);
    }
}
