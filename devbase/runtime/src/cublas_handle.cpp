// Per-(thread, device) cuBLAS handles. A handle is never created per call: each thread gets one
// per device on first use; at thread exit its handles go back to a process-wide pool that later
// threads reuse. The pool is never destroyed (destroying handles during process teardown, after
// the CUDA context may be gone, crashes), so the number of handles is bounded by the peak number
// of threads that ever called the library at once.
#include "cublas_handle.hpp"

#include <cuda_runtime_api.h>

#include <mutex>
#include <unordered_map>
#include <vector>

namespace attnforge {

namespace {

struct Pool {
  std::mutex mutex;
  std::unordered_map<int, std::vector<cublasHandle_t>> free;  // device → idle handles
};
Pool& pool() {
  static Pool* p = new Pool;  // intentionally leaked: outlives every thread_local below
  return *p;
}

// This thread's handles; returned to the pool when the thread ends.
struct ThreadHandles {
  std::unordered_map<int, cublasHandle_t> by_device;
  ~ThreadHandles() {
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.mutex);
    for (auto& [device, handle] : by_device) p.free[device].push_back(handle);
  }
};
thread_local ThreadHandles t_handles;

}  // namespace

cublasHandle_t cublas_handle_for_current_device(std::string& error) {
  int device = 0;
  if (cudaError_t e = cudaGetDevice(&device); e != cudaSuccess) {
    error = std::string("cudaGetDevice failed: ") + cudaGetErrorString(e);
    return nullptr;
  }
  auto it = t_handles.by_device.find(device);
  if (it != t_handles.by_device.end()) return it->second;

  cublasHandle_t handle = nullptr;
  {
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.mutex);
    auto& idle = p.free[device];
    if (!idle.empty()) {
      handle = idle.back();
      idle.pop_back();
    }
  }
  if (handle == nullptr) {
    if (cublasStatus_t s = cublasCreate(&handle); s != CUBLAS_STATUS_SUCCESS) {
      error = std::string("cublasCreate failed on device ") + std::to_string(device) + ": " + cublasGetStatusString(s);
      return nullptr;
    }
  }
  t_handles.by_device.emplace(device, handle);
  return handle;
}

}  // namespace attnforge
