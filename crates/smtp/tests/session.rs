//! SMTP sessions end to end in-process: a real store on disk, the real
//! listener, and a small test client on a loopback socket. Each test is
//! named after what it pins.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use delivery::BoxFuture;
use delivery::Deliverer;
use directory::auth::{AuthPolicy, Authenticator};
use directory::{AccountId, Directory, DomainMode, Policy};
use net::{ListenerSpec, ServeConfig};
use smtp::{ListenerKind, Reply, SenderCheck, SenderInfo, SenderVerdict, SmtpConfig, SmtpServer};
use store::{Store, StoreOptions};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

const PASSWORD: &str = "correct horse";
const WAIT: Duration = Duration::from_secs(20);

struct Harness {
    _dir: tempfile::TempDir,
    store: Store,
    directory: Directory,
    addr: SocketAddr,
    anna: AccountId,
    _shutdown: watch::Sender<bool>,
}

/// A server with domain example.org, account anna@example.org (alias
/// info@example.org) and account bob@example.org.
async fn harness(kind: ListenerKind, tweak: impl FnOnce(&mut SmtpConfig)) -> Harness {
    harness_with(kind, tweak, None).await
}

async fn harness_with(
    kind: ListenerKind,
    tweak: impl FnOnce(&mut SmtpConfig),
    check: Option<Arc<dyn SenderCheck>>,
) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db"), StoreOptions::default()).unwrap();
    let directory = Directory::new(store.clone(), Policy::default());
    directory
        .add_domain("example.org", DomainMode::Authoritative, None)
        .await
        .unwrap();
    let anna = directory
        .add_account("anna@example.org", PASSWORD, None, None)
        .await
        .unwrap();
    directory
        .add_account("bob@example.org", PASSWORD, None, None)
        .await
        .unwrap();
    directory
        .add_alias("info@example.org", "anna@example.org")
        .await
        .unwrap();
    let mut config = SmtpConfig::new("mail.test", kind);
    tweak(&mut config);
    let auth = Authenticator::new(directory.clone(), AuthPolicy::default());
    let server = SmtpServer::new(
        config,
        Deliverer::new(store.clone(), directory.clone()),
        directory.clone(),
        auth,
    );
    let server = match check {
        Some(check) => server.with_sender_check(check),
        None => server,
    };
    let spec = ListenerSpec {
        name: "smtp".into(),
        addr: "127.0.0.1:0".parse().unwrap(),
        implicit_tls: false,
    };
    let bound = net::bind(spec).await.unwrap();
    let addr = bound.local_addr();
    let (tx, rx) = watch::channel(false);
    let handler = Arc::new(move |conn| {
        let server = server.clone();
        async move { server.handle(conn).await }
    });
    tokio::spawn(net::serve(bound, ServeConfig::default(), None, rx, handler));
    Harness {
        _dir: dir,
        store,
        directory,
        addr,
        anna: anna.id,
        _shutdown: tx,
    }
}

impl Harness {
    async fn connect(&self) -> Client {
        let stream = TcpStream::connect(self.addr).await.unwrap();
        let mut c = Client {
            stream: BufReader::new(stream),
        };
        let (code, text) = c.reply().await;
        assert_eq!((code, text.as_str()), (220, "mail.test ESMTP posthorn"));
        c
    }

    /// A client after EHLO.
    async fn ehlo(&self) -> Client {
        let mut c = self.connect().await;
        c.ok("EHLO client.example").await;
        c
    }

    /// The messages in an account's INBOX, as stored.
    async fn inbox(&self, account: AccountId) -> Vec<Vec<u8>> {
        let inbox = self
            .store
            .mailboxes(account)
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.info.name == "INBOX")
            .unwrap();
        let mut out = Vec::new();
        for (_, rec) in self
            .store
            .list(account, inbox.id, 1..=u32::MAX)
            .await
            .unwrap()
        {
            let mut reader = self.store.open_blob(rec.blob).await.unwrap();
            let mut bytes = Vec::new();
            while let Some(chunk) = reader.next_chunk().await.unwrap() {
                bytes.extend_from_slice(&chunk);
            }
            out.push(bytes);
        }
        out
    }
}

struct Client {
    stream: BufReader<TcpStream>,
}

impl Client {
    async fn send(&mut self, data: &[u8]) {
        self.stream.get_mut().write_all(data).await.unwrap();
    }

    /// One reply: the code and the text of its lines, joined by newlines.
    async fn reply(&mut self) -> (u16, String) {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(WAIT, self.stream.read_line(&mut line))
                .await
                .expect("reply in time")
                .unwrap();
            assert!(n > 0, "connection closed; got {lines:?}");
            assert!(line.ends_with("\r\n"), "{line:?}");
            let code: u16 = line[..3].parse().unwrap();
            let last = line.as_bytes()[3] == b' ';
            lines.push(line[4..line.len() - 2].to_string());
            if last {
                return (code, lines.join("\n"));
            }
        }
    }

    async fn cmd(&mut self, line: &str) -> (u16, String) {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// Sends a command and expects a 2xx or 3xx reply.
    async fn ok(&mut self, line: &str) -> String {
        let (code, text) = self.cmd(line).await;
        assert!(code < 400, "{line}: {code} {text}");
        text
    }

    async fn expect(&mut self, line: &str, code: u16) -> String {
        let (got, text) = self.cmd(line).await;
        assert_eq!(got, code, "{line}: {text}");
        text
    }

    async fn closed(&mut self) -> bool {
        let mut line = String::new();
        matches!(
            tokio::time::timeout(WAIT, self.stream.read_line(&mut line)).await,
            Ok(Ok(0) | Err(_))
        )
    }
}

/// The message as stored, without the Received header we prepend.
fn without_received(stored: &[u8]) -> &[u8] {
    let text = String::from_utf8_lossy(stored);
    assert!(text.starts_with("Received: from "), "{text}");
    let end = text
        .find(" +0000\r\n")
        .expect("date ends the Received header")
        + 8;
    &stored[end..]
}

#[tokio::test]
async fn local_delivery_stores_message_byte_for_byte() {
    let h = harness(ListenerKind::Mx, |_| {}).await;
    let mut c = h.ehlo().await;
    c.ok("MAIL FROM:<someone@remote.example>").await;
    c.ok("RCPT TO:<Anna@EXAMPLE.org>").await;
    c.expect("DATA", 354).await;
    let body = b"Subject: hi\r\n\r\n..leading dot\r\n8bit: \xc3\xa4\xff\r\n";
    c.send(b"Subject: hi\r\n\r\n...leading dot\r\n8bit: \xc3\xa4\xff\r\n.\r\n")
        .await;
    let (code, text) = c.reply().await;
    assert_eq!(code, 250, "{text}");
    assert!(text.starts_with("2.0.0 Ok: queued as "), "{text}");
    c.expect("QUIT", 221).await;

    let inbox = h.inbox(h.anna).await;
    assert_eq!(inbox.len(), 1);
    assert_eq!(without_received(&inbox[0]), body);
    let received = String::from_utf8_lossy(&inbox[0]);
    assert!(
        received.starts_with("Received: from client.example ([127.0.0.1])\r\n\tby mail.test (posthorn) with ESMTP id "),
        "{received}"
    );
    assert!(
        received.contains("\tfor <Anna@EXAMPLE.org>;\r\n"),
        "{received}"
    );
}

#[tokio::test]
async fn ehlo_capabilities_on_mx() {
    let h = harness(ListenerKind::Mx, |c| c.max_message_size = 1234).await;
    let mut c = h.connect().await;
    let text = c.ok("EHLO client.example").await;
    assert_eq!(
        text,
        "mail.test\nPIPELINING\n8BITMIME\nSMTPUTF8\nENHANCEDSTATUSCODES\nSIZE 1234"
    );
    assert_eq!(c.ok("HELO client.example").await, "mail.test");
}

#[tokio::test]
async fn relay_tricks_are_refused() {
    let h = harness(ListenerKind::Mx, |_| {}).await;
    let mut c = h.ehlo().await;
    c.ok("MAIL FROM:<spammer@remote.example>").await;
    let cases: [(&str, u16, &str); 9] = [
        ("<victim@other.tld>", 550, "5.7.1 relay not permitted"),
        ("<user%other.tld@example.org>", 550, "5.1.1"),
        ("<other.tld!user@example.org>", 550, "5.1.1"),
        (
            "<@example.org:user@other.tld>",
            550,
            "5.7.1 relay not permitted",
        ),
        ("<\"user@other.tld\"@example.org>", 501, "5.1.3"),
        ("<user@other.tld@example.org>", 501, "5.1.3"),
        ("<anna@example.org.>", 501, "5.1.3"),
        ("<anna@[127.0.0.1]>", 550, "5.7.1 relay not permitted"),
        ("<anna@[IPv6:::1]>", 550, "5.7.1 relay not permitted"),
    ];
    for (path, code, start) in cases {
        let text = c.expect(&format!("RCPT TO:{path}"), code).await;
        assert!(text.starts_with(start), "{path}: {text}");
    }
    // The source route is dropped, the local mailbox judged.
    c.ok("RCPT TO:<@other.tld:ANNA@example.org>").await;
    c.expect("DATA", 354).await;
    c.send(b"Subject: routed\r\n\r\nx\r\n.\r\n").await;
    assert_eq!(c.reply().await.0, 250);
    assert_eq!(h.inbox(h.anna).await.len(), 1);
}

#[tokio::test]
async fn unknown_user_and_sequencing() {
    let h = harness(ListenerKind::Mx, |_| {}).await;
    let mut c = h.connect().await;
    assert!(
        c.expect("MAIL FROM:<a@b.example>", 503)
            .await
            .starts_with("5.5.1")
    );
    c.ok("EHLO client.example").await;
    c.expect("RCPT TO:<anna@example.org>", 503).await;
    c.expect("DATA", 503).await;
    c.ok("MAIL FROM:<a@b.example>").await;
    c.expect("MAIL FROM:<a@b.example>", 503).await;
    assert!(
        c.expect("RCPT TO:<nobody@example.org>", 550)
            .await
            .starts_with("5.1.1")
    );
    assert!(c.expect("DATA", 554).await.starts_with("5.5.1"));
    c.ok("RSET").await;
    c.expect("RCPT TO:<anna@example.org>", 503).await;
    assert!(c.expect("VRFY anna", 252).await.starts_with("2.5.0"));
    c.expect("EXPN list", 502).await;
    c.ok("NOOP").await;
    c.ok("HELP").await;
    assert!(c.expect("FOO", 500).await.starts_with("5.5.1"));
    c.expect("BDAT 10 LAST", 502).await;
    c.expect("AUTH PLAIN", 503).await;
    c.expect("STARTTLS", 454).await;
    c.expect("MAIL FROM:<a@b.example> RET=HDRS", 555).await;
    c.expect("MAIL FROM:<a@b.example> SIZE=x", 501).await;
    c.expect("QUIT", 221).await;
    assert!(c.closed().await);
}

#[tokio::test]
async fn pipelined_transactions_including_after_end_of_data() {
    let h = harness(ListenerKind::Mx, |_| {}).await;
    let mut c = h.ehlo().await;
    // Two whole transactions and QUIT in one write (RFC 2920): the
    // commands after the first end of data must not be lost.
    c.send(
        b"MAIL FROM:<a@b.example>\r\nRCPT TO:<anna@example.org>\r\nRCPT TO:<info@example.org>\r\nDATA\r\n",
    )
    .await;
    for code in [250, 250, 250, 354] {
        assert_eq!(c.reply().await.0, code);
    }
    c.send(b"Subject: one\r\n\r\n1\r\n.\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
        .await;
    for code in [250, 250, 250, 354] {
        assert_eq!(c.reply().await.0, code);
    }
    // A command split right after the end of data: the 250 must not wait
    // for the rest of it.
    c.send(b"Subject: two\r\n\r\n2\r\n.\r\nQU").await;
    assert_eq!(c.reply().await.0, 250);
    c.send(b"IT\r\n").await;
    assert_eq!(c.reply().await.0, 221);
    // Anna once, although addressed twice (directly and by alias).
    assert_eq!(h.inbox(h.anna).await.len(), 1);
    let bob = h
        .directory
        .account("bob@example.org")
        .await
        .unwrap()
        .unwrap();
    let bob_inbox = h.inbox(bob.id).await;
    assert_eq!(bob_inbox.len(), 1);
    assert!(without_received(&bob_inbox[0]).ends_with(b"\r\n\r\n2\r\n"));
}

#[tokio::test]
async fn smuggling_bare_lf_dot() {
    let h = harness(ListenerKind::Mx, |_| {}).await;
    let mut c = h.ehlo().await;
    for end in [&b"\n.\n"[..], b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n"] {
        c.ok("MAIL FROM:<a@b.example>").await;
        c.ok("RCPT TO:<anna@example.org>").await;
        c.expect("DATA", 354).await;
        let mut data = b"Subject: first\r\n\r\nx".to_vec();
        data.extend_from_slice(end);
        data.extend_from_slice(
            b"MAIL FROM:<evil@b.example>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\ny\r\n.\r\n",
        );
        c.send(&data).await;
        let (code, text) = c.reply().await;
        assert_eq!(code, 550, "{end:?}: {text}");
        assert_eq!(
            text,
            "5.5.2 Message contains bare LF or CR (SMTP smuggling protection)"
        );
    }
    // The session is still in step: nothing left over was taken as commands.
    c.ok("NOOP").await;
    assert!(h.inbox(h.anna).await.is_empty());
    let bob = h
        .directory
        .account("bob@example.org")
        .await
        .unwrap()
        .unwrap();
    assert!(h.inbox(bob.id).await.is_empty());
}

#[tokio::test]
async fn size_limit_declared_and_streamed() {
    const MAX: u64 = 2000;
    let h = harness(ListenerKind::Mx, |c| c.max_message_size = MAX).await;
    let mut c = h.ehlo().await;
    let text = c.expect("MAIL FROM:<a@b.example> SIZE=2001", 552).await;
    assert_eq!(
        text,
        "5.3.4 Message size exceeds fixed maximum message size"
    );
    c.ok("MAIL FROM:<a@b.example> SIZE=2000").await;
    c.ok("RCPT TO:<anna@example.org>").await;
    c.expect("DATA", 354).await;
    // Exactly the limit: accepted.
    let line = format!("{}\r\n", "a".repeat(98));
    let exact = line.repeat((MAX / 100) as usize);
    c.send(format!("{exact}.\r\n").as_bytes()).await;
    assert_eq!(c.reply().await.0, 250);
    // One byte more (undeclared): read to the end, refused, nothing stored.
    c.ok("MAIL FROM:<a@b.example>").await;
    c.ok("RCPT TO:<anna@example.org>").await;
    c.expect("DATA", 354).await;
    c.send(format!("x{exact}.\r\n").as_bytes()).await;
    assert_eq!(c.reply().await, (552, "5.3.4 Message too big".to_string()));
    c.ok("NOOP").await;
    assert_eq!(h.inbox(h.anna).await.len(), 1);
}

#[tokio::test]
async fn large_message_spanning_many_chunks() {
    let h = harness(ListenerKind::Mx, |_| {}).await;
    let mut c = h.ehlo().await;
    c.ok("MAIL FROM:<a@b.example>").await;
    c.ok("RCPT TO:<anna@example.org>").await;
    c.expect("DATA", 354).await;
    let mut message = Vec::new();
    let mut i = 0u32;
    while message.len() < 3 * 1024 * 1024 {
        message.extend_from_slice(format!(".line {i} with a stuffed dot\r\n").as_bytes());
        i += 1;
    }
    let mut wire = Vec::new();
    for line in message.split_inclusive(|&b| b == b'\n') {
        wire.push(b'.');
        wire.extend_from_slice(line);
    }
    wire.extend_from_slice(b".\r\n");
    c.send(&wire).await;
    assert_eq!(c.reply().await.0, 250);
    assert_eq!(without_received(&h.inbox(h.anna).await[0]), &message[..]);
}

#[tokio::test]
async fn too_many_recipients() {
    let h = harness(ListenerKind::Mx, |_| {}).await;
    let mut c = h.ehlo().await;
    c.ok("MAIL FROM:<a@b.example>").await;
    for _ in 0..100 {
        c.ok("RCPT TO:<anna@example.org>").await;
    }
    assert!(
        c.expect("RCPT TO:<anna@example.org>", 452)
            .await
            .starts_with("4.5.3")
    );
}

#[tokio::test]
async fn overlong_line_then_too_many_errors() {
    let h = harness(ListenerKind::Mx, |_| {}).await;
    let mut c = h.ehlo().await;
    let long = format!("NOOP {}", "x".repeat(1000));
    assert_eq!(c.expect(&long, 500).await, "5.5.2 Line too long");
    let huge = format!("NOOP {}", "x".repeat(20_000));
    assert_eq!(c.expect(&huge, 500).await, "5.5.2 Line too long");
    c.ok("NOOP").await;
    // Two errors so far; the 21st closes the session.
    for _ in 0..18 {
        c.expect("BOGUS", 500).await;
    }
    let (code, text) = c.cmd("BOGUS").await;
    assert_eq!(code, 500);
    assert_eq!(c.reply().await.0, 421, "after {text}");
    assert!(c.closed().await);
}

#[tokio::test]
async fn command_timeout_closes_with_421() {
    let h = harness(ListenerKind::Mx, |c| {
        c.command_timeout = Duration::from_millis(200)
    })
    .await;
    let mut c = h.connect().await;
    let (code, text) = c.reply().await;
    assert_eq!(code, 421);
    assert!(text.starts_with("4.4.2"), "{text}");
    assert!(c.closed().await);
}

#[tokio::test]
async fn submission_requires_auth() {
    let h = harness(ListenerKind::Submission, |_| {}).await;
    let mut c = h.connect().await;
    let caps = c.ok("EHLO client.example").await;
    assert!(!caps.contains("AUTH"), "no AUTH before TLS: {caps}");
    assert_eq!(
        c.expect("MAIL FROM:<anna@example.org>", 530).await,
        "5.7.0 Authentication required"
    );
    assert!(
        c.expect("AUTH PLAIN AGFubmEAeA==", 538)
            .await
            .starts_with("5.7.11")
    );
}

fn plain(user: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn auth_plain_login_and_sender_ownership() {
    let h = harness(ListenerKind::Submission, |c| c.allow_plaintext_auth = true).await;
    let mut c = h.connect().await;
    assert!(
        c.ok("EHLO client.example")
            .await
            .contains("AUTH PLAIN LOGIN")
    );
    let bad = c
        .expect(
            &format!("AUTH PLAIN {}", plain("anna@example.org", "wrong")),
            535,
        )
        .await;
    assert_eq!(bad, "5.7.8 Authentication credentials invalid");
    assert!(c.expect("AUTH PLAIN !!!", 501).await.starts_with("5.5.2"));
    assert_eq!(c.expect("AUTH PLAIN", 334).await, "");
    assert!(c.expect("*", 501).await.starts_with("5.7.0"));
    c.expect("AUTH CRAM-MD5", 504).await;
    // LOGIN as Outlook does it, by short login id.
    let short = h
        .directory
        .account("anna@example.org")
        .await
        .unwrap()
        .unwrap()
        .short_login;
    assert_eq!(c.expect("AUTH LOGIN", 334).await, "VXNlcm5hbWU6");
    assert_eq!(c.expect(&b64(&short), 334).await, "UGFzc3dvcmQ6");
    assert_eq!(
        c.expect(&b64(PASSWORD), 235).await,
        "2.7.0 Authentication successful"
    );
    c.expect(
        &format!("AUTH PLAIN {}", plain("anna@example.org", PASSWORD)),
        503,
    )
    .await;

    let text = c.expect("MAIL FROM:<bob@example.org>", 553).await;
    assert_eq!(text, "5.7.1 Sender address not owned by user");
    c.expect("MAIL FROM:<anna@example.org.evil>", 553).await;
    c.ok("MAIL FROM:<INFO@example.org>").await;
    c.ok("RSET").await;
    c.ok("MAIL FROM:<Anna@Example.org>").await;
    // Authenticated relay goes to the outbound queue, one entry per domain.
    c.expect("RCPT TO:<friend@remote.example>", 250).await;
    c.expect("RCPT TO:<friend@[192.0.2.1]>", 250).await;
    c.ok("RCPT TO:<bob@example.org>").await;
    c.expect("DATA", 354).await;
    c.send(b"Subject: from anna\r\n\r\nhi\r\n.\r\n").await;
    assert_eq!(c.reply().await.0, 250);
    let queue = h.store.queue().await.unwrap();
    let mut domains: Vec<&str> = queue.iter().map(|(_, e)| e.domain.as_str()).collect();
    domains.sort();
    assert_eq!(domains, ["[192.0.2.1]", "remote.example"]);
    assert!(queue.iter().all(|(_, e)| e.sender == "Anna@Example.org"));
    let bob = h
        .directory
        .account("bob@example.org")
        .await
        .unwrap()
        .unwrap();
    let stored = String::from_utf8(h.inbox(bob.id).await.remove(0)).unwrap();
    assert!(
        stored.contains("(Authenticated sender: anna@example.org)"),
        "{stored}"
    );
    assert!(stored.contains(" with ESMTPA id "), "{stored}");
}

#[tokio::test]
async fn auth_plain_after_challenge_and_sender_not_enforced() {
    let h = harness(ListenerKind::Submission, |c| {
        c.allow_plaintext_auth = true;
        c.enforce_sender = false;
    })
    .await;
    let mut c = h.ehlo().await;
    c.expect("AUTH PLAIN", 334).await;
    c.expect(&plain("bob@example.org", PASSWORD), 235).await;
    c.ok("MAIL FROM:<anyone@anywhere.example>").await;
}

/// Stands in for SPF: refuses one domain, stamps everything else.
struct FakeSpf;

impl SenderCheck for FakeSpf {
    fn check<'a>(&'a self, info: SenderInfo<'a>) -> BoxFuture<'a, SenderVerdict> {
        let verdict = if info.sender.ends_with("@forged.example") {
            SenderVerdict::Reject(Reply::new(550, "5.7.23", "SPF check failed"))
        } else {
            SenderVerdict::Accept {
                trace_headers: vec![format!(
                    "Received-SPF: pass (fake) client-ip={}; helo={}; envelope-from=<{}>\r\n",
                    info.peer, info.helo, info.sender
                )],
            }
        };
        Box::pin(async move { verdict })
    }
}

#[tokio::test]
async fn sender_check_seam_rejects_and_stamps() {
    let h = harness_with(ListenerKind::Mx, |_| {}, Some(Arc::new(FakeSpf))).await;
    let mut c = h.ehlo().await;
    let text = c.expect("MAIL FROM:<x@forged.example>", 550).await;
    assert_eq!(text, "5.7.23 SPF check failed");
    c.ok("MAIL FROM:<x@good.example>").await;
    c.ok("RCPT TO:<anna@example.org>").await;
    c.expect("DATA", 354).await;
    c.send(b"Subject: checked\r\n\r\nx\r\n.\r\n").await;
    assert_eq!(c.reply().await.0, 250);
    let stored = String::from_utf8(h.inbox(h.anna).await.remove(0)).unwrap();
    let spf = "Received-SPF: pass (fake) client-ip=127.0.0.1; helo=client.example; envelope-from=<x@good.example>\r\nSubject: checked\r\n";
    assert!(stored.contains(spf), "{stored}");
}
