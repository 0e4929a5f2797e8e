//! Every reader on its sample rows: read back the Parquet and compare with the source JSON.

use serde_json::Value;
use trajforge_schema::{Message, Trajectory};

use crate::common::{ingest_checked, sample};

fn source_json(rel: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(sample(rel)).expect("sample"))
        .expect("sample json")
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// Compares one OpenAI-style source message with its canonical form, field by field.
fn assert_same_message(src: &Value, got: &Message, at: &str) {
    assert_eq!(src["role"].as_str(), Some(got.role.as_str()), "{at} role");
    assert_eq!(text(&src["content"]), got.content, "{at} content");
    let calls = src["tool_calls"].as_array().cloned().unwrap_or_default();
    assert_eq!(calls.len(), got.tool_calls.len(), "{at} tool-call count");
    for (c, g) in calls.iter().zip(&got.tool_calls) {
        assert_eq!(
            c["function"]["name"].as_str(),
            Some(g.name.as_str()),
            "{at} tool name"
        );
        // Arguments are the source's exact text, byte for byte.
        assert_eq!(
            c["function"]["arguments"].as_str(),
            Some(g.arguments.as_str()),
            "{at} arguments"
        );
        assert_eq!(text(&c["id"]), g.id, "{at} call id");
    }
}

#[test]
fn nvidia_rows_round_trip_exactly() {
    let run = ingest_checked(
        &[sample("real/nvidia-swe-zero-openhands.sample.json")],
        None,
    );
    let src = source_json("real/nvidia-swe-zero-openhands.sample.json");
    let src = src.as_array().expect("array of rows");
    let got = run.rows;
    assert_eq!(got.len(), src.len());
    for (s, t) in src.iter().zip(&got) {
        assert_eq!(t.source_format, "nvidia_openhands");
        // `dataset` names the task's benchmark, not where the trajectory was published.
        assert_eq!(
            t.source_dataset.as_deref(),
            Some("nvidia/SWE-Zero-openhands-trajectories")
        );
        assert_eq!(s["trajectory_id"].as_str(), Some(t.trajectory_id.as_str()));
        assert_eq!(text(&s["instance_id"]), t.instance_id);
        assert_eq!(text(&s["model_patch"]), t.model_patch);
        let msgs = s["trajectory"].as_array().expect("trajectory");
        assert_eq!(msgs.len(), t.messages.len());
        for (i, (m, g)) in msgs.iter().zip(&t.messages).enumerate() {
            assert_same_message(m, g, &format!("{} message {i}", t.trajectory_id));
        }
        assert_tool_results_answer_the_preceding_calls(t);
        let source_calls: usize = msgs
            .iter()
            .map(|m| m["tool_calls"].as_array().map_or(0, Vec::len))
            .sum();
        assert_eq!(t.num_tool_calls as usize, source_calls);
        assert_eq!(
            t.num_assistant_turns as usize,
            msgs.iter().filter(|m| m["role"] == "assistant").count()
        );
        let metadata: Value =
            serde_json::from_str(t.metadata.as_deref().expect("metadata")).expect("metadata json");
        assert_eq!(
            metadata["dataset"], s["dataset"],
            "unused source fields are kept in metadata"
        );
    }
}

/// nvidia tool results carry no id: each must have been given the id of the call it answers.
fn assert_tool_results_answer_the_preceding_calls(t: &Trajectory) {
    let mut open: Vec<Option<String>> = Vec::new();
    for m in &t.messages {
        if m.role == "assistant" {
            open = m.tool_calls.iter().rev().map(|c| c.id.clone()).collect();
        } else if m.role == "tool" {
            let expected = open.pop().expect("a tool result follows an open call");
            assert_eq!(
                m.tool_call_id, expected,
                "{}: tool result paired with the wrong call",
                t.trajectory_id
            );
        }
    }
}

#[test]
fn swe_agent_traj_files_round_trip() {
    let files = [
        "real/swe-agent-marshmallow-1867.function_calling.traj",
        "real/swe-agent-marshmallow-1867.xml.traj",
    ];
    let run = ingest_checked(&files.map(sample), None);
    let got = run.rows;
    assert_eq!(got.len(), 2);
    for (file, t) in files.iter().zip(&got) {
        let src = source_json(file);
        assert_eq!(t.source_format, "swe_agent");
        assert_eq!(
            t.instance_id.as_deref(),
            Some("marshmallow-code__marshmallow-1867")
        );
        assert_eq!(
            t.instance_key.as_deref(),
            Some("marshmallow-code/marshmallow#1867")
        );
        assert_eq!(text(&src["info"]["submission"]), t.model_patch);
        assert_eq!(text(&src["info"]["exit_status"]), t.exit_status);
        let history = src["history"].as_array().expect("history");
        assert_eq!(history.len(), t.messages.len());
        for (i, (h, g)) in history.iter().zip(&t.messages).enumerate() {
            assert_same_message(h, g, &format!("{file} message {i}"));
            if let Some(ids) = h["tool_call_ids"].as_array() {
                assert_eq!(
                    ids[0].as_str(),
                    g.tool_call_id.as_deref(),
                    "{file} message {i} answers its call"
                );
            }
        }
        let metadata: Value =
            serde_json::from_str(t.metadata.as_deref().expect("metadata")).expect("metadata json");
        assert_eq!(
            metadata["trajectory"], src["trajectory"],
            "steps kept in metadata"
        );
        assert_eq!(metadata["replay_config"], src["replay_config"]);
        assert_eq!(metadata["info"]["model_stats"], src["info"]["model_stats"]);
        // `thought`, `action`, `agent`, `message_type` have no column: they stay with their message.
        assert_eq!(
            metadata["message_extras"]["2"]["action"],
            history[2]["action"]
        );
    }
    assert!(
        got[0].num_tool_calls > 0,
        "function-calling variant has calls"
    );
    assert_eq!(
        got[1].num_tool_calls, 0,
        "XML text-action variant keeps actions as text"
    );
}

#[test]
fn constructed_rows_of_every_other_format() {
    let run = ingest_checked(&[sample("constructed")], None);
    assert_eq!(
        run.manifest.counts.rejected, 0,
        "{:?}",
        run.manifest.rejected_by_kind
    );
    let got = run.rows;
    let by_format = |f: &str| {
        got.iter()
            .filter(|t| t.source_format == f)
            .collect::<Vec<_>>()
    };

    let nebius = by_format("nebius_openhands");
    assert_eq!(
        nebius.iter().map(|t| t.resolved).collect::<Vec<_>>(),
        vec![Some(true), Some(false)]
    );
    let tools: Value =
        serde_json::from_str(nebius[0].tools.as_deref().expect("tools")).expect("tools json");
    assert_eq!(tools[0]["function"]["name"], "execute_bash");
    assert_eq!(
        nebius[0].messages[3].tool_call_id.as_deref(),
        Some("call_1")
    );
    assert_eq!(nebius[0].messages[3].name.as_deref(), Some("execute_bash"));

    let gym = by_format("swe_gym");
    assert_eq!(gym.len(), 1, "zstd-compressed SWE-Gym row");
    assert_eq!(
        gym[0].trajectory_id,
        "gpt-4o_maxiter_30_N_v2.1-run_1/demo-org__pkg-102"
    );
    assert_eq!(gym[0].resolved, Some(true));
    assert!(
        gym[0]
            .metadata
            .as_deref()
            .expect("metadata")
            .contains("test_result")
    );

    let smith = by_format("swe_smith");
    assert_eq!(smith[0].num_assistant_turns, 3);
    assert_eq!(
        smith[0].tool_names,
        vec!["bash", "submit"],
        "two unambiguous XML blocks extracted, the ambiguous turn left as text"
    );
    assert_eq!(
        smith[0].messages[2].tool_calls[0].arguments,
        r#"{"command":"grep -rn 'def f' /testbed"}"#
    );
    assert_eq!(smith[0].instance_key.as_deref(), Some("demo-org/pkg#103"));

    let mini = by_format("mini_swe_agent");
    assert_eq!((mini[0].num_messages, mini[0].num_tool_calls), (5, 0));
    assert_eq!(mini[0].exit_status.as_deref(), Some("Submitted"));

    let chat = by_format("openai_chat");
    assert_eq!(chat.len(), 2, "gzip JSONL, both shapes");
    let log_meta: Value =
        serde_json::from_str(chat[1].metadata.as_deref().expect("metadata")).expect("json");
    assert_eq!(log_meta["model"], "qwen2.5-coder-32b");
    assert_eq!(log_meta["metadata"]["run"], "demo");
}

#[test]
fn forced_format_overrides_detection() {
    // The nebius rows read as nvidia rows: tools/resolved are then just metadata.
    let run = ingest_checked(
        &[sample("constructed/nebius-openhands.jsonl")],
        Some(trajforge_io::Format::NvidiaOpenhands),
    );
    assert_eq!(run.manifest.counts.written, 2);
    let got = run.rows;
    assert!(
        got.iter()
            .all(|t| t.source_format == "nvidia_openhands" && t.tools.is_none())
    );
    assert!(
        got[0]
            .metadata
            .as_deref()
            .expect("metadata")
            .contains("\"resolved\":1")
    );
}

/// The source rows of a constructed file, decompressed, as JSON values.
fn constructed_rows(rel: &str) -> Vec<Value> {
    use std::io::Read;
    let raw = std::fs::read(sample(rel)).expect("sample");
    let mut text = String::new();
    if rel.ends_with(".gz") {
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_string(&mut text)
            .expect("gunzip");
    } else if rel.ends_with(".zst") {
        text = String::from_utf8(zstd::decode_all(&raw[..]).expect("unzstd")).expect("utf8");
    } else {
        text = String::from_utf8(raw).expect("utf8");
    }
    if rel.contains(".jsonl") {
        text.lines()
            .map(|l| serde_json::from_str(l).expect("line"))
            .collect()
    } else {
        serde_json::from_str::<Vec<Value>>(&text).expect("array")
    }
}

#[test]
fn constructed_rows_round_trip_message_by_message() {
    let cases = [
        ("constructed/nebius-openhands.jsonl", "trajectory"),
        ("constructed/swe-gym-sampled.jsonl.zst", "messages"),
        ("constructed/openai-chat.jsonl.gz", "messages"),
        ("constructed/mini-swe-agent.json", "messages"),
        ("constructed/swe-smith.jsonl", "messages"),
    ];
    for (rel, key) in cases {
        let run = ingest_checked(&[sample(rel)], None);
        let got = run.rows;
        let src = constructed_rows(rel);
        assert_eq!(got.len(), src.len(), "{rel}");
        for (s, t) in src.iter().zip(&got) {
            // SWE-smith stores the chat as a JSON string.
            let messages = match &s[key] {
                Value::String(text) => {
                    serde_json::from_str::<Value>(text).expect("messages string")
                }
                other => other.clone(),
            };
            let messages = messages.as_array().expect("messages");
            assert_eq!(messages.len(), t.messages.len(), "{rel}");
            for (i, (m, g)) in messages.iter().zip(&t.messages).enumerate() {
                if t.source_format == "swe_smith" {
                    // Calls extracted from text are additions; role and text are unchanged.
                    assert_eq!(
                        (m["role"].as_str(), text(&m["content"])),
                        (Some(g.role.as_str()), g.content.clone()),
                        "{rel} {i}"
                    );
                } else {
                    assert_same_message(m, g, &format!("{rel} message {i}"));
                }
            }
        }
    }
}

#[test]
fn parquet_input_round_trips_synthetic_rows() {
    use trajforge_synth::{Kind, Planner, generate_row};
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("hero.parquet");
    let opts = trajforge_synth::SynthOptions {
        kind: Kind::Hero,
        count: 12,
        seed: 9,
        defect_rate: 0.5,
        batch_rows: 5,
    };
    trajforge_synth::synth(&opts, &path, &|_| {}).expect("synth");
    let mut planner = Planner::new(Kind::Hero, 9, 0.5);
    let expected: Vec<_> = (0..12)
        .map(|r| generate_row(&planner.plan(r), Kind::Hero, 9))
        .collect();
    let run = ingest_checked(&[path.display().to_string()], None);
    let got = run.rows;
    assert_eq!(got.len(), expected.len());
    for (e, t) in expected.iter().zip(&got) {
        // Generated rows in nvidia's layout are credited to synth, not to NVIDIA's dataset.
        assert_eq!(t.source_format, "nvidia_openhands");
        assert_eq!(t.source_dataset.as_deref(), Some("trajforge/synth-hero"));
        assert_eq!(
            (e.trajectory_id.as_str(), e.instance_id.as_str()),
            (
                t.trajectory_id.as_str(),
                t.instance_id.as_deref().unwrap_or("")
            )
        );
        assert_eq!(Some(e.model_patch.as_str()), t.model_patch.as_deref());
        assert_eq!(e.messages.len(), t.messages.len());
        for (m, g) in e.messages.iter().zip(&t.messages) {
            assert_eq!(
                (m.role, Some(m.content.as_str())),
                (g.role.as_str(), g.content.as_deref())
            );
            let calls: Vec<(&str, &str, &str)> = m
                .tool_calls
                .iter()
                .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str()))
                .collect();
            let got_calls: Vec<(&str, &str, &str)> = g
                .tool_calls
                .iter()
                .map(|c| {
                    (
                        c.id.as_deref().unwrap_or(""),
                        c.name.as_str(),
                        c.arguments.as_str(),
                    )
                })
                .collect();
            assert_eq!(calls, got_calls);
        }
    }
    // The user's --source names every row, synth's mark included.
    let out = dir.path().join("named");
    let mut opts = trajforge_io::IngestOptions::new(vec![path.display().to_string()], out.clone());
    opts.source = Some("lab/own-hero-run".into());
    trajforge_io::ingest(&opts, &trajforge_io::ingest::NoProgress).expect("ingest");
    let named = crate::common::trajectories(&out);
    assert_eq!(named.len(), 12);
    assert!(
        named
            .iter()
            .all(|t| t.source_dataset.as_deref() == Some("lab/own-hero-run"))
    );
}
