//! Landlock support of the running kernel. The layer itself is one of
//! PID 1's program steps (`process::init`); this is what `doctor` asks.

/// The Landlock ABI version (0 when the kernel has no Landlock or it is
/// off).
pub fn abi() -> i32 {
    crate::sys::landlock_abi()
}
