// Fused forward: ONE kernel per call. A CTA takes kBlockM query rows of one (batch, head), computes the
// whole score block S = Q·Kᵀ·scale (kBlockM × Sk, Sk ≤ kMaxSeqlenK) into fp32 registers with tensor
// cores (K streamed through shared memory in 64-key tiles), masks it, runs an EXACT two-pass softmax
// (row max, then row sum; no rescaling), writes LSE, optionally the attention weights P, and O = P·V.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "common/copy.cuh"
#include "common/mask_apply.cuh"
#include "common/mma.cuh"
#include "common/numeric.cuh"
#include "common/params.hpp"
#include "common/softmax.cuh"
#include "common/variant.hpp"
#include "fused/column_partials.cuh"
#include "fused/config.cuh"
#include "fused/f32.cuh"
#include "fused/fwd_sm90.cuh"
#include "fused/fwd_sm90_stream.cuh"
#include "fused/fwd_sm90_ws.cuh"
#include "fused/host_util.hpp"
#include "fused/row_softmax.cuh"

namespace attnforge::fused {

template <class V>
__global__ void __launch_bounds__(Config<V>::kThreads, 1) fwd_kernel(const __grid_constant__ Params p) {
  using Cfg = Config<V>;
  using Num = typename Cfg::Num;
  using Element = typename Cfg::Element;
  using Mask = typename Cfg::Mask;
  using QL = typename Cfg::QLayout;
  using KVL = typename Cfg::KVLayout;
  constexpr int kBlockM = Cfg::kBlockM, kSteps = Cfg::kSteps, kKeyBlock = Cfg::kKeyBlock;
  constexpr int kWarpsM = Cfg::kWarpsM, kWarpsN = Cfg::kWarpsN, kThreads = Cfg::kThreads;
  constexpr int kKSteps = Cfg::kKSteps, kONTiles = Cfg::kONTiles;

  const int m_block = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const SeqInfo seq = seq_info(p, b);
  const int sq = seq.seqlen_q, sk = seq.seqlen_k;
  const int m0 = m_block * kBlockM;
  if (m0 >= sq) return;  // varlen: this sequence is shorter than the longest (no weights in varlen)
  const int h_kv = h / p.group();

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t4 = lane & 3;
  const int wm = warp % kWarpsM, wn = warp / kWarpsM;
  const int row0 = 16 * wm;  // first CTA-local query row of this warp

  const Element* q_ptr = static_cast<const Element*>(p.q) + b * p.q_batch_stride +
                         (seq.q_start + m0) * p.q_row_stride + int64_t(h) * p.q_head_stride;  // (kBlockM, D)
  const Element* k_ptr = static_cast<const Element*>(p.k) + b * p.k_batch_stride +
                         seq.k_start * p.k_row_stride + int64_t(h_kv) * p.k_head_stride;  // (Sk, D)
  const Element* v_ptr = static_cast<const Element*>(p.v) + b * p.v_batch_stride +
                         seq.k_start * p.v_row_stride + int64_t(h_kv) * p.v_head_stride;  // (Sk, D)

  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t s_q = uint32_t(__cvta_generic_to_shared(smem));  // (kBlockM, D)
  const uint32_t s_ring = s_q + Cfg::kSmemQ;                        // 2 × (kKeyBlock, D)
  float* s_stats = reinterpret_cast<float*>(smem + Cfg::kSmemQ + Cfg::kSmemRingOrReduce);  // (2, kWarpsN, kBlockM)
  auto stage_addr = [&](int stage) { return s_ring + uint32_t(stage * KVL::kBytes); };

  // The CTA streams 2·n_steps blocks of kKeyBlock keys: K blocks 0..n−1, then V blocks 0..n−1;
  // block i lands in ring stage i % 2. Rows past sk, and keys no query of this CTA sees, are
  // zero-filled instead of read: P is 0 there, but 0·NaN (garbage in masked-out V) would poison O.
  const int n_steps = (sk + kKeyBlock - 1) / kKeyBlock;
  const int q_last = min(m0 + kBlockM, sq) - 1;
  auto issue_block = [&](int i) {
    const bool is_k = i < n_steps;
    const int kb = is_k ? i : i - n_steps;
    const Element* src = is_k ? k_ptr + kb * kKeyBlock * p.k_row_stride : v_ptr + kb * kKeyBlock * p.v_row_stride;
    const int64_t stride = is_k ? p.k_row_stride : p.v_row_stride;
    const int k0 = kb * kKeyBlock;
    prim::load_tile_async_if<KVL, kThreads>(
        stage_addr(i & 1), src, stride,
        [&](int r) { return prim::key_live<Mask>(m0, q_last, k0 + r, sq, sk, p.mask); }, tid);
  };

  prim::load_tile_async<QL, kThreads>(s_q, q_ptr, p.q_row_stride, sq - m0, tid);
  if (n_steps > 0) issue_block(0);
  prim::cp_async_commit();

  // A fragments of Q (16 rows × 16 dims per k-step), per PTX layout; from registers or re-read.
  auto load_q_frag = [&](uint32_t (&a)[4], int kk) {
    prim::ldmatrix_x4(a, s_q + QL::offset(row0 + (lane & 15), kk * 16 + 8 * (lane >> 4)));
  };
  uint32_t q_frag[Cfg::kQInRegs ? kKSteps : 1][4];

  // ---- pass 1: S = Q·Kᵀ·scale_log2 for the whole key row, masked --------------------------------
  // s[i]: key tile kt = i·kWarpsN + wn of this warp, (16 rows × 64 keys) as 8 m16n8 C fragments.
  float s[kSteps][1][8][4];
  uint32_t live = 0;  // bit i: tile i has a visible element (else P = 0 there and P·V skips it)
  // Bias of kinds with a tensor, offset to this (batch, head); element (q, k) by its strides.
  prim::BiasView bias_here{};  // scores are in log2 units when the bias is added: bias·log2(e)
  bias_here.dtype = p.bias_dtype;
  bias_here.stride_q = p.bias_stride_q;
  bias_here.stride_k = p.bias_stride_k;
  bias_here.to_score = 1.4426950408889634f;
  if constexpr (Mask::kHasTensor) {
    const int esz = p.bias_dtype == ATTNFORGE_F32 ? 4 : (p.bias_dtype == ATTNFORGE_BOOL ? 1 : 2);
    bias_here.ptr = static_cast<const char*>(p.bias) + (b * p.bias_stride_b + int64_t(h) * p.bias_stride_h) * esz;
  }
  const int q_first = m0 + row0;  // first sequence row of this warp band
  const bool band_live = q_first < sq;

#pragma unroll
  for (int i = 0; i < kSteps; ++i) {
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[i][0][nt][e] = -INFINITY;
    if (i < n_steps) {
      issue_block(i + 1);  // K block i+1, or V block 0 after the last K (always exists)
      prim::cp_async_commit();
      prim::cp_async_wait<1>();
      __syncthreads();
      if constexpr (Cfg::kQInRegs) {
        if (i == 0) {
#pragma unroll
          for (int kk = 0; kk < kKSteps; ++kk) load_q_frag(q_frag[kk], kk);
        }
      }
      const int k_first = (i * kWarpsN + wn) * Cfg::kKeyTile;
      const TileClass cls = (band_live && k_first < sk)
                                ? prim::classify_tile<Mask>(q_first, 16, k_first, Cfg::kKeyTile, sq, sk, p.mask)
                                : TileClass::kEmpty;
      if (cls != TileClass::kEmpty) {
        live |= 1u << i;
        const uint32_t s_k = stage_addr(i & 1);
#pragma unroll
        for (int nt = 0; nt < 8; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) s[i][0][nt][e] = 0.f;
        // S(16 × 64) = Q(16 × D) · K_tileᵀ(D × 64): per k-step, 4 ldmatrix_x4 give B for 8 n8 tiles.
#pragma unroll
        for (int kk = 0; kk < kKSteps; ++kk) {
          uint32_t a[4];
          if constexpr (Cfg::kQInRegs) {
#pragma unroll
            for (int r = 0; r < 4; ++r) a[r] = q_frag[kk][r];
          } else {
            load_q_frag(a, kk);
          }
#pragma unroll
          for (int np = 0; np < 4; ++np) {
            uint32_t bf[4];  // b0,b1 of n-tile 2np, b0,b1 of n-tile 2np+1
            const int key = wn * Cfg::kKeyTile + np * 16 + (lane & 7) + 8 * (lane >> 4);
            const int col = kk * 16 + 8 * ((lane >> 3) & 1);
            prim::ldmatrix_x4(bf, s_k + KVL::offset(key, col));
            prim::mma_m16n8k16<Cfg::kDType>(s[i][0][2 * np], a, bf[0], bf[1]);
            prim::mma_m16n8k16<Cfg::kDType>(s[i][0][2 * np + 1], a, bf[2], bf[3]);
          }
        }
        scale_scores(s[i], p.scale_log2);  // log2-domain scores: exp2 below
        if (cls == TileClass::kPartial)
          prim::apply_mask<Mask>(s[i], q_first + g, k_first + 2 * t4, sq, sk, p.mask, bias_here);
      }
      __syncthreads();  // every warp is done with stage i % 2 before block i + 2 overwrites it
    }
  }
  if (n_steps == 0) prim::cp_async_wait<0>();  // only Q was in flight (sk = 0: every row is empty)

  // ---- pass 2: exact softmax over the whole row (max, then sum), LSE, optional weights ----------------
  float* s_max = s_stats;                      // (kWarpsN, kBlockM)
  float* s_sum = s_stats + kWarpsN * kBlockM;  // (kWarpsN, kBlockM)
  float lse[2], inv[2];
  row_softmax<kSteps, kWarpsN, kBlockM>(s, live, s_max, s_sum, row0 + g, wn, t4, p.weights != nullptr, lse, inv);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = q_first + g + 8 * r;
    if (wn == 0 && t4 == 0 && row < sq)
      p.lse[b * p.lse_batch_stride + int64_t(h) * p.lse_head_stride + seq.q_start + row] = lse[r];
  }
  if (p.weights != nullptr) store_weights<Num, kSteps, kWarpsN, false>(p, s, b, h, q_first, sq, sk, wn, g, t4);

  // ---- pass 3: O = P·V, P straight from the S registers (C fragment pairs = A fragments) ------------
  float o[kONTiles][4];
#pragma unroll
  for (int nt = 0; nt < kONTiles; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[nt][e] = 0.f;
#pragma unroll
  for (int j = 0; j < kSteps; ++j) {
    if (j < n_steps) {
      const int blk = n_steps + j;  // ring index of V block j
      if (blk + 1 < 2 * n_steps) issue_block(blk + 1);
      prim::cp_async_commit();
      prim::cp_async_wait<1>();
      __syncthreads();
      if (live & (1u << j)) {
        const uint32_t s_v = stage_addr(blk & 1);
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {  // 16 keys per k-step
          uint32_t a[4];
          prim::c_to_a<Num>(a, s[j][0], kk);
#pragma unroll
          for (int dp = 0; dp < kONTiles / 2; ++dp) {
            uint32_t bf[4];  // V(16 keys × 16 dims), transposed into B fragments of two n8 tiles
            const int key = wn * Cfg::kKeyTile + kk * 16 + (lane & 7) + 8 * ((lane >> 3) & 1);
            const int col = dp * 16 + 8 * (lane >> 4);
            prim::ldmatrix_x4_trans(bf, s_v + KVL::offset(key, col));
            prim::mma_m16n8k16<Cfg::kDType>(o[2 * dp], a, bf[0], bf[1]);
            prim::mma_m16n8k16<Cfg::kDType>(o[2 * dp + 1], a, bf[2], bf[3]);
          }
        }
      }
      __syncthreads();
    }
  }
  prim::cp_async_wait<0>();
  scale_rows(o, inv);  // O = (Σ exp2(s − max)·V) / Σ unless P was normalised already (weights)

  // ---- O partials of the kWarpsN key columns summed through shared memory (ring reused) -------------
  if constexpr (kWarpsN > 1) {
    __syncthreads();  // the K/V ring becomes the reduction buffer
    if (!sum_column_partials<kWarpsM, kWarpsN, kONTiles>(o, reinterpret_cast<float4*>(smem + Cfg::kSmemQ), wm,
                                                         wn, lane))
      return;
  }

  // ---- O: (kBlockM, D) rows of this band; a row that saw nothing is exactly 0 -------------------------
  Element* o_ptr = static_cast<Element*>(p.o) + b * p.o_batch_stride + (seq.q_start + q_first) * p.o_row_stride +
                   int64_t(h) * p.o_head_stride;
  store_o<Num, kONTiles>(o_ptr, p.o_row_stride, o, sq - q_first, g, t4);
}

// The weights' TMA map (encode_weights_view, 64-row boxes) when the call asks for them and the driver can
// describe them (Sk a multiple of 8, 16-byte aligned); false: P leaves the streamed kernels from registers.
inline bool encode_weights_map(CUtensorMap* map, const Params& p, DType dt) {
  return p.weights != nullptr &&
         prim::tma::encode_weights_view(map, dt, p.weights, p.seqlen_k, p.seqlen_q, int64_t(p.batch) * p.heads_q, 64);
}

// Host side of the streamed key row, one warpgroup per CTA (fwd_sm90_stream.cuh): the weights' map, the launch.
template <class V>
attnforge_status launch_fwd_stream(const Params& p, cudaStream_t stream) {
  using Cfg = StreamConfig<V>;
  static_assert(Cfg::kSupported, "codegen/limits.py admits only streamed tiles the kernel takes");
  static int raised[64] = {};
  if (attnforge_status st = raise_smem_limit(fwd_kernel_sm90_stream<V>, Cfg::kSmemBytes, raised); st != ATTNFORGE_OK)
    return st;
  StreamArgs a{};
  a.p = p;
  a.w_tma = encode_weights_map(&a.tw, p, V::kDType);
  const dim3 grid((p.seqlen_q + Cfg::kBlockM - 1) / Cfg::kBlockM, p.heads_q, p.batch);
  fwd_kernel_sm90_stream<V><<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(a);
  return check_launch("fused forward (sm90, streamed key row)");
}

// The streamed tile a warp-specialized one falls back to where TMA cannot describe Q, K or V (e.g. a
// zero batch stride): one warpgroup of 64 rows, the same stages.
template <class V>
using StreamFallback = Variant<V::kBackend, V::kDirection, V::kDType, V::kHeadDim, typename V::Mask,
                               Tile<64, V::TileT::kBlockN, 4, V::TileT::kStages, V::TileT::kArch>>;

// Host side of the warp-specialized streamed key row (fwd_sm90_ws.cuh): TMA maps of Q, K, V and the
// weights, the launch. ATTNFORGE_UNSUPPORTED, nothing launched, when the driver cannot describe Q, K or V.
template <class V>
attnforge_status launch_fwd_ws(const Params& p, cudaStream_t stream) {
  using Cfg = WsStreamConfig<V>;
  static_assert(Cfg::kSupported, "codegen/limits.py admits only warp-specialized streamed tiles the kernel takes");
  WsStreamArgs a{};
  a.p = p;
  if (!prim::tma::encode_qkv_views(&a.tq, &a.tk, &a.tv, p, V::kDType, V::kHeadDim, Cfg::kBlockM, Cfg::kKeyStep))
    return ATTNFORGE_UNSUPPORTED;
  a.w_tma = encode_weights_map(&a.tw, p, V::kDType);
  static int raised[64] = {};
  if (attnforge_status st = raise_smem_limit(fwd_kernel_sm90_ws<V>, Cfg::kSmemBytes, raised); st != ATTNFORGE_OK)
    return st;
  // Persistent: one CTA per SM (the shared memory allows no second), never more than the row blocks.
  const int64_t units =
      WsUnits::count(p.seqlen_q, Cfg::kBlockM, p.heads_q, p.batch, prim::kMaskEmptiesTiles<typename V::Mask>);
  const int grid = int(std::min<int64_t>(units, p.num_sms > 0 ? p.num_sms : 132));
  if (units > INT32_MAX - grid)  // the kernel's unit index steps by the grid in an int
    return fail(ATTNFORGE_UNSUPPORTED, "more than 2^31 - 1 - grid units of row blocks (B·Hq·⌈Sq/128⌉)");
  fwd_kernel_sm90_ws<V><<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(a);
  return check_launch("fused forward (sm90, warp-specialized streamed key row)");
}

// Host side: rejects what the kernel cannot run (Sk past the on-chip key row, misaligned rows), sizes
// the grid (kBlockM-row blocks × Hq × B), raises the shared-memory limit and launches — one kernel.
template <class V>
attnforge_status run_fwd(const Params& p, cudaStream_t stream) {
  if (attnforge_status st = check_variant_runs(p, V::kHeadDim, V::TileT::kBlockN, false); st != ATTNFORGE_OK)
    return st;
  if constexpr (V::kDType == DType::f32) {
    return run_f32<V>(p, stream);  // CUDA cores (fused/f32.cuh)
  } else {
    if (p.batch == 0 || p.seqlen_q == 0 || p.heads_q == 0) return ATTNFORGE_OK;  // nothing to write
    if (!rows_aligned16(p, false)) return fail(ATTNFORGE_UNSUPPORTED, kNeedsAlignedRows);
    if (exceeds_grid_yz(p.heads_q, p.batch)) return fail(ATTNFORGE_UNSUPPORTED, kGridLimits);
    if constexpr (V::TileT::kStages > 0) {
      // A streamed key row (sm90a tiles only, so the selector offers them on sm_90 only): with a producer
      // warpgroup (fwd_sm90_ws.cuh) where the tile has one and TMA can describe Q, K and V; else one
      // warpgroup per CTA (fwd_sm90_stream.cuh). ATTNFORGE_FUSED_FWD_PATH=stream forces the latter (the GPU
      // tests run the TMA-refused path with it).
      if constexpr (V::TileT::kWarps == 4 * (V::TileT::kBlockM / 64 + 1)) {
        if (!env_is("ATTNFORGE_FUSED_FWD_PATH", "stream"))
          if (attnforge_status st = launch_fwd_ws<V>(p, stream); st != ATTNFORGE_UNSUPPORTED) return st;
        return launch_fwd_stream<StreamFallback<V>>(p, stream);
      } else {
        return launch_fwd_stream<V>(p, stream);
      }
    } else {
      using Cfg = Config<V>;
      using Cfg90 = Sm90Config<V>;
      if constexpr (Cfg90::kSupported) {
        // The wgmma kernel (fwd_sm90.cuh) on sm_90 when the variant fits it, else the mma.sync one above;
        // ATTNFORGE_FUSED_FWD_PATH=mma forces mma.sync.
        if (hopper_path("ATTNFORGE_FUSED_FWD_PATH")) {
          // One CTA per (query-block group, head, batch): each walks blocks x, x + G, ... of its head, so K
          // (and V) are read once per CTA; G just large enough to fill the SMs.
          const int n_mblocks = (p.seqlen_q + 63) / 64;
          const int64_t heads = int64_t(p.batch) * p.heads_q;
          const int sms = p.num_sms > 0 ? p.num_sms : 132;
          const int groups = int(std::max<int64_t>(1, std::min<int64_t>(n_mblocks, (sms + heads - 1) / heads)));
          constexpr int smem90 = Cfg90::kSmemBytes;
          static int raised90[64] = {};
          if (attnforge_status st = raise_smem_limit(fwd_kernel_sm90<V>, smem90, raised90); st != ATTNFORGE_OK)
            return st;
          fwd_kernel_sm90<V><<<dim3(groups, p.heads_q, p.batch), Cfg::kThreads, smem90, stream>>>(p);
          return check_launch("fused forward (sm90)");
        }
      }
      constexpr int smem = Cfg::kSmemBytes;
      static int raised[64] = {};
      if (attnforge_status st = raise_smem_limit(fwd_kernel<V>, smem, raised); st != ATTNFORGE_OK) return st;
      const dim3 grid((p.seqlen_q + Cfg::kBlockM - 1) / Cfg::kBlockM, p.heads_q, p.batch);
      fwd_kernel<V><<<grid, Cfg::kThreads, smem, stream>>>(p);
      return check_launch("fused forward");
    }
  }
}

}  // namespace attnforge::fused
