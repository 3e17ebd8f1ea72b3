//! Recipes: a small TOML format that says how to build an image (a base,
//! Debian packages, commands run in a sandbox, files copied from a context
//! directory, and the image's env, workdir, user and cmd). Parsing is
//! strict: an unknown key is refused by name, and everything is checked
//! before a build starts. The format is documented in `docs/images.md`.

pub mod build;
pub mod debian;
pub mod diff;
pub mod tree;

use std::collections::BTreeMap;
use std::path::{Component, Path};

use serde::{Deserialize, Serialize};

use crate::store::ImageName;

pub use build::{
    build, build_builtin, BuildError, BuildEvent, BuildOptions, BuildOutcome, LogStream, Progress,
};

/// Default Debian mirror of `base = "debian:SUITE"`.
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("recipe: {0}")]
    Toml(String),
    #[error("recipe: {field}: {reason}")]
    Invalid { field: String, reason: String },
}

/// A TOML error on one line: `line L, column C: message`.
fn toml_error(text: &str, e: &toml::de::Error) -> RecipeError {
    let msg = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            RecipeError::Toml(format!("line {line}, column {col}: {msg}"))
        }
        None => RecipeError::Toml(msg),
    }
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> RecipeError {
    RecipeError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A parsed and checked recipe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// `repository[:tag]` of the image built; the tag defaults to `latest`.
    pub name: String,
    /// `scratch`, `debian:SUITE` (made with mmdebstrap) or an image in the
    /// store.
    pub base: String,
    /// Debian mirror for a `debian:SUITE` base (default [`DEFAULT_MIRROR`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    /// Debian packages installed right after the base (one layer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    /// Steps after the packages, in order; each is one layer.
    #[serde(default, rename = "step", skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    /// Environment of the image (merged over the base image's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// `UID[:GID]` or `NAME[:GROUP]` (looked up in the image's /etc/passwd
    /// and /etc/group when the build ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
}

/// One step: exactly one of `run`, `copy`, `packages`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<Command>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy: Option<Copy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages: Option<Vec<String>>,
    /// Network of a `run` step: `none` (default) or `mirror`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// Extra environment of a `run` or `packages` step (not the image's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

/// A command: a shell line (`/bin/sh -c LINE`) or an argv (exec form).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Command {
    Shell(String),
    Exec(Vec<String>),
}

impl Command {
    /// The argv run in the sandbox.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Command::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
            Command::Exec(v) => v.clone(),
        }
    }
}

/// Files from the context directory into the image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Copy {
    /// Relative to the context directory; a directory's contents are copied.
    pub from: String,
    /// Absolute path in the image. A file copied to a path ending in `/`
    /// keeps its name.
    pub to: String,
    /// `UID:GID` of what is copied (default `0:0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// An empty network namespace (lo only).
    None,
    /// The host's network, to reach the package mirror (not filtered to it).
    Mirror,
}

/// What a recipe starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Base {
    Scratch,
    Debian { suite: String, mirror: String },
    Image(ImageName),
}

/// What a step does, checked (the one of run/copy/packages that is set).
#[derive(Clone, Debug, PartialEq)]
pub enum StepKind<'a> {
    Run {
        argv: Vec<String>,
        network: Network,
        env: &'a BTreeMap<String, String>,
    },
    Copy {
        from: &'a str,
        to: &'a str,
        owner: (u32, u32),
    },
    Packages {
        packages: &'a [String],
        env: &'a BTreeMap<String, String>,
    },
}

/// Keys of the recipe itself: found inside a `[[step]]` table they were
/// most likely written after it (TOML puts them into that step).
const RECIPE_KEYS: [&str; 8] = [
    "name",
    "base",
    "mirror",
    "workdir",
    "user",
    "cmd",
    "entrypoint",
    "step",
];

impl Recipe {
    /// Parses and checks a recipe.
    pub fn parse(text: &str) -> Result<Recipe, RecipeError> {
        // First as plain TOML, to point at recipe keys that ended up in a
        // step table (a common TOML mistake) before serde's generic message.
        let value: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| toml_error(text, &e))?;
        if let Some(toml::Value::Array(steps)) = value.get("step") {
            for (i, s) in steps.iter().enumerate() {
                let Some(t) = s.as_table() else { continue };
                for k in t.keys() {
                    if RECIPE_KEYS.contains(&k.as_str()) {
                        return Err(invalid(
                            format!("step {}", i + 1),
                            format!(
                                "unknown field `{k}`: it is a key of the recipe; put the recipe's keys before the first [[step]] (TOML puts keys after a [[step]] header into that step)"
                            ),
                        ));
                    }
                }
            }
        }
        let recipe: Recipe = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        recipe.validate()?;
        Ok(recipe)
    }

    /// Reads and parses a recipe file.
    pub fn from_file(path: &Path) -> Result<Recipe, RecipeError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| RecipeError::Toml(format!("read {}: {e}", path.display())))?;
        Recipe::parse(&text)
    }

    /// The image name built.
    pub fn image_name(&self) -> Result<ImageName, RecipeError> {
        self.name
            .parse::<ImageName>()
            .map_err(|e| invalid("name", e.to_string()))
    }

    /// The base, parsed.
    pub fn base(&self) -> Result<Base, RecipeError> {
        let b = self.base.as_str();
        if b == "scratch" {
            if self.mirror.is_some() {
                return Err(invalid("mirror", "only a debian:SUITE base has a mirror"));
            }
            return Ok(Base::Scratch);
        }
        if let Some(suite) = b.strip_prefix("debian:") {
            if suite.is_empty()
                || suite.len() > 32
                || !suite
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
            {
                return Err(invalid(
                    "base",
                    format!("{b:?}: a Debian suite is lower-case letters, digits and '-' (e.g. debian:bookworm)"),
                ));
            }
            let mirror = self.mirror.clone().unwrap_or_else(|| DEFAULT_MIRROR.into());
            if !(mirror.starts_with("http://") || mirror.starts_with("https://"))
                || mirror.len() > 512
                || mirror
                    .bytes()
                    .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
            {
                return Err(invalid(
                    "mirror",
                    format!("{mirror:?}: expected an http:// or https:// URL"),
                ));
            }
            return Ok(Base::Debian {
                suite: suite.into(),
                mirror,
            });
        }
        if self.mirror.is_some() {
            return Err(invalid("mirror", "only a debian:SUITE base has a mirror"));
        }
        b.parse::<ImageName>()
            .map(Base::Image)
            .map_err(|e| invalid("base", format!("{e} (or use scratch, debian:SUITE)")))
    }

    /// Checks everything that can be checked without the store.
    pub fn validate(&self) -> Result<(), RecipeError> {
        self.image_name()?;
        let base = self.base()?;
        check_packages("packages", &self.packages)?;
        if !self.packages.is_empty() && base == Base::Scratch {
            return Err(invalid("packages", "a scratch image has no apt-get"));
        }
        for (i, s) in self.steps.iter().enumerate() {
            step_kind(s).map_err(|reason| invalid(format!("step {}", i + 1), reason))?;
        }
        check_env("env", &self.env)?;
        if let Some(w) = &self.workdir {
            check_image_path("workdir", w)?;
        }
        if let Some(u) = &self.user {
            parse_user(u)?;
        }
        for (f, v) in [("cmd", &self.cmd), ("entrypoint", &self.entrypoint)] {
            if let Some(v) = v {
                if v.iter().any(|a| a.contains('\0')) {
                    return Err(invalid(f, "an argument contains NUL"));
                }
            }
        }
        Ok(())
    }

    /// The steps, checked, in build order (packages first).
    pub fn step_kinds(&self) -> Vec<StepKind<'_>> {
        static NO_ENV: BTreeMap<String, String> = BTreeMap::new();
        let mut out = Vec::new();
        if !self.packages.is_empty() {
            out.push(StepKind::Packages {
                packages: &self.packages,
                env: &NO_ENV,
            });
        }
        // validate() checked every step.
        out.extend(self.steps.iter().filter_map(|s| step_kind(s).ok()));
        out
    }
}

/// The one thing a step does, or why it is malformed.
fn step_kind(s: &Step) -> Result<StepKind<'_>, String> {
    let set = [s.run.is_some(), s.copy.is_some(), s.packages.is_some()]
        .iter()
        .filter(|x| **x)
        .count();
    if set != 1 {
        return Err(
            "a step has exactly one of `run`, `copy`, `packages` (TOML puts keys written after a [[step]] header into that step)"
                .into(),
        );
    }
    check_env("env", &s.env).map_err(|e| e.to_string())?;
    if let Some(run) = &s.run {
        let argv = run.argv();
        match run {
            Command::Shell(line) if line.trim().is_empty() => {
                return Err("run: empty command".into())
            }
            Command::Exec(v) if v.is_empty() || v[0].is_empty() => {
                return Err("run: empty command".into())
            }
            _ => {}
        }
        if argv.iter().any(|a| a.contains('\0')) {
            return Err("run: an argument contains NUL".into());
        }
        return Ok(StepKind::Run {
            argv,
            network: s.network.unwrap_or(Network::None),
            env: &s.env,
        });
    }
    if s.network.is_some() {
        return Err("`network` belongs to run steps (packages always use the mirror)".into());
    }
    if let Some(p) = &s.packages {
        if p.is_empty() {
            return Err("packages: empty list".into());
        }
        check_packages("packages", p).map_err(|e| e.to_string())?;
        return Ok(StepKind::Packages {
            packages: p,
            env: &s.env,
        });
    }
    let Some(c) = &s.copy else {
        return Err("a step has exactly one of `run`, `copy`, `packages`".into());
    };
    if !s.env.is_empty() {
        return Err(
            "`env` of a copy step: env belongs to run steps, or to the recipe (put the recipe's keys before the first [[step]])"
                .into(),
        );
    }
    check_context_path(&c.from).map_err(|r| format!("copy.from: {r}"))?;
    check_image_path("copy.to", &c.to).map_err(|e| e.to_string())?;
    let owner = match &c.owner {
        None => (0, 0),
        Some(o) => match o.split_once(':').map(|(u, g)| (u.parse(), g.parse())) {
            Some((Ok(u), Ok(g))) => (u, g),
            _ => return Err(format!("copy.owner {o:?}: expected UID:GID as numbers")),
        },
    };
    Ok(StepKind::Copy {
        from: &c.from,
        to: &c.to,
        owner,
    })
}

/// Debian package names (policy §5.6.1), with an optional `:arch` and
/// `=version`. They are passed to apt-get as arguments, never through a
/// shell, but anything else is a typo or an attack.
fn check_packages(field: &str, pkgs: &[String]) -> Result<(), RecipeError> {
    for p in pkgs {
        let (name_arch, version) = match p.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (p.as_str(), None),
        };
        let (name, arch) = match name_arch.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (name_arch, None),
        };
        let ok_name = name.len() >= 2
            && name.len() <= 128
            && name.as_bytes()[0].is_ascii_alphanumeric()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
        let ok_arch = arch.is_none_or(|a| {
            !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
        let ok_version = version.is_none_or(|v| {
            !v.is_empty()
                && v.as_bytes()[0].is_ascii_digit()
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".+-~:".contains(&b))
        });
        if !(ok_name && ok_arch && ok_version) {
            return Err(invalid(
                field,
                format!("{p:?} is not a Debian package name (NAME[:ARCH][=VERSION])"),
            ));
        }
    }
    Ok(())
}

fn check_env(field: &str, env: &BTreeMap<String, String>) -> Result<(), RecipeError> {
    for (k, v) in env {
        if k.is_empty()
            || k.as_bytes()[0].is_ascii_digit()
            || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(invalid(
                field,
                format!("{k:?} is not a variable name (letters, digits, _)"),
            ));
        }
        if v.contains('\0') {
            return Err(invalid(field, format!("{k}: the value contains NUL")));
        }
    }
    Ok(())
}

/// An absolute path in the image without `.`/`..` components.
fn check_image_path(field: &str, p: &str) -> Result<(), RecipeError> {
    let path = Path::new(p);
    if !path.is_absolute()
        || p.contains('\0')
        || path
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        || p.split('/').any(|c| c == ".")
    {
        return Err(invalid(
            field,
            format!("{p:?}: expected an absolute path without . or .."),
        ));
    }
    Ok(())
}

/// A relative path inside the context directory (no `..`, not absolute).
/// Symlinks on the way are checked when the step runs.
fn check_context_path(p: &str) -> Result<(), String> {
    let path = Path::new(p);
    if p.is_empty() || p.contains('\0') {
        return Err(format!("{p:?}: empty or contains NUL"));
    }
    if path.is_absolute() {
        return Err(format!(
            "{p:?}: absolute; paths are relative to the context directory"
        ));
    }
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!("{p:?}: escapes the context directory (..)"));
    }
    Ok(())
}

/// A parsed `user`: numbers, or names to look up in the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserSpec {
    Ids(u32, Option<u32>),
    Names(String, Option<String>),
}

/// Parses `UID[:GID]` / `NAME[:GROUP]` (a mix of both is allowed).
pub fn parse_user(u: &str) -> Result<UserSpec, RecipeError> {
    let bad = || {
        invalid(
            "user",
            format!("{u:?}: expected UID[:GID] or NAME[:GROUP] (names: letters, digits, _ . -)"),
        )
    };
    let (user, group) = match u.split_once(':') {
        Some((a, b)) => (a, Some(b)),
        None => (u, None),
    };
    let is_name = |s: &str| {
        !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    };
    if !is_name(user) || group.is_some_and(|g| !is_name(g)) {
        return Err(bad());
    }
    match (user.parse::<u32>(), group.map(|g| g.parse::<u32>())) {
        (Ok(uid), None) => Ok(UserSpec::Ids(uid, None)),
        (Ok(uid), Some(Ok(gid))) => Ok(UserSpec::Ids(uid, Some(gid))),
        _ => Ok(UserSpec::Names(user.into(), group.map(String::from))),
    }
}

/// Names of the builtin recipes.
pub const BUILTINS: [&str; 5] = ["python", "gcc", "node", "java", "rust"];

/// A builtin recipe by name (`python`, `gcc`, `node`, `java`, `rust`).
pub fn builtin(name: &str) -> Option<Recipe> {
    let text = match name {
        "python" => include_str!("../../recipes/python.toml"),
        "gcc" => include_str!("../../recipes/gcc.toml"),
        "node" => include_str!("../../recipes/node.toml"),
        "java" => include_str!("../../recipes/java.toml"),
        "rust" => include_str!("../../recipes/rust.toml"),
        _ => return None,
    };
    // The builtins are parsed by a unit test, so this does not fail.
    Recipe::parse(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
name = "python"
base = "debian:bookworm"
packages = ["python3", "python3-pip"]
env = { PYTHONUNBUFFERED = "1" }
workdir = "/workspace"
user = "1000:1000"
cmd = ["python3"]

[[step]]
run = "pip install --break-system-packages requests"
network = "mirror"

[[step]]
copy = { from = "src/", to = "/app" }

[[step]]
run = ["/bin/busybox", "sh", "-c", "echo x"]
env = { A = "1" }
"#;

    #[test]
    fn the_documented_example_parses() {
        let r = Recipe::parse(EXAMPLE).unwrap();
        assert_eq!(r.image_name().unwrap().to_string(), "python:latest");
        assert_eq!(
            r.base().unwrap(),
            Base::Debian {
                suite: "bookworm".into(),
                mirror: DEFAULT_MIRROR.into()
            }
        );
        let kinds = r.step_kinds();
        assert_eq!(kinds.len(), 4);
        assert!(matches!(kinds[0], StepKind::Packages { .. }));
        match &kinds[1] {
            StepKind::Run { argv, network, .. } => {
                assert_eq!(argv[..2], ["/bin/sh", "-c"]);
                assert_eq!(*network, Network::Mirror);
            }
            k => panic!("{k:?}"),
        }
        assert_eq!(
            kinds[2],
            StepKind::Copy {
                from: "src/",
                to: "/app",
                owner: (0, 0)
            }
        );
        match &kinds[3] {
            StepKind::Run { argv, network, env } => {
                assert_eq!(argv[0], "/bin/busybox");
                assert_eq!(*network, Network::None);
                assert_eq!(env.get("A").map(String::as_str), Some("1"));
            }
            k => panic!("{k:?}"),
        }
        assert_eq!(r.env.get("PYTHONUNBUFFERED").map(String::as_str), Some("1"));
    }

    #[test]
    fn unknown_and_misplaced_keys_are_refused_by_name() {
        let e = Recipe::parse("name = \"a\"\nbase = \"scratch\"\ncolour = 1\n").unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        let e = Recipe::parse(
            "name = \"a\"\nbase = \"scratch\"\n[[step]]\ncopy = { from = \"a\", to = \"/a\", mode = 1 }\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("mode"), "{e}");
        // cmd written after a [[step]] lands in the step: say so.
        let e = Recipe::parse(
            "name = \"a\"\nbase = \"scratch\"\n[[step]]\ncopy = { from = \"a\", to = \"/a\" }\ncmd = [\"x\"]\n",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("step 1") && e.to_string().contains("`cmd`"),
            "{e}"
        );
        let e = Recipe::parse(
            "name = \"a\"\nbase = \"scratch\"\n[[step]]\ncopy = { from = \"a\", to = \"/a\" }\nenv = { A = \"1\" }\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("env"), "{e}");
    }

    #[test]
    fn bad_values_are_refused() {
        let cases = [
            ("name = \"A\"\nbase = \"scratch\"", "name"),
            ("name = \"a\"\nbase = \"debian:Bookworm\"", "base"),
            ("name = \"a\"\nbase = \"debian:bookworm\"\nmirror = \"ftp://x\"", "mirror"),
            ("name = \"a\"\nbase = \"scratch\"\nmirror = \"http://x\"", "mirror"),
            ("name = \"a\"\nbase = \"scratch\"\npackages = [\"python3\"]", "packages"),
            ("name = \"a\"\nbase = \"debian:bookworm\"\npackages = [\"a;rm -rf /\"]", "packages"),
            ("name = \"a\"\nbase = \"scratch\"\nworkdir = \"rel\"", "workdir"),
            ("name = \"a\"\nbase = \"scratch\"\nuser = \"a b\"", "user"),
            ("name = \"a\"\nbase = \"scratch\"\nenv = { \"A=B\" = \"1\" }", "env"),
            ("name = \"a\"\nbase = \"scratch\"\n[[step]]\nrun = \"\"", "step 1"),
            ("name = \"a\"\nbase = \"scratch\"\n[[step]]\nrun = \"x\"\ncopy = { from = \"a\", to = \"/a\" }", "step 1"),
            ("name = \"a\"\nbase = \"scratch\"\n[[step]]\ncopy = { from = \"../a\", to = \"/a\" }", "escapes"),
            ("name = \"a\"\nbase = \"scratch\"\n[[step]]\ncopy = { from = \"/etc\", to = \"/a\" }", "absolute"),
            ("name = \"a\"\nbase = \"scratch\"\n[[step]]\ncopy = { from = \"a\", to = \"/a/../b\" }", "copy.to"),
            ("name = \"a\"\nbase = \"scratch\"\n[[step]]\ncopy = { from = \"a\", to = \"/a\" }\nnetwork = \"mirror\"", "network"),
            ("name = \"a\"\nbase = \"scratch\"\n[[step]]\nrun = \"x\"\nnetwork = \"internet\"", "internet"),
        ];
        for (text, needle) in cases {
            let e = Recipe::parse(text).expect_err(text).to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn users_parse() {
        assert_eq!(parse_user("1000").unwrap(), UserSpec::Ids(1000, None));
        assert_eq!(parse_user("1:2").unwrap(), UserSpec::Ids(1, Some(2)));
        assert_eq!(
            parse_user("nobody:nogroup").unwrap(),
            UserSpec::Names("nobody".into(), Some("nogroup".into()))
        );
        assert!(parse_user("").is_err() && parse_user("a:").is_err());
    }

    #[test]
    fn builtins_parse_and_use_debian() {
        for name in BUILTINS {
            let r = builtin(name).unwrap_or_else(|| panic!("builtin {name} does not parse"));
            assert_eq!(r.image_name().unwrap().repository, name);
            assert!(matches!(r.base().unwrap(), Base::Debian { .. }), "{name}");
            assert!(!r.packages.is_empty(), "{name}");
        }
        assert!(builtin("cobol").is_none());
    }
}
