//! Attention of one new token over a key/value cache held in host memory: the decode step's
//! attention, once per sequence, layer and step, over every position of the context (about a
//! thousand after a reading prompt). Entry point: [`attend`].
//!
//! Written so the compiler vectorizes it: dot products in 16 independent lanes (a sum taken in
//! order is one long chain of dependent additions, 64 of them per key), the softmax's `e^x`
//! with [`crate::activation::exp`] (no libm call per value), and each cached key read once for
//! all the query heads that share it (grouped-query attention).

use crate::activation::exp;

/// Lanes of the dot product's accumulators.
const LANES: usize = 16;

/// `a · b` over the common length, accumulated in `LANES` (16) lanes.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = 0f32;
    for (x, y) in ar.iter().zip(br) {
        s += x * y;
    }
    // Halves added pairwise, as a tree: the same few vector additions on every CPU.
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for i in 0..w {
            acc[i] += acc[i + w];
        }
    }
    acc[0] + s
}

/// The sum of `x`, accumulated in [`LANES`] lanes.
#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let c = x.chunks_exact(LANES);
    let rest: f32 = c.remainder().iter().sum();
    for x in c {
        for i in 0..LANES {
            acc[i] += x[i];
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// The layout of one layer's cache: `kv_heads` heads, each `capacity` positions of
/// `head_dim` values (`[kv_heads, capacity, head_dim]`, for keys and values alike).
#[derive(Debug, Clone, Copy)]
pub struct CacheLayout {
    /// Key/value heads.
    pub kv_heads: usize,
    /// Positions each head has room for.
    pub capacity: usize,
    /// Values per position and head.
    pub head_dim: usize,
}

/// `out = softmax(q k^T * scale) v` for one token's `heads` query heads over the first
/// `total` cached positions of `k` and `v` (laid out as `layout` says; query head `h` reads
/// key/value head `h / (heads / kv_heads)`). `scores` is scratch (resized here). Returns
/// `false`, touching nothing, when the shapes do not fit together.
#[allow(clippy::too_many_arguments)]
pub fn attend(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    layout: CacheLayout,
    total: usize,
    heads: usize,
    scale: f32,
    out: &mut [f32],
    scores: &mut Vec<f32>,
) -> bool {
    let CacheLayout {
        kv_heads,
        capacity,
        head_dim: hd,
    } = layout;
    let size = kv_heads * capacity * hd;
    if total > capacity
        || kv_heads == 0
        || heads == 0
        || hd == 0
        || !heads.is_multiple_of(kv_heads)
        || q.len() != heads * hd
        || out.len() != heads * hd
        || k.len() < size
        || v.len() < size
    {
        return false;
    }
    let groups = heads / kv_heads;
    for (g, (qg, og)) in q
        .chunks_exact(groups * hd)
        .zip(out.chunks_exact_mut(groups * hd))
        .enumerate()
    {
        let base = g * capacity * hd;
        attend_group(
            qg,
            &k[base..][..total * hd],
            &v[base..][..total * hd],
            hd,
            scale,
            og,
            scores,
        );
    }
    true
}

/// Pass-through of [`attend_rows`] for one token: `q` and `out` hold the query heads that
/// share one key/value head (`heads * head_dim` values, head-major), `k` and `v` that head's
/// context (`total * head_dim` values each, position-major), all of which the token sees.
/// Panics if the lengths do not fit together (callers check, as `attend` does).
pub fn attend_group(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    head_dim: usize,
    scale: f32,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let first = k.len() / head_dim.max(1);
    let rows = Queries {
        q,
        stride: q.len(),
        rows: 1,
        first,
    };
    attend_rows(rows, Keys::Rows(k), v, head_dim, scale, out, scratch);
}

/// The keys [`attend_rows`] reads.
#[derive(Debug, Clone, Copy)]
pub enum Keys<'a> {
    /// Position-major, `head_dim` values a position (arranged into blocks per call).
    Rows(&'a [f32]),
    /// Already in blocks of [`KB`] positions: value `d` of position `b * KB + i` at
    /// `(b * head_dim + d) * KB + i`, whole blocks.
    Blocks(&'a [f32]),
}

/// Consecutive tokens of one sequence, as [`attend_rows`] reads them.
#[derive(Debug, Clone, Copy)]
pub struct Queries<'a> {
    /// Row `r` at `q[r * stride..]`: the query heads that share one key/value head
    /// (`heads * head_dim` values, head-major).
    pub q: &'a [f32],
    /// Values from one row to the next.
    pub stride: usize,
    /// Tokens.
    pub rows: usize,
    /// The positions row 0 sees (its own included); row `r` sees `first + r`.
    pub first: usize,
}

widest! {
    /// Causal attention of consecutive tokens over one key/value head: row `r` of `queries`
    /// attends over the first `first + r` positions of `k` and `v` (position-major, `head_dim`
    /// values each) into `out[r * width..]` (`width = heads * head_dim`, rows contiguous).
    /// The keys are transposed once for all the rows (`scratch` holds them and the scores).
    /// The unit of work a caller spreads over threads: a decode step's token, or a prompt
    /// chunk's tokens. Panics if the lengths do not fit together (callers check).
    pub fn attend_rows(
        queries: Queries<'_>,
        k: Keys<'_>,
        v: &[f32],
        head_dim: usize,
        scale: f32,
        out: &mut [f32],
        scratch: &mut Vec<f32>,
    ) {
        attend_rows_body(queries, k, v, head_dim, scale, out, scratch)
    }
}

#[inline(always)]
fn attend_rows_body(
    queries: Queries<'_>,
    k: Keys<'_>,
    v: &[f32],
    head_dim: usize,
    scale: f32,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let Queries {
        q,
        stride,
        rows,
        first,
    } = queries;
    let hd = head_dim;
    assert!(
        hd > 0 && rows > 0 && out.len().is_multiple_of(rows),
        "attention shapes"
    );
    let width = out.len() / rows;
    let heads = width / hd;
    let seen = first + rows - 1;
    assert!(
        heads * hd == width
            && width <= stride
            && (rows - 1) * stride + width <= q.len()
            && v.len() >= seen * hd,
        "attention shapes"
    );
    out.fill(0.0);
    scratch.clear();
    if seen == 0 {
        return;
    }
    // The keys transposed in blocks of KB positions (`keys[(b * hd + d) * KB + i]` is value
    // `d` of position `b * KB + i`, zeros past the end), so a block's scores are KB lanes of
    // multiply-adds over `d`, with no sum across lanes per score; then the scores, each
    // head's row `padded` long.
    let blocks = seen.div_ceil(KB);
    let padded = blocks * KB;
    let own = match k {
        Keys::Rows(_) => blocks * hd * KB,
        Keys::Blocks(_) => 0,
    };
    scratch.resize(own + heads * padded, 0.0);
    let (buf, scores) = scratch.split_at_mut(own);
    let keys: &[f32] = match k {
        Keys::Rows(k) => {
            assert!(k.len() >= seen * hd, "attention shapes");
            for (t, kt) in k[..seen * hd].chunks_exact(hd).enumerate() {
                let (b, i) = (t / KB, t % KB);
                for (d, &x) in kt.iter().enumerate() {
                    buf[(b * hd + d) * KB + i] = x;
                }
            }
            buf
        }
        Keys::Blocks(b) => {
            assert!(b.len() >= blocks * hd * KB, "attention shapes");
            b
        }
    };
    // A zero query for the places past the last head (from a constant for the usual head
    // sizes: a decode step allocates nothing here).
    const ZEROS: [f32; 256] = [0.0; 256];
    let long;
    let zero: &[f32] = if hd <= ZEROS.len() {
        &ZEROS[..hd]
    } else {
        long = vec![0f32; hd];
        &long
    };
    for (r, o) in out.chunks_exact_mut(width).enumerate() {
        let total = first + r;
        if total == 0 {
            continue;
        }
        let q = &q[r * stride..][..width];
        let nb = total.div_ceil(KB);
        // Query heads four at a time (four independent chains of multiply-adds), a zero
        // query in the places past the last head.
        let mut j0 = 0;
        while j0 < heads {
            let qs: [&[f32]; QH] =
                std::array::from_fn(|jj| q.get((j0 + jj) * hd..(j0 + jj + 1) * hd).unwrap_or(zero));
            for (b, kb) in keys.chunks_exact(hd * KB).take(nb).enumerate() {
                let mut acc = [[0f32; KB]; QH];
                for (d, kr) in kb.chunks_exact(KB).enumerate() {
                    for jj in 0..QH {
                        let qd = qs[jj][d];
                        for i in 0..KB {
                            acc[jj][i] = qd.mul_add(kr[i], acc[jj][i]);
                        }
                    }
                }
                for (jj, a) in acc.iter().enumerate().take(heads - j0) {
                    let row = &mut scores[(j0 + jj) * padded + b * KB..][..KB];
                    for i in 0..KB {
                        row[i] = a[i] * scale;
                    }
                }
            }
            j0 += QH;
        }
        // Only the positions this token sees: later ones in its last block are left out.
        for row in scores.chunks_exact_mut(padded) {
            let p = &mut row[..total];
            let max = p
                .iter()
                .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
            for x in p.iter_mut() {
                *x = exp(*x - max);
            }
            let inv = 1.0 / sum(p);
            for x in p.iter_mut() {
                *x *= inv;
            }
        }
        match hd {
            64 => weighted_sum::<64>(scores, padded, v, total, o),
            128 => weighted_sum::<128>(scores, padded, v, total, o),
            _ => {
                for (t, vt) in v[..total * hd].chunks_exact(hd).enumerate() {
                    for (j, oj) in o.chunks_exact_mut(hd).enumerate() {
                        let w = scores[j * padded + t];
                        for (a, b) in oj.iter_mut().zip(vt) {
                            *a = w.mul_add(*b, *a);
                        }
                    }
                }
            }
        }
    }
}

/// Key positions per transposed block: one 512-bit vector of scores.
pub const KB: usize = 16;
/// Query heads whose scores are computed together.
const QH: usize = 4;

/// `out[j] += sum_t weights[j * stride + t] * v[t]` for heads of `HD` values: each head's sum
/// stays in registers over a block of positions (summing into memory costs a load and a store
/// per multiply-add), and the block's values stay in the L1 cache for the group's heads.
#[inline(always)]
fn weighted_sum<const HD: usize>(
    weights: &[f32],
    stride: usize,
    v: &[f32],
    total: usize,
    out: &mut [f32],
) {
    const BLOCK: usize = 64;
    let mut t0 = 0;
    while t0 < total {
        let t1 = (t0 + BLOCK).min(total);
        let vb = &v[t0 * HD..t1 * HD];
        for (j, o) in out.chunks_exact_mut(HD).enumerate() {
            let mut acc = [0f32; HD];
            acc.copy_from_slice(o);
            let wj = &weights[j * stride + t0..j * stride + t1];
            for (&w, vt) in wj.iter().zip(vb.chunks_exact(HD)) {
                for d in 0..HD {
                    acc[d] = w.mul_add(vt[d], acc[d]);
                }
            }
            o.copy_from_slice(&acc);
        }
        t0 = t1;
    }
}
