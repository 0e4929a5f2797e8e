use super::*;
use trajforge_schema::ToolCall;

fn model() -> Model {
    Model::qwen2_5_coder().expect("bundled tokenizer loads")
}

fn call(content: &str, id: &str, command: &str) -> Message {
    let mut m = Message::text("assistant", content);
    m.tool_calls = vec![ToolCall {
        id: Some(id.into()),
        name: "execute_bash".into(),
        arguments: format!("{{\"command\": {command:?}}}"),
    }];
    m
}

fn result(id: &str, text: &str) -> Message {
    let mut m = Message::text("tool", text);
    m.tool_call_id = Some(id.into());
    m
}

/// system, user, then `n` exchanges (call + result), then a final answer.
fn conversation(n: usize, failing: &[usize]) -> Vec<Message> {
    let mut msgs = vec![
        Message::text("system", "You are a coder."),
        Message::text("user", "Fix the bug in parse()."),
    ];
    for k in 0..n {
        let id = format!("call_{k}");
        msgs.push(call(&format!("Step {k}."), &id, &format!("cat f{k}.py")));
        let out = if failing.contains(&k) {
            format!("ERROR: f{k}.py not found")
        } else {
            format!("print({k})\n").repeat(20)
        };
        msgs.push(result(&id, &out));
    }
    msgs.push(Message::text("assistant", "Done: parse() fixed."));
    msgs
}

/// The supervised tokens, decoded run by run.
fn supervised_runs(m: &Model, s: &Sample) -> Vec<String> {
    let mut runs = Vec::new();
    let mut cur = Vec::new();
    for (id, bit) in s.input_ids.iter().zip(&s.loss_mask) {
        if *bit == 1 {
            cur.push(*id);
        } else if !cur.is_empty() {
            runs.push(m.decode(&std::mem::take(&mut cur)).expect("decodes"));
        }
    }
    if !cur.is_empty() {
        runs.push(m.decode(&cur).expect("decodes"));
    }
    runs
}

fn kept(o: Outcome) -> Sample {
    match o {
        Outcome::Kept(s) => s,
        Outcome::Filtered(r, d) => panic!("filtered: {r}: {d}"),
    }
}

fn run(msgs: &[Message], opts: &SampleOptions) -> Outcome {
    let m = model();
    tokenize(&m, msgs, None, opts, &mut SegmentCache::default()).expect("tokenizes")
}

#[test]
fn supervised_tokens_decode_to_the_assistant_turns_exactly() {
    let m = model();
    let msgs = conversation(2, &[]);
    let s = kept(
        tokenize(
            &m,
            &msgs,
            None,
            &SampleOptions::default(),
            &mut SegmentCache::default(),
        )
        .expect("ok"),
    );
    assert_eq!(
        supervised_runs(&m, &s),
        [
            "Step 0.\n<tool_call>\n{\"name\": \"execute_bash\", \"arguments\": {\"command\": \"cat f0.py\"}}\n</tool_call><|im_end|>",
            "Step 1.\n<tool_call>\n{\"name\": \"execute_bash\", \"arguments\": {\"command\": \"cat f1.py\"}}\n</tool_call><|im_end|>",
            "Done: parse() fixed.<|im_end|>",
        ]
    );
    assert_eq!(s.input_ids.len(), s.loss_mask.len());
    assert_eq!(
        s.supervised_tokens,
        s.loss_mask.iter().map(|&b| b as u32).sum::<u32>()
    );
    assert_eq!(
        m.decode(&s.input_ids).expect("decodes"),
        m.template().render(&msgs, None).expect("renders")
    );
}

#[test]
fn last_turn_only_and_failed_calls_masked() {
    let m = model();
    let msgs = conversation(3, &[1]);
    let last = SampleOptions {
        turns: Turns::Last,
        ..SampleOptions::default()
    };
    let s = kept(run(&msgs, &last));
    assert_eq!(supervised_runs(&m, &s), ["Done: parse() fixed.<|im_end|>"]);

    let failed = SampleOptions {
        mask_failed_tool_calls: true,
        ..SampleOptions::default()
    };
    let runs = supervised_runs(&m, &kept(run(&msgs, &failed)));
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert!(runs.iter().all(|r| !r.contains("cat f1.py")), "{runs:?}");
}

#[test]
fn a_row_without_supervised_tokens_is_filtered_with_a_reason() {
    let msgs = vec![
        Message::text("system", "s"),
        Message::text("user", "only a question"),
    ];
    match run(&msgs, &SampleOptions::default()) {
        Outcome::Filtered(reason, detail) => {
            assert_eq!(reason, "no_supervised_tokens");
            assert!(detail.starts_with("0 of "), "{detail}");
        }
        Outcome::Kept(_) => panic!("a row with nothing to learn was kept"),
    }
}

#[test]
fn too_long_is_dropped_by_default_and_truncated_at_turn_boundaries_on_request() {
    let m = model();
    let msgs = conversation(12, &[]);
    let full = kept(run(&msgs, &SampleOptions::default()));
    let max = full.total_tokens() / 2;
    let drop = SampleOptions {
        max_tokens: Some(max),
        ..SampleOptions::default()
    };
    assert!(matches!(
        run(&msgs, &drop),
        Outcome::Filtered("too_long", _)
    ));

    let truncate = SampleOptions {
        length_policy: LengthPolicy::TruncateTurns,
        ..drop
    };
    let s = kept(run(&msgs, &truncate));
    assert!(s.total_tokens() <= max);
    let k = s.dropped_exchanges as usize;
    assert!((1..12).contains(&k), "{k}");
    // The fewest exchanges were dropped: one fewer does not fit.
    let starts = exchange_starts(&msgs);
    let one_less = without_oldest(&msgs, &starts, k - 1);
    if k > 1 {
        let longer = kept(run(&one_less, &SampleOptions::default()));
        assert!(longer.total_tokens() > max);
    }
    let text = m.decode(&s.input_ids).expect("decodes");
    assert!(text.starts_with("<|im_start|>system\nYou are a coder.<|im_end|>\n<|im_start|>user\nFix the bug in parse().<|im_end|>\n<|im_start|>assistant\nStep "));
    assert!(text.ends_with("Done: parse() fixed.<|im_end|>\n"));
    assert!(!text.contains("cat f0.py"));
    assert!(text.contains("cat f11.py"));

    let tiny = SampleOptions {
        max_tokens: Some(20),
        ..truncate
    };
    assert!(matches!(
        run(&msgs, &tiny),
        Outcome::Filtered("too_long", _)
    ));
}

#[test]
fn a_template_whose_prefixes_are_not_prefixes_is_refused() {
    let reversed = ChatTemplate::new(
        "{% for m in messages|reverse %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
    )
    .expect("compiles");
    let msgs: Vec<Json> = conversation(1, &[])
        .iter()
        .enumerate()
        .map(|(i, m)| message_value(i, m).expect("json"))
        .collect();
    let values: Vec<Value> = msgs.iter().map(Value::from_serialize).collect();
    let whole = reversed
        .render_values(&values, &Value::from(()), false)
        .expect("renders");
    assert!(!whole.is_empty());
    let sup = [false, false, true, false, true];
    let err = render_with_spans(&reversed, &msgs, None, &sup).expect_err("refused");
    assert!(err.to_string().contains("not a prefix"), "{err}");
}

#[test]
fn mask_from_spans_marks_tokens_overlapping_a_span() {
    let starts = [0, 3, 5, 9, 12, 20];
    assert_eq!(
        mask_from_spans(&starts, 25, &[(3, 9), (12, 13)]),
        [0, 1, 1, 0, 1, 0]
    );
    // A token straddling a span start (4 in [3, 5)) and one ending in it (20..25 vs 24).
    assert_eq!(
        mask_from_spans(&starts, 25, &[(4, 5), (24, 30)]),
        [0, 1, 0, 0, 0, 1]
    );
    // Two tokens sharing one start (a multi-byte character split in two) share the verdict.
    assert_eq!(mask_from_spans(&[0, 2, 2, 4], 6, &[(3, 4)]), [0, 1, 1, 0]);
    assert_eq!(mask_from_spans(&starts, 25, &[]), [0; 6]);
}

/// An answer starting with newlines: Qwen's tokenizer merges them with the template's `\n`
/// after `assistant` into one token, which must carry the loss (transformers' assistant mask
/// marks it too), so the supervised text is the answer plus that one template newline.
#[test]
fn a_token_straddling_the_turn_start_is_supervised() {
    let m = model();
    let msgs = vec![
        Message::text("user", "Go."),
        Message::text("assistant", "\n\nSubmitting."),
    ];
    let s = kept(run(&msgs, &SampleOptions::default()));
    assert_eq!(supervised_runs(&m, &s), ["\n\n\nSubmitting.<|im_end|>"]);
}
