// The cuBLAS handle of the calling thread on the current device: created lazily once per
// (thread, device), reused by every call, returned to a process-wide pool when the thread exits.
#pragma once
#include <cublas_v2.h>

#include <string>

namespace attnforge {

// The handle for (this thread, current device), or nullptr with `error` set (cublasCreate failed).
// The handle keeps whatever stream was last set on it: callers set theirs before use.
cublasHandle_t cublas_handle_for_current_device(std::string& error);

}  // namespace attnforge
