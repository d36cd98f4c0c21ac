//! The client's address, as every per-client limit and the consent evidence see it.
//!
//! Without trusted proxies it is the TCP peer. Behind a proxy the peer is the proxy, so when (and
//! only when) the peer is in `http.trusted_proxies`, the address comes from the forwarding header
//! the proxies set (`http.client_address_header`: `x-forwarded-for` or `forwarded`): the
//! rightmost hop that is not itself a trusted proxy. Hops to the left of it were written by the
//! client and are never believed; a hop that cannot be read stops the walk at the last trusted
//! address. The gateway resolves it once per request ([`resolve`]) and handlers take it as an
//! extractor ([`ClientAddr`]).

use std::{
    net::{IpAddr, SocketAddr},
    str::FromStr,
};

use axum::{
    extract::{ConnectInfo, FromRequestParts, Request, State},
    http::{HeaderMap, HeaderName, request::Parts},
    middleware::Next,
    response::Response,
};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

use crate::Error;

/// The address of the client a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub IpAddr);

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Self>().copied().ok_or_else(unknown)
    }
}

impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().copied())
    }
}

impl ClientAddr {
    /// Whether the address is in one of `ranges`.
    pub fn within(self, ranges: &[ProxyRange]) -> bool {
        let addr = canonical(self.0);
        ranges.iter().any(|range| range.0.contains(&addr))
    }
}

fn unknown() -> Error {
    Error::bad_request("no_client_address", "The client address is unknown.")
}

/// Which header the trusted proxies write the client's address into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, ingress-nginx, most load balancers).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for=proxy1`.
    Forwarded,
}

impl ForwardedHeader {
    fn name(self) -> HeaderName {
        match self {
            Self::XForwardedFor => HeaderName::from_static("x-forwarded-for"),
            Self::Forwarded => axum::http::header::FORWARDED,
        }
    }
}

/// One trusted proxy range: a CIDR (`10.0.0.0/8`) or a single address (`10.0.0.7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyRange(pub IpNet);

impl FromStr for ProxyRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        text.parse::<IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
            .map(|net| Self(net.trunc()))
            .map_err(|_| format!("`{text}` is not an address or a CIDR range"))
    }
}

impl<'de> Deserialize<'de> for ProxyRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for ProxyRange {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// The proxies whose forwarding header is believed, and which header they write.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    ranges: Vec<IpNet>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    pub fn new(ranges: &[ProxyRange], header: ForwardedHeader) -> Self {
        Self {
            ranges: ranges.iter().map(|r| r.0).collect(),
            header,
        }
    }

    fn trusts(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        self.ranges.iter().any(|net| net.contains(&addr))
    }

    /// The client of a request that arrived from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut nearest = canonical(peer);
        if !self.trusts(nearest) {
            return nearest;
        }
        // Several header lines are one list, in order (RFC 9110 §5.3).
        let hops: Vec<&str> = headers
            .get_all(self.header.name())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        for hop in hops.iter().rev() {
            let parsed = match self.header {
                ForwardedHeader::XForwardedFor => node(hop),
                ForwardedHeader::Forwarded => forwarded_for(hop).and_then(node),
            };
            let Some(addr) = parsed.map(canonical) else {
                return nearest;
            };
            if !self.trusts(addr) {
                return addr;
            }
            nearest = addr;
        }
        nearest
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:a.b.c.d`, what a dual-stack socket reports) is the
/// IPv4 address: one client, one key.
fn canonical(addr: IpAddr) -> IpAddr {
    addr.to_canonical()
}

/// The `for=` value of one `Forwarded` element (`for=…;proto=…;by=…`).
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// A node as proxies write it: `192.0.2.7`, `192.0.2.7:4711`, `2001:db8::1`,
/// `[2001:db8::1]:4711`. Obfuscated names and `unknown` are not addresses.
fn node(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            text.strip_prefix('[')
                .and_then(|rest| rest.split_once(']'))
                .and_then(|(inside, _)| inside.parse().ok())
        })
}

/// Middleware: resolves the client address once and stores it for every layer and handler
/// after it (the per-address governor, the limits in Redis, consent evidence). Needs the
/// server's `ConnectInfo<SocketAddr>`; without it no address is stored and handlers that need
/// one answer 400 `no_client_address`.
pub async fn resolve(
    State(proxies): State<std::sync::Arc<TrustedProxies>>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if let Some(peer) = peer {
        let client = proxies.client(peer, req.headers());
        req.extensions_mut().insert(ClientAddr(client));
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn proxies(ranges: &[&str], header: ForwardedHeader) -> TrustedProxies {
        let ranges: Vec<ProxyRange> = ranges.iter().map(|r| r.parse().unwrap()).collect();
        TrustedProxies::new(&ranges, header)
    }

    fn headers(name: &str, values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(
                HeaderName::from_str(name).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let p = proxies(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let h = headers("x-forwarded-for", &["203.0.113.9"]);
        assert_eq!(p.client(ip("198.51.100.1"), &h), ip("198.51.100.1"));
        // No trusted proxies at all: the header is never read.
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() {
        let p = proxies(
            &["10.0.0.0/8", "192.168.1.1"],
            ForwardedHeader::XForwardedFor,
        );
        // The client forged the leftmost entry; the proxies appended the real one.
        let h = headers("x-forwarded-for", &["1.2.3.4, 203.0.113.9, 192.168.1.1"]);
        assert_eq!(p.client(ip("10.1.2.3"), &h), ip("203.0.113.9"));
        // Several header lines are one list.
        let h = headers("x-forwarded-for", &["1.2.3.4", "203.0.113.9:5050"]);
        assert_eq!(p.client(ip("10.1.2.3"), &h), ip("203.0.113.9"));
        // Only proxies in the chain: the leftmost of them.
        let h = headers("x-forwarded-for", &["10.9.9.9, 10.0.0.2"]);
        assert_eq!(p.client(ip("10.1.2.3"), &h), ip("10.9.9.9"));
        // No header: the proxy itself.
        assert_eq!(p.client(ip("10.1.2.3"), &HeaderMap::new()), ip("10.1.2.3"));
        // A hop that is not an address stops the walk at the last trusted one.
        let h = headers("x-forwarded-for", &["203.0.113.9, garbage"]);
        assert_eq!(p.client(ip("10.1.2.3"), &h), ip("10.1.2.3"));
    }

    #[test]
    fn the_configured_header_is_the_only_one_believed() {
        let p = proxies(&["127.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let mut h = headers("forwarded", &["for=203.0.113.77"]);
        h.append("x-forwarded-for", HeaderValue::from_static("198.51.100.5"));
        assert_eq!(p.client(ip("127.0.0.1"), &h), ip("198.51.100.5"));

        let p = proxies(&["127.0.0.0/8"], ForwardedHeader::Forwarded);
        let h = headers(
            "forwarded",
            &[r#"for=1.1.1.1, For="[2001:db8:cafe::17]:4711";proto=https, for=127.0.0.5;by=x"#],
        );
        assert_eq!(p.client(ip("127.0.0.1"), &h), ip("2001:db8:cafe::17"));
        let h = headers("forwarded", &["for=_hidden, for=127.0.0.5"]);
        assert_eq!(p.client(ip("127.0.0.1"), &h), ip("127.0.0.5"));
    }

    #[test]
    fn mapped_ipv4_is_one_client() {
        let p = proxies(&["127.0.0.1"], ForwardedHeader::XForwardedFor);
        let h = headers("x-forwarded-for", &["::ffff:203.0.113.9"]);
        assert_eq!(p.client(ip("::ffff:127.0.0.1"), &h), ip("203.0.113.9"));
    }

    #[test]
    fn ranges_parse_as_cidrs_or_single_addresses() {
        assert_eq!(
            "10.1.2.3/8".parse::<ProxyRange>().unwrap().0,
            "10.0.0.0/8".parse::<IpNet>().unwrap()
        );
        assert_eq!(
            "::1".parse::<ProxyRange>().unwrap().0,
            "::1/128".parse::<IpNet>().unwrap()
        );
        assert!("10.0.0.0/33".parse::<ProxyRange>().is_err());
        assert!("proxy.local".parse::<ProxyRange>().is_err());
    }
}
