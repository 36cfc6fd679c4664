//! Which addresses a cage may never reach: everything that is not the public internet. The
//! gateway checks the address it will connect to, after resolving the name itself, so a name
//! that resolves to 127.0.0.1 (or is rebound to it between two lookups) is refused the same as
//! the literal.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The kind of an address, as the gateway decides on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrClass {
    Public,
    Unspecified,
    Loopback,
    /// RFC 1918, IPv6 unique-local and the deprecated site-local range.
    Private,
    LinkLocal,
    /// 100.64.0.0/10, carrier-grade NAT: some other customer's LAN, or the provider's.
    Cgnat,
    Multicast,
    Broadcast,
    /// Not routable on the internet: IETF protocol assignments, documentation, benchmarking,
    /// 240/4, `0/8`, IPv6 discard and documentation.
    Reserved,
}

impl AddrClass {
    pub fn is_public(self) -> bool {
        self == AddrClass::Public
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AddrClass::Public => "public",
            AddrClass::Unspecified => "unspecified",
            AddrClass::Loopback => "loopback",
            AddrClass::Private => "private",
            AddrClass::LinkLocal => "link-local",
            AddrClass::Cgnat => "carrier-grade NAT (shared)",
            AddrClass::Multicast => "multicast",
            AddrClass::Broadcast => "broadcast",
            AddrClass::Reserved => "reserved",
        }
    }
}

impl fmt::Display for AddrClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an address is, and the IPv4 address it stands for when it embeds one (IPv4-mapped,
/// IPv4-compatible, NAT64, 6to4): those are classified by the IPv4 address they reach.
pub fn classify(ip: IpAddr) -> (AddrClass, Option<Ipv4Addr>) {
    match ip {
        IpAddr::V4(v4) => (classify_v4(v4), None),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => (classify_v4(v4), Some(v4)),
            None => (classify_v6(v6), None),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddrClass {
    let [a, b, c, _] = ip.octets();
    if ip.is_unspecified() {
        AddrClass::Unspecified
    } else if a == 127 {
        AddrClass::Loopback
    } else if a == 10 || (a == 172 && (16..32).contains(&b)) || (a == 192 && b == 168) {
        AddrClass::Private
    } else if a == 169 && b == 254 {
        AddrClass::LinkLocal
    } else if a == 100 && (64..128).contains(&b) {
        AddrClass::Cgnat
    } else if (224..240).contains(&a) {
        AddrClass::Multicast
    } else if ip == Ipv4Addr::BROADCAST {
        AddrClass::Broadcast
    } else if a == 0
        || a >= 240
        || (a == 192 && b == 0 && c == 0)
        || (a == 192 && b == 0 && c == 2)
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || (a == 198 && (18..20).contains(&b))
    {
        AddrClass::Reserved
    } else {
        AddrClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddrClass {
    let s = ip.segments();
    if ip.is_unspecified() {
        AddrClass::Unspecified
    } else if ip.is_loopback() {
        AddrClass::Loopback
    } else if (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfec0 {
        AddrClass::Private
    } else if (s[0] & 0xffc0) == 0xfe80 {
        AddrClass::LinkLocal
    } else if (s[0] & 0xff00) == 0xff00 {
        AddrClass::Multicast
    } else if (s[0] == 0x2001 && s[1] == 0x0db8)
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0)
        // Only 2000::/3 is allocated as global unicast.
        || (s[0] & 0xe000) != 0x2000
    {
        AddrClass::Reserved
    } else {
        AddrClass::Public
    }
}

/// The IPv4 address an IPv6 address leads to: `::ffff:a.b.c.d` (mapped), `::a.b.c.d`
/// (compatible, deprecated but still routed by some stacks), `64:ff9b::a.b.c.d` (NAT64) and
/// `2002:AABB:CCDD::/48` (6to4).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..5] == [0; 5] && s[5] == 0xffff {
        return Some(low());
    }
    // `::` and `::1` are IPv6's own unspecified and loopback, not IPv4-compatible addresses.
    if s[..6] == [0; 6] && !(s[6] == 0 && s[7] <= 1) {
        return Some(low());
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(low());
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use pretty_assertions::assert_eq;

    fn class(s: &str) -> AddrClass {
        classify(s.parse().unwrap()).0
    }

    #[test]
    fn every_range_a_cage_must_not_reach_is_refused() {
        use AddrClass::*;
        let table = [
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Reserved),
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("10.0.0.1", Private),
            ("10.255.255.255", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("169.254.169.254", LinkLocal),
            ("169.254.0.1", LinkLocal),
            ("100.64.0.1", Cgnat),
            ("100.127.255.255", Cgnat),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("255.255.255.255", Broadcast),
            ("240.0.0.1", Reserved),
            ("192.0.0.170", Reserved),
            ("192.0.2.1", Reserved),
            ("198.51.100.1", Reserved),
            ("203.0.113.9", Reserved),
            ("198.18.0.1", Reserved),
            ("198.19.255.255", Reserved),
            ("::", Unspecified),
            ("::1", Loopback),
            ("fc00::1", Private),
            ("fd12:3456::1", Private),
            ("fec0::1", Private),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("ff02::1", Multicast),
            ("2001:db8::1", Reserved),
            ("100::1", Reserved),
            ("4000::1", Reserved),
            // IPv4 inside IPv6 is judged by the IPv4 address.
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:7f00:1", Loopback),
            ("::ffff:10.1.2.3", Private),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:0.0.0.0", Unspecified),
            ("::127.0.0.1", Loopback),
            ("::192.168.0.1", Private),
            ("64:ff9b::127.0.0.1", Loopback),
            ("64:ff9b::a9fe:a9fe", LinkLocal),
            ("2002:7f00:1::1", Loopback),
            ("2002:c0a8:101::1", Private),
        ];
        for (addr, want) in table {
            assert_eq!((addr, class(addr)), (addr, want));
            assert!(!want.is_public(), "{addr}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for addr in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "169.253.0.1",
            "192.169.0.1",
            "223.255.255.255",
            "2606:4700::1111",
            "2a00:1450:4001::1",
            "::ffff:1.1.1.1",
            "64:ff9b::101:101",
            "2002:101:101::1",
        ] {
            assert_eq!((addr, class(addr)), (addr, AddrClass::Public));
        }
    }

    #[test]
    fn an_embedded_ipv4_address_is_reported() {
        assert_eq!(
            classify("::ffff:127.0.0.1".parse().unwrap()),
            (AddrClass::Loopback, Some(Ipv4Addr::LOCALHOST))
        );
        assert_eq!(classify("127.0.0.1".parse().unwrap()).1, None);
    }
}
