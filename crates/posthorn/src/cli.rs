//! Command line (interface contract in DESIGN.md). Admin commands are plain data:
//! the CLI sends them to a running daemon over its management socket, or runs them
//! itself against the database when no daemon runs. One code path either way.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};

#[derive(Debug, Parser)]
#[command(
    name = "posthorn",
    version,
    about = "A complete mail server: SMTP, IMAP, POP3 on one RocksDB store"
)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, global = true, default_value = "/etc/posthorn/posthorn.toml")]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Serve,
    /// Build or check an SPF record (runs locally; needs neither daemon nor store).
    #[command(subcommand)]
    Spf(SpfCmd),
    #[command(flatten)]
    Admin(Admin),
}

#[derive(Debug, Clone, Subcommand)]
pub enum SpfCmd {
    /// Build a record from what may send mail for the domain.
    Build {
        /// The domain's MX hosts may send.
        #[arg(long)]
        mx: bool,
        /// The domain's own A/AAAA addresses may send.
        #[arg(long)]
        a: bool,
        /// An IPv4 address or network, e.g. 203.0.113.0/24 (repeatable).
        #[arg(long, value_name = "NET")]
        ip4: Vec<String>,
        /// An IPv6 address or network, e.g. 2001:db8::/32 (repeatable).
        #[arg(long, value_name = "NET")]
        ip6: Vec<String>,
        /// Also allow what another domain's SPF record allows (repeatable).
        #[arg(long, value_name = "DOMAIN")]
        include: Vec<String>,
        /// Everything else fails: `-all` (the default).
        #[arg(long, conflicts_with = "soft")]
        strict: bool,
        /// Everything else soft-fails: `~all` (while testing).
        #[arg(long)]
        soft: bool,
    },
    /// Check a record's syntax and its DNS lookup count, e.g. 'v=spf1 mx -all'.
    Check { record: String },
}

#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
pub enum Admin {
    /// Mail domains served here.
    #[command(subcommand)]
    Domain(DomainCmd),
    /// Mailboxes (accounts) users log in to.
    #[command(subcommand)]
    Account(AccountCmd),
    /// Extra addresses delivering into an account.
    #[command(subcommand)]
    Alias(AliasCmd),
    /// Addresses forwarding to other addresses.
    #[command(subcommand)]
    Forward(ForwardCmd),
    /// Out-of-office replies.
    #[command(subcommand)]
    Autoresponder(AutoresponderCmd),
    /// Senders an account refuses.
    #[command(subcommand)]
    Blocklist(BlocklistCmd),
    /// Mail waiting to leave this server.
    #[command(subcommand)]
    Queue(QueueCmd),
    /// Check the store's invariants (quota counters, reference counts, UIDs).
    Verify,
    /// Consistent copies of the whole store.
    #[command(subcommand)]
    Backup(BackupCmd),
}

#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
pub enum BackupCmd {
    /// Write a backup now (through the running daemon if there is one).
    Create {
        /// `[backup] dir` and `keep_days`, filled in from the configuration.
        #[arg(skip)]
        dir: PathBuf,
        #[arg(skip)]
        keep_days: u64,
    },
    /// The backups in `[backup] dir`, oldest first.
    List,
    /// Replace the store with backup ID (only while the daemon is stopped).
    Restore { id: String },
}

#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
pub enum QueueCmd {
    /// Every queued message: id, sender, recipients, attempts, next try, last error.
    List,
    /// Try every waiting message now.
    Flush,
    /// Drop a message from the queue without a bounce.
    Remove { id: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum Mode {
    /// Unknown recipients are rejected.
    Authoritative,
    /// Unknown recipients are passed to --relay-host.
    Relay,
}

#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
pub enum DomainCmd {
    Add {
        domain: String,
        #[arg(long, value_enum, default_value = "authoritative")]
        mode: Mode,
        #[arg(long, value_name = "HOST:PORT")]
        relay_host: Option<String>,
    },
    List,
    Remove {
        domain: String,
    },
    /// Print every DNS record to publish for the domain, ready to paste.
    Dns {
        domain: String,
    },
    /// Ask the configured resolvers for each record and say what is missing
    /// or wrong (non-zero exit if anything is).
    Check {
        domain: String,
    },
    /// The DKIM record's name and value, tab-separated; empty without a key.
    #[command(hide = true)]
    DkimRecord {
        domain: String,
    },
    /// Show the DKIM record to publish (generates a key if the domain has none).
    Dkim {
        domain: String,
        /// Replace the key with a new one.
        #[arg(long)]
        rotate: bool,
    },
}

#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
pub enum AccountCmd {
    Add {
        address: String,
        #[command(flatten)]
        password: PasswordArg,
        /// e.g. 500MB, 2GB, 1GiB.
        #[arg(long)]
        quota: Option<String>,
        #[arg(long)]
        name: Option<String>,
    },
    Passwd {
        address: String,
        #[command(flatten)]
        password: PasswordArg,
    },
    List {
        domain: Option<String>,
    },
    Show {
        address: String,
    },
    Remove {
        address: String,
    },
    /// Refuse logins (IMAP, POP3, SMTP AUTH) but keep the mail and keep
    /// receiving it.
    Disable {
        address: String,
    },
    Enable {
        address: String,
    },
    /// Write the account's folders to DIR (a new folder): Maildir as
    /// Dovecot lays it out, or one mbox file per folder.
    Export {
        address: String,
        #[arg(long, value_enum, default_value = "maildir")]
        format: ExportFormat,
        dir: PathBuf,
    },
    /// Add the messages of a Maildir (Dovecot's layout, with folders and
    /// flags) or of mbox files in DIR (or one mbox file) to the account.
    Import {
        address: String,
        dir: PathBuf,
        /// `[limits] max_message_size`, filled in from the configuration.
        #[arg(skip)]
        max_size: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum ExportFormat {
    Maildir,
    Mbox,
}

#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
#[group(required = true, multiple = false)]
pub struct PasswordArg {
    #[arg(long)]
    pub password: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    #[serde(skip)]
    pub password_stdin: bool,
}

#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
pub enum AliasCmd {
    Add { alias: String, account: String },
    Remove { alias: String },
    List,
}

#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
pub enum ForwardCmd {
    Add {
        address: String,
        destination: String,
        /// Also keep a copy in the account's INBOX (the address must be an account).
        #[arg(long)]
        keep_copy: bool,
    },
    Remove {
        address: String,
        destination: String,
    },
    List,
}

#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
pub enum AutoresponderCmd {
    Set {
        address: String,
        /// File with the reply text. The CLI reads it; the daemon gets the text.
        #[arg(long, value_name = "F")]
        body_file: PathBuf,
        #[arg(skip)]
        body: String,
        #[arg(long, value_name = "P")]
        subject_prefix: Option<String>,
        #[arg(long, value_name = "YYYY-MM-DD")]
        start: Option<String>,
        #[arg(long, value_name = "YYYY-MM-DD")]
        end: Option<String>,
        /// Remove the autoresponder once the end date has passed.
        #[arg(long)]
        delete_after_end: bool,
    },
    Off {
        address: String,
    },
    Show {
        address: String,
    },
}

#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
pub enum BlocklistCmd {
    Add { address: String, sender: String },
    Remove { address: String, sender: String },
    List { address: String },
}

impl Admin {
    /// Commands that name files on the server (backups, account export and
    /// import) or run in the CLI only: over the HTTP API they would let a
    /// token holder read and write anything the daemon's user can, so only
    /// the CLI on the server (management socket, mode 0600) may send them.
    pub fn local_only(&self) -> bool {
        matches!(
            self,
            Admin::Backup(_)
                | Admin::Account(AccountCmd::Export { .. } | AccountCmd::Import { .. })
                | Admin::Domain(DomainCmd::Dns { .. } | DomainCmd::Check { .. })
        )
    }

    /// Reads what only the CLI's side can read (stdin, local files) into the
    /// command, so the daemon receives plain data.
    pub fn prepare(&mut self) -> Result<(), String> {
        match self {
            Admin::Account(
                AccountCmd::Add { password, .. } | AccountCmd::Passwd { password, .. },
            ) if password.password_stdin => {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .map_err(|e| format!("cannot read password from stdin: {e}"))?;
                password.password = Some(line.trim_end_matches(['\r', '\n']).to_string());
                password.password_stdin = false;
            }
            Admin::Autoresponder(AutoresponderCmd::Set {
                body_file, body, ..
            }) => {
                *body = std::fs::read_to_string(&*body_file)
                    .map_err(|e| format!("cannot read --body-file {}: {e}", body_file.display()))?;
            }
            _ => {}
        }
        Ok(())
    }
}
