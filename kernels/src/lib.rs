//! Tessera kernels: quantized number formats and compute kernels (portable CPU reference and
//! SIMD, CUDA behind the `cuda` feature).
//!
//! This crate is a skeleton so far; its entry point [`cuda_compiled`] tells whether the CUDA
//! backend was built in.

/// Whether this build includes the CUDA backend.
pub const fn cuda_compiled() -> bool {
    cfg!(feature = "cuda")
}
