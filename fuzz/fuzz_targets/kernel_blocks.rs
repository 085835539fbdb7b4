//! Arbitrary GGUF weight blocks through the kernels: reading them never panics (bad sizes and
//! non-finite scales are errors), and every SIMD kernel this CPU has agrees with the scalar
//! reference on what was read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_kernels::matmul::{Format, Isa, QMatrix};

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let format = [
        Format::Q8_0,
        Format::Q4_0,
        Format::Q4_1,
        Format::Q5_0,
        Format::Q4K,
        Format::Q6K,
    ][usize::from(head % 6)];
    let per = if matches!(format, Format::Q4K | Format::Q6K) { 256 } else { 32 };
    let rows = 1 + usize::from(head / 6 % 3);
    let blocks = rest.len() / format.gguf_block_bytes() / rows;
    if blocks == 0 {
        let _ = QMatrix::from_gguf(format, rest, rows, per);
        return;
    }
    let k = blocks * per;
    let bytes = &rest[..rows * blocks * format.gguf_block_bytes()];
    let Ok(w) = QMatrix::from_gguf(format, bytes, rows, k) else {
        return;
    };
    // Activations from the same bytes, small and finite.
    let m = 3;
    let x: Vec<f32> = (0..m * k)
        .map(|i| f32::from(rest[i % rest.len()] as i8) / 16.0)
        .collect();
    let mut reference = vec![0f32; m * rows];
    w.matmul_with(Isa::Scalar, &x, m, &mut reference).unwrap();
    // The kernels' block sums are exact integers; only the f32 order of the block terms
    // differs, so the bound is relative to the sum of the terms' magnitudes (which for the
    // formats with a minimum, Q4_1 and Q4_K, the dequantized weights do not give: those are
    // checked for reading only here, and against the reference in the unit tests).
    if matches!(format, Format::Q4_1 | Format::Q4K) {
        for isa in [Isa::Avx512Vnni, Isa::Avx2, Isa::Neon] {
            if isa.supported() {
                let mut y = vec![0f32; m * rows];
                w.matmul_with(isa, &x, m, &mut y).unwrap();
            }
        }
        return;
    }
    let wd = w.dequantize();
    for isa in [Isa::Avx512Vnni, Isa::Avx2, Isa::Neon] {
        if !isa.supported() {
            continue;
        }
        let mut y = vec![0f32; m * rows];
        w.matmul_with(isa, &x, m, &mut y).unwrap();
        for i in 0..m {
            for j in 0..rows {
                let mag: f32 = (0..k)
                    .map(|t| (x[i * k + t] * wd[j * k + t]).abs())
                    .sum();
                let (a, b) = (y[i * rows + j], reference[i * rows + j]);
                // Activation quantization error is shared; 4 x blocks x eps of the magnitudes
                // (with slack for the activations' rounding to 8 bits).
                let tol = 4.0 * (k / 32) as f32 * f32::EPSILON * mag * 1.1 + 1e-30;
                assert!(
                    (a - b).abs() <= tol || !mag.is_finite(),
                    "{format:?} {isa:?} ({i},{j}): {a} vs {b}, magnitude {mag}"
                );
            }
        }
    }
});
