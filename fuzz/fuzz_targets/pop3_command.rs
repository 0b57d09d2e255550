//! POP3 (`pop3::proto`): command lines, the multi-line byte-stuffer and the
//! TOP filter.
//!
//! Checks: no panic; a parsed command written back in canonical form parses
//! to the same command; byte-stuffing does not depend on chunking, and what
//! it sends decodes (with the SMTP DATA decoder, the same RFC rule) to the
//! message itself; TOP passes a prefix of the message whatever the chunking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pop3::proto::{Command, DotStuffer, TopFilter, parse};
use smtp::proto::data::DataDecoder;

fn unparse(cmd: &Command) -> Option<Vec<u8>> {
    let opt = |n: &Option<u32>| n.map(|n| format!(" {n}")).unwrap_or_default();
    Some(match cmd {
        Command::User(u) => format!("USER {u}").into_bytes(),
        Command::Pass(p) => [b"PASS ".as_slice(), p].concat(),
        Command::Auth { .. } => return None,
        Command::Capa => b"CAPA".to_vec(),
        Command::Stls => b"STLS".to_vec(),
        Command::Stat => b"STAT".to_vec(),
        Command::List(n) => format!("LIST{}", opt(n)).into_bytes(),
        Command::Uidl(n) => format!("UIDL{}", opt(n)).into_bytes(),
        Command::Retr(n) => format!("RETR {n}").into_bytes(),
        Command::Top(n, l) => format!("TOP {n} {l}").into_bytes(),
        Command::Dele(n) => format!("DELE {n}").into_bytes(),
        Command::Noop => b"NOOP".to_vec(),
        Command::Rset => b"RSET".to_vec(),
        Command::Quit => b"QUIT".to_vec(),
    })
}

fn stuffed(message: &[u8], chunk: usize) -> Vec<u8> {
    let mut s = DotStuffer::default();
    let mut out = Vec::new();
    for c in message.chunks(chunk.max(1)) {
        s.push(c, &mut out);
    }
    s.finish(&mut out);
    out
}

fn top(message: &[u8], lines: u32, chunk: usize) -> Vec<u8> {
    let mut f = TopFilter::new(lines);
    let mut out = Vec::new();
    for c in message.chunks(chunk.max(1)) {
        out.extend_from_slice(f.filter(c));
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if let Ok(cmd) = parse(data) {
        if let Command::User(u) = &cmd {
            assert!(!u.is_empty() && !u.contains(' '));
        }
        if let Some(line) = unparse(&cmd) {
            assert_eq!(parse(&line).as_ref(), Ok(&cmd), "{line:?} from {data:?}");
        }
    }
    let Some((&k, message)) = data.split_first() else {
        return;
    };
    let chunk = k as usize % 17 + 1;
    let whole = stuffed(message, message.len());
    assert_eq!(whole, stuffed(message, chunk), "stuffing depends on chunks");
    // The terminator follows a line end (the message's own, or a CRLF added).
    assert!(whole.ends_with(b"\n.\r\n") || whole == b".\r\n");
    // With CRLF-only line endings the client gets the message back exactly
    // (plus the CRLF the server adds to a message without a final one).
    let crlf_only = message.iter().enumerate().all(|(i, &b)| match b {
        b'\r' => message.get(i + 1) == Some(&b'\n'),
        b'\n' => i > 0 && message[i - 1] == b'\r',
        _ => true,
    });
    if crlf_only {
        let mut d = DataDecoder::new();
        let mut back = Vec::new();
        let fed = d.feed(&whole, &mut back);
        assert!(fed.done && fed.consumed == whole.len(), "{whole:?}");
        let mut expected = message.to_vec();
        if !expected.is_empty() && !expected.ends_with(b"\r\n") {
            expected.extend_from_slice(b"\r\n");
        }
        assert_eq!(back, expected);
    }
    let lines = u32::from(k % 8);
    let t = top(message, lines, message.len());
    assert!(message.starts_with(&t));
    assert_eq!(t, top(message, lines, chunk), "TOP depends on chunks");
});
