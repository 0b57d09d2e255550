use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use net::{
    Connection, Handler, Line, LineReader, ListenerSpec, ServeConfig, Stream, TlsError, TlsHandle,
    bind, generate_self_signed, load_tls, serve,
};
use rustls::crypto::aws_lc_rs;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

const IDLE: Duration = Duration::from_secs(10);

/// Generates a cert/key pair named `name` in `dir`.
fn make_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}/cert.pem"));
    let key = dir.join(format!("{name}/key.pem"));
    generate_self_signed(&cert, &key, "mail.example.test").unwrap();
    (cert, key)
}

fn connector(trusted_cert: &Path) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(trusted_cert).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}

/// Reads one reply line byte by byte, so nothing beyond it is consumed.
async fn read_reply<S: AsyncRead + Unpin>(s: &mut S) -> String {
    let mut line = Vec::new();
    loop {
        let b = s.read_u8().await.unwrap();
        line.push(b);
        if b == b'\n' {
            return String::from_utf8(line).unwrap();
        }
    }
}

struct Server {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

async fn start(
    implicit_tls: bool,
    cfg: ServeConfig,
    tls: Option<TlsHandle>,
    handler: Arc<dyn Handler>,
) -> Server {
    let spec = ListenerSpec {
        name: "test".into(),
        addr: "127.0.0.1:0".parse().unwrap(),
        implicit_tls,
    };
    let listener = bind(spec).await.unwrap();
    let addr = listener.local_addr();
    let (shutdown, rx) = watch::channel(false);
    let task = tokio::spawn(serve(listener, cfg, tls, rx, handler));
    Server {
        addr,
        shutdown,
        task,
    }
}

/// Echoes each line as "echo: <line>" until EOF.
async fn echo(conn: Connection) {
    let tls = conn.stream.is_tls();
    let mut r = LineReader::new(conn.stream, IDLE);
    while let Ok(Line::Complete { data, .. }) = r.read_line(1000).await {
        let mut reply = format!("echo{}: ", if tls { " tls" } else { "" }).into_bytes();
        reply.extend_from_slice(&data);
        reply.extend_from_slice(b"\r\n");
        if r.write_all(&reply).await.is_err() {
            break;
        }
    }
}

#[test]
fn load_tls_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "a");
    let (_, other_key) = make_cert(dir.path(), "b");
    let missing = dir.path().join("missing.pem");

    let err = load_tls(&missing, &key).unwrap_err();
    assert!(matches!(err, TlsError::ReadCert { .. }));
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "cannot read TLS certificate {}: No such file or directory (set [tls] cert",
            missing.display()
        )),
        "{msg}"
    );

    let err = load_tls(&cert, &missing).unwrap_err();
    assert!(matches!(err, TlsError::ReadKey { .. }), "{err}");

    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let err = load_tls(&junk, &key).unwrap_err();
    assert!(matches!(err, TlsError::NoCert { .. }), "{err}");
    assert!(err.to_string().starts_with("no certificate found in "));

    // A cert file given as the key: PEM, but no key in it.
    let err = load_tls(&cert, &cert).unwrap_err();
    assert!(matches!(err, TlsError::NoKey { .. }), "{err}");
    assert!(err.to_string().starts_with("no private key found in "));

    let err = load_tls(&cert, &other_key).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    assert!(err.to_string().contains("does not match certificate"));

    load_tls(&cert, &key).unwrap();
}

#[test]
fn self_signed_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("deep/er/cert.pem");
    let key = dir.path().join("deep/key/key.pem");
    generate_self_signed(&cert, &key, "mail.example.test").unwrap();
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    load_tls(&cert, &key).unwrap();
}

#[tokio::test]
async fn implicit_tls_echo() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "a");
    let tls = TlsHandle::load(&cert, &key).unwrap();
    let server = start(true, ServeConfig::default(), Some(tls), Arc::new(echo)).await;

    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut client = connector(&cert).connect(localhost(), tcp).await.unwrap();
    client.write_all(b"hello\r\nworld\n").await.unwrap();
    assert_eq!(read_reply(&mut client).await, "echo tls: hello\r\n");
    assert_eq!(read_reply(&mut client).await, "echo tls: world\r\n");

    // The certificate also covers 127.0.0.1.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let ip = ServerName::try_from("127.0.0.1").unwrap();
    let mut by_ip = connector(&cert).connect(ip, tcp).await.unwrap();
    by_ip.write_all(b"ip\r\n").await.unwrap();
    assert_eq!(read_reply(&mut by_ip).await, "echo tls: ip\r\n");

    // Closed clients let the echo handlers end, so no grace period is spent.
    drop((client, by_ip));
    server.shutdown.send(true).unwrap();
    server.task.await.unwrap();
}

#[tokio::test]
async fn plain_client_on_implicit_tls_listener_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "a");
    let cfg = ServeConfig {
        tls_handshake_timeout: Duration::from_millis(300),
        ..ServeConfig::default()
    };
    let tls = TlsHandle::load(&cert, &key).unwrap();
    let server = start(true, cfg, Some(tls), Arc::new(echo)).await;

    // Garbage instead of a ClientHello: the handshake fails, the socket closes.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"EHLO there\r\n").await.unwrap();
    let mut buf = Vec::new();
    let _ = tcp.read_to_end(&mut buf).await;

    // Silence: the handshake timeout closes it.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut [0; 16]))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(started.elapsed() >= Duration::from_millis(250));

    server.shutdown.send(true).unwrap();
    server.task.await.unwrap();
}

/// SMTP-like: greeting, STARTTLS, then one command over TLS answered with
/// what was read.
async fn starttls_handler(conn: Connection) {
    let tls = conn.tls.clone().unwrap();
    let mut r = LineReader::new(conn.stream, IDLE);
    r.write_all(b"220 ready\r\n").await.unwrap();
    let Ok(Line::Complete { data, .. }) = r.read_line(1000).await else {
        return;
    };
    assert_eq!(data, b"STARTTLS");
    let reply = format!("220 go ahead, discarding {}\r\n", r.buffered());
    r.write_all(reply.as_bytes()).await.unwrap();
    let mut r = r.starttls(&tls).await.unwrap();
    assert!(r.is_tls());
    if let Ok(Line::Complete { data, .. }) = r.read_line(1000).await {
        let mut reply = b"250 got ".to_vec();
        reply.extend_from_slice(&data);
        reply.extend_from_slice(b"\r\n");
        r.write_all(&reply).await.unwrap();
    }
}

#[tokio::test]
async fn starttls_discards_pipelined_input() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "a");
    let tls = TlsHandle::load(&cert, &key).unwrap();
    let server = start(
        false,
        ServeConfig::default(),
        Some(tls),
        Arc::new(starttls_handler),
    )
    .await;

    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(read_reply(&mut tcp).await, "220 ready\r\n");
    // One write, so "EVIL" reaches the server's buffer with STARTTLS.
    tcp.write_all(b"STARTTLS\r\nEVIL\r\n").await.unwrap();
    assert_eq!(read_reply(&mut tcp).await, "220 go ahead, discarding 6\r\n");
    let mut client = connector(&cert).connect(localhost(), tcp).await.unwrap();
    client.write_all(b"NOOP\r\n").await.unwrap();
    assert_eq!(read_reply(&mut client).await, "250 got NOOP\r\n");

    server.shutdown.send(true).unwrap();
    server.task.await.unwrap();
}

#[tokio::test]
async fn line_endings_and_binary() {
    let (mut client, server) = tokio::io::duplex(64);
    let mut r = LineReader::new(server, IDLE);
    client
        .write_all(b"one\r\ntwo\n\r\n\x00\xff\r\x01\r\nlast no newline")
        .await
        .unwrap();
    drop(client);
    let line = |d: &[u8], crlf| Line::Complete {
        data: d.to_vec(),
        crlf,
    };
    assert_eq!(r.read_line(100).await.unwrap(), line(b"one", true));
    assert_eq!(r.read_line(100).await.unwrap(), line(b"two", false));
    assert_eq!(r.read_line(100).await.unwrap(), line(b"", true));
    assert_eq!(
        r.read_line(100).await.unwrap(),
        line(b"\x00\xff\r\x01", true)
    );
    assert_eq!(r.read_line(100).await.unwrap(), Line::Eof);
    assert_eq!(r.read_line(100).await.unwrap(), Line::Eof);
}

#[tokio::test]
async fn line_length_limit_is_exact() {
    let (mut client, server) = tokio::io::duplex(4096);
    let mut r = LineReader::new(server, IDLE);
    let mut data = vec![b'a'; 10];
    data.extend_from_slice(b"\r\n");
    data.extend_from_slice(&[b'b'; 11]);
    data.extend_from_slice(b"\r\n");
    data.extend_from_slice(&[b'c'; 10]);
    data.extend_from_slice(b"\n");
    client.write_all(&data).await.unwrap();
    assert!(matches!(
        r.read_line(10).await.unwrap(),
        Line::Complete { data, crlf: true } if data == [b'a'; 10]
    ));
    assert_eq!(r.read_line(10).await.unwrap(), Line::TooLong);
    assert!(matches!(
        r.read_line(10).await.unwrap(),
        Line::Complete { data, crlf: false } if data == [b'c'; 10]
    ));
}

#[tokio::test]
async fn megabyte_line_is_discarded() {
    let (mut client, server) = tokio::io::duplex(4096);
    let writer = tokio::spawn(async move {
        let chunk = [b'x'; 4096];
        for _ in 0..256 {
            client.write_all(&chunk).await.unwrap();
        }
        client.write_all(b"\r\nNEXT\r\n").await.unwrap();
        client
    });
    let mut r = LineReader::new(server, IDLE);
    assert_eq!(r.read_line(1000).await.unwrap(), Line::TooLong);
    assert_eq!(
        r.read_line(1000).await.unwrap(),
        Line::Complete {
            data: b"NEXT".to_vec(),
            crlf: true
        }
    );
    writer.await.unwrap();
}

#[tokio::test]
async fn lines_split_across_tiny_writes() {
    let (mut client, server) = tokio::io::duplex(1);
    let writer = tokio::spawn(async move {
        for b in b"HELO a.example\r\nMAIL FROM:<x@y>\r\n" {
            client.write_all(&[*b]).await.unwrap();
            tokio::task::yield_now().await;
        }
    });
    let mut r = LineReader::new(server, IDLE);
    let expect = |d: &[u8]| Line::Complete {
        data: d.to_vec(),
        crlf: true,
    };
    assert_eq!(r.read_line(100).await.unwrap(), expect(b"HELO a.example"));
    assert_eq!(r.read_line(100).await.unwrap(), expect(b"MAIL FROM:<x@y>"));
    writer.await.unwrap();
    assert_eq!(r.read_line(100).await.unwrap(), Line::Eof);
}

#[tokio::test]
async fn counted_reads_after_a_line() {
    let (mut client, server) = tokio::io::duplex(1024);
    let literal: Vec<u8> = (0..20_000u32).map(|i| (i % 256) as u8).collect();
    let mut data = b"A1 APPEND INBOX {20000}\r\n".to_vec();
    data.extend_from_slice(&literal);
    data.extend_from_slice(b"\r\nA2 NOOP\r\n");
    let writer = tokio::spawn(async move { client.write_all(&data).await.unwrap() });

    let mut r = LineReader::new(server, IDLE);
    assert!(matches!(
        r.read_line(100).await.unwrap(),
        Line::Complete { .. }
    ));
    let first = r.read_chunk(7).await.unwrap();
    assert_eq!(first, &literal[..first.len()]);
    assert!(!first.is_empty() && first.len() <= 7);
    let mut got = first.to_vec();
    r.read_exact_into(literal.len() - got.len(), &mut got)
        .await
        .unwrap();
    assert_eq!(got, literal);
    assert_eq!(
        r.read_line(100).await.unwrap(),
        Line::Complete {
            data: Vec::new(),
            crlf: true
        }
    );
    assert!(
        matches!(r.read_line(100).await.unwrap(), Line::Complete { data, .. } if data == b"A2 NOOP")
    );
    writer.await.unwrap();

    let mut out = Vec::new();
    let err = r.read_exact_into(5, &mut out).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
}

#[tokio::test]
async fn idle_timeout_fires_and_can_change() {
    let (_client, server) = tokio::io::duplex(64);
    let mut r = LineReader::new(server, Duration::from_millis(100));
    let started = Instant::now();
    let err = r.read_line(100).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert!(started.elapsed() >= Duration::from_millis(100));

    r.set_idle_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let err = r.read_chunk(10).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert!(started.elapsed() >= Duration::from_millis(300));

    // Writes time out too when the peer stops reading.
    r.set_idle_timeout(Duration::from_millis(100));
    let err = r.write_all(&[b'x'; 1000]).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
}

/// Greets, then holds the connection until the client closes.
async fn hold(conn: Connection) {
    let mut r = LineReader::new(conn.stream, IDLE);
    if r.write_all(b"hello\r\n").await.is_ok() {
        while let Ok(Line::Complete { .. } | Line::TooLong) = r.read_line(100).await {}
    }
}

#[tokio::test]
async fn per_ip_limit_rejects_extra_connections() {
    let cfg = ServeConfig {
        max_connections_per_ip: 2,
        on_reject: Some(b"421 too many connections\r\n"),
        ..ServeConfig::default()
    };
    let server = start(false, cfg, None, Arc::new(hold)).await;

    let mut first = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(read_reply(&mut first).await, "hello\r\n");
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(read_reply(&mut second).await, "hello\r\n");

    let mut third = TcpStream::connect(server.addr).await.unwrap();
    let mut rest = String::new();
    third.read_to_string(&mut rest).await.unwrap();
    assert_eq!(rest, "421 too many connections\r\n");

    // Closing one frees its slot once the handler has returned.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = TcpStream::connect(server.addr).await.unwrap();
        if read_reply(&mut again).await == "hello\r\n" {
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    drop(second);
    server.shutdown.send(true).unwrap();
    server.task.await.unwrap();
}

#[tokio::test]
async fn shutdown_aborts_stuck_connections_after_grace() {
    let cfg = ServeConfig {
        shutdown_grace: Duration::from_millis(300),
        ..ServeConfig::default()
    };
    // Ignores shutdown entirely.
    let stuck = |conn: Connection| async move {
        let _keep = conn;
        std::future::pending::<()>().await;
    };
    let server = start(false, cfg, None, Arc::new(stuck)).await;
    let _client = TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    let started = Instant::now();
    server.shutdown.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .unwrap()
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(TcpStream::connect(server.addr).await.is_err());
}

#[tokio::test]
async fn shutdown_lets_connections_say_goodbye() {
    let cfg = ServeConfig {
        shutdown_grace: Duration::from_secs(30),
        ..ServeConfig::default()
    };
    let polite = |mut conn: Connection| async move {
        let _ = conn.shutdown.wait_for(|down| *down).await;
        let _ = conn.stream.write_all(b"421 shutting down\r\n").await;
    };
    let server = start(false, cfg, None, Arc::new(polite)).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    server.shutdown.send(true).unwrap();
    let mut rest = String::new();
    client.read_to_string(&mut rest).await.unwrap();
    assert_eq!(rest, "421 shutting down\r\n");
    // Returns as soon as the connection finished, long before the grace.
    tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn bind_reports_address_in_use() {
    let first = bind(ListenerSpec {
        name: "smtp".into(),
        addr: "127.0.0.1:0".parse().unwrap(),
        implicit_tls: false,
    })
    .await
    .unwrap();
    let addr = first.local_addr();
    let Err(err) = bind(ListenerSpec {
        name: "smtp".into(),
        addr,
        implicit_tls: false,
    })
    .await
    else {
        panic!("second bind succeeded");
    };
    assert_eq!(err.kind, std::io::ErrorKind::AddrInUse);
    assert_eq!(
        err.to_string(),
        format!(
            "cannot listen on {addr} for smtp: address already in use \
             (another mail server running? change [listeners] smtp)"
        )
    );
}

#[tokio::test]
async fn reload_keeps_old_config_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_a, key_a) = make_cert(dir.path(), "a");
    let (cert_b, key_b) = make_cert(dir.path(), "b");
    let tls = TlsHandle::load(&cert_a, &key_a).unwrap();
    let before = tls.config();

    assert!(tls.reload(&dir.path().join("nope.pem"), &key_a).is_err());
    assert!(tls.reload(&cert_a, &key_b).is_err());
    assert!(Arc::ptr_eq(&before, &tls.config()));

    let server = start(
        true,
        ServeConfig::default(),
        Some(tls.clone()),
        Arc::new(echo),
    )
    .await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut old_session = connector(&cert_a).connect(localhost(), tcp).await.unwrap();

    // A clone reloads for everyone: new handshakes present cert B.
    tls.clone().reload(&cert_b, &key_b).unwrap();
    assert!(!Arc::ptr_eq(&before, &tls.config()));
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut client = connector(&cert_b).connect(localhost(), tcp).await.unwrap();
    client.write_all(b"new\r\n").await.unwrap();
    assert_eq!(read_reply(&mut client).await, "echo tls: new\r\n");
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    assert!(connector(&cert_a).connect(localhost(), tcp).await.is_err());

    // The session established before the reload carries on.
    old_session.write_all(b"old\r\n").await.unwrap();
    assert_eq!(read_reply(&mut old_session).await, "echo tls: old\r\n");

    drop((old_session, client));
    server.shutdown.send(true).unwrap();
    server.task.await.unwrap();
}

#[tokio::test]
async fn stream_reports_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "a");
    let tls = TlsHandle::load(&cert, &key).unwrap();
    let check = |conn: Connection| async move {
        let mut stream: Stream = conn.stream;
        let version = stream
            .tls_connection()
            .and_then(|c| c.protocol_version())
            .map(|v| format!("{v:?}\r\n"))
            .unwrap_or_else(|| "none\r\n".into());
        let _ = stream.write_all(version.as_bytes()).await;
        let _ = stream.shutdown().await;
    };
    let server = start(true, ServeConfig::default(), Some(tls), Arc::new(check)).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut client = connector(&cert).connect(localhost(), tcp).await.unwrap();
    assert_eq!(read_reply(&mut client).await, "TLSv1_3\r\n");
    server.shutdown.send(true).unwrap();
    server.task.await.unwrap();
}
