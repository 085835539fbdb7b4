//! A model's linear layer: Tessera's own Q8_0 kernels on the CPU (`tessera-kernels`), candle's
//! quantized matmul for every other type and device. Entry point: [`Linear`].

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use std::sync::Arc;
use tessera_kernels::q8::Q8Matrix;

/// A weight matrix and the kernel that multiplies by it.
pub enum Linear {
    /// candle's quantized matmul (its own kernels; the fallback).
    Candle(QMatMul),
    /// Tessera's Q8_0 kernels (tiled over rows and columns, SIMD chosen at run time).
    Q8(Arc<Q8Matrix>),
}

impl Linear {
    /// The layer for `t`: Tessera's kernels when `kernels` is on, the tensor is Q8_0 and lives
    /// on the CPU; candle's otherwise.
    pub fn new(t: Arc<QTensor>, kernels: bool) -> candle_core::Result<Self> {
        if kernels && t.dtype() == GgmlDType::Q8_0 && matches!(t.device(), Device::Cpu) {
            if let &[n, k] = t.shape().dims() {
                let data = t.data()?;
                let m = Q8Matrix::from_gguf_q8_0(&data, n, k)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                return Ok(Self::Q8(Arc::new(m)));
            }
        }
        Ok(Self::Candle(QMatMul::from_arc(t)?))
    }

    /// `x * W^T` over the last dimension of `x`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::Candle(m) => m.forward(x),
            Self::Q8(w) => {
                let dims = x.dims().to_vec();
                let k = *dims.last().unwrap_or(&0);
                if k != w.cols() {
                    return Err(candle_core::Error::Msg(format!(
                        "linear layer: input has {k} columns, weights {}",
                        w.cols()
                    )));
                }
                let rows = x.elem_count() / k.max(1);
                let flat: Vec<f32> = x
                    .to_dtype(candle_core::DType::F32)?
                    .flatten_all()?
                    .to_vec1()?;
                let mut y = vec![0f32; rows * w.rows()];
                w.matmul(&flat, rows, &mut y)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                let mut out_dims = dims;
                if let Some(last) = out_dims.last_mut() {
                    *last = w.rows();
                }
                Tensor::from_vec(y, out_dims, x.device())
            }
        }
    }
}
