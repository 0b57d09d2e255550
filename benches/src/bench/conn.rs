//! A client connection (plain TCP or implicit TLS) with a line reader that works on
//! bytes, not UTF-8: mail servers may send 8-bit lines.

use std::io;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Longest line accepted from a server; literals are read apart from lines.
const MAX_LINE: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("server closed the connection")]
    Closed,
    #[error("line longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("{command}: unexpected reply {reply:?}")]
    Unexpected { command: String, reply: String },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{0}")]
    Setup(String),
}

impl Error {
    pub fn unexpected(command: impl Into<String>, reply: &[u8]) -> Self {
        Error::Unexpected {
            command: command.into(),
            reply: String::from_utf8_lossy(reply).trim_end().to_string(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Where to connect: `host:port`, with implicit TLS or without.
#[derive(Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub tls: Option<TlsConnector>,
}

impl Target {
    pub fn new(host: &str, port: u16, tls: bool) -> Result<Self> {
        Ok(Target {
            host: host.to_string(),
            port,
            tls: if tls { Some(tls_connector()?) } else { None },
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls.is_some() { "tls" } else { "tcp" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One buffered connection. Writes are buffered until [`Conn::flush`] or
/// [`Conn::send`].
pub struct Conn {
    stream: BufStream<Box<dyn Io>>,
    line: Vec<u8>,
}

impl Conn {
    pub async fn connect(target: &Target) -> Result<Conn> {
        let tcp = TcpStream::connect((target.host.as_str(), target.port)).await?;
        tcp.set_nodelay(true)?;
        let stream: Box<dyn Io> = match &target.tls {
            None => Box::new(tcp),
            Some(connector) => {
                let name = ServerName::try_from(target.host.clone())
                    .map_err(|e| Error::Tls(format!("server name {}: {e}", target.host)))?;
                Box::new(connector.connect(name, tcp).await?)
            }
        };
        Ok(Conn {
            stream: BufStream::new(stream),
            line: Vec::with_capacity(256),
        })
    }

    /// Buffers bytes for the server.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        Ok(self.stream.write_all(bytes).await?)
    }

    pub async fn flush(&mut self) -> Result<()> {
        Ok(self.stream.flush().await?)
    }

    /// Writes and flushes.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.write(bytes).await?;
        self.flush().await
    }

    /// Reads one line and returns it without its line ending. The end of the
    /// stream is an error: every protocol here ends with the client's goodbye.
    pub async fn read_line(&mut self) -> Result<&[u8]> {
        self.line.clear();
        loop {
            let available = self.stream.fill_buf().await?;
            if available.is_empty() {
                return Err(Error::Closed);
            }
            let (take, done) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            if self.line.len() + take > MAX_LINE {
                return Err(Error::LineTooLong);
            }
            self.line.extend_from_slice(&available[..take]);
            self.stream.consume(take);
            if done {
                let end = self.line.len() - if self.line.ends_with(b"\r\n") { 2 } else { 1 };
                return Ok(&self.line[..end]);
            }
        }
    }

    /// Reads and discards `n` bytes (an IMAP literal).
    pub async fn skip(&mut self, n: u64) -> Result<()> {
        let copied =
            tokio::io::copy(&mut (&mut self.stream).take(n), &mut tokio::io::sink()).await?;
        if copied < n {
            return Err(Error::Closed);
        }
        Ok(())
    }
}

/// A TLS client that accepts any certificate: the tool measures servers on this
/// machine, which usually have self-signed certificates.
fn tls_connector() -> Result<TlsConnector> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
