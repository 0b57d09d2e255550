//! The one error type of the directory. Messages are written for the operator
//! who typed the command: they say what is wrong and, where there is one, the
//! command that fixes it.

use store::StoreError;

use crate::size::format_size;

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("invalid address {address:?}: {reason}")]
    InvalidAddress { address: String, reason: String },

    #[error("invalid domain name {domain:?}: {reason}")]
    InvalidDomain { domain: String, reason: String },

    #[error("domain {0} does not exist: add it with `posthorn domain add {0}`")]
    DomainNotFound(String),

    #[error("domain {0} already exists")]
    DomainExists(String),

    #[error(
        "domain {domain} still has {total} addresses ({accounts} accounts, {aliases} aliases, \
         {forwarders} forwarders): remove them first (see `posthorn account list {domain}`)",
        total = accounts + aliases + forwarders
    )]
    DomainInUse {
        domain: String,
        accounts: usize,
        aliases: usize,
        forwarders: usize,
    },

    #[error("unknown domain mode {0:?}: use `authoritative` or `relay`")]
    InvalidDomainMode(String),

    #[error("relay domain {0} needs a relay host: add `--relay-host HOST:PORT`")]
    RelayHostRequired(String),

    #[error("domain {0} is authoritative: a relay host only applies to `--mode relay`")]
    RelayHostNotAllowed(String),

    #[error("invalid relay host {value:?}: {reason} (expected HOST:PORT, e.g. mx.example.net:25)")]
    InvalidRelayHost { value: String, reason: String },

    #[error("address {address} is already in use as {used_as}")]
    AddressInUse { address: String, used_as: String },

    #[error("no account {0} (see `posthorn account list`)")]
    AccountNotFound(String),

    #[error("no alias {0} (see `posthorn alias list`)")]
    AliasNotFound(String),

    #[error("{alias} cannot be an alias of itself")]
    AliasToSelf { alias: String },

    #[error(
        "{target} is itself an alias: point {alias} at the account {target} leads to \
         (aliases never chain, so there are no loops)"
    )]
    AliasOfAlias { alias: String, target: String },

    #[error("{target} is a forwarder, not an account: an alias must point at an account")]
    AliasOfForwarder { target: String },

    #[error("alias limit reached: account {account} already has {limit} aliases")]
    AliasLimit { account: String, limit: usize },

    #[error("forwarder limit reached: {address} already forwards to {limit} destinations")]
    ForwarderLimit { address: String, limit: usize },

    #[error("{address} already forwards to {destination}")]
    ForwarderExists {
        address: String,
        destination: String,
    },

    #[error("{address} does not forward to {destination} (see `posthorn forward list`)")]
    ForwarderNotFound {
        address: String,
        destination: String,
    },

    #[error("{0} cannot forward to itself")]
    ForwardToSelf(String),

    #[error(
        "{address} is an alias of {account}: put the forwarder on the account {account} instead"
    )]
    ForwardOnAlias { address: String, account: String },

    #[error(
        "--keep-copy needs a mailbox to keep the copy in, and {0} is not an account: \
         create the account first or forward without keeping a copy"
    )]
    KeepCopyNeedsAccount(String),

    #[error("password too short: at least {min} characters")]
    PasswordTooShort { min: usize },

    #[error("password too long: at most {max} characters")]
    PasswordTooLong { max: usize },

    #[error(
        "password contains a NUL, CR or LF character, which SASL PLAIN, IMAP LOGIN and POP3 \
         PASS cannot carry"
    )]
    PasswordBadCharacter,

    #[error(
        "quota {} is out of range: between {} and {}",
        format_size(*quota),
        format_size(*min),
        format_size(*max)
    )]
    QuotaOutOfRange { quota: u64, min: u64, max: u64 },

    #[error("invalid size {value:?}: {reason} (examples: 1024, 500MB, 2GB, 1GiB)")]
    InvalidSize { value: String, reason: String },

    #[error("invalid display name: {0}")]
    InvalidDisplayName(String),

    #[error("invalid date {0:?}: expected YYYY-MM-DD, e.g. 2026-07-31")]
    InvalidDate(String),

    #[error("autoresponder start {start} is after its end {end}")]
    AutoresponderDates { start: String, end: String },

    #[error("autoresponder body is {size} bytes: at most {max} bytes")]
    AutoresponderBodyTooLarge { size: usize, max: usize },

    #[error("autoresponder body is empty")]
    AutoresponderBodyEmpty,

    #[error("autoresponder body contains a NUL character")]
    AutoresponderBodyNul,

    #[error("invalid autoresponder subject prefix: {0}")]
    InvalidSubjectPrefix(String),

    #[error("invalid blocklist sender {value:?}: {reason} (use a full address or *@domain)")]
    InvalidSenderPattern { value: String, reason: String },

    #[error("{account} already blocks {sender}")]
    BlocklistExists { account: String, sender: String },

    #[error("{account} does not block {sender}")]
    BlocklistNotFound { account: String, sender: String },

    #[error("blocklist limit reached: {account} already blocks {limit} senders")]
    BlocklistLimit { account: String, limit: usize },

    #[error("invalid [directory] configuration: {0}")]
    InvalidPolicy(String),

    #[error("could not find a free short login id after {0} attempts")]
    LoginIdsExhausted(usize),

    #[error("directory record {key} is unreadable ({reason}): run `posthorn verify`")]
    Corrupt { key: String, reason: String },
    #[error("key generation failed: {0}")]
    Crypto(String),

    #[error("store error: {0}")]
    Store(#[from] StoreError),

    #[error("internal error: {0}")]
    Internal(String),
}
