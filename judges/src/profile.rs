//! The one conversion of a judge's [`Job`] into the sandbox's input model
//! (`oci_spec::runtime::Spec` plus `RunOptions`). Runners add what depends
//! on how they run: the image's layered root, stdio, the run dir.

use oci_spec::runtime::PosixRlimitType;
use oci_spec::OciSpecError;
use sandbox::request::{Bind, Env, Request, RequestError};
use sandbox::SeccompProfile;

use crate::job::{Job, RunLimits, OPEN_FILES};

/// Upper bound of the /tmp (and /workspace) tmpfs of a job; below it the
/// size is the job's memory limit (tmpfs pages count against it anyway).
pub const TMP_BYTES_MAX: u64 = 256 << 20;

#[derive(thiserror::Error, Debug)]
pub enum ProfileError {
    #[error("job has an empty argv")]
    EmptyArgv,
    #[error("mount {dest}: {reason}")]
    Mount { dest: String, reason: String },
    #[error("cwd {cwd:?} is not an absolute path")]
    Cwd { cwd: String },
    #[error("environment variable {name:?}: {reason}")]
    Env { name: String, reason: &'static str },
    #[error("{what} {value} is out of range ({range})")]
    Limit {
        what: &'static str,
        value: u64,
        range: &'static str,
    },
    #[error("build the spec's {what}: {source}")]
    Spec {
        what: &'static str,
        source: OciSpecError,
    },
}

/// Size of the job's /tmp: its memory limit, at most [`TMP_BYTES_MAX`].
pub fn tmp_size(limits: &RunLimits) -> u64 {
    limits.memory_bytes.min(TMP_BYTES_MAX)
}

/// The one conversion of a job into the sandbox's typed request, for the
/// host rootfs (runners add the image's layered root and stdio): binds for
/// `job.mounts` (read-only unless writable; rw binds are idmapped by the
/// sandbox so the dir's host owner appears as uid 1000 inside), exactly
/// the job's env (PATH defaulted), cwd, memory (swap 0) and pids, rlimits
/// (FSIZE, STACK, NOFILE), /tmp and /workspace capped at [`tmp_size`],
/// the time and output limits, and the `judge` seccomp profile. Every
/// default and floor is the request builder's (`sandbox::request`).
pub fn job_request(job: &Job) -> Result<Request, ProfileError> {
    let l = &job.limits;
    let mut env = Env::empty();
    for (k, v) in &job.env {
        env.set(k, v)?;
    }
    let mut b = Request::builder(job.argv.clone())
        .env(env.with_default_path())
        .cwd(&job.cwd)
        .scratch_bytes(tmp_size(l))
        .memory(l.memory_bytes)
        .pids(l.pids)
        .rlimit(PosixRlimitType::RlimitFsize, l.file_size_bytes)
        // RLIM_INFINITY is all ones.
        .rlimit(
            PosixRlimitType::RlimitStack,
            l.stack_bytes.unwrap_or(u64::MAX),
        )
        .rlimit(PosixRlimitType::RlimitNofile, OPEN_FILES)
        .wall_time(l.wall_time)
        .cpu_time(l.cpu_time)
        .output_limit(l.output_bytes)
        .seccomp(SeccompProfile::Judge);
    for m in &job.mounts {
        b = b.bind(Bind {
            source: m.host.clone(),
            destination: m.dest.clone().into(),
            writable: m.writable,
        });
    }
    Ok(b.build()?)
}

impl From<RequestError> for ProfileError {
    fn from(e: RequestError) -> ProfileError {
        let limit = |what, value, range| ProfileError::Limit { what, value, range };
        match e {
            RequestError::EmptyArgv => ProfileError::EmptyArgv,
            RequestError::Cwd(cwd) => ProfileError::Cwd {
                cwd: cwd.display().to_string(),
            },
            RequestError::Env { name, reason } => ProfileError::Env { name, reason },
            RequestError::MemoryTooSmall(v) | RequestError::MemoryTooLarge(v) => {
                limit("memory limit", v, "4 MiB to 2^63 bytes")
            }
            RequestError::Pids(v) => limit("pids limit", v, "1 to 4194304"),
            RequestError::OutputLimit => limit("output limit", 0, "at least 1 byte"),
            RequestError::Cpus(_) => limit("cpus", 0, "0.01 to 1024"),
            RequestError::Mount { dest, reason } => ProfileError::Mount {
                dest: dest.display().to_string(),
                reason,
            },
            RequestError::Spec { what, source } => ProfileError::Spec { what, source },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::job::Mount;
    use sandbox::spec::MountKind;

    fn job(dir: &Path) -> Job {
        Job {
            argv: vec!["/box/main".into()],
            env: vec![("HOME".into(), "/tmp".into()), ("X".into(), "a=b".into())],
            cwd: "/box".into(),
            image: None,
            mounts: vec![
                Mount {
                    host: dir.to_path_buf(),
                    dest: "/box".into(),
                    writable: false,
                },
                Mount {
                    host: dir.to_path_buf(),
                    dest: "/out".into(),
                    writable: true,
                },
            ],
            stdin: None,
            limits: RunLimits {
                cpu_time: Duration::from_millis(1500),
                wall_time: Duration::from_secs(3),
                memory_bytes: 64 << 20,
                pids: 8,
                output_bytes: 1 << 20,
                file_size_bytes: 4 << 20,
                stack_bytes: Some(64 << 20),
            },
        }
    }

    /// A temp dir given to nobody when we are root: a read-write bind of a
    /// root-owned directory is refused (like a real box, pipeline.rs).
    fn box_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let _ = std::os::unix::fs::chown(d.path(), Some(65534), Some(65534));
        d
    }

    fn rlimit(p: &sandbox::spec::Plan, r: i32) -> Option<(u64, u64)> {
        p.rlimits
            .iter()
            .find(|x| x.resource == r)
            .map(|x| (x.soft, x.hard))
    }

    #[test]
    fn job_becomes_a_valid_spec_with_its_mounts_limits_and_env() {
        let d = box_dir();
        let j = job(d.path());
        let req = job_request(&j).unwrap();
        let opts = req.run_options();
        let p = sandbox::spec::plan(&req.spec, &opts).unwrap();
        let bx = p
            .mounts
            .iter()
            .find(|m| m.destination == Path::new("/box"))
            .unwrap();
        assert!(bx.readonly && bx.nosuid && bx.nodev);
        assert!(matches!(&bx.kind, MountKind::Bind { source, .. } if source == d.path()));
        let out = p
            .mounts
            .iter()
            .find(|m| m.destination == Path::new("/out"))
            .unwrap();
        assert!(!out.readonly);
        let tmp = p
            .mounts
            .iter()
            .find(|m| m.destination == Path::new("/tmp"))
            .unwrap();
        assert!(matches!(tmp.kind, MountKind::Tmpfs { size, .. } if size == 64 << 20));
        assert_eq!(p.cgroup.memory_bytes, Some(64 << 20));
        assert_eq!(p.cgroup.pids, Some(8));
        assert_eq!(rlimit(&p, libc_rlimit::FSIZE), Some((4 << 20, 4 << 20)));
        assert_eq!(rlimit(&p, libc_rlimit::STACK), Some((64 << 20, 64 << 20)));
        assert_eq!(rlimit(&p, libc_rlimit::NOFILE), Some((256, 256)));
        assert_eq!(p.cwd, Path::new("/box"));
        let env: Vec<String> = p
            .env
            .iter()
            .map(|e| e.to_string_lossy().into_owned())
            .collect();
        assert!(env.iter().any(|e| e.starts_with("PATH=")));
        assert!(env.contains(&"HOME=/tmp".to_string()));
        assert!(env.contains(&"X=a=b".to_string()));
        assert_eq!(opts.seccomp, SeccompProfile::Judge);
        assert_eq!(opts.cpu_time, Some(Duration::from_millis(1500)));
        assert_eq!(opts.wall_time, Some(Duration::from_secs(3)));
        assert_eq!(opts.output_limit, Some(1 << 20));
    }

    #[test]
    fn unlimited_stack_big_tmp_and_own_path() {
        let d = box_dir();
        let mut j = job(d.path());
        j.limits.stack_bytes = None;
        j.limits.memory_bytes = 2 << 30;
        j.env.push(("PATH".into(), "/usr/bin".into()));
        let req = job_request(&j).unwrap();
        let p = sandbox::spec::plan(&req.spec, &req.run_options()).unwrap();
        assert_eq!(rlimit(&p, libc_rlimit::STACK), Some((u64::MAX, u64::MAX)));
        let tmp = p
            .mounts
            .iter()
            .find(|m| m.destination == Path::new("/tmp"))
            .unwrap();
        assert!(matches!(tmp.kind, MountKind::Tmpfs { size, .. } if size == TMP_BYTES_MAX));
        let paths: Vec<_> = p
            .env
            .iter()
            .filter(|e| e.to_string_lossy().starts_with("PATH="))
            .collect();
        assert_eq!(paths.len(), 1);
        assert_eq!(paths[0].to_string_lossy(), "PATH=/usr/bin");
    }

    #[test]
    fn bad_jobs_are_refused_by_name() {
        let d = box_dir();
        let mut j = job(d.path());
        j.argv.clear();
        assert!(matches!(job_request(&j), Err(ProfileError::EmptyArgv)));
        let mut j = job(d.path());
        j.cwd = "box".into();
        assert!(matches!(job_request(&j), Err(ProfileError::Cwd { .. })));
        let mut j = job(d.path());
        j.mounts[1].dest = "/box".into();
        assert!(job_request(&j).unwrap_err().to_string().contains("twice"));
        let mut j = job(d.path());
        j.mounts[0].dest = "/".into();
        assert!(matches!(job_request(&j), Err(ProfileError::Mount { .. })));
        let mut j = job(d.path());
        j.mounts[0].host = "rel".into();
        assert!(matches!(job_request(&j), Err(ProfileError::Mount { .. })));
        let mut j = job(d.path());
        j.limits.memory_bytes = 1 << 20;
        assert!(job_request(&j).unwrap_err().to_string().contains("memory"));
        let mut j = job(d.path());
        j.limits.pids = 0;
        assert!(matches!(job_request(&j), Err(ProfileError::Limit { .. })));
        let mut j = job(d.path());
        j.env.push(("".into(), "x".into()));
        assert!(matches!(job_request(&j), Err(ProfileError::Env { .. })));
    }

    /// RLIMIT_* numbers of Linux (asm-generic/resource.h).
    mod libc_rlimit {
        pub const FSIZE: i32 = 1;
        pub const STACK: i32 = 3;
        pub const NOFILE: i32 = 7;
    }
}
