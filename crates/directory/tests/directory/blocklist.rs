use directory::DirectoryError;

use crate::with_domain;

#[tokio::test]
async fn exact_and_domain_patterns_case_insensitive() {
    let directory = with_domain().await;
    let ann = directory.create_account("ann@example.org").await;
    let bob = directory.create_account("bob@example.org").await;
    directory
        .block_sender("ann@example.org", "Spammer@Example.COM")
        .await
        .unwrap();
    directory
        .block_sender("ann@example.org", "*@Junk.Example")
        .await
        .unwrap();
    assert_eq!(
        directory.blocked_senders("ann@example.org").await.unwrap(),
        ["*@junk.example", "spammer@example.com"]
    );

    let blocked = |id, sender: &'static str| {
        let directory = directory.directory.clone();
        async move { directory.is_blocked(id, sender).await.unwrap() }
    };
    assert!(blocked(ann.id, "spammer@example.com").await);
    assert!(blocked(ann.id, "SPAMMER@EXAMPLE.COM").await);
    assert!(!blocked(ann.id, "friend@example.com").await);
    assert!(blocked(ann.id, "anyone@junk.example").await);
    assert!(blocked(ann.id, "Anyone@JUNK.example").await);
    assert!(
        !blocked(ann.id, "anyone@sub.junk.example").await,
        "exact domain only"
    );
    assert!(
        !blocked(ann.id, "").await,
        "the null sender is never blocked"
    );
    assert!(!blocked(bob.id, "spammer@example.com").await, "per account");

    let err = directory
        .block_sender("ann@example.org", "spammer@example.com")
        .await
        .unwrap_err();
    assert!(
        matches!(err, DirectoryError::BlocklistExists { .. }),
        "{err}"
    );
    directory
        .unblock_sender("ann@example.org", "SPAMMER@example.com")
        .await
        .unwrap();
    assert!(!blocked(ann.id, "spammer@example.com").await);
    let err = directory
        .unblock_sender("ann@example.org", "spammer@example.com")
        .await
        .unwrap_err();
    assert!(
        matches!(err, DirectoryError::BlocklistNotFound { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn invalid_patterns_and_accounts() {
    let directory = with_domain().await;
    directory.create_account("ann@example.org").await;
    for bad in ["*", "*@", "spammer", "*@*.example.com", "a b@example.com"] {
        let err = directory
            .block_sender("ann@example.org", bad)
            .await
            .unwrap_err();
        assert!(
            matches!(err, DirectoryError::InvalidSenderPattern { .. }),
            "{bad}: {err}"
        );
    }
    let err = directory
        .block_sender("nobody@example.org", "x@example.com")
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::AccountNotFound(_)), "{err}");
}
