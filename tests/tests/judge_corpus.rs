//! The in-repo corpus (`judges/corpus/`) through the daemon's judge API:
//! every labelled solution of every problem is submitted, and its verdict
//! (and, for a time limit, which one) must be its label. All mismatches
//! are reported together.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use runtimed_tests::daemon::Daemon;
use runtimed_tests::serde_json::{self, json, Map, Value};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../judges/corpus")
}

fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel))
        .unwrap_or_else(|e| panic!("{}/{rel}: {e}", dir.display()))
}

fn toml_to_json(v: &toml::Value) -> Value {
    serde_json::to_value(v).expect("toml is json")
}

/// A solution as a submission, with what its label expects.
struct Case {
    name: String,
    body: Value,
    verdicts: Vec<String>,
    time_limit: Option<String>,
}

fn checker_of(dir: &Path, c: &toml::Value) -> Value {
    let mut v = toml_to_json(c);
    if v["kind"] == "custom" {
        let src = v["source"]
            .as_str()
            .expect("custom checker source")
            .to_string();
        v["source"] = Value::String(read(dir, &src));
    }
    v
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let mut problems: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("judges/corpus")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("problem.toml").is_file())
        .collect();
    problems.sort();
    assert!(problems.len() >= 6, "problems: {problems:?}");
    for dir in problems {
        let problem: toml::Value = toml::from_str(&read(&dir, "problem.toml"))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let tests: Vec<Value> = problem["test"]
            .as_array()
            .expect("[[test]]")
            .iter()
            .map(|t| {
                let stdin = match t.get("stdin_file") {
                    Some(f) => read(&dir, f.as_str().unwrap()),
                    None => t["stdin"].as_str().unwrap().to_string(),
                };
                let expected = match t.get("expected_file") {
                    Some(f) => read(&dir, f.as_str().unwrap()),
                    None => t["expected_output"].as_str().unwrap().to_string(),
                };
                json!({"stdin": stdin, "expected_output": expected})
            })
            .collect();
        let pname = dir.file_name().unwrap().to_string_lossy().into_owned();
        for s in problem["solution"].as_array().expect("[[solution]]") {
            let file = s["file"].as_str().unwrap();
            let mut limits: Map<String, Value> = toml_to_json(&problem["limits"])
                .as_object()
                .unwrap()
                .clone();
            if let Some(over) = s.get("limits") {
                for (k, v) in toml_to_json(over).as_object().unwrap() {
                    limits.insert(k.clone(), v.clone());
                }
            }
            let checker = checker_of(&dir, s.get("checker").unwrap_or(&problem["checker"]));
            let verdicts = match (s.get("verdict"), s.get("verdict_any")) {
                (Some(v), _) => vec![v.as_str().unwrap().to_string()],
                (None, Some(any)) => any
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect(),
                (None, None) => panic!("{pname}/{file}: no verdict"),
            };
            out.push(Case {
                name: format!("{pname}/{file}"),
                body: json!({
                    "language": s["language"].as_str().unwrap(),
                    "source": read(&dir, file),
                    "tests": tests,
                    "limits": limits,
                    "checker": checker,
                    // The first failure decides; later tests would only
                    // cost time (a wall-time TLE costs its whole limit).
                    "stop_on_first_failure": true,
                }),
                verdicts,
                time_limit: s.get("time_limit").map(|t| t.as_str().unwrap().to_string()),
            });
        }
    }
    out
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn every_corpus_solution_gets_its_labelled_verdict() {
    let cases = cases();
    assert!(cases.len() >= 50, "{} solutions", cases.len());
    let d = Daemon::start();
    let ids: Vec<String> = cases
        .iter()
        .map(|c| {
            let r = d.req_json("POST", "/v1/judge/submissions", &c.body);
            assert_eq!(r.status, 201, "{}: {}", c.name, r.text());
            r.json()["id"].as_str().unwrap().to_string()
        })
        .collect();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(900);
    let mut wrong = Vec::new();
    for (c, id) in cases.iter().zip(&ids) {
        let v = loop {
            let v = d
                .req("GET", &format!("/v1/judge/submissions/{id}"), None)
                .json();
            if v["status"] == "done" {
                break v;
            }
            assert!(Instant::now() < deadline, "{}: not done: {v}", c.name);
            std::thread::sleep(Duration::from_millis(50));
        };
        let verdict = v["verdict"].as_str().unwrap_or("?").to_string();
        let tl = v["time_limit"].as_str().map(str::to_string);
        let ok = c.verdicts.contains(&verdict) && (c.time_limit.is_none() || c.time_limit == tl);
        if !ok {
            let mut shown = v.clone();
            for t in shown["tests"].as_array_mut().into_iter().flatten() {
                for k in ["stdout", "stderr"] {
                    if let Some(s) = t[k].as_str() {
                        t[k] = Value::String(s.chars().take(300).collect());
                    }
                }
            }
            shown["compile_output"] = Value::String(
                v["compile_output"]
                    .as_str()
                    .unwrap_or("")
                    .chars()
                    .take(600)
                    .collect(),
            );
            wrong.push(format!(
                "{}: expected {:?}{}, got {verdict}{} ({})\n  {shown}",
                c.name,
                c.verdicts,
                c.time_limit
                    .as_deref()
                    .map(|t| format!(" ({t})"))
                    .unwrap_or_default(),
                tl.as_deref().map(|t| format!(" ({t})")).unwrap_or_default(),
                v["detail"].as_str().unwrap_or(""),
            ));
        }
    }
    eprintln!(
        "corpus: {} solutions judged in {:.1} s",
        cases.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        wrong.is_empty(),
        "{} of {} solutions got another verdict:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}
