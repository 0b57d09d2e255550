//! A dependency-free fuzz loop over the pure parsers: valid commands mutated
//! at random (bytes flipped, inserted, deleted, spliced) must never panic.

use super::command::{literal_suffix, parse, parse_append_head, parse_append_next, tag_of};
use super::{date, seqset::SeqSet, utf7};

const CORPUS: &[&[u8]] = &[
    b"a1 LOGIN {4}\r\nanna \"correct \\\"horse\"",
    b"a AUTHENTICATE PLAIN AGFubmEAcHc=",
    b"a SELECT INBOX (CONDSTORE)",
    b"a LIST (SPECIAL-USE) \"\" (INBOX \"A*\" %/%) RETURN (STATUS (MESSAGES UNSEEN))",
    b"a STATUS Entw&APw-rfe (MESSAGES UIDNEXT HIGHESTMODSEQ)",
    b"a UID FETCH 1:*,3,5:7 (FLAGS BODY.PEEK[1.2.HEADER.FIELDS.NOT (To Cc)]<0.100> BODY[]) (CHANGEDSINCE 9)",
    b"a FETCH 1 (ENVELOPE BODYSTRUCTURE RFC822.SIZE INTERNALDATE BODY[2.MIME] BODY[3.TEXT])",
    b"a UID STORE 1:3 (UNCHANGEDSINCE 4) -FLAGS.SILENT (\\Seen $Junk)",
    b"a SEARCH CHARSET UTF-8 OR (SEEN FLAGGED) NOT FROM {3}\r\nabc SINCE 1-Feb-1994 UID 2:* MODSEQ \"/flags/\\\\draft\" all 5",
    b"a UID MOVE 1:5 Trash",
    b"a ID (\"name\" \"x\" \"version\" NIL)",
    b"a ENABLE CONDSTORE",
    b"a APPEND INBOX (\\Seen) \"17-Jul-1996 02:44:25 -0700\" ",
    b"a UID SEARCH RETURN (MIN MAX COUNT ALL SAVE) $ UNSEEN",
    b"a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" % RETURN (SUBSCRIBED CHILDREN STATUS (DELETED SIZE))",
    b"a ENABLE IMAP4rev2",
];

/// xorshift64*: reproducible without a crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[u8] = b"(){}[]<>\"\\*%:,.+-0123456789 \r\n\x00\xffNILBODY";

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..=rng.below(8) {
        let at = rng.below(v.len() + 1);
        match rng.below(5) {
            0 if !v.is_empty() => {
                let at = at.min(v.len() - 1);
                v[at] = INTERESTING[rng.below(INTERESTING.len())];
            }
            1 => v.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            2 if at < v.len() => {
                v.remove(at);
            }
            3 => {
                let other = CORPUS[rng.below(CORPUS.len())];
                let from = rng.below(other.len());
                let to = (from + rng.below(40)).min(other.len());
                v.splice(at..at, other[from..to].iter().copied());
            }
            _ => {
                let n = rng.below(300);
                v.splice(at..at, std::iter::repeat_n(b'(', n));
            }
        }
    }
    v
}

#[test]
fn parsers_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for i in 0..100_000 {
        let seed = CORPUS[i % CORPUS.len()];
        let input = mutate(&mut rng, seed);
        let _ = parse(&input);
        let _ = parse_append_head(&input);
        let _ = parse_append_next(&input);
        let _ = literal_suffix(&input);
        let _ = tag_of(&input);
        let _ = SeqSet::parse(&input);
        let text = String::from_utf8_lossy(&input);
        let _ = utf7::decode(&text);
        let _ = date::parse_date_time(&text);
        let _ = date::parse_header_date(&text);
    }
}

#[test]
fn corpus_is_valid() {
    for c in CORPUS {
        if c.ends_with(b" ") {
            assert!(
                parse_append_head(c).is_some(),
                "{}",
                String::from_utf8_lossy(c)
            );
        } else {
            assert!(parse(c).is_ok(), "{}", String::from_utf8_lossy(c));
        }
    }
}

#[test]
fn formatting_never_panics() {
    use super::command::{Section, SectionText};
    use super::format;

    let message: &[u8] = b"From: a@b\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\n--c\r\n\r\nt\r\n--c--\r\n--b\r\n\r\nx\r\n--b--\r\n";
    let mut rng = Rng(42);
    for _ in 0..3000 {
        let m = mutate(&mut rng, message);
        let s = summary::summarize(&m, summary::Limits::default());
        let mut out = Vec::new();
        format::envelope(&mut out, &s.envelope);
        format::body_structure(&mut out, &s.root, true);
        for _ in 0..5 {
            let part: Vec<u32> = (0..rng.below(4)).map(|_| rng.below(4) as u32).collect();
            let text = match rng.below(5) {
                0 => None,
                1 => Some(SectionText::Header),
                2 => Some(SectionText::Text),
                3 => Some(SectionText::Mime),
                _ => Some(SectionText::HeaderFields {
                    not: true,
                    fields: vec!["subject".into()],
                }),
            };
            if let Some(r) = format::section_range(&s.root, s.size, &Section { part, text }) {
                let (a, b) = (r.start.min(s.size) as usize, r.end.min(s.size) as usize);
                let _ = format::filter_header(m.get(a..b.max(a)).unwrap_or_default(), true, &[]);
            }
        }
    }
}
