//! `runtimed doctor` (being written).
#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// Print the findings as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn main(_args: DoctorArgs) -> i32 {
    eprintln!("runtimed: doctor is not implemented yet");
    crate::EXIT_RUNTIME_FAILURE
}
