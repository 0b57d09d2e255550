use directory::{DirectoryError, Policy};

use crate::{PASSWORD, open, with_domain};

#[tokio::test]
async fn add_list_remove() {
    let directory = with_domain().await;
    let ann = directory.create_account("ann@example.org").await;
    directory
        .add_alias("Info@Example.org", "ANN@example.org")
        .await
        .unwrap();
    directory
        .add_alias("a.smith@example.org", "ann@example.org")
        .await
        .unwrap();
    let aliases: Vec<_> = directory
        .list_aliases()
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.alias, a.account_id, a.account))
        .collect();
    assert_eq!(
        aliases,
        [
            (
                "a.smith@example.org".to_owned(),
                ann.id,
                "ann@example.org".to_owned()
            ),
            (
                "info@example.org".to_owned(),
                ann.id,
                "ann@example.org".to_owned()
            ),
        ]
    );
    let details = directory.show_account("ann@example.org").await.unwrap();
    assert_eq!(details.aliases, ["a.smith@example.org", "info@example.org"]);

    directory.remove_alias("INFO@example.org").await.unwrap();
    assert_eq!(directory.list_aliases().await.unwrap().len(), 1);
    let err = directory
        .remove_alias("info@example.org")
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::AliasNotFound(_)), "{err}");
    let err = directory.remove_alias("ann@example.org").await.unwrap_err();
    assert!(
        matches!(err, DirectoryError::AliasNotFound(_)),
        "an account is not an alias: {err}"
    );
}

#[tokio::test]
async fn alias_domain_must_exist() {
    let directory = with_domain().await;
    directory.create_account("ann@example.org").await;
    let err = directory
        .add_alias("ann@example.net", "ann@example.org")
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::DomainNotFound(_)), "{err}");
    // Aliases may live in another local domain than their account.
    directory.create_domain("example.net").await;
    directory
        .add_alias("ann@example.net", "ann@example.org")
        .await
        .unwrap();
}

#[tokio::test]
async fn alias_and_account_never_share_an_address() {
    let directory = with_domain().await;
    directory.create_account("ann@example.org").await;
    directory.create_account("bob@example.org").await;
    // alias -> account address
    let err = directory
        .add_alias("bob@example.org", "ann@example.org")
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::AddressInUse { .. }), "{err}");
    // account -> alias address
    directory
        .add_alias("info@example.org", "ann@example.org")
        .await
        .unwrap();
    let err = directory
        .add_account("Info@example.org", PASSWORD, None, None)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "address info@example.org is already in use as an alias of ann@example.org"
    );
    // alias twice
    let err = directory
        .add_alias("info@example.org", "bob@example.org")
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::AddressInUse { .. }), "{err}");
    // alias on a standalone forwarder
    directory
        .add_forwarder("sales@example.org", "x@example.net", false)
        .await
        .unwrap();
    let err = directory
        .add_alias("sales@example.org", "ann@example.org")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("a forwarder"), "{err}");
}

#[tokio::test]
async fn no_alias_loops() {
    let directory = with_domain().await;
    directory.create_account("ann@example.org").await;
    directory
        .add_alias("info@example.org", "ann@example.org")
        .await
        .unwrap();
    // alias -> alias
    let err = directory
        .add_alias("help@example.org", "info@example.org")
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::AliasOfAlias { .. }), "{err}");
    // alias -> self
    let err = directory
        .add_alias("loop@example.org", "LOOP@example.org")
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::AliasToSelf { .. }), "{err}");
    // alias -> nothing
    let err = directory
        .add_alias("help@example.org", "nobody@example.org")
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::AccountNotFound(_)), "{err}");
    // alias -> forwarder
    directory
        .add_forwarder("sales@example.org", "x@example.net", false)
        .await
        .unwrap();
    let err = directory
        .add_alias("help@example.org", "sales@example.org")
        .await
        .unwrap_err();
    assert!(
        matches!(err, DirectoryError::AliasOfForwarder { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn alias_limit() {
    let directory = open(Policy {
        max_aliases_per_account: 3,
        ..Policy::default()
    });
    directory.create_domain("example.org").await;
    directory.create_account("ann@example.org").await;
    for i in 0..3 {
        directory
            .add_alias(&format!("a{i}@example.org"), "ann@example.org")
            .await
            .unwrap();
    }
    let err = directory
        .add_alias("a3@example.org", "ann@example.org")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "alias limit reached: account ann@example.org already has 3 aliases"
    );
    directory.remove_alias("a0@example.org").await.unwrap();
    directory
        .add_alias("a3@example.org", "ann@example.org")
        .await
        .unwrap();
}

#[tokio::test]
async fn default_alias_limit_is_50() {
    let directory = with_domain().await;
    directory.create_account("ann@example.org").await;
    for i in 0..50 {
        directory
            .add_alias(&format!("a{i}@example.org"), "ann@example.org")
            .await
            .unwrap();
    }
    let err = directory
        .add_alias("a50@example.org", "ann@example.org")
        .await
        .unwrap_err();
    assert!(
        matches!(err, DirectoryError::AliasLimit { limit: 50, .. }),
        "{err}"
    );
}
