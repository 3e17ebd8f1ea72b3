//! Image references as users write them (`debian:bookworm`,
//! `localhost:5000/team/app:v1`, `ghcr.io/o/app@sha256:...`), resolved with
//! Docker's rules: a first path component with a `.` or `:`, or
//! `localhost`, is a registry host; otherwise the image is on Docker Hub,
//! where one-component names live under `library/`.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::store::ImageName;

use super::PullError;

/// Docker Hub's name in references.
pub const DOCKER_HUB: &str = "docker.io";
/// Docker Hub's API host (`docker.io` itself serves no v2 API).
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// An explicit scheme in front of a reference (`http://host:5000/x`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Https,
    Http,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }
}

/// A parsed reference. At least one of `tag` and `digest` is set (a bare
/// name means `:latest`); with both, the digest decides what is pulled and
/// the tag only names it in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// Registry host as written, `docker.io` for Docker Hub (`localhost:5000`,
    /// `ghcr.io`).
    pub registry: String,
    /// Repository path inside the registry (`library/debian`, `team/app`).
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
    /// `http://` or `https://` written in front, if any.
    pub scheme: Option<Scheme>,
}

impl Reference {
    /// The host (and port) the v2 API is served on.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// What `GET /v2/<repo>/manifests/<this>` asks for.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }

    /// The name the image gets in the store: the repository as the user
    /// would write it (Docker Hub names in their short form, `debian`,
    /// `user/app`; others with their registry) and the tag. An image pulled
    /// by digest alone is tagged `sha256-<hex>` (a store name cannot hold
    /// an `@`).
    pub fn store_name(&self) -> Result<ImageName, PullError> {
        let repository = if self.registry == DOCKER_HUB {
            match self.repository.strip_prefix("library/") {
                Some(short) if !short.contains('/') => short.to_string(),
                _ => self.repository.clone(),
            }
        } else {
            format!("{}/{}", self.registry, self.repository)
        };
        let tag = match (&self.tag, &self.digest) {
            (Some(t), _) => t.clone(),
            (None, Some(d)) => format!("sha256-{}", d.hex()),
            (None, None) => "latest".into(),
        };
        format!("{repository}:{tag}")
            .parse()
            .map_err(|e: crate::store::StoreError| PullError::BadReference {
                reference: self.to_string(),
                reason: e.to_string(),
            })
    }
}

impl fmt::Display for Reference {
    /// The fully qualified form: `docker.io/library/debian:bookworm`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = PullError;

    fn from_str(s: &str) -> Result<Reference, PullError> {
        let bad = |reason: &str| PullError::BadReference {
            reference: s.to_string(),
            reason: reason.to_string(),
        };
        if s.is_empty() || s.len() > 512 {
            return Err(bad("use 1-512 characters"));
        }
        let (scheme, rest) = if let Some(r) = s.strip_prefix("https://") {
            (Some(Scheme::Https), r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (Some(Scheme::Http), r)
        } else if s.contains("://") {
            return Err(bad("only http:// and https:// may precede the registry"));
        } else {
            (None, s)
        };
        let (name, digest) = match rest.split_once('@') {
            Some((n, d)) => {
                let d = d.parse::<Digest>().map_err(|_| {
                    bad("the digest after @ must be sha256:<64 lower-case hex digits>")
                })?;
                (n, Some(d))
            }
            None => (rest, None),
        };
        // A ':' after the last '/' starts the tag; one before it is a port.
        let last_slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (path, tag) = match name[last_slash..].find(':') {
            Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
            None => (name, None),
        };
        let (registry, repository) = match path.split_once('/') {
            Some((first, rest))
                if scheme.is_some()
                    || first.contains('.')
                    || first.contains(':')
                    || first == "localhost" =>
            {
                (first.to_ascii_lowercase(), rest.to_string())
            }
            _ if scheme.is_some() => return Err(bad("a registry needs a repository after it")),
            _ => (DOCKER_HUB.to_string(), path.to_string()),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
            _ => registry,
        };
        // A host only the scheme marks as one (`https://myreg/x`) gets its
        // port written out (`myreg:443`): without it the written-out form
        // `myreg/x` would read as Docker Hub's `myreg/x`, and the store
        // name would be the same as that image's (found by fuzzing).
        let registry = match scheme {
            Some(sc)
                if registry != DOCKER_HUB
                    && !registry.contains('.')
                    && !registry.contains(':')
                    && registry != "localhost" =>
            {
                let port = match sc {
                    Scheme::Https => 443,
                    Scheme::Http => 80,
                };
                format!("{registry}:{port}")
            }
            _ => registry,
        };
        check_host(&registry).map_err(|r| bad(&r))?;
        if !valid_repository(&repository) {
            return Err(bad(
                "the repository is lower-case path components of letters and digits \
                 joined by '.', '_', '__' or '-', separated by '/'",
            ));
        }
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        // Checked again with `library/` in front: the written-out form must
        // parse too (found by fuzzing).
        if repository.len() > 255 {
            return Err(bad("the repository is longer than 255 characters"));
        }
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(bad(
                    "the tag is 1-128 letters, digits, '_', '.' and '-', not starting with '.' or '-'",
                ));
            }
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_string()),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
            scheme,
        })
    }
}

/// `host[:port]`, host being DNS labels or an IPv4 address.
fn check_host(registry: &str) -> Result<(), String> {
    let (host, port) = match registry.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (registry, None),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(format!(
            "registry host {registry:?} is not a host name or IPv4 address (IPv6 literals are not supported)"
        ));
    }
    if let Some(p) = port {
        if p.parse::<u16>().map(|p| p == 0).unwrap_or(true) || p.starts_with('0') {
            return Err(format!("registry port {p:?} is not a port number"));
        }
    }
    Ok(())
}

/// The distribution spec's repository grammar:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
fn valid_repository(r: &str) -> bool {
    if r.is_empty() || r.len() > 255 {
        return false;
    }
    r.split('/').all(|component| {
        let b = component.as_bytes();
        let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
            return false;
        }
        // Separators between alphanumeric runs: one '.', one or two '_',
        // or any number of '-'.
        let mut i = 0;
        while i < b.len() {
            if alnum(b[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < b.len() && !alnum(b[i]) {
                i += 1;
            }
            let sep = &component[start..i];
            let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
            if !ok {
                return false;
            }
        }
        true
    })
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && !t.starts_with(['.', '-'])
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Reference {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn docker_hub_defaults() {
        let r = parse("debian:bookworm");
        assert_eq!(r.registry, "docker.io");
        assert_eq!(r.repository, "library/debian");
        assert_eq!(r.tag.as_deref(), Some("bookworm"));
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.store_name().unwrap().to_string(), "debian:bookworm");
        assert_eq!(r.to_string(), "docker.io/library/debian:bookworm");

        let r = parse("python");
        assert_eq!(r.manifest_ref(), "latest");
        assert_eq!(r.store_name().unwrap().to_string(), "python:latest");

        let r = parse("bitnami/redis:7.2");
        assert_eq!(r.repository, "bitnami/redis");
        assert_eq!(r.store_name().unwrap().to_string(), "bitnami/redis:7.2");

        // Written out in full, the short form is still the store's name.
        for long in [
            "docker.io/library/debian:bookworm",
            "index.docker.io/library/debian:bookworm",
            "docker.io/debian:bookworm",
        ] {
            let r = parse(long);
            assert_eq!(r.repository, "library/debian", "{long}");
            assert_eq!(r.store_name().unwrap().to_string(), "debian:bookworm");
        }
        // "my-namespace" has no '.' or ':': a Docker Hub user, not a host.
        assert_eq!(parse("my-namespace/app").registry, "docker.io");
    }

    #[test]
    fn registries_ports_digests_and_schemes() {
        let r = parse("localhost:5000/team/app:v1");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("localhost:5000", "team/app")
        );
        assert_eq!(r.api_host(), "localhost:5000");
        assert_eq!(
            r.store_name().unwrap().to_string(),
            "localhost:5000/team/app:v1"
        );
        assert_eq!(parse("localhost/app").registry, "localhost");
        assert_eq!(parse("127.0.0.1:5000/app").tag.as_deref(), Some("latest"));

        let hex = "a".repeat(64);
        let r = parse(&format!("ghcr.io/o/app@sha256:{hex}"));
        assert_eq!(r.tag, None);
        assert_eq!(r.manifest_ref(), format!("sha256:{hex}"));
        assert_eq!(
            r.store_name().unwrap().to_string(),
            format!("ghcr.io/o/app:sha256-{hex}")
        );
        let r = parse(&format!("ghcr.io/o/app:v2@sha256:{hex}"));
        assert_eq!(r.tag.as_deref(), Some("v2"));
        assert_eq!(r.manifest_ref(), format!("sha256:{hex}"));
        assert_eq!(r.store_name().unwrap().to_string(), "ghcr.io/o/app:v2");

        let r = parse("http://127.0.0.1:5000/x:t");
        assert_eq!(r.scheme, Some(Scheme::Http));
        assert_eq!(r.store_name().unwrap().to_string(), "127.0.0.1:5000/x:t");
        // After a scheme the first component is always the host; one that
        // would not read as a host without it gets its port written.
        assert_eq!(parse("https://myreg/x").registry, "myreg:443");
        assert_eq!(parse("http://myreg/x").registry, "myreg:80");
        assert_eq!(parse("https://myreg:5000/x").registry, "myreg:5000");
        assert_eq!(parse("http://localhost/x").registry, "localhost");
    }

    /// Found by fuzz/ (target `reference`): `http://127/kwormy:z` was
    /// written out as `127/kwormy:z`, which reads as Docker Hub's
    /// `127/kwormy`, and stored under that image's name.
    #[test]
    fn a_scheme_only_host_stays_a_host_when_written_out() {
        for (written, store) in [
            ("http://127/kwormy:z", "127:80/kwormy:z"),
            ("https://myreg/team/app:v1", "myreg:443/team/app:v1"),
        ] {
            let r = parse(written);
            let again = parse(&r.to_string());
            assert_eq!(
                Reference {
                    scheme: r.scheme,
                    ..again
                },
                r,
                "{written}"
            );
            assert_eq!(r.store_name().unwrap().to_string(), store);
        }
        assert_ne!(
            parse("https://myreg/x").store_name().unwrap(),
            parse("myreg/x").store_name().unwrap()
        );
    }

    /// Found by fuzz/ (target `reference`): a one-component Docker Hub name
    /// of 248 characters became `library/` + 248, over the 255 a
    /// repository may have, so its written-out form did not parse.
    #[test]
    fn a_docker_hub_name_is_checked_with_its_library_prefix() {
        let long = "a".repeat(250);
        assert!(long.parse::<Reference>().is_err());
        let ok = "a".repeat(247);
        let r = parse(&ok);
        assert_eq!(r.repository.len(), 255);
        assert_eq!(parse(&r.to_string()), r);
    }

    #[test]
    fn bad_references_are_refused() {
        for bad in [
            "",
            "Debian",
            "a//b",
            "/abs",
            "a/../b",
            "a:",
            "a:-x",
            "a@sha256:00",
            "a@md5:d41d8cd98f00b204e9800998ecf8427e",
            "a b",
            "a?x",
            "a..b",
            "a___b",
            "ftp://host/x",
            "http://host",
            "host:0/x",
            "host:99999/x",
            "[::1]:5000/x",
            "host:5000/x:tag:more",
            "x/y%2f",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad:?} was accepted");
        }
        let e = "Debian".parse::<Reference>().unwrap_err().to_string();
        assert!(e.contains("\"Debian\"") && e.contains("lower-case"), "{e}");
    }
}
