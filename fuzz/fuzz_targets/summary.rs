//! The MIME summariser (`summary`), which runs on every delivered message,
//! and the IMAP ENVELOPE/BODYSTRUCTURE formatting of its result.
//!
//! The first byte picks a chunk size and the limits; the rest is the
//! message. Checks: no panic; the summary does not depend on where the
//! message is split (as documented); `size` is the message length; every
//! part's byte range lies inside the message; the IMAP formatting of the
//! summary has balanced parentheses outside strings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use summary::{Limits, Part, PartKind, Summary, SummaryBuilder};

fn build(message: &[u8], chunk: usize, limits: Limits) -> Summary {
    let mut b = SummaryBuilder::new(limits);
    for c in message.chunks(chunk.max(1)) {
        b.feed(c);
    }
    b.finish()
}

/// Each part's offsets are ordered and lie inside its parent's body. One
/// tolerance: the CRLF before a boundary line belongs to the delimiter (RFC
/// 2046 §5.1.1), so the parent part ends before it, but an embedded message
/// whose header's empty line is that very CRLF keeps it in its header (and
/// its empty body starts after it): the child may run 2 bytes past.
fn walk(p: &Part, lo: u64, hi: u64, depth: usize) {
    assert!(depth < 100, "tree too deep");
    assert!(
        lo <= p.header_offset
            && p.header_offset <= p.body_offset
            && p.body_offset <= p.end_offset
            && p.end_offset <= hi + 2,
        "part {}..{}..{} outside {lo}..{hi}",
        p.header_offset,
        p.body_offset,
        p.end_offset
    );
    match &p.kind {
        PartKind::Multipart(children) => {
            for c in children {
                walk(c, p.body_offset, p.end_offset, depth + 1);
            }
        }
        PartKind::Message { body, .. } => walk(body, p.body_offset, p.end_offset, depth + 1),
        PartKind::Single => {}
    }
}

/// Parentheses balance outside quoted strings and `{n}` literals.
fn balanced(out: &[u8]) {
    let (mut depth, mut i) = (0i64, 0);
    while i < out.len() {
        match out[i] {
            b'"' => {
                i += 1;
                while out[i] != b'"' {
                    i += if out[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' => {
                let close = i + out[i..].iter().position(|&b| b == b'}').unwrap();
                let n: usize = std::str::from_utf8(&out[i + 1..close])
                    .unwrap()
                    .parse()
                    .unwrap();
                assert_eq!(&out[close + 1..close + 3], b"\r\n");
                i = close + 2 + n;
            }
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                assert!(depth >= 0, "unbalanced: {}", String::from_utf8_lossy(out));
            }
            _ => {}
        }
        i += 1;
    }
    assert_eq!(depth, 0, "unbalanced: {}", String::from_utf8_lossy(out));
}

fuzz_target!(|data: &[u8]| {
    let Some((&k, message)) = data.split_first() else {
        return;
    };
    let limits = if k & 0x80 == 0 {
        Limits::default()
    } else {
        Limits {
            max_depth: 3,
            max_parts: 8,
            max_header_bytes: 256,
            max_headers: 8,
            max_params: 2,
        }
    };
    let whole = build(message, message.len(), limits);
    assert_eq!(whole.size, message.len() as u64);
    let chunked = build(message, usize::from(k & 0x7f) + 1, limits);
    assert_eq!(whole, chunked, "summary depends on chunking");
    walk(&whole.root, 0, whole.size, 0);
    let mut out = Vec::new();
    imap::proto::format::envelope(&mut out, &whole.envelope);
    balanced(&out);
    out.clear();
    imap::proto::format::body_structure(&mut out, &whole.root, true);
    balanced(&out);
});
