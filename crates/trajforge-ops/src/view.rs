//! Zero-copy views over the canonical `messages` column.
//!
//! Operators read tens of gigabytes of message text per run; copying it into owned rows would
//! cost more than the checks themselves. A [`MessagesView`] borrows the Arrow buffers and hands
//! out `&str` slices per message and per tool call.

use arrow::array::{Array, ArrayRef, AsArray, GenericListArray, LargeStringArray, StringArray};
use arrow::datatypes::DataType;

use crate::OpsError;

/// The `messages` column of one batch, viewed in place.
#[derive(Debug, Clone, Copy)]
pub struct MessagesView<'a> {
    list: &'a GenericListArray<i32>,
    role: &'a StringArray,
    content: &'a LargeStringArray,
    reasoning: &'a LargeStringArray,
    tool_call_id: &'a StringArray,
    name: &'a StringArray,
    calls: &'a GenericListArray<i32>,
    call_id: &'a StringArray,
    call_name: &'a StringArray,
    call_args: &'a LargeStringArray,
}

/// One message of one row.
#[derive(Debug, Clone, Copy)]
pub struct Msg<'a> {
    view: MessagesView<'a>,
    index: usize,
}

/// One tool call of one assistant message.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub id: Option<&'a str>,
    pub name: &'a str,
    pub arguments: &'a str,
}

fn field<'a>(s: &'a arrow::array::StructArray, name: &str) -> Result<&'a ArrayRef, OpsError> {
    s.column_by_name(name).ok_or_else(|| {
        OpsError::Data(format!(
            "messages column has no `{name}` field; is the input in the canonical schema?"
        ))
    })
}

fn utf8<'a>(a: &'a ArrayRef, what: &str) -> Result<&'a StringArray, OpsError> {
    a.as_string_opt::<i32>()
        .ok_or_else(|| OpsError::Data(format!("{what} is {}, expected Utf8", a.data_type())))
}

fn large_utf8<'a>(a: &'a ArrayRef, what: &str) -> Result<&'a LargeStringArray, OpsError> {
    a.as_string_opt::<i64>()
        .ok_or_else(|| OpsError::Data(format!("{what} is {}, expected LargeUtf8", a.data_type())))
}

fn list<'a>(a: &'a ArrayRef, what: &str) -> Result<&'a GenericListArray<i32>, OpsError> {
    a.as_list_opt::<i32>()
        .ok_or_else(|| OpsError::Data(format!("{what} is {}, expected List", a.data_type())))
}

impl<'a> MessagesView<'a> {
    /// Views a `messages` array in the canonical layout, or says which part does not match.
    pub fn try_new(array: &'a ArrayRef) -> Result<MessagesView<'a>, OpsError> {
        let messages = list(array, "messages")?;
        let DataType::Struct(_) = messages.values().data_type() else {
            return Err(OpsError::Data("messages items are not structs".into()));
        };
        let msgs = messages.values().as_struct();
        let calls = list(field(msgs, "tool_calls")?, "messages.tool_calls")?;
        let call = calls
            .values()
            .as_struct_opt()
            .ok_or_else(|| OpsError::Data("messages.tool_calls items are not structs".into()))?;
        Ok(MessagesView {
            list: messages,
            role: utf8(field(msgs, "role")?, "messages.role")?,
            content: large_utf8(field(msgs, "content")?, "messages.content")?,
            reasoning: large_utf8(
                field(msgs, "reasoning_content")?,
                "messages.reasoning_content",
            )?,
            tool_call_id: utf8(field(msgs, "tool_call_id")?, "messages.tool_call_id")?,
            name: utf8(field(msgs, "name")?, "messages.name")?,
            calls,
            call_id: utf8(field(call, "id")?, "tool_calls.id")?,
            call_name: utf8(field(call, "name")?, "tool_calls.name")?,
            call_args: large_utf8(field(call, "arguments")?, "tool_calls.arguments")?,
        })
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The messages of row `row` (none when the row's list is null).
    pub fn row(&self, row: usize) -> impl DoubleEndedIterator<Item = Msg<'a>> + 'a {
        let view = *self;
        let range = if self.list.is_null(row) {
            0..0
        } else {
            let offsets = self.list.value_offsets();
            offsets[row] as usize..offsets[row + 1] as usize
        };
        range.map(move |index| Msg { view, index })
    }
}

fn opt_str(a: &StringArray, i: usize) -> Option<&str> {
    (!a.is_null(i)).then(|| a.value(i))
}

impl<'a> Msg<'a> {
    pub fn role(&self) -> &'a str {
        self.view.role.value(self.index)
    }

    /// The text content; empty when absent.
    pub fn content(&self) -> &'a str {
        let c = self.view.content;
        if c.is_null(self.index) {
            ""
        } else {
            c.value(self.index)
        }
    }

    pub fn tool_call_id(&self) -> Option<&'a str> {
        opt_str(self.view.tool_call_id, self.index)
    }

    /// The model's reasoning text (`reasoning_content`), if the source kept it.
    pub fn reasoning(&self) -> Option<&'a str> {
        let r = self.view.reasoning;
        (!r.is_null(self.index)).then(|| r.value(self.index))
    }

    /// The message's `name` (the tool name on some tool results), if any.
    pub fn name(&self) -> Option<&'a str> {
        opt_str(self.view.name, self.index)
    }

    pub fn is_assistant(&self) -> bool {
        self.role() == "assistant"
    }

    pub fn calls(&self) -> impl ExactSizeIterator<Item = Call<'a>> + 'a {
        let v = self.view;
        let offsets = v.calls.value_offsets();
        let range = if v.calls.is_null(self.index) {
            0..0
        } else {
            offsets[self.index] as usize..offsets[self.index + 1] as usize
        };
        range.map(move |j| Call {
            id: opt_str(v.call_id, j),
            name: v.call_name.value(j),
            arguments: v.call_args.value(j),
        })
    }

    pub fn num_calls(&self) -> usize {
        self.calls().len()
    }
}

/// A tool call together with the observation that answered it, if any.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    /// 1-based index of the assistant turn that made the call.
    pub turn: usize,
    pub call: Call<'a>,
    pub result: Option<&'a str>,
}

/// Pairs every tool call of a row with its result: by `tool_call_id` when the result names one,
/// otherwise with the oldest unanswered call (the order OpenHands and SWE-agent emit them in).
pub fn exchanges<'a>(view: &MessagesView<'a>, row: usize) -> Vec<Exchange<'a>> {
    let mut out: Vec<Exchange<'a>> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    let mut turn = 0;
    for msg in view.row(row) {
        if msg.is_assistant() {
            turn += 1;
            for call in msg.calls() {
                open.push(out.len());
                out.push(Exchange {
                    turn,
                    call,
                    result: None,
                });
            }
        } else if msg.role() == "tool" {
            let by_id = msg
                .tool_call_id()
                .and_then(|id| open.iter().position(|&k| out[k].call.id == Some(id)));
            let slot = by_id.or((!open.is_empty()).then_some(0));
            if let Some(pos) = slot {
                let k = open.remove(pos);
                out[k].result = Some(msg.content());
            }
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Arc;
    use trajforge_schema::{Message, ToolCall, Trajectory, batch};

    /// A canonical batch of `rows`, derived fields filled.
    pub fn batch_of(rows: Vec<Trajectory>) -> arrow::record_batch::RecordBatch {
        let rows: Vec<Trajectory> = rows
            .into_iter()
            .map(|mut t| {
                trajforge_schema::derive::fill_derived(&mut t);
                t
            })
            .collect();
        batch::to_record_batch(&rows).expect("rows convert to the canonical batch")
    }

    pub fn call(name: &str, args: serde_json::Value) -> Message {
        let mut m = Message::text("assistant", "Let me look.");
        m.tool_calls = vec![ToolCall {
            id: Some(format!("call_{name}")),
            name: name.into(),
            arguments: args.to_string(),
        }];
        m
    }

    pub fn tool(content: &str) -> Message {
        Message::text("tool", content)
    }

    pub fn traj(id: &str, messages: Vec<Message>) -> Trajectory {
        let mut t = Trajectory::empty();
        t.trajectory_id = id.into();
        t.source_format = "test".into();
        t.messages = messages;
        t
    }

    #[test]
    fn views_roles_content_and_calls_in_place() {
        let b = batch_of(vec![traj(
            "a",
            vec![
                call("execute_bash", serde_json::json!({"command": "ls"})),
                tool("README.md"),
            ],
        )]);
        let col = Arc::clone(b.column_by_name("messages").expect("messages"));
        let view = MessagesView::try_new(&col).expect("canonical layout");
        let msgs: Vec<Msg> = view.row(0).collect();
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].role(), "assistant");
        let calls: Vec<Call> = msgs[0].calls().collect();
        assert_eq!(calls[0].name, "execute_bash");
        assert_eq!(calls[0].arguments, r#"{"command":"ls"}"#);
        let ex = exchanges(&view, 0);
        assert_eq!(ex.len(), 1);
        assert_eq!(ex[0].result, Some("README.md"));
        assert_eq!(ex[0].turn, 1);
    }

    #[test]
    fn rejects_a_column_that_is_not_messages() {
        let a: ArrayRef = Arc::new(StringArray::from(vec!["x"]));
        let err = MessagesView::try_new(&a).expect_err("not a list");
        assert!(err.to_string().contains("expected List"), "{err}");
    }
}
