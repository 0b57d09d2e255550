//! Password hashing: argon2id with the argon2 crate's default parameters
//! (RFC 9106 §4 second recommendation: m = 19 MiB, t = 2, p = 1), stored as
//! PHC strings. Verification reads the parameters from the stored string, so
//! hashes made with other parameters keep working.
//!
//! Both functions are CPU-bound for tens of milliseconds and allocate 19 MiB:
//! they run on a few dedicated threads ([`off_reactor`]), never on the async
//! reactor, and not on tokio's blocking pool either: the allocator keeps the
//! 19 MiB in every thread's arena that ever ran a check, and that pool has
//! hundreds of threads (100 logins grew the daemon by about 1 GB).

use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use rand::RngCore;

use crate::DirectoryError;

type Job = Box<dyn FnOnce() + Send>;

/// The password threads, one per core, started on first use.
fn workers() -> &'static Mutex<mpsc::Sender<Job>> {
    static WORKERS: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    WORKERS.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let n = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        for i in 0..n {
            let rx = Arc::clone(&rx);
            let spawned = std::thread::Builder::new()
                .name(format!("password-{i}"))
                .spawn(move || {
                    loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(err) = spawned {
                tracing::error!(error = %err, "cannot start a password thread");
            }
        }
        Mutex::new(tx)
    })
}

/// Runs `f` on a password thread; at most one check per core runs at once,
/// the rest wait their turn.
pub(crate) async fn off_reactor<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, DirectoryError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(f());
    });
    workers()
        .lock()
        .map_err(|_| DirectoryError::Internal("password threads poisoned".into()))?
        .send(job)
        .map_err(|_| DirectoryError::Internal("password threads gone".into()))?;
    rx.await
        .map_err(|_| DirectoryError::Internal("password check dropped".into()))
}

pub(crate) fn hash(password: &[u8]) -> Result<String, DirectoryError> {
    let mut salt = [0_u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|err| DirectoryError::Internal(format!("password salt: {err}")))?;
    Argon2::default()
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| DirectoryError::Internal(format!("password hashing: {err}")))
}

/// True if `password` matches the PHC string `phc`; false on any mismatch,
/// including an unparsable stored hash.
pub(crate) fn verify(phc: &str, password: &[u8]) -> bool {
    PasswordHash::new(phc)
        .is_ok_and(|hash| Argon2::default().verify_password(password, &hash).is_ok())
}

/// `hash` off the reactor.
pub(crate) async fn hash_blocking(password: &str) -> Result<String, DirectoryError> {
    let password = password.as_bytes().to_vec();
    off_reactor(move || hash(&password)).await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_phc_and_verify() {
        let phc = hash(b"correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify(&phc, b"correct horse"));
        assert!(!verify(&phc, b"correct horsE"));
        assert!(!verify("not a phc string", b"correct horse"));
        assert_ne!(phc, hash(b"correct horse").unwrap(), "salted");
    }
}
