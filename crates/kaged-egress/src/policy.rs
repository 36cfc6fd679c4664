//! A cage's rules, parsed once when the gateway starts, and the two decisions the gateway asks
//! of them: may this cage name this host (the project's `allow`/`deny`), and may it reach this
//! non-public address (only the operator's `[egress] allow_private` says yes).

use std::net::IpAddr;

use kaged_api::{EgressRules, HostPattern, HostPatternError, normalise_host};

use crate::classify::AddrClass;

#[derive(Debug, Clone, Default)]
pub struct Policy {
    allow: Vec<HostPattern>,
    deny: Vec<HostPattern>,
    private_ok: Vec<HostPattern>,
}

/// Why a host was refused before any lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Denied(String),
    NotAllowed,
}

impl Policy {
    /// `rules` from the project file, `allow_private` from the operator's local.toml (already
    /// validated there: one host and a port each).
    pub fn new(rules: &EgressRules, allow_private: &[String]) -> Result<Policy, HostPatternError> {
        let parse = |list: &[String]| {
            list.iter()
                .map(|e| HostPattern::parse(e))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Policy {
            allow: parse(&rules.allow)?,
            deny: parse(&rules.deny)?,
            private_ok: parse(allow_private)?,
        })
    }

    /// The allow entry that lets `host:port` through, or why not. Deny wins.
    pub fn check_host(&self, host: &str, port: u16) -> Result<String, Refusal> {
        let host = normalise_host(host);
        if let Some(d) = self.deny.iter().find(|p| p.matches(&host, port)) {
            return Err(Refusal::Denied(d.to_string()));
        }
        match self.allow.iter().find(|p| p.matches(&host, port)) {
            Some(a) => Ok(a.to_string()),
            None => Err(Refusal::NotAllowed),
        }
    }

    /// Whether the gateway may connect to `ip:port` for `host`: public addresses always, the
    /// rest only when the operator named the pair (by the requested name or by the address).
    pub fn may_reach(&self, host: &str, ip: IpAddr, port: u16, class: AddrClass) -> bool {
        if class.is_public() {
            return true;
        }
        let host = normalise_host(host);
        let ip_text = ip.to_string();
        self.private_ok
            .iter()
            .any(|p| p.matches(&host, port) || p.matches(&ip_text, port))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use pretty_assertions::assert_eq;

    fn policy(allow: &[&str], deny: &[&str], private: &[&str]) -> Policy {
        let s = |l: &[&str]| l.iter().map(|e| e.to_string()).collect::<Vec<_>>();
        Policy::new(
            &EgressRules {
                allow: s(allow),
                deny: s(deny),
            },
            &s(private),
        )
        .unwrap()
    }

    #[test]
    fn deny_wins_over_allow_and_nothing_is_allowed_by_default() {
        let p = policy(
            &["*.example.com", "example.com:443"],
            &["evil.example.com"],
            &[],
        );
        assert_eq!(
            p.check_host("api.example.com", 443),
            Ok("*.example.com".into())
        );
        assert_eq!(
            p.check_host("Example.com.", 443),
            Ok("example.com:443".into())
        );
        assert_eq!(p.check_host("example.com", 80), Err(Refusal::NotAllowed));
        assert_eq!(
            p.check_host("evil.example.com", 443),
            Err(Refusal::Denied("evil.example.com".into()))
        );
        assert_eq!(
            policy(&[], &[], &[]).check_host("example.com", 443),
            Err(Refusal::NotAllowed)
        );
    }

    #[test]
    fn only_the_operator_opens_a_private_pair() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let p = policy(&["localhost"], &[], &["127.0.0.1:8443", "db.lan:5432"]);
        assert!(p.may_reach("localhost", lo, 8443, AddrClass::Loopback));
        assert!(!p.may_reach("localhost", lo, 8444, AddrClass::Loopback));
        let lan: IpAddr = "10.0.0.5".parse().unwrap();
        assert!(p.may_reach("db.lan", lan, 5432, AddrClass::Private));
        assert!(!p.may_reach("other.lan", lan, 5432, AddrClass::Private));
        let public: IpAddr = "1.1.1.1".parse().unwrap();
        assert!(p.may_reach("one.one", public, 443, AddrClass::Public));
        assert!(!policy(&["*"; 0], &[], &[]).may_reach("x", lo, 80, AddrClass::Loopback));
    }
}
