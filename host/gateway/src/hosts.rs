//! Which host a request may name, and the public base URL its discovery
//! documents, token URLs and links are built on. A `Host` (or HTTP/2
//! `:authority`) the operator did not list is refused with `421`, so a
//! client cannot make the gateway advertise an address of its choosing.

use std::net::SocketAddr;

use anyhow::{Context as _, bail};
use http::Request;
use http::header::HOST;
use http::uri::Authority;

/// A host name and, when it names one, its port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Name {
    host: String,
    port: Option<u16>,
}

impl Name {
    fn parse(text: &str) -> Option<Name> {
        if text.contains('@') {
            return None;
        }
        let authority: Authority = text.parse().ok()?;
        let host = authority.host().trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return None;
        }
        Some(Name { host, port: authority.port_u16() })
    }
}

/// The hosts a gateway answers for.
#[derive(Debug, Clone)]
pub struct PublicHosts {
    /// `public_url`, when configured: every URL the gateway writes uses it.
    public_url: Option<String>,
    /// Its host and port (the scheme's default when it names none).
    pinned: Option<Name>,
    /// `accepted_hosts`; an entry without a port accepts any port.
    accepted: Vec<Name>,
    /// Neither configured: only the listening address is accepted.
    local: String,
}

/// A request naming a host this gateway does not answer for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misdirected;

impl PublicHosts {
    /// From `public_url` and `accepted_hosts` (checked by the config), for a
    /// gateway listening on `local`.
    pub fn new(public_url: Option<&str>, accepted: &[String], local: SocketAddr) -> anyhow::Result<PublicHosts> {
        let pinned = match public_url {
            Some(url) => {
                let uri: http::Uri = url.parse().with_context(|| format!("`{url}` is not a URL"))?;
                let default_port = if uri.scheme_str() == Some("https") { 443 } else { 80 };
                let authority = uri.authority().with_context(|| format!("`{url}` has no host"))?;
                let mut name = Name::parse(authority.as_str()).with_context(|| format!("`{url}` has no host"))?;
                name.port = Some(name.port.unwrap_or(default_port));
                Some(name)
            }
            None => None,
        };
        Ok(PublicHosts {
            public_url: public_url.map(str::to_owned),
            pinned,
            accepted: accepted.iter().map(|h| accepted_name(h)).collect::<anyhow::Result<_>>()?,
            local: local.to_string(),
        })
    }

    fn accepts(&self, name: &Name) -> bool {
        let names_pinned = |pinned: &Name| {
            let default = pinned.port;
            pinned.host == name.host && name.port.or(default) == default
        };
        if self.pinned.as_ref().is_some_and(names_pinned) {
            return true;
        }
        if self.accepted.iter().any(|a| a.host == name.host && (a.port.is_none() || a.port == name.port)) {
            return true;
        }
        self.pinned.is_none() && self.accepted.is_empty() && Name::parse(&self.local).as_ref() == Some(name)
    }

    /// The public base (`scheme://host[:port]`) for `req`, or why the host
    /// it names is refused. Every host it names (the `Host` header, the
    /// target's authority) must be accepted; naming none is accepted only
    /// where the base does not come from it.
    pub fn base_for<B>(&self, req: &Request<B>) -> Result<String, Misdirected> {
        let header = match req.headers().get(HOST) {
            Some(value) => Some(value.to_str().map_err(|_| Misdirected)?),
            None => None,
        };
        let mut named = None;
        for text in [header, req.uri().authority().map(Authority::as_str)].into_iter().flatten() {
            let name = Name::parse(text).ok_or(Misdirected)?;
            if !self.accepts(&name) {
                return Err(Misdirected);
            }
            named.get_or_insert(text);
        }
        match (&self.public_url, named) {
            (Some(url), _) => Ok(url.clone()),
            (None, Some(host)) => Ok(format!("http://{}", host.to_ascii_lowercase())),
            (None, None) if self.accepted.is_empty() => Ok(format!("http://{}", self.local)),
            (None, None) => Err(Misdirected),
        }
    }
}

/// Checks an `accepted_hosts` entry: `host` or `host:port`, nothing else.
pub fn check_accepted_host(entry: &str) -> anyhow::Result<()> {
    accepted_name(entry).map(drop)
}

fn accepted_name(entry: &str) -> anyhow::Result<Name> {
    match Name::parse(entry) {
        Some(name) if !entry.contains('/') => Ok(name),
        _ => bail!("`{entry}` is not a host or host:port"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(host: Option<&str>, uri: &str) -> Request<()> {
        let mut b = Request::builder().uri(uri);
        if let Some(h) = host {
            b = b.header(HOST, h);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn with_a_public_url_only_its_host_is_answered_and_it_is_the_base() {
        let hosts = PublicHosts::new(Some("https://gw.example"), &[], "0.0.0.0:8443".parse().unwrap()).unwrap();
        for ok in ["gw.example", "GW.example:443", "gw.example."] {
            assert_eq!(hosts.base_for(&req(Some(ok), "/stu3/metadata")), Ok("https://gw.example".into()), "{ok}");
        }
        for bad in ["evil.example", "gw.example:8443", "gw.example@evil.example", "127.0.0.1:8443"] {
            assert_eq!(hosts.base_for(&req(Some(bad), "/stu3/metadata")), Err(Misdirected), "{bad}");
        }
        // An absolute target naming another host is refused too.
        assert_eq!(hosts.base_for(&req(Some("gw.example"), "http://evil.example/stu3/metadata")), Err(Misdirected));
        assert_eq!(hosts.base_for(&req(None, "/stu3/metadata")), Ok("https://gw.example".into()));
    }

    #[test]
    fn accepted_hosts_build_the_base_from_the_host_named() {
        let accepted = ["gw.internal".to_owned(), "10.0.0.5:8080".to_owned()];
        let hosts = PublicHosts::new(None, &accepted, "0.0.0.0:8080".parse().unwrap()).unwrap();
        assert_eq!(hosts.base_for(&req(Some("gw.internal:9000"), "/")), Ok("http://gw.internal:9000".into()));
        assert_eq!(hosts.base_for(&req(Some("10.0.0.5:8080"), "/")), Ok("http://10.0.0.5:8080".into()));
        assert_eq!(hosts.base_for(&req(Some("10.0.0.5:9999"), "/")), Err(Misdirected));
        assert_eq!(hosts.base_for(&req(None, "/")), Err(Misdirected));
    }

    #[test]
    fn with_nothing_configured_only_the_listening_address_is_answered() {
        let hosts = PublicHosts::new(None, &[], "127.0.0.1:8080".parse().unwrap()).unwrap();
        assert_eq!(hosts.base_for(&req(Some("127.0.0.1:8080"), "/")), Ok("http://127.0.0.1:8080".into()));
        assert_eq!(hosts.base_for(&req(Some("evil.example"), "/")), Err(Misdirected));
        assert_eq!(hosts.base_for(&req(None, "/")), Ok("http://127.0.0.1:8080".into()));
    }

    #[test]
    fn entries_are_hosts() {
        assert!(check_accepted_host("gw.example:8443").is_ok());
        for bad in ["http://gw.example", "gw.example/x", "user@gw", ""] {
            assert!(check_accepted_host(bad).is_err(), "{bad}");
        }
    }
}
