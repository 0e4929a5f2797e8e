//! The Qwen2 shape: read from a Hugging Face `config.json`, or one of the named presets.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// The fields of a Hugging Face Qwen2 `config.json` the model needs; written back unchanged in
/// meaning so `transformers` loads our checkpoints as `Qwen2ForCausalLM`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_init")]
    pub initializer_range: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    #[serde(default)]
    pub use_sliding_window: bool,
    #[serde(default)]
    pub bos_token_id: Option<serde_json::Value>,
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
    #[serde(default)]
    pub torch_dtype: Option<String>,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_theta() -> f64 {
    10_000.0
}
fn default_max_pos() -> usize {
    32_768
}
fn default_init() -> f64 {
    0.02
}
fn default_act() -> String {
    "silu".into()
}

/// The named shapes `model.preset` accepts.
pub const PRESETS: &[&str] = &[
    "tiny",
    "qwen2.5-coder-0.5b",
    "qwen2.5-coder-1.5b",
    "qwen2.5-coder-7b",
    "qwen2.5-coder-32b",
];

struct Shape {
    vocab: usize,
    hidden: usize,
    inter: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    tie: bool,
}

impl ModelConfig {
    /// A preset shape: `tiny` for tests and the quickstart (the Qwen2.5 vocabulary, so it trains
    /// on real shards), and the published Qwen2.5-Coder shapes.
    pub fn preset(name: &str) -> Option<ModelConfig> {
        let s = match name {
            "tiny" => Shape {
                vocab: 151_936,
                hidden: 64,
                inter: 172,
                layers: 2,
                heads: 2,
                kv_heads: 1,
                tie: true,
            },
            "qwen2.5-coder-0.5b" => Shape {
                vocab: 151_936,
                hidden: 896,
                inter: 4_864,
                layers: 24,
                heads: 14,
                kv_heads: 2,
                tie: true,
            },
            "qwen2.5-coder-1.5b" => Shape {
                vocab: 151_936,
                hidden: 1_536,
                inter: 8_960,
                layers: 28,
                heads: 12,
                kv_heads: 2,
                tie: true,
            },
            "qwen2.5-coder-7b" => Shape {
                vocab: 152_064,
                hidden: 3_584,
                inter: 18_944,
                layers: 28,
                heads: 28,
                kv_heads: 4,
                tie: false,
            },
            "qwen2.5-coder-32b" => Shape {
                vocab: 152_064,
                hidden: 5_120,
                inter: 27_648,
                layers: 64,
                heads: 40,
                kv_heads: 8,
                tie: false,
            },
            _ => return None,
        };
        Some(ModelConfig {
            vocab_size: s.vocab,
            hidden_size: s.hidden,
            intermediate_size: s.inter,
            num_hidden_layers: s.layers,
            num_attention_heads: s.heads,
            num_key_value_heads: s.kv_heads,
            // hidden / heads for all (tiny: two 32-wide query heads on one key/value head;
            // on the quickstart's 30k-token documents its cost is attention's, per head).
            head_dim: None,
            rms_norm_eps: 1e-6,
            rope_theta: 1_000_000.0,
            tie_word_embeddings: s.tie,
            max_position_embeddings: 32_768,
            initializer_range: 0.02,
            hidden_act: "silu".into(),
            rope_scaling: None,
            use_sliding_window: false,
            bos_token_id: Some(151_643.into()),
            eos_token_id: Some(151_643.into()),
            torch_dtype: Some("float32".into()),
        })
    }

    /// Reads and checks `DIR/config.json`.
    pub fn from_dir(dir: &Path) -> Result<ModelConfig> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
        let config: ModelConfig = serde_json::from_str(&text)
            .map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))?;
        config
            .check()
            .map_err(|m| TrainError::Config(format!("{}: {m}", path.display())))?;
        Ok(config)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Query heads per key/value head.
    pub fn group_size(&self) -> usize {
        self.num_attention_heads / self.num_key_value_heads.max(1)
    }

    /// Refuses shapes the model cannot run, naming the key.
    pub fn check(&self) -> std::result::Result<(), String> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{key} must be positive"));
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return Err(format!(
                "num_attention_heads ({}) must be a multiple of num_key_value_heads ({})",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if !self.head_dim().is_multiple_of(2) || self.head_dim() == 0 {
            return Err(format!("head_dim ({}) must be even", self.head_dim()));
        }
        if self.hidden_act != "silu" {
            return Err(format!(
                "hidden_act {:?} is not supported (Qwen2 uses \"silu\")",
                self.hidden_act
            ));
        }
        if self.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(
                "rope_scaling is not supported yet: train at the native context and remove it"
                    .into(),
            );
        }
        if self.use_sliding_window {
            return Err(
                "use_sliding_window is not supported: Qwen2.5-Coder trains with full attention"
                    .into(),
            );
        }
        Ok(())
    }

    /// The `config.json` a checkpoint carries (what `transformers` reads).
    pub fn to_hf_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            obj.insert(
                "architectures".into(),
                serde_json::json!(["Qwen2ForCausalLM"]),
            );
            obj.insert("model_type".into(), "qwen2".into());
            obj.insert("attention_dropout".into(), 0.0.into());
            obj.insert("use_cache".into(), true.into());
            obj.insert("torch_dtype".into(), "float32".into());
            obj.insert("head_dim".into(), self.head_dim().into());
            obj.insert("sliding_window".into(), serde_json::Value::Null);
            obj.insert("max_window_layers".into(), self.num_hidden_layers.into());
        }
        v
    }

    /// Parameters, counting the tied head once.
    pub fn parameter_count(&self) -> u64 {
        let (d, i, v) = (
            self.hidden_size as u64,
            self.intermediate_size as u64,
            self.vocab_size as u64,
        );
        let hd = self.head_dim() as u64;
        let q = self.num_attention_heads as u64 * hd;
        let kv = self.num_key_value_heads as u64 * hd;
        let attn = d * q + q + 2 * (d * kv + kv) + q * d;
        let layer = attn + 3 * d * i + 2 * d;
        let head = if self.tie_word_embeddings { 0 } else { v * d };
        v * d + self.num_hidden_layers as u64 * layer + d + head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_the_published_sizes() {
        // Parameter counts of the published Qwen2.5-Coder checkpoints (model cards): 0.49B,
        // 1.54B, 7.61B, 32.5B.
        let billions = |n: &str| {
            ModelConfig::preset(n)
                .expect("valid in the test")
                .parameter_count() as f64
                / 1e9
        };
        assert!((billions("qwen2.5-coder-0.5b") - 0.494).abs() < 0.01);
        assert!((billions("qwen2.5-coder-1.5b") - 1.544).abs() < 0.01);
        assert!((billions("qwen2.5-coder-7b") - 7.616).abs() < 0.01);
        assert!((billions("qwen2.5-coder-32b") - 32.76).abs() < 0.05);
        for p in PRESETS {
            ModelConfig::preset(p)
                .expect("valid in the test")
                .check()
                .expect("valid in the test");
        }
    }
}
