//! Causal attention inside each document, as a candle custom op with its own backward
//! (memory-efficient, in the manner of FlashAttention): the forward pass keeps only the output
//! and one log-sum-exp per token and head, and the backward pass recomputes the probabilities
//! from them, so memory grows with the tokens, not with their square (a 22k-token document
//! would need 7.7 GB per head group for its score matrix otherwise). CPU, f32; other devices
//! and dtypes use the composed ops of [`super::qwen2`], and a GPU kernel replaces this op there.
//!
//! Tensors are flat over tokens: `q` `[T, H·d]`, `k`/`v` `[T, KV·d]`, query head `h` reading
//! key/value head `h / (H / KV)`. The forward pass runs per query block over key tiles (online
//! softmax); the backward pass per group of key tiles, recomputing each tile's probabilities
//! once for `dk`, `dv` and the group's part of `dq`. The products are [`super::tile`]'s. Every
//! sum runs in an order fixed by the documents alone, so results do not depend on the thread
//! count. Extra memory in the backward pass: each key group's part of `dq`, up to
//! [`KEY_GROUPS`] times the size of `q` (less: a group's part starts at its first key).

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor};
use pulp::Simd;
use rayon::prelude::*;

use super::tile::{KEY_TILE, Rows, Transposed, accumulate_by_key, accumulate_by_row, scores};
use super::vector::{Kernel, cpu_f32, dot, exp_neg, exp_shifted_sum, max_of, vectorized};

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

/// A head's keys or values of one document in tiles of [`KEY_TILE`], each transposed to
/// `[d][KEY_TILE]` (zeros past the end) so that a score tile is vectorised over its keys. A
/// tile is one contiguous block: with the whole document as `[d][n]`, the `d` rows a tile reads
/// lie a power-of-two stride apart on long documents and evict each other from the L1 cache.
struct KeyColumns {
    d: usize,
    data: Vec<f32>,
}

impl KeyColumns {
    /// From one head's `[T × d]` rows.
    fn new(rows: &[f32], d: usize, (s, e): (usize, usize)) -> KeyColumns {
        let doc = rows.get(s * d..e * d).unwrap_or_default();
        let data = doc
            .chunks(KEY_TILE * d.max(1))
            .flat_map(|tile| transpose(tile, d, KEY_TILE))
            .collect();
        KeyColumns { d, data }
    }

    /// The tile that starts at key `j0` (a multiple of [`KEY_TILE`]).
    fn tile(&self, j0: usize) -> Transposed<'_> {
        let size = self.d * KEY_TILE;
        let at = j0 / KEY_TILE * size;
        Transposed {
            data: self.data.get(at..at + size).unwrap_or_default(),
            stride: KEY_TILE,
        }
    }
}

/// `[n × d]` rows as `[d][stride]` columns (`stride ≥ n`, zeros past `n`).
fn transpose(rows: &[f32], d: usize, stride: usize) -> Vec<f32> {
    let mut out = vec![0f32; d * stride];
    for (j, row) in rows.chunks_exact(d.max(1)).enumerate() {
        for (dd, &x) in row.iter().enumerate() {
            if let Some(slot) = out.get_mut(dd * stride + j) {
                *slot = x;
            }
        }
    }
    out
}

/// `x` `[T, heads · d]` regrouped per key/value head: entry `kh` is `[T × group × d]`, the
/// vectors of the `group` heads that read key/value head `kh`, token by token. A block's
/// vectors are then one contiguous `[count × d]` matrix (see [`Rows`]).
fn grouped(x: &[f32], heads: usize, kv_heads: usize, d: usize) -> Vec<Vec<f32>> {
    let g = heads / kv_heads.max(1);
    let span = g * d;
    (0..kv_heads)
        .map(|kh| {
            x.chunks_exact(heads * d)
                .flat_map(|token| token.get(kh * span..(kh + 1) * span).unwrap_or_default())
                .copied()
                .collect()
        })
        .collect()
}

/// Query positions per task of the forward and `dq` passes. With [`KEY_TILE`] keys per tile,
/// a block's score tile (`32 · group × 64` floats) and the tile's keys and values stay in the
/// core's cache while they are used.
const QUERY_BLOCK: usize = 32;

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

/// Key groups per document and key/value head in the backward pass. The split depends on the
/// document's length only (never on the thread count), so every sum keeps its order.
pub const KEY_GROUPS: usize = 8;

/// Every document's key tiles in [`KEY_GROUPS`] contiguous groups of about equal work (a causal
/// tile at `j` meets `n − j` query tiles, so early groups hold fewer tiles), for every
/// key/value head.
fn key_groups(docs: &[(usize, usize)], kv_heads: usize) -> Vec<Task> {
    let mut out = Vec::new();
    for (doc, &(s, e)) in docs.iter().enumerate() {
        let tiles = (e - s).div_ceil(KEY_TILE);
        // Group k starts where the remaining triangle holds (1 − k/G) of the work.
        let mut bounds: Vec<usize> = (0..=KEY_GROUPS)
            .map(|k| {
                let rest = 1.0 - k as f64 / KEY_GROUPS as f64;
                tiles - ((tiles as f64) * rest.sqrt()).round() as usize
            })
            .collect();
        bounds.dedup();
        for kv_head in 0..kv_heads {
            for w in bounds.windows(2) {
                if let [a, b] = *w {
                    out.push(Task {
                        doc,
                        kv_head,
                        from: a * KEY_TILE,
                        to: (b * KEY_TILE).min(e - s),
                    });
                }
            }
        }
    }
    out
}

/// What a task computed: `values` for its positions × the heads it covers × `head_dim`
/// (row-major), and, in the forward pass, one log-sum-exp per position and head; in the
/// backward pass `values`/`second` are `dk`/`dv` of its keys (whole tiles) and `dq` its part of
/// the query gradient of every position from `from` to the document's end.
struct Block {
    task: Task,
    values: Vec<f32>,
    lse: Vec<f32>,
    second: Vec<f32>,
    dq: Vec<f32>,
}

impl Block {
    fn new(task: Task) -> Block {
        Block {
            task,
            values: Vec::new(),
            lse: Vec::new(),
            second: Vec::new(),
            dq: Vec::new(),
        }
    }
}

/// The op's inputs regrouped per key/value head `kh` (see [`grouped`]): queries `[T × g × d]`,
/// keys and values `[T × d]`; every document's keys (and, for the backward pass, values)
/// transposed (index `doc · KV + kh`), and its query blocks transposed (see [`QueryBlocks`]).
struct Inputs {
    q: Vec<Vec<f32>>,
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    kt: Vec<KeyColumns>,
    vt: Vec<KeyColumns>,
    qt: Vec<QueryBlocks>,
}

/// The backward pass's extra inputs: the output's gradient (regrouped and transposed like the
/// queries), the saved log-sum-exp and `Δ = rowsum(dout ⊙ out)` per token and head.
struct Grads<'a> {
    dout: Vec<Vec<f32>>,
    dout_t: Vec<QueryBlocks>,
    lse: &'a [f32],
    delta: Vec<f32>,
}

/// One document's query vectors for one key/value head, in blocks of [`QUERY_BLOCK`] positions
/// (every query head of the group), each block transposed to `[d][vectors]`: the left operand
/// of [`scores`], made once per pass instead of once per tile.
struct QueryBlocks {
    d: usize,
    blocks: Vec<Vec<f32>>,
}

impl QueryBlocks {
    /// From one key/value head's regrouped `[T × g × d]` vectors and a document.
    fn new(grouped: &[f32], g: usize, d: usize, (s, e): (usize, usize)) -> QueryBlocks {
        let span = g * d;
        let blocks = (s..e)
            .step_by(QUERY_BLOCK)
            .map(|from| {
                let to = (from + QUERY_BLOCK).min(e);
                let rows = grouped.get(from * span..to * span).unwrap_or_default();
                transpose(rows, d, (to - from) * g)
            })
            .collect();
        QueryBlocks { d, blocks }
    }

    /// The block that starts at position `r0` of the document (a multiple of [`QUERY_BLOCK`]).
    fn get(&self, r0: usize) -> Transposed<'_> {
        let data = self
            .blocks
            .get(r0 / QUERY_BLOCK)
            .map(Vec::as_slice)
            .unwrap_or_default();
        Transposed {
            data,
            stride: data.len() / self.d.max(1),
        }
    }
}

/// The two passes over tasks: the forward pass per query block, the backward pass (with its
/// extra inputs) per key group.
#[derive(Clone, Copy)]
enum Pass<'a> {
    Forward,
    Backward(&'a Grads<'a>),
}

/// One task of a pass, as a [`Kernel`] so its loops compile for the CPU's instruction set.
struct Job<'a> {
    op: &'a DocumentAttention,
    x: &'a Inputs,
    pass: Pass<'a>,
    task: Task,
}

impl Kernel for Job<'_> {
    type Output = Block;
    #[inline(always)]
    fn run<S: Simd>(self, simd: S) -> Block {
        match self.pass {
            Pass::Backward(gr) => self.op.key_group_grads(simd, self.x, gr, self.task),
            Pass::Forward => self.op.forward_block(simd, self.x, self.task),
        }
    }
}

/// A score tile and its gradient: `[vectors × KEY_TILE]`, reused across tiles.
struct Tile {
    p: Vec<f32>,
    ds: Vec<f32>,
}

impl DocumentAttention {
    /// Runs every task of `pass` in parallel; blocks come back in task order.
    fn run(&self, pass: Pass, x: &Inputs) -> Vec<Block> {
        let arch = pulp::Arch::new();
        let tasks = match pass {
            Pass::Forward => tasks(&self.docs, self.kv_heads, QUERY_BLOCK),
            Pass::Backward(_) => key_groups(&self.docs, self.kv_heads),
        };
        tasks
            .into_par_iter()
            .map(|task| {
                let job = Job {
                    op: self,
                    x,
                    pass,
                    task,
                };
                vectorized(arch, job)
            })
            .collect()
    }

    fn key_columns(&self, rows: &[Vec<f32>]) -> Vec<KeyColumns> {
        let mut out = Vec::new();
        for &doc in self.docs.iter() {
            for head in rows {
                out.push(KeyColumns::new(head, self.head_dim, doc));
            }
        }
        out
    }

    fn query_blocks(&self, grouped: &[Vec<f32>]) -> Vec<QueryBlocks> {
        let mut out = Vec::new();
        for &doc in self.docs.iter() {
            for head in grouped {
                out.push(QueryBlocks::new(head, self.group(), self.head_dim, doc));
            }
        }
        out
    }

    fn grouped(&self, x: &[f32], heads: usize) -> Vec<Vec<f32>> {
        grouped(x, heads, self.kv_heads, self.head_dim)
    }

    /// The regrouped and transposed inputs; the values transposed only `for_backward` (the
    /// forward pass reads them as rows).
    fn inputs(&self, q: &[f32], k: &[f32], v: &[f32], for_backward: bool) -> Inputs {
        let (k, v) = (
            self.grouped(k, self.kv_heads),
            self.grouped(v, self.kv_heads),
        );
        let q = self.grouped(q, self.heads);
        Inputs {
            qt: self.query_blocks(&q),
            kt: self.key_columns(&k),
            vt: if for_backward {
                self.key_columns(&v)
            } else {
                Vec::new()
            },
            q,
            k,
            v,
        }
    }

    /// A task's index into the per (document, key/value head) tables.
    fn at(&self, task: Task) -> usize {
        task.doc * self.kv_heads + task.kv_head
    }

    /// A task's transposed keys (of `columns`: `kt` or `vt`).
    fn columns<'x>(&self, columns: &'x [KeyColumns], task: Task) -> Option<&'x KeyColumns> {
        columns.get(self.at(task))
    }

    /// The transposed block of `blocks` (queries or the output's gradient) at `r0` of a task.
    fn block_t<'x>(&self, blocks: &'x [QueryBlocks], task: Task, r0: usize) -> Transposed<'x> {
        blocks.get(self.at(task)).map_or(
            Transposed {
                data: &[],
                stride: 0,
            },
            |b| b.get(r0),
        )
    }

    fn doc(&self, doc: usize) -> (usize, usize) {
        self.docs.get(doc).copied().unwrap_or((0, 0))
    }

    /// The query vectors (of `data`: the regrouped `q` or `dout`) of rows `r0..r1` of a task's
    /// document, for every query head of its group.
    fn queries<'a>(&self, data: &'a [Vec<f32>], task: Task, (r0, r1): (usize, usize)) -> Rows<'a> {
        let (span, s) = (self.group() * self.head_dim, self.doc(task.doc).0);
        let head = data
            .get(task.kv_head)
            .map(Vec::as_slice)
            .unwrap_or_default();
        Rows {
            data: head
                .get((s + r0) * span..(s + r1) * span)
                .unwrap_or_default(),
            d: self.head_dim,
        }
    }

    /// The keys (of `data`: the regrouped `k` or `v`) of the tile starting at `j0` of a task's
    /// document.
    fn keys<'a>(&self, data: &'a [Vec<f32>], task: Task, j0: usize) -> Rows<'a> {
        let (d, (s, e)) = (self.head_dim, self.doc(task.doc));
        let head = data
            .get(task.kv_head)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let end = (s + j0 + KEY_TILE).min(e);
        Rows {
            data: head.get((s + j0) * d..end * d).unwrap_or_default(),
            d,
        }
    }

    /// Output `[T, H·d]` and log-sum-exp `[T, H]`.
    pub fn forward_slices(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        tokens: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        let x = self.inputs(q, k, v, false);
        let blocks = self.run(Pass::Forward, &x);
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
        let (g, s) = (self.group(), self.doc(b.task.doc).0);
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
    fn forward_block<S: Simd>(&self, simd: S, x: &Inputs, task: Task) -> Block {
        let (d, g, scale) = (self.head_dim, self.group(), self.scale());
        let Some(kt) = self.columns(&x.kt, task) else {
            return Block::new(task);
        };
        let qt = self.block_t(&x.qt, task, task.from);
        let n = qt.stride;
        let mut acc = vec![0f32; n * d];
        let mut max = vec![f32::NEG_INFINITY; n];
        let mut sum = vec![0f32; n];
        let mut p = vec![0f32; n * KEY_TILE];
        for j0 in (0..task.to).step_by(KEY_TILE) {
            scores(simd, &mut p, qt, kt.tile(j0));
            let rows = p.chunks_exact_mut(KEY_TILE).zip(acc.chunks_exact_mut(d));
            for (i, ((p, o), (m, l))) in rows.zip(max.iter_mut().zip(&mut sum)).enumerate() {
                let visible = (task.from + i / g + 1).saturating_sub(j0).min(KEY_TILE);
                let (seen, unseen) = p.split_at_mut(visible);
                unseen.fill(0.0);
                if seen.is_empty() {
                    continue;
                }
                seen.iter_mut().for_each(|s| *s *= scale);
                let m_new = m.max(max_of(seen));
                let correction = exp_neg(*m - m_new);
                *l = *l * correction + exp_shifted_sum(seen, m_new);
                *m = m_new;
                o.iter_mut().for_each(|o| *o *= correction);
            }
            accumulate_by_row(simd, &mut acc, &p, &self.keys(&x.v, task, j0));
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

    /// The probabilities `p` of the query block at `r0` over the tile of keys at `j0`, and the
    /// gradient of their scaled scores `ds = p (dp − Δ) · scale`, recomputed from the saved
    /// log-sum-exp (zero where causality hides a key).
    #[inline(always)]
    fn recompute<S: Simd>(
        &self,
        simd: S,
        x: &Inputs,
        gr: &Grads,
        task: Task,
        (r0, j0): (usize, usize),
        t: &mut Tile,
    ) {
        let (g, scale) = (self.group(), self.scale());
        let (Some(kt), Some(vt)) = (self.columns(&x.kt, task), self.columns(&x.vt, task)) else {
            return;
        };
        let (qt, dot) = (
            self.block_t(&x.qt, task, r0),
            self.block_t(&gr.dout_t, task, r0),
        );
        let n = qt.stride * KEY_TILE;
        t.p.resize(n, 0.0);
        t.ds.resize(n, 0.0);
        scores(simd, &mut t.p, qt, kt.tile(j0));
        scores(simd, &mut t.ds, dot, vt.tile(j0));
        let s = self.doc(task.doc).0;
        let rows =
            t.p.chunks_exact_mut(KEY_TILE)
                .zip(t.ds.chunks_exact_mut(KEY_TILE));
        for (i, (p, ds)) in rows.enumerate() {
            let at = (s + r0 + i / g) * self.heads + task.kv_head * g + i % g;
            let li = gr.lse.get(at).copied().unwrap_or_default();
            let delta = gr.delta.get(at).copied().unwrap_or_default();
            let visible = (r0 + i / g + 1).saturating_sub(j0).min(KEY_TILE);
            let (p, hidden) = p.split_at_mut(visible);
            hidden.fill(0.0);
            let (ds, hidden) = ds.split_at_mut(visible);
            hidden.fill(0.0);
            for (p, ds) in p.iter_mut().zip(ds.iter_mut()) {
                *p = exp_neg(*p * scale - li);
                *ds = *p * (*ds - delta) * scale;
            }
        }
    }

    /// One key group's gradients in a single pass over its causal tiles: `dk` and `dv` of its
    /// keys (summed over query blocks in order) and, from the same probabilities, its part of
    /// `dq` for every later position (summed over its key tiles in order). FlashAttention-2
    /// adds such parts into `dq` with atomics; here each group keeps its own and
    /// [`Self::backward_slices`] adds them in group order, so the sums do not depend on timing.
    #[inline(always)]
    fn key_group_grads<S: Simd>(&self, simd: S, x: &Inputs, gr: &Grads, task: Task) -> Block {
        let (d, span) = (self.head_dim, self.group() * self.head_dim);
        let (s, e) = self.doc(task.doc);
        let len = e - s;
        let padded = (task.to - task.from).div_ceil(KEY_TILE) * KEY_TILE;
        let (mut dk, mut dv) = (vec![0f32; padded * d], vec![0f32; padded * d]);
        let mut dq = vec![0f32; (len - task.from) * span];
        let mut t = Tile {
            p: Vec::new(),
            ds: Vec::new(),
        };
        let tiles = dk
            .chunks_exact_mut(KEY_TILE * d)
            .zip(dv.chunks_exact_mut(KEY_TILE * d));
        for ((dk, dv), j0) in tiles.zip((task.from..task.to).step_by(KEY_TILE)) {
            let keys = self.keys(&x.k, task, j0);
            for r0 in (j0..len).step_by(QUERY_BLOCK) {
                let r1 = (r0 + QUERY_BLOCK).min(len);
                self.recompute(simd, x, gr, task, (r0, j0), &mut t);
                let (dout, q) = (
                    self.queries(&gr.dout, task, (r0, r1)),
                    self.queries(&x.q, task, (r0, r1)),
                );
                accumulate_by_key(simd, dv, &t.p, &dout);
                accumulate_by_key(simd, dk, &t.ds, &q);
                let rows = (r0 - task.from) * span..(r1 - task.from) * span;
                if let Some(dq) = dq.get_mut(rows) {
                    accumulate_by_row(simd, dq, &t.ds, &keys);
                }
            }
        }
        Block {
            values: dk,
            second: dv,
            dq,
            ..Block::new(task)
        }
    }

    /// Adds a key group's part of `dq` (`[positions from its first key on × g × d]`) into
    /// `dst` `[T, H·d]`.
    fn add_query_part(&self, dst: &mut [f32], b: &Block) {
        let (span, (s, e)) = (self.group() * self.head_dim, self.doc(b.task.doc));
        let row_width = self.heads * self.head_dim;
        for (r, part) in (b.task.from..e - s).zip(b.dq.chunks_exact(span)) {
            let at = (s + r) * row_width + b.task.kv_head * span;
            if let Some(slot) = dst.get_mut(at..at + span) {
                slot.iter_mut().zip(part).for_each(|(o, p)| *o += p);
            }
        }
    }

    /// Copies a key group's `[keys × d]` gradient into `dst` `[T, KV·d]`.
    fn scatter_keys(&self, dst: &mut [f32], b: &Block, src: &[f32]) {
        let (d, s) = (self.head_dim, self.doc(b.task.doc).0);
        let kw = self.kv_heads * d;
        for (j, row) in (0..b.task.to - b.task.from).zip(src.chunks_exact(d)) {
            let at = (s + b.task.from + j) * kw + b.task.kv_head * d;
            if let Some(slot) = dst.get_mut(at..at + d) {
                slot.copy_from_slice(row);
            }
        }
    }

    /// Gradients of `q`, `k`, `v` from the output's gradient `dout`, recomputing the
    /// probabilities from the saved log-sum-exp once per tile: one parallel pass over key groups
    /// (see [`Self::key_group_grads`]), then each group's part of `dq` added in group order, so
    /// every gradient element is summed in a fixed order whatever the thread count (no atomics).
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
        let x = self.inputs(q, k, v, true);
        let delta = dout
            .par_chunks(d)
            .zip(out.par_chunks(d))
            .map(|(a, b)| dot(a, b))
            .collect();
        let dout = self.grouped(dout, h_n);
        let gr = Grads {
            dout_t: self.query_blocks(&dout),
            dout,
            lse,
            delta,
        };
        let groups = self.run(Pass::Backward(&gr), &x);
        let (mut dq, mut dk, mut dv) = (
            vec![0f32; tokens * h_n * d],
            vec![0f32; tokens * kv * d],
            vec![0f32; tokens * kv * d],
        );
        for b in &groups {
            self.scatter_keys(&mut dk, b, &b.values);
            self.scatter_keys(&mut dv, b, &b.second);
            self.add_query_part(&mut dq, b);
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
            cpu_f32(s1, l1, "document attention: q")?,
            cpu_f32(s2, l2, "document attention: k")?,
            cpu_f32(s3, l3, "document attention: v")?,
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
