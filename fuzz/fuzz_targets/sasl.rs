//! SASL decoding shared by SMTP AUTH, IMAP AUTHENTICATE and POP3 AUTH
//! (`directory::auth::sasl`).
//!
//! Checks: no panic; a response line decodes to bytes that encode back to
//! the same base64 (canonical input) and any bytes sent as base64 decode to
//! themselves; PLAIN credentials that parse have a non-empty login without
//! control characters and a non-empty password without NUL, and rebuilding
//! the PLAIN message from them parses to the same credentials.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use directory::auth::sasl::{Mechanism, decode_response, login_name, parse_plain};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(bytes) = decode_response(data) {
        let trimmed = data.trim_ascii();
        if trimmed != b"=" {
            assert_eq!(STANDARD.encode(&bytes).as_bytes(), trimmed);
        } else {
            assert!(bytes.is_empty());
        }
        check_plain(&bytes);
    }
    assert_eq!(
        decode_response(STANDARD.encode(data).as_bytes()).as_deref(),
        Ok(data)
    );
    check_plain(data);
    if let Ok(name) = login_name(data) {
        assert!(!name.is_empty() && !name.chars().any(char::is_control));
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = Mechanism::from_name(s);
    }
});

fn check_plain(message: &[u8]) {
    let Ok(creds) = parse_plain(message) else {
        return;
    };
    assert!(!creds.login.is_empty() && !creds.login.chars().any(char::is_control));
    assert!(!creds.password.is_empty() && !creds.password.contains(&0));
    let rebuilt = [b"\0", creds.login.as_bytes(), b"\0", &creds.password].concat();
    let again = parse_plain(&rebuilt).expect("rebuilt PLAIN message");
    assert_eq!(again.login, creds.login);
    assert_eq!(again.password, creds.password);
}
