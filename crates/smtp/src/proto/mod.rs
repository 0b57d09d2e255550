//! Pure SMTP grammar and formatting: no I/O, no state beyond one value, so
//! every piece can be unit-tested and fuzzed on its own.

pub mod address;
pub mod capability;
pub mod command;
pub mod data;
pub mod received;
pub mod reply;
pub mod submission;
