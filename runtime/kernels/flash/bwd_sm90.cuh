// Flash backward, Hopper path (sm_90a): FlashAttention-2's algorithm with all five GEMMs on warpgroup
// MMA, in the transposed form (FA3's) where Pᵀ and dSᵀ leave the accumulators already laid out as
// wgmma A operands. run_bwd<V> (flash/bwd.cuh) takes it on sm_90 devices for the tiles it fits.
//
// A CTA owns kBlockN = 64·kWarpgroups keys of one (sequence, kv head); warpgroup wg owns 64 of them.
// It loops over the query heads of the kv head's group and the kBlockM-query tiles (64; 128 in the
// warp-specialized head-dim-64 tile) the mask leaves non-empty (Q, dO, LSE, D double-buffered by
// cp.async). Per query tile:
//   Sᵀ = K_w·Qᵀ, dPᵀ = V_w·dOᵀ                 wgmma SS, (64 keys, kBlockM queries) per warpgroup
//   Pᵀ = exp2(Sᵀ·scale·log2e − LSE·log2e)      registers; dSᵀ = Pᵀ ∘ (dPᵀ − D); masked → 0
//   dSᵀ → shared memory (keys, queries)
//   dV_w += Pᵀ·dO, dK_w += dSᵀ·Q                wgmma RS: A = Pᵀ / dSᵀ from registers, B MN-major
//   dQ += dS·K                                   wgmma SS, A (dS) and B (K) both MN-major; head dim
//                                                128: warpgroup wg computes columns 64·wg…, over all
//                                                keys; head dim 64: each warpgroup its own keys;
//                                                128-query steps: warpgroup wg queries 64·wg…, all keys
//   dQ (64, 64) per warpgroup → shared memory in fragment order → one bulk reduce-add
//   (cp.reduce.async.bulk .add.f32) into the tile's block of the fp32 accumulator
// dV, then dQ, then dK are issued back to back; dQ is staged and sent while dK still runs. At the end
// dK and dV are staged in K's and V's tiles and written in 16-byte row pieces (split step aside). Not
// deterministic (the reduce-adds of the key tiles land in any order): deterministic mode takes the
// mma.sync kernel.
// Warp-specialized form (tile arch "sm90a", 12 warps; the first bwd tile at head dims 64 and 128): an
// extra producer warpgroup moves K, V (once) and Q, dO (per step) by TMA and LSE, D by one warp's
// loads, all completing on mbarriers; the two consumer warpgroups run the same step, meet once per
// step on a named barrier (dSᵀ complete), alternate two dSᵀ buffers so that they may drift one step
// apart, and give each Q/dO stage back through an "empty" mbarrier.
// Head dims 192 and 256 (warp-specialized, tile m64 n64 w12): the split step — both consumer warpgroups
// take the CTA's 64 keys, each forms Pᵀ and dSᵀ for half of the step's queries into shared memory, and
// each owns some of the 64-column slabs of dV, dK and dQ (see split_step below).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "common/copy.cuh"
#include "common/grid_overlap.cuh"
#include "common/launch_checks.hpp"
#include "common/mask_apply.cuh"
#include "common/mma.cuh"
#include "common/numeric.cuh"
#include "common/params.hpp"
#include "common/smem_layout.cuh"
#include "common/smem_tile_ops.cuh"
#include "common/tma.cuh"
#include "common/variant.hpp"
#include "common/wgmma.cuh"
#include "flash/bwd_cta.cuh"
#include "flash/bwd_grid_order.hpp"
#include "flash/bwd_prepost.cuh"
#include "flash/bwd_primitives.cuh"
#include "flash/bwd_workspace.hpp"

// Dev A/B switch (scripts/dev/flash_bwd_ab.sh), off until measured on the device: head dim 64 sums
// the two warpgroups' dQ partials in shared memory and sends one reduce-add (BwdSm90Config::kDqSum).
#ifndef ATTNFORGE_FLASH_BWD_DQ_SUM
#define ATTNFORGE_FLASH_BWD_DQ_SUM 0
#endif
// Dev A/B switch: BwdSm90Config::kEarlyS.
#ifndef ATTNFORGE_FLASH_BWD_EARLY_S
#define ATTNFORGE_FLASH_BWD_EARLY_S 1
#endif

namespace attnforge::flash {

template <class V>
struct BwdSm90Config {
  static constexpr DType kDType = V::kDType;
  using Num = prim::Numeric<kDType>;
  using Element = typename Num::Element;
  using Mask = typename V::Mask;
  static constexpr int kD = V::kHeadDim;
  static constexpr bool kWS = V::TileT::kArch == 90;                // + a TMA producer warpgroup
  static constexpr int kBlockM = V::TileT::kBlockM;                 // queries per step: 64, or 128 (kWS, D 64)
  static constexpr int kWarpgroups = V::TileT::kWarps / 4 - (kWS ? 1 : 0);  // consumer warpgroups, 64 keys each
  // Head dims 192 and 256 (warp-specialized only): dV and dK of 64 keys would take 2·D registers per
  // thread, so both warpgroups see the same 64 keys and split the 64-column slabs of dV, dK and dQ
  // (see the split step).
  static constexpr bool kSplitD = kWS && (kD == 192 || kD == 256);
  static constexpr int kBlockN = kSplitD ? 64 : 64 * kWarpgroups;  // keys per CTA
  static constexpr int kAccCols = kSplitD ? 128 : kD;               // dV, dK columns a warpgroup holds, at most
  // Split step: each warpgroup holds two accumulator blocks of 64 keys, a (dv: two slabs, N = 128) and
  // b (dk: kBCols). Head dim 256: a = dV, b = dK, columns 128·wg …. Head dim 192 (three 64-column slabs):
  // warpgroup 0 a = dV slabs 0–1, b = dK slab 2; warpgroup 1 a = dK slabs 0–1, b = dV slab 2 — 96
  // accumulator registers each, and the same instructions on both (a wgmma on a warpgroup-dependent
  // branch makes ptxas serialize every wgmma of the kernel).
  static constexpr int kBCols = kSplitD && kD == 192 ? 64 : kAccCols;
  static constexpr int kConsumerThreads = 128 * kWarpgroups;
  static constexpr int kThreads = kConsumerThreads + (kWS ? 128 : 0);

  // Tiles this kernel implements: m64 n64 w4 (head dim 64) and m64 n128 w8 (64 or 128), their
  // warp-specialized forms, and m128 n128 w12 sm90a at head dim 64 (FA3's hdim-64 step: every GEMM of
  // the step twice as long, half the per-step barriers); 16-bit types; masks without a tensor (bias
  // goes to the mma.sync kernel).
  static constexpr bool kSupported =
      (kDType == DType::f16 || kDType == DType::bf16) &&
      (kBlockM == 64 || (kBlockM == 128 && kWS && kD == 64)) &&
      V::TileT::kWarps % 4 == 0 && V::TileT::kBlockN == kBlockN &&
      ((kD == 64 && (kWarpgroups == 1 || kWarpgroups == 2)) || (kD == 128 && kWarpgroups == 2) ||
       (kSplitD && kBlockM == 64)) &&
      !Mask::kHasTensor && (!kWS || (kWarpgroups == 2 && V::TileT::kStages == 2));

  // Stages of the dQ staging buffer: tile stages 2 → two (a reduce-add may still read the last one
  // while the next is written), 1 → one, which lets head dim 64, n64 fit three CTAs per SM. 128-query
  // steps take one: two would be 40 bytes over the 227 KiB a CTA may have.
  // The split step: one (its parts are read out before the next step's trade, see split_step).
  static constexpr int kDqStages = V::TileT::kStages >= 2 && kBlockM == 64 && !kSplitD ? 2 : 1;
  static constexpr int kMinBlocks = kWarpgroups == 1 ? (kDqStages == 1 ? 3 : 2) : 1;
  // Head dim 64 with two warpgroups: both hold partials of the same (64 queries, 64 columns) dQ block;
  // summed in shared memory they go out as one reduce-add instead of two (half the L2 reduce traffic).
  static constexpr bool kDqSum = ATTNFORGE_FLASH_BWD_DQ_SUM && kD == 64 && kWarpgroups == 2 && kDqStages == 2;
  // The warp-specialized two-warpgroup step issues the next step's Sᵀ GEMM once its own dQ is staged, so
  // that it queues behind the step's dK instead of after the step's end (the step waited for dK, released
  // its stage and walked to the next tile before feeding the tensor pipe: Nsight Compute, H200, D 64
  // S 2048 without a mask, tensor pipe 47 % active, stall on wgmma 0.83 cycles per issue against cuDNN's
  // 0.18; bench/results/h200_2026-12-01_ncu_d64_s2048.md). The issue is unconditional — the last step
  // recomputes its own Sᵀ, unused — since ptxas 13.0 serializes every wgmma of the kernel (C7512) when one
  // is issued inside an `if` while groups issued before it (dK) are in flight. dPᵀ stays at the step's
  // top: both early spill at D 64.
  // Head dim 128 only (H200, 2026-12-01, kernel µs at burst clocks, S 2048 / 4096 / 16384, against the
  // same tree without it): D 128 no mask −3.2 / −2.9 / −3.4 %, causal −2.0 / −1.7 / −7.1 %, window 512
  // −1.1 / −0.7 / −0.3 %; D 64 causal +6.6 / +8.1 / +7.8 % (the early Sᵀ accumulator spills 68 bytes
  // there), no mask level (bench/results/h200_2026-12-01_bwd_early_s_ab.md).
  static constexpr bool kEarlyS = ATTNFORGE_FLASH_BWD_EARLY_S && kWS && !kSplitD && !kDqSum && kD == 128;
  static constexpr int kProducerRegs = 24, kConsumerRegs = 240;  // kWS
  static_assert(!kWS || prim::tma::regs_split_fits(kProducerRegs, kConsumerRegs, kConsumerThreads, kThreads, kMinBlocks));
  // The split last wave (BwdSplit) exists where every CTA runs the same steps (no mask) in the
  // two-warpgroup step; elsewhere its code compiles out (H200, 2026-11-30: compiled into every variant
  // it cost causal D 128 2.5 % and the window tiles' spills grew 444 → 748 bytes).
  static constexpr bool kSplitsWave = kWS && !kSplitD && !prim::kMaskEmptiesTiles<Mask>;
  // dSᵀ goes to shared memory by stmatrix (one instruction per 16 queries) at head dim 128, by 4-byte
  // stores at 64 (H200, 2026-12-01, sustained compare over S 2048–16384: D 128 1.011× the stores, D 64
  // 0.996× with causal S 16384 at 0.979 in both runs; bench/results/h200_2026-12-01_bwd_stmatrix_ab.md).
  static constexpr bool kDsStmatrix = kD == 128;

  static constexpr int kLayoutD = kSupported ? kD : 64;  // layouts of unsupported variants: never used
  using QL = prim::SmemTileSw128<kBlockM, kLayoutD>;    // Q or dO tile: (kBlockM queries, D)
  using KL = prim::SmemTileSw128<kBlockN, kLayoutD>;    // K or V: (kBlockN keys, D)
  using SL = prim::SmemTileSw128<kBlockN, kBlockM>;     // dSᵀ: (kBlockN keys, kBlockM queries)
  static constexpr int kDqPartFloats = 64 * 64;          // one warpgroup's (64 queries, 64 columns) of dQ
  // The split step stages a dQ part in the slabs of the step's dO or Q tile its a / b GEMMs alone read
  // (no room for a buffer at head dim 256); at 192 the second part of each warpgroup goes to a buffer.
  static constexpr int kDqBufBytes = kSplitD ? (kD == 192 ? kWarpgroups * kDqPartFloats * 4 : 0) : kWarpgroups * kDqPartFloats * 4;
  static constexpr int kPBytes = kSplitD ? SL::kBytes : 0;  // split step: Pᵀ, 16-bit, dSᵀ's layout
  // dSᵀ buffers: kWS has no per-step barrier before the first GEMMs, so one warpgroup may start step
  // i + 1 (and write its dSᵀ) while the other still reads step i's in its dQ GEMM.
  static constexpr int kDsStages = kWS && !kSplitD ? 2 : 1;  // the split step's warpgroups run in step
  // [K][V][Q × 2][dO × 2][dSᵀ × kDsStages][Pᵀ][LSE × 2][D × 2][dQ × kDqStages]; tiles 1024-byte aligned (the swizzle atom).
  static constexpr int kOffK = 0;
  static constexpr int kOffV = kOffK + KL::kBytes;
  static constexpr int kOffQ = kOffV + KL::kBytes;
  static constexpr int kOffDO = kOffQ + 2 * QL::kBytes;
  static constexpr int kOffDS = kOffDO + 2 * QL::kBytes;
  static constexpr int kOffP = kOffDS + kDsStages * SL::kBytes;
  static constexpr int kOffLse = kOffP + kPBytes;
  static constexpr int kOffDsum = kOffLse + 2 * kBlockM * 4;
  static constexpr int kOffDq = kOffDsum + 2 * kBlockM * 4;
  // kWS: mbarriers kv_full, q_full × 2, q_empty × 2 after the dQ buffers.
  static constexpr int kOffBar = kOffDq + kDqStages * kDqBufBytes;
  static constexpr int kSmemBytes = kOffBar + (kWS ? 5 * 8 : 0) + 1024;  // + 1024: base alignment
  static_assert(!kSupported || (kSmemBytes + 1024) * kMinBlocks <= 228 * 1024);  // + 1 KiB reserved per CTA
};

// The variant an sm90a backward variant falls back to where its warp-specialized form does not run:
// the same tile without the producer warpgroup. Any other variant is its own.
template <class V>
struct BwdSm90Fallback {
  using type = V;
};
template <DType T, int D, class M, int BM, int BN, int W, int S>
struct BwdSm90Fallback<Variant<Backend::flash, Direction::bwd, T, D, M, Tile<BM, BN, W, S, 90>>> {
  using type = Variant<Backend::flash, Direction::bwd, T, D, M, Tile<kSm90BwdRows, BN, W - 4, S>>;  // 64-query steps
};

namespace bwd_sm90_detail {

// The fp32 dQ accumulator of this kernel: per (b, h, 64-query tile) a block of 64·D floats
// (flash_bwd_workspace_layout with block_m kDqTileRows = 64, whatever the step's query count).
// Warpgroup part cg (columns 64·cg…) is one contiguous run of 64·64 floats in accumulator-fragment
// order: fragment (nt, hh) of thread tid128
// (rows 16·warp + g + 8·hh, columns 64·cg + 8·nt + 2t, +1) at 2·((2·nt + hh)·128 + tid128).
__host__ __device__ __forceinline__ int dq_frag_offset(int nt, int hh, int tid128) {
  return ((nt * 2 + hh) * 128 + tid128) * 2;
}
constexpr int kDqTileRows = kSm90BwdRows;

}  // namespace bwd_sm90_detail

// TMA descriptors of the warp-specialized form (zero otherwise): Q and dO in boxes of kBlockM rows, K and V
// in boxes of kBlockN rows, each over the 4-D view (D, heads, rows, batch) of common/tma.cuh.
struct BwdSm90Maps {
  CUtensorMap q, d_o, k, v;
};

template <class V>
__global__ void __launch_bounds__(BwdSm90Config<V>::kThreads, BwdSm90Config<V>::kMinBlocks)
    flash_bwd_sm90_kernel(const __grid_constant__ Params p, size_t dq_acc_offset, BwdGridOrder order,
                          const __grid_constant__ BwdSm90Maps maps, BwdSplit split, size_t split_offset,
                          bool pieces, size_t done_offset) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using C = BwdSm90Config<V>;
  using Element = typename C::Element;
  using Mask = typename C::Mask;
  using QL = typename C::QL;
  using KL = typename C::KL;
  using SL = typename C::SL;
  using MmaS = prim::sm90::Wgmma<C::kDType, C::kBlockM>;  // Sᵀ, dPᵀ: (64 keys, kBlockM queries)
  using MmaKV = prim::sm90::Wgmma<C::kDType, C::kAccCols>;  // dV, dK: (64 keys, kAccCols)
  using MmaQ = prim::sm90::WgmmaMN64<C::kDType>;      // dQ: (64 queries, 64 columns)
  using MmaKB = prim::sm90::Wgmma<C::kDType, C::kBCols>;  // split step: block b (64 keys, kBCols)
  using MmaS32 = prim::sm90::Wgmma<C::kDType, 32>;         // split step: Sᵀ, dPᵀ (64 keys, 32 queries)
  namespace w = prim::sm90;
  namespace sd = bwd_sm90_detail;
  constexpr int kD = C::kD, kBM = C::kBlockM, kBN = C::kBlockN, kThreads = C::kThreads;
  constexpr int kQT = kBM / 8;  // 8-query column tiles of Sᵀ and dPᵀ
  constexpr uint32_t kSbo = 1024;  // 8 rows × 128 bytes between core-matrix groups
  constexpr float kLog2e = 1.4426950408889634f;
  auto lse_log2 = [](float l) { return l == -INFINITY ? INFINITY : l * kLog2e; };  // a row that saw nothing: P = 0
  // The warp-specialized producer stores LSE already as lse_log2 (64 values per step, once) instead of
  // every consumer thread converting its 2·kQT (an FMUL and a select each, per step).
  auto lse_of = [&](float stored) { return C::kWS ? stored : lse_log2(stored); };

  // This CTA's (key tile, kv head, batch): from the grid; in the split launch (`pieces`, BwdSplit) piece
  // blockIdx.x is part `part` of CTA split.first + blockIdx.x / parts of the main grid (key tiles
  // fastest), whose own CTA there returned at once.
  int cx = blockIdx.x, cy = blockIdx.y, cz = blockIdx.z, part = 0;
  pieces = C::kSplitsWave && pieces;
  if constexpr (C::kSplitsWave) {
    if (pieces) {
      const int key_tiles = (p.seqlen_k + kBN - 1) / kBN, lin = split.first + int(blockIdx.x) / split.parts;
      part = int(blockIdx.x) % split.parts;
      cx = lin % key_tiles, cy = lin / key_tiles % p.heads_kv, cz = lin / key_tiles / p.heads_kv;
    } else if (split.tiles > 0 && int(blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z)) >= split.first) {
      return;  // run as pieces by the split launch
    }
  }
  // The grid is (key tiles, kv heads, batch), in `order` (flash/bwd_grid_order.hpp, launch_bwd_sm90). A mask
  // that empties no tile has no tail (bwd_grid_order), so its kernels go without the decode: compiled
  // in, it cost the mask-free D 64 main kernel ~1.7 / 2.6 / 1.4 % at S 2048 / 4096 / 16384 with the
  // same step loop (H200, 2026-12-01, kernel µs at burst clocks against cuDNN's in the same runs;
  // bench/results/h200_2026-12-01_bwd_decode_ab.md).
  const BwdCta cta = prim::kMaskEmptiesTiles<Mask> ? bwd_cta_of(cx, cy, cz, gridDim.x, p.heads_kv, p.batch, order)
                                                   : BwdCta{cx, cy, cz};
  const int b = cta.batch, hkv = cta.head_kv, n0 = cta.key_tile * kBN;
  const SeqInfo si = seq_info(p, b);
  const int sq = si.seqlen_q, sk = si.seqlen_k;
  namespace ov = prim::overlap;
  // This CTA's arrival on its (batch, kv head) count once its dQ adds are complete (before the dK / dV
  // epilogue): the dQ conversion, launched to overlap this kernel's tail, converts a head's dQ when its
  // count reaches the grid's key tiles. A split CTA (BwdSplit) arrives through its last piece. The count
  // is zeroed by the D pass, which a kernel launched to overlap it waits for (wait_prior_grid).
  int* const done = reinterpret_cast<int*>(static_cast<char*>(p.workspace) + done_offset) + int64_t(b) * p.heads_kv + hkv;
  if (n0 >= sk) {  // past this sequence's keys (the whole CTA): nothing to add
    if (threadIdx.x == 0) ov::wait_prior_grid(), ov::arrive(done);
    return;
  }
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
  const int wg = (warp >> 2) - (C::kWS ? 1 : 0);  // consumer warpgroup: keys n0 + 64·wg … (kWS: −1 = producer)
  const int wrow = (warp & 3) * 16;  // this warp's first row of every m64 accumulator
  const bool bulk_issuer = (tid & 127) == 0;
  const int group = p.group();
  const int64_t row_base = p.is_varlen() ? si.q_start : int64_t(b) * p.seqlen_q;

  extern __shared__ __align__(128) char smem_bwd90[];
  const uint32_t raw = static_cast<uint32_t>(__cvta_generic_to_shared(smem_bwd90));
  const uint32_t base = (raw + 1023u) & ~1023u;
  char* gen = smem_bwd90 + (base - raw);
  const uint32_t sK = base + C::kOffK, sV = base + C::kOffV;
  auto sDS = [&](int st) { return base + C::kOffDS + uint32_t((C::kDsStages == 2 ? st : 0) * SL::kBytes); };
  auto sQ = [&](int st) { return base + C::kOffQ + uint32_t(st * QL::kBytes); };
  auto sDO = [&](int st) { return base + C::kOffDO + uint32_t(st * QL::kBytes); };
  float* s_lse = reinterpret_cast<float*>(gen + C::kOffLse);    // (2, 64)
  float* s_dsum = reinterpret_cast<float*>(gen + C::kOffDsum);  // (2, 64)
  namespace tma = prim::tma;
  const uint32_t bar_kv = base + C::kOffBar;  // kWS: K and V landed
  auto bar_q_full = [&](int st) { return bar_kv + 8u * (1 + st); };   // kWS: Q, dO, LSE, D of stage st landed
  auto bar_q_empty = [&](int st) { return bar_kv + 8u * (3 + st); };  // kWS: stage st free again

  // K, V (kBN keys, D), once; keys past the sequence or seen by no query are zero-filled, so NaN
  // there cannot reach dQ through 0·NaN.
  const Element* k_ptr = static_cast<const Element*>(p.k) + b * p.k_batch_stride +
                         (si.k_start + n0) * p.k_row_stride + int64_t(hkv) * p.k_head_stride;
  const Element* v_ptr = static_cast<const Element*>(p.v) + b * p.v_batch_stride +
                         (si.k_start + n0) * p.v_row_stride + int64_t(hkv) * p.v_head_stride;
  auto key_ok = [&](int r) { return sq > 0 && prim::key_live<Mask>(0, sq - 1, n0 + r, sq, sk, p.mask); };
  if constexpr (!C::kWS) {
    prim::load_tile_async_if<KL, kThreads>(sK, k_ptr, p.k_row_stride, key_ok, tid);
    prim::load_tile_async_if<KL, kThreads>(sV, v_ptr, p.v_row_stride, key_ok, tid);
    prim::cp_async_commit();
    // K, V do not depend on the D pass; D, LSE and the zeroed accumulator do.
    ov::wait_prior_grid();
    ov::allow_dependents();
  }

  // The (query head, query tile) sequence, empty tiles skipped; a piece walks steps step0 … step_end − 1
  // of it (step hi · m_blocks + mb).
  const int m_blocks = (sq + kBM - 1) / kBM;
  const int step0 = pieces ? split.step_begin(part) : 0, step_end = pieces ? split.step_begin(part + 1) : INT32_MAX;
  auto tile_class = [&](int mb) { return prim::classify_tile<Mask>(mb * kBM, kBM, n0, kBN, sq, sk, p.mask); };
  auto seek = [&](int& hi, int& mb) {
    return bwd_detail::seek_nonempty(hi, mb, group, m_blocks,
                                     [&](int i) { return tile_class(i) == TileClass::kEmpty; }) &&
           (!pieces || hi * m_blocks + mb < step_end);
  };
  // Q, dO (64 queries, D) of (hi, mb) into stage st, zero-filled past the sequence; LSE and D.
  auto load_q = [&](int hi, int mb, int st) {
    const int h = hkv * group + hi, m0 = mb * kBM;
    const Element* q = static_cast<const Element*>(p.q) + b * p.q_batch_stride +
                       (si.q_start + m0) * p.q_row_stride + int64_t(h) * p.q_head_stride;
    const Element* d_o = static_cast<const Element*>(p.d_o) + b * p.do_batch_stride +
                         (si.q_start + m0) * p.do_row_stride + int64_t(h) * p.do_head_stride;
    prim::load_tile_async<QL, kThreads>(sQ(st), q, p.q_row_stride, sq - m0, tid);
    prim::load_tile_async<QL, kThreads>(sDO(st), d_o, p.do_row_stride, sq - m0, tid);
    if (tid < kBM) {
      const bool ok = m0 + tid < sq;
      const int64_t row = ok ? m0 + tid : 0;
      const float* lse = p.lse + b * p.lse_batch_stride + int64_t(h) * p.lse_head_stride + si.q_start;
      const float* dsum = static_cast<const float*>(p.workspace) + int64_t(h) * p.total_q + row_base;  // dsum_offset 0
      bwd_detail::cp_async_4(static_cast<uint32_t>(__cvta_generic_to_shared(s_lse + st * kBM + tid)), lse + row, ok);
      bwd_detail::cp_async_4(static_cast<uint32_t>(__cvta_generic_to_shared(s_dsum + st * kBM + tid)), dsum + row, ok);
    }
  };

  if constexpr (C::kWS) {
    if (tid == 0) {
      tma::mbar_init(bar_kv, 1);
      for (int i = 0; i < 2; ++i) {
        tma::mbar_init(bar_q_full(i), 1 + 32);  // the TMA expect-tx arrival + the 32 lanes that stored LSE, D
        tma::mbar_init(bar_q_empty(i), C::kConsumerThreads);
      }
      tma::fence_barrier_init();
    }
    __syncthreads();
    if (wg < 0) {
      // ---- producer: lane 0 of warp 0 issues the TMA copies, warp 0 stores LSE and D ---------------
      tma::regs_dealloc<C::kProducerRegs>();
      if (warp != 0) return;
      const int tb = p.is_varlen() ? 0 : b, q_row0 = int(si.q_start), k_row0 = int(si.k_start);
      if (lane == 0) {
        tma::mbar_expect_tx(bar_kv, 2 * KL::kBytes);
#pragma unroll
        for (int slab = 0; slab < kD / 64; ++slab) {
          tma::load_4d(sK + slab * KL::kSlabBytes, &maps.k, bar_kv, slab * 64, hkv, k_row0 + n0, tb);
          tma::load_4d(sV + slab * KL::kSlabBytes, &maps.v, bar_kv, slab * 64, hkv, k_row0 + n0, tb);
        }
      }
      ov::wait_prior_grid();  // D (stored below with LSE) comes from the D pass
      ov::allow_dependents();
      int phi = step0 / m_blocks, pmb = step0 % m_blocks;
      bool more = seek(phi, pmb);
      for (int it = 0; more; ++it) {
        const int pst = it & 1, h = hkv * group + phi, m0 = pmb * kBM;
        tma::mbar_wait(bar_q_empty(pst), ((it >> 1) & 1) ^ 1);
        if (lane == 0) {
          tma::mbar_expect_tx(bar_q_full(pst), 2 * QL::kBytes);
#pragma unroll
          for (int slab = 0; slab < kD / 64; ++slab) {
            tma::load_4d(sQ(pst) + slab * QL::kSlabBytes, &maps.q, bar_q_full(pst), slab * 64, h, q_row0 + m0, tb);
            tma::load_4d(sDO(pst) + slab * QL::kSlabBytes, &maps.d_o, bar_q_full(pst), slab * 64, h, q_row0 + m0, tb);
          }
        }
        // LSE (as lse_log2) and D of the kBM rows (0 past the sequence, as the cp.async zero-fill of the
        // other form).
        const float* lse = p.lse + b * p.lse_batch_stride + int64_t(h) * p.lse_head_stride + si.q_start;
        const float* dsum = static_cast<const float*>(p.workspace) + int64_t(h) * p.total_q + row_base;
        for (int r = lane; r < kBM; r += 32) {
          const bool ok = m0 + r < sq;
          s_lse[pst * kBM + r] = ok ? lse_log2(lse[m0 + r]) : 0.f;
          s_dsum[pst * kBM + r] = ok ? dsum[m0 + r] : 0.f;
        }
        tma::mbar_arrive(bar_q_full(pst));
        ++pmb;
        more = seek(phi, pmb);
      }
      return;
    }
    // ---- consumers --------------------------------------------------------------------------------
    tma::regs_alloc<C::kConsumerRegs>();
    ov::wait_prior_grid();  // the dQ accumulator is zeroed by the D pass
    ov::allow_dependents();
    tma::mbar_wait(bar_kv, 0);
    // TMA cannot skip rows: K/V rows no query sees (past the sequence, outside a window, the next
    // packed sequence) are zeroed here, before the first step's barrier orders them before any GEMM.
    for (int r = tid - 128; r < kBN; r += C::kConsumerThreads) {
      if (key_ok(r)) continue;
      prim::zero_row_sw128<KL>(sK, r);
      prim::zero_row_sw128<KL>(sV, r);
    }
    w::fence_proxy_async();
    tma::bar_sync(3, C::kConsumerThreads);  // the zeroed rows, before any GEMM reads K or V
  }

  constexpr int kAccCols = C::kAccCols;
  // dV, dK of this warpgroup's 64 keys, fp32: (64, kAccCols) each; the split step's blocks a and b.
  float dv[kAccCols / 8][4], dk[C::kBCols / 8][4];
#pragma unroll
  for (int nt = 0; nt < kAccCols / 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) dv[nt][e] = 0.f;
#pragma unroll
  for (int nt = 0; nt < C::kBCols / 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[nt][e] = 0.f;
  // Split step: block a is dV (else dK) and starts at slab a0; block b is the other, from slab b0.
  const bool a_is_dv = kD == 256 || wg == 0;
  const int a0 = kD == 256 ? 2 * wg : 0, b0 = kD == 256 ? 2 * wg : 2;
  float* dq_acc = reinterpret_cast<float*>(static_cast<char*>(p.workspace) + dq_acc_offset);

  // ---- pieces of the step both forms share ---------------------------------------------------------
  // Accumulator element (nt, e) of Sᵀ / dPᵀ: key key0 + wrow + g + 8·(e / 2), query m0 + 8·nt + 2t + e % 2.
  // Scores outside the sequence or the mask become −∞ (P = 0) and their dPᵀ 0, in a pass of their own
  // that full tiles skip. dPᵀ = V·dOᵀ of a key or query the call does not see may be NaN or ∞ (garbage in
  // masked K / V rows, rows past a sequence); zeroed here, dS = P ∘ (dP − D) is 0 there without a test
  // per element (a P ≠ 0 select on every tile cost two of the step's ~8 instructions per score).
  auto mask_scores = [&](auto& x, auto& dpx, TileClass cls, int m0, int key0) {
    constexpr int kN = std::extent_v<std::remove_reference_t<decltype(x)>>;
    if (cls != TileClass::kFull || m0 + kBM > sq || n0 + kBN > sk) {
#pragma unroll
      for (int nt = 0; nt < kN; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int q = m0 + nt * 8 + 2 * t + (e & 1), k = n0 + key0 + wrow + g + 8 * (e >> 1);
          if (!(q < sq && k < sk && Mask::visible(q, k, sq, sk, p.mask))) x[nt][e] = -INFINITY, dpx[nt][e] = 0.f;
        }
    }
  };
  // dS = P ∘ (dP − D); finite where the mask hides a score (mask_scores zeroed dP there, and D is 0 on
  // rows past the sequence).
  auto ds_of = [](float pv, float dpv, float dsum) { return pv * (dpv - dsum); };
  // Pᵀ = exp2(Sᵀ·scale·log2e − LSE·log2e) over x, dSᵀ = Pᵀ ∘ (dPᵀ − D) over dpx: the step's accumulators,
  // kN 8-query column tiles from query column q0 of stage st (tile rows m0 + q0 …), keys from key0.
  // LSE·log2e and D of this thread's 2·kN query columns are read up front, and masked scores become −∞
  // (P = 0) in a pass of their own, so the main loop is the same straight-line math on every tile
  // (per-element predicated shared loads behind the mask test stalled causal tiles: on the H200,
  // hd64 causal S 4096 went from 229 to 314 TFLOP/s, non-causal from 307 to 350).
  auto p_and_ds = [&](auto& x, auto& dpx, TileClass cls, int m0, int q0, int key0, int st) {
    constexpr int kN = std::extent_v<std::remove_reference_t<decltype(x)>>;
    float2 lse2[kN], dsum2[kN];
#pragma unroll
    for (int nt = 0; nt < kN; ++nt) {
      const float2 l = *reinterpret_cast<const float2*>(s_lse + st * kBM + q0 + nt * 8 + 2 * t);
      lse2[nt].x = lse_of(l.x);
      lse2[nt].y = lse_of(l.y);
      dsum2[nt] = *reinterpret_cast<const float2*>(s_dsum + st * kBM + q0 + nt * 8 + 2 * t);
    }
    mask_scores(x, dpx, cls, m0 + q0, key0);
#pragma unroll
    for (int nt = 0; nt < kN; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float lse = e & 1 ? lse2[nt].y : lse2[nt].x, dsum = e & 1 ? dsum2[nt].y : dsum2[nt].x;
        const float pv = prim::exp2_approx(x[nt][e] * p.scale_log2 - lse);
        x[nt][e] = pv;
        dpx[nt][e] = ds_of(pv, dpx[nt][e], dsum);
      }
  };
  // m64k16 A fragment kk (16 queries) of Pᵀ or dSᵀ from its fp32 accumulator v.
  auto pack_a = [](uint32_t (&fr)[4], const auto& v, int kk) { prim::c_to_a<typename C::Num>(fr, v, kk); };
  // Element pair (key row kl, query columns 8·nt + 2t, +1) of a 16-bit (keys, queries) tile in dSᵀ's
  // layout: dSᵀ of a stage, or the split step's Pᵀ.
  auto pair_at = [&](uint32_t tile, int kl, int nt) { return tile + SL::offset(kl, nt * 8 + 2 * t); };
  // One warpgroup's (64 queries, 64 columns) dQ part into buf in fragment order, and its bulk reduce-add
  // into the accumulator block at dst.
  auto stage_dq = [&](uint32_t buf, const float (&dq)[8][4]) {
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int hh = 0; hh < 2; ++hh)
        asm volatile("st.shared.v2.f32 [%0], {%1, %2};\n" ::"r"(buf + 4u * sd::dq_frag_offset(nt, hh, tid & 127)),
                     "f"(dq[nt][2 * hh]), "f"(dq[nt][2 * hh + 1]));
  };
  auto send_dq = [](float* dst, uint32_t buf) {
    asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n" ::"l"(dst), "r"(buf),
                 "r"(C::kDqPartFloats * 4)
                 : "memory");
    asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
  };

  // The wgmma descriptor of K slice ks (16 columns) of a K-major (rows, kD) operand from row `row` of
  // `tile`, whose 64-column slabs are slab_bytes apart (a row is 128 bytes of a slab).
  auto k_slice = [&](uint32_t tile, int row, uint32_t slab_bytes, int ks) {
    return w::desc_sw128_at(tile + row * 128, (ks / 4) * slab_bytes + (ks % 4) * 32, 16, kSbo);
  };
  // Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ over the head dim, the two GEMMs interleaved per k-slice (one wgmma group,
  // issued after the caller's fence): K / V from key row k_row of the CTA's tile, Q / dO from query row
  // q_row of stage st; (64 keys, Mma's N queries) each.
  auto s_dp_gemm = [&](auto mma, auto& s, auto& dp, int k_row, int q_row, int st) {
    using Mma = decltype(mma);
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks) {
      const uint64_t dK = k_slice(sK, k_row, KL::kSlabBytes, ks), dQ = k_slice(sQ(st), q_row, QL::kSlabBytes, ks);
      const uint64_t dV = k_slice(sV, k_row, KL::kSlabBytes, ks), dO = k_slice(sDO(st), q_row, QL::kSlabBytes, ks);
      if (ks == 0) {
        Mma::template ss<false>(s, dK, dQ);
        Mma::template ss<false>(dp, dV, dO);
      } else {
        Mma::template ss<true>(s, dK, dQ);
        Mma::template ss<true>(dp, dV, dO);
      }
    }
  };

  // One of the two alone: Sᵀ (kv = sK, qd = sQ) or dPᵀ (sV, sDO), operands as in s_dp_gemm.
  auto s_or_dp_gemm = [&](auto mma, auto& acc, uint32_t kv, uint32_t qd, int k_row, int q_row) {
    using Mma = decltype(mma);
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks) {
      const uint64_t a = k_slice(kv, k_row, KL::kSlabBytes, ks), bq = k_slice(qd, q_row, QL::kSlabBytes, ks);
      if (ks == 0) Mma::template ss<false>(acc, a, bq);
      else Mma::template ss<true>(acc, a, bq);
    }
  };

  // ---- the split step (head dims 192, 256): both warpgroups see the CTA's 64 keys -----------------
  // Each warpgroup computes Sᵀ and dPᵀ for its 32 of the step's 64 queries (wgmma N = 32), forms Pᵀ and
  // dSᵀ there and writes both as 16-bit (keys, queries) tiles on named barriers 5 ([W]: the last step's
  // GEMMs have read them) and 6 ([S]: both halves in), so the two run in step and one buffer of each
  // suffices. (Forming all of Pᵀ on warpgroup 0 and all of dSᵀ on warpgroup 1, trading Pᵀ in fp32, ran
  // the two elementwise phases one after the other: 5–8 % slower at 192, 1–2 % at 256; H200, 2026-11-30,
  // flash_bwd_ab.sh GROUP 5, two runs.) Each warpgroup then adds into its blocks a and b
  // (BwdSm90Config::kBCols): dV += Pᵀ·dO, dK += dSᵀ·Q over their slabs, A from the shared tiles, and
  // computes dQ in two (64, 64) parts, each staged and sent by one bulk reduce-add: head dim 256 slabs
  // 2·wg, 2·wg + 1 over all 64 keys; 192 slab wg over all keys, then slab 2 over this warpgroup's 32 keys
  // (the halves meet in the reduce-add: 1.5 parts each). Part 0 is staged in block a's slabs of its dO / Q
  // tile (read by nothing else once a's GEMM is done), part 1 in block b's (256) or this warpgroup's slot
  // of the dQ buffer (192).
  auto split_step = [&](int h, int m0, int mb, TileClass cls, int st) {
    if constexpr (C::kSplitD) {  // instantiated for the split tiles only
      const int kl0 = wrow + g;
      const uint32_t slab = QL::kSlabBytes;
      const uint32_t tile_a = (a_is_dv ? sDO(st) : sQ(st)) + uint32_t(a0) * slab;  // (64 queries, 128 columns)
      const uint32_t tile_b = (a_is_dv ? sQ(st) : sDO(st)) + uint32_t(b0) * slab;  // (64 queries, kBCols)
      // ---- Sᵀ_w = K·Q[q0 …]ᵀ, dPᵀ_w = V·dO[q0 …]ᵀ: (64 keys, 32 queries), q0 = 32·wg --------------
      const int q0 = 32 * wg;
      float sc[4][4], dp[4][4];
      w::fence();
      s_dp_gemm(MmaS32{}, sc, dp, 0, q0, st);
      w::commit();
      w::wait<0>();
      // ---- Pᵀ, dSᵀ on this warpgroup's 32 queries ----------------------------------------------------
      // Element (nt, e): key row wrow + g + 8·(e / 2), query column q0 + 8·nt + 2t + e % 2.
      p_and_ds(sc, dp, cls, m0, q0, 0, st);
      // [W] both warpgroups' GEMMs of the last step have read the Pᵀ and dSᵀ tiles; then this warpgroup's
      // 32 query columns of each go in, and [S] has both halves in place.
      tma::bar_sync(5, C::kConsumerThreads);
      const uint32_t s_pt = base + C::kOffP;  // Pᵀ: (64 keys, 64 queries), 16-bit, the dSᵀ tile's layout
#pragma unroll
      for (int nt = 0; nt < 4; ++nt)
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
          const int kl = kl0 + 8 * hh, qt = q0 / 8 + nt;
          asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(pair_at(s_pt, kl, qt)),
                       "r"(C::Num::pack2(sc[nt][2 * hh], sc[nt][2 * hh + 1])));
          asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(pair_at(sDS(st), kl, qt)),
                       "r"(C::Num::pack2(dp[nt][2 * hh], dp[nt][2 * hh + 1])));
        }
      w::fence_proxy_async();  // Pᵀ, dSᵀ, before the wgmma (async proxy) reads them
      tma::bar_sync(6, C::kConsumerThreads);  // [S]
      // ---- a += (Pᵀ or dSᵀ)·(dO or Q)[:, slabs a0 …], b += the other: A K-major (keys, queries) from
      // the shared tiles, B MN-major -----------------------------------------------------------------
      const uint32_t at_a = a_is_dv ? s_pt : sDS(st), at_b = a_is_dv ? sDS(st) : s_pt;
      w::fence();
#pragma unroll
      for (int kk = 0; kk < 4; ++kk)
        MmaKV::ss_bmn(dv, w::desc_sw128_at(at_a, kk * 32, 16, kSbo), w::desc_sw128_at(tile_a, kk * 2048, slab, kSbo));
#pragma unroll
      for (int kk = 0; kk < 4; ++kk)
        MmaKB::ss_bmn(dk, w::desc_sw128_at(at_b, kk * 32, 16, kSbo), w::desc_sw128_at(tile_b, kk * 2048, slab, kSbo));
      w::commit();
      // ---- dQ[:, slab cs …] = dS·K[:, slab cs …] over the part's keys, each part staged and sent before
      // the next; A = dS (64 queries, keys) MN-major from dSᵀ; B = K (keys, 64 columns) MN-major. (Both
      // parts' GEMMs in flight, staging part 0 while part 1 runs, lost 2 % at 192 and 13–17 % at 256,
      // where the second accumulator spills: H200, 2026-11-30, flash_bwd_ab.sh GROUP 5, two runs.)
      float dq[8][4];
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const bool half = kD == 192 && j == 1;  // slab 2 over keys 32·wg …
        const int cs = kD == 256 ? 2 * wg + j : j == 0 ? wg : 2, k0 = half ? 2 * wg : 0;
        w::fence();
#pragma unroll
        for (int kk = 0; kk < (half ? 2 : 4); ++kk) {
          const uint64_t a = w::desc_sw128_at(sDS(st) + k0 * 2048, kk * 2048, SL::kSlabBytes, kSbo);
          const uint64_t bk = w::desc_sw128_at(sK + uint32_t(cs) * KL::kSlabBytes + k0 * 2048, kk * 2048, KL::kSlabBytes, kSbo);
          if (kk == 0) MmaQ::template ss<false>(dq, a, bk);
          else MmaQ::template ss<true>(dq, a, bk);
        }
        w::commit();
        w::wait<0>();  // j = 0: a, b and dQ part 0 (block a's slabs are free); j = 1: part 1 (b's too)
        // Part j → block a's slabs (j = 0) or block b's / this warpgroup's slot of the dQ buffer → reduce-add.
        const uint32_t buf = j == 0 ? tile_a : C::kDqBufBytes > 0 ? base + C::kOffDq + uint32_t(wg * C::kDqPartFloats * 4) : tile_b;
        stage_dq(buf, dq);
        w::fence_proxy_async();
        tma::bar_sync(1 + wg, 128);  // this part staged
        if (bulk_issuer)
          send_dq(dq_acc + dq_acc_tile_base(p, b, h, mb, sd::kDqTileRows, kD) + 64 * cs * sd::kDqTileRows, buf);
      }
      // The stage goes back to the producer once the parts staged in it have been read out. (The dQ
      // buffer is read out before the next step's parts are staged too: this wait, then [W].)
      if (bulk_issuer) asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
      tma::bar_sync(1 + wg, 128);
      tma::mbar_arrive(bar_q_empty(st));
    }
  };
  int hi = step0 / m_blocks, mb = step0 % m_blocks, st = 0;
  uint32_t phase = 0;  // kWS: parity of stage st's full barrier
  bool have = seek(hi, mb);
  // Sᵀ = K_w·Qᵀ, dPᵀ = V_w·dOᵀ of a step: (64 keys, kBM queries) per warpgroup, K-major operands.
  // kEarlyS: Sᵀ of step i is in flight when step i starts (the first step's issued here).
  float s[kQT][4], dp[kQT][4];
  auto issue_s = [&](int stage) {  // unconditional where other groups are in flight (see kEarlyS)
    w::fence();
    s_or_dp_gemm(MmaS{}, s, sK, sQ(stage), wg * 64, 0);
    w::commit();
  };
  if constexpr (C::kEarlyS) {
    if (have) tma::mbar_wait(bar_q_full(st), phase);
    issue_s(st);  // without a step: a read of stage 0's unfilled tile, never used
  }
  if constexpr (!C::kWS) {
    if (have) load_q(hi, mb, 0);
    prim::cp_async_commit();
  }
  while (have) {
    const int h = hkv * group + hi, m0 = mb * kBM;
    const TileClass cls = tile_class(mb);
    if constexpr (C::kWS) tma::mbar_wait(bar_q_full(st), phase);
    else prim::cp_async_wait<0>();
    // The dQ buffer this step writes was last read by the reduce-add kDqStages steps back.
    if (bulk_issuer) {
      if constexpr (C::kDqStages == 2) asm volatile("cp.async.bulk.wait_group.read 1;\n" ::: "memory");
      else asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
    }
    w::fence_proxy_async();
    // [A] (cp.async form) this tile (and K, V) in shared memory; the previous step is done. The kWS
    // form has the full barrier for the tile, and its warpgroups may drift one step apart: they meet
    // only at [B], and dSᵀ alternates between two buffers.
    if constexpr (!C::kWS) __syncthreads();
    int nhi = hi, nmb = mb + 1;
    const bool nhave = seek(nhi, nmb);
    if constexpr (!C::kWS) {
      if (nhave) load_q(nhi, nmb, st ^ 1);
      prim::cp_async_commit();
    }

    if constexpr (C::kSplitD) {
      split_step(h, m0, mb, cls, st);
    } else {
      // ---- Sᵀ, dPᵀ (kEarlyS: Sᵀ is in flight) ----------------------------------------------------------
      w::fence();
      if constexpr (C::kEarlyS) s_or_dp_gemm(MmaS{}, dp, sV, sDO(st), wg * 64, 0);
      else s_dp_gemm(MmaS{}, s, dp, wg * 64, 0, st);
      w::commit();
      w::wait<0>();

      // ---- Pᵀ, dSᵀ ---------------------------------------------------------------------------------------
      // Element (nt, e): key row 64·wg + wrow + g + 8·(e / 2), query column 8·nt + 2t + e % 2.
      p_and_ds(s, dp, cls, m0, 0, wg * 64, st);
      uint32_t pa[kBM / 16][4], da[kBM / 16][4];  // Pᵀ, dSᵀ as m64k16 A fragments, one per 16 queries
#pragma unroll
      for (int kk = 0; kk < kBM / 16; ++kk) {
        pack_a(pa[kk], s, kk);
        pack_a(da[kk], dp, kk);
      }

      // ---- dSᵀ → shared (key rows, query columns, 16-bit), before da becomes an in-flight operand ----
      if constexpr (C::kDsStmatrix) {
        // da[kk] is four 8×8 blocks: j = 0..3 ↔ keys +8·(j % 2), queries 16·kk + 8·(j / 2); one stmatrix
        // each, lane l addressing row l % 8 of block l / 8 (a 16-byte chunk of the swizzled tile).
        const int key = wg * 64 + wrow + 8 * ((lane >> 3) & 1) + (lane & 7);
#pragma unroll
        for (int kk = 0; kk < kBM / 16; ++kk) prim::stmatrix_x4(sDS(st) + SL::chunk_offset(key, 2 * kk + (lane >> 4)), da[kk]);
      } else {
#pragma unroll
        for (int nt = 0; nt < kQT; ++nt)
#pragma unroll
          for (int hh = 0; hh < 2; ++hh)
            asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(pair_at(sDS(st), wg * 64 + wrow + g + 8 * hh, nt)),
                         "r"(da[nt / 2][(nt % 2) * 2 + hh]));
      }

      // ---- dV_w += Pᵀ·dO: B = dO (kBM queries = k, D = n), MN-major ----------------------------------
      w::fence();
#pragma unroll
      for (int kk = 0; kk < kBM / 16; ++kk) MmaKV::rs(dv, pa[kk], w::desc_sw128_at(sDO(st), kk * 2048, QL::kSlabBytes, kSbo));
      w::commit();
      w::fence_proxy_async();
      // [B] dSᵀ of every warpgroup in shared memory
      if constexpr (C::kWS) tma::bar_sync(3, C::kConsumerThreads);
      else __syncthreads();

      // ---- dQ = dS·K: A = dS (64 queries = m, keys = k) MN-major from dSᵀ; B = K (keys, D) MN-major --
      float dq[8][4];  // (64 queries, 64 columns): queries r0 …, columns c0 …
      const int c0 = kD == 128 ? wg * 64 : 0, r0 = kBM == 128 ? wg * 64 : 0;
      w::fence();
      if constexpr (kBM == 128) {  // queries 64·wg … (dSᵀ slab wg), all 64 columns, over all kBN keys
#pragma unroll
        for (int kk = 0; kk < kBN / 16; ++kk) {
          const uint64_t a = w::desc_sw128_at(sDS(st) + wg * SL::kSlabBytes, kk * 2048, SL::kSlabBytes, kSbo);
          const uint64_t bk = w::desc_sw128_at(sK, kk * 2048, KL::kSlabBytes, kSbo);
          if (kk == 0) MmaQ::template ss<false>(dq, a, bk);
          else MmaQ::template ss<true>(dq, a, bk);
        }
      } else if constexpr (kD == 128) {  // columns 64·wg … over all kBN keys
#pragma unroll
        for (int kk = 0; kk < kBN / 16; ++kk) {
          const uint64_t a = w::desc_sw128_at(sDS(st), kk * 2048, SL::kSlabBytes, kSbo);
          const uint64_t bk = w::desc_sw128_at(sK + wg * KL::kSlabBytes, kk * 2048, KL::kSlabBytes, kSbo);
          if (kk == 0) MmaQ::template ss<false>(dq, a, bk);
          else MmaQ::template ss<true>(dq, a, bk);
        }
      } else {  // all 64 columns over this warpgroup's 64 keys (the partial sums meet in the reduce-add)
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
          const uint32_t at = uint32_t(wg * 64) * 128;  // this warpgroup's 64 key rows, 16 per slice
          const uint64_t a = w::desc_sw128_at(sDS(st) + at, kk * 2048, SL::kSlabBytes, kSbo);
          const uint64_t bk = w::desc_sw128_at(sK + at, kk * 2048, KL::kSlabBytes, kSbo);
          if (kk == 0) MmaQ::template ss<false>(dq, a, bk);
          else MmaQ::template ss<true>(dq, a, bk);
        }
      }
      w::commit();
      // ---- dK_w += dSᵀ·Q: B = Q (kBM queries = k, D = n), MN-major; issued after dQ so that it runs
      // while dQ is staged and sent (wgmma groups complete in order: wait<1> is dV and dQ) -----------
#pragma unroll
      for (int kk = 0; kk < kBM / 16; ++kk) MmaKV::rs(dk, da[kk], w::desc_sw128_at(sQ(st), kk * 2048, QL::kSlabBytes, kSbo));
      w::commit();
      w::wait<1>();  // dV and dQ

      // ---- dQ part → shared in fragment order → one bulk reduce-add into the tile's block ------------
      // Rows past the sequence carry dS = 0, so the whole block is added; a 128-query step's second
      // half past the sequence has no block (the accumulator has ⌈Sq / 64⌉ of them) and is not sent.
      const uint32_t buf =
          base + C::kOffDq + uint32_t((C::kDqStages == 2 ? st : 0) * C::kDqBufBytes + wg * C::kDqPartFloats * 4);
      if constexpr (C::kDqSum) {
        // dQ_0 += dQ_1: warpgroup 1 stages its part and signals; warpgroup 0 (thread i holds the same
        // elements as thread i of warpgroup 1) adds it and sends the sum below. Warpgroup 1 cannot stage
        // into this buffer again before warpgroup 0 has read it: that is two steps on, past [B].
        if (wg == 1) {
          stage_dq(buf, dq);
          tma::bar_arrive(4, C::kConsumerThreads);
        } else {
          tma::bar_sync(4, C::kConsumerThreads);
          const uint32_t part1 = buf + C::kDqPartFloats * 4;
#pragma unroll
          for (int nt = 0; nt < 8; ++nt)
#pragma unroll
            for (int hh = 0; hh < 2; ++hh) {
              float x, y;
              asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];\n"
                           : "=f"(x), "=f"(y)
                           : "r"(part1 + 4u * sd::dq_frag_offset(nt, hh, tid & 127)));
              dq[nt][2 * hh] += x, dq[nt][2 * hh + 1] += y;
            }
        }
      }
      if (!C::kDqSum || wg == 0) {
        stage_dq(buf, dq);
        w::fence_proxy_async();
        asm volatile("bar.sync %0, 128;\n" ::"r"(1 + wg) : "memory");  // this warpgroup's part staged
#ifdef ATTNFORGE_DEV_BWD_SM90_SKIP_DQ_ADD  // measurement only (dev driver): dQ is wrong
        if (false) {
#else
        if (bulk_issuer && (kBM == sd::kDqTileRows || m0 + r0 < sq)) {
#endif
          const int dq_tile = mb * (kBM / sd::kDqTileRows) + r0 / sd::kDqTileRows;
          send_dq(dq_acc + dq_acc_tile_base(p, b, h, dq_tile, sd::kDqTileRows, kD) + c0 * sd::kDqTileRows, buf);
        }
      }
      if constexpr (C::kEarlyS) {
        // The next step's Sᵀ (s is free: pa, da hold this step's) behind dK; the last step's own again.
        if (nhave) tma::mbar_wait(bar_q_full(st ^ 1), st == 1 ? phase ^ 1u : phase);
        issue_s(nhave ? st ^ 1 : st);
        w::wait<1>();  // dK (the groups complete in order): Q of this stage is read
      } else {
        w::wait<0>();  // dK: Q of this stage is read
      }
      if constexpr (C::kWS) tma::mbar_arrive(bar_q_empty(st));  // Q, dO, LSE, D of this stage are read
    }

    hi = nhi, mb = nmb, have = nhave, st ^= 1;
    phase ^= st == 0 ? 1u : 0u;
  }
  if constexpr (C::kEarlyS) w::wait<0>();  // the last step's unused Sᵀ (or the one of a CTA without steps)
  if constexpr (!C::kWS) prim::cp_async_wait<0>();
  if (bulk_issuer) {  // every dQ reduce-add of this CTA has landed
    asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
    ov::async_writes_to_generic();
  }
  // This CTA's arrival (see `done`), once the dQ adds above are complete: after a barrier of all
  // consumers, before dK and dV are written (the conversion's last CTA waits for the whole grid).
  const bool arriver = tid == (C::kWS ? 128 : 0);

  // ---- a piece of a split CTA: dK, dV partials added into the CTA's fp32 accumulators; the piece whose
  // arrival completes the count reads the sums back and stores them below, the others are done --------
  if constexpr (C::kSplitsWave) {
    if (pieces) {
      constexpr int kN = kAccCols / 8;
      const int ct = tid - 128, tile = int(blockIdx.x) / split.parts;  // kSplitsWave: the warp-specialized form
      // (dK | dV) of the CTA's keys, fragment order: n8-tile nt of consumer thread ct at float4 nt·threads + ct.
      float4* acc = reinterpret_cast<float4*>(static_cast<char*>(p.workspace) + split_offset) +
                    size_t(tile) * (2 * kN * C::kConsumerThreads);
      int* counter = reinterpret_cast<int*>(reinterpret_cast<float4*>(static_cast<char*>(p.workspace) + split_offset) +
                                            size_t(split.tiles) * (2 * kN * C::kConsumerThreads)) + tile;
#pragma unroll
      for (int nt = 0; nt < kN; ++nt) {
        atomicAdd(acc + nt * C::kConsumerThreads + ct, make_float4(dk[nt][0], dk[nt][1], dk[nt][2], dk[nt][3]));
        atomicAdd(acc + (kN + nt) * C::kConsumerThreads + ct, make_float4(dv[nt][0], dv[nt][1], dv[nt][2], dv[nt][3]));
      }
      __threadfence();  // the adds land before the count says so
      int* s_last = reinterpret_cast<int*>(s_lse);  // the producer is done with LSE
      tma::bar_sync(3, C::kConsumerThreads);  // every consumer's adds fenced
      if (ct == 0) *s_last = atomicAdd(counter, 1) == split.parts - 1;
      tma::bar_sync(3, C::kConsumerThreads);
      if (!*s_last) return;
      __threadfence();  // every other piece's adds are visible
#pragma unroll
      for (int nt = 0; nt < kN; ++nt) {
        const float4 k4 = __ldcg(acc + nt * C::kConsumerThreads + ct), v4 = __ldcg(acc + (kN + nt) * C::kConsumerThreads + ct);
        dk[nt][0] = k4.x, dk[nt][1] = k4.y, dk[nt][2] = k4.z, dk[nt][3] = k4.w;
        dv[nt][0] = v4.x, dv[nt][1] = v4.y, dv[nt][2] = v4.z, dv[nt][3] = v4.w;
      }
    }
  }

  // ---- dK = scale · Σ dSᵀ·Q, dV = Σ Pᵀ·dO: rows are keys -------------------------------------------
  Element* dkg = static_cast<Element*>(p.dk) + b * p.dk_batch_stride + (si.k_start + n0) * p.dk_row_stride +
                 int64_t(hkv) * p.dk_head_stride;
  Element* dvg = static_cast<Element*>(p.dv) + b * p.dv_batch_stride + (si.k_start + n0) * p.dv_row_stride +
                 int64_t(hkv) * p.dv_head_stride;
  // Rows: this warpgroup's 64 keys (split step: all 64 keys of the CTA; block a is dV or dK from column
  // 64·a0, block b the other from 64·b0).
  const int key0 = C::kSplitD ? 0 : wg * 64;
  auto store_block = [&](const auto& acc, bool is_dv, int col0) {
    constexpr int kN = std::extent_v<std::remove_reference_t<decltype(acc)>>;
    Element* dst = is_dv ? dvg : dkg;
    const int64_t rs = is_dv ? p.dv_row_stride : p.dk_row_stride;
    const float sc = is_dv ? 1.f : p.scale;  // dK = scale · Σ dSᵀ·Q
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const int kl = key0 + wrow + g + 8 * hh;
      if (n0 + kl >= sk) continue;
#pragma unroll
      for (int nt = 0; nt < kN; ++nt)
        *reinterpret_cast<uint32_t*>(dst + int64_t(kl) * rs + col0 + nt * 8 + 2 * t) =
            C::Num::pack2(acc[nt][2 * hh] * sc, acc[nt][2 * hh + 1] * sc);
    }
  };
  if constexpr (C::kSplitD) {
    tma::bar_sync(3, C::kConsumerThreads);
    if (arriver) ov::arrive(done);
    store_block(dk, !a_is_dv, 64 * b0);
    store_block(dv, a_is_dv, 64 * a0);
  } else {
    // dK, dV (kBlockN keys, D) staged in K's and V's tiles, whose last readers (every warpgroup's dQ
    // GEMMs) are done once all consumers pass the barrier, then written by each warp as whole 16-byte
    // pieces of its own 16 rows: the accumulator fragments' 4-byte stores touch half of every 32-byte
    // sector.
    if constexpr (C::kWS) tma::bar_sync(3, C::kConsumerThreads);
    else __syncthreads();
    if (arriver) ov::arrive(done);
#pragma unroll
    for (int hh = 0; hh < 2; ++hh)  // dK = scale · Σ dSᵀ·Q
      prim::stage_fragment_row<KL, typename C::Num>(sK, key0 + wrow + g + 8 * hh, dk, hh, t, p.scale);
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) prim::stage_fragment_row<KL, typename C::Num>(sV, key0 + wrow + g + 8 * hh, dv, hh, t);
    __syncwarp();
    prim::store_staged_rows<KL, 16>(sK, key0 + wrow, dkg, p.dk_row_stride, 0, sk - n0, lane);
    prim::store_staged_rows<KL, 16>(sV, key0 + wrow, dvg, p.dv_row_stride, 0, sk - n0, lane);
  }
#else
  __trap();  // run_bwd<V> takes this kernel only on sm_90 devices, built for sm_90a
#endif
}

// dQ = scale · acc from this kernel's accumulator, a CTA per (head, query tile, batch). Each float4 of
// the tile's block (float pairs 2f, 2f + 1: threads 2j, 2j + 1 of one fragment, dq_frag_offset) is four
// consecutive columns of one row; the CTA reads the block in order (all loads before any store), puts
// the scaled 16-bit values row-major into shared memory, and writes whole dQ rows: 16-byte pieces of
// scattered rows straight from the fragment order ran at ~1.6 TB/s (125–146 µs per call at D 128,
// B·S 16384, against cuDNN's 55 µs; H200, 2026-11-30, kernel_breakdown.py). Heads fastest in the grid
// (unless the query tiles exceed grid y): the CTAs running together write whole token rows of dQ
// (110–131 → 98–106 µs before shared memory). Launched to overlap the main kernel's tail (key_tiles > 0):
// a CTA first waits for its (batch, kv head) count of finished main-kernel CTAs to reach key_tiles, so
// the heads done before the last wave are converted on the SMs that wave leaves idle.
template <class V>
__global__ void __launch_bounds__(256) flash_bwd_sm90_convert_dq_kernel(const __grid_constant__ Params p,
                                                                          size_t dq_acc_offset, bool heads_fastest,
                                                                          size_t done_offset, int key_tiles) {
  using C = BwdSm90Config<V>;
  using Element = typename C::Element;
  constexpr int kRows = bwd_sm90_detail::kDqTileRows;
  constexpr int kLoads = kRows * C::kD / 4 / 256;  // float4 per thread
  constexpr int kPitch = C::kD + 8;                 // elements; 16 bytes of padding: conflict-free rows
  static_assert(kRows * C::kD % (4 * 256) == 0, "head dims of the Hopper kernel are multiples of 64");
  __shared__ __align__(16) Element s_dq[kRows * kPitch];  // (64 rows, kD), row-major
  const int h = heads_fastest ? blockIdx.x : blockIdx.y, mb = heads_fastest ? blockIdx.y : blockIdx.x, b = blockIdx.z;
  const SeqInfo si = seq_info(p, b);
  const int m0 = mb * kRows;
  if (m0 < si.seqlen_q) {
    if (key_tiles > 0) {
      if (threadIdx.x == 0)
        prim::overlap::wait_count(reinterpret_cast<const int*>(static_cast<const char*>(p.workspace) + done_offset) +
                                      int64_t(b) * p.heads_kv + h / p.group(),
                                  key_tiles);
      __syncthreads();
    }
    const float4* tile = reinterpret_cast<const float4*>(
        reinterpret_cast<const float*>(static_cast<const char*>(p.workspace) + dq_acc_offset) +
        dq_acc_tile_base(p, b, h, mb, kRows, C::kD));  // (64 rows, kD), fragment order
    float4 acc[kLoads];
#pragma unroll
    for (int i = 0; i < kLoads; ++i) acc[i] = __ldcs(tile + threadIdx.x + 256 * i);  // read once
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int pi = 2 * (threadIdx.x + 256 * i), cg = pi / 2048, fh = pi % 2048 / 128, tt = pi % 128;
      const int row = (tt >> 5) * 16 + ((tt & 31) >> 2) + 8 * (fh & 1);
      const int col = cg * 64 + (fh >> 1) * 8 + 2 * (tt & 3);
      const float s = p.scale;
      const uint2 w = {C::Num::pack2(acc[i].x * s, acc[i].y * s), C::Num::pack2(acc[i].z * s, acc[i].w * s)};
      *reinterpret_cast<uint2*>(s_dq + row * kPitch + col) = w;
    }
    __syncthreads();
    Element* dq = static_cast<Element*>(p.dq) + int64_t(b) * p.dq_batch_stride + si.q_start * p.dq_row_stride +
                  int64_t(h) * p.dq_head_stride;
    constexpr int kChunks = C::kD / 8;  // 16-byte pieces per row
#pragma unroll
    for (int i = 0; i < kRows * kChunks / 256; ++i) {
      const int j = threadIdx.x + 256 * i, row = j / kChunks, c = j % kChunks * 8;
      if (m0 + row < si.seqlen_q)  // rows 16-byte aligned
        *reinterpret_cast<uint4*>(dq + int64_t(m0 + row) * p.dq_row_stride + c) =
            *reinterpret_cast<const uint4*>(s_dq + row * kPitch + c);
    }
  }
  // The grid's last CTA ends after the main kernel (its dK, dV stores included), so the conversion does
  // too, whatever the stream makes of the overlap.
  const bool last = blockIdx.x + 1 == gridDim.x && blockIdx.y + 1 == gridDim.y && blockIdx.z + 1 == gridDim.z;
  if (last && key_tiles > 0) prim::overlap::wait_prior_grid();
}

// The TMA descriptors of the warp-specialized form; false when the driver cannot describe a layout
// (run_bwd then takes the variant's 8-warp tile).
template <class V>
bool encode_bwd_sm90_maps(const Params& p, BwdSm90Maps* maps) {
  using C = BwdSm90Config<V>;
  namespace tma = prim::tma;
  return tma::encode_qkv_views(&maps->q, &maps->k, &maps->v, p, C::kDType, C::kD, C::kBlockM, C::kBlockN) &&
         tma::encode_tensor_view(&maps->d_o, p, tma::Side::queries, C::kDType, C::kD, p.d_o, p.do_row_stride,
                                 p.do_head_stride, p.do_batch_stride, C::kBlockM);
}

// Which launches of this path overlap the one before (launch_bwd_sm90): none; the dQ conversion only;
// all (the main kernel over the D pass's tail too; the default). ATTNFORGE_FLASH_BWD_OVERLAP=none|dq|all,
// read per call (A/B runs, and a way out should a driver misbehave).
enum class BwdOverlap { none, dq, all };
inline BwdOverlap bwd_overlap() {
  if (env_is("ATTNFORGE_FLASH_BWD_OVERLAP", "none")) return BwdOverlap::none;
  if (env_is("ATTNFORGE_FLASH_BWD_OVERLAP", "dq")) return BwdOverlap::dq;
  return BwdOverlap::all;
}

// ATTNFORGE_FLASH_BWD_ORDER=tail | batch (bwd_grid_order), read per call; unset: the measured choice.
inline BwdOrderAsk bwd_order_ask() {
  if (env_is("ATTNFORGE_FLASH_BWD_ORDER", "tail")) return BwdOrderAsk::tail;
  if (env_is("ATTNFORGE_FLASH_BWD_ORDER", "batch")) return BwdOrderAsk::batch;
  return BwdOrderAsk::measured;
}

// The main kernel and the dQ conversion of this path (run_bwd<V> zeroes the accumulator and runs the
// D pass before). Returns false if a launch or the shared-memory opt-in failed.
// Overlap (bwd_overlap(), programmatic dependent launch): the main kernel starts its first CTAs during
// the D pass's tail (they load K, V, then wait for it), and the dQ conversion starts once every
// main-kernel CTA has started, converting each (batch, kv head) as its key tiles finish: the heads
// done before the last wave are converted on the SMs that wave leaves idle (D 128, S 2048: 2048 CTAs
// on 132 SMs, 15.5 waves, against a ~50 µs conversion that ran after the whole grid). H200, 2026-12-01:
// at burst clocks the conversion ends 5–37 µs after the main kernel there instead of ~52 (causal: the call
// 794 → 780 µs); at the sustained, power-capped clock the compare cannot tell it from the runs' spread (bench/results/h200_2026-12-01_bwd_overlap_ab.md).
template <class V>
bool launch_bwd_sm90(const Params& p, const BwdWorkspaceLayout& ws, cudaStream_t stream,
                     const BwdSm90Maps& maps = BwdSm90Maps{}, const BwdSplit& split = BwdSplit{}) {
  using C = BwdSm90Config<V>;
  namespace ov = prim::overlap;
  const BwdOverlap overlap = bwd_overlap();
  const int key_tiles = p.seqlen_k > 0 ? (p.seqlen_k + C::kBlockN - 1) / C::kBlockN : 0;
  if (key_tiles > 0) {
    static int raised[64] = {};
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || !allow_smem(flash_bwd_sm90_kernel<V>, C::kSmemBytes, dev, raised))
      return false;
    // Grid order (flash/bwd_grid_order.hpp): key tiles fastest; when the mask empties some tiles
    // (causal: the first query tile sees no key of the last key tile; a window: the last query tile
    // none of the first), key tiles differ in work, and under 128 key tiles the order starts longest
    // CTAs first, batch by batch, or over the last units only where a batch's heads overflow the L2 at
    // D 64.
    const int sq = p.seqlen_q, sk = p.seqlen_k, last_q = (sq - 1) / C::kBlockM * C::kBlockM;
    auto empty = [&](int q0, int k0) {
      return C::Mask::classify(q0, std::min(q0 + C::kBlockM, sq) - 1, k0, std::min(k0 + C::kBlockN, sk) - 1, sq, sk,
                               p.mask) == TileClass::kEmpty;
    };
    const bool uneven = sq > 0 && (empty(0, (key_tiles - 1) * C::kBlockN) || empty(last_q, 0));
    // Bytes a unit streams: Q and dO rows, the fp32 dQ accumulator, LSE and D, for each query head.
    const int64_t unit_bytes = int64_t(p.group()) * sq * (int64_t(C::kD) * (2 * sizeof(typename C::Element) + 4) + 8);
    const BwdGridOrder order =
        bwd_grid_order(key_tiles, p.heads_kv, p.batch, C::kD, unit_bytes,
                       cached_device_attribute<cudaDevAttrL2CacheSize>(dev), p.num_sms, uneven, bwd_order_ask());
    const dim3 grid(key_tiles, p.heads_kv, p.batch);
    // The split last wave (BwdSplit, sized into ws by the caller): the main launch skips its CTAs, the
    // second runs them as pieces once the main launch's whole waves are done.
    const BwdSplit use = order.tail_units == 0 ? split : BwdSplit{};
    if (ov::launch(overlap == BwdOverlap::all, flash_bwd_sm90_kernel<V>, grid, dim3(C::kThreads), C::kSmemBytes, stream,
                   p, ws.dq_acc_offset, order, maps, use, ws.split_offset, false, ws.done_offset) != cudaSuccess)
      return false;
    if (use.tiles > 0)
      flash_bwd_sm90_kernel<V><<<use.pieces(), C::kThreads, C::kSmemBytes, stream>>>(
          p, ws.dq_acc_offset, BwdGridOrder{}, maps, use, ws.split_offset, true, ws.done_offset);
  }
  constexpr int kRows = bwd_sm90_detail::kDqTileRows;
  const int m_tiles = (p.seqlen_q + kRows - 1) / kRows;
  const bool heads_fastest_dq = m_tiles <= 65535;
  const dim3 dq_grid = heads_fastest_dq ? dim3(p.heads_q, m_tiles, p.batch) : dim3(m_tiles, p.heads_q, p.batch);
  // Without the overlap the conversion runs after the whole main kernel, and needs no count.
  const bool dq_overlaps = overlap != BwdOverlap::none && key_tiles > 0;
  if (m_tiles > 0 &&
      ov::launch(dq_overlaps, flash_bwd_sm90_convert_dq_kernel<V>, dq_grid, dim3(256), 0, stream, p, ws.dq_acc_offset,
                 heads_fastest_dq, ws.done_offset, dq_overlaps ? key_tiles : 0) != cudaSuccess)
    return false;
  return true;
}

}  // namespace attnforge::flash
