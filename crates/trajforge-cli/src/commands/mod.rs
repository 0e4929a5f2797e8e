//! One module per subcommand.

pub mod ingest;
pub mod inspect;
pub mod inspect_tokens;
pub mod publish;
pub mod report;
pub mod run;
pub mod sql;
pub mod synth;
pub mod tokenize;
pub mod train;
