//! Client autoconfiguration: mail apps ask for the server settings of an
//! address and get this server's name and ports.
//!
//! - Thunderbird: `/.well-known/autoconfig/mail/config-v1.1.xml` and
//!   `/mail/config-v1.1.xml?emailaddress=...` (the clientConfig 1.1 format);
//! - Outlook: `POST /autodiscover/autodiscover.xml` (the POX autodiscover
//!   schema, "outlook/responseschema/2006a");
//! - Apple Mail, iOS, macOS: `/apple/posthorn.mobileconfig?emailaddress=...`,
//!   an unsigned configuration profile.
//!
//! Implicit TLS is offered first (RFC 8314), STARTTLS after it. Every value
//! taken from the request is XML-escaped.

use std::fmt::Write;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use blake2::{Blake2s256, Digest};
use serde::Deserialize;

use crate::Web;
use crate::escape::Esc;

/// The server name and ports mail clients are told to use; a `None` port is
/// not offered.
#[derive(Debug, Clone, Default)]
pub struct ClientPorts {
    pub hostname: String,
    pub imaps: Option<u16>,
    pub imap: Option<u16>,
    pub pop3s: Option<u16>,
    pub pop3: Option<u16>,
    pub submissions: Option<u16>,
    pub submission: Option<u16>,
}

/// An autodiscover request is a few hundred bytes.
const MAX_REQUEST: usize = 16 * 1024;

/// RFC 5321's limit on a path, which holds the address.
const MAX_ADDRESS: usize = 254;

pub fn routes(web: Web) -> Router {
    Router::new()
        .route(
            "/.well-known/autoconfig/mail/config-v1.1.xml",
            get(thunderbird),
        )
        .route("/mail/config-v1.1.xml", get(thunderbird))
        .route("/autodiscover/autodiscover.xml", post(outlook))
        .route("/Autodiscover/Autodiscover.xml", post(outlook))
        .route("/apple/posthorn.mobileconfig", get(apple))
        .layer(DefaultBodyLimit::max(MAX_REQUEST))
        .with_state(web)
}

#[derive(Deserialize)]
struct AddressQuery {
    emailaddress: Option<String>,
}

/// `local@domain` with a plausible domain; the domain, lowercased.
fn domain_of(address: &str) -> Option<String> {
    if address.len() > MAX_ADDRESS || address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let (local, domain) = address.rsplit_once('@')?;
    plausible_domain(domain).filter(|_| !local.is_empty())
}

fn plausible_domain(domain: &str) -> Option<String> {
    let ok = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    ok.then(|| domain.to_ascii_lowercase())
}

/// The mail domain a Thunderbird request is about: from `emailaddress`, else
/// from the host it asked (`autoconfig.example.org` → `example.org`).
fn requested_domain(query: &AddressQuery, headers: &HeaderMap) -> Option<String> {
    if let Some(address) = &query.emailaddress {
        return domain_of(address);
    }
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    plausible_domain(host.strip_prefix("autoconfig.").unwrap_or(host))
}

fn xml(content_type: &'static str, body: String) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn bad_request(why: &'static str) -> Response {
    (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response()
}

/// `GET /mail/config-v1.1.xml?emailaddress=...` (Thunderbird).
async fn thunderbird(
    axum::extract::State(web): axum::extract::State<Web>,
    Query(query): Query<AddressQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(domain) = requested_domain(&query, &headers) else {
        return bad_request("give ?emailaddress=you@example.org");
    };
    xml(
        "application/xml; charset=utf-8",
        thunderbird_xml(&web.config().client, &domain),
    )
}

fn thunderbird_xml(c: &ClientPorts, domain: &str) -> String {
    let mut out = String::with_capacity(2048);
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<clientConfig version=\"1.1\">\n  <emailProvider id=\"{d}\">\n    <domain>{d}</domain>\n    <displayName>{d}</displayName>\n    <displayShortName>{d}</displayShortName>\n",
        d = Esc(domain)
    );
    let servers = [
        ("incomingServer", "imap", c.imaps, "SSL"),
        ("incomingServer", "imap", c.imap, "STARTTLS"),
        ("incomingServer", "pop3", c.pop3s, "SSL"),
        ("incomingServer", "pop3", c.pop3, "STARTTLS"),
        ("outgoingServer", "smtp", c.submissions, "SSL"),
        ("outgoingServer", "smtp", c.submission, "STARTTLS"),
    ];
    for (element, kind, port, socket) in servers {
        let Some(port) = port else { continue };
        let _ = write!(
            out,
            "    <{element} type=\"{kind}\">\n      <hostname>{host}</hostname>\n      <port>{port}</port>\n      <socketType>{socket}</socketType>\n      <username>%EMAILADDRESS%</username>\n      <authentication>password-cleartext</authentication>\n    </{element}>\n",
            host = Esc(&c.hostname)
        );
    }
    out.push_str("  </emailProvider>\n</clientConfig>\n");
    out
}

/// The `<EMailAddress>` of an autodiscover request.
fn autodiscover_address(body: &[u8]) -> Option<&str> {
    let body = std::str::from_utf8(body).ok()?;
    let start = body.find("<EMailAddress>")? + "<EMailAddress>".len();
    let len = body[start..].find("</EMailAddress>")?;
    Some(body[start..start + len].trim())
}

/// `POST /autodiscover/autodiscover.xml` (Outlook).
async fn outlook(axum::extract::State(web): axum::extract::State<Web>, body: Bytes) -> Response {
    let Some(address) = autodiscover_address(&body).filter(|a| domain_of(a).is_some()) else {
        return bad_request("expected an autodiscover request with <EMailAddress>");
    };
    xml(
        "application/xml; charset=utf-8",
        outlook_xml(&web.config().client, address),
    )
}

fn outlook_xml(c: &ClientPorts, address: &str) -> String {
    let mut out = String::with_capacity(2048);
    let _ = write!(
        out,
        concat!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n",
            "<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\n",
            "  <Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a\">\n",
            "    <User><DisplayName>{a}</DisplayName></User>\n",
            "    <Account>\n      <AccountType>email</AccountType>\n      <Action>settings</Action>\n"
        ),
        a = Esc(address)
    );
    // Outlook takes one entry per protocol: the implicit TLS port if there
    // is one, else STARTTLS.
    let protocols = [
        ("IMAP", c.imaps, c.imap),
        ("POP3", c.pop3s, c.pop3),
        ("SMTP", c.submissions, c.submission),
    ];
    for (kind, implicit, starttls) in protocols {
        let (port, encryption) = match (implicit, starttls) {
            (Some(p), _) => (p, "SSL"),
            (None, Some(p)) => (p, "TLS"),
            (None, None) => continue,
        };
        let _ = write!(
            out,
            concat!(
                "      <Protocol>\n        <Type>{kind}</Type>\n        <Server>{host}</Server>\n",
                "        <Port>{port}</Port>\n        <DomainRequired>off</DomainRequired>\n",
                "        <LoginName>{a}</LoginName>\n        <SPA>off</SPA>\n",
                "        <Encryption>{encryption}</Encryption>\n        <AuthRequired>on</AuthRequired>\n",
                "      </Protocol>\n"
            ),
            kind = kind,
            host = Esc(&c.hostname),
            port = port,
            a = Esc(address),
            encryption = encryption,
        );
    }
    out.push_str("    </Account>\n  </Response>\n</Autodiscover>\n");
    out
}

/// A stable UUID for a profile payload, so installing the profile again
/// replaces the old one instead of adding a second account.
fn payload_uuid(seed: &str) -> String {
    let h = Blake2s256::digest(seed.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x50; // version 5 style: name-based
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 9562 variant
    let hex: String = b.iter().map(|x| format!("{x:02X}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// `GET /apple/posthorn.mobileconfig?emailaddress=...` (Apple Mail).
async fn apple(
    axum::extract::State(web): axum::extract::State<Web>,
    Query(query): Query<AddressQuery>,
) -> Response {
    let Some(address) = query.emailaddress.filter(|a| domain_of(a).is_some()) else {
        return bad_request("give ?emailaddress=you@example.org");
    };
    let Some(body) = apple_profile(&web.config().client, &address) else {
        return (
            StatusCode::NOT_FOUND,
            "no IMAP or POP3 and SMTP submission port is offered\n",
        )
            .into_response();
    };
    (
        [
            (header::CONTENT_TYPE, "application/x-apple-aspen-config"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"posthorn.mobileconfig\"",
            ),
        ],
        body,
    )
        .into_response()
}

fn apple_profile(c: &ClientPorts, address: &str) -> Option<String> {
    let (kind, in_port, in_ssl) = match (c.imaps, c.imap, c.pop3s, c.pop3) {
        (Some(p), ..) => ("EmailTypeIMAP", p, true),
        (None, Some(p), ..) => ("EmailTypeIMAP", p, false),
        (None, None, Some(p), _) => ("EmailTypePOP", p, true),
        (None, None, None, Some(p)) => ("EmailTypePOP", p, false),
        _ => return None,
    };
    let (out_port, out_ssl) = match (c.submissions, c.submission) {
        (Some(p), _) => (p, true),
        (None, Some(p)) => (p, false),
        _ => return None,
    };
    let host = Esc(&c.hostname);
    let a = Esc(address);
    // Identifiers: reverse-DNS of the server, plus the address.
    let id: String = c.hostname.split('.').rev().collect::<Vec<_>>().join(".");
    let id = Esc(&id);
    let outer = payload_uuid(&format!("profile:{}:{address}", c.hostname));
    let inner = payload_uuid(&format!("mail:{}:{address}", c.hostname));
    let bool_tag = |b: bool| if b { "<true/>" } else { "<false/>" };
    Some(format!(
        concat!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
            "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n",
            "<plist version=\"1.0\">\n<dict>\n",
            "  <key>PayloadContent</key>\n  <array>\n    <dict>\n",
            "      <key>EmailAccountDescription</key><string>{a}</string>\n",
            "      <key>EmailAccountName</key><string>{a}</string>\n",
            "      <key>EmailAccountType</key><string>{kind}</string>\n",
            "      <key>EmailAddress</key><string>{a}</string>\n",
            "      <key>IncomingMailServerAuthentication</key><string>EmailAuthPassword</string>\n",
            "      <key>IncomingMailServerHostName</key><string>{host}</string>\n",
            "      <key>IncomingMailServerPortNumber</key><integer>{in_port}</integer>\n",
            "      <key>IncomingMailServerUseSSL</key>{in_ssl}\n",
            "      <key>IncomingMailServerUsername</key><string>{a}</string>\n",
            "      <key>OutgoingMailServerAuthentication</key><string>EmailAuthPassword</string>\n",
            "      <key>OutgoingMailServerHostName</key><string>{host}</string>\n",
            "      <key>OutgoingMailServerPortNumber</key><integer>{out_port}</integer>\n",
            "      <key>OutgoingMailServerUseSSL</key>{out_ssl}\n",
            "      <key>OutgoingMailServerUsername</key><string>{a}</string>\n",
            "      <key>OutgoingPasswordSameAsIncomingPassword</key><true/>\n",
            "      <key>PayloadDescription</key><string>Mail account {a}</string>\n",
            "      <key>PayloadDisplayName</key><string>{a}</string>\n",
            "      <key>PayloadIdentifier</key><string>{id}.mail.{inner}</string>\n",
            "      <key>PayloadType</key><string>com.apple.mail.managed</string>\n",
            "      <key>PayloadUUID</key><string>{inner}</string>\n",
            "      <key>PayloadVersion</key><integer>1</integer>\n",
            "    </dict>\n  </array>\n",
            "  <key>PayloadDescription</key><string>Mail settings for {a} on {host}</string>\n",
            "  <key>PayloadDisplayName</key><string>{host} mail</string>\n",
            "  <key>PayloadIdentifier</key><string>{id}.profile.{outer}</string>\n",
            "  <key>PayloadType</key><string>Configuration</string>\n",
            "  <key>PayloadUUID</key><string>{outer}</string>\n",
            "  <key>PayloadVersion</key><integer>1</integer>\n",
            "</dict>\n</plist>\n"
        ),
        a = a,
        kind = kind,
        host = host,
        in_port = in_port,
        in_ssl = bool_tag(in_ssl),
        out_port = out_port,
        out_ssl = bool_tag(out_ssl),
        id = id,
        inner = inner,
        outer = outer,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports() -> ClientPorts {
        ClientPorts {
            hostname: "mail.example.org".into(),
            imaps: Some(993),
            imap: Some(143),
            pop3s: Some(995),
            pop3: None,
            submissions: Some(465),
            submission: Some(587),
        }
    }

    #[test]
    fn addresses_are_checked() {
        assert_eq!(domain_of("You@Example.ORG").as_deref(), Some("example.org"));
        assert_eq!(domain_of("a\"<b>\"@x.org").as_deref(), Some("x.org"));
        assert_eq!(domain_of("@x.org"), None);
        assert_eq!(domain_of("a@x..org"), None);
        assert_eq!(domain_of("a@<x>.org"), None);
        assert_eq!(domain_of("a b@x.org"), None);
    }

    #[test]
    fn thunderbird_lists_every_offered_port() {
        let x = thunderbird_xml(&ports(), "example.org");
        assert!(
            x.contains("<port>993</port>\n      <socketType>SSL</socketType>"),
            "{x}"
        );
        assert!(
            x.contains("<port>587</port>\n      <socketType>STARTTLS</socketType>"),
            "{x}"
        );
        assert!(!x.contains("<port>110</port>"), "{x}");
    }

    #[test]
    fn autodiscover_escapes_the_address() {
        let body = b"<Autodiscover><Request><EMailAddress>a&lt;\"<x>\"@x.org</EMailAddress></Request></Autodiscover>";
        assert_eq!(autodiscover_address(body), Some("a&lt;\"<x>\"@x.org"));
        let x = outlook_xml(&ports(), "\"<b>\"@x.org");
        assert!(
            x.contains("<LoginName>&quot;&lt;b&gt;&quot;@x.org</LoginName>"),
            "{x}"
        );
        assert!(x.contains("<Port>465</Port>"), "{x}");
    }

    #[test]
    fn profile_uuids_are_stable_and_well_formed() {
        let u = payload_uuid("x");
        assert_eq!(u, payload_uuid("x"));
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "5");
        let p = apple_profile(&ports(), "you@example.org").unwrap_or_default();
        assert!(p.contains("<integer>993</integer>"), "{p}");
        assert!(p.contains("org.example.mail.mail."), "{p}");
    }
}
