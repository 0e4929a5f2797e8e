//! The Qwen2 decoder for training on packed rows, written from differentiable candle ops.
//!
//! A micro-batch is one flat run of tokens (its packed rows back to back), so every matmul sees
//! all of its tokens at once; only attention looks at documents, and it runs per document
//! (`docs`: the `[start, end)` of each one), so no token can attend across a document boundary
//! and no block-diagonal mask is ever materialised. Rotary embeddings take each token's own
//! position id from the shard. candle's fused `softmax`/`rms_norm`/`rope` have no backward, so
//! each is composed here from ops that do; each piece is its own function so a device kernel
//! can replace it.

use candle_core::{D, DType, Device, Tensor};

use super::config::ModelConfig;
use super::params::{LayerIndex, Params};
use crate::error::Result;

/// The tokens of one micro-batch.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub ids: Tensor,
    /// `[start, end)` of each document in the flat token run.
    pub docs: Vec<(usize, usize)>,
    pub rope: Rope,
}

impl Tokens {
    pub fn new(
        ids: &[u32],
        positions: &[u32],
        docs: Vec<(usize, usize)>,
        config: &ModelConfig,
        device: &Device,
    ) -> Result<Tokens> {
        Ok(Tokens {
            ids: Tensor::from_slice(ids, ids.len(), device)?,
            docs,
            rope: Rope::new(positions, config, device)?,
        })
    }

    pub fn len(&self) -> usize {
        self.ids.dims().first().copied().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// cos/sin of every token's position, `[T, 1, head_dim/2]`, as transformers computes them (f32).
#[derive(Debug, Clone)]
pub struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    pub fn new(positions: &[u32], config: &ModelConfig, device: &Device) -> Result<Rope> {
        let dim = config.head_dim();
        let half = dim / 2;
        let base = config.rope_theta as f32;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / base.powf((2 * i) as f32 / dim as f32))
            .collect();
        let mut cos = Vec::with_capacity(positions.len() * half);
        let mut sin = Vec::with_capacity(positions.len() * half);
        for &p in positions {
            for &f in &inv_freq {
                let angle = p as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        let shape = (positions.len(), 1, half);
        Ok(Rope {
            cos: Tensor::from_vec(cos, shape, device)?,
            sin: Tensor::from_vec(sin, shape, device)?,
        })
    }

    /// Rotates `x` `[T, heads, head_dim]` (the rotate-half convention of transformers).
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let half = x.dim(D::Minus1)? / 2;
        let (cos, sin) = (self.cos.to_dtype(x.dtype())?, self.sin.to_dtype(x.dtype())?);
        let x1 = x.narrow(D::Minus1, 0, half)?;
        let x2 = x.narrow(D::Minus1, half, half)?;
        let first = (x1.broadcast_mul(&cos)? - x2.broadcast_mul(&sin)?)?;
        let second = (x2.broadcast_mul(&cos)? + x1.broadcast_mul(&sin)?)?;
        Ok(Tensor::cat(&[first, second], D::Minus1)?)
    }
}

/// The weights one forward pass uses: the parameters themselves (tracked, for gradients) or
/// detached copies sharing their storage (for the no-gradient pass of recomputation).
#[derive(Debug, Clone)]
pub struct Weights {
    pub tensors: Vec<Tensor>,
}

impl Weights {
    fn from_params(
        params: &Params,
        dtype: DType,
        view: fn(&candle_core::Var) -> Tensor,
    ) -> Result<Weights> {
        let tensors = params
            .list
            .iter()
            .map(|p| view(&p.var).to_dtype(dtype))
            .collect::<candle_core::Result<_>>()?;
        Ok(Weights { tensors })
    }

    pub fn tracked(params: &Params, dtype: DType) -> Result<Weights> {
        Weights::from_params(params, dtype, |v| v.as_tensor().clone())
    }

    pub fn detached(params: &Params, dtype: DType) -> Result<Weights> {
        Weights::from_params(params, dtype, candle_core::Var::as_detached_tensor)
    }

    fn at(&self, i: usize) -> Result<&Tensor> {
        self.tensors
            .get(i)
            .ok_or_else(|| crate::TrainError::Internal(format!("no weight {i}")))
    }
}

/// `x Wᵀ (+ b)` for `x` `[T, in]`, `W` `[out, in]`.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let y = x.matmul(&w.t()?)?;
    Ok(match b {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    })
}

/// RMSNorm over the last dimension, in f32 as transformers does, then scaled by `w`.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let x = x.to_dtype(DType::F32)?;
    let inv = (x.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?.recip()?;
    Ok(x.broadcast_mul(&inv)?.to_dtype(dtype)?.broadcast_mul(w)?)
}

/// Softmax over the last dimension (the max is a constant shift, so it carries no gradient).
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    let max = x.detach().max_keepdim(D::Minus1)?;
    let e = x.broadcast_sub(&max)?.exp()?;
    Ok(e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?)
}

/// Additive causal mask `[g·n, n]` for `g` query heads stacked over `n` tokens.
fn causal_mask(n: usize, g: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let mut m = vec![0f32; g * n * n];
    for row in 0..g * n {
        let i = row % n;
        for j in i + 1..n {
            if let Some(v) = m.get_mut(row * n + j) {
                *v = f32::NEG_INFINITY;
            }
        }
    }
    Ok(Tensor::from_vec(m, (g * n, n), device)?.to_dtype(dtype)?)
}

/// Causal grouped-query attention inside each document. `q` `[T, H·hd]`, `k`/`v` `[T, KV·hd]`.
/// On the CPU in f32 this is the memory-efficient op of [`super::attention`]; elsewhere the
/// composed version ([`composed_attention`]).
pub fn document_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    docs: &[(usize, usize)],
    c: &ModelConfig,
) -> Result<Tensor> {
    if q.device().is_cpu() && q.dtype() == DType::F32 {
        let op = super::attention::DocumentAttention::new(
            std::sync::Arc::new(docs.to_vec()),
            c.num_attention_heads,
            c.num_key_value_heads,
            c.head_dim(),
        );
        return Ok(q
            .contiguous()?
            .apply_op3(&k.contiguous()?, &v.contiguous()?, op)?);
    }
    composed_attention(q, k, v, docs, c)
}

/// [`document_attention`] from differentiable candle ops (materialises each document's scores).
pub fn composed_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    docs: &[(usize, usize)],
    c: &ModelConfig,
) -> Result<Tensor> {
    let (hd, kvh, g) = (c.head_dim(), c.num_key_value_heads, c.group_size());
    let scale = 1.0 / (hd as f64).sqrt();
    let mut outs = Vec::with_capacity(docs.len());
    for &(start, end) in docs {
        let n = end - start;
        let qd = q
            .narrow(0, start, n)?
            .reshape((n, kvh, g, hd))?
            .permute((1, 2, 0, 3))?;
        let qd = qd.contiguous()?.reshape((kvh, g * n, hd))?;
        let kd = k
            .narrow(0, start, n)?
            .reshape((n, kvh, hd))?
            .transpose(0, 1)?
            .contiguous()?;
        let vd = v
            .narrow(0, start, n)?
            .reshape((n, kvh, hd))?
            .transpose(0, 1)?
            .contiguous()?;
        let scores = (qd.matmul(&kd.t()?)? * scale)?;
        let mask = causal_mask(n, g, scores.dtype(), scores.device())?;
        let p = softmax_last(&scores.broadcast_add(&mask)?)?;
        let o = p
            .matmul(&vd)?
            .reshape((kvh, g, n, hd))?
            .permute((2, 0, 1, 3))?;
        outs.push(o.contiguous()?.reshape((n, kvh * g * hd))?);
    }
    Ok(Tensor::cat(&outs, 0)?)
}

/// One decoder layer: `x + attn(norm(x))`, then `+ mlp(norm(·))`.
pub fn layer(
    x: &Tensor,
    w: &Weights,
    l: &LayerIndex,
    t: &Tokens,
    c: &ModelConfig,
) -> Result<Tensor> {
    let n = x.dim(0)?;
    let (hd, h, kvh) = (c.head_dim(), c.num_attention_heads, c.num_key_value_heads);
    let hx = rms_norm(x, w.at(l.input_norm)?, c.rms_norm_eps)?;
    let q = linear(&hx, w.at(l.q_w)?, Some(w.at(l.q_b)?))?.reshape((n, h, hd))?;
    let k = linear(&hx, w.at(l.k_w)?, Some(w.at(l.k_b)?))?.reshape((n, kvh, hd))?;
    let v = linear(&hx, w.at(l.v_w)?, Some(w.at(l.v_b)?))?;
    let q = t.rope.apply(&q)?.reshape((n, h * hd))?;
    let k = t.rope.apply(&k)?.reshape((n, kvh * hd))?;
    let a = document_attention(&q, &k, &v, &t.docs, c)?;
    let x = (x + linear(&a, w.at(l.o_w)?, None)?)?;
    let hx = rms_norm(&x, w.at(l.post_norm)?, c.rms_norm_eps)?;
    let gate = linear(&hx, w.at(l.gate)?, None)?.silu()?;
    let up = linear(&hx, w.at(l.up)?, None)?;
    let mlp = linear(&(gate * up)?, w.at(l.down)?, None)?;
    Ok((x + mlp)?)
}

/// The token embeddings `[T, D]`.
pub fn embed(w: &Weights, p: &Params, t: &Tokens) -> Result<Tensor> {
    Ok(w.at(p.embed)?.index_select(&t.ids, 0)?)
}

/// The final norm's output `[T, D]`, the input of the LM head.
pub fn final_norm(x: &Tensor, w: &Weights, p: &Params) -> Result<Tensor> {
    rms_norm(x, w.at(p.norm)?, p.config.rms_norm_eps)
}

/// The whole decoder up to the LM head: hidden states `[T, D]`.
pub fn hidden(w: &Weights, p: &Params, t: &Tokens) -> Result<Tensor> {
    let mut x = embed(w, p, t)?;
    for l in &p.layers {
        x = layer(&x, w, l, t, &p.config)?;
    }
    final_norm(&x, w, p)
}
