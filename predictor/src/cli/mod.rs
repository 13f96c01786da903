//! The library side of the `predictor` command line: what each subcommand does ([`commands`]), the values
//! its flags parse ([`values`]; durations and their old spellings, for the operator's too: [`durations`]),
//! its progress display ([`progress`]) and how it prints reports ([`output`]).
//! `bin/predictor.rs` only declares the flags and calls [`commands`].

pub mod commands;
pub mod durations;
pub mod output;
pub mod progress;
pub mod values;
