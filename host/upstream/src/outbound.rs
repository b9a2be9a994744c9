//! The outbound-address policy: where the gateway may connect on someone
//! else's say-so. A provider registered through the admin API is reached
//! only at public addresses, unless the operator allows a range; the check
//! is made on the addresses a name resolves to, and those are the only ones
//! connected to, so a name that resolves to a public address when checked
//! and to a private one when connected (DNS rebinding) gets nowhere.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::{Context as _, bail};
use http::Uri;
use hyper_util::client::legacy::connect::dns::Name;
use tower_service::Service;

/// An address range, `address/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    base: IpAddr,
    prefix: u8,
}

impl Range {
    /// `10.0.0.0/8`, `::1/128`, or a bare address (one host).
    pub fn parse(text: &str) -> anyhow::Result<Range> {
        let (address, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let base: IpAddr = address.trim().parse().with_context(|| format!("`{text}` is not an address range"))?;
        let max = if base.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max),
            None => Some(max),
        };
        let Some(prefix) = prefix else { bail!("`{text}`: the prefix must be 0 to {max}") };
        Ok(Range { base, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.base, canonical(ip)) {
            (IpAddr::V4(base), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(base) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(base), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(base) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Which addresses restricted destinations may have.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    /// Special ranges the operator allows all the same.
    allowed: Vec<Range>,
}

impl OutboundPolicy {
    pub fn new(allowed: Vec<Range>) -> OutboundPolicy {
        OutboundPolicy { allowed }
    }

    /// Whether a restricted destination may be at `ip`: a public address,
    /// or one in a range the operator allowed.
    pub fn permits(&self, ip: IpAddr) -> bool {
        !is_special(ip) || self.allowed.iter().any(|r| r.contains(ip))
    }
}

/// IPv4 addresses carried in IPv6 ones (mapped, compatible, NAT64, 6to4)
/// are judged as the IPv4 address they reach.
fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    let s = v6.segments();
    let embedded = |hi: u16, lo: u16| IpAddr::V4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => embedded(hi, lo),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => embedded(hi, lo),
        [0x2002, hi, lo, ..] => embedded(hi, lo),
        [0, 0, 0, 0, 0, 0, hi, lo] if (hi, lo) != (0, 0) && (hi, lo) != (0, 1) => embedded(hi, lo),
        _ => ip,
    }
}

/// Loopback, unspecified, private, shared, link-local, multicast,
/// broadcast, documentation, benchmarking and reserved addresses.
pub fn is_special(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            v4.is_loopback()
                || v4.is_unspecified()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0x0100 && s[1..4] == [0, 0, 0])
                || v6 == Ipv6Addr::from(1u128)
        }
    }
}

/// The error a refused destination fails with, found again in the
/// connection error's chain.
#[derive(Debug)]
pub struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the destination's address is refused by the outbound-address policy")
    }
}

impl std::error::Error for Refused {}

/// Whether `error` (or what caused it) is a [`Refused`].
pub fn is_refusal(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<Refused>()
            || e.downcast_ref::<io::Error>().and_then(|io| io.get_ref()).is_some_and(|i| i.is::<Refused>())
        {
            return true;
        }
        cause = e.source();
    }
    false
}

fn refused() -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, Refused)
}

/// Resolves names and keeps only the addresses `policy` permits (all of
/// them when there is no policy): the connector tries no others.
#[derive(Clone)]
pub(crate) struct Resolver {
    pub(crate) policy: Option<Arc<OutboundPolicy>>,
}

type Resolving = Pin<Box<dyn Future<Output = io::Result<std::vec::IntoIter<SocketAddr>>> + Send>>;

impl Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Resolving;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = match &policy {
                Some(p) => found.iter().copied().filter(|a| p.permits(a.ip())).collect(),
                None => found.clone(),
            };
            if kept.is_empty() && !found.is_empty() {
                return Err(refused());
            }
            Ok(kept.into_iter())
        })
    }
}

/// A connector that refuses a URL whose host is an address literal the
/// policy does not permit (literals are connected to without resolving).
#[derive(Clone)]
pub(crate) struct Checked<C> {
    pub(crate) inner: C,
    pub(crate) policy: Option<Arc<OutboundPolicy>>,
}

impl<C> Service<Uri> for Checked<C>
where
    C: Service<Uri> + Clone + Send + 'static,
    C::Future: Send + 'static,
    C::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = C::Response;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let literal = uri.host().map(|h| h.trim_start_matches('[').trim_end_matches(']')).and_then(|h| h.parse().ok());
        if let (Some(policy), Some(ip)) = (&self.policy, literal)
            && !policy.permits(ip)
        {
            return Box::pin(async { Err(Box::new(refused()) as Self::Error) });
        }
        let connecting = self.inner.call(uri);
        Box::pin(async move { connecting.await.map_err(Into::into) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn special_addresses_in_every_spelling_are_refused_public_ones_permitted() {
        let policy = OutboundPolicy::default();
        for special in [
            "127.0.0.1",
            "127.1.2.3",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
        ] {
            assert!(!policy.permits(ip(special)), "{special}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(policy.permits(ip(public)), "{public}");
        }
    }

    #[test]
    fn allowed_ranges_open_only_themselves() {
        let policy = OutboundPolicy::new(vec![Range::parse("10.20.0.0/16").unwrap(), Range::parse("::1").unwrap()]);
        assert!(policy.permits(ip("10.20.3.4")));
        assert!(!policy.permits(ip("10.21.0.1")));
        assert!(policy.permits(ip("::1")));
        assert!(!policy.permits(ip("127.0.0.1")));
        assert!(Range::parse("10.0.0.0/33").is_err());
        assert!(Range::parse("example.com/8").is_err());
        assert!(Range::parse("0.0.0.0/0").unwrap().contains(ip("127.0.0.1")));
    }

    #[tokio::test]
    async fn names_resolving_to_refused_addresses_resolve_to_nothing() {
        let mut resolver = Resolver { policy: Some(Arc::new(OutboundPolicy::default())) };
        let err = resolver.call("localhost".parse().unwrap()).await.unwrap_err();
        assert!(is_refusal(&err), "{err}");
        let mut open = Resolver { policy: None };
        assert!(open.call("localhost".parse().unwrap()).await.unwrap().next().is_some());
    }
}
