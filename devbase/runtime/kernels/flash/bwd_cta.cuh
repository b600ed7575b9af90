// Per-CTA bookkeeping of the flash backward main kernel: its (sequence, kv head, key tile), the loop
// over (query head, query tile) skipping empty tiles, the cp.async loads of one query tile (Q, dO,
// LSE, D), the bias tensor, and the deterministic mode's ordering helpers.
#pragma once
#include "flash/bwd_traits.cuh"
#include "flash/bwd_workspace.hpp"

namespace attnforge::flash::bwd_detail {

constexpr float kLog2e = 1.4426950408889634f;

// Inclusive index ranges of a (query tile, key tile) pair inside one sequence, clipped to it.
struct TileRange {
  int q_first, q_last, k_first, k_last;
};

// Position in the CTA's loop over (query head of the group, query tile).
struct QIter {
  int hi;  // 0 … group-1: query head = kv head · group + hi
  int mb;  // position in the query-tile loop; the tile itself is BwdCta::tile(mb)
};

// Advance (hi, mb) — query head of the group, position in the query-tile loop — to the first pair
// at or after it whose tile is not empty (empty(mb); it does not depend on the head); false when
// the loop is over.
template <class IsEmpty>
__device__ __forceinline__ bool seek_nonempty(int& hi, int& mb, int group, int m_blocks, IsEmpty empty) {
  while (hi < group) {
    while (mb < m_blocks && empty(mb)) ++mb;
    if (mb < m_blocks) return true;
    mb = 0;
    ++hi;
  }
  return false;
}

template <class Tr>
struct BwdCta {
  using T = typename Tr::T;
  using E = typename Tr::E;
  using Mask = typename Tr::Mask;

  const Params& p;
  SeqInfo si;
  int b, hkv, n_block, n0;
  int m_blocks;       // query tiles of this sequence
  int rot;            // the query-tile loop starts at tile `rot` and wraps around (see tile())
  int64_t row_base;   // token index of query 0 of this sequence in the (total_q, …) workspace
  T* smem;
  float* s_lse;   // kStages × kBlockM: forward LSE (natural log) of each query row
  float* s_dsum;  // kStages × kBlockM: D = rowsum(dO ∘ O)

  // Query tile visited at loop position i. Without the deterministic mode each CTA starts at the
  // tile level with its own keys, so the CTAs of one head do not all add into the same dQ rows at
  // the same time; the deterministic mode keeps the natural order its dQ turns rely on.
  __device__ int tile(int i) const {
    const int t = i + rot;
    return t >= m_blocks ? t - m_blocks : t;
  }
  __device__ TileRange range(int mb) const {
    const int m0 = mb * Tr::kBlockM;
    return TileRange{m0, min(m0 + Tr::kBlockM, si.seqlen_q) - 1, n0,
                     min(n0 + Tr::kBlockN, si.seqlen_k) - 1};
  }
  __device__ TileClass classify(int mb) const {
    const TileRange r = range(mb);
    return Mask::classify(r.q_first, r.q_last, r.k_first, r.k_last, si.seqlen_q, si.seqlen_k,
                          p.mask);
  }
  // Advance `it` to the first (head, tile) at or after it whose tile is not empty under the
  // mask; false when the loop is over. The classification does not depend on the head.
  __device__ bool seek(QIter& it) const {
    return seek_nonempty(it.hi, it.mb, p.group(), m_blocks,
                         [&](int mb) { return classify(tile(mb)) == TileClass::kEmpty; });
  }
  __device__ void next(QIter& it) const {
    ++it.mb;
    seek(it);
  }

  // Issue the cp.async copies of query tile it into buffer `slot`: Q and dO rows (zero-filled
  // past the sequence), the forward's LSE and D of those rows.
  __device__ void load_q_tile(const QIter& it, int slot) const {
    const int h = hkv * p.group() + it.hi;
    const int m0 = tile(it.mb) * Tr::kBlockM;
    const T* q = static_cast<const T*>(p.q) + int64_t(b) * p.q_batch_stride +
                 si.q_start * p.q_row_stride + int64_t(h) * p.q_head_stride;
    const T* dO = static_cast<const T*>(p.d_o) + int64_t(b) * p.do_batch_stride +
                  si.q_start * p.do_row_stride + int64_t(h) * p.do_head_stride;
    T* sq = smem + Tr::kOffQ + slot * Tr::kBlockM * Tr::kLd;
    T* sdo = smem + Tr::kOffDO + slot * Tr::kBlockM * Tr::kLd;
    constexpr int kChunks = Tr::kD / 8;  // 16-byte chunks per row
    for (int c = threadIdx.x; c < Tr::kBlockM * kChunks; c += Tr::kThreads) {
      const int r = c / kChunks, cc = c % kChunks;
      const bool ok = m0 + r < si.seqlen_q;
      const int64_t row = ok ? m0 + r : 0;
      cp_async_16(smem_u32(sq + r * Tr::kLd + cc * 8), q + row * p.q_row_stride + cc * 8, ok);
      cp_async_16(smem_u32(sdo + r * Tr::kLd + cc * 8), dO + row * p.do_row_stride + cc * 8, ok);
    }
    const float* lse = p.lse + int64_t(b) * p.lse_batch_stride + int64_t(h) * p.lse_head_stride +
                       si.q_start;
    const float* dsum = static_cast<const float*>(p.workspace) +  // dsum_offset == 0
                        int64_t(h) * p.total_q + row_base;
    for (int r = threadIdx.x; r < Tr::kBlockM; r += Tr::kThreads) {
      const bool ok = m0 + r < si.seqlen_q;
      const int64_t row = ok ? m0 + r : 0;
      cp_async_4(smem_u32(s_lse + slot * Tr::kBlockM + r), lse + row, ok);
      cp_async_4(smem_u32(s_dsum + slot * Tr::kBlockM + r), dsum + row, ok);
    }
  }

  // Additive bias (log2 domain) or boolean visibility of element (q, k) of query head h.
  __device__ __forceinline__ bool apply_bias(int h, int q, int k, float& x) const {
    const int64_t off = int64_t(b) * p.bias_stride_b + int64_t(h) * p.bias_stride_h +
                        int64_t(q) * p.bias_stride_q + int64_t(k) * p.bias_stride_k;
    switch (p.bias_dtype) {
      case ATTNFORGE_F32: x += static_cast<const float*>(p.bias)[off] * kLog2e; return true;
      case ATTNFORGE_F16: x += __half2float(static_cast<const __half*>(p.bias)[off]) * kLog2e; return true;
      case ATTNFORGE_BF16:
        x += __bfloat162float(static_cast<const __nv_bfloat16*>(p.bias)[off]) * kLog2e;
        return true;
      default: return static_cast<const uint8_t*>(p.bias)[off] != 0;
    }
  }
};

// Deterministic mode: how many key tiles before n_block add into query tile mb (those the mask
// leaves non-empty); this CTA adds its dQ share once the tile's counter reaches that number.
template <class Tr, class Cta>
__device__ int dq_turn(const Cta& c, int mb) {
  int n = 0;
  const TileRange r = c.range(mb);
  for (int nb = 0; nb < c.n_block; ++nb) {
    const int k0 = nb * Tr::kBlockN;
    if (Tr::Mask::classify(r.q_first, r.q_last, k0, min(k0 + Tr::kBlockN, c.si.seqlen_k) - 1,
                           c.si.seqlen_q, c.si.seqlen_k, c.p.mask) != TileClass::kEmpty)
      ++n;
  }
  return n;
}

__device__ __forceinline__ int ld_acquire(const int* ptr) {
  int v;
  asm volatile("ld.acquire.gpu.global.b32 %0, [%1];\n" : "=r"(v) : "l"(ptr) : "memory");
  return v;
}

}  // namespace attnforge::flash::bwd_detail
