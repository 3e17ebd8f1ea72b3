//! The small text grammars a pull or import reads: image references,
//! store names, platforms, digests, and `WWW-Authenticate` challenges.
//!
//! Invariants: a parse either fails or gives a value whose text form parses
//! back to the same value (for a reference, the scheme aside: it is not
//! part of the name); a reference's store name is a valid `ImageName`; a
//! challenge list written back as a header parses to the same list.

use rootfs_builder::registry::auth::{parse_challenges, Challenge};
use rootfs_builder::registry::{Platform, Reference};
use rootfs_builder::{Digest, ImageName};

pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    reference(&text);
    round_trip::<ImageName>(&text);
    round_trip::<Platform>(&text);
    round_trip::<Digest>(&text);
    challenges(&text);
}

fn reference(s: &str) {
    let Ok(r) = s.parse::<Reference>() else {
        return;
    };
    assert_eq!(r.registry, r.registry.to_ascii_lowercase());
    assert!(r.tag.is_some() || r.digest.is_some());
    let again: Reference = r
        .to_string()
        .parse()
        .unwrap_or_else(|e| panic!("{r} does not parse back: {e}"));
    assert_eq!(
        Reference {
            scheme: r.scheme,
            ..again
        },
        r
    );
    if let Ok(name) = r.store_name() {
        let back: ImageName = name
            .to_string()
            .parse()
            .unwrap_or_else(|e| panic!("store name {name} does not parse back: {e:?}"));
        assert_eq!(back, name);
    }
}

fn round_trip<T>(s: &str)
where
    T: std::str::FromStr + std::fmt::Display + PartialEq + std::fmt::Debug,
    T::Err: std::fmt::Debug,
{
    let Ok(v) = s.parse::<T>() else {
        return;
    };
    let text = v.to_string();
    let again: T = text
        .parse()
        .unwrap_or_else(|e| panic!("{v:?} written as {text:?} does not parse back: {e:?}"));
    assert_eq!(v, again);
}

fn challenges(header: &str) {
    let parsed = parse_challenges(header);
    for c in &parsed {
        assert!(!c.scheme.is_empty());
        assert_eq!(c.scheme, c.scheme.to_ascii_lowercase());
        for k in c.params.keys() {
            assert_eq!(*k, k.to_ascii_lowercase());
        }
    }
    let written = write_challenges(&parsed);
    assert_eq!(
        parse_challenges(&written),
        parsed,
        "challenges of {header:?} written as {written:?}"
    );
}

/// Challenges as a header: `scheme k="v", k2="v2", scheme2 ...`.
pub fn write_challenges(cs: &[Challenge]) -> String {
    let mut out = Vec::new();
    for c in cs {
        let params: Vec<String> = c
            .params
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        if params.is_empty() {
            out.push(c.scheme.clone());
        } else {
            out.push(format!("{} {}", c.scheme, params.join(", ")));
        }
    }
    out.join(", ")
}
