// A variant is data: Variant<backend, direction, dtype, head dim, mask kind, tile> names one
// compiled kernel configuration. Its canonical name (codegen/variants.py) is the file name, the
// table key, the test and benchmark name and the tune-cache value. Host- and nvcc-safe; no Hana.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "attnforge/attnforge.h"
#include "params.hpp"

namespace attnforge {

enum class Backend : int { unfused = 1, fused = 2, flash = 3 };  // == attnforge_backend values
enum class Direction : int { fwd = 0, bwd = 1 };
enum class DType : int { f32 = ATTNFORGE_F32, f16 = ATTNFORGE_F16, bf16 = ATTNFORGE_BF16 };

// kHeadDimAny: a variant that serves every head dim in [1, 1024] (unfused only).
constexpr int kHeadDimAny = 0;

// Tile shape knobs. Meaning per backend (0 = not used by that backend):
//   flash:   BlockM query rows × BlockN key cols per step, Warps per CTA, Stages of K/V prefetch
//   fused:   BlockM query rows per CTA, Warps per CTA (the whole key row stays on chip); Stages > 0:
//            the streamed key row's K/V ring depth (Warps = 4·(BlockM/64 + 1): a TMA producer warpgroup)
//   unfused: Warps per CTA of the softmax kernels
// Arch: 0 = runs on every supported GPU (sm_80+; Hopper kernels chosen at run time where they fit);
// 90 = an sm_90a-only kernel (flash forward: the warp-specialized TMA kernel), picked on sm_90 only.
template <int BlockM_, int BlockN_, int Warps_, int Stages_, int Arch_ = 0>
struct Tile {
  static constexpr int kBlockM = BlockM_;
  static constexpr int kBlockN = BlockN_;
  static constexpr int kWarps = Warps_;
  static constexpr int kStages = Stages_;
  static constexpr int kArch = Arch_;
};

template <Backend B, Direction Dir, DType T, int HeadDim, class Mask_, class Tile_>
struct Variant {
  static constexpr Backend kBackend = B;
  static constexpr Direction kDirection = Dir;
  static constexpr DType kDType = T;
  static constexpr int kHeadDim = HeadDim;
  using Mask = Mask_;
  using TileT = Tile_;
};

template <class... Ts>
struct TypeList {
  static constexpr int size = sizeof...(Ts);
};

// The one entry point every generated .cu instantiates. Defined per backend through
// Launcher<V> (runtime/kernels/<backend>/launch.cuh); declared here so that the host-only
// dispatch table (runtime/src/dispatch.cpp) can take its address without seeing CUDA code.
// Precondition: p was validated and p.workspace holds workspace_bytes(key, p) bytes.
template <class V>
attnforge_status launch(const Params& p, cudaStream_t stream);

}  // namespace attnforge
