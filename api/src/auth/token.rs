//! Bearer tokens: the table a presented token is looked up in, and the file
//! that holds the operator token.
//!
//! Tokens are kept as SHA-256 digests. A lookup hashes the presented token
//! and compares that digest with every entry in constant time, without
//! stopping at a match, so the timing shows neither a token's length, nor
//! how many of its leading bytes were right, nor its place in the table.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rootfs_builder::atomic_write::{AtomicFile, Published, Replace};
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// The operator token's file, in the data dir.
pub const TOKEN_FILE: &str = "token";

/// Tokens shorter than this are refused (config and token file alike).
pub const MIN_TOKEN_LEN: usize = 16;
/// And longer than this: a token travels in a header.
const MAX_TOKEN_LEN: usize = 4096;

/// Who holds a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    /// The operator token: tenant `default` with a socket peer's rights.
    Operator,
    /// A configured tenant token (`[[tokens]]`).
    Tenant(String),
}

struct Entry {
    digest: [u8; 32],
    holder: Holder,
}

/// Every token the TCP listeners accept.
#[derive(Default)]
pub struct TokenTable {
    entries: Vec<Entry>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl TokenTable {
    pub fn add(&mut self, token: &str, holder: Holder) {
        self.entries.push(Entry {
            digest: digest(token),
            holder,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The holder of `presented`, if any. Every entry is compared.
    pub fn lookup(&self, presented: &str) -> Option<&Holder> {
        let wanted = digest(presented);
        // 1 + the index of the matching entry; 0 for none.
        let mut found: u64 = 0;
        for (i, e) in (1u64..).zip(&self.entries) {
            found.conditional_assign(&i, e.digest.ct_eq(&wanted));
        }
        let index = usize::try_from(found.checked_sub(1)?).ok()?;
        self.entries.get(index).map(|e| &e.holder)
    }
}

/// Whether `token` may be a token: printable ASCII without spaces (it
/// travels in a header), 16 to 4096 characters.
pub fn well_formed(token: &str) -> bool {
    (MIN_TOKEN_LEN..=MAX_TOKEN_LEN).contains(&token.len())
        && token.bytes().all(|b| b.is_ascii_graphic())
}

#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("operator token {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "operator token {}: must be a regular file owned by uid {uid} with mode 0600 \
         (it is found {found}); fix it or remove it to get a new token",
        path.display()
    )]
    Unprotected {
        path: PathBuf,
        uid: u32,
        found: String,
    },
    #[error(
        "operator token {}: must hold one token of 16 to 4096 printable characters \
         without spaces",
        path.display()
    )]
    Malformed { path: PathBuf },
    #[error("operator token: no random bytes from the kernel: {0}")]
    Random(getrandom::Error),
}

/// Reads the operator token from `path`, or makes one there (32 random
/// bytes as hex, mode 0600) when there is none. A file that others could
/// read or replace is refused, as ssh refuses such a key.
pub fn load_or_create(path: &Path) -> Result<String, TokenFileError> {
    match load(path) {
        Err(TokenFileError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            create(path)
        }
        other => other,
    }
}

fn load(path: &Path) -> Result<String, TokenFileError> {
    let io = |source| TokenFileError::Io {
        path: path.to_owned(),
        source,
    };
    // O_NOFOLLOW: a link planted in the data dir is not followed.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(io)?;
    let meta = f.metadata().map_err(io)?;
    let uid = nix::unistd::geteuid().as_raw();
    if !meta.is_file() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        return Err(TokenFileError::Unprotected {
            path: path.to_owned(),
            uid,
            found: format!(
                "{} owned by uid {} with mode {:04o}",
                if meta.is_file() {
                    "a file"
                } else {
                    "not a file"
                },
                meta.uid(),
                meta.mode() & 0o7777
            ),
        });
    }
    let mut text = String::new();
    f.take(MAX_TOKEN_LEN as u64 + 2)
        .read_to_string(&mut text)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => TokenFileError::Malformed {
                path: path.to_owned(),
            },
            _ => io(e),
        })?;
    let token = text.trim_end_matches(['\n', '\r']);
    if !well_formed(token) {
        return Err(TokenFileError::Malformed {
            path: path.to_owned(),
        });
    }
    Ok(token.to_owned())
}

/// Writes a new token to a temporary file (0600 from its creation), then
/// renames it into place without replacing: the token file appears whole
/// or not at all, and one made meanwhile by someone else is kept.
fn create(path: &Path) -> Result<String, TokenFileError> {
    let io = |source| TokenFileError::Io {
        path: path.to_owned(),
        source,
    };
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(TokenFileError::Random)?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = AtomicFile::create_in(dir, 0o600).map_err(io)?;
    tmp.file()
        .write_all(format!("{token}\n").as_bytes())
        .map_err(io)?;
    match tmp.publish(path, Replace::No).map_err(io)? {
        Published::Written => Ok(token),
        Published::Existed => load(path),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn lookup_finds_each_holder_and_nothing_else() {
        let mut t = TokenTable::default();
        t.add("operator-token-0123456789", Holder::Operator);
        t.add("tenant-a-token-0123456789", Holder::Tenant("a".into()));
        t.add("tenant-b-token-0123456789", Holder::Tenant("b".into()));
        assert_eq!(
            t.lookup("operator-token-0123456789"),
            Some(&Holder::Operator)
        );
        assert_eq!(
            t.lookup("tenant-b-token-0123456789"),
            Some(&Holder::Tenant("b".into()))
        );
        for wrong in [
            "",
            "tenant-b-token-012345678",
            "tenant-b-token-01234567890",
            "TENANT-B-TOKEN-0123456789",
        ] {
            assert_eq!(t.lookup(wrong), None, "{wrong:?}");
        }
        assert_eq!(TokenTable::default().lookup("anything-at-all-0"), None);
    }

    #[test]
    fn a_token_file_is_made_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TOKEN_FILE);
        let made = load_or_create(&path).unwrap();
        assert_eq!(made.len(), 64);
        assert!(made.bytes().all(|b| b.is_ascii_hexdigit()), "{made}");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());
        assert_eq!(load_or_create(&path).unwrap(), made, "kept across starts");
        assert!(!dir.path().join(".token.new").exists());
        // Another daemon's token is not ours.
        let other = tempfile::tempdir().unwrap();
        assert_ne!(
            load_or_create(&other.path().join(TOKEN_FILE)).unwrap(),
            made
        );
    }

    #[test]
    fn an_unprotected_or_odd_token_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TOKEN_FILE);
        load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = load_or_create(&path).unwrap_err();
        assert!(matches!(e, TokenFileError::Unprotected { .. }), "{e}");
        assert!(e.to_string().contains("0640"), "{e}");

        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &path).unwrap();
        let e = load_or_create(&path).unwrap_err();
        assert!(
            matches!(e, TokenFileError::Io { .. }),
            "a link is not followed: {e}"
        );
        assert!(!dir.path().join("elsewhere").exists());

        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "short\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = load_or_create(&path).unwrap_err();
        assert!(matches!(e, TokenFileError::Malformed { .. }), "{e}");
        // An operator's own token is taken as it is.
        std::fs::write(&path, "my own operator token\n").unwrap();
        assert!(matches!(
            load_or_create(&path).unwrap_err(),
            TokenFileError::Malformed { .. }
        ));
        std::fs::write(&path, "my-own-operator-token\n").unwrap();
        assert_eq!(load_or_create(&path).unwrap(), "my-own-operator-token");
    }
}
