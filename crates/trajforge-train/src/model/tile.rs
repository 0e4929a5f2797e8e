//! The register-blocked products the CPU attention is built from, on tiles of [`KEY_TILE`]
//! keys: [`scores`] (`S = A Bᵀ`, vectorised over the keys, from a block of query vectors and
//! keys both stored transposed) and [`accumulate_by_row`] / [`accumulate_by_key`] (`O += W X`
//! with the weights a score tile or its transpose, vectorised over the head dimension). Each
//! keeps a block of four output rows by one or two SIMD vectors in registers over the whole
//! inner sum and stores it once, so every loaded key or row feeds four rows of fused
//! multiply-adds (a one-row loop loads as often as it computes, and was memory-bound). The
//! operands are laid out (by the attention op, once per call) so that each step of an inner
//! loop reads the next few floats of two streams: the loops carry one bounds check per step,
//! not one per multiply (checked indexing had tripled their instruction count). The vectors are
//! pulp's, for the instruction set [`super::vector::vectorized`] picked. Every output element
//! is one chain of correctly rounded fused multiply-adds in a fixed order (pulp's scalar
//! fallback fuses too), so the vector width never changes a result.

use pulp::Simd;

/// Keys per tile: the width of a score tile (a multiple of two vectors of every instruction set).
pub const KEY_TILE: usize = 64;
/// Output rows per register block.
const ROWS: usize = 4;

/// `count` vectors of `d` floats stored one after another (`data` is `[count × d]`).
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    pub data: &'a [f32],
    pub d: usize,
}

impl<'a> Rows<'a> {
    fn iter(&self) -> std::slice::ChunksExact<'a, f32> {
        self.data.chunks_exact(self.d.max(1))
    }
}

/// A matrix stored transposed, `[d][stride]`: column `j` is vector `j`. Keys have zeros past
/// the last one (a tile may run over the end); a block of query vectors has `stride` = its count.
#[derive(Clone, Copy)]
pub struct Transposed<'a> {
    pub data: &'a [f32],
    pub stride: usize,
}

impl<'a> Transposed<'a> {
    fn rows(&self) -> std::slice::ChunksExact<'a, f32> {
        self.data.chunks_exact(self.stride.max(1))
    }
}

/// `out[v·KEY_TILE + j] = Σ_dd a[dd][v] · bt[dd][j]` for every vector `v` of `a` and
/// `j < KEY_TILE` (`out` is `[a.stride × KEY_TILE]`, `bt` one tile `[d][KEY_TILE]`).
#[inline(always)]
pub fn scores<S: Simd>(simd: S, out: &mut [f32], a: Transposed, bt: Transposed) {
    let count = a.stride;
    let full = count / ROWS * ROWS;
    for r0 in (0..full).step_by(ROWS) {
        scores_block::<S, ROWS>(simd, out, a, r0, bt);
    }
    for r0 in full..count {
        scores_block::<S, 1>(simd, out, a, r0, bt);
    }
}

/// `V` vectors of `S` from the start of `x` (`None` when `x` is shorter).
#[inline(always)]
fn load<S: Simd, const V: usize>(x: &[f32]) -> Option<[S::f32s; V]> {
    let (v, _) = S::as_simd_f32s(x);
    v.first_chunk::<V>().copied()
}

#[inline(always)]
fn store<S: Simd, const V: usize>(x: &mut [f32], values: [S::f32s; V]) {
    let (v, _) = S::as_mut_simd_f32s(x);
    if let Some(dst) = v.first_chunk_mut::<V>() {
        *dst = values;
    }
}

#[inline(always)]
fn scores_block<S: Simd, const N: usize>(
    simd: S,
    out: &mut [f32],
    a: Transposed,
    r0: usize,
    bt: Transposed,
) {
    let cols = 2 * S::F32_LANES;
    for c in (0..KEY_TILE).step_by(cols) {
        let mut acc = [[simd.splat_f32s(0.0); 2]; N];
        for (arow, brow) in a.rows().zip(bt.rows()) {
            let (Some(av), Some(b)) = (
                arow.get(r0..).and_then(|x| x.first_chunk::<N>()),
                brow.get(c..).and_then(load::<S, 2>),
            ) else {
                continue;
            };
            for (acc, &w) in acc.iter_mut().zip(av) {
                let w = simd.splat_f32s(w);
                acc[0] = simd.mul_add_f32s(w, b[0], acc[0]);
                acc[1] = simd.mul_add_f32s(w, b[1], acc[1]);
            }
        }
        for (n, &acc) in acc.iter().enumerate() {
            let at = (r0 + n) * KEY_TILE + c;
            if let Some(dst) = out.get_mut(at..) {
                store::<S, 2>(dst, acc);
            }
        }
    }
}

/// Where the weights of a product `O += W X` come from: `at(r0, i)[n]` weighs vector `i` of
/// `X` for output row `r0 + n`.
trait Weights: Copy {
    fn at<const N: usize>(self, r0: usize, i: usize) -> [f32; N];
}

/// A score tile `[rows × KEY_TILE]`: row `r` weighs the tile's keys for output row `r`.
#[derive(Clone, Copy)]
struct ByRow<'a>(&'a [f32]);

impl Weights for ByRow<'_> {
    #[inline(always)]
    fn at<const N: usize>(self, r0: usize, i: usize) -> [f32; N] {
        std::array::from_fn(|n| {
            self.0
                .get((r0 + n) * KEY_TILE + i)
                .copied()
                .unwrap_or_default()
        })
    }
}

/// A score tile `[count × KEY_TILE]` read transposed: output row `r` is key `r`.
#[derive(Clone, Copy)]
struct ByKey<'a>(&'a [f32]);

impl Weights for ByKey<'_> {
    #[inline(always)]
    fn at<const N: usize>(self, r0: usize, i: usize) -> [f32; N] {
        self.0
            .get(i * KEY_TILE + r0..)
            .and_then(|c| c.first_chunk().copied())
            .unwrap_or([0.0; N])
    }
}

/// `out[r][..d] += Σ_i w[r][i] · x_i[..d]` for the rows `r` of `out` (`[rows × d]`), the
/// weights a score tile `w` `[rows × KEY_TILE]` and `x` at most [`KEY_TILE`] vectors.
#[inline(always)]
pub fn accumulate_by_row<S: Simd>(simd: S, out: &mut [f32], w: &[f32], x: &Rows) {
    blocks(simd, out, x, ByRow(w));
}

/// `out[r][..d] += Σ_i w[i][r] · x_i[..d]` for the [`KEY_TILE`] rows `r` of `out`, the weights
/// a score tile `w` `[count × KEY_TILE]` (its transpose weighs) and `x` `count` vectors.
#[inline(always)]
pub fn accumulate_by_key<S: Simd>(simd: S, out: &mut [f32], w: &[f32], x: &Rows) {
    blocks(simd, out, x, ByKey(w));
}

/// The blocks of [`ROWS`] output rows (then single rows) of `out` `[rows × x.d]`.
#[inline(always)]
fn blocks<S: Simd>(simd: S, out: &mut [f32], x: &Rows, w: impl Weights) {
    let rows = out.len() / x.d.max(1);
    let full = rows / ROWS * ROWS;
    for r0 in (0..full).step_by(ROWS) {
        columns::<S, ROWS>(simd, out, x, r0, w);
    }
    for r0 in full..rows {
        columns::<S, 1>(simd, out, x, r0, w);
    }
}

/// One block of rows, columns two vectors at a time, then one, then one by one (head
/// dimensions need not be a multiple of the vector width).
#[inline(always)]
fn columns<S: Simd, const N: usize>(
    simd: S,
    out: &mut [f32],
    x: &Rows,
    r0: usize,
    w: impl Weights,
) {
    let (d, lanes) = (x.d, S::F32_LANES);
    let mut c = 0;
    while c + 2 * lanes <= d {
        block::<S, N, 2>(simd, out, x, (r0, c), w);
        c += 2 * lanes;
    }
    if c + lanes <= d {
        block::<S, N, 1>(simd, out, x, (r0, c), w);
        c += lanes;
    }
    for c in c..d {
        let mut sum = [0f32; N];
        for (i, xi) in x.iter().enumerate() {
            let (wi, xc) = (w.at::<N>(r0, i), xi.get(c).copied().unwrap_or_default());
            for (s, wi) in sum.iter_mut().zip(wi) {
                *s = wi.mul_add(xc, *s);
            }
        }
        for (n, s) in sum.into_iter().enumerate() {
            if let Some(o) = out.get_mut((r0 + n) * d + c) {
                *o += s;
            }
        }
    }
}

#[inline(always)]
fn block<S: Simd, const N: usize, const V: usize>(
    simd: S,
    out: &mut [f32],
    x: &Rows,
    (r0, c): (usize, usize),
    w: impl Weights,
) {
    let mut acc = [[simd.splat_f32s(0.0); V]; N];
    for (i, xi) in x.iter().enumerate() {
        let Some(xv) = xi.get(c..).and_then(load::<S, V>) else {
            continue;
        };
        for (acc, wi) in acc.iter_mut().zip(w.at::<N>(r0, i)) {
            let wi = simd.splat_f32s(wi);
            for (a, &xv) in acc.iter_mut().zip(&xv) {
                *a = simd.mul_add_f32s(wi, xv, *a);
            }
        }
    }
    for (n, acc) in acc.iter().enumerate() {
        let at = (r0 + n) * x.d + c;
        if let Some(dst) = out.get_mut(at..)
            && let Some(mut sum) = load::<S, V>(dst)
        {
            for (s, &a) in sum.iter_mut().zip(acc) {
                *s = simd.add_f32s(*s, a);
            }
            store::<S, V>(dst, sum);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 37 + seed * 11) % 101) as f32 - 50.0) / 17.0)
            .collect()
    }

    fn transpose(x: &[f32], d: usize) -> Vec<f32> {
        let n = x.len() / d;
        (0..d * n).map(|at| x[(at % n) * d + at / n]).collect()
    }

    /// The three products against plain loops, over head dimensions that exercise every column
    /// path (two vectors, one, scalar) and counts that leave a remainder of register blocks; and
    /// the same bits from every instruction set.
    #[test]
    fn tile_products_equal_plain_sums() {
        let scalar = products(pulp::Scalar::new());
        check(&scalar);
        #[cfg(target_arch = "x86_64")]
        if let Some(simd) = pulp::x86::V3::try_new() {
            let v3 = products(simd);
            check(&v3);
            assert!(scalar == v3, "the vector width changed a result");
        }
    }

    const CASES: [(usize, usize); 5] = [(16, 64), (8, 7), (40, 30), (5, 9), (64, 13)];

    /// Per case: scores `[count × 64]`, by key `[64 × d]` and by row `[count × d]`.
    fn products<S: Simd>(simd: S) -> Vec<[Vec<f32>; 3]> {
        CASES
            .iter()
            .map(|&(d, count)| {
                let q = data(count * d, 1);
                let kt = data(d * KEY_TILE, 2);
                let mut s = vec![0f32; count * KEY_TILE];
                let qt = transpose(&q, d);
                let a = Transposed {
                    data: &qt,
                    stride: count,
                };
                let b = Transposed {
                    data: &kt,
                    stride: KEY_TILE,
                };
                scores(simd, &mut s, a, b);
                let mut by_key = data(KEY_TILE * d, 3);
                accumulate_by_key(simd, &mut by_key, &s, &Rows { data: &q, d });
                let keys = data(KEY_TILE.min(count + 20) * d, 4);
                let mut by_row = data(count * d, 5);
                accumulate_by_row(simd, &mut by_row, &s, &Rows { data: &keys, d });
                [s, by_key, by_row]
            })
            .collect()
    }

    fn close(got: f32, plain: f32, what: &str) {
        assert!(
            (got - plain).abs() <= 1e-3 * plain.abs().max(1.0),
            "{what}: {got} vs {plain}"
        );
    }

    fn check(products: &[[Vec<f32>; 3]]) {
        for (&(d, count), [s, by_key, by_row]) in CASES.iter().zip(products) {
            let (q, kt) = (data(count * d, 1), data(d * KEY_TILE, 2));
            for v in 0..count {
                for j in 0..KEY_TILE {
                    let plain = (0..d).map(|dd| q[v * d + dd] * kt[dd * KEY_TILE + j]);
                    close(s[v * KEY_TILE + j], plain.sum(), "scores");
                }
            }
            let before = data(KEY_TILE * d, 3);
            for r in 0..KEY_TILE {
                for c in 0..d {
                    let sum = (0..count).map(|i| s[i * KEY_TILE + r] * q[i * d + c]);
                    close(
                        by_key[r * d + c],
                        before[r * d + c] + sum.sum::<f32>(),
                        "by key",
                    );
                }
            }
            let (keys, before) = (data(KEY_TILE.min(count + 20) * d, 4), data(count * d, 5));
            for r in 0..count {
                for c in 0..d {
                    let sum = (0..keys.len() / d).map(|i| s[r * KEY_TILE + i] * keys[i * d + c]);
                    close(
                        by_row[r * d + c],
                        before[r * d + c] + sum.sum::<f32>(),
                        "by row",
                    );
                }
            }
        }
    }
}
