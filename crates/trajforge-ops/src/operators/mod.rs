//! One file per operator; [`crate::registry`] lists them.

pub mod cap_per_instance;
pub mod code_health;
pub mod decontaminate;
pub mod ends_with_finish;
pub mod exact_dedupe;
pub mod max_assistant_turns;
pub mod max_failed_edits;
pub mod near_dedupe;
pub mod no_execution;
pub mod non_empty_patch;
pub mod one_tool_call_per_turn;
pub mod pack;
pub mod patch_touches_tests;
pub mod tokenize;
pub mod valid_tool_calls;
pub mod where_sql;
pub mod write;
