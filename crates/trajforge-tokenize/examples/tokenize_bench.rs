//! Benchmark driver for `bench/tokenize.sh` (one thread, the same rows for every contender).
//!
//! `tokenize_bench ROWS.parquet OUT_DIR`: reads canonical rows, writes `OUT_DIR/chat.jsonl`
//! (messages with decoded arguments + tools, what Python's `apply_chat_template` takes) and
//! `OUT_DIR/rendered.jsonl` (the rendered texts) and `OUT_DIR/lengths.txt` (sample lengths), then
//! prints one JSON line per measurement: render + tokenize with and without the segment cache,
//! plain `tokenizers` encode of the rendered text, and packing of the lengths.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use arrow::array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use trajforge_schema::{Trajectory, batch};
use trajforge_tokenize::job::ToolCatalogue;
use trajforge_tokenize::model::{Model, SegmentCache};
use trajforge_tokenize::pack::{PackConfig, Packer};
use trajforge_tokenize::pyjson::{self, Json};
use trajforge_tokenize::sample::{Outcome, SampleOptions, tokenize};
use trajforge_tokenize::template::message_value;

type Row = (Trajectory, Option<Vec<Json>>);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (input, out) = (PathBuf::from(&args[1]), PathBuf::from(&args[2]));
    let file = std::fs::File::open(&input)?;
    let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(file)?
        .build()?
        .collect::<Result<_, _>>()?;
    let catalogue = ToolCatalogue::bundled()?;
    let mut rows: Vec<Row> = Vec::new();
    for b in &batches {
        for t in batch::from_record_batch(b)? {
            let tools = catalogue.tools_for(t.tools.as_deref(), t.scaffold.as_deref())?;
            rows.push((t, tools));
        }
    }
    let model = Model::qwen2_5_coder()?;
    let opts = SampleOptions::default();
    let bytes: u64 = rows.iter().map(|(t, _)| t.content_bytes).sum();

    let mut chat = std::io::BufWriter::new(std::fs::File::create(out.join("chat.jsonl"))?);
    let mut rendered = std::io::BufWriter::new(std::fs::File::create(out.join("rendered.jsonl"))?);
    let mut texts = Vec::new();
    for (t, tools) in &rows {
        let msgs: Vec<Json> = t
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| message_value(i, m))
            .collect::<Result<_, _>>()?;
        let text = model.template().render(&t.messages, tools.as_deref())?;
        let line = Json::Object(vec![
            ("messages".into(), Json::Array(msgs)),
            (
                "tools".into(),
                tools.clone().map_or(Json::Null, Json::Array),
            ),
        ]);
        writeln!(chat, "{}", pyjson::dumps(&line))?;
        writeln!(rendered, "{}", pyjson::dumps(&Json::Str(text.clone())))?;
        texts.push(text);
    }
    chat.flush()?;
    rendered.flush()?;

    let mut lengths = Vec::new();
    for (label, cache_bytes) in [
        ("render+tokenize+mask, no cache", 0),
        ("render+tokenize+mask, cache", 64 << 20),
    ] {
        let mut cache = SegmentCache::new(cache_bytes);
        let (mut tokens, mut samples) = (0u64, 0u64);
        lengths.clear();
        let t0 = Instant::now();
        for (t, tools) in &rows {
            if let Outcome::Kept(s) =
                tokenize(&model, &t.messages, tools.as_deref(), &opts, &mut cache)?
            {
                tokens += s.total_tokens() as u64;
                samples += 1;
                lengths.push(s.total_tokens());
            }
        }
        report(
            label,
            t0,
            samples,
            tokens,
            bytes,
            cache.hits,
            cache.hits + cache.misses,
        );
    }
    let t0 = Instant::now();
    let mut tokens = 0u64;
    for text in &texts {
        tokens += model
            .tokenizer()
            .encode_fast(text.as_str(), false)
            .map_err(|e| e.to_string())?
            .len() as u64;
    }
    report(
        "tokenizers encode_fast of the rendered text",
        t0,
        texts.len() as u64,
        tokens,
        bytes,
        0,
        0,
    );

    std::fs::write(
        out.join("lengths.txt"),
        lengths.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )?;
    // Packing: the lengths repeated to a 300k-sample corpus, at 32k.
    let corpus: Vec<u32> = lengths
        .iter()
        .copied()
        .filter(|&l| l <= 32_768)
        .cycle()
        .take(300_000)
        .collect();
    let t0 = Instant::now();
    let mut packer = Packer::new(PackConfig::new(32_768))?;
    let mut rows_out = 0usize;
    for (i, &len) in corpus.iter().enumerate() {
        rows_out += packer.push(len, &(i as u64).to_le_bytes(), ())?.len();
    }
    rows_out += packer.finish().len();
    let secs = t0.elapsed().as_secs_f64();
    let total: u64 = corpus.iter().map(|&l| l as u64).sum();
    println!(
        "{}",
        serde_json::json!({"what": "pack (streaming BFD, lookahead 2048)", "samples": corpus.len(), "seconds": secs,
            "samples_per_s": corpus.len() as f64 / secs, "rows": rows_out, "fill": total as f64 / (rows_out as f64 * 32768.0)})
    );
    Ok(())
}

fn report(what: &str, t0: Instant, samples: u64, tokens: u64, bytes: u64, hits: u64, lookups: u64) {
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"what": what, "samples": samples, "tokens": tokens, "seconds": secs,
            "samples_per_s": samples as f64 / secs, "tokens_per_s": tokens as f64 / secs,
            "mb_per_s": bytes as f64 / 1e6 / secs, "cache_hits": hits, "cache_lookups": lookups})
    );
}
