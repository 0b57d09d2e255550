use directory::{DirectoryError, DomainMode, Policy};

use crate::{open, with_domain};

#[tokio::test]
async fn add_list_remove() {
    let directory = open(Policy::default());
    let domain = directory.create_domain("Example.ORG.").await;
    assert_eq!(
        domain.name, "example.org",
        "lowercased, trailing dot dropped"
    );
    directory
        .add_domain(
            "relay.example",
            DomainMode::Relay,
            Some("MX.Example.net:2525"),
        )
        .await
        .unwrap();
    let domains = directory.list_domains().await.unwrap();
    let summary: Vec<_> = domains
        .iter()
        .map(|d| (d.name.as_str(), d.mode, d.relay_host.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            ("example.org", DomainMode::Authoritative, None),
            (
                "relay.example",
                DomainMode::Relay,
                Some("mx.example.net:2525")
            ),
        ]
    );
    directory.remove_domain("relay.example").await.unwrap();
    assert_eq!(directory.list_domains().await.unwrap().len(), 1);
    let err = directory.remove_domain("relay.example").await.unwrap_err();
    assert!(matches!(err, DirectoryError::DomainNotFound(_)), "{err}");
}

#[tokio::test]
async fn duplicate_domain() {
    let directory = with_domain().await;
    let err = directory
        .add_domain("EXAMPLE.org", DomainMode::Authoritative, None)
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::DomainExists(_)), "{err}");
}

#[tokio::test]
async fn invalid_domain_names() {
    let directory = open(Policy::default());
    for bad in [
        "",
        "exa mple.org",
        "-example.org",
        "example..org",
        "bücher.example",
        "192.0.2.1",
    ] {
        let err = directory
            .add_domain(bad, DomainMode::Authoritative, None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, DirectoryError::InvalidDomain { .. }),
            "{bad}: {err}"
        );
    }
}

#[tokio::test]
async fn relay_host_rules() {
    let directory = open(Policy::default());
    let err = directory
        .add_domain("relay.example", DomainMode::Relay, None)
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::RelayHostRequired(_)), "{err}");
    let err = directory
        .add_domain("relay.example", DomainMode::Relay, Some("mx.example.net"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, DirectoryError::InvalidRelayHost { .. }),
        "{err}"
    );
    let err = directory
        .add_domain(
            "example.org",
            DomainMode::Authoritative,
            Some("mx.example.net:25"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, DirectoryError::RelayHostNotAllowed(_)),
        "{err}"
    );
    assert!("Relay".parse::<DomainMode>().is_ok());
    assert!("bogus".parse::<DomainMode>().is_err());
}

#[tokio::test]
async fn removal_refused_while_addresses_remain() {
    let directory = with_domain().await;
    directory.create_account("ann@example.org").await;
    directory
        .add_alias("info@example.org", "ann@example.org")
        .await
        .unwrap();
    directory
        .add_forwarder("sales@example.org", "ext@example.net", false)
        .await
        .unwrap();
    let err = directory.remove_domain("example.org").await.unwrap_err();
    assert!(err.to_string().contains("still has 3 addresses"), "{err}");
    assert!(matches!(
        err,
        DirectoryError::DomainInUse {
            accounts: 1,
            aliases: 1,
            forwarders: 1,
            ..
        }
    ));

    directory.remove_account("ann@example.org").await.unwrap();
    directory
        .remove_forwarder("sales@example.org", "ext@example.net")
        .await
        .unwrap();
    directory.remove_domain("example.org").await.unwrap();
}
