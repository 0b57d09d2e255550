//! Envelope paths (`smtp::proto::address`): `<mailbox>`, `<>`, source routes,
//! quoted local parts, address literals, SMTPUTF8.
//!
//! Checks: no panic; the rest after the path is a suffix of the input; a
//! parsed mailbox printed back as `<mailbox>` parses to the same mailbox
//! (the printed form is canonical), in both the reverse and forward path
//! parsers; a mailbox never contains CR, LF or NUL.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtp::proto::address::{ForwardPath, Mailbox, parse_forward_path, parse_reverse_path};

fn canonical(mailbox: &Mailbox) {
    let text = mailbox.to_string();
    assert!(
        !text.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0),
        "{text:?}"
    );
    let wrapped = format!("<{text}>");
    let (again, rest) = parse_reverse_path(&wrapped).unwrap_or_else(|e| panic!("{wrapped}: {e}"));
    assert_eq!(rest, "");
    assert_eq!(again.as_ref(), Some(mailbox), "{wrapped}");
    match parse_forward_path(&wrapped) {
        Ok((ForwardPath::Mailbox(m), "")) => assert_eq!(&m, mailbox, "{wrapped}"),
        // `<Postmaster@x>` is a mailbox, only the bare word is special.
        other => panic!("{wrapped}: {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((from, rest)) = parse_reverse_path(input) {
        assert!(input.ends_with(rest));
        if let Some(m) = &from {
            canonical(m);
        }
    }
    if let Ok((to, rest)) = parse_forward_path(input) {
        assert!(input.ends_with(rest));
        if let ForwardPath::Mailbox(m) = &to {
            canonical(m);
        }
    }
});
