//! `runtimed`: the binary. Thin wiring: parse the command line, dispatch.
//! Helper modes that must stay single-threaded (`run`, `sandbox-host` and
//! `image-builder`, which clone sandboxes in-process) are dispatched before any runtime or
//! thread exists; `serve` builds its tokio runtime itself.
#![forbid(unsafe_code)]

mod cli;
mod doctor;
mod oci;

use clap::{Parser, Subcommand};

/// Exit status for failures of runtimed itself (bad usage, a setup step).
pub const EXIT_RUNTIME_FAILURE: i32 = 125;

const CLIENT_EXIT_STATUS: &str = "Exit status: 0 on success; 1 when the daemon refused \
(its code and message on stderr, e.g. session_not_found); 125 when the client failed \
(bad usage, the socket, local files). Errors are one line on stderr.";

const EXEC_EXIT_STATUS: &str = "Exit status: the program's exit code; 128+N when a signal N \
ended it (limits kill with SIGKILL: 137); 126 when it cannot be executed; 127 when it was not \
found; 1 when the daemon refused the request; 125 when the client failed. Durations: 500ms, \
2s, 1m. Sizes: 64K, 256M.";

const SHELL_EXIT_STATUS: &str = "Exit status: the program's exit code (128+N for a signal); \
0 after detaching (Ctrl-P Ctrl-Q); 1 when the daemon refused; 125 when the client failed.";

#[derive(Parser, Debug)]
#[command(
    name = "runtimed",
    version,
    about = "Sandbox runtime: isolated runs with enforced limits and exact accounting"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a command in a fresh sandbox and report how it ended.
    #[command(
        after_help = "Exit status: the program's exit code; 128+N when a signal N ended it \
(limits kill with SIGKILL: 137); 125 when runtimed itself failed (bad usage or a setup step, \
one line on stderr); 126 when the program cannot be executed; 127 when it was not found.\n\
Sizes: 4096, 64K, 256M, 1G. Durations: 500ms, 2s, 1.5s, 1m. Defaults: docs/limits.md."
    )]
    Run(Box<cli::run::RunArgs>),
    /// Images: list, build from recipes, import, pull, remove, export, gc.
    Image(cli::image::ImageArgs),
    /// Check whether this host can isolate sandboxes, with a fix for each problem.
    Doctor(doctor::DoctorArgs),
    /// Run the daemon: the HTTP/WebSocket API on a Unix socket and a loopback port.
    Serve(cli::serve::ServeArgs),
    /// Create, list, inspect and remove sessions of a running daemon.
    #[command(after_help = CLIENT_EXIT_STATUS)]
    Session(cli::client::SessionArgs),
    /// Run a command in a session, its output streamed, its exit status ours.
    #[command(after_help = EXEC_EXIT_STATUS)]
    Exec(Box<cli::client::ExecArgs>),
    /// An interactive terminal in a session (default: a login shell).
    #[command(after_help = SHELL_EXIT_STATUS)]
    Shell(cli::client::ShellArgs),
    /// Copy files and directories between the host and a session (ID:PATH).
    #[command(after_help = CLIENT_EXIT_STATUS)]
    Cp(cli::client::CpArgs),
    /// (internal) The single-threaded helper that holds one session's sandbox.
    #[command(hide = true)]
    SandboxHost,
    /// (internal) The single-threaded helper that runs one image build for the daemon.
    #[command(hide = true)]
    ImageBuilder,
}

fn main() {
    // The OCI runtime's command line is runc's, not ours: dispatched here,
    // before any thread, by argv[0] (`runtimed-runc`) or `runtimed oci`.
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    let rest: Vec<std::ffi::OsString> = args.collect();
    if oci::invoked_as_runtime(&argv0) || rest.first().is_some_and(|a| a == "oci") {
        let name = std::path::Path::new(&argv0)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("runtimed")
            .to_string();
        let oci_args = if oci::invoked_as_runtime(&argv0) {
            rest
        } else {
            rest.into_iter().skip(1).collect()
        };
        let code = single_threaded(|s| oci::main(&name, oci_args, s));
        std::process::exit(code);
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    std::process::exit(
                        if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                            2
                        } else {
                            0
                        },
                    );
                }
                _ => {
                    // One line: clap's first line without its "error: " prefix.
                    let text = e.to_string();
                    let first = text.lines().next().unwrap_or("invalid arguments");
                    let first = first.strip_prefix("error: ").unwrap_or(first);
                    eprintln!("runtimed: {first} (see runtimed --help)");
                    std::process::exit(EXIT_RUNTIME_FAILURE);
                }
            }
        }
    };
    // The modes that fork sandboxes or helpers get the proof that this
    // process is single-threaded, taken here before any of them can start
    // a runtime or a thread (sandbox::helper).
    let code = match cli.command {
        Command::Run(args) => single_threaded(|s| cli::run::main(*args, s)),
        Command::Image(args) => single_threaded(|s| cli::image::main(args, s)),
        Command::Doctor(args) => single_threaded(|s| doctor::main(args, s)),
        Command::Serve(args) => single_threaded(|s| cli::serve::main(args, s)),
        Command::Session(args) => cli::client::session::main(args),
        Command::Exec(args) => cli::client::exec::main(*args),
        Command::Shell(args) => cli::client::shell::main(args),
        Command::Cp(args) => cli::client::cp::main(args),
        Command::SandboxHost => single_threaded(api::engine::host::main),
        Command::ImageBuilder => single_threaded(api::engine::build::main),
    };
    std::process::exit(code);
}

/// Runs `mode` with the proof that this process is single-threaded, or
/// says in one line why there is none.
fn single_threaded(mode: impl FnOnce(&sandbox::SingleThreaded) -> i32) -> i32 {
    match sandbox::SingleThreaded::check() {
        Ok(single) => mode(&single),
        Err(e) => {
            eprintln!("runtimed: {e}");
            EXIT_RUNTIME_FAILURE
        }
    }
}
