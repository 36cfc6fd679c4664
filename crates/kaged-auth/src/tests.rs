use std::os::unix::fs::PermissionsExt;

use http::{HeaderMap, HeaderValue};
use pretty_assertions::assert_eq;

use super::*;

fn policy(mode: AuthMode) -> AuthPolicy {
    AuthPolicy::new(PolicyConfig {
        mode,
        port: 4242,
        local_user: "alice".into(),
        loopback_nonce: Some(Secret::from_string("loopback-nonce-value".into())),
        sidecar_nonce: Some(Secret::from_string(
            "sidecar-nonce-value-0123456789abcdef".into(),
        )),
        launch_ttl: Duration::from_secs(60),
    })
    .unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_bytes(v.as_bytes()).unwrap(),
        );
    }
    h
}

fn cookie_of(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

#[test]
fn launch_token_works_once_and_sets_a_port_named_cookie() {
    let p = policy(AuthMode::Loopback);
    let token = p.issue_launch_token().unwrap();
    let set = p.redeem_launch(&token).unwrap().set_cookie;
    assert!(set.starts_with("kaged_session_4242="), "{set}");
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Path=/"));
    assert_eq!(
        p.redeem_launch(&token).unwrap_err(),
        AuthError::BadLaunchToken
    );

    let auth = p
        .authenticate(&headers(&[("cookie", &cookie_of(&set))]))
        .unwrap();
    assert_eq!(
        auth.identity,
        Identity {
            user_id: "alice".into(),
            email: Some("alice@localhost".into()),
            groups: vec![],
            mode: AuthMode::Loopback,
        }
    );
}

#[test]
fn the_nonce_itself_is_accepted_at_launch() {
    let p = policy(AuthMode::Loopback);
    assert!(p.redeem_launch("loopback-nonce-value").is_ok());
    assert!(p.redeem_launch("loopback-nonce-valuX").is_err());
}

#[test]
fn expired_launch_token_is_refused() {
    let p = AuthPolicy::new(PolicyConfig {
        launch_ttl: Duration::from_millis(1),
        ..PolicyConfig {
            mode: AuthMode::Loopback,
            port: 1,
            local_user: "a".into(),
            loopback_nonce: Some(Secret::from_string("n".into())),
            sidecar_nonce: None,
            launch_ttl: Duration::ZERO,
        }
    })
    .unwrap();
    let token = p.issue_launch_token().unwrap();
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(
        p.redeem_launch(&token).unwrap_err(),
        AuthError::BadLaunchToken
    );
}

#[test]
fn concurrent_redeems_have_exactly_one_winner() {
    let p = std::sync::Arc::new(policy(AuthMode::Loopback));
    let token = p.issue_launch_token().unwrap();
    let wins: usize = (0..16)
        .map(|_| {
            let p = p.clone();
            let t = token.clone();
            std::thread::spawn(move || p.redeem_launch(&t).is_ok())
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap() as usize)
        .sum();
    assert_eq!(wins, 1);
}

#[test]
fn loopback_never_trusts_sidecar_headers() {
    let p = policy(AuthMode::Loopback);
    let h = headers(&[
        ("x-kaged-user-id", "mallory"),
        ("x-kaged-auth-nonce", "sidecar-nonce-value-0123456789abcdef"),
    ]);
    assert_eq!(p.authenticate(&h).unwrap_err(), AuthError::Missing);
}

#[test]
fn restart_invalidates_cookies() {
    let a = policy(AuthMode::Loopback);
    let set = a
        .redeem_launch(&a.issue_launch_token().unwrap())
        .unwrap()
        .set_cookie;
    let b = policy(AuthMode::Loopback);
    assert_eq!(
        b.authenticate(&headers(&[("cookie", &cookie_of(&set))]))
            .unwrap_err(),
        AuthError::BadCookie
    );
}

#[test]
fn cookie_for_another_port_or_tampered_is_refused() {
    let p = policy(AuthMode::Loopback);
    let set = p
        .redeem_launch(&p.issue_launch_token().unwrap())
        .unwrap()
        .set_cookie;
    let value = cookie_of(&set).split_once('=').unwrap().1.to_owned();
    let other_port = format!("kaged_session_4243={value}");
    assert_eq!(
        p.authenticate(&headers(&[("cookie", &other_port)]))
            .unwrap_err(),
        AuthError::Missing
    );
    // Flip the last character to a different one (never a no-op "tamper").
    let mut tampered = value.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let c = format!("kaged_session_4242={tampered}");
    assert_eq!(
        p.authenticate(&headers(&[("cookie", &c)])).unwrap_err(),
        AuthError::BadCookie
    );
    let dup = format!("kaged_session_4242={value}; kaged_session_4242={value}");
    assert_eq!(
        p.authenticate(&headers(&[("cookie", &dup)])).unwrap_err(),
        AuthError::Duplicate("session cookie")
    );
}

#[test]
fn local_cli_bearer_uses_the_nonce() {
    let p = policy(AuthMode::Loopback);
    let ok = p
        .authenticate(&headers(&[(
            "authorization",
            "Bearer loopback-nonce-value",
        )]))
        .unwrap();
    assert_eq!(ok.credential, Credential::LocalNonce);
    assert_eq!(
        p.authenticate(&headers(&[("authorization", "Bearer nope")]))
            .unwrap_err(),
        AuthError::BadNonce
    );
}

#[test]
fn sidecar_credential_matrix() {
    let p = policy(AuthMode::Sidecar);
    let nonce = "sidecar-nonce-value-0123456789abcdef";
    let ok = p
        .authenticate(&headers(&[
            ("x-kaged-auth-nonce", nonce),
            ("x-kaged-user-id", "bob@example.com"),
            ("x-kaged-user-email", "bob@example.com"),
            ("x-kaged-user-groups", "ops, dev,"),
        ]))
        .unwrap();
    assert_eq!(
        ok.identity,
        Identity {
            user_id: "bob@example.com".into(),
            email: Some("bob@example.com".into()),
            groups: vec!["ops".into(), "dev".into()],
            mode: AuthMode::Sidecar,
        }
    );
    let cases: &[(&[(&str, &str)], AuthError)] = &[
        (&[("x-kaged-user-id", "bob")], AuthError::BadNonce),
        (
            &[("x-kaged-auth-nonce", "wrong"), ("x-kaged-user-id", "bob")],
            AuthError::BadNonce,
        ),
        (
            &[
                ("x-kaged-auth-nonce", "sidecar-nonce-value-0123456789abcdeF"),
                ("x-kaged-user-id", "bob"),
            ],
            AuthError::BadNonce,
        ),
        (&[("x-kaged-auth-nonce", nonce)], AuthError::MissingUserId),
        (
            &[
                ("x-kaged-auth-nonce", nonce),
                ("x-kaged-auth-nonce", nonce),
                ("x-kaged-user-id", "bob"),
            ],
            AuthError::Duplicate("X-Kaged-Auth-Nonce"),
        ),
        (
            &[
                ("x-kaged-auth-nonce", nonce),
                ("x-kaged-user-id", "bob"),
                ("x-kaged-user-id", "root"),
            ],
            AuthError::Duplicate("X-Kaged-User-Id"),
        ),
        (
            &[("x-kaged-auth-nonce", nonce), ("x-kaged-user-id", "  ")],
            AuthError::Malformed("X-Kaged-User-Id"),
        ),
        (
            &[("x-kaged-auth-nonce", nonce), ("x-kaged-user-id", "a\tb")],
            AuthError::Malformed("X-Kaged-User-Id"),
        ),
        (
            &[
                ("x-kaged-auth-nonce", nonce),
                ("cookie", "kaged_session_4242=x"),
            ],
            AuthError::MissingUserId,
        ),
    ];
    for (h, want) in cases {
        assert_eq!(p.authenticate(&headers(h)).unwrap_err(), *want, "{h:?}");
    }
    let long = "u".repeat(257);
    assert_eq!(
        p.authenticate(&headers(&[
            ("x-kaged-auth-nonce", nonce),
            ("x-kaged-user-id", &long)
        ]))
        .unwrap_err(),
        AuthError::Malformed("X-Kaged-User-Id")
    );
}

#[test]
fn insecure_synthesises_insecure_mode_user() {
    let p = policy(AuthMode::Insecure);
    let a = p.authenticate(&HeaderMap::new()).unwrap();
    assert_eq!(a.identity.user_id, "insecure-mode");
}

#[test]
fn csrf_is_bound_to_the_session() {
    let p = policy(AuthMode::Loopback);
    let s1 = p
        .redeem_launch(&p.issue_launch_token().unwrap())
        .unwrap()
        .set_cookie;
    let s2 = p
        .redeem_launch(&p.issue_launch_token().unwrap())
        .unwrap()
        .set_cookie;
    let a1 = p
        .authenticate(&headers(&[("cookie", &cookie_of(&s1))]))
        .unwrap();
    let a2 = p
        .authenticate(&headers(&[("cookie", &cookie_of(&s2))]))
        .unwrap();
    let t1 = p.csrf_token(&a1);
    assert!(p.verify_csrf(&a1, t1.as_bytes()));
    assert!(!p.verify_csrf(&a2, t1.as_bytes()));
    assert!(!p.verify_csrf(&a1, b""));
}

#[test]
fn secrets_never_show_in_debug() {
    let s = Secret::from_string("hunter2".into());
    assert_eq!(format!("{s:?}"), "Secret([redacted])");
}

#[test]
fn secret_files_are_0600_and_symlinks_or_loose_modes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let path = dir.path().join("auth-cookie");
    write_secret_file(&path, "abc").unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(read_secret_file(&path, false).unwrap(), "abc");

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(matches!(
        read_secret_file(&path, false),
        Err(AuthSetupError::Mode { .. })
    ));

    let target = dir.path().join("target");
    std::fs::write(&target, "x").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert!(matches!(
        read_secret_file(&link, false),
        Err(AuthSetupError::Symlink { .. })
    ));
    // Writing over a planted symlink replaces the link, never writes through it.
    write_secret_file(&link, "new").unwrap();
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "x");
}

#[test]
fn secret_file_in_an_open_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(matches!(
        write_secret_file(&dir.path().join("n"), "x"),
        Err(AuthSetupError::Mode { .. })
    ));
}

fn launched(p: &AuthPolicy) -> (Authenticated, Launched) {
    let l = p.redeem_launch(&p.issue_launch_token().unwrap()).unwrap();
    let auth = p
        .authenticate(&headers(&[("cookie", &cookie_of(&l.set_cookie))]))
        .unwrap();
    (auth, l)
}

#[test]
fn a_cookie_needs_its_page_key_which_other_credentials_do_not() {
    let p = policy(AuthMode::Loopback);
    let (auth, l) = launched(&p);
    assert_eq!(p.page_key(&auth).as_deref(), Some(l.page_key.as_str()));
    assert!(p.verify_page_key(&auth, Some(l.page_key.as_bytes())));
    assert!(!p.verify_page_key(&auth, None));
    assert!(!p.verify_page_key(&auth, Some(b"guess")));
    // Another browser session has another key.
    let (other, _) = launched(&p);
    assert!(!p.verify_page_key(&other, Some(l.page_key.as_bytes())));
    let cli = p
        .authenticate(&headers(&[(
            "authorization",
            "Bearer loopback-nonce-value",
        )]))
        .unwrap();
    assert!(p.page_key(&cli).is_none() && p.verify_page_key(&cli, None));
}

#[test]
fn cookies_expire_after_their_lifetime_and_slide_while_in_use() {
    let p = policy(AuthMode::Loopback);
    let (auth, l) = launched(&p);
    assert!(
        p.renewal(&auth).is_none(),
        "a fresh cookie needs no renewal"
    );
    let value = |set: &str| cookie_of(set).split_once('=').unwrap().1.to_owned();
    let now = unix_now();
    let hour_old = p.set_cookie("AAAAAAAAAAAAAAAAAAAAAA", now - 3700);
    let (sid, issued) = p.verify_cookie(&value(&hour_old), now).unwrap();
    let aged = Authenticated {
        identity: auth.identity.clone(),
        credential: Credential::Cookie { sid, issued },
    };
    let renewed = p.renewal(&aged).unwrap();
    assert!(renewed.contains("Max-Age=43200"), "{renewed}");
    assert!(p.verify_cookie(&value(&renewed), now).is_some());
    let expired = p.set_cookie("AAAAAAAAAAAAAAAAAAAAAA", now - COOKIE_LIFETIME.as_secs());
    assert!(p.verify_cookie(&value(&expired), now).is_none());
    let future = p.set_cookie("AAAAAAAAAAAAAAAAAAAAAA", now + 3600);
    assert!(p.verify_cookie(&value(&future), now).is_none());
    assert!(p.verify_cookie(&value(&l.set_cookie), now).is_some());
}

#[test]
fn sign_out_ends_one_session_and_revoke_all_ends_every_one() {
    let p = policy(AuthMode::Loopback);
    let (a, la) = launched(&p);
    let (_b, lb) = launched(&p);
    let cookie = |l: &Launched| headers(&[("cookie", &cookie_of(&l.set_cookie))]);
    let cleared = p.sign_out(&a).unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(
        p.authenticate(&cookie(&la)).unwrap_err(),
        AuthError::BadCookie
    );
    let b = p.authenticate(&cookie(&lb)).unwrap();
    let key_before = p.page_key(&b).unwrap();
    p.revoke_all().unwrap();
    assert_eq!(
        p.authenticate(&cookie(&lb)).unwrap_err(),
        AuthError::BadCookie
    );
    // The old page key means nothing either, and the CLI's nonce still works.
    assert_ne!(p.page_key(&b).unwrap(), key_before);
    assert!(
        p.authenticate(&headers(&[(
            "authorization",
            "Bearer loopback-nonce-value"
        )]))
        .is_ok()
    );
}
