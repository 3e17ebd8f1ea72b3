//! Judges a submission (JSON, as `judges::Submission`) with `runtimed run`
//! sandboxes and prints the report as JSON, events on stderr.
//!
//! `cargo run -p judges --example judge -- SUBMISSION.json [SLOTS]`
//! (as root; the binary from `RUNTIMED_BIN`, default
//! target/x86_64-unknown-linux-gnu/debug/runtimed). `--languages` probes
//! and prints the table instead.

use std::path::PathBuf;

fn runtimed() -> PathBuf {
    std::env::var_os("RUNTIMED_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../target/x86_64-unknown-linux-gnu/debug/runtimed")
        })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runner = judges::CliRunner::new(runtimed())?;
    let mut languages = judges::Languages::load(None)?;
    languages.probe_versions(&runner).await;
    if args.first().map(String::as_str) == Some("--languages") {
        println!("{}", serde_json::to_string_pretty(&languages)?);
        return Ok(());
    }
    let path = args
        .first()
        .ok_or_else(|| anyhow::anyhow!("usage: judge SUBMISSION.json [SLOTS] | --languages"))?;
    let submission: judges::Submission = serde_json::from_slice(&std::fs::read(path)?)?;
    let slots = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(0);
    let work = tempfile::tempdir()?;
    let report = judges::judge(&runner, &languages, &submission, work.path(), slots, |e| {
        eprintln!("{}", serde_json::to_string(&e).unwrap_or_default())
    })
    .await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
