// The two memory-bound passes around the flash backward main kernel: the preprocess computes
// D = rowsum(dO ∘ O) per (query token, head) in fp32 and zeroes the dQ accumulator; the postprocess turns the fp32 dQ
// accumulator into dQ = scale · acc in the output dtype, written with dQ's strides.
#pragma once
#include "common/grid_overlap.cuh"
#include "flash/bwd_dq_acc.cuh"
#include "flash/bwd_primitives.cuh"
#include "flash/bwd_workspace.hpp"

namespace attnforge::flash::bwd_detail {

constexpr int kPrepostThreads = 256;
constexpr int kDotRowsPerBlock = kPrepostThreads / 32 * 16;  // flash_bwd_dot_do_o_kernel: a warp per 16 rows

// D[h, t] = Σ_d dO[t, h, d] · O[t, h, d], fp32, as the diagonal of dO·Oᵀ computed with the same
// m16n8k16 MMAs, in the same k order from a zero accumulator, as the main kernel's dP = dO·Vᵀ. So
// where O_i is a row of V (a query that sees one key: P = 1) dP − D is exactly 0, as in exact
// arithmetic, rather than fp32 noise that dS = P ∘ (dP − D) would carry into dQ and dK.
// One warp per 16 consecutive rows (token, head) = t·Hq + h; lane (g, t4) holds rows g and g + 8.
// The same launch zeroes `zero` (zero_units 16-byte units: the dQ accumulator and counters), a
// grid-stride loop apart from the rows: as its own memset that was a 30 µs pass at D 128, B·S 16384
// (H200, 2026-11-30, kernel_breakdown.py), where cuDNN's backward has none.
template <DType DT, int kD>
__global__ void __launch_bounds__(kPrepostThreads)
    flash_bwd_dot_do_o_kernel(const __grid_constant__ Params p, uint4* __restrict__ zero, size_t zero_units) {
  using T = typename Elem<DT>::type;
  prim::overlap::allow_dependents();  // a main kernel launched to overlap this one waits for its end
  for (size_t i = size_t(blockIdx.x) * kPrepostThreads + threadIdx.x; i < zero_units;
       i += size_t(gridDim.x) * kPrepostThreads)
    __stcs(zero + i, make_uint4(0u, 0u, 0u, 0u));
  const int lane = threadIdx.x % 32, g = lane >> 2, t4 = lane & 3;
  const int64_t row0 = (int64_t(blockIdx.x) * kPrepostThreads + threadIdx.x) / 32 * 16;
  const int64_t rows = p.total_q * p.heads_q;
  if (row0 >= rows) return;  // the whole warp
  // (token, head) of the lane's rows row0 + g + 8·r: the 64-bit divisions once per warp, for row0 (they
  // are slow, and were four per row and tensor); the rows are at most 15 further, so the head and token
  // carries are 32-bit. Dense tokens also carry into (batch, position).
  const int64_t t0 = row0 / p.heads_q;
  const int h0 = int(row0 - t0 * p.heads_q);
  const int64_t b0 = p.is_varlen() ? 0 : t0 / p.seqlen_q;
  const int i0 = p.is_varlen() ? 0 : int(t0 - b0 * p.seqlen_q);
  int64_t tok[2];  // packed token index (D's column)
  int head[2];
  const T* d_o[2];  // rows row0 + g, row0 + g + 8: (kD,); nullptr past the end (reads as zeros)
  const T* o[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int hh = h0 + g + 8 * r, dt = hh / p.heads_q;
    head[r] = hh - dt * p.heads_q;
    tok[r] = t0 + dt;
    const bool ok = row0 + g + 8 * r < rows;
    auto at = [&](const void* base, int64_t bs, int64_t rs, int64_t hs) -> const T* {
      if (!ok) return nullptr;
      int64_t off;
      if (p.is_varlen()) {
        off = tok[r] * rs;  // batch stride 0, the packed row
      } else {
        const int i = i0 + dt, db = i / p.seqlen_q;
        off = (b0 + db) * bs + int64_t(i - db * p.seqlen_q) * rs;
      }
      return static_cast<const T*>(base) + off + int64_t(head[r]) * hs;
    };
    d_o[r] = at(p.d_o, p.do_batch_stride, p.do_row_stride, p.do_head_stride);
    o[r] = at(p.o, p.o_batch_stride, p.o_row_stride, p.o_head_stride);
  }
  auto ld2 = [](const T* row, int col) {  // two 16-bit elements (4-byte aligned: rows are 16-byte aligned)
    return row ? *reinterpret_cast<const uint32_t*>(row + col) : 0u;
  };
  // Every fragment is loaded before the first MMA: loaded per k-slice, each slice's loads waited for the
  // previous slice's MMAs (SASS: one memory latency per slice, 8 at D 128).
  uint32_t a[kD / 16][4], b_lo[kD / 16][2], b_hi[kD / 16][2];  // dO (16 rows, 16 k), O rows 0..7 / 8..15
#pragma unroll
  for (int kk = 0; kk < kD / 16; ++kk) {
    const int k0 = kk * 16 + 2 * t4;
    a[kk][0] = ld2(d_o[0], k0), a[kk][1] = ld2(d_o[1], k0), a[kk][2] = ld2(d_o[0], k0 + 8), a[kk][3] = ld2(d_o[1], k0 + 8);
    b_lo[kk][0] = ld2(o[0], k0), b_lo[kk][1] = ld2(o[0], k0 + 8);
    b_hi[kk][0] = ld2(o[1], k0), b_hi[kk][1] = ld2(o[1], k0 + 8);
  }
  // c_lo = dO(16 rows)·O(rows 0..7)ᵀ, c_hi = dO(16 rows)·O(rows 8..15)ᵀ, (16, 8) C fragments each.
  float c_lo[4] = {0.f, 0.f, 0.f, 0.f}, c_hi[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
  for (int kk = 0; kk < kD / 16; ++kk) {
    mma_16816<DT == DType::bf16>(c_lo, a[kk], b_lo[kk][0], b_lo[kk][1]);
    mma_16816<DT == DType::bf16>(c_hi, a[kk], b_hi[kk][0], b_hi[kk][1]);
  }
  // The diagonal: row g is c_lo[g][g], row g + 8 is c_hi[g + 8][g]; column g = 2·t4 + (g % 2). Chosen by
  // a select: indexed by g % 2, c_lo and c_hi lived in local memory (a store after every MMA).
  if (t4 == g / 2) {
    float* dsum = reinterpret_cast<float*>(static_cast<char*>(p.workspace));  // dsum_offset == 0
    const float d[2] = {g & 1 ? c_lo[1] : c_lo[0], g & 1 ? c_hi[3] : c_hi[2]};
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      if (row0 + g + 8 * r < rows) dsum[head[r] * p.total_q + tok[r]] = d[r];
    }
  }
}

// dQ = scale · acc: one CTA per (query tile, head, batch) with the main kernel's thread count reads
// the tile's accumulator block in fragment order (bwd_dq_acc.cuh; coalesced) and writes the rows
// inside the sequence with dQ's strides.
template <class Tr>
__global__ void __launch_bounds__(Tr::kThreads) flash_bwd_convert_dq_kernel(const __grid_constant__ Params p,
                                                                                 size_t dq_acc_offset) {
  using Acc = DqAcc<Tr>;
  using E = typename Tr::E;
  using T = typename Tr::T;
  const int mb = blockIdx.x, h = blockIdx.y, b = blockIdx.z, tid = threadIdx.x;
  const SeqInfo si = seq_info(p, b);
  const int m0 = mb * Tr::kBlockM;
  if (m0 >= si.seqlen_q) return;
  const float* tile = reinterpret_cast<const float*>(static_cast<const char*>(p.workspace) + dq_acc_offset) +
                      Acc::tile_base(p, b, h, mb);
  T* dq = static_cast<T*>(p.dq) + int64_t(b) * p.dq_batch_stride + si.q_start * p.dq_row_stride +
          int64_t(h) * p.dq_head_stride;
#pragma unroll
  for (int i = 0; i < Acc::kI; ++i)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int q = m0 + Acc::row(tid, i, r);
      if (q >= si.seqlen_q) continue;
#pragma unroll
      for (int j = 0; j < Acc::kJ; ++j) {
        const float2 a = *reinterpret_cast<const float2*>(tile + Acc::tiled_offset(tid, i, j, r));
        *reinterpret_cast<uint32_t*>(dq + int64_t(q) * p.dq_row_stride + Acc::col(tid, j)) =
            E::pack(a.x * p.scale, a.y * p.scale);
      }
    }
}

}  // namespace attnforge::flash::bwd_detail
