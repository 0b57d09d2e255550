//! SMTP command lines (`smtp::proto::command::parse_command`).
//!
//! Checks: no panic; every error becomes a well-formed reply (one line per
//! CRLF, a 3-digit code, no stray CR/LF from the client's bytes); a parsed
//! MAIL/RCPT path printed back as `<mailbox>` parses to the same mailbox.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtp::proto::address::ForwardPath;
use smtp::proto::command::{Command, parse_command};

fn check_reply(bytes: &[u8]) {
    assert!(bytes.ends_with(b"\r\n"), "reply without CRLF: {bytes:?}");
    for line in bytes[..bytes.len() - 2].split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        assert!(line.len() >= 4, "short reply line {line:?}");
        assert!(line[..3].iter().all(u8::is_ascii_digit), "{line:?}");
        assert!(line[3] == b' ' || line[3] == b'-', "{line:?}");
        assert!(!line.contains(&b'\r'), "bare CR in reply {line:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    match parse_command(data) {
        Err(e) => check_reply(&e.reply().to_bytes()),
        Ok(Command::Mail {
            from: Some(mailbox),
            ..
        }) => {
            let again = format!("MAIL FROM:<{mailbox}>");
            match parse_command(again.as_bytes()) {
                Ok(Command::Mail { from: Some(m), .. }) => assert_eq!(m, mailbox, "{again}"),
                other => panic!("{again:?} from {data:?} reparsed as {other:?}"),
            }
        }
        Ok(Command::Rcpt(ForwardPath::Mailbox(mailbox))) => {
            let again = format!("RCPT TO:<{mailbox}>");
            match parse_command(again.as_bytes()) {
                Ok(Command::Rcpt(ForwardPath::Mailbox(m))) => assert_eq!(m, mailbox, "{again}"),
                other => panic!("{again:?} from {data:?} reparsed as {other:?}"),
            }
        }
        Ok(Command::Ehlo(name) | Command::Helo(name)) => {
            assert!(!name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()));
        }
        Ok(_) => {}
    }
});
