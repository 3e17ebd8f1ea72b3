//! Writes the seed corpus, `seeds/<target>/<name>`: the hostile cases the
//! unpacker and importer are known to meet (traversal, links out, setuid,
//! devices, whiteouts, long names, PAX xattrs, sparse files, layouts and
//! `docker save` archives whose digests match), so the fuzzer starts deep.
//! Run from `fuzz/`: `cargo run --example make_seeds`. Deterministic.

use std::path::Path;

use runtimed_fuzz::framing::Members;
use tar::{EntryType, Header};

fn main() {
    let out = Path::new("seeds");
    write(out, "unpack_tar", unpack_seeds());
    write(out, "import_archive", import_seeds());
    write(out, "manifest", manifest_seeds());
    write(out, "reference", reference_seeds());
}

fn write(out: &Path, target: &str, seeds: Vec<(&'static str, Vec<u8>)>) {
    let dir = out.join(target);
    std::fs::create_dir_all(&dir).expect("create the seed directory");
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes).expect("write a seed");
    }
}

// ---------------------------------------------------------------- tars

struct E<'a> {
    path: &'a [u8],
    kind: EntryType,
    data: &'a [u8],
    link: &'a [u8],
    mode: u32,
    dev: (u32, u32),
    pax: Vec<(&'a str, &'a [u8])>,
}

fn e(path: &str, kind: EntryType) -> E<'_> {
    E {
        path: path.as_bytes(),
        kind,
        data: b"",
        link: b"",
        mode: if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        },
        dev: (0, 0),
        pax: Vec::new(),
    }
}

fn file<'a>(path: &'a str, data: &'a [u8]) -> E<'a> {
    E {
        data,
        ..e(path, EntryType::Regular)
    }
}

fn link<'a>(path: &'a str, kind: EntryType, target: &'a str) -> E<'a> {
    E {
        link: target.as_bytes(),
        ..e(path, kind)
    }
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    // "<len> key=value\n", where len counts itself.
    let body = key.len() + value.len() + 3;
    let mut len = body + body.to_string().len();
    if len.to_string().len() != body.to_string().len() {
        len += 1;
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

fn block(out: &mut Vec<u8>, h: &Header, data: &[u8]) {
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.extend(std::iter::repeat_n(0, (512 - data.len() % 512) % 512));
}

fn tar_of(entries: &[E]) -> Vec<u8> {
    let mut out = Vec::new();
    for en in entries {
        if !en.pax.is_empty() {
            let data: Vec<u8> = en.pax.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
            let mut h = Header::new_ustar();
            h.as_ustar_mut().expect("ustar").name[..9].copy_from_slice(b"PaxHeader");
            h.set_entry_type(EntryType::XHeader);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            block(&mut out, &h, &data);
        }
        if en.path.len() > 100 {
            let mut long = en.path.to_vec();
            long.push(0);
            let mut h = Header::new_gnu();
            h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
            h.set_entry_type(EntryType::GNULongName);
            h.set_size(long.len() as u64);
            h.set_cksum();
            block(&mut out, &h, &long);
        }
        let mut h = Header::new_gnu();
        let n = en.path.len().min(100);
        h.as_old_mut().name[..n].copy_from_slice(&en.path[..n]);
        let l = en.link.len().min(100);
        h.as_old_mut().linkname[..l].copy_from_slice(&en.link[..l]);
        h.set_entry_type(en.kind);
        h.set_mode(en.mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(en.data.len() as u64);
        if en.dev != (0, 0) || en.kind == EntryType::Char {
            h.set_device_major(en.dev.0).expect("device field");
            h.set_device_minor(en.dev.1).expect("device field");
        }
        h.set_cksum();
        block(&mut out, &h, en.data);
    }
    out.extend_from_slice(&[0; 1024]);
    out
}

fn unpack_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use EntryType as T;
    let long = "d/".repeat(60) + "file";
    let long: &'static str = Box::leak(long.into_boxed_str());
    vec![
        (
            "plain",
            tar_of(&[
                e("etc/", T::Directory),
                file("etc/hostname", b"box\n"),
                link("etc/link", T::Symlink, "hostname"),
                link("etc/hard", T::Link, "etc/hostname"),
                e("run/fifo", T::Fifo),
            ]),
        ),
        (
            "traversal",
            tar_of(&[
                file("../escape", b"x"),
                file("/abs/file", b"x"),
                file("a/../../x", b"x"),
                file("./././b", b"x"),
            ]),
        ),
        (
            "symlink_parents",
            tar_of(&[
                link("up", T::Symlink, ".."),
                file("up/escape", b"x"),
                link("root", T::Symlink, "/"),
                file("root/etc/passwd", b"x"),
                link("dot", T::Symlink, "."),
                file("dot/dot/x", b"x"),
            ]),
        ),
        (
            "hard_links_out",
            tar_of(&[
                link("h1", T::Link, "../../etc/passwd"),
                link("h2", T::Link, "/etc/passwd"),
                link("s", T::Symlink, "/etc/passwd"),
                link("h3", T::Link, "s"),
                link("h4", T::Link, "missing"),
            ]),
        ),
        (
            "privileges",
            tar_of(&[
                E {
                    mode: 0o4755,
                    ..file("bin/su", b"\x7fELF")
                },
                E {
                    mode: 0o2755,
                    ..file("bin/sg", b"\x7fELF")
                },
                E {
                    mode: 0o7777,
                    ..e("shared/", T::Directory)
                },
                E {
                    dev: (1, 3),
                    ..e("dev/null", T::Char)
                },
                E {
                    dev: (8, 0),
                    ..e("dev/sda", T::Block)
                },
            ]),
        ),
        (
            "whiteouts",
            tar_of(&[
                e("etc/", T::Directory),
                file("etc/.wh.passwd", b""),
                file("etc/.wh..wh..opq", b""),
                file(".wh..wh.plnk/1.2", b""),
                file("x/.wh.", b""),
                file(".wh.", b""),
            ]),
        ),
        (
            "pax_and_long_names",
            tar_of(&[
                E {
                    pax: vec![
                        ("SCHILY.xattr.user.mime", b"text/plain"),
                        ("SCHILY.xattr.security.capability", b"\x01\x00\x00\x02"),
                        ("SCHILY.xattr.user.overlay.redirect", b"/etc"),
                        ("SCHILY.xattr.user.overlay.opaque", b"y"),
                        ("path", b"pax/named/file"),
                        ("uid", b"4294967295"),
                    ],
                    ..file("short", b"data")
                },
                file(long, b"deep"),
                E {
                    pax: vec![("linkpath", b"../../../../etc/shadow")],
                    ..link("paxlink", T::Link, "x")
                },
            ]),
        ),
        (
            "replacements",
            tar_of(&[
                e("a/", T::Directory),
                file("a/x", b"x"),
                file("a", b"now a file"),
                e("a/", T::Directory),
                link("b", T::Symlink, "a"),
                e("b/", T::Directory),
                file("b/c", b"through the link?"),
            ]),
        ),
        ("size_bomb", {
            let mut t = tar_of(&[file("big", b"")]);
            // A header claiming far more than the stream holds.
            t[124..136].copy_from_slice(b"77777777777\0");
            t
        }),
    ]
}

// ------------------------------------------------------------ archives

fn members(list: &[(&str, &[u8])]) -> Vec<u8> {
    Members(
        list.iter()
            .map(|(n, c)| (n.as_bytes().to_vec(), c.to_vec()))
            .collect(),
    )
    .encode()
}

fn import_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let layer = tar_of(&[e("etc/", EntryType::Directory), file("etc/motd", b"hi\n")]);
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    let config = br#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"]},"rootfs":{"type":"layers","diff_ids":["{d1}"]}}"#;
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{d2}","size":{s2}},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d1}","size":{s1}}]}"#;
    let index = br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{d3}","size":{s3},"annotations":{"org.opencontainers.image.ref.name":"fuzz:v1"}}]}"#;
    let nested = br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"{d4}","size":{s4},"annotations":{"org.opencontainers.image.ref.name":"v2"}}]}"#;
    let docker_manifest =
        br#"[{"Config":"{h1}.json","RepoTags":["fuzz:docker"],"Layers":["abc/layer.tar"]}]"#;
    let docker_config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["{d0}"]}}"#;
    let oci = |flag: u8| {
        let mut v = vec![flag];
        v.extend(members(&[
            ("oci-layout", layout),
            ("blobs/sha256/{h1}", &layer),
            ("blobs/sha256/{h2}", config),
            ("blobs/sha256/{h3}", manifest),
            ("index.json", index),
        ]));
        v
    };
    let mut nested_v = vec![1u8];
    nested_v.extend(members(&[
        ("oci-layout", layout),
        ("blobs/sha256/{h1}", &layer),
        ("blobs/sha256/{h2}", config),
        ("blobs/sha256/{h3}", manifest),
        ("blobs/sha256/{h4}", index),
        ("index.json", nested),
    ]));
    let mut docker = vec![0u8];
    docker.extend(members(&[
        ("abc/layer.tar", &layer),
        ("{h1}.json", docker_config),
        ("manifest.json", docker_manifest),
    ]));
    vec![
        ("oci_layout", oci(0)),
        ("oci_layout_named", oci(1)),
        ("oci_nested_index", nested_v),
        ("docker_save", docker),
    ]
}

fn manifest_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let with = |ct: u8, body: &str| {
        let mut v = vec![ct];
        v.extend_from_slice(body.as_bytes());
        v
    };
    let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":100}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":1000,"annotations":{{"a":"b"}}}}],"annotations":{{"org.opencontainers.image.ref.name":"v1"}}}}"#,
        d('a'),
        d('b')
    );
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":500,"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}},{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":400,"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
        d('c'),
        d('d')
    );
    let docker_list = index
        .replace(
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        )
        .replace(
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
        );
    let config = r#"{"created":"2024-01-01T00:00:00Z","architecture":"amd64","os":"linux","config":{"User":"1000:1000","Env":["PATH=/bin"],"Entrypoint":["/bin/sh"],"Cmd":["-c","true"],"WorkingDir":"/w","Labels":{"k":"v"}},"rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]},"history":[{"created_by":"x","empty_layer":true}]}"#;
    vec![
        ("oci_manifest", with(0, &manifest)),
        ("oci_manifest_typed", with(3, &manifest)),
        ("oci_index", with(4, &index)),
        ("docker_list", with(6, &docker_list)),
        ("config", with(1, config)),
        ("schema1", with(7, r#"{"schemaVersion":1,"fsLayers":[]}"#)),
        (
            "huge_sizes",
            with(
                0,
                &manifest.replace("\"size\":1000", "\"size\":18446744073709551615"),
            ),
        ),
    ]
}

fn reference_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let d = format!("sha256:{}", "ab".repeat(32));
    [
        ("hub", "debian:bookworm".to_string()),
        ("hub_user", "bitnami/redis:7.2".into()),
        ("local_port", "localhost:5000/team/app:v1".into()),
        ("digest", format!("ghcr.io/o/app:v2@{d}")),
        ("scheme", "http://127.0.0.1:5000/x/y:z".into()),
        ("platform", "linux/arm64/v8".into()),
        ("store_name", "localhost:5000/team/app:v1".into()),
        (
            "challenge",
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull", Basic realm="x \"y\"""#.into(),
        ),
        ("bare_digest", d),
    ]
    .into_iter()
    .map(|(n, s)| (n, s.into_bytes()))
    .collect()
}
