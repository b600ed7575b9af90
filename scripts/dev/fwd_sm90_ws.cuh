// Dev-only prototype (NOT in the library, never run on a GPU yet): the flash forward in FA3's shape for
// sm_90a — a producer warpgroup moves Q/K/V with the tensor memory accelerator (cp.async.bulk.tensor,
// 128-byte swizzle, completion on mbarriers, 2 stages), two consumer warpgroups of 64 query rows each
// run S = Q·Kᵀ and O += P·V on wgmma with registers reallocated to them (setmaxnreg 240 / 24), take
// turns on the tensor cores (ping-pong on two named barriers: one warpgroup's softmax overlaps the
// other's GEMMs), and overlap their own softmax of tile j with P_{j−1}·V_{j−1} (intra-warpgroup).
// Scope of the prototype: head dim 64 or 128, f16/bf16, masks without a tensor, dense or varlen,
// GQA, any strides that are multiples of 16 bytes. Checked and timed by scripts/dev/flash_fwd_ws_dev.cu
// through scripts/dev/flash_fwd_dev.py; moves to runtime/kernels/flash/ only after that.
#pragma once
#include <cuda.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "common/mask_apply.cuh"
#include "common/numeric.cuh"
#include "common/params.hpp"
#include "common/smem_layout.cuh"
#include "common/smem_tile_ops.cuh"
#include "common/softmax.cuh"
#include "common/variant.hpp"
#include "common/wgmma.cuh"

namespace attnforge::flash::ws {

template <class V>
struct WsConfig {
  static constexpr DType kDType = V::kDType;
  using Num = prim::Numeric<kDType>;
  using Element = typename Num::Element;
  using Mask = typename V::Mask;
  static constexpr int kD = V::kHeadDim;
  static constexpr int kBlockM = 128;  // two consumer warpgroups × 64 query rows
  static constexpr int kBlockN = 128;  // keys per K/V tile
  static constexpr int kStages = 2;
  static constexpr int kThreads = 384;  // warpgroup 0: producer; 1, 2: consumers
  static constexpr bool kSupported =
      (kDType == DType::f16 || kDType == DType::bf16) && (kD == 64 || kD == 128) && !Mask::kHasTensor;
  static constexpr int kLayoutD = kSupported ? kD : 64;
  using QL = prim::SmemTileSw128<kBlockM, kLayoutD>;  // (128 queries, D), reused to stage O
  using KL = prim::SmemTileSw128<kBlockN, kLayoutD>;  // (128 keys, D) per K or V stage
  // [Q][K × kStages][V × kStages][mbarriers], tiles 1024-byte aligned (the swizzle atom).
  static constexpr int kOffK = QL::kBytes;
  static constexpr int kOffV = kOffK + kStages * KL::kBytes;
  static constexpr int kOffBar = kOffV + kStages * KL::kBytes;
  static constexpr int kNumBars = 1 + 4 * kStages;  // q_full, k_full/k_empty/v_full/v_empty per stage
  static constexpr int kSmemBytes = kOffBar + kNumBars * 8 + 1024;  // + 1024: base alignment
  static_assert(!kSupported || kSmemBytes <= 227 * 1024);
};

// The kernel's arguments: the library's Params and one TMA descriptor per input, each over the 4-D
// view (D, heads, rows, batch) of the tensor (varlen: batch extent 1, rows = total tokens).
struct WsArgs {
  Params p;
  CUtensorMap tq, tk, tv;
};

namespace detail {

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
// The producer's arrival on a full barrier, announcing `bytes` of TMA traffic that complete it.
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// Blocks until the phase of parity `parity` of the barrier has completed.
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred done;\nWAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}
// One box of the 4-D tensor map at (col, head, row, batch) into shared memory, completing on `bar`.
__device__ __forceinline__ void tma_load(uint32_t dst, const CUtensorMap* map, uint32_t bar, int col, int head,
                                         int row, int batch) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5, %6}], "
      "[%2];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(bar), "r"(col), "r"(head), "r"(row), "r"(batch)
      : "memory");
}
// Named barrier `id` over `count` threads: sync blocks, arrive does not.
__device__ __forceinline__ void bar_sync(int id, int count) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(count) : "memory");
}
__device__ __forceinline__ void bar_arrive(int id, int count) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(count) : "memory");
}

}  // namespace detail

template <class V>
__global__ void __launch_bounds__(384, 1) fwd_ws_kernel(const __grid_constant__ WsArgs a) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using C = WsConfig<V>;
  using Mask = typename C::Mask;
  using QL = typename C::QL;
  using KL = typename C::KL;
  using MmaS = prim::sm90::Wgmma<C::kDType, C::kBlockN>;  // S (64 queries, 128 keys)
  using MmaO = prim::sm90::Wgmma<C::kDType, C::kD>;       // O (64 queries, D)
  namespace w = prim::sm90;
  namespace d = detail;
  constexpr int kBM = C::kBlockM, kBN = C::kBlockN, kD = C::kD, kStages = C::kStages;
  constexpr int kNS = kBN / 8, kNO = kD / 8;  // n8 tiles of S and of O
  constexpr uint32_t kSbo = 1024;
  const Params& p = a.p;

  const int m_block = int(gridDim.x) - 1 - int(blockIdx.x);  // heavy (causal) row blocks first
  const int h = blockIdx.y, b = blockIdx.z;
  const SeqInfo seq = seq_info(p, b);
  const int sq = seq.seqlen_q, sk = seq.seqlen_k, m0 = m_block * kBM;
  if (m0 >= sq) return;  // the whole CTA, before any barrier is initialised
  const int h_kv = h / p.group();
  const bool varlen = p.is_varlen();
  const int q_row0 = int(seq.q_start) + m0, k_row0 = int(seq.k_start);  // rows of the TMA view
  const int tb = varlen ? 0 : b;                                         // its batch coordinate

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int wg = warp >> 2;

  extern __shared__ __align__(128) char smem_ws[];
  const uint32_t raw = static_cast<uint32_t>(__cvta_generic_to_shared(smem_ws));
  const uint32_t base = (raw + 1023u) & ~1023u;
  const uint32_t sQ = base;
  auto sK = [&](int st) { return base + C::kOffK + uint32_t(st * KL::kBytes); };
  auto sV = [&](int st) { return base + C::kOffV + uint32_t(st * KL::kBytes); };
  const uint32_t bar_q = base + C::kOffBar;
  auto bar_k_full = [&](int st) { return bar_q + 8u * (1 + st); };
  auto bar_k_empty = [&](int st) { return bar_q + 8u * (1 + kStages + st); };
  auto bar_v_full = [&](int st) { return bar_q + 8u * (1 + 2 * kStages + st); };
  auto bar_v_empty = [&](int st) { return bar_q + 8u * (1 + 3 * kStages + st); };

  // Key tiles the mask leaves non-empty for this CTA's rows, in order (producer and consumers walk
  // the same sequence; for causal the empty ones are a suffix).
  const int n_tiles = (sk + kBN - 1) / kBN;
  auto tile_class = [&](int j) { return prim::classify_tile<Mask>(m0, kBM, j * kBN, kBN, sq, sk, p.mask); };
  auto next_tile = [&](int j) {
    while (j < n_tiles && tile_class(j) == TileClass::kEmpty) ++j;
    return j;
  };

  if (tid == 0) {
    d::mbar_init(bar_q, 1);
    for (int st = 0; st < kStages; ++st) {
      d::mbar_init(bar_k_full(st), 1);
      d::mbar_init(bar_v_full(st), 1);
      d::mbar_init(bar_k_empty(st), 256);  // every consumer thread arrives once it is done with the stage
      d::mbar_init(bar_v_empty(st), 256);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();

  if (wg == 0) {
    // ---- producer: one thread issues every copy -------------------------------------------------
    asm volatile("setmaxnreg.dec.sync.aligned.u32 24;\n" ::: "memory");
    if (tid == 0) {
      d::mbar_expect_tx(bar_q, QL::kBytes);
#pragma unroll
      for (int slab = 0; slab < kD / 64; ++slab)
        d::tma_load(sQ + slab * QL::kSlabBytes, &a.tq, bar_q, slab * 64, h, q_row0, tb);
      int it = 0;
      for (int j = next_tile(0); j < n_tiles; j = next_tile(j + 1), ++it) {
        const int st = it % kStages;
        const uint32_t ph = (it / kStages) & 1;
        d::mbar_wait(bar_k_empty(st), ph ^ 1);  // a fresh barrier passes parity 1 at once
        d::mbar_expect_tx(bar_k_full(st), KL::kBytes);
#pragma unroll
        for (int slab = 0; slab < kD / 64; ++slab)
          d::tma_load(sK(st) + slab * KL::kSlabBytes, &a.tk, bar_k_full(st), slab * 64, h_kv, k_row0 + j * kBN, tb);
        d::mbar_wait(bar_v_empty(st), ph ^ 1);
        d::mbar_expect_tx(bar_v_full(st), KL::kBytes);
#pragma unroll
        for (int slab = 0; slab < kD / 64; ++slab)
          d::tma_load(sV(st) + slab * KL::kSlabBytes, &a.tv, bar_v_full(st), slab * 64, h_kv, k_row0 + j * kBN, tb);
      }
    }
    return;
  }

  // ---- consumers: warpgroup cw owns query rows 64·cw … of the block ---------------------------------
  asm volatile("setmaxnreg.inc.sync.aligned.u32 240;\n" ::: "memory");
  const int cw = wg - 1;
  const int wg_row0 = 64 * cw, warp_row0 = wg_row0 + (warp & 3) * 16;
  const float c = fabsf(p.scale_log2);
  // Ping-pong: named barrier 1 + cw is "warpgroup cw may issue its GEMMs"; the other warpgroup arrives
  // on it after issuing its own. Warpgroup 1 opens the first turn for warpgroup 0.
  auto my_turn = [&] { d::bar_sync(1 + cw, 256); };
  auto their_turn = [&] { d::bar_arrive(1 + (cw ^ 1), 256); };
  if (cw == 1) d::bar_arrive(1, 256);

  d::mbar_wait(bar_q, 0);
  if (p.scale_log2 < 0.f) {  // fold a negative scale into this warpgroup's Q rows (exact sign flips)
    for (int i = tid & 127; i < 64 * QL::kChunksPerRow; i += 128) {
      const int r = wg_row0 + i / QL::kChunksPerRow, ch = i % QL::kChunksPerRow;
      prim::negate_chunk16(sQ + QL::chunk_offset(r, ch));
    }
    w::fence_proxy_async();
    d::bar_sync(3 + cw, 128);
  }

  // S = Q_w·K_jᵀ (64, 128): A = this warpgroup's Q rows, B = K rows, both K-major. Issue only.
  auto issue_s = [&](float (&s)[1][kNS][4], int st) {
    w::fence();
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks) {
      const uint64_t dq = w::desc_sw128(sQ + (ks / 4) * QL::kSlabBytes + wg_row0 * 128 + (ks % 4) * 32, 16, kSbo);
      const uint64_t dk = w::desc_sw128(sK(st) + (ks / 4) * KL::kSlabBytes + (ks % 4) * 32, 16, kSbo);
      if (ks == 0) MmaS::template ss<false>(s[0], dq, dk);
      else MmaS::template ss<true>(s[0], dq, dk);
    }
    w::commit();
  };
  // O += P·V_j: P (64, 128) from registers, V (128 keys, D) MN-major. Issue only.
  float o[1][kNO][4];
#pragma unroll
  for (int nt = 0; nt < kNO; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[0][nt][e] = 0.f;
  uint32_t pa[kBN / 16][4];  // P of the previous tile in 16 bits: the A fragments
  auto issue_pv = [&](int st) {
    w::fence();
#pragma unroll
    for (int kk = 0; kk < kBN / 16; ++kk) MmaO::rs(o[0], pa[kk], w::desc_sw128(sV(st) + kk * 2048, KL::kSlabBytes, kSbo));
    w::commit();
  };
  auto pack_p = [&](const float (&s)[1][kNS][4]) {
#pragma unroll
    for (int kk = 0; kk < kBN / 16; ++kk) {
      pa[kk][0] = C::Num::pack2(s[0][2 * kk][0], s[0][2 * kk][1]);
      pa[kk][1] = C::Num::pack2(s[0][2 * kk][2], s[0][2 * kk][3]);
      pa[kk][2] = C::Num::pack2(s[0][2 * kk + 1][0], s[0][2 * kk + 1][1]);
      pa[kk][3] = C::Num::pack2(s[0][2 * kk + 1][2], s[0][2 * kk + 1][3]);
    }
  };
  auto mask = [&](float (&s)[1][kNS][4], int j) {
    if (tile_class(j) != TileClass::kFull)
      prim::apply_mask<Mask, 64>(s, m0 + warp_row0 + g, j * kBN + 2 * t, sq, sk, p.mask, prim::BiasView{});
  };

  prim::OnlineSoftmax<1> softmax;
  softmax.init();
  float alpha[1][2];

  int j = next_tile(0);
  if (j < n_tiles) {
    // Tile 0: S_0 → P_0 (O is still 0, nothing to rescale).
    float s[1][kNS][4];
    d::mbar_wait(bar_k_full(0), 0);
    my_turn();
    issue_s(s, 0);
    their_turn();
    w::wait<0>();
    d::mbar_arrive(bar_k_empty(0));
    mask(s, j);
    softmax.scores_to_p(s, c, alpha);
    pack_p(s);
    int prev_st = 0;
    uint32_t prev_ph = 0;
    int it = 1;
    for (j = next_tile(j + 1); j < n_tiles; j = next_tile(j + 1), ++it) {
      const int st = it % kStages;
      const uint32_t ph = (it / kStages) & 1;
      d::mbar_wait(bar_k_full(st), ph);
      my_turn();
      issue_s(s, st);                           // S_j = Q·K_jᵀ ...
      d::mbar_wait(bar_v_full(prev_st), prev_ph);
      issue_pv(prev_st);                        // ... and O += P_{j−1}·V_{j−1} behind it
      their_turn();
      w::wait<1>();                             // S_j landed
      d::mbar_arrive(bar_k_empty(st));
      mask(s, j);
      softmax.scores_to_p(s, c, alpha);         // while P_{j−1}·V_{j−1} runs
      w::wait<0>();                             // O complete up to tile j − 1
      d::mbar_arrive(bar_v_empty(prev_st));
      softmax.rescale(o, alpha);                // O relative to the new row max
      pack_p(s);
      prev_st = st, prev_ph = ph;
    }
    // The last tile's P·V.
    d::mbar_wait(bar_v_full(prev_st), prev_ph);
    my_turn();
    issue_pv(prev_st);
    their_turn();
    w::wait<0>();
    d::mbar_arrive(bar_v_empty(prev_st));
  }
  if (cw == 0) my_turn();  // consumes warpgroup 1's last arrival (it opened the first turn)

  // ---- epilogue: O /= l, LSE, O staged through this warpgroup's own Q rows (its S GEMMs are done) ---
  float lse[1][2];
  softmax.finalize(o, lse);
  using Element = typename C::Element;
  Element* o_ptr = static_cast<Element*>(p.o) + b * p.o_batch_stride + seq.q_start * p.o_row_stride +
                   int64_t(h) * p.o_head_stride;  // (Sq, D)
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const int r = warp_row0 + hh * 8 + g;
#pragma unroll
    for (int nt = 0; nt < kNO; ++nt)
      asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(sQ + QL::offset(r, nt * 8 + 2 * t)),
                   "r"(C::Num::pack2(o[0][nt][2 * hh], o[0][nt][2 * hh + 1])));
    const int q = m0 + r;
    if (t == 0 && q < sq) p.lse[b * p.lse_batch_stride + h * p.lse_head_stride + seq.q_start + q] = lse[0][hh];
  }
  __syncwarp();
  prim::store_staged_rows<QL, 16>(sQ, warp_row0, o_ptr, p.o_row_stride, m0, sq, lane);  // this warp's 16 rows
#else
  __trap();  // sm_90a only
#endif
}

// Host side: the TMA descriptors (driver entry point fetched once), checks, launch.
namespace detail {

using EncodeTiled = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                 const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                 CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

inline EncodeTiled encode_fn() {
  static EncodeTiled fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess)
      f = nullptr;
    return reinterpret_cast<EncodeTiled>(f);
  }();
  return fn;
}

// (D, heads, rows, batch) view of a (B, S, H, D)-strided tensor; box: 64 columns × 1 head × box_rows.
inline bool encode(CUtensorMap* map, DType dt, const void* ptr, int D, int heads, int64_t rows, int batch,
                   int64_t row_stride, int64_t head_stride, int64_t batch_stride, int box_rows) {
  const EncodeTiled fn = encode_fn();
  if (fn == nullptr) return false;
  const cuuint64_t dims[4] = {cuuint64_t(D), cuuint64_t(heads), cuuint64_t(rows), cuuint64_t(batch)};
  const cuuint64_t strides[3] = {cuuint64_t(head_stride) * 2, cuuint64_t(row_stride) * 2,
                                 cuuint64_t(batch > 1 ? batch_stride : rows * row_stride) * 2};
  const cuuint32_t box[4] = {64, 1, cuuint32_t(box_rows), 1};
  const cuuint32_t estr[4] = {1, 1, 1, 1};
  return fn(map, dt == DType::bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 4,
            const_cast<void*>(ptr), dims, strides, box, estr, CU_TENSOR_MAP_INTERLEAVE_NONE,
            CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

inline bool aligned16(const void* ptr, std::initializer_list<int64_t> strides) {
  if (reinterpret_cast<uintptr_t>(ptr) % 16 != 0) return false;
  for (int64_t s : strides)
    if (s % 8 != 0) return false;  // 16-bit elements: 16-byte strides
  return true;
}

}  // namespace detail

template <class V>
attnforge_status run_fwd_ws(const Params& p, cudaStream_t stream) {
  using C = WsConfig<V>;
  if constexpr (!C::kSupported) {
    return ATTNFORGE_UNSUPPORTED;
  } else {
    if (p.head_dim != C::kD) return ATTNFORGE_INTERNAL;
    if (p.batch == 0 || p.seqlen_q == 0) return ATTNFORGE_OK;
    if (p.seqlen_k == 0) return ATTNFORGE_UNSUPPORTED;  // prototype: no empty key rows
    if (!detail::aligned16(p.q, {p.q_row_stride, p.q_head_stride, p.q_batch_stride}) ||
        !detail::aligned16(p.k, {p.k_row_stride, p.k_head_stride, p.k_batch_stride}) ||
        !detail::aligned16(p.v, {p.v_row_stride, p.v_head_stride, p.v_batch_stride}))
      return ATTNFORGE_UNSUPPORTED;
    const bool varlen = p.is_varlen();
    const int nb = varlen ? 1 : p.batch;
    const int64_t rows_q = varlen ? p.total_q : p.seqlen_q, rows_k = varlen ? p.total_k : p.seqlen_k;
    WsArgs a;
    a.p = p;
    if (!detail::encode(&a.tq, C::kDType, p.q, C::kD, p.heads_q, rows_q, nb, p.q_row_stride, p.q_head_stride,
                        p.q_batch_stride, C::kBlockM) ||
        !detail::encode(&a.tk, C::kDType, p.k, C::kD, p.heads_kv, rows_k, nb, p.k_row_stride, p.k_head_stride,
                        p.k_batch_stride, C::kBlockN) ||
        !detail::encode(&a.tv, C::kDType, p.v, C::kD, p.heads_kv, rows_k, nb, p.v_row_stride, p.v_head_stride,
                        p.v_batch_stride, C::kBlockN))
      return ATTNFORGE_UNSUPPORTED;
    static bool raised = false;
    if (!raised) {
      if (cudaFuncSetAttribute(fwd_ws_kernel<V>, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmemBytes) !=
          cudaSuccess)
        return ATTNFORGE_CUDA_ERROR;
      raised = true;
    }
    const dim3 grid((p.seqlen_q + C::kBlockM - 1) / C::kBlockM, p.heads_q, p.batch);
    fwd_ws_kernel<V><<<grid, C::kThreads, C::kSmemBytes, stream>>>(a);
    return cudaGetLastError() == cudaSuccess ? ATTNFORGE_OK : ATTNFORGE_CUDA_ERROR;
  }
}

}  // namespace attnforge::flash::ws
