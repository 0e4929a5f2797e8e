//! The model's parameters under their Hugging Face names, as fp32 master `Var`s: random init,
//! loading a model folder (`model.safetensors` or a sharded index, bf16/f16/f32), and saving one.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::ModelConfig;
use crate::error::{Result, TrainError};

/// One parameter: its HF name, its value, and whether weight decay applies to it.
#[derive(Debug)]
pub struct Param {
    pub name: String,
    pub var: Var,
    pub decay: bool,
}

/// Where each layer's parameters sit in [`Params::list`].
#[derive(Debug, Clone)]
pub struct LayerIndex {
    pub input_norm: usize,
    pub q_w: usize,
    pub q_b: usize,
    pub k_w: usize,
    pub k_b: usize,
    pub v_w: usize,
    pub v_b: usize,
    pub o_w: usize,
    pub post_norm: usize,
    pub gate: usize,
    pub up: usize,
    pub down: usize,
}

/// All parameters, in a fixed order (the order of the optimizer state and the checkpoints).
#[derive(Debug)]
pub struct Params {
    pub config: ModelConfig,
    pub list: Vec<Param>,
    pub embed: usize,
    pub layers: Vec<LayerIndex>,
    pub norm: usize,
    /// `None` when the head is tied to the embedding.
    pub lm_head: Option<usize>,
}

/// The names and shapes of every parameter, in order, with whether it decays.
pub fn layout(c: &ModelConfig) -> Vec<(String, Vec<usize>, bool)> {
    let (d, i, v) = (c.hidden_size, c.intermediate_size, c.vocab_size);
    let q = c.num_attention_heads * c.head_dim();
    let kv = c.num_key_value_heads * c.head_dim();
    let mut out = vec![("model.embed_tokens.weight".to_string(), vec![v, d], true)];
    for l in 0..c.num_hidden_layers {
        let p = format!("model.layers.{l}");
        let entries: [(&str, Vec<usize>, bool); 12] = [
            ("input_layernorm.weight", vec![d], false),
            ("self_attn.q_proj.weight", vec![q, d], true),
            ("self_attn.q_proj.bias", vec![q], false),
            ("self_attn.k_proj.weight", vec![kv, d], true),
            ("self_attn.k_proj.bias", vec![kv], false),
            ("self_attn.v_proj.weight", vec![kv, d], true),
            ("self_attn.v_proj.bias", vec![kv], false),
            ("self_attn.o_proj.weight", vec![d, q], true),
            ("post_attention_layernorm.weight", vec![d], false),
            ("mlp.gate_proj.weight", vec![i, d], true),
            ("mlp.up_proj.weight", vec![i, d], true),
            ("mlp.down_proj.weight", vec![d, i], true),
        ];
        out.extend(
            entries
                .into_iter()
                .map(|(n, s, dec)| (format!("{p}.{n}"), s, dec)),
        );
    }
    out.push(("model.norm.weight".into(), vec![d], false));
    if !c.tie_word_embeddings {
        out.push(("lm_head.weight".into(), vec![v, d], true));
    }
    out
}

impl Params {
    fn from_tensors(
        config: &ModelConfig,
        mut take: impl FnMut(&str, &[usize]) -> Result<Tensor>,
    ) -> Result<Params> {
        let mut list = Vec::new();
        for (name, shape, decay) in layout(config) {
            let t = take(&name, &shape)?.to_dtype(DType::F32)?.contiguous()?;
            list.push(Param {
                var: Var::from_tensor(&t)?,
                name,
                decay,
            });
        }
        let per_layer = 12;
        let layers = (0..config.num_hidden_layers)
            .map(|l| {
                let b = 1 + l * per_layer;
                LayerIndex {
                    input_norm: b,
                    q_w: b + 1,
                    q_b: b + 2,
                    k_w: b + 3,
                    k_b: b + 4,
                    v_w: b + 5,
                    v_b: b + 6,
                    o_w: b + 7,
                    post_norm: b + 8,
                    gate: b + 9,
                    up: b + 10,
                    down: b + 11,
                }
            })
            .collect();
        let norm = 1 + config.num_hidden_layers * per_layer;
        let lm_head = (!config.tie_word_embeddings).then_some(norm + 1);
        Ok(Params {
            config: config.clone(),
            list,
            embed: 0,
            layers,
            norm,
            lm_head,
        })
    }

    /// Random init as `transformers` does it: weights ~ N(0, initializer_range), biases 0,
    /// norms 1; seeded, so the same seed gives the same model.
    pub fn init(config: &ModelConfig, seed: u64, device: &Device) -> Result<Params> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let std = config.initializer_range as f32;
        Params::from_tensors(config, |name, shape| {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = if name.ends_with("norm.weight") {
                vec![1.0; n]
            } else if name.ends_with(".bias") {
                vec![0.0; n]
            } else {
                normal(&mut rng, n, std)
            };
            Ok(Tensor::from_vec(values, shape, device)?)
        })
    }

    /// Loads a Hugging Face model folder's weights (`model.safetensors`, or the shards a
    /// `model.safetensors.index.json` names); every parameter must be there with its shape.
    pub fn load(dir: &Path, config: &ModelConfig, device: &Device) -> Result<Params> {
        // A tied checkpoint may still carry `lm_head.weight` (a copy of the embedding): unused.
        let mut tensors = read_safetensors(dir, device)?;
        Params::from_tensors(config, |name, shape| {
            let t = tensors.remove(name).ok_or_else(|| {
                TrainError::data(dir, format!("the weights have no tensor `{name}`"))
            })?;
            if t.dims() != shape {
                return Err(TrainError::data(
                    dir,
                    format!(
                        "`{name}` has shape {:?}, config.json says {shape:?}",
                        t.dims()
                    ),
                ));
            }
            Ok(t)
        })
    }

    pub fn get(&self, index: usize) -> Result<&Tensor> {
        self.list
            .get(index)
            .map(|p| p.var.as_tensor())
            .ok_or_else(|| TrainError::Internal(format!("no parameter {index}")))
    }

    /// The LM head's weight: `lm_head.weight`, or the embedding when tied.
    pub fn head_index(&self) -> usize {
        self.lm_head.unwrap_or(self.embed)
    }

    /// Writes `model.safetensors` (fp32, `format: pt` metadata as `save_pretrained` writes).
    pub fn save_safetensors(&self, path: &Path) -> Result<()> {
        let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut shapes: HashMap<String, Vec<usize>> = HashMap::new();
        for p in &self.list {
            let t = p.var.as_tensor().to_dtype(DType::F32)?.flatten_all()?;
            let values = t.to_vec1::<f32>()?;
            data.insert(
                p.name.clone(),
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            );
            shapes.insert(p.name.clone(), p.var.dims().to_vec());
        }
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data
            .iter()
            .map(|(name, bytes)| {
                let shape = shapes.get(name).cloned().unwrap_or_default();
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, bytes)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| TrainError::Internal(format!("safetensors view {name}: {e}")))
            })
            .collect::<Result<_>>()?;
        let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
        let bytes = safetensors::serialize(views, Some(metadata))
            .map_err(|e| TrainError::Internal(format!("safetensors: {e}")))?;
        std::fs::write(path, bytes).map_err(|e| TrainError::io(path, e))
    }
}

/// Every tensor of a model folder by name.
fn read_safetensors(dir: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    let files: Vec<std::path::PathBuf> = if single.is_file() {
        vec![single]
    } else if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|e| TrainError::io(&index, e))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| TrainError::data(&index, format!("not JSON: {e}")))?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| TrainError::data(&index, "has no `weight_map` object"))?;
        let mut names: Vec<&str> = map.values().filter_map(|v| v.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names.into_iter().map(|n| dir.join(n)).collect()
    } else {
        return Err(TrainError::Data(format!(
            "{}: no model.safetensors or model.safetensors.index.json (a Hugging Face model folder has one)",
            dir.display()
        )));
    };
    let mut out = HashMap::new();
    for file in files {
        if !file.is_file() {
            return Err(TrainError::data(&file, "named by the index but missing"));
        }
        let loaded = candle_core::safetensors::load(&file, device).map_err(|e| {
            TrainError::data(&file, format!("not a readable safetensors file: {e}"))
        })?;
        out.extend(loaded);
    }
    Ok(out)
}

/// `n` samples of N(0, std²) by Box–Muller from a seeded stream.
fn normal(rng: &mut ChaCha8Rng, n: usize, std: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = std::f64::consts::TAU * u2;
        out.push((r * theta.cos()) as f32 * std);
        out.push((r * theta.sin()) as f32 * std);
    }
    out.truncate(n);
    out
}
