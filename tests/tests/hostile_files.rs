//! Hostile files: what the files API and the tar upload do with paths
//! aimed out of the session's root and with setuid, setgid, device, FIFO
//! and hard-link entries, seen from inside the session (`stat`) and on the
//! host; and whose memory the bytes written through the API take (the
//! session's, not the daemon's: issue 12, point 4).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use runtimed_tests::daemon;
use runtimed_tests::daemon::{Daemon, Resp};
use runtimed_tests::serde_json::{json, Value};
use runtimed_tests::{
    host_cgroup_dirs, host_hostname, host_procs_matching, host_secrets, pid_alive, unique,
    wait_for, TempDir,
};

fn assert_no_secret(what: &str, r: &Resp, secrets: &[Vec<u8>]) {
    assert_ne!(
        Some(&r.body),
        host_hostname().as_ref(),
        "{what}: the host's /etc/hostname"
    );
    for s in secrets {
        assert!(
            !r.body.windows(s.len()).any(|w| w == s.as_slice()),
            "{what} served host content: {}",
            r.text()
        );
    }
}

fn sh(d: &Daemon, id: &str, script: &str) -> Value {
    let r = d.exec(id, &["sh", "-c", script]);
    assert_eq!(r["exit_code"], 0, "{script}: {r}");
    r
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn files_api_paths_aimed_out_of_the_root_stay_inside() {
    let d = daemon!();
    let secrets = host_secrets();
    let host = TempDir::world_writable("hostile-files");
    std::fs::write(host.join("secret"), "host-secret").unwrap();
    let hostdir = host.path().display().to_string();
    let id = d.create_session(&json!({}));
    let base = format!("/v1/sessions/{id}");
    // Links made inside, aimed at the sandbox's (and, read from the host
    // without care, the host's) root, PID 1's root, and up.
    sh(
        &d,
        &id,
        &format!(
            "ln -s / root; ln -s /proc/1/root p1root; ln -s /proc/self/root selfroot; \
             ln -s .. up; ln -s /etc etc; ln -s {hostdir} hostdir; mkdir d; \
             ln -s ../../../.. d/up4; echo inside > mine"
        ),
    );
    let want: &[(&str, u16)] = &[
        // `..` and absolute forms of the path itself.
        ("../etc/hostname", 400),
        ("a/../../etc/hostname", 400),
        ("..%2f..%2fetc%2fhostname", 400),
        // An absolute path is relative to the workspace.
        ("%2Fetc%2Fhostname", 400),
        ("%2Fproc%2F1%2Fcmdline", 404),
        // Through links: `/` and `..` are the workspace itself.
        ("root/etc/hostname", 400),
        ("root/proc/1/cmdline", 404),
        ("up/etc/hostname", 400),
        ("up/proc/1/cmdline", 404),
        ("d/up4/etc/hostname", 400),
        ("d/up4/mine", 200),
        ("root/mine", 200),
        // Magic links are refused.
        ("p1root/etc/hostname", 404),
        ("selfroot/etc/hostname", 404),
        ("hostdir/secret", 404),
    ];
    for (path, status) in want {
        let r = d.req("GET", &format!("{base}/files/{path}"), None);
        assert_no_secret(path, &r, &secrets);
        assert!(!r.text().contains("host-secret"), "{path}: {}", r.text());
        assert_eq!(r.status, *status, "{path}: {}", r.text());
        if *status == 200 {
            assert_eq!(r.text(), "inside\n", "{path}");
        } else {
            assert!(r.json()["code"].is_string(), "{path}: {}", r.text());
        }
    }
    // Writes through the links land inside the workspace, or fail.
    for path in [
        "root/w1",
        "up/w2",
        "d/up4/w3",
        "hostdir/w4",
        "etc/w5",
        "p1root/w6",
        "selfroot/w7",
    ] {
        let r = d.req(
            "PUT",
            &format!("{base}/files/{path}?parents=true"),
            Some(b"pwned"),
        );
        assert!(
            r.status == 204 || r.status / 100 == 4,
            "{path}: {}",
            r.text()
        );
    }
    let r = sh(&d, &id, "cat w1 w2 w3; ls /etc/w5 /w1 2>/dev/null; true");
    assert_eq!(r["stdout"], "pwnedpwnedpwned", "{r}");
    for p in ["/w1", "/w2", "/w3", "/etc/w5", "/w6", "/w7"] {
        assert!(!Path::new(p).exists(), "{p} written on the host");
    }
    assert_eq!(std::fs::read_dir(host.path()).unwrap().count(), 1);
    // An archive unpacked through a link to `/` lands in the workspace.
    let tar = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        b.append_data(&mut h, "fromtar", &b"tar"[..]).unwrap();
        b.into_inner().unwrap()
    };
    for dest in ["root", "up", "d/up4", "hostdir"] {
        let r = d.req("PUT", &format!("{base}/archive?path={dest}"), Some(&tar));
        assert!(
            r.status == 200 || r.status / 100 == 4,
            "{dest}: {}",
            r.text()
        );
    }
    assert_eq!(sh(&d, &id, "cat fromtar")["stdout"], "tar");
    assert!(!Path::new("/fromtar").exists());
    assert_eq!(std::fs::read_dir(host.path()).unwrap().count(), 1);
    // Removing a link removes the link.
    assert_eq!(
        d.req("DELETE", &format!("{base}/files/root"), None).status,
        204
    );
    assert_eq!(sh(&d, &id, "test -e root || echo gone")["stdout"], "gone\n");
}

/// One raw tar header (the tar crate refuses to write `..` names).
fn header(name: &str, kind: u8, mode: u32, size: usize, link: &str) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(format!("{mode:07o}\0").as_bytes());
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    // Device major/minor (1, 3: /dev/null) for device entries.
    h[329..337].copy_from_slice(b"0000001\0");
    h[337..345].copy_from_slice(b"0000003\0");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&x| x as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// A tar entry: name, type flag, mode, data, link target.
type TarEntry<'a> = (&'a str, u8, u32, &'a [u8], &'a str);

/// An archive of raw entries.
fn archive(entries: &[TarEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, mode, data, link) in entries {
        out.extend_from_slice(&header(name, *kind, *mode, data.len(), link));
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn tar_uploads_refuse_devices_fifos_links_out_and_drop_setuid() {
    let d = daemon!();
    let id = d.create_session(&json!({}));
    let base = format!("/v1/sessions/{id}");
    let ok: TarEntry = ("ok.txt", b'0', 0o644, b"ok", "");
    let refused: &[&[TarEntry]] = &[
        &[ok, ("../escape", b'0', 0o644, b"x", "")],
        &[ok, ("/abs", b'0', 0o644, b"x", "")],
        &[ok, ("a/../../x", b'0', 0o644, b"x", "")],
        &[ok, ("null", b'3', 0o666, b"", "")],
        &[ok, ("disk", b'4', 0o666, b"", "")],
        &[ok, ("pipe", b'6', 0o666, b"", "")],
        &[ok, ("passwd", b'1', 0o644, b"", "/etc/passwd")],
        &[ok, ("again", b'1', 0o644, b"", "ok.txt")],
        &[
            ok,
            ("l", b'2', 0o777, b"", "/"),
            ("l/etc/x", b'0', 0o644, b"x", ""),
        ],
        &[
            ok,
            ("l", b'2', 0o777, b"", ".."),
            ("l/x", b'0', 0o644, b"x", ""),
        ],
        &[
            ok,
            ("l", b'2', 0o777, b"", "/proc/1/root"),
            ("l/x", b'0', 0o644, b"x", ""),
        ],
    ];
    for entries in refused {
        let names: Vec<&str> = entries.iter().map(|e| e.0).collect();
        let r = d.req(
            "PUT",
            &format!("{base}/archive?path=dest"),
            Some(&archive(entries)),
        );
        r.assert_error(400, "invalid_path");
        // Refused whole: not even the good entry before the bad one.
        d.req("GET", &format!("{base}/files/dest"), None)
            .assert_error(404, "file_not_found");
        assert!(
            !Path::new("/escape").exists() && !Path::new("/abs").exists(),
            "{names:?}"
        );
    }
    // Special bits are dropped; everything belongs to the session user.
    let special = archive(&[
        ("suid", b'0', 0o4755, b"#!/bin/sh\n", ""),
        ("sgid", b'0', 0o2755, b"#!/bin/sh\n", ""),
        ("both", b'0', 0o6777, b"#!/bin/sh\n", ""),
        ("sgiddir", b'5', 0o2775, b"", ""),
        ("sticky", b'5', 0o1777, b"", ""),
    ]);
    let r = d.req(
        "PUT",
        &format!("{base}/archive?path=special"),
        Some(&special),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = d.req("PUT", &format!("{base}/files/special/put"), Some(b"put"));
    assert_eq!(r.status, 204, "{}", r.text());
    let r = sh(
        &d,
        &id,
        "cd special && stat -c '%n %a %u' suid sgid both sgiddir sticky put",
    );
    assert_eq!(
        r["stdout"],
        "suid 755 1000\nsgid 755 1000\nboth 777 1000\nsgiddir 775 1000\nsticky 777 1000\nput 644 1000\n",
        "{r}"
    );
    // One-shot runs write their files the same way.
    let r = d.req_json(
        "POST",
        "/v1/run",
        &json!({"argv": ["stat", "-c", "%a %u", "/workspace/f"], "files": [{"path": "f", "content": "x"}]}),
    );
    assert_eq!(r.json()["stdout"], "644 1000\n", "{}", r.text());
}

// ---- files count against the session -------------------------------------------------

/// Bytes of tmpfs (shmem) pages charged to the daemon's own memory cgroup,
/// not to cgroups below it (the sessions' may be): v1's memory.stat
/// `shmem` is the cgroup's own already; v2's counts descendants, which are
/// subtracted.
fn daemon_shmem(d: &Daemon) -> Option<u64> {
    let shmem = |dir: &Path| -> Option<u64> {
        let stat = std::fs::read_to_string(dir.join("memory.stat")).ok()?;
        stat.lines()
            .find_map(|l| l.strip_prefix("shmem "))
            .and_then(|v| v.trim().parse().ok())
    };
    let dirs = host_cgroup_dirs(d.pid());
    let v1 = dirs.iter().find(|(k, _)| {
        k.split(':')
            .nth(1)
            .is_some_and(|c| c.split(',').any(|c| c == "memory"))
    });
    if let Some((_, dir)) = v1 {
        return shmem(dir);
    }
    let (_, dir) = dirs.iter().find(|(k, _)| k.starts_with("0:"))?;
    let children: u64 = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| shmem(&e.path()))
        .sum();
    Some(shmem(dir)?.saturating_sub(children))
}

fn session_memory(d: &Daemon, id: &str) -> u64 {
    let info = d.req("GET", &format!("/v1/sessions/{id}"), None).json();
    info["usage"]["memory_current_bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("no usage: {info}"))
}

const MIB: u64 = 1 << 20;

/// A daemon that takes large bodies, and a session whose memory limit is
/// below its disk limit.
fn big_body_daemon() -> (Daemon, String) {
    let d = Daemon::start_with(Some("max_body_bytes = 201326592\n"), &[]);
    let id = d.create_session(&json!({"limits": {"memory": "64M", "disk": "256M"}}));
    (d, id)
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn files_written_through_the_api_count_against_the_session() {
    let (d, id) = big_body_daemon();
    let base = format!("/v1/sessions/{id}");
    let daemon_before = daemon_shmem(&d).expect("the daemon's memory cgroup");
    let session_before = session_memory(&d, &id);
    let body = vec![0x5au8; (32 * MIB) as usize];
    let r = d.req("PUT", &format!("{base}/files/big"), Some(&body));
    assert_eq!(r.status, 204, "{}", r.text());
    let session_after = session_memory(&d, &id);
    let daemon_after = daemon_shmem(&d).unwrap_or(0);
    eprintln!(
        "session memory {} -> {} MiB, daemon shmem {} -> {} MiB",
        session_before / MIB,
        session_after / MIB,
        daemon_before / MIB,
        daemon_after / MIB
    );
    assert!(
        session_after >= session_before + 28 * MIB,
        "32 MiB written, the session's memory went {session_before} -> {session_after}"
    );
    assert!(
        daemon_after < daemon_before + 8 * MIB,
        "the daemon's cgroup took the file: shmem {daemon_before} -> {daemon_after}"
    );
    // The file is whole, owned by the session user.
    let r = sh(&d, &id, "stat -c '%s %u' big; tr -d Z < big | wc -c");
    assert_eq!(r["stdout"], format!("{} 1000\n0\n", 32 * MIB), "{r}");
    // An archive's files too.
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..4 {
        let mut h = tar::Header::new_gnu();
        h.set_size(4 * MIB);
        h.set_mode(0o644);
        b.append_data(&mut h, format!("t{i}"), &body[..(4 * MIB) as usize])
            .unwrap();
    }
    let before = session_memory(&d, &id);
    let r = d.req(
        "PUT",
        &format!("{base}/archive?path=t"),
        Some(&b.into_inner().unwrap()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let after = session_memory(&d, &id);
    assert!(
        after >= before + 14 * MIB,
        "16 MiB unpacked: {before} -> {after}"
    );
    assert!(daemon_shmem(&d).unwrap_or(0) < daemon_before + 8 * MIB);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_put_beyond_the_sessions_memory_fails_cleanly_and_spares_its_programs() {
    let (d, id) = big_body_daemon();
    let base = format!("/v1/sessions/{id}");
    // A program of the session, which the OOM killer must not take for the
    // API's writes.
    let marker = format!(
        "1000.{}",
        unique("m").len() * 7919 + std::process::id() as usize
    );
    sh(
        &d,
        &id,
        &format!("sleep {marker} </dev/null >/dev/null 2>&1 &"),
    );
    let pid = wait_for(Duration::from_secs(10), || {
        host_procs_matching(&marker).first().map(|p| p.pid)
    })
    .expect("the marker process on the host");
    let daemon_before = daemon_shmem(&d).expect("the daemon's memory cgroup");
    let body = vec![0x5au8; (96 * MIB) as usize];
    let r = d.req("PUT", &format!("{base}/files/huge"), Some(&body));
    r.assert_error(413, "workspace_full");
    let daemon_after = daemon_shmem(&d).unwrap_or(0);
    assert!(
        daemon_after < daemon_before + 8 * MIB,
        "the daemon's cgroup took the file: shmem {daemon_before} -> {daemon_after}"
    );
    // Nothing is left of the file, the program lives, the session works.
    d.req("GET", &format!("{base}/files/huge"), None)
        .assert_error(404, "file_not_found");
    assert!(pid_alive(pid), "the session's program was killed");
    let r = d.req("PUT", &format!("{base}/files/small"), Some(b"fits"));
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(sh(&d, &id, "cat small")["stdout"], "fits");
    // The same through an archive: refused, nothing left.
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..3 {
        let mut h = tar::Header::new_gnu();
        h.set_size(32 * MIB);
        h.set_mode(0o644);
        b.append_data(&mut h, format!("a{i}"), &body[..(32 * MIB) as usize])
            .unwrap();
    }
    let r = d.req(
        "PUT",
        &format!("{base}/archive?path=arc"),
        Some(&b.into_inner().unwrap()),
    );
    r.assert_error(413, "workspace_full");
    let r = d.req("GET", &format!("{base}/files/arc"), None);
    let left: Vec<PathBuf> = r.json()["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["name"].as_str().map(PathBuf::from))
        .collect();
    assert!(
        left.is_empty(),
        "files left by the failed archive: {left:?}"
    );
    assert!(pid_alive(pid), "the session's program was killed");
}

/// Sends a GET on a new connection to the daemon's socket and reads only
/// the answer's head: (status, code if an error, Retry-After), and the
/// connection, still open with the body unread.
fn get_head(
    d: &Daemon,
    path: &str,
) -> ((u16, Option<String>, bool), std::os::unix::net::UnixStream) {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut conn = std::os::unix::net::UnixStream::connect(&d.socket).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    write!(conn, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let (mut status, mut retry, mut length) = (0u16, false, 0usize);
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("head");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(s) = line.strip_prefix("HTTP/1.1 ") {
            status = s[..3].parse().expect("status");
        } else if lower.starts_with("retry-after:") {
            retry = true;
        } else if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    // An error's small body is read; a file's is left in the pipe.
    let code = (status >= 400).then(|| {
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).expect("error body");
        let v: Value = runtimed_tests::serde_json::from_slice(&body).expect("JSON error");
        v["code"].as_str().unwrap_or_default().to_string()
    });
    ((status, code, retry), conn)
}

/// A sandbox's big file read by clients that never read their answers:
/// each answer held by the daemon is paid for from its output budget, so
/// the daemon holds at most that (here 96 MiB) and the readers beyond it
/// get 503 `output_budget_exhausted` with Retry-After; a reader that
/// went away gives its share back. (Checked against: reads not charged,
/// i.e. `Workspace::read` in the handler: 8 answers of 40 MiB held, the
/// daemon's peak RSS +320 MiB and more.)
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn file_reads_by_clients_that_do_not_read_are_bounded_by_the_output_budget() {
    const BUDGET: u64 = 96 * MIB;
    let d = daemon!(&format!(
        "exec_output_budget = {BUDGET}\nexec_output_budget_per_tenant = {BUDGET}\n"
    ));
    let id = d.create_session(&json!({"limits": {"memory": "256M", "disk": "128M"}}));
    let made = sh(
        &d,
        &id,
        "dd if=/dev/zero of=big bs=1M count=40 2>/dev/null && wc -c < big",
    );
    assert_eq!(
        made["stdout"].as_str().map(str::trim),
        Some("41943040"),
        "{made}"
    );
    let path = format!("/v1/sessions/{id}/files/big");
    let pid = d.pid();
    let before = runtimed_tests::reset_peak_rss(pid);
    let mut held = Vec::new();
    let mut answers = Vec::new();
    for _ in 0..8 {
        let (answer, conn) = get_head(&d, &path);
        answers.push(answer);
        held.push(conn);
    }
    let grew = runtimed_tests::status_bytes(pid, "VmHWM:").saturating_sub(before);
    eprintln!(
        "answers {answers:?}; the daemon's peak RSS grew by {} MiB",
        grew / MIB
    );
    let admitted = answers.iter().filter(|a| a.0 == 200).count();
    let refused = answers
        .iter()
        .filter(|a| a.0 == 503 && a.1.as_deref() == Some("output_budget_exhausted") && a.2)
        .count();
    assert!((1..=2).contains(&admitted), "{answers:?}");
    assert_eq!(admitted + refused, 8, "{answers:?}");
    assert!(
        grew < BUDGET + 48 * MIB,
        "the daemon's peak RSS grew by {} MiB for unread answers (budget {} MiB)",
        grew / MIB,
        BUDGET / MIB
    );
    // The readers go away: their answers, and what they held, go too.
    drop(held);
    let whole = wait_for(Duration::from_secs(30), || {
        let r = d.req("GET", &path, None);
        (r.status == 200).then_some(r.body.len())
    });
    assert_eq!(whole, Some(40 * MIB as usize));
}
