//! DATA: stream the message into the store as it arrives, then deliver.
//! Memory per session stays at one read buffer plus the blob writer's chunk,
//! whatever the message size.

use delivery::{Envelope, Outcome};
use store::{BlobWriter, StagedBlob};
use tracing::{info, warn};

use super::io::DataRead;
use super::{Flow, Io, Session, now_unix};
use crate::ListenerKind;
use crate::proto::data::DataDecoder;
use crate::proto::received::{Trace, protocol};
use crate::proto::reply::Reply;
use crate::proto::submission::HeaderScan;
use directory::rfc5322_date;

/// Why a received message is not delivered.
enum Refusal {
    /// Bare LF or CR somewhere: see `proto::data`.
    BareNewline,
    TooBig,
    /// The store failed while receiving.
    Store,
}

impl Session<'_> {
    pub(super) async fn data(&mut self, io: &mut Io) -> std::io::Result<Flow> {
        let reply = match &self.tx {
            None => Some(Reply::new(503, "5.5.1", "Need MAIL command")),
            // RFC 2920 §3.1: after a pipelined group where every RCPT failed.
            Some(tx) if tx.recipients.is_empty() => {
                Some(Reply::new(554, "5.5.1", "No valid recipients"))
            }
            Some(_) => None,
        };
        if let Some(reply) = reply {
            self.reply(io, reply);
            return Ok(Flow::Continue);
        }
        let Some(tx) = self.tx.take() else {
            return Ok(Flow::Continue);
        };
        self.messages += 1;
        let id = format!("{:X}.{}.{}", now_unix(), self.conn_id, self.messages);
        io.queue(&Reply::bare(354, "End data with <CR><LF>.<CR><LF>"));

        let mut writer = Some(self.server.deliverer.store().blob_writer());
        let mut refusal = None;
        let mut headers = self.trace_headers(io, &id, &tx.recipients, &tx.trace_headers);
        // Submission holds the header section back to see what it lacks.
        let mut head = (self.server.config.kind != ListenerKind::Mx).then(HeaderScan::default);
        if head.is_none() {
            store_bytes(&mut writer, &mut refusal, headers.as_bytes()).await;
        }

        let max = self.server.config.max_message_size;
        let mut decoder = DataDecoder::new();
        let mut buf = Vec::new();
        let mut size: u64 = 0;
        loop {
            buf.clear();
            let read = io.read_data(&mut decoder, &mut buf).await?;
            size += buf.len() as u64;
            // Once refused, the rest is read (to find the real end) and
            // dropped; dropping the writer removes what it stored.
            if decoder.saw_bare_newline() {
                refusal = Some(Refusal::BareNewline);
            } else if size > max && refusal.is_none() {
                refusal = Some(Refusal::TooBig);
            }
            if refusal.is_some() {
                writer = None;
            }
            let end = matches!(read, DataRead::End);
            match head.as_mut() {
                Some(scan) => {
                    scan.push(&buf);
                    if scan.complete() || end {
                        let scan = head.take().unwrap_or_default();
                        let date = rfc5322_date(now_unix());
                        headers.push_str(&scan.missing_fields(
                            &id,
                            &self.server.config.hostname,
                            &date,
                        ));
                        store_bytes(&mut writer, &mut refusal, headers.as_bytes()).await;
                        store_bytes(&mut writer, &mut refusal, &scan.into_bytes()).await;
                    }
                }
                None => store_bytes(&mut writer, &mut refusal, &buf).await,
            }
            if end {
                break;
            }
        }

        let reply = match (refusal, writer) {
            (Some(Refusal::BareNewline), _) => {
                info!(%id, "message with bare LF or CR refused");
                Reply::new(
                    550,
                    "5.5.2",
                    "Message contains bare LF or CR (SMTP smuggling protection)",
                )
            }
            (Some(Refusal::TooBig), _) => {
                info!(%id, size, max, "message too big");
                Reply::new(552, "5.3.4", "Message too big")
            }
            (Some(Refusal::Store), _) | (None, None) => {
                Reply::new(451, "4.3.0", "Local error in processing, try again later")
            }
            (None, Some(writer)) => self.deliver(tx, writer, &id, size).await,
        };
        self.reply(io, reply);
        Ok(Flow::Continue)
    }

    /// Received (RFC 5321 §4.4) and the sender check's headers.
    fn trace_headers(&self, io: &Io, id: &str, recipients: &[String], extra: &[String]) -> String {
        let helo = self.helo.as_ref();
        let authenticated = self.auth.as_ref();
        let submission = self.server.config.kind != ListenerKind::Mx;
        let trace = Trace {
            helo: helo.map_or("unknown", |h| h.name.as_str()),
            peer: self.peer.ip(),
            hostname: &self.server.config.hostname,
            protocol: protocol(
                helo.is_some_and(|h| h.extended),
                io.is_tls(),
                authenticated.is_some(),
            ),
            tls: io.tls_info(),
            authenticated: authenticated
                .filter(|_| submission)
                .map(|a| a.address.as_str()),
            id,
            recipient: match recipients {
                [one] => Some(one.as_str()),
                _ => None,
            },
            time: now_unix(),
        };
        let mut headers = trace.header();
        for h in extra {
            headers.push_str(h);
        }
        headers
    }

    /// On submission, the From: header must name the user's own address or
    /// aliases too, like MAIL FROM (issue #3 item 2; `enforce_sender`).
    async fn check_from_header(&self, staged: &StagedBlob) -> Option<Reply> {
        let account = self.auth.as_ref()?;
        if self.server.config.kind == ListenerKind::Mx || !self.server.config.enforce_sender {
            return None;
        }
        for from in &staged.summary().envelope.from {
            let (Some(local), Some(host)) = (&from.mailbox, &from.host) else {
                continue; // group syntax markers
            };
            match self.owns_address(account, &format!("{local}@{host}")).await {
                Ok(true) => {}
                Ok(false) => {
                    info!(from = %format!("{local}@{host}"), "From: header not owned by user");
                    return Some(Reply::new(
                        553,
                        "5.7.1",
                        "From: header address not owned by user",
                    ));
                }
                Err(e) => {
                    warn!(error = %e, "directory lookup failed");
                    return Some(Reply::new(
                        451,
                        "4.3.0",
                        "Temporary lookup failure, try again later",
                    ));
                }
            }
        }
        None
    }

    async fn deliver(
        &self,
        tx: super::Transaction,
        writer: BlobWriter,
        id: &str,
        size: u64,
    ) -> Reply {
        let staged = writer.finish();
        if let Some(reply) = self.check_from_header(&staged).await {
            return reply;
        }
        let envelope = Envelope {
            sender: tx.sender,
            recipients: tx.recipients,
        };
        let outcomes = match self
            .server
            .deliverer
            .deliver_planned(&envelope, tx.plans, staged)
            .await
        {
            Ok(outcomes) => outcomes,
            Err(e) => {
                warn!(%id, error = %e, "delivery failed");
                return Reply::new(451, "4.3.0", "Local error in processing, try again later");
            }
        };
        let mut delivered = 0;
        let mut first_failure = None;
        for (rcpt, outcome) in envelope.recipients.iter().zip(&outcomes) {
            match outcome {
                Outcome::Delivered { .. } => delivered += 1,
                Outcome::Failed(failure) => {
                    // After one 250 for the whole message there is no way
                    // to report it to the client; the log must.
                    warn!(%id, %rcpt, ?failure, "recipient not delivered");
                    first_failure.get_or_insert(failure.clone());
                }
            }
        }
        if delivered > 0 {
            info!(%id, from = %envelope.sender, recipients = delivered, size, "message accepted");
            metrics::counter!("posthorn_messages_received_total").increment(1);
            return Reply::new(250, "2.0.0", format!("Ok: queued as {id}"));
        }
        match first_failure {
            Some(failure) => {
                let (code, status, text) = failure.smtp_reply();
                Reply::new(code, status, text)
            }
            None => Reply::new(451, "4.3.0", "Local error in processing, try again later"),
        }
    }
}

/// Appends to the message unless it is already refused; a store error
/// refuses it.
async fn store_bytes(writer: &mut Option<BlobWriter>, refusal: &mut Option<Refusal>, bytes: &[u8]) {
    let Some(w) = writer.as_mut() else {
        return;
    };
    if bytes.is_empty() {
        return;
    }
    if let Err(e) = w.write(bytes).await {
        warn!(error = %e, "storing message data failed");
        *refusal = Some(Refusal::Store);
        *writer = None;
    }
}
