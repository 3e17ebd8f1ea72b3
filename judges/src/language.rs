//! The language table: how each language is compiled and run, with its own
//! adjustments (the JVM's memory beside its heap, threads for Node, Java
//! and Go, environment). Shipped as `languages.toml` in this crate and
//! extended or overridden by a file given at run time: an entry with an
//! existing name replaces it whole.
//!
//! Versions are probed through a [`Runner`], inside the sandbox a
//! submission would get (the same root, image and seccomp profile), so
//! that what is reported is what runs; a toolchain that cannot be started
//! there is marked unavailable, not removed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::runner::{Job, RunLimits, Runner};

/// The shipped table.
pub const BUILTIN: &str = include_str!("../languages.toml");

/// Defaults of a compile step (each can be set per language).
pub mod compile_defaults {
    pub const CPU_TIME_MS: u64 = 10_000;
    pub const WALL_TIME_MS: u64 = 20_000;
    pub const MEMORY_MB: u64 = 1024;
    pub const PIDS: u64 = 64;
    /// Compiler output kept in the result.
    pub const OUTPUT_KB: u64 = 64;
}

/// Tasks of a run when the language does not say.
pub const DEFAULT_PIDS: u64 = 16;

#[derive(thiserror::Error, Debug)]
pub enum LanguageError {
    #[error("read the language table {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("language table {origin}: {}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
    Invalid {
        origin: String,
        line: Option<usize>,
        message: String,
    },
}

/// Whether a language's toolchain works here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Availability {
    /// Not probed yet.
    #[default]
    Unknown,
    Available {
        /// First line of the version probe's output.
        version: String,
    },
    Unavailable {
        reason: String,
    },
}

/// A compile step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Compile {
    pub argv: Vec<String>,
    /// Added to the language's env.
    pub env: BTreeMap<String, String>,
    pub cpu_time_ms: u64,
    pub wall_time_ms: u64,
    pub memory_mb: u64,
    pub pids: u64,
    /// Compiler output kept in the result (KiB).
    pub output_kb: u64,
}

/// One language of the table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Language {
    pub name: String,
    pub display: String,
    pub judge0_id: Option<u32>,
    /// The file the source is written to in /box.
    pub source_file: String,
    pub compile: Option<Compile>,
    pub run: Vec<String>,
    /// An image of the store; `None`: the host rootfs.
    pub image: Option<String>,
    /// argv printing the version on its first line.
    pub version: Vec<String>,
    /// Environment of compile, run and probe (placeholders expanded).
    pub env: BTreeMap<String, String>,
    /// Memory of the sandbox beyond the submission's limit (a runtime's
    /// own, e.g. the JVM's beside its heap).
    pub extra_memory_mb: u64,
    /// Tasks of a run.
    pub pids: u64,
    /// Texts a failed allocation prints on stderr (MLE rule, docs/judges.md).
    pub oom_markers: Vec<String>,
    pub availability: Availability,
}

/// The values placeholders expand to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vars {
    pub memory_mb: u64,
    pub stack_bytes: u64,
}

const PLACEHOLDERS: [&str; 4] = ["memory_mb", "stack_mb", "stack_kb", "stack_kb_safe"];

impl Vars {
    fn value(&self, name: &str) -> Option<String> {
        match name {
            "memory_mb" => Some(self.memory_mb.to_string()),
            "stack_mb" => Some((self.stack_bytes >> 20).max(1).to_string()),
            "stack_kb" => Some((self.stack_bytes >> 10).max(1).to_string()),
            // A margin for runtimes that check their stack depth themselves
            // (V8's --stack-size): at the real limit they would crash before
            // their own check fires.
            "stack_kb_safe" => Some(((self.stack_bytes >> 10) * 9 / 10).max(1).to_string()),
            _ => None,
        }
    }
}

/// Expands `{name}` placeholders and `{{`/`}}` in `s`. Unknown names are
/// refused when the table is loaded; here they stay as they are.
pub fn expand(s: &str, vars: &Vars) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if let Some(end) = tail.find('}').filter(|_| tail.starts_with('{')) {
            if let Some(v) = vars.value(&tail[1..end]) {
                out.push_str(&v);
                rest = &tail[end + 1..];
                continue;
            }
        }
        out.push_str(&tail[..1]);
        rest = &tail[1..];
    }
    out.push_str(rest);
    out
}

/// Checks the placeholders of `s`.
fn check_template(s: &str) -> Result<(), String> {
    let mut rest = s;
    while let Some(i) = rest.find(['{', '}']) {
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            rest = &tail[2..];
            continue;
        }
        if tail.starts_with('}') {
            return Err(format!("{s:?}: a lone '}}' (write }}}} for a brace)"));
        }
        let Some(end) = tail.find('}') else {
            return Err(format!("{s:?}: an unclosed '{{'"));
        };
        let name = &tail[1..end];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "{s:?}: unknown placeholder {{{name}}} (known: {})",
                PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
            ));
        }
        rest = &tail[end + 1..];
    }
    Ok(())
}

impl Language {
    pub fn is_available(&self) -> bool {
        !matches!(self.availability, Availability::Unavailable { .. })
    }

    /// The environment of a job of this language: the sandbox's base
    /// (PATH, HOME=/tmp, LANG), the language's, then `extra`.
    pub fn job_env(
        &self,
        vars: &Vars,
        extra: Option<&BTreeMap<String, String>>,
    ) -> Vec<(String, String)> {
        let mut env: BTreeMap<String, String> = [
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ("HOME", "/tmp"),
            ("LANG", "C.UTF-8"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in self.env.iter().chain(extra.into_iter().flatten()) {
            env.insert(k.clone(), expand(v, vars));
        }
        env.into_iter().collect()
    }

    /// The job that prints the toolchain's version.
    pub fn version_job(&self) -> Job {
        let vars = Vars {
            memory_mb: 256,
            stack_bytes: 8 << 20,
        };
        Job {
            argv: self.version.iter().map(|a| expand(a, &vars)).collect(),
            env: self.job_env(&vars, self.compile.as_ref().map(|c| &c.env)),
            cwd: "/tmp".into(),
            image: self.image.clone(),
            mounts: Vec::new(),
            stdin: None,
            limits: RunLimits {
                cpu_time: Duration::from_secs(10),
                wall_time: Duration::from_secs(20),
                memory_bytes: 1 << 30,
                pids: 64,
                output_bytes: 64 << 10,
                file_size_bytes: 1 << 20,
                stack_bytes: None,
            },
        }
    }
}

// The file's form, with spans to name lines in errors.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    #[serde(default)]
    language: Vec<RawLanguage>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLanguage {
    name: toml::Spanned<String>,
    display: Option<String>,
    judge0_id: Option<u32>,
    source_file: String,
    compile: Option<RawCompile>,
    run: Vec<String>,
    image: Option<String>,
    version: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    extra_memory_mb: u64,
    pids: Option<u64>,
    #[serde(default)]
    oom_markers: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCompile {
    argv: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cpu_time_ms: Option<u64>,
    wall_time_ms: Option<u64>,
    memory_mb: Option<u64>,
    pids: Option<u64>,
    output_kb: Option<u64>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 32
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_+-.".contains(&b))
}

fn in_range(what: &str, v: u64, lo: u64, hi: u64) -> Result<u64, String> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{what} = {v} is out of range {lo}..={hi}"))
    }
}

impl RawLanguage {
    fn into_language(self) -> Result<Language, String> {
        let name = self.name.into_inner();
        if !valid_name(&name) {
            return Err(format!("name {name:?}: use 1-32 of [a-z0-9_+-.]"));
        }
        let sf = &self.source_file;
        if sf.is_empty() || sf.contains('/') || sf == "." || sf == ".." || sf.contains('\0') {
            return Err(format!("source_file {sf:?} must be a plain file name"));
        }
        for (what, argv) in [("run", &self.run), ("version", &self.version)] {
            if argv.is_empty() {
                return Err(format!("{what} is empty"));
            }
        }
        let mut templates: Vec<&String> = self.run.iter().chain(&self.version).collect();
        templates.extend(self.env.values());
        if let Some(c) = &self.compile {
            if c.argv.is_empty() {
                return Err("compile.argv is empty".into());
            }
            templates.extend(c.argv.iter().chain(c.env.values()));
        }
        for t in templates {
            check_template(t)?;
        }
        for k in self
            .env
            .keys()
            .chain(self.compile.iter().flat_map(|c| c.env.keys()))
        {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                return Err(format!("env name {k:?} is not a variable name"));
            }
        }
        let compile = match self.compile {
            None => None,
            Some(c) => {
                use compile_defaults as d;
                Some(Compile {
                    argv: c.argv,
                    env: c.env,
                    cpu_time_ms: in_range(
                        "compile.cpu_time_ms",
                        c.cpu_time_ms.unwrap_or(d::CPU_TIME_MS),
                        100,
                        600_000,
                    )?,
                    wall_time_ms: in_range(
                        "compile.wall_time_ms",
                        c.wall_time_ms.unwrap_or(d::WALL_TIME_MS),
                        100,
                        1_200_000,
                    )?,
                    memory_mb: in_range(
                        "compile.memory_mb",
                        c.memory_mb.unwrap_or(d::MEMORY_MB),
                        16,
                        65_536,
                    )?,
                    pids: in_range("compile.pids", c.pids.unwrap_or(d::PIDS), 1, 4096)?,
                    output_kb: in_range(
                        "compile.output_kb",
                        c.output_kb.unwrap_or(d::OUTPUT_KB),
                        1,
                        16_384,
                    )?,
                })
            }
        };
        Ok(Language {
            display: self.display.unwrap_or_else(|| name.clone()),
            name,
            judge0_id: self.judge0_id,
            source_file: self.source_file,
            compile,
            run: self.run,
            image: self.image.filter(|i| !i.is_empty()),
            version: self.version,
            env: self.env,
            extra_memory_mb: in_range("extra_memory_mb", self.extra_memory_mb, 0, 65_536)?,
            pids: in_range("pids", self.pids.unwrap_or(DEFAULT_PIDS), 1, 4096)?,
            oom_markers: self
                .oom_markers
                .into_iter()
                .filter(|m| !m.is_empty())
                .collect(),
            availability: Availability::Unknown,
        })
    }
}

/// The table: an ordered list of languages, unique by name and Judge0 id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Languages {
    list: Vec<Language>,
}

impl Languages {
    /// The shipped table, then `extra` (a TOML file of the same format)
    /// over it: new names are added, existing names replaced.
    pub fn load(extra: Option<&Path>) -> Result<Languages, LanguageError> {
        let table = Languages::parse(BUILTIN, "languages.toml (built in)")?;
        match extra {
            None => Ok(table),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| LanguageError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                table.with_overrides(&text, &path.display().to_string())
            }
        }
    }

    /// Parses one table (`origin` names it in errors).
    pub fn parse(text: &str, origin: &str) -> Result<Languages, LanguageError> {
        let invalid = |line, message| LanguageError::Invalid {
            origin: origin.to_string(),
            line,
            message,
        };
        let raw: RawTable = toml::from_str(text).map_err(|e| {
            invalid(
                e.span().map(|s| line_of(text, s.start)),
                e.message()
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join(": "),
            )
        })?;
        let mut list: Vec<Language> = Vec::with_capacity(raw.language.len());
        for r in raw.language {
            let line = line_of(text, r.name.span().start);
            let name = r.name.get_ref().clone();
            let lang = r
                .into_language()
                .map_err(|m| invalid(Some(line), format!("language {name:?}: {m}")))?;
            if list.iter().any(|l| l.name == lang.name) {
                return Err(invalid(
                    Some(line),
                    format!("language {name:?} is defined twice"),
                ));
            }
            list.push(lang);
        }
        let table = Languages { list };
        table.check_ids().map_err(|m| invalid(None, m))?;
        Ok(table)
    }

    /// This table with the languages of `text` added or replacing those of
    /// the same name.
    pub fn with_overrides(mut self, text: &str, origin: &str) -> Result<Languages, LanguageError> {
        let extra = Languages::parse(text, origin)?;
        for lang in extra.list {
            match self.list.iter_mut().find(|l| l.name == lang.name) {
                Some(slot) => *slot = lang,
                None => self.list.push(lang),
            }
        }
        self.check_ids().map_err(|message| LanguageError::Invalid {
            origin: origin.to_string(),
            line: None,
            message,
        })?;
        Ok(self)
    }

    fn check_ids(&self) -> Result<(), String> {
        for (i, a) in self.list.iter().enumerate() {
            if let Some(id) = a.judge0_id {
                if let Some(b) = self.list[i + 1..].iter().find(|b| b.judge0_id == Some(id)) {
                    return Err(format!(
                        "judge0_id {id} is used by both {:?} and {:?}",
                        a.name, b.name
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Language> {
        self.list.iter().find(|l| l.name == name)
    }

    pub fn by_judge0_id(&self, id: u32) -> Option<&Language> {
        self.list.iter().find(|l| l.judge0_id == Some(id))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Language> {
        self.list.iter()
    }

    /// Sets a language's availability (what [`Languages::probe_versions`]
    /// does); false when there is no such language.
    pub fn set_availability(&mut self, name: &str, availability: Availability) -> bool {
        match self.list.iter_mut().find(|l| l.name == name) {
            Some(l) => {
                l.availability = availability;
                true
            }
            None => false,
        }
    }

    pub fn names(&self) -> Vec<&str> {
        self.list.iter().map(|l| l.name.as_str()).collect()
    }

    /// Runs every language's `version` argv through `runner` (concurrently)
    /// and records the first line of its output, or why it is unavailable.
    pub async fn probe_versions(&mut self, runner: &dyn Runner) {
        let probes = self.list.iter().map(|l| {
            let job = l.version_job();
            async move { probe_result(runner.run(job).await) }
        });
        let results = futures_util::future::join_all(probes).await;
        for (lang, a) in self.list.iter_mut().zip(results) {
            tracing::debug!(language = %lang.name, availability = ?a, "probed");
            lang.availability = a;
        }
    }
}

fn probe_result(r: Result<crate::runner::RunOutput, crate::runner::RunError>) -> Availability {
    let out = match r {
        Ok(o) => o,
        Err(e) => {
            return Availability::Unavailable {
                reason: format!("the probe could not run: {e}"),
            }
        }
    };
    if let Some(err) = &out.report.error {
        return Availability::Unavailable {
            reason: err.to_string(),
        };
    }
    // A version is on the first lines: 4 KiB of each stream are plenty.
    let first = |o: &crate::runner::Output| {
        let head = o.prefix(4 << 10).unwrap_or_default();
        String::from_utf8_lossy(&head)
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(|l| l.chars().take(200).collect::<String>())
    };
    if out.report.exit_code != Some(0) {
        return Availability::Unavailable {
            reason: format!(
                "the version probe failed ({}){}",
                crate::verdict::exit_description(&out.report),
                first(&out.stderr)
                    .map(|l| format!(": {l}"))
                    .unwrap_or_default()
            ),
        };
    }
    match first(&out.stdout).or_else(|| first(&out.stderr)) {
        Some(version) => Availability::Available { version },
        None => Availability::Unavailable {
            reason: "the version probe printed nothing".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_parses_with_every_language_and_judge0_id() {
        let t = Languages::load(None).unwrap();
        let want = [
            ("c", 50, "main.c"),
            ("cpp", 54, "main.cpp"),
            ("python", 71, "main.py"),
            ("java", 62, "Main.java"),
            ("javascript", 63, "main.js"),
            ("rust", 73, "main.rs"),
            ("go", 60, "main.go"),
            ("bash", 46, "main.sh"),
        ];
        assert_eq!(t.names().len(), want.len());
        for (name, id, file) in want {
            let l = t.get(name).unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(l.judge0_id, Some(id), "{name}");
            assert_eq!(l.source_file, file, "{name}");
            assert_eq!(t.by_judge0_id(id).map(|l| l.name.as_str()), Some(name));
            assert_eq!(l.availability, Availability::Unknown);
        }
        for compiled in ["c", "cpp", "java", "rust", "go"] {
            assert!(t.get(compiled).unwrap().compile.is_some(), "{compiled}");
        }
        for interpreted in ["python", "javascript", "bash"] {
            assert!(
                t.get(interpreted).unwrap().compile.is_none(),
                "{interpreted}"
            );
        }
        let java = t.get("java").unwrap();
        assert!(java.extra_memory_mb > 0 && java.pids > DEFAULT_PIDS);
        let c = t.get("c").unwrap().compile.as_ref().unwrap();
        assert_eq!(
            (
                c.cpu_time_ms,
                c.wall_time_ms,
                c.memory_mb,
                c.pids,
                c.output_kb
            ),
            (10_000, 20_000, 1024, 64, 64)
        );
    }

    #[test]
    fn overrides_replace_by_name_and_add_new_languages() {
        let t = Languages::load(None).unwrap();
        let t = t
            .with_overrides(
                r#"
[[language]]
name = "python"
judge0_id = 71
source_file = "solution.py"
run = ["pypy3", "/box/solution.py"]
version = ["pypy3", "--version"]
image = "pypy"

[[language]]
name = "lua"
display = "Lua 5.4"
source_file = "main.lua"
run = ["lua5.4", "/box/main.lua"]
version = ["lua5.4", "-v"]
"#,
                "extra.toml",
            )
            .unwrap();
        assert_eq!(t.names().len(), 9);
        let py = t.get("python").unwrap();
        assert_eq!(py.source_file, "solution.py");
        assert_eq!(py.image.as_deref(), Some("pypy"));
        assert!(py.oom_markers.is_empty(), "replaced whole, not merged");
        assert_eq!(py.display, "python");
        assert_eq!(t.get("lua").unwrap().pids, DEFAULT_PIDS);
        assert_eq!(t.names()[2], "python", "a replacement keeps its place");
    }

    #[test]
    fn a_file_given_at_run_time_is_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("langs.toml");
        std::fs::write(
            &p,
            "[[language]]\nname = \"bash\"\nsource_file = \"s.sh\"\nrun = [\"sh\", \"/box/s.sh\"]\nversion = [\"sh\", \"-c\", \"echo sh\"]\n",
        )
        .unwrap();
        let t = Languages::load(Some(&p)).unwrap();
        assert_eq!(t.get("bash").unwrap().run, ["sh", "/box/s.sh"]);
        let e = Languages::load(Some(&d.path().join("missing.toml"))).unwrap_err();
        assert!(e.to_string().contains("missing.toml"), "{e}");
    }

    fn err(text: &str) -> String {
        Languages::parse(text, "bad.toml").unwrap_err().to_string()
    }

    const OK: &str = "source_file = \"m\"\nrun = [\"x\"]\nversion = [\"x\"]\n";

    #[test]
    fn bad_files_give_one_error_naming_the_line() {
        let e = err("[[language]]\nname = \"a\"\nsource_file = = \"m\"\nrun = [\"x\"]\n");
        assert!(e.starts_with("language table bad.toml: line 3: "), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
        let e = err(&format!("[[language]]\nname = \"a\"\n{OK}colour = 3\n"));
        assert!(e.contains("line 6") && e.contains("colour"), "{e}");
        let e = err(&format!(
            "[[language]]\nname = \"a\"\n{OK}\n[[language]]\nname = \"a\"\n{OK}"
        ));
        assert!(e.contains("line 8") && e.contains("twice"), "{e}");
        let e = err(&format!(
            "[[language]]\nname = \"a\"\n{OK}\n\n[[language]]\nname = \"b\"\nsource_file = \"m\"\nrun = [\"x\", \"-Xmx{{memory}}m\"]\nversion = [\"x\"]\n"
        ));
        // Semantic errors name the line of the language's `name`.
        assert!(
            e.contains("line 9: language \"b\"") && e.contains("unknown placeholder {memory}"),
            "{e}"
        );
        let e = err("[[language]]\nname = \"a\"\nsource_file = \"m\"\nversion = [\"x\"]\n");
        assert!(e.contains("run"), "{e}");
    }

    #[test]
    fn semantic_checks() {
        let lang = |body: &str| err(&format!("[[language]]\nname = \"a\"\n{body}"));
        assert!(
            lang("source_file = \"../x\"\nrun = [\"x\"]\nversion = [\"x\"]\n")
                .contains("plain file name")
        );
        assert!(lang("source_file = \"m\"\nrun = []\nversion = [\"x\"]\n").contains("run is empty"));
        assert!(lang(&format!("{OK}pids = 0\n")).contains("pids = 0 is out of range"));
        assert!(
            lang(&format!("{OK}[language.compile]\nargv = []\n")).contains("compile.argv is empty")
        );
        assert!(lang(&format!(
            "{OK}[language.compile]\nargv = [\"cc\"]\nmemory_mb = 1\n"
        ))
        .contains("compile.memory_mb"));
        assert!(lang(&format!("{OK}env = {{ \"A=B\" = \"1\" }}\n")).contains("variable name"));
        assert!(
            err(&format!("[[language]]\nname = \"Bad Name\"\n{OK}")).contains("name \"Bad Name\"")
        );
        let e = err(&format!(
            "[[language]]\nname = \"a\"\njudge0_id = 7\n{OK}\n[[language]]\nname = \"b\"\njudge0_id = 7\n{OK}"
        ));
        assert!(e.contains("judge0_id 7"), "{e}");
        // An override may not steal another language's Judge0 id either.
        let e = Languages::load(None)
            .unwrap()
            .with_overrides(
                &format!("[[language]]\nname = \"pypy\"\njudge0_id = 71\n{OK}"),
                "x.toml",
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("judge0_id 71"), "{e}");
    }

    #[test]
    fn placeholders_expand() {
        let v = Vars {
            memory_mb: 256,
            stack_bytes: 64 << 20,
        };
        assert_eq!(expand("-Xmx{memory_mb}m", &v), "-Xmx256m");
        assert_eq!(expand("-Xss{stack_mb}m", &v), "-Xss64m");
        assert_eq!(expand("--stack-size={stack_kb}", &v), "--stack-size=65536");
        assert_eq!(
            expand("--stack-size={stack_kb_safe}", &v),
            "--stack-size=58982"
        );
        assert_eq!(expand("{{memory_mb}}", &v), "{memory_mb}");
        assert_eq!(expand("a}}b{{c", &v), "a}b{c");
        assert_eq!(expand("{nope}", &v), "{nope}");
        assert!(check_template("{memory_mb}{stack_kb}").is_ok());
        assert!(check_template("{{x}}").is_ok());
        assert!(check_template("{x").is_err());
        assert!(check_template("x}").is_err());
    }

    #[test]
    fn job_env_layers_base_language_and_step() {
        let t = Languages::load(None).unwrap();
        let go = t.get("go").unwrap();
        let v = Vars {
            memory_mb: 64,
            stack_bytes: 1 << 20,
        };
        let mut extra = BTreeMap::new();
        extra.insert("HOME".to_string(), "/box".to_string());
        let env = go.job_env(&v, Some(&extra));
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("GOCACHE"), Some("/tmp/go-cache"));
        assert_eq!(get("HOME"), Some("/box"));
        assert!(get("PATH").is_some_and(|p| p.contains("/usr/bin")));
        let job = go.version_job();
        assert_eq!(job.argv, ["go", "version"]);
        assert!(job.mounts.is_empty());
    }

    #[test]
    fn probe_outcomes() {
        use sandbox::{ExitReport, StepFailure, Termination};
        let report = |code: Option<i32>, error: Option<StepFailure>| ExitReport {
            sandbox_id: "p".into(),
            termination: if error.is_some() {
                Termination::SetupFailed
            } else {
                Termination::Exited
            },
            exit_code: code,
            signal: None,
            wall_time_us: 0,
            cpu_user_us: 0,
            cpu_system_us: 0,
            cpu_total_us: 0,
            memory_peak_bytes: 0,
            oom_kills: 0,
            pids_limit_hits: 0,
            stdout_bytes: None,
            stderr_bytes: None,
            host_uid: 0,
            host_gid: 0,
            cgroup_paths: vec![],
            error,
        };
        let out = |code, error, stdout: &str, stderr: &str| {
            Ok(crate::runner::RunOutput {
                report: report(code, error),
                stdout: stdout.into(),
                stderr: stderr.into(),
                stdout_truncated: false,
                stderr_truncated: false,
            })
        };
        assert_eq!(
            probe_result(out(
                Some(0),
                None,
                "\ngcc (Debian 12.2.0-14) 12.2.0\nCopyright\n",
                ""
            )),
            Availability::Available {
                version: "gcc (Debian 12.2.0-14) 12.2.0".into()
            }
        );
        assert_eq!(
            probe_result(out(Some(0), None, "", "openjdk 17\n")),
            Availability::Available {
                version: "openjdk 17".into()
            }
        );
        let missing = StepFailure {
            step: sandbox::report::Step::Exec,
            errno: Some(sandbox::report::Errno::ENOENT),
            message: "go: No such file or directory".into(),
        };
        assert!(matches!(
            probe_result(out(None, Some(missing), "", "")),
            Availability::Unavailable { reason } if reason.contains("go: No such file")
        ));
        assert!(matches!(
            probe_result(out(Some(2), None, "", "broken\n")),
            Availability::Unavailable { reason } if reason.contains("(exit code 2): broken")
        ));
    }
}
