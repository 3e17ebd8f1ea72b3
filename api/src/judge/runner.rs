//! The daemon's [`Runner`]: each judge job is a one-shot sandbox forked by
//! the zygote ([`crate::engine::oneshot`]), with its stdin a host file and
//! its stdout/stderr anonymous memory files (memfd) read back after the run.
//! A semaphore bounds the sandboxes of all submissions together (the
//! judge's slots).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::Arc;

use judges::runner::{Job, RunError, RunOutput, Runner};
use sandbox::Termination;
use tokio::sync::Semaphore;

use crate::engine::host::{ImageRoot, Oneshot};
use crate::engine::oneshot::{self, OneshotStdio};
use crate::engine::{EngineConfig, StartError};

pub struct DaemonRunner {
    engine: EngineConfig,
    images: Option<rootfs_builder::Store>,
    slots: Arc<Semaphore>,
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunError {
    let what = what.into();
    move |source| RunError::Io { what, source }
}

impl DaemonRunner {
    pub fn new(
        engine: EngineConfig,
        images: Option<rootfs_builder::Store>,
        slots: usize,
    ) -> DaemonRunner {
        DaemonRunner {
            engine,
            images,
            slots: Arc::new(Semaphore::new(slots.max(1))),
        }
    }

    /// An anonymous in-memory file (memfd) for a run's output: nothing to
    /// clean up, and no dependence on the data dir's filesystem (O_TMPFILE
    /// there failed with EOPNOTSUPP on an overlayfs data dir).
    fn anonymous_file(&self) -> Result<File, RunError> {
        use nix::sys::memfd::{memfd_create, MFdFlags};
        let fd = memfd_create(c"runtimed-judge-output", MFdFlags::MFD_CLOEXEC).map_err(|e| {
            RunError::Io {
                what: "create an output file (memfd_create)".into(),
                source: std::io::Error::from_raw_os_error(e as i32),
            }
        })?;
        Ok(File::from(fd))
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
            .map_err(|e| protocol(e.message))?;
        Ok((prepared.root, prepared.lease))
    }

    async fn run_job(&self, job: Job) -> Result<RunOutput, RunError> {
        let spec = judges::profile::job_spec(&job)?;
        let opts = judges::profile::job_run_options(&job);
        let limits = Oneshot {
            wall_time_ms: opts.wall_time.map(|d| d.as_millis() as u64),
            cpu_time_ms: opts.cpu_time.map(|d| d.as_millis().max(1) as u64),
            output_limit: opts.output_limit,
            ..Oneshot::default()
        };
        let seccomp = opts.seccomp.to_string();
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
        let mut out = self.anonymous_file()?;
        let mut err = self.anonymous_file()?;
        let stdio = OneshotStdio {
            stdin,
            stdout: out.try_clone().map_err(io_err("dup"))?.into(),
            stderr: err.try_clone().map_err(io_err("dup"))?.into(),
        };
        let _slot = self.slots.acquire().await.map_err(|_| RunError::Protocol {
            what: "judge slots".into(),
            reason: "closed".into(),
        })?;
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
        let id = format!("judge-{}", sandbox::process::spawn::new_id());
        let report = oneshot::run(
            &self.engine,
            &id,
            &spec,
            &seccomp,
            image.as_ref(),
            limits,
            stdio,
        )
        .await
        .map_err(|e| RunError::Protocol {
            what: match &e {
                StartError::Invalid(_) => "the sandbox refused the job".into(),
                StartError::Setup(_) => "sandbox setup".into(),
                StartError::Helper(_) => "sandbox helper".into(),
            },
            reason: e.to_string(),
        })?;
        drop(_slot);
        let limit = job.limits.output_bytes;
        let stdout = read_back(&mut out, limit)?;
        let stderr = read_back(&mut err, limit)?;
        let over = |counted: Option<u64>, got: usize| {
            report.termination == Termination::OutputLimit && counted.unwrap_or(got as u64) >= limit
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

/// Everything written to `f`, at most `limit` bytes.
fn read_back(f: &mut File, limit: u64) -> Result<Vec<u8>, RunError> {
    f.seek(SeekFrom::Start(0))
        .map_err(io_err("seek an output file"))?;
    let mut buf = Vec::new();
    f.take(limit)
        .read_to_end(&mut buf)
        .map_err(io_err("read an output file"))?;
    Ok(buf)
}

impl Runner for DaemonRunner {
    fn run<'a>(
        &'a self,
        job: Job,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<RunOutput, RunError>> + Send + 'a>> {
        Box::pin(self.run_job(job))
    }
}
