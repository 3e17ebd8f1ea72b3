//! `runtimed serve`: the daemon. Embedded defaults, then the TOML file
//! (`--config`), then flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// TOML configuration file (keys as in docs/api.md; flags override it).
    #[arg(long, value_name = "FILE", env = "RUNTIMED_CONFIG")]
    config: Option<PathBuf>,
    /// State directory (SQLite database).
    #[arg(long, value_name = "DIR", env = "RUNTIMED_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Unix socket path.
    #[arg(long, value_name = "PATH", env = "RUNTIMED_SOCKET")]
    socket: Option<PathBuf>,
    /// TCP listener. Every request needs a bearer token: the operator
    /// token (DATA_DIR/token, made at first start) or a tenant's from the
    /// config; a non-loopback address needs tenant tokens.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// No TCP listener, only the Unix socket.
    #[arg(long, conflicts_with = "listen")]
    no_tcp: bool,
    /// Serve the terminal page at `/`.
    #[arg(long)]
    console: bool,
    /// npm node_modules holding @xterm/xterm and @xterm/addon-attach.
    #[arg(long, value_name = "DIR", env = "RUNTIMED_CONSOLE_ASSETS")]
    console_assets: Option<PathBuf>,
}

pub fn main(a: ServeArgs, single: &sandbox::SingleThreaded) -> i32 {
    let mut cfg = match &a.config {
        Some(path) => match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| toml::from_str::<api::config::Config>(&t).map_err(|e| e.to_string()))
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!(
                    "runtimed: config {}: {}",
                    path.display(),
                    e.lines().next().unwrap_or("invalid")
                );
                return 2;
            }
        },
        None => api::config::Config::default(),
    };
    if let Some(d) = a.data_dir {
        cfg.data_dir = d;
    }
    if let Some(s) = a.socket {
        cfg.socket = s;
    }
    if let Some(l) = a.listen {
        cfg.listen = Some(l);
    }
    if a.no_tcp {
        cfg.listen = None;
    }
    if a.console {
        cfg.console = true;
    }
    if let Some(d) = a.console_assets {
        cfg.console_assets = Some(d);
    }
    if cfg.console && cfg.console_assets.is_none() {
        // The repo's console/node_modules beside the binary's checkout.
        let guess = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../console/node_modules");
        cfg.console_assets = Some(guess);
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("runtimed: cannot find my own binary: {e}");
            return 1;
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUNTIMED_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    // The zygote is forked now, while this process has one thread (no
    // runtime yet): every session's helper is forked from it.
    let zygote = if nix::unistd::geteuid().is_root() {
        match api::engine::zygote::Zygote::start(api::serve::host_settings(&cfg), single) {
            Ok(z) => Some(z),
            Err(e) => {
                eprintln!("runtimed: cannot start the zygote: {e}");
                return 1;
            }
        }
    } else {
        None
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtimed: tokio runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(api::serve::serve(cfg, exe, zygote)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("runtimed: {e}");
            1
        }
    }
}
