//! Images from the command line: `runtimed image import|ls|rm|gc|export`
//! on a store in a temporary data dir, and `runtimed run --image` on the
//! result (the image's files, whiteouts, env, workdir, user and command).
#![forbid(unsafe_code)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use runtimed_tests::images::{busybox_layout, layers_on_disk};
use runtimed_tests::{harness, runtimed_bin, TempDir, EXIT_RUNTIMED_FAILED};

fn image(data: &Path, args: &[&str]) -> Output {
    Command::new(runtimed_bin())
        .arg("image")
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .expect("run runtimed image")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A data dir whose store holds the busybox fixture as `fixture:1`.
fn store_with_fixture(tmp: &TempDir) -> std::path::PathBuf {
    let layout = tmp.path().join("layout");
    busybox_layout(&layout, "1");
    let data = tmp.path().join("data");
    let out = ok(&image(
        &data,
        &["import", layout.to_str().unwrap(), "--name", "fixture:1"],
    ));
    assert!(out.contains("fixture:1"), "{out}");
    data
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn an_imported_image_runs_with_its_files_env_workdir_and_cmd() {
    let h = harness!();
    let tmp = TempDir::new("images");
    let data = store_with_fixture(&tmp);
    let ls = ok(&image(&data, &["ls"]));
    assert!(ls.contains("fixture:1"), "{ls}");
    let run = |extra: &[&str], cmd: &[&str]| {
        let mut s = h
            .sandbox()
            .opt("--image")
            .opt("fixture:1")
            .opt("--data-dir")
            .opt(&data)
            .opts(extra.iter().copied());
        if !cmd.is_empty() {
            s = s.cmd(cmd.iter().copied());
        }
        s.run()
    };
    // The image's cmd when none is given.
    let out = run(&[], &[]);
    assert_eq!(out.code(), 0, "{}", out.context());
    assert_eq!(out.stdout_str(), "default-cmd\n");
    let out = run(
        &["-e", "EXTRA=1"],
        &[
            "sh",
            "-c",
            "cat /hello.txt /etc/release; test -e /etc/removed && echo removed-visible; \
             pwd; echo $GREETING $EXTRA; id -u; echo scratch > /tmp/new && cat /tmp/new",
        ],
    );
    assert_eq!(out.code(), 0, "{}", out.context());
    assert_eq!(
        out.stdout_str(),
        "hello from layer 2\ntop\n/srv\nhi 1\n1000\nscratch\n",
        "{}",
        out.context()
    );
    // --user by name is resolved by the image (only numbers on the CLI),
    // the default user is 1000 when the image names none.
    let out = run(&["--user", "1234:2345"], &["id"]);
    assert!(
        out.stdout_str().contains("uid=1234(app)"),
        "{}",
        out.context()
    );
    // Writes stayed in the sandbox's own layer: a second run sees none.
    let out = run(
        &[],
        &["sh", "-c", "test -e /tmp/new && echo leaked || echo clean"],
    );
    assert_eq!(out.stdout_str(), "clean\n", "{}", out.context());
    // Unpacked once: two layer directories.
    assert_eq!(layers_on_disk(&data).0, 2);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn unknown_images_and_names_fail_with_one_line() {
    let h = harness!();
    let tmp = TempDir::new("images");
    let data = tmp.path().join("data");
    for (name, want) in [
        ("nope:1", "not in the store"),
        ("python", "runtimed image build python"),
        ("Bad Name", "image name"),
    ] {
        let out = h
            .sandbox()
            .opt("--image")
            .opt(name)
            .opt("--data-dir")
            .opt(&data)
            .cmd(["true"])
            .no_report()
            .run();
        assert_eq!(out.code(), EXIT_RUNTIMED_FAILED, "{}", out.context());
        let line = out.one_error_line();
        assert!(line.contains(want), "{name}: {line}");
    }
    let o = image(&data, &["rm", "nope:1"]);
    assert_eq!(o.status.code(), Some(EXIT_RUNTIMED_FAILED));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not found"), "{err}");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn gc_never_removes_layers_a_running_sandbox_uses() {
    let h = harness!();
    let tmp = TempDir::new("images");
    let data = store_with_fixture(&tmp);
    // A run that holds the image's layers for a while, then reads from them.
    let running = h
        .sandbox()
        .opt("--image")
        .opt("fixture:1")
        .opt("--data-dir")
        .opt(&data)
        .cmd(["sh", "-c", "sleep 3; cat /hello.txt"])
        .spawn();
    // Wait until the sandbox is up (its layers are leased before it starts).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while layers_on_disk(&data).0 < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    ok(&image(&data, &["rm", "fixture:1"]));
    let gc = ok(&image(&data, &["gc", "--grace", "0s"]));
    assert!(gc.contains("2 layers in use kept"), "{gc}");
    assert_eq!(layers_on_disk(&data).0, 2, "gc removed a layer in use");
    let out = running.wait();
    assert_eq!(out.code(), 0, "{}", out.context());
    assert_eq!(out.stdout_str(), "hello from layer 2\n");
    // Nothing uses them now: gone, with their blobs.
    let gc = ok(&image(&data, &["gc", "--grace", "0s"]));
    assert!(gc.contains("and 2 layers"), "{gc}");
    assert_eq!(layers_on_disk(&data).0, 0);
    let blobs = std::fs::read_dir(data.join("images/blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0, "unreferenced blobs left");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn export_writes_a_layout_that_imports_back_identically() {
    let _h = harness!();
    let tmp = TempDir::new("images");
    let data = store_with_fixture(&tmp);
    let out_dir = tmp.path().join("exported");
    ok(&image(
        &data,
        &["export", "fixture:1", out_dir.to_str().unwrap()],
    ));
    let other = tmp.path().join("data2");
    ok(&image(
        &other,
        &["import", out_dir.to_str().unwrap(), "--name", "again"],
    ));
    let a = ok(&image(&data, &["ls", "--json"]));
    let b = ok(&image(&other, &["ls", "--json"]));
    let digest = |s: &str| -> String {
        let v: serde_json::Value = serde_json::from_str(s.lines().next().unwrap()).unwrap();
        v["digest"].as_str().unwrap().to_string()
    };
    assert_eq!(
        digest(&a),
        digest(&b),
        "same manifest after export + import"
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn build_from_a_recipe_file_with_a_context_then_run_it() {
    let h = harness!();
    let tmp = TempDir::new("images");
    let data = store_with_fixture(&tmp);
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(ctx.join("app")).unwrap();
    std::fs::write(ctx.join("app/main.sh"), "echo from-the-context\n").unwrap();
    std::fs::write(
        ctx.join("recipe.toml"),
        r#"
name = "app:1"
base = "fixture:1"
workdir = "/app"
cmd = ["sh", "/app/main.sh"]

[[step]]
copy = { from = "app/", to = "/app" }

[[step]]
run = "echo built > /app/stamp"
"#,
    )
    .unwrap();
    let recipe = ctx.join("recipe.toml");
    let out = ok(&image(&data, &["build", recipe.to_str().unwrap()]));
    assert!(out.contains("[1/2]") && out.contains("[2/2]"), "{out}");
    assert!(out.contains("built app:1"), "{out}");
    let run = h
        .sandbox()
        .opt("--image")
        .opt("app:1")
        .opt("--data-dir")
        .opt(&data)
        .run();
    assert_eq!(run.code(), 0, "{}", run.context());
    assert_eq!(run.stdout_str(), "from-the-context\n");
    let run = h
        .sandbox()
        .opt("--image")
        .opt("app:1")
        .opt("--data-dir")
        .opt(&data)
        .cmd(["sh", "-c", "pwd; cat stamp"])
        .run();
    assert_eq!(run.stdout_str(), "/app\nbuilt\n", "{}", run.context());
    // Again, as JSON events: both steps cached; --tag names the result.
    let out = ok(&image(
        &data,
        &[
            "build",
            recipe.to_str().unwrap(),
            "--progress",
            "json",
            "--tag",
            "app:2",
        ],
    ));
    let cached = out
        .lines()
        .filter(|l| l.contains("\"type\":\"step_done\""))
        .filter(|l| l.contains("\"cached\":true"))
        .count();
    assert_eq!(cached, 2, "{out}");
    assert!(ok(&image(&data, &["ls"])).contains("app:2"));
    // Bad recipes: one line, non-zero, nothing named.
    std::fs::write(
        ctx.join("bad.toml"),
        "name = \"x:1\"\nbase = \"scratch\"\nbogus = 1\n",
    )
    .unwrap();
    for (recipe, want) in [
        (ctx.join("bad.toml").to_str().unwrap().to_string(), "bogus"),
        ("cobol".to_string(), "no builtin recipe"),
    ] {
        let o = image(&data, &["build", &recipe]);
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "{err}");
    }
    assert!(!ok(&image(&data, &["ls"])).contains("x:1"));
}
