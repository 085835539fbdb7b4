//! Seeded random-weight models: a real model's layout (metadata, tokenizer, tensor names,
//! shapes and block types) with random weights, and tiny models built from scratch. They test
//! and benchmark the compute path where real weights cannot go (a GPU machine reached with a
//! few tens of MiB) or are not needed (one backend's logits against another's on the same
//! file). Speed depends on shapes and types, not values, so a synthesized copy of SmolLM2
//! prefills and decodes as fast as SmolLM2. Entry points: [`write_skeleton`] (a model's header
//! alone, a few MiB), [`synthesize`] (skeleton or model to a loadable random-weight model),
//! [`write_tiny`] (a small model from a [`TinySpec`]).

use crate::gguf::{GgufError, GgufFile};
use crate::quantize::write_gguf;
use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// What can go wrong while writing a synthetic model.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// The source file could not be read.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// A tensor could not be made.
    #[error("tensor {tensor}: {source}")]
    Tensor {
        /// The tensor.
        tensor: String,
        /// The underlying error.
        source: Box<candle_core::Error>,
    },
    /// The output could not be written.
    #[error("{path}: {reason}")]
    Write {
        /// The output file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Most elements of one synthesized tensor (its f32 values are built in memory): above any
/// model this runs, below what a hostile header could ask for.
pub const MAX_SYNTH_ELEMENTS: usize = 1 << 30;

/// Writes the header of the GGUF model `input` (metadata, tokenizer, tensor table: no tensor
/// data) to `output`; returns its size. [`synthesize`] turns it back into a loadable model.
pub fn write_skeleton(input: &Path, output: &Path) -> Result<u64, SynthError> {
    let file = GgufFile::open(input)?;
    let len = file.content().tensor_data_offset;
    let werr = |e: std::io::Error| SynthError::Write {
        path: output.to_path_buf(),
        reason: e.to_string(),
    };
    let mut header = Vec::with_capacity(len as usize);
    std::fs::File::open(input)
        .map_err(|e| SynthError::Write {
            path: input.to_path_buf(),
            reason: e.to_string(),
        })?
        .take(len)
        .read_to_end(&mut header)
        .map_err(werr)?;
    let tmp = output.with_extension("gguf.partial");
    let mut f = std::fs::File::create(&tmp).map_err(werr)?;
    f.write_all(&header).map_err(werr)?;
    f.sync_all().map_err(werr)?;
    std::fs::rename(&tmp, output).map_err(werr)?;
    Ok(len)
}

/// Seeded random values for a tensor named `name` of `dims`: norm weights near 1, biases
/// near 0, matrices uniform with the variance of a unit-gain initialization (1/k), so that
/// activations keep their scale through the layers as a trained model's do.
fn values(name: &str, dims: &[usize], rng: &mut StdRng) -> Vec<f32> {
    let n: usize = dims.iter().product();
    let k = *dims.last().unwrap_or(&1) as f32;
    if name.ends_with("norm.weight") {
        (0..n)
            .map(|_| 1.0 + rng.random_range(-0.1f32..0.1))
            .collect()
    } else if name.ends_with(".bias") {
        (0..n).map(|_| rng.random_range(-0.1f32..0.1)).collect()
    } else {
        let a = (3.0 / k).sqrt();
        (0..n).map(|_| rng.random_range(-a..a)).collect()
    }
}

/// A tensor of `dtype` holding [`values`].
fn random_tensor(
    name: &str,
    dims: &[usize],
    dtype: GgmlDType,
    rng: &mut StdRng,
) -> Result<QTensor, SynthError> {
    let terr = |source| SynthError::Tensor {
        tensor: name.to_owned(),
        source: Box::new(source),
    };
    let t = Tensor::from_vec(values(name, dims, rng), dims, &Device::Cpu).map_err(terr)?;
    QTensor::quantize(&t, dtype).map_err(terr)
}

/// Writes a model with the layout of `input` (a model or a skeleton: same metadata, tensor
/// names, shapes and types) and seeded random weights to `output`. `progress(done, total)`
/// is called per tensor.
pub fn synthesize(
    input: &Path,
    output: &Path,
    seed: u64,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(), SynthError> {
    let file = GgufFile::open_layout(input)?;
    let content = file.content();
    let mut infos: Vec<_> = content.tensor_infos.iter().collect();
    infos.sort_by_key(|(_, i)| i.offset);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tensors = Vec::with_capacity(infos.len());
    for (i, (name, info)) in infos.iter().enumerate() {
        if info.shape.elem_count() > MAX_SYNTH_ELEMENTS {
            return Err(SynthError::Tensor {
                tensor: (*name).clone(),
                source: Box::new(candle_core::Error::Msg(format!(
                    "{} elements, more than the {MAX_SYNTH_ELEMENTS} synthesized per tensor",
                    info.shape.elem_count()
                ))),
            });
        }
        let t = random_tensor(name, info.shape.dims(), info.ggml_dtype, &mut rng)?;
        tensors.push(((*name).clone(), t));
        progress(i + 1, infos.len());
    }
    let meta: Vec<(&str, &Value)> = content
        .metadata
        .iter()
        .filter(|(k, _)| k.as_str() != "general.alignment")
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    write_gguf(output, &meta, &tensors).map_err(|reason| SynthError::Write {
        path: output.to_path_buf(),
        reason,
    })
}

/// The shape of a tiny model written by [`write_tiny`].
#[derive(Debug, Clone)]
pub struct TinySpec {
    /// `llama` (interleaved RoPE, no biases) or `qwen2` (NeoX RoPE, QKV biases).
    pub arch: &'static str,
    /// Hidden size.
    pub dim: usize,
    /// Layers.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// MLP width.
    pub ffn: usize,
    /// Vocabulary (rows of the embedding table).
    pub vocab: usize,
    /// Context length.
    pub context: usize,
    /// Type of the matrices (norms and biases are F32).
    pub weights: GgmlDType,
}

impl Default for TinySpec {
    fn default() -> Self {
        Self {
            arch: "llama",
            dim: 256,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            ffn: 512,
            vocab: 512,
            context: 512,
            weights: GgmlDType::Q8_0,
        }
    }
}

/// Writes a tiny model of `spec` with seeded random weights (no tokenizer: it runs through
/// [`crate::model::Model`], not [`crate::LanguageModel`]).
pub fn write_tiny(output: &Path, spec: &TinySpec, seed: u64) -> Result<(), SynthError> {
    let a = spec.arch;
    let u = |v: usize| Value::U32(v as u32);
    let meta_owned: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(a.into())),
        ("general.name".into(), Value::String(format!("tiny-{a}"))),
        (format!("{a}.embedding_length"), u(spec.dim)),
        (format!("{a}.block_count"), u(spec.layers)),
        (format!("{a}.attention.head_count"), u(spec.heads)),
        (format!("{a}.attention.head_count_kv"), u(spec.kv_heads)),
        (format!("{a}.feed_forward_length"), u(spec.ffn)),
        (format!("{a}.context_length"), u(spec.context)),
        (format!("{a}.rope.freq_base"), Value::F32(10_000.0)),
        (
            format!("{a}.attention.layer_norm_rms_epsilon"),
            Value::F32(1e-5),
        ),
    ];
    let kv = spec.dim / spec.heads * spec.kv_heads;
    let mut layout: Vec<(String, Vec<usize>, GgmlDType)> = vec![
        (
            "token_embd.weight".into(),
            vec![spec.vocab, spec.dim],
            spec.weights,
        ),
        ("output_norm.weight".into(), vec![spec.dim], GgmlDType::F32),
        (
            "output.weight".into(),
            vec![spec.vocab, spec.dim],
            spec.weights,
        ),
    ];
    for i in 0..spec.layers {
        let p = |s: &str| format!("blk.{i}.{s}");
        let (d, f, w) = (spec.dim, spec.ffn, spec.weights);
        layout.push((p("attn_norm.weight"), vec![d], GgmlDType::F32));
        layout.push((p("attn_q.weight"), vec![d, d], w));
        layout.push((p("attn_k.weight"), vec![kv, d], w));
        layout.push((p("attn_v.weight"), vec![kv, d], w));
        if a == "qwen2" {
            layout.push((p("attn_q.bias"), vec![d], GgmlDType::F32));
            layout.push((p("attn_k.bias"), vec![kv], GgmlDType::F32));
            layout.push((p("attn_v.bias"), vec![kv], GgmlDType::F32));
        }
        layout.push((p("attn_output.weight"), vec![d, d], w));
        layout.push((p("ffn_norm.weight"), vec![d], GgmlDType::F32));
        layout.push((p("ffn_gate.weight"), vec![f, d], w));
        layout.push((p("ffn_up.weight"), vec![f, d], w));
        layout.push((p("ffn_down.weight"), vec![d, f], w));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let tensors = layout
        .iter()
        .map(|(name, dims, t)| Ok((name.clone(), random_tensor(name, dims, *t, &mut rng)?)))
        .collect::<Result<Vec<_>, SynthError>>()?;
    let meta: Vec<(&str, &Value)> = meta_owned.iter().map(|(k, v)| (k.as_str(), v)).collect();
    write_gguf(output, &meta, &tensors).map_err(|reason| SynthError::Write {
        path: output.to_path_buf(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LoadOptions, Model};

    #[test]
    fn tiny_models_load_and_skeletons_are_refused_as_models_but_synthesize() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("tiny.gguf");
        write_tiny(&model, &TinySpec::default(), 7).unwrap();
        let file = GgufFile::open(&model).unwrap();
        let m = Model::load(&file, &LoadOptions::default()).unwrap();
        assert_eq!(m.config().n_layers, 2);

        let skel = dir.path().join("tiny.skeleton.gguf");
        let n = write_skeleton(&model, &skel).unwrap();
        assert_eq!(std::fs::metadata(&skel).unwrap().len(), n);
        assert!(n < std::fs::metadata(&model).unwrap().len() / 10);
        let e = GgufFile::open(&skel).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        let layout = GgufFile::open_layout(&skel).unwrap();
        let e = layout
            .tensor("output.weight", &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(e.contains("past the end of the file"), "{e}");

        let again = dir.path().join("again.gguf");
        synthesize(&skel, &again, 7, &mut |_, _| {}).unwrap();
        let a = GgufFile::open(&again).unwrap();
        for (name, info) in &file.content().tensor_infos {
            let b = &a.content().tensor_infos[name];
            assert_eq!(
                (info.shape.dims(), info.ggml_dtype),
                (b.shape.dims(), b.ggml_dtype)
            );
        }
        Model::load(&a, &LoadOptions::default()).unwrap();
    }
}
