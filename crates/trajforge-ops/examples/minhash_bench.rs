//! MinHash throughput on one core: reads texts (JSON Lines, `{"text": …}`), builds word 5-gram
//! signatures with `num_perm` permutations, prints one JSON line with signatures per second.
//! `bench/pipeline.sh` runs it next to Python datasketch on the same file.
//!
//! Usage: `minhash_bench TEXTS.jsonl [NUM_PERM] [NGRAM]`

use std::io::BufRead;
use std::time::Instant;

use trajforge_ops::minhash::MinHasher;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: minhash_bench TEXTS.jsonl [NUM_PERM] [NGRAM]")?;
    let num_perm: usize = args.next().map_or(Ok(128), |a| a.parse())?;
    let ngram: usize = args.next().map_or(Ok(5), |a| a.parse())?;
    let file = std::io::BufReader::new(std::fs::File::open(&path)?);
    let mut texts = Vec::new();
    for line in file.lines() {
        let v: serde_json::Value = serde_json::from_str(&line?)?;
        texts.push(v["text"].as_str().unwrap_or_default().to_string());
    }
    let hasher = MinHasher::new(num_perm, ngram, 1);
    let started = Instant::now();
    let mut checksum = 0u64;
    for t in &texts {
        if let Some(sig) = hasher.signature_of_text(t) {
            checksum = checksum.wrapping_add(u64::from(sig[0]));
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let bytes: usize = texts.iter().map(String::len).sum();
    println!(
        "{}",
        serde_json::json!({
            "impl": "trajforge",
            "texts": texts.len(),
            "num_perm": num_perm,
            "ngram": ngram,
            "seconds": secs,
            "signatures_per_second": texts.len() as f64 / secs,
            "mb_per_second": bytes as f64 / 1e6 / secs,
            "checksum": checksum,
        })
    );
    Ok(())
}
