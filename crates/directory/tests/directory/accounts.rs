use std::collections::HashSet;

use directory::{Autoresponder, DirectoryError, Policy, parse_size};

use crate::{PASSWORD, open, with_domain};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

#[tokio::test]
async fn add_show_list() {
    let directory = with_domain().await;
    let account = directory
        .add_account(
            "Ann.Smith@Example.ORG",
            PASSWORD,
            None,
            Some("Ann Smith".into()),
        )
        .await
        .unwrap();
    assert_eq!(account.address, "ann.smith@example.org");
    assert_eq!(account.quota, GIB, "default quota");
    assert_eq!(account.display_name.as_deref(), Some("Ann Smith"));
    assert!(account.password_hash.starts_with("$argon2id$"));
    assert!(!account.disabled);
    assert!(account.created > 0);

    let details = directory
        .show_account("ANN.SMITH@example.org")
        .await
        .unwrap();
    assert_eq!(details.account, account);
    assert_eq!(details.quota_used, 0);
    assert!(details.aliases.is_empty());
    assert_eq!(details.forwarding, None);

    directory.create_domain("example.net").await;
    directory
        .add_account(
            "bob@example.net",
            PASSWORD,
            Some(parse_size("500MB").unwrap()),
            None,
        )
        .await
        .unwrap();
    let all: Vec<_> = directory
        .list_accounts(None)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.address, a.quota))
        .collect();
    assert_eq!(
        all,
        [
            ("ann.smith@example.org".to_owned(), GIB),
            ("bob@example.net".to_owned(), 500_000_000),
        ]
    );
    let net = directory.list_accounts(Some("Example.NET")).await.unwrap();
    assert_eq!(net.len(), 1);
    assert_eq!(net[0].address, "bob@example.net");
    assert!(net[0].id > 0);
    let err = directory
        .list_accounts(Some("nowhere.example"))
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::DomainNotFound(_)), "{err}");
}

#[tokio::test]
async fn short_login_ids_are_six_unambiguous_characters_and_unique() {
    let directory = with_domain().await;
    let mut seen = HashSet::new();
    for i in 0..25 {
        let account = directory
            .add_account(&format!("user{i}@example.org"), PASSWORD, None, None)
            .await
            .unwrap();
        let id = &account.short_login;
        assert_eq!(id.len(), 6, "{id}");
        assert!(
            id.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "{id}"
        );
        assert!(!id.contains(['0', 'o', '1', 'l', 'i']), "{id}");
        assert!(seen.insert(id.clone()), "duplicate {id}");
        let by_login = directory
            .account_by_login(&id.to_uppercase())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_login.id, account.id);
    }
}

#[tokio::test]
async fn unknown_domain() {
    let directory = with_domain().await;
    let err = directory
        .add_account("ann@example.net", PASSWORD, None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::DomainNotFound(_)), "{err}");
    assert_eq!(
        err.to_string(),
        "domain example.net does not exist: add it with `posthorn domain add example.net`"
    );
}

#[tokio::test]
async fn bad_local_parts() {
    let directory = with_domain().await;
    for bad in [
        "ann smith@example.org",
        ".ann@example.org",
        "ann.@example.org",
        "ann..smith@example.org",
        "\"ann\"@example.org",
        "ann(x)@example.org",
        "jörg@example.org",
        "@example.org",
        "ann",
        "ann@example.org.",
    ] {
        let err = directory
            .add_account(bad, PASSWORD, None, None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, DirectoryError::InvalidAddress { .. }),
            "{bad}: {err}"
        );
    }
    let long = format!("{}@example.org", "a".repeat(65));
    let err = directory
        .add_account(&long, PASSWORD, None, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("64"), "{err}");
}

#[tokio::test]
async fn duplicate_address_is_case_insensitive() {
    let directory = with_domain().await;
    directory.create_account("ann@example.org").await;
    let err = directory
        .add_account("ANN@example.org", PASSWORD, None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::AddressInUse { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "address ann@example.org is already in use as an account"
    );
}

#[tokio::test]
async fn password_policy() {
    let directory = with_domain().await;
    let add = |password: String| {
        let directory = directory.directory.clone();
        async move {
            directory
                .add_account("ann@example.org", &password, None, None)
                .await
        }
    };
    let err = add("short12".into()).await.unwrap_err();
    assert_eq!(err.to_string(), "password too short: at least 8 characters");
    // Characters, not bytes: seven two-byte characters are still too short.
    let err = add("äöüäöüä".into()).await.unwrap_err();
    assert!(
        matches!(err, DirectoryError::PasswordTooShort { min: 8 }),
        "{err}"
    );
    let err = add("x".repeat(257)).await.unwrap_err();
    assert!(
        matches!(err, DirectoryError::PasswordTooLong { max: 256 }),
        "{err}"
    );
    let err = add("with\nnewline".into()).await.unwrap_err();
    assert!(matches!(err, DirectoryError::PasswordBadCharacter), "{err}");
    add("x".repeat(256)).await.unwrap();

    let err = directory
        .set_password("ann@example.org", "short")
        .await
        .unwrap_err();
    assert!(
        matches!(err, DirectoryError::PasswordTooShort { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn quota_bounds() {
    let directory = with_domain().await;
    for bad in [MIB - 1, (1 << 40) + 1, 0] {
        let err = directory
            .add_account("ann@example.org", PASSWORD, Some(bad), None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, DirectoryError::QuotaOutOfRange { .. }),
            "{bad}: {err}"
        );
    }
    let err = directory
        .add_account("ann@example.org", PASSWORD, Some(1000), None)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "quota 1 KB is out of range: between 1 MiB and 1 TiB"
    );
    directory
        .add_account("ann@example.org", PASSWORD, Some(MIB), None)
        .await
        .unwrap();
    directory
        .set_quota("ann@example.org", 1 << 40)
        .await
        .unwrap();
    let err = directory
        .set_quota("ann@example.org", (1 << 40) + 1)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DirectoryError::QuotaOutOfRange { .. }),
        "{err}"
    );
    let account = directory.account("ann@example.org").await.unwrap().unwrap();
    assert_eq!(account.quota, 1 << 40);
}

#[tokio::test]
async fn policy_limits_apply() {
    let directory = open(Policy {
        password_min_len: 12,
        ..Policy::default()
    });
    directory.create_domain("example.org").await;
    let err = directory
        .add_account("ann@example.org", "elevenchars", None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DirectoryError::PasswordTooShort { min: 12 }),
        "{err}"
    );
}

#[tokio::test]
async fn remove_takes_everything_with_it() {
    let directory = with_domain().await;
    let ann = directory.create_account("ann@example.org").await;
    directory
        .add_alias("info@example.org", "ann@example.org")
        .await
        .unwrap();
    directory
        .add_forwarder("ann@example.org", "ann@example.net", true)
        .await
        .unwrap();
    directory
        .set_autoresponder(
            "ann@example.org",
            Autoresponder {
                body: "Away.".into(),
                ..Autoresponder::default()
            },
        )
        .await
        .unwrap();
    directory
        .block_sender("ann@example.org", "*@spam.example")
        .await
        .unwrap();

    directory.remove_account("Ann@Example.org").await.unwrap();
    assert!(
        directory
            .account("ann@example.org")
            .await
            .unwrap()
            .is_none()
    );
    assert!(directory.account_by_id(ann.id).await.unwrap().is_none());
    assert!(
        directory
            .account_by_login(&ann.short_login)
            .await
            .unwrap()
            .is_none()
    );
    assert!(directory.list_aliases().await.unwrap().is_empty());
    assert!(directory.list_forwarders().await.unwrap().is_empty());
    assert!(directory.list_accounts(None).await.unwrap().is_empty());
    assert!(matches!(
        directory.store.quota_used(ann.id).await,
        Err(store::StoreError::NoSuchAccount(_))
    ));

    let err = directory
        .remove_account("ann@example.org")
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::AccountNotFound(_)), "{err}");

    // The address and its alias are free again, with nothing left over.
    let again = directory.create_account("ann@example.org").await;
    assert_ne!(again.id, ann.id);
    assert!(
        directory
            .blocked_senders("ann@example.org")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        directory.autoresponder("ann@example.org").await.unwrap(),
        None
    );
    directory.create_account("info@example.org").await;
}

#[tokio::test]
async fn passwd_replaces_the_hash() {
    let directory = with_domain().await;
    let before = directory.create_account("ann@example.org").await;
    directory
        .set_password("ann@example.org", "a new password")
        .await
        .unwrap();
    let after = directory.account("ann@example.org").await.unwrap().unwrap();
    assert_ne!(before.password_hash, after.password_hash);
    assert_eq!(before.short_login, after.short_login);
    let err = directory
        .set_password("nobody@example.org", "a new password")
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::AccountNotFound(_)), "{err}");
}

#[tokio::test]
async fn login_lookup() {
    let directory = with_domain().await;
    let ann = directory.create_account("ann@example.org").await;
    directory
        .add_alias("info@example.org", "ann@example.org")
        .await
        .unwrap();
    let found = |login: &'static str| {
        let directory = directory.directory.clone();
        async move {
            directory
                .account_by_login(login)
                .await
                .unwrap()
                .map(|a| a.id)
        }
    };
    assert_eq!(found("ANN@example.ORG").await, Some(ann.id));
    assert_eq!(
        found("info@example.org").await,
        None,
        "aliases are not logins"
    );
    assert_eq!(found("nobody@example.org").await, None);
    assert_eq!(found("not an address@").await, None);
    assert_eq!(found("abc").await, None);
    assert_eq!(found("").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_adds_of_one_address_create_one_account() {
    let directory = with_domain().await;
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let directory = directory.directory.clone();
            // tokio::spawn also proves the futures are Send.
            tokio::spawn(async move {
                directory
                    .add_account("ann@example.org", PASSWORD, None, None)
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(err) => assert!(matches!(err, DirectoryError::AddressInUse { .. }), "{err}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(directory.list_accounts(None).await.unwrap().len(), 1);
}
