//! Registries that attack the puller. A registry chooses where its
//! redirects and token realms lead and what sizes its manifests claim; a
//! pull must not become a request to the host's own services or a cloud
//! metadata endpoint, must not hand the registry's credentials to another
//! host, and must not store more than its limits, whatever is claimed.
//!
//! Every server here listens on 127.0.0.0/8, so that what reached it can be
//! observed; non-loopback targets (169.254.169.254) are refused before any
//! connection, which the error kind shows (a connection attempt would be a
//! `Connect` error or a timeout).

#[path = "support/registry.rs"]
mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rootfs_builder::registry::{pull, PullError, PullLimits, PullOptions, MAX_LAYERS};
use rootfs_builder::{Digest, Store};
use support::*;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

fn insecure() -> PullOptions<'static> {
    PullOptions {
        insecure: true,
        ..Default::default()
    }
}

/// No name and no temporary file after a failed pull.
fn assert_nothing_tagged(store: &Store) {
    assert!(store.list().unwrap().is_empty());
    assert_eq!(
        std::fs::read_dir(store.tmp_dir()).unwrap().count(),
        0,
        "temporary files left"
    );
}

/// `user:pass` as basic credentials.
const BASIC: &str = "Basic dXNlcjpwYXNz";
const TOKEN: &str = "Bearer t0ken-for-the-registry-only";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    None,
    Basic,
    /// A bearer token from a realm on the registry itself (`/token`).
    Bearer,
}

/// A registry serving `img` as `x:v1`, whose layer answer is `layer(req)`
/// (a redirect, usually), behind `auth`.
fn registry(
    img: &TestImage,
    auth: Auth,
    layer: impl Fn(&HttpRequest) -> HttpResponse + Send + Sync + 'static,
) -> TinyServer {
    let img = img.clone();
    TinyServer::start(move |req| {
        let path = req.path();
        if path == "/token" {
            let ok = req.header("authorization") == Some(BASIC);
            return match ok {
                true => HttpResponse::new(
                    200,
                    format!(r#"{{"token":"{}"}}"#, TOKEN.trim_start_matches("Bearer ")),
                ),
                false => HttpResponse::new(401, "{}"),
            };
        }
        let granted = match auth {
            Auth::None => true,
            Auth::Basic => req.header("authorization") == Some(BASIC),
            Auth::Bearer => req.header("authorization") == Some(TOKEN),
        };
        if !granted {
            let challenge = match auth {
                Auth::Basic => r#"Basic realm="fake""#.to_string(),
                _ => format!(
                    r#"Bearer realm="http://{}/token",service="fake""#,
                    req.header("host").unwrap_or("")
                ),
            };
            return HttpResponse::new(
                401,
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}"#,
            )
            .header("WWW-Authenticate", &challenge);
        }
        if path == "/v2/x/manifests/v1" {
            HttpResponse::new(200, img.manifest.clone())
                .header("Content-Type", img.manifest_type)
                .header("Docker-Content-Digest", &img.manifest_digest.to_string())
        } else if path == format!("/v2/x/blobs/{}", img.config_digest) {
            HttpResponse::new(200, img.config.clone())
        } else if path == format!("/v2/x/blobs/{}", img.layer_digest) {
            layer(req)
        } else {
            HttpResponse::new(
                404,
                r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"no"}]}"#,
            )
        }
    })
}

fn redirect(to: String) -> impl Fn(&HttpRequest) -> HttpResponse + Send + Sync + 'static {
    move |_| HttpResponse::new(307, "").header("Location", &to)
}

/// A server that serves `body` at any path and records who asked.
fn cdn(ip: &str, body: Vec<u8>) -> TinyServer {
    TinyServer::start_on(ip, move |_| HttpResponse::new(200, body.clone()))
}

fn with_credentials(trusted: &[String]) -> PullOptions<'static> {
    PullOptions {
        insecure: true,
        username: Some("user".into()),
        password: Some("pass".into()),
        trusted_hosts: trusted.to_vec(),
        ..Default::default()
    }
}

#[test]
fn redirects_to_the_hosts_own_addresses_are_refused_before_connecting() {
    let img = test_image(Flavor::Oci, "amd64", "ssrf");
    // A service of the host's own, on another loopback port: it must see
    // no connection at all, however its address is written.
    let victim = TinyServer::start(|_| HttpResponse::new(200, "secret"));
    let port = victim.addr.port();
    for (location, says) in [
        (format!("http://127.0.0.1:{port}/admin"), "loopback"),
        (format!("http://localhost:{port}/admin"), "loopback"),
        (format!("http://127.9.9.9:{port}/admin"), "loopback"),
        // Linux connects 0.0.0.0 to the host itself.
        (format!("http://0.0.0.0:{port}/admin"), "unspecified"),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/admin"),
            "loopback",
        ),
        (format!("http://2130706433:{port}/admin"), "loopback"),
        (format!("http://[::1]:{port}/admin"), "loopback"),
    ] {
        let srv = registry(&img, Auth::None, redirect(location.clone()));
        let (_d, store) = store();
        let e = pull(&store, &format!("{}/x:v1", srv.addr), &insecure()).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(e, PullError::DestinationRefused { .. }),
            "{location}: {msg}"
        );
        assert!(
            msg.contains(says) && msg.contains(&format!(":{port}/admin")),
            "{location}: {msg}"
        );
        assert!(!store.has_blob(&img.layer_digest));
        assert_nothing_tagged(&store);
    }
    assert_eq!(victim.connections.load(Ordering::SeqCst), 0);
    assert!(victim.requests().is_empty());
}

#[test]
fn redirects_to_link_local_metadata_are_refused_before_connecting() {
    let img = test_image(Flavor::Oci, "amd64", "metadata");
    for (location, says) in [
        ("http://169.254.169.254/latest/meta-data/iam/", "link-local"),
        ("http://[fe80::1]/x", "link-local"),
        ("http://[::ffff:169.254.169.254]/x", "link-local"),
        ("http://[64:ff9b::a9fe:a9fe]/x", "link-local"),
        ("http://224.0.0.1/x", "multicast"),
        ("file:///etc/shadow", "file: URL"),
    ] {
        let srv = registry(&img, Auth::None, redirect(location.into()));
        let (_d, store) = store();
        let e = pull(&store, &format!("{}/x:v1", srv.addr), &insecure()).unwrap_err();
        let msg = e.to_string();
        // Refused by the policy: no connection was tried (that would be
        // `Connect`, or a timeout).
        assert!(
            matches!(e, PullError::DestinationRefused { .. }),
            "{location}: {msg}"
        );
        assert!(msg.contains(says), "{location}: {msg}");
        assert_nothing_tagged(&store);
    }
}

#[test]
fn redirect_loops_stop() {
    let img = test_image(Flavor::Oci, "amd64", "loop");
    let srv = registry(&img, Auth::None, |req| {
        HttpResponse::new(302, "").header("Location", &format!("{}?again", req.path()))
    });
    let (_d, store) = store();
    let e = pull(&store, &format!("{}/x:v1", srv.addr), &insecure()).unwrap_err();
    assert!(e.to_string().contains("more than 8 redirects"), "{e}");
    let layer_asks = srv
        .requests()
        .iter()
        .filter(|r| r.path().contains(&img.layer_digest.hex().to_string()))
        .count();
    assert_eq!(layer_asks, 9);
}

#[test]
fn credentials_do_not_follow_a_redirect_to_another_host() {
    let img = test_image(Flavor::Oci, "amd64", "cdn");
    for auth in [Auth::Basic, Auth::Bearer] {
        // The CDN is another host (127.0.0.2) the operator trusts, so the
        // redirect is followed; the credentials stay behind.
        let other_host = cdn("127.0.0.2", img.layer.clone());
        // Same host, another port: another origin too.
        let other_port = cdn("127.0.0.1", img.layer.clone());
        for (target, trusted) in [
            (&other_host, "127.0.0.2".to_string()),
            (&other_port, other_port.addr.to_string()),
        ] {
            let srv = registry(
                &img,
                auth,
                redirect(format!("http://{}/bucket/layer?sig=abc", target.addr)),
            );
            let (_d, store) = store();
            let image = pull(
                &store,
                &format!("{}/x:v1", srv.addr),
                &with_credentials(std::slice::from_ref(&trusted)),
            )
            .unwrap();
            assert_eq!(image.manifest_digest, img.manifest_digest);
            assert_eq!(
                std::fs::read(store.blob_path(&img.layer_digest)).unwrap(),
                img.layer
            );
            // The registry got the credentials ...
            let sent = if auth == Auth::Basic { BASIC } else { TOKEN };
            assert!(srv
                .requests()
                .iter()
                .any(|r| r.header("authorization") == Some(sent)));
        }
        // ... the other hosts got the request, without them.
        for target in [&other_host, &other_port] {
            let reqs = target.requests();
            assert_eq!(reqs.len(), 1, "{:?}", reqs);
            for r in reqs {
                assert_eq!(r.path(), "/bucket/layer");
                assert_eq!(r.header("authorization"), None, "{:?}", r.headers);
            }
        }
    }
}

#[test]
fn a_redirect_target_asking_for_credentials_gets_none() {
    let img = test_image(Flavor::Oci, "amd64", "greedy cdn");
    // A token server the CDN would like us to give the password to.
    let phish = TinyServer::start(|_| HttpResponse::new(200, r#"{"token":"x"}"#));
    let realm = format!("http://{}/token", phish.addr);
    let greedy = TinyServer::start_on("127.0.0.2", move |_| {
        HttpResponse::new(401, "").header("WWW-Authenticate", &format!(r#"Bearer realm="{realm}""#))
    });
    let srv = registry(
        &img,
        Auth::Basic,
        redirect(format!("http://{}/layer", greedy.addr)),
    );
    let (_d, store) = store();
    let e = pull(
        &store,
        &format!("{}/x:v1", srv.addr),
        &with_credentials(&["127.0.0.2".into(), phish.addr.to_string()]),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, PullError::Unauthorized { .. }), "{msg}");
    assert!(
        msg.contains("only sent to the registry") && msg.contains(&greedy.addr.to_string()),
        "{msg}"
    );
    assert!(greedy
        .requests()
        .iter()
        .all(|r| r.header("authorization").is_none()));
    assert_eq!(phish.connections.load(Ordering::SeqCst), 0);
    assert_nothing_tagged(&store);
}

#[test]
fn token_realms_are_held_to_the_same_rules() {
    let tokens = Arc::new(TinyServer::start(|_| {
        HttpResponse::new(200, r#"{"token":"t0ken-for-the-registry-only"}"#)
    }));
    for realm in [
        format!("http://{}/token", tokens.addr),
        "http://169.254.169.254/latest/api/token".to_string(),
        "http://[::1]:1/token".to_string(),
        "ftp://example.com/token".to_string(),
    ] {
        // Every answer of this registry is a 401 naming the realm.
        let challenge = format!(r#"Bearer realm="{realm}",service="s""#);
        let srv = TinyServer::start(move |_| {
            HttpResponse::new(401, "").header("WWW-Authenticate", &challenge)
        });
        let (_d, store) = store();
        let e = pull(
            &store,
            &format!("{}/x:v1", srv.addr),
            &with_credentials(&[]),
        )
        .unwrap_err();
        let msg = e.to_string();
        if realm.starts_with("ftp") {
            assert!(msg.contains("not a URL"), "{msg}");
        } else {
            assert!(
                matches!(e, PullError::DestinationRefused { .. }),
                "{realm}: {msg}"
            );
            assert!(msg.contains("token realm"), "{msg}");
        }
        assert_nothing_tagged(&store);
    }
    assert_eq!(tokens.connections.load(Ordering::SeqCst), 0);
}

// ------------------------------------------------------------------ sizes

/// A manifest over `img`'s config with `layers` (digest, claimed size).
fn manifest_with(img: &TestImage, layers: &[(Digest, u64)]) -> Vec<u8> {
    let layers: Vec<_> = layers
        .iter()
        .map(|(d, size)| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": d.to_string(),
                "size": size,
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": img.config_digest.to_string(), "size": img.config.len()},
        "layers": layers,
    }))
    .unwrap()
}

/// Serves `manifest` as `x:v1`, `img`'s config, and any blob as `blob`.
fn sized_registry(
    img: &TestImage,
    manifest: Vec<u8>,
    blob: impl Fn() -> HttpResponse + Send + Sync + 'static,
) -> TinyServer {
    let config_path = format!("/v2/x/blobs/{}", img.config_digest);
    let config = img.config.clone();
    TinyServer::start(move |req| {
        if req.path() == "/v2/x/manifests/v1" {
            HttpResponse::new(200, manifest.clone()).header("Content-Type", OCI_MANIFEST)
        } else if req.path() == config_path {
            HttpResponse::new(200, config.clone())
        } else if req.path().starts_with("/v2/x/blobs/") {
            blob()
        } else {
            HttpResponse::new(404, "")
        }
    })
}

fn blob_requests(srv: &TinyServer) -> usize {
    srv.requests()
        .iter()
        .filter(|r| r.path().starts_with("/v2/x/blobs/"))
        .count()
}

#[test]
fn claimed_sizes_above_the_limits_are_refused_before_download() {
    let img = test_image(Flavor::Oci, "amd64", "huge");
    let limits = PullLimits {
        max_blob_bytes: 1 << 20,
        max_image_bytes: 3 << 20,
    };
    let opts = PullOptions {
        insecure: true,
        limits,
        ..Default::default()
    };
    let d = |b: &[u8]| Digest::of(b);
    for (layers, limit_name) in [
        // One layer over the blob cap.
        (
            vec![(img.layer_digest.clone(), (1 << 20) + 1)],
            "max_blob_bytes",
        ),
        // What would overflow a u64 sum.
        (
            vec![(d(b"a"), u64::MAX), (d(b"b"), u64::MAX)],
            "max_blob_bytes",
        ),
        // Each under the blob cap, together over the image cap.
        (
            vec![(d(b"a"), 1 << 20), (d(b"b"), 1 << 20), (d(b"c"), 1 << 20)],
            "max_image_bytes",
        ),
    ] {
        let manifest = manifest_with(&img, &layers);
        let layer = img.layer.clone();
        let srv = sized_registry(&img, manifest, move || {
            HttpResponse::new(200, layer.clone())
        });
        let (_d, store) = store();
        let e = pull(&store, &format!("{}/x:v1", srv.addr), &opts).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, PullError::TooLarge { .. }), "{msg}");
        assert!(msg.contains(limit_name), "{msg}");
        // Refused on the manifest's word: no blob (not even the config)
        // was asked for.
        assert_eq!(blob_requests(&srv), 0, "{msg}");
        assert_nothing_tagged(&store);
    }

    // More layers than overlayfs can stack.
    let many: Vec<(Digest, u64)> = (0..=MAX_LAYERS).map(|i| (d(&i.to_le_bytes()), 1)).collect();
    let srv = sized_registry(&img, manifest_with(&img, &many), || {
        HttpResponse::new(200, "x")
    });
    let (_d, store) = store();
    let e = pull(&store, &format!("{}/x:v1", srv.addr), &insecure()).unwrap_err();
    assert!(e.to_string().contains("501 layers"), "{e}");
    assert_eq!(blob_requests(&srv), 0);
}

#[test]
fn a_body_longer_than_its_descriptor_is_cut_off_and_refused() {
    let img = test_image(Flavor::Oci, "amd64", "long body");
    // The layer, then 64 MiB more that nobody asked for.
    let mut long = img.layer.clone();
    long.resize(img.layer.len() + (64 << 20), b'x');
    let long = Arc::new(long);
    for until_close in [true, false] {
        let manifest = manifest_with(&img, &[(img.layer_digest.clone(), img.layer.len() as u64)]);
        let body = long.clone();
        let srv = sized_registry(&img, manifest, move || {
            let r = HttpResponse::new(200, body.to_vec());
            if until_close {
                r.until_close()
            } else {
                r
            }
        });
        let (_d, store) = store();
        let e = pull(&store, &format!("{}/x:v1", srv.addr), &insecure()).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, PullError::SizeMismatch { .. }), "{msg}");
        assert!(!store.has_blob(&img.layer_digest));
        assert_nothing_tagged(&store);
        // Reading stopped at the descriptor's size (plus one byte): what
        // got out is what the sockets buffer, far from the 64 MiB.
        let sent = srv.body_bytes_sent.load(Ordering::SeqCst);
        assert!(
            sent < 32 << 20,
            "until_close {until_close}: {sent} bytes sent"
        );
    }
}
