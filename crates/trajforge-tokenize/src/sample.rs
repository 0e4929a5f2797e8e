//! One trajectory → one training sample: rendered with the model's chat template, tokenized,
//! loss-masked on assistant turns, held to a token budget.
//!
//! Supervised spans come from the rendering itself, by prefix differences: assistant message
//! `i` starts where the first `i` messages rendered with the generation prompt end, and ends
//! where the first `i + 1` messages rendered end (the whitespace after the end-of-turn token
//! belongs to the template, not to the model). Each prefix must be a prefix of the whole
//! rendering, else the template is refused: spans are never guessed. A token is supervised
//! when its text overlaps a span (see [`mask_from_spans`]).

use minijinja::value::Value;
use trajforge_schema::{FailureRule, Message};

use crate::TokenizeError;
use crate::model::{Model, SegmentCache};
use crate::pyjson::Json;
use crate::template::{ChatTemplate, message_value, tools_value};

/// Which assistant turns carry the loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Turns {
    /// Every assistant turn (default).
    #[default]
    All,
    /// Only the final assistant turn.
    Last,
}

/// What to do with a sample longer than `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LengthPolicy {
    /// Filter the row (default, as the paper does).
    #[default]
    Drop,
    /// Drop the oldest exchanges after the first user turn until it fits, cutting only at turn
    /// boundaries; the system prompt, tools, first user turn and final exchange stay.
    TruncateTurns,
}

/// Options of the tokenize step.
#[derive(Debug, Clone, Default)]
pub struct SampleOptions {
    pub turns: Turns,
    /// Take the loss off assistant turns whose tool call failed.
    pub mask_failed_tool_calls: bool,
    /// How a failed tool result is recognised.
    pub failure: FailureRule,
    /// Longest sample kept, in tokens.
    pub max_tokens: Option<u32>,
    pub length_policy: LengthPolicy,
}

/// A tokenized, loss-masked sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub input_ids: Vec<u32>,
    /// 1 where the token carries the loss.
    pub loss_mask: Vec<u8>,
    pub supervised_tokens: u32,
    /// Exchanges removed to fit `max_tokens` (`truncate_turns`).
    pub dropped_exchanges: u32,
}

impl Sample {
    pub fn total_tokens(&self) -> u32 {
        self.input_ids.len() as u32
    }
}

/// Why a row yields no sample (the ledger's reasons).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Kept(Sample),
    /// Filtered: `(reason, detail)`; reasons are `too_long` and `no_supervised_tokens`.
    Filtered(&'static str, String),
}

/// A rendered conversation with the byte spans that carry the loss.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub text: String,
    /// `(start, end)` byte ranges of supervised text, in order.
    pub spans: Vec<(usize, usize)>,
}

/// Renders `messages` and finds the supervised spans.
pub fn render_with_spans(
    template: &ChatTemplate,
    messages: &[Json],
    tools: Option<&[Json]>,
    supervised: &[bool],
) -> Result<Rendered, TokenizeError> {
    let values: Vec<Value> = messages.iter().map(Value::from_serialize).collect();
    let tools = tools_value(tools);
    let text = template.render_values(&values, &tools, false)?;
    let mut spans = Vec::new();
    for (i, _) in supervised.iter().enumerate().filter(|(_, s)| **s) {
        let start = template.render_values(&values[..i], &tools, true)?;
        let through = template.render_values(&values[..=i], &tools, false)?;
        for (prefix, what) in [(&start, "with the generation prompt"), (&through, "")] {
            if !text.starts_with(prefix.as_str()) {
                return Err(TokenizeError::Config(format!(
                    "chat template: the first {} messages rendered {what} are not a prefix of \
                     the whole conversation, so assistant spans cannot be derived from it",
                    if what.is_empty() { i + 1 } else { i },
                )));
            }
        }
        let end = start.len() + through[start.len()..].trim_end().len();
        if end > start.len() {
            spans.push((start.len(), end));
        }
    }
    Ok(Rendered { text, spans })
}

/// Which messages carry the loss under `opts`.
fn supervised_messages(messages: &[Message], opts: &SampleOptions) -> Vec<bool> {
    let mut sup: Vec<bool> = messages.iter().map(|m| m.role == "assistant").collect();
    if opts.mask_failed_tool_calls {
        for (i, m) in messages.iter().enumerate() {
            if m.tool_calls.is_empty() {
                continue;
            }
            let failed = messages[i + 1..]
                .iter()
                .take_while(|r| r.role == "tool")
                .any(|r| opts.failure.failed(r.content.as_deref().unwrap_or("")));
            if failed {
                sup[i] = false;
            }
        }
    }
    if opts.turns == Turns::Last
        && let Some(last) = messages.iter().rposition(|m| m.role == "assistant")
    {
        for (i, s) in sup.iter_mut().enumerate() {
            *s = *s && i == last;
        }
    }
    sup
}

/// Renders, tokenizes and masks `messages` as they are.
fn tokenize_messages(
    model: &Model,
    messages: &[Message],
    tools: Option<&[Json]>,
    opts: &SampleOptions,
    cache: &mut SegmentCache,
) -> Result<Sample, TokenizeError> {
    let json = messages
        .iter()
        .enumerate()
        .map(|(i, m)| message_value(i, m))
        .collect::<Result<Vec<_>, _>>()?;
    let rendered = render_with_spans(
        model.template(),
        &json,
        tools,
        &supervised_messages(messages, opts),
    )?;
    let enc = model.encode(&rendered.text, cache)?;
    let loss_mask = mask_from_spans(&enc.starts, rendered.text.len(), &rendered.spans);
    let supervised_tokens = loss_mask.iter().map(|&b| b as u32).sum();
    Ok(Sample {
        input_ids: enc.ids,
        loss_mask,
        supervised_tokens,
        dropped_exchanges: 0,
    })
}

/// 1 for each token whose text overlaps a span (spans sorted, disjoint), as transformers'
/// `return_assistant_tokens_mask` marks every token holding a character of a generation span.
/// A token that straddles a span's start (Qwen merges the `\n` after `assistant` with the
/// newlines an answer starts with) is supervised, so no assistant character goes unlearned.
/// Tokens tile the text: a token ends where the next one with a later start begins.
pub fn mask_from_spans(starts: &[u32], text_len: usize, spans: &[(usize, usize)]) -> Vec<u8> {
    let n = starts.len();
    let mut ends = vec![0usize; n];
    let mut next = text_len;
    for k in (0..n).rev() {
        ends[k] = next;
        if k == 0 || starts[k - 1] != starts[k] {
            next = starts[k] as usize;
        }
    }
    let mut mask = Vec::with_capacity(n);
    let mut j = 0;
    for (k, &s) in starts.iter().enumerate() {
        let (s, e) = (s as usize, ends[k].max(s as usize + 1));
        while j < spans.len() && spans[j].1 <= s {
            j += 1;
        }
        mask.push(u8::from(j < spans.len() && spans[j].0 < e));
    }
    mask
}

/// Indices where exchanges start: each assistant message after the first user message opens
/// one that runs until the next assistant message.
fn exchange_starts(messages: &[Message]) -> Vec<usize> {
    let Some(first_user) = messages.iter().position(|m| m.role == "user") else {
        return Vec::new();
    };
    (first_user + 1..messages.len())
        .filter(|&i| messages[i].role == "assistant")
        .collect()
}

/// The conversation without exchanges `1..=k` (1-based: the k oldest), the final one kept.
fn without_oldest(messages: &[Message], starts: &[usize], k: usize) -> Vec<Message> {
    let mut out = messages[..starts[0]].to_vec();
    out.extend_from_slice(&messages[starts[k]..]);
    out
}

/// Tokenizes one trajectory under `opts`.
pub fn tokenize(
    model: &Model,
    messages: &[Message],
    tools: Option<&[Json]>,
    opts: &SampleOptions,
    cache: &mut SegmentCache,
) -> Result<Outcome, TokenizeError> {
    let mut sample = tokenize_messages(model, messages, tools, opts, cache)?;
    if let Some(max) = opts.max_tokens.filter(|&m| sample.total_tokens() > m) {
        let whole = sample.total_tokens();
        let fitted = match opts.length_policy {
            LengthPolicy::Drop => None,
            LengthPolicy::TruncateTurns => {
                truncate_to_fit(model, messages, tools, opts, cache, max)?
            }
        };
        match fitted {
            Some(s) => sample = s,
            None => {
                return Ok(Outcome::Filtered(
                    "too_long",
                    format!("{whole} tokens > max_tokens {max}"),
                ));
            }
        }
    }
    if sample.supervised_tokens == 0 {
        return Ok(Outcome::Filtered(
            "no_supervised_tokens",
            format!("0 of {} tokens carry the loss", sample.total_tokens()),
        ));
    }
    Ok(Outcome::Kept(sample))
}

/// The longest suffix of exchanges that fits, found by bisection on how many of the oldest
/// are dropped (fewer dropped is never shorter); `None` when the final exchange alone is too
/// long.
fn truncate_to_fit(
    model: &Model,
    messages: &[Message],
    tools: Option<&[Json]>,
    opts: &SampleOptions,
    cache: &mut SegmentCache,
    max: u32,
) -> Result<Option<Sample>, TokenizeError> {
    let starts = exchange_starts(messages);
    if starts.len() < 2 {
        return Ok(None);
    }
    let attempt = |k: usize, cache: &mut SegmentCache| {
        let kept = without_oldest(messages, &starts, k);
        tokenize_messages(model, &kept, tools, opts, cache)
    };
    let (mut lo, mut hi) = (1, starts.len() - 1);
    let mut best = attempt(hi, cache)?;
    if best.total_tokens() > max {
        return Ok(None);
    }
    best.dropped_exchanges = hi as u32;
    while lo < hi {
        let mid = (lo + hi) / 2;
        let s = attempt(mid, cache)?;
        if s.total_tokens() <= max {
            best = s;
            best.dropped_exchanges = mid as u32;
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(Some(best))
}

#[cfg(test)]
#[path = "sample_tests.rs"]
mod tests;
