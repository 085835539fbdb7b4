//! Tessera engine: the in-engine inference core and the EDC+R text-to-triples pipeline.
//!
//! Entry points: [`LanguageModel`] (load a GGUF model, generate, score, constrain),
//! [`Embedder`] (sentence embeddings), [`ModelCache`] (models by name: `smollm2`,
//! `qwen2.5-0.5b`, ...), [`edc::Pipeline`] (text to canonical triples against a schema). Below them: [`gguf`] (a strict reader for untrusted model files),
//! [`tokenizer`] (tokenizers from GGUF metadata), [`model`] (the shared transformer with our own
//! KV cache), [`constrain`] (grammar-constrained decoding).

pub mod bench;
pub mod constrain;
pub mod edc;
pub mod embed;
pub mod generate;
pub mod gguf;
pub mod linear;
pub mod model;
pub mod quantize;
pub mod registry;
pub mod tokenizer;

pub use constrain::Constraint;
pub use embed::Embedder;
pub use generate::{
    Finish, GenerateError, GenerateOptions, Generation, LanguageModel, ModelOptions, Prompt,
};
pub use registry::{ModelCache, RegistryError};
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
}
