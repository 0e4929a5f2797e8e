//! The Qwen2 model: its shape ([`config`]), its parameters ([`params`]), its forward pass
//! ([`qwen2`]) and the backward pass that drives them ([`backward`]); the CPU kernels of its
//! custom ops share the vectorised helpers of [`vector`].

pub mod attention;
pub mod backward;
pub mod config;
pub mod params;
pub mod qwen2;
pub mod tile;
pub mod vector;

pub use config::{ModelConfig, PRESETS};
pub use params::Params;

#[cfg(test)]
pub(crate) mod tests;
