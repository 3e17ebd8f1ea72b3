//! Hostile roots: images (and rootfs directories) whose mount points are
//! symlinks to `/`, `/proc`, `/etc` or `..`, or regular files. Before the
//! fix, an image with `workspace -> /proc` started a session and the files
//! API read the host's `/proc` through it (issue 12, point 1).
//!
//! Each crafted root must be refused with a clear error (422 `image_invalid`
//! from the API, one line from the CLI) and leave nothing behind: no
//! session, no helper process, no cgroup. Whatever happens, no response
//! may carry the host's PID 1 command line or its `/etc/hostname`.
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use runtimed_tests::daemon;
use runtimed_tests::daemon::{Daemon, Resp};
use runtimed_tests::images::{busybox_layout, tar_of};
use runtimed_tests::serde_json::{json, Value};
use runtimed_tests::{
    harness, host_cgroup_dirs, host_hostname, host_secrets, runtimed_bin, wait_for, TempDir,
};
use runtimed_tests::{EXIT_RUNTIMED_FAILED, PROBE_IN_SANDBOX};
use sha2::{Digest, Sha256};

/// The tests of this file look at the session cgroups of the shared
/// `runtimed` parent directory: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// What the top layer puts at a mount point.
#[derive(Clone, Copy, Debug)]
enum Planted {
    Link(&'static str),
    File,
}

/// Mount points and what is planted there. `tmp`, `proc` and `dev` are
/// directories in the fixture's first layer: the top layer's entry hides
/// them, as a later layer does in any image.
const CASES: &[(&str, Planted)] = &[
    ("workspace", Planted::Link("/proc")),
    ("workspace", Planted::Link("/")),
    ("workspace", Planted::Link("/etc")),
    ("workspace", Planted::Link("..")),
    ("workspace", Planted::File),
    ("tmp", Planted::Link("/")),
    ("tmp", Planted::Link("/proc")),
    ("tmp", Planted::Link("/etc")),
    ("tmp", Planted::Link("..")),
    ("tmp", Planted::File),
    ("proc", Planted::Link("/")),
    ("proc", Planted::Link("/etc")),
    ("proc", Planted::Link("..")),
    ("proc", Planted::File),
    ("dev", Planted::Link("/")),
    ("dev", Planted::Link("/proc")),
    ("dev", Planted::Link("/etc")),
    ("dev", Planted::Link("..")),
    ("dev", Planted::File),
];

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Adds a layer (an uncompressed tar) on top of the image of the layout:
/// new config (diff_ids), manifest and index.
fn add_top_layer(layout: &Path, layer: &[u8]) {
    let blobs = layout.join("blobs/sha256");
    let put = |bytes: &[u8]| {
        let h = hex(bytes);
        std::fs::write(blobs.join(&h), bytes).unwrap();
        format!("sha256:{h}")
    };
    let blob = |digest: &Value| blobs.join(digest.as_str().unwrap().trim_start_matches("sha256:"));
    let mut index = read_json(&layout.join("index.json"));
    let mut manifest = read_json(&blob(&index["manifests"][0]["digest"]));
    let mut config = read_json(&blob(&manifest["config"]["digest"]));
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .unwrap()
        .push(json!(format!("sha256:{}", hex(layer))));
    config["history"]
        .as_array_mut()
        .unwrap()
        .push(json!({"created_by": "hostile layer"}));
    let config = serde_json::to_vec(&config).unwrap();
    manifest["config"]["digest"] = json!(put(&config));
    manifest["config"]["size"] = json!(config.len());
    manifest["layers"].as_array_mut().unwrap().push(json!({
        "mediaType": "application/vnd.oci.image.layer.v1.tar",
        "digest": put(layer),
        "size": layer.len(),
    }));
    let manifest = serde_json::to_vec(&manifest).unwrap();
    index["manifests"][0]["digest"] = json!(put(&manifest));
    index["manifests"][0]["size"] = json!(manifest.len());
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
}

/// A layer holding only `name` as `planted`.
fn planted_layer(name: &str, planted: Planted) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    match planted {
        Planted::Link(target) => {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_mode(0o777);
            h.set_size(0);
            b.append_link(&mut h, name, target).unwrap();
        }
        Planted::File => {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(6);
            b.append_data(&mut h, name, &b"a file"[..]).unwrap();
        }
    }
    b.into_inner().unwrap()
}

/// The busybox fixture with `name` planted on top, as an OCI layout.
fn hostile_layout(dest: &Path, name: &str, planted: Planted) {
    busybox_layout(dest, "1");
    add_top_layer(dest, &planted_layer(name, planted));
}

/// A name for the image of case `i`.
fn image_name(i: usize) -> String {
    format!("hostile-{i}:1")
}

fn assert_no_host_secret(what: &str, body: &[u8], secrets: &[Vec<u8>]) {
    assert_ne!(
        Some(body),
        host_hostname().as_deref(),
        "{what}: the host's /etc/hostname"
    );
    for s in secrets {
        assert!(
            !body.windows(s.len()).any(|w| w == s.as_slice()),
            "{what} served host content {:?}: {}",
            String::from_utf8_lossy(s),
            String::from_utf8_lossy(body)
        );
    }
}

/// The session cgroups (`s-*`) below the daemon's `runtimed` parent. Only
/// in the hierarchies where the daemon is not in the root cgroup when there
/// are such: the root's `runtimed` directory is shared with every other
/// daemon of the host.
fn session_cgroups(d: &Daemon) -> BTreeSet<PathBuf> {
    let mounts: Vec<PathBuf> = host_cgroup_dirs(1).into_values().collect();
    let all: Vec<PathBuf> = host_cgroup_dirs(d.pid()).into_values().collect();
    let own: Vec<&PathBuf> = all.iter().filter(|p| !mounts.contains(p)).collect();
    let dirs = if own.is_empty() {
        all.iter().collect()
    } else {
        own
    };
    let mut out = BTreeSet::new();
    for dir in dirs {
        let Ok(rd) = std::fs::read_dir(dir.join("runtimed")) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with("s-") {
                out.insert(e.path());
            }
        }
    }
    out
}

/// A refusal of a hostile root: 422 `image_invalid`, naming the mount
/// point, showing no host path.
fn assert_refused(r: &Resp, d: &Daemon, name: &str, case: &str) {
    assert_eq!(r.status, 422, "{case}: {}", r.text());
    r.assert_error(422, "image_invalid");
    let msg = r.json()["message"].as_str().unwrap_or("").to_string();
    assert!(msg.contains(&format!("/{name}")), "{case}: {msg}");
    let data_dir = d.dir.path().display().to_string();
    for host_path in [data_dir.as_str(), "/run/runtimed", "/proc/self/fd"] {
        assert!(!msg.contains(host_path), "{case}: host path in {msg}");
    }
}

/// If a hostile image's session did start (the defense is gone), show
/// what its files API serves before failing.
fn probe_started_session(d: &Daemon, r: &Resp, secrets: &[Vec<u8>], case: &str) {
    if r.status != 201 {
        return;
    }
    let id = r.json()["id"].as_str().unwrap_or("").to_string();
    for path in ["1/cmdline", "hostname", "", "1/root/etc/hostname"] {
        let got = d.req("GET", &format!("/v1/sessions/{id}/files/{path}"), None);
        assert_no_host_secret(&format!("{case}: files/{path}"), &got.body, secrets);
    }
    d.req("DELETE", &format!("/v1/sessions/{id}"), None);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn images_whose_mount_points_are_links_or_files_are_refused_by_the_api() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let d = daemon!();
    let secrets = host_secrets();
    assert!(!secrets.is_empty(), "nothing to compare with on this host");
    let cgroups_before = session_cgroups(&d);
    for (i, (name, planted)) in CASES.iter().enumerate() {
        let case = format!("/{name} as {planted:?}");
        let tmp = TempDir::new("hostile-layout");
        hostile_layout(tmp.path(), name, *planted);
        let image = image_name(i);
        let r = d.req(
            "POST",
            &format!("/v1/images/import?name={image}"),
            Some(&tar_of(tmp.path())),
        );
        assert_eq!(r.status, 201, "{case}: import: {}", r.text());

        let r = d.req_json("POST", "/v1/sessions", &json!({"image": image}));
        probe_started_session(&d, &r, &secrets, &case);
        assert_refused(&r, &d, name, &case);

        let r = d.req_json(
            "POST",
            "/v1/run",
            &json!({"image": image, "argv": ["cat", "/proc/1/cmdline", "/workspace/1/cmdline"]}),
        );
        assert_no_host_secret(&format!("{case}: /v1/run"), &r.body, &secrets);
        assert_refused(&r, &d, name, &case);
    }
    // Nothing is left: no session, no helper, no cgroup.
    let l = d.req("GET", "/v1/sessions", None).json();
    assert_eq!(l["sessions"].as_array().map(Vec::len), Some(0), "{l}");
    let settled = wait_for(Duration::from_secs(20), || {
        (d.helpers().is_empty() && session_cgroups(&d).is_subset(&cgroups_before)).then_some(())
    });
    assert!(
        settled.is_some(),
        "left behind: helpers {:?}, cgroups {:?} (before: {cgroups_before:?})",
        d.helpers(),
        session_cgroups(&d)
    );
    // The same image without the planted entry works: the refusals are
    // about the mount points, not images in general.
    let tmp = TempDir::new("good-layout");
    busybox_layout(tmp.path(), "1");
    let r = d.req(
        "POST",
        "/v1/images/import?name=good:1",
        Some(&tar_of(tmp.path())),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let id = d.create_session(&json!({"image": "good:1"}));
    // The cgroup check above sees a live session's cgroups.
    assert!(
        session_cgroups(&d).iter().any(|p| p.ends_with(&id)),
        "{id} not among {:?}",
        session_cgroups(&d)
    );
    let r = d.req("PUT", &format!("/v1/sessions/{id}/files/f"), Some(b"in"));
    assert_eq!(r.status, 204, "{}", r.text());
    let r = d.exec(&id, &["cat", "/workspace/f"]);
    assert_eq!(r["stdout"], "in", "{r}");
    let r = d.req("GET", &format!("/v1/sessions/{id}/files/"), None);
    assert_eq!(r.json()["entries"][0]["name"], "f", "{}", r.text());
}

fn image_cli(data: &Path, args: &[&str]) {
    let o = Command::new(runtimed_bin())
        .arg("image")
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .expect("run runtimed image");
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn images_whose_mount_points_are_links_or_files_are_refused_by_the_cli() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let h = harness!();
    let secrets = host_secrets();
    let tmp = TempDir::new("hostile-cli");
    let data = tmp.join("data");
    for (i, (name, planted)) in CASES.iter().enumerate() {
        let case = format!("/{name} as {planted:?}");
        let layout = tmp.join(&format!("layout-{i}"));
        hostile_layout(&layout, name, *planted);
        let image = image_name(i);
        image_cli(
            &data,
            &["import", layout.to_str().unwrap(), "--name", &image],
        );
        let out = h
            .sandbox()
            .opt("--image")
            .opt(&image)
            .opt("--data-dir")
            .opt(&data)
            .cmd(["cat", "/proc/1/cmdline", "/workspace/1/cmdline"])
            .no_report()
            .run();
        assert_no_host_secret(&case, &out.stdout, &secrets);
        assert_eq!(
            out.code(),
            EXIT_RUNTIMED_FAILED,
            "{case}: {}",
            out.context()
        );
        let line = out.one_error_line();
        assert!(
            line.contains(&format!("/{name}")) && line.contains("mount point"),
            "{case}: {line}"
        );
    }
}

/// A rootfs directory (`runtimed run --rootfs DIR`) holding the probe and
/// `planted` at `name`.
fn rootfs_dir(tmp: &TempDir, probe: &Path, name: &str, planted: Planted) -> PathBuf {
    let root = tmp.join("rootfs");
    for d in ["proc", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(probe, root.join(PROBE_IN_SANDBOX.trim_start_matches('/'))).unwrap();
    let at = root.join(name);
    let _ = std::fs::remove_dir(&at);
    match planted {
        Planted::Link(target) => std::os::unix::fs::symlink(target, &at).unwrap(),
        Planted::File => std::fs::write(&at, "a file").unwrap(),
    }
    root
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn rootfs_dirs_whose_mount_points_are_links_or_files_are_refused() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let h = harness!();
    let secrets = host_secrets();
    for (name, planted) in CASES {
        let case = format!("/{name} as {planted:?}");
        let tmp = TempDir::new("hostile-rootfs");
        let root = rootfs_dir(&tmp, &h.probe, name, *planted);
        let out = h
            .sandbox()
            .opt("--rootfs")
            .opt(&root)
            .cmd([PROBE_IN_SANDBOX, "read", "/workspace/1/cmdline"])
            .no_report()
            .run();
        assert_no_host_secret(&case, &out.stdout, &secrets);
        assert_eq!(
            out.code(),
            EXIT_RUNTIMED_FAILED,
            "{case}: {}",
            out.context()
        );
        let line = out.one_error_line();
        assert!(
            line.contains(&format!("/{name}")) && line.contains("mount point"),
            "{case}: {line}"
        );
        // The directory itself is untouched.
        assert!(root.join(name).symlink_metadata().is_ok(), "{case}");
    }
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn caller_binds_on_links_stay_inside_the_root_and_on_standard_points_are_refused() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let h = harness!();
    let src = TempDir::world_writable("bind-src");
    std::fs::write(src.join("marker"), "from the bind").unwrap();
    // `--workspace DIR` binds on /workspace: a link there is refused like
    // the sandbox's own tmpfs would be.
    for target in ["/", "/etc", "/proc", ".."] {
        let tmp = TempDir::new("hostile-bind");
        let root = rootfs_dir(&tmp, &h.probe, "workspace", Planted::Link(target));
        let out = h
            .sandbox()
            .opt("--rootfs")
            .opt(&root)
            .opt("--workspace")
            .opt(src.path())
            .cmd([PROBE_IN_SANDBOX, "read", "/workspace/marker"])
            .no_report()
            .run();
        assert_eq!(
            out.code(),
            EXIT_RUNTIMED_FAILED,
            "{target}: {}",
            out.context()
        );
        let line = out.one_error_line();
        assert!(
            line.contains("mount point /workspace") && line.contains("symbolic link"),
            "{target}: {line}"
        );
    }
    // Any other destination follows links inside the root, as runc does:
    // `data -> /etc` (the link itself) and `srv -> /etc` (a parent) put the
    // bind on the root's /etc, never the host's.
    for (name, dest, seen) in [
        ("data", "/data", "/etc/marker"),
        ("srv", "/srv/data", "/etc/data/marker"),
    ] {
        let tmp = TempDir::new("hostile-bind");
        let root = rootfs_dir(&tmp, &h.probe, name, Planted::Link("/etc"));
        // The bind's point below the link (the sandbox cannot make it in a
        // directory of host root's).
        std::fs::create_dir(root.join("etc/data")).unwrap();
        let out = h
            .sandbox()
            .opt("--rootfs")
            .opt(&root)
            .bind(src.path(), dest, "ro")
            .cmd([PROBE_IN_SANDBOX, "read", seen])
            .run();
        assert_eq!(out.code(), 0, "{dest}: {}", out.context());
        assert_eq!(
            out.probe_json()["head"],
            "from the bind",
            "{}",
            out.context()
        );
        assert!(!Path::new("/etc/marker").exists() && !Path::new("/etc/data").exists());
        assert_eq!(
            std::fs::read_dir(root.join("etc/data")).unwrap().count(),
            0,
            "written into the rootfs dir"
        );
    }
}
