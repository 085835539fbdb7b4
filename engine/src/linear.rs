//! A model's linear layer: Tessera's own kernels on the CPU (`tessera-kernels`: Q8_0, Q4_0,
//! Q4_1 and Q5_0 read in place, Q4_K repacked exactly as Q4_1 blocks, Q6_K unpacked to a byte
//! per value with a scale per 16), candle's quantized matmul for every other type and device.
//! Entry point: [`Linear`].

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Storage, Tensor};
use std::sync::Arc;
use tessera_kernels::matmul::{Format, QMatrix};

/// A weight matrix and the kernel that multiplies by it.
pub enum Linear {
    /// candle's quantized matmul (its own kernels; the fallback).
    Candle(QMatMul),
    /// Tessera's kernels (tiled over rows and columns, SIMD chosen at run time).
    Tessera(Arc<QMatrix>),
}

/// Whether Tessera's kernels run a GGUF type.
pub fn has_kernel(t: GgmlDType) -> bool {
    matches!(
        t,
        GgmlDType::Q8_0
            | GgmlDType::Q4_0
            | GgmlDType::Q4_1
            | GgmlDType::Q5_0
            | GgmlDType::Q4K
            | GgmlDType::Q6K
    )
}

/// The tensor's blocks as the kernels' matrix (`None`: no kernel for its type).
fn kernel_matrix(
    t: GgmlDType,
    data: &[u8],
    n: usize,
    k: usize,
) -> Option<Result<QMatrix, tessera_kernels::KernelError>> {
    let format = match t {
        GgmlDType::Q8_0 => Format::Q8_0,
        GgmlDType::Q4_0 => Format::Q4_0,
        GgmlDType::Q4_1 => Format::Q4_1,
        GgmlDType::Q5_0 => Format::Q5_0,
        GgmlDType::Q6K => Format::Q6K,
        GgmlDType::Q4K => return Some(QMatrix::from_gguf_q4_k(data, n, k)),
        _ => return None,
    };
    Some(QMatrix::from_gguf(format, data, n, k))
}

impl Linear {
    /// The layer for `t`: Tessera's kernels when `kernels` is on, the tensor's type has one
    /// and it lives on the CPU; candle's otherwise.
    pub fn new(t: Arc<QTensor>, kernels: bool) -> candle_core::Result<Self> {
        if let (true, true, Device::Cpu, &[n, k]) =
            (kernels, has_kernel(t.dtype()), t.device(), t.shape().dims())
        {
            let data = t.data()?;
            if let Some(m) = kernel_matrix(t.dtype(), &data, n, k) {
                let m = m.map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                return Ok(Self::Tessera(Arc::new(m)));
            }
        }
        Ok(Self::Candle(QMatMul::from_arc(t)?))
    }

    /// `x * W^T` over the last dimension of `x`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::Candle(m) => m.forward(x),
            Self::Tessera(w) => {
                let dims = x.dims().to_vec();
                let k = *dims.last().unwrap_or(&0);
                if k != w.cols() {
                    return Err(candle_core::Error::Msg(format!(
                        "linear layer: input has {k} columns, weights {}",
                        w.cols()
                    )));
                }
                let rows = x.elem_count() / k.max(1);
                let x = x.to_dtype(DType::F32)?;
                let mut y = vec![0f32; rows * w.rows()];
                let run = |flat: &[f32], y: &mut [f32]| {
                    w.matmul(flat, rows, y)
                        .map_err(|e| candle_core::Error::Msg(e.to_string()))
                };
                {
                    // A contiguous CPU tensor is read in place (no copy per call: decode
                    // runs seven of these per layer and token).
                    let (storage, layout) = x.storage_and_layout();
                    if let (Storage::Cpu(cpu), Some((a, b))) =
                        (&*storage, layout.contiguous_offsets())
                    {
                        run(&cpu.as_slice::<f32>()?[a..b], &mut y)?;
                    } else {
                        drop(storage);
                        run(&x.flatten_all()?.to_vec1::<f32>()?, &mut y)?;
                    }
                }
                let mut out_dims = dims;
                if let Some(last) = out_dims.last_mut() {
                    *last = w.rows();
                }
                Tensor::from_vec(y, out_dims, x.device())
            }
        }
    }
}
