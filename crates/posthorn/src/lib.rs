//! The parts of the posthorn binary that stand on their own: the
//! configuration file's grammar (also fuzzed, see `fuzz/`).

pub mod config;
