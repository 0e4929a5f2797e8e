//! Typed rows of the canonical schema.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which SFT stage of the SWE-ZERO → SWE-HERO recipe a trajectory belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Execution-free rollouts (the agent may not run code).
    Zero,
    /// Execution-based rollouts.
    Hero,
}

impl Stage {
    /// The lowercase name stored in the `stage` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Zero => "zero",
            Stage::Hero => "hero",
        }
    }
}

/// The chat roles trajforge accepts (OpenAI's, plus the legacy `function` and newer `developer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    Function,
}

impl Role {
    /// Parses a role name; `None` for anything else.
    pub fn parse(name: &str) -> Option<Role> {
        Some(match name {
            "system" => Role::System,
            "developer" => Role::Developer,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" => Role::Tool,
            "function" => Role::Function,
            _ => return None,
        })
    }
}

/// One tool call made by an assistant turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ToolCall {
    /// The call id the source gave (`null` when it had none).
    pub id: Option<String>,
    /// The function name.
    pub name: String,
    /// The arguments exactly as the source wrote them: JSON text, never re-encoded.
    pub arguments: String,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Message {
    /// `system`, `developer`, `user`, `assistant`, `tool` or `function`.
    pub role: String,
    /// The text; `null` when the source had none (an assistant turn made only of tool calls).
    pub content: Option<String>,
    /// Reasoning text kept apart from the content, when the source has it.
    pub reasoning_content: Option<String>,
    /// Tool calls of an assistant turn (empty otherwise).
    pub tool_calls: Vec<ToolCall>,
    /// For a tool message: the id of the call it answers (paired by order when the source omits it).
    pub tool_call_id: Option<String>,
    /// For a tool message: the tool's name, when the source gives it.
    pub name: Option<String>,
}

/// One agent trajectory: the canonical row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Trajectory {
    /// The source's id, or a stable one derived from the source file and record number.
    pub trajectory_id: String,
    /// The task id, e.g. `django__django-11099`.
    pub instance_id: Option<String>,
    /// `owner/repo` of the task's repository.
    pub repo: Option<String>,
    /// The published dataset the row came from, e.g. `nvidia/SWE-Zero-openhands-trajectories`.
    pub source_dataset: Option<String>,
    /// The reader that parsed it: `nvidia_openhands`, `nebius_openhands`, `swe_smith`, `swe_agent`,
    /// `mini_swe_agent`, `swe_gym` or `openai_chat`.
    pub source_format: String,
    /// The license the source row declares.
    pub license: Option<String>,
    /// `zero`, `hero` or null.
    pub stage: Option<Stage>,
    /// The agent scaffold: `openhands`, `swe-agent`, `mini-swe-agent`, …
    pub scaffold: Option<String>,
    /// The conversation in order.
    pub messages: Vec<Message>,
    /// JSON text of the function schemas offered to the model, when the source has them.
    pub tools: Option<String>,
    /// The final patch (unified diff).
    pub model_patch: Option<String>,
    /// Whether the patch resolved the task, when known.
    pub resolved: Option<bool>,
    /// How the run ended (`submitted`, `finished`, …), when known.
    pub exit_status: Option<String>,
    /// JSON object text of every other field the source carried, so nothing is lost.
    pub metadata: Option<String>,
    /// Number of messages.
    pub num_messages: u32,
    /// Number of assistant messages.
    pub num_assistant_turns: u32,
    /// Number of tool calls over all assistant messages.
    pub num_tool_calls: u32,
    /// Distinct tool names called, sorted.
    pub tool_names: Vec<String>,
    /// UTF-8 bytes of all content, reasoning and tool-call arguments.
    pub content_bytes: u64,
    /// Paths the model patch touches, in patch order.
    pub patch_files: Vec<String>,
    /// Lines the patch adds.
    pub patch_added_lines: u32,
    /// Lines the patch removes.
    pub patch_removed_lines: u32,
    /// Normalised `owner/repo#PR` or `owner/repo@commit`, for decontamination.
    pub instance_key: Option<String>,
    /// xxh3-128 (32 hex digits) of the canonicalised messages; see [`crate::content_hash`].
    pub content_hash: String,
}

impl Message {
    /// A message with a role and text and nothing else.
    pub fn text(role: &str, content: &str) -> Message {
        Message {
            role: role.to_string(),
            content: Some(content.to_string()),
            reasoning_content: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }
}

impl Trajectory {
    /// A row with no messages and empty derived fields; readers fill it, then call
    /// [`crate::fill_derived`].
    pub fn empty() -> Trajectory {
        Trajectory {
            trajectory_id: String::new(),
            instance_id: None,
            repo: None,
            source_dataset: None,
            source_format: String::new(),
            license: None,
            stage: None,
            scaffold: None,
            messages: Vec::new(),
            tools: None,
            model_patch: None,
            resolved: None,
            exit_status: None,
            metadata: None,
            num_messages: 0,
            num_assistant_turns: 0,
            num_tool_calls: 0,
            tool_names: Vec::new(),
            content_bytes: 0,
            patch_files: Vec::new(),
            patch_added_lines: 0,
            patch_removed_lines: 0,
            instance_key: None,
            content_hash: String::new(),
        }
    }
}
