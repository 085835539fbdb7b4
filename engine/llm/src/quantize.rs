//! Re-quantizing a GGUF model to another block type (`tessera models quantize`), and what it
//! costs: perplexity and top-1 agreement with the source model on a fixed text. Entry points:
//! [`quantize_file`] and [`compare`].
//!
//! Like llama.cpp's `quantize`: every 2-D `*.weight` matrix goes to the target type, group-wise
//! (blocks of 32, or 256 for the k-quants); a matrix whose rows do not divide into the target's
//! blocks takes the 32-block type with at least as many bits (Qwen2.5-0.5B's 896-wide rows
//! cannot hold 256-blocks); norms, biases and other vectors stay as they are. Tensors already
//! of the target type are copied, not re-quantized.

use crate::generate::{GenerateError, LanguageModel, ModelOptions};
use crate::gguf::{GgufError, GgufFile};
use crate::model::Segment;
use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor, D};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What can go wrong while quantizing or comparing models.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    /// The type name is not one the tool writes.
    #[error("unknown quantization type {0:?} (one of: {types})", types = TYPES.iter().map(|t| t.0).collect::<Vec<_>>().join(", "))]
    UnknownType(String),
    /// The source file could not be read.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// A tensor could not be converted.
    #[error("{path}: tensor {tensor}: {source}")]
    Tensor {
        /// The source file.
        path: PathBuf,
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
    /// A model of the comparison failed to load or run.
    #[error(transparent)]
    Model(#[from] GenerateError),
}

/// The types the tool writes, by name, with llama.cpp's `general.file_type` number.
pub const TYPES: [(&str, GgmlDType, u32); 10] = [
    ("q8_0", GgmlDType::Q8_0, 7),
    ("q4_0", GgmlDType::Q4_0, 2),
    ("q4_1", GgmlDType::Q4_1, 3),
    ("q5_0", GgmlDType::Q5_0, 8),
    ("q5_1", GgmlDType::Q5_1, 9),
    ("q2_k", GgmlDType::Q2K, 10),
    ("q3_k", GgmlDType::Q3K, 11),
    ("q4_k", GgmlDType::Q4K, 14),
    ("q5_k", GgmlDType::Q5K, 16),
    ("q6_k", GgmlDType::Q6K, 18),
];

/// The type named `name` (`q4_k`, `Q4_K`, ...).
pub fn parse_type(name: &str) -> Result<GgmlDType, QuantizeError> {
    let lower = name.to_ascii_lowercase();
    TYPES
        .iter()
        .find(|t| t.0 == lower)
        .map(|t| t.1)
        .ok_or_else(|| QuantizeError::UnknownType(name.to_owned()))
}

/// The 32-block type with at least the bits of `t`, for rows that 256-blocks do not divide.
fn fallback(t: GgmlDType) -> GgmlDType {
    match t {
        GgmlDType::Q2K | GgmlDType::Q3K => GgmlDType::Q4_0,
        GgmlDType::Q4K => GgmlDType::Q5_0,
        GgmlDType::Q5K => GgmlDType::Q5_1,
        GgmlDType::Q6K => GgmlDType::Q8_0,
        other => other,
    }
}

/// What [`quantize_file`] wrote.
#[derive(Debug, Clone, Default)]
pub struct QuantizeReport {
    /// Output tensors per type (`Q4K`, `F32`, ...).
    pub types: BTreeMap<String, usize>,
    /// Tensors re-quantized (the others were copied).
    pub converted: usize,
    /// Source file size.
    pub bytes_in: u64,
    /// Output file size.
    pub bytes_out: u64,
}

/// Writes `input` re-quantized to `target` as `output` (through a temporary file beside it,
/// renamed at the end, so a failed run leaves no partial model). `progress(done, total)` is
/// called per tensor.
pub fn quantize_file(
    input: &Path,
    output: &Path,
    target: GgmlDType,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<QuantizeReport, QuantizeError> {
    let write_err = |reason: String| QuantizeError::Write {
        path: output.to_path_buf(),
        reason,
    };
    let same = std::fs::canonicalize(output)
        .ok()
        .zip(std::fs::canonicalize(input).ok())
        .is_some_and(|(a, b)| a == b);
    if same {
        return Err(write_err("the output would overwrite the input".into()));
    }
    let file = GgufFile::open(input)?;
    let content = file.content();
    let mut names: Vec<(&String, u64)> = content
        .tensor_infos
        .iter()
        .map(|(n, i)| (n, i.offset))
        .collect();
    names.sort_by_key(|(_, off)| *off);
    let mut report = QuantizeReport {
        bytes_in: file.len(),
        ..Default::default()
    };
    let dev = Device::Cpu;
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(names.len());
    for (i, (name, _)) in names.iter().enumerate() {
        let terr = |source| QuantizeError::Tensor {
            path: input.to_path_buf(),
            tensor: (*name).clone(),
            source: Box::new(source),
        };
        let t = file.tensor(name, &dev)?;
        let dims = t.shape().dims().to_vec();
        let to = match dims.as_slice() {
            [_, k] if name.ends_with(".weight") && k % 32 == 0 => {
                if k % target.block_size() == 0 {
                    Some(target)
                } else {
                    Some(fallback(target))
                }
            }
            _ => None,
        };
        let out = match to {
            Some(to) if to != t.dtype() => {
                let f = t.dequantize(&dev).map_err(terr)?;
                report.converted += 1;
                QTensor::quantize(&f, to).map_err(terr)?
            }
            _ => t,
        };
        *report
            .types
            .entry(format!("{:?}", out.dtype()))
            .or_default() += 1;
        tensors.push(((*name).clone(), out));
        progress(i + 1, names.len());
    }
    let file_type = TYPES.iter().find(|t| t.1 == target).map_or(0, |t| t.2);
    let file_type = Value::U32(file_type);
    // The writer aligns tensors to 32 bytes, GGUF's default: a different recorded alignment
    // would be a lie, so it is not copied.
    let mut meta: Vec<(&str, &Value)> = content
        .metadata
        .iter()
        .filter(|(k, _)| k.as_str() != "general.alignment" && k.as_str() != "general.file_type")
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    meta.push(("general.file_type", &file_type));
    meta.sort_by_key(|(k, _)| *k);
    write_gguf(output, &meta, &tensors).map_err(write_err)?;
    report.bytes_out = std::fs::metadata(output)
        .map_err(|e| write_err(e.to_string()))?
        .len();
    Ok(report)
}

/// Writes a GGUF file through a temporary file beside `output`, synced and renamed at the end,
/// so a failed run leaves no partial model behind.
pub(crate) fn write_gguf(
    output: &Path,
    meta: &[(&str, &Value)],
    tensors: &[(String, QTensor)],
) -> Result<(), String> {
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let tmp = output.with_extension("gguf.partial");
    let result = (|| -> Result<(), String> {
        let f = std::fs::File::create(&tmp).map_err(|e| e.to_string())?;
        let mut w = std::io::BufWriter::new(f);
        gguf_file::write(&mut w, meta, &refs).map_err(|e| e.to_string())?;
        let f = w.into_inner().map_err(|e| e.to_string())?;
        f.sync_all().map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, output).map_err(|e| e.to_string())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A fixed English text, written for Tessera, on which models are compared.
pub const REFERENCE_TEXT: &str = "The harbour town of Westmere grew around a small fishing \
fleet in the eighteenth century. When the railway reached it in 1871, merchants built \
warehouses along the quay, and the population doubled within twenty years. The old lighthouse, \
designed by the engineer Margaret Hale, still stands at the end of the northern pier, although \
its lamp was replaced by an automatic beacon in 1968. Today the town is known for its annual \
music festival, which draws visitors from across the country every August, and for a museum \
that tells the story of the fishing families who first settled there. The museum keeps nets, \
tools and letters, and its archive holds the harbour master's logbooks from 1790 to 1935. \
Researchers use them to study storms, trade and the changing size of the catch. A new library \
opened next to the museum in 2004; it lends books in six languages and runs evening classes \
in navigation, accounting and local history. Most residents work in tourism, education or \
the small boatyards that repair yachts during the winter months.";

/// How two models compare on [`REFERENCE_TEXT`].
#[derive(Debug, Clone)]
pub struct Comparison {
    /// Predicted positions.
    pub tokens: usize,
    /// Perplexity of the reference (source) model.
    pub perplexity_reference: f64,
    /// Perplexity of the candidate model.
    pub perplexity: f64,
    /// Share of positions where both models' most likely next token is the same.
    pub top1_agreement: f64,
}

/// Next-token log-probabilities of every position of `text` (`[positions, vocab]`) and the
/// tokens that followed.
fn log_probs(lm: &LanguageModel, text: &str) -> Result<(Tensor, Vec<u32>), QuantizeError> {
    let tokens = lm
        .tokenizer()
        .encode(text, true, false)
        .map_err(GenerateError::from)?;
    let model = lm.model();
    let logits = lm.install(|| -> Result<Tensor, GenerateError> {
        let mut cache = model.new_cache(tokens.len())?;
        let out = model.forward(&mut [Segment {
            cache: &mut cache,
            tokens: &tokens,
            all_logits: true,
        }])?;
        out.into_iter()
            .next()
            .ok_or_else(|| GenerateError::Request("the model returned no logits".into()))
    })?;
    let lp = (|| {
        let l = logits.to_dtype(DType::F32)?;
        let l = l.reshape((tokens.len(), l.elem_count() / tokens.len()))?;
        candle_nn::ops::log_softmax(&l, D::Minus1)
    })()
    .map_err(|e| GenerateError::from(crate::model::ModelError::from(e)))?;
    Ok((lp, tokens))
}

type Predictions = (Vec<u32>, Vec<f64>, Vec<u32>);

/// Perplexity and top-1 agreement of `candidate` against `reference` on [`REFERENCE_TEXT`]
/// (both must share a tokenizer).
pub fn compare(
    reference: &Path,
    candidate: &Path,
    threads: usize,
) -> Result<Comparison, QuantizeError> {
    let opts = ModelOptions {
        threads,
        ..Default::default()
    };
    // Per model: the most likely next token and the negative log-likelihood of the actual
    // next token at each position, and the tokens.
    let stats = |path: &Path| -> Result<Predictions, QuantizeError> {
        let lm = LanguageModel::load(path, &opts)?;
        let (lp, tokens) = log_probs(&lm, REFERENCE_TEXT)?;
        let err = |e: candle_core::Error| {
            QuantizeError::Model(GenerateError::from(crate::model::ModelError::from(e)))
        };
        let rows: Vec<Vec<f32>> = lp.to_vec2().map_err(err)?;
        let n = tokens.len() - 1;
        let argmax = rows[..n]
            .iter()
            .map(|r| {
                r.iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |b, (i, &v)| {
                        if v > b.1 {
                            (i as u32, v)
                        } else {
                            b
                        }
                    })
                    .0
            })
            .collect();
        let nll = (0..n)
            .map(|i| -f64::from(rows[i][tokens[i + 1] as usize]))
            .collect();
        Ok((argmax, nll, tokens))
    };
    let (top_a, nll_a, tok_a) = stats(reference)?;
    let (top_b, nll_b, tok_b) = stats(candidate)?;
    if tok_a != tok_b {
        return Err(QuantizeError::Model(GenerateError::Request(
            "the two models tokenize the reference text differently".into(),
        )));
    }
    let n = top_a.len();
    let ppl = |nll: &[f64]| (nll.iter().sum::<f64>() / n as f64).exp();
    Ok(Comparison {
        tokens: n,
        perplexity_reference: ppl(&nll_a),
        perplexity: ppl(&nll_b),
        top1_agreement: top_a.iter().zip(&top_b).filter(|(a, b)| a == b).count() as f64 / n as f64,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used, clippy::unwrap_in_result)]
    use super::*;

    #[test]
    fn type_names_parse_and_unknown_ones_are_named() {
        assert_eq!(parse_type("Q4_K").unwrap(), GgmlDType::Q4K);
        assert_eq!(parse_type("q8_0").unwrap(), GgmlDType::Q8_0);
        let e = parse_type("q7_x").unwrap_err().to_string();
        assert!(e.contains("q7_x") && e.contains("q4_k"), "{e}");
        for (_, t, _) in TYPES {
            assert_eq!(fallback(t).block_size(), 32, "{t:?}");
        }
    }
}
