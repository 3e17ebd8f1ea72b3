//! The TCP listeners' check of `Host` and `Origin`, against requests a
//! browser is made to send for another site.
//!
//! - DNS rebinding: a page of `evil.example` whose name is made to resolve
//!   to 127.0.0.1 reaches the listener as its own origin; its requests say
//!   `Host: evil.example:7070`. A listener answers only the names it owns:
//!   the address the client connected to, `localhost` and the loopback
//!   addresses when that address is loopback, and `allowed_hosts`.
//! - Cross-origin pages: a browser names the page that made a request in
//!   `Origin` (always on a WebSocket handshake and on a fetch that is not a
//!   plain GET). One is let in only from the listener's own origin (the
//!   same host and port as `Host`) or from `allowed_origins`. Clients that
//!   are not browsers send no `Origin` and are not concerned.
//!
//! The port of `Host` is not compared: a browser always names the port it
//! connected to, so only the name tells a rebinding apart, and a reverse
//! proxy may drop the port. The port of `Origin` is: another local web
//! server (`http://localhost:8888`) is another origin. Jupyter's server
//! checks the same two headers (`allow_remote_access`, `allow_origin`).

use std::net::IpAddr;

use axum::http::{header, HeaderMap, Uri};

/// A refused request: what was wrong, for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Host(String),
    Origin(String),
}

impl Refusal {
    /// The stable code of the refusal (docs/api.md).
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Host(_) => "host_not_allowed",
            Refusal::Origin(_) => "origin_not_allowed",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Refusal::Host(m) | Refusal::Origin(m) => m,
        }
    }
}

/// The names and origins a TCP listener accepts beyond its own.
#[derive(Debug, Default, Clone)]
pub struct HostRules {
    /// Lower case, without port.
    hosts: Vec<String>,
    /// Lower case `scheme://host[:port]`.
    origins: Vec<String>,
}

/// A host and optional port, as in `Host` or an origin's authority. The
/// host is lower case, without the brackets of an IPv6 literal.
#[derive(Debug, PartialEq, Eq)]
struct Authority {
    host: String,
    port: Option<u16>,
}

fn parse_authority(s: &str) -> Option<Authority> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        v6.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (v6, port)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
    };
    let name_ok = !host.is_empty()
        && host.len() <= 253
        && (s.starts_with('[')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'));
    name_ok.then(|| Authority {
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// `scheme://host[:port]` → the scheme's default port and the authority.
fn parse_origin(s: &str) -> Option<(u16, Authority)> {
    let (scheme, rest) = s.split_once("://")?;
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    Some((default, parse_authority(rest)?))
}

/// Config check of an `allowed_hosts` entry: a name or address, no port.
pub fn check_allowed_host(entry: &str) -> Result<(), String> {
    match parse_authority(entry) {
        Some(Authority { port: None, .. }) => Ok(()),
        _ => Err(format!(
            "allowed_hosts: {entry:?} is not a host name or address (no scheme, port or path)"
        )),
    }
}

/// Config check of an `allowed_origins` entry: `http(s)://host[:port]`.
pub fn check_allowed_origin(entry: &str) -> Result<(), String> {
    match parse_origin(entry) {
        Some(_) => Ok(()),
        None => Err(format!(
            "allowed_origins: {entry:?} is not an origin (http://host[:port] or https://..., \
             no path, no wildcard)"
        )),
    }
}

/// At most this much of a refused header is quoted back.
fn quoted(v: &str) -> String {
    let cut: String = v.chars().take(100).collect();
    format!("{cut:?}")
}

impl HostRules {
    pub fn new(hosts: &[String], origins: &[String]) -> HostRules {
        HostRules {
            hosts: hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            origins: origins.iter().map(|o| o.to_ascii_lowercase()).collect(),
        }
    }

    /// Whether `host` names this listener, reached at `local`.
    fn host_allowed(&self, host: &str, local: Option<IpAddr>) -> bool {
        let local = local.map(|l| l.to_canonical());
        let on_loopback = local.is_some_and(|l| l.is_loopback());
        if let Ok(ip) = host.parse::<IpAddr>() {
            let ip = ip.to_canonical();
            if Some(ip) == local || (on_loopback && ip.is_loopback()) {
                return true;
            }
        }
        (on_loopback && host == "localhost") || self.hosts.iter().any(|h| h == host)
    }

    /// Checks a request that came in at the local address `local` (`None`
    /// when unknown: then only `allowed_hosts` pass).
    pub fn check(
        &self,
        local: Option<IpAddr>,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Result<(), Refusal> {
        let mut hosts = headers.get_all(header::HOST).iter();
        let (Some(value), None) = (hosts.next(), hosts.next()) else {
            return Err(Refusal::Host(
                "a request needs exactly one Host header".into(),
            ));
        };
        let host_text = value
            .to_str()
            .map_err(|_| Refusal::Host("the Host header is not ASCII".into()))?;
        let refused = || {
            Refusal::Host(format!(
                "Host {} does not name this listener (add it to allowed_hosts)",
                quoted(host_text)
            ))
        };
        let host = parse_authority(host_text).ok_or_else(refused)?;
        if !self.host_allowed(&host.host, local) {
            return Err(refused());
        }
        // A request line in absolute form names a host too.
        if let Some(a) = uri.authority() {
            let named = parse_authority(a.as_str()).ok_or_else(refused)?;
            if !self.host_allowed(&named.host, local) {
                return Err(refused());
            }
        }
        self.check_origin(headers, &host)
    }

    fn check_origin(&self, headers: &HeaderMap, host: &Authority) -> Result<(), Refusal> {
        let mut origins = headers.get_all(header::ORIGIN).iter();
        let Some(value) = origins.next() else {
            return Ok(());
        };
        let text = value.to_str().unwrap_or("");
        let refused = || {
            Refusal::Origin(format!(
                "requests from pages of {} are not allowed here (add it to allowed_origins)",
                quoted(text)
            ))
        };
        if origins.next().is_some() {
            return Err(refused());
        }
        if self.origins.iter().any(|o| o.eq_ignore_ascii_case(text)) {
            return Ok(());
        }
        // `null` (a sandboxed frame, a file) and anything else that is no
        // http(s) origin fail to parse.
        let (default_port, origin) = parse_origin(text).ok_or_else(refused)?;
        let origin_port = origin.port.unwrap_or(default_port);
        let same = origin.host == host.host
            && match host.port {
                Some(p) => origin_port == p,
                None => origin_port == default_port,
            };
        if same {
            Ok(())
        } else {
            Err(refused())
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const LOOPBACK: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    fn check(
        rules: &HostRules,
        local: Option<IpAddr>,
        pairs: &[(&str, &str)],
    ) -> Result<(), Refusal> {
        rules.check(local, &headers(pairs), &Uri::from_static("/v1/sessions"))
    }

    #[test]
    fn a_loopback_listener_answers_its_own_names_only() {
        let r = HostRules::default();
        for host in [
            "127.0.0.1:7070",
            "localhost:7070",
            "LocalHost:7070",
            "[::1]:7070",
            "localhost",
        ] {
            assert_eq!(check(&r, LOOPBACK, &[("host", host)]), Ok(()), "{host}");
        }
        for host in [
            "evil.example:7070",
            "evil.example",
            "localhost.evil.example:7070",
            "localhost.:7070",
            "10.1.2.3:7070",
            "",
            "localhost:x",
            "[::1",
            "user@localhost:7070",
        ] {
            let e = check(&r, LOOPBACK, &[("host", host)]).unwrap_err();
            assert_eq!(e.code(), "host_not_allowed", "{host}");
        }
        // No Host, two Hosts.
        assert!(check(&r, LOOPBACK, &[]).is_err());
        assert!(check(
            &r,
            LOOPBACK,
            &[("host", "localhost"), ("host", "evil.example")]
        )
        .is_err());
        // An absolute request line is held to the same names.
        let uri = Uri::from_static("http://evil.example:7070/v1/sessions");
        assert!(r
            .check(LOOPBACK, &headers(&[("host", "localhost:7070")]), &uri)
            .is_err());
    }

    #[test]
    fn other_listeners_answer_their_address_and_configured_names() {
        let r = HostRules::new(&["Lab.Example".into()], &[]);
        let lan: Option<IpAddr> = Some("10.1.2.3".parse().unwrap());
        assert_eq!(check(&r, lan, &[("host", "10.1.2.3:7070")]), Ok(()));
        assert_eq!(check(&r, lan, &[("host", "lab.example")]), Ok(()));
        assert!(check(&r, lan, &[("host", "localhost:7070")]).is_err());
        assert!(check(&r, lan, &[("host", "127.0.0.1:7070")]).is_err());
        // A dual-stack listener sees IPv4 clients as mapped addresses.
        let mapped: Option<IpAddr> = Some("::ffff:127.0.0.1".parse().unwrap());
        assert_eq!(check(&r, mapped, &[("host", "localhost:7070")]), Ok(()));
        // Unknown local address: configured names only.
        assert!(check(&r, None, &[("host", "localhost:7070")]).is_err());
        assert_eq!(check(&r, None, &[("host", "lab.example:443")]), Ok(()));
    }

    #[test]
    fn browsers_are_let_in_from_the_listeners_own_origin_only() {
        let r = HostRules::new(&[], &["https://IDE.example".into()]);
        let own = [
            ("host", "127.0.0.1:7070"),
            ("origin", "http://127.0.0.1:7070"),
        ];
        assert_eq!(check(&r, LOOPBACK, &own), Ok(()));
        assert_eq!(
            check(
                &r,
                LOOPBACK,
                &[
                    ("host", "localhost:7070"),
                    ("origin", "http://localhost:7070")
                ]
            ),
            Ok(())
        );
        assert_eq!(
            check(
                &r,
                LOOPBACK,
                &[
                    ("host", "localhost:7070"),
                    ("origin", "https://ide.example")
                ]
            ),
            Ok(())
        );
        for origin in [
            "http://evil.example",
            "http://evil.example:7070",
            "http://localhost:8888",
            "http://127.0.0.1:7070.evil.example",
            "null",
            "file://",
            "ws://127.0.0.1:7070",
            "https://ide.example:8443",
            "",
        ] {
            let e = check(
                &r,
                LOOPBACK,
                &[("host", "127.0.0.1:7070"), ("origin", origin)],
            )
            .unwrap_err();
            assert_eq!(e.code(), "origin_not_allowed", "{origin}");
        }
        // Two origins: refused.
        assert!(check(
            &r,
            LOOPBACK,
            &[
                ("host", "127.0.0.1:7070"),
                ("origin", "http://127.0.0.1:7070"),
                ("origin", "http://evil.example")
            ]
        )
        .is_err());
        // Without a port in Host (a proxy): the scheme's default port.
        assert_eq!(
            check(
                &r,
                LOOPBACK,
                &[("host", "localhost"), ("origin", "http://localhost")]
            ),
            Ok(())
        );
        assert!(check(
            &r,
            LOOPBACK,
            &[("host", "localhost"), ("origin", "http://localhost:8888")]
        )
        .is_err());
    }

    #[test]
    fn config_entries_are_checked() {
        assert!(check_allowed_host("lab.example").is_ok());
        assert!(check_allowed_host("10.0.0.1").is_ok());
        for bad in [
            "http://lab.example",
            "lab.example:80",
            "*.example",
            "lab.example/x",
            "",
        ] {
            assert!(check_allowed_host(bad).is_err(), "{bad}");
        }
        assert!(check_allowed_origin("https://lab.example").is_ok());
        assert!(check_allowed_origin("http://localhost:3000").is_ok());
        for bad in [
            "*",
            "null",
            "lab.example",
            "https://lab.example/",
            "ftp://x",
            "https://*.example",
        ] {
            assert!(check_allowed_origin(bad).is_err(), "{bad}");
        }
    }
}
