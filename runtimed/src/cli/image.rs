//! `runtimed image ls|build|import|pull|rm|export|gc`: the image store in
//! the data dir, used directly (no daemon needed; the daemon and these
//! commands share the store safely: index changes and gc take its lock,
//! running sandboxes lease their layers).

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use rootfs_builder::{ImageName, Store};

use crate::EXIT_RUNTIME_FAILURE;

/// The data dir when neither `--data-dir` nor `RUNTIMED_DATA_DIR` says.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/runtimed";

#[derive(Args, Debug)]
pub struct ImageArgs {
    /// Data directory holding the image store.
    #[arg(long, value_name = "DIR", env = "RUNTIMED_DATA_DIR", default_value = DEFAULT_DATA_DIR, global = true)]
    data_dir: PathBuf,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand, Debug)]
enum Verb {
    /// List the images of the store.
    Ls {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Build an image from a builtin recipe (python, gcc, node, java, rust) or a recipe file.
    Build(BuildArgs),
    /// Import an OCI image layout (directory or tar) or a `docker save` archive.
    Import {
        path: PathBuf,
        /// Name the imported image (required when the archive names none).
        #[arg(long, value_name = "NAME[:TAG]")]
        name: Option<String>,
    },
    /// Pull an image from an OCI distribution registry.
    Pull {
        /// `[REGISTRY[:PORT]/]REPO[:TAG|@sha256:...]` (Docker Hub by default).
        reference: String,
        /// Allow plain HTTP (a registry without TLS, e.g. on loopback).
        #[arg(long)]
        insecure: bool,
    },
    /// Remove image names (their layers go at the next `gc`).
    Rm {
        #[arg(required = true, value_name = "NAME[:TAG]")]
        names: Vec<String>,
    },
    /// Write an image as an OCI image layout (what umoci and skopeo read).
    Export {
        name: String,
        /// A directory (made if missing) or, with `--tar`, a tar file.
        dest: PathBuf,
        #[arg(long)]
        tar: bool,
    },
    /// Remove blobs and unpacked layers no image references and no sandbox uses.
    Gc {
        /// Keep unreferenced blobs younger than this (an import, pull or
        /// build in progress writes its blobs before it names the image).
        #[arg(long, default_value = "1h", value_parser = sandbox::spec::size::parse_duration)]
        grace: std::time::Duration,
    },
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// A builtin recipe name, or a recipe file (TOML).
    recipe: String,
    /// Directory `copy` steps take their files from (default: the recipe file's directory).
    #[arg(long, value_name = "DIR")]
    context: Option<PathBuf>,
    /// Name of the result (default: the recipe's `name`).
    #[arg(long, short = 't', value_name = "NAME[:TAG]")]
    tag: Option<String>,
    /// Run every step again, ignoring the cache.
    #[arg(long)]
    no_cache: bool,
    /// Progress as text lines or JSON lines (one event per line, as `POST /v1/images/build` streams them).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    progress: String,
}

fn fail(msg: impl std::fmt::Display) -> i32 {
    eprintln!("runtimed: {msg}");
    EXIT_RUNTIME_FAILURE
}

fn open(data_dir: &Path) -> Result<Store, String> {
    Store::open(data_dir).map_err(|e| format!("image store in {}: {e}", data_dir.display()))
}

fn name_arg(s: &str) -> Result<ImageName, String> {
    s.parse::<ImageName>().map_err(|e| e.to_string())
}

/// An image ready for `runtimed run --image`: unpacked layers (bottom
/// first), leased for as long as the value lives, and its defaults.
pub struct Prepared {
    pub layers: Vec<PathBuf>,
    pub defaults: rootfs_builder::runtime::RunDefaults,
    pub lease: rootfs_builder::layers::LayerLease,
}

pub fn prepare(data_dir: &Path, name: &str) -> Result<Prepared, String> {
    let store = open(data_dir)?;
    let parsed = name_arg(name)?;
    let image = match store.resolve(&parsed) {
        Ok(i) => i,
        Err(rootfs_builder::StoreError::NotFound(_)) => {
            let base = parsed.repository.as_str();
            return Err(match rootfs_builder::recipe::builtin(base) {
                Some(_) => format!("image {parsed} is not built yet: runtimed image build {base}"),
                None => format!("image {parsed} is not in the store (runtimed image ls)"),
            });
        }
        Err(e) => return Err(e.to_string()),
    };
    let (layers, lease) =
        rootfs_builder::unpack::ensure_leased(&store, &image, &Default::default())
            .map_err(|e| format!("image {parsed}: {e}"))?;
    let defaults =
        rootfs_builder::runtime::run_defaults(&image, &layers).map_err(|e| e.to_string())?;
    Ok(Prepared {
        layers,
        defaults,
        lease,
    })
}

fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

pub fn main(a: ImageArgs, single: &sandbox::SingleThreaded) -> i32 {
    match run(a, single) {
        Ok(code) => code,
        Err(e) => fail(e),
    }
}

fn run(a: ImageArgs, single: &sandbox::SingleThreaded) -> Result<i32, String> {
    let store = open(&a.data_dir)?;
    let mut out = std::io::stdout().lock();
    match a.verb {
        Verb::Ls { json } => {
            let list = store.list().map_err(|e| e.to_string())?;
            if json {
                for e in list {
                    let line = serde_json::to_string(&e).map_err(|e| e.to_string())?;
                    let _ = writeln!(out, "{line}");
                }
            } else {
                let _ = writeln!(out, "{:<40} {:<20} {:>10}", "NAME", "DIGEST", "SIZE");
                for e in list {
                    let d = e.digest.to_string();
                    let _ = writeln!(
                        out,
                        "{:<40} {:<20} {:>10}",
                        e.name,
                        &d[..19.min(d.len())],
                        human(e.size)
                    );
                }
            }
            Ok(0)
        }
        Verb::Rm { names } => {
            for n in names {
                let name = name_arg(&n)?;
                store.untag(&name).map_err(|e| e.to_string())?;
                let _ = writeln!(out, "removed {name}");
            }
            Ok(0)
        }
        Verb::Gc { grace } => {
            let r = rootfs_builder::gc::gc_with(&store, &rootfs_builder::gc::GcOptions { grace })
                .map_err(|e| e.to_string())?;
            let _ = writeln!(
                out,
                "removed {} blobs and {} layers, freed {}; {} layers in use kept",
                r.removed_blobs,
                r.removed_layers,
                human(r.freed_bytes),
                r.kept_in_use
            );
            Ok(0)
        }
        Verb::Import { path, name } => {
            let name = name.as_deref().map(name_arg).transpose()?;
            let images = rootfs_builder::import::import(&store, &path, name.as_ref())
                .map_err(|e| format!("import {}: {e}", path.display()))?;
            for i in images {
                let _ = writeln!(out, "imported {} ({})", i.name, i.manifest_digest);
            }
            Ok(0)
        }
        Verb::Pull {
            reference,
            insecure,
        } => {
            let opts = rootfs_builder::registry::PullOptions {
                insecure,
                ..Default::default()
            };
            let image = rootfs_builder::registry::pull(&store, &reference, &opts)
                .map_err(|e| format!("pull {reference}: {e}"))?;
            let _ = writeln!(out, "pulled {} ({})", image.name, image.manifest_digest);
            Ok(0)
        }
        Verb::Export { name, dest, tar } => {
            let name = name_arg(&name)?;
            let format = if tar {
                rootfs_builder::export::Format::Tar
            } else {
                rootfs_builder::export::Format::Dir
            };
            let image = store.resolve(&name).map_err(|e| e.to_string())?;
            rootfs_builder::export::export(&store, &image, &dest, format)
                .map_err(|e| format!("export {name}: {e}"))?;
            let _ = writeln!(out, "exported {name} to {}", dest.display());
            Ok(0)
        }
        Verb::Build(b) => {
            drop(out);
            build(&store, b, single)
        }
    }
}

fn build(store: &Store, b: BuildArgs, single: &sandbox::SingleThreaded) -> Result<i32, String> {
    use rootfs_builder::recipe::{self, BuildEvent, BuildOptions, Recipe};
    // A path (or anything with a '/' or ".toml") is a recipe file; a bare
    // word is a builtin recipe.
    let as_path = Path::new(&b.recipe);
    let is_file = b.recipe.contains('/') || b.recipe.ends_with(".toml") || as_path.is_file();
    let (mut recipe, context) = if is_file {
        let r = Recipe::from_file(as_path).map_err(|e| format!("{}: {e}", as_path.display()))?;
        let dir = as_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        (r, Some(b.context.clone().unwrap_or(dir)))
    } else {
        let r = recipe::builtin(&b.recipe).ok_or_else(|| {
            format!(
                "no builtin recipe {:?} (builtins: {}; or give a recipe file)",
                b.recipe,
                recipe::BUILTINS.join(", ")
            )
        })?;
        (r, b.context.clone())
    };
    if let Some(t) = &b.tag {
        name_arg(t)?;
        recipe.name = t.clone();
    }
    let json = b.progress == "json";
    let progress = move |ev: &BuildEvent| {
        let mut out = std::io::stdout().lock();
        if json {
            if let Ok(line) = serde_json::to_string(ev) {
                let _ = writeln!(out, "{line}");
            }
        } else {
            let _ = writeln!(out, "{}", event_text(ev));
        }
        let _ = out.flush();
    };
    let opts = BuildOptions {
        context,
        no_cache: b.no_cache,
        progress: Some(Box::new(progress)),
        run_dir: None,
    };
    let outcome = recipe::build(store, &recipe, opts, single)
        .map_err(|e| format!("build {}: {e}", recipe.name))?;
    if !json {
        println!(
            "built {} ({}): {} steps built, {} cached",
            outcome.image.name,
            outcome.image.manifest_digest,
            outcome.steps_built,
            outcome.steps_cached
        );
    }
    Ok(0)
}

/// One progress event as a line of text.
fn event_text(ev: &rootfs_builder::recipe::BuildEvent) -> String {
    let v = serde_json::to_value(ev).unwrap_or_default();
    let s = |k: &str| {
        v.get(k).map_or_else(String::new, |x| {
            x.as_str().map_or_else(|| x.to_string(), String::from)
        })
    };
    match v.get("type").and_then(|t| t.as_str()).unwrap_or("") {
        "step_start" => format!("[{}/{}] {}", s("index"), s("total"), s("description")),
        "log" => format!("  | {}", s("line")),
        "step_done" => {
            let how = if v.get("cached").and_then(|c| c.as_bool()) == Some(true) {
                "cached"
            } else {
                "built"
            };
            format!(
                "  {how} {} ({})",
                s("layer"),
                human(v.get("size").and_then(|x| x.as_u64()).unwrap_or(0))
            )
        }
        "done" => format!("image {} {}", s("image"), s("manifest")),
        _ => v.to_string(),
    }
}
