//! partest: a parallel test runner that gives every worker slot its own copy
//! of each shared resource.
//!
//! The modules are layers; a module imports only from layers below its own
//! (the test `layers` below reads every `crate::` path and holds it to this):
//!
//! ```text
//! model                      the shared nouns: tests, outcomes, process ends, invocations,
//!                            slots and their env, the options lower layers read
//! error, runs                typed errors and exit codes; the machine-wide register of runs
//! config                     partest.toml, profiles and the settings of one command
//! exec                       spawning, process groups, timeouts, signals, output capture
//! discover, isolation,       adapters (and the pytest worker); plugins and the slot lifecycle;
//! history, report            past durations; the events and what shows them
//! shard                      planning across machines: the split, the queue's units and feed,
//!                            timings files, merged JUnit
//! plan                       selection, phases, order, groups, the worker count
//! pool                       the coordinator and the slot threads; it names no adapter
//! diagnose                   why a test failed only in parallel: trials on the run's slots
//! cli                        clap's model of the command line
//! commands                   one function per subcommand, the flow of a run top to bottom
//! ```
//!
//! Modules on one line are siblings: they do not import each other. `main`
//! (and `cargo-partest`) parse the command line and call `commands`.

pub mod cli;
pub mod commands;
pub mod config;
pub mod diagnose;
pub mod discover;
pub mod error;
pub mod exec;
pub mod history;
pub mod isolation;
pub mod model;
pub mod plan;
pub mod pool;
pub mod report;
pub mod runs;
pub mod shard;

#[cfg(test)]
mod layers;
