//! Runs admin commands against the directory and store. The daemon runs them for
//! the management socket; the CLI runs them itself when no daemon is up.

use std::fmt::Write;

use std::sync::Arc;

use directory::{Autoresponder, Date, Directory, DomainMode, format_size, now_unix, parse_size};
use store::{Settle, Store};
use tokio::sync::Notify;

use crate::cli::{
    AccountCmd, Admin, AliasCmd, AutoresponderCmd, BackupCmd, BlocklistCmd, DomainCmd, ForwardCmd,
    Mode, PasswordArg, QueueCmd,
};

#[derive(Clone)]
pub struct AdminContext {
    pub store: Store,
    pub directory: Directory,
    /// Makes the running daemon's outbound queue runner read the queue
    /// again (`queue flush`).
    pub queue_rescan: Option<Arc<Notify>>,
}

/// The DKIM record line to publish.
fn dkim_record(key: &directory::DkimKey, domain: &str) -> String {
    let (name, value) = key.dns_record(domain);
    format!("{name}. IN TXT \"{value}\"")
}

fn password(p: PasswordArg) -> Result<String, String> {
    p.password
        .ok_or_else(|| "no password given: use --password PW or --password-stdin".into())
}

fn date(s: Option<String>) -> Result<Option<Date>, String> {
    s.map(|s| s.parse::<Date>().map_err(|e| e.to_string()))
        .transpose()
}

/// Runs one command; the text is what the CLI prints on success.
pub async fn execute(ctx: &AdminContext, cmd: Admin) -> Result<String, String> {
    run(ctx, cmd).await.map_err(|e| e.to_string())
}

async fn run(
    ctx: &AdminContext,
    cmd: Admin,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let d = &ctx.directory;
    let mut out = String::new();
    match cmd {
        Admin::Domain(DomainCmd::Add {
            domain,
            mode,
            relay_host,
        }) => {
            let mode = match mode {
                Mode::Authoritative => DomainMode::Authoritative,
                Mode::Relay => DomainMode::Relay,
            };
            let added = d.add_domain(&domain, mode, relay_host.as_deref()).await?;
            write!(out, "added domain {} ({})", added.name, added.mode)?;
            if mode == DomainMode::Authoritative {
                let key = d.generate_dkim_key(&added.name).await?;
                write!(
                    out,
                    "\nDKIM key generated; publish:\n{}",
                    dkim_record(&key, &added.name)
                )?;
            }
        }
        Admin::Domain(DomainCmd::List) => {
            for dom in d.list_domains().await? {
                writeln!(
                    out,
                    "{}\t{}\t{}",
                    dom.name,
                    dom.mode,
                    dom.relay_host.unwrap_or_default()
                )?;
            }
        }
        Admin::Domain(DomainCmd::Remove { domain }) => {
            d.remove_domain(&domain).await?;
            write!(out, "removed domain {domain}")?;
        }
        Admin::Domain(DomainCmd::Dkim { domain, rotate }) => {
            let key = match d.dkim_key(&domain).await? {
                Some(key) if !rotate => key,
                _ => d.generate_dkim_key(&domain).await?,
            };
            write!(out, "{}", dkim_record(&key, &domain.to_ascii_lowercase()))?;
        }
        Admin::Domain(DomainCmd::DkimRecord { domain }) => {
            let domain = domain.to_ascii_lowercase();
            if d.domain(&domain).await?.is_none() {
                return Err(format!(
                    "{domain} is not served here: add it with `posthorn domain add {domain}`"
                )
                .into());
            }
            if let Some(key) = d.dkim_key(&domain).await? {
                let (name, value) = key.dns_record(&domain);
                write!(out, "{name}\t{value}")?;
            }
        }
        Admin::Domain(DomainCmd::Dns { .. } | DomainCmd::Check { .. })
        | Admin::Backup(BackupCmd::List | BackupCmd::Restore { .. }) => {
            return Err("this command runs in the CLI, not in the daemon".into());
        }
        Admin::Backup(BackupCmd::Create { dir, keep_days }) => {
            out = crate::backup::create(&ctx.store, &dir, keep_days).await?;
        }
        Admin::Queue(QueueCmd::List) => {
            let now = now_unix();
            for (id, e) in ctx.store.queue().await? {
                let rcpts: Vec<&str> = e.recipients.iter().map(|r| r.address.as_str()).collect();
                writeln!(
                    out,
                    "{id}\t<{}>\t{}\t{} bytes\tattempts {}\tnext in {}s\t{}",
                    e.sender,
                    rcpts.join(","),
                    e.size,
                    e.attempts,
                    (e.next_attempt - now).max(0),
                    e.last_error
                )?;
            }
        }
        Admin::Queue(QueueCmd::Flush) => {
            let now = now_unix();
            let settles: Vec<Settle> = ctx
                .store
                .queue()
                .await?
                .into_iter()
                .map(|(id, _)| Settle::DueAt(id, now))
                .collect();
            let n = settles.len();
            ctx.store.settle_queue(settles).await?;
            if let Some(wake) = &ctx.queue_rescan {
                wake.notify_one();
            }
            write!(out, "{n} queued messages due now")?;
        }
        Admin::Queue(QueueCmd::Remove { id }) => {
            if ctx.store.queue_entry(id).await?.is_none() {
                return Err(format!("no queued message {id}").into());
            }
            ctx.store.settle_queue(vec![Settle::Remove(id)]).await?;
            write!(out, "removed queued message {id}")?;
        }
        Admin::Account(AccountCmd::Add {
            address,
            password: pw,
            quota,
            name,
        }) => {
            let quota = quota.as_deref().map(parse_size).transpose()?;
            let account = d.add_account(&address, &password(pw)?, quota, name).await?;
            // The contract: the short login id is the last word of the output.
            write!(
                out,
                "created account {} (quota {}), short login id {}",
                account.address,
                format_size(account.quota),
                account.short_login
            )?;
        }
        Admin::Account(AccountCmd::Passwd {
            address,
            password: pw,
        }) => {
            d.set_password(&address, &password(pw)?).await?;
            write!(out, "password of {address} changed")?;
        }
        Admin::Account(AccountCmd::List { domain }) => {
            for a in d.list_accounts(domain.as_deref()).await? {
                let used = ctx.store.quota_used(a.id).await.unwrap_or(0);
                writeln!(
                    out,
                    "{}\t{}\t{} of {}{}",
                    a.address,
                    a.short_login,
                    format_size(used),
                    format_size(a.quota),
                    if a.disabled { "\tdisabled" } else { "" }
                )?;
            }
        }
        Admin::Account(AccountCmd::Show { address }) => {
            let s = d.show_account(&address).await?;
            let a = &s.account;
            writeln!(out, "address:      {}", a.address)?;
            writeln!(out, "login id:     {}", a.short_login)?;
            writeln!(
                out,
                "name:         {}",
                a.display_name.as_deref().unwrap_or("")
            )?;
            writeln!(
                out,
                "quota:        {} of {} used",
                format_size(s.quota_used),
                format_size(a.quota)
            )?;
            writeln!(out, "disabled:     {}", a.disabled)?;
            writeln!(out, "aliases:      {}", s.aliases.join(", "))?;
            if let Some(f) = &s.forwarding {
                writeln!(
                    out,
                    "forwards to:  {} (keep copy: {})",
                    f.destinations.join(", "),
                    f.keep_copy
                )?;
            }
            for m in ctx.store.mailboxes(a.id).await? {
                writeln!(
                    out,
                    "folder:       {} ({} messages, {})",
                    m.info.name,
                    m.info.messages,
                    format_size(m.info.size)
                )?;
            }
        }
        Admin::Account(AccountCmd::Remove { address }) => {
            d.remove_account(&address).await?;
            write!(out, "removed account {address} and all its mail")?;
        }
        Admin::Account(AccountCmd::Disable { address }) => {
            d.set_disabled(&address, true).await?;
            write!(out, "{address} can no longer log in")?;
        }
        Admin::Account(AccountCmd::Export {
            address,
            format,
            dir,
        }) => {
            out = crate::export::export(ctx, &address, format, &dir).await?;
        }
        Admin::Account(AccountCmd::Import {
            address,
            dir,
            max_size,
        }) => {
            out = crate::export::import(ctx, &address, &dir, max_size).await?;
        }
        Admin::Account(AccountCmd::Enable { address }) => {
            d.set_disabled(&address, false).await?;
            write!(out, "{address} can log in again")?;
        }
        Admin::Alias(AliasCmd::Add { alias, account }) => {
            d.add_alias(&alias, &account).await?;
            write!(out, "{alias} now delivers to {account}")?;
        }
        Admin::Alias(AliasCmd::Remove { alias }) => {
            d.remove_alias(&alias).await?;
            write!(out, "removed alias {alias}")?;
        }
        Admin::Alias(AliasCmd::List) => {
            for a in d.list_aliases().await? {
                writeln!(out, "{}\t{}", a.alias, a.account)?;
            }
        }
        Admin::Forward(ForwardCmd::Add {
            address,
            destination,
            keep_copy,
        }) => {
            d.add_forwarder(&address, &destination, keep_copy).await?;
            write!(
                out,
                "{address} forwards to {destination}{}",
                if keep_copy { " (keeping a copy)" } else { "" }
            )?;
        }
        Admin::Forward(ForwardCmd::Remove {
            address,
            destination,
        }) => {
            d.remove_forwarder(&address, &destination).await?;
            write!(out, "{address} no longer forwards to {destination}")?;
        }
        Admin::Forward(ForwardCmd::List) => {
            for f in d.list_forwarders().await? {
                let keep = if f.forwarding.keep_copy {
                    "\tkeep-copy"
                } else {
                    ""
                };
                writeln!(
                    out,
                    "{}\t{}{keep}",
                    f.address,
                    f.forwarding.destinations.join(",")
                )?;
            }
        }
        Admin::Autoresponder(AutoresponderCmd::Set {
            address,
            body,
            subject_prefix,
            start,
            end,
            delete_after_end,
            ..
        }) => {
            let mut ar = Autoresponder {
                active: true,
                body,
                start: date(start)?,
                end: date(end)?,
                delete_after_end,
                ..Default::default()
            };
            if let Some(p) = subject_prefix {
                ar.subject_prefix = p;
            }
            d.set_autoresponder(&address, ar).await?;
            write!(out, "autoresponder of {address} is on")?;
        }
        Admin::Autoresponder(AutoresponderCmd::Off { address }) => {
            d.autoresponder_off(&address).await?;
            write!(out, "autoresponder of {address} is off")?;
        }
        Admin::Autoresponder(AutoresponderCmd::Show { address }) => {
            match d.autoresponder(&address).await? {
                None => write!(out, "{address} has no autoresponder")?,
                Some(ar) => {
                    writeln!(out, "active:         {}", ar.active)?;
                    writeln!(out, "subject prefix: {:?}", ar.subject_prefix)?;
                    writeln!(
                        out,
                        "start:          {}",
                        ar.start.map(|d| d.to_string()).unwrap_or_default()
                    )?;
                    writeln!(
                        out,
                        "end:            {}",
                        ar.end.map(|d| d.to_string()).unwrap_or_default()
                    )?;
                    writeln!(out, "body:\n{}", ar.body)?;
                }
            }
        }
        Admin::Blocklist(BlocklistCmd::Add { address, sender }) => {
            d.block_sender(&address, &sender).await?;
            write!(out, "{address} now refuses mail from {sender}")?;
        }
        Admin::Blocklist(BlocklistCmd::Remove { address, sender }) => {
            d.unblock_sender(&address, &sender).await?;
            write!(out, "{address} accepts mail from {sender} again")?;
        }
        Admin::Blocklist(BlocklistCmd::List { address }) => {
            for s in d.blocked_senders(&address).await? {
                writeln!(out, "{s}")?;
            }
        }
        Admin::Verify => {
            let r = ctx.store.verify().await?;
            write!(
                out,
                "{} accounts, {} folders, {} messages, {} stored message bodies, {} queued",
                r.accounts, r.mailboxes, r.messages, r.blobs, r.queued
            )?;
            if !r.problems.is_empty() {
                return Err(format!(
                    "{out}\n{} problems:\n{}",
                    r.problems.len(),
                    r.problems.join("\n")
                )
                .into());
            }
            write!(out, "; no problems")?;
        }
    }
    Ok(out.trim_end().to_string())
}
