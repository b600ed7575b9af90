// Compile-time shape of the flash backward main kernel for a variant V: warp grids of its three
// phases and the shared-memory layout (padded rows, so ldmatrix row addresses hit distinct banks).
#pragma once
#include "flash/bwd_primitives.cuh"

namespace attnforge::flash::bwd_detail {

template <class V>
struct BwdTraits {
  using E = Elem<V::kDType>;
  using T = typename E::type;
  static constexpr bool kBf16 = E::kIsBf16;
  using Mask = typename V::Mask;

  static constexpr int kD = V::kHeadDim;
  static constexpr int kBlockM = V::TileT::kBlockM;  // query rows per step of the Q loop
  static constexpr int kBlockN = V::TileT::kBlockN;  // keys owned by one CTA
  static constexpr int kWarps = V::TileT::kWarps;
  static constexpr int kStages = V::TileT::kStages < 1 ? 1 : V::TileT::kStages;  // Q/dO buffers
  static constexpr int kThreads = kWarps * 32;

  // Phase 1 (Sᵀ, dPᵀ, dV, dK): warp (wn, wd) owns keys wn·16 … +16 of the tile and the head-dim
  // slice wd·kDkv … +kDkv of dK/dV. Warps sharing wn compute the same Sᵀ (kWarpsDkv-fold
  // redundancy, only for the large head dims whose accumulators would not fit otherwise).
  static constexpr int kWarpsN = kBlockN / 16;
  static constexpr int kWarpsDkv = kWarps / kWarpsN;
  static constexpr int kDkv = kD / kWarpsDkv;
  static_assert(kBlockN % 16 == 0 && kBlockM % 16 == 0, "flash bwd: tiles are multiples of 16");
  static_assert(kWarps % kWarpsN == 0, "flash bwd: warps must be a multiple of block_n / 16");
  static_assert(kD % 16 == 0 && kDkv % 16 == 0, "flash bwd: head-dim slice per warp % 16");
  // Query columns of Sᵀ a warp holds in registers at once (fp32 Sᵀ and dPᵀ: 2·kMChunk/8·4 regs).
#ifndef ATTNFORGE_FLASH_BWD_MCHUNK_D128  // (dev hook: chunk for head-dim slices of 65..128)
#define ATTNFORGE_FLASH_BWD_MCHUNK_D128 32
#endif
  static constexpr int kMChunk = kDkv <= 64 ? (kBlockM < 64 ? kBlockM : 64)
                                            : (kDkv <= 128 ? ATTNFORGE_FLASH_BWD_MCHUNK_D128 : 16);
  static_assert(kBlockM % kMChunk == 0);

  // Phase 2 (dQ = dS·K): warp (wm, wd) owns rows wm·kMdq … of the M tile, columns wd·kDdq ….
  // The most square warp tile: per 16-key step a warp loads kMdq/16 A and kDdq/16 B fragments.
  static constexpr int dq_cost(int wm) {
    return (wm > kWarps || kWarps % wm || (kBlockM / 16) % wm || (kD / (kWarps / wm)) % 16)
               ? 1 << 30
               : kBlockM / wm + kD / (kWarps / wm);
  }
  static constexpr int pick_warps_mdq() {
    int best = 1;
    for (int wm = 2; wm <= kWarps; wm *= 2)
      if (dq_cost(wm) < dq_cost(best)) best = wm;
    return best;
  }
  static constexpr int kWarpsMdq = pick_warps_mdq();
  static constexpr int kWarpsDdq = kWarps / kWarpsMdq;
  static constexpr int kMdq = kBlockM / kWarpsMdq;
  static constexpr int kDdq = kD / kWarpsDdq;
  static_assert(kWarps % kWarpsMdq == 0 && kMdq % 16 == 0 && kDdq % 16 == 0,
                "flash bwd: dQ warp grid does not divide the tile");

  // Shared memory (elements of T unless noted). Rows padded by 8 elements (16 B): with an odd
  // number of 16-byte chunks per row, the 8 rows of one ldmatrix land in 8 distinct bank groups.
  static constexpr int kLd = kD + 8;        // pitch of K, V, Q, dO tiles
  static constexpr int kLdS = kBlockM + 8;  // pitch of the dSᵀ tile (kBlockN, kBlockM)
  static constexpr int kOffK = 0;                                   // (kBlockN, kD)
  static constexpr int kOffV = kOffK + kBlockN * kLd;               // (kBlockN, kD)
  static constexpr int kOffQ = kOffV + kBlockN * kLd;               // kStages × (kBlockM, kD)
  static constexpr int kOffDO = kOffQ + kStages * kBlockM * kLd;    // kStages × (kBlockM, kD)
  static constexpr int kOffDS = kOffDO + kStages * kBlockM * kLd;   // (kBlockN, kBlockM)
  static constexpr int kElems = kOffDS + kBlockN * kLdS;
  static constexpr int kOffLseBytes = kElems * 2;                    // fp32 kStages × kBlockM
  static constexpr int kOffDsumBytes = kOffLseBytes + kStages * kBlockM * 4;  // fp32 likewise
  static constexpr int kSmemBytes = kOffDsumBytes + kStages * kBlockM * 4;
  static_assert(kSmemBytes <= 227 * 1024, "flash bwd: shared memory over the sm_90 budget");
};

}  // namespace attnforge::flash::bwd_detail
