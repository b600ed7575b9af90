// The fused backend's Launcher: routes launch<V> for Variant<Backend::fused, ...> to its forward or
// backward entry (fused/fwd.cuh: run_fwd<V>, fused/bwd.cuh: run_bwd<V>).
#pragma once
#include "common/launch.cuh"
#include "fused/fwd.cuh"
#include "fused/bwd.cuh"

namespace attnforge {

template <Direction D, DType T, int HD, class M, class TL>
struct Launcher<Variant<Backend::fused, D, T, HD, M, TL>> {
  using V = Variant<Backend::fused, D, T, HD, M, TL>;
  static attnforge_status run(const Params& p, cudaStream_t stream) {
    if constexpr (D == Direction::fwd) {
      return fused::run_fwd<V>(p, stream);
    } else {
      return fused::run_bwd<V>(p, stream);
    }
  }
};

}  // namespace attnforge
