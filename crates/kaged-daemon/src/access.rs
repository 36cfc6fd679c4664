//! Host and Origin allowlists (design §4). Exact matches only: `localhost.`, `127.1`,
//! `2130706433` and rebinding names are not "the same host", and another port on localhost is
//! another origin.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone)]
pub struct Access {
    hosts: HashSet<String>,
    origins: HashSet<String>,
}

impl Access {
    pub fn new(bind: SocketAddr, extra_hosts: &[String], extra_origins: &[String]) -> Access {
        let port = bind.port();
        let mut hosts: HashSet<String> = [format!("127.0.0.1:{port}"), format!("localhost:{port}")]
            .into_iter()
            .collect();
        match bind.ip() {
            IpAddr::V4(ip) if !ip.is_unspecified() => {
                hosts.insert(format!("{ip}:{port}"));
            }
            IpAddr::V6(ip) if !ip.is_unspecified() => {
                hosts.insert(format!("[{ip}]:{port}"));
            }
            _ => {}
        }
        hosts.extend(extra_hosts.iter().map(|h| h.to_ascii_lowercase()));
        let mut origins: HashSet<String> = hosts.iter().map(|h| format!("http://{h}")).collect();
        origins.extend(
            extra_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase()),
        );
        Access { hosts, origins }
    }

    pub fn host_allowed(&self, host: &str) -> bool {
        contains_ignoring_case(&self.hosts, host)
    }

    pub fn origin_allowed(&self, origin: &str) -> bool {
        origin != "null" && contains_ignoring_case(&self.origins, origin)
    }

    /// Sorted, for `kaged status` and error details.
    pub fn hosts(&self) -> Vec<String> {
        let mut v: Vec<_> = self.hosts.iter().cloned().collect();
        v.sort();
        v
    }
}

/// The sets hold lowercase names; a name that is already lowercase (what browsers send) is
/// looked up without a copy.
fn contains_ignoring_case(set: &std::collections::HashSet<String>, name: &str) -> bool {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        set.contains(&name.to_ascii_lowercase())
    } else {
        set.contains(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_hosts_only() {
        let a = Access::new(
            "127.0.0.1:4000".parse().unwrap(),
            &["kaged.example.com".into()],
            &[],
        );
        for ok in [
            "127.0.0.1:4000",
            "localhost:4000",
            "LOCALHOST:4000",
            "kaged.example.com",
        ] {
            assert!(a.host_allowed(ok), "{ok}");
        }
        for bad in [
            "localhost.:4000",
            "127.1:4000",
            "2130706433:4000",
            "0x7f.0.0.1:4000",
            "localhost:4001",
            "evil.example:4000",
            "127.0.0.1",
            "",
            "[::1]:4000",
        ] {
            assert!(!a.host_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn origins_are_exact_and_null_is_refused() {
        let a = Access::new(
            "127.0.0.1:4000".parse().unwrap(),
            &[],
            &["https://kaged.example.com/".into()],
        );
        assert!(a.origin_allowed("http://localhost:4000"));
        assert!(a.origin_allowed("https://kaged.example.com"));
        assert!(a.origin_allowed("HTTPS://Kaged.Example.com"));
        assert!(!a.origin_allowed("http://localhost:4001"));
        assert!(!a.origin_allowed("null"));
        assert!(!a.origin_allowed("https://localhost:4000"));
    }
}
