//! Kernel throughput per block format, in FLOP/s (two per multiply-add of the f32 product the
//! kernel stands for), beside the machine's measured int8 dot-product peak on one core.
//! `cargo bench -p tessera-kernels`. The weight matrix is 4864 x 768 (Qwen2.5-0.5B's MLP
//! height; 768 columns so that the k-quants' 256-value super-blocks divide the rows): decode
//! (1 row) and prefill (64 rows), on one thread.

// criterion's macros generate undocumented functions; a benchmark stops at its first failure.
#![allow(missing_docs, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tessera_kernels::matmul::{Format, Isa, QMatrix, Q4_K_BYTES, Q6_K_BYTES, QK};
use tessera_kernels::peak;

fn data(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            (((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32
                / (1u32 << 24) as f32)
                - 0.5
        })
        .collect()
}

/// Super-blocks with arbitrary values and small, finite scales.
fn k_blocks(bytes_per: usize, scale_at: &[usize], count: usize) -> Vec<u8> {
    let mut b: Vec<u8> = data(count * bytes_per, 7)
        .iter()
        .map(|v| (v * 511.0) as i32 as u8)
        .collect();
    for sb in b.chunks_mut(bytes_per) {
        for &at in scale_at {
            sb[at..at + 2].copy_from_slice(&half::f16::from_f32(0.01).to_bits().to_le_bytes());
        }
    }
    b
}

fn matrices(n: usize, k: usize) -> Vec<(&'static str, QMatrix)> {
    let w = data(n * k, 1);
    let mut out: Vec<(&'static str, QMatrix)> = [
        ("q8_0", Format::Q8_0),
        ("q4_0", Format::Q4_0),
        ("q4_1", Format::Q4_1),
        ("q5_0", Format::Q5_0),
    ]
    .into_iter()
    .map(|(name, f)| (name, QMatrix::quantize(f, &w, n, k).expect("quantize")))
    .collect();
    let sb = n * k / 256;
    out.push((
        "q4_k",
        QMatrix::from_gguf(Format::Q4K, &k_blocks(Q4_K_BYTES, &[0, 2], sb), n, k).expect("q4_k"),
    ));
    out.push((
        "q6_k",
        QMatrix::from_gguf(Format::Q6K, &k_blocks(Q6_K_BYTES, &[208], sb), n, k).expect("q6_k"),
    ));
    out
}

fn kernels(c: &mut Criterion) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let isa = Isa::detect();
    let (n, k) = (4864, 768);
    assert_eq!(k % QK, 0);
    let mats = matrices(n, k);
    for m in [1usize, 64] {
        let mut group = c.benchmark_group(format!("matmul_{isa:?}_m{m}"));
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        let x = data(m * k, 3);
        let mut y = vec![0f32; m * n];
        for (name, w) in &mats {
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                pool.install(|| b.iter(|| w.matmul(&x, m, &mut y).expect("matmul")))
            });
        }
        group.finish();
    }
    let mut group = c.benchmark_group("peak_int8");
    for isa in [Isa::Avx512Vnni, Isa::Avx2] {
        if let Some(ops) = peak::spin(isa, 1) {
            let iters = 100_000;
            group.throughput(Throughput::Elements(ops * iters));
            group.bench_function(BenchmarkId::from_parameter(format!("{isa:?}")), |b| {
                b.iter(|| peak::spin(isa, iters))
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = kernels
}
criterion_main!(benches);
