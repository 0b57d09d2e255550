use directory::{DirectoryError, DomainMode, Resolution};

use crate::with_domain;

#[tokio::test]
async fn accounts_aliases_forwarders() {
    let directory = with_domain().await;
    let ann = directory.create_account("ann@example.org").await;
    let bob = directory.create_account("bob@example.org").await;
    let carol = directory.create_account("carol@example.org").await;
    directory
        .add_alias("info@example.org", "ann@example.org")
        .await
        .unwrap();
    directory
        .add_forwarder("sales@example.org", "team@example.net", false)
        .await
        .unwrap();
    directory
        .add_forwarder("bob@example.org", "bob@example.net", true)
        .await
        .unwrap();
    directory
        .add_forwarder("carol@example.org", "carol@example.net", false)
        .await
        .unwrap();

    let resolve = |address: &'static str| {
        let directory = directory.directory.clone();
        async move { directory.resolve(address).await.unwrap() }
    };
    assert_eq!(
        resolve("ann@example.org").await,
        Resolution::Account { id: ann.id }
    );
    assert_eq!(
        resolve("ANN@Example.ORG").await,
        Resolution::Account { id: ann.id },
        "local part and domain are case-insensitive"
    );
    assert_eq!(
        resolve("Info@example.org").await,
        Resolution::Alias {
            account_id: ann.id,
            alias: "info@example.org".into()
        }
    );
    assert_eq!(
        resolve("sales@example.org").await,
        Resolution::Forward {
            destinations: vec!["team@example.net".into()],
            keep_copy_account: None
        }
    );
    assert_eq!(
        resolve("bob@example.org").await,
        Resolution::Forward {
            destinations: vec!["bob@example.net".into()],
            keep_copy_account: Some(bob.id)
        }
    );
    assert_eq!(
        resolve("carol@example.org").await,
        Resolution::Forward {
            destinations: vec!["carol@example.net".into()],
            keep_copy_account: None
        },
        "forward without keep-copy: {}",
        carol.id
    );
}

#[tokio::test]
async fn unknown_in_both_modes() {
    let directory = with_domain().await;
    directory
        .add_domain(
            "relay.example",
            DomainMode::Relay,
            Some("mx.relay.example:25"),
        )
        .await
        .unwrap();
    directory.create_account("local@relay.example").await;

    assert_eq!(
        directory.resolve("nobody@example.org").await.unwrap(),
        Resolution::Unknown {
            domain_mode: Some(DomainMode::Authoritative),
            relay_host: None
        }
    );
    assert_eq!(
        directory.resolve("nobody@Relay.Example").await.unwrap(),
        Resolution::Unknown {
            domain_mode: Some(DomainMode::Relay),
            relay_host: Some("mx.relay.example:25".into())
        }
    );
    assert!(matches!(
        directory.resolve("local@relay.example").await.unwrap(),
        Resolution::Account { .. }
    ));
    assert_eq!(
        directory
            .resolve("someone@elsewhere.example")
            .await
            .unwrap(),
        Resolution::Unknown {
            domain_mode: None,
            relay_host: None
        }
    );
}

#[tokio::test]
async fn trailing_dot_is_not_the_same_domain() {
    let directory = with_domain().await;
    directory.create_account("ann@example.org").await;
    let err = directory.resolve("ann@example.org.").await.unwrap_err();
    assert!(
        matches!(err, DirectoryError::InvalidAddress { .. }),
        "{err}"
    );
    let err = directory.resolve("not an address").await.unwrap_err();
    assert!(
        matches!(err, DirectoryError::InvalidAddress { .. }),
        "{err}"
    );
}
