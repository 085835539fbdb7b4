//! Quantized weights times f32 activations: the matrix product of every linear layer, for
//! prefill (many rows) and decode (a few rows). Entry point: [`QMatrix`].
//!
//! Weights stay in GGUF's block formats, read in place: Q8_0 (32 signed bytes and an f16
//! scale), Q4_0 and Q4_1 (32 nibbles, a scale, for Q4_1 also a minimum) and Q5_0 (nibbles plus
//! a 32-bit word of fifth bits). [`QMatrix::from_gguf`] reads the blocks once at load: scales
//! (and minimums) become f32 arrays, Q8_0 values are kept in offset binary (`w + 128`, the
//! unsigned operand VNNI wants), nibbles and fifth bits are kept packed as the file has them,
//! so decode reads 4.5-5.5 bits per weight from memory, not 8.
//!
//! Every format is an unsigned integer `q` per weight with either a fixed offset
//! (`w = d (q - o)`: o = 128, 8, 16 for Q8_0, Q4_0, Q5_0) or a minimum (`w = d q + m`, Q4_1).
//! Activations are quantized per row to 32-element blocks (f16-rounded scales, as GGUF's
//! are) with each block's integer sum kept, so every block product is an exact integer dot
//! product `sum(q x)` corrected by `-o sum(x)` before any rounding (or, for Q4_1, plus
//! `m d_x sum(x)`), times two scales.
//!
//! Kernels, chosen at run time: AVX-512 VNNI (`vpdpbusd` on two blocks at once; nibbles
//! widened in registers), AVX2 (`vpmaddubsw` with the sign trick), NEON (`smull` and pairwise
//! adds), and the portable scalar reference that every SIMD kernel is tested against. All of
//! them tile the output over rows of activations and rows of weights so that each unpacked
//! weight block serves several activation rows (prefill) and each activation block several
//! weight rows.
//!
//! On a CPU with AVX-512 VNNI, matrices whose rows fill groups of 16 are laid out at load with
//! their rows interleaved (`QMatrix::interleave`): one 64-byte load holds four values of 16
//! rows, one `vpdpbusd` against four broadcast activation bytes adds into 16 integer lanes,
//! one per output, so a block's sum stays an exact integer in its lane and meets the scales
//! once, with no sum across lanes (the row-major VNNI kernel spends three float operations and
//! a final horizontal sum for each instruction's worth of products). Other kernels read such a
//! matrix through a row-major copy of their tile (tests, mostly).

use crate::KernelError;
use rayon::prelude::*;

/// Elements per block.
pub const QK: usize = 32;
/// Elements per k-quant super-block.
pub const QK_K: usize = 256;
/// Bytes per GGUF Q4_K super-block.
pub const Q4_K_BYTES: usize = 144;
/// Bytes per GGUF Q6_K super-block.
pub const Q6_K_BYTES: usize = 210;

/// Scale and minimum of sub-block `j` (0..8) from a Q4_K super-block's twelve scale bytes:
/// 6 bits each, the first four pairs in the low bits of bytes 0-7, the last four split over
/// bytes 8-11 (low 4 bits) and the top 2 bits of bytes 0-7.
pub fn q4_k_scale_min(scales: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (scales[j] & 63, scales[j + 4] & 63)
    } else {
        (
            (scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4),
            (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4),
        )
    }
}

/// A weight block format the kernels read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// 32 signed bytes, f16 scale.
    Q8_0,
    /// 32 nibbles, f16 scale, `w = d (q - 8)`.
    Q4_0,
    /// 32 nibbles, f16 scale and minimum, `w = d q + m`.
    Q4_1,
    /// 32 nibbles and 32 fifth bits, f16 scale, `w = d (q - 16)`.
    Q5_0,
    /// 6-bit values with one scale per 16, `w = d sc (q - 32)`; GGUF stores them as 256-value
    /// super-blocks (Q6_K), which the kernels unpack at load to a byte per value.
    Q6K,
    /// Q4_K super-blocks, repacked at load into 32-value sub-blocks in Q4_1's layout with
    /// exact f32 scales and minimums (`d * sc`, `-dmin * m`).
    Q4K,
}

// The formats as const-generic parameters of the kernels (one instance per format, so the
// format's branches fold away).
const F_Q8_0: u8 = 0;
const F_Q4_0: u8 = 1;
const F_Q4_1: u8 = 2;
const F_Q5_0: u8 = 3;
const F_Q6_K: u8 = 4;
const F_Q4_K: u8 = 5;

/// Formats whose weights are `d q + m` (a minimum, no offset).
const fn has_min(f: u8) -> bool {
    f == F_Q4_1 || f == F_Q4_K
}

/// Formats whose scales (and minimums) are kept as the file's f16 (2 bytes read per block in
/// decode, not 4); the repacked k-quants keep exact f32 products.
const fn half_scales(f: u8) -> bool {
    matches!(f, F_Q8_0 | F_Q4_0 | F_Q4_1 | F_Q5_0)
}

/// The offset subtracted from a format's unsigned values (0: the format has a minimum).
const fn offset_of(f: u8) -> i32 {
    match f {
        F_Q8_0 => 128,
        F_Q4_0 => 8,
        F_Q5_0 => 16,
        F_Q6_K => 32,
        _ => 0,
    }
}

impl Format {
    /// The 32-value block formats (those [`QMatrix::quantize`] writes).
    pub const ALL: [Format; 4] = [Format::Q8_0, Format::Q4_0, Format::Q4_1, Format::Q5_0];

    /// Bytes of one GGUF block: 32 weights, or 256 for Q6_K.
    pub const fn gguf_block_bytes(self) -> usize {
        match self {
            Format::Q8_0 => 34,
            Format::Q4_0 => 18,
            Format::Q4_1 => 20,
            Format::Q5_0 => 22,
            Format::Q6K => Q6_K_BYTES,
            Format::Q4K => Q4_K_BYTES,
        }
    }

    /// Bytes of packed values per block as the kernels keep them.
    const fn packed_bytes(self) -> usize {
        match self {
            Format::Q8_0 | Format::Q6K => 32,
            _ => 16,
        }
    }

    const fn id(self) -> u8 {
        match self {
            Format::Q8_0 => F_Q8_0,
            Format::Q4_0 => F_Q4_0,
            Format::Q4_1 => F_Q4_1,
            Format::Q5_0 => F_Q5_0,
            Format::Q6K => F_Q6_K,
            Format::Q4K => F_Q4_K,
        }
    }
}

/// The environment variable that chooses a narrower implementation than the CPU's widest
/// (see [`Isa::detect`]).
pub const KERNELS_ENV: &str = "TESSERA_KERNELS";

/// Which implementation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust.
    Scalar,
    /// x86-64 AVX2 + FMA.
    Avx2,
    /// x86-64 AVX-512 F/BW/DQ/VL + VNNI (and F16C).
    Avx512Vnni,
    /// AArch64 NEON.
    Neon,
}
impl Isa {
    /// The implementation the kernels run on this CPU: the widest it supports, or the one
    /// the `TESSERA_KERNELS` environment variable names ([`Isa::from_name`]) where this CPU
    /// supports it, so that a narrower path (AVX2 on an AVX-512 machine) can be measured and
    /// checked. Decided once per process: the matrices' layout at load time depends on it.
    pub fn detect() -> Self {
        static CHOSEN: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *CHOSEN.get_or_init(|| Self::requested().unwrap_or_else(Self::widest_supported))
    }

    /// The implementation `TESSERA_KERNELS` names, where it is one this CPU supports; read
    /// once per process.
    pub fn requested() -> Option<Self> {
        static REQUESTED: std::sync::OnceLock<Option<Isa>> = std::sync::OnceLock::new();
        *REQUESTED.get_or_init(|| {
            std::env::var(KERNELS_ENV)
                .ok()
                .and_then(|v| Self::from_name(&v))
                .filter(|isa| isa.supported())
        })
    }

    /// The implementation a name stands for, in any case: `scalar`, `avx2`, `avx512vnni` or
    /// `neon`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "scalar" => Some(Isa::Scalar),
            "avx2" => Some(Isa::Avx2),
            "avx512vnni" => Some(Isa::Avx512Vnni),
            "neon" => Some(Isa::Neon),
            _ => None,
        }
    }

    /// The widest implementation this CPU supports.
    fn widest_supported() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512vnni")
                && std::arch::is_x86_feature_detected!("f16c")
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
                    && std::arch::is_x86_feature_detected!("avx512dq")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
                    && std::arch::is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }
}

/// A weight matrix of `n` rows by `k` columns in one of the block [`Format`]s, laid out for the
/// kernels.
#[derive(Debug, Clone)]
pub struct QMatrix {
    format: Format,
    n: usize,
    k: usize,
    /// Per block, [`Format::packed_bytes`] bytes, row-major: Q8_0 values plus 128
    /// (`w ^ 0x80`); for the 4- and 5-bit formats GGUF's nibbles as they are (element `e < 16`
    /// in the low nibble of byte `e`, element `e + 16` in its high nibble).
    qs: Vec<u8>,
    /// Q5_0: per block, the fifth bit of element `e` at bit `e`.
    qh: Vec<u32>,
    /// Q4_K: per block scale.
    d: Vec<f32>,
    /// Q4_K: per block minimum.
    m: Vec<f32>,
    /// Q8_0, Q4_0, Q4_1, Q5_0: per block scale, the file's f16 bits.
    dh: Vec<u16>,
    /// Q4_1: per block minimum, f16 bits.
    mh: Vec<u16>,
    /// Q6_K: two scales per block, one per 16 values (`d * sc`).
    d16: Vec<f32>,
    /// Values unpacked to a byte each (32 per block, element order) whatever the format: the
    /// per-task copies prefill makes (see [`QMatrix::unpacked_rows`]).
    unpacked: bool,
    /// Rows interleaved in groups of [`IL`] for the AVX-512 VNNI kernel (see
    /// [`QMatrix::interleave`]): values, scales and minimums of the group's block `b` lie
    /// together, four bytes of each row in turn, and Q5_0's fifth bits are kept in `qh64`.
    il: bool,
    /// Q5_0, interleaved: per group and block, eight 64-bit masks (see [`QMatrix::interleave`]).
    qh64: Vec<u64>,
}

/// Activations quantized per row into 32-element blocks.
#[derive(Debug, Clone, Default)]
pub struct Q8Rows {
    m: usize,
    qs: Vec<i8>,
    d: Vec<f32>,
    /// Per block: the sum of its quantized values (takes a weight format's offset back).
    sum: Vec<i32>,
    /// Per block: scale times sum (meets a weight block's minimum).
    dsum: Vec<f32>,
    /// Per 16 values: the sum of their quantized values (Q6_K's offset, per scale).
    sum16: Vec<i32>,
}

fn f16_to_f32(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

/// The number of 256-value super-blocks of an `n x k` matrix held in `len` bytes.
fn super_blocks(
    name: &str,
    len: usize,
    block_bytes: usize,
    n: usize,
    k: usize,
) -> Result<usize, KernelError> {
    if k == 0 || !k.is_multiple_of(QK_K) {
        return Err(KernelError::Shape(format!(
            "{name} rows must be a positive multiple of {QK_K} long, not {k}"
        )));
    }
    let nsb = n
        .checked_mul(k / QK_K)
        .ok_or_else(|| KernelError::Shape(format!("{n} x {k} overflows")))?;
    if Some(len) != nsb.checked_mul(block_bytes) {
        return Err(KernelError::Shape(format!(
            "{n} x {k} {name} needs {} bytes, got {len}",
            nsb.saturating_mul(block_bytes)
        )));
    }
    Ok(nsb)
}

fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([bytes[at], bytes[at + 1]]))
}

impl QMatrix {
    /// Reads `n * k / 32` GGUF blocks of `format` (little-endian, as the file stores them),
    /// laid out for the kernels this CPU runs.
    pub fn from_gguf(
        format: Format,
        bytes: &[u8],
        n: usize,
        k: usize,
    ) -> Result<Self, KernelError> {
        Ok(Self::from_gguf_rows(format, bytes, n, k)?.laid_out())
    }

    /// [`QMatrix::from_gguf`], rows kept in order.
    fn from_gguf_rows(
        format: Format,
        bytes: &[u8],
        n: usize,
        k: usize,
    ) -> Result<Self, KernelError> {
        match format {
            Format::Q6K => return Self::from_gguf_q6_k(bytes, n, k),
            Format::Q4K => return Self::from_gguf_q4_k(bytes, n, k),
            _ => {}
        }
        if k == 0 || !k.is_multiple_of(QK) {
            return Err(KernelError::Shape(format!(
                "{format:?} rows must be a positive multiple of {QK} long, not {k}"
            )));
        }
        let nb = n
            .checked_mul(k / QK)
            .ok_or_else(|| KernelError::Shape(format!("{n} x {k} overflows")))?;
        let block = format.gguf_block_bytes();
        if Some(bytes.len()) != nb.checked_mul(block) {
            return Err(KernelError::Shape(format!(
                "{n} x {k} {format:?} needs {} bytes, got {}",
                nb.saturating_mul(block),
                bytes.len()
            )));
        }
        let mut qs = Vec::with_capacity(nb * format.packed_bytes());
        let mut dh = Vec::with_capacity(nb);
        let mut mh = Vec::new();
        let mut qh = Vec::new();
        for b in bytes.chunks_exact(block) {
            let scale = f16_at(b, 0);
            // A non-finite scale would poison every output it touches; refuse the file.
            if !scale.is_finite() {
                return Err(KernelError::Value(format!(
                    "a {format:?} block has a non-finite scale"
                )));
            }
            dh.push(u16::from_le_bytes([b[0], b[1]]));
            match format {
                Format::Q8_0 => qs.extend(b[2..].iter().map(|&v| v ^ 0x80)),
                Format::Q4_0 => qs.extend_from_slice(&b[2..]),
                Format::Q4_1 => {
                    let min = f16_at(b, 2);
                    if !min.is_finite() {
                        return Err(KernelError::Value(
                            "a Q4_1 block has a non-finite minimum".into(),
                        ));
                    }
                    mh.push(u16::from_le_bytes([b[2], b[3]]));
                    qs.extend_from_slice(&b[4..]);
                }
                Format::Q5_0 => {
                    qh.push(u32::from_le_bytes([b[2], b[3], b[4], b[5]]));
                    qs.extend_from_slice(&b[6..]);
                }
                Format::Q6K | Format::Q4K => unreachable!("read above"),
            }
        }
        Ok(Self {
            format,
            n,
            k,
            qs,
            qh,
            d: Vec::new(),
            m: Vec::new(),
            dh,
            mh,
            d16: Vec::new(),
            unpacked: false,
            il: false,
            qh64: Vec::new(),
        })
    }

    /// Reads `n * k / 256` GGUF Q6_K super-blocks (210 bytes: 128 bytes of low nibbles, 64 of
    /// high bit pairs, sixteen signed 8-bit scales, an f16 scale) and unpacks the 6-bit
    /// values to a byte each; the scale of every 16 values becomes `d * sc` (exact in f32).
    fn from_gguf_q6_k(bytes: &[u8], n: usize, k: usize) -> Result<Self, KernelError> {
        let nsb = super_blocks("Q6_K", bytes.len(), Q6_K_BYTES, n, k)?;
        let mut qs = Vec::with_capacity(nsb * QK_K);
        let mut d16 = Vec::with_capacity(nsb * QK_K / 16);
        for sb in bytes.chunks_exact(Q6_K_BYTES) {
            let d = f16_at(sb, 208);
            if !d.is_finite() {
                return Err(KernelError::Value(
                    "a Q6_K block has a non-finite scale".into(),
                ));
            }
            let (ql, qh, sc) = (&sb[..128], &sb[128..192], &sb[192..208]);
            d16.extend(sc.iter().map(|&s| d * f32::from(s as i8)));
            // Each half of 128 values: quarter q of it takes the low (q = 0, 1) or high
            // (q = 2, 3) nibbles of ql[64h..][32 (q % 2)..], and bit pair q of qh[32h..].
            for e in 0..QK_K {
                let (h, quarter, l) = (e / 128, (e % 128) / 32, e % 32);
                let low = (ql[64 * h + 32 * (quarter % 2) + l] >> (4 * (quarter / 2))) & 0x0F;
                let high = (qh[32 * h + l] >> (2 * quarter)) & 3;
                qs.push(low | (high << 4));
            }
        }
        Ok(Self {
            format: Format::Q6K,
            n,
            k,
            qs,
            qh: Vec::new(),
            d: Vec::new(),
            m: Vec::new(),
            dh: Vec::new(),
            mh: Vec::new(),
            d16,
            unpacked: false,
            il: false,
            qh64: Vec::new(),
        })
    }

    /// Reads `n * k / 256` GGUF Q4_K super-blocks (144 bytes: f16 scale and minimum scale,
    /// twelve bytes of 6-bit sub-block scales and minimums, 128 bytes of nibbles) and repacks
    /// them, exactly, as Q4_1-style blocks: each 32-value sub-block's `d * sc` and `-dmin * m`
    /// are products of an f16 and a 6-bit integer, exact in f32, and its nibbles are
    /// reordered to Q4_1's layout once, at load.
    fn from_gguf_q4_k(bytes: &[u8], n: usize, k: usize) -> Result<Self, KernelError> {
        let nsb = super_blocks("Q4_K", bytes.len(), Q4_K_BYTES, n, k)?;
        let nb = nsb * (QK_K / QK);
        let (mut qs, mut d, mut m) = (
            Vec::with_capacity(nb * 16),
            Vec::with_capacity(nb),
            Vec::with_capacity(nb),
        );
        for sb in bytes.chunks_exact(Q4_K_BYTES) {
            let (dd, dmin) = (f16_at(sb, 0), f16_at(sb, 2));
            if !dd.is_finite() || !dmin.is_finite() {
                return Err(KernelError::Value(
                    "a Q4_K block has a non-finite scale".into(),
                ));
            }
            let scales = &sb[4..16];
            let nibbles = &sb[16..];
            for s in 0..QK_K / QK {
                let (sc, mn) = q4_k_scale_min(scales, s);
                d.push(dd * f32::from(sc));
                m.push(-(dmin * f32::from(mn)));
                // Sub-block s: the low (even s) or high (odd s) nibbles of bytes 32*(s/2)..
                let src = &nibbles[32 * (s / 2)..][..32];
                let shift = 4 * (s % 2);
                let u = |e: usize| (src[e] >> shift) & 0x0F;
                qs.extend((0..16).map(|t| u(t) | (u(t + 16) << 4)));
            }
        }
        Ok(Self {
            format: Format::Q4K,
            n,
            k,
            qs,
            qh: Vec::new(),
            d,
            m,
            dh: Vec::new(),
            mh: Vec::new(),
            d16: Vec::new(),
            unpacked: false,
            il: false,
            qh64: Vec::new(),
        })
    }

    /// Quantizes an f32 matrix (`n` rows of `k`) the way GGUF's reference quantizer does for
    /// `format` (used by tests and benchmarks).
    pub fn quantize(format: Format, w: &[f32], n: usize, k: usize) -> Result<Self, KernelError> {
        if w.len() != n * k || !k.is_multiple_of(QK) {
            return Err(KernelError::Shape(format!(
                "{n} x {k} needs {} values in rows of a multiple of {QK}, got {}",
                n * k,
                w.len()
            )));
        }
        let mut bytes = Vec::with_capacity(n * k / QK * format.gguf_block_bytes());
        for chunk in w.chunks(QK) {
            quantize_gguf_block(format, chunk, &mut bytes);
        }
        Self::from_gguf(format, &bytes, n, k)
    }

    /// Whether the rows are interleaved for the AVX-512 VNNI kernel.
    #[cfg(test)]
    pub(crate) fn is_interleaved(&self) -> bool {
        self.il
    }

    /// The block format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.n
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.k
    }

    /// Bytes the kernels read per product (values, bits, scales, minimums).
    pub fn stored_bytes(&self) -> usize {
        self.qs.len()
            + 4 * (self.qh.len() + self.d.len() + self.m.len() + self.d16.len())
            + 8 * self.qh64.len()
            + 2 * (self.dh.len() + self.mh.len())
    }

    /// Where block `blk`'s (row-major numbering: `row * k / 32 + b`) scale and minimum are
    /// kept: the same index, or its place in an interleaved group.
    fn slot(&self, blk: usize) -> usize {
        if self.il {
            slot_il(self.k / QK, blk)
        } else {
            blk
        }
    }

    /// The unsigned value of element `e` of block `blk`.
    fn unsigned(&self, blk: usize, e: usize) -> u8 {
        if self.unpacked {
            return self.qs[blk * QK + e];
        }
        let bytes = matches!(self.format, Format::Q8_0 | Format::Q6K);
        // The byte that holds element `e` (with element `e + 16` for nibbles).
        let at = |p: usize| {
            if self.il {
                let nb = self.k / QK;
                let (row, b) = (blk / nb, blk % nb);
                let vb = self.format.packed_bytes();
                ((row / IL) * nb + b) * IL * vb + (p / 4) * 4 * IL + 4 * (row % IL) + p % 4
            } else {
                blk * self.format.packed_bytes() + p
            }
        };
        if bytes {
            return self.qs[at(e)];
        }
        let byte = self.qs[at(e % 16)];
        let nib = if e < 16 { byte & 0x0F } else { byte >> 4 };
        if self.format != Format::Q5_0 {
            return nib;
        }
        let bit = if self.il {
            let nb = self.k / QK;
            let (row, b) = (blk / nb, blk % nb);
            let mask = self.qh64[((row / IL) * nb + b) * 8 + 2 * ((e % 16) / 4) + e / 16];
            (mask >> (4 * (row % IL) + e % 4)) & 1
        } else {
            u64::from((self.qh[blk] >> e) & 1)
        };
        nib | ((bit as u8) << 4)
    }

    /// The scale of block `blk` (not Q6_K, whose scales are per 16).
    fn scale(&self, blk: usize) -> f32 {
        let at = self.slot(blk);
        if self.dh.is_empty() {
            self.d[at]
        } else {
            f16_to_f32(self.dh[at])
        }
    }

    /// The minimum of block `blk` (Q4_1, Q4_K).
    fn min(&self, blk: usize) -> f32 {
        let at = self.slot(blk);
        if self.mh.is_empty() {
            self.m[at]
        } else {
            f16_to_f32(self.mh[at])
        }
    }

    /// Q6_K: the scale of values `16 h .. 16 h + 16` of block `blk`.
    fn scale16(&self, blk: usize, h: usize) -> f32 {
        if !self.il {
            return self.d16[2 * blk + h];
        }
        let nb = self.k / QK;
        let (row, b) = (blk / nb, blk % nb);
        self.d16[(((row / IL) * nb + b) * 2 + h) * IL + row % IL]
    }

    /// The layout the kernels of this CPU read fastest: rows interleaved in groups of [`IL`]
    /// for AVX-512 VNNI (when the rows fill whole groups), row-major otherwise.
    fn laid_out(self) -> Self {
        if Isa::detect() == Isa::Avx512Vnni && self.n.is_multiple_of(IL) {
            self.interleave()
        } else {
            self
        }
    }

    /// Rows regrouped [`IL`] at a time, so that one 64-byte load holds four consecutive values
    /// (bytes, or nibble pairs) of each of 16 rows and one `vpdpbusd` adds the products of 16
    /// outputs, each lane the integer sum of one row's block: for group `g` and block `b`,
    /// values at `(g * nb + b) * 16 * vb + (p / 4) * 64 + 4 j + p % 4` for byte `p` of row
    /// `16 g + j` (`vb` bytes a block), scales and minimums at `(g * nb + b) * 16 + j` (Q6_K:
    /// `((g * nb + b) * 2 + h) * 16 + j`), and Q5_0's fifth bits as masks, one per four-byte
    /// column `t` and half: bit `4 j + i` of mask `(g * nb + b) * 8 + 2 t + half` is the bit of
    /// element `16 half + 4 t + i` of row `16 g + j`.
    fn interleave(self) -> Self {
        let nb = self.k / QK;
        let vb = self.format.packed_bytes();
        let mut qs = vec![0u8; self.qs.len()];
        fn per<T: Copy + Default>(nb: usize, v: &[T]) -> Vec<T> {
            let mut out = vec![T::default(); v.len()];
            for (blk, &x) in v.iter().enumerate() {
                out[slot_il(nb, blk)] = x;
            }
            out
        }
        // Four bytes at a time: byte `p` of row `16 g + j`'s block `b` goes to column `p / 4`
        // of the group's block, in place `j`.
        for (rb, src) in self.qs.chunks_exact(vb).enumerate() {
            let (row, b) = (rb / nb, rb % nb);
            let base = ((row / IL) * nb + b) * IL * vb + 4 * (row % IL);
            for (t, four) in src.chunks_exact(4).enumerate() {
                qs[base + t * 4 * IL..][..4].copy_from_slice(four);
            }
        }
        let mut qh64 = Vec::new();
        if self.format == Format::Q5_0 {
            qh64 = vec![0u64; self.qh.len() / IL * 8];
            for (blk, &bits) in self.qh.iter().enumerate() {
                let (row, b) = (blk / nb, blk % nb);
                let (g, j) = (row / IL, row % IL);
                for t in 0..4 {
                    for half in 0..2 {
                        let four = u64::from((bits >> (16 * half + 4 * t)) & 0x0F);
                        qh64[(g * nb + b) * 8 + 2 * t + half] |= four << (4 * j);
                    }
                }
            }
        }
        let mut d16 = vec![0f32; self.d16.len()];
        for (x, &v) in self.d16.iter().enumerate() {
            let (blk, h) = (x / 2, x % 2);
            let (row, b) = (blk / nb, blk % nb);
            d16[(((row / IL) * nb + b) * 2 + h) * IL + row % IL] = v;
        }
        Self {
            qs,
            qh: Vec::new(),
            qh64,
            d: per(nb, &self.d),
            m: per(nb, &self.m),
            dh: per(nb, &self.dh),
            mh: per(nb, &self.mh),
            d16,
            il: true,
            ..self
        }
    }

    /// Row `row` back in f32 (an embedding lookup), into `out` (`cols()` values).
    pub fn dequantize_row(&self, row: usize, out: &mut [f32]) -> Result<(), KernelError> {
        if row >= self.n || out.len() != self.k {
            return Err(KernelError::Shape(format!(
                "row {row} of {} into {} values ({} columns)",
                self.n,
                out.len(),
                self.k
            )));
        }
        for (c, o) in out.iter_mut().enumerate() {
            *o = self.weight(row, c);
        }
        Ok(())
    }

    /// Weight `(row, col)` back in f32.
    fn weight(&self, row: usize, col: usize) -> f32 {
        let blk = row * (self.k / QK) + col / QK;
        let q = f32::from(self.unsigned(blk, col % QK));
        match self.format {
            Format::Q4_1 | Format::Q4K => self.scale(blk) * q + self.min(blk),
            Format::Q6K => self.scale16(blk, (col % QK) / 16) * (q - 32.0),
            f => self.scale(blk) * (q - offset_of(f.id()) as f32),
        }
    }

    /// An upper bound on |weight| that the kernels' terms reach: for Q4_1 the scaled value and
    /// the minimum are summed apart, so both count (tests set their tolerance by it).
    #[cfg(test)]
    pub(crate) fn term_magnitude(&self, row: usize, col: usize) -> f32 {
        let blk = row * (self.k / QK) + col / QK;
        match self.format {
            Format::Q4_1 | Format::Q4K => {
                (self.scale(blk) * f32::from(self.unsigned(blk, col % QK))).abs()
                    + self.min(blk).abs()
            }
            _ => self.weight(row, col).abs(),
        }
    }

    /// The matrix back in f32.
    pub fn dequantize(&self) -> Vec<f32> {
        (0..self.n)
            .flat_map(|r| (0..self.k).map(move |c| self.weight(r, c)))
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
        run_tiles(isa, &[self], &[SharedOut(y.as_mut_ptr())], xq);
    }

    fn tile(&self, isa: Isa, xq: &Q8Rows, n0: usize, n1: usize, out: &SharedOut) {
        let (m, n) = (xq.m, self.n);
        #[cfg(target_arch = "x86_64")]
        if self.il && isa == Isa::Avx512Vnni {
            // SAFETY: `matmul_with` checked the CPU's features; interleaved matrices have
            // whole groups of rows and tasks start at multiples of `TILE` (of `IL`), so the
            // kernel writes 16 outputs at a time inside rows `0..m`, columns `n0..n1` of the
            // `m x n` output: disjoint between tasks, and mutably borrowed (alive, unaliased)
            // for the whole parallel loop.
            unsafe {
                let y = Out {
                    ptr: out.0,
                    stride: n,
                };
                match self.format {
                    Format::Q8_0 => x86::vnni_il::<F_Q8_0>(self, xq, n0, n1, y),
                    Format::Q4_0 => x86::vnni_il::<F_Q4_0>(self, xq, n0, n1, y),
                    Format::Q4_1 => x86::vnni_il::<F_Q4_1>(self, xq, n0, n1, y),
                    Format::Q5_0 => x86::vnni_il::<F_Q5_0>(self, xq, n0, n1, y),
                    Format::Q6K => x86::vnni_il::<F_Q6_K>(self, xq, n0, n1, y),
                    Format::Q4K => x86::vnni_il::<F_Q4_K>(self, xq, n0, n1, y),
                }
            }
            return;
        }
        // Many activation rows: widen the tile's weights to bytes once, rather than once per
        // tile of activation rows. Interleaved rows for another kernel (tests, a CPU without
        // VNNI reading a matrix laid out for one) are copied back to rows the same way.
        let unpack =
            self.il || (m >= UNPACK_ROWS && !matches!(self.format, Format::Q8_0 | Format::Q6K));
        let local = unpack.then(|| self.unpacked_rows(n0, n1));
        let (w, j0, j1, col0) = match &local {
            Some(u) => (u, 0, n1 - n0, n0),
            None => (self, n0, n1, 0),
        };
        let put = |row: usize, col: usize, v: f32| {
            let col = col0 + col;
            debug_assert!(row < m && (n0..n1).contains(&col));
            // SAFETY: tasks write disjoint column ranges [n0, n1) of an m x n output, which
            // stays mutably borrowed (and so alive and unaliased) for the whole parallel
            // loop; row < m and col < n keep the write inside it.
            unsafe { *out.0.add(row * n + col) = v };
        };
        match w.format {
            Format::Q8_0 => w.block::<F_Q8_0>(isa, xq, j0, j1, &put),
            Format::Q4_0 => w.block::<F_Q4_0>(isa, xq, j0, j1, &put),
            Format::Q4_1 => w.block::<F_Q4_1>(isa, xq, j0, j1, &put),
            Format::Q5_0 => w.block::<F_Q5_0>(isa, xq, j0, j1, &put),
            Format::Q6K => w.block::<F_Q6_K>(isa, xq, j0, j1, &put),
            Format::Q4K => w.block::<F_Q4_K>(isa, xq, j0, j1, &put),
        }
    }

    /// Rows `n0..n1` with every value unpacked to a byte (same format, scales, offsets and
    /// minimums).
    fn unpacked_rows(&self, n0: usize, n1: usize) -> QMatrix {
        let nb = self.k / QK;
        let (b0, b1) = (n0 * nb, n1 * nb);
        let mut qs = vec![0u8; (b1 - b0) * QK];
        if self.il {
            // Element by element (not a kernel's path: see `tile`).
            for (i, out) in qs.chunks_exact_mut(QK).enumerate() {
                for (e, v) in out.iter_mut().enumerate() {
                    *v = self.unsigned(b0 + i, e);
                }
            }
            fn gather<T: Copy>(w: &QMatrix, v: &[T], b0: usize, b1: usize) -> Vec<T> {
                if v.is_empty() {
                    return Vec::new();
                }
                (b0..b1).map(|blk| v[w.slot(blk)]).collect()
            }
            let d16 = if self.d16.is_empty() {
                Vec::new()
            } else {
                (b0..b1)
                    .flat_map(|blk| [self.scale16(blk, 0), self.scale16(blk, 1)])
                    .collect()
            };
            return QMatrix {
                format: self.format,
                n: n1 - n0,
                k: self.k,
                qs,
                qh: Vec::new(),
                d: gather(self, &self.d, b0, b1),
                m: gather(self, &self.m, b0, b1),
                dh: gather(self, &self.dh, b0, b1),
                mh: gather(self, &self.mh, b0, b1),
                d16,
                unpacked: true,
                il: false,
                qh64: Vec::new(),
            };
        }
        if matches!(self.format, Format::Q8_0 | Format::Q6K) || self.unpacked {
            qs.copy_from_slice(&self.qs[b0 * QK..b1 * QK]);
        } else {
            // Plain slices, so the compiler vectorizes the widening.
            for (i, out) in qs.chunks_exact_mut(QK).enumerate() {
                let blk = b0 + i;
                let src = &self.qs[blk * 16..][..16];
                let (lo, hi) = out.split_at_mut(16);
                for ((l, h), &b) in lo.iter_mut().zip(hi.iter_mut()).zip(src) {
                    *l = b & 0x0F;
                    *h = b >> 4;
                }
                if self.format == Format::Q5_0 {
                    // Eight fifth bits at a time, spread to bytes by table (a variable shift
                    // per value kept this loop scalar).
                    let bits = self.qh[blk];
                    for (g, eight) in out.chunks_exact_mut(8).enumerate() {
                        let spread = FIFTH_BITS[((bits >> (8 * g)) & 0xFF) as usize].to_le_bytes();
                        for (v, b) in eight.iter_mut().zip(spread) {
                            *v |= b;
                        }
                    }
                }
            }
        }
        fn cut<T: Copy>(v: &[T], a: usize, b: usize) -> Vec<T> {
            if v.is_empty() {
                Vec::new()
            } else {
                v[a..b].to_vec()
            }
        }
        QMatrix {
            format: self.format,
            n: n1 - n0,
            k: self.k,
            qs,
            qh: Vec::new(),
            d: cut(&self.d, b0, b1),
            m: cut(&self.m, b0, b1),
            dh: cut(&self.dh, b0, b1),
            mh: cut(&self.mh, b0, b1),
            d16: cut(&self.d16, 2 * b0, 2 * b1),
            unpacked: true,
            il: false,
            qh64: Vec::new(),
        }
    }

    fn block<const F: u8>(
        &self,
        isa: Isa,
        xq: &Q8Rows,
        n0: usize,
        n1: usize,
        put: &dyn Fn(usize, usize, f32),
    ) {
        debug_assert_eq!(self.format.id(), F);
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => {
                // SAFETY: `matmul_with` checked that the CPU has these features; `F` is this
                // matrix's format (the kernels index `qh`/`m` only for the formats that fill
                // them).
                unsafe { x86::vnni_block::<F>(self, xq, n0, n1, put) }
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                // SAFETY: as above.
                unsafe { x86::avx2_block::<F>(self, xq, n0, n1, put) }
            }
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => {
                // SAFETY: as above.
                unsafe { neon::neon_block::<F>(self, xq, n0, n1, put) }
            }
            _ => scalar_block(self, xq, n0, n1, put),
        }
    }
}

/// Block `blk`'s scale, for a kernel of format `F`.
///
/// # Safety
/// `blk` is a block of `w`, whose format is `F`.
#[inline(always)]
unsafe fn scale_at<const F: u8>(w: &QMatrix, blk: usize) -> f32 {
    if half_scales(F) {
        f16_to_f32(*w.dh.get_unchecked(blk))
    } else {
        *w.d.get_unchecked(blk)
    }
}

/// Block `blk`'s minimum, for a kernel of a format with one.
///
/// # Safety
/// As [`scale_at`], and `has_min(F)`.
#[inline(always)]
unsafe fn min_at<const F: u8>(w: &QMatrix, blk: usize) -> f32 {
    if half_scales(F) {
        f16_to_f32(*w.mh.get_unchecked(blk))
    } else {
        *w.m.get_unchecked(blk)
    }
}

/// For each byte of Q5_0 fifth bits, the eight values' bit 4 (`0x10` in byte `j` of the
/// little-endian word when bit `j` is set).
const FIFTH_BITS: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut j = 0;
        while j < 8 {
            if (i >> j) & 1 == 1 {
                t[i] |= 0x10 << (8 * j);
            }
            j += 1;
        }
        i += 1;
    }
    t
};

/// Output tile width in weight rows.
const NR: usize = 4;
/// Weight rows per group of an interleaved matrix: one 512-bit lane of 32 bits per row.
pub(crate) const IL: usize = 16;

/// The interleaved index of row-major block `blk` of a matrix of `nb` blocks a row.
fn slot_il(nb: usize, blk: usize) -> usize {
    let (row, b) = (blk / nb, blk % nb);
    ((row / IL) * nb + b) * IL + row % IL
}
/// Weight rows per parallel task.
const TILE: usize = NR * 8;
/// From this many activation rows on, a task unpacks its weight rows to bytes first, rather
/// than widening them in registers once per tile of activation rows. Measured on
/// Qwen2.5-0.5B (Q5_0), 2 threads, AVX-512 VNNI: unpacking from 8 rows on cost decode at
/// batch 8 / 16 / 32 40% / 40% / 26% of its speed (52.6 / 69.1 / 97.2 against 86.0 / 115.8 /
/// 131.7 tok/s) and prefill of 16 / 32 / 64 tokens 37% / 21% / 5%; the two break even at 128
/// rows (168 vs 167 tok/s) and unpacking wins beyond (pp256 158.5 vs 150.8). The AVX2 kernels
/// agree (`TESSERA_KERNELS=avx2` on an AMD EPYC, 2 threads, decode at batch 8 after prompts of
/// 128): unpacking from 2 / 8 / 32 / 128 rows gives 59.0 / 54.1 / 73.4 / 79.7 tok/s.
pub(crate) const UNPACK_ROWS: usize = 128;

/// Every matrix of `mats` times the same quantized activations, in one parallel pass over
/// tiles of weight rows (all matrices' tiles together, so layers that share an input, such as
/// attention's Q, K and V, cost one dispatch). Each task covers every activation row for its
/// weight rows, so each weight block is read from memory once per call.
fn run_tiles(isa: Isa, ws: &[&QMatrix], outs: &[SharedOut], xq: &Q8Rows) {
    if xq.m == 0 {
        return;
    }
    let total: usize = ws.iter().map(|w| w.n.div_ceil(TILE)).sum();
    (0..total).into_par_iter().for_each(|mut t| {
        for (w, out) in ws.iter().zip(outs) {
            let tiles = w.n.div_ceil(TILE);
            if t < tiles {
                let n0 = t * TILE;
                w.tile(isa, xq, n0, (n0 + TILE).min(w.n), out);
                return;
            }
            t -= tiles;
        }
    });
}

/// Matrices per parallel pass of [`matmul_many`] (attention's Q, K and V fit): the outputs'
/// pointers live in an array on the stack, so a pass allocates nothing.
const PASS: usize = 4;

thread_local! {
    /// The calling thread's quantized activations, reused from call to call: decode runs
    /// several products per layer and token, and none of them allocates once this has grown.
    static ACTIVATIONS: std::cell::RefCell<Q8Rows> = std::cell::RefCell::new(Q8Rows::default());
}

/// `ys[i] = x * ws[i]^T` for matrices of the same width: the activations are quantized once
/// and all products run in one parallel pass (the best kernels for this CPU).
pub fn matmul_many(
    ws: &[&QMatrix],
    x: &[f32],
    m: usize,
    ys: &mut [&mut [f32]],
) -> Result<(), KernelError> {
    let Some(first) = ws.first() else {
        return Ok(());
    };
    let k = first.k;
    if ws.len() != ys.len()
        || x.len() != m * k
        || ws
            .iter()
            .zip(ys.iter())
            .any(|(w, y)| w.k != k || y.len() != m * w.n)
    {
        return Err(KernelError::Shape(format!(
            "{} matrices of {k} columns and {} outputs for {m} rows of {} values",
            ws.len(),
            ys.len(),
            x.len()
        )));
    }
    let isa = Isa::detect();
    ACTIVATIONS.with(|cell| {
        // While its pass runs, this thread may execute another task that calls in again
        // (rayon steals work while it waits): that call takes a buffer of its own.
        let mut fresh = Q8Rows::default();
        let mut held = cell.try_borrow_mut();
        let xq = match held.as_deref_mut() {
            Ok(xq) => xq,
            Err(_) => &mut fresh,
        };
        xq.quantize_into(x, m, k);
        for (wc, yc) in ws.chunks(PASS).zip(ys.chunks_mut(PASS)) {
            let mut outs = [const { SharedOut(std::ptr::null_mut()) }; PASS];
            for (o, y) in outs.iter_mut().zip(yc.iter_mut()) {
                *o = SharedOut(y.as_mut_ptr());
            }
            run_tiles(isa, wc, &outs[..wc.len()], xq);
        }
    });
    Ok(())
}

struct SharedOut(*mut f32);

/// Where a kernel writes whole vectors of outputs: the `m x n` output and its row stride.
#[derive(Clone, Copy)]
struct Out {
    ptr: *mut f32,
    stride: usize,
}
// SAFETY: used only for disjoint writes from the parallel tasks of `matmul_q`.
unsafe impl Sync for SharedOut {}
// SAFETY: as above.
unsafe impl Send for SharedOut {}

/// One block of activations (at most 32 values) into `q` (zero past the values), returning
/// the scale, or `None` when a value is not finite: as llama.cpp's x86 activation quantizer
/// does (`127 / amax`, rounding to nearest even), in lanes of 8 so the compiler vectorizes it
/// (the maximum taken by comparison, not `f32::max`, whose NaN rule keeps it scalar).
// Lane loops index two arrays by the same lane.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn quantize_activations(x: &[f32], q: &mut [i8]) -> Option<f32> {
    let mut amax = [0f32; 8];
    let mut bad = [false; 8];
    let mut lanes = x.chunks_exact(8);
    for c in &mut lanes {
        for i in 0..8 {
            let a = c[i].abs();
            bad[i] |= a.is_nan() | (a > f32::MAX);
            amax[i] = if a > amax[i] { a } else { amax[i] };
        }
    }
    for &v in lanes.remainder() {
        let a = v.abs();
        bad[0] |= a.is_nan() | (a > f32::MAX);
        amax[0] = if a > amax[0] { a } else { amax[0] };
    }
    if bad.iter().any(|&b| b) {
        return None;
    }
    let amax = amax.iter().fold(0f32, |m, &a| if a > m { a } else { m });
    // A subnormal maximum would make `127 / amax` overflow: such a block quantizes to zeros.
    let id = match 127.0 / amax {
        id if amax > 0.0 && id.is_finite() => id,
        _ => 0.0,
    };
    for (o, v) in q.iter_mut().zip(x) {
        // SAFETY: `v` and `id` are finite and |v| <= amax, so |v * id| <= 127 up to one
        // rounding: the rounded value is finite and fits an i32 (and then an i8). The
        // unchecked conversion vectorizes; `as` would add a saturation test per value.
        *o = unsafe { (v * id).round_ties_even().to_int_unchecked::<i32>() } as i8;
    }
    q[x.len()..].fill(0);
    Some(amax / 127.0)
}

/// One block of 32 values to (scale, values), as GGUF's reference Q8_0 quantizer does.
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

/// One block of 32 values appended to `out` as a GGUF block of `format`, by the reference
/// quantizers' rules (Q4_0/Q5_0: the scale maps the value of largest magnitude to -8/-16;
/// Q4_1: 15 steps from the block's minimum to its maximum).
pub fn quantize_gguf_block(format: Format, x: &[f32], out: &mut Vec<u8>) {
    let f16 = |v: f32| half::f16::from_f32(v).to_bits().to_le_bytes();
    match format {
        Format::Q8_0 => {
            let (d, q) = quantize_block(x);
            out.extend_from_slice(&f16(d));
            out.extend(q.iter().map(|&v| v as u8));
        }
        Format::Q4_0 | Format::Q5_0 => {
            let levels = if format == Format::Q4_0 { 8.0 } else { 16.0 };
            let max = x
                .iter()
                .fold(0f32, |a, &v| if v.abs() > a.abs() { v } else { a });
            let d = max / -levels;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let top = 2.0 * levels - 1.0;
            let q: Vec<u8> = x
                .iter()
                .map(|v| (v * id + levels + 0.5).floor().clamp(0.0, top) as u8)
                .collect();
            out.extend_from_slice(&f16(d));
            if format == Format::Q5_0 {
                let qh = q
                    .iter()
                    .enumerate()
                    .fold(0u32, |h, (e, &v)| h | (u32::from(v >> 4) << e));
                out.extend_from_slice(&qh.to_le_bytes());
            }
            out.extend((0..16).map(|j| (q[j] & 0x0F) | ((q[j + 16] & 0x0F) << 4)));
        }
        Format::Q4_1 => {
            let min = x.iter().fold(f32::INFINITY, |a, &v| a.min(v));
            let max = x.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
            let d = (max - min) / 15.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let q: Vec<u8> = x
                .iter()
                .map(|v| ((v - min) * id + 0.5).floor().clamp(0.0, 15.0) as u8)
                .collect();
            out.extend_from_slice(&f16(d));
            out.extend_from_slice(&f16(min));
            out.extend((0..16).map(|j| q[j] | (q[j + 16] << 4)));
        }
        // Not 32-value block formats; their matrices come from GGUF files only.
        Format::Q6K | Format::Q4K => {}
    }
}

widest! {
    /// Every 32-value block of `x` quantized into `qs`, its scale into `d`.
    fn quantize_blocks(x: &[f32], qs: &mut [i8], d: &mut [f32]) {
        for ((chunk, q), s) in x.chunks(QK).zip(qs.chunks_exact_mut(QK)).zip(d.iter_mut()) {
            *s = if let Some(s) = quantize_activations(chunk, q) {
                // The scale as GGUF stores it (f16), as llama.cpp's activations do: the same
                // rounding keeps greedy streams equal to its. Beyond f16's range (|x| above
                // about 8e6) the f32 scale stays, where llama.cpp would overflow.
                let h = half::f16::from_f32(s).to_f32();
                if h.is_finite() {
                    h
                } else {
                    s
                }
            } else {
                // Non-finite activations propagate as NaN, as an f32 product would.
                q.fill(0);
                f32::NAN
            };
        }
    }
}

impl Q8Rows {
    /// Quantizes `m` rows of `k` (a multiple of 32) values.
    pub fn quantize(x: &[f32], m: usize, k: usize) -> Self {
        let mut rows = Self::default();
        rows.quantize_into(x, m, k);
        rows
    }

    /// As [`Q8Rows::quantize`], into this value's buffers (no allocation once they have
    /// grown to the size).
    pub fn quantize_into(&mut self, x: &[f32], m: usize, k: usize) {
        let Self {
            m: rows,
            qs,
            d,
            sum,
            dsum,
            sum16,
        } = self;
        *rows = m;
        qs.clear();
        d.clear();
        sum.clear();
        dsum.clear();
        sum16.clear();
        let blocks = x.len().div_ceil(QK);
        qs.resize(blocks * QK, 0);
        d.resize(blocks, 0.0);
        quantize_blocks(x, qs, d);
        debug_assert_eq!(x.len(), m * k);
        sum.extend(
            qs.chunks(QK)
                .map(|b| b.iter().map(|&v| i32::from(v)).sum::<i32>()),
        );
        dsum.extend(d.iter().zip(sum.iter()).map(|(d, &s)| d * s as f32));
        sum16.extend(
            qs.chunks(16)
                .map(|b| b.iter().map(|&v| i32::from(v)).sum::<i32>()),
        );
    }
}

/// The portable reference: exact integer block dot products, f32 accumulation.
fn scalar_block(w: &QMatrix, x: &Q8Rows, n0: usize, n1: usize, put: &dyn Fn(usize, usize, f32)) {
    let nb = w.k / QK;
    let o = offset_of(w.format.id());
    for i in 0..x.m {
        for j in n0..n1 {
            let mut acc = 0f32;
            for b in 0..nb {
                let (xb, wb) = (i * nb + b, j * nb + b);
                let xs = &x.qs[xb * QK..][..QK];
                let dot: i32 = xs
                    .iter()
                    .enumerate()
                    .map(|(e, &a)| i32::from(a) * i32::from(w.unsigned(wb, e)))
                    .sum();
                if w.format == Format::Q6K {
                    // One scale per 16 values: two integer sums per block.
                    for h in 0..2 {
                        let dot: i32 = xs[16 * h..][..16]
                            .iter()
                            .enumerate()
                            .map(|(e, &a)| i32::from(a) * i32::from(w.unsigned(wb, 16 * h + e)))
                            .sum();
                        let s = dot - o * x.sum16[2 * xb + h];
                        acc += x.d[xb] * w.scale16(wb, h) * s as f32;
                    }
                } else if matches!(w.format, Format::Q4_1 | Format::Q4K) {
                    acc += x.d[xb] * w.scale(wb) * dot as f32 + w.min(wb) * x.dsum[xb];
                } else {
                    acc += x.d[xb] * w.scale(wb) * (dot - o * x.sum[xb]) as f32;
                }
            }
            put(i, j, acc);
        }
    }
}

/// Walks the output tiles of weight rows `n0..n1` for every activation row: full `MR x 4`
/// tiles, then leftover activation rows one at a time, then leftover weight rows singly. A
/// macro, not a function taking the tile kernel: a closure or function pointer would not
/// inherit the caller's target features, and the intrinsics would stop inlining.
#[cfg(target_arch = "x86_64")]
macro_rules! walk_tiles {
    ($tile:ident, $f:ident, $mr:expr, $w:ident, $x:ident, $n0:ident, $n1:ident, $put:ident) => {
        walk_tiles!($tile, $f, $mr, NR, $w, $x, $n0, $n1, $put)
    };
    ($tile:ident, $f:ident, $mr:expr, $nr:expr, $w:ident, $x:ident, $n0:ident, $n1:ident, $put:ident) => {{
        let nb = $w.k / QK;
        let mut i0 = 0;
        while i0 < $x.m {
            let mr = ($x.m - i0).min($mr);
            let mut j0 = $n0;
            while j0 < $n1 {
                let nr = ($n1 - j0).min($nr);
                if mr == $mr && nr == $nr {
                    $tile::<$f, $mr, $nr>($w, $x, i0, j0, nb, $put);
                } else if nr == $nr {
                    for r in 0..mr {
                        $tile::<$f, 1, $nr>($w, $x, i0 + r, j0, nb, $put);
                    }
                } else {
                    for r in 0..mr {
                        for c in 0..nr {
                            $tile::<$f, 1, 1>($w, $x, i0 + r, j0 + c, nb, $put);
                        }
                    }
                }
                j0 += nr;
            }
            i0 += mr;
        }
    }};
}

// Tile loops index several arrays by the same row and column; ranges read clearest.
#[allow(clippy::needless_range_loop)]
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{
        half_scales, has_min, min_at, offset_of, scale_at, Out, Q8Rows, QMatrix, F_Q5_0, F_Q6_K,
        F_Q8_0, IL, NR, QK,
    };
    use std::arch::x86_64::*;

    /// VNNI output tile height in activation rows.
    const MR: usize = 4;

    /// AVX-512 VNNI. `vpdpbusd` multiplies unsigned by signed bytes: weights are unsigned
    /// values (Q8_0 stored +128, nibbles as they are) and each block's integer sum starts
    /// from `-offset * sum(x)` (the activation row's block sum), which takes the offset back
    /// exactly, before any rounding. Two blocks (64 bytes) per instruction.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,fma,f16c")]
    pub(super) unsafe fn vnni_block<const F: u8>(
        w: &QMatrix,
        x: &Q8Rows,
        n0: usize,
        n1: usize,
        put: &dyn Fn(usize, usize, f32),
    ) {
        walk_tiles!(tile_vnni, F, MR, w, x, n0, n1, put);
    }

    /// Interleaved matrices (see [`QMatrix::interleave`]): `MR` activation rows against
    /// `NC` groups of 16 weight rows at a time. Each 64-byte load holds four values of each
    /// of 16 rows (for nibble formats, eight: the low nibbles are elements `4t..4t+4`, the
    /// high ones `16+4t..`); one `vpdpbusd` against four activation bytes broadcast adds them
    /// into 16 integer lanes, one per output, so a block's sum stays integer (offset taken
    /// back from the start) and meets its scales once, and no lane is summed across.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,fma,f16c")]
    pub(super) unsafe fn vnni_il<const F: u8>(
        w: &QMatrix,
        x: &Q8Rows,
        n0: usize,
        n1: usize,
        put: Out,
    ) {
        let mut i0 = 0;
        while i0 < x.m {
            let mr = (x.m - i0).min(MI);
            let mut j0 = n0;
            while j0 < n1 {
                let nc = ((n1 - j0) / IL).min(NC);
                match (mr, nc) {
                    (8, 2) => il_tile::<F, 8, 2>(w, x, i0, j0, put),
                    (8, _) => il_tile::<F, 8, 1>(w, x, i0, j0, put),
                    (7, 2) => il_tile::<F, 7, 2>(w, x, i0, j0, put),
                    (7, _) => il_tile::<F, 7, 1>(w, x, i0, j0, put),
                    (6, 2) => il_tile::<F, 6, 2>(w, x, i0, j0, put),
                    (6, _) => il_tile::<F, 6, 1>(w, x, i0, j0, put),
                    (5, 2) => il_tile::<F, 5, 2>(w, x, i0, j0, put),
                    (5, _) => il_tile::<F, 5, 1>(w, x, i0, j0, put),
                    (4, 2) => il_tile::<F, 4, 2>(w, x, i0, j0, put),
                    (4, _) => il_tile::<F, 4, 1>(w, x, i0, j0, put),
                    (3, 2) => il_tile::<F, 3, 2>(w, x, i0, j0, put),
                    (3, _) => il_tile::<F, 3, 1>(w, x, i0, j0, put),
                    (2, 2) => il_tile::<F, 2, 2>(w, x, i0, j0, put),
                    (2, _) => il_tile::<F, 2, 1>(w, x, i0, j0, put),
                    (1, 2) => il_tile::<F, 1, 2>(w, x, i0, j0, put),
                    (1, _) => il_tile::<F, 1, 1>(w, x, i0, j0, put),
                    _ => unreachable!("tiles have 1 to {MI} rows"),
                }
                j0 += nc * IL;
            }
            i0 += mr;
        }
    }

    /// Activation rows per interleaved tile.
    const MI: usize = 6;
    /// Groups of 16 weight rows per interleaved tile.
    const NC: usize = 2;

    /// The scales (or minimums) of 16 interleaved rows, as f32 lanes.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,fma,f16c")]
    unsafe fn sixteen<const HALF: bool>(f: *const f32, h: *const u16, at: usize) -> __m512 {
        if HALF {
            _mm512_cvtph_ps(_mm256_loadu_si256(h.add(at) as *const _))
        } else {
            _mm512_loadu_ps(f.add(at))
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,fma,f16c")]
    unsafe fn il_tile<const F: u8, const M: usize, const N: usize>(
        w: &QMatrix,
        x: &Q8Rows,
        i0: usize,
        j0: usize,
        y: Out,
    ) {
        let (k, nb) = (w.k, w.k / QK);
        let nibbles = !(F == F_Q8_0 || F == F_Q6_K);
        let vb = if nibbles { 16 } else { QK };
        let chunks = vb / 4;
        let neg_o = -offset_of(F);
        let low = _mm512_set1_epi8(0x0F);
        let fifth = _mm512_set1_epi8(0x10);
        let g0 = j0 / IL;
        let mut xp = [std::ptr::null::<i8>(); M];
        let mut xb = [0usize; M];
        for r in 0..M {
            xp[r] = x.qs.as_ptr().add((i0 + r) * k);
            xb[r] = (i0 + r) * nb;
        }
        let (xd, xs, xds, xs16) = (
            x.d.as_ptr(),
            x.sum.as_ptr(),
            x.dsum.as_ptr(),
            x.sum16.as_ptr(),
        );
        let (wd, wm, wdh, wmh) = (w.d.as_ptr(), w.m.as_ptr(), w.dh.as_ptr(), w.mh.as_ptr());
        let (wq, qh, d16) = (w.qs.as_ptr(), w.qh64.as_ptr(), w.d16.as_ptr());
        let mut acc = [[_mm512_setzero_ps(); N]; M];
        let mut dot = [[_mm512_setzero_si512(); N]; M];
        for b in 0..nb {
            let mut gb = [0usize; N];
            for c in 0..N {
                gb[c] = (g0 + c) * nb + b;
            }
            // Integer sums start at `-o * sum(x)` (Q6_K: per 16 values; none for the formats
            // with a minimum).
            let start = |r: usize, h: usize| -> i32 {
                if has_min(F) {
                    0
                } else if F == F_Q6_K {
                    neg_o * *xs16.add(2 * (xb[r] + b) + h)
                } else {
                    neg_o * *xs.add(xb[r] + b)
                }
            };
            for r in 0..M {
                let s = _mm512_set1_epi32(start(r, 0));
                for c in 0..N {
                    dot[r][c] = s;
                }
            }
            for t in 0..chunks {
                let mut lo = [_mm512_setzero_si512(); N];
                let mut hi = [_mm512_setzero_si512(); N];
                for c in 0..N {
                    let v = _mm512_loadu_si512(wq.add(gb[c] * IL * vb + t * 64) as *const _);
                    if nibbles {
                        lo[c] = _mm512_and_si512(v, low);
                        hi[c] = _mm512_and_si512(_mm512_srli_epi16::<4>(v), low);
                        if F == F_Q5_0 {
                            let masks = qh.add(gb[c] * 8 + 2 * t);
                            lo[c] = _mm512_mask_add_epi8(lo[c], *masks, lo[c], fifth);
                            hi[c] = _mm512_mask_add_epi8(hi[c], *masks.add(1), hi[c], fifth);
                        }
                    } else {
                        lo[c] = v;
                    }
                }
                for r in 0..M {
                    let xr = xp[r].add(b * QK);
                    let a =
                        _mm512_set1_epi32(std::ptr::read_unaligned(xr.add(4 * t) as *const i32));
                    for c in 0..N {
                        dot[r][c] = _mm512_dpbusd_epi32(dot[r][c], lo[c], a);
                    }
                    if nibbles {
                        let a = _mm512_set1_epi32(std::ptr::read_unaligned(
                            xr.add(16 + 4 * t) as *const i32
                        ));
                        for c in 0..N {
                            dot[r][c] = _mm512_dpbusd_epi32(dot[r][c], hi[c], a);
                        }
                    }
                }
                if F == F_Q6_K && t == 3 {
                    // The first 16 values' scale, then the second half's sums start.
                    for r in 0..M {
                        let sx = _mm512_set1_ps(*xd.add(xb[r] + b));
                        for c in 0..N {
                            let ws = _mm512_loadu_ps(d16.add(gb[c] * 2 * IL));
                            acc[r][c] = _mm512_fmadd_ps(
                                _mm512_cvtepi32_ps(dot[r][c]),
                                _mm512_mul_ps(sx, ws),
                                acc[r][c],
                            );
                        }
                        let s = _mm512_set1_epi32(start(r, 1));
                        for c in 0..N {
                            dot[r][c] = s;
                        }
                    }
                }
            }
            let mut ws = [_mm512_setzero_ps(); N];
            let mut wmin = [_mm512_setzero_ps(); N];
            for c in 0..N {
                ws[c] = if F == F_Q6_K {
                    _mm512_loadu_ps(d16.add((gb[c] * 2 + 1) * IL))
                } else if half_scales(F) {
                    sixteen::<true>(wd, wdh, gb[c] * IL)
                } else {
                    sixteen::<false>(wd, wdh, gb[c] * IL)
                };
                if has_min(F) {
                    wmin[c] = if half_scales(F) {
                        sixteen::<true>(wm, wmh, gb[c] * IL)
                    } else {
                        sixteen::<false>(wm, wmh, gb[c] * IL)
                    };
                }
            }
            for r in 0..M {
                // dot * (dx * dw), the order GGUF's reference kernels round in.
                let sx = _mm512_set1_ps(*xd.add(xb[r] + b));
                for c in 0..N {
                    acc[r][c] = _mm512_fmadd_ps(
                        _mm512_cvtepi32_ps(dot[r][c]),
                        _mm512_mul_ps(sx, ws[c]),
                        acc[r][c],
                    );
                }
                if has_min(F) {
                    let ds = _mm512_set1_ps(*xds.add(xb[r] + b));
                    for c in 0..N {
                        acc[r][c] = _mm512_fmadd_ps(wmin[c], ds, acc[r][c]);
                    }
                }
            }
        }
        for r in 0..M {
            for c in 0..N {
                _mm512_storeu_ps(y.ptr.add((i0 + r) * y.stride + j0 + c * IL), acc[r][c]);
            }
        }
    }

    /// Two consecutive per-block f32s (scales, minimums, sums) as lanes 0-7 and 8-15: one
    /// 8-byte load and a permute.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,fma,f16c")]
    unsafe fn pair(p: *const f32, idx: __m512i) -> __m512 {
        let two = _mm_castpd_ps(_mm_load_sd(p as *const f64));
        _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(two))
    }

    /// Two consecutive per-block f16s (scales, minimums) as f32 lanes 0-7 and 8-15.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,fma,f16c")]
    unsafe fn pair_h(p: *const u16, idx: __m512i) -> __m512 {
        let two = _mm_cvtph_ps(_mm_cvtsi32_si128(std::ptr::read_unaligned(p as *const i32)));
        _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(two))
    }

    /// Blocks `blk` and `blk + 1` of a weight matrix as 64 unsigned bytes in element order.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,fma,f16c")]
    unsafe fn load2<const F: u8>(w: &QMatrix, blk: usize) -> __m512i {
        if F == F_Q8_0 || F == F_Q6_K || w.unpacked {
            return _mm512_loadu_si512(w.qs.as_ptr().add(blk * QK) as *const _);
        }
        // 32 packed bytes: block A's 16 then block B's; low nibbles are elements 0-15.
        let v = _mm256_loadu_si256(w.qs.as_ptr().add(blk * 16) as *const _);
        let low = _mm256_set1_epi8(0x0F);
        let lo = _mm256_and_si256(v, low);
        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), low);
        // [A lo, B lo, A hi, B hi] in 128-bit quarters, put back in element order.
        let both = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi);
        let q = _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 1, 4, 5, 2, 3, 6, 7), both);
        if F == F_Q5_0 {
            let bits = u64::from(*w.qh.get_unchecked(blk))
                | (u64::from(*w.qh.get_unchecked(blk + 1)) << 32);
            _mm512_or_si512(q, _mm512_maskz_set1_epi8(bits, 0x10))
        } else {
            q
        }
    }

    /// Block `blk` as 32 unsigned bytes in element order.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,fma,f16c")]
    unsafe fn load1<const F: u8>(w: &QMatrix, blk: usize) -> __m256i {
        if F == F_Q8_0 || F == F_Q6_K || w.unpacked {
            return _mm256_loadu_si256(w.qs.as_ptr().add(blk * QK) as *const _);
        }
        let v = _mm_loadu_si128(w.qs.as_ptr().add(blk * 16) as *const _);
        let low = _mm_set1_epi8(0x0F);
        let q = _mm256_set_m128i(
            _mm_and_si128(_mm_srli_epi16::<4>(v), low),
            _mm_and_si128(v, low),
        );
        if F == F_Q5_0 {
            _mm256_or_si256(q, _mm256_maskz_set1_epi8(*w.qh.get_unchecked(blk), 0x10))
        } else {
            q
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,fma,f16c")]
    unsafe fn tile_vnni<const F: u8, const M: usize, const N: usize>(
        w: &QMatrix,
        x: &Q8Rows,
        i0: usize,
        j0: usize,
        nb: usize,
        put: &dyn Fn(usize, usize, f32),
    ) {
        let k = w.k;
        let neg_o = -offset_of(F);
        let idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
        // The format's offset as unsigned bytes (128 for Q8_0 wraps to the byte 0x80).
        let offset = _mm512_set1_epi8(offset_of(F) as u8 as i8);
        // Q6_K: four values (one per 16 weights) spread over four lanes each.
        let idx16 = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
        let mut acc = [[_mm512_setzero_ps(); N]; M];
        // Plain loops and arrays, not closures: a closure would not inherit the target
        // features and its intrinsics would not inline.
        let mut xp = [std::ptr::null::<i8>(); M];
        let mut xb = [0usize; M];
        for r in 0..M {
            xp[r] = x.qs.as_ptr().add((i0 + r) * k);
            xb[r] = (i0 + r) * nb;
        }
        let mut wb = [0usize; N];
        for c in 0..N {
            wb[c] = (j0 + c) * nb;
        }
        let (xd, xs, xds) = (x.d.as_ptr(), x.sum.as_ptr(), x.dsum.as_ptr());
        let (wd, wm) = (w.d.as_ptr(), w.m.as_ptr());
        let (wdh, wmh) = (w.dh.as_ptr(), w.mh.as_ptr());
        let (xs16, wd16) = (x.sum16.as_ptr(), w.d16.as_ptr());
        let mut b = 0;
        while b + 2 <= nb {
            let off = b * QK;
            let mut wv = [_mm512_setzero_si512(); N];
            let mut ws = [_mm512_setzero_ps(); N];
            let mut wmin = [_mm512_setzero_ps(); N];
            for c in 0..N {
                wv[c] = load2::<F>(w, wb[c] + b);
                ws[c] = if F == F_Q6_K {
                    let four = _mm_loadu_ps(wd16.add(2 * (wb[c] + b)));
                    _mm512_permutexvar_ps(idx16, _mm512_castps128_ps512(four))
                } else if half_scales(F) {
                    pair_h(wdh.add(wb[c] + b), idx)
                } else {
                    pair(wd.add(wb[c] + b), idx)
                };
                if has_min(F) {
                    wmin[c] = if half_scales(F) {
                        pair_h(wmh.add(wb[c] + b), idx)
                    } else {
                        pair(wm.add(wb[c] + b), idx)
                    };
                }
            }
            for r in 0..M {
                let xv = _mm512_loadu_si512(xp[r].add(off) as *const _);
                let sx = pair(xd.add(xb[r] + b), idx);
                // The offset correction in lane 0 of each block's eight lanes.
                // The offset taken back in every lane, from the same four activation bytes
                // (`-o * sum(x)` by `vpdpbusd` of a splat of `o`): each lane then holds an
                // exact signed partial sum. (Taking the whole block's correction in one lane
                // left the other lanes' unsigned sums to cancel in f32: found by fuzzing.)
                let start = if has_min(F) {
                    _mm512_setzero_si512()
                } else {
                    let corr = _mm512_dpbusd_epi32(_mm512_setzero_si512(), offset, xv);
                    _mm512_sub_epi32(_mm512_setzero_si512(), corr)
                };
                // Q4_1: the minimum times the block's scaled sum, in the same two lanes.
                let dsum = if has_min(F) {
                    _mm512_maskz_mov_ps(0x0101, pair(xds.add(xb[r] + b), idx))
                } else {
                    _mm512_setzero_ps()
                };
                for c in 0..N {
                    let dot = _mm512_dpbusd_epi32(start, wv[c], xv);
                    // dot * (dx * dw), the order GGUF's reference kernels round in.
                    let s = _mm512_mul_ps(sx, ws[c]);
                    acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), s, acc[r][c]);
                    if has_min(F) {
                        acc[r][c] = _mm512_fmadd_ps(wmin[c], dsum, acc[r][c]);
                    }
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
                    let wv = load1::<F>(w, wb[c] + b);
                    let dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), wv, xv);
                    if F == F_Q6_K {
                        let halves = [
                            _mm256_castsi256_si128(dot),
                            _mm256_extracti128_si256::<1>(dot),
                        ];
                        for (h, half) in halves.into_iter().enumerate() {
                            let s = hsum_epi32_128(half) + neg_o * *xs16.add(2 * (xb[r] + b) + h);
                            out[r][c] +=
                                *xd.add(xb[r] + b) * *wd16.add(2 * (wb[c] + b) + h) * s as f32;
                        }
                        continue;
                    }
                    let s = hsum_epi32_256(dot) + neg_o * *xs.add(xb[r] + b);
                    out[r][c] += *xd.add(xb[r] + b) * scale_at::<F>(w, wb[c] + b) * s as f32;
                    if has_min(F) {
                        out[r][c] += min_at::<F>(w, wb[c] + b) * *xds.add(xb[r] + b);
                    }
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
        hsum_epi32_128(_mm_add_epi32(lo, hi))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn hsum_epi32_128(s: __m128i) -> i32 {
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

    /// 32 bits to 32 bytes: 0xFF where the bit is set.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn bits_to_bytes(bits: u32) -> __m256i {
        let v = _mm256_set1_epi32(bits as i32);
        // Byte e takes byte e / 8 of the word (each 128-bit lane holds all four).
        let spread = _mm256_shuffle_epi8(
            v,
            _mm256_setr_epi8(
                0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3,
                3, 3, 3, 3,
            ),
        );
        let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201_u64 as i64);
        _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit)
    }

    /// Block `blk` as 32 signed bytes: `q - offset`, or `q` for the formats with a minimum.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn load_signed<const F: u8>(w: &QMatrix, blk: usize) -> __m256i {
        if F == F_Q8_0 {
            // Back to signed: w = (w + 128) ^ 0x80.
            let v = _mm256_loadu_si256(w.qs.as_ptr().add(blk * QK) as *const _);
            return _mm256_xor_si256(v, _mm256_set1_epi8(-128));
        }
        let q = load_unsigned::<F>(w, blk);
        if has_min(F) {
            q
        } else {
            _mm256_sub_epi8(q, _mm256_set1_epi8(offset_of(F) as i8))
        }
    }

    /// Block `blk` as its 32 unsigned values, before the offset (not Q8_0).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn load_unsigned<const F: u8>(w: &QMatrix, blk: usize) -> __m256i {
        if F == F_Q6_K || w.unpacked {
            return _mm256_loadu_si256(w.qs.as_ptr().add(blk * QK) as *const _);
        }
        let v = _mm_loadu_si128(w.qs.as_ptr().add(blk * 16) as *const _);
        let low = _mm_set1_epi8(0x0F);
        let mut q = _mm256_set_m128i(
            _mm_and_si128(_mm_srli_epi16::<4>(v), low),
            _mm_and_si128(v, low),
        );
        if F == F_Q5_0 {
            let high = _mm256_and_si256(
                bits_to_bytes(*w.qh.get_unchecked(blk)),
                _mm256_set1_epi8(0x10),
            );
            q = _mm256_or_si256(q, high);
        }
        q
    }

    /// AVX2: `vpmaddubsw` of |w| and x carrying w's sign (the products stay within i16).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2_block<const F: u8>(
        w: &QMatrix,
        x: &Q8Rows,
        n0: usize,
        n1: usize,
        put: &dyn Fn(usize, usize, f32),
    ) {
        // Sixteen registers hold eight accumulators and the weights. With four activation
        // rows or more, tiles of 4 rows x 2 weight rows widen each weight block once per four
        // rows rather than two (decode at batch 8, `TESSERA_KERNELS=avx2` on an AMD EPYC, 2
        // threads: 73-75 -> 94-108 tok/s over four runs); a single row keeps four weight rows
        // per tile, which shares its activation loads (tg32 53.9 against 44.6). Weights
        // already unpacked to bytes have nothing to widen: there the two shapes measured the
        // same within this machine's noise (pp512 121-162 tok/s for either), and keep 2 x 4.
        if x.m >= 4 && !w.unpacked {
            walk_tiles!(tile_avx2, F, 4, 2, w, x, n0, n1, put);
        } else {
            walk_tiles!(tile_avx2, F, 2, 4, w, x, n0, n1, put);
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile_avx2<const F: u8, const M: usize, const N: usize>(
        w: &QMatrix,
        x: &Q8Rows,
        i0: usize,
        j0: usize,
        nb: usize,
        put: &dyn Fn(usize, usize, f32),
    ) {
        // The 4- and 5-bit formats' unsigned values (below 32) go into `vpmaddubsw` as they
        // are: a pair of products stays within i16, so no sign is moved onto the activations.
        // The offset comes back in the integers, as the activations times the offset (one
        // `vpmaddubsw` per activation block, shared by the tile's columns) subtracted from
        // the pair sums, which keeps the block sum exact: taken back in f32 through the
        // block's scaled sum it would cancel against a large term. Q8_0's values (and Q6_K's,
        // whose offset meets two scales a block) keep the sign trick.
        let unsigned = F != F_Q8_0 && F != F_Q6_K;
        let k = w.k;
        let ones = _mm256_set1_epi16(1);
        let offset = _mm256_set1_epi8(offset_of(F) as i8);
        let mut acc = [[_mm256_setzero_ps(); N]; M];
        // The minimum terms, one per block, summed apart.
        let mut mins = [[0f32; N]; M];
        let xp: [*const i8; M] = std::array::from_fn(|r| x.qs.as_ptr().add((i0 + r) * k));
        for b in 0..nb {
            let off = b * QK;
            let mut wv = [_mm256_setzero_si256(); N];
            let mut wa = [_mm256_setzero_si256(); N];
            // Each weight block's scale and minimum read once for all the tile's rows.
            let mut ws = [0f32; N];
            let mut wm = [0f32; N];
            for c in 0..N {
                let wb = (j0 + c) * nb + b;
                if unsigned {
                    wv[c] = load_unsigned::<F>(w, wb);
                } else {
                    wv[c] = load_signed::<F>(w, wb);
                    wa[c] = _mm256_sign_epi8(wv[c], wv[c]);
                }
                if F != F_Q6_K {
                    ws[c] = scale_at::<F>(w, wb);
                }
                if has_min(F) {
                    wm[c] = min_at::<F>(w, wb);
                }
            }
            for r in 0..M {
                let xv = _mm256_loadu_si256(xp[r].add(off) as *const _);
                let xb = (i0 + r) * nb + b;
                let xd = *x.d.get_unchecked(xb);
                let ox = if unsigned && !has_min(F) {
                    _mm256_maddubs_epi16(offset, xv)
                } else {
                    _mm256_setzero_si256()
                };
                for c in 0..N {
                    let p16 = if unsigned {
                        let p = _mm256_maddubs_epi16(wv[c], xv);
                        if has_min(F) {
                            p
                        } else {
                            // Within i16: at most (31 + 16) * 128 * 2 in magnitude.
                            _mm256_sub_epi16(p, ox)
                        }
                    } else {
                        _mm256_maddubs_epi16(wa[c], _mm256_sign_epi8(xv, wv[c]))
                    };
                    let p32 = _mm256_madd_epi16(p16, ones);
                    let s = if F == F_Q6_K {
                        let wb = (j0 + c) * nb + b;
                        // Lanes 0-3 hold the first 16 values, 4-7 the second.
                        _mm256_set_m128(
                            _mm_set1_ps(xd * *w.d16.get_unchecked(2 * wb + 1)),
                            _mm_set1_ps(xd * *w.d16.get_unchecked(2 * wb)),
                        )
                    } else {
                        _mm256_set1_ps(xd * ws[c])
                    };
                    acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p32), s, acc[r][c]);
                    if has_min(F) {
                        mins[r][c] += wm[c] * *x.dsum.get_unchecked(xb);
                    }
                }
            }
        }
        for r in 0..M {
            for c in 0..N {
                put(i0 + r, j0 + c, hsum_ps_256(acc[r][c]) + mins[r][c]);
            }
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use super::{has_min, offset_of, Q8Rows, QMatrix, F_Q5_0, F_Q6_K, F_Q8_0, QK};
    use std::arch::aarch64::*;

    /// Block `blk` as two halves of 16 signed bytes: `q - offset`, or `q` for Q4_1.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn load_signed<const F: u8>(w: &QMatrix, blk: usize) -> (int8x16_t, int8x16_t) {
        if F == F_Q8_0 {
            let p = w.qs.as_ptr().add(blk * QK);
            let flip = vdupq_n_u8(0x80);
            return (
                vreinterpretq_s8_u8(veorq_u8(vld1q_u8(p), flip)),
                vreinterpretq_s8_u8(veorq_u8(vld1q_u8(p.add(16)), flip)),
            );
        }
        if F == F_Q6_K || w.unpacked {
            let p = w.qs.as_ptr().add(blk * QK);
            let (lo, hi) = (
                vreinterpretq_s8_u8(vld1q_u8(p)),
                vreinterpretq_s8_u8(vld1q_u8(p.add(16))),
            );
            if has_min(F) {
                return (lo, hi);
            }
            let o = vdupq_n_s8(offset_of(F) as i8);
            return (vsubq_s8(lo, o), vsubq_s8(hi, o));
        }
        let v = vld1q_u8(w.qs.as_ptr().add(blk * 16));
        let mut lo = vandq_u8(v, vdupq_n_u8(0x0F));
        let mut hi = vshrq_n_u8::<4>(v);
        if F == F_Q5_0 {
            // The fifth bits, spread to bytes (bit e of the word to 0x10 in byte e).
            let bits = *w.qh.get_unchecked(blk);
            let mut high = [0u8; QK];
            for (e, h) in high.iter_mut().enumerate() {
                *h = (((bits >> e) & 1) as u8) << 4;
            }
            lo = vorrq_u8(lo, vld1q_u8(high.as_ptr()));
            hi = vorrq_u8(hi, vld1q_u8(high.as_ptr().add(16)));
        }
        let (lo, hi) = (vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi));
        if has_min(F) {
            (lo, hi)
        } else {
            let o = vdupq_n_s8(offset_of(F) as i8);
            (vsubq_s8(lo, o), vsubq_s8(hi, o))
        }
    }

    /// NEON: widening multiplies (`smull`) and pairwise adds, one weight row against each
    /// activation row of the tile.
    #[target_feature(enable = "neon")]
    pub(super) unsafe fn neon_block<const F: u8>(
        w: &QMatrix,
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
                let mut mins = 0f32;
                for b in 0..nb {
                    let (xb, wb) = (i * nb + b, j * nb + b);
                    let xp = x.qs.as_ptr().add(xb * QK);
                    let (w0, w1) = load_signed::<F>(w, wb);
                    let mut s = vdupq_n_s32(0);
                    for (h, wv) in [(0, w0), (1, w1)] {
                        let xv = vld1q_s8(xp.add(16 * h));
                        let lo = vmull_s8(vget_low_s8(xv), vget_low_s8(wv));
                        let hi = vmull_s8(vget_high_s8(xv), vget_high_s8(wv));
                        if F == F_Q6_K {
                            // One scale per 16 values: each half on its own.
                            let sh = vpadalq_s16(vpaddlq_s16(lo), hi);
                            let scale = x.d[xb] * w.d16[2 * wb + h];
                            acc = vfmaq_n_f32(acc, vcvtq_f32_s32(sh), scale);
                            continue;
                        }
                        s = vpadalq_s16(s, lo);
                        s = vpadalq_s16(s, hi);
                    }
                    if F == F_Q6_K {
                        continue;
                    }
                    let scale = x.d[xb] * w.scale(wb);
                    acc = vfmaq_n_f32(acc, vcvtq_f32_s32(s), scale);
                    if has_min(F) {
                        mins += w.min(wb) * x.dsum[xb];
                    }
                }
                put(i, j, vaddvq_f32(acc) + mins);
            }
        }
    }
}
