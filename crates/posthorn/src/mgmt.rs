//! The local management endpoint: a Unix socket in the data directory (mode 0600,
//! so only the daemon's user and root reach it). RocksDB allows one process, so
//! while the daemon runs, the CLI hands it commands here: one JSON line in, one
//! JSON line out.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use crate::admin::{AdminContext, execute};
use crate::cli::Admin;

/// Largest request accepted (an autoresponder body is at most 64 KiB).
const MAX_REQUEST: u64 = 1 << 20;

#[derive(Serialize, Deserialize)]
struct Response {
    ok: bool,
    output: String,
}

pub fn bind(path: &Path) -> Result<UnixListener, String> {
    // A socket file left by a daemon that died: nobody answers on it.
    if path.exists() && std::os::unix::net::UnixStream::connect(path).is_err() {
        let _ = std::fs::remove_file(path);
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| format!("cannot create management socket {}: {e} (is another posthorn running on this data_dir?)", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot set permissions of {}: {e}", path.display()))?;
    Ok(listener)
}

pub async fn serve(listener: UnixListener, ctx: AdminContext, mut shutdown: watch::Receiver<bool>) {
    let stop = async move {
        let _ = shutdown.wait_for(|down| *down).await;
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        if let Err(e) = answer(stream, &ctx).await {
                            tracing::warn!(error = %e, "management request failed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "management socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }
}

async fn answer(stream: UnixStream, ctx: &AdminContext) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(MAX_REQUEST))
        .read_line(&mut line)
        .await?;
    let response = match serde_json::from_str::<Admin>(&line) {
        Ok(cmd) => {
            tracing::info!(
                command = %web::command_name(&serde_json::from_str(&line).unwrap_or_default()),
                "admin command"
            );
            match execute(ctx, cmd).await {
                Ok(output) => Response { ok: true, output },
                Err(output) => Response { ok: false, output },
            }
        }
        Err(e) => Response {
            ok: false,
            output: format!("bad management request: {e}"),
        },
    };
    let mut out = serde_json::to_vec(&response).unwrap_or_default();
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}

/// Sends a command to a running daemon. `Ok(None)` when no daemon listens.
pub async fn request(path: &Path, cmd: &Admin) -> Result<Option<Result<String, String>>, String> {
    let Ok(stream) = UnixStream::connect(path).await else {
        return Ok(None);
    };
    let (read, mut write) = stream.into_split();
    let mut req = serde_json::to_vec(cmd).map_err(|e| e.to_string())?;
    req.push(b'\n');
    write
        .write_all(&req)
        .await
        .map_err(|e| format!("management socket {}: {e}", path.display()))?;
    let mut line = String::new();
    BufReader::new(read)
        .read_line(&mut line)
        .await
        .map_err(|e| format!("management socket {}: {e}", path.display()))?;
    let r: Response =
        serde_json::from_str(&line).map_err(|e| format!("bad answer from the daemon: {e}"))?;
    Ok(Some(if r.ok { Ok(r.output) } else { Err(r.output) }))
}
