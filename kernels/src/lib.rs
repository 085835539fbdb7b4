//! Tessera kernels: quantized number formats and the compute kernels over them (a portable
//! scalar reference, SIMD versions chosen at run time, CUDA behind the `cuda` feature).
//!
//! Entry point: [`matmul::QMatrix`], GGUF block-quantized weights (Q8_0, Q4_0, Q4_1, Q5_0)
//! times f32 activations, the product every linear layer of the engine's models runs on the
//! CPU. [`cuda_compiled`] tells whether the CUDA backend was built in.

// SIMD intrinsics and the disjoint parallel writes of the kernels need `unsafe`; each block
// says why it holds. Nothing outside this crate's kernels uses it.
#![allow(unsafe_code)]

/// Defines `$name`, a function whose body is compiled for the widest vector extension the CPU
/// has (AVX-512, else AVX2 with FMA, else the baseline), chosen at run time ([`x86_width`],
/// which a narrower `TESSERA_KERNELS` also narrows): for loops written so the compiler
/// vectorizes them, which the baseline x86-64 target would compile to 128-bit SSE2 (and calls
/// for rounding and fused multiply-adds). The body sees the same lanes in every version, so
/// the results do not depend on the CPU.
macro_rules! widest {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                match $crate::x86_width() {
                    // SAFETY: the CPU has every feature `avx512` is compiled for.
                    $crate::X86Width::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: the CPU has AVX2 and FMA.
                    $crate::X86Width::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::X86Width::Baseline => {}
                }
            }
            body($($arg),*)
        }
    };
}

/// The vector extension [`widest!`] bodies run with on this x86 CPU.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum X86Width {
    /// AVX-512 F/BW/DQ/VL with AVX2 and FMA.
    Avx512,
    /// AVX2 with FMA.
    Avx2,
    /// The x86-64 baseline.
    Baseline,
}

/// The widest extension this CPU has for [`widest!`], narrowed to what `TESSERA_KERNELS`
/// asks for ([`matmul::Isa::requested`]) so that an AVX2 or scalar run on a wider CPU runs
/// every kernel, not only the matrix products, as a narrower CPU would. Decided once per
/// process: the element-wise kernels call it on every row.
#[cfg(target_arch = "x86_64")]
fn x86_width() -> X86Width {
    static CHOSEN: std::sync::OnceLock<X86Width> = std::sync::OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let avx2 = matmul::Isa::Avx2.supported();
        let avx512 = avx2
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl");
        let widest = if avx512 {
            X86Width::Avx512
        } else if avx2 {
            X86Width::Avx2
        } else {
            X86Width::Baseline
        };
        match matmul::Isa::requested() {
            Some(matmul::Isa::Scalar) => X86Width::Baseline,
            Some(matmul::Isa::Avx2) if widest == X86Width::Avx512 => X86Width::Avx2,
            _ => widest,
        }
    })
}

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
