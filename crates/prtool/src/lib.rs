//! `prtool`'s command-line definition, as a library so that its man page
//! and shell completions are generated from the same clap definition the
//! binary parses (see `crates/pr-dist`). Everything else lives in the binary.

#![forbid(unsafe_code)]

pub mod args;
mod parse;
