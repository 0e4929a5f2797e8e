//! The operator registry: every operator a pipeline may name, in documentation order.
//!
//! Operators are generic types ([`OperatorDef`]), so the registry is a list a visitor walks;
//! the pipeline crate's visitor turns each into a table entry (parser, JSON Schema, docs).

use crate::operator::OperatorDef;
use crate::operators::{
    cap_per_instance::CapPerInstance, code_health::CodeHealth, decontaminate::Decontaminate,
    ends_with_finish::EndsWithFinish, exact_dedupe::ExactDedupe,
    max_assistant_turns::MaxAssistantTurns, max_failed_edits::MaxFailedEdits,
    near_dedupe::NearDedupe, no_execution::NoExecution, non_empty_patch::NonEmptyPatch,
    one_tool_call_per_turn::OneToolCallPerTurn, pack::Pack, patch_touches_tests::PatchTouchesTests,
    tokenize::Tokenize, valid_tool_calls::ValidToolCalls, where_sql::Where, write::Write,
};

/// Receives each registered operator type.
pub trait RegistryVisitor {
    fn visit<O: OperatorDef>(&mut self);
}

/// Walks the registry in order.
pub fn visit_operators(v: &mut impl RegistryVisitor) {
    v.visit::<Where>();
    v.visit::<MaxAssistantTurns>();
    v.visit::<NonEmptyPatch>();
    v.visit::<OneToolCallPerTurn>();
    v.visit::<MaxFailedEdits>();
    v.visit::<ValidToolCalls>();
    v.visit::<EndsWithFinish>();
    v.visit::<NoExecution>();
    v.visit::<PatchTouchesTests>();
    v.visit::<CodeHealth>();
    v.visit::<Decontaminate>();
    v.visit::<ExactDedupe>();
    v.visit::<NearDedupe>();
    v.visit::<CapPerInstance>();
    v.visit::<Write>();
    v.visit::<Tokenize>();
    v.visit::<Pack>();
}

/// The registered operator names, in order.
pub fn operator_names() -> Vec<&'static str> {
    struct Names(Vec<&'static str>);
    impl RegistryVisitor for Names {
        fn visit<O: OperatorDef>(&mut self) {
            self.0.push(O::NAME);
        }
    }
    let mut names = Names(Vec::new());
    visit_operators(&mut names);
    names.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let names = operator_names();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        assert_eq!(names.len(), 17);
    }
}
