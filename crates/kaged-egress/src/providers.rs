//! Model providers behind the gateway: the cage calls `http://127.0.0.1:<port>/p/<name>/...`
//! in plain HTTP with a dummy key, and the gateway forwards to the operator's declared
//! upstream over TLS (verification on: the system's roots plus an operator-named CA file),
//! swapping the dummy for the real key. The real key lives only here and in the daemon's
//! environment; it never enters a cage, a record or a message.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use http::Uri;
use rustls::ClientConfig;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::gateway::EgressError;

/// How a provider wants its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyHeader {
    /// `x-api-key: <key>` (Anthropic).
    XApiKey,
    /// `Authorization: Bearer <key>` (OpenAI and most others).
    Bearer,
}

/// A provider key; prints redacted so it cannot reach a log or an error by accident.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// One provider as the gateway routes it.
#[derive(Debug, Clone)]
pub struct ProviderRoute {
    pub name: String,
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The upstream's path prefix, without a trailing `/` (`/v1` for OpenAI, empty else).
    pub(crate) base_path: String,
    pub(crate) header: KeyHeader,
    /// The variable the key comes from, for messages; `key` is `None` when it is unset.
    pub(crate) key_env: String,
    pub(crate) key: Option<Secret>,
}

impl ProviderRoute {
    pub fn new(
        name: &str,
        base_url: &str,
        header: KeyHeader,
        key_env: &str,
        key: Option<Secret>,
    ) -> Result<ProviderRoute, EgressError> {
        let bad = |why: &str| EgressError::Provider {
            name: name.to_owned(),
            message: format!("base_url {base_url:?} {why}"),
        };
        let uri: Uri = base_url.parse().map_err(|_| bad("is not a URL"))?;
        if uri.scheme_str() != Some("https") {
            return Err(bad("must be https://"));
        }
        let auth = uri.authority().ok_or_else(|| bad("names no host"))?;
        Ok(ProviderRoute {
            name: name.to_owned(),
            host: kaged_api::normalise_host(auth.host()),
            port: auth.port_u16().unwrap_or(443),
            base_path: uri.path().trim_end_matches('/').to_owned(),
            header,
            key_env: key_env.to_owned(),
            key,
        })
    }
}

/// What a gateway knows of providers: the routes and the TLS setup they share.
#[derive(Debug, Clone, Default)]
pub struct Providers {
    pub routes: Vec<ProviderRoute>,
    /// `None` when no TLS configuration could be built (the reason is in `tls_error`).
    pub tls: Option<Arc<ClientConfig>>,
    pub tls_error: Option<String>,
}

impl Providers {
    /// The variables a cage gets for these providers: `<NAME>_BASE_URL` pointing at the
    /// relay, and `<NAME>_API_KEY` set to `dummy`, a value that opens nothing anywhere.
    pub fn cage_env(&self, port: u16, dummy: &str) -> Vec<(String, String)> {
        let mut env = Vec::new();
        for r in &self.routes {
            let stem: String = r
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            env.push((
                format!("{stem}_BASE_URL"),
                format!("http://127.0.0.1:{port}/p/{}", r.name),
            ));
            env.push((format!("{stem}_API_KEY"), dummy.to_owned()));
        }
        env
    }
}

/// TLS for provider upstreams: the system's roots plus `extra_ca` (PEM), verification on.
pub fn tls_config(extra_ca: Option<&Path>) -> Result<Arc<ClientConfig>, EgressError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = extra_ca {
        let ca_err = |message: String| EgressError::CaFile {
            path: path.to_owned(),
            message,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| ca_err(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ca_err(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_err("holds no PEM certificate".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
        }
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| EgressError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A per-cage stand-in for provider keys: random, so it cannot be mistaken for or turned
/// into a real one.
pub fn dummy_key() -> String {
    let mut bytes = [0u8; 16];
    // Without OS randomness the value is still no key; it only needs to look like one.
    let _ = getrandom::fill(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("kaged-cage-dummy-{hex}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn routes_split_the_base_url_and_the_cage_gets_urls_and_a_dummy() {
        let r = ProviderRoute::new(
            "openai",
            "https://api.openai.com/v1/",
            KeyHeader::Bearer,
            "OPENAI_API_KEY",
            Some(Secret::new("sk-real".into())),
        )
        .unwrap();
        assert_eq!(
            (r.host.as_str(), r.port, r.base_path.as_str()),
            ("api.openai.com", 443, "/v1")
        );
        assert_eq!(format!("{:?}", r.key), "Some(Secret(<redacted>))");
        assert!(ProviderRoute::new("x", "http://a.example", KeyHeader::Bearer, "K", None).is_err());
        let p = Providers {
            routes: vec![r],
            ..Providers::default()
        };
        assert_eq!(
            p.cage_env(3128, "d"),
            vec![
                (
                    "OPENAI_BASE_URL".to_owned(),
                    "http://127.0.0.1:3128/p/openai".to_owned()
                ),
                ("OPENAI_API_KEY".to_owned(), "d".to_owned())
            ]
        );
        let (a, b) = (dummy_key(), dummy_key());
        assert!(a.starts_with("kaged-cage-dummy-") && a.len() == 17 + 32 && a != b);
    }
}
