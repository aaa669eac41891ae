//! Which addresses a policy's call may connect to: public ones, and the networks the operator
//! allows. Applied to every address a name resolves to, and to each redirect's target, so a
//! name that resolves to the edge's own network (DNS rebinding) reaches nothing.

use ipnet::{IpNet, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, LazyLock};

/// Networks that are not the public internet: the edge's own machine, private and
/// carrier-grade NAT ranges, link-local (cloud metadata services live there), multicast,
/// documentation, benchmarking and reserved ranges.
static NOT_PUBLIC: LazyLock<Vec<IpNet>> = LazyLock::new(|| {
    [
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "64:ff9b:1::/48",
        "100::/64",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    ]
    .iter()
    .filter_map(|n| n.parse().ok())
    .collect()
});

/// The operator's exceptions, checked before the built-in ranges.
#[derive(Debug, Clone, Default)]
pub struct AddressRules {
    allow: Arc<[IpNet]>,
}

/// Why a call may not connect: the address, and what the operator can do about it.
#[derive(Debug, thiserror::Error)]
#[error(
    "{host} is {ip}, which is not a public address: policies may not reach it unless \
     edge.yaml's outbound.allow lists its network"
)]
pub struct Refused {
    /// The name or address the call was for.
    pub host: String,
    /// The (first) address refused.
    pub ip: IpAddr,
}

impl AddressRules {
    /// Rules that also allow `allow`.
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self {
            allow: allow.into(),
        }
    }

    /// Whether a call may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = unmapped(ip);
        self.allow.iter().any(|n| n.contains(&ip)) || !NOT_PUBLIC.iter().any(|n| n.contains(&ip))
    }

    /// Checks an address literal in a URL's host.
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), Refused> {
        if self.permits(ip) {
            Ok(())
        } else {
            Err(Refused {
                host: host.to_string(),
                ip,
            })
        }
    }
}

/// An IPv4 address written as IPv6 (`::ffff:10.0.0.1`, NAT64's `64:ff9b::10.0.0.1`) is
/// judged as the IPv4 address it reaches.
fn unmapped(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let nat64 = Ipv6Net::new(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96);
    if nat64.is_ok_and(|n| n.contains(&v6)) {
        let [.., a, b, c, d] = v6.octets();
        return IpAddr::V4(Ipv4Addr::new(a, b, c, d));
    }
    ip
}

/// The resolver the outbound client uses: the system's, with refused addresses removed; a name
/// left with none fails with [`Refused`].
pub struct GuardedResolver(pub AddressRules);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let rules = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| rules.permits(a.ip()))
                .collect();
            match (allowed.is_empty(), all.first()) {
                (true, Some(first)) => Err(Box::new(Refused {
                    host,
                    ip: first.ip(),
                }) as _),
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn only_public_addresses_pass_by_default() {
        let rules = AddressRules::default();
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(!rules.permits(ip(refused)), "{refused} passed");
        }
        for public in [
            "93.184.216.34",
            "2606:2800:220:1::1",
            "::ffff:93.184.216.34",
        ] {
            assert!(rules.permits(ip(public)), "{public} refused");
        }
    }

    #[test]
    fn the_operator_allows_named_networks_only() {
        let rules = AddressRules::new(vec!["127.0.0.0/8".parse().expect("net")]);
        assert!(rules.permits(ip("127.0.0.1")));
        assert!(rules.permits(ip("::ffff:127.0.0.1")));
        assert!(!rules.permits(ip("10.0.0.1")));
        let e = rules
            .check("10.0.0.1", ip("10.0.0.1"))
            .expect_err("refused");
        assert!(e.to_string().contains("outbound.allow"), "{e}");
    }

    #[tokio::test]
    async fn names_resolving_only_to_refused_addresses_fail() {
        let resolver = GuardedResolver(AddressRules::default());
        let name: Name = "localhost".parse().expect("name");
        let e = match resolver.resolve(name).await {
            Ok(_) => panic!("localhost resolved"),
            Err(e) => e,
        };
        assert!(e.downcast_ref::<Refused>().is_some(), "{e}");
        let allowed = GuardedResolver(AddressRules::new(vec![
            "127.0.0.0/8".parse().expect("net"),
            "::1/128".parse().expect("net"),
        ]));
        let name: Name = "localhost".parse().expect("name");
        let addrs: Vec<SocketAddr> = match allowed.resolve(name).await {
            Ok(a) => a.collect(),
            Err(e) => panic!("{e}"),
        };
        assert!(!addrs.is_empty());
    }
}
