//! What running an image means for a sandbox: the image config's env,
//! working directory, user and command as defaults (a request's own values
//! win), with user and group names resolved through the image's own
//! `/etc/passwd` and `/etc/group` (read from the unpacked layers, top layer
//! first, never following a symlink out of a layer).

use std::fs;
use std::path::{Path, PathBuf};

use crate::store::Image;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("image {image}: user {user:?}: {reason}")]
    User {
        image: String,
        user: String,
        reason: String,
    },
}

/// The image config's defaults for a process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunDefaults {
    /// `KEY=VALUE`, in the image's order.
    pub env: Vec<String>,
    pub cwd: Option<String>,
    /// Resolved numeric ids, when the image names a user.
    pub user: Option<(u32, u32)>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
}

impl RunDefaults {
    /// The argv of a run: the entrypoint followed by the caller's args, or
    /// by the image's cmd when the caller gave none.
    pub fn argv(&self, args: &[String]) -> Vec<String> {
        let mut out = self.entrypoint.clone();
        if args.is_empty() {
            out.extend(self.cmd.iter().cloned());
        } else {
            out.extend(args.iter().cloned());
        }
        out
    }
}

/// Defaults of `image`, whose unpacked layers (bottom first) are `layers`.
pub fn run_defaults(image: &Image, layers: &[PathBuf]) -> Result<RunDefaults, RuntimeError> {
    let mut d = RunDefaults::default();
    let Some(c) = image.config.config() else {
        return Ok(d);
    };
    d.env = c.env().clone().unwrap_or_default();
    d.cwd = c.working_dir().clone().filter(|w| !w.is_empty());
    d.entrypoint = c.entrypoint().clone().unwrap_or_default();
    d.cmd = c.cmd().clone().unwrap_or_default();
    if let Some(u) = c.user().as_deref().filter(|u| !u.is_empty()) {
        d.user = Some(resolve_user(&image.name.to_string(), u, layers)?);
    }
    Ok(d)
}

/// `uid`, `uid:gid`, `name`, `name:group` (names from the image's files).
pub fn resolve_user(
    image: &str,
    spec: &str,
    layers: &[PathBuf],
) -> Result<(u32, u32), RuntimeError> {
    let fail = |reason: String| RuntimeError::User {
        image: image.into(),
        user: spec.into(),
        reason,
    };
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = image_file(layers, "etc/passwd");
    let entry = |name: &str| -> Option<(u32, u32)> {
        passwd.as_deref()?.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && f[0] == name)
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                .flatten()
        })
    };
    let by_uid = |uid: u32| -> Option<u32> {
        passwd.as_deref()?.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && f[2].parse::<u32>().ok() == Some(uid))
                .then(|| f[3].parse().ok())
                .flatten()
        })
    };
    let (uid, primary) = match user.parse::<u32>() {
        Ok(uid) => (uid, by_uid(uid).unwrap_or(0)),
        Err(_) => {
            entry(user).ok_or_else(|| fail("no such user in the image's /etc/passwd".into()))?
        }
    };
    let gid = match group {
        None => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let groups = image_file(layers, "etc/group");
                groups
                    .as_deref()
                    .and_then(|text| {
                        text.lines().find_map(|l| {
                            let f: Vec<&str> = l.split(':').collect();
                            (f.len() >= 3 && f[0] == g)
                                .then(|| f[2].parse().ok())
                                .flatten()
                        })
                    })
                    .ok_or_else(|| fail(format!("no group {g:?} in the image's /etc/group")))?
            }
        },
    };
    Ok((uid, gid))
}

/// The contents of `rel` as the image's merged root shows it: the topmost
/// layer that has it as a regular file wins; a whiteout (a 0/0 character
/// device), an opaque parent, a symlink anywhere on the way or a missing
/// parent in a layer with an opaque directory ends the search.
fn image_file(layers: &[PathBuf], rel: &str) -> Option<String> {
    use std::os::unix::fs::FileTypeExt;
    for layer in layers.iter().rev() {
        let mut dir = layer.clone();
        let parts: Vec<&str> = rel.split('/').collect();
        let (last, parents) = parts.split_last()?;
        let mut hidden = false;
        let mut missing = false;
        for p in parents {
            dir.push(p);
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.is_dir() => {
                    if is_opaque(&dir) {
                        hidden = true;
                    }
                }
                Ok(m) if m.file_type().is_char_device() => return None,
                Ok(_) => return None,
                Err(_) => {
                    missing = true;
                    break;
                }
            }
        }
        if missing {
            continue;
        }
        let path = dir.join(last);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => return fs::read_to_string(&path).ok(),
            Ok(_) => return None,
            Err(_) if hidden => return None,
            Err(_) => continue,
        }
    }
    None
}

fn is_opaque(dir: &Path) -> bool {
    xattr::get(dir, "user.overlay.opaque")
        .ok()
        .flatten()
        .is_some_and(|v| v == b"y")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_resolve_through_the_top_layer_and_whiteouts_end_the_search() {
        let dir = tempfile::tempdir().unwrap();
        let l1 = dir.path().join("l1");
        let l2 = dir.path().join("l2");
        fs::create_dir_all(l1.join("etc")).unwrap();
        fs::create_dir_all(l2.join("etc")).unwrap();
        fs::write(
            l1.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1234:2345::/app:/bin/sh\n",
        )
        .unwrap();
        fs::write(l1.join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let layers = vec![l1.clone(), l2.clone()];
        assert_eq!(resolve_user("i", "app", &layers).unwrap(), (1234, 2345));
        assert_eq!(resolve_user("i", "app:staff", &layers).unwrap(), (1234, 50));
        assert_eq!(resolve_user("i", "1234", &layers).unwrap(), (1234, 2345));
        assert_eq!(resolve_user("i", "77:88", &layers).unwrap(), (77, 88));
        assert!(resolve_user("i", "nobody", &layers).is_err());
        assert!(resolve_user("i", "app:wheel", &layers).is_err());
        // A newer passwd in the top layer wins.
        fs::write(l2.join("etc/passwd"), "app:x:9:9::/:/bin/sh\n").unwrap();
        assert_eq!(resolve_user("i", "app", &layers).unwrap(), (9, 9));
        // A symlink is not followed (it could lead out of the layer).
        fs::remove_file(l2.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", l2.join("etc/passwd")).unwrap();
        assert!(resolve_user("i", "app", &layers).is_err());
        // A whiteout hides the lower file.
        fs::remove_file(l2.join("etc/passwd")).unwrap();
        let st = std::process::Command::new("mknod")
            .arg(l2.join("etc/passwd"))
            .args(["c", "0", "0"])
            .status()
            .unwrap();
        if st.success() {
            assert!(resolve_user("i", "app", &layers).is_err());
        }
    }

    #[test]
    fn argv_defaults() {
        let d = RunDefaults {
            env: vec!["PATH=/usr/bin".into(), "LANG=C".into()],
            entrypoint: vec!["/bin/tini".into(), "--".into()],
            cmd: vec!["python3".into()],
            ..Default::default()
        };
        assert_eq!(d.argv(&[]), ["/bin/tini", "--", "python3"]);
        assert_eq!(d.argv(&["sh".into()]), ["/bin/tini", "--", "sh"]);
    }
}
