// Host-side helpers of the fused launchers: error reporting into the runtime's last-error slot,
// the checks every launcher makes first, alignment checks, the dynamic shared-memory opt-in and launch checks.
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

// What every fused launcher refuses first, whatever its kernel: another head dim, a key row past the
// variant's on-chip score block (never launched), and a deterministic backward (dK/dV are added with
// fp32 atomics). ATTNFORGE_OK: go on.
inline attnforge_status check_variant_runs(const Params& p, int head_dim, int max_seqlen_k, bool backward) {
  if (p.head_dim != head_dim)
    return fail(ATTNFORGE_INVALID_ARGUMENT,
                "variant built for head_dim " + std::to_string(head_dim) + ", got " + std::to_string(p.head_dim));
  if (p.seqlen_k > max_seqlen_k)
    return fail(ATTNFORGE_UNSUPPORTED, "this variant supports seqlen_k up to " + std::to_string(max_seqlen_k) +
                                           " (its key-row limit), got seqlen_k " + std::to_string(p.seqlen_k));
  if (backward && p.deterministic)
    return fail(ATTNFORGE_UNSUPPORTED, "fused backward accumulates dK/dV with fp32 atomics and is not "
                                       "bitwise deterministic; use backend flash or unfused for deterministic=1");
  return ATTNFORGE_OK;
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
