//! AdamW with fp32 moments, global gradient-norm clipping and the cosine schedule, written to
//! match `torch.optim.AdamW` and transformers' `get_cosine_with_min_lr_schedule_with_warmup`
//! step for step (the parity test runs both).

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::Params;

/// Hyper-parameters of AdamW.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

/// The optimizer's state: step count and both moments of every parameter, in fp32.
#[derive(Debug)]
pub struct AdamW {
    pub config: AdamWConfig,
    pub step: u64,
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
}

impl AdamW {
    pub fn new(config: AdamWConfig, params: &Params) -> Result<AdamW> {
        let zeros = || {
            params
                .list
                .iter()
                .map(|p| Tensor::zeros(p.var.dims(), DType::F32, p.var.device()))
                .collect::<candle_core::Result<Vec<_>>>()
        };
        Ok(AdamW {
            config,
            step: 0,
            m: zeros()?,
            v: zeros()?,
        })
    }

    /// One update at learning rate `lr` (as `torch.optim.AdamW`, non-fused, non-amsgrad):
    /// decoupled decay `p ← p(1 − lr·wd)` on decaying parameters, then the bias-corrected step.
    pub fn update(&mut self, params: &Params, grads: &[Tensor], lr: f64) -> Result<()> {
        self.step += 1;
        let c = self.config;
        let bias1 = 1.0 - c.beta1.powi(self.step as i32);
        let bias2_sqrt = (1.0 - c.beta2.powi(self.step as i32)).sqrt();
        let step_size = lr / bias1;
        for (((p, g), m), v) in params
            .list
            .iter()
            .zip(grads)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            let mut w = p.var.as_tensor().to_dtype(DType::F32)?;
            if p.decay && c.weight_decay != 0.0 {
                w = (w * (1.0 - lr * c.weight_decay))?;
            }
            *m = ((&*m * c.beta1)? + (g * (1.0 - c.beta1))?)?;
            *v = ((&*v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let denom = ((v.sqrt()? / bias2_sqrt)? + c.eps)?;
            let w = (w - ((&*m / denom)? * step_size)?)?;
            p.var.set(&w.to_dtype(p.var.dtype())?)?;
        }
        Ok(())
    }
}

/// The global L2 norm of all gradients (before clipping), and the gradients clipped to
/// `max_norm` as `torch.nn.utils.clip_grad_norm_` does (`coef = max / (norm + 1e-6)`, at most 1).
pub fn clip_grad_norm(grads: &mut [Tensor], max_norm: Option<f64>) -> Result<f64> {
    let mut sq = 0f64;
    for g in grads.iter() {
        sq += f64::from(
            g.sqr()?
                .sum_all()?
                .to_dtype(DType::F32)?
                .to_scalar::<f32>()?,
        );
    }
    let norm = sq.sqrt();
    if let Some(max) = max_norm {
        let coef = (max / (norm + 1e-6)).min(1.0);
        if coef < 1.0 {
            for g in grads.iter_mut() {
                *g = (&*g * coef)?;
            }
        }
    }
    Ok(norm)
}

/// Linear warm-up from 0, then a half cosine from `lr` down to `min_lr`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub lr: f64,
    pub min_lr: f64,
    pub warmup_steps: u64,
    pub total_steps: u64,
}

impl Schedule {
    /// Warm-up steps from a ratio as transformers' `TrainingArguments` rounds it (up).
    pub fn with_ratio(lr: f64, min_lr: f64, warmup_ratio: f64, total_steps: u64) -> Schedule {
        let warmup_steps = (warmup_ratio * total_steps as f64).ceil() as u64;
        Schedule {
            lr,
            min_lr,
            warmup_steps,
            total_steps,
        }
    }

    /// The learning rate of optimizer step `step` (0-based).
    pub fn lr_at(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.lr * step as f64 / self.warmup_steps.max(1) as f64;
        }
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let progress = (step - self.warmup_steps) as f64 / span as f64;
        let cosine = (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0);
        let floor = if self.lr > 0.0 {
            self.min_lr / self.lr
        } else {
            0.0
        };
        self.lr * (cosine * (1.0 - floor) + floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_from_zero_and_ends_at_the_floor() {
        let s = Schedule::with_ratio(1e-5, 1e-8, 0.1, 100);
        assert_eq!(s.warmup_steps, 10);
        assert_eq!(s.lr_at(0), 0.0);
        assert!((s.lr_at(5) - 5e-6).abs() < 1e-18);
        assert!((s.lr_at(10) - 1e-5).abs() < 1e-18);
        assert!((s.lr_at(100) - 1e-8).abs() < 1e-18);
        assert!(s.lr_at(55) < s.lr_at(54));
    }
}
