//! Loss and gradients of one micro-batch, with or without recomputation.
//!
//! Without recomputation the forward pass keeps candle's graph and one backward walks it. With
//! `recompute` (gradient checkpointing per decoder layer) the forward pass runs on detached
//! weights and keeps only each layer's input; the backward pass then re-runs one layer at a time
//! with gradients on, from its saved input made a variable, and pulls the incoming gradient
//! through it with the surrogate `sum(y ⊙ g)`, so at most one layer's activations are alive.
//! Either way the LM head's gradient comes from the chunked loss ([`crate::loss`]).

use candle_core::{DType, Tensor, Var, backprop::GradStore};

use super::params::Params;
use super::qwen2::{self, Tokens, Weights};
use crate::error::{Result, TrainError};
use crate::loss::{LossOutput, Targets, chunked_cross_entropy};

/// What one micro-batch's forward and backward need besides the weights.
#[derive(Debug, Clone, Copy)]
pub struct PassOptions {
    /// Multiplies the summed loss before differentiation (1 / supervised tokens of the batch).
    pub scale: f64,
    pub loss_chunk: usize,
    pub recompute: bool,
    pub dtype: DType,
}

/// The loss of a micro-batch and the gradient of every parameter (in [`Params::list`] order).
#[derive(Debug)]
pub struct Pass {
    pub loss: LossOutput,
    pub grads: Vec<Tensor>,
}

/// Loss only (evaluation): no graph is kept.
pub fn loss_only(
    p: &Params,
    t: &Tokens,
    targets: &Targets,
    opts: &PassOptions,
) -> Result<LossOutput> {
    let w = Weights::detached(p, opts.dtype)?;
    let h = qwen2::hidden(&w, p, t)?;
    head_loss(&h, &w, p, t, targets, opts, false)
}

/// The chunked loss of the hidden states `h` through the LM head of `w`.
fn head_loss(
    h: &Tensor,
    w: &Weights,
    p: &Params,
    t: &Tokens,
    targets: &Targets,
    opts: &PassOptions,
    grad: bool,
) -> Result<LossOutput> {
    let head = w
        .tensors
        .get(p.head_index())
        .ok_or_else(|| TrainError::Internal("no head".into()))?;
    let docs = t.docs.len();
    chunked_cross_entropy(h, head, targets, docs, opts.scale, opts.loss_chunk, grad)
}

/// Loss and gradients of a micro-batch.
pub fn forward_backward(
    p: &Params,
    t: &Tokens,
    targets: &Targets,
    opts: &PassOptions,
) -> Result<Pass> {
    let mut grads: Vec<Option<Tensor>> = vec![None; p.list.len()];
    let loss = if opts.recompute {
        recomputed(p, t, targets, opts, &mut grads)?
    } else {
        whole_graph(p, t, targets, opts, &mut grads)?
    };
    let grads = grads
        .into_iter()
        .zip(&p.list)
        .map(|(g, param)| match g {
            Some(g) => Ok(g.to_dtype(DType::F32)?),
            None => Ok(param.var.as_tensor().zeros_like()?),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Pass { loss, grads })
}

fn head_grad(loss: &LossOutput) -> Result<(&Tensor, &Tensor)> {
    match (&loss.grad_hidden, &loss.grad_head) {
        (Some(h), Some(w)) => Ok((h, w)),
        _ => Err(TrainError::Internal("the loss returned no gradient".into())),
    }
}

fn add_grad(slot: &mut Option<Tensor>, g: Tensor) -> Result<()> {
    *slot = Some(match slot.take() {
        Some(prev) => (prev + g.to_dtype(DType::F32)?)?,
        None => g.to_dtype(DType::F32)?,
    });
    Ok(())
}

/// Moves every parameter's gradient out of a GradStore into `grads`.
fn collect(p: &Params, store: &mut GradStore, grads: &mut [Option<Tensor>]) -> Result<()> {
    for (param, slot) in p.list.iter().zip(grads.iter_mut()) {
        if let Some(g) = store.remove(param.var.as_tensor()) {
            add_grad(slot, g)?;
        }
    }
    Ok(())
}

/// `sum(y ⊙ g)`: its gradient with respect to `y` is `g`.
fn surrogate(y: &Tensor, g: &Tensor) -> Result<Tensor> {
    Ok((y * g.to_dtype(y.dtype())?)?.sum_all()?)
}

fn whole_graph(
    p: &Params,
    t: &Tokens,
    targets: &Targets,
    opts: &PassOptions,
    grads: &mut [Option<Tensor>],
) -> Result<LossOutput> {
    let w = Weights::tracked(p, opts.dtype)?;
    let h = qwen2::hidden(&w, p, t)?;
    let loss = head_loss(&h, &w, p, t, targets, opts, true)?;
    let (gh, gw) = head_grad(&loss)?;
    let mut store = surrogate(&h, gh)?.backward()?;
    collect(p, &mut store, grads)?;
    if let Some(slot) = grads.get_mut(p.head_index()) {
        add_grad(slot, gw.clone())?;
    }
    Ok(loss)
}

fn recomputed(
    p: &Params,
    t: &Tokens,
    targets: &Targets,
    opts: &PassOptions,
    grads: &mut [Option<Tensor>],
) -> Result<LossOutput> {
    let frozen = Weights::detached(p, opts.dtype)?;
    let tracked = Weights::tracked(p, opts.dtype)?;
    // Forward without a graph, keeping each layer's input.
    let mut inputs = Vec::with_capacity(p.layers.len() + 1);
    let mut x = qwen2::embed(&frozen, p, t)?;
    for l in &p.layers {
        let next = qwen2::layer(&x, &frozen, l, t, &p.config)?;
        inputs.push(x);
        x = next;
    }
    // The final norm and the loss, from the last layer's output.
    let xv = Var::from_tensor(&x.detach())?;
    let h = qwen2::final_norm(xv.as_tensor(), &tracked, p)?;
    let loss = head_loss(&h, &frozen, p, t, targets, opts, true)?;
    let (gh, gw) = head_grad(&loss)?;
    if let Some(slot) = grads.get_mut(p.head_index()) {
        add_grad(slot, gw.clone())?;
    }
    let mut store = surrogate(&h, gh)?.backward()?;
    let mut g = store
        .remove(xv.as_tensor())
        .ok_or_else(|| TrainError::Internal("no gradient at the final norm".into()))?;
    collect(p, &mut store, grads)?;
    // Each layer again, last to first, with gradients on.
    for (l, x_in) in p.layers.iter().zip(inputs).rev() {
        let xv = Var::from_tensor(&x_in.detach())?;
        let y = qwen2::layer(xv.as_tensor(), &tracked, l, t, &p.config)?;
        let mut store = surrogate(&y, &g)?.backward()?;
        g = store
            .remove(xv.as_tensor())
            .ok_or_else(|| TrainError::Internal("no gradient at a layer input".into()))?;
        collect(p, &mut store, grads)?;
    }
    let emb = qwen2::embed(&tracked, p, t)?;
    let mut store = surrogate(&emb, &g)?.backward()?;
    collect(p, &mut store, grads)?;
    Ok(loss)
}
