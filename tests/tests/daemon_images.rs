//! Images through the daemon's API: import (the body), list, delete,
//! sessions and one-shot runs on an image (its files, env, workdir; a
//! capped writable layer of their own), 50 sessions sharing one copy of
//! the layers on disk, and images being changed by operators only.

use runtimed_tests::daemon;
use runtimed_tests::daemon::Daemon;
use runtimed_tests::images::{busybox_layout, du_kib, layers_on_disk, tar_of};
use runtimed_tests::serde_json::{json, Value};
use runtimed_tests::TempDir;

/// Imports the busybox fixture as `fixture:1` through the API.
fn import_fixture(d: &Daemon) -> String {
    let tmp = TempDir::new("layout");
    let manifest = busybox_layout(tmp.path(), "1");
    let body = tar_of(tmp.path());
    let r = d.req("POST", "/v1/images/import?name=fixture:1", Some(&body));
    assert_eq!(r.status, 201, "import: {}", r.text());
    let v = r.json();
    assert_eq!(v["images"][0]["name"], "fixture:1", "{v}");
    assert_eq!(v["images"][0]["digest"], manifest.as_str());
    manifest
}

fn exec(d: &Daemon, id: &str, script: &str) -> Value {
    d.exec(id, &["sh", "-c", script])
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn sessions_and_runs_use_the_image_with_its_defaults() {
    let d = daemon!();
    let digest = import_fixture(&d);
    let list = d.req("GET", "/v1/images", None);
    assert_eq!(list.status, 200);
    assert_eq!(list.json()["images"][0]["digest"], digest.as_str());

    let id = d.create_session(&json!({"image": "fixture:1", "limits": {"disk": "8M"}}));
    let info = d.req("GET", &format!("/v1/sessions/{id}"), None).json();
    assert_eq!(info["image"], "fixture:1");
    let r = exec(
        &d,
        &id,
        "cat /hello.txt /etc/release; test -e /etc/removed && echo removed-visible; pwd; echo $GREETING; \
         (echo hi > /rootfile) 2>/dev/null && echo wrote-root; true",
    );
    assert_eq!(r["exit_code"], 0, "{r}");
    assert_eq!(
        r["stdout"], "hello from layer 2\ntop\n/srv\nhi\n",
        "the session user (1000) cannot write root's /: {r}"
    );
    // The writable layer is capped by the session's disk limit.
    let r = exec(
        &d,
        &id,
        "dd if=/dev/zero of=/srv/big bs=1M count=64 2>/dev/null; stat -c %s /srv/big 2>/dev/null || echo none",
    );
    let written: u64 = r["stdout"]
        .as_str()
        .unwrap_or("")
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(
        written <= 8 << 20,
        "wrote {written} bytes past the 8M cap: {r}"
    );

    // A one-shot run on the image.
    let r = d.req_json(
        "POST",
        "/v1/run",
        &json!({"image": "fixture:1", "argv": ["sh", "-c", "cat /hello.txt; echo $GREETING"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["stdout"], "hello from layer 2\nhi\n");

    // Unknown images: 404 with a clear code, nothing created.
    let before = d.req("GET", "/v1/sessions", None).json();
    for bad in ["nope:1", "python"] {
        let r = d.req_json("POST", "/v1/sessions", &json!({"image": bad}));
        r.assert_error(404, "image_not_found");
    }
    let r = d.req_json("POST", "/v1/sessions", &json!({"image": "Not A Name"}));
    r.assert_error(400, "invalid_request");
    assert_eq!(d.req("GET", "/v1/sessions", None).json(), before);

    // Deleting the name does not disturb the running session.
    let r = d.req("DELETE", "/v1/images/fixture:1", None);
    assert_eq!(r.status, 204, "{}", r.text());
    d.req("DELETE", "/v1/images/fixture:1", None)
        .assert_error(404, "image_not_found");
    let r = exec(&d, &id, "cat /hello.txt");
    assert_eq!(r["stdout"], "hello from layer 2\n");
    d.req_json("POST", "/v1/sessions", &json!({"image": "fixture:1"}))
        .assert_error(404, "image_not_found");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn fifty_sessions_of_one_image_store_its_layers_once() {
    let d = daemon!();
    import_fixture(&d);
    let data = d.dir.path().join("data");
    let first = d.create_session(&json!({"image": "fixture:1"}));
    let (layers, kib_one) = layers_on_disk(&data);
    assert_eq!(layers, 2, "two layers unpacked");
    let layers_kib_one = du_kib(&data.join("layers"));
    let mut ids = vec![first];
    for _ in 1..50 {
        ids.push(d.create_session(&json!({"image": "fixture:1"})));
    }
    // Every session sees the image and writes into its own layer.
    for (i, id) in ids.iter().enumerate() {
        let r = exec(
            &d,
            id,
            &format!("cat /hello.txt; echo {i} > /srv/mine; cat /srv/mine"),
        );
        assert_eq!(r["stdout"], format!("hello from layer 2\n{i}\n"), "{r}");
    }
    let (layers50, kib_fifty) = layers_on_disk(&data);
    assert_eq!(layers50, 2, "still two layer directories");
    assert_eq!(
        du_kib(&data.join("layers")),
        layers_kib_one,
        "the unpacked layers did not grow with the sessions"
    );
    // The data dir grows only by the sessions' own state (SQLite rows and
    // WAL, small per-session dirs), far below one more copy of the image
    // per session (their root writes live in their tmpfs upper layers).
    let grown = kib_fifty.saturating_sub(kib_one);
    assert!(
        grown < layers_kib_one,
        "data dir grew by {grown} KiB with 49 more sessions, more than one copy of the image ({layers_kib_one} KiB)"
    );
    let layer_kib = du_kib(&data.join("layers"));
    eprintln!(
        "50 sessions of one image: layers {layer_kib} KiB on disk once; data dir {kib_one} -> {kib_fifty} KiB"
    );
    for id in &ids {
        assert_eq!(
            d.req("DELETE", &format!("/v1/sessions/{id}"), None).status,
            204
        );
    }
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn only_operators_change_images() {
    let d = daemon!(
        r#"
[[tokens]]
token = "alice-token-0123456789"
tenant = "alice"
"#
    );
    let auth = [("Authorization", "Bearer alice-token-0123456789")];
    let tmp = TempDir::new("layout");
    busybox_layout(tmp.path(), "1");
    let body = tar_of(tmp.path());
    let r = d.tcp(
        "POST",
        "/v1/images/import?name=fixture:1",
        Some(&body),
        &auth,
    );
    r.assert_error(403, "forbidden");
    // The socket is the operator's.
    import_fixture(&d);
    let r = d.tcp("GET", "/v1/images", None, &auth);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["images"][0]["name"], "fixture:1");
    d.tcp("DELETE", "/v1/images/fixture:1", None, &auth)
        .assert_error(403, "forbidden");
    // A tenant may run sessions on it.
    let r = d.tcp(
        "POST",
        "/v1/sessions",
        Some(json!({"image": "fixture:1"}).to_string().as_bytes()),
        &[
            ("Authorization", "Bearer alice-token-0123456789"),
            ("Content-Type", "application/json"),
        ],
    );
    assert_eq!(r.status, 201, "{}", r.text());
    // A hostile archive is refused whole.
    let r = d.req(
        "POST",
        "/v1/images/import?name=junk",
        Some(b"not a tar at all"),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let names: Vec<String> = d.req("GET", "/v1/images", None).json()["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["fixture:1"]);
}

/// The NDJSON events of a build response.
fn events(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| runtimed_tests::serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn builds_stream_their_progress_and_the_result_runs() {
    let d = daemon!();
    import_fixture(&d);
    let recipe = r#"
name = "built:1"
base = "fixture:1"
env = { BUILT = "yes" }

[[step]]
run = ["/bin/sh", "-c", "echo step-output; echo made > /etc/built.txt"]
"#;
    let r = d.req_json("POST", "/v1/images/build", &json!({"recipe_toml": recipe}));
    assert_eq!(r.status, 200, "{}", r.text());
    let ev = events(&r.text());
    let types: Vec<&str> = ev.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(types.contains(&"step_start"), "{types:?}");
    assert!(
        ev.iter()
            .any(|e| e["type"] == "log" && e["line"] == "step-output"),
        "the step's output is streamed: {ev:?}"
    );
    assert_eq!(types.last(), Some(&"done"), "{ev:?}");
    assert_eq!(ev.last().unwrap()["image"], "built:1");
    let id = d.create_session(&json!({"image": "built:1"}));
    let out = exec(
        &d,
        &id,
        "cat /etc/built.txt /hello.txt; echo $BUILT $GREETING",
    );
    assert_eq!(out["stdout"], "made\nhello from layer 2\nyes hi\n", "{out}");

    // The same build again: every step from the cache.
    let r = d.req_json("POST", "/v1/images/build", &json!({"recipe_toml": recipe}));
    let ev = events(&r.text());
    let done: Vec<&Value> = ev.iter().filter(|e| e["type"] == "step_done").collect();
    assert!(
        !done.is_empty() && done.iter().all(|e| e["cached"] == true),
        "{ev:?}"
    );

    // A failing step: the stream ends with an error, no image is named.
    let failing = "name = \"broken:1\"\nbase = \"fixture:1\"\n[[step]]\nrun = [\"/bin/sh\", \"-c\", \"exit 3\"]\n";
    let r = d.req_json("POST", "/v1/images/build", &json!({"recipe_toml": failing}));
    assert_eq!(r.status, 200);
    let ev = events(&r.text());
    let last = ev.last().unwrap();
    assert_eq!(last["type"], "error", "{ev:?}");
    assert_eq!(last["code"], "build_failed");
    assert!(last["message"].as_str().unwrap().contains('3'), "{last}");
    let names: Vec<Value> = d.req("GET", "/v1/images", None).json()["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].clone())
        .collect();
    assert!(!names.contains(&json!("broken:1")), "{names:?}");

    // Bad requests are refused before anything runs.
    d.req_json(
        "POST",
        "/v1/images/build",
        &json!({"recipe_toml": "name = 1"}),
    )
    .assert_error(400, "invalid_request");
    d.req_json("POST", "/v1/images/build", &json!({"recipe": "cobol"}))
        .assert_error(404, "recipe_not_found");
    d.req_json("POST", "/v1/images/build", &json!({}))
        .assert_error(400, "invalid_request");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_build_whose_client_goes_away_is_stopped_and_leaves_nothing() {
    use std::io::Write;
    use std::time::Duration;
    let d = daemon!();
    import_fixture(&d);
    let marker = runtimed_tests::unique("hostile-build");
    // A step that never ends, every process of it marked in its argv.
    let recipe = format!(
        "name = \"endless:1\"\nbase = \"fixture:1\"\n[[step]]\n\
         run = [\"/bin/sh\", \"-c\", \"while :; do sleep 1; done\", \"{marker}\"]\n"
    );
    let body = json!({ "recipe_toml": recipe }).to_string();
    let mut conn = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    write!(
        conn,
        "POST /v1/images/build HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let within = Duration::from_secs(60);
    let marked = || runtimed_tests::host_procs_matching(&marker);
    let step = runtimed_tests::wait_for(within, || marked().first().map(|p| p.pid))
        .unwrap_or_else(|| panic!("the step never ran:\n{}", d.log_text()));
    // The step's own cgroups (not the daemon's).
    let daemon_cgroups = runtimed_tests::host_cgroup_dirs(d.pid());
    let step_cgroups: Vec<_> = runtimed_tests::host_cgroup_dirs(step)
        .into_iter()
        .filter(|(k, p)| daemon_cgroups.get(k) != Some(p))
        .map(|(_, p)| p)
        .collect();
    assert!(
        !step_cgroups.is_empty(),
        "the step runs in a cgroup of its own"
    );
    assert_eq!(
        d.helpers_named("image-builder").len(),
        1,
        "one build helper"
    );
    let scratch = d.dir.join("data/images/tmp");
    drop(conn);
    let gone = runtimed_tests::wait_for(within, || {
        let left = !marked().is_empty()
            || !d.helpers_named("image-builder").is_empty()
            || step_cgroups.iter().any(|c| c.exists())
            || std::fs::read_dir(&scratch).map_or(0, |r| r.count()) > 0;
        (!left).then_some(())
    });
    assert!(
        gone.is_some(),
        "left after the client went away: processes {:?}, helpers {:?}, cgroups {:?}, scratch {:?}\n{}",
        marked(),
        d.helpers_named("image-builder"),
        step_cgroups.iter().filter(|c| c.exists()).collect::<Vec<_>>(),
        std::fs::read_dir(&scratch).map(|r| r.flatten().map(|e| e.file_name()).collect::<Vec<_>>()),
        d.log_text()
    );
    let names = d.req("GET", "/v1/images", None).json()["images"].to_string();
    assert!(!names.contains("endless:1"), "{names}");
}
