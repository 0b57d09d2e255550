//! Pure IMAP grammar and response formatting: no I/O, so every piece is unit
//! tested with hostile input.

pub mod command;
pub mod date;
pub mod format;
pub mod seqset;
pub mod utf7;

#[cfg(test)]
mod fuzz;

pub use command::{
    AppendHead, Command, FetchAtt, ListCommand, ParseError, SearchKey, SearchReturn, Section,
    SectionText, StatusItem, before_literal, literal_suffix, parse, parse_append_head,
    parse_append_next, tag_of,
};
pub use seqset::SeqSet;
