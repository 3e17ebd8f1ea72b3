//! Image import: layouts written by umoci and skopeo (directory, tar,
//! tar.gz, tar.zst, request body), crafted `docker save` archives (legacy
//! and Docker 25+ layouts, compressed layers), and hostile or invalid outer
//! archives, each refused with the store left as it was.

mod layer_fixtures;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use layer_fixtures::*;
use rootfs_builder::import::{
    import, import_reader, import_reader_with, import_with, ImportError, ImportLimits,
};
use rootfs_builder::unpack::ensure_layers;
use rootfs_builder::{Digest, Image, ImageName, Store, StoreError};
use serde_json::json;

fn fresh() -> (tempfile::TempDir, Store) {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(&t.path().join("data")).unwrap();
    (t, s)
}

fn name(s: &str) -> ImageName {
    s.parse().unwrap()
}

fn names(store: &Store) -> Vec<String> {
    store.list().unwrap().into_iter().map(|e| e.name).collect()
}

/// What must not change when an import fails: the names, the index and the
/// scratch directory (empty).
struct Snapshot {
    names: Vec<String>,
    index: Vec<u8>,
}

fn snapshot(store: &Store) -> Snapshot {
    Snapshot {
        names: names(store),
        index: fs::read(store.layout_dir().join("index.json")).unwrap(),
    }
}

fn assert_unchanged(store: &Store, before: &Snapshot) {
    assert_eq!(names(store), before.names, "names changed");
    assert_eq!(
        fs::read(store.layout_dir().join("index.json")).unwrap(),
        before.index,
        "index.json changed"
    );
    let left: Vec<_> = fs::read_dir(store.tmp_dir()).unwrap().collect();
    assert!(left.is_empty(), "scratch left in the store's tmp: {left:?}");
}

/// Imports `path` expecting an error; checks the store is unchanged and
/// returns the error.
fn refused(store: &Store, path: &Path, n: Option<&ImageName>) -> ImportError {
    let before = snapshot(store);
    let e = match import(store, path, n) {
        Ok(imgs) => panic!("{} imported: {imgs:?}", path.display()),
        Err(e) => e,
    };
    assert_unchanged(store, &before);
    e
}

/// The content of `path` in the image's unpacked layers (top layer first).
fn file_in(store: &Store, img: &Image, path: &str) -> Option<Vec<u8>> {
    let dirs = ensure_layers(store, img).unwrap();
    dirs.iter().rev().find_map(|d| fs::read(d.join(path)).ok())
}

/// Fails the test unless `tool` runs (the tests that need one are
/// `#[ignore]`d unless asked for; they never return early and pass).
fn need(tool: &str) {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "did not run: {tool} is not installed (apt-get install {tool})"
    );
}

fn run(dir: &Path, argv: &[&str]) {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{argv:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A layout `L` made by umoci: image `L:t`, two layers: `/hello.txt` and
/// `/gone.txt`, then `/gone.txt` removed (a whiteout). (`umoci insert` of
/// umoci 0.4.7 writes a truncated layer tar, so unpack/repack it is.)
fn umoci_layout(dir: &Path) -> PathBuf {
    run(dir, &["umoci", "init", "--layout", "L"]);
    run(dir, &["umoci", "new", "--image", "L:t"]);
    run(dir, &["umoci", "unpack", "--image", "L:t", "B"]);
    fs::write(dir.join("B/rootfs/hello.txt"), b"hello from umoci\n").unwrap();
    fs::write(dir.join("B/rootfs/gone.txt"), b"x").unwrap();
    run(
        dir,
        &["umoci", "repack", "--refresh-bundle", "--image", "L:t", "B"],
    );
    fs::remove_file(dir.join("B/rootfs/gone.txt")).unwrap();
    run(dir, &["umoci", "repack", "--image", "L:t", "B"]);
    dir.join("L")
}

fn tar_dir(dir: &Path, out: &Path) {
    run(
        dir,
        &[
            "tar",
            "-C",
            dir.to_str().unwrap(),
            "-cf",
            out.to_str().unwrap(),
            ".",
        ],
    );
}

#[test]
#[ignore = "privileged: umoci unpack chowns; needs umoci"]
fn a_umoci_layout_imports_as_a_directory_and_as_tar_gzip_and_zstd() {
    need("umoci");
    let t = tempfile::tempdir().unwrap();
    let layout = umoci_layout(t.path());
    let (_s, store) = fresh();

    // umoci writes a bare tag as the ref name: it needs a repository.
    let e = refused(&store, &layout, None);
    assert!(matches!(e, ImportError::NeedsName { .. }), "{e}");
    assert!(e.to_string().contains("\"t\""), "{e}");

    let imgs = import(&store, &layout, Some(&name("app:1"))).unwrap();
    assert_eq!(imgs.len(), 1);
    let img = &imgs[0];
    assert_eq!(img.name.to_string(), "app:1");
    assert_eq!(names(&store), ["app:1"]);
    assert_eq!(
        store.resolve(&name("app:1")).unwrap().manifest_digest,
        img.manifest_digest
    );
    // The manifest is stored byte for byte (same digest as in the layout).
    let idx: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        idx["manifests"][0]["digest"],
        img.manifest_digest.to_string()
    );
    for l in img.layer_digests().unwrap() {
        assert!(store.has_blob(&l));
    }
    assert_eq!(
        file_in(&store, img, "hello.txt").unwrap(),
        b"hello from umoci\n"
    );
    // umoci's whiteout for the removed file, applied.
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let dirs = ensure_layers(&store, img).unwrap();
    assert_eq!(dirs.len(), 2);
    let wh = fs::symlink_metadata(dirs[1].join("gone.txt")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);

    // Two tags and a repository given: each tag becomes <repository>:<tag>.
    run(t.path(), &["umoci", "tag", "--image", "L:t", "t2"]);
    let imgs = import(&store, &layout, Some(&name("team/app"))).unwrap();
    let mut got: Vec<String> = imgs.iter().map(|i| i.name.to_string()).collect();
    got.sort();
    assert_eq!(got, ["team/app:t", "team/app:t2"]);
    assert!(imgs
        .iter()
        .all(|i| i.manifest_digest == img.manifest_digest));

    // The same layout as a tar, tar.gz and tar.zst, each into a new store.
    let tar_path = t.path().join("L.tar");
    tar_dir(&layout, &tar_path);
    let plain = fs::read(&tar_path).unwrap();
    let forms = [
        ("L.tar", plain.clone()),
        ("L.tar.gz", gzip(&plain)),
        ("L.tar.zst", zstd(&plain)),
    ];
    for (file, bytes) in &forms {
        let p = t.path().join(file);
        fs::write(&p, bytes).unwrap();
        let (_s2, s2) = fresh();
        let imgs = import(&s2, &p, Some(&name("app:1"))).unwrap();
        assert_eq!(
            imgs.len(),
            2,
            "{file}: both tags (the given name's tag is not used)"
        );
        let imgs = import(&s2, &p, None).err().unwrap();
        assert!(
            matches!(imgs, ImportError::NeedsName { .. }),
            "{file}: {imgs}"
        );
        // As a request body.
        let (_s3, s3) = fresh();
        let imgs = import_reader(&s3, &bytes[..], Some(&name("x/y"))).unwrap();
        assert_eq!(imgs[0].manifest_digest, img.manifest_digest, "{file}");
        assert_eq!(
            file_in(&s3, &imgs[0], "hello.txt").unwrap(),
            b"hello from umoci\n"
        );
        let left: Vec<_> = fs::read_dir(s3.tmp_dir()).unwrap().collect();
        assert!(left.is_empty(), "{file}: scratch left: {left:?}");
    }
}

#[test]
#[ignore = "privileged: umoci unpack chowns; needs umoci and skopeo"]
fn a_skopeo_oci_archive_imports() {
    need("umoci");
    need("skopeo");
    let t = tempfile::tempdir().unwrap();
    umoci_layout(t.path());
    // Without a reference skopeo writes no ref name at all.
    run(
        t.path(),
        &["skopeo", "copy", "oci:L:t", "oci-archive:X.tar"],
    );
    run(
        t.path(),
        &[
            "skopeo",
            "copy",
            "oci:L:t",
            "oci-archive:Y.tar:example.com/team/app:v2",
        ],
    );
    let (_s, store) = fresh();
    let e = refused(&store, &t.path().join("X.tar"), None);
    assert!(matches!(e, ImportError::NeedsName { .. }), "{e}");
    let imgs = import(&store, &t.path().join("X.tar"), Some(&name("app:1"))).unwrap();
    assert_eq!(imgs[0].name.to_string(), "app:1");
    assert_eq!(
        file_in(&store, &imgs[0], "hello.txt").unwrap(),
        b"hello from umoci\n"
    );
    // A full reference as the ref name is the image's name.
    let imgs = import(&store, &t.path().join("Y.tar"), None).unwrap();
    assert_eq!(imgs[0].name.to_string(), "example.com/team/app:v2");
    assert_eq!(names(&store), ["app:1", "example.com/team/app:v2"]);
}

// ---- crafted archives ----

/// An archive as (member name, content); written as a plain tar.
type Members = Vec<(String, Vec<u8>)>;

fn archive(members: &Members) -> Vec<u8> {
    let ents: Vec<Ent> = members.iter().map(|(n, d)| file(n, d)).collect();
    tar(&ents)
}

fn write(dir: &Path, file: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(file);
    fs::write(&p, bytes).unwrap();
    p
}

fn blob(bytes: &[u8]) -> (String, Vec<u8>) {
    (
        format!("blobs/sha256/{}", Digest::of(bytes).hex()),
        bytes.to_vec(),
    )
}

fn desc(media_type: &str, bytes: &[u8]) -> serde_json::Value {
    json!({"mediaType": media_type, "digest": Digest::of(bytes).to_string(), "size": bytes.len()})
}

fn config_json(arch: &str, diff_ids: &[&Digest]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Labels": {"a": "1", "b": "2", "c": "3", "d": "4"}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()},
    }))
    .unwrap()
}

/// An OCI image: (manifest bytes, its blobs including itself).
fn oci_image(arch: &str, layers: &[Layer]) -> (Vec<u8>, Members) {
    let ids: Vec<&Digest> = layers.iter().map(|l| &l.diff_id).collect();
    let config = config_json(arch, &ids);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc("application/vnd.oci.image.config.v1+json", &config),
        "layers": layers.iter().map(|l| desc(&l.media_type, &l.blob)).collect::<Vec<_>>(),
    }))
    .unwrap();
    let mut blobs = vec![blob(&config), blob(&manifest)];
    blobs.extend(layers.iter().map(|l| blob(&l.blob)));
    (manifest, blobs)
}

fn index_json(entries: &[serde_json::Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": entries})).unwrap()
}

fn with_ref(mut d: serde_json::Value, r: &str) -> serde_json::Value {
    d["annotations"] = json!({"org.opencontainers.image.ref.name": r});
    d
}

fn with_platform(mut d: serde_json::Value, arch: &str) -> serde_json::Value {
    d["platform"] = json!({"os": "linux", "architecture": arch});
    d
}

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A layout tar: oci-layout, index.json, blobs.
fn layout(index: Vec<u8>, blobs: Members) -> Members {
    let mut m = vec![
        (
            "oci-layout".to_string(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        ("index.json".to_string(), index),
    ];
    m.extend(blobs);
    m
}

fn hello_layer() -> Vec<u8> {
    tar(&[dir("etc"), file("etc/hello", b"hi\n")])
}

/// A well-formed one-image layout with ref name `r`.
fn simple_layout(r: &str) -> (Vec<u8>, Members) {
    let (m, blobs) = oci_image("amd64", &[gzipped(&hello_layer())]);
    let idx = index_json(&[with_ref(desc(MANIFEST, &m), r)]);
    (m, layout(idx, blobs))
}

/// A `docker save` image: the config (Docker's JSON), layer members.
struct DockerImg {
    config: Vec<u8>,
    layers: Vec<Vec<u8>>,
    tags: Vec<&'static str>,
}

fn docker_img(layers: Vec<Vec<u8>>, diff_ids: &[Digest], tags: Vec<&'static str>) -> DockerImg {
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "docker_version": "24.0.7",
        "container": "3f2a",
        "container_config": {"Hostname": "", "Cmd": null, "Volumes": null, "OnBuild": null, "Labels": null},
        "config": {
            "Hostname": "", "Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"], "Volumes": null,
            "ExposedPorts": {"80/tcp": {}}, "Entrypoint": null, "OnBuild": null,
            "Labels": {"maintainer": "x", "org.a": "1", "org.b": "2", "org.c": "3"},
        },
        "created": "2024-01-01T00:00:00Z",
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "ADD rootfs /"}],
        "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()},
    }))
    .unwrap();
    DockerImg {
        config,
        layers,
        tags,
    }
}

/// Legacy `docker save`: `<config hex>.json`, `<n>/layer.tar`.
fn docker_legacy(imgs: &[DockerImg]) -> Members {
    let mut members = Members::new();
    let mut list = Vec::new();
    for (i, img) in imgs.iter().enumerate() {
        let cname = format!("{}.json", Digest::of(&img.config).hex());
        members.push((cname.clone(), img.config.clone()));
        let mut layers = Vec::new();
        for (j, l) in img.layers.iter().enumerate() {
            let n = format!("{:064x}/layer.tar", i * 100 + j);
            members.push((n.clone(), l.clone()));
            layers.push(n);
        }
        list.push(json!({"Config": cname, "RepoTags": img.tags, "Layers": layers}));
    }
    members.push(("manifest.json".into(), serde_json::to_vec(&list).unwrap()));
    members
}

/// Docker 25+ `docker save`: an OCI layout whose blobs manifest.json names.
fn docker_25(img: &DockerImg) -> Members {
    let mut members = vec![
        (
            "oci-layout".to_string(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        blob(&img.config),
    ];
    let mut layers = Vec::new();
    for l in &img.layers {
        let b = blob(l);
        layers.push(b.0.clone());
        members.push(b);
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": desc("application/vnd.oci.image.config.v1+json", &img.config),
        "layers": img.layers.iter().map(|l| desc("application/vnd.oci.image.layer.v1.tar", l)).collect::<Vec<_>>(),
    }))
    .unwrap();
    members.push(blob(&manifest));
    // Docker's index.json carries bare tags; manifest.json the full names.
    members.push((
        "index.json".into(),
        index_json(&[with_ref(desc(MANIFEST, &manifest), "1")]),
    ));
    members.push((
        "manifest.json".into(),
        serde_json::to_vec(&json!([{
            "Config": blob(&img.config).0,
            "RepoTags": img.tags,
            "Layers": layers,
        }]))
        .unwrap(),
    ));
    members
}

#[test]
#[ignore = "privileged: unpacking chowns to the layer owners"]
fn a_legacy_docker_save_archive_imports_with_its_repo_tags() {
    let t = tempfile::tempdir().unwrap();
    let base = tar(&[
        dir("etc"),
        file("etc/base", b"base\n"),
        dir("opt"),
        file("opt/old", b"o"),
    ]);
    // Second layer: a whiteout and an opaque directory.
    let top = tar(&[
        file("etc/top", b"top\n"),
        file("etc/.wh.base", b""),
        dir("opt"),
        file("opt/.wh..wh..opq", b""),
        file("opt/new", b"n"),
    ]);
    let img = docker_img(
        vec![base.clone(), top.clone()],
        &[Digest::of(&base), Digest::of(&top)],
        vec!["app:1", "localhost:5000/team/app:v2"],
    );
    let p = write(t.path(), "save.tar", &archive(&docker_legacy(&[img])));
    let (_s, store) = fresh();
    let imgs = import(&store, &p, None).unwrap();
    let got: Vec<String> = imgs.iter().map(|i| i.name.to_string()).collect();
    assert_eq!(got, ["app:1", "localhost:5000/team/app:v2"]);
    assert_eq!(names(&store), ["app:1", "localhost:5000/team/app:v2"]);
    let img = store.resolve(&name("app:1")).unwrap();
    assert_eq!(
        img.diff_ids().unwrap(),
        [Digest::of(&base), Digest::of(&top)]
    );
    assert_eq!(
        img.config.config().as_ref().unwrap().cmd().as_deref(),
        Some(&["/bin/sh".to_string()][..])
    );
    // Plain tars are stored as they are: the layer digest is the diff_id.
    assert_eq!(img.layer_digests().unwrap(), img.diff_ids().unwrap());
    let dirs = ensure_layers(&store, &img).unwrap();
    assert_eq!(fs::read(dirs[1].join("etc/top")).unwrap(), b"top\n");
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let wh = fs::symlink_metadata(dirs[1].join("etc/base")).unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "whiteout as a 0/0 device"
    );
    assert_eq!(
        xattr::get(dirs[1].join("opt"), rootfs_builder::unpack::OPAQUE_XATTR)
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    // A given name replaces the RepoTags of an archive's only image.
    let imgs = import(&store, &p, Some(&name("other:x"))).unwrap();
    assert_eq!(imgs.len(), 1);
    assert_eq!(imgs[0].manifest_digest, img.manifest_digest);
}

#[test]
#[ignore = "privileged: unpacking chowns to the layer owners"]
fn two_images_sharing_a_layer_by_symlink() {
    let t = tempfile::tempdir().unwrap();
    let l = hello_layer();
    let a = docker_img(vec![l.clone()], &[Digest::of(&l)], vec!["a:1"]);
    let b = docker_img(
        vec![l.clone(), hello_layer()],
        &[Digest::of(&l), Digest::of(&l)],
        vec!["b:1"],
    );
    let mut members = docker_legacy(&[a, b]);
    // docker save links a repeated layer to its first copy.
    let linked = format!("{:064x}/layer.tar", 100);
    members.retain(|(n, _)| *n != linked);
    let mut ents: Vec<Ent> = members.iter().map(|(n, d)| file(n, d)).collect();
    let target = format!("../{:064x}/layer.tar", 0);
    ents.push(symlink(&linked, &target));
    let p = write(t.path(), "save.tar", &tar(&ents));
    let (_s, store) = fresh();
    let imgs = import(&store, &p, None).unwrap();
    assert_eq!(imgs.len(), 2);
    assert_eq!(names(&store), ["a:1", "b:1"]);
    assert_eq!(file_in(&store, &imgs[1], "etc/hello").unwrap(), b"hi\n");
}

#[test]
#[ignore = "privileged: unpacking chowns to the layer owners"]
fn a_docker_25_archive_imports_by_manifest_json() {
    let t = tempfile::tempdir().unwrap();
    let l = hello_layer();
    let img = docker_img(
        vec![l.clone()],
        &[Digest::of(&l)],
        vec!["docker.io/library/app:1"],
    );
    let p = write(t.path(), "save.tar", &archive(&docker_25(&img)));
    let (_s, store) = fresh();
    let imgs = import(&store, &p, None).unwrap();
    assert_eq!(imgs.len(), 1);
    assert_eq!(names(&store), ["docker.io/library/app:1"]);
    assert_eq!(file_in(&store, &imgs[0], "etc/hello").unwrap(), b"hi\n");
    // Docker's image ID (the config digest) is kept.
    assert_eq!(imgs[0].config_digest, Digest::of(&img.config));
}

#[test]
#[ignore = "privileged: unpacking chowns to the layer owners"]
fn compressed_layers_in_a_docker_archive_are_checked_against_their_diff_ids() {
    let t = tempfile::tempdir().unwrap();
    let l = hello_layer();
    for (label, blob, media_type) in [
        (
            "gzip",
            gzip(&l),
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ),
        (
            "zstd",
            zstd(&l),
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
    ] {
        let img = docker_img(vec![blob.clone()], &[Digest::of(&l)], vec!["app:1"]);
        let p = write(t.path(), "save.tar", &archive(&docker_legacy(&[img])));
        let (_s, store) = fresh();
        let imgs = import(&store, &p, None).unwrap();
        let m = &imgs[0].manifest;
        assert_eq!(
            m.layers()[0].media_type().to_string(),
            media_type,
            "{label}"
        );
        assert_eq!(
            imgs[0].layer_digests().unwrap(),
            [Digest::of(&blob)],
            "{label}"
        );
        assert_eq!(
            file_in(&store, &imgs[0], "etc/hello").unwrap(),
            b"hi\n",
            "{label}"
        );
    }
}

#[test]
fn a_diff_id_mismatch_is_refused_naming_the_layer() {
    let t = tempfile::tempdir().unwrap();
    let l = hello_layer();
    let wrong = Digest::of(b"something else");
    for (label, blob) in [("plain", l.clone()), ("gzip", gzip(&l)), ("zstd", zstd(&l))] {
        let img = docker_img(
            vec![l.clone(), blob],
            &[Digest::of(&l), wrong.clone()],
            vec!["app:1"],
        );
        let p = write(t.path(), "save.tar", &archive(&docker_legacy(&[img])));
        let (_s, store) = fresh();
        let e = refused(&store, &p, None);
        let ImportError::DiffIdMismatch {
            index,
            member,
            expected,
            actual,
        } = &e
        else {
            panic!("{label}: {e}");
        };
        assert_eq!(
            (*index, expected, actual),
            (1, &wrong, &Digest::of(&l)),
            "{label}"
        );
        assert_eq!(*member, format!("{:064x}/layer.tar", 1), "{label}");
        assert!(e.to_string().contains("layer 1"), "{label}: {e}");
    }
}

// ---- hostile and invalid outer archives ----

#[test]
fn member_names_with_dot_dot_or_absolute_paths_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let (_s, store) = fresh();
    let (_, good) = simple_layout("app:1");
    for bad in [
        "../index.json",
        "/index.json",
        "blobs/../../x",
        "/etc/passwd",
    ] {
        let mut m = good.clone();
        m.push((bad.into(), b"{}".to_vec()));
        let p = write(t.path(), "x.tar", &archive(&m));
        let e = refused(&store, &p, None);
        assert!(matches!(e, ImportError::Invalid { .. }), "{bad}: {e}");
        assert!(e.to_string().contains(bad), "{bad}: {e}");
    }
    // manifest.json naming paths outside the archive.
    let l = hello_layer();
    for bad in ["../layer.tar", "/etc/passwd", "a/../../layer.tar"] {
        let img = docker_img(vec![l.clone()], &[Digest::of(&l)], vec!["app:1"]);
        let mut m = docker_legacy(&[img]);
        let (_, list) = m.iter_mut().find(|(n, _)| n == "manifest.json").unwrap();
        let mut v: serde_json::Value = serde_json::from_slice(list).unwrap();
        v[0]["Layers"][0] = json!(bad);
        *list = serde_json::to_vec(&v).unwrap();
        let p = write(t.path(), "x.tar", &archive(&m));
        let e = refused(&store, &p, None);
        assert!(e.to_string().contains(bad), "{bad}: {e}");
    }
}

#[test]
fn a_blob_whose_content_does_not_match_its_digest_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let (m, good) = simple_layout("app:1");
    // The layer, the config and the manifest in turn replaced. (A new store
    // each time: a blob already stored is not read from the archive.)
    for which in 0..3 {
        let (_s, store) = fresh();
        let mut members = good.clone();
        let target = match which {
            0 => members
                .iter()
                .position(|(n, d)| n.starts_with("blobs/") && d.starts_with(&[0x1f, 0x8b])),
            1 => members
                .iter()
                .position(|(n, d)| n.starts_with("blobs/") && d.starts_with(b"{\"architecture")),
            _ => members.iter().position(|(n, _)| *n == blob(&m).0),
        }
        .unwrap();
        let name = members[target].0.clone();
        let len = members[target].1.len();
        // Same size, different bytes.
        members[target].1 = vec![b' '; len];
        let p = write(t.path(), "x.tar", &archive(&members));
        let e = refused(&store, &p, None);
        assert!(
            matches!(e, ImportError::Store(StoreError::DigestMismatch { .. })),
            "{which}: {e}"
        );
        assert!(
            e.to_string()
                .contains(name.trim_start_matches("blobs/sha256/")),
            "{which}: {e}"
        );
    }
}

#[test]
fn a_descriptor_size_lie_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let (_s, store) = fresh();
    let l = gzipped(&hello_layer());
    let (m, blobs) = oci_image("amd64", std::slice::from_ref(&l));
    let mut v: serde_json::Value = serde_json::from_slice(&m).unwrap();
    for lie in [l.blob.len() as u64 - 1, l.blob.len() as u64 + 1] {
        v["layers"][0]["size"] = json!(lie);
        let m2 = serde_json::to_vec(&v).unwrap();
        let mut members = blobs.clone();
        members.push(blob(&m2));
        let p = write(
            t.path(),
            "x.tar",
            &archive(&layout(
                index_json(&[with_ref(desc(MANIFEST, &m2), "app:1")]),
                members,
            )),
        );
        let e = refused(&store, &p, None);
        let ImportError::SizeMismatch {
            digest,
            expected,
            actual,
        } = &e
        else {
            panic!("{lie}: {e}");
        };
        assert_eq!(
            (digest, *expected, *actual),
            (&Digest::of(&l.blob), lie, l.blob.len() as u64)
        );
    }
    // The manifest's own descriptor in index.json lying.
    let mut d = with_ref(desc(MANIFEST, &m), "app:1");
    d["size"] = json!(m.len() + 10);
    let p = write(
        t.path(),
        "x.tar",
        &archive(&layout(index_json(&[d]), blobs.clone())),
    );
    let e = refused(&store, &p, None);
    assert!(matches!(e, ImportError::SizeMismatch { .. }), "{e}");
    // And once the layer is in the store already, the lie is still seen.
    let p = write(
        t.path(),
        "ok.tar",
        &archive(&layout(
            index_json(&[with_ref(desc(MANIFEST, &m), "app:1")]),
            blobs.clone(),
        )),
    );
    import(&store, &p, None).unwrap();
    v["layers"][0]["size"] = json!(l.blob.len() + 1);
    let m2 = serde_json::to_vec(&v).unwrap();
    let mut members = blobs.clone();
    members.push(blob(&m2));
    let p = write(
        t.path(),
        "x.tar",
        &archive(&layout(
            index_json(&[with_ref(desc(MANIFEST, &m2), "app:2")]),
            members,
        )),
    );
    let e = refused(&store, &p, None);
    assert!(matches!(e, ImportError::SizeMismatch { .. }), "{e}");
}

#[test]
#[ignore = "privileged: unpacking chowns to the layer owners"]
fn platforms_resolve_to_linux_amd64_or_are_listed() {
    let t = tempfile::tempdir().unwrap();
    let (_s, store) = fresh();
    let (arm, arm_blobs) = oci_image("arm64", &[gzipped(&hello_layer())]);
    let (s390, s390_blobs) = oci_image("s390x", &[gzipped(&tar(&[file("s", b"s")]))]);
    let (amd, amd_blobs) = oci_image("amd64", &[gzipped(&tar(&[file("amd", b"amd64\n")]))]);
    let mut all = arm_blobs.clone();
    all.extend(s390_blobs.clone());
    all.extend(amd_blobs.clone());

    // A nested index (manifest list) without amd64.
    let list = index_json(&[
        with_platform(desc(MANIFEST, &arm), "arm64"),
        with_platform(desc(MANIFEST, &s390), "s390x"),
    ]);
    let mut members = all.clone();
    members.push(blob(&list));
    let p = write(
        t.path(),
        "x.tar",
        &archive(&layout(
            index_json(&[with_ref(desc(INDEX, &list), "app:1")]),
            members,
        )),
    );
    let e = refused(&store, &p, None);
    assert!(matches!(e, ImportError::NoPlatform { .. }), "{e}");
    assert!(e.to_string().contains("linux/arm64, linux/s390x"), "{e}");

    // index.json itself listing only other platforms.
    let idx = index_json(&[
        with_ref(with_platform(desc(MANIFEST, &arm), "arm64"), "app:1"),
        with_ref(with_platform(desc(MANIFEST, &s390), "s390x"), "app:1"),
    ]);
    let p = write(t.path(), "x.tar", &archive(&layout(idx, all.clone())));
    let e = refused(&store, &p, None);
    assert!(e.to_string().contains("linux/arm64, linux/s390x"), "{e}");

    // A single manifest whose config is arm64.
    let p = write(
        t.path(),
        "x.tar",
        &archive(&layout(
            index_json(&[with_ref(desc(MANIFEST, &arm), "app:1")]),
            all.clone(),
        )),
    );
    let e = refused(&store, &p, None);
    assert!(e.to_string().contains("linux/arm64"), "{e}");

    // A manifest list with amd64 among others: amd64 is chosen.
    let list = index_json(&[
        with_platform(desc(MANIFEST, &arm), "arm64"),
        with_platform(desc(MANIFEST, &amd), "amd64"),
        with_platform(desc(MANIFEST, &s390), "s390x"),
    ]);
    let mut members = all.clone();
    members.push(blob(&list));
    let p = write(
        t.path(),
        "x.tar",
        &archive(&layout(
            index_json(&[with_ref(desc(INDEX, &list), "app:1")]),
            members,
        )),
    );
    let imgs = import(&store, &p, None).unwrap();
    assert_eq!(imgs[0].manifest_digest, Digest::of(&amd));
    assert_eq!(file_in(&store, &imgs[0], "amd").unwrap(), b"amd64\n");
}

#[test]
fn a_missing_blob_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let (m, good) = simple_layout("app:1");
    for which in ["layer", "config", "manifest"] {
        let (_s, store) = fresh();
        let mut members = good.clone();
        let gone = match which {
            "layer" => members
                .iter()
                .position(|(_, d)| d.starts_with(&[0x1f, 0x8b])),
            "config" => members
                .iter()
                .position(|(_, d)| d.starts_with(b"{\"architecture")),
            _ => members.iter().position(|(n, _)| *n == blob(&m).0),
        }
        .unwrap();
        let gone = members.remove(gone).0;
        let p = write(t.path(), "x.tar", &archive(&members));
        let e = refused(&store, &p, None);
        assert!(matches!(e, ImportError::Missing { .. }), "{which}: {e}");
        assert!(e.to_string().contains(&gone), "{which}: {e}");
    }
    // A docker archive's layer missing.
    let (_s, store) = fresh();
    let l = hello_layer();
    let mut m = docker_legacy(&[docker_img(
        vec![l.clone()],
        &[Digest::of(&l)],
        vec!["app:1"],
    )]);
    m.retain(|(n, _)| !n.ends_with("layer.tar"));
    let p = write(t.path(), "x.tar", &archive(&m));
    let e = refused(&store, &p, None);
    assert!(matches!(e, ImportError::Missing { .. }), "{e}");
}

#[test]
fn what_is_not_an_image_is_refused_clearly() {
    let t = tempfile::tempdir().unwrap();
    let (_s, store) = fresh();
    let e = refused(
        &store,
        &write(
            t.path(),
            "a.tar",
            &archive(&vec![("README".into(), b"hi".to_vec())]),
        ),
        None,
    );
    assert!(matches!(e, ImportError::NotAnImage { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("neither an OCI image layout nor a docker save archive"),
        "{e}"
    );
    let e = refused(
        &store,
        &write(
            t.path(),
            "a.tar.gz",
            &gzip(&archive(&vec![("x".into(), b"x".to_vec())])),
        ),
        None,
    );
    assert!(matches!(e, ImportError::NotAnImage { .. }), "{e}");
    let e = refused(&store, &write(t.path(), "a.json", &vec![b'{'; 4096]), None);
    assert!(matches!(e, ImportError::Invalid { .. }), "{e}");
    assert!(e.to_string().contains("reading it as a tar"), "{e}");
    let e = refused(&store, &write(t.path(), "a.xz", b"\xfd7zXZ\0rest"), None);
    assert!(
        e.to_string().contains("xz compression is not supported"),
        "{e}"
    );
    let e = refused(&store, t.path(), None);
    assert!(matches!(e, ImportError::NotAnImage { .. }), "{e}");
    let e = import_reader(&store, &b""[..], None).unwrap_err();
    assert!(matches!(e, ImportError::NotAnImage { .. }), "{e}");
    assert!(fs::read_dir(store.tmp_dir()).unwrap().next().is_none());
    // A layout whose index.json is not JSON.
    let members = layout(b"not json".to_vec(), Members::new());
    let e = refused(&store, &write(t.path(), "x.tar", &archive(&members)), None);
    assert!(e.to_string().starts_with("index.json:"), "{e}");
    // Layers that are not layers (an artifact).
    let (m, blobs) = oci_image(
        "amd64",
        &[Layer {
            blob: b"sig".to_vec(),
            media_type: "application/vnd.dev.cosign.simplesigning.v1+json".into(),
            diff_id: Digest::of(b"sig"),
        }],
    );
    let members = layout(index_json(&[with_ref(desc(MANIFEST, &m), "app:1")]), blobs);
    let e = refused(&store, &write(t.path(), "x.tar", &archive(&members)), None);
    assert!(
        e.to_string().contains("is not a container image layer"),
        "{e}"
    );
}

#[test]
fn an_image_without_a_name_needs_one() {
    let t = tempfile::tempdir().unwrap();
    let (_s, store) = fresh();
    let (m, blobs) = oci_image("amd64", &[gzipped(&hello_layer())]);
    let p = write(
        t.path(),
        "x.tar",
        &archive(&layout(index_json(&[desc(MANIFEST, &m)]), blobs)),
    );
    let e = refused(&store, &p, None);
    assert!(matches!(e, ImportError::NeedsName { .. }), "{e}");
    assert!(e.to_string().contains("--name"), "{e}");
    // docker save of an image by ID: no RepoTags.
    let l = hello_layer();
    let p = write(
        t.path(),
        "d.tar",
        &archive(&docker_legacy(&[docker_img(
            vec![l.clone()],
            &[Digest::of(&l)],
            vec![],
        )])),
    );
    let e = refused(&store, &p, None);
    assert!(matches!(e, ImportError::NeedsName { .. }), "{e}");
    let imgs = import(&store, &p, Some(&name("given:1"))).unwrap();
    assert_eq!(imgs[0].name.to_string(), "given:1");
}

#[test]
fn importing_the_same_archive_twice_is_idempotent() {
    let t = tempfile::tempdir().unwrap();
    let l = hello_layer();
    let docker = write(
        t.path(),
        "d.tar",
        &archive(&docker_legacy(&[docker_img(
            vec![gzip(&l)],
            &[Digest::of(&l)],
            vec!["app:1"],
        )])),
    );
    let (_, oci) = simple_layout("oci:1");
    let oci = write(t.path(), "o.tar.zst", &zstd(&archive(&oci)));
    let (_s, store) = fresh();
    for p in [&docker, &oci] {
        let first = import(&store, p, None).unwrap();
        let blobs = fs::read_dir(store.layout_dir().join("blobs/sha256"))
            .unwrap()
            .count();
        let second = import(&store, p, None).unwrap();
        assert_eq!(
            first[0].manifest_digest,
            second[0].manifest_digest,
            "{}",
            p.display()
        );
        assert_eq!(
            fs::read_dir(store.layout_dir().join("blobs/sha256"))
                .unwrap()
                .count(),
            blobs
        );
        // A new process (a new HashMap seed) converts the same way too.
        let (_s2, other) = fresh();
        assert_eq!(
            import(&other, p, None).unwrap()[0].manifest_digest,
            first[0].manifest_digest
        );
    }
    assert_eq!(names(&store), ["app:1", "oci:1"]);
    let idx = store.index().unwrap();
    assert_eq!(idx.manifests().len(), 2);
}

#[test]
fn decompression_bombs_stop_at_the_limits_and_leave_no_scratch() {
    let t = tempfile::tempdir().unwrap();
    let (_s, store) = fresh();
    let limits = ImportLimits {
        max_archive_bytes: 1 << 20,
        max_layer_bytes: 1 << 20,
    };
    // An outer archive: 8 MiB of tar in a few KiB of gzip / zstd.
    let big = vec![0u8; 8 << 20];
    let (_, mut members) = simple_layout("app:1");
    members.push(("padding".into(), big.clone()));
    let plain = archive(&members);
    for (label, bytes) in [("gzip", gzip(&plain)), ("zstd", zstd(&plain))] {
        assert!(bytes.len() < 1 << 20, "{label}: {}", bytes.len());
        let before = snapshot(&store);
        let e = import_reader_with(&store, &bytes[..], None, &limits).unwrap_err();
        assert!(
            e.to_string()
                .contains("more than the limit of 1048576 bytes"),
            "{label}: {e}"
        );
        assert_unchanged(&store, &before);
        let p = write(t.path(), "bomb", &bytes);
        let e = import_with(&store, &p, None, &limits).unwrap_err();
        assert!(
            e.to_string().contains("more than the limit"),
            "{label}: {e}"
        );
        assert_unchanged(&store, &before);
    }
    // A docker save layer that decompresses past the cap.
    let layer = tar(&[file("big", &big)]);
    let img = docker_img(vec![zstd(&layer)], &[Digest::of(&layer)], vec!["app:1"]);
    let p = write(t.path(), "d.tar", &archive(&docker_legacy(&[img])));
    let before = snapshot(&store);
    let e = import_with(&store, &p, None, &limits).unwrap_err();
    assert!(
        e.to_string().contains("layer.tar: more than the limit"),
        "{e}"
    );
    assert_unchanged(&store, &before);
    // Within the default limits the same archive imports.
    import(&store, &p, None).unwrap();
}

#[test]
fn a_truncated_archive_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let (_s, store) = fresh();
    let (_, members) = simple_layout("app:1");
    let whole = archive(&members);
    // Cut inside the last member (the layer): the archive's fault, not an
    // I/O error of the store; and before its header: a missing blob.
    for (cut, why) in [
        (
            whole.len() - 1024 - 512 + 50,
            "the archive ends inside it (truncated)",
        ),
        (
            whole.len() - 1024 - 512 - 512,
            "is missing from the archive",
        ),
    ] {
        let p = write(t.path(), "cut.tar", &whole[..cut]);
        let e = refused(&store, &p, None);
        assert!(
            matches!(e, ImportError::Invalid { .. } | ImportError::Missing { .. }),
            "{cut}: {e}"
        );
        assert!(e.to_string().contains(why), "{cut}: {e}");
    }
}

/// Writes `members` as files under `dir`.
fn extract(members: &Members, dir: &Path) {
    for (n, d) in members {
        let p = dir.join(n);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, d).unwrap();
    }
}

#[test]
fn a_directory_import_follows_no_symlink_out_of_it() {
    let t = tempfile::tempdir().unwrap();
    let (m, members) = simple_layout("app:1");
    let layer = members
        .iter()
        .find(|(_, d)| d.starts_with(&[0x1f, 0x8b]))
        .unwrap()
        .clone();
    // The blob's true content, outside the layout, linked in.
    let outside = write(t.path(), "outside", &layer.1);
    let dir = t.path().join("L");
    extract(&members, &dir);
    fs::remove_file(dir.join(&layer.0)).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join(&layer.0)).unwrap();
    let (_s, store) = fresh();
    let e = refused(&store, &dir, None);
    assert!(e.to_string().contains("leads out of the directory"), "{e}");
    // A relative link inside the layout is fine.
    fs::remove_file(dir.join(&layer.0)).unwrap();
    fs::write(dir.join("blobs/copy"), &layer.1).unwrap();
    std::os::unix::fs::symlink("../copy", dir.join(&layer.0)).unwrap();
    let imgs = import(&store, &dir, None).unwrap();
    assert_eq!(imgs[0].manifest_digest, Digest::of(&m));
    // A FIFO where the manifest should be: missing, and no hang.
    let (_s, store) = fresh();
    let mpath = dir.join(blob(&m).0);
    fs::remove_file(&mpath).unwrap();
    nix::unistd::mkfifo(&mpath, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let e = refused(&store, &dir, None);
    assert!(matches!(e, ImportError::Missing { .. }), "{e}");
    // An extracted docker save with its shared-layer symlink imports.
    let l = hello_layer();
    let a = docker_img(vec![l.clone()], &[Digest::of(&l)], vec!["a:1"]);
    let b = docker_img(vec![l.clone()], &[Digest::of(&l)], vec!["b:1"]);
    let mut members = docker_legacy(&[a, b]);
    let linked = format!("{:064x}/layer.tar", 100);
    members.retain(|(n, _)| *n != linked);
    let dir = t.path().join("D");
    extract(&members, &dir);
    fs::create_dir_all(dir.join(&linked).parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(format!("../{:064x}/layer.tar", 0), dir.join(&linked)).unwrap();
    let imgs = import(&store, &dir, None).unwrap();
    assert_eq!(imgs.len(), 2);
}
