//! Q8_0 weights times f32 activations: the matrix product of every linear layer, for prefill
//! (many rows) and decode (a few rows). Entry point: [`Q8Matrix`].
//!
//! GGUF's Q8_0 block is 32 signed bytes and one f16 scale. [`Q8Matrix::from_gguf_q8_0`] reads
//! those blocks once at load and keeps them as one byte array in offset binary (`w + 128`, the
//! unsigned operand VNNI wants) plus f32 scales. Activations are quantized per row to the same
//! 32-element blocks (f16-rounded scales, as GGUF's are), with each block's sum times -128
//! kept to take the offset back, so every block product is an exact integer dot product
//! times two scales.
//!
//! Kernels, chosen at run time: AVX-512 VNNI (`vpdpbusd` on 64 bytes, two blocks, at once,
//! each block's integer sum starting from the activation-side correction), AVX2
//! (`vpmaddubsw` with the sign trick), NEON (`sdot`-free `vmull` form), and the portable
//! scalar reference that every SIMD kernel is tested against. All of them tile the output
//! over rows of activations and rows of weights so that each loaded weight block serves
//! several activation rows (prefill) and each activation block several weight rows.

use crate::KernelError;
use rayon::prelude::*;

/// Elements per block.
pub const QK: usize = 32;
/// Bytes per GGUF Q8_0 block (f16 scale + 32 bytes).
pub const GGUF_BLOCK_BYTES: usize = 34;

/// Which implementation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust.
    Scalar,
    /// x86-64 AVX2 + FMA.
    Avx2,
    /// x86-64 AVX-512 F/BW/VL + VNNI.
    Avx512Vnni,
    /// AArch64 NEON.
    Neon,
}

impl Isa {
    /// The best implementation this CPU supports.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512vnni")
            {
                return Isa::Avx512Vnni;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx2;
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("neon") {
                return Isa::Neon;
            }
        }
        Isa::Scalar
    }

    /// Whether this CPU can run `self`.
    pub fn supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }
}

/// A weight matrix of `n` rows by `k` columns in Q8_0 blocks, laid out for the kernels.
#[derive(Debug, Clone)]
pub struct Q8Matrix {
    n: usize,
    k: usize,
    /// `n * k` quantized values plus 128 (`w ^ 0x80`), row-major.
    qs: Vec<u8>,
    /// `n * k / 32` block scales.
    d: Vec<f32>,
}

/// Activations quantized per row into 32-element blocks.
#[derive(Debug, Clone, Default)]
pub struct Q8Rows {
    m: usize,
    qs: Vec<i8>,
    d: Vec<f32>,
    /// Per block: -128 * (sum of its values), which takes back the weights' +128 offset.
    shift: Vec<i32>,
}

fn f16_to_f32(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

impl Q8Matrix {
    /// Reads `n * k / 32` GGUF Q8_0 blocks (34 bytes each: little-endian f16 scale, 32 bytes).
    pub fn from_gguf_q8_0(bytes: &[u8], n: usize, k: usize) -> Result<Self, KernelError> {
        if k == 0 || !k.is_multiple_of(QK) {
            return Err(KernelError::Shape(format!(
                "Q8_0 rows must be a positive multiple of {QK} long, not {k}"
            )));
        }
        let nb = n
            .checked_mul(k / QK)
            .ok_or_else(|| KernelError::Shape(format!("{n} x {k} overflows")))?;
        if bytes.len() != nb * GGUF_BLOCK_BYTES {
            return Err(KernelError::Shape(format!(
                "{n} x {k} Q8_0 needs {} bytes, got {}",
                nb * GGUF_BLOCK_BYTES,
                bytes.len()
            )));
        }
        let mut qs = Vec::with_capacity(n * k);
        let mut d = Vec::with_capacity(nb);
        for block in bytes.chunks_exact(GGUF_BLOCK_BYTES) {
            let scale = f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
            // A non-finite scale would poison every output it touches; refuse the file.
            if !scale.is_finite() {
                return Err(KernelError::Value(
                    "a Q8_0 block has a non-finite scale".into(),
                ));
            }
            qs.extend(block[2..].iter().map(|&b| b ^ 0x80));
            d.push(scale);
        }
        Ok(Self { n, k, qs, d })
    }

    /// Quantizes an f32 matrix (`n` rows of `k`) the way GGUF's Q8_0 does (used by tests and
    /// the quantization tool).
    pub fn quantize(w: &[f32], n: usize, k: usize) -> Result<Self, KernelError> {
        if w.len() != n * k {
            return Err(KernelError::Shape(format!(
                "{n} x {k} needs {} values, got {}",
                n * k,
                w.len()
            )));
        }
        let mut bytes = Vec::with_capacity(n * k / QK * GGUF_BLOCK_BYTES);
        for chunk in w.chunks(QK) {
            let (d, q) = quantize_block(chunk);
            bytes.extend_from_slice(&half::f16::from_f32(d).to_bits().to_le_bytes());
            bytes.extend(q.iter().map(|&v| v as u8));
        }
        Self::from_gguf_q8_0(&bytes, n, k)
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.n
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.k
    }

    /// The matrix back in f32.
    pub fn dequantize(&self) -> Vec<f32> {
        self.qs
            .iter()
            .enumerate()
            .map(|(i, &q)| f32::from((q ^ 0x80) as i8) * self.d[i / QK])
            .collect()
    }

    /// `y = x * self^T`: `x` is `m` rows of `k`, `y` is `m` rows of `n`; the best kernel for
    /// this CPU, on the current rayon pool.
    pub fn matmul(&self, x: &[f32], m: usize, y: &mut [f32]) -> Result<(), KernelError> {
        self.matmul_with(Isa::detect(), x, m, y)
    }

    /// [`matmul`](Self::matmul) with a chosen implementation (tests compare them).
    pub fn matmul_with(
        &self,
        isa: Isa,
        x: &[f32],
        m: usize,
        y: &mut [f32],
    ) -> Result<(), KernelError> {
        if x.len() != m * self.k || y.len() != m * self.n {
            return Err(KernelError::Shape(format!(
                "x is {} values and y {}, for {m} rows against {} x {}",
                x.len(),
                y.len(),
                self.n,
                self.k
            )));
        }
        if !isa.supported() {
            return Err(KernelError::Unsupported(format!("{isa:?}")));
        }
        let xq = Q8Rows::quantize(x, m, self.k);
        self.matmul_q(isa, &xq, y);
        Ok(())
    }

    fn matmul_q(&self, isa: Isa, xq: &Q8Rows, y: &mut [f32]) {
        let (m, n) = (xq.m, self.n);
        if m == 0 || n == 0 {
            return;
        }
        // Work is split over tiles of weight rows; each task covers every activation row for
        // its weight rows, so each weight block is read from memory once per call.
        let tile = NR * 8;
        let out = SharedOut(y.as_mut_ptr());
        let tiles = n.div_ceil(tile);
        (0..tiles).into_par_iter().for_each(|t| {
            let n0 = t * tile;
            let n1 = (n0 + tile).min(n);
            let out = &out;
            let put = |row: usize, col: usize, v: f32| {
                debug_assert!(row < m && (n0..n1).contains(&col));
                // SAFETY: tasks write disjoint column ranges [n0, n1) of the m x n output,
                // which stays mutably borrowed (and so alive and unaliased) for the whole
                // parallel loop; row < m and col < n keep the write inside it.
                unsafe { *out.0.add(row * n + col) = v };
            };
            self.block(isa, xq, n0, n1, &put);
        });
    }

    fn block(&self, isa: Isa, xq: &Q8Rows, n0: usize, n1: usize, put: &dyn Fn(usize, usize, f32)) {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => {
                // SAFETY: `matmul_with` checked that the CPU has these features.
                unsafe { x86::vnni_block(self, xq, n0, n1, put) }
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                // SAFETY: as above.
                unsafe { x86::avx2_block(self, xq, n0, n1, put) }
            }
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => {
                // SAFETY: as above.
                unsafe { neon::neon_block(self, xq, n0, n1, put) }
            }
            _ => scalar_block(self, xq, n0, n1, put),
        }
    }
}

/// Output tile width in weight rows.
const NR: usize = 4;
/// Output tile height in activation rows.
const MR: usize = 4;

struct SharedOut(*mut f32);
// SAFETY: used only for disjoint writes from the parallel tasks of `matmul_q`.
unsafe impl Sync for SharedOut {}
// SAFETY: as above.
unsafe impl Send for SharedOut {}

/// One block of 32 values to (scale, values), as GGUF's reference quantizer does.
pub fn quantize_block(x: &[f32]) -> (f32, [i8; QK]) {
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    let mut q = [0i8; QK];
    for (o, v) in q.iter_mut().zip(x) {
        *o = (v * id).round().clamp(-127.0, 127.0) as i8;
    }
    (d, q)
}

impl Q8Rows {
    /// Quantizes `m` rows of `k` (a multiple of 32) values.
    pub fn quantize(x: &[f32], m: usize, k: usize) -> Self {
        let mut qs = Vec::with_capacity(m * k);
        let mut d = Vec::with_capacity(m * k / QK);
        for chunk in x.chunks(QK) {
            let (s, q) = if chunk.iter().all(|v| v.is_finite()) {
                let (s, q) = quantize_block(chunk);
                // The scale as GGUF stores it (f16), as llama.cpp's activations do: the same
                // rounding keeps greedy streams equal to its. Beyond f16's range (|x| above
                // about 8e6) the f32 scale stays, where llama.cpp would overflow.
                let h = half::f16::from_f32(s).to_f32();
                (if h.is_finite() { h } else { s }, q)
            } else {
                // Non-finite activations propagate as NaN, as an f32 product would.
                (f32::NAN, [0i8; QK])
            };
            d.push(s);
            qs.extend_from_slice(&q);
        }
        debug_assert_eq!(qs.len(), m * k);
        let shift = qs
            .chunks(QK)
            .map(|b| -128 * b.iter().map(|&v| i32::from(v)).sum::<i32>())
            .collect();
        Self { m, qs, d, shift }
    }
}

/// The portable reference: exact integer block dot products, f32 accumulation.
fn scalar_block(w: &Q8Matrix, x: &Q8Rows, n0: usize, n1: usize, put: &dyn Fn(usize, usize, f32)) {
    let nb = w.k / QK;
    for i in 0..x.m {
        for j in n0..n1 {
            let mut acc = 0f32;
            for b in 0..nb {
                let xs = &x.qs[i * w.k + b * QK..][..QK];
                let ws = &w.qs[j * w.k + b * QK..][..QK];
                let dot: i32 = xs
                    .iter()
                    .zip(ws)
                    .map(|(&a, &c)| i32::from(a) * i32::from((c ^ 0x80) as i8))
                    .sum();
                acc += x.d[i * nb + b] * w.d[j * nb + b] * dot as f32;
            }
            put(i, j, acc);
        }
    }
}

// Tile loops index several arrays by the same row and column; ranges read clearest.
#[allow(clippy::needless_range_loop)]
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Q8Matrix, Q8Rows, MR, NR, QK};
    use std::arch::x86_64::*;

    /// AVX-512 VNNI. `vpdpbusd` multiplies unsigned by signed bytes: the weights are stored
    /// +128 (unsigned) and each block's integer sum starts from -128 * sum(x) (the activation
    /// row's `shift`), which takes the offset back exactly, before any rounding. Two blocks
    /// (64 bytes) per instruction.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,fma")]
    pub(super) unsafe fn vnni_block(
        w: &Q8Matrix,
        x: &Q8Rows,
        n0: usize,
        n1: usize,
        put: &dyn Fn(usize, usize, f32),
    ) {
        let nb = w.k / QK;
        let mut i0 = 0;
        while i0 < x.m {
            let mr = (x.m - i0).min(MR);
            let mut j0 = n0;
            while j0 < n1 {
                let nr = (n1 - j0).min(NR);
                match (mr, nr) {
                    (4, 4) => tile_vnni::<4, 4>(w, x, i0, j0, nb, put),
                    (m, 4) => {
                        for r in 0..m {
                            tile_vnni::<1, 4>(w, x, i0 + r, j0, nb, put);
                        }
                    }
                    (m, n) => {
                        for r in 0..m {
                            for c in 0..n {
                                tile_vnni::<1, 1>(w, x, i0 + r, j0 + c, nb, put);
                            }
                        }
                    }
                }
                j0 += nr;
            }
            i0 += mr;
        }
    }

    /// Two consecutive block scales as lanes 0-7 and 8-15: one 8-byte load and a permute.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,fma")]
    unsafe fn pair_scales(p: *const f32, idx: __m512i) -> __m512 {
        let two = _mm_castpd_ps(_mm_load_sd(p as *const f64));
        _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(two))
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,fma")]
    unsafe fn tile_vnni<const M: usize, const N: usize>(
        w: &Q8Matrix,
        x: &Q8Rows,
        i0: usize,
        j0: usize,
        nb: usize,
        put: &dyn Fn(usize, usize, f32),
    ) {
        let k = w.k;
        let idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
        let mut acc = [[_mm512_setzero_ps(); N]; M];
        // Plain loops and arrays, not closures: a closure would not inherit the target
        // features and its intrinsics would not inline.
        let mut xp = [std::ptr::null::<i8>(); M];
        let mut xd = [std::ptr::null::<f32>(); M];
        let mut xs = [std::ptr::null::<i32>(); M];
        for r in 0..M {
            xp[r] = x.qs.as_ptr().add((i0 + r) * k);
            xd[r] = x.d.as_ptr().add((i0 + r) * nb);
            xs[r] = x.shift.as_ptr().add((i0 + r) * nb);
        }
        let mut wp = [std::ptr::null::<u8>(); N];
        let mut wd = [std::ptr::null::<f32>(); N];
        for c in 0..N {
            wp[c] = w.qs.as_ptr().add((j0 + c) * k);
            wd[c] = w.d.as_ptr().add((j0 + c) * nb);
        }
        let mut b = 0;
        while b + 2 <= nb {
            let off = b * QK;
            let mut wv = [_mm512_setzero_si512(); N];
            let mut ws = [_mm512_setzero_ps(); N];
            for c in 0..N {
                wv[c] = _mm512_loadu_si512(wp[c].add(off) as *const _);
                ws[c] = pair_scales(wd[c].add(b), idx);
            }
            for r in 0..M {
                let xv = _mm512_loadu_si512(xp[r].add(off) as *const _);
                let sx = pair_scales(xd[r].add(b), idx);
                // The offset correction in lane 0 of each block's eight lanes.
                let start = _mm512_mask_set1_epi32(
                    _mm512_maskz_set1_epi32(0x0001, *xs[r].add(b)),
                    0x0100,
                    *xs[r].add(b + 1),
                );
                for c in 0..N {
                    let dot = _mm512_dpbusd_epi32(start, wv[c], xv);
                    // dot * (dx * dw), the order GGUF's reference kernels round in.
                    let s = _mm512_mul_ps(sx, ws[c]);
                    acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), s, acc[r][c]);
                }
            }
            b += 2;
        }
        let mut out = [[0f32; N]; M];
        for r in 0..M {
            for c in 0..N {
                out[r][c] = _mm512_reduce_add_ps(acc[r][c]);
            }
        }
        // An odd last block, 256 bits wide.
        if b < nb {
            let off = b * QK;
            for r in 0..M {
                let xv = _mm256_loadu_si256(xp[r].add(off) as *const _);
                for c in 0..N {
                    let wv = _mm256_loadu_si256(wp[c].add(off) as *const _);
                    let dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), wv, xv);
                    let s = hsum_epi32_256(dot) + *xs[r].add(b);
                    out[r][c] += *xd[r].add(b) * *wd[c].add(b) * s as f32;
                }
            }
        }
        for r in 0..M {
            for c in 0..N {
                put(i0 + r, j0 + c, out[r][c]);
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn hsum_epi32_256(v: __m256i) -> i32 {
        let lo = _mm256_castsi256_si128(v);
        let hi = _mm256_extracti128_si256::<1>(v);
        let s = _mm_add_epi32(lo, hi);
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        _mm_cvtsi128_si32(s)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum_ps_256(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps::<1>(v);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
        _mm_cvtss_f32(s)
    }

    /// AVX2: `vpmaddubsw` of |w| and x carrying w's sign (the products stay within i16).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2_block(
        w: &Q8Matrix,
        x: &Q8Rows,
        n0: usize,
        n1: usize,
        put: &dyn Fn(usize, usize, f32),
    ) {
        let nb = w.k / QK;
        let mut i0 = 0;
        while i0 < x.m {
            let mr = (x.m - i0).min(2);
            let mut j0 = n0;
            while j0 < n1 {
                let nr = (n1 - j0).min(NR);
                match (mr, nr) {
                    (2, 4) => tile_avx2::<2, 4>(w, x, i0, j0, nb, put),
                    (1, 4) => tile_avx2::<1, 4>(w, x, i0, j0, nb, put),
                    (m, n) => {
                        for r in 0..m {
                            for c in 0..n {
                                tile_avx2::<1, 1>(w, x, i0 + r, j0 + c, nb, put);
                            }
                        }
                    }
                }
                j0 += nr;
            }
            i0 += mr;
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile_avx2<const M: usize, const N: usize>(
        w: &Q8Matrix,
        x: &Q8Rows,
        i0: usize,
        j0: usize,
        nb: usize,
        put: &dyn Fn(usize, usize, f32),
    ) {
        let k = w.k;
        let ones = _mm256_set1_epi16(1);
        let offset = _mm256_set1_epi8(-128);
        let mut acc = [[_mm256_setzero_ps(); N]; M];
        let xp: [*const i8; M] = std::array::from_fn(|r| x.qs.as_ptr().add((i0 + r) * k));
        let wp: [*const u8; N] = std::array::from_fn(|c| w.qs.as_ptr().add((j0 + c) * k));
        for b in 0..nb {
            let off = b * QK;
            let mut wv = [_mm256_setzero_si256(); N];
            let mut wa = [_mm256_setzero_si256(); N];
            for c in 0..N {
                // Back to signed: w = (w + 128) ^ 0x80.
                wv[c] = _mm256_xor_si256(_mm256_loadu_si256(wp[c].add(off) as *const _), offset);
                wa[c] = _mm256_sign_epi8(wv[c], wv[c]);
            }
            for r in 0..M {
                let xv = _mm256_loadu_si256(xp[r].add(off) as *const _);
                let xd = *x.d.get_unchecked((i0 + r) * nb + b);
                for c in 0..N {
                    let sx = _mm256_sign_epi8(xv, wv[c]);
                    let p16 = _mm256_maddubs_epi16(wa[c], sx);
                    let p32 = _mm256_madd_epi16(p16, ones);
                    let s = _mm256_set1_ps(xd * *w.d.get_unchecked((j0 + c) * nb + b));
                    acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p32), s, acc[r][c]);
                }
            }
        }
        for r in 0..M {
            for c in 0..N {
                put(i0 + r, j0 + c, hsum_ps_256(acc[r][c]));
            }
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use super::{Q8Matrix, Q8Rows, QK};
    use std::arch::aarch64::*;

    /// NEON: widening multiplies (`smull`) and pairwise adds, one weight row against each
    /// activation row of the tile.
    #[target_feature(enable = "neon")]
    pub(super) unsafe fn neon_block(
        w: &Q8Matrix,
        x: &Q8Rows,
        n0: usize,
        n1: usize,
        put: &dyn Fn(usize, usize, f32),
    ) {
        let k = w.k;
        let nb = k / QK;
        for i in 0..x.m {
            for j in n0..n1 {
                let mut acc = vdupq_n_f32(0.0);
                for b in 0..nb {
                    let xp = x.qs.as_ptr().add(i * k + b * QK);
                    let wp = w.qs.as_ptr().add(j * k + b * QK);
                    let mut s = vdupq_n_s32(0);
                    for h in 0..2 {
                        let xv = vld1q_s8(xp.add(16 * h));
                        let wv = vreinterpretq_s8_u8(veorq_u8(
                            vld1q_u8(wp.add(16 * h)),
                            vdupq_n_u8(0x80),
                        ));
                        let lo = vmull_s8(vget_low_s8(xv), vget_low_s8(wv));
                        let hi = vmull_s8(vget_high_s8(xv), vget_high_s8(wv));
                        s = vpadalq_s16(s, lo);
                        s = vpadalq_s16(s, hi);
                    }
                    let scale = x.d[i * nb + b] * w.d[j * nb + b];
                    acc = vfmaq_n_f32(acc, vcvtq_f32_s32(s), scale);
                }
                put(i, j, vaddvq_f32(acc));
            }
        }
    }
}
