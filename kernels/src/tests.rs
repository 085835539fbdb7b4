use crate::q8::{quantize_block, Isa, Q8Matrix, GGUF_BLOCK_BYTES, QK};

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
}

fn isas() -> Vec<Isa> {
    [Isa::Avx512Vnni, Isa::Avx2, Isa::Neon]
        .into_iter()
        .filter(|i| i.supported())
        .collect()
}

/// Every SIMD kernel against the scalar reference; the tolerance is relative to the sum of
/// the magnitudes of the terms (the sums differ only in f32 rounding order).
fn check_against_reference(w: &Q8Matrix, x: &[f32], m: usize) {
    let n = w.rows();
    let mut reference = vec![0f32; m * n];
    w.matmul_with(Isa::Scalar, x, m, &mut reference).unwrap();
    let wd = w.dequantize();
    for isa in isas() {
        let mut y = vec![f32::NAN; m * n];
        w.matmul_with(isa, x, m, &mut y).unwrap();
        for i in 0..m {
            for j in 0..n {
                let mag: f32 = (0..w.cols())
                    .map(|t| (x[i * w.cols() + t] * wd[j * w.cols() + t]).abs())
                    .sum();
                let (a, b) = (y[i * n + j], reference[i * n + j]);
                // Exact integer block sums: only the f32 order of the block terms differs.
                let nb = (w.cols() / QK) as f32;
                assert!(
                    (a - b).abs() <= 2.0 * nb * f32::EPSILON * mag + 1e-30,
                    "{isa:?} m={m} n={n} k={} at ({i},{j}): {a} vs reference {b}",
                    w.cols()
                );
            }
        }
    }
}

#[test]
fn simd_kernels_equal_the_reference_on_odd_shapes() {
    let mut rng = Rng(1);
    for &k in &[32, 64, 96, 576, 896, 1536] {
        for &(m, n) in &[(1, 1), (1, 5), (3, 4), (4, 4), (5, 9), (9, 13), (17, 33)] {
            let w = Q8Matrix::quantize(&rng.vec(n * k, 0.2), n, k).unwrap();
            let x = rng.vec(m * k, 3.0);
            check_against_reference(&w, &x, m);
        }
    }
}

#[test]
fn adversarial_blocks_extreme_scales_zeros_and_saturated_values() {
    let mut rng = Rng(7);
    let (m, n, k) = (5, 7, 96);
    let mut w = rng.vec(n * k, 1.0);
    // A zero block, a block at f16's largest scale, a tiny one, one of all -1 (q = -127).
    w[..QK].iter_mut().for_each(|v| *v = 0.0);
    w[QK..2 * QK].iter_mut().for_each(|v| *v *= 60000.0 * 127.0);
    w[2 * QK..3 * QK].iter_mut().for_each(|v| *v *= 1e-6);
    w[3 * QK..4 * QK].iter_mut().for_each(|v| *v = -1.0);
    let wq = Q8Matrix::quantize(&w, n, k).unwrap();
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
    check_against_reference(&wq, &x, m);

    // Raw GGUF blocks holding -128 (a value the reference quantizer never writes).
    let mut bytes = Vec::new();
    for b in 0..(2 * k / QK) {
        bytes.extend_from_slice(
            &half::f16::from_f32(0.01 * (b + 1) as f32)
                .to_bits()
                .to_le_bytes(),
        );
        bytes.extend((0..QK).map(|t| if t % 3 == 0 { 0x80u8 } else { (t * 37) as u8 }));
    }
    let raw = Q8Matrix::from_gguf_q8_0(&bytes, 2, k).unwrap();
    check_against_reference(&raw, &rng.vec(3 * k, 2.0), 3);
}

#[test]
fn the_reference_is_the_exact_block_product() {
    let mut rng = Rng(3);
    let (m, n, k) = (2, 3, 64);
    let w = Q8Matrix::quantize(&rng.vec(n * k, 1.0), n, k).unwrap();
    let x = rng.vec(m * k, 1.0);
    let mut y = vec![0f32; m * n];
    w.matmul_with(Isa::Scalar, &x, m, &mut y).unwrap();
    // By hand: dequantize both operands as quantized (activation scales rounded to f16, as
    // GGUF stores them), multiply in f64.
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
                "{} vs {want}",
                y[i * n + j]
            );
        }
    }
    // And close to the f32 product (quantization error only).
    for i in 0..m {
        for j in 0..n {
            let exact: f32 = (0..k).map(|t| x[i * k + t] * wd[j * k + t]).sum();
            assert!((y[i * n + j] - exact).abs() < 0.05 * exact.abs().max(1.0));
        }
    }
}

#[test]
fn bad_shapes_and_blocks_are_refused() {
    assert!(Q8Matrix::from_gguf_q8_0(&[0; GGUF_BLOCK_BYTES], 1, 48).is_err());
    assert!(Q8Matrix::from_gguf_q8_0(&[0; GGUF_BLOCK_BYTES - 1], 1, 32).is_err());
    let mut nan = vec![0u8; GGUF_BLOCK_BYTES];
    nan[..2].copy_from_slice(&half::f16::NAN.to_bits().to_le_bytes());
    assert!(Q8Matrix::from_gguf_q8_0(&nan, 1, 32).is_err());
    let w = Q8Matrix::quantize(&[0.5; 64], 2, 32).unwrap();
    let mut y = vec![0f32; 2];
    assert!(w.matmul(&[1.0; 31], 1, &mut y).is_err());
    assert!(w.matmul(&[1.0; 32], 1, &mut y[..1]).is_err());
    w.matmul(&[1.0; 32], 1, &mut y).unwrap();
    assert!((y[0] - 16.0).abs() < 0.1, "{}", y[0]);
}

#[test]
fn non_finite_activations_give_nan_not_garbage() {
    let w = Q8Matrix::quantize(&[0.5; 64], 2, 32).unwrap();
    let mut x = vec![1.0f32; 32];
    x[3] = f32::INFINITY;
    for isa in std::iter::once(Isa::Scalar).chain(isas()) {
        let mut y = vec![0f32; 2];
        w.matmul_with(isa, &x, 1, &mut y).unwrap();
        assert!(y.iter().all(|v| v.is_nan()), "{isa:?}: {y:?}");
    }
}
