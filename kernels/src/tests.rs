use crate::matmul::{quantize_block, quantize_gguf_block, Format, Isa, QMatrix, QK};

/// splitmix64: deterministic test data without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.f32() * scale).collect()
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn isas() -> Vec<Isa> {
    [Isa::Avx512Vnni, Isa::Avx2, Isa::Neon]
        .into_iter()
        .filter(|i| i.supported())
        .collect()
}

#[test]
fn kernel_names_parse_in_any_case_and_unknown_ones_do_not() {
    assert_eq!(Isa::from_name("AVX2"), Some(Isa::Avx2));
    assert_eq!(Isa::from_name(" avx512vnni\n"), Some(Isa::Avx512Vnni));
    assert_eq!(Isa::from_name("scalar"), Some(Isa::Scalar));
    assert_eq!(Isa::from_name("neon"), Some(Isa::Neon));
    assert_eq!(Isa::from_name("avx"), None);
    assert_eq!(Isa::from_name(""), None);
    // Whatever is chosen, this CPU runs it.
    assert!(Isa::detect().supported());
}

/// Every SIMD kernel against the scalar reference; the tolerance is relative to the sum of
/// the magnitudes of the terms (the integer block sums are exact: only the f32 order of the
/// block terms differs).
fn check_against_reference(w: &QMatrix, x: &[f32], m: usize) {
    let (n, k) = (w.rows(), w.cols());
    let mut reference = vec![0f32; m * n];
    w.matmul_with(Isa::Scalar, x, m, &mut reference).unwrap();
    // Q4_1 and Q6_K add two terms per block (scaled values and the minimum; two scales).
    let terms = if matches!(w.format(), Format::Q4_1 | Format::Q6K) {
        4.0
    } else {
        2.0
    };
    let nb = (k / QK) as f32;
    for isa in isas() {
        let mut y = vec![f32::NAN; m * n];
        w.matmul_with(isa, x, m, &mut y).unwrap();
        for i in 0..m {
            for j in 0..n {
                let mag: f32 = (0..k)
                    .map(|t| x[i * k + t].abs() * w.term_magnitude(j, t))
                    .sum();
                let (a, b) = (y[i * n + j], reference[i * n + j]);
                assert!(
                    (a - b).abs() <= terms * nb * f32::EPSILON * mag + 1e-30,
                    "{:?} {isa:?} m={m} n={n} k={k} at ({i},{j}): {a} vs reference {b}",
                    w.format()
                );
            }
        }
    }
}

#[test]
fn simd_kernels_equal_the_reference_on_odd_shapes() {
    let mut rng = Rng(1);
    for format in Format::ALL {
        for &k in &[32, 64, 96, 576, 896, 1536] {
            // Multiples of 16 rows take the interleaved layout where the CPU has VNNI.
            for &(m, n) in &[
                (1, 1),
                (1, 5),
                (3, 4),
                (4, 4),
                (5, 9),
                (9, 13),
                (17, 33),
                (1, 16),
                (3, 32),
                (6, 48),
                (9, 64),
            ] {
                let w = QMatrix::quantize(format, &rng.vec(n * k, 0.2), n, k).unwrap();
                let x = rng.vec(m * k, 3.0);
                check_against_reference(&w, &x, m);
            }
        }
    }
}

#[test]
fn simd_kernels_equal_the_reference_on_raw_blocks() {
    // Arbitrary bytes: every nibble and fifth-bit pattern, Q8_0's -128 (which the reference
    // quantizer never writes), scales from tiny to f16's largest, negative minimums.
    let mut rng = Rng(11);
    for format in Format::ALL {
        for &(m, n, k) in &[
            (1, 7, 96),
            (5, 9, 64),
            (4, 8, 576),
            (5, 16, 96),
            (2, 48, 576),
        ] {
            let nb = n * k / QK;
            let mut bytes = rng.bytes(nb * format.gguf_block_bytes());
            for (b, block) in bytes.chunks_mut(format.gguf_block_bytes()).enumerate() {
                let scale =
                    [1e-7f32, 0.01, 1.0, 60000.0][b % 4] * if b % 3 == 0 { -1.0 } else { 1.0 };
                block[..2].copy_from_slice(&half::f16::from_f32(scale).to_bits().to_le_bytes());
                if format == Format::Q4_1 {
                    let min = -0.5 * (b % 5) as f32;
                    block[2..4].copy_from_slice(&half::f16::from_f32(min).to_bits().to_le_bytes());
                }
            }
            let w = QMatrix::from_gguf(format, &bytes, n, k).unwrap();
            check_against_reference(&w, &rng.vec(m * k, 2.0), m);
        }
    }
}

#[test]
fn adversarial_blocks_extreme_scales_zeros_and_saturated_values() {
    let mut rng = Rng(7);
    let (m, n, k) = (5, 7, 96);
    let mut w = rng.vec(n * k, 1.0);
    // A zero block, a block near f16's range (Q4_1 stores its minimum as f16), a tiny one,
    // one of all -1 (Q8_0: q = -127).
    w[..QK].iter_mut().for_each(|v| *v = 0.0);
    w[QK..2 * QK].iter_mut().for_each(|v| *v *= 60000.0);
    w[2 * QK..3 * QK].iter_mut().for_each(|v| *v *= 1e-6);
    w[3 * QK..4 * QK].iter_mut().for_each(|v| *v = -1.0);
    let mut x = rng.vec(m * k, 1.0);
    x[..QK].iter_mut().for_each(|v| *v = 0.0);
    x[k..k + QK].iter_mut().for_each(|v| *v = 1e30);
    x[2 * k..2 * k + QK].iter_mut().for_each(|v| *v = -1.0);
    // Outliers: one large value per block, the rest quantize to zero (small exact dot
    // products next to large weight sums).
    for b in 0..k / QK {
        x[3 * k + b * QK..3 * k + (b + 1) * QK]
            .iter_mut()
            .enumerate()
            .for_each(|(t, v)| *v = if t == 5 { 1000.0 } else { 1e-3 });
    }
    for format in Format::ALL {
        let wq = QMatrix::quantize(format, &w, n, k).unwrap();
        check_against_reference(&wq, &x, m);
    }
}

/// GGUF's block layouts, written by hand from the format: Q4_0 byte j holds element j in its
/// low nibble and element j + 16 in its high one; Q5_0's 32-bit word holds the fifth bits;
/// Q4_1 carries a minimum after the scale.
#[test]
fn gguf_block_layouts_decode_as_the_format_says() {
    let scale = half::f16::from_f32(0.5).to_bits().to_le_bytes();
    let mut q4 = scale.to_vec();
    q4.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
    let w = QMatrix::from_gguf(Format::Q4_0, &q4, 1, 32).unwrap();
    let want: Vec<f32> = (0..32)
        .map(|e| if e < 16 { e as f32 - 8.0 } else { (31 - e) as f32 - 8.0 } * 0.5)
        .collect();
    assert_eq!(w.dequantize(), want);

    let mut q5 = scale.to_vec();
    q5.extend_from_slice(&0x8000_0001u32.to_le_bytes());
    q5.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
    let w = QMatrix::from_gguf(Format::Q5_0, &q5, 1, 32).unwrap();
    // Offset 16 rather than 8; elements 0 and 31 gain 16 (times the scale) from their bit.
    let mut want5: Vec<f32> = want.iter().map(|v| v - 4.0).collect();
    want5[0] += 8.0;
    want5[31] += 8.0;
    assert_eq!(w.dequantize(), want5);

    let mut q41 = scale.to_vec();
    q41.extend_from_slice(&half::f16::from_f32(-2.0).to_bits().to_le_bytes());
    q41.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
    let w = QMatrix::from_gguf(Format::Q4_1, &q41, 1, 32).unwrap();
    let want41: Vec<f32> = (0..32)
        .map(|e| if e < 16 { e as f32 } else { (31 - e) as f32 } * 0.5 - 2.0)
        .collect();
    assert_eq!(w.dequantize(), want41);

    let mut q8 = scale.to_vec();
    q8.extend((0..32u8).map(|e| (e as i8 - 16) as u8));
    let w = QMatrix::from_gguf(Format::Q8_0, &q8, 1, 32).unwrap();
    let want8: Vec<f32> = (0..32).map(|e| (e as f32 - 16.0) * 0.5).collect();
    assert_eq!(w.dequantize(), want8);
}

#[test]
fn quantizers_round_to_the_nearest_step() {
    let mut rng = Rng(5);
    for format in Format::ALL {
        let x = rng.vec(64 * QK, 1.5);
        let w = QMatrix::quantize(format, &x, 64, QK).unwrap();
        let back = w.dequantize();
        for (block, got) in x.chunks(QK).zip(back.chunks(QK)) {
            let amax = block.iter().fold(0f32, |a, v| a.max(v.abs()));
            let range = block.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v))
                - block.iter().fold(f32::INFINITY, |a, &v| a.min(v));
            // Half a step, plus f16 rounding of the scale (and minimum).
            let step = match format {
                Format::Q8_0 => amax / 127.0,
                Format::Q4_0 => amax / 8.0,
                Format::Q5_0 => amax / 16.0,
                Format::Q4_1 => range / 15.0,
                Format::Q6K | Format::Q4K => unreachable!("not in Format::ALL"),
            };
            for (a, b) in block.iter().zip(got) {
                // Q4_0 and Q5_0 map the largest magnitude to -8 (-16): on the other side
                // values beyond 7 (15) steps clip by up to one step.
                let clipped = match format {
                    Format::Q4_0 => a.abs() > 7.0 * step,
                    Format::Q5_0 => a.abs() > 15.0 * step,
                    _ => false,
                };
                let half_steps = if clipped { 2.0 } else { 1.0 };
                assert!(
                    (a - b).abs() <= 0.5 * half_steps * step + 4e-3 * amax,
                    "{format:?}: {a} -> {b} (step {step})"
                );
            }
        }
    }
}

#[test]
fn the_reference_is_the_exact_block_product() {
    let mut rng = Rng(3);
    let (m, n, k) = (2, 3, 64);
    for format in Format::ALL {
        let w = QMatrix::quantize(format, &rng.vec(n * k, 1.0), n, k).unwrap();
        let x = rng.vec(m * k, 1.0);
        let mut y = vec![0f32; m * n];
        w.matmul_with(Isa::Scalar, &x, m, &mut y).unwrap();
        // By hand: dequantize both operands as quantized (activation scales rounded to f16,
        // as GGUF stores them), multiply in f64.
        let wd = w.dequantize();
        for i in 0..m {
            let xs: Vec<f64> = x[i * k..(i + 1) * k]
                .chunks(QK)
                .flat_map(|c| {
                    let (d, q) = quantize_block(c);
                    let d = half::f16::from_f32(d).to_f32();
                    q.map(move |v| f64::from(v) * f64::from(d))
                })
                .collect();
            for j in 0..n {
                let want: f64 = (0..k).map(|t| xs[t] * f64::from(wd[j * k + t])).sum();
                assert!(
                    (f64::from(y[i * n + j]) - want).abs() < 1e-4,
                    "{format:?}: {} vs {want}",
                    y[i * n + j]
                );
                // And near the f32 product of the quantized weights (activation error only).
                let exact: f32 = (0..k).map(|t| x[i * k + t] * wd[j * k + t]).sum();
                assert!((y[i * n + j] - exact).abs() < 0.05 * exact.abs().max(1.0));
            }
        }
    }
}

#[test]
fn bad_shapes_and_blocks_are_refused() {
    for format in Format::ALL {
        let bb = format.gguf_block_bytes();
        assert!(QMatrix::from_gguf(format, &vec![0; bb], 1, 48).is_err());
        assert!(QMatrix::from_gguf(format, &vec![0; bb - 1], 1, 32).is_err());
        assert!(QMatrix::from_gguf(format, &vec![0; bb], usize::MAX, 32).is_err());
        let mut nan = vec![0u8; bb];
        nan[..2].copy_from_slice(&half::f16::NAN.to_bits().to_le_bytes());
        assert!(QMatrix::from_gguf(format, &nan, 1, 32).is_err());
        let w = QMatrix::quantize(format, &[0.5; 64], 2, 32).unwrap();
        let mut y = vec![0f32; 2];
        assert!(w.matmul(&[1.0; 31], 1, &mut y).is_err());
        assert!(w.matmul(&[1.0; 32], 1, &mut y[..1]).is_err());
        w.matmul(&[1.0; 32], 1, &mut y).unwrap();
        assert!((y[0] - 16.0).abs() < 0.1, "{format:?}: {}", y[0]);
    }
    let mut inf_min = vec![0u8; Format::Q4_1.gguf_block_bytes()];
    inf_min[2..4].copy_from_slice(&half::f16::INFINITY.to_bits().to_le_bytes());
    assert!(QMatrix::from_gguf(Format::Q4_1, &inf_min, 1, 32).is_err());
}

#[test]
fn non_finite_activations_give_nan_not_garbage() {
    for format in Format::ALL {
        let w = QMatrix::quantize(format, &[0.5; 64], 2, 32).unwrap();
        let mut x = vec![1.0f32; 32];
        x[3] = f32::INFINITY;
        for isa in std::iter::once(Isa::Scalar).chain(isas()) {
            let mut y = vec![0f32; 2];
            w.matmul_with(isa, &x, 1, &mut y).unwrap();
            assert!(y.iter().all(|v| v.is_nan()), "{format:?} {isa:?}: {y:?}");
        }
    }
}

#[test]
fn quantized_blocks_have_the_gguf_size() {
    for format in Format::ALL {
        let mut out = Vec::new();
        quantize_gguf_block(format, &[0.25; QK], &mut out);
        assert_eq!(out.len(), format.gguf_block_bytes(), "{format:?}");
    }
}

/// Q4_K super-blocks repacked as Q4_1 decode to the values GGUF's layout gives, decoded here
/// straight from the format (per 64 values: 32 low nibbles with one scale and minimum, then
/// the 32 high nibbles of the same bytes with the next), and multiply like the reference.
#[test]
fn q4_k_repacks_exactly_and_multiplies_like_the_reference() {
    for n in [6, 16] {
        q4_k_case(n);
    }
}

fn q4_k_case(n: usize) {
    use crate::matmul::{q4_k_scale_min, Q4_K_BYTES, QK_K};
    let mut rng = Rng(21);
    let k = 2 * QK_K;
    let mut bytes = rng.bytes(n * k / QK_K * Q4_K_BYTES);
    for (i, sb) in bytes.chunks_mut(Q4_K_BYTES).enumerate() {
        let d = [0.01f32, 1.5, 1e-5][i % 3];
        sb[..2].copy_from_slice(&half::f16::from_f32(d).to_bits().to_le_bytes());
        sb[2..4].copy_from_slice(&half::f16::from_f32(d * 0.7).to_bits().to_le_bytes());
    }
    let w = QMatrix::from_gguf(Format::Q4K, &bytes, n, k).unwrap();
    assert_eq!(w.format(), Format::Q4K);
    let mut want = Vec::new();
    for sb in bytes.chunks(Q4_K_BYTES) {
        let d = half::f16::from_le_bytes([sb[0], sb[1]]).to_f32();
        let dmin = half::f16::from_le_bytes([sb[2], sb[3]]).to_f32();
        for j in 0..4 {
            let q = &sb[16 + 32 * j..][..32];
            for (s, shift) in [(2 * j, 0), (2 * j + 1, 4)] {
                let (sc, m) = q4_k_scale_min(&sb[4..16], s);
                for &b in q {
                    want.push(
                        d * f32::from(sc) * f32::from((b >> shift) & 0x0F) - dmin * f32::from(m),
                    );
                }
            }
        }
    }
    assert_eq!(w.dequantize(), want);
    check_against_reference(&w, &rng.vec(3 * k, 1.0), 3);
    assert!(QMatrix::from_gguf(Format::Q4K, &bytes[1..], n, k).is_err());
    assert!(QMatrix::from_gguf(Format::Q4K, &bytes, n, k / 2).is_err());
}

/// Q6_K super-blocks unpack to the values GGUF's layout gives, decoded here in the format's
/// own loop order (per 128 values and per l < 32: four values from ql[l], ql[l + 32] and the
/// four bit pairs of qh[l], scales per 16), and every kernel matches the reference on them.
#[test]
fn q6_k_unpacks_as_the_format_says_and_multiplies_like_the_reference() {
    use crate::matmul::{Q6_K_BYTES, QK_K};
    let mut rng = Rng(33);
    for &(m, n, k) in &[
        (3, 6, 2 * QK_K),
        (5, 9, QK_K),
        (1, 4, 4 * QK_K),
        (6, 32, QK_K),
    ] {
        let mut bytes = rng.bytes(n * k / QK_K * Q6_K_BYTES);
        for (i, sb) in bytes.chunks_mut(Q6_K_BYTES).enumerate() {
            let d = [0.002f32, 0.5, 3e-6][i % 3];
            sb[208..].copy_from_slice(&half::f16::from_f32(d).to_bits().to_le_bytes());
        }
        let w = QMatrix::from_gguf(Format::Q6K, &bytes, n, k).unwrap();
        let mut want = vec![0f32; n * k];
        for (i, sb) in bytes.chunks(Q6_K_BYTES).enumerate() {
            let d = half::f16::from_le_bytes([sb[208], sb[209]]).to_f32();
            let y = &mut want[i * QK_K..][..QK_K];
            for half in 0..2 {
                let (ql, qh) = (&sb[64 * half..], &sb[128 + 32 * half..]);
                let sc = |j: usize| f32::from(sb[192 + 8 * half + j] as i8);
                for l in 0..32 {
                    let is = l / 16;
                    let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
                    let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                    let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                    let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                    let base = 128 * half;
                    y[base + l] = d * sc(is) * q1 as f32;
                    y[base + l + 32] = d * sc(is + 2) * q2 as f32;
                    y[base + l + 64] = d * sc(is + 4) * q3 as f32;
                    y[base + l + 96] = d * sc(is + 6) * q4 as f32;
                }
            }
        }
        assert_eq!(w.dequantize(), want);
        check_against_reference(&w, &rng.vec(m * k, 1.5), m);
    }
    assert!(QMatrix::from_gguf(Format::Q6K, &[0; Q6_K_BYTES], 1, 32).is_err());
    assert!(QMatrix::from_gguf(Format::Q6K, &[0; Q6_K_BYTES - 1], 1, QK_K).is_err());
}

#[test]
fn several_matrices_in_one_pass_equal_one_at_a_time() {
    use crate::matmul::matmul_many;
    let mut rng = Rng(44);
    let (m, k) = (3, 96);
    let a = QMatrix::quantize(Format::Q4_1, &rng.vec(70 * k, 1.0), 70, k).unwrap();
    let b = QMatrix::quantize(Format::Q8_0, &rng.vec(5 * k, 1.0), 5, k).unwrap();
    let c = QMatrix::quantize(Format::Q5_0, &rng.vec(33 * k, 1.0), 33, k).unwrap();
    let x = rng.vec(m * k, 1.0);
    let (mut ya, mut yb, mut yc) = (vec![0f32; m * 70], vec![0f32; m * 5], vec![0f32; m * 33]);
    matmul_many(&[&a, &b, &c], &x, m, &mut [&mut ya, &mut yb, &mut yc]).unwrap();
    for (w, y) in [(&a, &ya), (&b, &yb), (&c, &yc)] {
        let mut one = vec![0f32; y.len()];
        w.matmul(&x, m, &mut one).unwrap();
        assert_eq!(&one, y, "{:?}", w.format());
    }
    let mut short = vec![0f32; 1];
    assert!(matmul_many(&[&a, &b], &x, m, &mut [&mut short, &mut yb]).is_err());
    assert!(matmul_many(&[&a], &x, m, &mut []).is_err());
}

/// Many activation rows take the unpacked path (weights widened to bytes once per task); it
/// equals the rows taken one at a time, which read the packed blocks.
#[test]
fn unpacked_prefill_equals_packed_rows() {
    // 40 rows stay row-major; 48 are interleaved where the CPU has VNNI.
    for n in [40, 48] {
        prefill_equals_rows_one_at_a_time(n);
    }
}

fn prefill_equals_rows_one_at_a_time(n: usize) {
    use crate::matmul::{Q4_K_BYTES, Q6_K_BYTES, QK_K, UNPACK_ROWS};
    let mut rng = Rng(55);
    let (m, k) = (UNPACK_ROWS + 3, 2 * QK_K);
    let w = rng.vec(n * k, 1.0);
    let mut mats: Vec<QMatrix> = Format::ALL
        .iter()
        .map(|&f| QMatrix::quantize(f, &w, n, k).unwrap())
        .collect();
    for (format, bytes, scales) in [
        (Format::Q4K, Q4_K_BYTES, vec![0, 2]),
        (Format::Q6K, Q6_K_BYTES, vec![208]),
    ] {
        let mut raw = rng.bytes(n * k / QK_K * bytes);
        for sb in raw.chunks_mut(bytes) {
            for &at in &scales {
                sb[at..at + 2].copy_from_slice(&half::f16::from_f32(0.03).to_bits().to_le_bytes());
            }
        }
        mats.push(QMatrix::from_gguf(format, &raw, n, k).unwrap());
    }
    let x = rng.vec(m * k, 1.0);
    for w in &mats {
        for isa in std::iter::once(Isa::Scalar).chain(isas()) {
            let mut all = vec![0f32; m * n];
            w.matmul_with(isa, &x, m, &mut all).unwrap();
            for i in 0..m {
                let mut one = vec![0f32; n];
                w.matmul_with(isa, &x[i * k..(i + 1) * k], 1, &mut one)
                    .unwrap();
                for j in 0..n {
                    let (a, b) = (all[i * n + j], one[j]);
                    assert!(
                        (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                        "{:?} {isa:?} ({i},{j}): {a} vs {b}",
                        w.format()
                    );
                }
            }
        }
    }
}

/// Found by the `kernel_blocks` fuzz target: three Q4_0 rows of three blocks (an odd block
/// count, so the 256-bit tail runs) whose products cancel to zero from terms near 1e7: the
/// kernels differ from the reference only by f32 rounding of those terms (a first version of
/// the fuzz target compared against the result, not the terms, and called -16 vs 0 a bug).
#[test]
fn fuzz_regression_cancellation_stays_within_rounding() {
    let mut rest: Vec<u8> = vec![
        11, 159, 48, 73, 0, 0, 0, 14, 51, 88, 125, 162, 199, 236, 17, 54, 91, 128, 165, 202, 239,
        20, 57, 94, 131, 168, 205, 242, 23, 60, 97, 134, 171, 208, 33, 0, 0, 0, 122, 48, 159, 1,
        196, 14, 125, 51, 241, 42, 233, 88, 162, 199, 236, 17, 54, 91, 128, 165, 202, 239, 20, 57,
        94, 131, 168, 205, 242, 23, 60, 97,
    ];
    rest.extend(std::iter::repeat_n(121u8, 122));
    rest.extend([134, 171, 208, 245, 245, 26]);
    let (rows, k, m) = (3, 96, 3);
    let w = QMatrix::from_gguf(Format::Q4_0, &rest[..rows * 3 * 18], rows, k).unwrap();
    let x: Vec<f32> = (0..m * k)
        .map(|i| f32::from(rest[i % rest.len()] as i8) / 16.0)
        .collect();
    check_against_reference(&w, &x, m);
}

/// Found by the `kernel_blocks` fuzz target: Q5_0 weights near their offset (values close to
/// zero) against large activations. The VNNI kernel took each block's offset back in one lane
/// only, so the other lanes' unsigned sums cancelled in f32 (-4.4238 against the reference's
/// -4.4217); every lane now takes back its own share, exactly.
#[test]
fn fuzz_regression_offset_taken_back_in_every_lane() {
    let data: [u8; 195] = [
        3, 11, 48, 85, 122, 159, 4, 11, 48, 85, 122, 159, 196, 233, 14, 51, 88, 162, 17, 125, 236,
        199, 54, 91, 128, 165, 202, 239, 20, 57, 94, 131, 168, 205, 242, 23, 60, 97, 168, 205, 242,
        39, 60, 97, 134, 171, 96, 152, 189, 226, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 228, 228, 228,
        228, 228, 228, 228, 228, 228, 228, 228, 228, 228, 228, 228, 228, 228, 0, 0, 0, 228, 228,
        228, 228, 228, 228, 228, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 53, 90, 127, 164,
    ];
    let rest = &data[1..];
    let (rows, k, m) = (1, 256, 3);
    let w = QMatrix::from_gguf(Format::Q5_0, &rest[..8 * 22], rows, k).unwrap();
    let x: Vec<f32> = (0..m * k)
        .map(|i| f32::from(rest[i % rest.len()] as i8) / 16.0)
        .collect();
    check_against_reference(&w, &x, m);
}

/// Decode attention over a cache equals the textbook softmax(q k^T / sqrt(d)) v per head, in
/// f64, for grouped-query heads, a context shorter than the cache and head sizes that are not
/// multiples of the dot product's lanes; shapes that do not fit are refused.
#[test]
fn decode_attention_equals_the_textbook_formula() {
    use crate::attention::{attend, dot, CacheLayout};
    let mut rng = Rng(77);
    for (kv_heads, groups, hd, capacity, total) in [
        (2, 7, 64, 150, 133),
        (1, 1, 8, 3, 1),
        (4, 2, 20, 17, 17),
        (3, 3, 33, 9, 5),
        (2, 2, 128, 100, 70),
    ] {
        let heads = kv_heads * groups;
        let layout = CacheLayout {
            kv_heads,
            capacity,
            head_dim: hd,
        };
        let k = rng.vec(kv_heads * capacity * hd, 2.0);
        let v = rng.vec(kv_heads * capacity * hd, 1.0);
        let q = rng.vec(heads * hd, 2.0);
        let scale = 1.0 / (hd as f32).sqrt();
        let mut out = vec![f32::NAN; heads * hd];
        assert!(attend(
            &q,
            &k,
            &v,
            layout,
            total,
            heads,
            scale,
            &mut out,
            &mut Vec::new()
        ));
        for h in 0..heads {
            let base = (h / groups) * capacity * hd;
            let qh = &q[h * hd..][..hd];
            let s: Vec<f64> = (0..total)
                .map(|t| {
                    let kt = &k[base + t * hd..][..hd];
                    qh.iter()
                        .zip(kt)
                        .map(|(a, b)| *a as f64 * *b as f64)
                        .sum::<f64>()
                        * scale as f64
                })
                .collect();
            let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
            let z: f64 = e.iter().sum();
            for d in 0..hd {
                let want: f64 = (0..total)
                    .map(|t| e[t] / z * v[base + t * hd + d] as f64)
                    .sum();
                let got = out[h * hd + d] as f64;
                assert!(
                    (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                    "kv {kv_heads} x {groups}, hd {hd}, total {total}: head {h} dim {d}: {got} vs {want}"
                );
            }
        }
    }
    let a = rng.vec(37, 1.0);
    let b = rng.vec(37, 1.0);
    let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
    assert!((dot(&a, &b) as f64 - want).abs() < 1e-5);
    let layout = CacheLayout {
        kv_heads: 2,
        capacity: 4,
        head_dim: 8,
    };
    let (k, v) = (vec![0f32; 64], vec![0f32; 64]);
    // Past the cache, heads not a multiple of the KV heads, a short query or cache.
    for (q, keys, total, heads) in [
        (32, 64, 5, 4),
        (24, 64, 2, 3),
        (16, 64, 2, 4),
        (32, 32, 2, 4),
    ] {
        let mut out = vec![0f32; heads * 8];
        let q = vec![0f32; q];
        assert!(!attend(
            &q,
            &k[..keys],
            &v,
            layout,
            total,
            heads,
            1.0,
            &mut out,
            &mut Vec::new()
        ));
    }
}

/// Where the CPU has AVX-512 VNNI, matrices of whole groups of 16 rows are interleaved for its
/// kernel; every row reads back (values, scales, minimums, fifth bits) as the same blocks do
/// in a matrix of one row, which is never interleaved.
#[test]
fn interleaved_rows_read_back_as_the_rows() {
    let mut rng = Rng(66);
    let (n, k) = (32, 96);
    for format in Format::ALL {
        let bb = format.gguf_block_bytes();
        let mut bytes = rng.bytes(n * k / QK * bb);
        for (b, block) in bytes.chunks_mut(bb).enumerate() {
            let scale = 0.01 * (1 + b % 7) as f32;
            block[..2].copy_from_slice(&half::f16::from_f32(scale).to_bits().to_le_bytes());
            if format == Format::Q4_1 {
                let min = -0.1 * (b % 5) as f32;
                block[2..4].copy_from_slice(&half::f16::from_f32(min).to_bits().to_le_bytes());
            }
        }
        let w = QMatrix::from_gguf(format, &bytes, n, k).unwrap();
        assert_eq!(
            w.is_interleaved(),
            Isa::detect() == Isa::Avx512Vnni,
            "{format:?}"
        );
        let row_bytes = k / QK * bb;
        let mut row = vec![0f32; k];
        for r in 0..n {
            let one =
                QMatrix::from_gguf(format, &bytes[r * row_bytes..][..row_bytes], 1, k).unwrap();
            assert!(!one.is_interleaved());
            w.dequantize_row(r, &mut row).unwrap();
            assert_eq!(row, one.dequantize(), "{format:?} row {r}");
        }
    }
}

/// Several tokens of one sequence attended together (keys arranged once) equal each token
/// attended alone over the positions it sees, for rows strided as a model's query buffer
/// holds them.
#[test]
fn attended_rows_equal_each_row_alone() {
    use crate::attention::{attend_group, attend_rows, Keys, Queries, KB};
    let mut rng = Rng(88);
    for (heads, hd, first, rows) in [
        (7, 64, 20, 5),
        (3, 20, 1, 4),
        (2, 128, 33, 17),
        (4, 8, 0, 3),
    ] {
        let seen = first + rows - 1;
        let k = rng.vec(seen * hd, 2.0);
        let v = rng.vec(seen * hd, 1.0);
        let stride = heads * hd + 5;
        let q = rng.vec(rows * stride, 2.0);
        let scale = 1.0 / (hd as f32).sqrt();
        let mut out = vec![f32::NAN; rows * heads * hd];
        let queries = Queries {
            q: &q,
            stride,
            rows,
            first,
        };
        attend_rows(
            queries,
            Keys::Rows(&k),
            &v,
            hd,
            scale,
            &mut out,
            &mut Vec::new(),
        );
        // The same keys handed over already in blocks (stale values past the last one).
        let blocks = seen.div_ceil(KB);
        let mut arranged = vec![f32::NAN; blocks * KB * hd];
        for t in 0..seen {
            for d in 0..hd {
                arranged[(t / KB * hd + d) * KB + t % KB] = k[t * hd + d];
            }
        }
        let mut pre = vec![f32::NAN; rows * heads * hd];
        attend_rows(
            queries,
            Keys::Blocks(&arranged),
            &v,
            hd,
            scale,
            &mut pre,
            &mut Vec::new(),
        );
        assert_eq!(pre, out);
        for r in 0..rows {
            let total = first + r;
            let mut one = vec![f32::NAN; heads * hd];
            attend_group(
                &q[r * stride..][..heads * hd],
                &k[..total * hd],
                &v[..total * hd],
                hd,
                scale,
                &mut one,
                &mut Vec::new(),
            );
            assert_eq!(&out[r * heads * hd..][..heads * hd], &one[..], "row {r}");
        }
    }
}
