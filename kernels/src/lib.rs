//! Tessera kernels: quantized number formats and the compute kernels over them (a portable
//! scalar reference, SIMD versions chosen at run time, CUDA behind the `cuda` feature).
//!
//! Entry point: [`matmul::QMatrix`], GGUF block-quantized weights (Q8_0, Q4_0, Q4_1, Q5_0)
//! times f32 activations, the product every linear layer of the engine's models runs on the
//! CPU. [`cuda_compiled`] tells whether the CUDA backend was built in.

// SIMD intrinsics and the disjoint parallel writes of the kernels need `unsafe`; each block
// says why it holds. Nothing outside this crate's kernels uses it.
#![allow(unsafe_code)]

pub mod activation;
pub mod attention;
pub mod matmul;
pub mod peak;

/// What can go wrong in a kernel call.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// Operand shapes do not fit together.
    #[error("kernel shapes: {0}")]
    Shape(String),
    /// An operand holds a value the kernels refuse.
    #[error("kernel input: {0}")]
    Value(String),
    /// The requested implementation does not run on this CPU.
    #[error("this CPU cannot run the {0} kernels")]
    Unsupported(String),
}

/// Whether this build includes the CUDA backend.
pub const fn cuda_compiled() -> bool {
    cfg!(feature = "cuda")
}

#[cfg(test)]
mod tests;

/// The CUDA kernels as PTX, compiled by `build.rs` with `nvcc` (only with the `cuda` feature);
/// the engine loads them on its device.
#[cfg(feature = "cuda")]
pub mod cuda {
    /// One decode step's RoPE, KV-cache write and attention for a batch of sequences
    /// (`tessera_decode_attention`; see `src/cuda/decode.cu` for its arguments).
    pub const DECODE_PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/decode.ptx"));
}
