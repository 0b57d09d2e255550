//! The DATA stream decoder (`smtp::proto::data::DataDecoder`).
//!
//! The first two input bytes choose split points; the rest is the stream.
//! Checks: no panic; the result (message bytes, bytes consumed, end seen,
//! bare-newline flag) does not depend on how the network split the stream;
//! `out` grows by at most `input.len() + 1` per feed as documented; nothing
//! after the end of data is consumed; and when the stream ended cleanly,
//! dot-stuffing the decoded message and decoding it again gives it back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtp::proto::data::DataDecoder;

#[derive(Debug, PartialEq)]
struct Outcome {
    out: Vec<u8>,
    consumed: usize,
    done: bool,
    bare: bool,
}

fn decode(stream: &[u8], chunks: &[usize]) -> Outcome {
    let mut d = DataDecoder::new();
    let mut out = Vec::new();
    let mut consumed = 0;
    let mut done = false;
    let mut at = 0;
    let mut i = 0;
    while at < stream.len() && !done {
        let size = chunks.get(i).copied().unwrap_or(usize::MAX).max(1);
        i += 1;
        let end = stream.len().min(at.saturating_add(size));
        let before = out.len();
        let fed = d.feed(&stream[at..end], &mut out);
        assert!(out.len() - before <= end - at + 1, "out grew too much");
        assert!(fed.consumed <= end - at);
        if !fed.done {
            assert_eq!(fed.consumed, end - at, "stopped early without the end");
        }
        consumed += fed.consumed;
        done = fed.done;
        at = end;
    }
    Outcome {
        out,
        consumed,
        done,
        bare: d.saw_bare_newline(),
    }
}

/// RFC 5321 §4.5.2 stuffing of a CRLF message, plus the end of data.
fn stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut line_start = true;
    for &b in message {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n';
    }
    if !line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

fuzz_target!(|data: &[u8]| {
    let (a, b, stream) = match data {
        [a, b, rest @ ..] => (*a as usize, *b as usize, rest),
        _ => return,
    };
    let whole = decode(stream, &[]);
    let bytewise = decode(stream, &vec![1; stream.len()]);
    assert_eq!(whole, bytewise, "byte-at-a-time differs");
    let split = decode(stream, &[a + 1, b + 1, a + b + 1, 7, 3]);
    assert_eq!(whole, split, "split at {a},{b} differs");
    if whole.done {
        // The end was the first CRLF.CRLF: nothing after it was eaten.
        assert!(stream[..whole.consumed].ends_with(b".\r\n"));
        if !whole.bare {
            assert!(whole.out.is_empty() || whole.out.ends_with(b"\r\n"));
            let again = decode(&stuff(&whole.out), &[]);
            assert!(again.done && !again.bare);
            assert_eq!(again.out, whole.out, "stuff/decode round trip");
        }
    }
});
