//! Small f32 kernels the trainer's CPU ops share, written so the compiler vectorises them: each
//! is `#[inline(always)]` and the ops run them through [`vectorized`] ([`pulp::Arch::dispatch`]),
//! which compiles the caller for the best instruction set the CPU has (AVX2, AVX-512) and picks
//! it at run time. Reductions keep a fixed number of accumulator lanes (16 or 64) summed
//! pairwise, never fused multiply-adds, so a sum is taken in the same order whatever the
//! instruction set: results are identical on every x86-64 machine.

/// `eˣ` for `x ≤ 0` in a form the compiler vectorises (Cephes' `expf`: range reduction by
/// `ln 2`, a degree-5 polynomial; relative error below 2e-7); `x < -87` is taken as −87
/// (e⁻⁸⁷ ≈ 1.6e-38, not 0, so no sum of exponentials is ever 0).
#[inline(always)]
pub fn exp_neg(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    let x = x.max(-87.0);
    // Round to nearest by adding 1.5·2²³: `k = round(x·log2 e)` then sits in the low mantissa
    // bits of `t`, so the power 2ᵏ is built from `t`'s bits with wrapping integer ops (a
    // float-to-int cast saturates, and checked arithmetic would not vectorise).
    let t = x * LOG2E + 12_582_912.0;
    let k = t - 12_582_912.0;
    let r = x - k * 0.693_359_4 + k * 2.121_944_4e-4;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_66;
    let p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    let power = t.to_bits().wrapping_sub(0x4B40_0000).wrapping_add(127) << 23;
    f32::from_bits(power) * e
}

/// Accumulator lanes of the reductions: sixteen, so they vectorise (AVX-512 or two AVX2
/// registers) without reassociation flags, and sum in the same order on every machine.
pub const LANES: usize = 16;

/// Outputs per register block of [`dot`]: four independent 16-float
/// accumulators, so the adds do not wait on each other and stay in registers.
pub const BLOCK: usize = 64;

/// The sum of `acc`'s lanes, pairwise (a few vector adds, where a running sum over the lanes
/// would be `N` dependent scalar adds). `N` is a power of two.
#[inline(always)]
pub fn reduce<const N: usize>(mut acc: [f32; N]) -> f32 {
    let mut width = N / 2;
    while width > 0 {
        for i in 0..width {
            acc[i] += acc[i + width];
        }
        width /= 2;
    }
    acc[0]
}

/// `Σ aᵢ·bᵢ`: blocks of 64 in four register chains, then 16 at a time, then the rest.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (
        a.get(..n).unwrap_or_default(),
        b.get(..n).unwrap_or_default(),
    );
    let mut wide = [0f32; BLOCK];
    let (ca, cb) = (a.chunks_exact(BLOCK), b.chunks_exact(BLOCK));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        if let (Ok(x), Ok(y)) = (<&[f32; BLOCK]>::try_from(x), <&[f32; BLOCK]>::try_from(y)) {
            for l in 0..BLOCK {
                wide[l] += x[l] * y[l];
            }
        }
    }
    let mut narrow = [0f32; LANES];
    let (ca, cb) = (ra.chunks_exact(LANES), rb.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        if let (Ok(x), Ok(y)) = (<&[f32; LANES]>::try_from(x), <&[f32; LANES]>::try_from(y)) {
            for l in 0..LANES {
                narrow[l] += x[l] * y[l];
            }
        }
    }
    reduce(wide) + reduce(narrow) + tail
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
    reduce(acc) + tail
}

/// An `i32` that orders like the float: the sign bit kept, the other bits flipped for
/// negative numbers. Integer maxima vectorise (`vpmaxsd`); float ones stay scalar, since
/// LLVM keeps `f32::max`'s NaN rule and will not turn a compare-and-select into `vmaxps`
/// (measured on this toolchain). The map is a bijection, so the maximum is exact.
#[inline(always)]
fn ordered(x: f32) -> i32 {
    let b = x.to_bits() as i32;
    b ^ (((b >> 31) as u32) >> 1) as i32
}

#[inline(always)]
fn unordered(k: i32) -> f32 {
    f32::from_bits((k ^ (((k >> 31) as u32) >> 1) as i32) as u32)
}

/// The largest element (`-∞` for none); logits and scores are never NaN here.
#[inline(always)]
pub fn max_of(x: &[f32]) -> f32 {
    let mut acc = [ordered(f32::NEG_INFINITY); LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder().iter().map(|&v| ordered(v)).max();
    for c in chunks {
        if let Ok(c) = <&[f32; LANES]>::try_from(c) {
            for l in 0..LANES {
                acc[l] = acc[l].max(ordered(c[l]));
            }
        }
    }
    let best = acc.iter().copied().max().unwrap_or(acc[0]);
    unordered(tail.map_or(best, |t| t.max(best)))
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
    reduce(acc) + tail
}

/// The f32 elements of a contiguous CPU tensor's storage, for the custom ops' CPU kernels;
/// `what` names the op and operand in the error.
pub fn cpu_f32<'a>(
    s: &'a candle_core::CpuStorage,
    l: &candle_core::Layout,
    what: &str,
) -> candle_core::Result<&'a [f32]> {
    let (a, b) = f32_range(s, l, what)?;
    match s {
        candle_core::CpuStorage::F32(data) => data.get(a..b).ok_or_else(|| out_of_bounds(what)),
        _ => Err(out_of_bounds(what)),
    }
}

/// [`cpu_f32`], writable (for ops that work in place).
pub fn cpu_f32_mut<'a>(
    s: &'a mut candle_core::CpuStorage,
    l: &candle_core::Layout,
    what: &str,
) -> candle_core::Result<&'a mut [f32]> {
    let (a, b) = f32_range(s, l, what)?;
    match s {
        candle_core::CpuStorage::F32(data) => data.get_mut(a..b).ok_or_else(|| out_of_bounds(what)),
        _ => Err(out_of_bounds(what)),
    }
}

fn f32_range(
    s: &candle_core::CpuStorage,
    l: &candle_core::Layout,
    what: &str,
) -> candle_core::Result<(usize, usize)> {
    if !matches!(s, candle_core::CpuStorage::F32(_)) {
        candle_core::bail!("{what} must be f32");
    }
    l.contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{what} must be contiguous")))
}

fn out_of_bounds(what: &str) -> candle_core::Error {
    candle_core::Error::Msg(format!("{what} out of bounds"))
}

/// A kernel run through [`pulp::Arch::dispatch`]. `dispatch` compiles its argument's
/// `with_simd` for the instruction set it picks, but a closure passed to it is called, not
/// inlined, and then runs as baseline SSE2 code (measured: scalar `mulss`/`addss` in the
/// attention's hot loops). So each kernel is a type whose `run` is `#[inline(always)]`, and
/// [`vectorized`] inlines it into the dispatched function.
pub trait Kernel {
    type Output;
    /// The kernel, with the instruction set's token for explicit vector code.
    fn run<S: pulp::Simd>(self, simd: S) -> Self::Output;
}

struct Dispatched<K>(K);

impl<K: Kernel> pulp::WithSimd for Dispatched<K> {
    type Output = K::Output;
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) -> K::Output {
        self.0.run(simd)
    }
}

/// Runs `kernel` compiled for the best instruction set of this CPU.
#[inline(always)]
pub fn vectorized<K: Kernel>(arch: pulp::Arch, kernel: K) -> K::Output {
    arch.dispatch(Dispatched(kernel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_neg_matches_the_standard_library() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -87.0 * i as f32 / 200_000.0;
            let (ours, std) = (f64::from(exp_neg(x)), f64::from(x.exp()));
            worst = worst.max((ours - std).abs() / std);
        }
        assert!(worst < 4e-7, "relative error {worst}");
        assert_eq!(exp_neg(-1000.0), exp_neg(-87.0));
        assert_eq!(exp_neg(0.0), 1.0);
    }

    #[test]
    fn max_of_is_the_exact_maximum() {
        let xs: Vec<f32> = (0..100)
            .map(|i| ((i * 53 % 97) as f32 - 60.0) * 1.7e-3)
            .collect();
        for len in [0, 1, 15, 16, 17, 33, 100] {
            let x = xs.get(..len).unwrap_or_default();
            let plain = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(max_of(x).to_bits(), plain.to_bits(), "len {len}");
        }
        assert_eq!(max_of(&[-0.5, f32::NEG_INFINITY, -3.0]), -0.5);
        assert_eq!(max_of(&[f32::INFINITY; 20]), f32::INFINITY);
    }

    /// The blocked dot product against a plain sum, at lengths around every block boundary.
    #[test]
    fn dot_equals_plain_sums() {
        let data: Vec<f32> = (0..600)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
            .collect();
        for len in [0, 1, 15, 16, 17, 63, 64, 65, 130, 256, 299] {
            let (a, b) = (
                data.get(..len).unwrap_or_default(),
                data.get(300..300 + len).unwrap_or_default(),
            );
            let plain: f64 = a
                .iter()
                .zip(b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            assert!(
                (f64::from(dot(a, b)) - plain).abs() <= 1e-4 * plain.abs().max(1.0),
                "dot {len}"
            );
        }
    }
}
