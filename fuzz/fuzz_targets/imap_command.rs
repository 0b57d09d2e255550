//! IMAP command parser with literals (`imap::proto`): the whole command as
//! the session hands it over, `{n}\r\n` literals included, plus the helpers
//! the session runs on each line (tag, literal suffix, APPEND head).
//!
//! Checks: no panic; a syntax error carries the same tag `tag_of` reads; the
//! literal suffix is really the end of the line; LOGIN credentials written
//! back with the server's own string formatter (quoted or literal) parse to
//! the same values; modified UTF-7 decodes what it encodes; a parsed
//! sequence set only contains non-zero numbers.
#![no_main]

use imap::proto::{Command, SeqSet, format, literal_suffix, parse, parse_append_head, tag_of};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let tag = tag_of(data);
    match parse(data) {
        Ok((t, cmd)) => {
            assert_eq!(Some(&t), tag.as_ref());
            if let Command::Login { user, password } = &cmd {
                let mut again = format!("{t} LOGIN ").into_bytes();
                format::string(&mut again, user.as_bytes());
                again.push(b' ');
                format::string(&mut again, password);
                match parse(&again) {
                    Ok((
                        t2,
                        Command::Login {
                            user: u2,
                            password: p2,
                        },
                    )) => {
                        assert_eq!(t2, t);
                        assert_eq!(&u2, user);
                        assert_eq!(&p2, password);
                    }
                    Ok(other) => panic!("LOGIN reparsed as {other:?}"),
                    Err(e) => panic!("LOGIN {again:?} does not reparse: {}", e.message()),
                }
            }
        }
        Err(e) => {
            if let Some(t) = e.tag() {
                assert_eq!(Some(t), tag.as_deref());
            }
        }
    }
    if let Some((n, plus)) = literal_suffix(data) {
        let suffix = if plus {
            format!("{{{n}+}}")
        } else {
            format!("{{{n}}}")
        };
        // Leading zeros are allowed on the wire: compare the number only.
        assert!(data.ends_with(if plus { b"+}" } else { b"}" }));
        let open = data.iter().rposition(|&b| b == b'{').unwrap();
        let digits = std::str::from_utf8(&data[open + 1..data.len() - if plus { 2 } else { 1 }]);
        assert_eq!(digits.unwrap().parse::<u64>().unwrap(), n, "{suffix}");
    }
    if let Some(head) = parse_append_head(data) {
        assert_eq!(Some(&head.tag), tag.as_ref());
    }
    if let Some(set) = SeqSet::parse(data) {
        let ranges = set.ranges(1000);
        for (i, &(lo, hi)) in ranges.iter().enumerate() {
            assert!(lo >= 1 && lo <= hi, "range {lo}:{hi}");
            assert!(set.contains(lo, 1000) && set.contains(hi, 1000));
            if let Some(&(next, _)) = ranges.get(i + 1) {
                assert!(next > hi.saturating_add(1), "ranges not merged: {ranges:?}");
            }
        }
    }
    let text = String::from_utf8_lossy(data);
    let encoded = imap::proto::utf7::encode(&text);
    assert!(encoded.is_ascii());
    assert_eq!(imap::proto::utf7::decode(&encoded).as_deref(), Some(&*text));
});
