// Flash forward, warp-specialized Hopper kernel (sm_90a variants: tile arch = "sm90a"): a producer
// warpgroup moves Q/K/V with the tensor memory accelerator (128-byte swizzle, kStages-deep K and V
// rings completing on mbarriers) and gives its registers away (setmaxnreg); kBlockM / 64 consumer
// warpgroups of 64 query rows each run S = Q·Kᵀ (Q from registers at D 128) and O += P·V on wgmma,
// issuing S_j and P_{j−1}·V_{j−1} together; the softmax of S_j runs beside that P·V on the ping-pong
// tiles whose accumulators leave room (v39, v40: FwdWsConfig::kOwnOverlap), elsewhere ptxas puts the
// wait for it first (bench/NOTES-flash.md v18). With three consumers under a mask, full key tiles run a
// step without mask code, and on the diagonal's a warp whose rows see no key skips the softmax (v41, v42:
// FwdWsConfig::kSkipBlindWarps), a warpgroup whose rows see none of the remaining tiles leaves the loop
// (v47: FwdWsConfig::kWarpgroupEnd).
// With two consumers (m128, 12 warps) at D ≥ 128 they take turns on the tensor cores (ping-pong:
// one warpgroup's softmax overlaps the other's GEMMs); at D 64, and with three (m192, 16 warps), they
// run free. Persistent: one CTA per SM walks its share of the row blocks (WsSchedule), so the producer
// loads the next block's Q and first K while the consumers finish the last one; without a mask the last
// partial round is split along keys over every CTA (WsSplit, flash/ws_split_merge.cuh). The mask-free D 128
// tile runs as CTA pairs (2-CTA clusters) on adjacent row blocks, each CTA loading half of every K / V tile
// for both (v54: FwdWsConfig::kClusterPairs). Head dim a multiple of
// 64 up to 256 (codegen/limits.py admits 64, 128, 192 and 256; 192 / 256 measured 2026-11-30,
// bench/NOTES-flash.md v13), f16/bf16, masks without a tensor.
#pragma once
#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <type_traits>
#include <vector>

#include "common/cluster.cuh"
#include "common/launch_checks.hpp"
#include "common/mask_apply.cuh"
#include "common/mma.cuh"
#include "common/numeric.cuh"
#include "common/params.hpp"
#include "common/smem_layout.cuh"
#include "common/smem_tile_ops.cuh"
#include "common/softmax.cuh"
#include "common/tma.cuh"
#include "common/variant.hpp"
#include "common/wgmma.cuh"
#include "common/ws_barriers.cuh"
#include "flash/fwd_trace.cuh"
#include "flash/ws_schedule.hpp"
#include "flash/ws_split_merge.cuh"

// Dev A/B switch (scripts/dev/flash_fwd_ab.sh), off until measured on the device: of every 8 n8-tiles
// of P, this many take exp2 on the FMA pipe (FwdWsConfig::kExp2FmaOf8).
#ifndef ATTNFORGE_FLASH_FWD_EXP2_FMA
#define ATTNFORGE_FLASH_FWD_EXP2_FMA 0
#endif
// Dev A/B switch: -1 takes FwdWsConfig's ping-pong rule, 0 / 1 turns ping-pong off / on for every m128 tile.
#ifndef ATTNFORGE_FLASH_FWD_PINGPONG
#define ATTNFORGE_FLASH_FWD_PINGPONG -1
#endif
// Dev A/B switch: -1 takes FwdWsConfig's rule below, 0 turns lazy rescaling off, k > 0 forces threshold k.
#ifndef ATTNFORGE_FLASH_FWD_LAZY
#define ATTNFORGE_FLASH_FWD_LAZY -1
#endif

// Dev A/B switch: -1 takes FwdWsConfig::kQInRegs's rule, 0 / 1 keeps Q in shared memory / registers.
#ifndef ATTNFORGE_FLASH_FWD_QREGS
#define ATTNFORGE_FLASH_FWD_QREGS -1
#endif

// Dev A/B switch: -1 takes FwdWsConfig::kOwnOverlap's rule, 0 / 1 turns the softmax beside the own P·V off / on.
#ifndef ATTNFORGE_FLASH_FWD_OWN_OVERLAP
#define ATTNFORGE_FLASH_FWD_OWN_OVERLAP -1
#endif

// Dev A/B switch: -1 takes FwdWsConfig::kSkipBlindWarps's rule, 0 / 1 turns the skip off / on.
#ifndef ATTNFORGE_FLASH_FWD_SKIP_BLIND
#define ATTNFORGE_FLASH_FWD_SKIP_BLIND -1
#endif

// Dev A/B switch: -1 takes FwdWsConfig::kWarpgroupEnd's rule, 0 / 1 turns the early end off / on.
#ifndef ATTNFORGE_FLASH_FWD_WG_END
#define ATTNFORGE_FLASH_FWD_WG_END -1
#endif

// Dev A/B switch: -1 takes FwdWsConfig::kStoreByTma's rule, 0 turns the TMA store of O off.
#ifndef ATTNFORGE_FLASH_FWD_STORE_TMA
#define ATTNFORGE_FLASH_FWD_STORE_TMA -1
#endif

// Dev A/B switch: -1 takes FwdWsConfig::kClusterPairs's rule, 0 turns the CTA pairs off, 1 allows them on
// every mask-free tile.
#ifndef ATTNFORGE_FLASH_FWD_CLUSTER
#define ATTNFORGE_FLASH_FWD_CLUSTER -1
#endif

// Dev A/B switch: -1 takes FwdWsConfig::kAlignEnd's rule, 0 / 1 turns the end alignment off / on.
#ifndef ATTNFORGE_FLASH_FWD_ALIGN
#define ATTNFORGE_FLASH_FWD_ALIGN -1
#endif

namespace attnforge::flash {

template <class V>
struct FwdWsConfig {
  static constexpr DType kDType = V::kDType;
  using Num = prim::Numeric<kDType>;
  using Element = typename Num::Element;
  using Mask = typename V::Mask;
  static constexpr int kD = V::kHeadDim;
  static constexpr int kBlockM = V::TileT::kBlockM;  // kConsumers warpgroups × 64 query rows
  static constexpr int kBlockN = V::TileT::kBlockN;  // keys per K/V tile
  static constexpr int kStages = V::TileT::kStages;
  static constexpr int kConsumers = kBlockM / 64;
  static constexpr int kConsumerThreads = ws_consumer_threads(kBlockM);
  static constexpr int kThreads = V::TileT::kWarps * 32;  // warpgroup 0: producer; 1 … kConsumers: consumers
  // Two consumers take turns on the tensor cores (ping-pong) at D ≥ 128, where the GEMMs dominate a
  // step; at D 64 the step is bound by the softmax and its barriers (bench/NOTES-flash.md, fifteenth
  // session: without any GEMM a D 64 step keeps 80 % of its time) and the pair runs free, as three
  // consumers do: H200, 2026-11-30, m128n128w12 D 64 +1.5 to +5.6 % TFLOP/s without turns, D 128 −1 to
  // −3 % (bench/results/h200_2026-11-30n_fwd_trace.md, call 11).
  static constexpr bool kPingPong =
      kConsumers == 2 && (ATTNFORGE_FLASH_FWD_PINGPONG >= 0 ? ATTNFORGE_FLASH_FWD_PINGPONG == 1 : kD >= 128);
  // Row blocks differ in work under every mask kind but "none" (causal: the last block reads all keys),
  // so WsSchedule pairs them into units of equal work.
  static constexpr bool kUnevenRows = prim::kMaskEmptiesTiles<Mask>;
  // Who zeroes the dead V rows of a partial key tile (v_ready): under a mask that makes partial tiles
  // routine (the causal diagonal, once per block) each consumer warpgroup on its own, so the warpgroups
  // do not meet there — a barrier of all consumers aligned them once per block and cost the ping-pong
  // the offset it restarts from: H200, 2026-11-30, causal m192n128w16 D 64 −2.6 to −7.4 %, m128n128w12
  // D 128 −0.7 to −3.5 %. Without a mask (a partial tile only at the end of a ragged sequence) the old
  // all-consumer split stays: that form, never run there, compiled the non-causal steady loop 1–4 %
  // faster (bench/results/h200_2026-11-30l_lib_ab.md, call 5).
  static constexpr bool kZeroPerWarpgroup = kUnevenRows;
  // Row blocks aligned to the sequence's end where the mask asks for it (ws_align_end): for 192-row
  // blocks, which never divide the usual power-of-two lengths. H200, 2026-11-30 (bench/NOTES-flash.md
  // v26): causal m192n128w16 D 64 +2 to +6 % TFLOP/s at S 4096 / 16384; the same code in the 128-row
  // tiles, whose blocks divide those lengths and gain nothing there, cost their steady loop 1–2 % (the
  // runtime row offset moves its tile classification to uniform registers).
  static constexpr bool kAlignEnd =
      ATTNFORGE_FLASH_FWD_ALIGN >= 0 ? ATTNFORGE_FLASH_FWD_ALIGN == 1 : kUnevenRows && kConsumers == 3;
  static_assert((kBlockM == 128 || kBlockM == 192) && V::TileT::kWarps == 4 * (kConsumers + 1),
                "a producer warpgroup + two or three consumer warpgroups of 64 rows");
  static_assert(kD % 64 == 0 && kD <= 256, "head dim: whole 64-column slabs, at most 256 (wgmma N of O)");
  static_assert(prim::sm90::kWgmmaHasN<kBlockN> && kBlockN <= 192 && kStages >= 2,
                "K/V tiles of a wgmma N up to 192 keys, >= 2 stages");
  static_assert(kDType == DType::f16 || kDType == DType::bf16, "16-bit inputs");
  static_assert(!Mask::kHasTensor, "masks without a tensor (the generator drops the others)");

  using QL = prim::SmemTileSw128<kBlockM, kD>;  // (kBlockM queries, D); O is staged in the same layout
  using KL = prim::SmemTileSw128<kBlockN, kD>;  // (kBlockN keys, D) per K or V stage
  // [Q][K × kStages][V × kStages]([O])[mbarriers]([block slot]), tiles 1024-byte aligned (the swizzle atom). O gets
  // its own buffer where it fits, so that the next block's Q can land during this block's epilogue;
  // otherwise (D 128 with three stages) O is staged in Q's rows and the next Q waits for the epilogue.
  static constexpr int kNumBars = prim::tma::WsBarriers<kStages>::kCount;  // Q, K, V full / empty
  static constexpr int kOffK = QL::kBytes;
  static constexpr int kOffV = kOffK + kStages * KL::kBytes;
  static constexpr int kOffO = kOffV + kStages * KL::kBytes;
  // The row block whose Q is in flight, as the producer publishes it (the kernel's Block; kBlockSlotBytes
  // bounds its size): the consumers read the schedule there instead of walking it themselves. H200,
  // 2026-11-30 (bench/NOTES-flash.md v37, kernel µs, two calls of two runs per tree): m128n128w12 D 128
  // causal −3.5 / −2.2 / −1.6 % and −2.8 / −2.1 / −1.6 / −0.8 % at S 2048 / 4096 / 8192 (/ 16384),
  // without a mask −0.9 / −0.4 / +0.3 % and −1.4 / −0.1 / +0.6 / +0.8 %; at D 64 m192 without a mask
  // +2.3 / +1.7 / +0.6 %, causal ±0.3 %: so the ping-pong tiles (two consumers, D ≥ 128) only.
  static constexpr bool kPublishBlocks = kPingPong;
  static constexpr int kBlockSlotBytes = kPublishBlocks ? prim::tma::kWsBlockSlotBytes : 0;
  static constexpr bool kOwnO = kOffO + QL::kBytes + kNumBars * 8 + kBlockSlotBytes + 1024 <= 227 * 1024;
  static constexpr int kOffBar = kOwnO ? kOffO + QL::kBytes : kOffO;
  static constexpr int kOffBlockSlot = kOffBar + kNumBars * 8;  // a multiple of 8; Block needs 8
  static constexpr int kSmemBytes = kOffBlockSlot + kBlockSlotBytes + 1024;  // + 1024: base alignment
  static_assert(kSmemBytes <= 227 * 1024);
  // Registers per thread after setmaxnreg: 128·24 + 256·240 and 128·32 + 384·160 fit what the CTA gets at
  // launch, 168 · 384 and 128 · 512 (prim::tma::regs_split_fits, below).
  // Of every 8 n8-tiles of a score row, how many take exp2 on the FMA pipe instead of the MUFU
  // (common/softmax.cuh): a dev switch, ATTNFORGE_FLASH_FWD_EXP2_FMA, 0 in every shipped build until
  // a device A/B says otherwise (bench/NOTES-flash.md, v11).
  static constexpr int kExp2FmaOf8 = ATTNFORGE_FLASH_FWD_EXP2_FMA;
  // Lazy rescaling (common/softmax.cuh): a row's base moves only when its max grows by more than
  // kLazy in log2 units (a factor 2^kLazy), so most key tiles skip the O rescale. Measured (H200,
  // 2026-11-30, bench/NOTES-flash.md v21): three consumer warpgroups +1.5 to +4.7 % at D 64, masked
  // m128 tiles +0.5 to +1.7 %; the mask-free m128 tiles lost 2–8 % then (their steady loop compiled worse
  // around the skip). Since v39 / v40 the ping-pong loop (D ≥ 128) rescales O before the next P·V's issue,
  // where the skip costs 4–17 static instructions for D / 2 FMULs a step. H200, 2026-12-02, kernel µs
  // without a mask at S 2048 / 4096 / 8192 / 16384: v49, D 128 m128n128w12 −1.5 / −2.3 / −2.9 / −3.0 %
  // (three runs, bench/results/h200_2026-12-02zzf_fwd_lazy_d128_none.md); v50, D 192 n64 −5.7 / −6.5 /
  // −7.0 / −7.4 %, n112 −2.9 / −2.8 / −4.2 / −4.4 %, D 256 n64 −5.7 / −6.1 / −6.4 / −6.7 %, n80 −3.1 / −3.6
  // / −4.0 / −3.4 % (two runs, h200_2026-12-02zzg_fwd_lazy_wide_none.md). The mask-free D 64 pair (not
  // selected on Hopper: m192 serves D 64) keeps rescaling every tile, as v21 measured it.
  static constexpr int kLazy = ATTNFORGE_FLASH_FWD_LAZY >= 0 ? ATTNFORGE_FLASH_FWD_LAZY
                                                              : (kConsumers == 3 || kUnevenRows || kPingPong ? 8 : 0);
  // Q as wgmma A fragments in registers (S = Q·Kᵀ in the RS form), loaded once per row block: a step
  // then reads only K from shared memory for S (32 of 48 KB per warpgroup and step at D 128), and Q's
  // buffer is free for the next block as soon as the fragments are loaded. H200, 2026-11-30 (dev A/B,
  // bench/NOTES-flash.md v32): m128n128w12 D 128 +0.1 to +2.1 % (causal) and −0.6 to +5 % (none);
  // D 64 causal +0.1 to +2.1 % but D 64 none −14 %, so D 128 only. Three consumers at D 64 and the
  // D 192 / 256 tiles spill 96–256 bytes with it, and so does D 128's 176-key tile, whose wgmma ptxas then
  // serializes (C7512): Q's fragments (D / 4 registers) must fit beside the accumulators in 192.
  // S, P in 16 bits, O per consumer thread: the count codegen/limits.py's fit rule (flash_fwd_sm90a) makes too.
  static constexpr int kAccRegs = kBlockN / 2 + kBlockN / 4 + kD / 2;
  static constexpr bool kQInRegs = ATTNFORGE_FLASH_FWD_QREGS >= 0 ? ATTNFORGE_FLASH_FWD_QREGS == 1
                                                                  : kConsumers == 2 && kD == 128 && kAccRegs + kD / 4 <= 192;
  // A row block's fixed cost in key-tile steps, for the tail's weights (WsTail): the v21 timeline's fits
  // of block cycles against key tiles, 8296 + 2571 · tiles (m192 D 64) and 5367 + 2765 · tiles (m128 D 128).
  static constexpr int kBlockOverheadTiles = kConsumers == 3 ? 3 : 2;
  // The softmax of S_j beside the warpgroup's own P_{j−1}·V_{j−1}. ptxas hoists the wait for that P·V
  // above the softmax (NOTES-flash v18), so a warpgroup's period was turn → S → its own P·V → softmax:
  // with two consumers the tensor pipe was ~62 % busy (trace, bench/results/h200_2026-11-30za_fwd_boundary_trace.md).
  // A never-taken branch on the new row sums before the wait ends ptxas's scheduling block there (a
  // trap in that branch spilled 330–540 bytes; a nanosleep does not), and O is rescaled before the next
  // P·V's issue instead of after the wait. H200, 2026-11-30, kernel µs, two runs each:
  // - v39, m128n128w12 D 128: −1.9 / −2.8 / −3.2 / −3.0 % without a mask and −2.6 / −3.5 / −3.8 / −3.9 %
  //   causal at S 2048 / 4096 / 8192 / 16384 (bench/results/h200_2026-11-30za_fwd_own_overlap.md);
  // - v40, D 192 / 256 (bench/results/h200_2026-11-30zb_fwd_own_overlap_wide.md): n64 −2 to −11 %, n112
  //   −1 to −5 %; n80 (D 256) spills 308 bytes with it and went +2 % to −2.5 %, so the rule stops at
  //   180 accumulator registers (n176 at D 128 is over it too).
  // D 64 is issue- and MUFU-bound: −10 % on the two-consumer tile (v18); on m192 a tie through the binding (zb)
  // and, kernel µs, −0.5 / +0.6 % at S 2048 none / causal, +0.8 / +0.7 % at 4096 (2026-12-02, bench/results/
  // h200_2026-12-02zza_fwd_d64_own_overlap_ncu.md).
  static constexpr bool kOwnOverlap =
      ATTNFORGE_FLASH_FWD_OWN_OVERLAP >= 0 ? ATTNFORGE_FLASH_FWD_OWN_OVERLAP == 1 : kPingPong && kAccRegs <= 180;
  // A warp whose 16 rows see no key of a tile (the far side of the causal diagonal: in an end-aligned
  // 192-row block, warpgroup 0's rows miss the last key tile of every block and warpgroup 1's that of
  // every other one) skips the tile's mask and softmax and gives its P·V a P of zeros. The GEMMs stay
  // for such a warp (a whole warpgroup's blind tail leaves the loop instead: kWarpgroupEnd); the result
  // is the same bits, since such a tile adds exp2(−inf) = 0 and moves no max.
  // The branch also keeps ptxas from hoisting the P·V wait above the softmax (v18). H200, 2026-11-30
  // (kernel µs, three calls of three runs, bench/results/h200_2026-11-30zc_fwd_blind_warps.md), m192n128w16
  // D 64 causal: −3.1 to −3.9 % at S 2048, −0.4 to −1.0 % at 4096, +0.2 to +0.9 % at 8192, +1.8 to +2.1 %
  // at 16384 (v41). The skip in a peeled last step only (steady loop untouched) gave −1.6 % at 2048 and
  // +1 % at 16384; with the wait written before the branch, +6 % at 16384. v42: the full key tiles run in
  // a copy of the step without mask code or skip (its wait hoisted as before), the rest (the diagonal's
  // two or three tiles) with both: against v41 −0.5 / −0.9 / −1.4 / −0.9 % at S 2048 / 4096 / 8192 / 16384
  // (same file, call 7). ATTNFORGE_FLASH_FWD_SKIP_BLIND=0 turns off both (the skip and the step copy).
  static constexpr bool kSkipBlindWarps = ATTNFORGE_FLASH_FWD_SKIP_BLIND >= 0 ? ATTNFORGE_FLASH_FWD_SKIP_BLIND == 1
                                                                            : kUnevenRows && kConsumers == 3;
  // A consumer warpgroup whose 64 rows see none of the block's remaining key tiles (under a causal mask
  // warpgroup 0 of an end-aligned 192-row block on its last tile, warpgroup 1 on every other block's)
  // leaves the diagonal's loop there instead of running blind steps: it skips their S and P·V GEMMs too
  // (v41 keeps them, so ~5 % of the warpgroup steps at S 2048 still reach the tensor cores) and only
  // hands the tiles' stages back. The test is warpgroup-uniform and made uniform for ptxas (a shuffle of
  // the warpgroup index), so the wgmma descriptors stay in uniform registers (the twenty-third session's
  // per-warpgroup loop bound lost them): steady loop 484 instructions as before, no spills. H200,
  // 2026-12-02 (v47, bench/results/h200_2026-12-02zy_fwd_wg_end_ab.md, kernel µs, three runs per tree),
  // m192n128w16 D 64 causal: S 2048 355.7 / 357.9 / 354.5 → 349.8 / 347.6 / 347.0 (−2.2 %; cuDNN
  // 343.0–345.6); S 4096–16384 within ±1 % over three calls (S 16384 +0.8 % in one, −1.7 % in another).
  static constexpr bool kWarpgroupEnd = ATTNFORGE_FLASH_FWD_WG_END >= 0 ? ATTNFORGE_FLASH_FWD_WG_END == 1 : kSkipBlindWarps;
  // O leaves by TMA: each warp's lane 0 stores the warp's 16 staged rows (one box per 64-column slab) and the
  // warp goes on; the next block's staging waits for the store's reads. The boundary trace of v52
  // (bench/results/h200_2026-12-02zzj_fwd_store_by_producer.md) has the consumers' own stores ~900 of the
  // cycles between a block's last P·V and the next block's start at D 128. The ping-pong tiles only (v28, the
  // same store on every two-consumer tile before v37 / v39, flipped D 64's steady loop into the uniform-register
  // form). Varlen blocks that reach past their sequence keep the lanes' stores (the view's rows run on into
  // the next sequence). Measured (v53, bench/results/h200_2026-12-02zzl_fwd_o_tma_store.md, kernel µs, three
  // runs each): D 128 causal −1.4 / −0.7 / 0 % at S 2048 / 4096 / 16384, D 128 none within ±0.3 %; D 192
  // S 2048 −0.4 % none, −1.0 % causal, S 16384 and D 256 (O staged in Q's rows, so unchanged) within ±0.3 %.
  static constexpr bool kStoreByTma = kPingPong && kOwnO && ATTNFORGE_FLASH_FWD_STORE_TMA != 0;
  // CTA pairs (a 2-CTA cluster) on adjacent row blocks of one head: each CTA's producer loads half of every K
  // and V tile and multicasts it to both, so the L2 → SM traffic of K / V halves (FlashAttention-3 does this
  // for 16-bit D ≥ 128 without a causal mask). Both CTAs walk the same key tiles, so only where every row
  // block reads the same ones (no mask that empties tiles); the launcher takes the pair kernel for dense
  // calls with an even number of row blocks per head and the single-CTA kernel otherwise. H200, 2026-12-02
  // (v54, bench/results/h200_2026-12-02zzm_fwd_cluster_pairs.md), m128n128w12 D 128: kernel µs −0.6 / −0.6 /
  // −0.9 % at S 2048 / 4096 / 16384, and at the 700 W cap (sustained, the GPU's limit in these calls) pJ / FLOP
  // −1.3 / −1.7 / −2.0 %, TFLOP/s +1.0 / +1.7 / +2.2 %; D 192 n64 / n112 and D 256 n64 +1.0 to +1.8 % kernel
  // µs, so the measured tile only (D 128, 128-key tiles).
  static constexpr bool kClusterPairs =
      !kUnevenRows &&
      (ATTNFORGE_FLASH_FWD_CLUSTER >= 0 ? ATTNFORGE_FLASH_FWD_CLUSTER == 1 : kPingPong && kD == 128 && kBlockN == 128);
  static constexpr int kProducerRegs = kConsumers == 2 ? 24 : 32;
  static constexpr int kConsumerRegs = kConsumers == 2 ? 240 : 160;
  static_assert(prim::tma::regs_split_fits(kProducerRegs, kConsumerRegs, kConsumerThreads, kThreads));
};

// The kernel's arguments: the library's Params and one TMA descriptor per input over the 4-D view
// (D, heads, rows, batch) of the tensor (varlen: batch extent 1, rows = total tokens).
struct FwdWsArgs {
  Params p;
  CUtensorMap tq, tk, tv, to;  // to: O's view, boxes of 16 rows (FwdWsConfig::kStoreByTma)
  bool align_end;  // row blocks end at each sequence's last row (FwdWsConfig::kAlignEnd, ws_align_end)
  WsTail tail;     // the last rounds of uneven row blocks, dealt longest first (ws_tail)
  WsSplit split;   // the last partial round of even row blocks, split along keys (ws_split_for)
  void* split_ws;  // its workspace (counters zeroed before the launch); null without a split
};
static_assert(sizeof(FwdWsArgs) <= 4096, "the kernel parameter space of a launch");

// Named barriers (0 is __syncthreads): 1, 2 = "consumer warpgroup 0 / 1 may issue its GEMMs"
// (ping-pong); 3, 4, 5 = one consumer warpgroup; 6 = every consumer warpgroup.
namespace ws_bar {
constexpr int kTurn = 1, kWarpgroup = 3, kConsumers = 6;
}

// kCluster 2: CTA pairs sharing K / V (FwdWsConfig::kClusterPairs), launched as 2-CTA clusters; the pair
// walks the schedule as one, in units of two adjacent row blocks, rank r taking the unit's block r.
template <class V, int kCluster = 1>
__global__ void __launch_bounds__(FwdWsConfig<V>::kThreads, 1) fwd_kernel_sm90_ws(const __grid_constant__ FwdWsArgs a) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using C = FwdWsConfig<V>;
  static_assert(kCluster == 1 || (kCluster == 2 && C::kClusterPairs), "CTA pairs where the config allows them");
  using Mask = typename C::Mask;
  using QL = typename C::QL;
  using KL = typename C::KL;
  using MmaS = prim::sm90::Wgmma<C::kDType, C::kBlockN>;  // S (64 queries, kBlockN keys)
  using MmaO = prim::sm90::Wgmma<C::kDType, C::kD>;       // O (64 queries, D)
  namespace w = prim::sm90;
  namespace tma = prim::tma;
  constexpr int kBM = C::kBlockM, kBN = C::kBlockN, kD = C::kD, kStages = C::kStages;
  constexpr int kNS = kBN / 8, kNO = kD / 8;  // n8 tiles of S and of O
  constexpr uint32_t kSbo = 1024;             // bytes between 8-row groups of a 128-byte-row slab
  const Params& p = a.p;
  const WsSchedule sched(p.seqlen_q, kBM * kCluster, p.heads_q, p.batch, C::kUnevenRows);
  // The schedule's walker: this CTA, or its pair (rank: which of the unit's row blocks is this CTA's).
  const int walker = blockIdx.x / kCluster, walkers = gridDim.x / kCluster;
  const int rank = kCluster == 1 ? 0 : int(prim::cluster::cta_rank());

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int wg = warp >> 2;
  AF_FWD_TRACE(tid == 0, 4, 0, 0, fwd_trace::now());
  AF_FWD_TRACE(tid == 0, 4, 0, 1, fwd_trace::gtime());

  extern __shared__ __align__(128) char smem_ws[];
  const uint32_t base = (static_cast<uint32_t>(__cvta_generic_to_shared(smem_ws)) + 1023u) & ~1023u;
  const uint32_t sQ = base, sO = C::kOwnO ? base + C::kOffO : base;
  auto sK = [&](int st) { return base + C::kOffK + uint32_t(st * KL::kBytes); };
  auto sV = [&](int st) { return base + C::kOffV + uint32_t(st * KL::kBytes); };
  const prim::tma::WsBarriers<kStages> bars{base + C::kOffBar};  // Q, K and V full / empty

  // One row block of the schedule: where its rows and keys live, and which key tiles the mask leaves
  // non-empty (producer and consumers walk the same sequence), key tiles j_begin … j_end − 1 of them
  // (all, but in a piece of a split block: `split` ≥ 0, WsSplit). Rows m0 … m0 + kBM − 1; with
  // a.align_end the blocks end at the sequence's last row, so the first one starts at a negative row
  // (q_first = max(m0, 0) is its first real one; the rows before it are computed on zero or neighbouring
  // Q rows, masked by position, and never stored). q_last: its last real row.
  struct Block {
    int m0, q_first, q_last, h, b, sq, sk, j_begin, j_end, split;
    bool live;  // the sequence has this row block
    SeqInfo seq;
  };
  // This CTA's units: round-robin, then its tail: where row blocks differ in work, the blocks WsTail
  // deals it; where they do not, its pieces of the split last round (WsSplit).
  const int u_end = C::kUnevenRows ? a.tail.end() : a.split.end();
  auto unit_blocks = [&](int u) {
    if constexpr (C::kUnevenRows) return a.tail.blocks(sched, u, walker);
    else return u < a.split.first_unit ? 1 : a.split.pieces(walker);
  };
  auto block_at = [&](int u, int k) {
    WsSchedule::Block id;
    WsSplit::Piece piece{-1, 0, 0};
    if constexpr (C::kUnevenRows) {
      id = a.tail.at(sched, u, k, walker);
    } else if (u < a.split.first_unit) {
      id = sched.at(u, k);
    } else {
      piece = a.split.piece(walker, k);
      id = sched.at(a.split.first_unit + piece.block, 0);
    }
    Block blk;
    blk.h = id.bh % p.heads_q, blk.b = id.bh / p.heads_q;
    blk.seq = seq_info(p, blk.b);
    blk.sq = blk.seq.seqlen_q, blk.sk = blk.seq.seqlen_k;
    const int n_m = WsSchedule::row_blocks(blk.sq, kBM), m_block = id.m_block * kCluster + rank;
    blk.live = m_block < n_m;
    blk.m0 = m_block * kBM - (C::kAlignEnd && a.align_end ? n_m * kBM - blk.sq : 0);
    blk.q_first = max(blk.m0, 0), blk.q_last = min(blk.m0 + kBM, blk.sq) - 1;
    const int n_tiles = (blk.sk + kBN - 1) / kBN;
    const bool whole = piece.block < 0 || (piece.j_begin == 0 && piece.j_end == n_tiles);
    blk.j_begin = whole ? 0 : piece.j_begin, blk.j_end = whole ? n_tiles : piece.j_end;
    blk.split = whole ? -1 : piece.block;
    return blk;
  };
  // With kPublishBlocks the producer hands each block to the consumers through this slot (the protocol:
  // common/ws_barriers.cuh, kWsBlockSlotBytes).
  static_assert(!C::kPublishBlocks || (sizeof(Block) <= C::kBlockSlotBytes && alignof(Block) <= 8));
  Block* const blk_slot = reinterpret_cast<Block*>(smem_ws + (base - static_cast<uint32_t>(__cvta_generic_to_shared(smem_ws))) +
                                                   C::kOffBlockSlot);
  auto tile_class = [&](const Block& blk, int j) {
    return prim::classify_rows_tile<Mask>(blk.q_first, blk.q_last, j * kBN, kBN, blk.sq, blk.sk, p.mask);
  };
  auto next_tile = [&](const Block& blk, int j) {
    while (j < blk.j_end && tile_class(blk, j) == TileClass::kEmpty) ++j;
    return j;
  };

  // A K / V stage is free once every consumer thread is done with it; in a pair, once every consumer warp
  // of both CTAs is (both producers write into it).
  if (tid == 0) bars.init(C::kConsumerThreads, kCluster == 1 ? C::kConsumerThreads : kCluster * C::kConsumerThreads / 32);
  if constexpr (kCluster == 1) __syncthreads();
  else prim::cluster::sync();  // the peer's barriers are initialised before anything reaches them
  // Consumers: K / V stage `bar` read out (after the wait for the GEMMs that read it). In a pair, one arrival
  // per warp on the barrier of each CTA.
  auto release_kv = [&](uint32_t bar) {
    if constexpr (kCluster == 1) {
      tma::mbar_arrive(bar);
    } else if (lane == 0) {
#pragma unroll
      for (int r = 0; r < kCluster; ++r) prim::cluster::mbar_arrive_at(bar, uint32_t(r));
    }
  };

  if (wg == 0) {
    // ---- producer: one thread issues every copy; stages and Q loads counted over all blocks ----------
    tma::regs_dealloc<C::kProducerRegs>();
    if (tid == 0) {
      int it = 0, n_q = 0;
      // K_j / V_j rows from `row`: all of them, or in a pair this CTA's half, multicast to both CTAs.
      auto load_kv = [&](uint32_t dst, const CUtensorMap* map, uint32_t bar, int h_kv, int row, int tb) {
        if constexpr (kCluster == 1)
          tma::load_rows<KL>(dst, map, bar, h_kv, row, tb);
        else
          prim::cluster::load_rows_multicast<KL, kBN / kCluster>(dst, rank * (kBN / kCluster), map, bar,
                                                                 uint16_t((1u << kCluster) - 1), h_kv,
                                                                 row + rank * (kBN / kCluster), tb);
      };
      for (int u = walker; u < u_end; u += walkers) {
        for (int kb = 0; kb < unit_blocks(u); ++kb) {
          const Block blk = block_at(u, kb);
          if (!blk.live) continue;
          AF_FWD_TRACE(true, 0, n_q, 0, fwd_trace::now());
          const int h_kv = blk.h / p.group(), tb = p.is_varlen() ? 0 : blk.b;
          const int q_row0 = int(blk.seq.q_start) + blk.m0, k_row0 = int(blk.seq.k_start);  // rows of the TMA view
          auto load_q = [&] {  // once the consumers are done with the previous block's Q
            tma::mbar_wait(bars.q_empty(), (n_q & 1) ^ 1);
            if constexpr (C::kPublishBlocks) *blk_slot = blk;  // published by the arrive below
            AF_FWD_TRACE(true, 0, n_q, 1, fwd_trace::now());
            tma::mbar_expect_tx(bars.q_full(), QL::kBytes);
            tma::load_rows<QL>(sQ, &a.tq, bars.q_full(), blk.h, q_row0, tb);
            AF_FWD_TRACE(true, 0, n_q, 2, fwd_trace::now());
            ++n_q;
          };
          bool q_loaded = false;
          for (int j = next_tile(blk, blk.j_begin); j < blk.j_end; j = next_tile(blk, j + 1), ++it) {
            const int st = it % kStages;
            const uint32_t ph = (it / kStages) & 1;
            tma::mbar_wait(bars.k_empty(st), ph ^ 1);
            AF_FWD_TRACE(!q_loaded, 0, n_q, 3, fwd_trace::now());
            tma::mbar_expect_tx(bars.k_full(st), KL::kBytes);
            load_kv(sK(st), &a.tk, bars.k_full(st), h_kv, k_row0 + j * kBN, tb);
            if (!q_loaded) load_q(), q_loaded = true;  // K_0 first: it does not wait for the epilogue
            tma::mbar_wait(bars.v_empty(st), ph ^ 1);
            tma::mbar_expect_tx(bars.v_full(st), KL::kBytes);
            load_kv(sV(st), &a.tv, bars.v_full(st), h_kv, k_row0 + j * kBN, tb);
          }
          if (!q_loaded) load_q();  // no key tile: the consumers still wait for Q
        }
      }
      if constexpr (C::kPublishBlocks) prim::tma::ws_publish_end(bars, blk_slot, n_q);
      // In a pair, the CTA stays until both CTAs' consumers have released every stage: no arrival of the
      // peer's may reach its barriers after it exits (the peer's multicasts into it complete before its own
      // consumers finish).
      if constexpr (kCluster > 1)
        for (int k = 0; k < kStages; ++k, ++it) {
          tma::mbar_wait(bars.k_empty(it % kStages), ((it / kStages) & 1) ^ 1);
          tma::mbar_wait(bars.v_empty(it % kStages), ((it / kStages) & 1) ^ 1);
        }
    }
    return;
  }

  // ---- consumers: warpgroup cw owns query rows 64·cw … 64·cw + 63 of each block ---------------------
  tma::regs_alloc<C::kConsumerRegs>();
  const int cw = wg - 1, ctid = tid - 128;
  const int cw_u = __shfl_sync(0xffffffffu, cw, 0);  // the same, seen as warp-uniform by ptxas
  const int wg_row0 = 64 * cw, warp_row0 = wg_row0 + (warp & 3) * 16;
  const float c = fabsf(p.scale_log2);
  // Ping-pong: warpgroup cw waits on its turn barrier before issuing GEMMs and opens the other's after.
  // Warpgroup 1 opens the first turn for warpgroup 0; both take the same number of turns per block, so
  // the turns alternate across blocks too, and warpgroup 0 consumes the last one after the last block.
  auto my_turn = [&] {
    if constexpr (C::kPingPong) tma::bar_sync(ws_bar::kTurn + cw, 256);
  };
  auto their_turn = [&] {
    if constexpr (C::kPingPong) tma::bar_arrive(ws_bar::kTurn + (cw ^ 1), 256);
  };
  if (C::kPingPong && cw == 1) tma::bar_arrive(ws_bar::kTurn, 256);

  // Q_w: this warpgroup's Q rows (64, D) as kD / 16 A fragments (m16n8k16 layout per warp: rows
  // 16·(warp & 3) …), filled once per row block where C::kQInRegs.
  uint32_t qa[kD / 16][4];
  // S = Q_w·K_jᵀ (64, kBN): A = Q_w (registers or shared memory), B = K rows, K-major. Issue only.
  auto issue_s = [&](float (&s)[1][kNS][4], int st) {
    w::fence();
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks) {
      const uint64_t dk = w::desc_sw128_at(sK(st), (ks / 4) * KL::kSlabBytes + (ks % 4) * 32, 16, kSbo);
      if constexpr (C::kQInRegs) {
        if (ks == 0) MmaS::template rs_bk<false>(s[0], qa[ks], dk);
        else MmaS::template rs_bk<true>(s[0], qa[ks], dk);
      } else {
        const uint64_t dq = w::desc_sw128_at(sQ + wg_row0 * 128, (ks / 4) * QL::kSlabBytes + (ks % 4) * 32, 16, kSbo);
        if (ks == 0) MmaS::template ss<false>(s[0], dq, dk);
        else MmaS::template ss<true>(s[0], dq, dk);
      }
    }
    w::commit();
  };
  float o[1][kNO][4];        // O (64 rows of this warpgroup, D), fp32
  uint32_t pa[kBN / 16][4];  // P of the previous tile in 16 bits: the A fragments of O += P·V
  // O += P·V_j: P (64, kBN) from registers, V (kBN keys, D) MN-major. Issue only.
  auto issue_pv = [&](int st) {
    w::fence();
#pragma unroll
    for (int kk = 0; kk < kBN / 16; ++kk) MmaO::rs(o[0], pa[kk], w::desc_sw128_at(sV(st), kk * 2048, KL::kSlabBytes, kSbo));
    w::commit();
  };
  auto pack_p = [&](const float (&s)[1][kNS][4]) {
#pragma unroll
    for (int kk = 0; kk < kBN / 16; ++kk) prim::c_to_a<typename C::Num>(pa[kk], s[0], kk);
  };

  int it = 0, n_q = 0;  // K/V stages and Q loads consumed so far, as the producer counts them
  // The next row block: read from the producer's slot once its Q landed (C::kPublishBlocks: the unit
  // loops below only count), or this warpgroup's own walk of the schedule.
  for (int u = walker; C::kPublishBlocks || u < u_end; u += walkers) {
    for (int kb = 0; C::kPublishBlocks || kb < unit_blocks(u); ++kb) {
      Block blk;
      if constexpr (C::kPublishBlocks) {
        tma::mbar_wait(bars.q_full(), n_q & 1);
        blk = *blk_slot;
        if (!blk.live) goto consumers_done;
      } else {
        blk = block_at(u, kb);
        if (!blk.live) continue;
      }
      const int m0 = blk.m0, sq = blk.sq, sk = blk.sk;
      [[maybe_unused]] const bool tr_lead = (ctid & 127) == 0;  // the trace's writer (dev builds)
      AF_FWD_TRACE(tr_lead, 1 + cw, n_q, 0, fwd_trace::now());
      auto mask = [&](float (&s)[1][kNS][4], int j) {
        if (tile_class(blk, j) == TileClass::kFull) return;
        // Rows and keys inside the sequence (the causal diagonal but on ragged edges): only the predicate.
        if ((j + 1) * kBN <= sk && m0 + kBM <= sq)
          prim::apply_mask<Mask, 64, true>(s, m0 + warp_row0 + g, j * kBN + 2 * t, sq, sk, p.mask, prim::BiasView{});
        else
          prim::apply_mask<Mask, 64>(s, m0 + warp_row0 + g, j * kBN + 2 * t, sq, sk, p.mask, prim::BiasView{});
      };
      // Block rows r … r + rows − 1 see no key of tiles j … j_end − 1; rows outside the sequence (an
      // end-aligned first block) are never stored and count as blind. Asked for a warp's rows and one tile
      // (blind: C::kSkipBlindWarps, made warp-uniform by a vote) and for a warpgroup's rows and the rest of
      // the block (wg_sees_none: C::kWarpgroupEnd, with cw_u, the warpgroup index uniform to ptxas).
      auto rows_see_none = [&](int r, int rows, int j, int j_end) {
        const int r0 = max(m0 + r, blk.q_first), r1 = min(m0 + r + rows - 1, blk.q_last);
        return r0 > r1 || prim::classify_rows_tile<Mask>(r0, r1, j * kBN, (j_end - j) * kBN, sq, sk, p.mask) == TileClass::kEmpty;
      };
      auto blind = [&](int j) { return rows_see_none(warp_row0, 16, j, j + 1); };
      auto wg_sees_none = [&](int j) { return rows_see_none(64 * cw_u, 64, j, blk.j_end); };
      // V_j arrived (stage st). On a partial tile, V rows no query of this block sees (past sk, outside a
      // window, the next packed sequence) are zeroed before any P·V reads them: P is 0 there, but 0·NaN
      // would reach O. kZeroPerWarpgroup: each consumer warpgroup zeroes every such row itself (where two
      // zero a row, they write the same zeros) and meets only its own warps; otherwise the warpgroups
      // split the rows and meet on a barrier of all consumers — outside their GEMM turns, so the
      // ping-pong cannot deadlock on it.
      auto v_ready = [&](int st, uint32_t ph, int j) {
        tma::mbar_wait(bars.v_full(st), ph);
        if (tile_class(blk, j) == TileClass::kFull) return;
        constexpr int kRowStride = C::kZeroPerWarpgroup ? 128 : C::kConsumerThreads;
        for (int r = C::kZeroPerWarpgroup ? ctid & 127 : ctid; r < kBN; r += kRowStride) {
          if (!prim::key_live<Mask>(blk.q_first, blk.q_last, j * kBN + r, sq, sk, p.mask)) prim::zero_row_sw128<KL>(sV(st), r);
        }
        w::fence_proxy_async();
        if constexpr (C::kZeroPerWarpgroup) tma::bar_sync(ws_bar::kWarpgroup + cw, 128);
        else tma::bar_sync(ws_bar::kConsumers, C::kConsumerThreads);
      };

      if constexpr (!C::kPublishBlocks) tma::mbar_wait(bars.q_full(), n_q & 1);
      AF_FWD_TRACE(tr_lead, 1 + cw, n_q, 1, fwd_trace::now());
      if (p.scale_log2 < 0.f) {  // fold a negative scale into this warpgroup's Q rows (exact sign flips)
        for (int i = ctid & 127; i < 64 * QL::kChunksPerRow; i += 128) {
          const int r = wg_row0 + i / QL::kChunksPerRow, ch = i % QL::kChunksPerRow;
          prim::negate_chunk16(sQ + QL::chunk_offset(r, ch));
        }
        w::fence_proxy_async();
        tma::bar_sync(ws_bar::kWarpgroup + cw, 128);
      }
      if constexpr (C::kQInRegs) {
#pragma unroll
        for (int ks = 0; ks < kD / 16; ++ks)
          prim::ldmatrix_x4(qa[ks], sQ + QL::offset(warp_row0 + (lane & 15), ks * 16 + (lane >> 4) * 8));
        if constexpr (C::kOwnO) tma::mbar_arrive(bars.q_empty());  // Q read out: the next block's may land
      }

#pragma unroll
      for (int nt = 0; nt < kNO; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) o[0][nt][e] = 0.f;
      prim::OnlineSoftmax<1, C::kExp2FmaOf8, C::kLazy> softmax;
      softmax.init();
      float alpha[1][2];

      int j = next_tile(blk, blk.j_begin);
      if (j < blk.j_end) {
        // Tile 0: S_0 → P_0 (O is still 0, nothing to rescale).
        float s[1][kNS][4];  // S, then P (64, kBN) of this warpgroup
        int st = it % kStages;
        uint32_t ph = (it / kStages) & 1;
        tma::mbar_wait(bars.k_full(st), ph);
        AF_FWD_TRACE(tr_lead, 1 + cw, n_q, 11, fwd_trace::now());
        [[maybe_unused]] const int it0 = it;
        my_turn();
        AF_FWD_TRACE(tr_lead, 1 + cw, n_q, 2, fwd_trace::now());
        issue_s(s, st);
        their_turn();
        w::wait<0>();
        AF_FWD_TRACE(tr_lead, 1 + cw, n_q, 3, fwd_trace::now());
        release_kv(bars.k_empty(st));
        mask(s, j);
        softmax.scores_to_p(s, c, alpha);
        pack_p(s);
        AF_FWD_TRACE(tr_lead, 1 + cw, n_q, 4, fwd_trace::now());
        int prev_st = st, prev_j = j;
        uint32_t prev_ph = ph;
        // Key tile j ≥ 1: S_j = Q·K_jᵀ beside P_{j−1}·V_{j−1}, then S_j → P_j. kMaybeMasked false: the
        // caller knows tile j is full (no mask code in that copy of the step).
        auto key_step = [&](auto maybe_masked) {
          constexpr bool kMaybeMasked = decltype(maybe_masked)::value;
          st = it % kStages;
          ph = (it / kStages) & 1;
          v_ready(prev_st, prev_ph, prev_j);
          tma::mbar_wait(bars.k_full(st), ph);
          if constexpr (C::kOwnOverlap) softmax.rescale(o, alpha);  // O relative to P_{j−1}'s row max
          my_turn();
          AF_FWD_TRACE(tr_lead && it == it0 + 1, 1 + cw, n_q, 12, fwd_trace::now());
          AF_FWD_TRACE(tr_lead, 1 + cw, n_q, 14, fwd_trace::now());
          issue_s(s, st);     // S_j = Q·K_jᵀ ...
          issue_pv(prev_st);  // ... and O += P_{j−1}·V_{j−1} behind it
          their_turn();
          w::wait<1>();  // S_j landed
          release_kv(bars.k_empty(st));
          const bool blind_j = kMaybeMasked && C::kSkipBlindWarps && __all_sync(0xffffffffu, blind(j));  // P_j = 0, l and max kept
          if (blind_j) {
            alpha[0][0] = alpha[0][1] = 1.f;
          } else {
            if constexpr (kMaybeMasked) mask(s, j);
            softmax.scores_to_p(s, c, alpha);  // beside P_{j−1}·V_{j−1} where C::kOwnOverlap
          }
          if constexpr (C::kOwnOverlap)
            if (softmax.row_sum[0][0] < 0.f) __nanosleep(1);  // never (sums of exp2): keeps the wait below
          w::wait<0>();                                      // O complete up to tile j − 1
          release_kv(bars.v_empty(prev_st));
          if constexpr (!C::kOwnOverlap) softmax.rescale(o, alpha);  // O relative to the new row max
          if (blind_j) {
#pragma unroll
            for (int kk = 0; kk < kBN / 16; ++kk)  // volatile: ptxas would zero P on every tile, then overwrite
              asm volatile("mov.b32 %0, 0;\n mov.b32 %1, 0;\n mov.b32 %2, 0;\n mov.b32 %3, 0;\n"
                           : "=r"(pa[kk][0]), "=r"(pa[kk][1]), "=r"(pa[kk][2]), "=r"(pa[kk][3]));
          } else {
            pack_p(s);
          }
          prev_st = st, prev_ph = ph, prev_j = j;
        };
        j = next_tile(blk, j + 1), ++it;
        // C::kSkipBlindWarps: the full tiles first in a copy of the step without mask code or skip, then
        // the rest (causal: the diagonal's two or three tiles) with both.
        if constexpr (C::kSkipBlindWarps)
          for (; j < blk.j_end && tile_class(blk, j) == TileClass::kFull; j = next_tile(blk, j + 1), ++it)
            key_step(std::false_type{});
        for (; j < blk.j_end; j = next_tile(blk, j + 1), ++it) {
          if (C::kWarpgroupEnd && wg_sees_none(j)) break;
          key_step(std::true_type{});
        }
        // The last tile's P·V.
        v_ready(prev_st, prev_ph, prev_j);
        if constexpr (C::kOwnOverlap) softmax.rescale(o, alpha);
        my_turn();
        AF_FWD_TRACE(tr_lead, 1 + cw, n_q, 13, fwd_trace::now());
        issue_pv(prev_st);
        their_turn();
        AF_FWD_TRACE(tr_lead, 1 + cw, n_q, 10, fwd_trace::now());
        w::wait<0>();
        AF_FWD_TRACE(tr_lead, 1 + cw, n_q, 5, fwd_trace::now());
        release_kv(bars.v_empty(prev_st));
        // The tiles this warpgroup left (kWarpgroupEnd): their stages handed back, each after its fill
        // landed, so that the arrival counts in that use's phase.
        for (; j < blk.j_end; j = next_tile(blk, j + 1), ++it) {
          st = it % kStages, ph = (it / kStages) & 1;
          tma::mbar_wait(bars.k_full(st), ph);
          release_kv(bars.k_empty(st));
          tma::mbar_wait(bars.v_full(st), ph);
          release_kv(bars.v_empty(st));
        }
      }
      if constexpr (C::kOwnO && !C::kQInRegs) tma::mbar_arrive(bars.q_empty());  // every GEMM reading Q is done

      // ---- epilogue: O /= l, LSE; O staged through sO (this warp's own 16 rows) ---------------------
      float lse[1][2];
      softmax.finalize(o, lse);
      // A piece of a split block: its partial goes to the workspace; the last piece's warps merge them.
      bool store = true;
      if constexpr (!C::kUnevenRows)
        if (blk.split >= 0)
          store = split_merge<kNO, C::kConsumerThreads * kCluster>(a.split, a.split_ws, blk.split, walker,
                                                                   rank * C::kConsumerThreads + ctid, lane,
                                                                   blk.j_end - blk.j_begin, o[0], lse[0]);
      AF_FWD_TRACE(tr_lead, 1 + cw, n_q, 8, fwd_trace::now());
      using Element = typename C::Element;
      Element* o_ptr = static_cast<Element*>(p.o) + blk.b * p.o_batch_stride + blk.seq.q_start * p.o_row_stride +
                       int64_t(blk.h) * p.o_head_stride;  // (Sq, D)
      if constexpr (C::kStoreByTma)
        if (lane == 0) tma::bulk_wait_read<0>();  // the previous block's TMA store has read its rows
      __syncwarp();  // the previous block's staged rows are read out
      if (store) {
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
          const int r = warp_row0 + hh * 8 + g;
          prim::stage_fragment_row<QL, typename C::Num>(sO, r, o[0], hh, t);
          const int q = m0 + r;
          if (t == 0 && q >= 0 && q < sq)
            p.lse[blk.b * p.lse_batch_stride + blk.h * p.lse_head_stride + blk.seq.q_start + q] = lse[0][hh];
        }
        AF_FWD_TRACE(tr_lead, 1 + cw, n_q, 9, fwd_trace::now());
        if (C::kStoreByTma && !(p.is_varlen() && m0 + kBM > sq)) {
          w::fence_proxy_async();  // the staged rows, to the TMA's reads
          __syncwarp();
          if (lane == 0) {
            tma::store_rows<QL, 16>(&a.to, sO, warp_row0, blk.h, int(blk.seq.q_start) + m0 + warp_row0,
                                    p.is_varlen() ? 0 : blk.b);
            tma::bulk_commit();
          }
        } else {
          __syncwarp();
          prim::store_staged_rows<QL, 16>(sO, warp_row0, o_ptr, p.o_row_stride, m0, sq, lane);  // this warp's 16 rows
        }
      }
      if constexpr (!C::kOwnO) tma::mbar_arrive(bars.q_empty());  // O was staged in Q's rows
      AF_FWD_TRACE(tr_lead, 1 + cw, n_q, 6, fwd_trace::now());
      AF_FWD_TRACE(tr_lead, 1 + cw, n_q, 7, it);  // tiles consumed so far
      ++n_q;
    }
  }
  if constexpr (!C::kPublishBlocks) goto consumers_done;  // the label's use in every instantiation (nvcc #177)
consumers_done:
  if constexpr (C::kStoreByTma)
    if (lane == 0) tma::bulk_wait_all();  // the last block's stores complete before the CTA's shared memory goes
  if (C::kPingPong && cw == 0) my_turn();  // consumes warpgroup 1's last arrival (it opened the first turn)
  AF_FWD_TRACE(ctid == 0, 4, 0, 2, fwd_trace::now());
  AF_FWD_TRACE(ctid == 0, 4, 0, 3, fwd_trace::gtime());
#else
  __trap();  // sm_90a only: run_fwd launches it on sm_90 devices only
#endif
}

// Host side: the tail table of this variant for p (WsTail; one cached per thread and variant, rebuilt
// when the shape changes). Only where row blocks differ in work, and not for varlen batches, whose
// lengths are on the device. Block weight: its non-empty key tiles + C::kBlockOverheadTiles.
template <class V>
const WsTail& fwd_ws_tail(const Params& p, const WsSchedule& s, int grid, bool align_end) {
  using C = FwdWsConfig<V>;
  struct Key {
    int sq, sk, hq, batch, grid;
    bool align, varlen;
    MaskScalars mask;
    bool operator==(const Key& o) const {
      return sq == o.sq && sk == o.sk && hq == o.hq && batch == o.batch && grid == o.grid && align == o.align &&
             varlen == o.varlen && std::equal(std::begin(mask.v), std::end(mask.v), std::begin(o.mask.v));
    }
  };
  thread_local Key key{-1, -1, -1, -1, -1, false, false, {}};
  thread_local WsTail tail{};
  const Key now{p.seqlen_q, p.seqlen_k, p.heads_q, p.batch, grid, align_end, p.is_varlen(), p.mask};
  if (key == now) return tail;
  tail = WsTail::none(s);
  if (C::kUnevenRows && !p.is_varlen() && WsTail::fits(s, grid)) {
    const int shift = align_end ? s.n_m * C::kBlockM - p.seqlen_q : 0;
    std::vector<int> weight(size_t(s.n_m));
    for (int m = 0; m < s.n_m; ++m) {
      const int m0 = m * C::kBlockM - shift, q_first = std::max(m0, 0);
      const int q_last = std::min(m0 + C::kBlockM, p.seqlen_q) - 1;
      weight[size_t(m)] = live_key_tiles<typename C::Mask>(p, q_first, q_last, C::kBlockN) + C::kBlockOverheadTiles;
    }
    tail = ws_tail(s, grid, [&](int m) { return weight[size_t(m)]; });
  }
  key = now;
  return tail;
}

// Host side: TMA descriptors of Q, K, V, then the launch of kernel <V, kCluster> over `walkers` SMs or CTA
// pairs at most. ATTNFORGE_UNSUPPORTED (nothing launched) when the driver cannot describe a layout (e.g. a
// zero batch stride): run_fwd then takes the wgmma kernel. Validation and the device check happened in run_fwd.
template <class V, int kCluster>
attnforge_status launch_fwd_sm90_ws_on(const Params& p, cudaStream_t stream, int walkers) {
  using C = FwdWsConfig<V>;
  FwdWsArgs a;
  a.p = p;
  a.align_end = C::kAlignEnd && ws_align_end<typename C::Mask>(p, C::kBlockM, C::kBlockN);
  // K / V in boxes of kBN / kCluster rows: a CTA of a pair loads half of each tile.
  if (!prim::tma::encode_qkv_views(&a.tq, &a.tk, &a.tv, p, C::kDType, C::kD, C::kBlockM, C::kBlockN / kCluster))
    return ATTNFORGE_UNSUPPORTED;
  if (C::kStoreByTma && !prim::tma::encode_tensor_view(&a.to, p, prim::tma::Side::queries, C::kDType, C::kD, p.o,
                                                       p.o_row_stride, p.o_head_stride, p.o_batch_stride, 16))
    return ATTNFORGE_UNSUPPORTED;
  // Persistent: one CTA per SM (the shared memory allows no second), never more walkers than units.
  const int64_t units = WsSchedule::count(p.seqlen_q, C::kBlockM * kCluster, p.heads_q, p.batch, C::kUnevenRows);
  // The kernel's unit index runs to units + grid (one tail unit per CTA) in an int.
  if (units > INT32_MAX - WsTail::kMaxCtas)
    return launch_fail(ATTNFORGE_UNSUPPORTED, "flash", "more than 2^31 - 145 units of query row blocks");
  const int grid = int(std::min<int64_t>(units, walkers));
  const WsSchedule sched(p.seqlen_q, C::kBlockM * kCluster, p.heads_q, p.batch, C::kUnevenRows);
  a.tail = kCluster == 1 ? fwd_ws_tail<V>(p, sched, grid, a.align_end) : WsTail::none(sched);
  // The split last round where the caller's workspace (runtime/src/workspace_flash.cpp, sized by the same
  // ws_split_for) holds it for this grid; otherwise round-robin to the end.
  a.split = WsSplit::none(sched), a.split_ws = nullptr;
  if constexpr (!C::kUnevenRows) {
    constexpr int kUnitThreads = C::kConsumerThreads * kCluster;
    const WsSplit split = ws_split_for(p, C::kBlockM, C::kBlockN, false, kCluster);
    if (split.blocks > 0 && split.grid == grid && p.workspace != nullptr &&
        p.workspace_bytes >= split.workspace_bytes(kUnitThreads, C::kD)) {
      if (cudaMemsetAsync(p.workspace, 0, split.counters_bytes(kUnitThreads), stream) != cudaSuccess)
        return ATTNFORGE_CUDA_ERROR;
      a.split = split, a.split_ws = p.workspace;
    }
  }
  if constexpr (kCluster == 1) {
    fwd_kernel_sm90_ws<V, 1><<<grid, C::kThreads, C::kSmemBytes, stream>>>(a);
  } else {
    cudaLaunchAttribute attr{};
    attr.id = cudaLaunchAttributeClusterDimension;
    attr.val.clusterDim.x = kCluster, attr.val.clusterDim.y = 1, attr.val.clusterDim.z = 1;
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = dim3(unsigned(grid * kCluster)), cfg.blockDim = dim3(unsigned(C::kThreads));
    cfg.dynamicSmemBytes = size_t(C::kSmemBytes), cfg.stream = stream, cfg.attrs = &attr, cfg.numAttrs = 1;
    if (cudaLaunchKernelEx(&cfg, fwd_kernel_sm90_ws<V, kCluster>, a) != cudaSuccess) return ATTNFORGE_CUDA_ERROR;
  }
  return cudaGetLastError() == cudaSuccess ? ATTNFORGE_OK : ATTNFORGE_CUDA_ERROR;
}

// Host side: the pair kernel where the config allows it, the call is dense with an even number of row
// blocks per head, and the device holds pairs of this kernel; the single-CTA kernel otherwise.
template <class V>
attnforge_status launch_fwd_sm90_ws(const Params& p, cudaStream_t stream, int dev) {
  using C = FwdWsConfig<V>;
  const int sms = device_sm_count(dev);
  if (sms <= 0) return ATTNFORGE_CUDA_ERROR;
  if constexpr (C::kClusterPairs) {
    static int raised2[64] = {}, pairs[64] = {};
    if (!p.is_varlen() && WsSchedule::row_blocks(p.seqlen_q, C::kBlockM) % 2 == 0) {
      if (!allow_smem(fwd_kernel_sm90_ws<V, 2>, C::kSmemBytes, dev, raised2)) return ATTNFORGE_CUDA_ERROR;
      const int walkers = max_active_clusters<2>(fwd_kernel_sm90_ws<V, 2>, C::kThreads, C::kSmemBytes, dev, pairs);
      if (walkers > 0) return launch_fwd_sm90_ws_on<V, 2>(p, stream, walkers);
    }
  }
  static int raised[64] = {};
  if (!allow_smem(fwd_kernel_sm90_ws<V, 1>, C::kSmemBytes, dev, raised)) return ATTNFORGE_CUDA_ERROR;
  return launch_fwd_sm90_ws_on<V, 1>(p, stream, sms);
}

}  // namespace attnforge::flash
