// Host-side helpers of the fused launchers: error reporting into the runtime's last-error slot,
// the Sk-limit rejection, alignment checks, the dynamic shared-memory opt-in and launch checks.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "attnforge/attnforge.h"
#include "common/params.hpp"
#include "common/launch_checks.hpp"

namespace attnforge::fused {

inline attnforge_status fail(attnforge_status status, const std::string& message) {
  return launch_fail(status, "fused", message);
}

// A call whose key row does not fit this variant's on-chip score block: never launched.
inline attnforge_status fail_seqlen(int limit, int seqlen_k) {
  return fail(ATTNFORGE_UNSUPPORTED, "this variant supports seqlen_k up to " + std::to_string(limit) +
                                         " (its on-chip key row), got seqlen_k " + std::to_string(seqlen_k));
}


// Kernels over 48 KiB of dynamic shared memory must opt in, once per device (allow_smem in
// launch_checks.hpp; raised_for: the call site's per-kernel flags); a refusal becomes a clear error.
template <class Kernel>
attnforge_status raise_smem_limit(Kernel kernel, int bytes, int (&raised_for)[64]) {
  int dev = 0;
  if (cudaGetDevice(&dev) == cudaSuccess && allow_smem(kernel, bytes, dev, raised_for)) return ATTNFORGE_OK;
  return fail(ATTNFORGE_CUDA_ERROR, "raising the dynamic shared-memory limit to " + std::to_string(bytes) +
                                        " B failed: " + cudaGetErrorString(cudaGetLastError()));
}

inline attnforge_status check_launch(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return fail(ATTNFORGE_CUDA_ERROR, std::string(what) + " launch failed: " + cudaGetErrorString(e));
  return ATTNFORGE_OK;
}

}  // namespace attnforge::fused
