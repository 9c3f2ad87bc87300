//! IP handling shared by every program: the 16-byte mapped form used on the wire and the
//! "is this address worth acting on" test used by the commander.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IPv4-mapped IPv6 addresses become IPv4; everything else is returned unchanged.
pub fn normalize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// The 16-byte wire form: IPv6 as is, IPv4 as `::ffff:a.b.c.d`.
pub fn to_mapped_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Reads the 16-byte wire form back, normalising IPv4-mapped addresses to IPv4.
pub fn from_mapped_bytes(bytes: [u8; 16]) -> IpAddr {
    normalize_ip(IpAddr::V6(Ipv6Addr::from(bytes)))
}

/// Whether a client address is publicly routable.
///
/// Loopback, private, shared (CGNAT), link-local, unique-local, multicast, broadcast,
/// unspecified, benchmarking and documentation ranges are not: a command that opens a
/// firewall for such an address is almost always a mistake or a spoof.
pub fn is_routable(ip: IpAddr) -> bool {
    match normalize_ip(ip) {
        IpAddr::V4(v4) => is_routable_v4(v4),
        IpAddr::V6(v6) => is_routable_v6(v6),
    }
}

fn is_routable_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let shared = a == 100 && (64..128).contains(&b);
    let benchmarking = a == 198 && (b == 18 || b == 19);
    let reserved = a >= 240;
    let this_network = a == 0;
    let protocol_assignments = a == 192 && b == 0 && c == 0;
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_unspecified()
        || ip.is_documentation()
        || shared
        || benchmarking
        || reserved
        || this_network
        || protocol_assignments)
}

/// Not globally reachable per the IANA IPv6 special-purpose address registry.
fn is_routable_v6(ip: Ipv6Addr) -> bool {
    let segs = ip.segments();
    let [first, second, third, ..] = segs;
    let unique_local = (first & 0xfe00) == 0xfc00;
    let link_local = (first & 0xffc0) == 0xfe80;
    let site_local = (first & 0xffc0) == 0xfec0;
    let documentation =
        (first == 0x2001 && second == 0x0db8) || (first == 0x3fff && second & 0xf000 == 0);
    let discard_only = first == 0x0100 && segs.get(1..4) == Some(&[0, 0, 0]);
    let dummy_prefix = first == 0x0100 && segs.get(1..4) == Some(&[0, 0, 1]);
    let nat64_local = first == 0x0064 && second == 0xff9b && third == 1;
    let srv6_sids = first == 0x5f00;
    // 2001::/23, IETF protocol assignments (benchmarking 2001:2::/48, ORCHID, Teredo …),
    // except the blocks and addresses the registry marks globally reachable.
    let ietf = first == 0x2001 && second < 0x0200;
    let ietf_global = first == 0x2001
        && (matches!(
            u128::from(ip),
            0x2001_0001_0000_0000_0000_0000_0000_0001..=0x2001_0001_0000_0000_0000_0000_0000_0003
        ) || second == 0x0003
            || (second == 0x0004 && third == 0x0112)
            || (0x0020..=0x003f).contains(&second));
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || unique_local
        || link_local
        || site_local
        || documentation
        || discard_only
        || dummy_prefix
        || nat64_local
        || srv6_sids
        || (ietf && !ietf_global))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn mapped_ipv4_is_normalised() {
        assert_eq!(normalize_ip(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(normalize_ip(ip("2001:db8::1")), ip("2001:db8::1"));
        assert_eq!(
            from_mapped_bytes(to_mapped_bytes(ip("1.2.3.4"))),
            ip("1.2.3.4")
        );
    }

    #[test]
    fn non_routable_ranges_are_refused() {
        for s in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.0.1",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "0.0.0.0",
            "192.0.2.1",
            "198.51.100.1",
            "203.0.113.9",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "2001:2::1",
            "2001:2:0:ffff::1",
            "2001::1",
            "2001:10::1",
            "2001:1::4",
            "100::1",
            "100:0:0:1::1",
            "64:ff9b:1::1",
            "5f00::1",
            "3fff::1",
            "3fff:fff:ffff::1",
        ] {
            assert!(!is_routable(ip(s)), "{s} must not be routable");
        }
    }

    #[test]
    fn public_addresses_are_routable() {
        for s in [
            "1.1.1.1",
            "8.8.8.8",
            "2606:4700::1111",
            "2a00:1450::1",
            "::ffff:9.9.9.9",
            "2001:1::1",
            "2001:1::3",
            "2001:3::1",
            "2001:4:112::1",
            "2001:20::1",
            "2001:3f::1",
            "2001:200::1",
            "64:ff9b::808:808",
            "3fff:1000::1",
        ] {
            assert!(is_routable(ip(s)), "{s} must be routable");
        }
    }
}
