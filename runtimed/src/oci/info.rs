//! `spec` and `features`: what a caller asks before it has a container.

use std::path::PathBuf;

use super::{io_err, OciError};

#[derive(clap::Args, Debug)]
pub struct SpecArgs {
    /// Where to write config.json.
    #[arg(long, short = 'b', default_value = ".")]
    pub bundle: PathBuf,
    /// A config for an unprivileged caller (a user namespace mapping it).
    #[arg(long)]
    pub rootless: bool,
}

/// `spec`: writes runc's default config.json into the bundle; refuses to
/// overwrite one.
pub fn spec(args: &SpecArgs) -> Result<i32, OciError> {
    let spec = if args.rootless {
        oci_spec::runtime::Spec::rootless(
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        )
    } else {
        oci_spec::runtime::Spec::default()
    };
    let path = args.bundle.join("config.json");
    let text = serde_json::to_string_pretty(&spec).map_err(|e| OciError::Sandbox(e.to_string()))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_err(format!("create {}", path.display())))?;
    use std::io::Write;
    f.write_all(text.as_bytes())
        .map_err(io_err(format!("write {}", path.display())))?;
    Ok(0)
}

/// `features`: runc's JSON of what this runtime supports.
pub fn features() -> Result<i32, OciError> {
    let v = features_json();
    let text = serde_json::to_string_pretty(&v).map_err(|e| OciError::Sandbox(e.to_string()))?;
    println!("{text}");
    Ok(0)
}

pub fn features_json() -> serde_json::Value {
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": super::state::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer",
                  "poststart", "poststop"],
        "mountOptions": ["ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec",
                         "bind", "rbind", "private", "rprivate", "slave", "rslave"],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": [],
            "cgroup": { "v1": true, "v2": true, "systemd": false, "systemdUser": false },
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL",
                            "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP"],
                "archs": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"]
            },
            "apparmor": { "enabled": false },
            "selinux": { "enabled": false }
        },
        "annotations": {
            "io.github.runtimed.uid-range": "a fresh host uid range per container by default"
        }
    })
}
