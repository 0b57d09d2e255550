//! POP3 client (RFC 1939: USER/PASS, STAT, RETR, QUIT) and the RETR throughput
//! scenario. Messages are only read, never deleted, so runs can be repeated.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;

use crate::conn::{Conn, Error, Result, Target};
use crate::report::{Figure, Report};
use crate::stats::{Budget, Recorder};
use crate::{Credentials, ServerArgs, run_sessions};

/// Message count and size of a `+OK n size` STAT reply.
pub fn parse_stat(line: &[u8]) -> Option<(u32, u64)> {
    let text = std::str::from_utf8(line.strip_prefix(b"+OK ")?).ok()?;
    let mut words = text.split_ascii_whitespace();
    Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
}

pub struct Pop3Client {
    conn: Conn,
}

impl Pop3Client {
    pub async fn connect(target: &Target) -> Result<Self> {
        let mut client = Pop3Client {
            conn: Conn::connect(target).await?,
        };
        client.ok("greeting").await?;
        Ok(client)
    }

    /// Reads a `+OK` status line; `-ERR` is an error naming `command`.
    async fn ok(&mut self, command: &str) -> Result<&[u8]> {
        let line = self.conn.read_line().await?;
        if !line.starts_with(b"+OK") {
            return Err(Error::unexpected(command, line));
        }
        Ok(line)
    }

    async fn command(&mut self, command: &str, name: &str) -> Result<&[u8]> {
        self.conn.send(format!("{command}\r\n").as_bytes()).await?;
        self.ok(name).await
    }

    pub async fn login(&mut self, user: &str, password: &str) -> Result<()> {
        self.command(&format!("USER {user}"), "USER").await?;
        self.command(&format!("PASS {password}"), "PASS").await?;
        Ok(())
    }

    /// Number of messages in the maildrop.
    pub async fn stat(&mut self) -> Result<u32> {
        let line = self.command("STAT", "STAT").await?;
        parse_stat(line)
            .map(|(count, _)| count)
            .ok_or_else(|| Error::unexpected("STAT", line))
    }

    /// Retrieves message `n`; returns its size in bytes (dot-stuffing undone).
    pub async fn retr(&mut self, n: u32) -> Result<u64> {
        self.command(&format!("RETR {n}"), "RETR").await?;
        let mut bytes = 0;
        loop {
            let line = self.conn.read_line().await?;
            if line == b"." {
                return Ok(bytes);
            }
            let unstuffed = line.strip_prefix(b".").unwrap_or(line);
            bytes += unstuffed.len() as u64 + 2;
        }
    }

    pub async fn quit(mut self) -> Result<()> {
        self.command("QUIT", "QUIT").await.map(drop)
    }
}

#[derive(Args, Debug)]
pub struct Pop3Args {
    #[command(flatten)]
    pub server: ServerArgs,
    /// POP3 servers lock a maildrop per session: give at least as many
    /// accounts as sessions.
    #[command(flatten)]
    pub credentials: Credentials,
    #[arg(long, default_value_t = 4)]
    pub sessions: usize,
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
}

const LOGIN: &str = "login (USER, PASS, STAT)";
const RETR: &str = "RETR";
const QUIT: &str = "QUIT";

async fn session(
    target: Target,
    user: String,
    password: String,
    budget: Arc<Budget>,
    rec: &mut Recorder,
) -> Result<()> {
    let start = Instant::now();
    let mut client = Pop3Client::connect(&target).await?;
    client.login(&user, &password).await?;
    let count = client.stat().await?;
    rec.record(LOGIN, start.elapsed());
    if count == 0 {
        return Err(Error::Setup(format!(
            "maildrop of {user} is empty: deliver messages first"
        )));
    }
    let mut n = 0;
    while budget.take() {
        n = n % count + 1;
        let start = Instant::now();
        let bytes = client.retr(n).await?;
        rec.record_bytes(RETR, start.elapsed(), bytes);
    }
    let start = Instant::now();
    client.quit().await?;
    rec.record(QUIT, start.elapsed());
    Ok(())
}

pub async fn run(args: Pop3Args) -> Result<Report> {
    let target = args.server.target()?;
    let budget = Arc::new(Budget::new(
        Some(Duration::from_secs_f64(args.duration.max(0.0))),
        None,
    ));
    let outcome = run_sessions(args.sessions, |id| {
        let (target, budget) = (target.clone(), budget.clone());
        let user = args.credentials.user(id);
        let password = args.credentials.password.clone();
        async move {
            let mut rec = Recorder::default();
            let result = session(target, user, password, budget, &mut rec).await;
            (rec, result)
        }
    })
    .await;
    Ok(Report {
        label: None,
        scenario: "pop3",
        target: target.to_string(),
        parameters: json!({
            "sessions": args.sessions, "accounts": args.credentials.accounts,
        }),
        seconds: outcome.elapsed.as_secs_f64(),
        rows: outcome.recorder.rows(outcome.elapsed, &[LOGIN, RETR, QUIT]),
        figures: vec![Figure::new(
            "failed sessions",
            outcome.failures.count as f64,
            "",
        )],
        errors: outcome.failures.first,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_replies() {
        assert_eq!(parse_stat(b"+OK 12 34567"), Some((12, 34567)));
        assert_eq!(parse_stat(b"+OK 0 0"), Some((0, 0)));
        assert_eq!(parse_stat(b"-ERR no"), None);
        assert_eq!(parse_stat(b"+OK twelve"), None);
    }
}
