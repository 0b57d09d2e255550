//! posthorn: one binary for the daemon and its admin commands.

mod admin;
mod cli;
mod config;
mod mgmt;
mod serve;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use directory::Directory;
use store::{Store, StoreError, StoreOptions};
use tracing_subscriber::EnvFilter;

use crate::admin::AdminContext;
use crate::cli::{Admin, Cli, Command};
use crate::config::Config;

fn init_tracing(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colours only on a terminal: journald and log files get plain text.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
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
                init_tracing(&config.log.level);
                runtime.block_on(serve::run(&cli.config, config))
            }
            Err(e) => Err(e),
        },
        Command::Admin(cmd) => {
            init_tracing("warn");
            runtime
                .block_on(admin_command(&cli.config, cmd))
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

/// Through the running daemon's management socket if there is one, else directly
/// against the database.
async fn admin_command(config_path: &std::path::Path, mut cmd: Admin) -> Result<String, String> {
    let config = Config::load(config_path)?;
    cmd.prepare()?;
    if let Some(answer) = mgmt::request(&config.socket_path(), &cmd).await? {
        return answer;
    }
    let store = Store::open(&config.store_path(), StoreOptions::default()).map_err(|e| match e {
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
            queue_wake: None,
        },
        cmd,
    )
    .await
}
