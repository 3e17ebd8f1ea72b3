//! The daemon's [`Runner`]: each judge job is a one-shot sandbox forked by
//! the zygote ([`crate::engine::oneshot`]), with its stdin a host file and
//! its stdout/stderr unlinked files on the data dir's disk, which the
//! sandbox's supervisor (the `sandbox-host` helper) fills up to the output
//! limit. They are never read back whole: the judge compares them in
//! pieces and keeps a prefix (docs/judges.md, "Memory and disk").
//!
//! A semaphore bounds the sandboxes of all submissions together (the
//! judge's slots). A slot is held from before the output files exist
//! until the judge drops the outputs (a lease on them), so at most
//! `slots` tests' outputs exist at a time, however many tests are in
//! flight: on disk at most slots × 2 × the output limit.
//!
//! Why not memfds (as before): the helper writes the output, and the
//! helper lives in the daemon's cgroup, so a memfd's pages were the
//! daemon's memory, unreclaimable (no swap) for as long as the file
//! lived; and the daemon then read each one whole.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use judges::runner::{Job, Output, RunError, RunOutput, Runner};
use sandbox::Termination;
use tokio::sync::Semaphore;

use crate::engine::host::{ImageRoot, Oneshot};
use crate::engine::oneshot::OneshotStdio;
use crate::engine::{Engine, EngineConfig, StartError};

pub struct DaemonRunner {
    engine: EngineConfig,
    images: Option<rootfs_builder::Store>,
    slots: Arc<Semaphore>,
    /// Where the output files are made (0700, on the data dir).
    output_dir: PathBuf,
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunError {
    let what = what.into();
    move |source| RunError::Io { what, source }
}

impl DaemonRunner {
    /// `output_dir` must exist and be private (0700).
    pub fn new(
        engine: EngineConfig,
        images: Option<rootfs_builder::Store>,
        slots: usize,
        output_dir: PathBuf,
    ) -> DaemonRunner {
        DaemonRunner {
            engine,
            images,
            slots: Arc::new(Semaphore::new(slots.max(1))),
            output_dir,
        }
    }

    /// An unlinked file for a run's output ([`judges::runner::output_file`]:
    /// `O_TMPFILE`, or create and unlink where the filesystem has none,
    /// e.g. overlayfs).
    fn output_file(&self) -> Result<File, RunError> {
        judges::runner::output_file(&self.output_dir).map_err(io_err("create an output file"))
    }

    /// The image's layers, unpacked and leased (the same resolution as a
    /// session's, [`crate::images::prepare_in`]).
    fn image_root(
        images: Option<&rootfs_builder::Store>,
        name: &str,
        upper_bytes: u64,
    ) -> Result<(ImageRoot, rootfs_builder::layers::LayerLease), RunError> {
        let protocol = |reason: String| RunError::Protocol {
            what: format!("image {name}"),
            reason,
        };
        let store = images.ok_or_else(|| protocol("the image store could not be opened".into()))?;
        let parsed: rootfs_builder::ImageName = name
            .parse()
            .map_err(|e: rootfs_builder::StoreError| protocol(e.to_string()))?;
        let prepared = crate::images::prepare_in(store, &parsed, name, upper_bytes)
            .map_err(|e| protocol(e.to_string()))?;
        Ok((prepared.root, prepared.lease))
    }

    async fn run_job(&self, job: Job) -> Result<RunOutput, RunError> {
        let request = judges::profile::job_request(&job)?;
        let stdin: OwnedFd = match &job.stdin {
            Some(p) => File::open(p)
                .map_err(|source| RunError::Stdin {
                    path: p.clone(),
                    source,
                })?
                .into(),
            None => File::open("/dev/null")
                .map_err(io_err("open /dev/null"))?
                .into(),
        };
        // The slot first: the output files count against it.
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| RunError::Protocol {
                what: "judge slots".into(),
                reason: "closed".into(),
            })?;
        let out = self.output_file()?;
        let err = self.output_file()?;
        let stdio = OneshotStdio {
            stdin,
            stdout: out.try_clone().map_err(io_err("dup"))?.into(),
            stderr: err.try_clone().map_err(io_err("dup"))?.into(),
            files: None,
        };
        // The lease keeps the layers from `image gc` while the run lasts.
        let (image, _lease) = match &job.image {
            Some(name) => {
                let upper = judges::profile::tmp_size(&job.limits);
                let (images, name) = (self.images.clone(), name.clone());
                let (root, lease) = tokio::task::spawn_blocking(move || {
                    Self::image_root(images.as_ref(), &name, upper)
                })
                .await
                .map_err(|e| RunError::Protocol {
                    what: "image".into(),
                    reason: e.to_string(),
                })??;
                (Some(root), Some(lease))
            }
            None => (None, None),
        };
        let id = format!("judge-{}", sandbox::id::generate());
        let report = self
            .engine
            .run_oneshot(&id, &request, image.as_ref(), Oneshot::default(), stdio)
            .await
            .map_err(|e| RunError::Protocol {
                what: match &e {
                    StartError::Invalid(_) => "the sandbox refused the job".into(),
                    StartError::Setup(_) => "sandbox setup".into(),
                    StartError::Helper(_) => "sandbox helper".into(),
                },
                reason: e.to_string(),
            })?;
        // The slot stays taken while the outputs live.
        let lease: Arc<dyn std::any::Any + Send + Sync> = Arc::new(slot);
        let stdout = Output::from_file(out)
            .map_err(io_err("measure an output file"))?
            .with_lease(lease.clone());
        let stderr = Output::from_file(err)
            .map_err(io_err("measure an output file"))?
            .with_lease(lease);
        let limit = job.limits.output_bytes;
        let over = |counted: Option<u64>, got: u64| {
            report.termination == Termination::OutputLimit && counted.unwrap_or(got) >= limit
        };
        Ok(RunOutput {
            stdout_truncated: over(report.stdout_bytes, stdout.len()),
            stderr_truncated: over(report.stderr_bytes, stderr.len()),
            report,
            stdout,
            stderr,
        })
    }
}

impl Runner for DaemonRunner {
    fn run<'a>(
        &'a self,
        job: Job,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<RunOutput, RunError>> + Send + 'a>> {
        Box::pin(self.run_job(job))
    }
}
