//! The `Received:` trace header (RFC 5321 §4.4) and RFC 5322 §3.3 dates.

use directory::rfc5322_date;
use std::net::IpAddr;

/// Everything the Received header says about one message.
#[derive(Debug, Clone)]
pub struct Trace<'a> {
    /// The EHLO/HELO argument (already checked to be one printable token).
    pub helo: &'a str,
    pub peer: IpAddr,
    pub hostname: &'a str,
    /// `SMTP`, `ESMTP`, `ESMTPS`, `ESMTPA` or `ESMTPSA` (RFC 3848).
    pub protocol: &'static str,
    /// TLS version and cipher suite, e.g. `TLSv1_3 with TLS13_AES_256_GCM_SHA384`.
    pub tls: Option<String>,
    /// Shown on submission only: the login the message was sent with.
    pub authenticated: Option<&'a str>,
    pub id: &'a str,
    /// Only when there is exactly one: RFC 5321 §7.2 warns against listing
    /// more (it discloses Bcc recipients).
    pub recipient: Option<&'a str>,
    /// Seconds since the Unix epoch.
    pub time: i64,
}

/// The RFC 3848 `with` keyword.
pub fn protocol(extended: bool, tls: bool, authenticated: bool) -> &'static str {
    match (extended, tls, authenticated) {
        (false, _, _) => "SMTP",
        (true, false, false) => "ESMTP",
        (true, true, false) => "ESMTPS",
        (true, false, true) => "ESMTPA",
        (true, true, true) => "ESMTPSA",
    }
}

impl Trace<'_> {
    /// The header with its CRLF, folded so each line stays short.
    pub fn header(&self) -> String {
        let mut h = format!(
            "Received: from {} ({})\r\n",
            self.helo,
            bracketed(self.peer)
        );
        if let Some(tls) = &self.tls {
            h.push_str(&format!("\t(using {tls})\r\n"));
        }
        if let Some(user) = self.authenticated {
            h.push_str(&format!("\t(Authenticated sender: {user})\r\n"));
        }
        h.push_str(&format!(
            "\tby {} (posthorn) with {} id {}",
            self.hostname, self.protocol, self.id
        ));
        if let Some(rcpt) = self.recipient {
            h.push_str(&format!("\r\n\tfor <{rcpt}>"));
        }
        h.push_str(&format!(";\r\n\t{}\r\n", rfc5322_date(self.time)));
        h
    }
}

/// RFC 5321 §4.1.3 address literal form, as the TCP-info of the from clause.
fn bracketed(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => format!("[{v4}]"),
        IpAddr::V6(v6) => format!("[IPv6:{v6}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols() {
        assert_eq!(protocol(false, true, true), "SMTP");
        assert_eq!(protocol(true, false, false), "ESMTP");
        assert_eq!(protocol(true, true, false), "ESMTPS");
        assert_eq!(protocol(true, true, true), "ESMTPSA");
    }

    #[test]
    fn header() {
        let t = Trace {
            helo: "client.example",
            peer: "192.0.2.7".parse().unwrap(),
            hostname: "mail.test",
            protocol: "ESMTP",
            tls: None,
            authenticated: None,
            id: "1A2B.1",
            recipient: Some("anna@example.org"),
            time: 0,
        };
        assert_eq!(
            t.header(),
            "Received: from client.example ([192.0.2.7])\r\n\tby mail.test (posthorn) with ESMTP id 1A2B.1\r\n\tfor <anna@example.org>;\r\n\tThu, 1 Jan 1970 00:00:00 +0000\r\n"
        );
        let t = Trace {
            peer: "::ffff:127.0.0.1".parse().unwrap(),
            tls: Some("TLSv1_3 with X".into()),
            authenticated: Some("anna@example.org"),
            recipient: None,
            ..t
        };
        let h = t.header();
        assert!(h.starts_with("Received: from client.example ([127.0.0.1])\r\n\t(using TLSv1_3 with X)\r\n\t(Authenticated sender: anna@example.org)\r\n"), "{h}");
        assert!(!h.contains("for <"));
        let v6 = Trace {
            peer: "2001:db8::1".parse().unwrap(),
            ..t
        };
        assert!(v6.header().contains("([IPv6:2001:db8::1])"));
    }
}
