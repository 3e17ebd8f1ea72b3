//! cgroup placeholder (being written).
