//! `posthorn-bench`: a load generator for mail servers that speaks only standard
//! SMTP, IMAP and POP3 over TCP (optionally implicit TLS), so it can be pointed at
//! posthorn or at any other server on the machine.
//!
//!   posthorn-bench [--json] smtp --port 2525 --to 'bench{n}@bench.test' --accounts 8
//!   posthorn-bench [--json] imap --port 1143 --user 'bench{n}@bench.test' --password PW
//!   posthorn-bench [--json] idle --port 1143 --smtp-port 2525 --user ... --pid PID
//!   posthorn-bench [--json] pop3 --port 1110 --user ... --password PW
//!
//! `benches/run.sh` starts a daemon, creates the accounts and runs every scenario.
//! Each scenario prints a table, or with `--json` one JSON object per line.

mod conn;
mod idle;
mod imap;
mod pop3;
mod report;
mod smtp;
mod stats;

use std::future::Future;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};

use conn::{Result, Target};
use report::Failures;
use stats::Recorder;

#[derive(Parser, Debug)]
#[command(
    name = "posthorn-bench",
    version,
    about = "SMTP, IMAP and POP3 load generator"
)]
struct Cli {
    /// One JSON object per report instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// Also append each report as one JSON line to this file.
    #[arg(long, global = true, value_name = "FILE")]
    save: Option<std::path::PathBuf>,
    /// A name for the server under test, shown in tables and JSON.
    #[arg(long, global = true)]
    label: Option<String>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// SMTP ingest: parallel sessions sending messages back to back.
    Smtp(smtp::SmtpArgs),
    /// IMAP: a client-like command mix per session, then new sessions per second.
    Imap(imap::ImapArgs),
    /// IMAP IDLE: memory per idle session and push latency of SMTP deliveries.
    Idle(idle::IdleArgs),
    /// POP3: RETR throughput.
    Pop3(pop3::Pop3Args),
    /// Prints an argon2id PHC hash of PASSWORD with posthorn's parameters, to
    /// give another server under test the same cost per password check.
    HashPassword { password: String },
}

/// Where the server listens.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long)]
    pub port: u16,
    /// Implicit TLS (ports 465, 993, 995); the certificate is not checked.
    #[arg(long)]
    pub tls: bool,
}

impl ServerArgs {
    pub fn target(&self) -> Result<Target> {
        Target::new(&self.host, self.port, self.tls)
    }
}

/// Login name and password of the accounts a scenario uses.
#[derive(Args, Debug, Clone)]
pub struct Credentials {
    /// User name; `{n}` is replaced by the account number (0..accounts).
    #[arg(long)]
    pub user: String,
    #[arg(long)]
    pub password: String,
    /// Accounts the sessions are spread over: session i uses account i mod N.
    #[arg(long, default_value_t = 1)]
    pub accounts: usize,
}

impl Credentials {
    pub fn user(&self, session: usize) -> String {
        account(&self.user, session % self.accounts.max(1))
    }
}

/// An address or user name from a template with `{n}`.
pub fn account(template: &str, n: usize) -> String {
    template.replace("{n}", &n.to_string())
}

/// The run time: the given seconds, or 10 s when nothing else bounds the run.
pub fn duration_or_default(seconds: Option<f64>, unbounded: bool) -> Option<Duration> {
    match seconds {
        Some(s) => Some(Duration::from_secs_f64(s.max(0.0))),
        None if unbounded => Some(Duration::from_secs(10)),
        None => None,
    }
}

/// What a set of sessions measured.
pub struct Outcome {
    pub recorder: Recorder,
    pub failures: Failures,
    pub elapsed: Duration,
}

/// Runs `sessions` sessions at once; each returns what it recorded and how it
/// ended. Samples of a session that failed midway still count.
pub async fn run_sessions<F, Fut>(sessions: usize, session: F) -> Outcome
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = (Recorder, Result<()>)> + Send + 'static,
{
    let start = Instant::now();
    let tasks: Vec<_> = (0..sessions).map(|id| tokio::spawn(session(id))).collect();
    let mut recorder = Recorder::default();
    let mut failures = Failures::default();
    for task in tasks {
        match task.await {
            Ok((rec, result)) => {
                recorder.merge(rec);
                if let Err(e) = result {
                    failures.add(e);
                }
            }
            Err(e) => failures.add(format!("session task: {e}")),
        }
    }
    Outcome {
        recorder,
        failures,
        elapsed: start.elapsed(),
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let reports = match cli.scenario {
        Scenario::Smtp(args) => smtp::run(args).await.map(|r| vec![r]),
        Scenario::Imap(args) => imap::run(args).await,
        Scenario::Idle(args) => idle::run(args).await.map(|r| vec![r]),
        Scenario::Pop3(args) => pop3::run(args).await.map(|r| vec![r]),
        Scenario::HashPassword { password } => match hash_password(&password) {
            Ok(phc) => {
                println!("{phc}");
                return;
            }
            Err(e) => Err(conn::Error::Setup(e)),
        },
    };
    let reports = match reports {
        Ok(reports) => reports,
        Err(e) => {
            eprintln!("posthorn-bench: {e}");
            std::process::exit(1);
        }
    };
    for mut report in reports {
        report.label = cli.label.clone();
        if cli.json {
            println!("{}", report.json());
        } else {
            print!("{}", report.table());
        }
        if let Some(path) = &cli.save
            && let Err(e) = append_line(path, &report.json())
        {
            eprintln!("posthorn-bench: {}: {e}", path.display());
            std::process::exit(1);
        }
    }
}

/// argon2id with the argon2 crate's default parameters, as posthorn's directory
/// hashes passwords (m = 19 MiB, t = 2, p = 1).
fn hash_password(password: &str) -> std::result::Result<String, String> {
    use argon2::PasswordHasher;
    use argon2::password_hash::SaltString;
    use rand::RngCore;
    let mut salt = [0_u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| e.to_string())
}

fn append_line(path: &std::path::Path, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(file, "{line}")
}
