//! Password hashing: argon2id with the argon2 crate's default parameters
//! (RFC 9106 §4 second recommendation: m = 19 MiB, t = 2, p = 1), stored as
//! PHC strings. Verification reads the parameters from the stored string, so
//! hashes made with other parameters keep working.
//!
//! Both functions are CPU-bound for tens of milliseconds: call them from
//! `spawn_blocking`, never on the async reactor.

use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use rand::RngCore;

use crate::DirectoryError;

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
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(|err| DirectoryError::Internal(format!("password hashing task: {err}")))?
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
