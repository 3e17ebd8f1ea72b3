//! The `debian:SUITE` base: one layer made by mmdebstrap (`minbase`, the
//! smallest set with apt) from a Debian mirror, stored as image
//! `debian:SUITE` so that later builds and other recipes reuse it. The
//! image's config carries the key it was made for (suite, mirror, variant)
//! as a label; an image of that name without the same key is rebuilt.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use flate2::write::GzEncoder;
use oci_spec::image::{
    ConfigBuilder, Descriptor, HistoryBuilder, ImageConfigurationBuilder, MediaType, RootFsBuilder,
};

use crate::digest::{Digest, HashingReader};
use crate::recipe::diff::LayerBlob;
use crate::store::ImageContent;
use crate::store::{to_oci_digest, Image, ImageName, Store, StoreError, TmpGuard};

/// Label of the base's key in its image config.
pub const KEY_LABEL: &str = "org.runtimed.base.key";
/// mmdebstrap's variant: essential packages and apt.
pub const VARIANT: &str = "minbase";

#[derive(Debug, thiserror::Error)]
pub enum DebianError {
    #[error("mmdebstrap {suite} from {mirror}: {reason}{}", tail_text(.stderr))]
    Mmdebstrap {
        suite: String,
        mirror: String,
        reason: String,
        /// Its last lines of output.
        stderr: Vec<String>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("debian base: {0}")]
    Build(String),
}

fn tail_text(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("; last output:\n  {}", lines.join("\n  "))
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> DebianError {
    let what = what.into();
    move |source| DebianError::Io { what, source }
}

/// The key a base is made for.
pub fn base_key(suite: &str, mirror: &str) -> Digest {
    Digest::of(format!("debian\0{suite}\0{mirror}\0{VARIANT}\0v1").as_bytes())
}

/// The image name of a suite's base.
pub fn image_name(suite: &str) -> Result<ImageName, StoreError> {
    format!("debian:{suite}").parse()
}

/// The stored base of `suite` from `mirror`, if it is there with all its
/// blobs.
pub fn cached(store: &Store, suite: &str, mirror: &str) -> Option<Image> {
    let img = store.resolve(&image_name(suite).ok()?).ok()?;
    let key = base_key(suite, mirror).to_string();
    let labels = img.config.config().as_ref()?.labels().as_ref()?;
    if labels.get(KEY_LABEL) != Some(&key) {
        return None;
    }
    let layers = img.layer_digests().ok()?;
    layers.iter().all(|d| store.has_blob(d)).then_some(img)
}

/// Makes the base with mmdebstrap (lines of its output go to `log`) and
/// tags it `debian:SUITE`.
pub fn make(
    store: &Store,
    suite: &str,
    mirror: &str,
    log: &mut dyn FnMut(&str),
) -> Result<Image, DebianError> {
    let scratch = store
        .tmp_dir()
        .join(format!("debian-{}", crate::atomic_write::random_hex()));
    std::fs::create_dir(&scratch).map_err(io_err(format!("create {}", scratch.display())))?;
    let _cleanup = DirGuard(scratch.clone());
    let tar_path = scratch.join("rootfs.tar");
    run_mmdebstrap(suite, mirror, &tar_path, log)?;
    let layer = compress(store, &tar_path)?;
    let image = store_image(store, suite, mirror, &layer)?;
    Ok(image)
}

fn run_mmdebstrap(
    suite: &str,
    mirror: &str,
    out: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<(), DebianError> {
    let fail = |reason: String, stderr: Vec<String>| DebianError::Mmdebstrap {
        suite: suite.into(),
        mirror: mirror.into(),
        reason,
        stderr,
    };
    // --mode=root: we are root on the host, and the tree only ever exists
    // in our scratch dir. /dev is left out (the sandbox mounts its own);
    // the host's hostname and resolv.conf, which mmdebstrap copies in for
    // its own apt run, are removed before the tarball is made.
    let mut child = Command::new("mmdebstrap")
        .arg(format!("--variant={VARIANT}"))
        .arg("--mode=root")
        .arg("--format=tar")
        .arg("--skip=output/dev")
        .arg("--customize-hook=rm -f \"$1/etc/hostname\" \"$1/etc/resolv.conf\"")
        .arg(suite)
        .arg(out)
        .arg(mirror)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            fail(
                format!("cannot start mmdebstrap (apt-get install mmdebstrap): {e}"),
                Vec::new(),
            )
        })?;
    let mut tail = VecDeque::new();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            log(&line);
            if tail.len() == 20 {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
    let status = child
        .wait()
        .map_err(|e| fail(format!("wait: {e}"), Vec::new()))?;
    if !status.success() {
        return Err(fail(format!("failed ({status})"), tail.into()));
    }
    Ok(())
}

/// The tarball as a tar+gzip blob, with its diff_id.
fn compress(store: &Store, tar_path: &Path) -> Result<LayerBlob, DebianError> {
    let what = format!("compress {}", tar_path.display());
    let f = File::open(tar_path).map_err(io_err(what.clone()))?;
    let mut r = HashingReader::new(BufReader::with_capacity(1 << 16, f));
    let (tmp, out) = store.tmp_file()?;
    let _guard = TmpGuard(tmp.clone());
    let mut gz = GzEncoder::new(
        io::BufWriter::with_capacity(1 << 16, out),
        flate2::Compression::default(),
    );
    io::copy(&mut r, &mut gz).map_err(io_err(what.clone()))?;
    let (diff_id, _) = r.finish();
    let buf = gz.finish().map_err(io_err(what.clone()))?;
    let f = buf.into_inner().map_err(|e| DebianError::Io {
        what: what.clone(),
        source: e.into_error(),
    })?;
    f.sync_all().map_err(io_err(what.clone()))?;
    drop(f);
    let (digest, size) = store.put_blob(File::open(&tmp).map_err(io_err(what))?, None, None)?;
    Ok(LayerBlob {
        digest,
        diff_id,
        size,
    })
}

fn store_image(
    store: &Store,
    suite: &str,
    mirror: &str,
    layer: &LayerBlob,
) -> Result<Image, DebianError> {
    let bad = |e: oci_spec::OciSpecError| DebianError::Build(e.to_string());
    let mut labels = HashMap::new();
    labels.insert(KEY_LABEL.to_string(), base_key(suite, mirror).to_string());
    labels.insert("org.runtimed.base.suite".to_string(), suite.to_string());
    labels.insert("org.runtimed.base.mirror".to_string(), mirror.to_string());
    let config = ImageConfigurationBuilder::default()
        .architecture(oci_spec::image::Arch::Amd64)
        .os(oci_spec::image::Os::Linux)
        .config(
            ConfigBuilder::default()
                .env(vec![format!("PATH={}", sandbox::options::defaults::PATH)])
                .cmd(vec!["/bin/bash".to_string()])
                .labels(labels)
                .build()
                .map_err(bad)?,
        )
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![layer.diff_id.to_string()])
                .build()
                .map_err(bad)?,
        )
        .history(vec![HistoryBuilder::default()
            .created_by(format!("mmdebstrap --variant={VARIANT} {suite} {mirror}"))
            .comment("runtimed image build")
            .build()
            .map_err(bad)?])
        .build()
        .map_err(bad)?;
    let cbytes = serde_json::to_vec(&config).map_err(|e| DebianError::Build(e.to_string()))?;
    let layers = vec![Descriptor::new(
        MediaType::ImageLayerGzip,
        layer.size,
        to_oci_digest(&layer.digest),
    )];
    Ok(store.put_image(
        &image_name(suite)?,
        ImageContent::Parts {
            config: &cbytes,
            layers,
        },
    )?)
}

/// Removes a scratch directory tree on drop.
pub(crate) struct DirGuard(pub std::path::PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
