//! partest: a parallel test runner that gives every worker slot its own copy
//! of each shared resource. The modules follow one run from top to bottom:
//! config → discover → plan → isolation → pool (exec) → report → history.

pub mod config;
pub mod error;
pub mod isolation;
