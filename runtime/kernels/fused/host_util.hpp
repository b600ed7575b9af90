// Host-side helpers of the fused launchers: error reporting into the runtime's last-error slot,
// the Sk-limit rejection, alignment checks, the dynamic shared-memory opt-in and launch checks.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "attnforge/attnforge.h"
#include "common/params.hpp"
#include "unfused/error.hpp"  // the one thread-local detail slot the C API reads after a failed launch

namespace attnforge::fused {

inline attnforge_status fail(attnforge_status status, const std::string& message) {
  unfused::last_error() = "fused: " + message;
  return status;
}

// A call whose key row does not fit this variant's on-chip score block: never launched.
inline attnforge_status fail_seqlen(int limit, int seqlen_k) {
  return fail(ATTNFORGE_UNSUPPORTED, "this variant supports seqlen_k up to " + std::to_string(limit) +
                                         " (its on-chip key row), got seqlen_k " + std::to_string(seqlen_k));
}

// cp.async and 4-byte stores need 16-byte aligned rows (8 elements of 16 bits).
inline bool rows_aligned(const Params& p, bool backward) {
  auto a16 = [](const void* ptr) { return ptr == nullptr || (reinterpret_cast<uintptr_t>(ptr) & 15) == 0; };
  auto s8 = [](int64_t stride) { return stride % 8 == 0; };
  bool ok = a16(p.q) && a16(p.k) && a16(p.v) && a16(p.o) && s8(p.q_row_stride) && s8(p.q_head_stride) &&
            s8(p.q_batch_stride) && s8(p.k_row_stride) && s8(p.k_head_stride) && s8(p.k_batch_stride) &&
            s8(p.v_row_stride) && s8(p.v_head_stride) && s8(p.v_batch_stride) && s8(p.o_row_stride) &&
            s8(p.o_head_stride) && s8(p.o_batch_stride);
  if (backward)
    ok = ok && a16(p.d_o) && a16(p.dq) && a16(p.dk) && a16(p.dv) && s8(p.do_row_stride) &&
         s8(p.do_head_stride) && s8(p.do_batch_stride) && s8(p.dq_row_stride) && s8(p.dq_head_stride) &&
         s8(p.dq_batch_stride) && s8(p.dk_row_stride) && s8(p.dk_head_stride) && s8(p.dk_batch_stride) &&
         s8(p.dv_row_stride) && s8(p.dv_head_stride) && s8(p.dv_batch_stride);
  return ok;
}

// Kernels over 48 KiB of dynamic shared memory must opt in, per device (idempotent, cheap).
template <class Kernel>
attnforge_status raise_smem_limit(Kernel kernel, int bytes) {
  if (bytes <= 48 * 1024) return ATTNFORGE_OK;
  const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  if (e != cudaSuccess)
    return fail(ATTNFORGE_CUDA_ERROR, "cudaFuncSetAttribute(" + std::to_string(bytes) +
                                          " B shared memory) failed: " + cudaGetErrorString(e));
  return ATTNFORGE_OK;
}

inline attnforge_status check_launch(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return fail(ATTNFORGE_CUDA_ERROR, std::string(what) + " launch failed: " + cudaGetErrorString(e));
  return ATTNFORGE_OK;
}

}  // namespace attnforge::fused
