//! partest: a parallel test runner that gives every worker slot its own copy
//! of each shared resource. The modules follow one run from top to bottom:
//! config → discover → plan → isolation → pool (exec) → report → history.

pub mod cli;
pub mod commands;
pub mod config;
pub mod diagnose;
pub mod discover;
pub mod error;
pub mod exec;
pub mod history;
pub mod isolation;
pub mod plan;
pub mod pool;
pub mod report;
pub mod runs;
pub mod shard;
