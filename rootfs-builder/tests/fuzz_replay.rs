//! The fuzz targets' checks (`fuzz/src`, compiled in here as a module)
//! run on each target's seed corpus (`fuzz/seeds/<target>/`) and on every
//! input a fuzzer found (`fuzz/regressions/<target>/`), without libFuzzer,
//! as part of the ordinary test run. Also shows that the seeds reach deep
//! (the archives import, the plain layer unpacks) and that the invariant
//! checks fail when their invariant is broken.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod runtimed_fuzz;

use runtimed_fuzz::{framing::Members, import, manifest, reference, unpack, Scratch};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in ["seeds", "regressions"] {
        let d = fuzz_dir().join(dir).join(target);
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

fn replay(target: &str, check: fn(&[u8])) {
    let all = inputs(target);
    assert!(!all.is_empty(), "no seeds for {target}");
    for (name, data) in all {
        eprintln!("{target}: {name}");
        check(&data);
    }
}

#[test]
fn unpack_tar_inputs_keep_the_invariants() {
    replay("unpack_tar", unpack::check);
}

#[test]
fn import_archive_inputs_keep_the_invariants() {
    replay("import_archive", import::check);
}

#[test]
fn manifest_inputs_keep_the_invariants() {
    replay("manifest", manifest::check);
}

#[test]
fn reference_inputs_keep_the_invariants() {
    replay("reference", reference::check);
}

fn seed(target: &str, name: &str) -> Vec<u8> {
    std::fs::read(fuzz_dir().join("seeds").join(target).join(name))
        .unwrap_or_else(|e| panic!("seed {target}/{name}: {e} (run make_seeds)"))
}

#[test]
fn the_archive_seeds_import_so_the_fuzzer_starts_past_the_digest_checks() {
    for (name, given, expect) in [
        ("oci_layout", None, "fuzz:v1"),
        ("oci_layout_named", Some("fuzz/image:given"), "fuzz:v1"),
        ("docker_save", None, "fuzz:docker"),
    ] {
        let data = seed("import_archive", name);
        let tar = Members::parse(&data[1..]).to_tar();
        let scratch = Scratch::new("replay");
        let store = rootfs_builder::Store::open(&scratch.0).unwrap();
        let name_arg = given.map(|g: &str| g.parse().unwrap());
        let images = rootfs_builder::import::import_reader_with(
            &store,
            &tar[..],
            name_arg.as_ref(),
            &import::LIMITS,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let names: Vec<String> = images.iter().map(|i| i.name.to_string()).collect();
        assert!(
            names
                .iter()
                .any(|n| n == expect || Some(n.as_str()) == given),
            "{name}: {names:?}"
        );
    }
}

#[test]
#[ignore = "privileged: unpacking chowns to the layer owners"]
fn the_plain_layer_seed_unpacks() {
    let data = seed("unpack_tar", "plain");
    let scratch = Scratch::new("replay");
    unpack::prepare(&scratch.0);
    let root = scratch.0.join("root");
    rootfs_builder::unpack::unpack_tar(&data[..], &root, &unpack::LIMITS).unwrap();
    assert_eq!(std::fs::read(root.join("etc/hostname")).unwrap(), b"box\n");
}

/// The tree checks catch what they look for: each planted fault panics.
#[test]
fn the_unpack_checks_catch_planted_faults() {
    type Plant = fn(&Path);
    let faults: [(&str, Plant); 5] = [
        ("a setuid file", |p| {
            let f = p.join("root/su");
            std::fs::write(&f, b"x").unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o4755)).unwrap();
        }),
        ("a file outside", |p| {
            std::fs::write(p.join("escaped"), b"x").unwrap()
        }),
        ("a hard link to the canary", |p| {
            std::fs::hard_link(p.join("canary"), p.join("root/c")).unwrap()
        }),
        ("a changed canary", |p| {
            std::fs::write(p.join("canary"), b"y").unwrap()
        }),
        ("a trusted xattr", |p| {
            let f = p.join("root/x");
            std::fs::write(&f, b"x").unwrap();
            xattr::set(&f, "user.overlay.redirect", b"/").unwrap();
        }),
    ];
    for (what, plant) in faults {
        let scratch = Scratch::new("planted");
        unpack::prepare(&scratch.0);
        plant(&scratch.0);
        let caught = std::panic::catch_unwind(|| unpack::check_tree(&scratch.0, what));
        assert!(caught.is_err(), "{what} went unnoticed");
    }
    // And a clean tree passes.
    let scratch = Scratch::new("planted");
    unpack::prepare(&scratch.0);
    std::fs::write(scratch.0.join("root/ok"), b"x").unwrap();
    unpack::check_tree(&scratch.0, "clean");
}

#[test]
fn the_store_checks_catch_a_blob_under_a_wrong_name() {
    let scratch = Scratch::new("planted");
    let store = rootfs_builder::Store::open(&scratch.0).unwrap();
    let d = rootfs_builder::Digest::of(b"right");
    std::fs::write(store.blob_path(&d), b"wrong").unwrap();
    let caught = std::panic::catch_unwind(|| import::check_store(&store, &Ok(Vec::new())));
    assert!(caught.is_err());
}
