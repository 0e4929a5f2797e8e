//! Small f32 kernels the trainer's CPU ops share, written so the compiler vectorises them: each
//! is `#[inline(always)]` and the ops call them inside [`pulp::Arch::dispatch`], which compiles
//! the caller for the best instruction set the CPU has (AVX2, AVX-512) and picks it at run
//! time. Reductions keep sixteen fixed accumulator lanes, so a sum is taken in the same order
//! whatever the instruction set: results are identical on every x86-64 machine.

/// `eˣ` for `x ≤ 0` in a form the compiler vectorises (Cephes' `expf`: range reduction by
/// `ln 2`, a degree-5 polynomial; relative error below 2e-7); `x < -87` gives 0.
#[inline(always)]
pub fn exp_neg(x: f32) -> f32 {
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

/// Accumulator lanes of the reductions: sixteen, so they vectorise (AVX-512 or two AVX2
/// registers) without reassociation flags, and sum in the same order on every machine.
pub const LANES: usize = 16;

/// `Σ aᵢ·bᵢ`.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `y += a·x`.
#[inline(always)]
pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// `xᵢ ← e^(xᵢ − shift)`, returning `Σ xᵢ` (in sixteen lanes, so it vectorises).
#[inline(always)]
pub fn exp_shifted_sum(x: &mut [f32], shift: f32) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = x.chunks_exact_mut(LANES);
    for c in chunks.by_ref() {
        for (a, v) in acc.iter_mut().zip(c.iter_mut()) {
            *v = exp_neg(*v - shift);
            *a += *v;
        }
    }
    let mut tail = 0f32;
    for v in chunks.into_remainder() {
        *v = exp_neg(*v - shift);
        tail += *v;
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
pub fn max_of(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = a.max(v);
        }
    }
    acc.iter().copied().fold(tail, f32::max)
}

/// `Σ e^(xᵢ − shift)`, leaving `x` as it is.
#[inline(always)]
pub fn sum_exp_shifted(x: &[f32], shift: f32) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&v| exp_neg(v - shift)).sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += exp_neg(v - shift);
        }
    }
    acc.iter().sum::<f32>() + tail
}
