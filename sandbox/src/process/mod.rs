//! Process model: the parent side ([`spawn`]), the child's flat list of
//! named steps (`init`), the channel between them ([`channel`]) and the
//! supervisor that enforces time/output limits and builds the exit report
//! ([`supervise`], with the CPU-time rule in [`cpu_time`], which the
//! daemon's exec loop shares). See `docs/process-model.md` for the step table.

pub mod channel;
pub mod cpu_time;
// PID 1's code: only the clone in `spawn` may run it.
pub(crate) mod init;
pub mod join;
pub mod signals;
pub mod spawn;
pub mod supervise;

use nix::errno::Errno;

use crate::report::Step;

/// A failed step of the child, sent to the parent as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepError {
    pub step: Step,
    pub errno: Option<Errno>,
    pub message: String,
}

impl StepError {
    /// `message` says what failed on what; the errno's text is appended.
    pub fn new(step: Step, errno: Option<Errno>, message: String) -> StepError {
        let message = match errno {
            Some(e) if !message.ends_with(e.desc()) => format!("{message}: {}", e.desc()),
            _ => message,
        };
        StepError {
            step,
            errno,
            message,
        }
    }
}
