//! The model's properties, checked on a small random model: every parameter gets a gradient,
//! packing isolates documents exactly, recomputation changes nothing.

use candle_core::{DType, Device, Tensor};

use super::backward::{PassOptions, forward_backward, loss_only};
use super::config::ModelConfig;
use super::params::Params;
use super::qwen2::Tokens;
use crate::error::Result;
use crate::loss::Targets;

pub fn small_config(tie: bool) -> ModelConfig {
    let mut c = ModelConfig::preset("tiny").unwrap_or_else(|| unreachable!("tiny is a preset"));
    c.vocab_size = 97;
    c.hidden_size = 32;
    c.intermediate_size = 48;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.tie_word_embeddings = tie;
    c.head_dim = None;
    c
}

/// Three documents with their own positions and masks, as a pack would write them.
fn documents() -> Vec<(Vec<u32>, Vec<u8>)> {
    vec![
        (vec![5, 17, 3, 44, 9, 90, 12], vec![0, 0, 1, 1, 1, 0, 1]),
        (vec![8, 61, 2, 33], vec![0, 1, 1, 1]),
        (vec![70, 71, 72, 73, 74, 1], vec![0, 0, 0, 1, 1, 1]),
    ]
}

fn run_of(docs: &[(Vec<u32>, Vec<u8>)], c: &ModelConfig) -> Result<(Tokens, Targets)> {
    let (mut ids, mut pos, mut mask, mut spans) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (d, m) in docs {
        spans.push((ids.len(), ids.len() + d.len()));
        ids.extend_from_slice(d);
        pos.extend(0..d.len() as u32);
        mask.extend_from_slice(m);
    }
    let targets = Targets::from_tokens(&ids, &mask, &spans);
    Ok((Tokens::new(&ids, &pos, spans, c, &Device::Cpu)?, targets))
}

fn opts(scale: f64, recompute: bool) -> PassOptions {
    PassOptions {
        scale,
        loss_chunk: 5,
        recompute,
        dtype: DType::F32,
    }
}

fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

fn max_abs(a: &Tensor) -> Result<f32> {
    Ok(a.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

#[test]
fn every_parameter_receives_a_gradient() -> Result<()> {
    for tie in [true, false] {
        let c = small_config(tie);
        let p = Params::init(&c, 7, &Device::Cpu)?;
        let (t, targets) = run_of(&documents(), &c)?;
        let pass = forward_backward(&p, &t, &targets, &opts(1.0 / targets.len() as f64, false))?;
        for (param, g) in p.list.iter().zip(&pass.grads) {
            assert!(
                max_abs(g)? > 0.0,
                "{} got no gradient (tied: {tie})",
                param.name
            );
        }
    }
    Ok(())
}

#[test]
fn packed_rows_equal_their_documents_one_by_one() -> Result<()> {
    let c = small_config(false);
    let p = Params::init(&c, 3, &Device::Cpu)?;
    let docs = documents();
    let (t, targets) = run_of(&docs, &c)?;
    let packed = forward_backward(&p, &t, &targets, &opts(1.0, false))?;
    let mut summed: Option<Vec<Tensor>> = None;
    for (d, doc) in docs.iter().enumerate() {
        let (t1, targets1) = run_of(std::slice::from_ref(doc), &c)?;
        let alone = forward_backward(&p, &t1, &targets1, &opts(1.0, false))?;
        let (packed_sum, _) = packed.loss.per_doc[d];
        assert!(
            (packed_sum - alone.loss.sum).abs() < 1e-4,
            "document {d}: {packed_sum} vs {}",
            alone.loss.sum
        );
        summed = Some(match summed {
            None => alone.grads,
            Some(acc) => acc
                .iter()
                .zip(&alone.grads)
                .map(|(a, g)| Ok((a + g)?))
                .collect::<Result<_>>()?,
        });
    }
    for ((param, g), s) in p
        .list
        .iter()
        .zip(&packed.grads)
        .zip(summed.unwrap_or_default())
    {
        let tol = 1e-4 * max_abs(&s)?.max(1e-3);
        assert!(
            max_diff(g, &s)? <= tol,
            "{}: packed gradient differs from the per-document sum",
            param.name
        );
    }
    Ok(())
}

#[test]
fn a_later_document_sends_no_gradient_to_an_earlier_one() -> Result<()> {
    // Loss only on document 2 (mask 0 elsewhere): the embedding rows of tokens that occur only
    // in document 1 must get exactly zero gradient.
    let c = small_config(false);
    let p = Params::init(&c, 5, &Device::Cpu)?;
    let docs = vec![
        (vec![40, 41, 42, 43], vec![0, 0, 0, 0]),
        (vec![10, 11, 12, 13, 14], vec![0, 1, 1, 1, 1]),
    ];
    let (t, targets) = run_of(&docs, &c)?;
    let pass = forward_backward(&p, &t, &targets, &opts(1.0, false))?;
    let embed = pass
        .grads
        .first()
        .ok_or(crate::TrainError::Internal("no grads".into()))?;
    for id in [40usize, 41, 42, 43] {
        assert_eq!(
            max_abs(&embed.get(id)?)?,
            0.0,
            "token {id} of document 1 got a gradient from document 2"
        );
    }
    assert!(max_abs(&embed.get(10)?)? > 0.0);
    Ok(())
}

#[test]
fn recomputation_gives_the_same_loss_and_gradients() -> Result<()> {
    for tie in [true, false] {
        let c = small_config(tie);
        let p = Params::init(&c, 11, &Device::Cpu)?;
        let (t, targets) = run_of(&documents(), &c)?;
        let a = forward_backward(&p, &t, &targets, &opts(0.1, false))?;
        let b = forward_backward(&p, &t, &targets, &opts(0.1, true))?;
        assert!((a.loss.sum - b.loss.sum).abs() < 1e-6);
        for ((param, ga), gb) in p.list.iter().zip(&a.grads).zip(&b.grads) {
            assert!(
                max_diff(ga, gb)? <= 1e-6 * max_abs(ga)?.max(1.0),
                "{}",
                param.name
            );
        }
        let only = loss_only(&p, &t, &targets, &opts(1.0, false))?;
        assert!((only.sum - a.loss.sum).abs() < 1e-6);
    }
    Ok(())
}

/// Over head shapes that exercise every path of the tiles: head dims of one vector or less (8),
/// two vectors (16), two plus one plus a scalar tail (40), four (64); groups of 1, 2 and 7.
#[test]
fn the_memory_efficient_attention_equals_the_composed_one() -> Result<()> {
    for (heads, kv_heads, head_dim) in [(4, 2, 8), (2, 1, 16), (3, 3, 40), (7, 1, 64)] {
        let mut c = small_config(false);
        (c.num_attention_heads, c.num_key_value_heads) = (heads, kv_heads);
        c.head_dim = Some(head_dim);
        attention_matches_composed(&c)?;
    }
    Ok(())
}

fn attention_matches_composed(c: &ModelConfig) -> Result<()> {
    let dev = Device::Cpu;
    // The middle document spans several query blocks and key tiles of the op.
    let docs = vec![(0usize, 7usize), (7, 611), (611, 617)];
    let (qw, kw) = (
        c.num_attention_heads * c.head_dim(),
        c.num_key_value_heads * c.head_dim(),
    );
    let q = candle_core::Var::randn(0f32, 1.0, (617, qw), &dev)?;
    let k = candle_core::Var::randn(0f32, 1.0, (617, kw), &dev)?;
    let v = candle_core::Var::randn(0f32, 1.0, (617, kw), &dev)?;
    let w = Tensor::randn(0f32, 1.0, (617, qw), &dev)?;
    let fast = super::qwen2::document_attention(&q, &k, &v, &docs, c)?;
    let slow = super::qwen2::composed_attention(&q, &k, &v, &docs, c)?;
    assert!(max_diff(&fast, &slow)? < 1e-5, "attention output differs");
    let gf = (fast * &w)?.sum_all()?.backward()?;
    let gs = (slow * &w)?.sum_all()?.backward()?;
    for var in [&q, &k, &v] {
        let (a, b) = (
            gf.get(var)
                .ok_or(crate::TrainError::Internal("grad".into()))?,
            gs.get(var)
                .ok_or(crate::TrainError::Internal("grad".into()))?,
        );
        assert!(
            max_diff(a, b)? < 1e-4 * max_abs(b)?.max(1.0),
            "attention gradient differs ({} heads, {} kv, d {})",
            c.num_attention_heads,
            c.num_key_value_heads,
            c.head_dim()
        );
    }
    Ok(())
}

/// The attention's outputs and gradients are the same bits on 1, 2 and 3 threads: the key
/// groups and their order of addition depend on the documents only.
#[test]
fn attention_is_bit_identical_on_any_thread_count() -> Result<()> {
    use super::attention::DocumentAttention;
    let (tokens, heads, kv, d) = (1000usize, 4usize, 2usize, 16usize);
    let fill = |n: usize, seed: usize| -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 + seed * 104_729) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    };
    let (q, k, v, dout) = (
        fill(tokens * heads * d, 1),
        fill(tokens * kv * d, 2),
        fill(tokens * kv * d, 3),
        fill(tokens * heads * d, 4),
    );
    let docs = std::sync::Arc::new(vec![(0, 130), (130, 900), (900, 1000)]);
    let run = |threads: usize| -> Result<Vec<Vec<u32>>> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| crate::TrainError::Internal(e.to_string()))?;
        Ok(pool.install(|| {
            let op = DocumentAttention::new(docs.clone(), heads, kv, d);
            let (out, lse) = op.forward_slices(&q, &k, &v, tokens);
            let (dq, dk, dv) = op.backward_slices(&q, &k, &v, &out, &lse, &dout, tokens);
            [out, dq, dk, dv]
                .iter()
                .map(|x| x.iter().map(|f| f.to_bits()).collect())
                .collect()
        }))
    };
    let one = run(1)?;
    assert_eq!(one, run(2)?, "2 threads");
    assert_eq!(one, run(3)?, "3 threads");
    Ok(())
}
