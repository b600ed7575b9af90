// The flash backward main kernel (FlashAttention-2's algorithm and warp partition): one CTA per
// (K/V tile, kv head, batch) keeps K_j, V_j in shared memory and dK_j, dV_j in registers and loops
// over query tiles: P, dS recomputed and staged in shared memory, dQ added into fp32 scratch.
#pragma once
#include "flash/bwd_cta.cuh"
#include "flash/bwd_dq_acc.cuh"

namespace attnforge::flash::bwd_detail {

// acc = A·Bᵀ on a warp's (kSM × kSN) tile of a (kBlockM × kBlockN) product, contraction over kD:
// A stored (row, d) and B stored (col, d), both row-major with pitch kLd (Q·Kᵀ, dO·Vᵀ).
template <class Tr>
__device__ __forceinline__ void warp_gemm_nt(float (&acc)[Tr::kSM / 16][Tr::kSN / 8][4], uint32_t sA,
                                             uint32_t sB, int wm, int wn, int lane) {
  constexpr int kLd = Tr::kLd;
#pragma unroll
  for (int i = 0; i < Tr::kSM / 16; ++i)
#pragma unroll
    for (int j = 0; j < Tr::kSN / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;
#pragma unroll
  for (int kk = 0; kk < Tr::kD / 16; ++kk) {
    uint32_t a[Tr::kSM / 16][4];
#pragma unroll
    for (int i = 0; i < Tr::kSM / 16; ++i) {
      const int r = wm * Tr::kSM + i * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
      ldsm_x4(a[i], sA + (r * kLd + kk * 16 + (lane >> 4) * 8) * 2);
    }
#pragma unroll
    for (int jn = 0; jn < Tr::kSN / 16; ++jn) {
      // B = (col, d) rows = (n, k): plain ldmatrix gives two n8 fragments.
      const int r = wn * Tr::kSN + jn * 16 + (lane & 7) + (lane >> 4) * 8;
      uint32_t b[4];
      ldsm_x4(b, sB + (r * kLd + kk * 16 + ((lane >> 3) & 1) * 8) * 2);
#pragma unroll
      for (int i = 0; i < Tr::kSM / 16; ++i) {
        mma_16816<Tr::kBf16>(acc[i][2 * jn], a[i], b[0], b[1]);
        mma_16816<Tr::kBf16>(acc[i][2 * jn + 1], a[i], b[2], b[3]);
      }
    }
  }
}

template <class V>
__global__ void __launch_bounds__(BwdTraits<V>::kThreads, 1)
    flash_bwd_main_kernel(const __grid_constant__ Params p) {
  using Tr = BwdTraits<V>;
  using T = typename Tr::T;
  using E = typename Tr::E;
  using Mask = typename Tr::Mask;
  constexpr int kBM = Tr::kBlockM, kBN = Tr::kBlockN, kD = Tr::kD, kLd = Tr::kLd, kLdP = Tr::kLdP;

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
  const int wsm = warp / Tr::kSWarpsN, wsn = warp % Tr::kSWarpsN;        // S / dP warp tile
  const int wmq = warp / Tr::kWarpsDdq, wdq = warp % Tr::kWarpsDdq;      // dQ warp tile
  const int wkn = warp / Tr::kKvWarpsD, wkd = warp % Tr::kKvWarpsD;      // dK / dV warp tile
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

  // dK, dV accumulators: (kKvN keys, kKvD) per warp, fp32 fragments.
  float dk[Tr::kKvN / 16][Tr::kKvD / 8][4], dv[Tr::kKvN / 16][Tr::kKvD / 8][4];
#pragma unroll
  for (int i = 0; i < Tr::kKvN / 16; ++i)
#pragma unroll
    for (int j = 0; j < Tr::kKvD / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) dk[i][j][e] = dv[i][j][e] = 0.f;

  // ---- prologue: the first kStages-1 query tiles in flight ------------------------------------
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
  const uint32_t sP = smem_u32(smem + Tr::kOffP), sDS = smem_u32(smem + Tr::kOffDS);

#pragma unroll 1
  for (int step = 0; ok_it; ++step) {
    const int slot = step % Tr::kStages;
    if constexpr (Tr::kStages == 1) {
      // One Q/dO buffer: the previous step's dK/dV phase (after its barrier [B]) still reads it.
      if (step > 0) __syncthreads();
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
      if (load_ok) {  // prefetch into the buffer the previous step used (free since [A])
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
    // The sequence's keys all lie in this tile (CTA-uniform): D comes from the tile (phase 1).
    const bool whole_rows = c.n0 == 0 && c.si.seqlen_k <= kBN;
    const float* lse_s = c.s_lse + slot * kBM;
    const float* dsum_s = c.s_dsum + slot * kBM;

    // ===== phase 1: S = Q·Kᵀ, dP = dO·Vᵀ on the warp's (kSM queries × kSN keys) ==================
    // S → P (fp32, kept; staged 16-bit for dV), then dP → dS = P ∘ (dP − D) from the fp32 P. A 16-bit
    // P here (one fp32 tile fewer) breaks Σ_j dS_j = 0 by P's rounding, so a row of a few keys gets a dQ
    // error ∝ |D|·|K| instead of |dS|·|K| (sweep case #355; scripts/dev/flash_bwd_short_rows_model.py
    // fails the numerics rule in 53 of 60000 short bias rows with 16-bit P, in 0 with fp32 P, worst 0.71
    // of the bound: bench/results/h200_2026-12-01_bwd_short_rows_fp32p.md).
    {
      uint32_t* sp32 = reinterpret_cast<uint32_t*>(smem + Tr::kOffP);
      uint32_t* sds32 = reinterpret_cast<uint32_t*>(smem + Tr::kOffDS);
      float pf[Tr::kSM / 16][Tr::kSN / 8][4];  // P: [i][j][2r + e] = row g + 8r, col 2t + e
      {
        float (&s)[Tr::kSM / 16][Tr::kSN / 8][4] = pf;
        warp_gemm_nt<Tr>(s, sQ, sK, wsm, wsn, lane);  // S = Q·Kᵀ (raw, unscaled), P in place below
        // P = exp2(S·scale·log2e − LSE·log2e): the forward's softmax, recomputed. Masked
        // elements: P = 0 by selection (NaN or huge values in masked K never reach a sum). A row
        // with LSE = −inf saw no key: its LSE is taken as +inf so that P = 0, never
        // exp2(−inf − (−inf)) = NaN.
#pragma unroll
        for (int i = 0; i < Tr::kSM / 16; ++i) {
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            const int mi = wsm * Tr::kSM + i * 16 + g + r * 8;  // query row inside the tile
            const float lse = lse_s[mi];
            const float lse2 = lse == -INFINITY ? INFINITY : lse * kLog2e;
#pragma unroll
            for (int j = 0; j < Tr::kSN / 8; ++j) {
              const int kc = wsn * Tr::kSN + j * 8 + 2 * t4;  // key column inside the tile
              float pv[2];
#pragma unroll
              for (int e = 0; e < 2; ++e) {
                float x = s[i][j][r * 2 + e] * p.scale_log2;
                bool vis = true;
                if (need_mask) {
                  const int q = m0 + mi, k = c.n0 + kc + e;
                  vis = q < c.si.seqlen_q && k < c.si.seqlen_k &&
                        Mask::visible(q, k, c.si.seqlen_q, c.si.seqlen_k, p.mask);
                  if constexpr (Mask::kHasTensor) {
                    if (vis) vis = c.apply_bias(h, q, k, x);
                  }
                }
                const float pe = exp2_approx(x - lse2);
                pv[e] = vis ? pe : 0.f;
                s[i][j][r * 2 + e] = pv[e];
              }
              sp32[(mi * kLdP + kc) / 2] = E::pack(pv[0], pv[1]);
            }
          }
        }
      }
      {
        float dp[Tr::kSM / 16][Tr::kSN / 8][4];
        warp_gemm_nt<Tr>(dp, sDO, sV, wsm, wsn, lane);  // dP = dO·Vᵀ
        if (whole_rows) {
          // Every key of the sequence is in this tile: D_i = Σ_j P_ij·dP_ij / Σ_j P_ij from the tile
          // itself replaces the preprocess's rowsum(dO ∘ O), whose O is rounded to the dtype — the
          // error that dominates dS when a row sees only a few keys. Dividing by Σ_j P (1 up to the
          // LSE's and exp2's rounding) keeps Σ_j dS_ij = 0 up to fp32 rounding: a row of one visible
          // key, whose exact dS is 0, keeps only the rounding of (P·dP)/P, an ulp of dP, where without
          // the division it kept dP·(1 − P) (dQ 1.1e-5 in the sweep, over the rule's 1e-5 floor). The
          // fused backward divides P itself (fused/bwd.cuh), which makes that row exactly 0. Per-warp
          // partial rows (P·dP, P) meet in the dS staging area (free until dS is written below), summed
          // in a fixed order.
          static_assert(2 * Tr::kSWarpsN * kBM * 4 <= kBM * Tr::kBlockN * 2, "flash bwd: D partials exceed the dS area");
          float* part = reinterpret_cast<float*>(smem + Tr::kOffDS);  // (2, kSWarpsN, kBM) fp32
#pragma unroll
          for (int i = 0; i < Tr::kSM / 16; ++i) {
#pragma unroll
            for (int r = 0; r < 2; ++r) {
              float acc = 0.f, psum = 0.f;
#pragma unroll
              for (int j = 0; j < Tr::kSN / 8; ++j) {
                const float p0 = pf[i][j][r * 2], p1 = pf[i][j][r * 2 + 1];  // P == 0 selects 0 (NaN in masked V)
                acc += (p0 != 0.f ? p0 * dp[i][j][r * 2] : 0.f) + (p1 != 0.f ? p1 * dp[i][j][r * 2 + 1] : 0.f);
                psum += p0 + p1;
              }
              acc += __shfl_xor_sync(0xffffffffu, acc, 1);
              acc += __shfl_xor_sync(0xffffffffu, acc, 2);
              psum += __shfl_xor_sync(0xffffffffu, psum, 1);
              psum += __shfl_xor_sync(0xffffffffu, psum, 2);
              if (t4 == 0) {
                const int row = wsm * Tr::kSM + i * 16 + g + r * 8;
                part[wsn * kBM + row] = acc;
                part[(Tr::kSWarpsN + wsn) * kBM + row] = psum;
              }
            }
          }
          __syncthreads();
          if (tid < kBM) {
            float d = 0.f, l = 0.f;
#pragma unroll
            for (int w = 0; w < Tr::kSWarpsN; ++w) d += part[w * kBM + tid], l += part[(Tr::kSWarpsN + w) * kBM + tid];
            c.s_dsum[slot * kBM + tid] = l > 0.f ? d / l : 0.f;  // l = 0: a row that sees no key (P = 0, dS = 0)
          }
          __syncthreads();  // D published; the staging area is free for dS again
        }
        // dS = P ∘ (dP − D), from the fp32 P; P == 0 (masked, or underflow where dS is 0 anyway)
        // selects 0 so that NaN in masked V cannot leak through dP.
#pragma unroll
        for (int i = 0; i < Tr::kSM / 16; ++i) {
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            const int mi = wsm * Tr::kSM + i * 16 + g + r * 8;
            const float dsum = dsum_s[mi];
#pragma unroll
            for (int j = 0; j < Tr::kSN / 8; ++j) {
              const int kc = wsn * Tr::kSN + j * 8 + 2 * t4;
              const float p0 = pf[i][j][r * 2], p1 = pf[i][j][r * 2 + 1];
              const float d0 = p0 != 0.f ? p0 * (dp[i][j][r * 2] - dsum) : 0.f;
              const float d1 = p1 != 0.f ? p1 * (dp[i][j][r * 2 + 1] - dsum) : 0.f;
              sds32[(mi * kLdP + kc) / 2] = E::pack(d0, d1);
            }
          }
        }
      }
    }

    // Deterministic mode: thread 0 waits for this query tile's turn before the barrier, so the
    // whole CTA adds its dQ share in key-tile order.
    int* sem = nullptr;
    if (p.deterministic) {
      sem = sems + (int64_t(c.b) * p.heads_q + h) * sem_m_blocks + mb;
      if (tid == 0) {
        const int turn = dq_turn<Tr>(c, mb);
        while (ld_acquire(sem) != turn) {
        }
      }
    }
    __syncthreads();  // [B] P and dS complete in shared memory

    // ===== phase 2: dQ(tile) += dS·K  (kBlockM, kD), contraction over the kBlockN keys ==========
    auto phase_dq = [&]() {
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
          // A = dS stored (query, key) row-major: plain ldmatrix.
          const int r = wmq * Tr::kMdq + i * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
          const int col = kk * 16 + (lane >> 4) * 8;
          ldsm_x4(a[i], sDS + (r * kLdP + col) * 2);
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
      // Add into the fp32 accumulator. Deterministic mode: plain read-add-write in this tile's
      // turn (L2 only: other SMs wrote it); otherwise fp32 atomics (vector of 2 on sm_90).
      auto add2 = [&](float* dst, float x, float y) {
        float2* d2 = reinterpret_cast<float2*>(dst);
        if (p.deterministic) {
          float2 old = __ldcg(d2);
          old.x += x;
          old.y += y;
          __stcg(d2, old);
        } else {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
          atomicAdd(d2, make_float2(x, y));
#else
          atomicAdd(dst, x);
          atomicAdd(dst + 1, y);
#endif
        }
      };
      using Acc = DqAcc<Tr>;
#if defined(ATTNFORGE_FLASH_BWD_DEV_SKIP_DQ_ADD)  // dev measurement only: dQ wrong, MMAs kept
      if (acc[0][0][0] == 1.2345e-30f) dq_acc[tid] = acc[Tr::kMdq / 16 - 1][Tr::kDdq / 8 - 1][3];
#else
      {
        // Tiled layout (bwd_dq_acc.cuh): one warp instruction adds 256 contiguous bytes. Every row
        // of the tile has a slot; rows past the sequence add zeros (their dS is 0), never read back.
        float* tile = dq_acc + Acc::tile_base(p, c.b, h, mb);
#pragma unroll
        for (int i = 0; i < Tr::kMdq / 16; ++i)
#pragma unroll
          for (int j = 0; j < Tr::kDdq / 8; ++j)
#pragma unroll
            for (int r = 0; r < 2; ++r)
              add2(tile + Acc::tiled_offset(tid, i, j, r), acc[i][j][r * 2], acc[i][j][r * 2 + 1]);
      }
#endif
      if (p.deterministic) {
        __threadfence();
        pending_sem = sem;  // released after the next barrier, once every thread has written
      }
    };

    // ===== phase 3: dV += Pᵀ·dO, dK += dSᵀ·Q on the warp's (kKvN keys × kKvD), over kBlockM ======
    auto phase_dkdv = [&]() {
#pragma unroll
    for (int mm = 0; mm < kBM / 16; ++mm) {
      uint32_t ap[Tr::kKvN / 16][4], ads[Tr::kKvN / 16][4];
#pragma unroll
      for (int i = 0; i < Tr::kKvN / 16; ++i) {
        // A = Pᵀ / dSᵀ (key, query) from the (query, key) tiles: transposed ldmatrix.
        const int r = mm * 16 + (lane & 7) + (lane >> 4) * 8;
        const int col = wkn * Tr::kKvN + i * 16 + ((lane >> 3) & 1) * 8;
        ldsm_x4_t(ap[i], sP + (r * kLdP + col) * 2);
        ldsm_x4_t(ads[i], sDS + (r * kLdP + col) * 2);
      }
#pragma unroll
      for (int dd = 0; dd < Tr::kKvD / 16; ++dd) {
        // B = dO / Q stored (query, d) = (k, n) rows: transposed ldmatrix.
        const int r = mm * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
        const int col = wkd * Tr::kKvD + dd * 16 + (lane >> 4) * 8;
        uint32_t bo[4], bq[4];
        ldsm_x4_t(bo, sDO + (r * kLd + col) * 2);
        ldsm_x4_t(bq, sQ + (r * kLd + col) * 2);
#pragma unroll
        for (int i = 0; i < Tr::kKvN / 16; ++i) {
          mma_16816<Tr::kBf16>(dv[i][2 * dd], ap[i], bo[0], bo[1]);
          mma_16816<Tr::kBf16>(dv[i][2 * dd + 1], ap[i], bo[2], bo[3]);
          mma_16816<Tr::kBf16>(dk[i][2 * dd], ads[i], bq[0], bq[1]);
          mma_16816<Tr::kBf16>(dk[i][2 * dd + 1], ads[i], bq[2], bq[3]);
        }
      }
    }
    };

#if defined(ATTNFORGE_FLASH_BWD_DQ_FIRST)  // dev switch: the other order (measured slower on H100)
    phase_dq();
    phase_dkdv();
#else
    phase_dkdv();  // dK/dV first, then dQ and its atomics: measured 5-7% faster at head dim 128
    phase_dq();
#endif

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

  // ---- dK = scale · Σ dSᵀ·Q, dV = Σ Pᵀ·dO: this warp's (kKvN keys, kKvD) block ----------------
  T* dkg = static_cast<T*>(p.dk) + int64_t(c.b) * p.dk_batch_stride + c.si.k_start * p.dk_row_stride +
           int64_t(c.hkv) * p.dk_head_stride;
  T* dvg = static_cast<T*>(p.dv) + int64_t(c.b) * p.dv_batch_stride + c.si.k_start * p.dv_row_stride +
           int64_t(c.hkv) * p.dv_head_stride;
#pragma unroll
  for (int i = 0; i < Tr::kKvN / 16; ++i) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int key = c.n0 + wkn * Tr::kKvN + i * 16 + g + r * 8;
      if (key >= c.si.seqlen_k) continue;
#pragma unroll
      for (int j = 0; j < Tr::kKvD / 8; ++j) {
        const int col = wkd * Tr::kKvD + j * 8 + 2 * t4;
        *reinterpret_cast<uint32_t*>(dkg + int64_t(key) * p.dk_row_stride + col) =
            E::pack(dk[i][j][r * 2] * p.scale, dk[i][j][r * 2 + 1] * p.scale);
        *reinterpret_cast<uint32_t*>(dvg + int64_t(key) * p.dv_row_stride + col) =
            E::pack(dv[i][j][r * 2], dv[i][j][r * 2 + 1]);
      }
    }
  }
}

}  // namespace attnforge::flash::bwd_detail
