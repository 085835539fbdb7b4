//! Tessera LLM: the in-engine inference core (the reading pipeline built on it is `tessera-text`).
//!
//! Entry points: [`LanguageModel`] (load a GGUF model, generate, score, constrain),
//! [`Embedder`] (sentence embeddings), [`ModelCache`] (models by name: `smollm2`,
//! `qwen2.5-0.5b`, ...), [`RemoteModel`] (a model behind OpenAI-compatible servers). Below them: [`gguf`] (a strict reader for untrusted model files),
//! [`tokenizer`] (tokenizers from GGUF metadata), [`model`] (the shared transformer with our own
//! KV cache), [`constrain`] (grammar-constrained decoding).

pub mod bench;
pub mod constrain;
pub mod download;
pub mod embed;
pub mod generate;
pub mod gguf;
#[cfg(feature = "cuda")]
#[path = "gpu.rs"]
mod gpu;
#[cfg(not(feature = "cuda"))]
#[path = "gpu_off.rs"]
mod gpu;
pub mod linear;
pub mod model;
pub mod quantize;
pub mod registry;
pub mod remote;
pub mod synth;
pub mod tokenizer;

pub use constrain::Constraint;
pub use download::ModelUrl;
pub use embed::Embedder;
pub use generate::{
    Cancel, Finish, GenerateError, GenerateOptions, Generation, LanguageModel, ModelOptions, Prompt,
};
pub use registry::{ModelCache, PullProgress, RegistryError};
pub use remote::{RemoteConfig, RemoteError, RemoteModel};
pub use tokenizer::ChatMessage;

/// A compute backend for inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// Portable CPU code.
    Cpu,
    /// NVIDIA GPU (builds with the `cuda` feature).
    Cuda,
}

impl Backend {
    /// Parses `cpu` or `cuda` (`cuda:N` names a GPU by ordinal; see [`Backend::device`]).
    pub fn parse(name: &str) -> Result<(Self, usize), String> {
        let (kind, ordinal) = match name.split_once(':') {
            Some((k, n)) => (
                k,
                n.parse::<usize>()
                    .map_err(|_| format!("device {name:?}: {n:?} is not a GPU ordinal"))?,
            ),
            None => (name, 0),
        };
        match kind {
            "cpu" => Ok((Self::Cpu, 0)),
            "cuda" | "gpu" => Ok((Self::Cuda, ordinal)),
            _ => Err(format!("device {name:?}: expected cpu, cuda or cuda:N")),
        }
    }

    /// Opens the device (`ordinal`: which GPU). CUDA in a build without the `cuda` feature, or
    /// on a machine without a usable GPU, is an error that says so.
    pub fn device(self, ordinal: usize) -> Result<candle_core::Device, String> {
        match self {
            Self::Cpu => Ok(candle_core::Device::Cpu),
            Self::Cuda if !tessera_kernels::cuda_compiled() => Err(
                "this build has no CUDA backend (rebuild with `--features cuda`, see scripts/cuda.sh)"
                    .into(),
            ),
            Self::Cuda => {
                let dev = candle_core::Device::new_cuda(ordinal).map_err(|e| {
                    // candle appends a backtrace on the following lines: the first says it all.
                    let e = e.to_string();
                    format!("CUDA device {ordinal}: {}", e.lines().next().unwrap_or(""))
                })?;
                gpu::prepare_device(&dev);
                Ok(dev)
            }
        }
    }

    /// The backends compiled into this build.
    pub fn available() -> Vec<Self> {
        let mut backends = vec![Self::Cpu];
        if tessera_kernels::cuda_compiled() {
            backends.push(Self::Cuda);
        }
        backends
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_always_available() {
        let backends = Backend::available();
        assert_eq!(backends.first(), Some(&Backend::Cpu));
        assert_eq!(backends.contains(&Backend::Cuda), cfg!(feature = "cuda"));
    }

    #[test]
    fn device_names_parse_and_unbuilt_backends_are_refused() {
        assert_eq!(Backend::parse("cpu"), Ok((Backend::Cpu, 0)));
        assert_eq!(Backend::parse("cuda:1"), Ok((Backend::Cuda, 1)));
        assert!(Backend::parse("tpu").is_err());
        assert!(Backend::parse("cuda:x").is_err());
        assert!(Backend::Cpu.device(0).is_ok_and(|d| d.is_cpu()));
        if !cfg!(feature = "cuda") {
            let e = Backend::Cuda.device(0).unwrap_err();
            assert!(e.contains("--features cuda"), "{e}");
        }
    }
}
