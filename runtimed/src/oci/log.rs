//! Where the OCI runtime's errors go: one line on stderr, and, with
//! `--log FILE`, a line in that file too, as text or as runc's JSON
//! (`{"level","msg","time"}`), which containerd's shim reads back to show
//! the error to its user.

use std::io::Write;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The `--log`/`--log-format`/`--debug` settings of one invocation.
#[derive(Clone, Debug, Default)]
pub struct Log {
    pub file: Option<PathBuf>,
    pub format: LogFormat,
    pub debug: bool,
}

impl Log {
    /// An error: one line on stderr and one in the log file.
    pub fn error(&self, msg: &str) {
        eprintln!("runtimed-runc: {msg}");
        self.write("error", msg);
    }

    /// A warning (an ignored field, say): the log file only, so stderr,
    /// which the shim may relay, stays for errors.
    pub fn warn(&self, msg: &str) {
        self.write("warning", msg);
    }

    pub fn debug(&self, msg: &str) {
        if self.debug {
            self.write("debug", msg);
        }
    }

    fn write(&self, level: &str, msg: &str) {
        let Some(path) = &self.file else { return };
        let line = render(self.format, level, msg, std::time::SystemTime::now());
        // Appended in one write: concurrent runtime calls share the file.
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// One log line, newline included.
pub fn render(format: LogFormat, level: &str, msg: &str, at: std::time::SystemTime) -> String {
    let time = humantime::format_rfc3339_nanos(at).to_string();
    match format {
        LogFormat::Json => {
            let v = serde_json::json!({ "level": level, "msg": msg, "time": time });
            format!("{v}\n")
        }
        LogFormat::Text => format!("time=\"{time}\" level={level} msg={msg:?}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_are_runcs_shape() {
        let line = render(
            LogFormat::Json,
            "error",
            "container \"a\" does not exist",
            std::time::UNIX_EPOCH,
        );
        assert!(line.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "container \"a\" does not exist");
        assert_eq!(v["time"], "1970-01-01T00:00:00.000000000Z");
    }
}
