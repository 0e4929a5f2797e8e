//! The model's own chat template, rendered the way `transformers` renders it: a Jinja sandbox
//! with `trim_blocks` and `lstrip_blocks`, `raise_exception`, and `tojson` as Python's
//! `json.dumps(x, ensure_ascii=False)` (minijinja's built-in differs in separators, escaping and
//! key order). Conversations go in as OpenAI chat messages with tool-call `arguments` decoded
//! from their stored JSON text into objects, as `apply_chat_template(messages, tools=…)` takes
//! them: passing the text would make the template's `tojson` encode it a second time.

use std::path::Path;

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind};
use trajforge_schema::Message;

use crate::TokenizeError;
use crate::pyjson::{self, DumpOptions, Json};

/// A compiled chat template.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
}

const NAME: &str = "chat";

/// `tojson` as transformers defines it: `json.dumps(x, ensure_ascii=False, indent=None,
/// separators=None, sort_keys=False)`, the keywords honoured (`indent` is refused rather than
/// rendered differently).
fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let mut opts = DumpOptions::default();
    if let Some(v) = kwargs.get::<Option<bool>>("ensure_ascii")? {
        opts.ensure_ascii = v;
    }
    if let Some(v) = kwargs.get::<Option<bool>>("sort_keys")? {
        opts.sort_keys = v;
    }
    if let Some(seps) = kwargs.get::<Option<Vec<String>>>("separators")? {
        let [item, key] = <[String; 2]>::try_from(seps).map_err(|_| {
            Error::new(
                ErrorKind::InvalidOperation,
                "tojson: separators must be a pair",
            )
        })?;
        (opts.item_separator, opts.key_separator) = (item, key);
    }
    if kwargs
        .get::<Option<Value>>("indent")?
        .is_some_and(|v| !v.is_none())
    {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "tojson(indent=…) is not supported",
        ));
    }
    kwargs.assert_all_used()?;
    Ok(Value::from_safe_string(pyjson::dumps_with(
        &to_json(&value)?,
        &opts,
    )))
}

/// A template value as JSON (what Python's encoder would see).
fn to_json(v: &Value) -> Result<Json, Error> {
    Ok(match v.kind() {
        ValueKind::Undefined | ValueKind::None => Json::Null,
        ValueKind::Bool => Json::Bool(v.is_true()),
        ValueKind::Number => {
            if minijinja::tests::is_integer(v) {
                match i64::try_from(v.clone()) {
                    Ok(i) => Json::Int(i),
                    Err(_) => Json::UInt(u64::try_from(v.clone())?),
                }
            } else {
                Json::Float(f64::try_from(v.clone())?)
            }
        }
        ValueKind::String => Json::Str(v.as_str().unwrap_or_default().to_string()),
        ValueKind::Seq | ValueKind::Iterable => Json::Array(
            v.try_iter()?
                .map(|x| to_json(&x))
                .collect::<Result<_, _>>()?,
        ),
        ValueKind::Map => {
            let mut items = Vec::new();
            for key in v.try_iter()? {
                let item = v.get_item(&key)?;
                let key = key
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| key.to_string());
                items.push((key, to_json(&item)?));
            }
            Json::Object(items)
        }
        other => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("tojson: cannot encode a {other:?}"),
            ));
        }
    })
}

fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

impl ChatTemplate {
    /// Compiles `source` (Jinja text).
    pub fn new(source: &str) -> Result<ChatTemplate, TokenizeError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_filter("tojson", tojson);
        env.add_function("raise_exception", raise_exception);
        env.add_template_owned(NAME, source.to_string())
            .map_err(|e| TokenizeError::Config(format!("chat template does not compile: {e}")))?;
        Ok(ChatTemplate { env })
    }

    /// The `chat_template` of a tokenizer folder's `tokenizer_config.json` (a string, or the
    /// entry named `default` of a list), else its `chat_template.jinja`.
    pub fn from_dir(dir: &Path) -> Result<ChatTemplate, TokenizeError> {
        let config = dir.join("tokenizer_config.json");
        if let Ok(text) = std::fs::read_to_string(&config)
            && let Some(t) = ChatTemplate::from_config(&text, &config.display().to_string())?
        {
            return Ok(t);
        }
        let jinja = dir.join("chat_template.jinja");
        let text = std::fs::read_to_string(&jinja).map_err(|_| {
            TokenizeError::Config(format!(
                "{}: no chat_template in tokenizer_config.json and no chat_template.jinja",
                dir.display()
            ))
        })?;
        ChatTemplate::new(&text)
    }

    /// The `chat_template` of a `tokenizer_config.json` text (`origin` names it in errors).
    pub fn from_config_text(text: &str, origin: &str) -> Result<ChatTemplate, TokenizeError> {
        ChatTemplate::from_config(text, origin)?
            .ok_or_else(|| TokenizeError::Config(format!("{origin}: no chat_template")))
    }

    fn from_config(text: &str, origin: &str) -> Result<Option<ChatTemplate>, TokenizeError> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| TokenizeError::Config(format!("{origin}: not JSON: {e}")))?;
        let source = match v.get("chat_template") {
            Some(serde_json::Value::String(s)) => Some(s.as_str()),
            Some(serde_json::Value::Array(named)) => named
                .iter()
                .find(|t| t["name"] == "default")
                .and_then(|t| t["template"].as_str()),
            _ => None,
        };
        source.map(ChatTemplate::new).transpose()
    }

    /// Renders a conversation (no generation prompt). `tools`: the JSON schemas passed as
    /// `tools=`, or none.
    pub fn render(
        &self,
        messages: &[Message],
        tools: Option<&[Json]>,
    ) -> Result<String, TokenizeError> {
        let msgs = messages
            .iter()
            .enumerate()
            .map(|(i, m)| message_value(i, m))
            .collect::<Result<Vec<Json>, _>>()?;
        self.render_json(&msgs, tools)
    }

    /// Renders messages already in OpenAI JSON form.
    pub fn render_json(
        &self,
        messages: &[Json],
        tools: Option<&[Json]>,
    ) -> Result<String, TokenizeError> {
        let values: Vec<Value> = messages.iter().map(Value::from_serialize).collect();
        self.render_values(&values, &tools_value(tools), false)
    }

    /// Renders template values (see [`message_value`] and [`tools_value`]); the caller keeps
    /// them converted once when it renders many prefixes of one conversation.
    pub fn render_values(
        &self,
        messages: &[Value],
        tools: &Value,
        add_generation_prompt: bool,
    ) -> Result<String, TokenizeError> {
        let template = self
            .env
            .get_template(NAME)
            .map_err(|e| TokenizeError::Internal(e.to_string()))?;
        template
            .render(minijinja::context! {
                messages => Value::from(messages.to_vec()),
                tools => tools,
                add_generation_prompt => add_generation_prompt,
            })
            .map_err(|e| TokenizeError::Data(format!("chat template: {e:#}")))
    }
}

/// The `tools=` argument as a template value (`None` when there are none).
pub fn tools_value(tools: Option<&[Json]>) -> Value {
    tools.map_or(Value::from(()), Value::from_serialize)
}

/// One canonical message as the OpenAI JSON `apply_chat_template` takes, tool-call arguments
/// decoded; arguments that are not a JSON object are a data error naming the message.
pub fn message_value(index: usize, m: &Message) -> Result<Json, TokenizeError> {
    let mut items: Vec<(String, Json)> = vec![("role".into(), Json::Str(m.role.clone()))];
    let content = m.content.clone().map_or(Json::Null, Json::Str);
    items.push(("content".into(), content));
    if let Some(r) = &m.reasoning_content {
        items.push(("reasoning_content".into(), Json::Str(r.clone())));
    }
    if !m.tool_calls.is_empty() {
        let mut calls = Vec::with_capacity(m.tool_calls.len());
        for (k, c) in m.tool_calls.iter().enumerate() {
            let arguments = Json::parse(&c.arguments).map_err(|e| {
                TokenizeError::Data(format!(
                    "message {index}, tool call {k} ({}): arguments are not JSON: {e}",
                    c.name
                ))
            })?;
            if !arguments.is_object() {
                return Err(TokenizeError::Data(format!(
                    "message {index}, tool call {k} ({}): arguments are not a JSON object",
                    c.name
                )));
            }
            let mut call = Vec::new();
            if let Some(id) = &c.id {
                call.push(("id".into(), Json::Str(id.clone())));
            }
            call.push(("type".into(), Json::Str("function".into())));
            call.push((
                "function".into(),
                Json::Object(vec![
                    ("name".into(), Json::Str(c.name.clone())),
                    ("arguments".into(), arguments),
                ]),
            ));
            calls.push(Json::Object(call));
        }
        items.push(("tool_calls".into(), Json::Array(calls)));
    }
    if let Some(id) = &m.tool_call_id {
        items.push(("tool_call_id".into(), Json::Str(id.clone())));
    }
    if let Some(name) = &m.name {
        items.push(("name".into(), Json::Str(name.clone())));
    }
    Ok(Json::Object(items))
}

#[cfg(test)]
mod tests {
    use super::*;
    use trajforge_schema::ToolCall;

    const QWEN: &str = include_str!("../assets/qwen2.5-coder/chat_template.qwen2_5.jinja");

    fn conversation(arguments: &str) -> Vec<Message> {
        let mut call = Message::text("assistant", "Let me look.");
        call.tool_calls = vec![ToolCall {
            id: Some("call_1".into()),
            name: "execute_bash".into(),
            arguments: arguments.into(),
        }];
        let mut result = Message::text("tool", "a.py\nb.py");
        result.tool_call_id = Some("call_1".into());
        vec![
            Message::text("system", "You are a coder."),
            Message::text("user", "Fix the bug."),
            call,
            result,
            Message::text("assistant", "Done."),
        ]
    }

    /// The Qwen2.5 template over a tool-using conversation, checked against the text its Jinja
    /// source spells out: arguments encoded once, in Python's format, keys in stored order.
    #[test]
    fn qwen_renders_tools_and_calls_once_in_python_json() {
        let t = ChatTemplate::new(QWEN).expect("template compiles");
        let tool = Json::parse(
            r#"{"type": "function", "function": {"name": "execute_bash", "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}}"#,
        )
        .expect("json");
        let text = t
            .render(
                &conversation(r#"{"timeout":10.0,"command":"ls -la\n# é"}"#),
                Some(std::slice::from_ref(&tool)),
            )
            .expect("renders");
        let expected = concat!(
            "<|im_start|>system\nYou are a coder.\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n",
            "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n",
            r#"{"type": "function", "function": {"name": "execute_bash", "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}}"#,
            "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n",
            "<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n",
            "<|im_start|>user\nFix the bug.<|im_end|>\n",
            "<|im_start|>assistant\nLet me look.\n<tool_call>\n",
            r#"{"name": "execute_bash", "arguments": {"timeout": 10.0, "command": "ls -la\n# é"}}"#,
            "\n</tool_call><|im_end|>\n",
            "<|im_start|>user\n<tool_response>\na.py\nb.py\n</tool_response><|im_end|>\n",
            "<|im_start|>assistant\nDone.<|im_end|>\n",
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn arguments_that_are_not_a_json_object_are_a_data_error() {
        let t = ChatTemplate::new(QWEN).expect("template compiles");
        for bad in ["{\"command\": ", "[1, 2]", "\"ls\""] {
            let err = t.render(&conversation(bad), None).expect_err(bad);
            let msg = err.to_string();
            assert!(
                msg.contains("message 2, tool call 0 (execute_bash)"),
                "{msg}"
            );
        }
    }

    /// transformers' `tojson` keywords change the output as `json.dumps`'s do (CPython strings).
    #[test]
    fn tojson_keywords_follow_json_dumps() {
        let t = ChatTemplate::new(concat!(
            "{{ messages[0] | tojson }}|",
            "{{ messages[0] | tojson(sort_keys=true, separators=[',', ':'], ensure_ascii=true) }}",
        ))
        .expect("compiles");
        let msg = Json::parse(r#"{"role": "user", "content": "é"}"#).expect("json");
        let text = t.render_json(&[msg], None).expect("renders");
        assert_eq!(
            text,
            r#"{"role": "user", "content": "é"}|{"content":"\u00e9","role":"user"}"#
        );
        let indented = ChatTemplate::new("{{ messages | tojson(indent=2) }}").expect("compiles");
        assert!(indented.render_json(&[], None).is_err());
    }

    #[test]
    fn the_tokenizer_config_carries_the_same_template() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/qwen2.5-coder");
        let from_dir = ChatTemplate::from_dir(&dir).expect("loads");
        let inline = ChatTemplate::new(QWEN).expect("compiles");
        let msgs = conversation(r#"{"command": "ls"}"#);
        assert_eq!(
            from_dir.render(&msgs, None).expect("renders"),
            inline.render(&msgs, None).expect("renders")
        );
    }
}
