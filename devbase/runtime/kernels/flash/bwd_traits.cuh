// Compile-time shape of the flash backward main kernel for a variant V: the warp grids of its
// three phases (S/dP, dQ, dK/dV), the Q/dO buffering, and the shared-memory layout (rows padded
// by 16 bytes so that the 8 row addresses of every ldmatrix fall in distinct bank groups).
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
  static constexpr int kBlockM = V::TileT::kBlockM;
  static constexpr int kBlockN = V::TileT::kBlockN;
  static constexpr int kWarps = V::TileT::kWarps;
  static constexpr int kThreads = kWarps * 32;
  static_assert(kBlockM % 16 == 0 && kBlockN % 16 == 0 && kD % 16 == 0);
  static_assert(kThreads >= kBlockM, "flash bwd: a thread per query row sums the in-tile D");

  // A warp grid (a × kWarps/a) over a (rows × cols) output: valid when both warp-tile sides are
  // multiples of 16; cost = warp-tile rows + cols (fragments loaded per 16-deep step), lowest wins.
  static constexpr int grid_cost(int a, int rows, int cols) {
    return (a > kWarps || kWarps % a || (rows / a) * a != rows || (rows / a) % 16 ||
            (cols / (kWarps / a)) * (kWarps / a) != cols || (cols / (kWarps / a)) % 16)
               ? 1 << 30
               : rows / a + cols / (kWarps / a);
  }
  static constexpr int pick_grid(int rows, int cols) {
    int best = 1;
    for (int a = 2; a <= kWarps; a *= 2)
      if (grid_cost(a, rows, cols) <= grid_cost(best, rows, cols)) best = a;  // ties: fewer A regs
    return best;
  }
  // Phase 1: S, dP (kBlockM × kBlockN) — warp tile kSM × kSN.
  static constexpr int kSWarpsM = pick_grid(kBlockM, kBlockN);
  static constexpr int kSWarpsN = kWarps / kSWarpsM;
  static constexpr int kSM = kBlockM / kSWarpsM, kSN = kBlockN / kSWarpsN;
  // Phase 2: dQ (kBlockM × kD) — warp tile kMdq × kDdq.
  static constexpr int kWarpsMdq = pick_grid(kBlockM, kD);
  static constexpr int kWarpsDdq = kWarps / kWarpsMdq;
  static constexpr int kMdq = kBlockM / kWarpsMdq, kDdq = kD / kWarpsDdq;
  // Phase 3: dK, dV (kBlockN × kD) — warp tile kKvN × kKvD, accumulators live for the whole CTA.
  static constexpr int kKvWarpsN = pick_grid(kBlockN, kD);
  static constexpr int kKvWarpsD = kWarps / kKvWarpsN;
  static constexpr int kKvN = kBlockN / kKvWarpsN, kKvD = kD / kKvWarpsD;
  static_assert(grid_cost(kSWarpsM, kBlockM, kBlockN) < (1 << 30), "flash bwd: no S warp grid");
  static_assert(grid_cost(kWarpsMdq, kBlockM, kD) < (1 << 30), "flash bwd: no dQ warp grid");
  static_assert(grid_cost(kKvWarpsN, kBlockN, kD) < (1 << 30), "flash bwd: no dK/dV warp grid");

  // Shared memory: K, V (kBlockN, kD); kStages × Q, dO (kBlockM, kD); P, dS (kBlockM, kBlockN);
  // fp32 LSE and D per stage. Rows padded by 8 elements (odd count of 16-byte chunks per row).
  static constexpr int kLd = kD + 8;
  static constexpr int kLdP = kBlockN + 8;
  static constexpr int bytes_for(int stages) {
    return 2 * (2 * kBlockN * kLd + stages * 2 * kBlockM * kLd + 2 * kBlockM * kLdP) + stages * kBlockM * 8;
  }
#if defined(ATTNFORGE_FLASH_BWD_STAGES_MAX)  // dev switch: cap the Q/dO buffers (occupancy tests)
  static constexpr int kStagesWanted =
      V::TileT::kStages < 1 ? 1
                            : (V::TileT::kStages < ATTNFORGE_FLASH_BWD_STAGES_MAX ? V::TileT::kStages
                                                                                   : ATTNFORGE_FLASH_BWD_STAGES_MAX);
#else
  static constexpr int kStagesWanted = V::TileT::kStages < 1 ? 1 : V::TileT::kStages;
#endif
  static constexpr int kSmemLimit = 227 * 1024;
  // Fewer Q/dO buffers when the wanted ones do not fit (head dim 192 with 128-key tiles).
  static constexpr int kStages = bytes_for(kStagesWanted) <= kSmemLimit ? kStagesWanted : 1;
  static constexpr int kOffK = 0;
  static constexpr int kOffV = kOffK + kBlockN * kLd;
  static constexpr int kOffQ = kOffV + kBlockN * kLd;
  static constexpr int kOffDO = kOffQ + kStages * kBlockM * kLd;
  static constexpr int kOffP = kOffDO + kStages * kBlockM * kLd;
  static constexpr int kOffDS = kOffP + kBlockM * kLdP;
  static constexpr int kElems = kOffDS + kBlockM * kLdP;
  static constexpr int kOffLseBytes = kElems * 2;
  static constexpr int kOffDsumBytes = kOffLseBytes + kStages * kBlockM * 4;
  static constexpr int kSmemBytes = kOffDsumBytes + kStages * kBlockM * 4;
  static_assert(kSmemBytes == bytes_for(kStages));
  static_assert(kSmemBytes <= kSmemLimit, "flash bwd: shared memory over the sm_90 budget");
};

}  // namespace attnforge::flash::bwd_detail
