//! Which address a connection comes from, for the per-IP connection limit and
//! the logs. Behind a reverse proxy every TCP peer is the proxy; with the
//! proxy's address in `--trusted-proxies` (`ROOMCAST_TRUSTED_PROXIES`), the
//! client is read from the `X-Forwarded-For` header the proxy appends to: the
//! rightmost address in it that is not itself a trusted proxy. Entries left
//! of that one were written by the client (or by proxies nobody vouches for)
//! and are never believed, and a header from a peer that is not trusted is
//! ignored altogether, so a client cannot pick its own address.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use actix_web::HttpRequest;

/// An IP address or a CIDR block (`10.0.0.0/8`, `::1`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` lies in this block. An IPv4 address written as IPv6
    /// (`::ffff:a.b.c.d`) counts as the IPv4 one.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Whether the first `prefix` bits of `a` and `b` agree.
fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let (whole, rest) = (usize::from(prefix / 8), prefix % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[whole] & mask == b[whole] & mask
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr = canonical(
            addr.parse::<IpAddr>()
                .map_err(|_| format!("{s:?} is not an IP address or CIDR block"))?,
        );
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0..={max}"))?,
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The address the connection of `req` comes from, by the rule above; the
/// TCP peer when no trusted proxy is involved (`0.0.0.0` if unknown).
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet]) -> IpAddr {
    let peer = req
        .peer_addr()
        .map(|a| canonical(a.ip()))
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok());
    from_forwarded(peer, forwarded, trusted)
}

/// The client address given the TCP `peer` and the `X-Forwarded-For` header
/// values in order (several headers read as one comma-separated list).
fn from_forwarded<'h>(
    peer: IpAddr,
    headers: impl Iterator<Item = &'h str>,
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let hops: Vec<&str> = headers.flat_map(|h| h.split(',')).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = canonical(ip);
                if !is_trusted(client) {
                    break;
                }
            }
            // Garbage (or `unknown`) where an address should be: stop at the
            // last proxy that wrote a readable one.
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn parses_addresses_and_blocks() {
        let net: IpNet = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped");
        let one: IpNet = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let odd: IpNet = "192.168.4.0/22".parse().unwrap();
        assert!(odd.contains(ip("192.168.7.255")) && !odd.contains(ip("192.168.8.0")));
        let v6: IpNet = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        assert_eq!(
            "0.0.0.0/0".parse::<IpNet>().unwrap().to_string(),
            "0.0.0.0/0"
        );
        for bad in ["", "10.0.0.0/33", "::/129", "host", "10.0.0/8", "1.2.3.4/x"] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn believes_only_what_trusted_proxies_appended() {
        let trusted = nets(&["127.0.0.1", "10.0.0.0/8"]);
        let peer = ip("127.0.0.1");
        let client = |headers: &[&str]| from_forwarded(peer, headers.iter().copied(), &trusted);
        // nginx appends the client it saw.
        assert_eq!(client(&["203.0.113.7"]), ip("203.0.113.7"));
        // The client's own claim left of it is ignored.
        assert_eq!(client(&["198.51.100.1, 203.0.113.7"]), ip("203.0.113.7"));
        // Inner proxies are skipped, across several headers too.
        assert_eq!(client(&["203.0.113.7, 10.0.0.5"]), ip("203.0.113.7"));
        assert_eq!(client(&["203.0.113.7", "10.0.0.5"]), ip("203.0.113.7"));
        // Nothing usable: the nearest address anyone trusted wrote.
        assert_eq!(client(&[]), peer);
        assert_eq!(client(&["unknown"]), peer);
        assert_eq!(client(&["203.0.113.7, garbage, 10.0.0.5"]), ip("10.0.0.5"));
        // From a peer nobody trusts, the header means nothing.
        let stranger = ip("192.0.2.9");
        assert_eq!(
            from_forwarded(stranger, ["203.0.113.7"].into_iter(), &trusted),
            stranger
        );
        // Without trusted proxies, never.
        assert_eq!(from_forwarded(peer, ["203.0.113.7"].into_iter(), &[]), peer);
    }
}
