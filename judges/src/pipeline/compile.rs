//! The box directory and the compile phase: the source written into a
//! fresh box (owned by nobody), compiled once in a sandbox, or taken from
//! the compile cache.

use super::*;

pub(super) fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), std::io::Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(data)
}

/// Makes `dir` (0755) when given, then writes the files, off the async
/// threads (outputs and expected outputs can be large).
pub(super) async fn write_files(
    dir: Option<PathBuf>,
    files: Vec<(PathBuf, Vec<u8>, u32)>,
) -> Result<(), std::io::Error> {
    tokio::task::spawn_blocking(move || {
        if let Some(d) = &dir {
            make_dir(d, 0o755)?;
        }
        files
            .iter()
            .try_for_each(|(path, data, mode)| write_file(path, data, *mode))
    })
    .await
    .map_err(std::io::Error::other)?
}

pub(super) fn make_dir(path: &Path, mode: u32) -> Result<(), std::io::Error> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().mode(mode).create(path)?;
    // The umask may have taken bits the sandbox's uid needs.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Owner (uid and gid) of a box on the host: `nobody`. The sandbox refuses
/// a read-write bind of a root-owned directory (its owner's rights would
/// become the sandbox's, docs/limits.md), so the box is handed to an id
/// that owns nothing else; the compile's files belong to it on the host.
pub(super) const BOX_OWNER: u32 = 65534;

/// Gives a new box to [`BOX_OWNER`]. Not running as root, the box is the
/// caller's already (and not root's), which is just as good.
pub(super) fn give_box_away(dir: &Path) -> Result<(), std::io::Error> {
    match std::os::unix::fs::chown(dir, Some(BOX_OWNER), Some(BOX_OWNER)) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Ok(()),
        r => r,
    }
}

/// A compiled (or written) program in its box directory.
pub(super) struct Program<'a> {
    pub(super) lang: &'a Language,
    pub(super) box_dir: PathBuf,
}

pub(super) struct Compiled {
    pub(super) output: String,
    pub(super) truncated: bool,
    pub(super) outcome: Result<(), (Verdict, String)>,
    /// Restored from the compile cache.
    pub(super) cached: bool,
}

/// Writes `source` into `box_dir` and compiles it there (when the language
/// has a compile step).
pub(super) async fn prepare(
    runner: &dyn Runner,
    lang: &Language,
    source: &str,
    box_dir: &Path,
    on_compile: &(dyn Fn(Option<bool>) + Send + Sync),
    cache: Option<(&CompileCache, &str)>,
) -> Result<Option<Compiled>, JudgeError> {
    let key = match (cache, &lang.compile) {
        (Some((c, scope)), Some(_)) => Some((c, CompileCache::key(scope, lang, source))),
        _ => None,
    };
    if let Some((c, key)) = &key {
        if let Some(output) = c.restore(key, box_dir) {
            on_compile(None);
            on_compile(Some(true));
            return Ok(Some(Compiled {
                output,
                truncated: false,
                outcome: Ok(()),
                cached: true,
            }));
        }
    }
    let compiled = compile(runner, lang, source, box_dir, on_compile).await?;
    if let (Some((c, key)), Some(done)) = (&key, &compiled) {
        if done.outcome.is_ok() && !done.truncated {
            c.store(key, box_dir, &done.output);
        }
    }
    Ok(compiled)
}

pub(super) async fn compile(
    runner: &dyn Runner,
    lang: &Language,
    source: &str,
    box_dir: &Path,
    on_compile: &(dyn Fn(Option<bool>) + Send + Sync),
) -> Result<Option<Compiled>, JudgeError> {
    // World-writable: the compile step mounts it read-write and the
    // sandbox normally sees it as its own through an idmapped bind; on a
    // filesystem that cannot be idmapped (overlayfs, NFS) the bind stays
    // plain and uid 1000 inside must still be able to write the program.
    // Only the sandbox it is mounted into can reach it (its parent is a
    // 0700 work dir), and tests get it read-only. Owned by nobody, not
    // root: a root-owned rw bind is refused.
    make_dir(box_dir, 0o777)
        .and_then(|()| give_box_away(box_dir))
        .map_err(|source| JudgeError::WorkDir {
            path: box_dir.to_path_buf(),
            source,
        })?;
    let src = box_dir.join(&lang.source_file);
    write_file(&src, source.as_bytes(), 0o644).map_err(|source| JudgeError::Write {
        path: src.clone(),
        source,
    })?;
    let Some(c) = &lang.compile else {
        return Ok(None);
    };
    on_compile(None);
    let vars = Vars {
        memory_mb: c.memory_mb,
        stack_bytes: c.memory_mb << 20,
    };
    let limits = RunLimits {
        cpu_time: Duration::from_millis(c.cpu_time_ms),
        wall_time: Duration::from_millis(c.wall_time_ms),
        memory_bytes: c.memory_mb << 20,
        pids: c.pids,
        output_bytes: COMPILE_OUTPUT_LIMIT.max(c.output_kb << 10),
        file_size_bytes: COMPILE_FILE_SIZE,
        stack_bytes: None,
    };
    let job = Job {
        argv: c
            .argv
            .iter()
            .map(|a| crate::language::expand(a, &vars))
            .collect(),
        env: lang.job_env(&vars, Some(&c.env)),
        cwd: "/box".into(),
        image: lang.image.clone(),
        mounts: vec![Mount {
            host: box_dir.to_path_buf(),
            dest: "/box".into(),
            writable: true,
        }],
        stdin: None,
        limits: limits.clone(),
    };
    let compiled = match runner.run(job).await {
        Err(e) => Compiled {
            output: String::new(),
            truncated: false,
            outcome: Err((
                Verdict::InternalError,
                format!("the compile could not run: {e}"),
            )),
            cached: false,
        },
        Ok(out) => {
            let outcome = match verdict::classify_compile(&out.report, &limits) {
                CompileClass::Compiled => Ok(()),
                CompileClass::Failed(d) => Err((Verdict::CompilationError, d)),
                CompileClass::Internal(d) => Err((Verdict::InternalError, d)),
            };
            match joined_prefix(&out, (c.output_kb << 10) as usize) {
                Ok((output, cut)) => Compiled {
                    output,
                    truncated: cut || out.stdout_truncated || out.stderr_truncated,
                    outcome,
                    cached: false,
                },
                Err(e) => Compiled {
                    output: String::new(),
                    truncated: false,
                    outcome: Err((
                        Verdict::InternalError,
                        format!("read the compiler's output: {e}"),
                    )),
                    cached: false,
                },
            }
        }
    };
    on_compile(Some(compiled.outcome.is_ok()));
    Ok(Some(compiled))
}
