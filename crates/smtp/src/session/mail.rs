//! MAIL and RCPT: who may send, and the relay policy.

use delivery::{Failure, RecipientPlan, Route};
use directory::auth::AuthedAccount;
use directory::{DirectoryError, Resolution};
use tracing::{debug, info, warn};

use super::{Session, Transaction};
use crate::proto::address::{Domain, ForwardPath, Mailbox};
use crate::proto::command::MailParams;
use crate::proto::reply::Reply;
use crate::{ListenerKind, SenderInfo, SenderVerdict};

fn relay_denied() -> Reply {
    Reply::new(550, "5.7.1", "relay not permitted")
}

fn temporary() -> Reply {
    Reply::new(451, "4.3.0", "Temporary lookup failure, try again later")
}

impl Session<'_> {
    pub(super) async fn mail(&mut self, from: Option<Mailbox>, params: MailParams) -> Reply {
        let config = &self.server.config;
        let Some(helo) = &self.helo else {
            return Reply::new(503, "5.5.1", "Send EHLO/HELO first");
        };
        if self.tx.is_some() {
            return Reply::new(503, "5.5.1", "Nested MAIL command");
        }
        if !helo.extended && params != MailParams::default() {
            return Reply::new(555, "5.5.4", "ESMTP parameters need EHLO");
        }
        if config.kind != ListenerKind::Mx && self.auth.is_none() {
            return Reply::new(530, "5.7.0", "Authentication required");
        }
        // RFC 1870 §6.1.
        if params
            .size
            .is_some_and(|size| size > config.max_message_size)
        {
            return Reply::new(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            );
        }
        let sender = from.as_ref().map(Mailbox::to_string).unwrap_or_default();
        // RFC 6531 §3.4: non-ASCII addresses only in an SMTPUTF8 transaction.
        if !params.smtputf8 && !sender.is_ascii() {
            return Reply::new(553, "5.6.7", "Non-ASCII sender address needs SMTPUTF8");
        }
        if let (Some(account), Some(mailbox)) = (&self.auth, &from)
            && config.enforce_sender
        {
            match self.owns(account, mailbox).await {
                Ok(true) => {}
                Ok(false) => {
                    info!(sender = %sender, "sender address not owned by user");
                    return Reply::new(553, "5.7.1", "Sender address not owned by user");
                }
                Err(e) => {
                    warn!(error = %e, "directory lookup failed");
                    return temporary();
                }
            }
        }
        let trace_headers = match (&self.server.sender_check, &self.auth, config.kind) {
            (Some(check), None, ListenerKind::Mx) => {
                let info = SenderInfo {
                    peer: self.peer.ip(),
                    helo: &helo.name,
                    sender: &sender,
                };
                match check.check(info).await {
                    SenderVerdict::Accept { trace_headers } => trace_headers,
                    SenderVerdict::Reject(reply) => {
                        info!(sender = %sender, code = reply.code, "sender refused");
                        return reply;
                    }
                }
            }
            _ => Vec::new(),
        };
        debug!(sender = %sender, "MAIL");
        self.tx = Some(Transaction {
            sender,
            recipients: Vec::new(),
            declared_size: params.size.unwrap_or(0),
            plans: Vec::new(),
            trace_headers,
        });
        Reply::new(250, "2.1.0", "Sender OK")
    }

    /// Whether `mailbox` is the account's address or one of its aliases
    /// (case-insensitively, as the directory compares).
    async fn owns(
        &self,
        account: &AuthedAccount,
        mailbox: &Mailbox,
    ) -> Result<bool, DirectoryError> {
        if !matches!(mailbox.domain, Domain::Name(_)) {
            return Ok(false);
        }
        self.owns_address(account, &mailbox.to_string()).await
    }

    /// Whether `address` is the account's own or one of its aliases.
    pub(super) async fn owns_address(
        &self,
        account: &AuthedAccount,
        address: &str,
    ) -> Result<bool, DirectoryError> {
        if address.eq_ignore_ascii_case(&account.address) {
            return Ok(true);
        }
        match self.server.directory.resolve(address).await {
            Ok(Resolution::Account { id }) => Ok(id == account.id),
            Ok(Resolution::Alias { account_id, .. }) => Ok(account_id == account.id),
            Ok(_) => Ok(false),
            Err(DirectoryError::InvalidAddress { .. } | DirectoryError::InvalidDomain { .. }) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    pub(super) async fn rcpt(&mut self, to: ForwardPath) -> Reply {
        let config = &self.server.config;
        let Some(tx) = &self.tx else {
            return Reply::new(503, "5.5.1", "Need MAIL command");
        };
        if tx.recipients.len() >= config.max_recipients {
            return Reply::new(452, "4.5.3", "Too many recipients");
        }
        let mailbox = match to {
            ForwardPath::Mailbox(m) => m,
            // RFC 5321 §4.1.1.3: the postmaster of this host.
            ForwardPath::Postmaster => Mailbox {
                local: "postmaster".into(),
                domain: Domain::Name(config.hostname.clone()),
            },
        };
        let address = mailbox.to_string();
        let authenticated = self.auth.is_some();
        // An address literal is never one of our domains.
        let reply = if matches!(mailbox.domain, Domain::Literal(_)) {
            if authenticated {
                Ok(RecipientPlan {
                    address: address.clone(),
                    route: Route::Outbound,
                    remote: vec![address.clone()],
                    ..Default::default()
                })
            } else {
                Err(relay_denied())
            }
        } else {
            let (sender, size) = (tx.sender.clone(), tx.declared_size);
            self.check_recipient(&sender, &address, authenticated, size)
                .await
        };
        match reply {
            Ok(plan) => {
                debug!(rcpt = %address, "RCPT");
                if let Some(tx) = &mut self.tx {
                    tx.recipients.push(address);
                    tx.plans.push(plan);
                }
                Reply::new(250, "2.1.5", "Recipient OK")
            }
            Err(reply) => {
                info!(rcpt = %address, code = reply.code, "recipient refused");
                reply
            }
        }
    }

    /// The relay decision: local recipients from anyone, everything else
    /// only from authenticated users, through the outbound queue. The
    /// directory sees the final mailbox exactly as parsed, so `%`, `!` and
    /// quoted `@` never reroute anything. A blocked sender is refused here,
    /// never accepted and dropped.
    async fn check_recipient(
        &self,
        sender: &str,
        address: &str,
        authenticated: bool,
        size: u64,
    ) -> Result<RecipientPlan, Reply> {
        let plan = match self
            .server
            .deliverer
            .check_recipient(sender, address, authenticated)
            .await
        {
            Ok(plan) => plan,
            Err(e) => {
                warn!(error = %e, rcpt = %address, "recipient lookup failed");
                return Err(temporary());
            }
        };
        match plan.failure {
            Some(Failure::NotLocal) => Err(relay_denied()),
            Some(failure) => {
                let (code, status, text) = failure.smtp_reply();
                Err(Reply::new(code, status, text))
            }
            None => {
                // A full mailbox is answered now rather than after DATA: every
                // account this address reaches must lack room (issue #3, item 8).
                let mut any_room = plan.local.is_empty() || !plan.remote.is_empty();
                for &account in &plan.local {
                    match self.server.deliverer.has_room(account, size).await {
                        Ok(true) => any_room = true,
                        Ok(false) => {}
                        Err(e) => {
                            warn!(error = %e, rcpt = %address, "quota lookup failed");
                            return Err(temporary());
                        }
                    }
                }
                if any_room {
                    Ok(plan)
                } else {
                    Err(Reply::new(452, "4.2.2", "Mailbox full"))
                }
            }
        }
    }
}
