//! The daemon's configuration: embedded defaults, an optional TOML file,
//! then command-line flags (applied by the binary).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// A bearer token and the tenant it acts for.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub token: String,
    pub tenant: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub data_dir: PathBuf,
    pub socket: PathBuf,
    /// TCP listener; `None` turns it off.
    pub listen: Option<SocketAddr>,
    /// A TCP listener serving only the Judge0-compatible API, at its root
    /// (docs/judge0.md); off by default. Like `listen`, not loopback needs
    /// tokens.
    pub judge0_listen: Option<SocketAddr>,
    /// Besides root (and the daemon's own uid), members of this group may
    /// use the Unix socket.
    pub socket_group: Option<String>,
    /// Tenant tokens: a TCP client presenting one (`Authorization:
    /// Bearer`) acts as its tenant. A listener that is not loopback needs
    /// at least one.
    pub tokens: Vec<TokenConfig>,
    /// The operator token: with a TCP listener on, `<data_dir>/token`
    /// (made at first start, mode 0600) is accepted as tenant `default`
    /// with the rights of a socket peer. Off: TCP takes only `tokens`.
    pub operator_token: bool,
    /// Names a TCP request's `Host` may carry besides the listener's own
    /// address, and `localhost` on loopback (e.g. a reverse proxy's name).
    pub allowed_hosts: Vec<String>,
    /// Browser origins (`scheme://host[:port]`) allowed besides the
    /// listener's own.
    pub allowed_origins: Vec<String>,
    /// Sessions in all and per tenant.
    pub max_sessions: usize,
    pub max_sessions_per_tenant: usize,
    /// Default and largest limits of a session.
    pub default_memory: u64,
    pub max_memory: u64,
    pub default_pids: u64,
    pub max_pids: u64,
    pub default_disk: u64,
    pub max_disk: u64,
    pub max_cpus: f64,
    /// TTL when a request names none, and the largest allowed.
    pub default_ttl_seconds: u64,
    pub max_ttl_seconds: u64,
    /// A detached PTY's process is ended after this long without input.
    pub pty_idle_timeout_seconds: u64,
    /// Exec: default timeout and output cap.
    pub exec_timeout_ms: u64,
    pub exec_output_limit: u64,
    /// Largest request body (JSON, file uploads).
    pub max_body_bytes: usize,
    // What clients can make the daemon hold (docs/limits.md, "The
    // daemon's memory").
    /// Captured exec and `/v1/run` output kept at once, in all (bytes).
    pub exec_output_budget: u64,
    /// The same, per tenant (at most `exec_output_budget`).
    pub exec_output_budget_per_tenant: u64,
    /// Terminals a session may have (running, or ended and not yet
    /// forgotten).
    pub max_ptys_per_session: usize,
    /// Largest WebSocket message (and frame) a terminal client may send.
    pub ws_max_message_bytes: usize,
    /// Largest image archive `POST /v1/images/import` takes (bytes).
    pub max_image_bytes: u64,
    /// uid pool: base, slot count.
    pub uid_pool_base: u32,
    pub uid_pool_slots: u32,
    pub landlock: bool,
    /// Serve the terminal page at `/`.
    pub console: bool,
    /// Directory holding `@xterm/xterm`, `@xterm/addon-attach` and
    /// `@xterm/addon-fit` (an npm `node_modules`: `npm ci` in console/).
    pub console_assets: Option<PathBuf>,
    /// Judge: sandboxes running at once for all submissions (default: the
    /// number of CPUs).
    pub judge_slots: Option<usize>,
    /// Judge: submissions waiting beyond which new ones get 429.
    pub judge_queue_max: usize,
    /// Judge: a TOML file of languages added to (or replacing by name)
    /// the shipped table.
    pub judge_languages: Option<PathBuf>,
    // Judge resources (docs/judges.md, "Resources"): one block, kept apart
    // from the other engineers' keys.
    /// Judge: submissions one tenant may have waiting; beyond it that
    /// tenant gets 429 `tenant_queue_full` while others are still taken.
    /// Default: a quarter of `judge_queue_max` (at least 1).
    pub judge_queue_max_per_tenant: Option<usize>,
    /// Judge: bytes on disk of the compile cache (least recently used out;
    /// a larger artifact is not cached). Default 1 GiB.
    pub judge_compile_cache_bytes: u64,
    /// Judge: a finished submission is deleted this long after it
    /// finished (0: never by age). Default 7 days.
    pub judge_retention_seconds: u64,
    /// Judge: finished submissions kept per tenant, the most recently
    /// finished (0: no limit). Default 10000.
    pub judge_retention_per_tenant: usize,
    // Request bodies and connections (docs/limits.md, "The daemon's
    // memory"): one block.
    /// Request bodies read or being handled at once, in all (bytes); a
    /// body reserves its length (`max_body_bytes` when chunked) before it
    /// is read, or gets 503 `body_budget_exhausted`. Default: 16 x
    /// `max_body_bytes` (256 MiB).
    pub request_body_budget: Option<u64>,
    /// The same, per tenant (at least `max_body_bytes`, at most
    /// `request_body_budget`). Default: 4 x `max_body_bytes` (64 MiB).
    pub request_body_budget_per_tenant: Option<u64>,
    /// A request body must have arrived whole this long after the daemon
    /// started reading it, or 408 `body_timeout`.
    pub request_body_timeout_seconds: u64,
    /// A request's headers must have arrived whole this long after the
    /// connection became ready for them (opened, or done with the
    /// previous request: so also how long an idle connection is kept),
    /// or the connection is closed.
    pub header_read_timeout_seconds: u64,
    /// Connections open at once on each listener, WebSockets included;
    /// more wait in the kernel's listen queue until one closes.
    pub max_connections: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            data_dir: PathBuf::from("/var/lib/runtimed"),
            socket: PathBuf::from("/run/runtimed/runtimed.sock"),
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 7070))),
            judge0_listen: None,
            socket_group: None,
            tokens: Vec::new(),
            operator_token: true,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            max_sessions: 1000,
            max_sessions_per_tenant: 200,
            default_memory: 512 << 20,
            max_memory: 16 << 30,
            default_pids: 256,
            max_pids: 16384,
            default_disk: 256 << 20,
            max_disk: 8 << 30,
            max_cpus: 64.0,
            default_ttl_seconds: 3600,
            max_ttl_seconds: 7 * 24 * 3600,
            pty_idle_timeout_seconds: 900,
            exec_timeout_ms: 60_000,
            exec_output_limit: 4 << 20,
            max_body_bytes: 16 << 20,
            exec_output_budget: 1 << 30,
            exec_output_budget_per_tenant: 512 << 20,
            max_ptys_per_session: 8,
            ws_max_message_bytes: 1 << 20,
            max_image_bytes: 8 << 30,
            uid_pool_base: sandbox::options::defaults::UID_POOL_BASE,
            uid_pool_slots: sandbox::options::defaults::UID_POOL_SLOTS,
            landlock: true,
            console: false,
            console_assets: None,
            judge_slots: None,
            judge_queue_max: 1000,
            judge_languages: None,
            judge_queue_max_per_tenant: None,
            judge_compile_cache_bytes: 1 << 30,
            judge_retention_seconds: 7 * 24 * 3600,
            judge_retention_per_tenant: 10_000,
            request_body_budget: None,
            request_body_budget_per_tenant: None,
            request_body_timeout_seconds: 60,
            header_read_timeout_seconds: 30,
            max_connections: 1024,
        }
    }
}

impl Config {
    /// `judge_queue_max_per_tenant` in effect.
    pub fn judge_tenant_share(&self) -> usize {
        self.judge_queue_max_per_tenant
            .unwrap_or(self.judge_queue_max / 4)
            .clamp(1, self.judge_queue_max.max(1))
    }

    /// Checks the combination before anything listens.
    pub fn validate(&self) -> Result<(), String> {
        for addr in self.listen.iter().chain(&self.judge0_listen) {
            if !addr.ip().is_loopback() && self.tokens.is_empty() {
                return Err(format!(
                    "listening on {addr} (not loopback) needs tokens in the config file"
                ));
            }
            if !self.operator_token && self.tokens.is_empty() {
                return Err(format!(
                    "listening on {addr} needs a token: operator_token = true or [[tokens]]"
                ));
            }
        }
        for h in &self.allowed_hosts {
            crate::auth::origin::check_allowed_host(h)?;
        }
        for o in &self.allowed_origins {
            crate::auth::origin::check_allowed_origin(o)?;
        }
        for t in &self.tokens {
            if t.token.len() < 16 {
                return Err(format!(
                    "token of tenant {:?} is shorter than 16 characters",
                    t.tenant
                ));
            }
            if !t.token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!(
                    "token of tenant {:?} must be printable ASCII without spaces",
                    t.tenant
                ));
            }
            if t.tenant.is_empty() {
                return Err("a token has an empty tenant".into());
            }
        }
        if self.judge_slots == Some(0) || self.judge_queue_max == 0 {
            return Err("judge_slots and judge_queue_max must be positive".into());
        }
        if self.judge_queue_max_per_tenant == Some(0) {
            return Err("judge_queue_max_per_tenant must be positive".into());
        }
        if self.max_sessions == 0 || self.max_sessions_per_tenant == 0 {
            return Err("max_sessions and max_sessions_per_tenant must be positive".into());
        }
        self.validate_memory_bounds()?;
        self.validate_request_limits()?;
        Ok(())
    }
}

impl Config {
    /// The largest `output_limit` one exec may ask for: both of its streams
    /// must fit in a tenant's share of the capture budget.
    pub fn max_exec_output_limit(&self) -> u64 {
        let share = self
            .exec_output_budget_per_tenant
            .min(self.exec_output_budget);
        (share / 2).min(64 << 20)
    }

    fn validate_memory_bounds(&self) -> Result<(), String> {
        if self.exec_output_budget == 0 || self.exec_output_budget_per_tenant == 0 {
            return Err(
                "exec_output_budget and exec_output_budget_per_tenant must be positive".into(),
            );
        }
        if self.exec_output_limit == 0 || self.exec_output_limit > self.max_exec_output_limit() {
            return Err(format!(
                "exec_output_limit must be 1..{} (half a tenant's share of exec_output_budget, at most 64M)",
                self.max_exec_output_limit()
            ));
        }
        if self.max_ptys_per_session == 0 {
            return Err("max_ptys_per_session must be positive".into());
        }
        if !(1024..=64 << 20).contains(&self.ws_max_message_bytes) {
            return Err("ws_max_message_bytes must be 1K..64M".into());
        }
        Ok(())
    }
}

impl Config {
    /// The request body budget in effect: (in all, per tenant).
    pub fn request_body_budget(&self) -> (u64, u64) {
        let max_body = self.max_body_bytes as u64;
        let total = self
            .request_body_budget
            .unwrap_or(max_body.saturating_mul(16));
        let share = self
            .request_body_budget_per_tenant
            .unwrap_or(max_body.saturating_mul(4))
            .min(total);
        (total, share)
    }

    /// The request body budget, its timeouts and the connection cap.
    fn validate_request_limits(&self) -> Result<(), String> {
        let max_body = self.max_body_bytes as u64;
        if !(1024..=1 << 30).contains(&max_body) {
            return Err("max_body_bytes must be 1K..1G".into());
        }
        let (total, share) = self.request_body_budget();
        let asked_share = self.request_body_budget_per_tenant.unwrap_or(share);
        if share < max_body || asked_share > total {
            return Err(format!(
                "request bodies: need max_body_bytes ({max_body}) <= \
                 request_body_budget_per_tenant ({asked_share}) <= request_body_budget ({total}), \
                 or a largest body could never be taken"
            ));
        }
        for (key, v) in [
            (
                "request_body_timeout_seconds",
                self.request_body_timeout_seconds,
            ),
            (
                "header_read_timeout_seconds",
                self.header_read_timeout_seconds,
            ),
        ] {
            if !(1..=3600).contains(&v) {
                return Err(format!("{key} must be 1..3600"));
            }
        }
        if !(1..=1 << 20).contains(&self.max_connections) {
            return Err("max_connections must be 1..1048576".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_budget_follows_max_body_bytes_unless_set() {
        let cfg = Config::default();
        assert_eq!(cfg.request_body_budget(), (256 << 20, 64 << 20));
        assert!(cfg.validate().is_ok());
        // A larger body cap takes its budget along.
        let cfg = Config {
            max_body_bytes: 192 << 20,
            ..Config::default()
        };
        assert_eq!(cfg.request_body_budget(), (3 << 30, 768 << 20));
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn body_budgets_and_timeouts_are_checked() {
        let bad = [
            // A share that cannot take the largest body.
            Config {
                request_body_budget_per_tenant: Some((16 << 20) - 1),
                ..Config::default()
            },
            // A share above the total.
            Config {
                request_body_budget: Some(32 << 20),
                request_body_budget_per_tenant: Some(64 << 20),
                ..Config::default()
            },
            Config {
                request_body_timeout_seconds: 0,
                ..Config::default()
            },
            Config {
                header_read_timeout_seconds: 3601,
                ..Config::default()
            },
            Config {
                max_connections: 0,
                ..Config::default()
            },
            Config {
                max_body_bytes: 100,
                ..Config::default()
            },
        ];
        for cfg in bad {
            assert!(cfg.validate().is_err(), "{cfg:?}");
        }
        let ok = Config {
            request_body_budget: Some(16 << 20),
            request_body_budget_per_tenant: Some(16 << 20),
            ..Config::default()
        };
        assert_eq!(ok.request_body_budget(), (16 << 20, 16 << 20));
        assert!(ok.validate().is_ok());
    }
}
