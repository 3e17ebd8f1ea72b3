//! Docker runs containers under runtimed (issue 14, point 3): a private
//! dockerd (tests/src/engines.rs) with runtimed registered next to runc
//! and crun, and the lifecycle an operator uses — `docker run` (exit status,
//! memory and pids limits, a terminal), `-d` with logs/stop/kill/wait,
//! `exec`, `pause`/`unpause`, `stats` — plus what the container sees from
//! inside: its uid map, seccomp, capabilities and masked paths.
//!
//! Every check runs with runc too, as a control: a failure there is the
//! harness's or the host's, not runtimed's. The checks that differ by
//! design (runc gives no host uid range) assert each runtime's own answer.
//! The runtimed variants run with the default host uid range: dockerd's
//! overlay2 rootfs is rebuilt from idmapped layers (docs/oci.md). A
//! variant that still fails is ignored with what it needs.

use std::process::Command;
use std::time::Duration;

use runtimed_tests::engines::{
    shared_docker, status_fields, Docker, Runtime, DOCKER_DEFAULT_CAPS, IMAGE,
};
use runtimed_tests::{proc_status_ids, unique, wait_for};

/// Generous: the machine is shared and loaded.
const WAIT: Duration = Duration::from_secs(60);

/// `docker run --rm --network none --runtime RT IMAGE ARGS...`.
fn run_rm(d: &Docker, rt: Runtime, extra: &[&str], args: &[&str]) -> runtimed_tests::engines::Done {
    let mut argv = vec!["run", "--rm", "--network", "none", "--runtime", rt.name()];
    argv.extend_from_slice(extra);
    argv.push(IMAGE);
    argv.extend_from_slice(args);
    d.run(&argv)
}

/// `docker run -d --name NAME --runtime RT IMAGE ARGS...`; returns NAME.
fn run_detached(d: &Docker, rt: Runtime, extra: &[&str], args: &[&str]) -> String {
    let name = unique("c");
    let mut argv = vec![
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &name,
        "--runtime",
        rt.name(),
    ];
    argv.extend_from_slice(extra);
    argv.push(IMAGE);
    argv.extend_from_slice(args);
    d.run(&argv).ok();
    name
}

/// Removes a container whatever its state (the test's own cleanup; a
/// failure here fails the test: the runtime could not delete it).
fn remove(d: &Docker, name: &str) {
    let rm = d.run(&["rm", "-f", name]);
    assert!(rm.status.success(), "docker rm -f {name}: {rm}");
}

/// Waits until `docker logs NAME` satisfies `f`; returns the logs.
fn wait_logs(d: &Docker, name: &str, what: &str, f: impl Fn(&str) -> bool) -> String {
    wait_for(WAIT, || {
        let logs = d.run(&["logs", name]);
        f(&logs.stdout).then_some(logs.stdout)
    })
    .unwrap_or_else(|| {
        let logs = d.run(&["logs", name]);
        panic!("{name}: logs never showed {what}: {logs}\n{}", d.log_tail())
    })
}

// ---- the checks (one function per behaviour, run per runtime below) -----------

/// The program's exit status passes through `docker run`, its output
/// comes back, and a missing program is docker's 127.
fn check_exit_status(rt: Runtime) {
    let d = shared_docker();
    let out = run_rm(&d, rt, &[], &["sh", "-c", "echo hi-from-$0; exit 3"]);
    assert_eq!(out.code(), 3, "{out}");
    assert_eq!(out.stdout, "hi-from-sh\n", "{out}");
    // Docker turns the runtime's error text into 127 (it looks for runc's
    // "no such file or directory" on exec); crun words it otherwise and
    // gets 125. runtimed must speak runc's words here.
    let missing = run_rm(&d, rt, &[], &["/no/such/program"]);
    let want = if rt == Runtime::Crun { 125 } else { 127 };
    assert_eq!(missing.code(), want, "{missing}");
}

/// What the container sees from inside: seccomp in filter mode, no
/// capability beyond Docker's default set (none at all with --cap-drop
/// ALL), the masked /proc and /sys paths, and its uid map.
fn check_inside_view(rt: Runtime) {
    let d = shared_docker();
    let script = "cat /proc/self/uid_map; cat /proc/self/status; \
        [ -c /proc/keys ] && echo MASKED keys; \
        [ -c /proc/timer_list ] && echo MASKED timer_list; \
        [ -z \"$(ls -A /sys/firmware 2>/dev/null)\" ] && echo MASKED firmware; \
        echo end";
    let out = run_rm(&d, rt, &[], &["sh", "-c", script]);
    assert_eq!(out.code(), 0, "{out}");
    let status = status_fields(&out.stdout);
    assert_eq!(
        status.get("Seccomp").map(String::as_str),
        Some("2"),
        "{out}"
    );
    let bnd = u64::from_str_radix(&status["CapBnd"], 16).expect("CapBnd");
    let eff = u64::from_str_radix(&status["CapEff"], 16).expect("CapEff");
    assert_eq!(
        bnd & !DOCKER_DEFAULT_CAPS,
        0,
        "bounding set beyond Docker's default: {bnd:#x}"
    );
    assert_eq!(
        eff & !DOCKER_DEFAULT_CAPS,
        0,
        "effective set beyond Docker's default: {eff:#x}"
    );
    for m in ["keys", "timer_list", "firmware"] {
        assert!(
            out.stdout.contains(&format!("MASKED {m}")),
            "{m} not masked: {out}"
        );
    }
    let first = out.stdout.lines().next().unwrap_or_default();
    let map: Vec<u64> = first
        .split_whitespace()
        .map(|v| v.parse().expect("uid_map number"))
        .collect();
    assert_eq!(map.len(), 3, "uid_map: {out}");
    let identity = map == [0, 0, 4_294_967_295];
    match rt {
        // runtimed adds a user namespace with a host range of its own when
        // the engine asks for none (issue 14, point 2): root inside is an
        // unprivileged uid outside.
        Runtime::Runtimed => {
            assert!(!identity && map[0] == 0 && map[1] != 0, "uid_map {map:?}")
        }
        // The control: Docker asks for no user namespace and runc adds none.
        Runtime::Runc | Runtime::Crun => assert!(identity, "uid_map {map:?}"),
    }
    let dropped = run_rm(
        &d,
        rt,
        &["--cap-drop", "ALL"],
        &["grep", "^Cap", "/proc/self/status"],
    );
    let caps = status_fields(&dropped.stdout);
    for k in ["CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"] {
        assert_eq!(
            caps.get(k).map(String::as_str),
            Some("0000000000000000"),
            "{k} with --cap-drop ALL: {dropped}"
        );
    }
}

/// `-m 64m`: a memory bomb is OOM-killed (137) and `docker inspect` says
/// so.
fn check_memory_bomb(rt: Runtime) {
    let d = shared_docker();
    let name = unique("oom");
    let out = d.run(&[
        "run",
        "--name",
        &name,
        "--network",
        "none",
        "--runtime",
        rt.name(),
        "-m",
        "64m",
        "--memory-swap",
        "64m",
        IMAGE,
        "sh",
        "-c",
        "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done",
    ]);
    let oom = d.inspect(&name, "{{.State.OOMKilled}} {{.State.ExitCode}}");
    remove(&d, &name);
    assert_eq!(out.code(), 137, "{out}");
    assert_eq!(oom, "true 137", "{out}");
}

/// `--pids-limit 16`: a shell that forks 50 sleepers sees at most 16
/// processes in its pid namespace (the count uses shell built-ins only:
/// at the limit nothing else can fork).
fn check_pids_limit(rt: Runtime) {
    let d = shared_docker();
    let script = "(i=0; while [ $i -lt 50 ]; do sleep 60 & i=$((i+1)); done) 2>/dev/null; \
        n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo procs=$n";
    let out = run_rm(&d, rt, &["--pids-limit", "16"], &["sh", "-c", script]);
    let n: u32 = out
        .stdout
        .trim()
        .strip_prefix("procs=")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no count: {out}"));
    assert!(n <= 16, "{n} processes under --pids-limit 16: {out}");
    // Enough started that the limit, not something else, stopped them.
    assert!(n >= 8, "only {n} processes started: {out}");
}

/// One word for `sh -c`: single-quoted, a quote inside as `'\''`.
fn sh_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// `docker ARGS` with a terminal of 45 rows × 123 columns: `script`
/// gives the client a pty and runs it through `sh -c`.
fn with_terminal(d: &Docker, args: &[&str]) -> Command {
    let words: Vec<String> = args.iter().map(|a| sh_quote(a)).collect();
    let mut c = Command::new("script");
    c.arg("-qec")
        .arg(format!(
            "stty cols 123 rows 45 && DOCKER_CONFIG=/nonexistent docker -H {} {}",
            sh_quote(&format!("unix://{}", d.socket().display())),
            words.join(" ")
        ))
        .arg("/dev/null")
        .env("SHELL", "/bin/sh")
        .stdin(std::process::Stdio::null());
    c
}

/// Waits (up to 20 s) until the terminal has the client's size, prints
/// it: the client resizes the container's terminal only after starting it
/// (API 1.41 has no size at create), so the program may start at 0×0.
const SIZE: &str = "i=0; while [ \"$(stty size 2>/dev/null)\" != '45 123' ] && [ $i -lt 200 ]; \
    do sleep 0.1; i=$((i+1)); done; echo size=$(stty size)";

/// `docker run -it`: the container gets a terminal (console socket) whose
/// size is the client's (resize).
fn check_tty(rt: Runtime) {
    let d = shared_docker();
    let script = format!("{SIZE}; tty; [ -t 0 ] && echo is-a-tty");
    let args = [
        "run",
        "--rm",
        "-it",
        "--network",
        "none",
        "--runtime",
        rt.name(),
        IMAGE,
        "sh",
        "-c",
        &script,
    ];
    let out = d.run_cmd(&mut with_terminal(&d, &args), &args);
    assert!(out.status.success(), "{out}");
    let text = out.stdout.replace('\r', "");
    assert!(
        text.contains("size=45 123\n"),
        "terminal size not passed on: {out}"
    );
    assert!(text.contains("is-a-tty"), "stdin is not a terminal: {out}");
    assert!(
        text.contains("/dev/pts/") || text.contains("/dev/console"),
        "{out}"
    );
}

/// `-d`, `logs`, `stop` (SIGTERM reaches the program, its status is kept),
/// `kill` and `wait`; the program's host uid (a host range for runtimed).
fn check_detached(rt: Runtime) {
    let d = shared_docker();
    let name = run_detached(
        &d,
        rt,
        &[],
        &[
            "sh",
            "-c",
            "trap 'echo got-term; exit 7' TERM; echo started; while true; do sleep 0.1; done",
        ],
    );
    wait_logs(&d, &name, "started", |l| l.contains("started"));
    let pid: i32 = d
        .inspect(&name, "{{.State.Pid}}")
        .parse()
        .expect("State.Pid");
    let uids = proc_status_ids(pid, "Uid").expect("the container's process on the host");
    match rt {
        Runtime::Runtimed => assert!(uids.iter().all(|&u| u != 0), "host uids {uids:?}"),
        Runtime::Runc | Runtime::Crun => assert_eq!(uids[0], 0, "host uids {uids:?}"),
    }
    d.run(&["stop", "-t", "60", &name]).ok();
    let code = d.inspect(&name, "{{.State.ExitCode}}");
    let logs = d.run(&["logs", &name]);
    remove(&d, &name);
    assert_eq!(code, "7", "SIGTERM did not reach the trap: {logs}");
    assert!(logs.stdout.contains("got-term"), "{logs}");

    let name = run_detached(&d, rt, &[], &["sleep", "1000"]);
    d.run(&["kill", &name]).ok();
    let waited = d.run(&["wait", &name]);
    remove(&d, &name);
    assert_eq!(waited.ok().trim(), "137", "{waited}");
}

/// `docker exec`: in the container's pid namespace, exit status passed
/// on; `exec -it` gets a terminal.
fn check_exec(rt: Runtime) {
    let d = shared_docker();
    let name = run_detached(&d, rt, &[], &["sleep", "1000"]);
    let out = d.run(&[
        "exec",
        &name,
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; exit 5",
    ]);
    let script = format!("tty; [ -t 0 ] && echo is-a-tty; {SIZE}");
    let args = ["exec", "-it", &name, "sh", "-c", &script];
    let tty = d.run_cmd(&mut with_terminal(&d, &args), &args);
    remove(&d, &name);
    assert_eq!(out.code(), 5, "{out}");
    assert_eq!(
        out.stdout, "sleep 1000 ",
        "exec is not in the container's pid namespace: {out}"
    );
    assert!(tty.status.success(), "{tty}");
    let text = tty.stdout.replace('\r', "");
    assert!(
        text.contains("is-a-tty") && text.contains("size=45 123"),
        "{tty}"
    );
}

/// `docker pause` freezes the container (its output stops), `unpause`
/// thaws it.
fn check_pause(rt: Runtime) {
    let d = shared_docker();
    let name = run_detached(
        &d,
        rt,
        &[],
        &[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i; sleep 0.05; done",
        ],
    );
    wait_logs(&d, &name, "3 lines", |l| l.lines().count() >= 3);
    d.run(&["pause", &name]).ok();
    let state = d.inspect(&name, "{{.State.Status}} {{.State.Paused}}");
    // Lines already in flight to dockerd may still land: count after a
    // moment, then again much later.
    std::thread::sleep(Duration::from_millis(500));
    let before = d.run(&["logs", &name]).stdout.lines().count();
    std::thread::sleep(Duration::from_secs(2));
    let after = d.run(&["logs", &name]).stdout.lines().count();
    d.run(&["unpause", &name]).ok();
    let thawed = wait_for(WAIT, || {
        (d.run(&["logs", &name]).stdout.lines().count() > after + 2).then_some(())
    });
    remove(&d, &name);
    assert_eq!(state, "paused true");
    assert_eq!(before, after, "output went on while paused");
    assert!(thawed.is_some(), "no output after unpause");
}

/// `docker stats --no-stream`: the engine reads the container's cgroup
/// (one process, some memory).
fn check_stats(rt: Runtime) {
    let d = shared_docker();
    let name = run_detached(&d, rt, &["-m", "64m"], &["sleep", "1000"]);
    let stats = d.run(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.PIDs}}|{{.MemUsage}}",
        &name,
    ]);
    remove(&d, &name);
    let line = stats.ok().trim().to_owned();
    let (pids, mem) = line.split_once('|').unwrap_or_else(|| panic!("{stats}"));
    assert_eq!(pids, "1", "{stats}");
    let (usage, limit) = mem.split_once(" / ").unwrap_or_else(|| panic!("{stats}"));
    assert!(usage != "0B", "no memory usage read: {stats}");
    assert_eq!(limit, "64MiB", "{stats}");
}

// ---- runc: the control -------------------------------------------------------------

#[test]
#[ignore = "privileged: starts dockerd as root"]
fn runc_exit_status() {
    check_exit_status(Runtime::Runc);
}

#[test]
#[ignore = "privileged: starts dockerd as root"]
fn runc_inside_view() {
    check_inside_view(Runtime::Runc);
}

#[test]
#[ignore = "privileged: starts dockerd as root"]
fn runc_memory_bomb() {
    check_memory_bomb(Runtime::Runc);
}

#[test]
#[ignore = "privileged: starts dockerd as root"]
fn runc_pids_limit() {
    check_pids_limit(Runtime::Runc);
}

#[test]
#[ignore = "privileged: starts dockerd as root"]
fn runc_tty() {
    check_tty(Runtime::Runc);
}

#[test]
#[ignore = "privileged: starts dockerd as root"]
fn runc_detached() {
    check_detached(Runtime::Runc);
}

#[test]
#[ignore = "privileged: starts dockerd as root"]
fn runc_exec() {
    check_exec(Runtime::Runc);
}

#[test]
#[ignore = "privileged: starts dockerd as root"]
fn runc_pause() {
    check_pause(Runtime::Runc);
}

#[test]
#[ignore = "privileged: starts dockerd as root"]
fn runc_stats() {
    check_stats(Runtime::Runc);
}

// ---- crun: a second control (the bench compares all three) ----------------------

#[test]
#[ignore = "privileged: starts dockerd as root"]
fn crun_exit_status() {
    check_exit_status(Runtime::Crun);
}

#[test]
#[ignore = "privileged: starts dockerd as root"]
fn crun_inside_view() {
    check_inside_view(Runtime::Crun);
}

// ---- runtimed ------------------------------------------------------------------------

#[test]
#[ignore = "privileged: starts dockerd as root"]
fn runtimed_exit_status() {
    check_exit_status(Runtime::Runtimed);
}

#[test]
#[ignore = "privileged: starts dockerd as root"]
fn runtimed_inside_view() {
    check_inside_view(Runtime::Runtimed);
}

#[test]
#[ignore = "privileged: starts dockerd as root"]
fn runtimed_memory_bomb() {
    check_memory_bomb(Runtime::Runtimed);
}

#[test]
#[ignore = "privileged: starts dockerd as root"]
fn runtimed_pids_limit() {
    check_pids_limit(Runtime::Runtimed);
}

#[test]
#[ignore = "pending: docker run -it under runtimed does not finish (runc's passes; the terminal path, not the rootfs)"]
fn pending_runtimed_tty() {
    check_tty(Runtime::Runtimed);
}

#[test]
#[ignore = "privileged: starts dockerd as root"]
fn runtimed_detached() {
    check_detached(Runtime::Runtimed);
}

#[test]
#[ignore = "privileged: starts dockerd as root"]
fn runtimed_exec() {
    check_exec(Runtime::Runtimed);
}

#[test]
#[ignore = "privileged: starts dockerd as root"]
fn runtimed_pause() {
    check_pause(Runtime::Runtimed);
}

#[test]
#[ignore = "privileged: starts dockerd as root"]
fn runtimed_stats() {
    check_stats(Runtime::Runtimed);
}
