//! TEMPORARY stub (replaced by the real module).
use std::path::PathBuf;
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum CgroupVersion {
    V1,
    V2,
}
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CgroupLimits {
    pub memory_bytes: Option<u64>,
    pub pids: Option<u64>,
    pub cpu_quota_us: Option<u64>,
    pub cpu_period_us: Option<u64>,
}
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct CgroupStats {
    pub cpu_usage_ns: u64,
    pub cpu_user_ns: u64,
    pub cpu_system_ns: u64,
    pub memory_current_bytes: u64,
    pub memory_peak_bytes: u64,
    pub oom_kills: u64,
    pub pids_current: u64,
    pub pids_limit_hits: u64,
}
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("x")]
    X,
}
pub struct CgroupManager;
impl CgroupManager {
    pub fn detect() -> Result<Self, CgroupError> {
        Ok(CgroupManager)
    }
    pub fn controllers(&self) -> Vec<String> {
        vec![]
    }
    pub fn missing_controllers(&self) -> Vec<String> {
        vec![]
    }
    pub fn parent_paths(&self) -> Vec<PathBuf> {
        vec![]
    }
    pub fn version(&self) -> CgroupVersion {
        CgroupVersion::V1
    }
    pub fn create(&self, _name: &str, _l: &CgroupLimits) -> Result<Cgroup, CgroupError> {
        Ok(Cgroup(vec![]))
    }
}
pub struct Cgroup(Vec<PathBuf>);
impl Cgroup {
    pub fn paths(&self) -> &[PathBuf] {
        &self.0
    }
    pub fn v2_dir_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }
    pub fn add_pid(&self, _pid: i32) -> Result<(), CgroupError> {
        Ok(())
    }
    pub fn cpu_usage_ns(&self) -> Result<u64, CgroupError> {
        Ok(0)
    }
    pub fn stats(&self) -> Result<CgroupStats, CgroupError> {
        Ok(CgroupStats::default())
    }
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        Ok(())
    }
    pub fn remove(self) -> Result<(), CgroupError> {
        Ok(())
    }
}
