//! Sandbox ids: the name of a sandbox's cgroup, lock file and log span.
//! Kept apart from process creation because the daemon names its sessions,
//! submissions and judge runs with the same generator before any sandbox
//! exists.

/// A short random id (12 hex digits) for sandboxes the caller did not name.
/// Collisions are harmless (the lock file of a live sandbox refuses a
/// second one of the same id) but should be rare: 48 bits from
/// `/dev/urandom`, mixed with the clock should that be unreadable.
pub fn generate() -> String {
    let mut buf = [0u8; 6];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut buf);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    buf[0] ^= t as u8;
    buf[1] ^= (t >> 8) as u8;
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A caller's id must be usable as one path component and one cgroup
/// name: 1-64 of `[A-Za-z0-9_-]` (no `.`, `..` nor `/`).
pub fn check(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!("sandbox id {id:?}: use 1-64 of [A-Za-z0-9_-]"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_pass_the_check_and_differ() {
        let (a, b) = (generate(), generate());
        assert_eq!(a.len(), 12);
        assert_eq!(check(&a), Ok(()));
        assert_ne!(a, b);
    }

    #[test]
    fn ids_that_could_leave_their_directory_are_refused() {
        for bad in ["", ".", "..", "a/b", "../x", "a b", &"x".repeat(65)] {
            assert!(check(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(check(&"x".repeat(64)), Ok(()));
    }
}
