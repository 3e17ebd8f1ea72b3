//! gc: what no named image references goes, what a lease holds stays.

mod layer_fixtures;

use std::fs;
use std::process::{Child, Command};
use std::time::{Duration, SystemTime};

use layer_fixtures::*;
use rootfs_builder::gc::{gc, gc_with, GcOptions};
use rootfs_builder::layers::{layer_dir, layers_root, lease_layers, lock_path};
use rootfs_builder::unpack::ensure_layers;
use rootfs_builder::{Digest, Store};

fn store() -> (tempfile::TempDir, Store) {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(&t.path().join("data")).unwrap();
    (t, s)
}

const NOW: GcOptions = GcOptions {
    grace: Duration::ZERO,
};

fn blobs(store: &Store) -> usize {
    fs::read_dir(store.layout_dir().join("blobs/sha256"))
        .unwrap()
        .count()
}

#[test]
#[ignore = "privileged: unpacking chowns to the layer owners"]
fn unreferenced_blobs_and_layers_go_shared_ones_stay() {
    let (_t, store) = store();
    let base = gzipped(&tar(&[file("etc/os-release", b"base")]));
    let base_id = base.diff_id.clone();
    let app = gzipped(&tar(&[file("app/run", b"app")]));
    let app_id = app.diff_id.clone();
    let other = zstded(&tar(&[file("other", b"o")]));
    let other_id = other.diff_id.clone();
    let base2 = gzipped(&tar(&[file("etc/os-release", b"base")]));
    let keep = image(&store, "keep:1", &[base, other]);
    let drop_me = image(&store, "drop:1", &[base2, app]);
    ensure_layers(&store, &keep).unwrap();
    ensure_layers(&store, &drop_me).unwrap();
    // 2 manifests + 2 configs + 3 distinct layer blobs.
    assert_eq!(blobs(&store), 7);
    // Nothing unreferenced yet.
    assert_eq!(gc_with(&store, &NOW).unwrap().removed_blobs, 0);
    store.untag(&"drop:1".parse().unwrap()).unwrap();
    // Within the grace period the untagged image's blobs stay (an import
    // may be about to name them); its unpacked layer does not.
    let r = gc(&store).unwrap();
    assert_eq!((r.removed_blobs, r.removed_layers), (0, 1));
    assert!(!layer_dir(&store, &app_id).exists());
    ensure_layers(&store, &drop_me).unwrap();
    let r = gc_with(&store, &NOW).unwrap();
    assert_eq!(
        (r.removed_blobs, r.removed_layers, r.kept_in_use),
        (3, 1, 0)
    );
    assert!(r.freed_bytes > 0);
    assert_eq!(blobs(&store), 4);
    assert!(layer_dir(&store, &base_id).is_dir());
    assert!(layer_dir(&store, &other_id).is_dir());
    assert!(!layer_dir(&store, &app_id).exists());
    assert!(
        !lock_path(&store, &app_id).exists(),
        "the lock file goes with its layer"
    );
    assert!(!store.has_blob(&drop_me.manifest_digest));
    // The kept image still resolves and unpacks.
    let again = store.resolve(&"keep:1".parse().unwrap()).unwrap();
    let dirs = ensure_layers(&store, &again).unwrap();
    assert_eq!(fs::read(dirs[0].join("etc/os-release")).unwrap(), b"base");
    assert_eq!(
        fs::read_dir(layers_root(&store).join("tmp"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
#[ignore = "privileged: unpacking chowns to the layer owners"]
fn a_leased_layer_is_never_removed() {
    let (_t, store) = store();
    let l = gzipped(&tar(&[file("bin/tool", b"t")]));
    let id = l.diff_id.clone();
    let img = image(&store, "leased:1", &[l]);
    let dirs = ensure_layers(&store, &img).unwrap();
    let lease = lease_layers(&store, &dirs).unwrap();
    assert_eq!(lease.diff_ids(), std::slice::from_ref(&id));
    store.untag(&"leased:1".parse().unwrap()).unwrap();
    let r = gc_with(&store, &NOW).unwrap();
    assert_eq!((r.removed_layers, r.kept_in_use), (0, 1));
    assert_eq!(
        r.removed_blobs, 3,
        "blobs are not leased, only unpacked layers"
    );
    assert_eq!(fs::read(dirs[0].join("bin/tool")).unwrap(), b"t");
    drop(lease);
    let r = gc_with(&store, &NOW).unwrap();
    assert_eq!((r.removed_layers, r.kept_in_use), (1, 0));
    assert!(!layer_dir(&store, &id).exists());
    // A lease on a layer that is gone fails instead of leasing nothing.
    let e = lease_layers(&store, &dirs).unwrap_err();
    assert!(e.to_string().contains("not unpacked"), "{e}");
    // Paths that are not this store's layers are refused.
    assert!(lease_layers(&store, &["/etc"]).is_err());
}

/// A process that holds `path` locked (`-s` shared, `-x` exclusive) until
/// killed: a sleep holding the locked fd itself, as a sandbox supervisor
/// holds its lease. Callers kill and wait for it.
#[allow(clippy::zombie_processes)]
fn hold(path: &std::path::Path, mode: &str) -> Child {
    let child = Command::new("sh")
        .args([
            "-c",
            "exec 9<>\"$1\" && flock \"$2\" 9 && exec sleep 600",
            "sh",
        ])
        .arg(path)
        .arg(mode)
        .spawn()
        .unwrap();
    // Wait until it holds the lock: a non-blocking conflicting try fails.
    let probe = if mode == "-s" { "-x" } else { "-s" };
    loop {
        let st = Command::new("flock")
            .args(["-n", probe])
            .arg(path)
            .arg("true")
            .status()
            .unwrap();
        if !st.success() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
#[ignore = "privileged: unpacking chowns to the layer owners"]
fn a_lease_ends_with_its_process() {
    let (_t, store) = store();
    let l = plain(tar(&[file("x", b"x")]));
    let id = l.diff_id.clone();
    let img = image(&store, "proc:1", &[l]);
    ensure_layers(&store, &img).unwrap();
    store.untag(&"proc:1".parse().unwrap()).unwrap();
    let mut child = hold(&lock_path(&store, &id), "-s");
    let r = gc_with(&store, &NOW).unwrap();
    assert_eq!((r.removed_layers, r.kept_in_use), (0, 1));
    assert!(layer_dir(&store, &id).is_dir());
    // Killed, not asked: the kernel drops its locks.
    child.kill().unwrap();
    child.wait().unwrap();
    let r = gc_with(&store, &NOW).unwrap();
    assert_eq!((r.removed_layers, r.kept_in_use), (1, 0));
    assert!(!layer_dir(&store, &id).exists());
}

fn age(path: &std::path::Path, secs: u64) {
    let f = fs::File::options()
        .write(true)
        .open(path)
        .or_else(|_| fs::File::open(path))
        .unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(secs))
        .unwrap();
}

#[test]
fn stale_scratch_goes_live_scratch_stays() {
    let (_t, store) = store();
    let old_blob = store.put_blob_bytes(b"an unreferenced blob").unwrap();
    let new_blob = store.put_blob_bytes(b"a fresh unreferenced blob").unwrap();
    age(&store.blob_path(&old_blob), 7200);
    let (stale, _) = store.tmp_file().unwrap();
    age(&stale, 7200);
    let (fresh, _) = store.tmp_file().unwrap();
    // A crashed unpack (lock free), a live one (lock held elsewhere), and
    // an interrupted gc's leftover.
    let lt = layers_root(&store).join("tmp");
    fs::create_dir_all(&lt).unwrap();
    let dead_id = Digest::of(b"dead");
    let live_id = Digest::of(b"live");
    let dead = lt.join(format!("{}.0011223344556677", dead_id.hex()));
    let live = lt.join(format!("{}.8899aabbccddeeff", live_id.hex()));
    let grave = lt.join(format!("gc-{}-0123456789abcdef", dead_id.hex()));
    for d in [&dead, &live, &grave] {
        fs::create_dir_all(d.join("usr/lib")).unwrap();
        fs::write(d.join("usr/lib/f"), b"data").unwrap();
    }
    fs::create_dir_all(layer_dir(&store, &live_id).parent().unwrap()).unwrap();
    let mut unpacker = hold(&lock_path(&store, &live_id), "-x");
    let r = gc(&store).unwrap();
    unpacker.kill().unwrap();
    unpacker.wait().unwrap();
    assert_eq!(r.removed_blobs, 1);
    assert!(!store.has_blob(&old_blob) && store.has_blob(&new_blob));
    assert!(!stale.exists() && fresh.exists());
    assert!(!dead.exists() && !grave.exists());
    assert!(
        live.join("usr/lib/f").exists(),
        "an unpack in progress was removed"
    );
    assert_eq!(r.removed_tmp, 3);
}

#[test]
fn a_named_image_with_a_corrupt_manifest_stops_gc_before_it_removes_anything() {
    let (_t, store) = store();
    let img = image(&store, "bad:1", &[plain(tar(&[file("a", b"a")]))]);
    let stray = store.put_blob_bytes(b"stray").unwrap();
    fs::write(store.blob_path(&img.manifest_digest), b"{}").unwrap();
    let e = gc_with(&store, &NOW).unwrap_err();
    assert!(e.to_string().contains("bad:1"), "{e}");
    assert!(store.has_blob(&stray));
}
