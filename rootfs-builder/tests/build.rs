//! Recipe builds with real sandboxes (root): a scratch image from busybox with copy and
//! run steps (whiteouts, opaque dirs, config), the step cache, failures,
//! the network of a step, export read back by umoci and skopeo, and one
//! real Debian build (the builtin `python`).
//!
//! No libtest harness: `Sandbox::create` forks, so the tests run one after
//! another on the main thread. Like libtest's privileged tests they are
//! ignored (listed and counted) unless `--include-ignored` or `--ignored`
//! is given; run, a missing prerequisite fails them (they never skip).

use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rootfs_builder::export::{self, Format};
use rootfs_builder::recipe::{self, BuildError, BuildEvent, BuildOptions, BuildOutcome, Recipe};
use rootfs_builder::unpack::ensure_layers;
use rootfs_builder::{ImageName, Store, StoreError};

/// Why every test here is ignored unless asked for (printed per test).
const IGNORED: &str = "privileged: recipe builds in real sandboxes need root";

/// Fails the test: a prerequisite is missing (never a silent skip).
fn missing(test: &str, why: &str) -> ! {
    panic!("{test} did not run: {why} (run as root with `--include-ignored`)");
}

struct Env {
    _dir: tempfile::TempDir,
    store: Store,
    ctx: PathBuf,
    /// This harness-less test binary runs on its main thread only.
    single: sandbox::SingleThreaded,
}

/// Builds `text` with `ctx` as the context, collecting the events.
fn build(env: &Env, text: &str) -> (Result<BuildOutcome, BuildError>, Vec<BuildEvent>) {
    let recipe = Recipe::parse(text).expect("recipe parses");
    let mut events = Vec::new();
    let r = recipe::build(
        &env.store,
        &recipe,
        BuildOptions {
            context: Some(env.ctx.clone()),
            progress: Some(Box::new(|e: &BuildEvent| events.push(e.clone()))),
            ..BuildOptions::default()
        },
        &env.single,
    );
    (r, events)
}

fn done_events(events: &[BuildEvent]) -> Vec<(usize, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            BuildEvent::StepDone { index, cached, .. } => Some((*index, *cached)),
            _ => None,
        })
        .collect()
}

fn log_lines(events: &[BuildEvent], step: usize) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            BuildEvent::Log { index, line, .. } if *index == step => Some(line.clone()),
            _ => None,
        })
        .collect()
}

/// Names in a layer blob's tar, in order.
fn tar_names(store: &Store, digest: &rootfs_builder::Digest) -> Vec<String> {
    let r = store.open_blob(digest).unwrap();
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(r));
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let p = e.path().unwrap().display().to_string();
            p.trim_end_matches('/').to_string()
        })
        .collect()
}

const BUSYBOX_RECIPE: &str = r#"
name = "bbtest:1"
base = "scratch"
env = { GREETING = "hi" }
workdir = "/srv"
user = "1000:1000"
cmd = ["/bin/busybox", "sh"]

[[step]]
copy = { from = "busybox", to = "/bin/" }

[[step]]
copy = { from = "notes", to = "/notes", owner = "7:8" }

[[step]]
run = ["/bin/busybox", "sh", "-c", "/bin/busybox mkdir -p /data/old && echo one > /data/keep && echo gone > /data/gone && echo a > /data/old/a"]

[[step]]
run = ["/bin/busybox", "sh", "-c", "echo $GREETING > /data/new && /bin/busybox rm /data/gone && /bin/busybox rm -r /data/old && /bin/busybox mkdir /data/old && echo b > /data/old/b"]
"#;

fn a_scratch_image_from_busybox_has_its_layers_and_config(env: &Env) {
    let (r, events) = build(env, BUSYBOX_RECIPE);
    let out = r.unwrap_or_else(|e| panic!("build: {e}"));
    assert_eq!((out.steps_built, out.steps_cached), (4, 0));
    assert_eq!(
        done_events(&events),
        [(1, false), (2, false), (3, false), (4, false)]
    );
    assert!(matches!(events.last(), Some(BuildEvent::Done { image, .. }) if image == "bbtest:1"));
    let img = env.store.resolve(&"bbtest:1".parse().unwrap()).unwrap();
    assert_eq!(img.manifest_digest, out.image.manifest_digest);
    let layers = ensure_layers(&env.store, &img).unwrap();
    assert_eq!(layers.len(), 4);
    let bb = fs::metadata(layers[0].join("bin/busybox")).unwrap();
    assert_eq!((bb.mode() & 0o777, bb.uid()), (0o755, 0));
    let note = fs::metadata(layers[1].join("notes/a.txt")).unwrap();
    assert_eq!((note.uid(), note.gid()), (7, 8), "copy owner");
    assert_eq!(
        fs::read_to_string(layers[2].join("data/keep")).unwrap(),
        "one\n"
    );
    assert_eq!(
        fs::read_to_string(layers[3].join("data/new")).unwrap(),
        "hi\n",
        "the recipe env is set in steps"
    );
    let wh = fs::symlink_metadata(layers[3].join("data/gone")).unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "whiteout"
    );
    assert_eq!(
        xattr::get(layers[3].join("data/old"), "user.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..]),
        "opaque dir"
    );
    assert!(layers[3].join("data/old/b").is_file() && !layers[3].join("data/old/a").exists());
    // What the sandbox made for its own use is not in the layers.
    for l in &layers[2..] {
        for stub in ["etc", "proc", "dev", "tmp", "workspace"] {
            assert!(!l.join(stub).exists(), "{stub} in {}", l.display());
        }
    }
    let digests = img.layer_digests().unwrap();
    let names = tar_names(&env.store, &digests[3]);
    assert!(names.contains(&"data/.wh.gone".to_string()), "{names:?}");
    assert!(
        names.contains(&"data/old/.wh..wh..opq".to_string()),
        "{names:?}"
    );
    let c = img.config.config().as_ref().unwrap();
    let env_list = c.env().clone().unwrap();
    assert!(
        env_list.contains(&"GREETING=hi".to_string()),
        "{env_list:?}"
    );
    assert!(
        env_list.iter().any(|e| e.starts_with("PATH=")),
        "{env_list:?}"
    );
    assert_eq!(c.working_dir().as_deref(), Some("/srv"));
    assert_eq!(c.user().as_deref(), Some("1000:1000"));
    assert_eq!(c.cmd().clone().unwrap(), ["/bin/busybox", "sh"]);
    assert_eq!(img.config.history().as_ref().map(|h| h.len()), Some(4));
}

fn a_rebuild_is_cached_and_a_changed_file_rebuilds_from_its_step(env: &Env) {
    let first = env.store.resolve(&"bbtest:1".parse().unwrap()).unwrap();
    let (r, events) = build(env, BUSYBOX_RECIPE);
    let out = r.unwrap();
    assert_eq!((out.steps_built, out.steps_cached), (0, 4));
    assert_eq!(
        done_events(&events),
        [(1, true), (2, true), (3, true), (4, true)]
    );
    assert_eq!(
        out.image.manifest_digest, first.manifest_digest,
        "same image"
    );
    fs::write(env.ctx.join("notes/a.txt"), b"changed\n").unwrap();
    let (r, events) = build(env, BUSYBOX_RECIPE);
    let out = r.unwrap();
    assert_eq!(
        done_events(&events),
        [(1, true), (2, false), (3, false), (4, false)]
    );
    assert_ne!(out.image.manifest_digest, first.manifest_digest);
    // A cache entry whose blob is gone (gc) is rebuilt, not trusted.
    let l1 = out.image.layer_digests().unwrap()[0].clone();
    fs::remove_file(env.store.blob_path(&l1)).unwrap();
    let (r, events) = build(env, BUSYBOX_RECIPE);
    r.unwrap();
    // ... into the same layer (copy layers are reproducible), so the later
    // steps still hit.
    assert_eq!(
        done_events(&events),
        [(1, false), (2, true), (3, true), (4, true)]
    );
    // --no-cache rebuilds everything.
    let recipe = Recipe::parse(BUSYBOX_RECIPE).unwrap();
    let out = recipe::build(
        &env.store,
        &recipe,
        BuildOptions {
            context: Some(env.ctx.clone()),
            no_cache: true,
            ..BuildOptions::default()
        },
        &env.single,
    )
    .unwrap();
    assert_eq!(out.steps_built, 4);
}

fn failures_name_the_step_and_tag_nothing(env: &Env) {
    let (r, _) = build(
        env,
        r#"
name = "bbfail"
base = "bbtest:1"
[[step]]
run = ["/bin/busybox", "true"]
[[step]]
run = ["/bin/busybox", "sh", "-c", "echo about to fail; exit 3"]
"#,
    );
    let e = r.unwrap_err();
    assert!(
        matches!(
            e,
            BuildError::StepExit {
                index: 2,
                code: 3,
                ..
            }
        ),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("step 2") && msg.contains("exit code 3"),
        "{msg}"
    );
    assert!(matches!(
        env.store.resolve(&"bbfail".parse().unwrap()),
        Err(StoreError::NotFound(_))
    ));
    // A base that is not there; a builtin's name gets a hint.
    let (r, _) = build(env, "name = \"x\"\nbase = \"nosuch:1\"\n");
    let msg = r.unwrap_err().to_string();
    assert!(
        msg.contains("nosuch:1") && msg.contains("not in the store"),
        "{msg}"
    );
    let (r, _) = build(env, "name = \"x\"\nbase = \"gcc\"\n");
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("runtimed image build gcc"), "{msg}");
    // A copy without a context directory.
    let recipe = Recipe::parse(
        "name = \"x\"\nbase = \"scratch\"\n[[step]]\ncopy = { from = \"a\", to = \"/a\" }\n",
    )
    .unwrap();
    let e = recipe::build(&env.store, &recipe, BuildOptions::default(), &env.single).unwrap_err();
    assert!(matches!(e, BuildError::NoContext { index: 1, .. }), "{e:?}");
    // A user name the image does not have fails the build, not every run.
    let (r, _) = build(
        env,
        "name = \"x\"\nbase = \"bbtest:1\"\nuser = \"nobody\"\n",
    );
    let e = r.unwrap_err();
    assert!(matches!(e, BuildError::User(_)), "{e:?}");
    assert!(e.to_string().contains("nobody"), "{e}");
    // mmdebstrap failing (a mirror nobody listens on) names the mirror and
    // carries its last lines.
    if which("mmdebstrap") {
        let (r, events) = build(
            env,
            "name = \"x\"\nbase = \"debian:bookworm\"\nmirror = \"http://127.0.0.1:9/debian\"\n",
        );
        let msg = r.unwrap_err().to_string();
        assert!(
            msg.contains("mmdebstrap")
                && msg.contains("127.0.0.1:9")
                && msg.contains("last output"),
            "{msg}"
        );
        assert!(
            !log_lines(&events, 0).is_empty(),
            "mmdebstrap's output is streamed"
        );
    } else {
        missing(
            "mmdebstrap_failure",
            "no mmdebstrap (apt-get install mmdebstrap)",
        );
    }
    assert!(matches!(
        env.store.resolve(&"x".parse().unwrap()),
        Err(StoreError::NotFound(_))
    ));
    // No scratch dirs left behind.
    let left: Vec<_> = fs::read_dir(env.store.tmp_dir()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

fn a_step_has_no_network_unless_it_asks_for_the_mirror(env: &Env) {
    let (r, events) = build(
        env,
        r#"
name = "bbnet"
base = "bbtest:1"
[[step]]
run = ["/bin/busybox", "cat", "/proc/net/dev"]
[[step]]
run = ["/bin/busybox", "cat", "/proc/net/dev", "/etc/resolv.conf"]
network = "mirror"
"#,
    );
    let out = r.unwrap_or_else(|e| panic!("{e}"));
    let none = log_lines(&events, 1);
    let ifaces: Vec<&String> = none.iter().skip(2).collect();
    assert_eq!(ifaces.len(), 1, "{none:?}");
    assert!(ifaces[0].trim_start().starts_with("lo:"), "{none:?}");
    let host = fs::read_to_string("/proc/net/dev").unwrap().lines().count() - 2;
    let mirror = log_lines(&events, 2);
    let mirror_ifaces = mirror
        .iter()
        .skip(2)
        .filter(|l| l.contains(':') && l.contains("  "))
        .count();
    assert!(mirror_ifaces >= host, "{mirror:?}");
    // The resolv.conf bound for the step (and the /etc made for it in a
    // scratch image) are not in the layer.
    let layers = ensure_layers(&env.store, &out.image).unwrap();
    assert!(!layers.last().unwrap().join("etc").exists());
}

fn export_is_read_by_umoci_and_skopeo(env: &Env) {
    let img = env.store.resolve(&"bbtest:1".parse().unwrap()).unwrap();
    let work = env._dir.path().join("export");
    fs::create_dir_all(&work).unwrap();
    let dir = work.join("layout");
    export::export(&env.store, &img, &dir, Format::Dir).unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "1"
    );
    // Not over an existing export.
    assert!(export::export(&env.store, &img, &dir, Format::Dir).is_err());
    let tar = work.join("image.tar");
    export::export(&env.store, &img, &tar, Format::Tar).unwrap();
    assert!(matches!(
        export::export(&env.store, &img, &tar, Format::Tar),
        Err(export::ExportError::Destination { .. })
    ));
    let mut names = Vec::new();
    let mut a = tar::Archive::new(fs::File::open(&tar).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        names.push(e.path().unwrap().display().to_string());
        let mut sink = Vec::new();
        e.read_to_end(&mut sink).unwrap();
    }
    assert!(names.contains(&"index.json".to_string()) && names.contains(&"oci-layout".to_string()));

    if !which("umoci") || !which("skopeo") {
        missing(
            "export_is_read_by_umoci_and_skopeo",
            "umoci or skopeo missing (apt-get install umoci skopeo)",
        );
    }
    let bundle = work.join("bundle");
    let o = Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:1", dir.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let rootfs = bundle.join("rootfs");
    assert_eq!(fs::read_to_string(rootfs.join("data/new")).unwrap(), "hi\n");
    assert!(rootfs.join("bin/busybox").is_file());
    assert!(!rootfs.join("data/gone").exists(), "whiteout applied");
    assert!(
        rootfs.join("data/old/b").exists() && !rootfs.join("data/old/a").exists(),
        "opaque dir applied"
    );
    for src in [
        format!("oci:{}:1", dir.display()),
        format!("oci-archive:{}:1", tar.display()),
    ] {
        let o = Command::new("skopeo")
            .arg("inspect")
            .arg(&src)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "skopeo {src}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["Layers"].as_array().map(|l| l.len()), Some(4), "{v}");
        let want: Vec<String> = img
            .layer_digests()
            .unwrap()
            .iter()
            .map(|d| d.to_string())
            .collect();
        let got: Vec<String> = v["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, want);
    }
}

/// Whether `tool` is on PATH.
fn which(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

fn mirror_reachable() -> bool {
    use std::net::{TcpStream, ToSocketAddrs};
    let Ok(addrs) = "deb.debian.org:80".to_socket_addrs() else {
        return false;
    };
    addrs
        .into_iter()
        .any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(5)).is_ok())
}

fn the_python_builtin_builds_from_debian_and_runs(env: &Env) {
    const NAME: &str = "the_python_builtin_builds_from_debian_and_runs";
    if !mirror_reachable() {
        missing(NAME, "deb.debian.org:80 is not reachable");
    }
    let verbose = std::env::var_os("BUILD_TEST_VERBOSE").is_some();
    let build_python = || {
        let mut events = Vec::new();
        let started = Instant::now();
        let out = recipe::build_builtin(
            &env.store,
            "python",
            BuildOptions {
                progress: Some(Box::new(|e: &BuildEvent| {
                    if verbose || !matches!(e, BuildEvent::Log { .. }) {
                        println!("  {}", serde_json::to_string(e).unwrap());
                    }
                    events.push(e.clone());
                })),
                ..BuildOptions::default()
            },
            &env.single,
        )
        .unwrap_or_else(|e| panic!("build python: {e}"));
        (out, events, started.elapsed())
    };
    let (out, events, cold) = build_python();
    println!("  python: cold build {:.1}s", cold.as_secs_f64());
    assert_eq!(out.steps_built, 1);
    assert!(
        !log_lines(&events, 1).is_empty(),
        "apt's output is streamed"
    );
    let base = env
        .store
        .resolve(&"debian:bookworm".parse::<ImageName>().unwrap())
        .unwrap();
    assert_eq!(base.manifest.layers().len(), 1);
    let layers = ensure_layers(&env.store, &out.image).unwrap();
    assert!(
        !layers[0].join("etc/hostname").exists() && !layers[0].join("etc/resolv.conf").exists()
    );
    // The package lists were removed in the same step: no regular file of
    // them is in the layer.
    let lists = layers[1].join("var/lib/apt/lists");
    let kept: Vec<_> = fs::read_dir(&lists)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name())
                .collect()
        })
        .unwrap_or_default();
    assert!(kept.is_empty(), "{kept:?}");
    assert!(!layers[1].join("etc/hosts").exists());

    let spec = layered_spec(vec!["python3".into(), "-c".into(), "print(6*7)".into()]);
    let opts = sandbox::RunOptions {
        stdio: sandbox::Stdio::Capture { stdin: None },
        wall_time: Some(Duration::from_secs(60)),
        root_layers: Some(sandbox::LayeredRoot {
            layers: layers.clone(),
            upper: sandbox::Upper::Tmpfs { bytes: 64 << 20 },
            readonly: false,
        }),
        ..sandbox::RunOptions::default()
    };
    let (report, captured) = sandbox::Sandbox::create(&spec.spec, opts, &env.single)
        .unwrap()
        .supervise(None);
    assert_eq!(
        String::from_utf8_lossy(&captured.stdout),
        "42\n",
        "{report:?} {}",
        String::from_utf8_lossy(&captured.stderr)
    );

    let (again, events, warm) = build_python();
    println!("  python: cached build {:.2}s", warm.as_secs_f64());
    assert_eq!((again.steps_built, again.steps_cached), (0, 1));
    assert_eq!(done_events(&events), [(0, true), (1, true)]);
    assert_eq!(again.image.manifest_digest, out.image.manifest_digest);
}

/// The spec a front end makes for `argv` on an image's layers (the root
/// comes from `RunOptions::root_layers`; /tmp and /workspace are the
/// request's).
fn layered_spec(argv: Vec<String>) -> sandbox::Request {
    let mut req = sandbox::Request::builder(argv).build().unwrap();
    req.spec.set_root(None);
    req
}

/// Runs `script` with /bin/sh in a sandbox on `layers` as uid 1000;
/// returns (stdout, the report and stderr for messages).
fn run_on(env: &Env, layers: &[std::path::PathBuf], script: &str) -> (String, String) {
    let spec = layered_spec(vec!["/bin/sh".into(), "-c".into(), script.into()]);
    let opts = sandbox::RunOptions {
        stdio: sandbox::Stdio::Capture { stdin: None },
        wall_time: Some(Duration::from_secs(120)),
        root_layers: Some(sandbox::LayeredRoot {
            layers: layers.to_vec(),
            upper: sandbox::Upper::Tmpfs { bytes: 256 << 20 },
            readonly: false,
        }),
        ..sandbox::RunOptions::default()
    };
    let (report, captured) = sandbox::Sandbox::create(&spec.spec, opts, &env.single)
        .unwrap()
        .supervise(None);
    (
        String::from_utf8_lossy(&captured.stdout).into_owned(),
        format!("{report:?}\n{}", String::from_utf8_lossy(&captured.stderr)),
    )
}

/// The other builtins (on the Debian base the python test built): each
/// builds, and its toolchain compiles and runs a program inside.
fn the_other_builtins_build_and_their_toolchains_work(env: &Env) {
    const NAME: &str = "the_other_builtins_build_and_their_toolchains_work";
    if !mirror_reachable() {
        missing(NAME, "deb.debian.org:80 is not reachable");
    }
    let cases = [
        (
            "gcc",
            "cd /tmp && printf 'int main(){return 42;}' > a.c && gcc -O2 a.c -o a && { ./a; echo $?; } \
             && printf '#include <iostream>\nint main(){std::cout<<6*7<<std::endl;}' > b.cpp && g++ b.cpp -o b && ./b",
            "42\n42\n",
        ),
        ("node", "node -e 'console.log(6*7)'", "42\n"),
        (
            "java",
            "cd /tmp && printf 'class M{public static void main(String[] a){System.out.println(6*7);}}' > M.java \
             && javac M.java && java -cp . M",
            "42\n",
        ),
        (
            "rust",
            "cd /tmp && printf 'fn main(){println!(\"{}\", 6*7);}' > m.rs && rustc m.rs && ./m",
            "42\n",
        ),
    ];
    for (name, script, want) in cases {
        let started = Instant::now();
        let out = recipe::build_builtin(&env.store, name, BuildOptions::default(), &env.single)
            .unwrap_or_else(|e| panic!("build {name}: {e}"));
        println!(
            "  {name}: built in {:.1}s ({} steps built, {} cached)",
            started.elapsed().as_secs_f64(),
            out.steps_built,
            out.steps_cached
        );
        let layers = ensure_layers(&env.store, &out.image).unwrap();
        let (stdout, context) = run_on(env, &layers, script);
        assert_eq!(stdout, want, "{name}: {context}");
    }
}

type Test = fn(&Env);

/// The tests in order (later ones use the image of the first).
const TESTS: [(&str, Test); 7] = [
    (
        "a_scratch_image_from_busybox_has_its_layers_and_config",
        a_scratch_image_from_busybox_has_its_layers_and_config,
    ),
    (
        "a_rebuild_is_cached_and_a_changed_file_rebuilds_from_its_step",
        a_rebuild_is_cached_and_a_changed_file_rebuilds_from_its_step,
    ),
    (
        "failures_name_the_step_and_tag_nothing",
        failures_name_the_step_and_tag_nothing,
    ),
    (
        "a_step_has_no_network_unless_it_asks_for_the_mirror",
        a_step_has_no_network_unless_it_asks_for_the_mirror,
    ),
    (
        "export_is_read_by_umoci_and_skopeo",
        export_is_read_by_umoci_and_skopeo,
    ),
    (
        "the_python_builtin_builds_from_debian_and_runs",
        the_python_builtin_builds_from_debian_and_runs,
    ),
    (
        "the_other_builtins_build_and_their_toolchains_work",
        the_other_builtins_build_and_their_toolchains_work,
    ),
];

/// The libtest arguments this harness understands: `--list`,
/// `--include-ignored`/`--ignored`, `--exact`, `--skip S`, and name filters
/// (each may be `a,b`: `cargo test --test build -- --include-ignored
/// scratch,failures`). Others (`--test-threads=N`, `--nocapture`, ...) are
/// accepted and have no effect here.
struct Args {
    list: bool,
    run_ignored: bool,
    exact: bool,
    filters: Vec<String>,
    skips: Vec<String>,
}

impl Args {
    fn parse() -> Args {
        let mut a = Args {
            list: false,
            run_ignored: false,
            exact: false,
            filters: Vec::new(),
            skips: Vec::new(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--list" => a.list = true,
                "--include-ignored" | "--ignored" => a.run_ignored = true,
                "--exact" => a.exact = true,
                "--skip" => a.skips.extend(args.next()),
                // libtest options that take a value as the next word.
                "--color" | "--format" | "--logfile" | "--test-threads" | "-Z" => {
                    args.next();
                }
                _ if arg.starts_with('-') => {}
                _ => a.filters.extend(arg.split(',').map(str::to_owned)),
            }
        }
        a
    }

    fn selects(&self, name: &str) -> bool {
        let matches = |f: &String| {
            if self.exact {
                name == f
            } else {
                name.contains(f.as_str())
            }
        };
        (self.filters.is_empty() || self.filters.iter().any(matches))
            && !self.skips.iter().any(|s| name.contains(s.as_str()))
    }
}

fn main() {
    let args = Args::parse();
    let selected: Vec<(&str, Test)> = TESTS.into_iter().filter(|(n, _)| args.selects(n)).collect();
    let filtered = TESTS.len() - selected.len();
    if args.list {
        for (name, _) in &selected {
            println!("{name}: test");
        }
        println!("\n{} tests, 0 benchmarks", selected.len());
        return;
    }
    println!("\nrunning {} tests", selected.len());
    if !args.run_ignored {
        // What a plain `cargo test` does with privileged tests: list them
        // as ignored and count them, never run them and say "ok".
        for (name, _) in &selected {
            println!("test {name} ... ignored, {IGNORED}");
        }
        println!(
            "\ntest result: ok. 0 passed; 0 failed; {} ignored; 0 measured; {filtered} filtered out\n",
            selected.len()
        );
        return;
    }
    if !nix::unistd::Uid::effective().is_root() {
        missing("build", "needs root (sandboxes)");
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("data")).unwrap();
    let ctx = dir.path().join("ctx");
    fs::create_dir_all(ctx.join("notes")).unwrap();
    let busybox = Path::new("/bin/busybox");
    if !busybox.is_file() {
        missing("build", "no /bin/busybox (apt-get install busybox-static)");
    }
    fs::copy(busybox, ctx.join("busybox")).unwrap();
    fs::write(ctx.join("notes/a.txt"), b"note\n").unwrap();
    let env = Env {
        _dir: dir,
        store,
        ctx,
        single: sandbox::SingleThreaded::check().expect("the test binary is single-threaded"),
    };
    for (name, f) in &selected {
        let t = Instant::now();
        f(&env);
        println!("test {name} ... ok ({:.1}s)", t.elapsed().as_secs_f64());
    }
    println!(
        "\ntest result: ok. {} passed; 0 failed; 0 ignored; 0 measured; {filtered} filtered out\n",
        selected.len()
    );
}
