//! Where a pull may connect. The operator names one registry and it is
//! reached wherever it is (a test or mirror registry on loopback is
//! normal). Everything else a pull talks to is chosen by the remote side: a
//! redirect's `Location` (blobs go to a CDN or object store) and the token
//! `realm` of a `WWW-Authenticate` challenge. Left unchecked, a hostile or
//! compromised registry makes the daemon, running as host root, send GETs
//! to the host's own services or to a cloud metadata endpoint
//! (169.254.169.254 hands out credentials), which is server-side request
//! forgery.
//!
//! So a remote-chosen host is resolved here, as ureq's resolver, and every
//! address it resolves to is checked: loopback, link-local, unspecified,
//! multicast, broadcast and reserved addresses (also written as
//! IPv4-mapped, IPv4-compatible or NAT64 IPv6 addresses) are refused;
//! private ranges (RFC 1918, CGNAT 100.64/10, IPv6 unique-local) only when
//! the registry itself is on a non-public address (a registry in a private
//! network redirecting to its object store there). ureq then connects to
//! exactly the addresses returned, so a name that answers one address to
//! a check and another to the connect (DNS rebinding) gains nothing: there
//! is one lookup. Hosts the operator lists in `trusted_hosts` skip the
//! address check. Whether credentials may go somewhere is decided apart,
//! by origin, in `client`.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What an address is, for this policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrClass {
    /// Reached by anyone the registry names.
    Public,
    /// RFC 1918, CGNAT, IPv6 unique-local: only behind a registry that is
    /// itself on a non-public address.
    Private,
    /// Never chosen by the remote: the host itself, its link, or no single
    /// host at all. The text says which.
    Local(&'static str),
}

/// Classifies `ip`; IPv6 forms that carry an IPv4 address (mapped,
/// compatible, NAT64 well-known prefix) are judged by that address, since
/// the kernel or a NAT64 gateway delivers them there.
pub fn classify(ip: IpAddr) -> AddrClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddrClass {
    let [a, b, _, _] = ip.octets();
    match (a, b) {
        // 0.0.0.0/8: "this network"; Linux connects 0.0.0.0 to the host.
        (0, _) => AddrClass::Local("an unspecified (0.0.0.0/8) address"),
        (127, _) => AddrClass::Local("a loopback address"),
        (169, 254) => AddrClass::Local("a link-local address (cloud metadata lives there)"),
        (224..=239, _) => AddrClass::Local("a multicast address"),
        // 240/4 reserved, 255.255.255.255 broadcast.
        (240..=255, _) => AddrClass::Local("a reserved or broadcast address"),
        (10, _) | (192, 168) => AddrClass::Private,
        (172, 16..=31) => AddrClass::Private,
        // RFC 6598 shared address space (carrier-grade NAT).
        (100, 64..=127) => AddrClass::Private,
        _ => AddrClass::Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddrClass {
    let s = ip.segments();
    if ip.is_unspecified() {
        return AddrClass::Local("the unspecified address ::");
    }
    if ip.is_loopback() {
        return AddrClass::Local("a loopback address");
    }
    // ::ffff:a.b.c.d (mapped) and the deprecated ::a.b.c.d (compatible).
    if let Some(v4) = ip.to_ipv4() {
        return classify_v4(v4);
    }
    // 64:ff9b::/96, NAT64's well-known prefix (RFC 6052).
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return classify_v4(Ipv4Addr::new(a, b, c, d));
    }
    match s[0] {
        0xfe80..=0xfebf => AddrClass::Local("a link-local address"),
        0xff00..=0xffff => AddrClass::Local("a multicast address"),
        // fc00::/7 unique-local; fec0::/10 the deprecated site-local.
        0xfc00..=0xfdff | 0xfec0..=0xfeff => AddrClass::Private,
        _ => AddrClass::Public,
    }
}

/// A remote-chosen host that resolved to an address a pull does not go
/// to. Carried inside the `io::Error` ureq's resolver returns, and found
/// again by `client` to make a `PullError::DestinationRefused`.
#[derive(Debug)]
pub struct AddressRefused {
    pub host: String,
    pub addr: IpAddr,
    pub reason: String,
}

impl fmt::Display for AddressRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bare = self.host.trim_start_matches('[').trim_end_matches(']');
        if bare.parse::<IpAddr>().is_ok() {
            write!(f, "{} is {}", self.host, self.reason)?;
        } else {
            write!(
                f,
                "{} resolves to {}, {}",
                self.host, self.addr, self.reason
            )?;
        }
        f.write_str(
            "; only the registry named in the reference, or a host in trusted_hosts, may be there",
        )
    }
}

impl std::error::Error for AddressRefused {}

/// ureq's resolver for one pull.
#[derive(Clone)]
pub struct Destinations {
    inner: Arc<Inner>,
}

struct Inner {
    /// `host:port` of the registry as the operator named it (both default
    /// ports when no port was written: https, and http for the insecure
    /// fallback). Lower-case, as `url` writes hosts.
    registry: Vec<String>,
    /// The operator's `trusted_hosts`, `host` or `host:port`, lower-case.
    trusted: Vec<String>,
    /// Set once the registry resolved to a non-public address.
    registry_private: AtomicBool,
}

impl fmt::Debug for Destinations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Destinations")
            .field("registry", &self.inner.registry)
            .field("trusted", &self.inner.trusted)
            .finish()
    }
}

impl Destinations {
    /// `registry` is `host[:port]` as in the reference.
    pub fn new(registry: &str, trusted: &[String]) -> Destinations {
        let registry = registry.to_ascii_lowercase();
        let registry = if has_port(&registry) {
            vec![registry]
        } else {
            vec![format!("{registry}:443"), format!("{registry}:80")]
        };
        Destinations {
            inner: Arc::new(Inner {
                registry,
                trusted: trusted
                    .iter()
                    .map(|t| t.trim().to_ascii_lowercase())
                    .collect(),
                registry_private: AtomicBool::new(false),
            }),
        }
    }

    fn is_registry(&self, netloc: &str) -> bool {
        self.inner.registry.iter().any(|r| r == netloc)
    }

    fn is_trusted(&self, netloc: &str) -> bool {
        let host = host_of_netloc(netloc);
        self.inner
            .trusted
            .iter()
            .any(|t| t == netloc || (!has_port(t) && t == host))
    }

    /// Resolves `netloc` (`host:port`, the host as `url` writes it, IPv6 in
    /// brackets) and applies the policy; the addresses returned are the
    /// only ones ureq connects to.
    pub fn resolve_checked(&self, netloc: &str) -> io::Result<Vec<SocketAddr>> {
        let netloc = netloc.to_ascii_lowercase();
        let addrs: Vec<SocketAddr> = netloc.to_socket_addrs()?.collect();
        if self.is_registry(&netloc) {
            if addrs.iter().any(|a| classify(a.ip()) != AddrClass::Public) {
                self.inner.registry_private.store(true, Ordering::SeqCst);
            }
            return Ok(addrs);
        }
        if self.is_trusted(&netloc) {
            return Ok(addrs);
        }
        let private_ok = self.inner.registry_private.load(Ordering::SeqCst);
        // One refused address refuses the name: a public name has no
        // business resolving to the host's loopback as well.
        for a in &addrs {
            let reason = match classify(a.ip()) {
                AddrClass::Public => continue,
                AddrClass::Private if private_ok => continue,
                AddrClass::Private => {
                    "a private address, and the registry itself is on a public one".to_string()
                }
                AddrClass::Local(why) => why.to_string(),
            };
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                AddressRefused {
                    host: host_of_netloc(&netloc).to_string(),
                    addr: a.ip(),
                    reason,
                },
            ));
        }
        Ok(addrs)
    }
}

impl ureq::Resolver for Destinations {
    fn resolve(&self, netloc: &str) -> io::Result<Vec<SocketAddr>> {
        self.resolve_checked(netloc)
    }
}

/// `host:port` → `host` (`[::1]:80` → `[::1]`).
fn host_of_netloc(netloc: &str) -> &str {
    match netloc.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => netloc,
    }
}

fn has_port(netloc: &str) -> bool {
    host_of_netloc(netloc) != netloc
}

/// The refusal inside a resolver error, if that is what it was.
pub fn refusal<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a AddressRefused> {
    let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<AddressRefused>() {
            return Some(r);
        }
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if let Some(r) = io
                .get_ref()
                .and_then(|i| i.downcast_ref::<AddressRefused>())
            {
                return Some(r);
            }
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> AddrClass {
        classify(s.parse().unwrap())
    }

    #[test]
    fn local_addresses_in_every_spelling() {
        for s in [
            "127.0.0.1",
            "127.255.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "169.254.169.254",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "febf::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::ffff:0.0.0.0",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(
                matches!(class(s), AddrClass::Local(_)),
                "{s}: {:?}",
                class(s)
            );
        }
    }

    #[test]
    fn private_and_public_addresses() {
        for s in [
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "fc00::1",
            "fd12:3456::1",
            "fec0::1",
            "::ffff:10.1.2.3",
            "64:ff9b::a01:203",
        ] {
            assert_eq!(class(s), AddrClass::Private, "{s}");
        }
        for s in [
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "169.253.0.1",
            "2001:db8::1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(class(s), AddrClass::Public, "{s}");
        }
    }

    #[test]
    fn the_registry_is_reached_anywhere_others_are_checked() {
        let d = Destinations::new("127.0.0.1:5000", &[]);
        // The operator's registry, on loopback.
        assert_eq!(d.resolve_checked("127.0.0.1:5000").unwrap().len(), 1);
        // Another port of the same host is another server: checked.
        let e = d.resolve_checked("127.0.0.1:5001").unwrap_err();
        let r = refusal(&e).expect("a refusal");
        assert_eq!(r.addr, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert!(r.to_string().contains("loopback"), "{r}");
        // A name is resolved and its addresses judged.
        let e = d.resolve_checked("localhost:80").unwrap_err();
        assert!(refusal(&e).is_some(), "{e}");
        assert!(d.resolve_checked("[::ffff:169.254.169.254]:80").is_err());
        // After a loopback registry, private addresses are allowed.
        assert_eq!(d.resolve_checked("10.1.2.3:443").unwrap().len(), 1);
        let public = Destinations::new("1.1.1.1", &[]);
        assert!(public.resolve_checked("1.1.1.1:443").is_ok());
        let e = public.resolve_checked("10.1.2.3:443").unwrap_err();
        assert!(refusal(&e).unwrap().reason.contains("private"), "{e}");
        assert!(public.resolve_checked("8.8.8.8:443").is_ok());
    }

    #[test]
    fn trusted_hosts_skip_the_check() {
        let d = Destinations::new("reg.example", &["127.0.0.2".into(), "localhost:9".into()]);
        assert!(d.resolve_checked("127.0.0.2:1234").is_ok());
        assert!(d.resolve_checked("localhost:9").is_ok());
        assert!(d.resolve_checked("localhost:10").is_err());
        assert!(d.resolve_checked("127.0.0.3:1234").is_err());
    }
}
