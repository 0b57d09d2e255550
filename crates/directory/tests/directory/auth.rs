use std::net::IpAddr;
use std::time::{Duration, Instant};

use directory::auth::{AuthError, AuthPolicy, Authenticator};
use directory::{Directory, Policy};

use crate::{PASSWORD, with_domain};

fn ip(n: u8) -> IpAddr {
    IpAddr::from([192, 0, 2, n])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_or_short_login() {
    let directory = with_domain().await;
    let ann = directory.create_account("ann@example.org").await;
    let auth = Authenticator::new(directory.directory.clone(), AuthPolicy::default());
    for login in [
        "ann@example.org",
        "Ann@Example.Org",
        &ann.short_login,
        &ann.short_login.to_uppercase(),
    ] {
        let authed = auth
            .authenticate(login, PASSWORD.as_bytes(), ip(1), "imap")
            .await
            .unwrap();
        assert_eq!(authed.id, ann.id, "{login}");
        assert_eq!(authed.address, "ann@example.org");
        assert_eq!(authed.short_login, ann.short_login);
    }
    // From a spawned task: the future is Send, as servers need.
    let spawned = auth.clone();
    let authed = tokio::spawn(async move {
        spawned
            .authenticate("ann@example.org", PASSWORD.as_bytes(), ip(1), "smtp")
            .await
    });
    assert_eq!(authed.await.unwrap().unwrap().id, ann.id);
    for (login, password) in [
        ("ann@example.org", "wrong password"),
        ("nobody@example.org", PASSWORD),
        ("zzzzzz", PASSWORD),
        ("", ""),
    ] {
        let err = auth
            .authenticate(login, password.as_bytes(), ip(2), "pop3")
            .await
            .unwrap_err();
        assert!(
            matches!(err, AuthError::InvalidCredentials),
            "{login}: {err}"
        );
    }
}

#[tokio::test]
async fn passwd_takes_effect_at_once_despite_the_cache() {
    let directory = with_domain().await;
    directory.create_account("ann@example.org").await;
    let auth = Authenticator::new(directory.directory.clone(), AuthPolicy::default());
    // Twice, so the second is a cache hit.
    for _ in 0..2 {
        auth.authenticate("ann@example.org", PASSWORD.as_bytes(), ip(1), "imap")
            .await
            .unwrap();
    }
    // Change the password through another directory handle, as another
    // process would: nothing tells the authenticator about it.
    let other = Directory::new(directory.store.clone(), Policy::default());
    other
        .set_password("ann@example.org", "brand new secret")
        .await
        .unwrap();
    let err = auth
        .authenticate("ann@example.org", PASSWORD.as_bytes(), ip(1), "imap")
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::InvalidCredentials), "{err}");
    auth.authenticate("ann@example.org", b"brand new secret", ip(1), "imap")
        .await
        .unwrap();
}

#[tokio::test]
async fn cached_vs_uncached_timing() {
    let directory = with_domain().await;
    directory.create_account("ann@example.org").await;
    let auth = Authenticator::new(directory.directory.clone(), AuthPolicy::default());
    let started = Instant::now();
    auth.authenticate("ann@example.org", PASSWORD.as_bytes(), ip(1), "imap")
        .await
        .unwrap();
    let uncached = started.elapsed();
    let started = Instant::now();
    auth.authenticate("ann@example.org", PASSWORD.as_bytes(), ip(1), "imap")
        .await
        .unwrap();
    let cached = started.elapsed();
    eprintln!("auth: uncached {uncached:?}, cached {cached:?}");

    let no_cache = Authenticator::new(
        directory.directory.clone(),
        AuthPolicy {
            cache_ttl_secs: 0,
            ..AuthPolicy::default()
        },
    );
    for _ in 0..2 {
        let started = Instant::now();
        no_cache
            .authenticate("ann@example.org", PASSWORD.as_bytes(), ip(1), "imap")
            .await
            .unwrap();
        eprintln!("auth with cache off: {:?}", started.elapsed());
    }
}

#[tokio::test]
async fn throttles_an_ip_after_10_failures() {
    let directory = with_domain().await;
    directory.create_account("ann@example.org").await;
    let auth = Authenticator::new(directory.directory.clone(), AuthPolicy::default());
    for i in 0..10 {
        let err = auth
            .authenticate(&format!("guess{i}@example.org"), b"123456", ip(66), "smtp")
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::InvalidCredentials), "{i}: {err}");
    }
    // Refused even with the right password (and without an argon2 check).
    let err = auth
        .authenticate("ann@example.org", PASSWORD.as_bytes(), ip(66), "smtp")
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Throttled), "{err}");
    // Other sources are unaffected.
    auth.authenticate("ann@example.org", PASSWORD.as_bytes(), ip(67), "smtp")
        .await
        .unwrap();
}

#[tokio::test]
async fn throttles_an_account_after_20_failures() {
    let directory = with_domain().await;
    directory.create_account("ann@example.org").await;
    directory.create_account("bob@example.org").await;
    let auth = Authenticator::new(directory.directory.clone(), AuthPolicy::default());
    // A distributed guess: every attempt from another address.
    for i in 0..20 {
        let err = auth
            .authenticate("ann@example.org", b"123456", ip(i), "imap")
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::InvalidCredentials), "{i}: {err}");
    }
    let err = auth
        .authenticate("ann@example.org", PASSWORD.as_bytes(), ip(100), "imap")
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Throttled), "{err}");
    auth.authenticate("bob@example.org", PASSWORD.as_bytes(), ip(100), "imap")
        .await
        .unwrap();
}

#[tokio::test]
async fn success_resets_the_account_counter_and_the_window_slides() {
    let directory = with_domain().await;
    directory.create_account("ann@example.org").await;
    let auth = Authenticator::new(
        directory.directory.clone(),
        AuthPolicy {
            max_failures_per_account: 3,
            failure_window_secs: 1,
            ..AuthPolicy::default()
        },
    );
    let attempt = |password: &'static str, n: u8| {
        let auth = auth.clone();
        async move {
            auth.authenticate("ann@example.org", password.as_bytes(), ip(n), "pop3")
                .await
        }
    };
    attempt("wrong one", 1).await.unwrap_err();
    attempt("wrong two", 2).await.unwrap_err();
    attempt(PASSWORD, 3).await.unwrap();
    attempt("wrong three", 4).await.unwrap_err();
    attempt("wrong four", 5).await.unwrap_err();
    attempt(PASSWORD, 6)
        .await
        .expect("counter was reset by the success");
    for n in 7..10 {
        attempt("wrong again", n).await.unwrap_err();
    }
    assert!(matches!(
        attempt(PASSWORD, 10).await,
        Err(AuthError::Throttled)
    ));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    attempt(PASSWORD, 11).await.expect("the window has passed");
}

#[tokio::test]
async fn disabled_accounts() {
    let directory = with_domain().await;
    directory.create_account("ann@example.org").await;
    let auth = Authenticator::new(directory.directory.clone(), AuthPolicy::default());
    auth.authenticate("ann@example.org", PASSWORD.as_bytes(), ip(1), "pop3")
        .await
        .unwrap();
    directory
        .set_disabled("ann@example.org", true)
        .await
        .unwrap();
    // Also when the check would come from the cache.
    let err = auth
        .authenticate("ann@example.org", PASSWORD.as_bytes(), ip(1), "pop3")
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Disabled), "{err}");
    // Without the password, a disabled account looks like any failure.
    let err = auth
        .authenticate("ann@example.org", b"wrong password", ip(1), "pop3")
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::InvalidCredentials), "{err}");
    directory
        .set_disabled("ann@example.org", false)
        .await
        .unwrap();
    auth.authenticate("ann@example.org", PASSWORD.as_bytes(), ip(1), "pop3")
        .await
        .unwrap();
}
