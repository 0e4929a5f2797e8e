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

use super::vector::{
    Kernel, axpy, dot, exp_neg, exp_shifted_sum, max_of, vectorized, weighted_rows,
};

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

    /// Dimension `dd` of keys `from..from + len`.
    #[inline(always)]
    fn lane(&self, dd: usize, from: usize, len: usize) -> &[f32] {
        let at = dd * self.n + from;
        self.data.get(at..at + len).unwrap_or_default()
    }
}

#[inline(always)]
fn vector(src: &[f32], t: usize, width: usize, head: usize, d: usize) -> &[f32] {
    let at = t * width + head * d;
    src.get(at..at + d).unwrap_or_default()
}

/// Query positions per task, and keys per tile. A tile's keys and values (`2 · head_dim ·
/// KEY_TILE` floats: 32 KB at head_dim 16) stay in the core's cache while every query of the
/// block, for every head of the group, reads them; without tiling each query streamed its whole
/// document's keys from memory and the op was memory-bound.
const QUERY_BLOCK: usize = 64;
const KEY_TILE: usize = 256;

/// `out[..len] = scale · Σ_dd w[dd] · kt[dd][from..from + len]`.
#[inline(always)]
fn combine(out: &mut Vec<f32>, w: &[f32], scale: f32, kt: &Transposed, from: usize, len: usize) {
    weighted_rows(out, w, scale, (&kt.data, kt.n, from), len);
}

/// One task: a document, a key/value head (with its group of query heads) and a range of
/// positions in the document (query rows, or the keys of a tile in the backward pass).
#[derive(Debug, Clone, Copy)]
struct Task {
    doc: usize,
    kv_head: usize,
    from: usize,
    to: usize,
}

/// Every document's positions in blocks of `size`, for every key/value head.
fn tasks(docs: &[(usize, usize)], kv_heads: usize, size: usize) -> Vec<Task> {
    let mut out = Vec::new();
    for (doc, &(s, e)) in docs.iter().enumerate() {
        for kv_head in 0..kv_heads {
            for from in (0..e - s).step_by(size) {
                let to = (from + size).min(e - s);
                out.push(Task {
                    doc,
                    kv_head,
                    from,
                    to,
                });
            }
        }
    }
    out
}

/// What a task computed: `values` for its positions × the heads it covers × `head_dim`
/// (row-major), and, in the forward pass, one log-sum-exp per position and head.
struct Block {
    task: Task,
    values: Vec<f32>,
    lse: Vec<f32>,
    second: Vec<f32>,
}

impl Block {
    fn new(task: Task) -> Block {
        Block {
            task,
            values: Vec::new(),
            lse: Vec::new(),
            second: Vec::new(),
        }
    }
}

/// The causal walk of a query block: `(j0, r, len)` for every key tile starting at `j0` and
/// every query row `r` of the block that sees it, `len` being the keys of the tile it sees.
#[inline(always)]
fn causal_tiles(task: Task) -> impl Iterator<Item = (usize, usize, usize)> {
    (0..task.to).step_by(KEY_TILE).flat_map(move |j0| {
        let j1 = (j0 + KEY_TILE).min(task.to);
        (task.from.max(j0)..task.to).map(move |r| (j0, r, j1.min(r + 1) - j0))
    })
}

/// The op's inputs, laid out for the tasks.
struct Inputs<'a> {
    q: &'a [f32],
    kt: Vec<Transposed>,
    vt: Vec<Transposed>,
}

/// The backward pass's extra inputs: the output's gradient, the saved log-sum-exp and
/// `Δ = rowsum(dout ⊙ out)` per token and head.
struct Grads<'a> {
    dout: &'a [f32],
    lse: &'a [f32],
    delta: Vec<f32>,
}

/// The three passes over tasks: the forward pass and, in the backward pass, `dk`/`dv` per key
/// tile and `dq` per query block.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pass {
    Forward,
    KeyTile,
    QueryBlock,
}

/// One task of a pass, as a [`Kernel`] so its loops compile for the CPU's instruction set.
struct Job<'a> {
    op: &'a DocumentAttention,
    x: &'a Inputs<'a>,
    gr: Option<&'a Grads<'a>>,
    pass: Pass,
    task: Task,
}

impl Kernel for Job<'_> {
    type Output = Block;
    #[inline(always)]
    fn run(self) -> Block {
        match (self.pass, self.gr) {
            (Pass::KeyTile, Some(gr)) => self.op.key_tile_grads(self.x, gr, self.task),
            (Pass::QueryBlock, Some(gr)) => self.op.query_block_grads(self.x, gr, self.task),
            _ => self.op.forward_block(self.x, self.task),
        }
    }
}

impl DocumentAttention {
    /// Runs every task of `pass` in parallel; blocks come back in task order.
    fn run(&self, pass: Pass, x: &Inputs, gr: Option<&Grads>) -> Vec<Block> {
        let size = if pass == Pass::KeyTile {
            KEY_TILE
        } else {
            QUERY_BLOCK
        };
        let arch = pulp::Arch::new();
        tasks(&self.docs, self.kv_heads, size)
            .into_par_iter()
            .map(|task| {
                let job = Job {
                    op: self,
                    x,
                    gr,
                    pass,
                    task,
                };
                vectorized(arch, job)
            })
            .collect()
    }

    /// Every document's keys (or values) per key/value head, transposed; index `doc · KV + kh`.
    fn transposed(&self, x: &[f32]) -> Vec<Transposed> {
        let kw = self.kv_heads * self.head_dim;
        let mut out = Vec::new();
        for &doc in self.docs.iter() {
            for kh in 0..self.kv_heads {
                out.push(Transposed::new(x, kw, kh, self.head_dim, doc));
            }
        }
        out
    }

    fn inputs<'a>(&self, q: &'a [f32], k: &[f32], v: &[f32]) -> Inputs<'a> {
        Inputs {
            q,
            kt: self.transposed(k),
            vt: self.transposed(v),
        }
    }

    /// A task's transposed keys and values.
    fn kv<'x>(&self, x: &'x Inputs, task: Task) -> Option<(&'x Transposed, &'x Transposed)> {
        let at = task.doc * self.kv_heads + task.kv_head;
        Some((x.kt.get(at)?, x.vt.get(at)?))
    }

    fn start(&self, doc: usize) -> usize {
        self.docs.get(doc).map_or(0, |d| d.0)
    }

    /// Output `[T, H·d]` and log-sum-exp `[T, H]`.
    pub fn forward_slices(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        tokens: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        let x = self.inputs(q, k, v);
        let blocks = self.run(Pass::Forward, &x, None);
        let (mut out, mut lse) = (
            vec![0f32; tokens * self.heads * self.head_dim],
            vec![0f32; tokens * self.heads],
        );
        for b in &blocks {
            self.scatter_rows(&mut out, self.head_dim, b, &b.values);
            self.scatter_rows(&mut lse, 1, b, &b.lse);
        }
        (out, lse)
    }

    /// Copies a block's `[rows × group × width]` values into `dst` `[T, H·width]`.
    fn scatter_rows(&self, dst: &mut [f32], width: usize, b: &Block, src: &[f32]) {
        let (g, s) = (self.group(), self.start(b.task.doc));
        let row_width = self.heads * width;
        let span = g * width;
        for (r, chunk) in (b.task.from..b.task.to).zip(src.chunks_exact(span)) {
            let at = (s + r) * row_width + b.task.kv_head * span;
            if let Some(slot) = dst.get_mut(at..at + span) {
                slot.copy_from_slice(chunk);
            }
        }
    }

    /// One query block against its document's keys, tile by tile, with the running maximum
    /// and sum of the online softmax (so no row of scores is ever whole).
    #[inline(always)]
    fn forward_block(&self, x: &Inputs, task: Task) -> Block {
        let (d, g, qw, scale) = (
            self.head_dim,
            self.group(),
            self.heads * self.head_dim,
            self.scale(),
        );
        let (s, rows) = (self.start(task.doc), task.to - task.from);
        let Some((kt, vt)) = self.kv(x, task) else {
            return Block::new(task);
        };
        let mut acc = vec![0f32; rows * g * d];
        let mut max = vec![f32::NEG_INFINITY; rows * g];
        let mut sum = vec![0f32; rows * g];
        let mut p = Vec::with_capacity(KEY_TILE);
        for (j0, r, len) in causal_tiles(task) {
            for hg in 0..g {
                let h = task.kv_head * g + hg;
                let slot = (r - task.from) * g + hg;
                combine(&mut p, vector(x.q, s + r, qw, h, d), scale, kt, j0, len);
                let (Some(m), Some(l)) = (max.get_mut(slot), sum.get_mut(slot)) else {
                    continue;
                };
                let m_new = m.max(max_of(&p));
                let correction = exp_neg(*m - m_new);
                *l = *l * correction + exp_shifted_sum(&mut p, m_new);
                *m = m_new;
                let o = acc.get_mut(slot * d..(slot + 1) * d).unwrap_or_default();
                for (dd, o) in o.iter_mut().enumerate() {
                    *o = *o * correction + dot(&p, vt.lane(dd, j0, len));
                }
            }
        }
        for ((o, m), l) in acc.chunks_exact_mut(d).zip(max.iter_mut()).zip(&sum) {
            let inv = 1.0 / l;
            o.iter_mut().for_each(|x| *x *= inv);
            *m += l.ln();
        }
        Block {
            values: acc,
            lse: max,
            ..Block::new(task)
        }
    }

    /// The probabilities `p` of query `i` (head `h`) over keys `j0..j0+len` and the gradient
    /// of their scaled scores `ds = p (dp − Δ) · scale`, recomputed from the saved log-sum-exp.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn recompute(
        &self,
        x: &Inputs,
        gr: &Grads,
        (kt, vt): (&Transposed, &Transposed),
        (i, h): (usize, usize),
        (j0, len): (usize, usize),
        p: &mut Vec<f32>,
        ds: &mut Vec<f32>,
    ) {
        let (d, qw, scale) = (self.head_dim, self.heads * self.head_dim, self.scale());
        let li = gr.lse.get(i * self.heads + h).copied().unwrap_or_default();
        let delta = gr
            .delta
            .get(i * self.heads + h)
            .copied()
            .unwrap_or_default();
        combine(p, vector(x.q, i, qw, h, d), scale, kt, j0, len);
        p.iter_mut().for_each(|v| *v = exp_neg(*v - li));
        combine(ds, vector(gr.dout, i, qw, h, d), 1.0, vt, j0, len);
        for (dsj, &pj) in ds.iter_mut().zip(p.iter()) {
            *dsj = pj * (*dsj - delta) * scale;
        }
    }

    /// `dkᵀ` and `dvᵀ` of one key tile, from every query of its document that sees it.
    #[inline(always)]
    fn key_tile_grads(&self, x: &Inputs, gr: &Grads, task: Task) -> Block {
        let (d, g, qw) = (self.head_dim, self.group(), self.heads * self.head_dim);
        let (s, e) = self.docs.get(task.doc).copied().unwrap_or((0, 0));
        let width = task.to - task.from;
        let (mut dkt, mut dvt) = (vec![0f32; d * width], vec![0f32; d * width]);
        let Some((kt, vt)) = self.kv(x, task) else {
            return Block {
                values: dkt,
                second: dvt,
                ..Block::new(task)
            };
        };
        let (mut p, mut ds) = (Vec::with_capacity(width), Vec::with_capacity(width));
        for r in task.from..e - s {
            let len = task.to.min(r + 1) - task.from;
            for hg in 0..g {
                let h = task.kv_head * g + hg;
                self.recompute(
                    x,
                    gr,
                    (kt, vt),
                    (s + r, h),
                    (task.from, len),
                    &mut p,
                    &mut ds,
                );
                let (qi, doi) = (
                    vector(x.q, s + r, qw, h, d),
                    vector(gr.dout, s + r, qw, h, d),
                );
                for dd in 0..d {
                    let lane = dd * width..dd * width + len;
                    let (qd, dod) = (qi.get(dd).copied(), doi.get(dd).copied());
                    axpy(
                        dkt.get_mut(lane.clone()).unwrap_or_default(),
                        qd.unwrap_or_default(),
                        &ds,
                    );
                    axpy(
                        dvt.get_mut(lane).unwrap_or_default(),
                        dod.unwrap_or_default(),
                        &p,
                    );
                }
            }
        }
        Block {
            values: dkt,
            second: dvt,
            ..Block::new(task)
        }
    }

    /// `dq` of one query block, from every key tile its queries see.
    #[inline(always)]
    fn query_block_grads(&self, x: &Inputs, gr: &Grads, task: Task) -> Block {
        let (d, g) = (self.head_dim, self.group());
        let s = self.start(task.doc);
        let mut dq = vec![0f32; (task.to - task.from) * g * d];
        let Some((kt, vt)) = self.kv(x, task) else {
            return Block {
                values: dq,
                ..Block::new(task)
            };
        };
        let (mut p, mut ds) = (Vec::with_capacity(KEY_TILE), Vec::with_capacity(KEY_TILE));
        for (j0, r, len) in causal_tiles(task) {
            for hg in 0..g {
                let h = task.kv_head * g + hg;
                self.recompute(x, gr, (kt, vt), (s + r, h), (j0, len), &mut p, &mut ds);
                let slot = ((r - task.from) * g + hg) * d;
                let row = dq.get_mut(slot..slot + d).unwrap_or_default();
                for (dd, v) in row.iter_mut().enumerate() {
                    *v += dot(&ds, kt.lane(dd, j0, len));
                }
            }
        }
        Block {
            values: dq,
            ..Block::new(task)
        }
    }

    /// Adds a key tile's `dkᵀ` (`d × width`) into `dst` `[T, KV·d]`.
    fn scatter_transposed(&self, dst: &mut [f32], b: &Block, src: &[f32]) {
        let (d, s) = (self.head_dim, self.start(b.task.doc));
        let (kw, width) = (self.kv_heads * d, b.task.to - b.task.from);
        for j in 0..width {
            let at = (s + b.task.from + j) * kw + b.task.kv_head * d;
            for dd in 0..d {
                if let (Some(slot), Some(x)) = (dst.get_mut(at + dd), src.get(dd * width + j)) {
                    *slot += x;
                }
            }
        }
    }

    /// Gradients of `q`, `k`, `v` from the output's gradient `dout`, recomputing the
    /// probabilities from the saved log-sum-exp: one parallel pass over key tiles for `dk`/`dv`
    /// and one over query blocks for `dq`, so every gradient element is summed by one task in a
    /// fixed order (no atomics, no per-thread copies of the whole gradient).
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
        let (h_n, d, kv) = (self.heads, self.head_dim, self.kv_heads);
        let x = self.inputs(q, k, v);
        let delta = dout
            .par_chunks(d)
            .zip(out.par_chunks(d))
            .map(|(a, b)| dot(a, b))
            .collect();
        let gr = Grads { dout, lse, delta };
        let key_tiles = self.run(Pass::KeyTile, &x, Some(&gr));
        let query_blocks = self.run(Pass::QueryBlock, &x, Some(&gr));
        let (mut dq, mut dk, mut dv) = (
            vec![0f32; tokens * h_n * d],
            vec![0f32; tokens * kv * d],
            vec![0f32; tokens * kv * d],
        );
        for b in &query_blocks {
            self.scatter_rows(&mut dq, d, b, &b.values);
        }
        for b in &key_tiles {
            self.scatter_transposed(&mut dk, b, &b.values);
            self.scatter_transposed(&mut dv, b, &b.second);
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
