//! Image fixtures made here, byte by byte: a small OCI image layout holding
//! busybox, so image tests need no network, registry or build.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::{Digest, Sha256};

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn put(blobs: &Path, bytes: &[u8]) -> String {
    let h = hex(bytes);
    fs::write(blobs.join(&h), bytes).unwrap();
    format!("sha256:{h}")
}

fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32, uid: u64) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(uid);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, path, data).unwrap();
}

fn dir(b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, uid: u64) {
    let mut h = tar::Header::new_gnu();
    h.set_size(0);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(uid);
    h.set_entry_type(tar::EntryType::Directory);
    b.append_data(&mut h, path, &[][..]).unwrap();
}

fn link(b: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
    let mut h = tar::Header::new_gnu();
    h.set_size(0);
    h.set_mode(0o777);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Symlink);
    b.append_link(&mut h, path, target).unwrap();
}

/// The applets the fixture links to busybox.
pub const APPLETS: &[&str] = &[
    "sh", "cat", "ls", "id", "stat", "echo", "sleep", "test", "env", "pwd", "rm", "dd", "wc",
    "grep", "mkdir", "touch",
];

/// An OCI image layout at `dest` with one image, ref name `tag`:
/// - layer 1 (tar): /bin/busybox and applet links, /etc/passwd (root and
///   `app` = 1234:2345), /etc/group, /etc/release = "base", /etc/removed,
///   /srv (the workdir, owned by 1000:1000), /tmp;
/// - layer 2 (tar+gzip): /hello.txt = "hello from layer 2", a whiteout of
///   /etc/removed, /etc/release = "top";
/// - config: Env PATH=/bin and GREETING=hi, WorkingDir /srv, Cmd
///   `sh -c 'echo default-cmd'`.
///
/// Returns the manifest digest.
pub fn busybox_layout(dest: &Path, tag: &str) -> String {
    let blobs = dest.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let mut l1 = tar::Builder::new(Vec::new());
    for d in ["bin/", "etc/", "srv/", "tmp/", "proc/", "dev/"] {
        let mode = if d == "tmp/" { 0o1777 } else { 0o755 };
        // The workdir belongs to the default user (1000), as a workspace.
        dir(&mut l1, d, mode, if d == "srv/" { 1000 } else { 0 });
    }
    let busybox = fs::read("/bin/busybox").expect("busybox-static at /bin/busybox");
    file(&mut l1, "bin/busybox", &busybox, 0o755, 0);
    for a in APPLETS {
        link(&mut l1, &format!("bin/{a}"), "busybox");
    }
    file(
        &mut l1,
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\napp:x:1234:2345:app:/srv:/bin/sh\n",
        0o644,
        0,
    );
    file(&mut l1, "etc/group", b"root:x:0:\napp:x:2345:\n", 0o644, 0);
    file(&mut l1, "etc/release", b"base\n", 0o644, 0);
    file(&mut l1, "etc/removed", b"should be gone\n", 0o644, 0);
    let l1 = l1.into_inner().unwrap();

    let mut l2 = tar::Builder::new(Vec::new());
    file(&mut l2, "hello.txt", b"hello from layer 2\n", 0o644, 0);
    dir(&mut l2, "etc/", 0o755, 0);
    file(&mut l2, "etc/.wh.removed", b"", 0o644, 0);
    file(&mut l2, "etc/release", b"top\n", 0o644, 0);
    let l2 = l2.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&l2).unwrap();
    let l2gz = gz.finish().unwrap();

    let d1 = put(&blobs, &l1);
    let d2 = put(&blobs, &l2gz);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/bin", "GREETING=hi"],
            "WorkingDir": "/srv",
            "Cmd": ["sh", "-c", "echo default-cmd"]
        },
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", hex(&l1)), format!("sha256:{}", hex(&l2))]},
        "history": [{"created_by": "fixture layer 1"}, {"created_by": "fixture layer 2"}]
    }))
    .unwrap();
    let dc = put(&blobs, &config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": dc, "size": config.len()},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d1, "size": l1.len()},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d2, "size": l2gz.len()}
        ]
    }))
    .unwrap();
    let dm = put(&blobs, &manifest);
    fs::write(
        dest.join("index.json"),
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": dm, "size": manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": tag}
            }]
        }))
        .unwrap(),
    )
    .unwrap();
    fs::write(
        dest.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    dm
}

/// The layout as one tar (what `POST /v1/images/import` takes).
pub fn tar_of(dir: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.append_dir_all(".", dir).unwrap();
    b.into_inner().unwrap()
}

/// Number of unpacked layer directories and their total disk use (KiB, du).
pub fn layers_on_disk(data_dir: &Path) -> (usize, u64) {
    let dir: PathBuf = data_dir.join("layers/sha256");
    let n = fs::read_dir(&dir)
        .map(|it| {
            it.filter_map(Result::ok)
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .count()
        })
        .unwrap_or(0);
    (n, du_kib(data_dir))
}

/// `du -sk`.
pub fn du_kib(p: &Path) -> u64 {
    let out = std::process::Command::new("du")
        .arg("-sk")
        .arg(p)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
