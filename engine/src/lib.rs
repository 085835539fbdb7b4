//! Tessera engine: the in-engine inference core (GGUF models, tokenizer, constrained decoding,
//! prefix cache, embedder) and the EDC+R text-to-triples pipeline.
//!
//! This crate is a skeleton so far: the layering (`kernels <- engine`, the root crate wiring
//! `engine` and `storage`) is fixed first, and the inference core fills it. It exposes
//! [`Backend`], the compute backend a build was made with.

/// A compute backend for inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// Portable CPU code, SIMD chosen at run time.
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
