//! A browser session is a cookie *and* a page key only kaged's own page holds. Browsers send a
//! host's cookies to every port on it, so a server on another port that captured the cookie
//! must get nowhere, however it forges Host and Origin.

use kaged_api::{ErrorCode, SignedOut};
use pretty_assertions::assert_eq;

use crate::fixture::{daemon, eventually};

const WS: [(&str, &str); 4] = [
    ("Connection", "Upgrade"),
    ("Upgrade", "websocket"),
    ("Sec-WebSocket-Version", "13"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
];

#[test]
fn a_captured_cookie_gets_401_on_every_api_route_and_every_websocket() {
    let routes: Vec<kaged_http::RouteSpec> = kaged_http::route_specs()
        .into_iter()
        // The UI shell, and what the browser fetches for it without any page header (the
        // service worker, the manifest), load with the cookie alone.
        .filter(|s| {
            s.auth
                && !matches!(
                    s.path,
                    "/" | "/assets/{*path}" | "/sw.js" | "/manifest.webmanifest"
                )
        })
        .collect();
    // A peer that keeps presenting a bad credential is slowed down on purpose; a fresh daemon
    // every few routes keeps this walk under that threshold.
    for chunk in routes.chunks(4) {
        let d = daemon().start();
        let s = d.login();
        let origin = d.origin();
        for spec in chunk {
            let path = spec.path.replace("{id}", "x").replace("{*path}", "x.js");
            // Everything a non-browser client can forge: Host, Origin, even the CSRF token
            // (it has none; granting it one shows the cookie is what fails).
            let mut h = vec![
                ("Cookie", s.cookie.as_str()),
                ("Origin", origin.as_str()),
                ("X-Kaged-CSRF", s.csrf.as_str()),
            ];
            let target = if spec.websocket {
                h.extend(WS);
                format!("{path}?csrf={}", s.csrf)
            } else {
                path.clone()
            };
            let body = (spec.method != "GET").then_some("{}");
            let r = d.request(spec.method.as_str(), &target, &h, body);
            assert_eq!(
                (r.status, r.error_code()),
                (401, ErrorCode::Unauthenticated),
                "{} {path}: {}",
                spec.method,
                r.body
            );
            // A guessed page key is no better.
            h.push(("X-Kaged-Page", "guessed"));
            let r = d.request(spec.method.as_str(), &target, &h, body);
            assert_eq!(r.status, 401, "{} {path} with a guessed key", spec.method);
        }
        // The page that holds the key gets through, and the UI shell loads with the cookie.
        assert_eq!(d.get_as(&s, "/api/v1/me").status, 200);
        assert_eq!(d.get("/", &[("Cookie", &s.cookie)]).status, 200);
    }
}

#[test]
fn the_cookie_lives_twelve_hours_and_logout_ends_it() {
    let d = daemon().start();
    let out = d.cli(&["auth", "open", "--no-browser"]);
    let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let r = d.get(url.trim_start_matches(&d.base_url()), &[]);
    let set = r.header("set-cookie").unwrap().to_owned();
    assert!(set.contains("Max-Age=43200"), "{set}");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );

    let s = d.login();
    let other = d.login();
    let r = d.post(&s, "/api/v1/auth/logout", &serde_json::json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json_as::<SignedOut>(),
        SignedOut {
            browser_session: true
        }
    );
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(d.get_as(&s, "/api/v1/me").status, 401);
    assert_eq!(d.get_as(&other, "/api/v1/me").status, 200, "only that one");
}

#[test]
fn auth_revoke_signs_every_browser_out_and_the_cli_keeps_working() {
    let d = daemon().start();
    let (a, b) = (d.login(), d.login());
    let out = d.cli(&["auth", "revoke"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for s in [&a, &b] {
        assert_eq!(d.get_as(s, "/api/v1/me").status, 401);
    }
    assert!(d.cli(&["ps"]).status.success());
    let fresh = d.login();
    assert_eq!(d.get_as(&fresh, "/api/v1/me").status, 200);
    let audit = d.get_as(&fresh, "/api/v1/audit?type=auth.revoked");
    eventually(std::time::Duration::from_secs(5), || {
        audit
            .body
            .contains("auth.revoked")
            .then_some(())
            .ok_or_else(|| audit.body.clone())
    });
}
