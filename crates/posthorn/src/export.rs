//! `account export|import`: one account's folders as Maildir (the layout
//! Dovecot writes: INBOX in the top folder, others in `.Sent`,
//! `.Archive.2024`, names in modified UTF-7, flags in the `:2,` suffix,
//! keywords through `dovecot-keywords`, the internal date as the file's mtime)
//! or as mbox files (`Sent.mbox`, `Archive/2024.mbox`, mboxrd quoting, flags
//! read from `Status:`/`X-Status:` on import).
//!
//! Imported files are hostile input: symlinks and special files are skipped,
//! sizes are bounded, and anything malformed is reported, never a panic.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use directory::now_unix as now;
use imap::proto::date::parse_date_time;
use imap::proto::utf7;
use store::{Flags, MailboxRef, StagedBlob, Store, StoreError, Target};

use crate::admin::AdminContext;
use crate::cli::ExportFormat;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The store's hierarchy delimiter (`store::mailbox::DELIMITER`).
const DELIMITER: char = '/';

/// Maildir info letters (`:2,` suffix) for system flags, in ASCII order as
/// the Maildir spec wants them written.
const LETTERS: [(char, u8); 4] = [
    ('D', Flags::DRAFT),
    ('F', Flags::FLAGGED),
    ('R', Flags::ANSWERED),
    ('S', Flags::SEEN),
];
/// `X-Status:` letters in mbox files (mutt, Dovecot); `Status: R` is `\Seen`.
const X_STATUS: [(u8, u8); 4] = [
    (b'A', Flags::ANSWERED),
    (b'F', Flags::FLAGGED),
    (b'T', Flags::DRAFT),
    (b'D', Flags::DELETED),
];
/// `T` (trashed) is `\Deleted`.
const TRASHED: (char, u8) = ('T', Flags::DELETED);

async fn account_of(ctx: &AdminContext, address: &str) -> Result<(u64, u64), Error> {
    let account = ctx
        .directory
        .account(address)
        .await?
        .ok_or_else(|| format!("no account {address}"))?;
    Ok((account.id, account.quota))
}

fn ensure_empty(dir: &Path) -> Result<(), Error> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(
                    format!("{} is not empty: export into a new folder", dir.display()).into(),
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", dir.display()).into()),
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(())
}

async fn message_bytes(store: &Store, blob: u64) -> Result<Vec<u8>, Error> {
    let mut reader = store.open_blob(blob).await?;
    let mut out = Vec::with_capacity(usize::try_from(reader.size()).unwrap_or(0));
    while let Some(chunk) = reader.next_chunk().await? {
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// `account export ADDRESS --format F DIR`.
pub async fn export(
    ctx: &AdminContext,
    address: &str,
    format: ExportFormat,
    dir: &Path,
) -> Result<String, Error> {
    let (account, _) = account_of(ctx, address).await?;
    ensure_empty(dir)?;
    let mut folders = 0;
    let mut messages = 0;
    for mailbox in ctx.store.mailboxes(account).await? {
        let name = &mailbox.info.name;
        let records = ctx.store.list(account, mailbox.id, 1..=u32::MAX).await?;
        folders += 1;
        match format {
            ExportFormat::Maildir => {
                let folder = dir.join(maildir_folder(name));
                for sub in ["cur", "new", "tmp"] {
                    std::fs::create_dir_all(folder.join(sub))
                        .map_err(|e| format!("cannot create {}: {e}", folder.display()))?;
                }
                let mut keywords = Keywords::default();
                for (uid, rec) in &records {
                    let info = keywords.info(&rec.flags)?;
                    let file = folder.join("cur").join(format!(
                        "{}.U{uid}V{}.posthorn,S={}:2,{info}",
                        rec.internal_date, mailbox.info.uidvalidity, rec.size
                    ));
                    let bytes = message_bytes(&ctx.store, rec.blob).await?;
                    write_file(&file, &bytes, rec.internal_date)?;
                    messages += 1;
                }
                keywords.save(&folder)?;
            }
            ExportFormat::Mbox => {
                let file = dir.join(format!("{name}.mbox"));
                if let Some(parent) = file.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
                }
                let mut out = std::io::BufWriter::new(
                    std::fs::File::create(&file)
                        .map_err(|e| format!("cannot create {}: {e}", file.display()))?,
                );
                for (_, rec) in &records {
                    let bytes = message_bytes(&ctx.store, rec.blob).await?;
                    write_mbox_message(&mut out, &bytes, rec.internal_date, &rec.flags)
                        .map_err(|e| format!("{}: {e}", file.display()))?;
                    messages += 1;
                }
                out.flush()
                    .map_err(|e| format!("{}: {e}", file.display()))?;
            }
        }
    }
    Ok(format!(
        "exported {messages} messages in {folders} folders of {address} to {}",
        dir.display()
    ))
}

/// `Archive/2024` → `.Archive.2024`; INBOX is the top folder itself.
fn maildir_folder(name: &str) -> String {
    if name == store::INBOX {
        return String::new();
    }
    let parts: Vec<String> = name
        .split(DELIMITER)
        .map(|p| utf7::encode(p).replace('.', "_"))
        .collect();
    format!(".{}", parts.join("."))
}

/// `.Archive.2024` → `Archive/2024`; `None` for what is not a folder.
fn folder_name(dir_name: &str) -> Option<String> {
    let rest = dir_name.strip_prefix('.')?;
    if rest.is_empty() || rest.starts_with('.') {
        return None;
    }
    let parts: Vec<String> = rest
        .split('.')
        .map(|p| utf7::decode(p).unwrap_or_else(|| p.to_string()))
        .collect();
    Some(parts.join(&DELIMITER.to_string()))
}

fn write_file(path: &Path, bytes: &[u8], date: i64) -> Result<(), Error> {
    let mut f = std::fs::File::create(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let when = UNIX_EPOCH + Duration::from_secs(u64::try_from(date).unwrap_or(0));
    f.set_modified(when)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}

/// Dovecot's `dovecot-keywords`: keyword N is info letter `a` + N.
#[derive(Default)]
struct Keywords {
    names: Vec<String>,
}

impl Keywords {
    fn load(folder: &Path) -> Keywords {
        let mut names = Vec::new();
        if let Ok(text) = std::fs::read_to_string(folder.join("dovecot-keywords")) {
            for line in text.lines() {
                if let Some((n, name)) = line.split_once(' ')
                    && let Ok(n) = n.parse::<usize>()
                    && n < 26
                {
                    if names.len() <= n {
                        names.resize(n + 1, String::new());
                    }
                    names[n] = name.to_string();
                }
            }
        }
        Keywords { names }
    }

    /// The `:2,` info for `flags`, assigning letters to new keywords.
    fn info(&mut self, flags: &Flags) -> Result<String, Error> {
        let mut info = String::new();
        let mut all = LETTERS.to_vec();
        all.push(TRASHED);
        all.sort();
        for (letter, bit) in all {
            if flags.system & bit != 0 {
                info.push(letter);
            }
        }
        let mut letters = Vec::new();
        for k in &flags.keywords {
            let n = match self.names.iter().position(|n| n == k) {
                Some(n) => n,
                None if self.names.len() < 26 => {
                    self.names.push(k.clone());
                    self.names.len() - 1
                }
                None => return Err(
                    "more than 26 keywords in one folder: Maildir cannot hold them; export as mbox"
                        .into(),
                ),
            };
            letters.push(char::from(b'a' + u8::try_from(n).unwrap_or(0)));
        }
        letters.sort_unstable();
        info.extend(letters);
        Ok(info)
    }

    fn flags(&self, info: &str) -> Flags {
        let mut flags = Flags::default();
        for c in info.chars() {
            if let Some((_, bit)) = LETTERS.iter().chain([&TRASHED]).find(|(l, _)| *l == c) {
                flags.system |= bit;
            } else if c.is_ascii_lowercase() {
                let n = usize::from(c as u8 - b'a');
                if let Some(name) = self.names.get(n).filter(|n| !n.is_empty())
                    && !flags.keywords.contains(name)
                {
                    flags.keywords.push(name.clone());
                }
            }
        }
        flags
    }

    fn save(&self, folder: &Path) -> Result<(), Error> {
        if self.names.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for (n, name) in self.names.iter().enumerate() {
            writeln!(text, "{n} {name}")?;
        }
        let path = folder.join("dovecot-keywords");
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()).into())
    }
}

/// asctime as in mbox `From ` lines: `Mon Nov 23 23:05:00 2026`, from the
/// IMAP date (`23-Nov-2026 23:05:00 +0000`).
fn asctime(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let weekday = DAYS[usize::try_from(unix.div_euclid(86_400).rem_euclid(7)).unwrap_or(0)];
    let [d, mon, y, time] = crate::backup::utc_parts(unix);
    format!(
        "{weekday} {mon} {:>2} {time} {y}",
        d.trim_start_matches('0')
    )
}

/// The date at the end of a `From ` line (`... Mon Nov 23 23:05:00 2026`).
fn parse_asctime(text: &str) -> Option<i64> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let [.., mon, day, time, year] = words.as_slice() else {
        return None;
    };
    let time = if time.len() == 5 {
        format!("{time}:00")
    } else {
        time.to_string()
    };
    parse_date_time(&format!("{day}-{mon}-{year} {time} +0000"))
}

/// One message in mboxrd form: `From ` line, LF line ends, `>From ` quoted.
fn write_mbox_message(
    out: &mut impl Write,
    bytes: &[u8],
    date: i64,
    flags: &Flags,
) -> std::io::Result<()> {
    writeln!(out, "From MAILER-DAEMON {}", asctime(date))?;
    let mut status = String::new();
    if flags.seen() {
        status.push('R');
    }
    let mut x_status = String::new();
    for (c, bit) in X_STATUS {
        if flags.system & bit != 0 {
            x_status.push(char::from(c));
        }
    }
    // Flags as mutt and Dovecot write them, before the message's own header.
    if !status.is_empty() {
        writeln!(out, "Status: {status}O")?;
    }
    if !x_status.is_empty() {
        writeln!(out, "X-Status: {x_status}")?;
    }
    let mut lines = bytes.split(|b| *b == b'\n').peekable();
    while let Some(line) = lines.next() {
        if lines.peek().is_none() && line.is_empty() {
            break;
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line
            .iter()
            .position(|b| *b != b'>')
            .is_some_and(|i| line[i..].starts_with(b"From "))
        {
            out.write_all(b">")?;
        }
        out.write_all(line)?;
        out.write_all(b"\n")?;
    }
    out.write_all(b"\n")
}

/// What one import did.
#[derive(Default)]
struct Tally {
    messages: usize,
    folders: BTreeMap<String, usize>,
    skipped: Vec<String>,
}

struct Importer<'a> {
    ctx: &'a AdminContext,
    account: u64,
    quota: u64,
    max_size: u64,
    tally: Tally,
}

impl Importer<'_> {
    async fn folder(&mut self, name: &str) -> Result<u32, Error> {
        if let Some(m) = self.ctx.store.mailbox(self.account, name).await? {
            return Ok(m.id);
        }
        match self.ctx.store.create_mailbox(self.account, name).await {
            Ok(id) => Ok(id),
            Err(StoreError::MailboxExists(_)) => self
                .ctx
                .store
                .mailbox(self.account, name)
                .await?
                .map(|m| m.id)
                .ok_or_else(|| format!("folder {name} vanished").into()),
            Err(e) => Err(format!("folder {name:?}: {e}").into()),
        }
    }

    async fn add(
        &mut self,
        folder: &str,
        mailbox: u32,
        bytes: &[u8],
        flags: Flags,
        date: i64,
    ) -> Result<(), Error> {
        let mut writer = self.ctx.store.blob_writer();
        writer.write(bytes).await?;
        let blob: StagedBlob = writer.finish();
        let target = Target {
            account: self.account,
            mailbox: MailboxRef::Id(mailbox),
            flags,
            quota_limit: Some(self.quota),
        };
        let result = self.ctx.store.deliver(blob, vec![target], date).await?;
        match result.into_iter().next() {
            Some(Ok(_)) => {}
            Some(Err(StoreError::OverQuota)) => {
                return Err(format!(
                    "over quota after {} messages: raise the account's quota and import again (already imported messages would be imported twice: remove them first)",
                    self.tally.messages
                )
                .into());
            }
            Some(Err(e)) => return Err(e.into()),
            None => return Err("the store returned no result".into()),
        }
        self.tally.messages += 1;
        *self.tally.folders.entry(folder.to_string()).or_default() += 1;
        Ok(())
    }

    /// Reads a message file, refusing what cannot be a message.
    fn read(&mut self, path: &Path) -> Option<Vec<u8>> {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.skip(path, &e.to_string());
                return None;
            }
        };
        if !meta.is_file() {
            self.skip(path, "not a regular file (symlinks are not followed)");
            return None;
        }
        if meta.len() == 0 {
            self.skip(path, "empty");
            return None;
        }
        if meta.len() > self.max_size {
            self.skip(
                path,
                &format!(
                    "{} bytes, over the size limit of {}",
                    meta.len(),
                    self.max_size
                ),
            );
            return None;
        }
        match std::fs::read(path) {
            Ok(b) => Some(b),
            Err(e) => {
                self.skip(path, &e.to_string());
                None
            }
        }
    }

    fn skip(&mut self, path: &Path, why: &str) {
        self.tally
            .skipped
            .push(format!("{}: {why}", path.display()));
    }

    async fn maildir(&mut self, root: &Path) -> Result<(), Error> {
        let mut folders = vec![(store::INBOX.to_string(), root.to_path_buf())];
        let entries = std::fs::read_dir(root).map_err(|e| format!("{}: {e}", root.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if let (true, Some(name)) = (is_dir, entry.file_name().to_str().and_then(folder_name))
                && (path.join("cur").is_dir() || path.join("new").is_dir())
            {
                folders.push((name, path));
            }
        }
        folders.sort();
        for (name, path) in folders {
            let keywords = Keywords::load(&path);
            let mut files = Vec::new();
            for sub in ["cur", "new"] {
                let Ok(entries) = std::fs::read_dir(path.join(sub)) else {
                    continue;
                };
                files.extend(entries.flatten().map(|e| e.path()));
            }
            // Dovecot's names start with the delivery time: oldest first.
            files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
            // A name the store refuses (`.a..b`, wildcards) skips that folder.
            let mailbox = match self.folder(&name).await {
                Ok(id) => id,
                Err(e) => {
                    self.skip(&path, &format!("folder not imported: {e}"));
                    continue;
                }
            };
            self.tally.folders.entry(name.clone()).or_default();
            for file in files {
                let file_name = file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if file_name.starts_with('.') {
                    continue;
                }
                let flags = file_name
                    .rsplit_once(":2,")
                    .map(|(_, info)| keywords.flags(info))
                    .unwrap_or_default();
                let date = std::fs::symlink_metadata(&file)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or_else(now, |d| i64::try_from(d.as_secs()).unwrap_or(0));
                let Some(bytes) = self.read(&file) else {
                    continue;
                };
                self.add(&name, mailbox, &bytes, flags, date).await?;
            }
        }
        Ok(())
    }

    /// Every mbox file under `root` (or `root` itself): folder names from the
    /// relative path without `.mbox`.
    async fn mbox_tree(&mut self, root: &Path) -> Result<(), Error> {
        if root.is_file() {
            let stem = root
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let name = if stem.eq_ignore_ascii_case("inbox") || stem.is_empty() {
                store::INBOX.to_string()
            } else {
                stem
            };
            return self.mbox_file(root, &name).await;
        }
        let mut files = Vec::new();
        walk(root, root, 0, &mut files, &mut self.tally.skipped)?;
        files.sort();
        for (name, path) in files {
            self.mbox_file(&path, &name).await?;
        }
        Ok(())
    }

    async fn mbox_file(&mut self, path: &Path, name: &str) -> Result<(), Error> {
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut reader = std::io::BufReader::new(file);
        let mut line = Vec::new();
        let mut message: Vec<u8> = Vec::new();
        let mut date = now();
        let mut started = false;
        let mut too_big = false;
        let mut previous_blank = true;
        let mut mailbox = None;
        let mut number = 0;
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let is_separator = n > 0 && previous_blank && line.starts_with(b"From ");
            if n == 0 || is_separator {
                if started {
                    number += 1;
                    if too_big {
                        self.skip(
                            path,
                            &format!(
                                "message {number} is over the size limit of {}",
                                self.max_size
                            ),
                        );
                    } else {
                        // The blank line before the next `From ` belongs to mbox.
                        if message.ends_with(b"\r\n\r\n") {
                            message.truncate(message.len() - 2);
                        }
                        let (bytes, flags) = mbox_flags(&message);
                        let id = match mailbox {
                            Some(id) => id,
                            None => {
                                let id = self.folder(name).await?;
                                mailbox = Some(id);
                                id
                            }
                        };
                        self.add(name, id, &bytes, flags, date).await?;
                    }
                } else if n > 0 && !is_separator {
                    return Err(format!(
                        "{} is not an mbox file: it must start with a \"From \" line",
                        path.display()
                    )
                    .into());
                }
                if n == 0 {
                    break;
                }
                started = true;
                too_big = false;
                message.clear();
                date = parse_asctime(&String::from_utf8_lossy(&line)).unwrap_or_else(now);
                previous_blank = false;
                continue;
            }
            if !started {
                return Err(format!(
                    "{} is not an mbox file: it must start with a \"From \" line",
                    path.display()
                )
                .into());
            }
            let body = line
                .strip_suffix(b"\n")
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                .unwrap_or(&line);
            previous_blank = body.is_empty();
            if too_big {
                continue;
            }
            // mboxrd: one level of `>` before `From ` was added on export.
            let unquoted = if body.starts_with(b">")
                && body
                    .iter()
                    .position(|b| *b != b'>')
                    .is_some_and(|i| body[i..].starts_with(b"From "))
            {
                &body[1..]
            } else {
                body
            };
            message.extend_from_slice(unquoted);
            message.extend_from_slice(b"\r\n");
            if message.len() as u64 > self.max_size {
                too_big = true;
                message.clear();
            }
        }
        if !started {
            self.skip(path, "empty");
        }
        Ok(())
    }
}

/// Flags from the `Status:` and `X-Status:` header fields mbox writers add,
/// and the message without them.
fn mbox_flags(message: &[u8]) -> (Vec<u8>, Flags) {
    let mut flags = Flags::default();
    let header_end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(message.len(), |i| i + 2);
    let mut out = Vec::with_capacity(message.len());
    let mut pos = 0;
    while pos < header_end {
        let end = message[pos..header_end]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(header_end, |i| pos + i + 2);
        let line = &message[pos..end];
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix(b"status:") {
            if v.contains(&b'r') {
                flags.system |= Flags::SEEN;
            }
        } else if let Some(v) = lower.strip_prefix(b"x-status:") {
            for (c, bit) in X_STATUS {
                if v.contains(&c.to_ascii_lowercase()) {
                    flags.system |= bit;
                }
            }
        } else {
            out.extend_from_slice(line);
        }
        pos = end;
    }
    out.extend_from_slice(&message[header_end.min(message.len())..]);
    (out, flags)
}

/// mbox files under `dir`, depth-limited, no symlinks, no dot files.
fn walk(
    root: &Path,
    dir: &Path,
    depth: usize,
    out: &mut Vec<(String, PathBuf)>,
    skipped: &mut Vec<String>,
) -> Result<(), Error> {
    if depth > 16 {
        skipped.push(format!("{}: nested too deep", dir.display()));
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            walk(root, &path, depth + 1, out, skipped)?;
        } else if kind.is_file() {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let rel = rel.to_string_lossy();
            let folder = rel.strip_suffix(".mbox").unwrap_or(&rel);
            let folder = if folder.eq_ignore_ascii_case("inbox") {
                store::INBOX.to_string()
            } else {
                folder.replace(std::path::MAIN_SEPARATOR, &DELIMITER.to_string())
            };
            out.push((folder, path));
        } else {
            skipped.push(format!("{}: not a regular file", path.display()));
        }
    }
    Ok(())
}

/// `account import ADDRESS DIR`: a Maildir if DIR has `cur/` or `new/`, else
/// mbox files (DIR may be a single mbox file).
pub async fn import(
    ctx: &AdminContext,
    address: &str,
    dir: &Path,
    max_size: u64,
) -> Result<String, Error> {
    let (account, quota) = account_of(ctx, address).await?;
    if !dir.exists() {
        return Err(format!("{} does not exist", dir.display()).into());
    }
    let mut importer = Importer {
        ctx,
        account,
        quota,
        max_size,
        tally: Tally::default(),
    };
    let maildir = dir.join("cur").is_dir() || dir.join("new").is_dir();
    let result = if maildir {
        importer.maildir(dir).await
    } else {
        importer.mbox_tree(dir).await
    };
    let t = importer.tally;
    let mut out = format!(
        "imported {} messages into {} folders of {address} from {} ({})",
        t.messages,
        t.folders.len(),
        dir.display(),
        if maildir { "Maildir" } else { "mbox" }
    );
    for (folder, n) in &t.folders {
        write!(out, "\n  {folder}: {n}")?;
    }
    if !t.skipped.is_empty() {
        write!(out, "\nskipped {}:", t.skipped.len())?;
        for s in &t.skipped {
            write!(out, "\n  {s}")?;
        }
    }
    match result {
        Ok(()) => Ok(out),
        Err(e) => Err(format!("{out}\nstopped: {e}").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_round_trip_through_maildir_names() {
        for name in ["Sent", "Archive/2024", "Entwürfe", "a/b/c"] {
            let dir = maildir_folder(name);
            assert_eq!(folder_name(&dir).as_deref(), Some(name), "{dir}");
        }
        assert_eq!(maildir_folder("INBOX"), "");
        assert_eq!(maildir_folder("Archive/2024"), ".Archive.2024");
        assert_eq!(folder_name(".Entw&APw-rfe").as_deref(), Some("Entwürfe"));
        assert_eq!(folder_name("."), None);
        assert_eq!(folder_name(".."), None);
        assert_eq!(folder_name("cur"), None);
    }

    #[test]
    fn maildir_info_letters_and_keywords() {
        let mut k = Keywords::default();
        let flags = Flags {
            system: Flags::SEEN | Flags::ANSWERED | Flags::FLAGGED | Flags::DELETED,
            keywords: vec!["$Label1".into(), "Junk".into()],
        };
        let info = k.info(&flags).unwrap();
        assert_eq!(info, "FRSTab");
        assert_eq!(k.flags(&info), flags);
        // Unknown keyword letters and junk are ignored, not fatal.
        assert_eq!(k.flags("Sz?").system, Flags::SEEN);
    }

    #[test]
    fn asctime_round_trip() {
        assert_eq!(asctime(1_795_475_100), "Mon Nov 23 23:05:00 2026");
        assert_eq!(asctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(
            parse_asctime("From someone@example.net Mon Nov 23 23:05:00 2026"),
            Some(1_795_475_100)
        );
        assert_eq!(parse_asctime("From x"), None);
        assert_eq!(parse_asctime("From x Mon Foo 23 23:05:00 2026"), None);
    }

    #[test]
    fn mbox_quoting_and_status_flags() {
        let mut out = Vec::new();
        let flags = Flags {
            system: Flags::SEEN | Flags::FLAGGED,
            keywords: vec![],
        };
        write_mbox_message(
            &mut out,
            b"Subject: x\r\n\r\nFrom here\r\n>From there\r\n",
            0,
            &flags,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "From MAILER-DAEMON Thu Jan  1 00:00:00 1970\nStatus: RO\nX-Status: F\nSubject: x\n\n>From here\n>>From there\n\n"
        );
        let (bytes, parsed) =
            mbox_flags(b"Status: RO\r\nX-Status: F\r\nSubject: x\r\n\r\nbody\r\n");
        assert_eq!(parsed, flags);
        assert_eq!(bytes, b"Subject: x\r\n\r\nbody\r\n");
    }
}
