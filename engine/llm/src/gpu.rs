//! The GPU's own attention kernel (built with the `cuda` feature; `gpu_off.rs` is the twin of
//! a build without it). Entry point: [`BatchAttention`], one launch per layer (two for
//! prompts) that rotates, caches and attends every new token of every sequence of a batch (the
//! tensor path takes about twenty launches per sequence and layer for the same work).
//!
//! Switches, for measuring what each piece is worth: `TESSERA_CUDA_ATTENTION_KERNEL=0` sends
//! attention through the tensor path; `TESSERA_CUDA_EVENT_TRACKING=1` keeps cudarc's
//! per-buffer event tracking (off by default: Tessera runs every GPU operation on the
//! device's one stream, where stream order already orders them).

// Raw device pointers and kernel launches: each block says why it holds.
#![allow(unsafe_code)]

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{DevicePtr, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::WrapErr;
use candle_core::{CudaStorage, CustomOp3, DType, Device, Layout, Shape, Storage, Tensor};

/// Heads per KV head and head size the kernel handles (`MAXG`, `32 * MAXE` in decode.cu).
const MAX_GROUPS: usize = 8;
const MAX_HEAD_DIM: usize = 128;
/// Positions a warp loads before it uses them (`UNR` in decode.cu).
const UNROLL: usize = 4;
/// Warps per block at most (the kernel's 150 registers a thread allow 13).
const MAX_WARPS: usize = 8;

fn env_off(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "0")
}

/// Readies a freshly opened device: cudarc's event tracking off (see the module doc).
pub(crate) fn prepare_device(dev: &Device) {
    if let Device::Cuda(d) = dev {
        if std::env::var("TESSERA_CUDA_EVENT_TRACKING").is_ok_and(|v| v == "1") {
            return;
        }
        // SAFETY: every tensor Tessera creates on this device lives on the device's one
        // stream (candle's CudaDevice owns a single stream), so stream order already orders
        // every use before the next write and before the free; the events only duplicate it.
        unsafe { d.disable_event_tracking() };
    }
}

/// The device address of a contiguous f32 tensor's first element.
pub(crate) fn device_ptr(t: &Tensor) -> candle_core::Result<i64> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cuda(cs) = &*storage else {
        return Err(candle_core::Error::Msg(
            "decode kernel: not a CUDA tensor".into(),
        ));
    };
    if !layout.is_contiguous() {
        return Err(candle_core::Error::Msg(
            "decode kernel: a non-contiguous cache".into(),
        ));
    }
    let s = cs.as_cuda_slice::<f32>()?;
    let (ptr, _sync) = s.device_ptr(s.stream());
    Ok((ptr + (layout.start_offset() * std::mem::size_of::<f32>()) as u64) as i64)
}

/// One forward pass's attention over a batch on the GPU (see `kernels/src/cuda/decode.cu`).
pub(crate) struct BatchAttention {
    /// Row positions and sequences, sequence capacities, then per layer the sequences' key
    /// and value cache addresses (i64 words).
    table: Tensor,
    cos: Tensor,
    sin: Tensor,
    /// Rows (new tokens) and sequences.
    m: usize,
    nseq: usize,
    /// Whether every row is its own sequence's only new token (one launch per layer).
    fused: bool,
    mode: i32,
    nh: usize,
    nkv: usize,
    hd: usize,
    interleaved: bool,
    scale: f32,
    warps: usize,
    layer: usize,
}

impl BatchAttention {
    /// Whether the kernel serves this shape on `dev` (and is not switched off).
    pub(crate) fn applies(dev: &Device, nh: usize, nkv: usize, hd: usize) -> bool {
        matches!(dev, Device::Cuda(_))
            && !env_off("TESSERA_CUDA_ATTENTION_KERNEL")
            && nkv > 0
            && nh.is_multiple_of(nkv)
            && nh / nkv <= MAX_GROUPS
            && hd.is_multiple_of(32)
            && hd <= MAX_HEAD_DIM
    }

    /// A pass over `m` rows of `nseq` sequences; `table` as the kernel reads it (built by
    /// the caller from the caches after they were grown for this pass), `longest` the longest
    /// attended span.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        table: Vec<i64>,
        (m, nseq, nh, nkv, hd): (usize, usize, usize, usize, usize),
        interleaved: bool,
        scale: f32,
        (cos, sin): (&Tensor, &Tensor),
        longest: usize,
        dev: &Device,
    ) -> candle_core::Result<Self> {
        let n = table.len();
        let table = Tensor::from_vec(table, n, dev)?;
        // Enough warps that each runs a few position runs; fewer when the grid alone fills
        // the GPU; never more than the shared memory (48 KiB) holds.
        let groups = nh / nkv;
        let per_warp = |w: usize| (groups * (hd + 2) * w + groups * hd) * 4;
        let mut warps = longest.div_ceil(UNROLL * 4).clamp(1, MAX_WARPS);
        if m * nkv >= 256 {
            warps = warps.min(4);
        }
        while warps > 1 && per_warp(warps) > 48 * 1024 {
            warps -= 1;
        }
        Ok(Self {
            table,
            cos: cos.contiguous()?,
            sin: sin.contiguous()?,
            m,
            nseq,
            fused: m == nseq,
            mode: 0,
            nh,
            nkv,
            hd,
            interleaved,
            scale,
            warps,
            layer: 0,
        })
    }

    /// The attention output `[m, nh * hd]` of layer `layer`, from the un-rotated `q`
    /// `[m, nh * hd]`, `k` and `v` `[m, nkv * hd]`; the new keys and values are written into
    /// the caches.
    pub(crate) fn attend(
        &mut self,
        layer: usize,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
    ) -> candle_core::Result<Tensor> {
        self.layer = layer;
        let q = q.to_dtype(DType::F32)?.contiguous()?;
        let k = k.to_dtype(DType::F32)?.contiguous()?;
        let v = v.to_dtype(DType::F32)?.contiguous()?;
        if self.fused {
            self.mode = 0;
            return q.apply_op3_no_bwd(&k, &v, self);
        }
        // Rows of one sequence read each other's keys: every write first, then attention.
        self.mode = 1;
        q.apply_op3_no_bwd(&k, &v, self)?;
        self.mode = 2;
        q.apply_op3_no_bwd(&k, &v, self)
    }
}

fn cuda_part<'a>(
    s: &'a CudaStorage,
    l: &Layout,
    len: usize,
    what: &str,
) -> candle_core::Result<candle_core::cuda_backend::cudarc::driver::CudaView<'a, f32>> {
    match l.contiguous_offsets() {
        Some((a, b)) if b - a == len => Ok(s.as_cuda_slice::<f32>()?.slice(a..b)),
        _ => Err(candle_core::Error::Msg(format!(
            "decode kernel: {what} is not a contiguous [{len}] buffer"
        ))),
    }
}

fn held_slice<T: candle_core::cuda_backend::CudaDType>(
    t: &Tensor,
    f: impl FnOnce(
        &candle_core::cuda_backend::cudarc::driver::CudaSlice<T>,
        usize,
    ) -> candle_core::Result<()>,
) -> candle_core::Result<()> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cuda(cs) = &*storage else {
        return Err(candle_core::Error::Msg(
            "decode kernel: not a CUDA tensor".into(),
        ));
    };
    f(cs.as_cuda_slice::<T>()?, layout.start_offset())
}

impl CustomOp3 for BatchAttention {
    fn name(&self) -> &'static str {
        "tessera-batch-attention"
    }

    fn cpu_fwd(
        &self,
        _: &candle_core::CpuStorage,
        _: &Layout,
        _: &candle_core::CpuStorage,
        _: &Layout,
        _: &candle_core::CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, Shape)> {
        Err(candle_core::Error::Msg(
            "the decode kernel runs on CUDA devices only".into(),
        ))
    }

    fn cuda_fwd(
        &self,
        qs: &CudaStorage,
        ql: &Layout,
        ks: &CudaStorage,
        kl: &Layout,
        vs: &CudaStorage,
        vl: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let (m, nh, nkv, hd) = (self.m, self.nh, self.nkv, self.hd);
        let dev = qs.device().clone();
        let func = dev.get_or_load_custom_func(
            "tessera_decode_attention",
            "tessera_decode",
            tessera_kernels::cuda::DECODE_PTX,
        )?;
        let q = cuda_part(qs, ql, m * nh * hd, "q")?;
        let k = cuda_part(ks, kl, m * nkv * hd, "k")?;
        let v = cuda_part(vs, vl, m * nkv * hd, "v")?;
        // SAFETY: every element is written by the kernel (one block per KV head and
        // sequence writes all of its heads' `hd` values).
        let out = unsafe { dev.alloc::<f32>(m * nh * hd)? };
        let groups = nh / nkv;
        let shared = (groups * hd + 2 * self.warps * groups + self.warps * groups * hd) * 4;
        let cfg = LaunchConfig {
            // Rows beyond the grid's 65535 are taken in turn by the blocks.
            grid_dim: (nkv as u32, m.min(65535) as u32, 1),
            block_dim: (self.warps as u32 * 32, 1, 1),
            shared_mem_bytes: shared as u32,
        };
        let (layer, mi, nseq, nhi, nkvi, hdi) = (
            self.layer as i32,
            m as i32,
            self.nseq as i32,
            nh as i32,
            nkv as i32,
            hd as i32,
        );
        let inter = i32::from(self.interleaved);
        held_slice::<i64>(&self.table, |table, t0| {
            held_slice::<f32>(&self.cos, |cos, c0| {
                held_slice::<f32>(&self.sin, |sin, s0| {
                    let table = table.slice(t0..);
                    let cos = cos.slice(c0..);
                    let sin = sin.slice(s0..);
                    let mut b = func.builder();
                    b.arg(&q);
                    b.arg(&k);
                    b.arg(&v);
                    b.arg(&table);
                    b.arg(&layer);
                    b.arg(&cos);
                    b.arg(&sin);
                    b.arg(&out);
                    b.arg(&mi);
                    b.arg(&nseq);
                    b.arg(&nhi);
                    b.arg(&nkvi);
                    b.arg(&hdi);
                    b.arg(&inter);
                    b.arg(&self.scale);
                    b.arg(&self.mode);
                    // SAFETY: the arguments match the kernel's signature in decode.cu; the
                    // table's addresses are live caches with room for every row's position
                    // (grown before the pass), and the shapes were checked above.
                    unsafe { b.launch(cfg) }.w()?;
                    Ok(())
                })
            })
        })?;
        Ok((
            CudaStorage::wrap_cuda_slice(out, dev),
            Shape::from((m, nh * hd)),
        ))
    }
}
