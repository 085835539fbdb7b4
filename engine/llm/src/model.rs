//! The decoder-only transformer shared by every supported architecture: [`Model::load`] and
//! [`Model::forward`] are the entry points.
//!
//! llama (SmolLM2), qwen2 (Qwen2.5) and gemma3 differ only in a handful of switches (QKV biases,
//! RoPE layout, per-head Q/K norms, post-norms, sliding-window layers, activation, embedding
//! scale), so RoPE, RMSNorm, attention and the KV cache are written once here. The KV cache is
//! ours ([`KvCache`]): preallocated, written in place, and snapshotted so that a fixed prompt
//! prefix is computed once and reused. One forward pass takes several sequences at once
//! ([`Segment`]): the weight matmuls run over all their rows together, attention per sequence.

use crate::gguf::{GgufError, GgufFile};
use crate::gpu;
use crate::linear::Linear;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;
use std::cell::RefCell;
use std::sync::Arc;
use tessera_kernels::matmul::{matmul_many, QMatrix};

/// What can go wrong loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The model file could not be read.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// The file's architecture is not supported.
    #[error("{path}: architecture {arch:?} is not supported (llama, qwen2 and gemma3 are)")]
    Architecture {
        /// The model file.
        path: String,
        /// `general.architecture`.
        arch: String,
    },
    /// A hyper-parameter is missing or out of range.
    #[error("{path}: {what}")]
    Config {
        /// The model file.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// A tensor operation failed.
    #[error("tensor computation: {0}")]
    Compute(#[from] candle_core::Error),
    /// The sequence would exceed the model's context.
    #[error("sequence of {needed} tokens exceeds the model's context of {context} tokens")]
    Context {
        /// Tokens needed.
        needed: usize,
        /// The model's context length.
        context: usize,
    },
}

/// A supported architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Llama family (SmolLM2): interleaved RoPE, no biases.
    Llama,
    /// Qwen2 family: NeoX RoPE, QKV biases.
    Qwen2,
    /// Gemma 3: NeoX RoPE, Q/K norms, post-norms, GELU, sliding-window layers.
    Gemma3,
}

/// The hyper-parameters of a model, read from GGUF metadata.
#[derive(Debug, Clone)]
pub struct Config {
    /// Architecture.
    pub arch: Arch,
    /// Hidden size.
    pub dim: usize,
    /// Number of layers.
    pub n_layers: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Dimension of one head.
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub eps: f64,
    /// RoPE base (global layers).
    pub rope_base: f32,
    /// RoPE base of sliding-window layers (gemma3).
    pub rope_base_local: f32,
    /// Training context length.
    pub context: usize,
    /// Sliding window of local layers (gemma3), in tokens.
    pub sliding_window: Option<usize>,
    /// Vocabulary size (rows of the output matrix).
    pub vocab: usize,
}

struct Layer {
    attn_norm: Tensor,
    wq: Linear,
    wk: Linear,
    wv: Linear,
    wo: Linear,
    bq: Option<Tensor>,
    bk: Option<Tensor>,
    bv: Option<Tensor>,
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
    post_attn_norm: Option<Tensor>,
    ffn_norm: Tensor,
    w_gate: Linear,
    w_up: Linear,
    w_down: Linear,
    post_ffn_norm: Option<Tensor>,
    sliding: bool,
}

/// A layer as the CPU forward path reads it: norms and biases as plain vectors, matrices as
/// the kernels hold them.
struct HostLayer {
    attn_norm: Vec<f32>,
    ffn_norm: Vec<f32>,
    bq: Option<Vec<f32>>,
    bk: Option<Vec<f32>>,
    bv: Option<Vec<f32>>,
    wq: Arc<QMatrix>,
    wk: Arc<QMatrix>,
    wv: Arc<QMatrix>,
    wo: Arc<QMatrix>,
    gate: Arc<QMatrix>,
    up: Arc<QMatrix>,
    down: Arc<QMatrix>,
}

/// Everything the CPU forward path ([`Model::forward_host`]) reads: present when every matrix
/// runs on Tessera's kernels and the architecture is one the step implements (llama, qwen2).
struct HostModel {
    /// The embedding table (shared with the output matrix when they are tied).
    embed: Arc<QMatrix>,
    output: Arc<QMatrix>,
    norm: Vec<f32>,
    /// RoPE tables, `[context, head_dim / 2]`.
    cos: Vec<f32>,
    sin: Vec<f32>,
    layers: Vec<HostLayer>,
}

impl HostModel {
    /// The step's view of a loaded model, or `None` where some matrix is not on the kernels.
    fn new(
        embed: &Arc<QMatrix>,
        output: &Linear,
        norm: &Tensor,
        rope: &Rope,
        layers: &[Layer],
    ) -> candle_core::Result<Option<Self>> {
        let Some(output) = output.matrix() else {
            return Ok(None);
        };
        let mut host = Vec::with_capacity(layers.len());
        for l in layers {
            let m = |w: &Linear| w.matrix().cloned();
            let (Some(wq), Some(wk), Some(wv), Some(wo), Some(gate), Some(up), Some(down)) = (
                m(&l.wq),
                m(&l.wk),
                m(&l.wv),
                m(&l.wo),
                m(&l.w_gate),
                m(&l.w_up),
                m(&l.w_down),
            ) else {
                return Ok(None);
            };
            let opt = |t: &Option<Tensor>| t.as_ref().map(host_vec).transpose();
            host.push(HostLayer {
                attn_norm: host_vec(&l.attn_norm)?,
                ffn_norm: host_vec(&l.ffn_norm)?,
                bq: opt(&l.bq)?,
                bk: opt(&l.bk)?,
                bv: opt(&l.bv)?,
                wq,
                wk,
                wv,
                wo,
                gate,
                up,
                down,
            });
        }
        Ok(Some(Self {
            embed: embed.clone(),
            output: output.clone(),
            norm: host_vec(norm)?,
            cos: host_vec(&rope.cos)?,
            sin: host_vec(&rope.sin)?,
            layers: host,
        }))
    }
}

/// The token embedding table, looked up by token.
enum Embed {
    /// candle's quantized tensor (other devices and types).
    Candle(Arc<QTensor>),
    /// Rows of a kernels matrix, dequantized per token.
    Tessera(Arc<QMatrix>),
}

/// Token `id`'s embedding, into `row`.
fn embed_row(table: &QMatrix, id: u32, row: &mut [f32]) -> candle_core::Result<()> {
    table
        .dequantize_row(id as usize, row)
        .map_err(|e| candle_core::Error::Msg(format!("token {id}: {e}")))
}

fn host_vec(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
}

struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    fn new(base: f32, head_dim: usize, len: usize, dev: &Device) -> candle_core::Result<Self> {
        let inv: Vec<f32> = (0..head_dim / 2)
            .map(|i| 1.0 / base.powf(2.0 * i as f32 / head_dim as f32))
            .collect();
        let inv = Tensor::new(inv, dev)?.reshape((1, head_dim / 2))?;
        let pos = Tensor::arange(0u32, len as u32, dev)?
            .to_dtype(DType::F32)?
            .reshape((len, 1))?;
        let freqs = pos.broadcast_mul(&inv)?;
        Ok(Self {
            cos: freqs.cos()?,
            sin: freqs.sin()?,
        })
    }
}

/// A loaded model: weights plus the shared forward pass. Cheap to share behind an `Arc`.
pub struct Model {
    config: Config,
    embed: Embed,
    host: Option<HostModel>,
    layers: Vec<Layer>,
    norm: Tensor,
    output: Linear,
    rope: Rope,
    rope_local: Option<Rope>,
    device: Device,
    converted: Vec<String>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// How to load a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// On the CPU, re-quantize tensors whose types have no fast CPU kernel to Q8_0 (Q5_1;
    /// with `kernels` off also Q4_1 and Q5_0, which candle's CPU matmul runs without SIMD).
    pub requantize: bool,
    /// Run Q8_0, Q4_0, Q4_1 and Q5_0 matrices on Tessera's kernels (`tessera-kernels`)
    /// rather than candle's.
    pub kernels: bool,
    /// The device.
    pub device: Device,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            requantize: true,
            kernels: true,
            device: Device::Cpu,
        }
    }
}

/// Types that would run through a scalar fallback on the CPU: candle has no SIMD for Q4_1,
/// Q5_0 and Q5_1; Tessera's kernels cover Q4_1 and Q5_0.
fn slow_on_cpu(t: GgmlDType, kernels: bool) -> bool {
    match t {
        GgmlDType::Q5_1 => true,
        GgmlDType::Q4_1 | GgmlDType::Q5_0 => !kernels,
        _ => false,
    }
}

impl Config {
    /// Reads the hyper-parameters from a GGUF header.
    pub fn from_gguf(file: &GgufFile) -> Result<Self, ModelError> {
        let path = file.path().display().to_string();
        let arch_name = file
            .meta_str("general.architecture")
            .unwrap_or("")
            .to_owned();
        let arch = match arch_name.as_str() {
            "llama" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            "gemma3" => Arch::Gemma3,
            _ => {
                return Err(ModelError::Architecture {
                    path,
                    arch: arch_name,
                })
            }
        };
        let a = arch_name.as_str();
        let need = |key: &str, max: u64| -> Result<usize, ModelError> {
            let full = format!("{a}.{key}");
            match file.meta_u64(&full) {
                Some(v) if v > 0 && v <= max => Ok(v as usize),
                Some(v) => Err(ModelError::Config {
                    path: path.clone(),
                    what: format!("{full} = {v} is out of range (1..={max})"),
                }),
                None => Err(ModelError::Config {
                    path: path.clone(),
                    what: format!("{full} is missing"),
                }),
            }
        };
        let dim = need("embedding_length", 1 << 16)?;
        let n_layers = need("block_count", 1024)?;
        let n_heads = need("attention.head_count", 1024)?;
        let n_kv_heads = file
            .meta_u64(&format!("{a}.attention.head_count_kv"))
            .map(|v| v as usize)
            .unwrap_or(n_heads);
        let head_dim = file
            .meta_u64(&format!("{a}.attention.key_length"))
            .map(|v| v as usize)
            .unwrap_or(dim / n_heads);
        if n_kv_heads == 0
            || n_heads % n_kv_heads != 0
            || head_dim == 0
            || !head_dim.is_multiple_of(2)
            || head_dim > 1024
        {
            return Err(ModelError::Config {
                path,
                what: format!("{n_heads} heads, {n_kv_heads} KV heads, head size {head_dim}"),
            });
        }
        let context = need("context_length", 1 << 22)?;
        let eps = file
            .meta_f64(&format!("{a}.attention.layer_norm_rms_epsilon"))
            .unwrap_or(1e-6);
        let default_base = if arch == Arch::Gemma3 {
            1_000_000.0
        } else {
            10_000.0
        };
        let rope_base = file
            .meta_f64(&format!("{a}.rope.freq_base"))
            .unwrap_or(default_base) as f32;
        let sliding_window = (arch == Arch::Gemma3)
            .then(|| {
                file.meta_u64(&format!("{a}.attention.sliding_window"))
                    .map(|v| v as usize)
            })
            .flatten();
        let vocab = file
            .content()
            .tensor_infos
            .get("output.weight")
            .or_else(|| file.content().tensor_infos.get("token_embd.weight"))
            .and_then(|t| t.shape.dims().first().copied())
            .ok_or_else(|| ModelError::Config {
                path: path.clone(),
                what: "token_embd.weight is missing".into(),
            })?;
        Ok(Self {
            arch,
            dim,
            n_layers,
            n_heads,
            n_kv_heads,
            head_dim,
            eps,
            rope_base,
            rope_base_local: 10_000.0,
            context,
            sliding_window,
            vocab,
        })
    }
}

/// One sequence in a forward pass: its cache, the new tokens, and whether logits are wanted
/// for every new position (scoring) or only the last (generation).
pub struct Segment<'a> {
    /// The sequence's KV cache; the new tokens are appended to it.
    pub cache: &'a mut KvCache,
    /// New tokens.
    pub tokens: &'a [u32],
    /// Return logits for every new token instead of only the last.
    pub all_logits: bool,
}

impl Model {
    /// Loads a model from an opened GGUF file.
    pub fn load(file: &GgufFile, opts: &LoadOptions) -> Result<Self, ModelError> {
        let config = Config::from_gguf(file)?;
        let dev = &opts.device;
        let mut converted = Vec::new();
        let mut qt = |name: &str| -> Result<Arc<QTensor>, ModelError> {
            let t = file.tensor(name, dev)?;
            if opts.requantize && dev.is_cpu() && slow_on_cpu(t.dtype(), opts.kernels) {
                let from = t.dtype();
                let f = t.dequantize(dev)?;
                let q = QTensor::quantize(&f, GgmlDType::Q8_0)?;
                converted.push(format!("{name} {from:?}->Q8_0"));
                return Ok(Arc::new(q));
            }
            Ok(Arc::new(t))
        };
        let mm = |t: Arc<QTensor>| Linear::new(t, opts.kernels).map_err(ModelError::from);
        let dense = |name: &str| -> Result<Tensor, ModelError> {
            Ok(file.tensor(name, dev)?.dequantize(dev)?)
        };
        let opt_dense = |name: &str| -> Result<Option<Tensor>, ModelError> {
            if file.has_tensor(name) {
                dense(name).map(Some)
            } else {
                Ok(None)
            }
        };
        let embed_t = qt("token_embd.weight")?;
        let embed_mm = mm(embed_t.clone())?;
        let embed = match embed_mm.matrix() {
            // The kernels' copy serves lookups: candle's tensor goes now, before the other
            // matrices load (it is the largest tensor of small models).
            Some(m) => {
                drop(embed_t);
                Embed::Tessera(m.clone())
            }
            None => Embed::Candle(embed_t),
        };
        let output = if file.has_tensor("output.weight") {
            mm(qt("output.weight")?)?
        } else {
            // Tied: one copy of the table serves both.
            embed_mm
        };
        let mut layers = Vec::with_capacity(config.n_layers);
        for i in 0..config.n_layers {
            let p = |s: &str| format!("blk.{i}.{s}");
            let sliding =
                config.arch == Arch::Gemma3 && config.sliding_window.is_some() && (i + 1) % 6 != 0;
            layers.push(Layer {
                attn_norm: dense(&p("attn_norm.weight"))?,
                wq: mm(qt(&p("attn_q.weight"))?)?,
                wk: mm(qt(&p("attn_k.weight"))?)?,
                wv: mm(qt(&p("attn_v.weight"))?)?,
                wo: mm(qt(&p("attn_output.weight"))?)?,
                bq: opt_dense(&p("attn_q.bias"))?,
                bk: opt_dense(&p("attn_k.bias"))?,
                bv: opt_dense(&p("attn_v.bias"))?,
                q_norm: opt_dense(&p("attn_q_norm.weight"))?,
                k_norm: opt_dense(&p("attn_k_norm.weight"))?,
                post_attn_norm: opt_dense(&p("post_attention_norm.weight"))?,
                ffn_norm: dense(&p("ffn_norm.weight"))?,
                w_gate: mm(qt(&p("ffn_gate.weight"))?)?,
                w_up: mm(qt(&p("ffn_up.weight"))?)?,
                w_down: mm(qt(&p("ffn_down.weight"))?)?,
                post_ffn_norm: opt_dense(&p("post_ffw_norm.weight"))?,
                sliding,
            });
        }
        let norm = dense("output_norm.weight")?;
        // Tables cover the training context; longer sequences are refused by `forward`.
        let rope = Rope::new(config.rope_base, config.head_dim, config.context, dev)?;
        let rope_local = (config.arch == Arch::Gemma3)
            .then(|| Rope::new(config.rope_base_local, config.head_dim, config.context, dev))
            .transpose()?;
        let host = match (&embed, config.arch) {
            (Embed::Tessera(e), Arch::Llama | Arch::Qwen2) if dev.is_cpu() => {
                HostModel::new(e, &output, &norm, &rope, &layers)?
            }
            _ => None,
        };
        if !converted.is_empty() {
            let mut by_type: std::collections::BTreeMap<&str, usize> = Default::default();
            for c in &converted {
                let from = c
                    .rsplit(' ')
                    .next()
                    .and_then(|t| t.split("->").next())
                    .unwrap_or("?");
                *by_type.entry(from).or_default() += 1;
            }
            tracing::info!(
                model = %file.path().display(),
                "re-quantized {} tensors without a fast CPU kernel to Q8_0 ({by_type:?})",
                converted.len()
            );
            tracing::debug!("re-quantized: {}", converted.join(", "));
        }
        Ok(Self {
            config,
            embed,
            host,
            layers,
            norm,
            output,
            rope,
            rope_local,
            device: dev.clone(),
            converted,
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The device holding the weights.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Tensors re-quantized at load time, as `name FROM->TO`.
    pub fn converted(&self) -> &[String] {
        &self.converted
    }

    /// A fresh KV cache with room for `capacity` tokens (grown on demand up to the context).
    pub fn new_cache(&self, capacity: usize) -> Result<KvCache, ModelError> {
        KvCache::new(
            &self.config,
            capacity.clamp(1, self.config.context),
            &self.device,
        )
    }

    /// Runs the new tokens of every segment through the model, appending them to the
    /// segments' caches. Returns, per segment, logits `[rows, vocab]`: one row (the last
    /// position) or one per new token when `all_logits`.
    pub fn forward(&self, segments: &mut [Segment<'_>]) -> Result<Vec<Tensor>, ModelError> {
        let c = &self.config;
        for s in segments.iter_mut() {
            let needed = s.cache.len + s.tokens.len();
            if needed > c.context {
                return Err(ModelError::Context {
                    needed,
                    context: c.context,
                });
            }
            s.cache.reserve(needed)?;
        }
        if let Some(out) = self.forward_host(segments)? {
            return Ok(out);
        }
        let ids: Vec<u32> = segments.iter().flat_map(|s| s.tokens).copied().collect();
        if ids.is_empty() {
            return Ok(segments
                .iter()
                .map(|_| Tensor::zeros((0, c.vocab), DType::F32, &self.device))
                .collect::<candle_core::Result<_>>()?);
        }
        let n = ids.len();
        let mut x = match &self.embed {
            Embed::Candle(t) => t.embedding(&Tensor::new(ids.as_slice(), &self.device)?)?,
            Embed::Tessera(m) => {
                let mut x = vec![0f32; n * c.dim];
                for (&id, row) in ids.iter().zip(x.chunks_exact_mut(c.dim)) {
                    embed_row(m, id, row)?;
                }
                Tensor::from_vec(x, (n, c.dim), &self.device)?
            }
        };
        if c.arch == Arch::Gemma3 {
            x = (x * (c.dim as f64).sqrt())?;
        }
        let (nh, nkv, hd) = (c.n_heads, c.n_kv_heads, c.head_dim);
        let scale = 1.0 / (hd as f64).sqrt();
        // On the GPU one kernel per layer (two for prompts) rotates, caches and attends every
        // new token of every sequence (the tensor path below takes ~20 launches per sequence).
        let mut gpu_step =
            if c.arch != Arch::Gemma3 && gpu::BatchAttention::applies(&self.device, nh, nkv, hd) {
                Some(self.gpu_attention_step(segments, scale as f32)?)
            } else {
                None
            };
        for (li, layer) in self.layers.iter().enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, c.eps as f32)?;
            let mut qkv = Linear::forward_many(&[&layer.wq, &layer.wk, &layer.wv], &h)?;
            let mut v = qkv
                .pop()
                .ok_or_else(|| candle_core::Error::Msg("no V".into()))?;
            let mut k = qkv
                .pop()
                .ok_or_else(|| candle_core::Error::Msg("no K".into()))?;
            let mut q = qkv
                .pop()
                .ok_or_else(|| candle_core::Error::Msg("no Q".into()))?;
            if let Some(b) = &layer.bq {
                q = q.broadcast_add(b)?;
            }
            if let Some(b) = &layer.bk {
                k = k.broadcast_add(b)?;
            }
            if let Some(b) = &layer.bv {
                v = v.broadcast_add(b)?;
            }
            if let Some(step) = gpu_step.as_mut() {
                let attn = step.attend(li, &q, &k, &v)?;
                x = self.layer_tail(layer, x, &attn)?;
                continue;
            }
            let mut outs = Vec::with_capacity(segments.len());
            let mut row = 0;
            for s in segments.iter_mut() {
                let l = s.tokens.len();
                if l == 0 {
                    continue;
                }
                let pos = s.cache.len;
                let heads = |t: &Tensor, nh: usize| -> candle_core::Result<Tensor> {
                    t.narrow(0, row, l)?
                        .reshape((l, nh, hd))?
                        .transpose(0, 1)?
                        .contiguous()
                };
                let mut qs = heads(&q, nh)?;
                let mut ks = heads(&k, nkv)?;
                let vs = heads(&v, nkv)?;
                if let Some(w) = &layer.q_norm {
                    qs = candle_nn::ops::rms_norm(&qs, w, c.eps as f32)?;
                }
                if let Some(w) = &layer.k_norm {
                    ks = candle_nn::ops::rms_norm(&ks, w, c.eps as f32)?;
                }
                let rope = match (&self.rope_local, layer.sliding) {
                    (Some(r), true) => r,
                    _ => &self.rope,
                };
                let cos = rope.cos.narrow(0, pos, l)?;
                let sin = rope.sin.narrow(0, pos, l)?;
                let rot = |t: &Tensor| -> candle_core::Result<Tensor> {
                    let t = t.unsqueeze(0)?;
                    let t = if c.arch == Arch::Llama {
                        candle_nn::rotary_emb::rope_i(&t, &cos, &sin)?
                    } else {
                        candle_nn::rotary_emb::rope(&t, &cos, &sin)?
                    };
                    t.squeeze(0)
                };
                let qs = rot(&qs)?;
                let ks = rot(&ks)?;
                s.cache.write(li, pos, &ks, &vs)?;
                let total = pos + l;
                let window = if layer.sliding {
                    c.sliding_window
                } else {
                    None
                };
                let groups = nh / nkv;
                // One new token with every cached position visible (decode): attention read
                // straight from the cache, no copy of it and no tensor operations.
                if l == 1 && self.device.is_cpu() && window.is_none_or(|w| total <= w) {
                    let q1: Vec<f32> = qs.flatten_all()?.to_vec1()?;
                    let mut o = vec![0f32; nh * hd];
                    if s.cache
                        .attend_one(li, total, &q1, nh, scale, &mut o, &mut Vec::new())
                    {
                        outs.push(Tensor::from_vec(o, (1, nh * hd), &self.device)?);
                        row += l;
                        continue;
                    }
                }
                let (k_all, v_all) = s.cache.view(li, total)?;
                let qg = qs.reshape((nkv, groups * l, hd))?;
                let mut att = (qg.matmul(&k_all.t()?)? * scale)?;
                if l > 1 || window.is_some_and(|w| total > w) {
                    let mask = causal_mask(pos, l, total, window, &self.device)?;
                    att = att
                        .reshape((nkv, groups, l, total))?
                        .broadcast_add(&mask)?
                        .reshape((nkv, groups * l, total))?;
                }
                let att = candle_nn::ops::softmax_last_dim(&att)?;
                let o = att
                    .matmul(&v_all)?
                    .reshape((nh, l, hd))?
                    .transpose(0, 1)?
                    .reshape((l, nh * hd))?;
                outs.push(o);
                row += l;
            }
            let attn = Tensor::cat(&outs, 0)?;
            x = self.layer_tail(layer, x, &attn)?;
        }
        debug_assert_eq!(x.dim(0)?, n);
        // Only the rows whose logits are wanted go through the (large) output matrix.
        let mut rows = Vec::new();
        let mut counts = Vec::new();
        let mut row = 0;
        for s in segments.iter_mut() {
            let l = s.tokens.len();
            s.cache.len += l;
            if l == 0 {
                counts.push(0);
            } else if s.all_logits {
                rows.push(x.narrow(0, row, l)?);
                counts.push(l);
            } else {
                rows.push(x.narrow(0, row + l - 1, 1)?);
                counts.push(1);
            }
            row += l;
        }
        let h = candle_nn::ops::rms_norm(&Tensor::cat(&rows, 0)?, &self.norm, c.eps as f32)?;
        let logits = self.output.forward(&h)?;
        let mut out = Vec::with_capacity(counts.len());
        let mut at = 0;
        for n in counts {
            out.push(logits.narrow(0, at, n)?);
            at += n;
        }
        Ok(out)
    }
}

impl Model {
    /// The rest of a layer after attention: output matrix, residual, MLP, residual.
    fn layer_tail(
        &self,
        layer: &Layer,
        mut x: Tensor,
        attn: &Tensor,
    ) -> Result<Tensor, ModelError> {
        let c = &self.config;
        let mut o = layer.wo.forward(attn)?;
        if let Some(w) = &layer.post_attn_norm {
            o = candle_nn::ops::rms_norm(&o, w, c.eps as f32)?;
        }
        x = (x + o)?;
        let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, c.eps as f32)?;
        let gated = if c.arch == Arch::Gemma3 {
            let mut gu = Linear::forward_many(&[&layer.w_gate, &layer.w_up], &h)?;
            let up = gu
                .pop()
                .ok_or_else(|| candle_core::Error::Msg("no up".into()))?;
            let gate = gu
                .pop()
                .ok_or_else(|| candle_core::Error::Msg("no gate".into()))?;
            (gate.gelu()? * up)?
        } else {
            Linear::swiglu(&layer.w_gate, &layer.w_up, &h)?
        };
        let mut f = layer.w_down.forward(&gated)?;
        if let Some(w) = &layer.post_ffn_norm {
            f = candle_nn::ops::rms_norm(&f, w, c.eps as f32)?;
        }
        x = (x + f)?;
        Ok(x)
    }

    /// The GPU attention kernel's pass over these segments (caches already grown): each new
    /// token a row with its position and sequence, then every sequence's capacity and every
    /// layer's cache addresses.
    fn gpu_attention_step(
        &self,
        segments: &[Segment<'_>],
        scale: f32,
    ) -> Result<gpu::BatchAttention, ModelError> {
        let c = &self.config;
        let seqs: Vec<&Segment<'_>> = segments.iter().filter(|s| !s.tokens.is_empty()).collect();
        let (m, n) = (
            seqs.iter().map(|s| s.tokens.len()).sum::<usize>(),
            seqs.len(),
        );
        let mut table = Vec::with_capacity(2 * m + n * (1 + 2 * c.n_layers));
        for s in &seqs {
            table.extend((0..s.tokens.len()).map(|j| (s.cache.len + j) as i64));
        }
        for (i, s) in seqs.iter().enumerate() {
            table.extend(std::iter::repeat_n(i as i64, s.tokens.len()));
        }
        table.extend(seqs.iter().map(|s| s.cache.capacity as i64));
        for li in 0..c.n_layers {
            for value in [false, true] {
                for s in &seqs {
                    let KvStore::Device { k, v } = &s.cache.store else {
                        return Err(ModelError::Compute(candle_core::Error::Msg(
                            "attention kernel: a host KV cache on a GPU model".into(),
                        )));
                    };
                    table.push(gpu::device_ptr(if value { &v[li] } else { &k[li] })?);
                }
            }
        }
        let longest = seqs
            .iter()
            .map(|s| s.cache.len + s.tokens.len())
            .max()
            .unwrap_or(1);
        Ok(gpu::BatchAttention::new(
            table,
            (m, n, c.n_heads, c.n_kv_heads, c.head_dim),
            c.arch == Arch::Llama,
            scale,
            (&self.rope.cos, &self.rope.sin),
            longest,
            &self.device,
        )?)
    }

    /// One forward pass on the CPU, on plain buffers, for any mix of segments (decode steps of
    /// one token, prompt chunks of many): each layer is RMSNorm, one pass for Q/K/V over every
    /// new token, RoPE, the cache written in place, each token's attention over its own
    /// context read in place (causal: a prompt token sees the cache and the tokens before
    /// it), the output matrix, RMSNorm, one pass for gate/up, SwiGLU and the down matrix, all
    /// in this thread's scratch buffers. The running batch mixes prompt chunks into its
    /// decode steps, so this is the path nearly every step takes. Only the wanted logits rows
    /// go through the output matrix. `None` when it does not apply (another device or
    /// architecture, candle's kernels), and the tensor path runs.
    fn forward_host(
        &self,
        segments: &mut [Segment<'_>],
    ) -> Result<Option<Vec<Tensor>>, ModelError> {
        let Some(host) = &self.host else {
            return Ok(None);
        };
        if segments.iter().all(|s| s.tokens.is_empty()) {
            return Ok(None);
        }
        let c = &self.config;
        // Each new token: its segment and its position.
        let rows: Vec<(usize, usize)> = segments
            .iter()
            .enumerate()
            .flat_map(|(si, s)| (0..s.tokens.len()).map(move |i| (si, s.cache.len + i)))
            .collect();
        // Each segment with new tokens: its index, its first row and its count.
        let mut spans: Vec<(usize, usize, usize)> = Vec::new();
        let mut r0 = 0;
        for (si, s) in segments.iter().enumerate() {
            let l = s.tokens.len();
            if l > 0 {
                spans.push((si, r0, l));
            }
            r0 += l;
        }
        let (m, dim, nh, nkv, hd) = (rows.len(), c.dim, c.n_heads, c.n_kv_heads, c.head_dim);
        let (dq, dkv, half) = (nh * hd, nkv * hd, hd / 2);
        let ffn = host.layers.first().map_or(0, |l| l.gate.rows());
        let eps = c.eps as f32;
        let scale = 1.0 / (hd as f64).sqrt();
        let interleaved = c.arch == Arch::Llama;
        let kerr = |e: tessera_kernels::KernelError| candle_core::Error::Msg(e.to_string());
        SCRATCH.with(|cell| -> Result<Option<Vec<Tensor>>, ModelError> {
            // Re-entered on this thread (a nested call from a task it ran while waiting): that
            // call gets buffers of its own, and the same arithmetic as every other pass (the
            // tensor path rounds differently, and a sequence's tokens would then depend on
            // which thread ran its steps).
            let mut fresh = Scratch::default();
            let mut held = cell.try_borrow_mut();
            let scratch: &mut Scratch = match held.as_deref_mut() {
                Ok(s) => s,
                Err(_) => &mut fresh,
            };
            let Scratch {
                x,
                h,
                q,
                k,
                v,
                att,
                o,
                g,
                u,
            } = &mut *scratch;
            for (buf, len) in [
                (&mut *x, m * dim),
                (&mut *h, m * dim),
                (&mut *q, m * dq),
                (&mut *k, m * dkv),
                (&mut *v, m * dkv),
                (&mut *att, m * dq),
                (&mut *o, m * dim),
                (&mut *g, m * ffn),
                (&mut *u, m * ffn),
            ] {
                buf.clear();
                buf.resize(len, 0.0);
            }
            let tokens = segments.iter().flat_map(|s| s.tokens.iter());
            for (&t, row) in tokens.zip(x.chunks_exact_mut(dim)) {
                embed_row(&host.embed, t, row)?;
            }
            for (li, hv) in host.layers.iter().enumerate() {
                rms_norm_rows(x, &hv.attn_norm, eps, h);
                matmul_many(
                    &[&hv.wq, &hv.wk, &hv.wv],
                    h,
                    m,
                    &mut [&mut q[..], &mut k[..], &mut v[..]],
                )
                .map_err(kerr)?;
                for (buf, bias, width) in [
                    (&mut *q, &hv.bq, dq),
                    (&mut *k, &hv.bk, dkv),
                    (&mut *v, &hv.bv, dkv),
                ] {
                    if let Some(b) = bias {
                        for row in buf.chunks_exact_mut(width) {
                            row.iter_mut().zip(b).for_each(|(a, b)| *a += b);
                        }
                    }
                }
                for (i, &(si, pos)) in rows.iter().enumerate() {
                    let (cos, sin) = (
                        &host.cos[pos * half..][..half],
                        &host.sin[pos * half..][..half],
                    );
                    let qi = &mut q[i * dq..][..dq];
                    let ki = &mut k[i * dkv..][..dkv];
                    rope_heads(qi, hd, cos, sin, interleaved);
                    rope_heads(ki, hd, cos, sin, interleaved);
                    if !segments[si]
                        .cache
                        .write_row(li, pos, ki, &v[i * dkv..][..dkv])
                    {
                        return Err(not_host());
                    }
                }
                for &(si, r0, l) in &spans {
                    if !segments[si].cache.arrange_keys(li, rows[r0].1 + l) {
                        return Err(not_host());
                    }
                }
                // Each token attends over its own context (a thousand positions after a
                // reading prompt), a segment's tokens together (their keys are arranged
                // once): the segments' key/value heads are spread over the threads, so even
                // one sequence's attention runs on more than one core.
                let width = (nh / nkv) * hd;
                let q = &*q;
                // One key/value head `g` of span `(si, r0, l)` into `out` (`l` rows of
                // `width`); false when the cache cannot be read in place.
                let attend = |(si, r0, l): (usize, usize, usize), g: usize, out: &mut [f32]| {
                    let cache = &segments[si].cache;
                    let first = rows[r0].1 + 1;
                    let Some((kg, vg)) = cache.head_blocks(li, g, first + l - 1) else {
                        return false;
                    };
                    let queries = tessera_kernels::attention::Queries {
                        q: &q[r0 * dq + g * width..],
                        stride: dq,
                        rows: l,
                        first,
                    };
                    SCORES.with(|cell| {
                        // This thread's scratch (a fresh one if a call on this thread
                        // holds it), so a step allocates nothing per head.
                        let mut fresh = Vec::new();
                        let mut held = cell.try_borrow_mut();
                        let p = match held.as_deref_mut() {
                            Ok(p) => p,
                            Err(_) => &mut fresh,
                        };
                        tessera_kernels::attention::attend_rows(
                            queries,
                            tessera_kernels::attention::Keys::Blocks(kg),
                            vg,
                            hd,
                            scale as f32,
                            out,
                            p,
                        );
                    });
                    true
                };
                let attended = if spans.len() == m {
                    // Decode: one token a segment, written in place (head `g` of row `r`
                    // is the `r * nkv + g`-th piece of the output).
                    att.par_chunks_mut(width)
                        .enumerate()
                        .all(|(i, out)| attend(spans[i / nkv], i % nkv, out))
                } else {
                    // Prompt chunks: each task's rows are strided in the output, so tasks
                    // write pieces of their own, copied into place after.
                    let tasks: Vec<((usize, usize, usize), usize)> = spans
                        .iter()
                        .flat_map(|&span| (0..nkv).map(move |g| (span, g)))
                        .collect();
                    let parts: Vec<Option<Vec<f32>>> = tasks
                        .par_iter()
                        .map(|&(span, g)| {
                            let mut part = vec![0f32; span.2 * width];
                            attend(span, g, &mut part).then_some(part)
                        })
                        .collect();
                    let mut ok = true;
                    for (&((_, r0, _), g), part) in tasks.iter().zip(parts) {
                        let Some(part) = part else {
                            ok = false;
                            break;
                        };
                        for (i, pr) in part.chunks_exact(width).enumerate() {
                            att[(r0 + i) * dq + g * width..][..width].copy_from_slice(pr);
                        }
                    }
                    ok
                };
                if !attended {
                    return Err(not_host());
                }
                matmul_many(&[&hv.wo], att, m, &mut [&mut o[..]]).map_err(kerr)?;
                x.iter_mut().zip(o.iter()).for_each(|(a, b)| *a += b);
                rms_norm_rows(x, &hv.ffn_norm, eps, h);
                matmul_many(&[&hv.gate, &hv.up], h, m, &mut [&mut g[..], &mut u[..]])
                    .map_err(kerr)?;
                tessera_kernels::activation::silu_mul(g, u);
                matmul_many(&[&hv.down], g, m, &mut [&mut o[..]]).map_err(kerr)?;
                x.iter_mut().zip(o.iter()).for_each(|(a, b)| *a += b);
            }
            // The rows whose logits are wanted: every new token's, or the last one's.
            let mut wanted: Vec<usize> = Vec::new();
            let mut counts = Vec::with_capacity(segments.len());
            let mut first = 0;
            for s in segments.iter_mut() {
                let l = s.tokens.len();
                s.cache.len += l;
                let count = if s.all_logits { l } else { l.min(1) };
                wanted.extend(first + l - count..first + l);
                counts.push(count);
                first += l;
            }
            let n = wanted.len();
            let (hx, hn) = (&mut *o, &mut *h);
            hx.clear();
            for &r in &wanted {
                hx.extend_from_slice(&x[r * dim..(r + 1) * dim]);
            }
            hn.clear();
            hn.resize(n * dim, 0.0);
            rms_norm_rows(hx, &host.norm, eps, hn);
            let out = &host.output;
            let mut logits = vec![0f32; n * out.rows()];
            matmul_many(&[out], hn, n, &mut [&mut logits[..]]).map_err(kerr)?;
            let t = Tensor::from_vec(logits, (n, out.rows()), &Device::Cpu)?;
            let mut at = 0;
            let mut outs = Vec::with_capacity(counts.len());
            for count in counts {
                outs.push(if count == 0 {
                    Tensor::zeros((0, out.rows()), DType::F32, &Device::Cpu)?
                } else {
                    t.narrow(0, at, count)?
                });
                at += count;
            }
            // A long prompt's buffers are not kept for the decode steps that follow.
            if m > SCRATCH_ROWS {
                *scratch = Scratch::default();
            }
            Ok(Some(outs))
        })
    }
}

/// Rows of new tokens whose scratch buffers a thread keeps between forward passes.
const SCRATCH_ROWS: usize = 64;

thread_local! {
    /// Attention scratch (arranged keys, scores) of the CPU forward path on this thread,
    /// reused from pass to pass.
    static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// The CPU forward path met a KV cache it cannot write or read in place.
fn not_host() -> ModelError {
    ModelError::Compute(candle_core::Error::Msg(
        "forward pass: the KV cache is not a host cache of this model".into(),
    ))
}

/// The CPU forward path's buffers (see [`Model::forward_host`]).
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    h: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    att: Vec<f32>,
    o: Vec<f32>,
    g: Vec<f32>,
    u: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// RMSNorm of each row of `x` (rows of `w.len()` values) into `out`, as candle computes it.
fn rms_norm_rows(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let d = w.len();
    for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let ms = xr.iter().map(|v| v * v).sum::<f32>() / d as f32;
        let r = (ms + eps).sqrt();
        for ((o, &xv), &wv) in or.iter_mut().zip(xr).zip(w) {
            *o = xv / r * wv;
        }
    }
}

/// Rotates every head of `x` (heads of `hd` values) by one position's angles: pairs
/// `(2i, 2i + 1)` when `interleaved` (llama), `(i, i + hd/2)` otherwise (NeoX, qwen2).
fn rope_heads(x: &mut [f32], hd: usize, cos: &[f32], sin: &[f32], interleaved: bool) {
    let half = hd / 2;
    for head in x.chunks_exact_mut(hd) {
        for i in 0..half {
            let (a, b) = if interleaved {
                (2 * i, 2 * i + 1)
            } else {
                (i, i + half)
            };
            let (xa, xb) = (head[a], head[b]);
            head[a] = xa * cos[i] - xb * sin[i];
            head[b] = xa * sin[i] + xb * cos[i];
        }
    }
}

fn causal_mask(
    pos: usize,
    l: usize,
    total: usize,
    window: Option<usize>,
    dev: &Device,
) -> candle_core::Result<Tensor> {
    let mut m = vec![0f32; l * total];
    for i in 0..l {
        let p = pos + i;
        for t in 0..total {
            let future = t > p;
            let too_old = window.is_some_and(|w| p >= w && t <= p - w);
            if future || too_old {
                m[i * total + t] = f32::NEG_INFINITY;
            }
        }
    }
    Tensor::from_vec(m, (l, total), dev)
}

/// A sequence's keys and values for every layer, preallocated and written in place. Per
/// layer `[kv_heads, capacity, head_dim]`: plain host buffers on the CPU (decode writes and
/// reads them without tensor operations), tensors on other devices.
#[derive(Debug)]
pub struct KvCache {
    store: KvStore,
    len: usize,
    capacity: usize,
    max: usize,
    shape: (usize, usize),
    device: Device,
    /// Host caches: per layer, the keys again in the blocked layout attention reads
    /// ([`tessera_kernels::attention::Keys::Blocks`], per head `capacity` rounded up to a
    /// block), brought up to date before each layer's attention ([`KvCache::arrange_keys`]),
    /// so a decode step arranges only its new position, not the whole context.
    blocked: Vec<Vec<f32>>,
    /// Per layer, the positions `blocked` holds.
    blocked_len: Vec<usize>,
}

#[derive(Debug, Clone)]
enum KvStore {
    Host { k: Vec<Vec<f32>>, v: Vec<Vec<f32>> },
    Device { k: Vec<Tensor>, v: Vec<Tensor> },
}

/// A copy of a cache's first tokens, restorable into any cache of the same model.
#[derive(Debug, Clone)]
pub struct KvSnapshot {
    /// Buffers of exactly `len` positions.
    store: KvStore,
    len: usize,
}

impl KvSnapshot {
    /// Tokens held.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether it holds no tokens.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Copies the first `len` positions of every head from `src` (`cap_src` positions per head)
/// to `dst` (`cap_dst` per head).
fn copy_heads(src: &[f32], cap_src: usize, dst: &mut [f32], cap_dst: usize, len: usize, d: usize) {
    for (s, t) in src.chunks(cap_src * d).zip(dst.chunks_mut(cap_dst * d)) {
        t[..len * d].copy_from_slice(&s[..len * d]);
    }
}

/// Copies the first `len` positions of every layer and head from `src` (`cap_src` positions
/// per head) into `dst` (`cap_dst` per head); both on the host or both on a device.
fn copy_positions(
    src: &KvStore,
    cap_src: usize,
    dst: &mut KvStore,
    cap_dst: usize,
    len: usize,
    d: usize,
) -> candle_core::Result<()> {
    match (src, dst) {
        (KvStore::Host { k, v }, KvStore::Host { k: k2, v: v2 }) => {
            for (s, t) in k.iter().chain(v).zip(k2.iter_mut().chain(v2.iter_mut())) {
                copy_heads(s, cap_src, t, cap_dst, len, d);
            }
        }
        (KvStore::Device { k, v }, KvStore::Device { k: k2, v: v2 }) => {
            if len > 0 {
                for (s, t) in k.iter().chain(v).zip(k2.iter().chain(v2.iter())) {
                    t.slice_set(&s.narrow(1, 0, len)?.contiguous()?, 1, 0)?;
                }
            }
        }
        _ => {
            return Err(candle_core::Error::Msg(
                "KV cache: copy between the host and a device".into(),
            ))
        }
    }
    Ok(())
}

impl KvCache {
    fn new(c: &Config, capacity: usize, dev: &Device) -> Result<Self, ModelError> {
        let shape = (c.n_kv_heads, c.head_dim);
        let store = Self::alloc(c.n_layers, shape, capacity, dev)?;
        Ok(Self {
            store,
            len: 0,
            capacity,
            max: c.context,
            shape,
            device: dev.clone(),
            blocked: vec![Vec::new(); c.n_layers],
            blocked_len: vec![0; c.n_layers],
        })
    }

    fn alloc(
        layers: usize,
        (h, d): (usize, usize),
        cap: usize,
        dev: &Device,
    ) -> candle_core::Result<KvStore> {
        Ok(if dev.is_cpu() {
            KvStore::Host {
                k: vec![vec![0f32; h * cap * d]; layers],
                v: vec![vec![0f32; h * cap * d]; layers],
            }
        } else {
            let t = || Tensor::zeros((h, cap, d), DType::F32, dev);
            KvStore::Device {
                k: (0..layers)
                    .map(|_| t())
                    .collect::<candle_core::Result<_>>()?,
                v: (0..layers)
                    .map(|_| t())
                    .collect::<candle_core::Result<_>>()?,
            }
        })
    }

    fn layers(&self) -> usize {
        match &self.store {
            KvStore::Host { k, .. } => k.len(),
            KvStore::Device { k, .. } => k.len(),
        }
    }

    /// Tokens held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no tokens.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room in tokens before it grows.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes its key and value buffers hold.
    pub fn bytes(&self) -> usize {
        let (h, d) = self.shape;
        self.layers() * 2 * h * d * self.capacity * std::mem::size_of::<f32>()
    }

    /// Forgets every token after the first `len`.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
        self.forget_blocked(self.len);
    }

    /// The blocked keys of every layer keep at most their first `len` positions.
    fn forget_blocked(&mut self, len: usize) {
        for n in &mut self.blocked_len {
            *n = (*n).min(len);
        }
    }

    /// Brings layer `layer`'s blocked keys up to its first `total` positions (host caches;
    /// false for a device cache or a position past the cache).
    fn arrange_keys(&mut self, layer: usize, total: usize) -> bool {
        use tessera_kernels::attention::KB;
        let (h, d) = self.shape;
        let cap = self.capacity;
        let KvStore::Host { k, .. } = &self.store else {
            return false;
        };
        if total > cap || layer >= k.len() {
            return false;
        }
        let per = cap.div_ceil(KB) * KB * d;
        let blocked = &mut self.blocked[layer];
        if blocked.len() != h * per {
            blocked.clear();
            blocked.resize(h * per, 0.0);
            self.blocked_len[layer] = 0;
        }
        let from = self.blocked_len[layer];
        for (src, dst) in k[layer].chunks(cap * d).zip(blocked.chunks_mut(per)) {
            for t in from..total {
                let (b, i) = (t / KB, t % KB);
                for (j, &x) in src[t * d..(t + 1) * d].iter().enumerate() {
                    dst[(b * d + j) * KB + i] = x;
                }
            }
        }
        self.blocked_len[layer] = self.blocked_len[layer].max(total);
        true
    }

    /// Head `head` of layer `layer`: its blocked keys (whole blocks covering `total`
    /// positions) and its first `total` values, read in place; `None` when the blocked keys
    /// do not hold them (see [`KvCache::arrange_keys`]) or the cache is on a device.
    fn head_blocks(&self, layer: usize, head: usize, total: usize) -> Option<(&[f32], &[f32])> {
        use tessera_kernels::attention::KB;
        let KvStore::Host { v, .. } = &self.store else {
            return None;
        };
        let (kv_heads, d) = self.shape;
        if head >= kv_heads || total > self.capacity || self.blocked_len.get(layer)? < &total {
            return None;
        }
        let per = self.capacity.div_ceil(KB) * KB * d;
        let keys = self.blocked.get(layer)?.get(head * per..)?;
        let at = head * self.capacity * d;
        Some((
            keys.get(..total.div_ceil(KB) * KB * d)?,
            v.get(layer)?.get(at..at + total * d)?,
        ))
    }

    /// Moves the first `len` positions into fresh buffers of `cap` positions.
    fn resized(&self, len: usize, cap: usize) -> candle_core::Result<KvStore> {
        let (_, d) = self.shape;
        let mut out = Self::alloc(self.layers(), self.shape, cap, &self.device)?;
        copy_positions(&self.store, self.capacity, &mut out, cap, len, d)?;
        Ok(out)
    }

    fn reserve(&mut self, needed: usize) -> Result<(), ModelError> {
        if needed <= self.capacity {
            return Ok(());
        }
        // Grow geometrically: reallocation is rare and amortised.
        let cap = needed.max(self.capacity * 2).min(self.max);
        self.store = self.resized(self.len, cap)?;
        self.capacity = cap;
        self.forget_blocked(0);
        Ok(())
    }

    /// Writes `k` and `v` (`[kv_heads, l, head_dim]` tensors) at positions `pos..pos + l`.
    fn write(
        &mut self,
        layer: usize,
        pos: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> candle_core::Result<()> {
        let (_, d) = self.shape;
        let cap = self.capacity;
        if let Some(n) = self.blocked_len.get_mut(layer) {
            *n = (*n).min(pos);
        }
        match &mut self.store {
            KvStore::Host { k: ks, v: vs } => {
                for (t, dst) in [(k, &mut ks[layer]), (v, &mut vs[layer])] {
                    let (_, l, _) = t.dims3()?;
                    let src: Vec<f32> = t.flatten_all()?.to_vec1()?;
                    for (s, h) in src.chunks(l * d).zip(dst.chunks_mut(cap * d)) {
                        h[pos * d..(pos + l) * d].copy_from_slice(s);
                    }
                }
                Ok(())
            }
            KvStore::Device { k: ks, v: vs } => {
                ks[layer].slice_set(k, 1, pos)?;
                vs[layer].slice_set(v, 1, pos)
            }
        }
    }

    /// Writes one position's keys and values (`kv_heads * head_dim` each, head-major) at
    /// `pos`, on the host. Returns false for a device cache.
    fn write_row(&mut self, layer: usize, pos: usize, k: &[f32], v: &[f32]) -> bool {
        let (_, d) = self.shape;
        let cap = self.capacity;
        if let Some(n) = self.blocked_len.get_mut(layer) {
            *n = (*n).min(pos);
        }
        let KvStore::Host { k: ks, v: vs } = &mut self.store else {
            return false;
        };
        for (src, dst) in [(k, &mut ks[layer]), (v, &mut vs[layer])] {
            for (s, h) in src.chunks(d).zip(dst.chunks_mut(cap * d)) {
                h[pos * d..(pos + 1) * d].copy_from_slice(s);
            }
        }
        true
    }

    /// Attention of one query token (`q`: `heads` heads of `hd` values, head-major) over the
    /// first `total` cached positions of `layer`, read in place, into `out` (`heads * hd`):
    /// per head, scaled dot products, a softmax and the weighted sum of values (grouped-query
    /// heads share their KV head). `p` is scratch for the weights. False when the cache is
    /// on a device or the shapes do not fit (the caller then takes the tensor path).
    #[allow(clippy::too_many_arguments)]
    fn attend_one(
        &self,
        layer: usize,
        total: usize,
        q: &[f32],
        heads: usize,
        scale: f64,
        out: &mut [f32],
        p: &mut Vec<f32>,
    ) -> bool {
        let KvStore::Host { k, v } = &self.store else {
            return false;
        };
        let (kv_heads, head_dim) = self.shape;
        let layout = tessera_kernels::attention::CacheLayout {
            kv_heads,
            capacity: self.capacity,
            head_dim,
        };
        tessera_kernels::attention::attend(
            q,
            &k[layer],
            &v[layer],
            layout,
            total,
            heads,
            scale as f32,
            out,
            p,
        )
    }

    /// The first `total` positions of `layer` as `[kv_heads, total, head_dim]` tensors.
    fn view(&self, layer: usize, total: usize) -> candle_core::Result<(Tensor, Tensor)> {
        let (h, d) = self.shape;
        match &self.store {
            KvStore::Host { k, v } => {
                let take = |src: &[f32]| {
                    let mut t = vec![0f32; h * total * d];
                    copy_heads(src, self.capacity, &mut t, total, total, d);
                    Tensor::from_vec(t, (h, total, d), &self.device)
                };
                Ok((take(&k[layer])?, take(&v[layer])?))
            }
            KvStore::Device { k, v } => Ok((
                k[layer].narrow(1, 0, total)?.contiguous()?,
                v[layer].narrow(1, 0, total)?.contiguous()?,
            )),
        }
    }

    /// Copies the first `len` tokens out (a computed prompt prefix, say).
    pub fn snapshot(&self) -> Result<KvSnapshot, ModelError> {
        Ok(KvSnapshot {
            store: self.resized(self.len, self.len.max(1))?,
            len: self.len,
        })
    }

    /// Replaces the contents with a snapshot.
    pub fn restore(&mut self, snap: &KvSnapshot) -> Result<(), ModelError> {
        self.len = 0;
        self.forget_blocked(0);
        self.reserve(snap.len)?;
        let (_, d) = self.shape;
        let len = snap.len;
        // A snapshot holds exactly its positions (at least one per head).
        copy_positions(
            &snap.store,
            len.max(1),
            &mut self.store,
            self.capacity,
            len,
            d,
        )?;
        self.len = len;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Standard normal values from a fixed seed (Box-Muller): each run multiplies the same
    /// numbers. Unseeded inputs made the kernel comparisons flaky: now and then an activation
    /// lands exactly on a rounding tie, which candle rounds away from zero and Tessera (as
    /// llama.cpp) to even, one quantization step apart.
    fn randn(seed: u64, shape: (usize, usize), dev: &Device) -> Tensor {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let n = shape.0 * shape.1;
        let v: Vec<f32> = (0..n)
            .map(|_| {
                let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
                let u2: f64 = rng.random();
                ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
            })
            .collect();
        Tensor::from_vec(v, shape, dev).unwrap()
    }

    fn max_abs(t: &Tensor) -> f32 {
        t.abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// Every weight type the loader accepts multiplies like its dequantized self (within the
    /// error of quantizing the activations), including after re-quantization to Q8_0.
    #[test]
    fn every_supported_weight_type_matmuls_like_its_dequantized_weights() {
        let dev = Device::Cpu;
        let w = randn(1, (48, 256), &dev);
        let x = randn(2, (3, 256), &dev);
        for t in [
            GgmlDType::Q4_0,
            GgmlDType::Q4_1,
            GgmlDType::Q5_0,
            GgmlDType::Q5_1,
            GgmlDType::Q8_0,
            GgmlDType::Q4K,
            GgmlDType::Q5K,
            GgmlDType::Q6K,
        ] {
            let q = QTensor::quantize(&w, t).unwrap();
            let exact = x.matmul(&q.dequantize(&dev).unwrap().t().unwrap()).unwrap();
            let scale = max_abs(&exact);
            let mut variants = vec![q];
            if slow_on_cpu(t, false) {
                let f = variants[0].dequantize(&dev).unwrap();
                variants.push(QTensor::quantize(&f, GgmlDType::Q8_0).unwrap());
            }
            for v in variants {
                let v = Arc::new(v);
                // Both kernels: Tessera's (for the types it has) and candle's.
                for kernels in [true, false] {
                    let got = Linear::new(v.clone(), kernels)
                        .unwrap()
                        .forward(&x)
                        .unwrap();
                    let err = max_abs(&(got - &exact).unwrap());
                    assert!(
                        err < 0.05 * scale,
                        "{t:?} (kernels {kernels}): max error {err} of {scale}"
                    );
                }
            }
        }
    }

    /// Where both have a kernel for a type, Tessera's and candle's agree far more closely than
    /// either agrees with the f32 product (where both quantize the activations alike).
    #[test]
    fn tessera_kernels_equal_candles_on_the_same_blocks() {
        let dev = Device::Cpu;
        // 768 columns: 32-blocks and 256-value k-quant super-blocks both divide them.
        let w = randn(3, (40, 768), &dev);
        // 9 rows: past the kernels' unpacking threshold (8), so both paths run.
        let x = randn(4, (9, 768), &dev);
        for t in [
            GgmlDType::Q4_0,
            GgmlDType::Q4_1,
            GgmlDType::Q5_0,
            GgmlDType::Q8_0,
            GgmlDType::Q4K,
            GgmlDType::Q6K,
        ] {
            let q = Arc::new(QTensor::quantize(&w, t).unwrap());
            let ours = Linear::new(q.clone(), true).unwrap();
            // Rows back in f32 (embedding lookups) are candle's dequantized rows.
            let dense = q.dequantize(&dev).unwrap().to_vec2::<f32>().unwrap();
            let mut row = vec![0f32; 768];
            for (r, want) in dense.iter().enumerate() {
                ours.matrix().unwrap().dequantize_row(r, &mut row).unwrap();
                let err = want
                    .iter()
                    .zip(&row)
                    .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(err <= 1e-6 * max_abs(&w), "{t:?} row {r}: {err}");
            }
            assert!(ours.matrix().unwrap().dequantize_row(40, &mut row).is_err());
            let ours = ours.forward(&x).unwrap();
            let theirs = Linear::new(q, false).unwrap().forward(&x).unwrap();
            let scale = max_abs(&theirs);
            let err = max_abs(&(ours - &theirs).unwrap());
            // candle rounds Q4_1's activation block sums to f16, and quantizes the k-quants'
            // activations with one scale per 256 values (Q8_K) where Tessera keeps one per 32.
            let bound = match t {
                GgmlDType::Q4_1 => 2e-3,
                GgmlDType::Q4K | GgmlDType::Q6K => 2e-2,
                _ => 1e-5,
            };
            assert!(err <= bound * scale, "{t:?}: {err} of {scale}");
        }
    }

    /// Layers over one input in one pass, and the fused SwiGLU, equal the layers one by one.
    #[test]
    fn fused_products_equal_separate_ones() {
        let dev = Device::Cpu;
        let x = randn(5, (3, 256), &dev);
        let layer = |rows: usize, t: GgmlDType| {
            let w = randn(6, (rows, 256), &dev);
            Linear::new(Arc::new(QTensor::quantize(&w, t).unwrap()), true).unwrap()
        };
        let (a, b, c) = (
            layer(64, GgmlDType::Q4_1),
            layer(16, GgmlDType::Q8_0),
            layer(64, GgmlDType::Q5_0),
        );
        let many = Linear::forward_many(&[&a, &b, &c], &x).unwrap();
        for (l, got) in [&a, &b, &c].into_iter().zip(&many) {
            let one = l.forward(&x).unwrap();
            assert_eq!(max_abs(&(one - got).unwrap()), 0.0);
        }
        let fused = Linear::swiglu(&a, &c, &x).unwrap();
        let plain = (candle_nn::ops::silu(&a.forward(&x).unwrap()).unwrap()
            * c.forward(&x).unwrap())
        .unwrap();
        let err = max_abs(&(fused - &plain).unwrap());
        assert!(err <= 1e-5 * max_abs(&plain), "{err}");
        assert!(
            Linear::swiglu(&a, &b, &x).is_err(),
            "gate and up of different heights"
        );
    }

    /// The CPU forward pass on plain buffers computes what the tensor path computes with the
    /// same kernels, for llama and qwen2 layouts: a prompt, decode steps of one sequence and
    /// two together, a prompt chunk beside a decode step, a segment with no tokens; and it
    /// grows the cache past its first capacity.
    #[test]
    fn host_forward_equals_the_tensor_path() {
        use crate::synth::{write_tiny, TinySpec};
        let dir = tempfile::tempdir().unwrap();
        for arch in ["llama", "qwen2"] {
            let path = dir.path().join(format!("{arch}.gguf"));
            let spec = TinySpec {
                arch,
                weights: GgmlDType::Q4_1,
                ..TinySpec::default()
            };
            write_tiny(&path, &spec, 3).unwrap();
            let file = GgufFile::open(&path).unwrap();
            let fast = Model::load(&file, &LoadOptions::default()).unwrap();
            assert!(fast.host.is_some(), "{arch}: no host decode step");
            let mut slow = Model::load(&file, &LoadOptions::default()).unwrap();
            slow.host = None;
            let steps = |model: &Model| -> Vec<Vec<f32>> {
                let mut a = model.new_cache(2).unwrap();
                let mut b = model.new_cache(2).unwrap();
                let mut out = Vec::new();
                model
                    .forward(&mut [Segment {
                        cache: &mut a,
                        tokens: &[1, 2, 3],
                        all_logits: false,
                    }])
                    .unwrap();
                for t in 0..6u32 {
                    let ta = [t * 31 % 500];
                    // b joins with one token, then a prompt chunk of three (every row's
                    // logits) beside a's decode token, then nothing beside it.
                    let tb: &[u32] = match t {
                        3 => &[21],
                        4 => &[22, 23, 24],
                        _ => &[],
                    };
                    let mut segs = vec![Segment {
                        cache: &mut a,
                        tokens: &ta,
                        all_logits: false,
                    }];
                    if t >= 3 {
                        segs.push(Segment {
                            cache: &mut b,
                            tokens: tb,
                            all_logits: t == 4,
                        });
                    }
                    for l in model.forward(&mut segs).unwrap() {
                        out.push(l.flatten_all().unwrap().to_vec1().unwrap());
                    }
                }
                assert_eq!((a.len(), b.len()), (9, 4));
                out
            };
            let (want, got) = (steps(&slow), steps(&fast));
            assert_eq!(want.len(), got.len());
            for (w, g) in want.iter().zip(&got) {
                let scale = w.iter().fold(0f32, |m, v| m.max(v.abs()));
                let diff = w.iter().zip(g).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(
                    diff <= 1e-4 * scale,
                    "{arch}: differ by {diff} (scale {scale})"
                );
            }
        }
    }

    #[test]
    fn causal_mask_hides_the_future_and_the_window() {
        let m = causal_mask(2, 2, 4, None, &Device::Cpu)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(m[0][..3], [0.0, 0.0, 0.0]);
        assert!(m[0][3].is_infinite());
        assert!(m[1].iter().all(|v| *v == 0.0));
        let m = causal_mask(3, 1, 4, Some(2), &Device::Cpu)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert!(m[0][0].is_infinite() && m[0][1].is_infinite());
        assert_eq!(m[0][2..], [0.0, 0.0]);
    }
}
