//! Backups of the whole store: `[backup] dir` holds one folder per backup,
//! named by its UTC time (`20261123T230500Z`), each a RocksDB checkpoint that
//! opens like the live database. The daemon writes one every
//! `interval_hours` and deletes those older than `keep_days` (never the
//! newest); `backup create` asks the daemon for one now, `backup list` and
//! `backup restore` work on the folder directly.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use directory::now_unix as unix_now;
use imap::proto::date::{format_date_time, parse_date_time};
use store::{Store, StoreOptions};
use tokio::sync::watch;

use crate::cli::{Admin, BackupCmd};
use crate::config::{self, Config};

/// A backup being written; renamed to its ID once complete, so a crash never
/// leaves a half backup that looks whole.
const PARTIAL_SUFFIX: &str = ".partial";

fn backup_dir(config: &Config) -> Result<PathBuf, String> {
    let dir = config.backup.dir.clone().ok_or_else(|| {
        "no backup folder configured: set `dir` in the [backup] section of the configuration"
            .to_string()
    })?;
    // The daemon may run in another working directory than the CLI.
    std::path::absolute(&dir).map_err(|e| format!("backup folder {}: {e}", dir.display()))
}

/// `backup create` as sent to the daemon, with the configured folder.
pub fn create_command(config: &Config) -> Result<Admin, String> {
    Ok(Admin::Backup(BackupCmd::Create {
        dir: backup_dir(config)?,
        keep_days: config.backup.keep_days,
    }))
}

/// Writes a backup of `store` into `dir`, then deletes the expired ones.
pub async fn create(store: &Store, dir: &Path, keep_days: u64) -> Result<String, String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create backup folder {}: {e}", dir.display()))?;
    let started = Instant::now();
    let now = unix_now();
    let mut id = format_id(now);
    // Two backups within one second: the second gets a suffix.
    for n in 2.. {
        if !dir.join(&id).exists() {
            break;
        }
        id = format!("{}-{n}", format_id(now));
    }
    let partial = dir.join(format!(".{id}{PARTIAL_SUFFIX}"));
    let _ = std::fs::remove_dir_all(&partial);
    store
        .checkpoint(&partial)
        .await
        .map_err(|e| format!("backup into {}: {e}", partial.display()))?;
    std::fs::rename(&partial, dir.join(&id))
        .map_err(|e| format!("backup into {}: {e}", dir.display()))?;
    let (files, bytes) = size_of(&dir.join(&id));
    let mut out = format!(
        "backup {id} written to {} ({files} files, {}, {:.2} s)",
        dir.join(&id).display(),
        directory::format_size(bytes),
        started.elapsed().as_secs_f64()
    );
    let removed = prune(dir, keep_days, now);
    if !removed.is_empty() {
        out.push_str(&format!(
            "\nremoved backups older than {keep_days} days: {}",
            removed.join(", ")
        ));
    }
    Ok(out)
}

/// `backup list`: id, size and age, oldest first.
pub fn list(config: &Config) -> Result<String, String> {
    let dir = backup_dir(config)?;
    let now = unix_now();
    let ids = backups(&dir)?;
    if ids.is_empty() {
        return Ok(format!("no backups in {}", dir.display()));
    }
    let lines: Vec<String> = ids
        .iter()
        .map(|(id, time)| {
            let (files, bytes) = size_of(&dir.join(id));
            let age_h = (now - time).max(0) as f64 / 3600.0;
            format!(
                "{id}\t{}\t{files} files\t{age_h:.1} hours old",
                directory::format_size(bytes)
            )
        })
        .collect();
    Ok(lines.join("\n"))
}

/// `backup restore ID`: only with the daemon stopped. The current database is
/// kept beside it as `db.before-restore-<time>` until the operator deletes it.
pub async fn restore(config: &Config, id: &str) -> Result<String, String> {
    let dir = backup_dir(config)?;
    if id.is_empty() || id.starts_with('.') || id.contains('/') || parse_id(id).is_none() {
        return Err(format!(
            "{id:?} is not a backup id; `posthorn backup list` shows them"
        ));
    }
    let source = dir.join(id);
    if !source.is_dir() {
        return Err(format!(
            "no backup {id} in {}; `posthorn backup list` shows them",
            dir.display()
        ));
    }
    if tokio::net::UnixStream::connect(config.socket_path())
        .await
        .is_ok()
    {
        return Err(format!(
            "the daemon is running (it answers on {}): stop it first (systemctl stop posthorn), then restore",
            config.socket_path().display()
        ));
    }
    let live = config.store_path();
    // Holding the database lock proves no other process uses it.
    if live.exists() {
        drop(open(&live).map_err(|e| format!("cannot restore: {e}"))?);
    }
    let staging = config.server.data_dir.join(format!("db.restoring-{id}"));
    let _ = std::fs::remove_dir_all(&staging);
    copy_dir(&source, &staging)?;
    // Open the copy once: it must be a store this build can read.
    drop(open(&staging).map_err(|e| {
        format!(
            "backup {id} does not open ({e}); the current database is untouched, the copy is in {}",
            staging.display()
        )
    })?);
    let mut out = String::new();
    if live.exists() {
        let kept = config
            .server
            .data_dir
            .join(format!("db.before-restore-{}", format_id(unix_now())));
        std::fs::rename(&live, &kept)
            .map_err(|e| format!("cannot move {} aside: {e}", live.display()))?;
        out = format!(
            "the previous database is kept in {} (delete it once the restore looks right)\n",
            kept.display()
        );
    }
    std::fs::rename(&staging, &live)
        .map_err(|e| format!("cannot move {} into place: {e}", staging.display()))?;
    out.push_str(&format!(
        "restored backup {id} into {}; start the daemon",
        live.display()
    ));
    Ok(out)
}

fn open(path: &Path) -> Result<Store, String> {
    Store::open(path, StoreOptions::default()).map_err(|e| format!("{}: {e}", path.display()))
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let entries = std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", from.display()))?;
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &target)?;
        } else {
            std::fs::copy(&path, &target)
                .map_err(|e| format!("copying {} to {}: {e}", path.display(), target.display()))?;
        }
    }
    Ok(())
}

/// Number of files and their bytes (hard-linked files count in full).
fn size_of(dir: &Path) -> (usize, u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    entries
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .fold((0, 0), |(n, b), m| (n + 1, b + m.len()))
}

/// Complete backups in `dir` with their times, oldest first.
fn backups(dir: &Path) -> Result<Vec<(String, i64)>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("backup folder {}: {e}", dir.display())),
    };
    let mut ids: Vec<(String, i64)> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let id = e.file_name().into_string().ok()?;
            let time = parse_id(&id)?;
            Some((id, time))
        })
        .collect();
    ids.sort();
    Ok(ids)
}

/// Deletes backups older than `keep_days`, except the newest; returns their ids.
fn prune(dir: &Path, keep_days: u64, now: i64) -> Vec<String> {
    let Ok(mut ids) = backups(dir) else {
        return Vec::new();
    };
    ids.pop();
    let limit = now - i64::try_from(keep_days.saturating_mul(86_400)).unwrap_or(i64::MAX);
    let mut removed = Vec::new();
    for (id, time) in ids {
        if time < limit {
            match std::fs::remove_dir_all(dir.join(&id)) {
                Ok(()) => removed.push(id),
                Err(e) => tracing::warn!(backup = %id, error = %e, "cannot delete expired backup"),
            }
        }
    }
    removed
}

/// The daemon's schedule: a backup when the newest one is `interval_hours`
/// old (at once if there is none), until shutdown. `None` without a folder.
pub fn scheduled(
    store: Store,
    cfg: &config::Backup,
    mut shutdown: watch::Receiver<bool>,
) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
    let dir = std::path::absolute(cfg.dir.as_ref()?).ok()?;
    let interval = i64::try_from(cfg.interval_hours.saturating_mul(3600)).unwrap_or(i64::MAX);
    let keep_days = cfg.keep_days;
    Some(async move {
        loop {
            let newest = backups(&dir)
                .ok()
                .and_then(|ids| ids.last().map(|(_, t)| *t));
            let wait = newest.map_or(0, |t| (t.saturating_add(interval) - unix_now()).max(0));
            let sleep = tokio::time::sleep(Duration::from_secs(wait.unsigned_abs()));
            tokio::select! {
                _ = shutdown.wait_for(|down| *down) => return,
                () = sleep => {}
            }
            match create(&store, &dir, keep_days).await {
                Ok(report) => tracing::info!("{}", report.replace('\n', "; ")),
                Err(e) => {
                    tracing::error!(error = %e, "scheduled backup failed; next try in an hour");
                    tokio::select! {
                        _ = shutdown.wait_for(|down| *down) => return,
                        () = tokio::time::sleep(Duration::from_secs(3600)) => {}
                    }
                }
            }
        }
    })
}

/// Month names as in IMAP dates, for backup ids' month numbers.
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Day (`01`), month (`Nov`), year and `hh:mm:ss` of `unix` in UTC, from the
/// IMAP date code (`01-Nov-2026 23:05:00 +0000`).
pub(crate) fn utc_parts(unix: i64) -> [String; 4] {
    let t = format_date_time(unix);
    let mut parts = t.split([' ', '-']).map(str::to_string);
    std::array::from_fn(|_| parts.next().unwrap_or_default())
}

/// `20261123T230500Z`.
fn format_id(unix: i64) -> String {
    let [d, mon, y, time] = utc_parts(unix);
    let m = MONTHS.iter().position(|x| *x == mon).map_or(0, |i| i + 1);
    format!("{y}{m:02}{d}T{}Z", time.replace(':', ""))
}

/// The time of a backup id (`format_id`, optionally with a `-N` suffix).
fn parse_id(id: &str) -> Option<i64> {
    let base = id.split_once('-').map_or(id, |(b, _)| b);
    let b = base.as_bytes();
    if b.len() != 16
        || b[8] != b'T'
        || b[15] != b'Z'
        || !b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
    {
        return None;
    }
    let month: usize = base[4..6].parse().ok()?;
    let mon = MONTHS.get(month.checked_sub(1)?)?;
    parse_date_time(&format!(
        "{}-{mon}-{} {}:{}:{} +0000",
        &base[6..8],
        &base[..4],
        &base[9..11],
        &base[11..13],
        &base[13..15]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for t in [0, 951_782_400, 1_795_000_000, 4_107_542_399] {
            let id = format_id(t);
            assert_eq!(parse_id(&id), Some(t), "{id}");
        }
        assert_eq!(format_id(1_795_475_100), "20261123T230500Z");
        assert_eq!(parse_id("20261123T230500Z-2"), Some(1_795_475_100));
        for bad in [
            "",
            "x",
            "20261323T230500Z",
            "2026-11-23",
            ".20261123T230500Z.partial",
        ] {
            assert_eq!(parse_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn prune_keeps_the_newest_and_the_recent() {
        let dir = tempfile::tempdir().unwrap();
        let now = 1_795_475_100;
        let day = 86_400;
        for age in [30 * day, 8 * day, 2 * day] {
            std::fs::create_dir(dir.path().join(format_id(now - age))).unwrap();
        }
        std::fs::create_dir(dir.path().join("unrelated")).unwrap();
        let removed = prune(dir.path(), 7, now);
        assert_eq!(
            removed,
            vec![format_id(now - 30 * day), format_id(now - 8 * day)]
        );
        assert!(dir.path().join("unrelated").exists());
        // Only old backups left: the newest stays whatever its age.
        let removed = prune(dir.path(), 1, now);
        assert!(removed.is_empty());
        assert_eq!(backups(dir.path()).unwrap().len(), 1);
    }
}
