// The unfused backend's Launcher: routes launch<V> for Variant<Backend::unfused, ...> to its forward or
// backward entry (unfused/fwd.cuh: run_fwd<V>, unfused/bwd.cuh: run_bwd<V>).
#pragma once
#include "common/launch.cuh"
#include "unfused/fwd.cuh"
#include "unfused/bwd.cuh"

namespace attnforge {

template <Direction D, DType T, int HD, class M, class TL>
struct Launcher<Variant<Backend::unfused, D, T, HD, M, TL>> {
  using V = Variant<Backend::unfused, D, T, HD, M, TL>;
  static attnforge_status run(const Params& p, cudaStream_t stream) {
    if constexpr (D == Direction::fwd) {
      return unfused::run_fwd<V>(p, stream);
    } else {
      return unfused::run_bwd<V>(p, stream);
    }
  }
};

}  // namespace attnforge
