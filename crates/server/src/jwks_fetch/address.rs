//! Which IP addresses the `jwks_uri` fetcher may connect to, and the DNS resolver that enforces
//! it. A client chooses its `jwks_uri`, so without this guard any registered client could make
//! the authorization server request its own loopback services, the cloud metadata endpoint
//! (`169.254.169.254`) or the bank's internal network (server-side request forgery). The check runs
//! inside the resolver that reqwest connects with, so the address that was vetted is the address
//! that is dialled: a second DNS answer (DNS rebinding) cannot slip in between check and connect.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::JwksFetchError;

/// What kind of address an IP address is, as far as outbound requests are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// Globally routable unicast: the only class the fetcher contacts in production.
    Public,
    /// `0.0.0.0/8` or `::`: "this host" (Linux connects these to the local machine).
    Unspecified,
    /// `127.0.0.0/8` or `::1`.
    Loopback,
    /// RFC 1918 (`10/8`, `172.16/12`, `192.168/16`), unique local `fc00::/7`, deprecated
    /// site-local `fec0::/10` and local-use NAT64 `64:ff9b:1::/48`.
    Private,
    /// Shared address space for carrier-grade NAT, `100.64.0.0/10` (RFC 6598).
    SharedCgnat,
    /// `169.254.0.0/16` (cloud metadata endpoints live here) or `fe80::/10`.
    LinkLocal,
    /// Documentation ranges: `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`,
    /// `3fff::/20`.
    Documentation,
    /// Benchmarking: `198.18.0.0/15`, `2001:2::/48`.
    Benchmarking,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// Anything else that is not global unicast: IETF protocol assignments, `240/4`, the
    /// deprecated IPv4-compatible IPv6 addresses, discard-only `100::/64`, Teredo, and every
    /// IPv6 address outside `2000::/3`.
    Reserved,
}

impl AddressClass {
    /// Whether the fetcher may connect to an address of this class without
    /// `client_jwks.allow_private_addresses`.
    #[must_use]
    pub fn is_public(self) -> bool {
        self == Self::Public
    }

    /// A short human-readable name, used in error descriptions.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Unspecified => "unspecified",
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::SharedCgnat => "shared (carrier-grade NAT)",
            Self::LinkLocal => "link-local",
            Self::Documentation => "documentation",
            Self::Benchmarking => "benchmarking",
            Self::Multicast => "multicast",
            Self::Broadcast => "broadcast",
            Self::Reserved => "reserved",
        }
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classifies an address, following the IANA special-purpose address registries (RFC 6890).
/// IPv6 addresses that embed an IPv4 address (IPv4-mapped, NAT64 `64:ff9b::/96`, 6to4) take the
/// class of the embedded address, so `::ffff:127.0.0.1` is loopback.
#[must_use]
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    use AddressClass::{
        Benchmarking, Broadcast, Documentation, LinkLocal, Loopback, Multicast, Private, Public,
        Reserved, SharedCgnat, Unspecified,
    };
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        (0, _, _) => Unspecified,
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => Private,
        (100, 64..=127, _) => SharedCgnat,
        (127, _, _) => Loopback,
        (169, 254, _) => LinkLocal,
        // RFC 6890 IETF protocol assignments; RFC 7526 deprecated 6to4 relay anycast.
        (192, 0, 0) | (192, 88, 99) => Reserved,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Documentation,
        (198, 18..=19, _) => Benchmarking,
        (224..=239, _, _) => Multicast,
        _ if ip.is_broadcast() => Broadcast,
        (240..=255, _, _) => Reserved,
        _ => Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    use AddressClass::{
        Benchmarking, Documentation, LinkLocal, Loopback, Multicast, Private, Public, Reserved,
        Unspecified,
    };
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if ip.is_unspecified() {
        return Unspecified;
    }
    if ip.is_loopback() {
        return Loopback;
    }
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match ip.segments() {
        // RFC 4291 §2.5.5.1: IPv4-compatible addresses are deprecated.
        [0, 0, 0, 0, 0, 0, _, _] => Reserved,
        // RFC 6052 well-known NAT64 prefix: the gateway would connect to the embedded address.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => classify_v4(embedded(hi, lo)),
        // RFC 8215 local-use NAT64.
        [0x64, 0xff9b, 1, ..] => Private,
        // RFC 6666 discard-only.
        [0x100, 0, 0, 0, ..] => Reserved,
        [0x2001, 0xdb8, ..] => Documentation,
        [0x2001, 0x2, 0, ..] => Benchmarking,
        // RFC 2928 IETF protocol assignments, 2001::/23 (Teredo, ORCHID, AMT…).
        [0x2001, second, ..] if second < 0x200 => Reserved,
        // RFC 3056 6to4: the relay would connect to the embedded address.
        [0x2002, hi, lo, ..] => classify_v4(embedded(hi, lo)),
        // RFC 9637 documentation, 3fff::/20.
        [0x3fff, second, ..] if second < 0x1000 => Documentation,
        [first, ..] if first & 0xfe00 == 0xfc00 => Private,
        [first, ..] if first & 0xffc0 == 0xfe80 => LinkLocal,
        // RFC 3879: deprecated site-local, still routed inside some networks.
        [first, ..] if first & 0xffc0 == 0xfec0 => Private,
        [first, ..] if first & 0xff00 == 0xff00 => Multicast,
        // Global unicast is 2000::/3 (RFC 4291 §2.4); the rest is unassigned or special.
        [first, ..] if first & 0xe000 == 0x2000 => Public,
        _ => Reserved,
    }
}

/// Refuses an address the fetcher must not contact.
///
/// # Errors
/// [`JwksFetchError::ForbiddenAddress`] unless the address is public or `allow_private` is set.
pub(super) fn check(ip: IpAddr, allow_private: bool) -> Result<(), JwksFetchError> {
    let class = classify(ip);
    if allow_private || class.is_public() {
        Ok(())
    } else {
        Err(JwksFetchError::ForbiddenAddress { address: ip, class })
    }
}

/// The resolver reqwest connects with: the system resolver (`getaddrinfo` on tokio's blocking
/// pool), then [`check`] on every answer. One forbidden address refuses the whole name, rather
/// than quietly using the others, so a half-internal name fails loudly and always.
///
/// reqwest does not consult a resolver for IP-literal hosts; the fetcher checks those itself
/// before sending.
#[derive(Debug, Clone, Copy)]
pub(super) struct GuardedResolver {
    /// `client_jwks.allow_private_addresses`: development and tests only.
    pub(super) allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(
                    JwksFetchError::Network("the host name has no addresses".into()).into(),
                );
            }
            for addr in &addrs {
                check(addr.ip(), allow_private)?;
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_special_purpose_addresses() {
        use AddressClass::*;
        let table: &[(&str, AddressClass)] = &[
            ("93.184.215.14", Public),
            ("8.8.8.8", Public),
            ("172.32.0.1", Public),
            ("100.128.0.1", Public),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("10.0.0.1", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("100.64.0.1", SharedCgnat),
            ("100.127.255.255", SharedCgnat),
            ("169.254.169.254", LinkLocal),
            ("192.0.0.8", Reserved),
            ("192.0.2.1", Documentation),
            ("198.51.100.7", Documentation),
            ("203.0.113.9", Documentation),
            ("192.88.99.1", Reserved),
            ("198.18.0.1", Benchmarking),
            ("198.19.255.255", Benchmarking),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("240.0.0.1", Reserved),
            ("255.255.255.255", Broadcast),
            ("2606:4700:4700::1111", Public),
            ("2a00:1450:4001:80b::200e", Public),
            ("::", Unspecified),
            ("::1", Loopback),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.1.2.3", Private),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:8.8.8.8", Public),
            ("::127.0.0.1", Reserved),
            ("64:ff9b::7f00:1", Loopback),
            ("64:ff9b::808:808", Public),
            ("64:ff9b:1::1", Private),
            ("100::1", Reserved),
            ("2001:db8::1", Documentation),
            ("3fff::1", Documentation),
            ("2001:2::1", Benchmarking),
            ("2001::1", Reserved),
            ("2002:7f00:1::", Loopback),
            ("2002:0808:0808::1", Public),
            ("fc00::1", Private),
            ("fd12:3456::1", Private),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("fec0::1", Private),
            ("ff02::1", Multicast),
            ("4000::1", Reserved),
            ("1234::1", Reserved),
        ];
        for (text, expected) in table {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(classify(ip), *expected, "{text}");
            assert_eq!(
                check(ip, false).is_ok(),
                *expected == Public,
                "{text} without allow_private_addresses"
            );
            assert!(
                check(ip, true).is_ok(),
                "{text} with allow_private_addresses"
            );
        }
    }

    #[tokio::test]
    async fn the_resolver_refuses_a_name_with_any_forbidden_address() {
        let resolver = GuardedResolver {
            allow_private: false,
        };
        let err = resolver
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .unwrap();
        let refused = err.downcast_ref::<JwksFetchError>().unwrap();
        assert!(matches!(
            refused,
            JwksFetchError::ForbiddenAddress {
                class: AddressClass::Loopback,
                ..
            }
        ));
        let allowed = GuardedResolver {
            allow_private: true,
        }
        .resolve("localhost".parse().unwrap())
        .await
        .unwrap();
        assert!(allowed.into_iter().all(|a| a.ip().is_loopback()));
    }
}
