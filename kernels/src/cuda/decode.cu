// Attention for every new token of a batch of sequences, in one or two launches per layer.
//
// Each new token is a row. For each (KV head g, row i) a block: rotates the row's key (RoPE at
// the row's own position), writes it and the row's value into its sequence's own KV cache
// (each sequence has its own buffer, `[kv_heads, capacity, head_dim]` f32, found through a
// pointer table), rotates the group's query heads, then attends over every cached position up
// to its own with an online softmax (each warp takes every `warps`-th run of UNR positions;
// the warps' partial results are merged at the end). The query heads of one KV head are
// processed together, so each cached key and value is read once per block.
//
// `mode` 0 does it all in one launch: right for a decode step, where every row is the one new
// token of its own sequence. When a sequence brings several rows (a prompt), a row attends to
// keys that other blocks write, so the writes come first in a launch of their own (`mode` 1)
// and the attention in a second (`mode` 2); stream order separates them.
//
// The table (64-bit words), for `m` rows of `s` sequences: [0, m) row positions, [m, 2m) the
// row's sequence, then [s capacities], then per layer [s key-cache addresses, s value-cache
// addresses].
//
// Limits checked by the caller: heads per KV head <= MAXG, head_dim a multiple of 32 and at
// most 32 * MAXE.

#include <math.h>

#define MAXG 8
#define MAXE 4
#define UNR 4

extern "C" __global__ void tessera_decode_attention(
    const float* __restrict__ q,  // [m, nh, hd], not yet rotated
    const float* __restrict__ k,  // [m, nkv, hd], not yet rotated
    const float* __restrict__ v,  // [m, nkv, hd]
    const unsigned long long* __restrict__ table, int layer,
    const float* __restrict__ cos_t,  // [context, hd / 2]
    const float* __restrict__ sin_t,  // [context, hd / 2]
    float* __restrict__ out,          // [m, nh, hd]
    int m, int nseq, int nh, int nkv, int hd, int interleaved, float scale, int mode) {
  extern __shared__ float shm[];
  const int g = blockIdx.x;
  const int groups = nh / nkv, half = hd / 2, E = hd / 32;
  const int warps = blockDim.x / 32;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float* qs = shm;                    // [groups][hd]
  float* smx = qs + groups * hd;      // [warps][groups]
  float* ssm = smx + warps * groups;  // [warps][groups]
  float* sacc = ssm + warps * groups; // [warps][groups][hd]
  const unsigned long long* caps = table + 2 * (long long)m;
  const unsigned long long* lt = caps + nseq + (long long)layer * 2 * nseq;

  for (long long i = blockIdx.y; i < m; i += gridDim.y) {
    const long long pos = (long long)table[i];
    const long long seq = (long long)table[m + i];
    const long long cap = (long long)caps[seq];
    // Written here and read back below by other threads of this block (or, in mode 2, written
    // by the launch before): plain (coherent) accesses, ordered by the barrier.
    float* kc = reinterpret_cast<float*>(lt[seq]) + (long long)g * cap * hd;
    float* vc = reinterpret_cast<float*>(lt[nseq + seq]) + (long long)g * cap * hd;
    const float* cs = cos_t + pos * half;
    const float* sn = sin_t + pos * half;
    if (mode != 2) {
      const float* kr = k + (i * nkv + g) * hd;
      for (int j = threadIdx.x; j < half; j += blockDim.x) {
        const int a = interleaved ? 2 * j : j;
        const int b = interleaved ? 2 * j + 1 : j + half;
        const float c = cs[j], s = sn[j];
        const float xa = kr[a], xb = kr[b];
        kc[pos * hd + a] = xa * c - xb * s;
        kc[pos * hd + b] = xa * s + xb * c;
      }
      const float* vr = v + (i * nkv + g) * hd;
      for (int d = threadIdx.x; d < hd; d += blockDim.x) vc[pos * hd + d] = vr[d];
      if (mode == 1) continue;
    }
    for (int j = threadIdx.x; j < half; j += blockDim.x) {
      const int a = interleaved ? 2 * j : j;
      const int b = interleaved ? 2 * j + 1 : j + half;
      const float c = cs[j], s = sn[j];
      for (int h = 0; h < groups; ++h) {
        const float* qr = q + (i * nh + g * groups + h) * hd;
        const float qa = qr[a], qb = qr[b];
        qs[h * hd + a] = (qa * c - qb * s) * scale;
        qs[h * hd + b] = (qa * s + qb * c) * scale;
      }
    }
    __syncthreads();

    float qv[MAXG][MAXE], mx[MAXG], sm[MAXG], acc[MAXG][MAXE];
#pragma unroll
    for (int h = 0; h < MAXG; ++h) {
      mx[h] = -INFINITY;
      sm[h] = 0.f;
#pragma unroll
      for (int e = 0; e < MAXE; ++e) {
        acc[h][e] = 0.f;
        qv[h][e] = (h < groups && e < E) ? qs[h * hd + lane + 32 * e] : 0.f;
      }
    }
    const long long total = pos + 1;
    for (long long t0 = (long long)warp * UNR; t0 < total; t0 += (long long)warps * UNR) {
      float kv[UNR][MAXE], vv[UNR][MAXE];
      // Every load of the run first, so several are in flight before the first use.
#pragma unroll
      for (int u = 0; u < UNR; ++u) {
        const long long t = t0 + u;
#pragma unroll
        for (int e = 0; e < MAXE; ++e) {
          const bool ok = t < total && e < E;
          kv[u][e] = ok ? kc[t * hd + lane + 32 * e] : 0.f;
          vv[u][e] = ok ? vc[t * hd + lane + 32 * e] : 0.f;
        }
      }
#pragma unroll
      for (int u = 0; u < UNR; ++u) {
        if (t0 + u >= total) break;
#pragma unroll
        for (int h = 0; h < MAXG; ++h) {
          if (h >= groups) break;
          float s = 0.f;
#pragma unroll
          for (int e = 0; e < MAXE; ++e) s += qv[h][e] * kv[u][e];
#pragma unroll
          for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
          const float nm = fmaxf(mx[h], s);
          const float c = expf(mx[h] - nm);
          const float p = expf(s - nm);
          sm[h] = sm[h] * c + p;
#pragma unroll
          for (int e = 0; e < MAXE; ++e) acc[h][e] = acc[h][e] * c + p * vv[u][e];
          mx[h] = nm;
        }
      }
    }
#pragma unroll
    for (int h = 0; h < MAXG; ++h) {
      if (h >= groups) break;
      if (lane == 0) {
        smx[warp * groups + h] = mx[h];
        ssm[warp * groups + h] = sm[h];
      }
#pragma unroll
      for (int e = 0; e < MAXE; ++e)
        if (e < E) sacc[(warp * groups + h) * hd + lane + 32 * e] = acc[h][e];
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < groups * hd; idx += blockDim.x) {
      const int h = idx / hd, d = idx - h * hd;
      float mxa = -INFINITY;
      for (int w = 0; w < warps; ++w) mxa = fmaxf(mxa, smx[w * groups + h]);
      float sum = 0.f, num = 0.f;
      for (int w = 0; w < warps; ++w) {
        const float mw = smx[w * groups + h];
        if (mw == -INFINITY) continue;
        const float c = expf(mw - mxa);
        sum += ssm[w * groups + h] * c;
        num += sacc[(w * groups + h) * hd + d] * c;
      }
      out[(i * nh + g * groups + h) * hd + d] = num / sum;
    }
    // The next row reuses the shared buffers.
    __syncthreads();
  }
}
