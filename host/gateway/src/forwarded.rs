//! The client's address: the connection's peer, or, when the peer is a
//! proxy the operator trusts (`trusted_proxies`), the address that proxy
//! says it forwarded for (`Forwarded`, RFC 7239, else `X-Forwarded-For`).
//! Hops are read from the right: the first one that is not a trusted proxy
//! is the client, so a client cannot choose its address by sending the
//! headers itself.

use std::net::IpAddr;

use fhirgate_upstream::outbound::Range;
use http::HeaderMap;

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    ranges: Vec<Range>,
}

impl TrustedProxies {
    /// From `trusted_proxies` (addresses or ranges).
    pub fn new(entries: &[String]) -> anyhow::Result<TrustedProxies> {
        use anyhow::Context as _;
        let ranges = entries
            .iter()
            .enumerate()
            .map(|(i, e)| Range::parse(e).with_context(|| format!("`trusted_proxies[{i}]`")))
            .collect::<anyhow::Result<_>>()?;
        Ok(TrustedProxies { ranges })
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(ip))
    }

    /// The client address of a request from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops = forwarded_for(headers).or_else(|| x_forwarded_for(headers)).unwrap_or_default();
        let mut client = peer;
        for hop in hops.iter().rev() {
            // A hop a trusted proxy could not name ends what is known.
            let Some(ip) = hop else { return client };
            client = *ip;
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

/// The `for=` of every `Forwarded` element, oldest first; `None` for one
/// that is not an address (`unknown`, an obfuscated name, garbage).
fn forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let values: Vec<&str> = headers.get_all("forwarded").iter().filter_map(|v| v.to_str().ok()).collect();
    if values.is_empty() {
        return None;
    }
    let mut hops = Vec::new();
    for element in values.iter().flat_map(|v| v.split(',')) {
        let node = element.split(';').find_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            name.trim().eq_ignore_ascii_case("for").then(|| value.trim().trim_matches('"'))
        });
        hops.push(node.and_then(parse_node));
    }
    Some(hops)
}

fn x_forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let values: Vec<&str> = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
    if values.is_empty() {
        return None;
    }
    Some(values.iter().flat_map(|v| v.split(',')).map(|h| parse_node(h.trim())).collect())
}

/// `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`, `[2001:db8::1]:4711` or
/// a bare IPv6 address.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    let (host, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_a_trusted_peer_is_believed_and_hops_are_read_from_the_right() {
        let proxies = TrustedProxies::new(&["10.0.0.0/24".into(), "::1".into()]).unwrap();
        let spoofed = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(proxies.client(ip("198.51.100.1"), &spoofed), ip("198.51.100.1"));
        // The client's own claim sits left of what the proxy appended.
        let chain = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.7, 10.0.0.2")]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &chain), ip("203.0.113.7"));
        let forwarded =
            headers(&[("forwarded", "for=1.2.3.4"), ("forwarded", "for=\"[2001:db8::7]:4711\";proto=https")]);
        assert_eq!(proxies.client(ip("::1"), &forwarded), ip("2001:db8::7"));
        // Forwarded wins over X-Forwarded-For.
        let both = headers(&[("forwarded", "for=192.0.2.60:80"), ("x-forwarded-for", "203.0.113.1")]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &both), ip("192.0.2.60"));
        // An unnamed hop: the last address known.
        let unknown = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &unknown), ip("10.0.0.1"));
        assert_eq!(proxies.client(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
    }
}
