//! A model's linear layer: Tessera's own kernels on the CPU (`tessera-kernels`: Q8_0, Q4_0,
//! Q4_1 and Q5_0 read in place, Q4_K repacked exactly as Q4_1 blocks, Q6_K unpacked to a byte
//! per value with a scale per 16), candle's quantized matmul for every other type and device.
//! Entry point: [`Linear`].

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Storage, Tensor};
use std::sync::Arc;
use tessera_kernels::matmul::{matmul_many, Format, QMatrix};

/// A weight matrix and the kernel that multiplies by it.
pub enum Linear {
    /// candle's quantized matmul (its own kernels; the fallback).
    Candle(QMatMul),
    /// Tessera's kernels (tiled over rows and columns, SIMD chosen at run time).
    Tessera(Arc<QMatrix>),
}

/// The kernels' format for a GGUF type (`None`: Tessera's kernels do not run it).
pub fn kernel_format(t: GgmlDType) -> Option<Format> {
    Some(match t {
        GgmlDType::Q8_0 => Format::Q8_0,
        GgmlDType::Q4_0 => Format::Q4_0,
        GgmlDType::Q4_1 => Format::Q4_1,
        GgmlDType::Q5_0 => Format::Q5_0,
        GgmlDType::Q6K => Format::Q6K,
        GgmlDType::Q4K => Format::Q4K,
        _ => return None,
    })
}

impl Linear {
    /// The layer for `t`: Tessera's kernels when `kernels` is on, the tensor's type has one
    /// and it lives on the CPU; candle's otherwise.
    pub fn new(t: Arc<QTensor>, kernels: bool) -> candle_core::Result<Self> {
        if let (true, Some(format), Device::Cpu, &[n, k]) = (
            kernels,
            kernel_format(t.dtype()),
            t.device(),
            t.shape().dims(),
        ) {
            let m = QMatrix::from_gguf(format, &t.data()?, n, k)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            return Ok(Self::Tessera(Arc::new(m)));
        }
        Ok(Self::Candle(QMatMul::from_arc(t)?))
    }

    /// The kernels' matrix, when this layer runs on Tessera's kernels.
    pub fn matrix(&self) -> Option<&Arc<QMatrix>> {
        match self {
            Self::Tessera(m) => Some(m),
            Self::Candle(_) => None,
        }
    }

    /// `x * W^T` over the last dimension of `x`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::Candle(m) => m.forward(x),
            Self::Tessera(_) => Ok(Self::forward_many(&[self], x)?.remove(0)),
        }
    }

    /// Several layers over the same input (attention's Q, K and V): on Tessera's kernels the
    /// input is quantized once and every product runs in one parallel pass.
    pub fn forward_many(layers: &[&Linear], x: &Tensor) -> candle_core::Result<Vec<Tensor>> {
        let Some(mats) = tessera_matrices(layers) else {
            return layers.iter().map(|l| l.forward(x)).collect();
        };
        let (ys, dims) = run(&mats, x)?;
        ys.into_iter()
            .zip(&mats)
            .map(|(y, w)| Tensor::from_vec(y, out_dims(&dims, w.rows()), x.device()))
            .collect()
    }

    /// `silu(x * gate^T) * (x * up^T)`, the SwiGLU of an MLP: on Tessera's kernels both
    /// products run in one pass and the gating is applied to their buffers, not as three more
    /// tensor operations.
    pub fn swiglu(gate: &Linear, up: &Linear, x: &Tensor) -> candle_core::Result<Tensor> {
        let Some(mats) = tessera_matrices(&[gate, up]) else {
            let g = candle_nn::ops::silu(&gate.forward(x)?)?;
            return g * up.forward(x)?;
        };
        if mats[0].rows() != mats[1].rows() {
            return Err(candle_core::Error::Msg(format!(
                "SwiGLU: gate has {} rows, up {}",
                mats[0].rows(),
                mats[1].rows()
            )));
        }
        let (mut ys, dims) = run(&mats, x)?;
        let u = ys.pop().unwrap_or_default();
        let mut g = ys.pop().unwrap_or_default();
        tessera_kernels::activation::silu_mul(&mut g, &u);
        Tensor::from_vec(g, out_dims(&dims, mats[0].rows()), x.device())
    }
}

/// The layers' matrices, when every layer runs on Tessera's kernels.
fn tessera_matrices<'a>(layers: &[&'a Linear]) -> Option<Vec<&'a QMatrix>> {
    layers
        .iter()
        .map(|l| l.matrix().map(|w| w.as_ref()))
        .collect()
}

fn out_dims(dims: &[usize], cols: usize) -> Vec<usize> {
    let mut d = dims.to_vec();
    if let Some(last) = d.last_mut() {
        *last = cols;
    }
    d
}

/// The products of `x` (read in place when it is a contiguous CPU tensor: no copy per call,
/// decode runs several of these per layer and token) with every matrix, and `x`'s dims.
fn run(mats: &[&QMatrix], x: &Tensor) -> candle_core::Result<(Vec<Vec<f32>>, Vec<usize>)> {
    let dims = x.dims().to_vec();
    let k = *dims.last().unwrap_or(&0);
    if let Some(w) = mats.iter().find(|w| w.cols() != k) {
        return Err(candle_core::Error::Msg(format!(
            "linear layer: input has {k} columns, weights {}",
            w.cols()
        )));
    }
    let rows = x.elem_count() / k.max(1);
    let x = x.to_dtype(DType::F32)?;
    let mut ys: Vec<Vec<f32>> = mats.iter().map(|w| vec![0f32; rows * w.rows()]).collect();
    let go = |flat: &[f32], ys: &mut [Vec<f32>]| {
        let mut outs: Vec<&mut [f32]> = ys.iter_mut().map(|y| y.as_mut_slice()).collect();
        matmul_many(mats, flat, rows, &mut outs).map_err(|e| candle_core::Error::Msg(e.to_string()))
    };
    {
        let (storage, layout) = x.storage_and_layout();
        if let (Storage::Cpu(cpu), Some((a, b))) = (&*storage, layout.contiguous_offsets()) {
            go(&cpu.as_slice::<f32>()?[a..b], &mut ys)?;
        } else {
            drop(storage);
            go(&x.flatten_all()?.to_vec1::<f32>()?, &mut ys)?;
        }
    }
    Ok((ys, dims))
}
