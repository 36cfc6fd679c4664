//! A cage's network policy beyond `none` and `host`: the hosts its egress gateway lets it
//! reach, and the record of each connection the gateway handled (audited and streamed live).
//! Matching and enforcement live in `kaged-egress`; this holds the values and the one rule
//! for what a host pattern may look like.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// `network: {allow: [...], deny: [...]}`: hosts with an optional port; `*.example.com`
/// matches subdomains only; deny wins. A project file can never reach private addresses
/// through it, only the operator's `local.toml` can (`[egress] allow_private`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct EgressRules {
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
}

/// The host part of a [`HostPattern`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// Exactly this name (lower-case, no trailing dot).
    Name(String),
    /// `*.suffix`: any name strictly below `suffix`, never `suffix` itself.
    Subdomains(String),
    /// An IP literal (`203.0.113.7`, `[2001:db8::1]`).
    Ip(IpAddr),
}

/// One parsed `allow`/`deny` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    pub host: HostMatch,
    /// `None`: any port.
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{entry:?} is not a host pattern: {reason}; write `example.com`, `example.com:443`, `*.example.com` or `[2001:db8::1]:443`"
)]
pub struct HostPatternError {
    pub entry: String,
    pub reason: &'static str,
}

impl HostPattern {
    pub fn parse(entry: &str) -> Result<HostPattern, HostPatternError> {
        let err = |reason| HostPatternError {
            entry: entry.to_owned(),
            reason,
        };
        if entry.contains("://") || entry.contains('/') {
            return Err(err("give a host, not a URL"));
        }
        let (host, port) = split_host_port(entry).ok_or_else(|| err("the port is malformed"))?;
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(err("the port must be 1 to 65535")),
                Ok(p) => Some(p),
            },
        };
        if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            let ip: Ipv6Addr = inner.parse().map_err(|_| err("not an IPv6 address"))?;
            return Ok(HostPattern {
                host: HostMatch::Ip(IpAddr::V6(ip)),
                port,
            });
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(HostPattern {
                host: HostMatch::Ip(ip),
                port,
            });
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let (wild, name) = match host.strip_prefix("*.") {
            Some(rest) => (true, rest.to_owned()),
            None => (false, host),
        };
        if !is_dns_name(&name) {
            return Err(err(
                "a host name is letters, digits, `-` and dots (a leading `*.` for subdomains)",
            ));
        }
        if wild && !name.contains('.') {
            return Err(err(
                "`*.` needs a domain with a dot, not a bare top-level name",
            ));
        }
        Ok(HostPattern {
            host: if wild {
                HostMatch::Subdomains(name)
            } else {
                HostMatch::Name(name)
            },
            port,
        })
    }

    /// Whether `host:port` (host already normalised by [`normalise_host`]) is covered.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        match &self.host {
            HostMatch::Name(n) => n == host,
            HostMatch::Subdomains(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            HostMatch::Ip(ip) => host.parse::<IpAddr>().is_ok_and(|h| h == *ip),
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            HostMatch::Name(n) => f.write_str(n)?,
            HostMatch::Subdomains(s) => write!(f, "*.{s}")?,
            HostMatch::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
            HostMatch::Ip(IpAddr::V4(ip)) => write!(f, "{ip}")?,
        }
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

/// `host[:port]` or `[v6][:port]`; `None` when a `:` leaves an empty port or the brackets are
/// unbalanced. A bare IPv6 address (several colons, no brackets) is all host.
pub fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if s.starts_with('[') {
        let end = s.find(']')?;
        let (host, rest) = s.split_at(end + 1);
        return match rest.strip_prefix(':') {
            Some(p) if !p.is_empty() => Some((host, Some(p))),
            Some(_) => None,
            None if rest.is_empty() => Some((host, None)),
            None => None,
        };
    }
    if s.matches(':').count() > 1 {
        return Some((s, None));
    }
    match s.split_once(':') {
        Some((h, p)) if !h.is_empty() && !p.is_empty() => Some((h, Some(p))),
        Some(_) => None,
        None if !s.is_empty() => Some((s, None)),
        None => None,
    }
}

/// A request's host as patterns compare it: lower-case, no trailing dot, IPv6 unbracketed.
pub fn normalise_host(host: &str) -> String {
    let h = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    h.trim_end_matches('.').to_ascii_lowercase()
}

fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            let b = label.as_bytes();
            (1..=63).contains(&b.len())
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

/// What the gateway did with one connection or request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(rename_all = "lowercase")]
pub enum EgressDecision {
    Allowed,
    Denied,
    /// Allowed by the policy, but the name did not resolve or the upstream did not answer.
    Failed,
}

/// How the cage asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum EgressVia {
    /// `CONNECT host:port` (HTTPS and anything tunnelled).
    Connect,
    /// A plain-HTTP request in absolute form (`GET http://host/...`).
    Http,
    /// `http://127.0.0.1:<port>/p/<provider>/...`: forwarded over TLS to an operator-declared
    /// model provider, with the real key added on the way out.
    Provider,
}

/// One connection through a cage's egress gateway, allowed or denied: the `data` of an
/// `egress.allowed` / `egress.denied` audit row and the `egress` daemon event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct EgressConnection {
    pub session_id: String,
    pub project_id: String,
    pub via: EgressVia,
    pub host: String,
    pub port: u16,
    /// The address connected to (or refused after resolution); `None` when refused before.
    pub address: Option<String>,
    pub decision: EgressDecision,
    /// Which rule decided, e.g. `allow example.com:443`, `deny *.example.com`,
    /// `no allow entry matches`, `127.0.0.1 is loopback`.
    pub rule: String,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub duration_ms: u64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn patterns_parse_and_print_back() {
        for (entry, shown) in [
            ("example.com", "example.com"),
            ("Example.COM.:443", "example.com:443"),
            ("*.example.com", "*.example.com"),
            ("203.0.113.7:8443", "203.0.113.7:8443"),
            ("[2001:db8::1]:443", "[2001:db8::1]:443"),
            ("[2001:db8::1]", "[2001:db8::1]"),
        ] {
            assert_eq!(HostPattern::parse(entry).unwrap().to_string(), shown);
        }
        for bad in [
            "",
            "https://example.com",
            "example.com/x",
            "example.com:",
            "example.com:0",
            "example.com:70000",
            "*.com",
            "*",
            "ex ample.com",
            "-x.com",
            "[::1",
            "[zz]:1",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_wildcard_matches_subdomains_only_and_a_port_narrows() {
        let w = HostPattern::parse("*.example.com").unwrap();
        assert!(w.matches("api.example.com", 443));
        assert!(w.matches("a.b.example.com", 80));
        assert!(!w.matches("example.com", 443));
        assert!(!w.matches("evilexample.com", 443));
        let p = HostPattern::parse("example.com:443").unwrap();
        assert!(p.matches("example.com", 443));
        assert!(!p.matches("example.com", 80));
        assert!(!p.matches("www.example.com", 443));
        let ip = HostPattern::parse("[2001:db8::1]").unwrap();
        assert!(ip.matches(&normalise_host("[2001:DB8::1]"), 1));
    }
}
