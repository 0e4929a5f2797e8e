//! End-to-end tests: real and constructed inputs through the library and the `trajforge`
//! binary, read back from the Parquet it writes.

mod common;
mod determinism;
mod malformed;
mod msrv;
mod publish;
mod readers;
mod report;
mod run;
mod sql;
mod synth;
mod tokenize;
mod train;
