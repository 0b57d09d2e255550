//! posthorn: one binary for the daemon and its admin commands.

mod admin;
mod backup;
mod cli;
mod dns_helper;
mod export;
mod mgmt;
mod serve;
mod spf_helper;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use directory::Directory;
use posthorn::config;
use store::{Store, StoreError};
use tracing_subscriber::EnvFilter;

use crate::admin::AdminContext;
use crate::cli::{AccountCmd, Admin, BackupCmd, Cli, Command, DomainCmd};
use crate::config::{Config, LogFormat};

fn init_tracing(default: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // One JSON object per line: `timestamp`, `level`, `target`, `fields`.
        LogFormat::Json => fmt.json().init(),
        // Colours only on a terminal: journald and log files get plain text.
        LogFormat::Text => fmt.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("posthorn: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve => match Config::load(&cli.config) {
            Ok(config) => {
                init_tracing(&config.log.level, config.log.format);
                runtime.block_on(serve::run(&cli.config, config))
            }
            Err(e) => Err(e),
        },
        Command::Spf(cmd) => spf_helper::run(cmd).map(|out| println!("{out}")),
        Command::Admin(cmd) => {
            init_tracing("warn", LogFormat::Text);
            runtime
                .block_on(local_or_admin(&cli.config, cmd))
                .map(|out| {
                    if !out.is_empty() {
                        println!("{out}");
                    }
                })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("posthorn: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The admin commands that run in the CLI itself (DNS queries, backup files),
/// then the others.
async fn local_or_admin(config_path: &std::path::Path, cmd: Admin) -> Result<String, String> {
    match cmd {
        Admin::Domain(DomainCmd::Dns { domain }) => dns_helper::records(config_path, &domain).await,
        Admin::Domain(DomainCmd::Check { domain }) => dns_helper::check(config_path, &domain).await,
        Admin::Backup(BackupCmd::List) => backup::list(&Config::load(config_path)?),
        Admin::Backup(BackupCmd::Restore { id }) => {
            backup::restore(&Config::load(config_path)?, &id).await
        }
        Admin::Backup(BackupCmd::Create { .. }) => {
            let config = Config::load(config_path)?;
            let cmd = backup::create_command(&config)?;
            admin_command(config_path, cmd).await
        }
        // The daemon may run in another working directory: absolute paths.
        Admin::Account(AccountCmd::Export {
            address,
            format,
            dir,
        }) => {
            let dir = absolute(&dir)?;
            let cmd = Admin::Account(AccountCmd::Export {
                address,
                format,
                dir,
            });
            admin_command(config_path, cmd).await
        }
        Admin::Account(AccountCmd::Import { address, dir, .. }) => {
            let config = Config::load(config_path)?;
            let cmd = Admin::Account(AccountCmd::Import {
                address,
                dir: absolute(&dir)?,
                max_size: config.limits.max_message_size,
            });
            admin_command(config_path, cmd).await
        }
        cmd => admin_command(config_path, cmd).await,
    }
}

fn absolute(path: &std::path::Path) -> Result<std::path::PathBuf, String> {
    std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Through the running daemon's management socket if there is one, else directly
/// against the database.
pub async fn admin_command(
    config_path: &std::path::Path,
    mut cmd: Admin,
) -> Result<String, String> {
    let config = Config::load(config_path)?;
    cmd.prepare()?;
    if let Some(answer) = mgmt::request(&config.socket_path(), &cmd).await? {
        return answer;
    }
    let store = Store::open(&config.store_path(), config.store_options()).map_err(|e| match e {
        StoreError::Locked(_) => format!(
            "the database {} is in use, but no daemon answers on {}: is another process holding it?",
            config.store_path().display(),
            config.socket_path().display()
        ),
        e => format!("cannot open the store in {}: {e}", config.store_path().display()),
    })?;
    let directory = Directory::new(store.clone(), config.directory.clone());
    admin::execute(
        &AdminContext {
            store,
            directory,
            queue_rescan: None,
        },
        cmd,
    )
    .await
}
