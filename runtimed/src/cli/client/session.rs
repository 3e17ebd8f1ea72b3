//! `runtimed session create|ls|inspect|ptys|rm`: sessions of the daemon as
//! a table for people and the API's own JSON (`--json`) for scripts.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, SystemTime};

use api::types::{CreateSession, LimitsRequest, PtyList, SessionInfo, SessionList, SizeValue};
use clap::{Args, Subcommand};
use hyper::Method;
use sandbox::spec::size::{parse_duration, parse_size};

use super::http::{HttpError, Payload};
use super::{encode_url, key_value_arg, output_error, session_path, ClientError, ConnectArgs};

#[derive(Args, Debug)]
pub struct SessionArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    #[command(subcommand)]
    command: SessionCommand,
}

#[derive(Subcommand, Debug)]
enum SessionCommand {
    /// Create a session; prints its id.
    Create(CreateArgs),
    /// List sessions.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// One session with live usage, as JSON.
    Inspect(InspectArgs),
    /// The terminals of a session (to reattach: `runtimed shell --attach`).
    Ptys(PtysArgs),
    /// End sessions: kill everything in them and remove them.
    #[command(alias = "remove", alias = "delete")]
    Rm(RmArgs),
}

fn size_arg(s: &str) -> Result<u64, String> {
    parse_size(s)
}

fn cpus_arg(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("invalid CPU count {s:?} (expected e.g. 0.5, 1, 2)")),
    }
}

/// Whole seconds, written `3600`, `90s`, `30m` or `2h`.
fn seconds_arg(s: &str) -> Result<u64, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(1) {
        return Err(format!("{s:?}: at least one second"));
    }
    Ok(d.as_secs())
}

#[derive(Args, Debug)]
struct CreateArgs {
    /// Root filesystem image (default: the daemon's, `host`).
    #[arg(long, value_name = "NAME")]
    image: Option<String>,
    /// Memory of the whole session (swap off), e.g. 256M.
    #[arg(long, value_parser = size_arg, value_name = "SIZE")]
    memory: Option<u64>,
    /// Most tasks (processes and threads).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pids: Option<u64>,
    /// CPU quota in CPUs, e.g. 0.5.
    #[arg(long, value_parser = cpus_arg, value_name = "FLOAT")]
    cpus: Option<f64>,
    /// Size of the writable /workspace (and /tmp), e.g. 1G.
    #[arg(long, value_parser = size_arg, value_name = "SIZE")]
    disk: Option<u64>,
    /// Lifetime: the session is removed when it runs out (seconds, or 30m, 2h).
    #[arg(long, value_parser = seconds_arg, value_name = "SECS")]
    ttl: Option<u64>,
    /// Removed after this long without exec, terminal input or file access.
    #[arg(long, value_parser = seconds_arg, value_name = "SECS")]
    idle_timeout: Option<u64>,
    /// Environment of every process in the session (repeatable).
    #[arg(long = "env", short = 'e', value_parser = key_value_arg, value_name = "K=V")]
    env: Vec<(String, String)>,
    /// A label, for `session ls --label` (repeatable).
    #[arg(long = "label", short = 'l', value_parser = key_value_arg, value_name = "K=V")]
    labels: Vec<(String, String)>,
    /// Print the whole session as JSON instead of its id.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct LsArgs {
    /// Only sessions with this label (repeatable: all must match).
    #[arg(long = "label", short = 'l', value_parser = key_value_arg, value_name = "K=V")]
    labels: Vec<(String, String)>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Print only the ids.
    #[arg(long, short = 'q', conflicts_with = "json")]
    quiet: bool,
}

#[derive(Args, Debug)]
struct InspectArgs {
    /// Session id.
    id: String,
}

#[derive(Args, Debug)]
struct PtysArgs {
    /// Session id.
    id: String,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct RmArgs {
    /// Session ids.
    #[arg(required = true, value_name = "ID")]
    ids: Vec<String>,
}

pub fn main(args: SessionArgs) -> i32 {
    super::run(async move {
        match args.command {
            SessionCommand::Create(a) => create(&args.conn, a).await,
            SessionCommand::Ls(a) => ls(&args.conn, a).await,
            SessionCommand::Inspect(a) => inspect(&args.conn, a).await,
            SessionCommand::Ptys(a) => ptys(&args.conn, a).await,
            SessionCommand::Rm(a) => rm(&args.conn, a).await,
        }
    })
}

/// The one conversion from `session create` flags to the API's request.
fn create_request(a: CreateArgs) -> CreateSession {
    let limits = LimitsRequest {
        memory: a.memory.map(SizeValue::Bytes),
        pids: a.pids,
        cpus: a.cpus,
        disk: a.disk.map(SizeValue::Bytes),
        cpu_time: None,
    };
    let any_limit = limits.memory.is_some()
        || limits.pids.is_some()
        || limits.cpus.is_some()
        || limits.disk.is_some();
    CreateSession {
        image: a.image,
        limits: any_limit.then_some(limits),
        ttl_seconds: a.ttl,
        idle_timeout_seconds: a.idle_timeout,
        env: a.env.into_iter().collect(),
        labels: a.labels.into_iter().collect(),
    }
}

fn print(text: &str) -> Result<(), ClientError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(output_error("stdout"))
}

fn pretty(v: &impl serde::Serialize) -> Result<String, ClientError> {
    serde_json::to_string_pretty(v)
        .map(|s| s + "\n")
        .map_err(|source| HttpError::Encode { source }.into())
}

async fn create(conn: &ConnectArgs, a: CreateArgs) -> Result<i32, ClientError> {
    let json = a.json;
    let body = Payload::json(&create_request(a))?;
    let info: SessionInfo = conn
        .client()
        .json(Method::POST, "/v1/sessions", Some(body))
        .await?;
    print(&if json {
        pretty(&info)?
    } else {
        format!("{}\n", info.id)
    })?;
    Ok(0)
}

async fn ls(conn: &ConnectArgs, a: LsArgs) -> Result<i32, ClientError> {
    let query: Vec<String> = a
        .labels
        .iter()
        .map(|(k, v)| format!("label={}", encode_url(&format!("{k}={v}"), false)))
        .collect();
    let path = match query.is_empty() {
        true => "/v1/sessions".to_string(),
        false => format!("/v1/sessions?{}", query.join("&")),
    };
    let mut list: SessionList = conn.client().json(Method::GET, &path, None).await?;
    list.sessions
        .sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
    let text = if a.json {
        pretty(&list)?
    } else if a.quiet {
        list.sessions
            .iter()
            .map(|s| format!("{}\n", s.id))
            .collect()
    } else {
        session_table(&list.sessions, SystemTime::now())
    };
    print(&text)?;
    Ok(0)
}

async fn inspect(conn: &ConnectArgs, a: InspectArgs) -> Result<i32, ClientError> {
    let info: serde_json::Value = conn
        .client()
        .json(Method::GET, &session_path(&a.id), None)
        .await?;
    print(&pretty(&info)?)?;
    Ok(0)
}

async fn ptys(conn: &ConnectArgs, a: PtysArgs) -> Result<i32, ClientError> {
    let path = format!("{}/ptys", session_path(&a.id));
    let list: PtyList = conn.client().json(Method::GET, &path, None).await?;
    let text = if a.json {
        pretty(&list)?
    } else {
        let now = SystemTime::now();
        let rows = list.ptys.iter().map(|p| {
            vec![
                p.id.clone(),
                match p.exit_code {
                    Some(c) => format!("exited ({c})"),
                    None => "running".into(),
                },
                p.attached.to_string(),
                format!("{}x{}", p.cols, p.rows),
                ago(&p.created_at, now),
                p.argv.join(" "),
            ]
        });
        table(
            &["ID", "STATE", "ATTACHED", "SIZE", "CREATED", "COMMAND"],
            rows,
        )
    };
    print(&text)?;
    Ok(0)
}

/// Removes each id; a failure is reported and the rest still go. The
/// exit status is the worst one seen.
async fn rm(conn: &ConnectArgs, a: RmArgs) -> Result<i32, ClientError> {
    let client = conn.client();
    let mut code = 0;
    for id in &a.ids {
        match client.call(Method::DELETE, &session_path(id), None).await {
            Ok(_) => print(&format!("{id}\n"))?,
            Err(e) if e.is_api() => code = super::report(&e.into()),
            // Not reaching the daemon: the other ids would fail the same way.
            Err(e) => return Err(e.into()),
        }
    }
    Ok(code)
}

fn session_table(sessions: &[SessionInfo], now: SystemTime) -> String {
    let rows = sessions.iter().map(|s| {
        vec![
            s.id.clone(),
            s.state.clone(),
            ago(&s.created_at, now),
            s.expires_at
                .as_deref()
                .map_or_else(|| "never".to_string(), |t| until(t, now)),
            labels(&s.labels),
        ]
    });
    table(&["ID", "STATE", "CREATED", "EXPIRES", "LABELS"], rows)
}

fn labels(l: &BTreeMap<String, String>) -> String {
    if l.is_empty() {
        return "-".into();
    }
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Left-aligned columns, three spaces apart, like `docker ps`.
fn table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = std::iter::once(header.iter().map(|h| h.to_string()).collect())
        .chain(rows)
        .collect();
    let mut widths = vec![0usize; header.len()];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let last = row.len().saturating_sub(1);
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}   "));
            }
        }
        out.push('\n');
    }
    out
}

fn parse_time(t: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(t).ok()
}

/// `12s ago`, `5m ago`, `3h ago`, `2d ago` (the RFC 3339 text if it is not).
fn ago(t: &str, now: SystemTime) -> String {
    match parse_time(t) {
        Some(at) => match now.duration_since(at) {
            Ok(d) => format!("{} ago", short(d)),
            Err(_) => "just now".into(),
        },
        None => t.to_string(),
    }
}

/// `in 59m`, or `expired` once past.
fn until(t: &str, now: SystemTime) -> String {
    match parse_time(t) {
        Some(at) => match at.duration_since(now) {
            Ok(d) => format!("in {}", short(d)),
            Err(_) => "expired".into(),
        },
        None => t.to_string(),
    }
}

fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        a: CreateArgs,
    }

    #[test]
    fn create_flags_become_one_request() {
        let cli = Cli::try_parse_from([
            "x", "--memory", "256M", "--cpus", "0.5", "--ttl", "2m", "-e", "A=1", "--label",
            "team=x",
        ])
        .unwrap();
        let req = serde_json::to_value(create_request(cli.a)).unwrap();
        assert_eq!(req["limits"]["memory"], 256 << 20);
        assert_eq!(req["limits"]["cpus"], 0.5);
        assert_eq!(req["limits"]["pids"], serde_json::Value::Null);
        assert_eq!(req["ttl_seconds"], 120);
        assert_eq!(req["env"]["A"], "1");
        assert_eq!(req["labels"]["team"], "x");
        // The daemon refuses unknown fields: what we send must parse back.
        let back: CreateSession = serde_json::from_value(req).unwrap();
        assert_eq!(back.ttl_seconds, Some(120));
    }

    #[test]
    fn no_limit_flags_send_no_limits() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert!(create_request(cli.a).limits.is_none());
    }

    #[test]
    fn bad_flags_are_refused() {
        for args in [
            &["x", "--memory", "lots"][..],
            &["x", "--cpus", "-1"],
            &["x", "--ttl", "0"],
            &["x", "--env", "NOEQUALS"],
            &["x", "--pids", "0"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn times_are_relative() {
        let now = humantime::parse_rfc3339("2024-01-01T12:00:00Z").unwrap();
        assert_eq!(ago("2024-01-01T11:59:30Z", now), "30s ago");
        assert_eq!(ago("2024-01-01T10:00:00Z", now), "2h ago");
        assert_eq!(until("2024-01-01T12:59:59Z", now), "in 59m");
        assert_eq!(until("2024-01-01T11:00:00Z", now), "expired");
        assert_eq!(ago("garbage", now), "garbage");
    }

    #[test]
    fn tables_align() {
        let t = table(
            &["ID", "STATE"],
            vec![vec!["abc".to_string(), "running".to_string()]].into_iter(),
        );
        assert_eq!(t, "ID    STATE\nabc   running\n");
    }
}
