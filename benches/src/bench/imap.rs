//! IMAP client (RFC 9051/3501 subset: LOGIN, SELECT, FETCH, STORE, SEARCH, IDLE)
//! and the client-mix and new-sessions scenarios.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::conn::{Conn, Error, Result, Target};
use crate::report::{Figure, Report};
use crate::stats::{Budget, Recorder};
use crate::{Credentials, Outcome, ServerArgs, run_sessions};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Status {
    Ok,
    No,
    Bad,
}

/// The status of a tagged response line for `tag`, if it is one.
pub fn parse_tagged(line: &[u8], tag: &[u8]) -> Option<Status> {
    let rest = line.strip_prefix(tag)?.strip_prefix(b" ")?;
    let word = rest.split(|&b| b == b' ').next()?;
    let statuses: [(&[u8], Status); 3] = [
        (b"OK", Status::Ok),
        (b"NO", Status::No),
        (b"BAD", Status::Bad),
    ];
    statuses
        .into_iter()
        .find(|(w, _)| word.eq_ignore_ascii_case(w))
        .map(|(_, status)| status)
}

/// The size of the literal a line announces at its end (`{123}` or `{123+}`).
pub fn literal_len(line: &[u8]) -> Option<u64> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// N of an untagged `* N KEYWORD` line (`EXISTS`, `EXPUNGE`, ...).
pub fn untagged_number(line: &[u8], keyword: &[u8]) -> Option<u32> {
    let rest = line.strip_prefix(b"* ")?;
    let space = rest.iter().position(|&b| b == b' ')?;
    let (number, word) = (&rest[..space], &rest[space + 1..]);
    if !word.eq_ignore_ascii_case(keyword) || !number.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(number).ok()?.parse().ok()
}

/// A quoted string (RFC 9051 `quoted`).
pub fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// What a command's untagged responses said.
#[derive(Default, Debug)]
pub struct Response {
    pub exists: Option<u32>,
    pub literal_bytes: u64,
}

pub struct ImapClient {
    conn: Conn,
    next_tag: u32,
}

impl ImapClient {
    /// Connects and reads the greeting.
    pub async fn connect(target: &Target) -> Result<Self> {
        let mut conn = Conn::connect(target).await?;
        let greeting = conn.read_line().await?;
        if !greeting.starts_with(b"* OK") {
            return Err(Error::unexpected("greeting", greeting));
        }
        Ok(ImapClient { conn, next_tag: 1 })
    }

    fn tag(&mut self) -> String {
        self.next_tag += 1;
        format!("b{}", self.next_tag)
    }

    /// Sends a command and reads its responses, literals included, up to its
    /// tagged OK; NO and BAD are errors.
    pub async fn command(&mut self, command: &str) -> Result<Response> {
        let tag = self.tag();
        self.conn
            .send(format!("{tag} {command}\r\n").as_bytes())
            .await?;
        self.read_until_tagged(&tag, command).await
    }

    async fn read_until_tagged(&mut self, tag: &str, command: &str) -> Result<Response> {
        let mut response = Response::default();
        loop {
            let line = self.conn.read_line().await?;
            match parse_tagged(line, tag.as_bytes()) {
                Some(Status::Ok) => return Ok(response),
                Some(_) => return Err(Error::unexpected(command_name(command), line)),
                None => {}
            }
            if let Some(n) = untagged_number(line, b"EXISTS") {
                response.exists = Some(n);
            }
            let mut literal = literal_len(line);
            while let Some(n) = literal {
                self.conn.skip(n).await?;
                response.literal_bytes += n;
                literal = literal_len(self.conn.read_line().await?);
            }
        }
    }

    pub async fn login(&mut self, user: &str, password: &str) -> Result<()> {
        self.command(&format!("LOGIN {} {}", quote(user), quote(password)))
            .await
            .map(drop)
    }

    /// Selects a mailbox; returns its message count.
    pub async fn select(&mut self, mailbox: &str) -> Result<u32> {
        let command = format!("SELECT {}", quote(mailbox));
        let response = self.command(&command).await?;
        response
            .exists
            .ok_or_else(|| Error::unexpected(command, b"no EXISTS"))
    }

    /// Starts IDLE and waits for the continuation request.
    pub async fn idle(&mut self) -> Result<()> {
        let tag = self.tag();
        self.conn.send(format!("{tag} IDLE\r\n").as_bytes()).await?;
        loop {
            let line = self.conn.read_line().await?;
            if line.starts_with(b"+") {
                return Ok(());
            }
            if parse_tagged(line, tag.as_bytes()).is_some() {
                return Err(Error::unexpected("IDLE", line));
            }
        }
    }

    /// The next line the server sends (while idling).
    pub async fn read_line(&mut self) -> Result<&[u8]> {
        self.conn.read_line().await
    }

    pub async fn logout(mut self) -> Result<()> {
        self.command("LOGOUT").await.map(drop)
    }
}

/// A command's name for error messages, never its arguments (passwords).
fn command_name(command: &str) -> String {
    command.split(' ').next().unwrap_or(command).to_string()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Phase {
    /// Logged-in sessions running the client command mix.
    Mix,
    /// New sessions back to back: connect, LOGIN, SELECT, LOGOUT.
    Sessions,
}

#[derive(Args, Debug)]
pub struct ImapArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub credentials: Credentials,
    #[arg(long, default_value = "INBOX")]
    pub mailbox: String,
    #[arg(long, default_value_t = 10)]
    pub sessions: usize,
    /// Seconds per phase.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Rounds of the command mix per login (FETCH envelopes, FETCH a body,
    /// STORE, SEARCH, NOOP, APPEND, STORE \Deleted, EXPUNGE); then LOGOUT
    /// and log in again.
    #[arg(long, default_value_t = 10)]
    pub rounds: u32,
    /// Messages per `FETCH a:b (ENVELOPE FLAGS)`, as a client filling a list.
    #[arg(long, default_value_t = 20)]
    pub range: u32,
    /// SEARCH criteria.
    #[arg(long, default_value = "UNSEEN")]
    pub search: String,
    #[arg(long, value_delimiter = ',', default_value = "mix,sessions")]
    pub phases: Vec<Phase>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

const LOGIN: &str = "LOGIN";
const SELECT: &str = "SELECT";
const FETCH_LIST: &str = "FETCH a:b (ENVELOPE FLAGS)";
const FETCH_BODY: &str = "FETCH n BODY[]";
const STORE: &str = "STORE n ±FLAGS (\\Flagged)";
const SEARCH: &str = "SEARCH";
const NOOP: &str = "NOOP";
const APPEND: &str = "APPEND (LITERAL+, 300 B)";
const DELETE: &str = "STORE m +FLAGS.SILENT (\\Deleted)";
const EXPUNGE: &str = "EXPUNGE";
const LOGOUT: &str = "LOGOUT";
const SESSION: &str = "session (connect to LOGOUT)";
const ORDER: &[&str] = &[
    LOGIN, SELECT, FETCH_LIST, FETCH_BODY, STORE, SEARCH, NOOP, APPEND, DELETE, EXPUNGE, LOGOUT,
    SESSION,
];

/// Runs `f` and records its latency under `op`.
async fn timed<T>(
    rec: &mut Recorder,
    op: &'static str,
    f: impl Future<Output = Result<T>>,
) -> Result<T> {
    let start = Instant::now();
    let value = f.await?;
    rec.record(op, start.elapsed());
    Ok(value)
}

/// Logs in and selects, timing both.
async fn open(
    target: &Target,
    user: &str,
    password: &str,
    mailbox: &str,
    rec: &mut Recorder,
) -> Result<(ImapClient, u32)> {
    let mut client = ImapClient::connect(target).await?;
    timed(rec, LOGIN, client.login(user, password)).await?;
    let exists = timed(rec, SELECT, client.select(mailbox)).await?;
    Ok((client, exists))
}

struct MixSession {
    target: Target,
    user: String,
    password: String,
    mailbox: String,
    rounds: u32,
    range: u32,
    search: String,
    budget: Arc<Budget>,
    rng: StdRng,
}

impl MixSession {
    async fn run(mut self, rec: &mut Recorder) -> Result<()> {
        while self.budget.take() {
            let (mut client, exists) =
                open(&self.target, &self.user, &self.password, &self.mailbox, rec).await?;
            if exists == 0 {
                return Err(Error::Setup(format!(
                    "{} of {} is empty: deliver messages first",
                    self.mailbox, self.user
                )));
            }
            for round in 0..self.rounds {
                if round > 0 && !self.budget.take() {
                    break;
                }
                self.round(&mut client, exists, round, rec).await?;
            }
            timed(rec, LOGOUT, client.logout()).await?;
        }
        Ok(())
    }

    async fn round(
        &mut self,
        client: &mut ImapClient,
        exists: u32,
        round: u32,
        rec: &mut Recorder,
    ) -> Result<()> {
        let last = self.rng.random_range(1..=exists);
        let first = last.saturating_sub(self.range.max(1) - 1).max(1);
        let command = format!("FETCH {first}:{last} (ENVELOPE FLAGS)");
        timed(rec, FETCH_LIST, client.command(&command)).await?;

        let n = self.rng.random_range(1..=exists);
        let start = Instant::now();
        let body = client.command(&format!("FETCH {n} BODY[]")).await?;
        rec.record_bytes(FETCH_BODY, start.elapsed(), body.literal_bytes);

        let sign = if round.is_multiple_of(2) { '+' } else { '-' };
        let command = format!("STORE {n} {sign}FLAGS (\\Flagged)");
        timed(rec, STORE, client.command(&command)).await?;
        let command = format!("SEARCH {}", self.search);
        timed(rec, SEARCH, client.command(&command)).await?;
        timed(rec, NOOP, client.command("NOOP")).await?;

        // A message filed and removed again (a draft saved, then sent), so the
        // mailbox keeps its size. Each session has its own account.
        let message = format!(
            "From: bench@example.net\r\nSubject: draft {round}\r\n\r\n{}\r\n",
            "draft text ".repeat(22)
        );
        let command = format!(
            "APPEND {} {{{}+}}\r\n{message}",
            self.mailbox,
            message.len()
        );
        let appended = timed(rec, APPEND, client.command(&command)).await?;
        let m = appended.exists.unwrap_or(exists + 1);
        let command = format!("STORE {m} +FLAGS.SILENT (\\Deleted)");
        timed(rec, DELETE, client.command(&command)).await?;
        timed(rec, EXPUNGE, client.command("EXPUNGE")).await?;
        Ok(())
    }
}

async fn new_sessions(
    target: Target,
    user: String,
    password: String,
    mailbox: String,
    budget: Arc<Budget>,
    rec: &mut Recorder,
) -> Result<()> {
    while budget.take() {
        let start = Instant::now();
        let (client, _) = open(&target, &user, &password, &mailbox, rec).await?;
        timed(rec, LOGOUT, client.logout()).await?;
        rec.record(SESSION, start.elapsed());
    }
    Ok(())
}

pub async fn run(args: ImapArgs) -> Result<Vec<Report>> {
    let target = args.server.target()?;
    let duration = Duration::from_secs_f64(args.duration.max(0.0));
    let mut reports = Vec::new();
    for &phase in &args.phases {
        let budget = Arc::new(Budget::new(Some(duration), None));
        let outcome = run_sessions(args.sessions, |id| {
            let user = args.credentials.user(id);
            let (target, budget) = (target.clone(), budget.clone());
            let password = args.credentials.password.clone();
            let mailbox = args.mailbox.clone();
            let mix = MixSession {
                target: target.clone(),
                user: user.clone(),
                password: password.clone(),
                mailbox: mailbox.clone(),
                rounds: args.rounds.max(1),
                range: args.range,
                search: args.search.clone(),
                budget: budget.clone(),
                rng: StdRng::seed_from_u64(args.seed.wrapping_add(id as u64)),
            };
            async move {
                let mut rec = Recorder::default();
                let result = match phase {
                    Phase::Mix => mix.run(&mut rec).await,
                    Phase::Sessions => {
                        new_sessions(target, user, password, mailbox, budget, &mut rec).await
                    }
                };
                (rec, result)
            }
        })
        .await;
        reports.push(report(&args, &target, phase, outcome));
    }
    Ok(reports)
}

fn report(args: &ImapArgs, target: &Target, phase: Phase, outcome: Outcome) -> Report {
    let Outcome {
        recorder,
        failures,
        elapsed,
    } = outcome;
    let rows = recorder.rows(elapsed, ORDER);
    let seconds = elapsed.as_secs_f64().max(f64::EPSILON);
    let mut figures = Vec::new();
    match phase {
        Phase::Mix => {
            let commands: u64 = rows.iter().map(|r| r.count).sum();
            figures.push(Figure::new("commands", commands as f64 / seconds, "per s"));
        }
        Phase::Sessions => {
            let sessions = rows.iter().find(|r| r.operation == SESSION);
            let per_second = sessions.map_or(0.0, |r| r.per_second);
            figures.push(Figure::new("new sessions", per_second, "per s"));
        }
    }
    figures.push(Figure::new("failed sessions", failures.count as f64, ""));
    Report {
        label: None,
        scenario: match phase {
            Phase::Mix => "imap-mix",
            Phase::Sessions => "imap-sessions",
        },
        target: target.to_string(),
        parameters: json!({
            "sessions": args.sessions, "accounts": args.credentials.accounts,
            "mailbox": args.mailbox, "rounds_per_login": args.rounds,
            "fetch_range": args.range, "search": args.search,
        }),
        seconds: elapsed.as_secs_f64(),
        rows,
        figures,
        errors: failures.first,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_lines() {
        assert_eq!(parse_tagged(b"b2 OK done", b"b2"), Some(Status::Ok));
        assert_eq!(parse_tagged(b"b2 no [ALERT] x", b"b2"), Some(Status::No));
        assert_eq!(parse_tagged(b"b2 BAD", b"b2"), Some(Status::Bad));
        assert_eq!(parse_tagged(b"b23 OK done", b"b2"), None);
        assert_eq!(parse_tagged(b"* OK still here", b"b2"), None);
    }

    #[test]
    fn literals() {
        assert_eq!(literal_len(b"* 1 FETCH (BODY[] {1234}"), Some(1234));
        assert_eq!(literal_len(b"* 1 FETCH (BODY[] {12+}"), Some(12));
        assert_eq!(literal_len(b"* 1 FETCH (FLAGS (\\Seen))"), None);
        assert_eq!(literal_len(b"* OK {}"), None);
        assert_eq!(literal_len(b"* OK {1x}"), None);
    }

    #[test]
    fn untagged_numbers() {
        assert_eq!(untagged_number(b"* 17 EXISTS", b"EXISTS"), Some(17));
        assert_eq!(untagged_number(b"* 17 exists", b"EXISTS"), Some(17));
        assert_eq!(untagged_number(b"* 17 RECENT", b"EXISTS"), None);
        assert_eq!(untagged_number(b"* OK [UIDNEXT 4] x", b"EXISTS"), None);
        assert_eq!(untagged_number(b"b1 17 EXISTS", b"EXISTS"), None);
    }

    #[test]
    fn quoting() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
