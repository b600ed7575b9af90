// Failure reporting of the unfused backend: a failed CUDA / cuBLAS check records a message naming
// the call and the error in launch_detail() and returns ATTNFORGE_CUDA_ERROR (or INTERNAL).
#pragma once
#include <string>

#include "attnforge/attnforge.h"
#include "common/launch_checks.hpp"  // launch_detail(): the slot the C API reads after a failed launch

namespace attnforge::unfused {

inline attnforge_status fail(attnforge_status status, const std::string& message) {
  return launch_fail(status, "unfused", message);
}

}  // namespace attnforge::unfused

// Evaluate a CUDA runtime call; on failure record "<call> failed: <error string>" and return.
#define ATTNFORGE_UNFUSED_CUDA(call)                                                           \
  do {                                                                                         \
    const cudaError_t unfused_err_ = (call);                                                   \
    if (unfused_err_ != cudaSuccess)                                                           \
      return ::attnforge::unfused::fail(ATTNFORGE_CUDA_ERROR, std::string(#call " failed: ") + \
                                                                  cudaGetErrorString(unfused_err_)); \
  } while (0)

// Evaluate a cuBLAS call; on failure record "<call> failed: <status string>" and return.
#define ATTNFORGE_UNFUSED_CUBLAS(call)                                                          \
  do {                                                                                          \
    const cublasStatus_t unfused_st_ = (call);                                                  \
    if (unfused_st_ != CUBLAS_STATUS_SUCCESS)                                                   \
      return ::attnforge::unfused::fail(ATTNFORGE_CUDA_ERROR, std::string(#call " failed: ") +  \
                                                                  cublasGetStatusString(unfused_st_)); \
  } while (0)

// Propagate a non-OK attnforge_status from a helper (its message is already recorded).
#define ATTNFORGE_UNFUSED_TRY(expr)                     \
  do {                                                  \
    const attnforge_status unfused_s_ = (expr);         \
    if (unfused_s_ != ATTNFORGE_OK) return unfused_s_;  \
  } while (0)
