//! DKIM signing (RFC 6376) of mail leaving from one of our domains, with the
//! domain's key from the directory (`posthorn domain add` generates it).

use directory::DkimKey;
use mail_auth::common::crypto::{RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer};

/// The fields signed when present (RFC 6376 §5.4.1's recommendation).
const SIGNED_FIELDS: [&str; 12] = [
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

/// The `DKIM-Signature:` field (ending in CRLF) for `message`.
pub fn sign(key: &DkimKey, domain: &str, message: &[u8]) -> Result<String, String> {
    let der = PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(key.private_key.clone()));
    let rsa = RsaKey::<Sha256>::from_key_der(der).map_err(|e| e.to_string())?;
    let signature = DkimSigner::from_key(rsa)
        .domain(domain)
        .selector(key.selector.as_str())
        .headers(SIGNED_FIELDS)
        .sign(message)
        .map_err(|e| e.to_string())?;
    Ok(signature.to_header())
}

/// The domain of the first address in a `From:` value.
pub fn from_domain(from: &str) -> Option<String> {
    let addr = match (from.rfind('<'), from.rfind('>')) {
        (Some(open), Some(close)) if open < close => &from[open + 1..close],
        _ => from.trim(),
    };
    let domain = addr.rsplit_once('@')?.1.trim().trim_end_matches('>');
    (!domain.is_empty()).then(|| domain.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_domains() {
        assert_eq!(
            from_domain("Anna <anna@Example.ORG>").as_deref(),
            Some("example.org")
        );
        assert_eq!(
            from_domain("anna@example.org").as_deref(),
            Some("example.org")
        );
        assert_eq!(
            from_domain("\"a@b\" <c@d.example>").as_deref(),
            Some("d.example")
        );
        assert_eq!(from_domain("undisclosed"), None);
    }
}
