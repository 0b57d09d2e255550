use directory::{Autoresponder, Date, DirectoryError, MAX_AUTORESPONDER_BODY};

use crate::with_domain;

fn date(text: &str) -> Date {
    text.parse().unwrap()
}

fn away() -> Autoresponder {
    Autoresponder {
        body: "I am away until Monday.".into(),
        start: Some(date("2026-07-01")),
        end: Some(date("2026-07-14")),
        ..Autoresponder::default()
    }
}

#[tokio::test]
async fn set_get_off() {
    let directory = with_domain().await;
    let ann = directory.create_account("ann@example.org").await;
    assert_eq!(
        directory.autoresponder("ann@example.org").await.unwrap(),
        None
    );
    directory
        .autoresponder_off("ann@example.org")
        .await
        .unwrap();

    directory
        .set_autoresponder("ann@example.org", away())
        .await
        .unwrap();
    let stored = directory
        .autoresponder("ANN@example.org")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, away());
    assert_eq!(stored.subject_prefix, "Re: ");

    let during = date("2026-07-01");
    assert_eq!(
        directory
            .active_autoresponder(ann.id, during)
            .await
            .unwrap(),
        Some(away())
    );
    assert_eq!(
        directory
            .active_autoresponder(ann.id, date("2026-06-30"))
            .await
            .unwrap(),
        None
    );
    assert!(
        directory
            .active_autoresponder(ann.id, date("2026-07-14"))
            .await
            .unwrap()
            .is_some(),
        "the end day is included"
    );

    directory
        .autoresponder_off("ann@example.org")
        .await
        .unwrap();
    let off = directory
        .autoresponder("ann@example.org")
        .await
        .unwrap()
        .unwrap();
    assert!(!off.active);
    assert_eq!(off.body, away().body, "text kept for next time");
    assert_eq!(
        directory
            .active_autoresponder(ann.id, during)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn start_after_end_is_refused() {
    let directory = with_domain().await;
    directory.create_account("ann@example.org").await;
    let err = directory
        .set_autoresponder(
            "ann@example.org",
            Autoresponder {
                start: Some(date("2026-07-15")),
                end: Some(date("2026-07-14")),
                ..away()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "autoresponder start 2026-07-15 is after its end 2026-07-14"
    );
    // A one-day period is fine.
    directory
        .set_autoresponder(
            "ann@example.org",
            Autoresponder {
                start: Some(date("2026-07-14")),
                ..away()
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn body_and_prefix_limits() {
    let directory = with_domain().await;
    directory.create_account("ann@example.org").await;
    let set = |autoresponder: Autoresponder| {
        let directory = directory.directory.clone();
        async move {
            directory
                .set_autoresponder("ann@example.org", autoresponder)
                .await
        }
    };
    let err = set(Autoresponder {
        body: "x".repeat(MAX_AUTORESPONDER_BODY + 1),
        ..away()
    })
    .await
    .unwrap_err();
    assert!(
        matches!(err, DirectoryError::AutoresponderBodyTooLarge { .. }),
        "{err}"
    );
    set(Autoresponder {
        body: "x".repeat(MAX_AUTORESPONDER_BODY),
        ..away()
    })
    .await
    .unwrap();
    let err = set(Autoresponder {
        body: " \n".into(),
        ..away()
    })
    .await
    .unwrap_err();
    assert!(
        matches!(err, DirectoryError::AutoresponderBodyEmpty),
        "{err}"
    );
    let err = set(Autoresponder {
        subject_prefix: "Re:\r\nBcc: victim@example.net".into(),
        ..away()
    })
    .await
    .unwrap_err();
    assert!(
        matches!(err, DirectoryError::InvalidSubjectPrefix(_)),
        "{err}"
    );
    let err = directory
        .set_autoresponder("nobody@example.org", away())
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::AccountNotFound(_)), "{err}");
}

#[tokio::test]
async fn delete_after_end() {
    let directory = with_domain().await;
    let ann = directory.create_account("ann@example.org").await;
    directory
        .set_autoresponder(
            "ann@example.org",
            Autoresponder {
                delete_after_end: true,
                ..away()
            },
        )
        .await
        .unwrap();
    assert!(
        directory
            .active_autoresponder(ann.id, date("2026-07-10"))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        directory
            .active_autoresponder(ann.id, date("2026-07-15"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        directory.autoresponder("ann@example.org").await.unwrap(),
        None
    );
}

#[test]
fn dates_parse_strictly() {
    assert!("2026-02-30".parse::<Date>().is_err());
    let err = "31.12.2026".parse::<Date>().unwrap_err();
    assert!(matches!(err, DirectoryError::InvalidDate(_)), "{err}");
}
