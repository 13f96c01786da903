//! The library side of the `predictor` command line: what each subcommand does ([`commands`]), the values
//! its flags parse ([`values`]; durations and their old spellings, for the operator's too: [`durations`]),
//! its progress display ([`progress`]) and how it prints reports ([`output`]).
//! `bin/predictor.rs` only declares the flags and calls [`commands`]. Without feature `serve` (the
//! operator's build), only [`durations`].

#[cfg(feature = "serve")]
pub mod commands;
pub mod durations;
#[cfg(feature = "serve")]
pub mod output;
#[cfg(feature = "serve")]
pub mod progress;
#[cfg(feature = "serve")]
pub mod values;
