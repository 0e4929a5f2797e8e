//! The two register-blocked products the CPU attention is built from, on tiles of
//! [`KEY_TILE`] keys: [`scores`] (`S = A Bᵀ`, vectorised over the keys, from keys stored
//! transposed) and [`accumulate`] (`O += W X`, vectorised over the head dimension, from rows
//! stored as they come). Each keeps a block of four output rows by two SIMD vectors in
//! registers over the whole inner sum and stores it once, so every loaded key or row feeds four
//! rows of multiply-adds (a one-row loop loads as often as it computes, and was memory-bound).
//! The vectors are pulp's, for the instruction set [`super::vector::vectorized`] picked (written
//! out: LLVM left the plain-array version of these loops scalar). Every output element is one
//! sum in a fixed order with separate multiplies and adds, so the vector width never changes a
//! result.

use pulp::Simd;

/// Keys per tile: the width of a score tile (a multiple of two vectors of every instruction set).
pub const KEY_TILE: usize = 64;
/// Output rows per register block.
const ROWS: usize = 4;

/// Vectors of `d` floats picked out of a flat `[tokens, heads · d]` tensor: vector `i` is head
/// `first_head + i % group` of token `first_token + i / group` (query vectors of a block, its
/// heads varying fastest; or, with `group` 1, one head's keys or values).
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    pub data: &'a [f32],
    pub first_token: usize,
    pub first_head: usize,
    pub group: usize,
    pub width: usize,
    pub d: usize,
    pub count: usize,
}

impl<'a> Rows<'a> {
    #[inline(always)]
    pub fn get(&self, i: usize) -> &'a [f32] {
        let token = self.first_token + i / self.group.max(1);
        let at = token * self.width + (self.first_head + i % self.group.max(1)) * self.d;
        self.data.get(at..at + self.d).unwrap_or_default()
    }
}

/// A matrix of keys stored transposed, `[d][stride]`, with zeros past the last key so a tile
/// may run over the end.
#[derive(Clone, Copy)]
pub struct KeysT<'a> {
    pub data: &'a [f32],
    pub stride: usize,
}

/// `out[v·KEY_TILE + j] = Σ_dd a_v[dd] · bt[dd][j0 + j]` for every vector `v` of `a` and
/// `j < KEY_TILE`.
#[inline(always)]
pub fn scores<S: Simd>(simd: S, out: &mut [f32], a: &Rows, bt: KeysT, j0: usize) {
    let full = a.count / ROWS * ROWS;
    for r0 in (0..full).step_by(ROWS) {
        scores_block::<S, ROWS>(simd, out, a, r0, bt, j0);
    }
    for r0 in full..a.count {
        scores_block::<S, 1>(simd, out, a, r0, bt, j0);
    }
}

/// Two vectors of `S` from the start of `x` (`None` when `x` is shorter).
#[inline(always)]
fn load2<S: Simd>(x: &[f32]) -> Option<(S::f32s, S::f32s)> {
    let (v, _) = S::as_simd_f32s(x);
    Some((*v.first()?, *v.get(1)?))
}

#[inline(always)]
fn store2<S: Simd>(x: &mut [f32], (a, b): (S::f32s, S::f32s)) {
    let (v, _) = S::as_mut_simd_f32s(x);
    if let [first, second, ..] = v {
        *first = a;
        *second = b;
    }
}

#[inline(always)]
fn scores_block<S: Simd, const N: usize>(
    simd: S,
    out: &mut [f32],
    a: &Rows,
    r0: usize,
    bt: KeysT,
    j0: usize,
) {
    let cols = 2 * S::F32_LANES;
    let rows: [&[f32]; N] = std::array::from_fn(|n| a.get(r0 + n));
    for c in (0..KEY_TILE).step_by(cols) {
        let zero = simd.splat_f32s(0.0);
        let mut acc = [(zero, zero); N];
        for dd in 0..a.d {
            let at = dd * bt.stride + j0 + c;
            let Some((b0, b1)) = bt.data.get(at..at + cols).and_then(load2::<S>) else {
                continue;
            };
            for (acc, row) in acc.iter_mut().zip(&rows) {
                let w = simd.splat_f32s(row.get(dd).copied().unwrap_or_default());
                acc.0 = simd.add_f32s(acc.0, simd.mul_f32s(w, b0));
                acc.1 = simd.add_f32s(acc.1, simd.mul_f32s(w, b1));
            }
        }
        for (n, &acc) in acc.iter().enumerate() {
            let at = (r0 + n) * KEY_TILE + c;
            if let Some(dst) = out.get_mut(at..at + cols) {
                store2::<S>(dst, acc);
            }
        }
    }
}

/// The layout of a weight matrix: `w[r·row + i·col]` weighs vector `i` for output row `r`.
#[derive(Clone, Copy)]
pub struct Weights<'a> {
    pub data: &'a [f32],
    pub row: usize,
    pub col: usize,
}

impl Weights<'_> {
    #[inline(always)]
    fn at(&self, r: usize, i: usize) -> f32 {
        self.data
            .get(r * self.row + i * self.col)
            .copied()
            .unwrap_or_default()
    }
}

/// `out[r][..d] += Σ_i w(r, i) · x_i[..d]` for every output row `r` of `out` (`[rows × d]`).
#[inline(always)]
pub fn accumulate<S: Simd>(simd: S, out: &mut [f32], d: usize, w: Weights, x: &Rows) {
    let rows = out.len() / d.max(1);
    let full = rows / ROWS * ROWS;
    for r0 in (0..full).step_by(ROWS) {
        accumulate_rows::<S, ROWS>(simd, out, d, r0, w, x);
    }
    for r0 in full..rows {
        accumulate_rows::<S, 1>(simd, out, d, r0, w, x);
    }
}

/// Columns two vectors at a time, then one by one (head dimensions need not be a multiple of
/// the vector width).
#[inline(always)]
fn accumulate_rows<S: Simd, const N: usize>(
    simd: S,
    out: &mut [f32],
    d: usize,
    r0: usize,
    w: Weights,
    x: &Rows,
) {
    let cols = 2 * S::F32_LANES;
    let mut c = 0;
    while c + cols <= d {
        accumulate_block::<S, N>(simd, out, d, (r0, c), w, x);
        c += cols;
    }
    for c in c..d {
        for n in 0..N {
            let sum = (0..x.count).fold(0f32, |s, i| {
                s + w.at(r0 + n, i) * x.get(i).get(c).copied().unwrap_or_default()
            });
            if let Some(o) = out.get_mut((r0 + n) * d + c) {
                *o += sum;
            }
        }
    }
}

#[inline(always)]
fn accumulate_block<S: Simd, const N: usize>(
    simd: S,
    out: &mut [f32],
    d: usize,
    (r0, c): (usize, usize),
    w: Weights,
    x: &Rows,
) {
    let cols = 2 * S::F32_LANES;
    let zero = simd.splat_f32s(0.0);
    let mut acc = [(zero, zero); N];
    for i in 0..x.count {
        let Some((x0, x1)) = x.get(i).get(c..c + cols).and_then(load2::<S>) else {
            continue;
        };
        for (n, acc) in acc.iter_mut().enumerate() {
            let wi = simd.splat_f32s(w.at(r0 + n, i));
            acc.0 = simd.add_f32s(acc.0, simd.mul_f32s(wi, x0));
            acc.1 = simd.add_f32s(acc.1, simd.mul_f32s(wi, x1));
        }
    }
    for (n, &(a0, a1)) in acc.iter().enumerate() {
        let at = (r0 + n) * d + c;
        if let Some(dst) = out.get_mut(at..at + cols) {
            if let Some((o0, o1)) = load2::<S>(dst) {
                store2::<S>(dst, (simd.add_f32s(o0, a0), simd.add_f32s(o1, a1)));
            }
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

    /// Both products against plain triple loops, over head dimensions that exercise every
    /// column path (16, 8, 1) and row counts that leave a remainder of register blocks.
    #[test]
    fn tile_products_equal_plain_sums() {
        check(pulp::Scalar::new());
        #[cfg(target_arch = "x86_64")]
        if let Some(simd) = pulp::x86::V3::try_new() {
            check(simd);
        }
    }

    fn check<S: Simd>(simd: S) {
        for (d, group, count) in [(16, 2, 64), (8, 1, 7), (40, 3, 30), (5, 2, 9)] {
            let heads = group * 2;
            let tokens = count / group + 3;
            let q = data(tokens * heads * d, 1);
            let a = Rows {
                data: &q,
                first_token: 2,
                first_head: group,
                group,
                width: heads * d,
                d,
                count,
            };
            let stride = 3 * KEY_TILE;
            let kt = data(d * stride, 2);
            let mut s = vec![0f32; count * KEY_TILE];
            scores(simd, &mut s, &a, KeysT { data: &kt, stride }, KEY_TILE);
            for v in 0..count {
                for j in 0..KEY_TILE {
                    let plain: f32 = (0..d)
                        .map(|dd| a.get(v)[dd] * kt[dd * stride + KEY_TILE + j])
                        .sum();
                    let got = s[v * KEY_TILE + j];
                    assert!((got - plain).abs() <= 1e-4 * plain.abs().max(1.0), "scores");
                }
            }
            // out [KEY_TILE × d] += sᵀ-weighted sum of the vectors of `a`.
            let mut out = data(KEY_TILE * d, 3);
            let before = out.clone();
            let w = Weights {
                data: &s,
                row: 1,
                col: KEY_TILE,
            };
            accumulate(simd, &mut out, d, w, &a);
            for r in 0..KEY_TILE {
                for c in 0..d {
                    let plain: f32 = before[r * d + c]
                        + (0..count)
                            .map(|i| s[i * KEY_TILE + r] * a.get(i)[c])
                            .sum::<f32>();
                    let got = out[r * d + c];
                    assert!(
                        (got - plain).abs() <= 1e-3 * plain.abs().max(1.0),
                        "accumulate d {d} at {r},{c}: {got} vs {plain}"
                    );
                }
            }
        }
    }
}
