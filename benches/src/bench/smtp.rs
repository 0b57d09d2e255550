//! SMTP client (RFC 5321, PIPELINING when offered) and the ingest scenario.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::conn::{Conn, Error, Result, Target};
use crate::report::{Figure, Report, ServerProcess};
use crate::stats::{Budget, Recorder, SizeDistribution};
use crate::{ServerArgs, account, run_sessions};

/// One reply: its code and its last line.
#[derive(Debug, PartialEq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

/// Splits a reply line into its code and whether more lines follow (`250-`).
pub fn parse_reply_line(line: &[u8]) -> Option<(u16, bool)> {
    let code = line.get(..3)?;
    if !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code = std::str::from_utf8(code).ok()?.parse().ok()?;
    match line.get(3) {
        None | Some(b' ') => Some((code, false)),
        Some(b'-') => Some((code, true)),
        Some(_) => None,
    }
}

/// What happened to one message.
pub enum Sent {
    /// 250 after the final dot: when the dot was sent, and how long the reply took.
    Accepted {
        dot: Instant,
        after_dot: Duration,
    },
    Rejected(Reply),
}

pub struct SmtpClient {
    conn: Conn,
    pipelining: bool,
}

impl SmtpClient {
    /// Connects, reads the greeting and says EHLO.
    pub async fn connect(target: &Target, helo: &str) -> Result<Self> {
        let mut client = SmtpClient {
            conn: Conn::connect(target).await?,
            pipelining: false,
        };
        client.expect("greeting", 220).await?;
        client
            .conn
            .send(format!("EHLO {helo}\r\n").as_bytes())
            .await?;
        loop {
            let line = client.conn.read_line().await?;
            let (code, more) =
                parse_reply_line(line).ok_or_else(|| Error::unexpected("EHLO", line))?;
            if code != 250 {
                return Err(Error::unexpected("EHLO", line));
            }
            if line
                .get(4..)
                .is_some_and(|ext| ext.eq_ignore_ascii_case(b"PIPELINING"))
            {
                client.pipelining = true;
            }
            if !more {
                return Ok(client);
            }
        }
    }

    pub async fn reply(&mut self) -> Result<Reply> {
        loop {
            let line = self.conn.read_line().await?;
            let (code, more) =
                parse_reply_line(line).ok_or_else(|| Error::unexpected("SMTP", line))?;
            if !more {
                let text = String::from_utf8_lossy(line).into_owned();
                return Ok(Reply { code, text });
            }
        }
    }

    async fn expect(&mut self, command: &str, code: u16) -> Result<()> {
        let reply = self.reply().await?;
        if reply.code != code {
            return Err(Error::unexpected(command, reply.text.as_bytes()));
        }
        Ok(())
    }

    /// Sends one message. `content` is the message in pieces, each line ending in
    /// CRLF and none starting with a dot; the final dot is added here.
    pub async fn send_message(
        &mut self,
        from: &str,
        recipients: &[String],
        content: &[&[u8]],
    ) -> Result<Sent> {
        let mut refused = None;
        self.conn
            .write(format!("MAIL FROM:<{from}>\r\n").as_bytes())
            .await?;
        if !self.pipelining {
            self.conn.flush().await?;
            let mail = self.reply().await?;
            if mail.code != 250 {
                return self.reset(mail).await;
            }
        }
        let mut accepted = 0;
        for rcpt in recipients {
            self.conn
                .write(format!("RCPT TO:<{rcpt}>\r\n").as_bytes())
                .await?;
            if !self.pipelining {
                self.conn.flush().await?;
                match self.reply().await? {
                    r if r.code == 250 || r.code == 251 => accepted += 1,
                    r => refused = Some(r),
                }
            }
        }
        if !self.pipelining && accepted == 0 {
            let reply = refused.unwrap_or(Reply {
                code: 0,
                text: "no recipients".into(),
            });
            return self.reset(reply).await;
        }
        self.conn.send(b"DATA\r\n").await?;
        if self.pipelining {
            let mail = self.reply().await?;
            if mail.code != 250 {
                refused = Some(mail);
            }
            for _ in recipients {
                match self.reply().await? {
                    r if r.code == 250 || r.code == 251 => {}
                    r => refused = refused.or(Some(r)),
                }
            }
        }
        let data = self.reply().await?;
        if data.code != 354 {
            return self.reset(refused.unwrap_or(data)).await;
        }
        for piece in content {
            self.conn.write(piece).await?;
        }
        self.conn.send(b".\r\n").await?;
        let dot = Instant::now();
        let end = self.reply().await?;
        if end.code == 250 {
            Ok(Sent::Accepted {
                dot,
                after_dot: dot.elapsed(),
            })
        } else {
            Ok(Sent::Rejected(end))
        }
    }

    async fn reset(&mut self, why: Reply) -> Result<Sent> {
        self.conn.send(b"RSET\r\n").await?;
        self.expect("RSET", 250).await?;
        Ok(Sent::Rejected(why))
    }

    pub async fn quit(mut self) -> Result<()> {
        self.conn.send(b"QUIT\r\n").await?;
        self.expect("QUIT", 221).await
    }
}

/// Message bodies, one per size class: lines of random lowercase words, so that
/// neither the server's compression nor deduplication flatters it.
pub struct Bodies {
    sizes: SizeDistribution,
    fillers: Vec<Vec<u8>>,
}

const LINE: usize = 78;

impl Bodies {
    pub fn new(sizes: SizeDistribution, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let fillers = sizes
            .sizes()
            .map(|size| {
                let mut body = Vec::with_capacity(size + LINE);
                while body.len() < size {
                    for column in 0..LINE - 2 {
                        let word_break = column % 7 == 6;
                        body.push(if word_break {
                            b' '
                        } else {
                            b'a' + rng.random_range(0..26u8)
                        });
                    }
                    body.extend_from_slice(b"\r\n");
                }
                body
            })
            .collect();
        Bodies { sizes, fillers }
    }

    /// Picks a size class and returns the body that brings a message with
    /// `header_len` bytes of header to about that size (whole lines, at least one).
    pub fn pick(&self, rng: &mut impl Rng, header_len: usize) -> &[u8] {
        let filler = &self.fillers[self.sizes.pick(rng)];
        let want = filler.len().saturating_sub(header_len) / LINE * LINE;
        &filler[..want.max(LINE).min(filler.len())]
    }
}

pub fn header(from: &str, to: &[String], id: &str) -> String {
    format!(
        "From: Bench <{from}>\r\nTo: {}\r\nSubject: posthorn-bench {id}\r\n\
         Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nMessage-ID: <{id}@posthorn-bench>\r\n\r\n",
        to.join(", ")
    )
}

#[derive(Args, Debug)]
pub struct SmtpArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Envelope sender.
    #[arg(long, default_value = "bench@example.net")]
    pub from: String,
    /// Recipient; `{n}` is replaced by the account number (0..accounts).
    #[arg(long)]
    pub to: String,
    /// Accounts the messages are spread over, round robin.
    #[arg(long, default_value_t = 1)]
    pub accounts: usize,
    /// Message sizes with weights; k = 1,000, KiB = 1,024.
    #[arg(long, default_value = "2k:70,20k:25,500k:5")]
    pub sizes: SizeDistribution,
    #[arg(long, default_value_t = 20)]
    pub sessions: usize,
    /// Seconds to run (10 if neither this nor --messages is given).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Messages to send in all, then stop.
    #[arg(long)]
    pub messages: Option<u64>,
    /// The server process: its peak resident memory is reported.
    #[command(flatten)]
    pub process: ServerProcess,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

pub async fn run(args: SmtpArgs) -> Result<Report> {
    let target = args.server.target()?;
    let budget = Arc::new(Budget::new(
        crate::duration_or_default(args.duration, args.messages.is_none()),
        args.messages,
    ));
    let bodies = Arc::new(Bodies::new(args.sizes.clone(), args.seed));
    let (from, to, accounts, seed) = (args.from.clone(), args.to.clone(), args.accounts, args.seed);
    let sessions = args.sessions;
    let outcome = run_sessions(sessions, |id| {
        let (target, budget, bodies) = (target.clone(), budget.clone(), bodies.clone());
        let (from, to) = (from.clone(), to.clone());
        async move {
            let mut rec = Recorder::default();
            let result = async {
                let mut rng = StdRng::seed_from_u64(seed.wrapping_add(id as u64));
                let mut client = SmtpClient::connect(&target, "posthorn-bench.invalid").await?;
                let mut seq = 0usize;
                while budget.take() {
                    let rcpt = vec![account(&to, (id + seq * sessions) % accounts.max(1))];
                    let head = header(&from, &rcpt, &format!("{seed}.{id}.{seq}"));
                    let body = bodies.pick(&mut rng, head.len());
                    let start = Instant::now();
                    match client
                        .send_message(&from, &rcpt, &[head.as_bytes(), body])
                        .await?
                    {
                        Sent::Accepted { after_dot, .. } => {
                            let size = (head.len() + body.len()) as u64;
                            rec.record_bytes("message (DATA end → 250)", after_dot, size);
                            rec.record("transaction (MAIL → 250)", start.elapsed());
                        }
                        Sent::Rejected(reply) => {
                            rec.count("rejected messages");
                            rec.note(format!("rejected: {}", reply.text));
                        }
                    }
                    seq += 1;
                }
                client.quit().await
            }
            .await;
            (rec, result)
        }
    })
    .await;
    let mut rec = outcome.recorder;
    let mut figures = vec![
        Figure::new(
            "rejected messages",
            rec.counter("rejected messages") as f64,
            "",
        ),
        Figure::new("failed sessions", outcome.failures.count as f64, ""),
    ];
    if let Some(kib) = args.process.peak_kib() {
        figures.push(Figure::new("server peak RSS", kib as f64 / 1024.0, "MiB"));
    } else if let Some(kib) = args.process.resident_kib() {
        figures.push(Figure::new(
            "server memory after",
            kib as f64 / 1024.0,
            "MiB",
        ));
    }
    let mut errors = outcome.failures.first;
    errors.extend(rec.take_notes());
    let rows = rec.rows(
        outcome.elapsed,
        &["message (DATA end → 250)", "transaction (MAIL → 250)"],
    );
    Ok(Report {
        label: None,
        scenario: "smtp",
        target: target.to_string(),
        parameters: json!({
            "sessions": sessions, "accounts": accounts, "to": args.to,
            "sizes": args.sizes.to_string(), "mean_size": args.sizes.mean().round(),
            "messages": args.messages, "duration": args.duration,
        }),
        seconds: outcome.elapsed.as_secs_f64(),
        rows,
        figures,
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines() {
        assert_eq!(parse_reply_line(b"250-PIPELINING"), Some((250, true)));
        assert_eq!(parse_reply_line(b"250 OK"), Some((250, false)));
        assert_eq!(parse_reply_line(b"354"), Some((354, false)));
        assert_eq!(parse_reply_line(b"25"), None);
        assert_eq!(parse_reply_line(b"2x0 OK"), None);
        assert_eq!(parse_reply_line(b"250OK"), None);
    }

    #[test]
    fn bodies_are_whole_lines_near_the_size() {
        let bodies = Bodies::new("2k:1,20k:1".parse().unwrap(), 7);
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..20 {
            let body = bodies.pick(&mut rng, 200);
            assert!(body.ends_with(b"\r\n") && !body.starts_with(b"."));
            let total = body.len() + 200;
            assert!((1_900..2_100).contains(&total) || (19_900..20_100).contains(&total));
        }
    }
}
