//! Registry pulls against a real `docker-registry` on loopback holding
//! images these tests pushed, plus a tiny HTTP server for registries that
//! misbehave on purpose (corrupted blobs, lying digests, basic auth,
//! redirects). Tests needing `docker-registry` or `openssl` are `#[ignore]`d
//! unless asked for (`--include-ignored`) and fail when it is missing.

#[path = "support/registry.rs"]
mod support;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Arc;

use rootfs_builder::registry::{pull, BlobKind, PullError, PullEvent, PullOptions};
use rootfs_builder::{Digest, ImageName, Store};
use support::*;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

fn names(store: &Store) -> Vec<String> {
    store.list().unwrap().into_iter().map(|e| e.name).collect()
}

fn insecure() -> PullOptions<'static> {
    PullOptions {
        insecure: true,
        ..Default::default()
    }
}

fn start_registry(test: &str) -> Registry {
    let bin = tool(test, "docker-registry", "docker-registry");
    Registry::start(&bin, None)
}

/// Nothing but verified blobs may be left by a failed pull: no name, no
/// temporary file.
fn assert_nothing_tagged(store: &Store) {
    assert!(names(store).is_empty(), "tagged: {:?}", names(store));
    assert_eq!(
        std::fs::read_dir(store.tmp_dir()).unwrap().count(),
        0,
        "temporary files left"
    );
}

#[test]
#[ignore = "needs docker-registry (apt-get install docker-registry)"]
fn pulls_an_oci_image_it_pushed() {
    let reg = start_registry("pulls_an_oci_image_it_pushed");
    let img = test_image(Flavor::Oci, "amd64", "hello from oci");
    let pushed = push_image(&reg.base(), "team/app", "v1", &img, None);
    assert_eq!(pushed, img.manifest_digest);

    let (_d, store) = store();
    let events = RefCell::new(Vec::new());
    let record = |e: &PullEvent| events.borrow_mut().push(e.clone());
    let opts = PullOptions {
        insecure: true,
        progress: Some(&record),
        ..Default::default()
    };
    // No scheme written: https is tried first, then plain http (insecure).
    let reference = format!("{}/team/app:v1", reg.addr);
    let image = pull(&store, &reference, &opts).unwrap();

    assert_eq!(names(&store), std::slice::from_ref(&reference));
    assert_eq!(image.manifest_digest, img.manifest_digest);
    let resolved = store.resolve(&reference.parse().unwrap()).unwrap();
    assert_eq!(resolved.manifest_digest, img.manifest_digest);
    // The manifest is stored verbatim, the layer byte for byte.
    assert_eq!(
        std::fs::read(store.blob_path(&img.manifest_digest)).unwrap(),
        img.manifest
    );
    assert_eq!(
        resolved.layer_digests().unwrap(),
        std::slice::from_ref(&img.layer_digest)
    );
    assert_eq!(
        std::fs::read(store.blob_path(&img.layer_digest)).unwrap(),
        img.layer
    );
    let env = resolved
        .config
        .config()
        .as_ref()
        .and_then(|c| c.env().clone())
        .unwrap_or_default();
    assert!(
        env.contains(&"GREETING=hello from oci".to_string()),
        "{env:?}"
    );

    let ev = events.borrow().clone();
    assert!(
        matches!(&ev[0], PullEvent::Manifest { digest, layers: 1, .. } if *digest == img.manifest_digest),
        "{ev:?}"
    );
    let started: Vec<BlobKind> = ev
        .iter()
        .filter_map(|e| match e {
            PullEvent::BlobStart { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect();
    assert_eq!(started, [BlobKind::Config, BlobKind::Layer]);
    assert!(ev.iter().any(|e| matches!(e,
        PullEvent::BlobProgress { digest, done, total } if *digest == img.layer_digest && done == total)));
    assert!(matches!(ev.last(), Some(PullEvent::Tagged { name, .. }) if *name == reference));

    // Pulled again (now written with http://, under another tag of the
    // same manifest): nothing is downloaded twice.
    push_manifest(
        &reg.base(),
        "team/app",
        "again",
        OCI_MANIFEST,
        &img.manifest,
        None,
    );
    events.borrow_mut().clear();
    let again = format!("http://{}/team/app:again", reg.addr);
    pull(&store, &again, &opts).unwrap();
    let ev = events.borrow().clone();
    assert!(
        !ev.iter().any(|e| matches!(e, PullEvent::BlobStart { .. })),
        "{ev:?}"
    );
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, PullEvent::BlobPresent { .. }))
            .count(),
        2
    );
    assert_eq!(
        names(&store),
        [format!("{}/team/app:again", reg.addr), reference]
    );
}

#[test]
#[ignore = "needs docker-registry (apt-get install docker-registry)"]
fn manifest_lists_pick_the_platform() {
    let reg = start_registry("manifest_lists_pick_the_platform");
    let base = reg.base();
    for (flavor, list_type, tag) in [
        (Flavor::Docker, DOCKER_LIST, "docker-multi"),
        (Flavor::Oci, OCI_INDEX, "oci-multi"),
    ] {
        let amd = test_image(flavor, "amd64", &format!("{tag} amd64"));
        let arm = test_image(flavor, "arm64", &format!("{tag} arm64"));
        push_image(&base, "multi", &format!("{tag}-amd64"), &amd, None);
        push_image(&base, "multi", &format!("{tag}-arm64"), &arm, None);
        let list = index_of(list_type, &[&arm, &amd]);
        let list_digest = push_manifest(&base, "multi", tag, list_type, &list, None);
        assert_eq!(list_digest, Digest::of(&list));

        let (_d, store) = store();
        let reference = format!("{}/multi:{tag}", reg.addr);
        let image = pull(&store, &reference, &insecure()).unwrap();
        assert_eq!(image.manifest_digest, amd.manifest_digest, "{tag}");
        assert_eq!(image.config.architecture().to_string(), "amd64");
        assert!(store.has_blob(&amd.layer_digest));
        assert!(
            !store.has_blob(&arm.layer_digest),
            "{tag}: arm64 layer fetched"
        );
        // Docker media types are stored as they are and read back.
        let resolved = store.resolve(&reference.parse().unwrap()).unwrap();
        assert_eq!(
            resolved
                .manifest
                .media_type()
                .as_ref()
                .map(|m| m.to_string()),
            Some(amd.manifest_type.to_string())
        );
        assert_eq!(resolved.diff_ids().unwrap().len(), 1);

        let opts = PullOptions {
            insecure: true,
            platform: "linux/arm64".parse().unwrap(),
            ..Default::default()
        };
        let image = pull(&store, &reference, &opts).unwrap();
        assert_eq!(image.manifest_digest, arm.manifest_digest);

        let opts = PullOptions {
            insecure: true,
            platform: "linux/s390x".parse().unwrap(),
            ..Default::default()
        };
        let (_d2, empty) = self::store();
        let e = pull(&empty, &reference, &opts).unwrap_err();
        assert!(matches!(e, PullError::NoPlatform { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("no linux/s390x image") && msg.contains("linux/arm64, linux/amd64"),
            "{msg}"
        );
        assert_nothing_tagged(&empty);

        // A single-platform image for another architecture is refused.
        let e = pull(
            &empty,
            &format!("{}/multi:{tag}-arm64", reg.addr),
            &insecure(),
        )
        .unwrap_err();
        assert!(matches!(e, PullError::PlatformMismatch { .. }), "{e}");
        assert_nothing_tagged(&empty);
    }
}

#[test]
#[ignore = "needs docker-registry (apt-get install docker-registry)"]
fn pulls_by_digest() {
    let reg = start_registry("pulls_by_digest");
    let img = test_image(Flavor::Oci, "amd64", "by digest");
    push_image(&reg.base(), "team/pinned", "v1", &img, None);
    let (_d, store) = store();
    let reference = format!("{}/team/pinned@{}", reg.addr, img.manifest_digest);
    let image = pull(&store, &reference, &insecure()).unwrap();
    assert_eq!(image.manifest_digest, img.manifest_digest);
    let name = format!(
        "{}/team/pinned:sha256-{}",
        reg.addr,
        img.manifest_digest.hex()
    );
    assert_eq!(names(&store), [name]);

    // With a tag too, the digest decides and the tag names it.
    let reference = format!("{}/team/pinned:stable@{}", reg.addr, img.manifest_digest);
    pull(&store, &reference, &insecure()).unwrap();
    let stable: ImageName = format!("{}/team/pinned:stable", reg.addr).parse().unwrap();
    assert_eq!(
        store.resolve(&stable).unwrap().manifest_digest,
        img.manifest_digest
    );

    // A digest the registry does not have.
    let (_d, empty) = self::store();
    let missing = format!("{}/team/pinned@{}", reg.addr, Digest::of(b"nothing"));
    let e = pull(&empty, &missing, &insecure()).unwrap_err();
    assert!(matches!(e, PullError::NotFound { .. }), "{e}");
    assert_nothing_tagged(&empty);
}

#[test]
#[ignore = "needs docker-registry (apt-get install docker-registry)"]
fn missing_tags_and_repositories_are_not_found() {
    let reg = start_registry("missing_tags_and_repositories_are_not_found");
    let img = test_image(Flavor::Oci, "amd64", "x");
    push_image(&reg.base(), "team/app", "v1", &img, None);
    let (_d, store) = store();
    for reference in [
        format!("{}/team/app:nope", reg.addr),
        format!("{}/team/nothing:v1", reg.addr),
    ] {
        let e = pull(&store, &reference, &insecure()).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, PullError::NotFound { .. }), "{msg}");
        assert!(
            msg.contains("not found in registry")
                && (msg.contains("MANIFEST_UNKNOWN") || msg.contains("NAME_UNKNOWN")),
            "{msg}"
        );
    }
    assert_nothing_tagged(&store);
}

/// A registry played by a tiny server: serves `img` under `repo:tag`,
/// with the layer blob behind a redirect, and `tweak` applied to each
/// answer.
fn fake_registry(
    img: &TestImage,
    tweak: impl Fn(&HttpRequest, HttpResponse) -> HttpResponse + Send + Sync + 'static,
) -> TinyServer {
    let img = img.clone();
    TinyServer::start(move |req| {
        let path = req.path().to_string();
        let resp = if path == "/v2/" {
            HttpResponse::new(200, "{}")
        } else if path == "/v2/x/manifests/v1"
            || path == format!("/v2/x/manifests/{}", img.manifest_digest)
        {
            HttpResponse::new(200, img.manifest.clone())
                .header("Content-Type", img.manifest_type)
                .header("Docker-Content-Digest", &img.manifest_digest.to_string())
        } else if path == format!("/v2/x/blobs/{}", img.config_digest) {
            HttpResponse::new(200, img.config.clone())
        } else if path == format!("/v2/x/blobs/{}", img.layer_digest) {
            // Like a registry in front of object storage.
            HttpResponse::new(307, "").header("Location", "/storage/layer")
        } else if path == "/storage/layer" {
            HttpResponse::new(200, img.layer.clone())
        } else {
            HttpResponse::new(
                404,
                r#"{"errors":[{"code":"NAME_UNKNOWN","message":"no"}]}"#,
            )
        };
        tweak(req, resp)
    })
}

#[test]
fn follows_redirects_to_blob_storage() {
    let img = test_image(Flavor::Oci, "amd64", "redirected");
    let srv = fake_registry(&img, |_, r| r);
    let (_d, store) = store();
    let image = pull(&store, &format!("{}/x:v1", srv.addr), &insecure()).unwrap();
    assert_eq!(image.manifest_digest, img.manifest_digest);
    assert_eq!(
        std::fs::read(store.blob_path(&img.layer_digest)).unwrap(),
        img.layer
    );
    assert!(srv.requests().iter().any(|r| r.path() == "/storage/layer"));
}

#[test]
fn a_corrupted_blob_is_refused_and_nothing_is_tagged() {
    let img = test_image(Flavor::Oci, "amd64", "corrupt me");
    let srv = fake_registry(&img, |req, mut r| {
        if req.path() == "/storage/layer" {
            let mid = r.body.len() / 2;
            r.body[mid] ^= 0x20;
        }
        r
    });
    let (_d, store) = store();
    let e = pull(&store, &format!("{}/x:v1", srv.addr), &insecure()).unwrap_err();
    match &e {
        PullError::DigestMismatch {
            expected, actual, ..
        } => {
            assert_eq!(*expected, img.layer_digest);
            assert_ne!(*actual, img.layer_digest);
        }
        other => panic!("expected a digest mismatch, got: {other}"),
    }
    assert!(e.to_string().contains("layer"), "{e}");
    assert!(!store.has_blob(&img.layer_digest));
    assert!(!store.has_blob(&img.manifest_digest));
    assert_nothing_tagged(&store);
}

#[test]
fn a_lying_manifest_digest_is_refused() {
    let img = test_image(Flavor::Oci, "amd64", "lies");
    let other = Digest::of(b"another manifest");
    let lie = other.to_string();
    let srv = fake_registry(&img, move |_, mut r| {
        for h in r.headers.iter_mut() {
            if h.0 == "Docker-Content-Digest" {
                h.1 = lie.clone();
            }
        }
        r
    });
    let (_d, store) = store();
    let e = pull(&store, &format!("{}/x:v1", srv.addr), &insecure()).unwrap_err();
    assert!(
        matches!(&e, PullError::DigestMismatch { expected, .. } if *expected == other),
        "{e}"
    );
    assert!(e.to_string().contains("Docker-Content-Digest"), "{e}");
    assert_nothing_tagged(&store);

    // Asked by digest, content with another digest is refused too.
    let asked = Digest::of(b"x");
    let fake_path = format!("/v2/x/manifests/{asked}");
    let srv = TinyServer::start(move |req| {
        if req.path() == fake_path {
            HttpResponse::new(200, img.manifest.clone()).header("Content-Type", img.manifest_type)
        } else {
            HttpResponse::new(404, "")
        }
    });
    let e = pull(&store, &format!("{}/x@{asked}", srv.addr), &insecure()).unwrap_err();
    assert!(
        matches!(&e, PullError::DigestMismatch { expected, .. } if *expected == asked),
        "{e}"
    );
    assert_nothing_tagged(&store);
}

#[test]
fn basic_auth_challenges_are_answered() {
    let img = test_image(Flavor::Oci, "amd64", "basic");
    let srv = fake_registry(&img, |req, r| {
        // "user:pass"
        if req.header("authorization") == Some("Basic dXNlcjpwYXNz") {
            r
        } else {
            HttpResponse::new(
                401,
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            )
            .header("WWW-Authenticate", r#"Basic realm="fake""#)
        }
    });
    let reference = format!("{}/x:v1", srv.addr);
    let (_d, store) = store();
    let e = pull(&store, &reference, &insecure()).unwrap_err();
    assert!(matches!(e, PullError::Unauthorized { .. }), "{e}");
    assert!(e.to_string().contains("username and password"), "{e}");
    let wrong = PullOptions {
        insecure: true,
        username: Some("user".into()),
        password: Some("wrong".into()),
        ..Default::default()
    };
    let e = pull(&store, &reference, &wrong).unwrap_err();
    assert!(matches!(e, PullError::Unauthorized { .. }), "{e}");
    assert_nothing_tagged(&store);
    let right = PullOptions {
        insecure: true,
        username: Some("user".into()),
        password: Some("pass".into()),
        ..Default::default()
    };
    let image = pull(&store, &reference, &right).unwrap();
    assert_eq!(image.manifest_digest, img.manifest_digest);
}

#[test]
#[ignore = "needs docker-registry and openssl"]
fn bearer_token_auth_with_a_real_registry() {
    let test = "bearer_token_auth_with_a_real_registry";
    let bin = tool(test, "docker-registry", "docker-registry");
    let openssl = tool(test, "openssl", "openssl");
    let issuer = Arc::new(TokenIssuer::new(&openssl));
    let mut users = BTreeMap::new();
    users.insert("alice".to_string(), ("s3cret".to_string(), true));
    users.insert("mallory".to_string(), ("pw".to_string(), false));
    let tokens = token_server(issuer.clone(), TokenPolicy { users });
    let reg = Registry::start(
        &bin,
        Some(&TokenAuth {
            realm: format!("{}/token", tokens.base()),
            service: issuer.service.clone(),
            issuer: issuer.issuer.clone(),
            cert_pem: issuer.cert_pem(),
        }),
    );
    // Pushed with a token minted here.
    let push_token = issuer.mint(
        "pusher",
        &[("team/private".into(), vec!["pull".into(), "push".into()])],
    );
    let img = test_image(Flavor::Docker, "amd64", "secret image");
    let pushed = push_image(
        &reg.base(),
        "team/private",
        "v1",
        &img,
        Some(&format!("Bearer {push_token}")),
    );
    assert_eq!(pushed, img.manifest_digest, "{}", reg.log());
    let reference = format!("{}/team/private:v1", reg.addr);
    let (_d, store) = store();

    // The realm is the registry's choice and on loopback: refused before
    // the token server is asked (the credentials go nowhere) ...
    let e = pull(
        &store,
        &reference,
        &PullOptions {
            insecure: true,
            username: Some("alice".into()),
            password: Some("s3cret".into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, PullError::DestinationRefused { .. }), "{msg}");
    assert!(
        msg.contains(&format!("{}/token", tokens.base())) && msg.contains("loopback"),
        "{msg}"
    );
    assert!(tokens.requests().is_empty(), "{:?}", tokens.requests());
    assert_nothing_tagged(&store);
    // ... unless the operator trusts the token server's host.
    let trusted = vec![tokens.addr.to_string()];
    let insecure = || PullOptions {
        insecure: true,
        trusted_hosts: trusted.clone(),
        ..Default::default()
    };

    // No credentials: the token server refuses, the pull fails cleanly.
    let e = pull(&store, &reference, &insecure()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, PullError::Unauthorized { .. }), "{msg}");
    assert!(msg.contains("refused anonymous access"), "{msg}");
    // Wrong password.
    let opts = |user: &str, pw: &str| PullOptions {
        insecure: true,
        username: Some(user.into()),
        password: Some(pw.into()),
        trusted_hosts: trusted.clone(),
        ..Default::default()
    };
    let e = pull(&store, &reference, &opts("alice", "nope")).unwrap_err();
    assert!(e.to_string().contains("refused user \"alice\""), "{e}");
    // A token without access: the registry's second 401 is unauthorized.
    let e = pull(&store, &reference, &opts("mallory", "pw")).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, PullError::Unauthorized { .. }), "{msg}");
    assert!(msg.contains("registry refused the token"), "{msg}");
    assert_nothing_tagged(&store);

    let before = tokens.requests().len();
    let image = pull(&store, &reference, &opts("alice", "s3cret")).unwrap();
    assert_eq!(image.manifest_digest, img.manifest_digest);
    assert_eq!(names(&store), [reference]);
    assert_eq!(
        std::fs::read(store.blob_path(&img.layer_digest)).unwrap(),
        img.layer
    );
    // One token for the whole pull, asked for the repository's pull scope.
    let asked: Vec<_> = tokens.requests()[before..].to_vec();
    assert_eq!(asked.len(), 1, "{asked:?}");
    let q = asked[0].query();
    assert!(
        q.contains(&("scope".into(), "repository:team/private:pull".into())),
        "{q:?}"
    );
    assert!(
        q.contains(&("service".into(), issuer.service.clone())),
        "{q:?}"
    );
}

#[test]
fn plain_http_is_refused_without_insecure_before_any_request() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (_d, store) = store();
    let e = pull(
        &store,
        &format!("http://{addr}/team/app:v1"),
        &PullOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, PullError::InsecureRefused { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&addr.to_string())
            && msg.contains("plain http refused")
            && msg.contains("insecure"),
        "{msg}"
    );
    // Nobody connected.
    assert_eq!(
        listener.accept().unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    assert_nothing_tagged(&store);

    // Without a scheme and without insecure only https is tried: a plain
    // http server is not used.
    let img = test_image(Flavor::Oci, "amd64", "plain");
    let srv = fake_registry(&img, |_, r| r);
    let e = pull(
        &store,
        &format!("{}/x:v1", srv.addr),
        &PullOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, PullError::Connect { .. }), "{e}");
    assert!(e.to_string().contains("allow it with insecure"), "{e}");
    assert!(srv.requests().is_empty());
    assert_nothing_tagged(&store);
}

#[test]
fn connection_refused_names_the_host() {
    let port = free_port();
    let (_d, store) = store();
    let e = pull(&store, &format!("127.0.0.1:{port}/x:v1"), &insecure()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, PullError::Connect { .. }), "{msg}");
    assert!(
        msg.contains(&format!("127.0.0.1:{port}")) && msg.to_lowercase().contains("refused"),
        "{msg}"
    );
}
