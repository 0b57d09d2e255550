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
    use std::borrow::Borrow;
    use std::collections::HashMap;
    use std::hash::Hash;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use mail_auth::common::parse::TxtRecordParser;
    use mail_auth::common::verify::DomainKey;
    use mail_auth::dkim::generate::DkimKeyPair;
    use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
    use mail_auth::{
        AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt,
    };

    use super::*;

    /// The DNS answer for the test's selector, without a DNS server.
    #[derive(Default)]
    struct Records(Mutex<HashMap<Box<str>, Txt>>);

    impl ResolverCache<Box<str>, Txt> for Records {
        fn get<Q>(&self, name: &Q) -> Option<Txt>
        where
            Box<str>: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
        {
            self.0.lock().ok()?.get(name).cloned()
        }
        fn remove<Q>(&self, name: &Q) -> Option<Txt>
        where
            Box<str>: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
        {
            self.0.lock().ok()?.remove(name)
        }
        fn insert(&self, key: Box<str>, value: Txt, _: Instant) {
            if let Ok(mut m) = self.0.lock() {
                m.insert(key, value);
            }
        }
    }

    #[tokio::test]
    async fn signatures_verify_with_mail_auth() {
        let pair = DkimKeyPair::generate_rsa(1024).unwrap();
        let key = DkimKey {
            selector: "posthorn".into(),
            public_key: pair.encoded_public_key(),
            private_key: pair.private_key().to_vec(),
        };
        let message = b"From: Anna <anna@example.org>\r\nTo: bob@remote.example\r\nSubject: hi\r\n\r\nHello.\r\n";
        let signature = sign(&key, "example.org", message).unwrap();
        let signed = [signature.as_bytes(), message].concat();

        let (name, value) = key.dns_record("example.org");
        let records = Records::default();
        records.insert(
            format!("{name}.").into_boxed_str(),
            Txt::DomainKey(Arc::new(DomainKey::parse(value.as_bytes()).unwrap())),
            Instant::now(),
        );
        let resolver =
            MessageAuthenticator::new(ResolverConfig::default(), ResolverOpts::default()).unwrap();
        let verify = |bytes: Vec<u8>| {
            let records = &records;
            let resolver = &resolver;
            async move {
                let parsed = AuthenticatedMessage::parse(&bytes).unwrap();
                let out = resolver
                    .verify_dkim(Parameters::new(&parsed).with_txt_cache(records))
                    .await;
                out.iter().map(|o| o.result().clone()).collect::<Vec<_>>()
            }
        };
        assert_eq!(verify(signed.clone()).await, [DkimResult::Pass]);
        let tampered = String::from_utf8(signed)
            .unwrap()
            .replace("Hello.", "Hallo.");
        let result = verify(tampered.into_bytes()).await;
        assert!(
            matches!(result[..], [DkimResult::Fail(_) | DkimResult::Neutral(_)]),
            "{result:?}"
        );
    }

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
