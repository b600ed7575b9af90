// Scratch layout of the flash backward (host and device, no CUDA needed): fp32 D = rowsum(dO ∘ O),
// the fp32 dQ accumulator, deterministic-mode counters, the Hopper kernel's finished-CTA counters
// (the dQ conversion overlapping its tail, flash/bwd_sm90.cuh), and its split last wave
// (BwdSplit: fp32 dK / dV accumulators and arrival counters). runtime/src/workspace_flash.cpp calls
// flash_bwd_workspace_bytes(block_m, block_n, p[, split]); run_bwd<V> reads the same layout.
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
  size_t done_offset;    // int32 (B, Hkv): Hopper main-kernel CTAs (key tiles) finished per (batch, kv head)
  size_t split_offset;   // BwdSplit: fp32 (tiles, dK | dV of block_n keys × D), then int32 (tiles) counters
  size_t zero_bytes;     // bytes from dq_acc_offset that must be zeroed before the main kernel
  size_t total_bytes;
};

// The last partial wave of the Hopper warp-specialized backward (flash/bwd_sm90.cuh), split along the
// query steps. Without a mask every key-tile CTA runs the same steps, one CTA per SM, so the grid takes
// ⌈N / G⌉ waves for N / G of work (N key tiles · kv heads · batch over G SMs: D 64 on the training grid is
// 4096 CTAs = 31.03 waves run as 32; D 128 2048 = 15.52 as 16). The first N − rem CTAs (grid order, key
// tiles fastest) run as now and the rem of the last wave skip; a second launch runs each of them as
// `parts` pieces of its (query head, query tile) steps, whose dK / dV partials meet in fp32 accumulators
// (red.add) and the piece whose arrival completes the tile's count stores dK, dV. Parts per tile: the
// most that still run as one round (rem · parts ≤ G), if a round of steps / parts + kPieceOverheadSteps
// beats the unsplit CTA. H200, 2026-11-30 (bench/NOTES-flash-bwd.md): D 64, 4 CTAs left, 33 parts,
// main kernel +2.5 to +5 %; D 128, 68 left, 5 parts in three rounds, −1 to −4 % below S 16384 (each
// piece adds 128 KB of partials at D 128), so splits of several rounds are not taken.
struct BwdSplit {
  static constexpr int kMaxParts = 64;
  // A piece's fixed cost in steps: K / V loaded, the pipeline filled and drained, the partial added and
  // read back by the last piece (a D 128 step is ~2.5 µs at S 2048).
  static constexpr double kPieceOverheadSteps = 2.0;
  // BwdSplit{}: no split.
  int first = 0;  // CTAs from this linear grid index on are split (the main launch skips them)
  int tiles = 0;  // split CTAs (rem); 0: no split
  int parts = 1;  // pieces per split CTA
  int steps = 0;  // (query head, query tile) steps of a CTA
  ATTNFORGE_HD int pieces() const { return tiles * parts; }
  ATTNFORGE_HD int step_begin(int part) const { return int(int64_t(part) * steps / parts); }
};

// Host: the split for a backward of n_ctas equal CTAs of `steps` steps each on `sms` SMs (one CTA per
// SM); none where the last wave is whole, the grid is one wave, or no split beats the unsplit tail.
inline BwdSplit bwd_split_plan(int64_t n_ctas, int steps, int sms) {
  BwdSplit s{};
  s.steps = steps;
  if (sms <= 0 || steps < 2 || n_ctas <= sms || n_ctas % sms == 0 || n_ctas > (int64_t(1) << 30)) return s;
  const int rem = int(n_ctas % sms);
  double best = steps;  // the unsplit last wave
  for (int k = 2; k <= steps && k <= BwdSplit::kMaxParts && int64_t(rem) * k <= sms; ++k) {
    const double cost = double(steps) / k + BwdSplit::kPieceOverheadSteps;
    if (cost < best - 1e-9) best = cost, s.parts = k;
  }
  if (s.parts == 1) return s;
  s.first = int(n_ctas - rem), s.tiles = rem;
  return s;
}
// Query rows of the Hopper backward's dQ accumulator blocks, whatever its step (flash/bwd_sm90.cuh), and
// of the tile an sm90a backward tile falls back to (BwdSm90Fallback): both lay the workspace out with
// this block_m, which runtime/src/workspace_flash.cpp sizes for too.
constexpr int kSm90BwdRows = 64;

ATTNFORGE_HD size_t bwd_align256(size_t x) { return (x + 255) & ~size_t(255); }

// split: the Hopper kernel's split wave (none by default), whose accumulators hold block_n keys × D.
ATTNFORGE_HD BwdWorkspaceLayout flash_bwd_workspace_layout(int block_m, int block_n, const Params& p,
                                                         const BwdSplit& split = BwdSplit{}) {
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
  w.done_offset = bwd_align256(w.sem_offset + sem_bytes);
  const size_t done_bytes = size_t(p.batch > 0 ? p.batch : 0) * size_t(p.heads_kv > 0 ? p.heads_kv : 0) * sizeof(int32_t);
  w.split_offset = bwd_align256(w.done_offset + done_bytes);
  const size_t split_bytes = size_t(split.tiles) * (size_t(block_n) * size_t(p.head_dim) * 2 * sizeof(float) +
                                                    sizeof(int32_t));
  w.total_bytes = bwd_align256(w.split_offset + split_bytes);
  w.zero_bytes = (split.tiles ? w.split_offset + split_bytes : w.done_offset + done_bytes) - w.dq_acc_offset;
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
ATTNFORGE_HD size_t flash_bwd_workspace_bytes(int block_m, int block_n, const Params& p,
                                              const BwdSplit& split = BwdSplit{}) {
  return flash_bwd_workspace_layout(block_m, block_n, p, split).total_bytes;
}

// Host: the split the warp-specialized backward takes for p (step rows step_m, block_n keys a CTA, on
// p.num_sms SMs): dense calls without a mask only (`maskless`: every CTA the same steps), head dims the
// two-warpgroup step serves (64, 128). runtime/src/workspace_flash.cpp sizes with the same call.
inline BwdSplit bwd_split_for(const Params& p, int step_m, int block_n, bool maskless) {
  if (!maskless || p.is_varlen() || p.deterministic || p.num_sms <= 0 || (p.head_dim != 64 && p.head_dim != 128) ||
      p.seqlen_q <= 0 || p.seqlen_k <= 0 || p.heads_kv <= 0 || p.batch <= 0)
    return BwdSplit{};
  const int64_t n_ctas = int64_t((p.seqlen_k + block_n - 1) / block_n) * p.heads_kv * p.batch;
  const int64_t steps = int64_t(p.group()) * ((p.seqlen_q + step_m - 1) / step_m);
  if (steps > (int64_t(1) << 30)) return BwdSplit{};
  return bwd_split_plan(n_ctas, int(steps), p.num_sms);
}

}  // namespace attnforge::flash
