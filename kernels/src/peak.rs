//! The machine's int8 dot-product peak, measured: a register-only loop of the instruction
//! each kernel is built on (`vpdpbusd` for VNNI, `vpmaddubsw` + `vpmaddwd` for AVX2), so
//! the kernel benchmarks can say what share of it they reach. Entry point: [`spin`].

use crate::matmul::Isa;

/// Runs `iters` rounds of eight independent 32-byte-per-lane dot-product steps on `isa` and
/// returns the integer operations done (a multiply and an add per byte pair), or `None` where
/// `isa` has no such loop here. The result feeds nothing; `std::hint::black_box` keeps it.
pub fn spin(isa: Isa, iters: u64) -> Option<u64> {
    if !isa.supported() {
        return None;
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `supported` checked the features.
        Isa::Avx512Vnni => Some(unsafe { x86::vnni(iters) }),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 => Some(unsafe { x86::avx2(iters) }),
        _ => None,
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn vnni(iters: u64) -> u64 {
        let a = _mm512_set1_epi8(std::hint::black_box(3));
        let b = _mm512_set1_epi8(std::hint::black_box(-2));
        let mut acc = [_mm512_setzero_si512(); 8];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_dpbusd_epi32(*v, a, b);
            }
        }
        std::hint::black_box(acc);
        // 64 byte pairs per instruction, a multiply and an add each.
        iters * 8 * 64 * 2
    }

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn avx2(iters: u64) -> u64 {
        // A different unsigned operand per accumulator and a signed one that changes every
        // round, so no product can be hoisted out of the loop or shared.
        let a: [__m256i; 8] =
            std::array::from_fn(|i| _mm256_set1_epi8(std::hint::black_box(3 + i as i8)));
        let mut b = _mm256_set1_epi8(std::hint::black_box(-2));
        let flip = _mm256_set1_epi8(std::hint::black_box(5));
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_si256(); 8];
        for _ in 0..iters {
            for (v, a) in acc.iter_mut().zip(&a) {
                let p = _mm256_madd_epi16(_mm256_maddubs_epi16(*a, b), ones);
                *v = _mm256_add_epi32(*v, p);
            }
            b = _mm256_xor_si256(b, flip);
        }
        std::hint::black_box(acc);
        iters * 8 * 32 * 2
    }
}
