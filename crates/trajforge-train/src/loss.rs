//! Next-token cross-entropy over the supervised positions, in chunks, with its gradient.
//!
//! Position `t` is scored on token `t+1` only when `t+1` is in the same document and has
//! `loss_mask = 1` (see [`Targets`]). The logits of a chunk of supervised positions are made,
//! turned into the loss and into the gradient of the hidden states and of the head's weight,
//! and dropped before the next chunk, so the full `[tokens × vocab]` logits never exist (152k
//! vocabulary × 32k tokens in f32 would be 20 GB). Unsupervised positions cost nothing here.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp1, D, DType, InplaceOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::error::{Result, TrainError};
use crate::model::vector::{
    Kernel, cpu_f32, cpu_f32_mut, exp_shifted_sum, max_of, sum_exp_shifted, vectorized,
};

/// The scored positions of a micro-batch: position, the token it must predict, its document.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    pub positions: Vec<u32>,
    pub labels: Vec<u32>,
    /// Index of the document (in the micro-batch's document list) each target belongs to.
    pub docs: Vec<u32>,
}

impl Targets {
    /// Targets of one flat token run: `ids`, `mask` and the documents' `[start, end)`.
    pub fn from_tokens(ids: &[u32], mask: &[u8], docs: &[(usize, usize)]) -> Targets {
        let mut t = Targets::default();
        for (d, &(start, end)) in docs.iter().enumerate() {
            for pos in start..end.saturating_sub(1) {
                let (Some(&next), Some(&m)) = (ids.get(pos + 1), mask.get(pos + 1)) else {
                    continue;
                };
                if m == 1 {
                    t.positions.push(pos as u32);
                    t.labels.push(next);
                    t.docs.push(d as u32);
                }
            }
        }
        t
    }

    pub fn len(&self) -> usize {
        self.positions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }
}

/// The loss of a micro-batch and, when asked, its gradients.
#[derive(Debug)]
pub struct LossOutput {
    /// Sum of the per-target cross-entropies (not yet divided).
    pub sum: f64,
    /// Per document: (sum of cross-entropies, supervised tokens).
    pub per_doc: Vec<(f64, u64)>,
    /// d(scale · sum)/d(hidden) `[T, D]`.
    pub grad_hidden: Option<Tensor>,
    /// d(scale · sum)/d(head weight) `[V, D]`.
    pub grad_head: Option<Tensor>,
}

/// The cross-entropy of each row of `logits` `[c, V]` against `labels`, and with `grad` the
/// gradient of `scale · Σ nll` with respect to the logits (`scale · (softmax − onehot)`).
/// On the CPU in f32 one fused parallel pass ([`SoftmaxCrossEntropy`]); elsewhere composed ops.
/// The logits are consumed: on the CPU their storage becomes the gradient, so a caller must not
/// hold another handle on it.
fn softmax_cross_entropy(
    logits: Tensor,
    labels: &[u32],
    scale: f64,
    grad: bool,
) -> Result<(Vec<f32>, Option<Tensor>)> {
    if logits.device().is_cpu() && logits.dtype() == DType::F32 {
        let op = SoftmaxCrossEntropy {
            labels: labels.to_vec(),
            scale: scale as f32,
            nll: Mutex::new(Vec::new()),
        };
        let logits = logits.contiguous()?;
        if !grad {
            let nll = logits.apply_op1_no_bwd(&op)?.to_vec1::<f32>()?;
            return Ok((nll, None));
        }
        // The gradient overwrites the logits (a fresh `[c, V]` buffer per chunk cost page
        // faults and a zeroing pass: 311 MB at 512 tokens × 152k); an in-place op has no
        // output, so the losses come back through `nll`.
        logits.inplace_op1(&op)?;
        let nll = op
            .nll
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .map_err(|_| {
                TrainError::Internal("the loss kernel's result lock is poisoned".into())
            })?;
        return Ok((nll, Some(logits)));
    }
    let device = logits.device();
    let y = Tensor::from_slice(labels, (labels.len(), 1), device)?;
    let z = logits.broadcast_sub(&logits.max_keepdim(D::Minus1)?)?;
    let lse = z.exp()?.sum_keepdim(D::Minus1)?.log()?;
    let nll = (lse.clone() - z.gather(&y, 1)?)?
        .flatten_all()?
        .to_dtype(DType::F32)?
        .to_vec1::<f32>()?;
    if !grad {
        return Ok((nll, None));
    }
    // d nll / d logits = softmax − onehot(label), times the loss scale.
    let p = (z.broadcast_sub(&lse)?.exp()? * scale)?;
    let minus = Tensor::full(-scale as f32, (labels.len(), 1), device)?.to_dtype(p.dtype())?;
    Ok((nll, Some(p.scatter_add(&y, &minus, 1)?)))
}

/// The fused CPU kernel: per row the maximum, the sum of exponentials, the log-sum-exp and the
/// loss, and (with `grad`) the scaled gradient written in the same pass; the output is the
/// gradient, over the logits (an [`InplaceOp1`], the losses kept in `nll`), or without it
/// the losses `[c]` (a [`CustomOp1`]).
/// A device kernel replaces it through `cuda_fwd`.
struct SoftmaxCrossEntropy {
    labels: Vec<u32>,
    scale: f32,
    nll: Mutex<Vec<f32>>,
}

impl SoftmaxCrossEntropy {
    /// The loss of one row.
    #[inline(always)]
    fn loss(z: &[f32], label: u32) -> f32 {
        let m = max_of(z);
        let picked = z.get(label as usize).copied().unwrap_or(f32::NAN);
        m + sum_exp_shifted(z, m).ln() - picked
    }

    /// The loss of one row, and `z ← scale · (softmax(z) − onehot)` in place.
    #[inline(always)]
    fn loss_and_grad(&self, z: &mut [f32], label: u32) -> f32 {
        let m = max_of(z);
        let picked = z.get(label as usize).copied().unwrap_or(f32::NAN);
        let sum = exp_shifted_sum(z, m);
        let k = self.scale / sum;
        z.iter_mut().for_each(|v| *v *= k);
        if let Some(slot) = z.get_mut(label as usize) {
            *slot -= self.scale;
        }
        m + sum.ln() - picked
    }

    /// The rows and vocabulary of `layout`, checked against the labels.
    fn dims(&self, layout: &Layout) -> candle_core::Result<(usize, usize)> {
        let (rows, vocab) = layout.shape().dims2()?;
        if rows != self.labels.len() {
            candle_core::bail!(
                "softmax-cross-entropy: {rows} rows for {} labels",
                self.labels.len()
            );
        }
        Ok((rows, vocab))
    }

    /// Every row's loss, in parallel, compiled for the CPU's instruction set.
    fn losses<'a>(&'a self, rows: impl IndexedParallelIterator<Item = Row<'a>>) -> Vec<f32> {
        let arch = pulp::Arch::new();
        rows.map(|row| vectorized(arch, row)).collect()
    }
}

/// One row of the kernel, as a [`Kernel`] so it compiles for the CPU's instruction set: the
/// loss alone, or with the gradient written over the logits.
enum Row<'a> {
    Loss(&'a [f32], u32),
    LossAndGrad(&'a SoftmaxCrossEntropy, &'a mut [f32], u32),
}

impl Kernel for Row<'_> {
    type Output = f32;
    #[inline(always)]
    fn run<S: pulp::Simd>(self, _: S) -> f32 {
        match self {
            Row::Loss(z, label) => SoftmaxCrossEntropy::loss(z, label),
            Row::LossAndGrad(op, z, label) => op.loss_and_grad(z, label),
        }
    }
}

/// Without the gradient: the losses `[c]`, the logits left as they are.
impl CustomOp1 for SoftmaxCrossEntropy {
    fn name(&self) -> &'static str {
        "softmax-cross-entropy"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (_, vocab) = self.dims(l)?;
        let z = cpu_f32(s, l, "softmax-cross-entropy: logits")?;
        let rows = z.par_chunks(vocab.max(1)).zip(&self.labels);
        let nll = self.losses(rows.map(|(z, &label)| Row::Loss(z, label)));
        let n = nll.len();
        Ok((CpuStorage::F32(nll), Shape::from(n)))
    }
}

/// With the gradient: the logits become the gradient.
impl InplaceOp1 for SoftmaxCrossEntropy {
    fn name(&self) -> &'static str {
        "softmax-cross-entropy-grad"
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> candle_core::Result<()> {
        let (_, vocab) = self.dims(l)?;
        let z = cpu_f32_mut(s, l, "softmax-cross-entropy: logits")?;
        let rows = z.par_chunks_mut(vocab.max(1)).zip(&self.labels);
        let nll = self.losses(rows.map(|(z, &label)| Row::LossAndGrad(self, z, label)));
        if let Ok(mut slot) = self.nll.lock() {
            *slot = nll;
        }
        Ok(())
    }
}

/// Cross-entropy of `hidden` `[T, D]` through `head` `[V, D]` on `targets`; gradients (of
/// `scale · sum`) when `grad` is set. Both inputs are read as constants.
pub fn chunked_cross_entropy(
    hidden: &Tensor,
    head: &Tensor,
    targets: &Targets,
    n_docs: usize,
    scale: f64,
    chunk: usize,
    grad: bool,
) -> Result<LossOutput> {
    let hidden = hidden.detach().to_dtype(DType::F32)?;
    let head = head.detach().to_dtype(DType::F32)?;
    let device = hidden.device().clone();
    let mut out = LossOutput {
        sum: 0.0,
        per_doc: vec![(0.0, 0); n_docs],
        grad_hidden: None,
        grad_head: None,
    };
    let mut grad_hidden = grad.then(|| hidden.zeros_like()).transpose()?;
    let mut grad_head = grad.then(|| head.zeros_like()).transpose()?;
    let chunk = chunk.max(1);
    for start in (0..targets.len()).step_by(chunk) {
        let end = (start + chunk).min(targets.len());
        let (Some(pos), Some(lab), Some(docs)) = (
            targets.positions.get(start..end),
            targets.labels.get(start..end),
            targets.docs.get(start..end),
        ) else {
            break;
        };
        let c = pos.len();
        let idx = Tensor::from_slice(pos, c, &device)?;
        let h = hidden.index_select(&idx, 0)?;
        let logits = h.matmul(&head.t()?)?;
        let (nll, g_logits) = softmax_cross_entropy(logits, lab, scale, grad)?;
        for (&value, &d) in nll.iter().zip(docs) {
            out.sum += f64::from(value);
            if let Some(slot) = out.per_doc.get_mut(d as usize) {
                slot.0 += f64::from(value);
                slot.1 += 1;
            }
        }
        if let (Some(gh), Some(gw), Some(g_logits)) =
            (grad_hidden.as_mut(), grad_head.as_mut(), g_logits)
        {
            *gh = gh.index_add(&idx, &g_logits.matmul(&head)?, 0)?;
            *gw = (&*gw + g_logits.t()?.matmul(&h)?)?;
        }
    }
    out.grad_hidden = grad_hidden;
    out.grad_head = grad_head;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn targets_stay_inside_documents_and_follow_the_mask() {
        let ids = [10, 11, 12, 20, 21, 22];
        let mask = [0, 1, 1, 1, 0, 1];
        let t = Targets::from_tokens(&ids, &mask, &[(0, 3), (3, 6)]);
        // Position 2 would predict 20 across the boundary; position 3's next token is unmasked.
        assert_eq!(t.positions, vec![0, 1, 4]);
        assert_eq!(t.labels, vec![11, 12, 22]);
        assert_eq!(t.docs, vec![0, 0, 1]);
    }

    #[test]
    fn chunked_gradient_equals_autograd_of_the_full_logits() -> Result<()> {
        let dev = Device::Cpu;
        let h = Var::randn(0f32, 1.0, (7, 5), &dev)?;
        let w = Var::randn(0f32, 1.0, (11, 5), &dev)?;
        let targets = Targets {
            positions: vec![0, 2, 3, 6],
            labels: vec![3, 10, 0, 3],
            docs: vec![0, 0, 1, 1],
        };
        let scale = 0.25;
        let ours = chunked_cross_entropy(&h, &w, &targets, 2, scale, 3, true)?;
        // Reference: the full logits through candle's autograd.
        let idx = Tensor::new(&[0u32, 2, 3, 6], &dev)?;
        let logits = h
            .as_tensor()
            .index_select(&idx, 0)?
            .matmul(&w.as_tensor().t()?)?;
        let lse = logits.exp()?.sum_keepdim(1)?.log()?;
        let y = Tensor::new(&[[3u32], [10], [0], [3]], &dev)?;
        let nll = (lse - logits.gather(&y, 1)?)?;
        let loss = (nll.sum_all()? * scale)?;
        let grads = loss.backward()?;
        let close = |a: &Tensor, b: &Tensor| -> Result<f32> {
            Ok((a - b)?.abs()?.max_all()?.to_scalar::<f32>()?)
        };
        assert!((ours.sum * scale - f64::from(loss.to_scalar::<f32>()?)).abs() < 1e-5);
        let gh = grads
            .get(h.as_tensor())
            .ok_or(crate::TrainError::Internal("h".into()))?;
        let gw = grads
            .get(w.as_tensor())
            .ok_or(crate::TrainError::Internal("w".into()))?;
        let missing = || crate::TrainError::Internal("no gradient".into());
        assert!(close(ours.grad_hidden.as_ref().ok_or_else(missing)?, gh)? < 1e-5);
        assert!(close(ours.grad_head.as_ref().ok_or_else(missing)?, gw)? < 1e-5);
        assert_eq!(
            ours.per_doc.iter().map(|d| d.1).collect::<Vec<_>>(),
            vec![2, 2]
        );
        Ok(())
    }
}

#[cfg(test)]
mod kernel_tests {
    use super::*;
    use candle_core::Device;

    /// The fused CPU kernel (f32) against the composed ops, which every other device and
    /// dtype runs: here in f64 on the CPU, over a vocabulary wider than one 16-lane block.
    #[test]
    fn fused_kernel_equals_the_composed_ops() -> Result<()> {
        let logits = Tensor::randn(0f32, 3.0, (5, 37), &Device::Cpu)?;
        let labels = [0u32, 36, 5, 16, 17];
        let (nll, g) = softmax_cross_entropy(logits.copy()?, &labels, 0.5, true)?;
        let (nll_ref, g_ref) =
            softmax_cross_entropy(logits.to_dtype(DType::F64)?, &labels, 0.5, true)?;
        for (a, b) in nll.iter().zip(&nll_ref) {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "nll {a} vs {b}");
        }
        let (g, g_ref) = (g.expect("grad"), g_ref.expect("grad").to_dtype(DType::F32)?);
        let diff = (g - &g_ref)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff <= 1e-6, "gradient differs by {diff}");
        let (nll_only, none) = softmax_cross_entropy(logits.copy()?, &labels, 0.5, false)?;
        assert!(none.is_none());
        assert_eq!(
            nll_only, nll,
            "the loss without the gradient is the same pass"
        );
        // bf16 logits (the `cuda` feature's compute dtype) take the composed path too.
        let (nll_bf16, g_bf16) =
            softmax_cross_entropy(logits.to_dtype(DType::BF16)?, &labels, 0.5, true)?;
        for (a, b) in nll_bf16.iter().zip(&nll_ref) {
            assert!(
                (a - b).abs() <= 0.1 * b.abs().max(1.0),
                "bf16 nll {a} vs {b}"
            );
        }
        assert_eq!(g_bf16.expect("grad").dtype(), DType::BF16);
        Ok(())
    }
}
