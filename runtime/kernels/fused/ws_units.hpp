// Which row blocks a persistent CTA of the warp-specialized fused forward (fused/fwd_sm90_ws.cuh) takes,
// and in what order: CTA x walks units x, x + G, …, head-major, a unit one row block or, under a mask that
// makes row blocks differ in work, a pair of one head's k-th longest and k-th shortest blocks.
#pragma once
#include <cstdint>

#include "common/hd.hpp"

namespace attnforge::fused {

// Head-major, so that a round's CTAs share few heads, whose K and V stay in L2 for both passes (H200, bf16,
// S 1024 without a mask: +28 % at D 64 and +38 % at D 128 against rounds of one row block over many heads).
// Paired (causal): every unit holds the same work whatever the grid (one block per unit gave a CTA the same
// row block every round whenever n_m divides the grid: −24 % / −15 % at S 512, D 64 / 128; pairs over rounds
// of one row block across heads: causal S 1024 D 128 +25 %, run zu). Flash's WsSchedule deals the same
// units for even row-block counts (it pairs two heads' middle blocks where n_m is odd); walked by the
// consumers it read 2–5 % slower on every causal row at S ≤ 512 (run zw: blocks of one or two key tiles
// feel the per-block index arithmetic), so this one stays as lean as it is.
struct WsUnits {
  struct Block {
    int m_block, bh;  // row block inside its sequence; batch · Hq + head
  };
  bool paired;
  int n_m, per_head, n_units;  // row blocks per sequence; units per head-batch; all units
  ATTNFORGE_HD WsUnits(int seqlen_q, int block_m, int heads_q, int batch, bool pair_blocks)
      : paired(pair_blocks), n_m((seqlen_q + block_m - 1) / block_m), per_head(paired ? (n_m + 1) / 2 : n_m),
        n_units(per_head * (batch * heads_q)) {}  // the launcher checked count() fits
  // All units, in 64 bits.
  static int64_t count(int seqlen_q, int block_m, int heads_q, int batch, bool pair_blocks) {
    const int64_t n_m = (int64_t(seqlen_q) + block_m - 1) / block_m;
    return (pair_blocks ? (n_m + 1) / 2 : n_m) * heads_q * batch;
  }
  // Row blocks of unit u: 2, or 1 where a pair meets itself (odd n_m) and without pairing.
  ATTNFORGE_HD int blocks(int u) const {
    const int k = u % per_head;
    return paired && n_m - 1 - k != k ? 2 : 1;
  }
  // Block kb < blocks(u) of unit u: the longer first.
  ATTNFORGE_HD Block at(int u, int kb) const {
    const int k = u % per_head;
    return {paired && kb == 0 ? n_m - 1 - k : k, u / per_head};
  }
};

}  // namespace attnforge::fused
