//! In-process sessions over loopback TCP: a real store in a temporary
//! directory, the real accept loop, and a minimal line client.

use std::sync::Arc;
use std::time::Duration;

use directory::auth::{AuthPolicy, Authenticator};
use directory::{Directory, DomainMode, Policy};
use imap::{ImapConfig, ImapServer};
use net::{Connection, ListenerSpec, ServeConfig};
use store::{Store, StoreOptions};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;

struct Env {
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
    _shutdown: watch::Sender<bool>,
}

async fn start() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db"), StoreOptions::default()).unwrap();
    let directory = Directory::new(store.clone(), Policy::default());
    directory
        .add_domain("example.org", DomainMode::Authoritative, None)
        .await
        .unwrap();
    directory
        .add_account("anna@example.org", "correct horse", None, None)
        .await
        .unwrap();
    let auth = Authenticator::new(directory.clone(), AuthPolicy::default());
    let config = ImapConfig {
        allow_plaintext_auth: true,
        max_message_size: 4 << 20,
    };
    let server = ImapServer::new(config, store, directory, auth);
    let spec = ListenerSpec {
        name: "imap".into(),
        addr: "127.0.0.1:0".parse().unwrap(),
        implicit_tls: false,
    };
    let listener = net::bind(spec).await.unwrap();
    let addr = listener.local_addr();
    let (tx, rx) = watch::channel(false);
    let handler = Arc::new(move |conn: Connection| {
        let server = server.clone();
        async move { server.handle(conn).await }
    });
    tokio::spawn(net::serve(
        listener,
        ServeConfig::default(),
        None,
        rx,
        handler,
    ));
    Env {
        addr,
        _dir: dir,
        _shutdown: tx,
    }
}

struct Client {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
}

impl Client {
    async fn connect(env: &Env) -> Client {
        let (r, w) = TcpStream::connect(env.addr).await.unwrap().into_split();
        let mut c = Client {
            r: BufReader::new(r),
            w,
        };
        assert!(c.line().await.starts_with("* OK"));
        c
    }

    async fn login(env: &Env) -> Client {
        let mut c = Client::connect(env).await;
        c.ok("a", "LOGIN anna@example.org \"correct horse\"").await;
        c
    }

    async fn line(&mut self) -> String {
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), self.r.read_until(b'\n', &mut buf))
            .await
            .expect("timeout")
            .unwrap();
        String::from_utf8_lossy(&buf).into_owned()
    }

    async fn send(&mut self, data: &[u8]) {
        self.w.write_all(data).await.unwrap();
    }

    /// Runs a command and returns its untagged lines; asserts OK.
    async fn ok(&mut self, tag: &str, cmd: &str) -> Vec<String> {
        self.send(format!("{tag} {cmd}\r\n").as_bytes()).await;
        self.until(tag, " OK").await
    }

    async fn until(&mut self, tag: &str, status: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let l = self.line().await;
            if l.starts_with(&format!("{tag} ")) {
                assert!(l.contains(status), "{l} after {lines:?}");
                return lines;
            }
            lines.push(l);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn append_large_literal_plus_streams_and_round_trips() {
    let env = start().await;
    let mut c = Client::login(&env).await;
    let mut msg = b"Subject: big\r\n\r\n".to_vec();
    while msg.len() < 1_500_000 {
        msg.extend_from_slice(b"0123456789abcdef0123456789abcdef0123456789abcdef\r\n");
    }
    c.send(format!("b APPEND INBOX {{{}+}}\r\n", msg.len()).as_bytes())
        .await;
    c.send(&msg).await;
    c.send(b"\r\n").await;
    c.until("b", "OK [APPENDUID").await;
    c.ok("c", "SELECT INBOX").await;
    c.send(b"d FETCH 1 BODY.PEEK[]\r\n").await;
    let head = c.line().await;
    assert!(head.ends_with(&format!("{{{}}}\r\n", msg.len())), "{head}");
    let mut got = vec![0u8; msg.len()];
    tokio::io::AsyncReadExt::read_exact(&mut c.r, &mut got)
        .await
        .unwrap();
    assert!(got == msg);
    assert_eq!(c.line().await, ")\r\n");
    c.until("d", "OK").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn over_limit_append_is_refused_before_reading() {
    let env = start().await;
    let mut c = Client::login(&env).await;
    c.send(b"b APPEND INBOX {5000000}\r\n").await;
    let l = c.line().await;
    assert!(l.starts_with("b NO [TOOBIG]"), "{l}");
    c.ok("c", "NOOP").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_done_pipelined_with_next_command() {
    let env = start().await;
    let mut a = Client::login(&env).await;
    a.ok("b", "SELECT INBOX").await;
    a.send(b"c IDLE\r\n").await;
    assert!(a.line().await.starts_with("+ "));
    let mut other = Client::login(&env).await;
    other
        .send(b"x APPEND INBOX {15+}\r\nSubject: x\r\n\r\nx\r\n")
        .await;
    other.until("x", "OK").await;
    assert_eq!(a.line().await, "* 1 EXISTS\r\n");
    a.send(b"DONE\r\nd FETCH 1 (FLAGS)\r\n").await;
    a.until("c", "OK").await;
    let lines = a.until("d", "OK").await;
    assert_eq!(lines, vec!["* 1 FETCH (FLAGS ())\r\n"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn too_many_bad_commands_end_the_session() {
    let env = start().await;
    let mut c = Client::connect(&env).await;
    for _ in 0..20 {
        c.send(b"x BOGUS\r\n").await;
        assert!(c.line().await.starts_with("x BAD"));
    }
    c.send(b"x BOGUS\r\n").await;
    assert!(c.line().await.starts_with("x BAD"));
    assert!(c.line().await.starts_with("* BYE"));
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_need_the_right_state() {
    let env = start().await;
    let mut c = Client::connect(&env).await;
    c.send(b"a SELECT INBOX\r\n").await;
    assert!(c.line().await.starts_with("a BAD"));
    c.ok("b", "LOGIN anna@example.org \"correct horse\"").await;
    c.send(b"c FETCH 1 FLAGS\r\n").await;
    assert!(c.line().await.starts_with("c BAD"));
    c.ok("d", "EXAMINE INBOX").await;
    c.send(b"e STORE 1 +FLAGS (\\Seen)\r\n").await;
    assert!(c.line().await.starts_with("e NO [READ-ONLY]"));
    c.send(b"f EXPUNGE\r\n").await;
    assert!(c.line().await.starts_with("f NO [READ-ONLY]"));
    c.ok("g", "LOGOUT").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn literal_count_and_size_are_limited_before_reading() {
    let env = start().await;
    let mut c = Client::connect(&env).await;
    c.send(b"a LOGIN {1}\r\n").await;
    for _ in 0..15 {
        assert!(c.line().await.starts_with("+ "));
        c.send(b"x {1}\r\n").await;
    }
    assert!(c.line().await.starts_with("+ "));
    // The 17th literal of one command is refused without a continuation.
    c.send(b"x {1}\r\n").await;
    assert!(c.line().await.starts_with("a BAD [TOOBIG]"));
    c.send(b"b LOGIN {70000}\r\n").await;
    assert!(c.line().await.starts_with("b BAD [TOOBIG]"));
    c.ok("c", "NOOP").await;
}
