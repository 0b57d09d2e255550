use directory::{DirectoryError, Forwarding};

use crate::{PASSWORD, with_domain};

#[tokio::test]
async fn standalone_forwarder_lifecycle() {
    let directory = with_domain().await;
    directory
        .add_forwarder("Sales@example.org", "Team@Example.NET", false)
        .await
        .unwrap();
    directory
        .add_forwarder("sales@example.org", "boss@example.org", false)
        .await
        .unwrap();
    let list = directory.list_forwarders().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].address, "sales@example.org");
    assert_eq!(
        list[0].forwarding,
        Forwarding {
            destinations: vec!["team@example.net".into(), "boss@example.org".into()],
            keep_copy: false,
        }
    );
    let err = directory
        .add_forwarder("sales@example.org", "TEAM@example.net", false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DirectoryError::ForwarderExists { .. }),
        "{err}"
    );

    directory
        .remove_forwarder("sales@example.org", "team@example.net")
        .await
        .unwrap();
    let err = directory
        .remove_forwarder("sales@example.org", "team@example.net")
        .await
        .unwrap_err();
    assert!(
        matches!(err, DirectoryError::ForwarderNotFound { .. }),
        "{err}"
    );
    directory
        .remove_forwarder("sales@example.org", "boss@example.org")
        .await
        .unwrap();
    assert!(directory.list_forwarders().await.unwrap().is_empty());
    // With its last destination gone, the address is free.
    directory.create_account("sales@example.org").await;
}

#[tokio::test]
async fn forwarder_on_account_keeps_the_account() {
    let directory = with_domain().await;
    directory.create_account("ann@example.org").await;
    directory
        .add_forwarder("ann@example.org", "ann@example.net", true)
        .await
        .unwrap();
    let details = directory.show_account("ann@example.org").await.unwrap();
    assert_eq!(
        details.forwarding,
        Some(Forwarding {
            destinations: vec!["ann@example.net".into()],
            keep_copy: true,
        })
    );
    directory
        .remove_forwarder("ann@example.org", "ann@example.net")
        .await
        .unwrap();
    assert!(
        directory
            .account("ann@example.org")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        directory
            .show_account("ann@example.org")
            .await
            .unwrap()
            .forwarding,
        None
    );
}

#[tokio::test]
async fn keep_copy_needs_an_account() {
    let directory = with_domain().await;
    let err = directory
        .add_forwarder("sales@example.org", "x@example.net", true)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DirectoryError::KeepCopyNeedsAccount(_)),
        "{err}"
    );
}

#[tokio::test]
async fn forwarder_rules() {
    let directory = with_domain().await;
    let err = directory
        .add_forwarder("sales@example.org", "SALES@example.org", false)
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::ForwardToSelf(_)), "{err}");
    let err = directory
        .add_forwarder("sales@example.net", "x@example.org", false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DirectoryError::DomainNotFound(_)),
        "source must be local: {err}"
    );
    for bad in ["x", "x@", "a b@example.net", "x@example.net."] {
        let err = directory
            .add_forwarder("sales@example.org", bad, false)
            .await
            .unwrap_err();
        assert!(
            matches!(err, DirectoryError::InvalidAddress { .. }),
            "{bad}: {err}"
        );
    }
    directory.create_account("ann@example.org").await;
    directory
        .add_alias("info@example.org", "ann@example.org")
        .await
        .unwrap();
    let err = directory
        .add_forwarder("info@example.org", "x@example.net", false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DirectoryError::ForwardOnAlias { .. }),
        "{err}"
    );
    // A forwarder address is taken: no account on it.
    directory
        .add_forwarder("sales@example.org", "x@example.net", false)
        .await
        .unwrap();
    let err = directory
        .add_account("sales@example.org", PASSWORD, None, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("as a forwarder"), "{err}");
}

#[tokio::test]
async fn forwarder_limit_is_20() {
    let directory = with_domain().await;
    for i in 0..20 {
        directory
            .add_forwarder("list@example.org", &format!("m{i}@example.net"), false)
            .await
            .unwrap();
    }
    let err = directory
        .add_forwarder("list@example.org", "m20@example.net", false)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "forwarder limit reached: list@example.org already forwards to 20 destinations"
    );
}
