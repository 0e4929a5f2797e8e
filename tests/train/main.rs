//! The trainer's acceptance tests: parity with PyTorch and transformers, model folders in both
//! directions. Python-backed tests are required under CI (`CI=true`): there a missing torch is
//! a failure naming the pip line, never a skip.

mod common;
mod models;
mod parity;
mod shards;
