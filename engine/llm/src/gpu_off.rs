//! The twin of `gpu.rs` in a build without the `cuda` feature: nothing applies, so the
//! tensor path serves every device.

use candle_core::{Device, Tensor};

/// Nothing to ready without CUDA.
pub(crate) fn prepare_device(_: &Device) {}

/// No device addresses without CUDA.
pub(crate) fn device_ptr(_: &Tensor) -> candle_core::Result<i64> {
    Err(candle_core::Error::Msg(
        "this build has no CUDA backend".into(),
    ))
}

/// Never constructed without CUDA.
pub(crate) struct BatchAttention;

impl BatchAttention {
    /// Never applies without CUDA.
    pub(crate) fn applies(_: &Device, _: usize, _: usize, _: usize) -> bool {
        false
    }

    /// Refused without CUDA.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        _: Vec<i64>,
        _: (usize, usize, usize, usize, usize),
        _: bool,
        _: f32,
        _: (&Tensor, &Tensor),
        _: usize,
        _: &Device,
    ) -> candle_core::Result<Self> {
        Err(candle_core::Error::Msg(
            "this build has no CUDA backend".into(),
        ))
    }

    /// Refused without CUDA.
    pub(crate) fn attend(
        &mut self,
        _: usize,
        _: &Tensor,
        _: &Tensor,
        _: &Tensor,
    ) -> candle_core::Result<Tensor> {
        Err(candle_core::Error::Msg(
            "this build has no CUDA backend".into(),
        ))
    }
}
