//! How a judge's job reaches a sandbox. The pipeline only describes jobs
//! ([`Job`]: argv, mounts, stdin, limits) and hands them to a [`Runner`];
//! the daemon implements it with its zygote, and [`CliRunner`] here spawns
//! `runtimed run` (tests, a local `runtimed judge`). A runner never runs
//! sandbox code in its own process: sandboxes must be created from
//! single-threaded processes (docs/process-model.md), and judges are
//! multi-threaded.

use std::any::Any;
use std::ffi::OsString;
use std::fs::File;
use std::future::Future;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sandbox::{ExitReport, Termination};

pub use crate::job::{Job, Mount, RunLimits, OPEN_FILES};
use crate::profile::{self, ProfileError};

/// One output stream of a finished run. A runner keeps it in a file
/// (unlinked, on the disk of its scratch directory: see [`output_file`]),
/// never in memory: a stream may be as large as the output limit (up to
/// 256 MiB), and the judge reads it in bounded pieces ([`Output::prefix`],
/// [`Output::tail`], [`Output::read_chunk`]) or copies it file to file
/// ([`Output::copy_to`]). Small outputs (fakes in tests, a runner's own
/// messages) may be bytes.
///
/// Clones share the file. A runner may attach a lease, kept alive as long
/// as any clone: the daemon's runner attaches its slot, so that outputs
/// waiting to be compared count against the slots (their disk and the
/// memory of their comparison are bounded by the slots, not by the
/// number of tests in flight).
#[derive(Clone, Default)]
pub struct Output {
    data: Data,
    lease: Option<Arc<dyn Any + Send + Sync>>,
}

#[derive(Clone, Default)]
enum Data {
    #[default]
    Empty,
    Bytes(Arc<[u8]>),
    File {
        file: Arc<File>,
        len: u64,
    },
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.data {
            Data::Empty => "empty",
            Data::Bytes(_) => "bytes",
            Data::File { .. } => "file",
        };
        f.debug_struct("Output")
            .field("kind", &kind)
            .field("len", &self.len())
            .field("leased", &self.lease.is_some())
            .finish()
    }
}

impl From<&str> for Output {
    fn from(s: &str) -> Output {
        Output::from_bytes(s.as_bytes())
    }
}

impl From<Vec<u8>> for Output {
    fn from(b: Vec<u8>) -> Output {
        Output::from_bytes(&b)
    }
}

/// A new unlinked file in `dir` for a run's output: `O_TMPFILE`, or a
/// file created and unlinked at once where the filesystem has no
/// `O_TMPFILE` (overlayfs). Nothing to clean up, its pages are page cache
/// (written back and reclaimed under pressure, unlike a memfd's), and its
/// blocks are freed when the last descriptor closes.
pub fn output_file(dir: &Path) -> io::Result<File> {
    tempfile::tempfile_in(dir)
}

impl Output {
    pub fn from_bytes(b: &[u8]) -> Output {
        Output {
            data: if b.is_empty() {
                Data::Empty
            } else {
                Data::Bytes(b.into())
            },
            lease: None,
        }
    }

    /// What was written to `file` (its size now; the writer is done).
    pub fn from_file(file: File) -> io::Result<Output> {
        let len = file.metadata()?.len();
        Ok(Output {
            data: Data::File {
                file: Arc::new(file),
                len,
            },
            lease: None,
        })
    }

    /// Keeps `lease` alive as long as this output (and its clones).
    pub fn with_lease(mut self, lease: Arc<dyn Any + Send + Sync>) -> Output {
        self.lease = Some(lease);
        self
    }

    pub fn len(&self) -> u64 {
        match &self.data {
            Data::Empty => 0,
            Data::Bytes(b) => b.len() as u64,
            Data::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads from `offset` into `buf`; 0 at the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let len = self.len();
        if offset >= len {
            return Ok(0);
        }
        let want = buf.len().min((len - offset) as usize);
        match &self.data {
            Data::Empty => Ok(0),
            Data::Bytes(b) => {
                let at = offset as usize;
                buf[..want].copy_from_slice(&b[at..at + want]);
                Ok(want)
            }
            Data::File { file, .. } => file.read_at(&mut buf[..want], offset),
        }
    }

    /// `len` bytes from `offset` (fewer at the end), read whole.
    fn range(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let n = (self.len().saturating_sub(offset)).min(len as u64) as usize;
        let mut buf = vec![0; n];
        let mut got = 0;
        while got < n {
            match self.read_at(&mut buf[got..], offset + got as u64)? {
                0 => break,
                k => got += k,
            }
        }
        buf.truncate(got);
        Ok(buf)
    }

    /// The first `max` bytes (a bounded read, from the page cache).
    pub fn prefix(&self, max: usize) -> io::Result<Vec<u8>> {
        self.range(0, max)
    }

    /// The last `max` bytes.
    pub fn tail(&self, max: usize) -> io::Result<Vec<u8>> {
        self.range(self.len().saturating_sub(max as u64), max)
    }

    /// Reads the piece at `offset` into `buf` (off the async threads for a
    /// file) and gives the buffer back with the count; 0 at the end.
    pub async fn read_chunk(&self, offset: u64, mut buf: Vec<u8>) -> (Vec<u8>, io::Result<usize>) {
        match &self.data {
            Data::File { .. } => {
                let this = self.clone();
                let joined = tokio::task::spawn_blocking(move || {
                    let r = this.read_at(&mut buf, offset);
                    (buf, r)
                })
                .await;
                match joined {
                    Ok(done) => done,
                    Err(e) => (Vec::new(), Err(io::Error::other(e))),
                }
            }
            _ => {
                let r = self.read_at(&mut buf, offset);
                (buf, r)
            }
        }
    }

    /// Writes the whole output into a new file `path` (mode `mode`),
    /// through a 64 KiB buffer: never whole in memory. Blocking: call it
    /// off the async threads.
    pub fn copy_to(&self, path: &Path, mode: u32) -> io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut dest = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)?;
        let mut buf = vec![0; COPY_CHUNK];
        let mut offset = 0;
        loop {
            match self.read_at(&mut buf, offset)? {
                0 => return Ok(()),
                n => {
                    dest.write_all(&buf[..n])?;
                    offset += n as u64;
                }
            }
        }
    }
}

/// Buffer of [`Output::copy_to`].
const COPY_CHUNK: usize = 64 << 10;

/// What a finished run left.
#[derive(Clone, Debug)]
pub struct RunOutput {
    pub report: ExitReport,
    /// At most `limits.output_bytes` bytes each.
    pub stdout: Output,
    pub stderr: Output,
    /// The stream went over the output limit (the run was killed, the rest
    /// is lost).
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
}

/// A failure of the runner itself, not of the program: the judge turns it
/// into `INTERNAL_ERROR`.
#[derive(thiserror::Error, Debug)]
pub enum RunError {
    #[error("the job cannot be run: {0}")]
    Profile(#[from] ProfileError),
    #[error("the job cannot be expressed as runtimed run flags: {what}")]
    Unsupported { what: String },
    #[error("open stdin file {path}: {source}")]
    Stdin {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("start {program}: {source}")]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{program} exited with status {status} without an exit report")]
    NoReport { program: PathBuf, status: String },
    #[error("parse the exit report {path}: {source}")]
    Report {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("sandbox: {0}")]
    Sandbox(#[from] sandbox::SandboxError),
    #[error("{what}: {reason}")]
    Protocol { what: String, reason: String },
}

/// Runs jobs in sandboxes. Implementations must be usable from many tasks
/// at once (the pipeline runs tests in parallel).
pub trait Runner: Send + Sync {
    fn run<'a>(
        &'a self,
        job: Job,
    ) -> Pin<Box<dyn Future<Output = Result<RunOutput, RunError>> + Send + 'a>>;
}

/// A [`Runner`] that spawns `runtimed run` per job: the job's typed
/// request ([`profile::job_request`], the JSON of `sandbox::Request`) goes
/// in a file (`--request`), stdin is the job's file, stdout/stderr go into
/// unlinked files of its private directory (the CLI enforces the output
/// limit) and the exit report comes back through `--report FILE`. Nothing
/// is encoded as flags and nothing is read from stderr: a run that could
/// not start is a `setup_failed` report too.
///
/// Dropping a run's future kills its `runtimed run` (SIGKILL): the
/// sandbox's PID 1 dies by its parent-death signal and the next sandbox
/// start sweeps the cgroup left behind.
#[derive(Debug)]
pub struct CliRunner {
    bin: PathBuf,
    data_dir: Option<PathBuf>,
    /// Private (0700) directory for the request and report files.
    scratch: tempfile::TempDir,
    next: AtomicU64,
}

impl CliRunner {
    /// A runner using the `runtimed` binary at `bin`.
    pub fn new(bin: impl Into<PathBuf>) -> Result<CliRunner, RunError> {
        let scratch = tempfile::Builder::new()
            .prefix("runtimed-judge-")
            .tempdir()
            .map_err(|source| RunError::Io {
                what: "create the report directory".into(),
                source,
            })?;
        Ok(CliRunner {
            bin: bin.into(),
            data_dir: None,
            scratch,
            next: AtomicU64::new(0),
        })
    }

    /// Passes `--data-dir DIR` (the image store for `Job::image`).
    pub fn with_data_dir(mut self, dir: impl Into<PathBuf>) -> CliRunner {
        self.data_dir = Some(dir.into());
        self
    }

    /// The `runtimed` binary.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The arguments of `runtimed` for a job whose request is in `request`
    /// and whose report goes to `report`.
    pub fn args(&self, job: &Job, request: &Path, report: &Path) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec![
            "run".into(),
            "--request".into(),
            request.into(),
            "--report".into(),
            report.into(),
        ];
        if let Some(image) = &job.image {
            a.extend(["--image".into(), image.into()]);
        }
        if let Some(d) = &self.data_dir {
            a.extend(["--data-dir".into(), d.into()]);
        }
        a
    }

    async fn run_job(&self, job: Job) -> Result<RunOutput, RunError> {
        let request = profile::job_request(&job)?;
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let request_path = self.scratch.path().join(format!("request-{n}.json"));
        let report_path = self.scratch.path().join(format!("report-{n}.json"));
        let json = serde_json::to_vec(&request).map_err(|e| RunError::Protocol {
            what: "encode the request".into(),
            reason: e.to_string(),
        })?;
        std::fs::write(&request_path, json).map_err(|source| RunError::Io {
            what: format!("write {}", request_path.display()),
            source,
        })?;
        let _request_file = RemoveOnDrop(request_path.clone());
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args(self.args(&job, &request_path, &report_path));
        let stdin = match &job.stdin {
            Some(p) => std::process::Stdio::from(std::fs::File::open(p).map_err(|source| {
                RunError::Stdin {
                    path: p.clone(),
                    source,
                }
            })?),
            None => std::process::Stdio::null(),
        };
        // Output straight into unlinked files of our own scratch directory
        // (`runtimed run` enforces the output limit on what it forwards):
        // nothing is read back into memory here.
        let out_file = |what: &str| {
            output_file(self.scratch.path()).map_err(|source| RunError::Io {
                what: format!("create the {what} file"),
                source,
            })
        };
        let (out, err) = (out_file("stdout")?, out_file("stderr")?);
        let dup = |f: &File| {
            f.try_clone().map_err(|source| RunError::Io {
                what: "dup an output file".into(),
                source,
            })
        };
        cmd.stdin(stdin)
            .stdout(dup(&out)?)
            .stderr(dup(&err)?)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| RunError::Spawn {
            program: self.bin.clone(),
            source,
        })?;
        // Our copies of the child's ends are gone with `cmd`.
        drop(cmd);
        let status = child.wait().await.map_err(|source| RunError::Io {
            what: "wait for runtimed run".into(),
            source,
        })?;
        let io = |what: &str| {
            let what = what.to_string();
            move |source| RunError::Io { what, source }
        };
        let stdout = Output::from_file(out).map_err(io("measure the stdout file"))?;
        let stderr = Output::from_file(err).map_err(io("measure the stderr file"))?;
        let text = match std::fs::read(&report_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RunError::NoReport {
                    program: self.bin.clone(),
                    status: status.to_string(),
                })
            }
            Err(source) => {
                return Err(RunError::Io {
                    what: format!("read {}", report_path.display()),
                    source,
                })
            }
        };
        let _ = std::fs::remove_file(&report_path);
        let report: ExitReport =
            serde_json::from_slice(&text).map_err(|source| RunError::Report {
                path: report_path.clone(),
                source,
            })?;
        let limit = job.limits.output_bytes;
        let over = |counted: Option<u64>, got: u64| {
            report.termination == Termination::OutputLimit && counted.unwrap_or(got) >= limit
        };
        let stdout_truncated = over(report.stdout_bytes, stdout.len());
        let stderr_truncated = over(report.stderr_bytes, stderr.len());
        Ok(RunOutput {
            report,
            stdout,
            stderr,
            stdout_truncated,
            stderr_truncated,
        })
    }
}

/// Removes a file when dropped (a request file, however the run ends).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Runner for CliRunner {
    fn run<'a>(
        &'a self,
        job: Job,
    ) -> Pin<Box<dyn Future<Output = Result<RunOutput, RunError>> + Send + 'a>> {
        Box::pin(self.run_job(job))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn job() -> Job {
        Job {
            argv: vec!["/box/main".into(), "x y".into()],
            env: vec![
                ("PATH".into(), "/usr/bin:/bin".into()),
                ("A".into(), "1=2".into()),
            ],
            cwd: "/box".into(),
            image: None,
            mounts: vec![
                Mount {
                    host: "/srv/j/box".into(),
                    dest: "/box".into(),
                    writable: false,
                },
                Mount {
                    host: "/srv/j/check".into(),
                    dest: "/check".into(),
                    writable: true,
                },
            ],
            stdin: None,
            limits: RunLimits {
                cpu_time: Duration::from_millis(1500),
                wall_time: Duration::from_secs(4),
                memory_bytes: 256 << 20,
                pids: 16,
                output_bytes: 1 << 20,
                file_size_bytes: 2 << 20,
                stack_bytes: Some(256 << 20),
            },
        }
    }

    fn strings(a: Vec<OsString>) -> Vec<String> {
        a.into_iter()
            .map(|s| s.into_string().unwrap_or_default())
            .collect()
    }

    fn value_of(a: &[String], flag: &str) -> Vec<String> {
        a.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].clone())
            .collect()
    }

    #[test]
    fn a_job_goes_to_the_cli_as_its_typed_request() {
        let r = CliRunner::new("/x/runtimed").unwrap();
        let a = strings(r.args(&job(), Path::new("/r/1.req"), Path::new("/r/1.json")));
        assert_eq!(a, ["run", "--request", "/r/1.req", "--report", "/r/1.json"]);
        // What the file holds: the request, limits as durations, the judge's
        // profile, the binds, the env, unchanged across the wire.
        let req = profile::job_request(&job()).unwrap();
        let back: sandbox::Request =
            serde_json::from_slice(&serde_json::to_vec(&req).unwrap()).unwrap();
        assert_eq!(back, req);
        assert_eq!(back.limits.cpu_time, Some(Duration::from_millis(1500)));
        assert_eq!(back.seccomp, sandbox::SeccompProfile::Judge);
        let process = back.spec.process().clone().unwrap();
        assert_eq!(process.args().clone().unwrap(), ["/box/main", "x y"]);
        assert!(process
            .env()
            .clone()
            .unwrap()
            .contains(&"A=1=2".to_string()));
    }

    #[test]
    fn image_and_data_dir_are_passed() {
        let r = CliRunner::new("/x/runtimed")
            .unwrap()
            .with_data_dir("/var/lib/rt");
        let mut j = job();
        j.image = Some("python:3".into());
        let a = strings(r.args(&j, Path::new("/r/1.req"), Path::new("/r/1.json")));
        assert_eq!(value_of(&a, "--image"), ["python:3"]);
        assert_eq!(value_of(&a, "--data-dir"), ["/var/lib/rt"]);
    }

    #[tokio::test]
    async fn an_output_file_is_read_in_bounded_pieces_and_copied_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = output_file(dir.path()).unwrap();
        // Unlinked: nothing in the directory, nothing to clean up.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        let out = Output::from_file(f).unwrap();
        assert_eq!(out.len(), data.len() as u64);
        assert_eq!(out.prefix(10).unwrap(), &data[..10]);
        assert_eq!(out.prefix(1 << 30).unwrap(), data, "at most what there is");
        assert_eq!(out.tail(7).unwrap(), &data[data.len() - 7..]);
        // Pieces, as the checkers read it; clones share the file.
        let clone = out.clone();
        let (mut got, mut buf, mut offset) = (Vec::new(), vec![0; 4096], 0);
        loop {
            let (b, n) = clone.read_chunk(offset, buf).await;
            buf = b;
            let n = n.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            offset += n as u64;
        }
        assert_eq!(got, data);
        let copy = dir.path().join("actual");
        out.copy_to(&copy, 0o644).unwrap();
        assert_eq!(std::fs::read(&copy).unwrap(), data);
        assert!(out.copy_to(&copy, 0o644).is_err(), "never over a file");
        let small = Output::from("ab");
        assert_eq!((small.tail(1).unwrap(), small.len()), (b"b".to_vec(), 2));
        assert!(Output::default().is_empty());
    }

    #[test]
    fn a_lease_lives_as_long_as_any_clone_of_the_output() {
        let lease: Arc<dyn Any + Send + Sync> = Arc::new(());
        let out = Output::from("x").with_lease(lease.clone());
        let clone = out.clone();
        drop(out);
        assert_eq!(Arc::strong_count(&lease), 2);
        drop(clone);
        assert_eq!(Arc::strong_count(&lease), 1);
    }
}
