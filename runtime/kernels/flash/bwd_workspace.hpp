// Scratch layout of the flash backward (host and device, no CUDA needed): fp32 D = rowsum(dO ∘ O),
// the fp32 dQ accumulator, deterministic-mode counters. runtime/src/workspace_flash.cpp calls
// flash_bwd_workspace_bytes(block_m, block_n, p); run_bwd<V> reads the same layout.
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/hd.hpp"
#include "common/params.hpp"

namespace attnforge::flash {

// The dQ accumulator is tiled: per (b, h, query tile) a block of block_m·D floats in the main
// kernel's register-fragment order (flash/bwd_dq_acc.cuh), so that each warp's atomic adds hit 256
// contiguous bytes instead of 8 rows × 32 bytes (measured on an H200: +9–13 % backward throughput
// over a linear (total_q, Hq, D) accumulator). The dQ conversion kernel reads the same order back.
struct BwdWorkspaceLayout {
  size_t dsum_offset;    // fp32 (Hq, total_q): D_i = Σ_d dO·O for query token t of head h
  size_t dq_acc_offset;  // fp32 dQ before the final scale and cast, tiled (see above)
  size_t sem_offset;     // int32 (B, Hq, ceil(seqlen_q / block_m)); deterministic mode only
  size_t zero_bytes;     // bytes from dq_acc_offset that must be zeroed before the main kernel
  size_t total_bytes;
};

// Query rows of the Hopper backward's dQ accumulator blocks, whatever its step (flash/bwd_sm90.cuh), and
// of the tile an sm90a backward tile falls back to (BwdSm90Fallback): both lay the workspace out with
// this block_m, which runtime/src/workspace_flash.cpp sizes for too.
constexpr int kSm90BwdRows = 64;

ATTNFORGE_HD size_t bwd_align256(size_t x) { return (x + 255) & ~size_t(255); }

ATTNFORGE_HD BwdWorkspaceLayout flash_bwd_workspace_layout(int block_m, int block_n, const Params& p) {
  (void)block_n;
  BwdWorkspaceLayout w{};
  const size_t tq = size_t(p.total_q > 0 ? p.total_q : 0);
  const size_t hq = size_t(p.heads_q);
  // No int overflow: the validator keeps seqlen_q ≤ kMaxSeqlen, room to round up to any tile.
  const size_t m_blocks = p.seqlen_q > 0 ? size_t((p.seqlen_q + block_m - 1) / block_m) : 0;
  w.dsum_offset = 0;  // kernels rely on this (D sits at the start of the workspace)
  w.dq_acc_offset = bwd_align256(w.dsum_offset + tq * hq * sizeof(float));
  const size_t tiled = size_t(p.batch > 0 ? p.batch : 0) * hq * m_blocks * size_t(block_m) * size_t(p.head_dim);
  w.sem_offset = bwd_align256(w.dq_acc_offset + tiled * sizeof(float));
  const size_t sem_bytes = p.deterministic ? size_t(p.batch) * hq * m_blocks * sizeof(int32_t) : 0;
  w.total_bytes = bwd_align256(w.sem_offset + sem_bytes);
  w.zero_bytes = w.sem_offset + sem_bytes - w.dq_acc_offset;
  return w;
}

// First float of the dQ accumulator block of (b, h, query tile mb): blocks of block_m·D floats in
// (b, h, tile) order. Each kernel orders the floats inside a block its own way (bwd_dq_acc.cuh,
// bwd_sm90.cuh); the conversion kernel that reads them back uses the same order.
ATTNFORGE_HD int64_t dq_acc_tile_base(const Params& p, int b, int h, int mb, int block_m, int head_dim) {
  const int64_t m_tiles = (p.seqlen_q + block_m - 1) / block_m;
  return ((int64_t(b) * p.heads_q + h) * m_tiles + mb) * int64_t(block_m) * head_dim;
}

// Bytes of scratch a flash backward variant with tile (block_m, block_n) needs for p.
ATTNFORGE_HD size_t flash_bwd_workspace_bytes(int block_m, int block_n, const Params& p) {
  return flash_bwd_workspace_layout(block_m, block_n, p).total_bytes;
}

}  // namespace attnforge::flash
