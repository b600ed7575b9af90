// Fused backward — placeholder until the real kernel lands (next commit): reports UNSUPPORTED.
#pragma once
#include <cuda_runtime.h>

#include "common/params.hpp"
#include "fused/host_util.hpp"

namespace attnforge::fused {
template <class V>
attnforge_status run_bwd(const Params&, cudaStream_t) {
  return fail(ATTNFORGE_UNSUPPORTED, "fused backward is not implemented yet");
}
}  // namespace attnforge::fused
