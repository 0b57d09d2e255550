//! The DATA stream (RFC 5321 §4.1.1.4): only `CRLF . CRLF` ends it, a
//! leading dot is removed from every line that has one (§4.5.2).
//!
//! SMTP smuggling (CVE-2023-51764 and relatives) works by sending an end of
//! data that this server does not see but the next hop does, or the other
//! way round: `LF . LF`, `CR . CR`, `LF . CRLF`, `CRLF . LF` and so on. Here
//! a line starts only after a real CRLF, so none of them can end the
//! message, and every bare LF or CR is recorded so that the session can
//! reject the message as Postfix's `smtpd_forbid_bare_newline` does: such a
//! message could mean something else to the next server.
//!
//! The decoder is a byte state machine over arbitrary chunks, so where the
//! network splits the stream never changes the result.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// After a CRLF (or at the very start): a dot here is special.
    LineStart,
    /// A dot at the start of a line.
    Dot,
    /// `.CR` at the start of a line: an LF now ends the data.
    DotCr,
    /// Inside a line.
    Text,
    /// A CR inside a line: CRLF if an LF follows, else a bare CR.
    Cr,
    Done,
}

/// Result of one [`DataDecoder::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fed {
    /// Input bytes used. Less than the input only when `done`: the rest
    /// belongs to the commands after the data.
    pub consumed: usize,
    /// The end-of-data sequence was seen; the decoder takes no more.
    pub done: bool,
}

#[derive(Debug, Clone)]
pub struct DataDecoder {
    state: State,
    bare_newline: bool,
}

impl Default for DataDecoder {
    fn default() -> Self {
        DataDecoder::new()
    }
}

impl DataDecoder {
    pub fn new() -> DataDecoder {
        DataDecoder {
            state: State::LineStart,
            bare_newline: false,
        }
    }

    /// Whether a bare LF or bare CR appeared anywhere so far.
    pub fn saw_bare_newline(&self) -> bool {
        self.bare_newline
    }

    /// Decodes `input`, appending message bytes (CRLF line endings kept,
    /// dots unstuffed, without the final `.CRLF`) to `out`. `out` grows by
    /// at most `input.len() + 1` (a CR is held back until the next byte).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Fed {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Done {
                break;
            }
            if self.state == State::Text {
                // Fast path: copy everything up to the next CR or LF at once.
                let run = input[i..]
                    .iter()
                    .position(|&b| b == b'\r' || b == b'\n')
                    .unwrap_or(input.len() - i);
                out.extend_from_slice(&input[i..i + run]);
                i += run;
                if i == input.len() {
                    break;
                }
            }
            self.step(input[i], out);
            i += 1;
        }
        Fed {
            consumed: i,
            done: self.state == State::Done,
        }
    }

    fn step(&mut self, b: u8, out: &mut Vec<u8>) {
        self.state = match (self.state, b) {
            (State::Done, _) => State::Done,
            (State::LineStart, b'.') => State::Dot,
            (State::Dot, b'\r') => State::DotCr,
            (State::DotCr, b'\n') => State::Done,
            // `.CR` then anything but LF: the CR was bare. The dot was a
            // stuffing dot; the byte after the CR is ordinary text.
            (State::DotCr, _) => {
                self.bare_newline = true;
                out.push(b'\r');
                return self.text(b, out);
            }
            // A leading dot followed by anything else is removed (RFC 5321
            // §4.5.2), also before a bare LF, which `text` flags.
            (State::Dot, _) | (State::LineStart, _) | (State::Text, _) => return self.text(b, out),
            (State::Cr, b'\n') => {
                out.extend_from_slice(b"\r\n");
                State::LineStart
            }
            (State::Cr, _) => {
                self.bare_newline = true;
                out.push(b'\r');
                return self.text(b, out);
            }
        };
    }

    /// One byte inside a line.
    fn text(&mut self, b: u8, out: &mut Vec<u8>) {
        self.state = match b {
            b'\r' => State::Cr,
            b'\n' => {
                // A bare LF does not start a line: `LF . CRLF` is text.
                self.bare_newline = true;
                out.push(b'\n');
                State::Text
            }
            _ => {
                out.push(b);
                State::Text
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dot-stuffs a message for sending (RFC 5321 §4.5.2) and appends the end
    /// of data; `message` must use CRLF line endings.
    pub fn stuff(message: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(message.len() + 8);
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

    /// Decodes `input` whole, byte by byte, and in every two-piece split;
    /// all must agree. Returns (message, consumed, done, bare newline).
    fn decode(input: &[u8]) -> (Vec<u8>, usize, bool, bool) {
        let run = |pieces: &[&[u8]]| {
            let mut d = DataDecoder::new();
            let mut out = Vec::new();
            let mut consumed = 0;
            let mut done = false;
            for piece in pieces {
                if done {
                    break;
                }
                let before = out.len();
                let fed = d.feed(piece, &mut out);
                assert!(out.len() - before <= piece.len() + 1);
                consumed += fed.consumed;
                done = fed.done;
                assert!(done || fed.consumed == piece.len());
            }
            (out, consumed, done, d.saw_bare_newline())
        };
        let whole = run(&[input]);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(&bytes), whole, "byte by byte: {input:?}");
        for split in 0..=input.len() {
            let (a, b) = input.split_at(split);
            assert_eq!(run(&[a, b]), whole, "split at {split}: {input:?}");
        }
        whole
    }

    #[test]
    fn plain_message() {
        let input = b"Subject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n";
        let (out, consumed, done, bare) = decode(input);
        assert_eq!(out, b"Subject: hi\r\n\r\nbody\r\n");
        assert_eq!(&input[consumed..], b"QUIT\r\n", "pipelined rest untouched");
        assert!(done && !bare);
    }

    #[test]
    fn empty_message() {
        assert_eq!(decode(b".\r\n"), (vec![], 3, true, false));
    }

    #[test]
    fn dot_unstuffing() {
        let (out, _, done, bare) = decode(b"..\r\n...x\r\n.y\r\na.b\r\n.\r\n");
        assert_eq!(out, b".\r\n..x\r\ny\r\na.b\r\n");
        assert!(done && !bare);
    }

    #[test]
    fn stuffing_round_trip() {
        let messages: [&[u8]; 6] = [
            b"",
            b"plain\r\n",
            b".\r\n",
            b"..\r\n.\r\n. \r\n",
            b"a\r\n.\r\nb",
            b"8bit \xff\x00 bytes\r\n.hidden\r\n",
        ];
        for m in messages {
            let stuffed = stuff(m);
            let (out, consumed, done, bare) = decode(&stuffed);
            let mut expect = m.to_vec();
            if !expect.is_empty() && !expect.ends_with(b"\r\n") {
                expect.extend_from_slice(b"\r\n");
            }
            assert_eq!(out, expect, "{m:?}");
            assert_eq!(consumed, stuffed.len());
            assert!(done && !bare);
        }
    }

    /// Every way of spelling an end of data with bare LFs or CRs: none ends
    /// the message, all are flagged, and the real end is still found.
    #[test]
    fn smuggling_variants_never_end_data() {
        let variants: [&[u8]; 10] = [
            b"\n.\n",
            b"\r.\r",
            b"\n.\r\n",
            b"\r\n.\n",
            b"\r.\r\n",
            b"\r\n.\r",
            b"\n.\r",
            b"\r.\n",
            b"\r\n.\rX",
            b"\n",
        ];
        for v in variants {
            let mut input = b"Subject: a\r\n\r\nx".to_vec();
            input.extend_from_slice(v);
            input.extend_from_slice(
                b"MAIL FROM:<evil@x.example>\r\nRCPT TO:<v@y.example>\r\nDATA\r\n",
            );
            input.extend_from_slice(b"smuggled\r\n.\r\nQUIT\r\n");
            let (out, consumed, done, bare) = decode(&input);
            assert!(done, "{v:?}");
            assert!(bare, "{v:?} not flagged");
            assert_eq!(&input[consumed..], b"QUIT\r\n", "{v:?}: ended early");
            assert!(out.ends_with(b"smuggled\r\n"), "{v:?}");
        }
    }

    #[test]
    fn bare_cr_and_lf_alone_are_flagged() {
        assert!(decode(b"a\nb\r\n.\r\n").3);
        assert!(decode(b"a\rb\r\n.\r\n").3);
        assert!(
            decode(b"\n.\r\n").3 && !decode(b"\n.\r\n").2,
            "LF at the start is no line start"
        );
        assert!(!decode(b"a\r\nb\r\n.\r\n").3);
    }

    #[test]
    fn unterminated_data_is_not_done() {
        let (out, consumed, done, _) = decode(b"abc\r\n.");
        assert!(!done);
        assert_eq!(consumed, 6);
        assert_eq!(out, b"abc\r\n");
        let (_, _, done, _) = decode(b"abc\r\n.\r");
        assert!(!done);
    }

    #[test]
    fn nothing_after_done_is_taken() {
        let mut d = DataDecoder::new();
        let mut out = Vec::new();
        assert!(d.feed(b".\r\n", &mut out).done);
        assert_eq!(
            d.feed(b"more", &mut out),
            Fed {
                consumed: 0,
                done: true
            }
        );
        assert!(out.is_empty());
    }

    #[test]
    fn binary_garbage_never_panics() {
        // A deterministic pseudo-random stream over all byte values, with
        // CR, LF and dots made common.
        let mut x: u32 = 12345;
        let mut input = Vec::new();
        for _ in 0..20_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let b = (x >> 16) as u8;
            input.push(match b % 8 {
                0 => b'\r',
                1 => b'\n',
                2 => b'.',
                _ => b,
            });
        }
        let mut d = DataDecoder::new();
        let mut out = Vec::new();
        for chunk in input.chunks(7) {
            out.clear();
            let fed = d.feed(chunk, &mut out);
            assert!(out.len() <= chunk.len() + 1);
            if fed.done {
                break;
            }
        }
    }
}
