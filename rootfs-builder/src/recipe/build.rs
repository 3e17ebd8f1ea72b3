//! Building a recipe into an image of the store: the base, then one layer
//! per step (packages and run steps in a sandbox over the layers so far,
//! writes caught in an overlay upper dir on the store's disk and diffed
//! into a layer; copy steps written straight from the context directory),
//! then the config and manifest, tagged last (a failed build names
//! nothing).
//!
//! Steps are cached by key: sha256 over the parent layers' diff_ids, the
//! step itself, its environment and, for a copy, the digests, names, modes
//! and owner of the copied files. `<data dir>/build-cache/<key hex>.json`
//! holds the layer; a hit whose blob gc removed is rebuilt.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::{
    Config, ConfigBuilder, Descriptor, History, HistoryBuilder, ImageConfiguration,
    ImageConfigurationBuilder, MediaType, RootFsBuilder,
};
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::layers::{self, LayerError, LayerLease};
use crate::recipe::debian::{self, DebianError, DirGuard};
use crate::recipe::diff::{self, DiffError, LayerBlob};
use crate::recipe::{Base, Network, Recipe, RecipeError, StepKind, UserSpec};
use crate::runtime::RuntimeError;
use crate::store::ImageContent;
use crate::store::{to_oci_digest, Image, Store, StoreError};
use crate::unpack::{self, UnpackError, UnpackLimits};

/// Wall-clock limit of one sandboxed step.
pub const STEP_WALL_TIME: Duration = Duration::from_secs(3600);
/// Memory and task limits of one sandboxed step (compilers and apt need
/// more than a program's defaults).
pub const STEP_MEMORY_BYTES: u64 = 2 << 30;
pub const STEP_PIDS: u64 = 1024;
/// Longest log line sent as one event (longer lines are split).
const MAX_LOG_LINE: usize = 16 << 10;
/// Version of the cache key's layout; bump to invalidate every entry.
const CACHE_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    #[error("no builtin recipe {name:?} (builtins: {})", crate::recipe::BUILTINS.join(", "))]
    NoBuiltin { name: String },
    #[error("base image {base} is not in the store{}", match .builtin { Some(b) => format!(" (build it with `runtimed image build {b}`)"), None => " (pull, import or build it first)".into() })]
    BaseMissing {
        base: String,
        builtin: Option<String>,
    },
    #[error(transparent)]
    Debian(#[from] DebianError),
    #[error("step {index} ({description}) failed with exit code {code}")]
    StepExit {
        index: usize,
        description: String,
        code: i32,
    },
    #[error("step {index} ({description}) failed: {reason}")]
    StepFailed {
        index: usize,
        description: String,
        reason: String,
    },
    #[error("step {index} ({description}): the sandbox: {source}")]
    Sandbox {
        index: usize,
        description: String,
        #[source]
        source: sandbox::SandboxError,
    },
    #[error("step {index} ({description}): {source}")]
    Layer {
        index: usize,
        description: String,
        #[source]
        source: DiffError,
    },
    #[error(
        "step {index} ({description}) copies from the context directory, but the build has none"
    )]
    NoContext { index: usize, description: String },
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error(transparent)]
    Lease(#[from] LayerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    User(#[from] RuntimeError),
    #[error("image config: {0}")]
    Config(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> BuildError {
    let what = what.into();
    move |source| BuildError::Io { what, source }
}

fn config_err(e: impl std::fmt::Display) -> BuildError {
    BuildError::Config(e.to_string())
}

/// Which output stream a log line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// Progress of a build. Step 0 is the base (only announced when it is
/// made or reused from `debian:SUITE`); steps 1..=total are the recipe's,
/// in `Recipe::step_kinds` order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BuildEvent {
    StepStart {
        index: usize,
        total: usize,
        description: String,
    },
    Log {
        index: usize,
        stream: LogStream,
        line: String,
    },
    StepDone {
        index: usize,
        cached: bool,
        layer: Digest,
        size: u64,
        seconds: f64,
    },
    Done {
        image: String,
        manifest: Digest,
        size: u64,
    },
}

/// Receives the events of a build.
pub type Progress<'a> = Box<dyn FnMut(&BuildEvent) + 'a>;

/// How to build.
#[derive(Default)]
pub struct BuildOptions<'a> {
    /// Where copy steps read from (required when the recipe has one).
    pub context: Option<PathBuf>,
    /// Rebuild every step (the `debian:SUITE` base is still reused).
    pub no_cache: bool,
    /// Called with every event, in order, on the building thread.
    pub progress: Option<Progress<'a>>,
    /// The sandbox's run dir (default `/run/runtimed`).
    pub run_dir: Option<PathBuf>,
}

/// What a build made.
#[derive(Clone, Debug)]
pub struct BuildOutcome {
    pub image: Image,
    pub steps_cached: usize,
    pub steps_built: usize,
}

/// Builds builtin recipe `name` (`python`, `gcc`, ...).
pub fn build_builtin(
    store: &Store,
    name: &str,
    opts: BuildOptions<'_>,
    single: &sandbox::SingleThreaded,
) -> Result<BuildOutcome, BuildError> {
    let recipe =
        crate::recipe::builtin(name).ok_or_else(|| BuildError::NoBuiltin { name: name.into() })?;
    build(store, &recipe, opts, single)
}

/// One cache entry.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct CacheEntry {
    layer: LayerBlob,
    description: String,
}

/// The layers so far: descriptors and diff_ids, bottom first.
struct Layers {
    descs: Vec<Descriptor>,
    diff_ids: Vec<Digest>,
}

impl Layers {
    /// Unpacked dirs of every layer, leased against gc while the step runs.
    fn unpacked(&self, store: &Store) -> Result<(Vec<PathBuf>, LayerLease), BuildError> {
        let limits = UnpackLimits::default();
        let mut tries = 0;
        loop {
            let dirs = self
                .descs
                .iter()
                .zip(&self.diff_ids)
                .map(|(d, id)| unpack::ensure_layer(store, d, id, &limits))
                .collect::<Result<Vec<_>, _>>()?;
            match layers::lease_diff_ids(store, &self.diff_ids) {
                Ok(lease) => return Ok((dirs, lease)),
                Err(LayerError::Missing(_)) if tries < 3 => tries += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn push(&mut self, l: &LayerBlob) {
        self.descs.push(Descriptor::new(
            MediaType::ImageLayerGzip,
            l.size,
            to_oci_digest(&l.digest),
        ));
        self.diff_ids.push(l.diff_id.clone());
    }
}

struct Builder<'s, 'a> {
    store: &'s Store,
    progress: Option<Progress<'a>>,
    run_dir: PathBuf,
    /// Run steps are sandboxes, forked from this single-threaded process.
    single: &'s sandbox::SingleThreaded,
}

impl Builder<'_, '_> {
    fn emit(&mut self, e: BuildEvent) {
        if let Some(p) = self.progress.as_mut() {
            p(&e);
        }
    }
}

/// Builds `recipe` and tags the image with its name.
pub fn build(
    store: &Store,
    recipe: &Recipe,
    opts: BuildOptions<'_>,
    single: &sandbox::SingleThreaded,
) -> Result<BuildOutcome, BuildError> {
    recipe.validate()?;
    let name = recipe.image_name()?;
    let kinds = recipe.step_kinds();
    let total = kinds.len();
    let mut b = Builder {
        store,
        progress: opts.progress,
        run_dir: opts
            .run_dir
            .unwrap_or_else(|| PathBuf::from(sandbox::options::defaults::RUN_DIR)),
        single,
    };
    let cache_dir = store.data_dir().join("build-cache");
    std::fs::create_dir_all(&cache_dir)
        .map_err(io_err(format!("create {}", cache_dir.display())))?;

    let base_image = match recipe.base()? {
        Base::Scratch => None,
        Base::Debian { suite, mirror } => {
            Some(debian_base(&mut b, &cache_dir, &suite, &mirror, total)?)
        }
        Base::Image(n) => match store.resolve(&n) {
            Ok(img) => Some(img),
            Err(StoreError::NotFound(_)) => {
                let builtin = crate::recipe::BUILTINS
                    .iter()
                    .find(|b| n.repository == **b && n.tag == "latest")
                    .map(|b| b.to_string());
                return Err(BuildError::BaseMissing {
                    base: n.to_string(),
                    builtin,
                });
            }
            Err(e) => return Err(e.into()),
        },
    };
    let mut layers = Layers {
        descs: Vec::new(),
        diff_ids: Vec::new(),
    };
    let mut history: Vec<History> = Vec::new();
    let mut base_config: Option<Config> = None;
    if let Some(img) = &base_image {
        layers.descs = img.manifest.layers().iter().map(oci_layer).collect();
        layers.diff_ids = img.diff_ids()?;
        history = img.config.history().clone().unwrap_or_default();
        base_config = img.config.config().clone();
    }

    // The env of the image: the base's with the recipe's over it.
    let mut image_env = sandbox::Env::empty();
    for kv in base_config
        .as_ref()
        .and_then(|c| c.env().as_ref())
        .into_iter()
        .flatten()
    {
        // A base image's malformed entry is dropped, as a shell would.
        let _ = image_env.set_entry(kv);
    }
    let mut image_env = image_env.with_default_path();
    set_env(&mut image_env, &recipe.env);

    let mut cached_n = 0;
    let mut built_n = 0;
    for (i, kind) in kinds.iter().enumerate() {
        let index = i + 1;
        let description = describe(kind);
        let started = Instant::now();
        b.emit(BuildEvent::StepStart {
            index,
            total,
            description: description.clone(),
        });
        let mut env = sandbox::Env::empty();
        let _ = env.set("HOME", "/root"); // a well-formed name
        for kv in image_env.entries() {
            let _ = env.set_entry(&kv); // made by `set_env` above: well-formed
        }
        let step_json = match kind {
            StepKind::Run {
                argv,
                network,
                env: step_env,
            } => {
                set_env(&mut env, step_env);
                serde_json::json!({ "run": argv, "network": network })
            }
            StepKind::Packages {
                packages,
                env: step_env,
            } => {
                let _ = env.set("DEBIAN_FRONTEND", "noninteractive"); // well-formed
                set_env(&mut env, step_env);
                serde_json::json!({ "packages": packages })
            }
            StepKind::Copy { from, to, owner } => {
                let Some(ctx) = &opts.context else {
                    return Err(BuildError::NoContext { index, description });
                };
                let src = diff::copy_source(ctx, from).map_err(|source| BuildError::Layer {
                    index,
                    description: description.clone(),
                    source,
                })?;
                let files = copy_fingerprint(&src).map_err(|source| BuildError::Layer {
                    index,
                    description: description.clone(),
                    source,
                })?;
                serde_json::json!({ "copy": { "from": from, "to": to, "owner": [owner.0, owner.1], "files": files } })
            }
        };
        let env = env.entries();
        let key = cache_key(&layers.diff_ids, &step_json, &env);
        let hit = if opts.no_cache {
            None
        } else {
            cache_get(&cache_dir, &key).filter(|e| renew_blob(store, &e.layer.digest))
        };
        let (layer, cached) = match hit {
            Some(e) => (e.layer, true),
            None => {
                let layer = run_kind(
                    &mut b,
                    &layers,
                    kind,
                    &env,
                    opts.context.as_deref(),
                    index,
                    &description,
                )?;
                cache_put(
                    &cache_dir,
                    &key,
                    &CacheEntry {
                        layer: layer.clone(),
                        description: description.clone(),
                    },
                )
                .map_err(|source| BuildError::Layer {
                    index,
                    description: description.clone(),
                    source,
                })?;
                (layer, false)
            }
        };
        if cached {
            cached_n += 1;
        } else {
            built_n += 1;
        }
        layers.push(&layer);
        history.push(
            HistoryBuilder::default()
                .created_by(description)
                .comment("runtimed image build")
                .build()
                .map_err(config_err)?,
        );
        b.emit(BuildEvent::StepDone {
            index,
            cached,
            layer: layer.digest.clone(),
            size: layer.size,
            seconds: started.elapsed().as_secs_f64(),
        });
    }

    let config = image_config(
        recipe,
        base_config.as_ref(),
        image_env.entries(),
        &layers,
        history,
    )?;
    if let Some(u) = &recipe.user {
        if let UserSpec::Names(..) = crate::recipe::parse_user(u)? {
            // Checked now so that a typo fails the build, not every run.
            let (dirs, _lease) = layers.unpacked(store)?;
            crate::runtime::resolve_user(&name.to_string(), u, &dirs)?;
        }
    }
    let cbytes = serde_json::to_vec(&config).map_err(config_err)?;
    let image = store.put_image(
        &name,
        ImageContent::Parts {
            config: &cbytes,
            layers: layers.descs.clone(),
        },
    )?;
    b.emit(BuildEvent::Done {
        image: name.to_string(),
        manifest: image.manifest_digest.clone(),
        size: image.size(),
    });
    Ok(BuildOutcome {
        image,
        steps_cached: cached_n,
        steps_built: built_n,
    })
}

/// The base `debian:SUITE`: reused when stored with the same key, else
/// made (under a lock, so two builds do not both run mmdebstrap).
fn debian_base(
    b: &mut Builder<'_, '_>,
    cache_dir: &Path,
    suite: &str,
    mirror: &str,
    total: usize,
) -> Result<Image, BuildError> {
    let description = format!(
        "base debian:{suite} (mmdebstrap --variant={} from {mirror})",
        debian::VARIANT
    );
    let started = Instant::now();
    b.emit(BuildEvent::StepStart {
        index: 0,
        total,
        description,
    });
    let lock_path = cache_dir.join(format!("debian-{suite}.lock"));
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err(format!("open {}", lock_path.display())))?;
    let _lock = Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| BuildError::Io {
        what: format!("lock {}", lock_path.display()),
        source: io::Error::from_raw_os_error(e as i32),
    })?;
    let (image, cached) = match debian::cached(b.store, suite, mirror) {
        Some(img) => (img, true),
        None => {
            let store = b.store;
            let progress = &mut b.progress;
            // mmdebstrap's output is streamed as step 0's log.
            let mut log = |line: &str| {
                if let Some(p) = progress.as_mut() {
                    p(&BuildEvent::Log {
                        index: 0,
                        stream: LogStream::Stderr,
                        line: line.to_string(),
                    });
                }
            };
            let img = debian::make(store, suite, mirror, &mut log)?;
            (img, false)
        }
    };
    let layer = image.layer_digests()?.into_iter().next_back();
    let (layer, size) = match (layer, image.manifest.layers().last()) {
        (Some(l), Some(d)) => (l, d.size()),
        _ => return Err(BuildError::Config("the debian base has no layer".into())),
    };
    b.emit(BuildEvent::StepDone {
        index: 0,
        cached,
        layer,
        size,
        seconds: started.elapsed().as_secs_f64(),
    });
    Ok(image)
}

/// A base image's layer descriptor with Docker's media types as OCI's
/// (same bytes; the built image's manifest is an OCI one).
fn oci_layer(d: &Descriptor) -> Descriptor {
    let mut d = d.clone();
    if let MediaType::Other(t) = d.media_type() {
        let oci = match t.as_str() {
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                Some(MediaType::ImageLayerGzip)
            }
            "application/vnd.docker.image.rootfs.diff.tar" => Some(MediaType::ImageLayer),
            _ => None,
        };
        if let Some(m) = oci {
            d.set_media_type(m);
        }
    }
    d
}

/// One line describing a step (history `created_by`, progress).
fn describe(kind: &StepKind<'_>) -> String {
    match kind {
        StepKind::Run { argv, network, .. } => {
            let net = match network {
                Network::None => "",
                Network::Mirror => " (network: mirror)",
            };
            format!("run {}{net}", shell_words(argv))
        }
        StepKind::Copy { from, to, owner } => {
            format!("copy {from} {to} (owner {}:{})", owner.0, owner.1)
        }
        StepKind::Packages { packages, .. } => format!("packages {}", packages.join(" ")),
    }
}

fn shell_words(argv: &[String]) -> String {
    if argv.len() == 3 && argv[0] == "/bin/sh" && argv[1] == "-c" {
        return argv[2].clone();
    }
    serde_json::to_string(argv).unwrap_or_default()
}

/// The recipe's `env` tables over `env` (names were checked when the
/// recipe was parsed).
fn set_env(env: &mut sandbox::Env, over: &BTreeMap<String, String>) {
    for (k, v) in over {
        let _ = env.set(k, v);
    }
}

/// What identifies the files of a copy: names, kinds, modes, sizes and
/// content digests (not mtimes: a touched file with the same bytes hits).
fn copy_fingerprint(src: &diff::CopySource) -> Result<Vec<serde_json::Value>, DiffError> {
    use crate::recipe::tree::Kind;
    let mut out = Vec::new();
    for e in &src.entries {
        let abs = if e.rel.as_os_str().is_empty() {
            src.src.clone()
        } else {
            src.src.join(&e.rel)
        };
        let what = match &e.kind {
            Kind::File => {
                let f = File::open(&abs).map_err(|source| DiffError::Io {
                    what: format!("read {}", abs.display()),
                    source,
                })?;
                let mut r = crate::digest::HashingReader::new(f);
                io::copy(&mut r, &mut io::sink()).map_err(|source| DiffError::Io {
                    what: format!("read {}", abs.display()),
                    source,
                })?;
                r.finish().0.to_string()
            }
            Kind::Symlink(t) => format!("symlink:{}", t.display()),
            Kind::Dir => "dir".into(),
            Kind::Fifo => "fifo".into(),
            Kind::Whiteout | Kind::Other => "skipped".into(),
        };
        out.push(serde_json::json!([e.rel.to_string_lossy(), e.mode, what]));
    }
    Ok(out)
}

/// Whether the blob is still stored; its mtime is renewed so that gc's
/// grace period (which spares recent unreferenced blobs) covers it until
/// the image that uses it is tagged.
fn renew_blob(store: &Store, d: &Digest) -> bool {
    File::open(store.blob_path(d))
        .and_then(|f| f.set_modified(std::time::SystemTime::now()))
        .is_ok()
}

fn cache_key(parents: &[Digest], step: &serde_json::Value, env: &[String]) -> Digest {
    let v = serde_json::json!({
        "v": CACHE_VERSION,
        "parents": parents,
        "step": step,
        "env": env,
    });
    Digest::of(v.to_string().as_bytes())
}

fn cache_get(dir: &Path, key: &Digest) -> Option<CacheEntry> {
    let bytes = std::fs::read(dir.join(format!("{}.json", key.hex()))).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn cache_put(dir: &Path, key: &Digest, e: &CacheEntry) -> Result<(), DiffError> {
    let bytes = serde_json::to_vec(e).map_err(|e| DiffError::Io {
        what: "encode a cache entry".into(),
        source: io::Error::other(e),
    })?;
    let p = dir.join(format!("{}.json", key.hex()));
    crate::atomic_write::write_atomic(&p, &bytes, 0o600).map_err(|source| DiffError::Io {
        what: format!("write {}", p.display()),
        source,
    })
}

/// Builds one step's layer.
fn run_kind(
    b: &mut Builder<'_, '_>,
    layers: &Layers,
    kind: &StepKind<'_>,
    env: &[String],
    context: Option<&Path>,
    index: usize,
    description: &str,
) -> Result<LayerBlob, BuildError> {
    let layer_err = |source| BuildError::Layer {
        index,
        description: description.into(),
        source,
    };
    let (lowers, _lease) = layers.unpacked(b.store)?;
    match kind {
        StepKind::Copy { from, to, owner } => {
            let Some(ctx) = context else {
                return Err(BuildError::NoContext {
                    index,
                    description: description.into(),
                });
            };
            let src = diff::copy_source(ctx, from).map_err(layer_err)?;
            diff::copy_layer(b.store, &src, to, *owner, &lowers).map_err(layer_err)
        }
        StepKind::Run { argv, network, .. } => {
            sandboxed(b, &lowers, argv.clone(), env, *network, index, description)
        }
        StepKind::Packages { packages, .. } => {
            // apt-get runs as root and drops to _apt for downloads (needs
            // CAP_SETUID/SETGID, which build steps hold); the lists and
            // the .deb cache are removed in the same step so that no layer
            // carries them.
            let mut script =
                String::from("set -e; apt-get update; apt-get install -y --no-install-recommends");
            for p in packages.iter() {
                // check_packages allowed only [a-z0-9+.-:=~]: no quoting needed.
                script.push(' ');
                script.push_str(p);
            }
            script.push_str("; apt-get clean; rm -rf /var/lib/apt/lists/*");
            let argv = vec!["/bin/sh".to_string(), "-c".to_string(), script];
            sandboxed(b, &lowers, argv, env, Network::Mirror, index, description)
        }
    }
}

/// Runs `argv` as root in a sandbox over `lowers` with an upper dir in the
/// store's scratch space, streams its output, and diffs the upper dir.
fn sandboxed(
    b: &mut Builder<'_, '_>,
    lowers: &[PathBuf],
    argv: Vec<String>,
    env: &[String],
    network: Network,
    index: usize,
    description: &str,
) -> Result<LayerBlob, BuildError> {
    let scratch = b
        .store
        .tmp_dir()
        .join(format!("step-{}", crate::atomic_write::random_hex()));
    std::fs::create_dir(&scratch).map_err(io_err(format!("create {}", scratch.display())))?;
    let _cleanup = DirGuard(scratch.clone());
    let root = sandbox::LayeredRoot {
        layers: lowers.to_vec(),
        upper: sandbox::Upper::Dir(scratch.clone()),
        readonly: false,
    };
    let req = step_request(argv, env, network, root).map_err(|reason| BuildError::StepFailed {
        index,
        description: description.into(),
        reason,
    })?;
    let sandbox_err = |source| BuildError::Sandbox {
        index,
        description: description.into(),
        source,
    };
    let pipe = || {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| io::Error::from_raw_os_error(e as i32))
    };
    let (out_r, out_w) = pipe().map_err(io_err("pipe"))?;
    let (err_r, err_w) = pipe().map_err(io_err("pipe"))?;
    let stdin: OwnedFd = File::open("/dev/null")
        .map_err(io_err("open /dev/null"))?
        .into();
    let opts = sandbox::RunOptions {
        stdio: sandbox::Stdio::Forward {
            stdin,
            stdout: out_w,
            stderr: err_w,
        },
        run_dir: b.run_dir.clone(),
        ..req.run_options()
    };
    let spec = req.spec;
    // Created (forked) before any thread of ours exists.
    let sb = sandbox::Sandbox::create(&spec, opts, b.single).map_err(sandbox_err)?;
    let (tx, rx) = std::sync::mpsc::channel::<(LogStream, String)>();
    let report = std::thread::scope(|s| {
        let sup = s.spawn(move || sb.supervise(None));
        for (fd, stream) in [(out_r, LogStream::Stdout), (err_r, LogStream::Stderr)] {
            let tx = tx.clone();
            s.spawn(move || read_lines(fd, stream, &tx));
        }
        drop(tx);
        for (stream, line) in rx {
            b.emit(BuildEvent::Log {
                index,
                stream,
                line,
            });
        }
        sup.join()
    });
    let (report, _) = report.map_err(|_| BuildError::StepFailed {
        index,
        description: description.into(),
        reason: "the supervisor thread panicked".into(),
    })?;
    if let Some(err) = &report.error {
        return Err(BuildError::StepFailed {
            index,
            description: description.into(),
            reason: err.to_string(),
        });
    }
    match (report.termination, report.exit_code) {
        (sandbox::Termination::Exited, Some(0)) => {}
        (sandbox::Termination::Exited, Some(code)) => {
            return Err(BuildError::StepExit {
                index,
                description: description.into(),
                code,
            })
        }
        (t, _) => {
            return Err(BuildError::StepFailed {
                index,
                description: description.into(),
                reason: match report.signal {
                    Some(sig) => format!("{} (signal {sig})", t.as_str()),
                    None => t.as_str().to_string(),
                },
            })
        }
    }
    diff::diff_upper(b.store, &scratch.join("upper"), lowers).map_err(|source| BuildError::Layer {
        index,
        description: description.into(),
        source,
    })
}

fn read_lines(fd: OwnedFd, stream: LogStream, tx: &std::sync::mpsc::Sender<(LogStream, String)>) {
    let mut r = BufReader::new(File::from(fd));
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match io::Read::take(&mut r, MAX_LOG_LINE as u64).read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                while buf.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
                    buf.pop();
                }
                let line = String::from_utf8_lossy(&buf).into_owned();
                if tx.send((stream, line)).is_err() {
                    return;
                }
            }
        }
    }
}

/// The request of a build step: root (0:0 inside) in `/`, the step's env,
/// [`sandbox::spec::BUILD_CAPABILITIES`] inside the user namespace, the
/// image's layers under `upper`; with the mirror network, the host's
/// network and its resolv.conf bound read-only (never committed, see
/// `diff`).
fn step_request(
    argv: Vec<String>,
    env: &[String],
    network: Network,
    root: sandbox::LayeredRoot,
) -> Result<sandbox::Request, String> {
    let mut step_env = sandbox::Env::empty();
    step_env.extend_entries(env).map_err(|e| e.to_string())?;
    sandbox::Request::builder(argv)
        .env(step_env)
        .cwd("/")
        .user(0, 0)
        .root_layers(root)
        .memory(STEP_MEMORY_BYTES)
        .pids(STEP_PIDS)
        .wall_time(STEP_WALL_TIME)
        .build_step(match network {
            Network::Mirror => sandbox::request::StepNetwork::Host,
            Network::None => sandbox::request::StepNetwork::None,
        })
        .build()
        .map_err(|e| e.to_string())
}

/// The image config: the base's with the recipe's env, workdir, user, cmd
/// and entrypoint over it, no timestamps (the same build gives the same
/// digest).
fn image_config(
    recipe: &Recipe,
    base: Option<&Config>,
    env: Vec<String>,
    layers: &Layers,
    history: Vec<History>,
) -> Result<ImageConfiguration, BuildError> {
    let mut c = ConfigBuilder::default().env(env);
    let workdir = recipe
        .workdir
        .clone()
        .or_else(|| base.and_then(|b| b.working_dir().clone()));
    if let Some(w) = workdir {
        c = c.working_dir(w);
    }
    let user = recipe
        .user
        .clone()
        .or_else(|| base.and_then(|b| b.user().clone()));
    if let Some(u) = user {
        c = c.user(u);
    }
    // An entrypoint set by the recipe drops the base's cmd (as Docker does).
    let entrypoint = recipe
        .entrypoint
        .clone()
        .or_else(|| base.and_then(|b| b.entrypoint().clone()));
    let cmd = match (&recipe.cmd, &recipe.entrypoint) {
        (Some(c), _) => Some(c.clone()),
        (None, Some(_)) => None,
        (None, None) => base.and_then(|b| b.cmd().clone()),
    };
    if let Some(e) = entrypoint {
        c = c.entrypoint(e);
    }
    if let Some(cmd) = cmd {
        c = c.cmd(cmd);
    }
    let labels: HashMap<String, String> = base
        .and_then(|b| b.labels().clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("org.runtimed.base."))
        .collect();
    if !labels.is_empty() {
        c = c.labels(labels);
    }
    if let Some(ports) = base.and_then(|b| b.exposed_ports().clone()) {
        c = c.exposed_ports(ports);
    }
    ImageConfigurationBuilder::default()
        .architecture(oci_spec::image::Arch::Amd64)
        .os(oci_spec::image::Os::Linux)
        .config(c.build().map_err(config_err)?)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(
                    layers
                        .diff_ids
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>(),
                )
                .build()
                .map_err(config_err)?,
        )
        .history(history)
        .build()
        .map_err(config_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_layer_types_become_oci_ones() {
        let d = Descriptor::new(
            MediaType::Other("application/vnd.docker.image.rootfs.diff.tar.gzip".into()),
            3,
            to_oci_digest(&Digest::of(b"x")),
        );
        let o = oci_layer(&d);
        assert_eq!(o.media_type(), &MediaType::ImageLayerGzip);
        assert_eq!((o.size(), o.digest()), (d.size(), d.digest()));
        let z = Descriptor::new(MediaType::ImageLayerZstd, 3, d.digest().clone());
        assert_eq!(oci_layer(&z).media_type(), &MediaType::ImageLayerZstd);
    }

    #[test]
    fn events_serialize_tagged() {
        let e = BuildEvent::StepStart {
            index: 1,
            total: 2,
            description: "run x".into(),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"type":"step_start","index":1,"total":2,"description":"run x"}"#
        );
        let e = BuildEvent::Log {
            index: 1,
            stream: LogStream::Stderr,
            line: "l".into(),
        };
        assert!(serde_json::to_string(&e)
            .unwrap()
            .contains(r#""stream":"stderr""#));
    }

    #[test]
    fn cache_keys_change_with_parents_steps_and_env() {
        let d = Digest::of(b"x");
        let s = serde_json::json!({"run": ["a"]});
        let k = cache_key(std::slice::from_ref(&d), &s, &["A=1".into()]);
        assert_eq!(k, cache_key(std::slice::from_ref(&d), &s, &["A=1".into()]));
        assert_ne!(k, cache_key(&[], &s, &["A=1".into()]));
        assert_ne!(
            k,
            cache_key(
                std::slice::from_ref(&d),
                &serde_json::json!({"run": ["b"]}),
                &["A=1".into()]
            )
        );
        assert_ne!(k, cache_key(&[d], &s, &["A=2".into()]));
    }
}
