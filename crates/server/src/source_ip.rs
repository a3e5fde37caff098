//! The address a request came from, for rate limits, brute-force counters and logs.
//!
//! The peer address of the TCP connection is the source, unless the peer is one of the configured
//! trusted proxies (`proxy.trusted_addresses`). Only then are `Forwarded` (RFC 7239) or, without
//! it, `X-Forwarded-For` read, from the right: each hop a trusted proxy appended is skipped, and
//! the first address that is not a trusted proxy is the client. From anyone else those headers are
//! ignored, so a client cannot choose the bucket it is counted in. A trusted proxy's header that
//! cannot be read leaves the proxy's own address as the source: fail closed, everything through a
//! misconfigured proxy shares one budget rather than none.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderMap;
use ipnet::IpNet;

use crate::tls::client_cert::{ConnectionInfo, is_trusted_proxy};

/// The request's source address: a request extension inserted by [`layer`] into every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceIp(pub IpAddr);

impl SourceIp {
    /// The source of a request without connection information (only unit tests call the router
    /// that way): `0.0.0.0`, one shared bucket, so a missing source never means no limit.
    pub const UNKNOWN: Self = Self(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));

    /// The address as counters key it: an IPv4 address whole, an IPv6 address by its /64 (one
    /// customer line or host usually holds a whole /64, so counting single IPv6 addresses would
    /// give each attacker 2^64 budgets). IPv4-mapped IPv6 addresses count as IPv4.
    #[must_use]
    pub fn bucket(&self) -> String {
        match canonical(self.0) {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                let net = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{net}/64")
            }
        }
    }
}

impl std::fmt::Display for SourceIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        canonical(self.0).fmt(f)
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// The source of a request from `peer` carrying `headers`, given the trusted proxies.
#[must_use]
pub fn resolve(headers: &HeaderMap, peer: IpAddr, trusted: &[IpNet]) -> IpAddr {
    if !is_trusted_proxy(peer, trusted) {
        return canonical(peer);
    }
    // When the proxy speaks `Forwarded`, `X-Forwarded-For` is whatever the client sent, passed
    // through: it is read only when no `Forwarded` header came at all, and an unreadable
    // `Forwarded` leaves the proxy as the source rather than falling back to it.
    let hops = if headers.contains_key(http::header::FORWARDED) {
        forwarded_hops(headers)
    } else {
        x_forwarded_for_hops(headers)
    };
    let Some(hops) = hops else {
        return canonical(peer);
    };
    // Right to left: the rightmost hop was appended by the proxy that connected to us.
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) if is_trusted_proxy(*ip, trusted) => continue,
            Some(ip) => return canonical(*ip),
            // An unknown or obfuscated hop: nothing to the left of it can be believed.
            None => break,
        }
    }
    canonical(peer)
}

/// The `for=` hops of every `Forwarded` header, in order; `None` when there is no such header or
/// one cannot be read. An unparseable `for` value (`unknown`, `_hidden`) is a `None` hop.
fn forwarded_hops(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    let mut any = false;
    for value in headers.get_all(http::header::FORWARDED) {
        any = true;
        let value = value.to_str().ok()?;
        for element in value.split(',') {
            let mut hop = None;
            let mut has_for = false;
            for pair in element.split(';') {
                let (name, val) = pair.split_once('=')?;
                if name.trim().eq_ignore_ascii_case("for") {
                    has_for = true;
                    hop = parse_node(val.trim());
                }
            }
            if has_for {
                hops.push(hop);
            }
        }
    }
    (any && !hops.is_empty()).then_some(hops)
}

/// The hops of every `X-Forwarded-For` header, in order.
fn x_forwarded_for_hops(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let value = value.to_str().ok()?;
        hops.extend(value.split(',').map(|v| parse_node(v.trim())));
    }
    (!hops.is_empty()).then_some(hops)
}

/// An RFC 7239 node: `192.0.2.1`, `"192.0.2.1:80"`, `"[2001:db8::1]:443"`, `[2001:db8::1]`, or
/// a bare IPv6 address as X-Forwarded-For writes it.
fn parse_node(value: &str) -> Option<IpAddr> {
    let value = value.trim_matches('"');
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = value.strip_prefix('[') {
        let (addr, _) = rest.split_once(']')?;
        return addr.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let (addr, port) = value.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    addr.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// Middleware: inserts the [`SourceIp`] of every request, from its [`ConnectionInfo`]. A request
/// without connection information (only unit tests call the router that way) counts as coming
/// from `0.0.0.0`, one shared bucket.
pub async fn layer(
    State(trusted): State<Arc<[IpNet]>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectionInfo>()
        .map_or(SourceIp::UNKNOWN.0, |info| info.remote_addr.ip());
    let source = resolve(request.headers(), peer, &trusted);
    request.extensions_mut().insert(SourceIp(source));
    next.run(request).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies() -> Vec<IpNet> {
        vec!["10.0.0.0/8".parse().unwrap()]
    }

    #[test]
    fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")]);
        assert_eq!(
            resolve(&h, ip("203.0.113.9"), &proxies()),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_first_untrusted_hop_from_the_right_is_the_client() {
        // The client claims to be 1.1.1.1; the edge proxy appended the real address.
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 198.51.100.7, 10.0.0.5")]);
        assert_eq!(resolve(&h, ip("10.0.0.2"), &proxies()), ip("198.51.100.7"));
        let h = headers(&[(
            "forwarded",
            "for=1.1.1.1, for=\"[2001:db8::7]:4711\";proto=https, for=10.0.0.5",
        )]);
        assert_eq!(resolve(&h, ip("10.0.0.2"), &proxies()), ip("2001:db8::7"));
    }

    #[test]
    fn forwarded_wins_over_x_forwarded_for_and_ports_are_dropped() {
        let h = headers(&[
            ("forwarded", "for=\"198.51.100.1:8080\""),
            ("x-forwarded-for", "198.51.100.2"),
        ]);
        assert_eq!(resolve(&h, ip("10.0.0.2"), &proxies()), ip("198.51.100.1"));
    }

    #[test]
    fn unreadable_or_hidden_hops_leave_the_proxy_as_the_source() {
        for value in ["for=unknown", "for=_hidden", "garbage", "for=\"[::1\""] {
            let h = headers(&[("forwarded", value)]);
            assert_eq!(
                resolve(&h, ip("10.0.0.2"), &proxies()),
                ip("10.0.0.2"),
                "{value}"
            );
        }
        // A trusted proxy without any header is itself the source.
        assert_eq!(
            resolve(&HeaderMap::new(), ip("10.0.0.2"), &proxies()),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn an_unreadable_forwarded_never_falls_back_to_x_forwarded_for() {
        // A proxy that appends to Forwarded passes the client's own X-Forwarded-For through.
        for value in ["garbage", "for=1.2.3.4;by", "for=unknown"] {
            let h = headers(&[("forwarded", value), ("x-forwarded-for", "198.51.100.9")]);
            assert_eq!(
                resolve(&h, ip("10.0.0.2"), &proxies()),
                ip("10.0.0.2"),
                "{value}"
            );
        }
        let mut h = headers(&[("x-forwarded-for", "198.51.100.9")]);
        h.insert(
            http::header::FORWARDED,
            http::HeaderValue::from_bytes(b"for=\xff").unwrap(),
        );
        assert_eq!(resolve(&h, ip("10.0.0.2"), &proxies()), ip("10.0.0.2"));
    }

    #[test]
    fn ipv6_sources_are_counted_by_their_64_and_mapped_v4_as_v4() {
        assert_eq!(
            SourceIp(ip("2001:db8:1:2:3:4:5:6")).bucket(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(SourceIp(ip("::ffff:192.0.2.1")).bucket(), "192.0.2.1");
        assert_eq!(SourceIp(ip("127.3.4.5")).bucket(), "127.3.4.5");
    }
}
