//! # trajforge-ops
//!
//! The pipeline's operators and the kernels behind them. Each operator is one file in
//! [`operators`] with a typed, `deny_unknown_fields` options struct and an [`OperatorDef`]
//! entry in [`registry`]; it plugs into DataFusion through its own traits — built-in
//! expressions, scalar UDFs ([`operator::BatchUdf`]) that read the canonical `messages` column
//! in place through [`view`], or window functions for steps that compare rows (dedupe, caps).
//! The kernels are plain Rust with their own tests: a shell-command reader ([`shell`]) for
//! `no_execution`, MinHash-LSH ([`minhash`]) for `near_dedupe`, tree-sitter syntax checks
//! ([`syntax`]) for `code_health`, and canonical conversation hashing ([`canon`]) for
//! `exact_dedupe`. [`operator`] explains how steps become one DataFusion plan.

pub mod canon;
pub mod error;
pub mod keep;
pub mod minhash;
pub mod operator;
pub mod operators;
pub mod registry;
pub mod shell;
pub mod syntax;
pub mod view;

pub use error::OpsError;
pub use operator::{Env, Operator, OperatorDef, StepCtx, StepKind};
pub use operators::pack::PackOptions;
pub use operators::tokenize::TokenizeOptions;
pub use operators::write::WriteOptions;
pub use registry::{RegistryVisitor, operator_names, visit_operators};

/// Rows per Parquet file of the `tokenize` and `pack` steps (and `trajforge tokenize`): packed
/// rows of up to `pack_len` tokens, or one trajectory per row when not packed. At 32,768 tokens a
/// packed file holds ~34M tokens (~150 MB of ids and masks); tokenized files hold about as many
/// on the ZERO corpus, whose rows average ~30k tokens.
pub const DEFAULT_ROWS_PER_SHARD: usize = 1024;
