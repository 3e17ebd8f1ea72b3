//! Measures an engine's config.json against the sandbox: which field (if
//! any) the sandbox refuses, the size of our seccomp program for its
//! `linux.seccomp`, and, given runc's program for the same profile, whether
//! both decide every native call alike.
//!
//! ```text
//! cargo run -p sandbox --example oci_seccomp -- CONFIG_JSON [RUNC_BPF]
//! ```
//! CONFIG_JSON: a bundle's config.json written by dockerd or containerd
//! (find it under the engine's exec root while a container runs). RUNC_BPF:
//! the raw `sock_filter`s of a runc container's process, read with
//! `ptrace(PTRACE_SECCOMP_GET_FILTER)`. Exit status 1 when the sandbox
//! refuses the config or the programs disagree. The fields the OCI runtime
//! layer owns (hooks, cgroupsPath, the root, the user and cgroup
//! namespaces it adds) are set aside first.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use oci_spec::runtime::{LinuxNamespaceBuilder, LinuxNamespaceType, Spec};
use sandbox::seccomp::oci::{compile_program, run_program};
use seccompiler::sock_filter;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(config) = args.first() else {
        eprintln!("usage: oci_seccomp CONFIG_JSON [RUNC_BPF]");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("oci_seccomp: {config}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut spec: Spec = match serde_json::from_str(&text) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("oci_seccomp: {config}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut ok = true;
    let profile = spec.linux().as_ref().and_then(|l| l.seccomp().clone());
    spec.set_hooks(None);
    spec.set_root(None);
    if let Some(linux) = spec.linux_mut() {
        linux.set_cgroups_path(None);
        let mut ns = linux.namespaces().clone().unwrap_or_default();
        for t in [LinuxNamespaceType::User, LinuxNamespaceType::Cgroup] {
            if !ns.iter().any(|n| n.typ() == t) {
                if let Ok(n) = LinuxNamespaceBuilder::default().typ(t).build() {
                    ns.push(n);
                }
            }
        }
        linux.set_namespaces(Some(ns));
    }
    match sandbox::spec::plan(&spec, &sandbox::RunOptions::default()) {
        Ok(_) => println!("config: accepted"),
        Err(e) => {
            println!("config: refused: {e}");
            ok = false;
        }
    }
    let Some(profile) = profile else {
        println!("seccomp: none in the config");
        return if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    };
    let ours = match compile_program(&profile) {
        Ok(p) => p,
        Err(e) => {
            println!("seccomp: refused: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("seccomp: ours {} instructions", ours.len());
    if let Some(path) = args.get(1) {
        let raw = match std::fs::read(path) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("oci_seccomp: {path}: {e}");
                return ExitCode::from(2);
            }
        };
        let runc: Vec<sock_filter> = raw
            .chunks_exact(8)
            .map(|c| sock_filter {
                code: u16::from_le_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        println!("seccomp: runc {} instructions", runc.len());
        // Native x86_64 numbers with a few argument shapes: zeros, fork,
        // CLONE_NEWUSER, allowed and refused personalities, all set.
        const X86_64: u32 = 0xc000_003e;
        let arg_sets: [[u64; 6]; 6] = [
            [0; 6],
            [libc::SIGCHLD as u64, 0, 0, 0, 0, 0],
            [libc::CLONE_NEWUSER as u64 | 0x11, 0, 0, 0, 0, 0],
            [8, 0, 0, 0, 0, 0],
            [0x0040_0000, 0, 0, 0, 0, 0],
            [0xffff_ffff, 1, 2, 3, 4, 5],
        ];
        let mut differ = 0;
        for nr in 0..=470u32 {
            for a in arg_sets {
                let (r, o) = (
                    run_program(&runc, X86_64, nr, a),
                    run_program(&ours, X86_64, nr, a),
                );
                if r != o {
                    differ += 1;
                    println!("differ: nr {nr} arg0 {:#x}: runc {r:x?}, ours {o:x?}", a[0]);
                }
            }
        }
        println!(
            "seccomp: {differ} of {} decisions differ",
            471 * arg_sets.len()
        );
        ok &= differ == 0;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
