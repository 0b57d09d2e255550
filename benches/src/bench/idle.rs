//! IDLE: N sessions idle on their INBOX; the server's resident memory before and
//! after tells the cost per idle session. Then messages are delivered over SMTP,
//! one at a time, and the time from the end of DATA until `* N EXISTS` reaches
//! each idling client is the push latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::conn::{Error, Result, Target};
use crate::imap::{ImapClient, untagged_number};
use crate::report::{Failures, Figure, Report, ServerProcess};
use crate::smtp::{Sent, SmtpClient, header};
use crate::stats::Row;
use crate::{Credentials, ServerArgs, account};

#[derive(Args, Debug)]
pub struct IdleArgs {
    /// The IMAP server.
    #[command(flatten)]
    pub server: ServerArgs,
    /// SMTP port on the same host that delivers to the idling accounts.
    #[arg(long)]
    pub smtp_port: u16,
    #[command(flatten)]
    pub credentials: Credentials,
    /// Recipient address per account (`{n}`); defaults to the user name.
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long, default_value = "bench@example.net")]
    pub from: String,
    #[arg(long, default_value = "INBOX")]
    pub mailbox: String,
    #[arg(long, default_value_t = 100)]
    pub sessions: usize,
    /// Messages delivered one after another while the sessions idle.
    #[arg(long, default_value_t = 20)]
    pub messages: u32,
    /// The server process(es): memory per idle session is reported.
    #[command(flatten)]
    pub process: ServerProcess,
    /// Sessions logging in at the same time while they are opened.
    #[arg(long, default_value_t = 50)]
    pub connect_concurrency: usize,
    /// Seconds to wait after the last session idles before reading memory.
    #[arg(long, default_value_t = 1.0)]
    pub settle: f64,
    /// Skip logging in to every account once before the first memory reading.
    /// The warm-up keeps the server's first password checks (and whatever its
    /// allocator keeps of them) out of the per-session figure.
    #[arg(long)]
    pub no_warm_up: bool,
    /// Seconds to wait for all sessions to idle; late ones count as failed.
    #[arg(long, default_value_t = 300.0)]
    pub open_timeout: f64,
    /// Seconds to wait for every client's push of one message.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
}

enum Event {
    Idling(usize),
    /// `delta` messages more than at SELECT.
    Exists {
        session: usize,
        delta: u32,
        at: Instant,
    },
    Failed(usize, Error),
}

async fn idle_session(
    id: usize,
    target: Target,
    user: String,
    password: String,
    mailbox: String,
    gate: Arc<Semaphore>,
    events: mpsc::UnboundedSender<Event>,
) -> Result<()> {
    let (mut client, base) = {
        let _permit = gate
            .acquire()
            .await
            .map_err(|e| Error::Setup(e.to_string()))?;
        let mut client = ImapClient::connect(&target).await?;
        client.login(&user, &password).await?;
        let base = client.select(&mailbox).await?;
        client.idle().await?;
        (client, base)
    };
    let _ = events.send(Event::Idling(id));
    loop {
        let line = client.read_line().await?;
        if let Some(n) = untagged_number(line, b"EXISTS") {
            let event = Event::Exists {
                session: id,
                delta: n.saturating_sub(base),
                at: Instant::now(),
            };
            if events.send(event).is_err() {
                return Ok(());
            }
        }
    }
}

/// The idling sessions and what they report.
struct Idlers {
    tasks: Vec<JoinHandle<()>>,
    events: mpsc::UnboundedReceiver<Event>,
    /// Per session: messages seen since SELECT; `None` once it failed.
    seen: Vec<Option<u32>>,
    failures: Failures,
}

impl Idlers {
    async fn open(args: &IdleArgs, target: &Target) -> Self {
        let (tx, events) = mpsc::unbounded_channel();
        let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
        let tasks = (0..args.sessions)
            .map(|id| {
                let (tx, gate, target) = (tx.clone(), gate.clone(), target.clone());
                let user = args.credentials.user(id);
                let password = args.credentials.password.clone();
                let mailbox = args.mailbox.clone();
                tokio::spawn(async move {
                    let result =
                        idle_session(id, target, user, password, mailbox, gate, tx.clone()).await;
                    if let Err(e) = result {
                        let _ = tx.send(Event::Failed(id, e));
                    }
                })
            })
            .collect();
        let mut idlers = Idlers {
            tasks,
            events,
            seen: vec![None; args.sessions],
            failures: Failures::default(),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(args.open_timeout);
        let mut settled = 0;
        while settled < args.sessions {
            let Ok(event) = tokio::time::timeout_at(deadline, idlers.events.recv()).await else {
                for _ in settled..args.sessions {
                    idlers.failures.add("not idling before --open-timeout");
                }
                break;
            };
            match event {
                Some(Event::Idling(id)) => {
                    idlers.seen[id] = Some(0);
                    settled += 1;
                }
                Some(Event::Failed(_, e)) => {
                    idlers.failures.add(e);
                    settled += 1;
                }
                Some(Event::Exists { .. }) => {}
                None => break,
            }
        }
        idlers
    }

    fn idling(&self) -> usize {
        self.seen.iter().flatten().count()
    }

    /// Waits until every live session has seen `count` new messages; returns
    /// when each one saw the `count`th, and how many did not within `timeout`.
    async fn wait_for(&mut self, count: u32, timeout: Duration) -> (Vec<Instant>, usize) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut arrivals = Vec::new();
        let pending = |seen: &[Option<u32>]| seen.iter().flatten().filter(|&&s| s < count).count();
        while pending(&self.seen) > 0 {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(Event::Exists { session, delta, at })) => {
                    if let Some(seen) = self.seen[session].as_mut() {
                        if *seen < count && delta >= count {
                            arrivals.push(at);
                        }
                        *seen = (*seen).max(delta);
                    }
                }
                Ok(Some(Event::Failed(session, e))) => {
                    self.failures.add(e);
                    self.seen[session] = None;
                }
                Ok(Some(Event::Idling(_))) => {}
                Ok(None) | Err(_) => break,
            }
        }
        (arrivals, pending(&self.seen))
    }
}

impl Drop for Idlers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

pub async fn run(args: IdleArgs) -> Result<Report> {
    let imap = args.server.target()?;
    let smtp = Target::new(&args.server.host, args.smtp_port, false)?;
    if !args.no_warm_up {
        for n in 0..args.credentials.accounts.clamp(1, args.sessions.max(1)) {
            let mut client = ImapClient::connect(&imap).await?;
            client
                .login(&args.credentials.user(n), &args.credentials.password)
                .await?;
            client.logout().await?;
        }
    }
    let before = args.process.resident_kib();
    let start = Instant::now();
    let mut idlers = Idlers::open(&args, &imap).await;
    let opened = start.elapsed();
    tokio::time::sleep(Duration::from_secs_f64(args.settle.max(0.0))).await;
    let after = args.process.resident_kib();
    let idling = idlers.idling();

    let template = args.to.as_deref().unwrap_or(&args.credentials.user);
    let accounts = args.credentials.accounts.clamp(1, args.sessions.max(1));
    let recipients: Vec<String> = (0..accounts).map(|n| account(template, n)).collect();
    let mut sender = SmtpClient::connect(&smtp, "posthorn-bench.invalid").await?;
    let mut push = Vec::new();
    let mut delivery = Vec::new();
    let mut missed = 0;
    let timeout = Duration::from_secs_f64(args.timeout.max(0.0));
    for k in 1..=args.messages {
        let head = header(&args.from, &recipients, &format!("idle.{k}"));
        let body = b"An IDLE push latency probe.\r\n";
        let dot = match sender
            .send_message(&args.from, &recipients, &[head.as_bytes(), body])
            .await?
        {
            Sent::Accepted { dot, after_dot } => {
                delivery.push(after_dot);
                dot
            }
            Sent::Rejected(reply) => {
                return Err(Error::unexpected(
                    "delivery to idling accounts",
                    reply.text.as_bytes(),
                ));
            }
        };
        let (arrivals, late) = idlers.wait_for(k, timeout).await;
        push.extend(
            arrivals
                .into_iter()
                .map(|at| at.saturating_duration_since(dot)),
        );
        missed += late;
    }
    sender.quit().await?;
    let elapsed = start.elapsed();

    let mut figures = vec![
        Figure::new("idling sessions", idling as f64, ""),
        Figure::new(
            "sessions opened",
            idling as f64 / opened.as_secs_f64().max(f64::EPSILON),
            "per s",
        ),
        Figure::new("missed pushes", missed as f64, ""),
        Figure::new("failed sessions", idlers.failures.count as f64, ""),
    ];
    if let (Some(before), Some(after)) = (before, after) {
        figures.push(Figure::new("server memory before", before as f64, "KiB"));
        figures.push(Figure::new("server memory idling", after as f64, "KiB"));
        let per_session = (after as f64 - before as f64) / idling.max(1) as f64;
        figures.push(Figure::new(
            "server memory per idle session",
            per_session,
            "KiB",
        ));
    }
    let deliveries = Row::new("delivery (DATA end → 250)", delivery, 0, elapsed);
    let pushes = Row::new("push (DATA end → * EXISTS)", push, 0, elapsed);
    Ok(Report {
        label: None,
        scenario: "idle",
        target: imap.to_string(),
        parameters: json!({
            "sessions": args.sessions, "accounts": accounts, "messages": args.messages,
            "smtp": smtp.to_string(),
        }),
        seconds: elapsed.as_secs_f64(),
        rows: vec![deliveries, pushes],
        figures,
        errors: std::mem::take(&mut idlers.failures.first),
    })
}
