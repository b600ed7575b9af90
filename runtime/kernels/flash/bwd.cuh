// Flash backward entry run_bwd<V>: zero the dQ accumulator (and ordering counters), compute
// D = rowsum(dO ∘ O), run the main kernel over (key tile, kv head, batch), convert dQ (on the Hopper
// path the three launches overlap: launch_bwd_sm90).
// Kernels: flash/bwd_prepost.cuh, flash/bwd_main.cuh (mma.sync), flash/bwd_sm90.cuh (wgmma: taken on
// sm_90 devices for the tiles it fits, not in deterministic mode nor when all keys fit one key tile
// (see below); its warp-specialized form for sm90a tiles, run_bwd_sm90_ws; ATTNFORGE_FLASH_BWD_PATH=mma
// forces the mma.sync kernel, read per call so tests run both); scratch layout: flash/bwd_workspace.hpp.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>

#include "common/launch_checks.hpp"
#include "common/params.hpp"
#include "common/variant.hpp"
#include "flash/bwd_main.cuh"
#include "flash/bwd_prepost.cuh"
#include "flash/bwd_sm90.cuh"
#include "flash/bwd_workspace.hpp"

namespace attnforge::flash {

// Zero the dQ accumulator (and ordering counters) and compute D = rowsum(dO ∘ O) into the workspace,
// which must hold the layout `ws`: one launch of the D pass.
template <class V>
attnforge_status run_bwd_prologue(const Params& p, const BwdWorkspaceLayout& ws, cudaStream_t stream) {
  using namespace bwd_detail;
  if (p.workspace == nullptr || p.workspace_bytes < ws.total_bytes) return ATTNFORGE_INTERNAL;
  // In 16-byte units, rounded up: the zeroed region starts 256-byte aligned and total_bytes is a
  // multiple of 256, so the rounding stays inside the workspace.
  const size_t zero_units = (ws.zero_bytes + 15) / 16;
  auto* zero = reinterpret_cast<uint4*>(static_cast<char*>(p.workspace) + ws.dq_acc_offset);
  const int64_t rows = p.total_q * p.heads_q;
  const int64_t row_blocks = (rows + kDotRowsPerBlock - 1) / kDotRowsPerBlock;
  const int64_t zero_blocks = int64_t((zero_units + 8 * kPrepostThreads - 1) / (8 * kPrepostThreads));  // ≥ 8 units a thread
  const int64_t blocks = std::max(row_blocks, std::min<int64_t>(zero_blocks, 1 << 20));
  if (blocks > 0)
    flash_bwd_dot_do_o_kernel<V::kDType, V::kHeadDim><<<unsigned(blocks), kPrepostThreads, 0, stream>>>(p, zero, zero_units);
  return ATTNFORGE_OK;
}

// Whether a call takes the Hopper kernel (or its warp-specialized form) rather than the mma.sync one:
// an sm_90 device (unless ATTNFORGE_FLASH_BWD_PATH=mma), not deterministic, a grid within limits, and
// keys beyond one key tile. A key row that fits one key tile goes to the mma.sync kernel, which then
// takes D = Σ_j P·dP / Σ_j P from the tile's fp32 P (as the fused backward normalises its P) instead of
// rowsum(dO ∘ O), whose O is rounded to the dtype: that error dominates dS when a row sees few keys
// (H200 sweep, Sq 1, Sk 3 and 5: 1.01–1.11× the numerics bound on the Hopper kernel).
inline bool takes_hopper_bwd(const Params& p, int block_n) {
  const bool grid_fits = !exceeds_grid_yz(p.heads_q, p.batch);  // grid y / z (main and dQ kernels)
  return !p.deterministic && p.seqlen_k > block_n && grid_fits && hopper_path("ATTNFORGE_FLASH_BWD_PATH");
}

template <class V>
attnforge_status run_bwd_sm90_ws(const Params& p, cudaStream_t stream);

template <class V>
attnforge_status run_bwd(const Params& p, cudaStream_t stream) {
  if constexpr (V::TileT::kArch == 90) {
    return run_bwd_sm90_ws<V>(p, stream);
  } else {
    using namespace bwd_detail;
    using Tr = BwdTraits<V>;
    if (p.head_dim != Tr::kD) return ATTNFORGE_INTERNAL;
    if (!rows_aligned16(p, /*backward=*/true)) return launch_fail(ATTNFORGE_UNSUPPORTED, "flash", kNeedsAlignedRows);
    if (exceeds_grid_yz(p.heads_q, p.batch)) return launch_fail(ATTNFORGE_UNSUPPORTED, "flash", kGridLimits);
    const BwdWorkspaceLayout ws = flash_bwd_workspace_layout(Tr::kBlockM, Tr::kBlockN, p);
    if (const attnforge_status st = run_bwd_prologue<V>(p, ws, stream); st != ATTNFORGE_OK) return st;

    if constexpr (BwdSm90Config<V>::kSupported) {
      if (takes_hopper_bwd(p, Tr::kBlockN)) {
        if (p.batch > 0 && !launch_bwd_sm90<V>(p, ws, stream)) return ATTNFORGE_CUDA_ERROR;
        return cudaGetLastError() == cudaSuccess ? ATTNFORGE_OK : ATTNFORGE_CUDA_ERROR;
      }
    }

    if (p.seqlen_k > 0 && p.batch > 0) {
      static int raised[64] = {};
      int dev = 0;
      if (cudaGetDevice(&dev) != cudaSuccess || !allow_smem(flash_bwd_main_kernel<V>, Tr::kSmemBytes, dev, raised))
        return ATTNFORGE_CUDA_ERROR;
      const dim3 grid((p.seqlen_k + Tr::kBlockN - 1) / Tr::kBlockN, p.heads_kv, p.batch);
      flash_bwd_main_kernel<V><<<grid, Tr::kThreads, Tr::kSmemBytes, stream>>>(p);
    }

    const int m_tiles = (p.seqlen_q + Tr::kBlockM - 1) / Tr::kBlockM;  // dQ = scale · acc, per query tile
    if (m_tiles > 0 && p.batch > 0)
      flash_bwd_convert_dq_kernel<Tr><<<dim3(m_tiles, p.heads_q, p.batch), Tr::kThreads, 0, stream>>>(p, ws.dq_acc_offset);
    return cudaGetLastError() == cudaSuccess ? ATTNFORGE_OK : ATTNFORGE_CUDA_ERROR;
  }
}

// sm90a backward variants (12 warps): the warp-specialized form of the Hopper kernel where run_bwd
// would take the Hopper kernel; everywhere else — another device, deterministic mode, keys in one key
// tile, ATTNFORGE_FLASH_BWD_PATH=mma, a layout TMA cannot describe — the same tile with 8 warps.
template <class V>
attnforge_status run_bwd_sm90_ws(const Params& p, cudaStream_t stream) {
  using T = typename V::TileT;
  using Fallback = typename BwdSm90Fallback<V>::type;
  static_assert(BwdSm90Config<V>::kSupported);  // Fallback: the Hopper kernel's 8-warp tile, or mma.sync's
  BwdSm90Maps maps{};
  if (p.head_dim != V::kHeadDim || !rows_aligned16(p, /*backward=*/true) || !takes_hopper_bwd(p, T::kBlockN) ||
      p.batch == 0 || !encode_bwd_sm90_maps<V>(p, &maps))
    return run_bwd<Fallback>(p, stream);
  // The accumulator in 64-row blocks whatever the step's query count (workspace sized for T::kBlockM ≥ 64),
  // and the split last wave where the caller's workspace holds it (runtime/src/workspace_flash.cpp sizes
  // it with the same bwd_split_for; a smaller one runs unsplit).
  constexpr int kRows = bwd_sm90_detail::kDqTileRows;
  BwdSplit split = bwd_split_for(p, T::kBlockM, T::kBlockN, !prim::kMaskEmptiesTiles<typename V::Mask>);
  BwdWorkspaceLayout ws = flash_bwd_workspace_layout(kRows, T::kBlockN, p, split);
  if (split.tiles > 0 && p.workspace_bytes < ws.total_bytes)
    split = BwdSplit{}, ws = flash_bwd_workspace_layout(kRows, T::kBlockN, p, split);
  if (const attnforge_status st = run_bwd_prologue<V>(p, ws, stream); st != ATTNFORGE_OK) return st;
  if (!launch_bwd_sm90<V>(p, ws, stream, maps, split)) return ATTNFORGE_CUDA_ERROR;
  return cudaGetLastError() == cudaSuccess ? ATTNFORGE_OK : ATTNFORGE_CUDA_ERROR;
}

}  // namespace attnforge::flash
