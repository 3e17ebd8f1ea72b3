//! seccomp placeholder (being written).
