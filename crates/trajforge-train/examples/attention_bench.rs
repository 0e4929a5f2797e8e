//! Time of the CPU document attention alone (forward, backward) on one document, for tuning
//! its kernels: `attention_bench TOKENS [HEADS KV_HEADS HEAD_DIM] [REPEATS]` (defaults: the tiny
//! preset's 2 heads, 1 key/value head, 32 wide; 3 repeats). Prints one JSON line with the
//! median times and the pairs/s of each pass.

use std::sync::Arc;
use std::time::Instant;

use trajforge_train::model::attention::DocumentAttention;

fn arg(args: &[String], i: usize, default: usize) -> usize {
    args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let tokens = arg(&args, 1, 8192);
    let (heads, kv, d) = (arg(&args, 2, 2), arg(&args, 3, 1), arg(&args, 4, 32));
    let repeats = arg(&args, 5, 3);
    // Deterministic pseudo-random inputs in [-1, 1).
    let fill = |n: usize, seed: u64| -> Vec<f32> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    };
    let (q, k, v) = (
        fill(tokens * heads * d, 1),
        fill(tokens * kv * d, 2),
        fill(tokens * kv * d, 3),
    );
    let dout = fill(tokens * heads * d, 4);
    let op = DocumentAttention::new(Arc::new(vec![(0, tokens)]), heads, kv, d);
    let (mut fwd, mut bwd) = (Vec::new(), Vec::new());
    let mut check = 0f64;
    for _ in 0..repeats {
        let t = Instant::now();
        let (out, lse) = op.forward_slices(&q, &k, &v, tokens);
        fwd.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let (dq, dk, dv) = op.backward_slices(&q, &k, &v, &out, &lse, &dout, tokens);
        bwd.push(t.elapsed().as_secs_f64());
        check = [&out, &dq, &dk, &dv]
            .iter()
            .map(|x| x.iter().map(|&y| f64::from(y)).sum::<f64>())
            .sum();
    }
    let pairs = (tokens * (tokens + 1) / 2 * heads) as f64;
    let (f, b) = (median(fwd), median(bwd));
    println!(
        "{{\"tokens\":{tokens},\"heads\":{heads},\"kv_heads\":{kv},\"head_dim\":{d},\"forward_s\":{f:.4},\"backward_s\":{b:.4},\"forward_pairs_per_s\":{:.3e},\"backward_pairs_per_s\":{:.3e},\"checksum\":{check:.6}}}",
        pairs / f,
        pairs / b
    );
}
