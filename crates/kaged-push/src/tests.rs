#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use pretty_assertions::assert_eq;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use web_push_native::jwt_simple::algorithms::{ECDSAP256PublicKeyLike, ES256PublicKey};
use web_push_native::jwt_simple::claims::NoCustomClaims;
use web_push_native::jwt_simple::common::VerificationOptions;

use super::*;

fn tls() -> Arc<rustls::ClientConfig> {
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth(),
    )
}

#[test]
fn the_key_is_made_once_kept_private_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vapid.key");
    let first = Vapid::load_or_create(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let again = Vapid::load_or_create(&path).unwrap();
    assert_eq!(first.public_key(), again.public_key());
    assert_eq!(B64.decode(first.public_key()).unwrap().len(), 65);
    assert!(!format!("{first:?}").contains(&std::fs::read_to_string(&path).unwrap()));

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Vapid::load_or_create(&path).unwrap_err().to_string();
    assert!(
        err.contains("mode 644") && err.contains("vapid.key"),
        "{err}"
    );

    let link = dir.path().join("link.key");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let err = Vapid::load_or_create(&link).unwrap_err().to_string();
    assert!(err.contains("symlink"), "{err}");
}

#[test]
fn endpoints_are_https_or_loopback_http() {
    assert_eq!(
        check_endpoint("https://fcm.googleapis.com/fcm/send/abc").unwrap(),
        "https://fcm.googleapis.com"
    );
    assert_eq!(
        check_endpoint("http://127.0.0.1:4000/push/1").unwrap(),
        "http://127.0.0.1:4000"
    );
    for bad in [
        "http://push.example/1",
        "ftp://push.example/1",
        "https://user:pw@push.example/1",
        "not a url",
    ] {
        assert!(check_endpoint(bad).is_err(), "{bad} must be refused");
    }
    assert!(check_keys("AAAA", "AAAAAAAAAAAAAAAAAAAAAA").is_err());
}

/// A push service on loopback: takes one request and answers `status`.
async fn fake_service(
    status: u16,
) -> (
    String,
    tokio::task::JoinHandle<(HashMap<String, String>, Vec<u8>)>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let head_end = loop {
            let mut chunk = [0u8; 4096];
            let n = sock.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        assert!(head.starts_with("POST /push/abc HTTP/1.1\r\n"), "{head}");
        let headers: HashMap<String, String> = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let len: usize = headers["content-length"].parse().unwrap();
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 4096];
            let n = sock.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
        }
        let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
        sock.write_all(reply.as_bytes()).await.unwrap();
        (headers, buf[head_end..head_end + len].to_vec())
    });
    (format!("http://{addr}/push/abc"), task)
}

#[tokio::test]
async fn a_push_is_signed_for_the_service_and_only_the_browser_can_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let vapid = Vapid::load_or_create(&dir.path().join("vapid.key")).unwrap();
    let public = vapid.public_key().to_owned();
    let pusher = Pusher::new(vapid, "mailto:op@example.com".into(), tls());
    // The browser's side of the subscription.
    let ua_secret = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let ua_public = {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        B64.encode(ua_secret.public_key().to_encoded_point(false).as_bytes())
    };
    let auth = [7u8; 16];
    let (endpoint, service) = fake_service(201).await;
    let to = Target {
        endpoint: &endpoint,
        p256dh: &ua_public,
        auth: &B64.encode(auth),
    };
    let got = pusher.send(to, br#"{"title":"hi"}"#).await.unwrap();
    assert_eq!(got, Delivered::Accepted(201));
    let (headers, body) = service.await.unwrap();

    assert_eq!(headers["content-encoding"], "aes128gcm");
    let vapid_header = &headers["authorization"];
    let (t, k) = vapid_header
        .strip_prefix("vapid t=")
        .and_then(|r| r.split_once(", k="))
        .unwrap();
    assert_eq!(k, public);
    let key = ES256PublicKey::from_bytes(&B64.decode(k).unwrap()).unwrap();
    let origin = endpoint.trim_end_matches("/push/abc").to_owned();
    let opts = VerificationOptions {
        allowed_audiences: Some([origin].into_iter().collect()),
        ..Default::default()
    };
    let claims = key.verify_token::<NoCustomClaims>(t, Some(opts)).unwrap();
    assert_eq!(claims.subject.as_deref(), Some("mailto:op@example.com"));
    let exp = claims.expires_at.unwrap().as_secs();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(exp > now && exp <= now + 24 * 3600, "exp within 24 h");

    let plain = web_push_native::decrypt(
        body,
        &ua_secret,
        &web_push_native::Auth::clone_from_slice(&auth),
    )
    .unwrap();
    assert_eq!(plain, br#"{"title":"hi"}"#);
}

#[tokio::test]
async fn a_gone_subscription_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let pusher = Pusher::new(
        Vapid::load_or_create(&dir.path().join("vapid.key")).unwrap(),
        "mailto:op@example.com".into(),
        tls(),
    );
    let ua = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let ua_public = {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        B64.encode(ua.public_key().to_encoded_point(false).as_bytes())
    };
    let (endpoint, _service) = fake_service(410).await;
    let to = Target {
        endpoint: &endpoint,
        p256dh: &ua_public,
        auth: &B64.encode([1u8; 16]),
    };
    assert_eq!(pusher.send(to, b"{}").await.unwrap(), Delivered::Gone(410));
}
