//! Runs a command under a seccomp profile, without any other isolation:
//! the quickest way to see what a runtime needs before changing the policy.
//!
//! `seccomp_exec judge python3 -c 'print(1)'`; under
//! `strace -f -e status=failed` the denied calls show up as EPERM
//! (allow-list), ENOSYS (clone3) or ENOTTY (judge ioctls).
#![forbid(unsafe_code)]

use std::ffi::CString;
use std::process::ExitCode;

use sandbox::seccomp::{compile, SeccompProfile};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [profile, command @ ..] = args.as_slice() else {
        eprintln!("usage: seccomp_exec <default|judge|unconfined> <program> [args...]");
        return ExitCode::from(2);
    };
    if command.is_empty() {
        eprintln!("usage: seccomp_exec <default|judge|unconfined> <program> [args...]");
        return ExitCode::from(2);
    }
    let argv: Result<Vec<CString>, _> = command.iter().map(|a| CString::new(a.as_str())).collect();
    let Ok(argv) = argv else {
        eprintln!("seccomp_exec: argument contains a NUL byte");
        return ExitCode::from(2);
    };
    let filter = match profile.parse::<SeccompProfile>().and_then(compile) {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("seccomp_exec: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(filter) = filter {
        if let Err(e) = filter.apply() {
            eprintln!("seccomp_exec: {e}");
            return ExitCode::from(1);
        }
    }
    let err = match nix::unistd::execvp(&argv[0], &argv) {
        Err(e) => e,
        Ok(never) => match never {},
    };
    eprintln!("seccomp_exec: exec {}: {err}", command[0]);
    ExitCode::from(127)
}
