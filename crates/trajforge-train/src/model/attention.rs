//! Causal attention inside each document, as a candle custom op with its own backward
//! (memory-efficient, in the manner of FlashAttention): the forward pass keeps only the output
//! and one log-sum-exp per token and head, and the backward pass recomputes the probabilities
//! from them, so memory grows with the tokens, not with their square (a 22k-token document
//! would need 7.7 GB per head group for its score matrix otherwise). CPU, f32; other devices
//! and dtypes use the composed ops of [`super::qwen2`], and a GPU kernel replaces this op there.
//!
//! Tensors are flat over tokens: `q` `[T, H·d]`, `k`/`v` `[T, KV·d]`, query head `h` reading
//! key/value head `h / (H / KV)`. Each output element is computed by one task in a fixed order,
//! so results do not depend on the thread count.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

/// The op: documents `[start, end)` over the flat token run, and the head layout.
#[derive(Debug)]
pub struct DocumentAttention {
    pub docs: Arc<Vec<(usize, usize)>>,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Log-sum-exp of each (token, head) from the forward pass, for the backward pass.
    lse: Mutex<Option<Arc<Vec<f32>>>>,
}

impl DocumentAttention {
    pub fn new(
        docs: Arc<Vec<(usize, usize)>>,
        heads: usize,
        kv_heads: usize,
        head_dim: usize,
    ) -> DocumentAttention {
        DocumentAttention {
            docs,
            heads,
            kv_heads,
            head_dim,
            lse: Mutex::new(None),
        }
    }

    fn scale(&self) -> f32 {
        1.0 / (self.head_dim as f32).sqrt()
    }

    fn group(&self) -> usize {
        self.heads / self.kv_heads.max(1)
    }
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = s else {
        candle_core::bail!("document attention: {what} must be f32");
    };
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("document attention: {what} must be contiguous");
    };
    data.get(a..b)
        .ok_or_else(|| candle_core::Error::Msg(format!("document attention: {what} out of bounds")))
}

/// `eˣ` for `x ≤ 0` in a form the compiler vectorises (Cephes' `expf`: range reduction by
/// `ln 2`, a degree-5 polynomial; relative error below 2e-7); `x < -87` gives 0.
#[inline(always)]
fn exp_neg(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    let x = x.max(-87.0);
    // Round to nearest by the 1.5·2²³ trick (no `round` call, so SSE2 vectorises it).
    let k = (x * LOG2E + 12_582_912.0) - 12_582_912.0;
    let r = x - k * 0.693_359_4 + k * 2.121_944_4e-4;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_66;
    let p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    f32::from_bits(((k as i32 + 127) << 23) as u32) * e
}

/// `Σ aᵢ·bᵢ` in eight lanes, so it vectorises without reassociation flags.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `y += a·x`.
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// A head's keys or values of one document, transposed to `[d][n]` so that a query's scores
/// against all keys are `d` contiguous multiply-adds (they vectorise over the keys).
struct Transposed {
    n: usize,
    data: Vec<f32>,
}

impl Transposed {
    fn new(src: &[f32], width: usize, head: usize, d: usize, (s, e): (usize, usize)) -> Transposed {
        let n = e - s;
        let mut data = vec![0f32; d * n];
        for (j, t) in (s..e).enumerate() {
            let at = t * width + head * d;
            for (dd, &x) in src.get(at..at + d).unwrap_or_default().iter().enumerate() {
                if let Some(slot) = data.get_mut(dd * n + j) {
                    *slot = x;
                }
            }
        }
        Transposed { n, data }
    }

    /// Dimension `dd` of keys `0..len`.
    fn lane(&self, dd: usize, len: usize) -> &[f32] {
        self.data
            .get(dd * self.n..dd * self.n + len)
            .unwrap_or_default()
    }
}

fn vector(src: &[f32], t: usize, width: usize, head: usize, d: usize) -> &[f32] {
    let at = t * width + head * d;
    src.get(at..at + d).unwrap_or_default()
}

/// `out[..len] = Σ_dd w[dd] · kt[dd][..len]`.
fn combine(out: &mut Vec<f32>, w: &[f32], scale: f32, kt: &Transposed, len: usize) {
    out.clear();
    out.resize(len, 0.0);
    for (dd, &x) in w.iter().enumerate() {
        axpy(out, x * scale, kt.lane(dd, len));
    }
}

/// Row ranges of a document that cost about the same under the causal mask.
fn balanced_chunks(n: usize, chunks: usize) -> Vec<(usize, usize)> {
    let edge = |c: usize| ((n as f64) * (c as f64 / chunks as f64).sqrt()).round() as usize;
    (0..chunks)
        .map(|c| (edge(c), edge(c + 1)))
        .filter(|(a, b)| b > a)
        .collect()
}

/// What one backward task returns: its head, its rows' `dq`, its share of `dkᵀ` and `dvᵀ`.
struct Part {
    doc: usize,
    head: usize,
    rows: (usize, usize),
    dq: Vec<f32>,
    dkt: Vec<f32>,
    dvt: Vec<f32>,
}

impl DocumentAttention {
    /// Every document's keys (or values) per key/value head, transposed; index `doc · KV + kh`.
    fn transposed(&self, x: &[f32]) -> Vec<(Transposed, usize)> {
        let kw = self.kv_heads * self.head_dim;
        let mut out = Vec::new();
        for &doc in self.docs.iter() {
            for kh in 0..self.kv_heads {
                out.push((Transposed::new(x, kw, kh, self.head_dim, doc), kh));
            }
        }
        out
    }

    /// Output `[T, H·d]` and log-sum-exp `[T, H]`.
    pub fn forward_slices(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        tokens: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        let (h_n, d, g, kv) = (self.heads, self.head_dim, self.group(), self.kv_heads);
        let qw = h_n * d;
        let scale = self.scale();
        let (kt, vt) = (self.transposed(k), self.transposed(v));
        let mut doc_of = vec![0usize; tokens];
        for (i, &(s, e)) in self.docs.iter().enumerate() {
            if let Some(slots) = doc_of.get_mut(s..e) {
                slots.fill(i);
            }
        }
        let mut out = vec![0f32; tokens * qw];
        let mut lse = vec![0f32; tokens * h_n];
        out.par_chunks_mut(qw)
            .zip(lse.par_chunks_mut(h_n))
            .enumerate()
            .for_each_init(Vec::new, |sc, (t, (o, l))| {
                let doc = doc_of.get(t).copied().unwrap_or_default();
                let start = self.docs.get(doc).map_or(t, |x| x.0);
                let len = t - start + 1;
                for h in 0..h_n {
                    let (Some((kth, _)), Some((vth, _))) =
                        (kt.get(doc * kv + h / g), vt.get(doc * kv + h / g))
                    else {
                        continue;
                    };
                    combine(sc, vector(q, t, qw, h, d), scale, kth, len);
                    let m = sc.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let mut sum = 0f32;
                    for x in sc.iter_mut() {
                        *x = exp_neg(*x - m);
                        sum += *x;
                    }
                    let inv = 1.0 / sum;
                    for (dd, slot) in o
                        .get_mut(h * d..(h + 1) * d)
                        .unwrap_or_default()
                        .iter_mut()
                        .enumerate()
                    {
                        *slot = dot(sc, vth.lane(dd, len)) * inv;
                    }
                    if let Some(slot) = l.get_mut(h) {
                        *slot = m + sum.ln();
                    }
                }
            });
        (out, lse)
    }

    /// Gradients of `q`, `k`, `v` from the output's gradient `dout`, recomputing the
    /// probabilities from the saved log-sum-exp.
    #[allow(clippy::too_many_arguments)]
    pub fn backward_slices(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        out: &[f32],
        lse: &[f32],
        dout: &[f32],
        tokens: usize,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (h_n, d, g, kv) = (self.heads, self.head_dim, self.group(), self.kv_heads);
        let (qw, kw) = (h_n * d, kv * d);
        let scale = self.scale();
        let (kt, vt) = (self.transposed(k), self.transposed(v));
        let threads = rayon::current_num_threads().max(1);
        let chunks = (2 * threads)
            .div_ceil((self.docs.len() * h_n).max(1))
            .max(1);
        let mut tasks = Vec::new();
        for (doc, &(s, e)) in self.docs.iter().enumerate() {
            for h in 0..h_n {
                tasks.extend(
                    balanced_chunks(e - s, chunks)
                        .into_iter()
                        .map(|r| (doc, h, r)),
                );
            }
        }
        let parts: Vec<Part> = tasks
            .par_iter()
            .map(|&(doc, h, (r0, r1))| {
                let (s, e) = self.docs.get(doc).copied().unwrap_or((0, 0));
                let n = e - s;
                let (kth, vth) = (&kt[doc * kv + h / g].0, &vt[doc * kv + h / g].0);
                let mut part = Part {
                    doc,
                    head: h,
                    rows: (r0, r1),
                    dq: vec![0f32; (r1 - r0) * d],
                    dkt: vec![0f32; d * n],
                    dvt: vec![0f32; d * n],
                };
                let (mut p, mut dp) = (Vec::new(), Vec::new());
                for r in r0..r1 {
                    let i = s + r;
                    let len = r + 1;
                    let (qi, doi) = (vector(q, i, qw, h, d), vector(dout, i, qw, h, d));
                    let delta = dot(doi, vector(out, i, qw, h, d));
                    let li = lse.get(i * h_n + h).copied().unwrap_or_default();
                    combine(&mut p, qi, scale, kth, len);
                    p.iter_mut().for_each(|x| *x = exp_neg(*x - li));
                    combine(&mut dp, doi, 1.0, vth, len);
                    // dp becomes ds = p (dp − Δ) · scale, the gradient of the scaled scores.
                    for (dsj, &pj) in dp.iter_mut().zip(p.iter()) {
                        *dsj = pj * (*dsj - delta) * scale;
                    }
                    let dq_row = part
                        .dq
                        .get_mut((r - r0) * d..(r - r0 + 1) * d)
                        .unwrap_or_default();
                    for (dd, slot) in dq_row.iter_mut().enumerate() {
                        *slot = dot(&dp, kth.lane(dd, len));
                    }
                    for dd in 0..d {
                        let lane = dd * n..dd * n + len;
                        axpy(
                            part.dkt.get_mut(lane.clone()).unwrap_or_default(),
                            qi.get(dd).copied().unwrap_or_default(),
                            &dp,
                        );
                        axpy(
                            part.dvt.get_mut(lane).unwrap_or_default(),
                            doi.get(dd).copied().unwrap_or_default(),
                            &p,
                        );
                    }
                }
                part
            })
            .collect();
        let (mut dq, mut dk, mut dv) = (
            vec![0f32; tokens * qw],
            vec![0f32; tokens * kw],
            vec![0f32; tokens * kw],
        );
        // Summed in task order: the result does not depend on the thread count.
        for part in parts {
            let (s, e) = self.docs.get(part.doc).copied().unwrap_or((0, 0));
            let n = e - s;
            let (h, kh) = (part.head, part.head / g);
            for r in part.rows.0..part.rows.1 {
                let at = (s + r) * qw + h * d;
                if let (Some(dst), Some(src)) = (
                    dq.get_mut(at..at + d),
                    part.dq
                        .get((r - part.rows.0) * d..(r - part.rows.0 + 1) * d),
                ) {
                    dst.copy_from_slice(src);
                }
            }
            for j in 0..n {
                let at = (s + j) * kw + kh * d;
                for dd in 0..d {
                    if let (Some(slot), Some(x)) = (dk.get_mut(at + dd), part.dkt.get(dd * n + j)) {
                        *slot += x;
                    }
                    if let (Some(slot), Some(x)) = (dv.get_mut(at + dd), part.dvt.get(dd * n + j)) {
                        *slot += x;
                    }
                }
            }
        }
        (dq, dk, dv)
    }
}

impl CustomOp3 for DocumentAttention {
    fn name(&self) -> &'static str {
        "document-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (q, k, v) = (
            slice(s1, l1, "q")?,
            slice(s2, l2, "k")?,
            slice(s3, l3, "v")?,
        );
        let tokens = l1.dims().first().copied().unwrap_or(0);
        let (out, lse) = self.forward_slices(q, k, v, tokens);
        if let Ok(mut slot) = self.lse.lock() {
            *slot = Some(Arc::new(lse));
        }
        Ok((
            CpuStorage::F32(out),
            Shape::from((tokens, self.heads * self.head_dim)),
        ))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        out: &Tensor,
        dout: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let lse = self
            .lse
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .ok_or_else(|| {
                candle_core::Error::Msg("document attention: backward before forward".into())
            })?;
        let flat = |t: &Tensor| t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>();
        let tokens = q.dims().first().copied().unwrap_or(0);
        let (dq, dk, dv) = self.backward_slices(
            &flat(q)?,
            &flat(k)?,
            &flat(v)?,
            &flat(out)?,
            &lse,
            &flat(dout)?,
            tokens,
        );
        let dev = q.device();
        Ok((
            Some(Tensor::from_vec(dq, q.shape(), dev)?),
            Some(Tensor::from_vec(dk, k.shape(), dev)?),
            Some(Tensor::from_vec(dv, v.shape(), dev)?),
        ))
    }
}
