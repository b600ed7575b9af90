// The flash backend's Launcher: routes launch<V> for Variant<Backend::flash, ...> to its forward or
// backward entry (flash/fwd.cuh: run_fwd<V>, flash/bwd.cuh: run_bwd<V>).
#pragma once
#include "common/launch.cuh"
#include "flash/fwd.cuh"
#include "flash/bwd.cuh"

namespace attnforge {

template <Direction D, DType T, int HD, class M, class TL>
struct Launcher<Variant<Backend::flash, D, T, HD, M, TL>> {
  using V = Variant<Backend::flash, D, T, HD, M, TL>;
  static attnforge_status run(const Params& p, cudaStream_t stream) {
    if constexpr (D == Direction::fwd) {
      return flash::run_fwd<V>(p, stream);
    } else {
      return flash::run_bwd<V>(p, stream);
    }
  }
};

}  // namespace attnforge
