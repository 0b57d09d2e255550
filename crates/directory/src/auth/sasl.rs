//! SASL shared by SMTP AUTH (RFC 4954), IMAP AUTHENTICATE (RFC 9051 §6.2.2) and
//! POP3 AUTH (RFC 5034): base64 responses, PLAIN (RFC 4616) and LOGIN
//! (draft-murchison-sasl-login, what Outlook speaks).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Base64 of "Username:" and "Password:", the LOGIN challenges every client
/// expects verbatim.
pub const LOGIN_USERNAME_CHALLENGE: &str = "VXNlcm5hbWU6";
pub const LOGIN_PASSWORD_CHALLENGE: &str = "UGFzc3dvcmQ6";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
}

impl Mechanism {
    /// `name` in upper case, as the command parser gives it.
    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "PLAIN" => Some(Mechanism::Plain),
            "LOGIN" => Some(Mechanism::Login),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslError {
    /// The client sent `*` (RFC 4954 §4).
    Cancelled,
    Base64,
    /// Decoded, but not the mechanism's format.
    Malformed,
    /// PLAIN with an authorization identity other than the login: we do not
    /// let one user act as another.
    Authzid,
}

/// Decodes one client response line. `=` is the empty response (RFC 4954
/// §4, for initial responses).
pub fn decode_response(line: &[u8]) -> Result<Vec<u8>, SaslError> {
    let line = line.trim_ascii();
    match line {
        b"*" => Err(SaslError::Cancelled),
        b"=" => Ok(Vec::new()),
        _ => STANDARD.decode(line).map_err(|_| SaslError::Base64),
    }
}

/// PLAIN credentials (RFC 4616 §2). The password is raw bytes: it is
/// compared, never printed.
pub struct PlainCredentials {
    pub login: String,
    pub password: Vec<u8>,
}

/// Never shows the password, so credentials cannot leak through a log.
impl std::fmt::Debug for PlainCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainCredentials")
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

/// `[authzid] NUL authcid NUL passwd`.
pub fn parse_plain(message: &[u8]) -> Result<PlainCredentials, SaslError> {
    let mut parts = message.splitn(3, |&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed);
    };
    let login = login_name(authcid)?;
    if !authzid.is_empty() && !authzid.eq_ignore_ascii_case(authcid) {
        return Err(SaslError::Authzid);
    }
    if password.is_empty() || password.contains(&0) {
        return Err(SaslError::Malformed);
    }
    Ok(PlainCredentials {
        login,
        password: password.to_vec(),
    })
}

/// A user name: UTF-8 without control characters, non-empty.
pub fn login_name(bytes: &[u8]) -> Result<String, SaslError> {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.is_empty() && !s.chars().any(char::is_control) => Ok(s.to_owned()),
        _ => Err(SaslError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> Vec<u8> {
        STANDARD.encode(bytes).into_bytes()
    }

    #[test]
    fn plain() {
        let creds =
            parse_plain(&decode_response(&b64(b"\0anna@example.org\0s3cret pw")).unwrap()).unwrap();
        assert_eq!(creds.login, "anna@example.org");
        assert_eq!(creds.password, b"s3cret pw");
        assert!(!format!("{creds:?}").contains("s3cret"));
        // Authzid equal to the login is fine.
        assert!(parse_plain(b"Anna@example.org\0anna@example.org\0pw").is_ok());
        assert_eq!(
            parse_plain(b"boss@example.org\0anna@example.org\0pw").unwrap_err(),
            SaslError::Authzid
        );
    }

    #[test]
    fn plain_malformed() {
        for bad in [
            &b""[..],
            b"\0",
            b"\0user",
            b"\0\0pw",
            b"\0user\0",
            b"\0us\ter\0pw",
            b"\0\xff\xfe\0pw",
            b"\0user\0pw\0extra",
        ] {
            assert!(parse_plain(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn responses() {
        assert_eq!(decode_response(b"*"), Err(SaslError::Cancelled));
        assert_eq!(decode_response(b"="), Ok(vec![]));
        assert_eq!(decode_response(b"dXNlcg=="), Ok(b"user".to_vec()));
        assert_eq!(decode_response(b" dXNlcg== "), Ok(b"user".to_vec()));
        for bad in [
            &b"dXNlcg"[..],
            b"!!!!",
            b"dXN\0cg==",
            b"d",
            b"====",
            &[0xff; 100],
        ] {
            assert_eq!(decode_response(bad), Err(SaslError::Base64), "{bad:?}");
        }
        let long = vec![b'A'; 10_000];
        assert!(decode_response(&long).is_ok(), "long but valid is decoded");
    }

    #[test]
    fn login_challenges() {
        assert_eq!(
            STANDARD.decode(LOGIN_USERNAME_CHALLENGE).unwrap(),
            b"Username:"
        );
        assert_eq!(
            STANDARD.decode(LOGIN_PASSWORD_CHALLENGE).unwrap(),
            b"Password:"
        );
        assert_eq!(login_name(b"anna"), Ok("anna".into()));
        assert!(login_name(b"").is_err());
    }
}
