//! containerd runs containers under runtimed (issue 14, point 3): a lone
//! containerd on temp dirs (tests/src/engines.rs), driven by `ctr` with
//! `--runc-binary` — the runc shim's `BinaryName` option, which Kubernetes'
//! runtime handlers use too (docs/kubernetes.md). The same lifecycle runs
//! with runc as the control; the runtimed variants are ignored with what
//! they still need (see their reasons).

use std::path::PathBuf;
use std::time::Duration;

use runtimed_tests::engines::{which, Containerd, Done, CTR_IMAGE};
use runtimed_tests::{pid_alive, unique, wait_for};

/// Generous: the machine is shared and loaded.
const WAIT: Duration = Duration::from_secs(60);

/// The runc-compatible binary under test: runc itself, or runtimed's
/// `runtimed-runc` symlink.
fn binary(c: &Containerd, runtimed: bool) -> PathBuf {
    if runtimed {
        c.runtimed_runc.clone()
    } else {
        which("runc").expect("runc")
    }
}

/// `ctr run` options every container gets: the binary, and a cgroup below
/// the engine's parent (ctr's default, `/<namespace>/<id>`, would be at the
/// top of the host's hierarchies).
fn run_opts(c: &Containerd, runtimed: bool, id: &str) -> Vec<String> {
    vec![
        "--runc-binary".to_owned(),
        binary(c, runtimed).to_string_lossy().into_owned(),
        "--cgroup".to_owned(),
        format!("{}/{id}", c.cgroup_parent),
    ]
}

fn ctr(c: &Containerd, args: &[String]) -> Done {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    c.run(&refs)
}

/// `ctr task ls` status of `id` (`RUNNING`, `PAUSED`, `STOPPED`).
fn task_status(c: &Containerd, id: &str) -> Option<String> {
    let ls = c.run(&["task", "ls"]);
    ls.stdout.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.first() == Some(&id)).then(|| f.get(2).copied().unwrap_or_default().to_owned())
    })
}

/// `ctr run --rm`: output and exit status come back through the shim.
fn check_run(runtimed: bool) {
    let c = Containerd::start("");
    let id = unique("run");
    let mut args = vec!["run".to_owned(), "--rm".to_owned()];
    args.extend(run_opts(&c, runtimed, &id));
    args.extend([CTR_IMAGE, &id, "sh", "-c", "echo hi-from-$0; exit 3"].map(str::to_owned));
    let out = ctr(&c, &args);
    assert_eq!(out.code(), 3, "{out}\n{}", c.log_tail());
    assert_eq!(out.stdout.replace('\r', ""), "hi-from-sh\n", "{out}");
    let gone = c.run(&["containers", "ls", "-q"]);
    assert!(!gone.ok().contains(&id), "--rm left the container: {gone}");
    c.stop();
}

/// `ctr run -d`, `task exec`, `pause`/`resume`, `kill`, `delete`: the
/// whole task lifecycle, each step checked by what ctr reports, and at the
/// end no process and no container left.
fn check_lifecycle(runtimed: bool) {
    let c = Containerd::start("");
    let id = unique("life");
    let mut args = vec!["run".to_owned(), "-d".to_owned(), "--null-io".to_owned()];
    args.extend(run_opts(&c, runtimed, &id));
    args.extend([CTR_IMAGE, &id, "sleep", "1000"].map(str::to_owned));
    ctr(&c, &args).ok();
    assert_eq!(task_status(&c, &id).as_deref(), Some("RUNNING"));
    let pid: i32 = c
        .run(&["task", "ls"])
        .stdout
        .lines()
        .find(|l| l.starts_with(&id))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .expect("the task's pid");
    assert!(pid_alive(pid), "task pid {pid} is not running");

    let exec = c.run(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        &id,
        "sh",
        "-c",
        "cat /proc/1/cmdline; exit 4",
    ]);
    assert_eq!(exec.code(), 4, "{exec}");
    assert_eq!(exec.stdout.replace('\0', " "), "sleep 1000 ", "{exec}");

    c.run(&["task", "pause", &id]).ok();
    assert_eq!(task_status(&c, &id).as_deref(), Some("PAUSED"));
    c.run(&["task", "resume", &id]).ok();
    assert_eq!(task_status(&c, &id).as_deref(), Some("RUNNING"));

    c.run(&["task", "kill", "--signal", "SIGKILL", &id]).ok();
    let stopped = wait_for(WAIT, || {
        (task_status(&c, &id).as_deref() == Some("STOPPED")).then_some(())
    });
    assert!(
        stopped.is_some(),
        "task not stopped after SIGKILL: {:?}",
        task_status(&c, &id)
    );
    assert!(!pid_alive(pid), "pid {pid} survived the kill");
    c.run(&["task", "delete", &id]).ok();
    c.run(&["containers", "rm", &id]).ok();
    assert!(task_status(&c, &id).is_none());
    c.stop();
}

/// The first `toml` block of docs/kubernetes.md: the runtime handler an
/// operator pastes into containerd's config.
fn documented_handler() -> String {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/kubernetes.md"
    ))
    .expect("docs/kubernetes.md");
    let start = doc
        .find("```toml\n")
        .expect("a toml block in docs/kubernetes.md")
        + 8;
    let len = doc[start..].find("```").expect("the end of the toml block");
    doc[start..start + len].to_owned()
}

/// The handler documented for Kubernetes loads in containerd's CRI
/// plugin (no CRI client here to run a pod: docs/kubernetes.md, section 5),
/// and containerd reads its `BinaryName` as written.
#[test]
#[ignore = "privileged: starts containerd as root"]
fn cri_plugin_loads_the_documented_handler() {
    let handler = documented_handler();
    assert!(handler.contains("BinaryName"), "{handler}");
    let c = Containerd::start(&handler);
    let plugins = c.run(&["plugins", "ls"]);
    let cri = plugins
        .ok()
        .lines()
        .find(|l| {
            l.split_whitespace()
                .take(2)
                .eq(["io.containerd.grpc.v1", "cri"])
        })
        .unwrap_or_else(|| panic!("no CRI plugin: {plugins}"))
        .to_owned();
    assert!(
        cri.trim_end().ends_with("ok"),
        "CRI plugin did not load: {cri}\n{}",
        c.log_tail()
    );
    let dump = c.config_dump();
    assert!(
        dump.contains(
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runtimed.options]"
        ) && dump.contains("BinaryName = \"/usr/local/bin/runtimed-runc\""),
        "the handler is not in containerd's view of its config:\n{dump}"
    );
    c.stop();
}

#[test]
#[ignore = "privileged: starts containerd as root"]
fn runc_ctr_run() {
    check_run(false);
}

#[test]
#[ignore = "privileged: starts containerd as root"]
fn runc_ctr_lifecycle() {
    check_lifecycle(false);
}

#[test]
#[ignore = "privileged: starts containerd as root"]
fn runtimed_ctr_run() {
    check_run(true);
}

#[test]
#[ignore = "privileged: starts containerd as root"]
fn runtimed_ctr_lifecycle() {
    check_lifecycle(true);
}

/// What runtimed refuses reaches the engine's user as runtimed's own words
/// (runc's protocol: one line on stderr and in `--log`, which the shim
/// reads back), and the refused container leaves nothing behind: the stop
/// of the engine fails the test on any process, mount or cgroup left.
#[test]
#[ignore = "privileged: starts containerd as root"]
fn runtimed_refusal_reaches_the_user() {
    let c = Containerd::start("");
    let id = unique("refused");
    let mut args = vec![
        "run".to_owned(),
        "--rm".to_owned(),
        "--runc-systemd-cgroup".to_owned(),
    ];
    args.extend(run_opts(&c, true, &id));
    args.extend([CTR_IMAGE, &id, "true"].map(str::to_owned));
    let out = ctr(&c, &args);
    assert_ne!(out.code(), 0, "{out}");
    assert!(
        out.stderr.contains("systemd-cgroup") && out.stderr.contains("not supported"),
        "the runtime's refusal is not in ctr's error: {out}"
    );
    c.run(&["containers", "rm", &id]);
    c.stop();
}
