//! The EHLO capability list, in one place (RFC 5321 §4.1.1.1).
//!
//! Not offered, on purpose:
//! - CHUNKING/BDAT (RFC 3030): DATA covers every client; BDAT would need its
//!   own size and smuggling rules.
//! - DSN (RFC 3461): needs the outbound queue to send notifications.
//! - VRFY/EXPN as extensions: VRFY answers 252 (RFC 5321 §3.5.3), EXPN 502,
//!   so addresses cannot be harvested.

/// What decides the offer for one EHLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    pub max_size: u64,
    /// The session is plain and a certificate is configured (ports 25, 587).
    pub starttls: bool,
    /// AUTH may be used now (587 after TLS or by configuration, 465).
    pub auth: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    Pipelining,
    EightBitMime,
    SmtpUtf8,
    EnhancedStatusCodes,
    Size,
    StartTls,
    Auth,
}

/// Every capability with its RFC and when it is offered.
pub const CAPABILITIES: &[(Capability, &str)] = &[
    (Capability::Pipelining, "RFC 2920"),
    (Capability::EightBitMime, "RFC 6152"),
    (Capability::SmtpUtf8, "RFC 6531"),
    (Capability::EnhancedStatusCodes, "RFC 2034"),
    (Capability::Size, "RFC 1870"),
    (Capability::StartTls, "RFC 3207"),
    (Capability::Auth, "RFC 4954"),
];

impl Capability {
    /// The EHLO keyword line, or `None` when not offered now.
    pub fn keyword(self, offer: &Offer) -> Option<String> {
        match self {
            Capability::Pipelining => Some("PIPELINING".into()),
            Capability::EightBitMime => Some("8BITMIME".into()),
            Capability::SmtpUtf8 => Some("SMTPUTF8".into()),
            Capability::EnhancedStatusCodes => Some("ENHANCEDSTATUSCODES".into()),
            Capability::Size => Some(format!("SIZE {}", offer.max_size)),
            Capability::StartTls => offer.starttls.then(|| "STARTTLS".into()),
            // The mechanisms a session can run (see sasl.rs).
            Capability::Auth => offer.auth.then(|| "AUTH PLAIN LOGIN".into()),
        }
    }
}

/// The EHLO keyword lines for `offer`, in table order.
pub fn ehlo_keywords(offer: &Offer) -> Vec<String> {
    CAPABILITIES
        .iter()
        .filter_map(|(cap, _)| cap.keyword(offer))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: [&str; 5] = [
        "PIPELINING",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "SIZE 52428800",
    ];

    fn keywords(starttls: bool, auth: bool) -> Vec<String> {
        ehlo_keywords(&Offer {
            max_size: 52_428_800,
            starttls,
            auth,
        })
    }

    #[test]
    fn base_set_is_always_offered() {
        assert_eq!(keywords(false, false), BASE);
    }

    #[test]
    fn starttls_and_auth_follow_the_offer() {
        let mut plain_submission = BASE.to_vec();
        plain_submission.push("STARTTLS");
        assert_eq!(keywords(true, false), plain_submission);
        let mut after_tls = BASE.to_vec();
        after_tls.push("AUTH PLAIN LOGIN");
        assert_eq!(keywords(false, true), after_tls);
    }

    #[test]
    fn every_capability_names_its_rfc() {
        for (cap, rfc) in CAPABILITIES {
            assert!(rfc.starts_with("RFC "), "{cap:?}");
        }
        assert_eq!(CAPABILITIES.len(), 7);
    }
}
