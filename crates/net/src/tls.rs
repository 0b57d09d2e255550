use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::crypto::aws_lc_rs;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::io_reason;

/// Errors from loading or generating TLS material. Messages name the file
/// and hint at the fix, since they end up in front of an administrator.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "cannot read TLS certificate {}: {} (set [tls] cert in the config to a readable PEM file)",
        path.display(), io_reason(err)
    )]
    ReadCert { path: PathBuf, err: io::Error },
    #[error(
        "cannot read TLS key {}: {} (set [tls] key in the config to a readable PEM file)",
        path.display(), io_reason(err)
    )]
    ReadKey { path: PathBuf, err: io::Error },
    #[error(
        "no certificate found in {}: expected PEM \"-----BEGIN CERTIFICATE-----\" blocks, server certificate first, then intermediates",
        path.display()
    )]
    NoCert { path: PathBuf },
    #[error(
        "no private key found in {}: expected PEM \"BEGIN PRIVATE KEY\", \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\"",
        path.display()
    )]
    NoKey { path: PathBuf },
    #[error("invalid PEM in {}: {reason}", path.display())]
    Pem { path: PathBuf, reason: String },
    #[error(
        "TLS key {} does not match certificate {} (check that [tls] cert and key belong together, with the server certificate first in the cert file)",
        key.display(), cert.display()
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("TLS certificate {} / key {} rejected: {reason}", cert.display(), key.display())]
    Invalid {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("cannot write {}: {}", path.display(), io_reason(err))]
    Write { path: PathBuf, err: io::Error },
    #[error("cannot generate a self-signed certificate for {hostname}: {reason}")]
    Generate { hostname: String, reason: String },
}

/// Reads a PEM certificate chain and private key (PKCS#8, PKCS#1 RSA or
/// SEC1 EC) into a server config using the aws-lc-rs provider.
pub fn load_tls(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_pem = fs::read(cert).map_err(|err| TlsError::ReadCert {
        path: cert.to_owned(),
        err,
    })?;
    let key_pem = fs::read(key).map_err(|err| TlsError::ReadKey {
        path: key.to_owned(),
        err,
    })?;

    let pem_err = |path: &Path, e: pem::Error| TlsError::Pem {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(cert, e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCert {
            path: cert.to_owned(),
        });
    }
    let private_key = match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(k) => k,
        Err(pem::Error::NoItemsFound) => {
            return Err(TlsError::NoKey {
                path: key.to_owned(),
            });
        }
        Err(e) => return Err(pem_err(key, e)),
    };

    let invalid = |e: rustls::Error| match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            TlsError::KeyMismatch {
                cert: cert.to_owned(),
                key: key.to_owned(),
            }
        }
        e => TlsError::Invalid {
            cert: cert.to_owned(),
            key: key.to_owned(),
            reason: e.to_string(),
        },
    };
    let config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(invalid)?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(invalid)?;
    Ok(Arc::new(config))
}

/// Writes a self-signed certificate for `hostname`, localhost, 127.0.0.1
/// and ::1. The key file gets mode 0600; missing parent directories are
/// created. Existing files are overwritten.
pub fn generate_self_signed(cert: &Path, key: &Path, hostname: &str) -> Result<(), TlsError> {
    let generate_err = |e: rcgen::Error| TlsError::Generate {
        hostname: hostname.to_owned(),
        reason: e.to_string(),
    };
    let mut names = vec![hostname.to_owned()];
    for extra in ["localhost", "127.0.0.1", "::1"] {
        if !names.iter().any(|n| n.eq_ignore_ascii_case(extra)) {
            names.push(extra.to_owned());
        }
    }
    let mut params = rcgen::CertificateParams::new(names).map_err(generate_err)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hostname);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key_pair = rcgen::KeyPair::generate().map_err(generate_err)?;
    let certificate = params.self_signed(&key_pair).map_err(generate_err)?;

    write_file(key, key_pair.serialize_pem().as_bytes(), 0o600)?;
    write_file(cert, certificate.pem().as_bytes(), 0o644)
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    let write = || -> io::Result<()> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent)?;
        }
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)?;
        // `mode` only applies on creation; tighten a pre-existing file too.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()
    };
    write().map_err(|err| TlsError::Write {
        path: path.to_owned(),
        err,
    })
}

/// Shared, reloadable TLS configuration. Clones share the configuration, so
/// a `reload` (e.g. on SIGHUP) is seen by every listener; each handshake
/// uses the configuration current when it starts.
#[derive(Clone, Debug)]
pub struct TlsHandle {
    config: Arc<RwLock<Arc<ServerConfig>>>,
    handshake_timeout: Duration,
}

impl TlsHandle {
    const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

    pub fn new(config: Arc<ServerConfig>) -> Self {
        TlsHandle {
            config: Arc::new(RwLock::new(config)),
            handshake_timeout: Self::DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// `load_tls` wrapped in a handle.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        load_tls(cert, key).map(Self::new)
    }

    /// Replaces the configuration for future handshakes. On error the old
    /// configuration stays in force.
    pub fn reload(&self, cert: &Path, key: &Path) -> Result<(), TlsError> {
        let new = load_tls(cert, key)?;
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = new;
        Ok(())
    }

    /// The configuration new handshakes use.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A handle sharing this configuration whose handshakes (implicit TLS
    /// and STARTTLS) time out after `timeout`.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// Server-side handshake bounded by the handshake timeout.
    pub(crate) async fn accept(&self, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        let acceptor = TlsAcceptor::from(self.config());
        match tokio::time::timeout(self.handshake_timeout, acceptor.accept(tcp)).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
        }
    }
}
