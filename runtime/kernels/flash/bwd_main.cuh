// The flash backward main kernel (FlashAttention-2 algorithm): one CTA per (K/V tile, kv head,
// batch) keeps K_j, V_j on chip and dK_j, dV_j in registers, loops over the query heads of its
// group and the query tiles the mask leaves non-empty, recomputes P from Q, K and the forward's
// LSE, and adds its share of dQ into the fp32 workspace accumulator.
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
    while (it.hi < p.group()) {
      while (it.mb < m_blocks && classify(tile(it.mb)) == TileClass::kEmpty) ++it.mb;
      if (it.mb < m_blocks) return true;
      it.mb = 0;
      ++it.hi;
    }
    return false;
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

template <class V>
__global__ void __launch_bounds__(BwdTraits<V>::kThreads, 1) flash_bwd_main_kernel(const __grid_constant__ Params p) {
  using Tr = BwdTraits<V>;
  using T = typename Tr::T;
  using E = typename Tr::E;
  using Mask = typename Tr::Mask;
  constexpr int kBM = Tr::kBlockM, kBN = Tr::kBlockN, kD = Tr::kD, kLd = Tr::kLd;
  constexpr int kMC = Tr::kMChunk;

  extern __shared__ __align__(128) unsigned char smem_raw[];
  T* smem = reinterpret_cast<T*>(smem_raw);

  BwdCta<Tr> c{p};
  c.n_block = blockIdx.x;
  c.hkv = blockIdx.y;
  c.b = blockIdx.z;
  c.si = seq_info(p, c.b);
  c.n0 = c.n_block * kBN;
  if (c.n0 >= c.si.seqlen_k) return;  // past this sequence's keys: no rows to write
  c.m_blocks = (c.si.seqlen_q + kBM - 1) / kBM;
#if defined(ATTNFORGE_FLASH_BWD_NO_ROTATE)  // dev switch: every CTA starts at query tile 0
  c.rot = 0;
#else
  c.rot = (p.deterministic || c.m_blocks == 0) ? 0 : int((int64_t(c.n0) / kBM) % c.m_blocks);
#endif
  c.row_base = p.is_varlen() ? c.si.q_start : int64_t(c.b) * p.seqlen_q;
  c.smem = smem;
  c.s_lse = reinterpret_cast<float*>(smem_raw + Tr::kOffLseBytes);
  c.s_dsum = reinterpret_cast<float*>(smem_raw + Tr::kOffDsumBytes);

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int g = lane / 4, t4 = lane % 4;  // mma fragment coordinates
  const int wn = warp % Tr::kWarpsN, wdkv = warp / Tr::kWarpsN;  // phase-1 warp grid
  const int wmq = warp % Tr::kWarpsMdq, wdq = warp / Tr::kWarpsMdq;  // dQ warp grid
  const int group = p.group();
  const BwdWorkspaceLayout ws = flash_bwd_workspace_layout(kBM, kBN, p);
  float* dq_acc = reinterpret_cast<float*>(static_cast<char*>(p.workspace) + ws.dq_acc_offset);
  int* sems = reinterpret_cast<int*>(static_cast<char*>(p.workspace) + ws.sem_offset);
  const int sem_m_blocks = (p.seqlen_q + kBM - 1) / kBM;

  // ---- K_j, V_j: (kBlockN, kD) each; zero rows past the sequence and rows of keys no query can
  // see (the mask's classifier says so), so NaN there cannot reach dQ through 0·NaN in dS·K ------
  {
    const T* kg = static_cast<const T*>(p.k) + int64_t(c.b) * p.k_batch_stride +
                  c.si.k_start * p.k_row_stride + int64_t(c.hkv) * p.k_head_stride;
    const T* vg = static_cast<const T*>(p.v) + int64_t(c.b) * p.v_batch_stride +
                  c.si.k_start * p.v_row_stride + int64_t(c.hkv) * p.v_head_stride;
    constexpr int kChunks = kD / 8;
    for (int i = tid; i < kBN * kChunks; i += Tr::kThreads) {
      const int r = i / kChunks, cc = i % kChunks;
      const int key = c.n0 + r;
      const bool ok = key < c.si.seqlen_k &&
                      Mask::classify(0, c.si.seqlen_q - 1, key, key, c.si.seqlen_q, c.si.seqlen_k,
                                     p.mask) != TileClass::kEmpty;
      const int64_t row = ok ? key : 0;
      cp_async_16(smem_u32(smem + Tr::kOffK + r * kLd + cc * 8), kg + row * p.k_row_stride + cc * 8, ok);
      cp_async_16(smem_u32(smem + Tr::kOffV + r * kLd + cc * 8), vg + row * p.v_row_stride + cc * 8, ok);
    }
  }

  // dK, dV accumulators: (16 keys, kDkv) per warp, fp32 fragments.
  float dk[Tr::kDkv / 8][4], dv[Tr::kDkv / 8][4];
#pragma unroll
  for (int j = 0; j < Tr::kDkv / 8; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[j][e] = dv[j][e] = 0.f;

  // ---- prologue: the first kStages-1 query tiles in flight (the first shares K/V's group) -----
  QIter load_it{0, 0};
  bool load_ok = c.seek(load_it);
  int load_count = 0;
  if constexpr (Tr::kStages > 1) {
#pragma unroll 1
    for (int s = 0; s < Tr::kStages - 1; ++s) {
      if (load_ok) {
        c.load_q_tile(load_it, load_count % Tr::kStages);
        ++load_count;
        c.next(load_it);
        load_ok = load_it.hi < group;
      }
      cp_async_commit();
    }
  }

  QIter it{0, 0};
  bool ok_it = c.seek(it);
  int* pending_sem = nullptr;  // deterministic mode: counter to release after the next barrier
  const uint32_t sK = smem_u32(smem + Tr::kOffK), sV = smem_u32(smem + Tr::kOffV);
  const uint32_t sDS = smem_u32(smem + Tr::kOffDS);

#pragma unroll 1
  for (int step = 0; ok_it; ++step) {
    const int slot = step % Tr::kStages;
    if constexpr (Tr::kStages == 1) {
      c.load_q_tile(it, 0);
      cp_async_commit();
      cp_async_wait<0>();
    } else {
      cp_async_wait<Tr::kStages - 2>();
    }
    __syncthreads();  // [A] tile `step` is in shared memory; the previous step is fully done
    if (pending_sem != nullptr && tid == 0) {
      __threadfence();
      atomicAdd(pending_sem, 1);  // release the previous tile's dQ turn to the next key tile
    }
    pending_sem = nullptr;
    if constexpr (Tr::kStages > 1) {
      // Prefetch tile step+kStages-1 into the buffer tile step-1 used (free since [A]).
      if (load_ok) {
        c.load_q_tile(load_it, load_count % Tr::kStages);
        ++load_count;
        c.next(load_it);
        load_ok = load_it.hi < group;
      }
      cp_async_commit();
    }

    const int h = c.hkv * group + it.hi;
    const int mb = c.tile(it.mb);  // query tile of this step
    const int m0 = mb * kBM;
    const TileClass cls = c.classify(mb);
    // Per-element masking: partial tiles, tiles crossing the end of the queries or keys, bias.
    const bool need_mask = cls != TileClass::kFull || m0 + kBM > c.si.seqlen_q ||
                           c.n0 + kBN > c.si.seqlen_k || Mask::kHasTensor;
    const uint32_t sQ = smem_u32(smem + Tr::kOffQ + slot * kBM * kLd);
    const uint32_t sDO = smem_u32(smem + Tr::kOffDO + slot * kBM * kLd);
    const float* lse_s = c.s_lse + slot * kBM;
    const float* dsum_s = c.s_dsum + slot * kBM;

    // ===== phase 1: per chunk of kMChunk queries ==================================================
#pragma unroll 1
    for (int mc = 0; mc < kBM; mc += kMC) {
      // Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ: (16 keys of this warp, kMC queries), contraction over D.
      float s[kMC / 8][4], dp[kMC / 8][4];
#pragma unroll
      for (int j = 0; j < kMC / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[j][e] = dp[j][e] = 0.f;
#pragma unroll
      for (int kk = 0; kk < kD / 16; ++kk) {
        uint32_t ak[4], av[4];
        const int ar = wn * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, ac = kk * 16 + (lane >> 4) * 8;
        ldsm_x4(ak, sK + (ar * kLd + ac) * 2);
        ldsm_x4(av, sV + (ar * kLd + ac) * 2);
#pragma unroll
        for (int j = 0; j < kMC / 16; ++j) {
          // B = Qᵀ: stored (query, d) = (n, k) rows → plain ldmatrix gives two n8 fragments.
          const int br = mc + j * 16 + (lane & 7) + (lane >> 4) * 8, bc = kk * 16 + ((lane >> 3) & 1) * 8;
          uint32_t bq[4], bo[4];
          ldsm_x4(bq, sQ + (br * kLd + bc) * 2);
          ldsm_x4(bo, sDO + (br * kLd + bc) * 2);
          mma_16816<Tr::kBf16>(s[2 * j], ak, bq[0], bq[1]);
          mma_16816<Tr::kBf16>(s[2 * j + 1], ak, bq[2], bq[3]);
          mma_16816<Tr::kBf16>(dp[2 * j], av, bo[0], bo[1]);
          mma_16816<Tr::kBf16>(dp[2 * j + 1], av, bo[2], bo[3]);
        }
      }

      // P = exp2(S·scale·log2e − LSE·log2e) (the forward's softmax, recomputed);
      // dS = P ∘ (dP − D). Masked elements: P = dS = 0 by selection, so NaN or huge values in
      // masked K/V never reach the sums. A row with LSE = −inf saw no key: its P must be 0, so
      // its LSE is taken as +inf (exp2(−inf − (−inf)) would be NaN).
      const int key0 = c.n0 + wn * 16 + g;  // key of fragment rows g (and g+8)
#pragma unroll
      for (int j = 0; j < kMC / 8; ++j) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int mi = mc + j * 8 + 2 * t4 + e;  // query row inside the tile
          const float lse = lse_s[mi];
          const float lse2 = lse == -INFINITY ? INFINITY : lse * kLog2e;
          const float dsum = dsum_s[mi];
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            float x = s[j][r * 2 + e] * p.scale_log2;
            bool vis = true;
            if (need_mask) {
              const int q = m0 + mi, k = key0 + r * 8;
              vis = q < c.si.seqlen_q && k < c.si.seqlen_k &&
                    Mask::visible(q, k, c.si.seqlen_q, c.si.seqlen_k, p.mask);
              if constexpr (Mask::kHasTensor) {
                if (vis) vis = c.apply_bias(h, q, k, x);
              }
            }
            const float pv = exp2_approx(x - lse2);
            const float ds = pv * (dp[j][r * 2 + e] - dsum);
            s[j][r * 2 + e] = vis ? pv : 0.f;
            dp[j][r * 2 + e] = vis ? ds : 0.f;
          }
        }
      }

      // dV += Pᵀ·dO and dK += dSᵀ·Q over this chunk: A = Pᵀ / dSᵀ straight from the accumulator
      // registers (16 keys × 16 queries per step), B = dO / Q stored (query, d) = (k, n) rows →
      // transposed ldmatrix.
#pragma unroll
      for (int jj = 0; jj < kMC / 16; ++jj) {
        uint32_t ap[4], ads[4];
        ap[0] = E::pack(s[2 * jj][0], s[2 * jj][1]);
        ap[1] = E::pack(s[2 * jj][2], s[2 * jj][3]);
        ap[2] = E::pack(s[2 * jj + 1][0], s[2 * jj + 1][1]);
        ap[3] = E::pack(s[2 * jj + 1][2], s[2 * jj + 1][3]);
        ads[0] = E::pack(dp[2 * jj][0], dp[2 * jj][1]);
        ads[1] = E::pack(dp[2 * jj][2], dp[2 * jj][3]);
        ads[2] = E::pack(dp[2 * jj + 1][0], dp[2 * jj + 1][1]);
        ads[3] = E::pack(dp[2 * jj + 1][2], dp[2 * jj + 1][3]);
        if (wdkv == 0) {
          // dSᵀ to shared memory (kBlockN, kBlockM) for the dQ phase.
          const uint32_t* a = ads;
          const int col = mc + jj * 16 + 2 * t4, row = wn * 16 + g;
          uint32_t* sds = reinterpret_cast<uint32_t*>(smem + Tr::kOffDS);
          sds[(row * Tr::kLdS + col) / 2] = a[0];
          sds[((row + 8) * Tr::kLdS + col) / 2] = a[1];
          sds[(row * Tr::kLdS + col + 8) / 2] = a[2];
          sds[((row + 8) * Tr::kLdS + col + 8) / 2] = a[3];
        }
        const int br = mc + jj * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
#pragma unroll
        for (int dd = 0; dd < Tr::kDkv / 16; ++dd) {
          const int bc = wdkv * Tr::kDkv + dd * 16 + (lane >> 4) * 8;
          uint32_t bo[4], bq[4];
          ldsm_x4_t(bo, sDO + (br * kLd + bc) * 2);
          ldsm_x4_t(bq, sQ + (br * kLd + bc) * 2);
          mma_16816<Tr::kBf16>(dv[2 * dd], ap, bo[0], bo[1]);
          mma_16816<Tr::kBf16>(dv[2 * dd + 1], ap, bo[2], bo[3]);
          mma_16816<Tr::kBf16>(dk[2 * dd], ads, bq[0], bq[1]);
          mma_16816<Tr::kBf16>(dk[2 * dd + 1], ads, bq[2], bq[3]);
        }
      }
    }

    // Deterministic mode: thread 0 waits for this query tile's turn before the barrier, so the
    // whole CTA enters the dQ phase in key-tile order.
    int* sem = nullptr;
    if (p.deterministic) {
      sem = sems + (int64_t(c.b) * p.heads_q + h) * sem_m_blocks + mb;
      if (tid == 0) {
        const int turn = dq_turn<Tr>(c, mb);
        while (ld_acquire(sem) != turn) {
        }
      }
    }
    __syncthreads();  // [B] dSᵀ complete in shared memory

    // ===== phase 2: dQ(tile) += dS·K  (kBlockM, kD), contraction over the kBlockN keys ==========
    {
      float acc[Tr::kMdq / 16][Tr::kDdq / 8][4];
#pragma unroll
      for (int i = 0; i < Tr::kMdq / 16; ++i)
#pragma unroll
        for (int j = 0; j < Tr::kDdq / 8; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;
#pragma unroll
      for (int kk = 0; kk < kBN / 16; ++kk) {
        uint32_t a[Tr::kMdq / 16][4];
#pragma unroll
        for (int i = 0; i < Tr::kMdq / 16; ++i) {
          // A = dS (query, key) from dSᵀ stored (key, query): transposed ldmatrix.
          const int r = kk * 16 + (lane & 7) + (lane >> 4) * 8;
          const int col = wmq * Tr::kMdq + i * 16 + ((lane >> 3) & 1) * 8;
          ldsm_x4_t(a[i], sDS + (r * Tr::kLdS + col) * 2);
        }
#pragma unroll
        for (int dd = 0; dd < Tr::kDdq / 16; ++dd) {
          // B = K stored (key, d) = (k, n) rows: transposed ldmatrix.
          const int r = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
          const int col = wdq * Tr::kDdq + dd * 16 + (lane >> 4) * 8;
          uint32_t bk[4];
          ldsm_x4_t(bk, sK + (r * kLd + col) * 2);
#pragma unroll
          for (int i = 0; i < Tr::kMdq / 16; ++i) {
            mma_16816<Tr::kBf16>(acc[i][2 * dd], a[i], bk[0], bk[1]);
            mma_16816<Tr::kBf16>(acc[i][2 * dd + 1], a[i], bk[2], bk[3]);
          }
        }
      }
      // Add into the fp32 accumulator (total_q, Hq, D); rows past the sequence are dropped.
#pragma unroll
      for (int i = 0; i < Tr::kMdq / 16; ++i) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int q = m0 + wmq * Tr::kMdq + i * 16 + g + r * 8;
          if (q >= c.si.seqlen_q) continue;
          float* dst = dq_acc + ((c.row_base + q) * p.heads_q + h) * int64_t(kD);
#pragma unroll
          for (int j = 0; j < Tr::kDdq / 8; ++j) {
            const int col = wdq * Tr::kDdq + j * 8 + 2 * t4;
            float2* d2 = reinterpret_cast<float2*>(dst + col);
            if (p.deterministic) {
              float2 old = __ldcg(d2);
              old.x += acc[i][j][r * 2];
              old.y += acc[i][j][r * 2 + 1];
              __stcg(d2, old);
            } else {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
              atomicAdd(d2, make_float2(acc[i][j][r * 2], acc[i][j][r * 2 + 1]));
#else
              atomicAdd(dst + col, acc[i][j][r * 2]);
              atomicAdd(dst + col + 1, acc[i][j][r * 2 + 1]);
#endif
            }
          }
        }
      }
      if (p.deterministic) {
        __threadfence();
        pending_sem = sem;  // released after the next barrier, once every thread has written
      }
    }

    c.next(it);
    ok_it = it.hi < group;
  }
  cp_async_commit();  // (kStages == 1 with no query tile: K/V copies still uncommitted)
  cp_async_wait<0>();
  if (pending_sem != nullptr) {
    __syncthreads();
    if (tid == 0) {
      __threadfence();
      atomicAdd(pending_sem, 1);
    }
  }

  // ---- dK = scale · Σ dSᵀ·Q, dV = Σ Pᵀ·dO: rows of this warp's 16 keys, its head-dim slice ----
  T* dkg = static_cast<T*>(p.dk) + int64_t(c.b) * p.dk_batch_stride + c.si.k_start * p.dk_row_stride +
           int64_t(c.hkv) * p.dk_head_stride;
  T* dvg = static_cast<T*>(p.dv) + int64_t(c.b) * p.dv_batch_stride + c.si.k_start * p.dv_row_stride +
           int64_t(c.hkv) * p.dv_head_stride;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int key = c.n0 + wn * 16 + g + r * 8;
    if (key >= c.si.seqlen_k) continue;
#pragma unroll
    for (int j = 0; j < Tr::kDkv / 8; ++j) {
      const int col = wdkv * Tr::kDkv + j * 8 + 2 * t4;
      *reinterpret_cast<uint32_t*>(dkg + int64_t(key) * p.dk_row_stride + col) =
          E::pack(dk[j][r * 2] * p.scale, dk[j][r * 2 + 1] * p.scale);
      *reinterpret_cast<uint32_t*>(dvg + int64_t(key) * p.dv_row_stride + col) =
          E::pack(dv[j][r * 2], dv[j][r * 2 + 1]);
    }
  }
}

}  // namespace attnforge::flash::bwd_detail
