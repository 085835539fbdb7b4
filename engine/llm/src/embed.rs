//! Sentence embeddings: [`Embedder::load`] and [`Embedder::embed`] are the entry points.
//!
//! all-MiniLM-L6-v2 (BERT) from a directory holding `model.safetensors`, `config.json` and
//! `tokenizer.json`. Sentences are embedded in batches padded to the batch's longest (the
//! shipped `tokenizer.json` pads everything to a fixed 128, which would waste work and, without
//! the mask, change the mean), mean-pooled over the attention mask and L2-normalised.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use std::path::{Path, PathBuf};
use tokenizers::{PaddingParams, PaddingStrategy, TruncationParams};

/// Longest input in tokens (`sentence_bert_config.json`'s `max_seq_length` when present).
const DEFAULT_MAX_TOKENS: usize = 256;
/// Sentences per forward pass.
const BATCH: usize = 32;
/// Longest input accepted, in bytes, before tokenization (the rest would be truncated anyway).
pub const MAX_TEXT_BYTES: usize = 1 << 20;

/// What can go wrong embedding.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A file of the model directory is missing or invalid.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The computation failed.
    #[error("embedding: {0}")]
    Compute(#[from] candle_core::Error),
    /// Tokenization failed.
    #[error("embedding tokenizer: {0}")]
    Tokenizer(String),
}

/// A sentence embedder.
pub struct Embedder {
    model: BertModel,
    tokenizer: tokenizers::Tokenizer,
    dim: usize,
    identity: String,
    device: Device,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl Embedder {
    /// Loads a model directory (`model.safetensors`, `config.json`, `tokenizer.json`).
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, EmbedError> {
        let dir = dir.as_ref();
        let file_err = |p: &Path, reason: String| EmbedError::File {
            path: p.to_path_buf(),
            reason,
        };
        let cfg_path = dir.join("config.json");
        let cfg_text =
            std::fs::read_to_string(&cfg_path).map_err(|e| file_err(&cfg_path, e.to_string()))?;
        let config: Config =
            serde_json::from_str(&cfg_text).map_err(|e| file_err(&cfg_path, e.to_string()))?;
        let max_tokens = std::fs::read_to_string(dir.join("sentence_bert_config.json"))
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .and_then(|v| v["max_seq_length"].as_u64())
            .map(|v| v as usize)
            .unwrap_or(DEFAULT_MAX_TOKENS);
        let tok_path = dir.join("tokenizer.json");
        let mut tokenizer = tokenizers::Tokenizer::from_file(&tok_path)
            .map_err(|e| file_err(&tok_path, e.to_string()))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..Default::default()
            }))
            .map_err(|e| file_err(&tok_path, e.to_string()))?;
        let weights = dir.join("model.safetensors");
        let device = Device::Cpu;
        // SAFETY: the weights file is memory-mapped read-only; Tessera never writes to the
        // model cache while a model is loaded, and a file changed underneath would only
        // change the numbers read, not memory safety of the mapping's users (candle copies).
        #[allow(unsafe_code)]
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device) }
            .map_err(|e| file_err(&weights, e.to_string()))?;
        let model = BertModel::load(vb, &config).map_err(|e| file_err(&weights, e.to_string()))?;
        let identity = format!(
            "{}:{}",
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            std::fs::metadata(&weights).map(|m| m.len()).unwrap_or(0)
        );
        Ok(Self {
            model,
            tokenizer,
            dim: config.hidden_size,
            identity,
            device,
        })
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// A string that changes when the model changes (for index versioning).
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Embeds sentences: one L2-normalised vector each.
    pub fn embed<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH) {
            let inputs: Vec<&str> = chunk
                .iter()
                .map(|t| {
                    let t = t.as_ref();
                    let mut end = t.len().min(MAX_TEXT_BYTES);
                    while !t.is_char_boundary(end) {
                        end -= 1;
                    }
                    &t[..end]
                })
                .collect();
            let enc = self
                .tokenizer
                .encode_batch(inputs, true)
                .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
            let rows = enc.len();
            let len = enc.first().map(|e| e.len()).unwrap_or(0);
            let ids: Vec<u32> = enc.iter().flat_map(|e| e.get_ids().to_vec()).collect();
            let mask: Vec<u32> = enc
                .iter()
                .flat_map(|e| e.get_attention_mask().to_vec())
                .collect();
            let ids = Tensor::from_vec(ids, (rows, len), &self.device)?;
            let mask = Tensor::from_vec(mask, (rows, len), &self.device)?;
            let types = ids.zeros_like()?;
            let hidden = self.model.forward(&ids, &types, Some(&mask))?;
            let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let sum = hidden.broadcast_mul(&m)?.sum(1)?;
            let count = m.sum(1)?.clamp(1e-9, f64::MAX)?;
            let mean = sum.broadcast_div(&count)?;
            let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
            let v: Vec<Vec<f32>> = mean.broadcast_div(&norm)?.to_vec2()?;
            out.extend(v);
        }
        Ok(out)
    }
}
