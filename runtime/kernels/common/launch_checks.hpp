// Host-side pieces every backend's launcher shares: the detail message a failed launch leaves for
// attnforge_last_error(), the 16-byte row alignment and grid limits kernels assume beyond
// validation, and the device's compute capability (which kernel path can run).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "attnforge/attnforge.h"
#include "common/params.hpp"

namespace attnforge {

// The thread-local detail slot c_api.cpp clears before a launch and reads after a failed one
// (inline: one slot per thread for the whole library).
inline std::string& launch_detail() {
  thread_local std::string message;
  return message;
}

// Records "<backend>: <message>" for attnforge_last_error() and returns status.
inline attnforge_status launch_fail(attnforge_status status, const char* backend, const std::string& message) {
  launch_detail() = std::string(backend) + ": " + message;
  return status;
}

// cp.async, ldmatrix staging and 16-byte stores need 16-byte aligned rows: the base pointer
// 16-byte aligned and the batch/row/head strides multiples of 8 elements (16-bit dtypes).
inline bool rows_aligned16(const void* ptr, int64_t batch_stride, int64_t row_stride, int64_t head_stride) {
  return ptr == nullptr || ((reinterpret_cast<uintptr_t>(ptr) & 15) == 0 && batch_stride % 8 == 0 &&
                            row_stride % 8 == 0 && head_stride % 8 == 0);
}

// q, k, v, o (forward) and also d_o, dq, dk, dv (backward) have 16-byte aligned rows.
inline bool rows_aligned16(const Params& p, bool backward) {
  bool ok = rows_aligned16(p.q, p.q_batch_stride, p.q_row_stride, p.q_head_stride) &&
            rows_aligned16(p.k, p.k_batch_stride, p.k_row_stride, p.k_head_stride) &&
            rows_aligned16(p.v, p.v_batch_stride, p.v_row_stride, p.v_head_stride) &&
            rows_aligned16(p.o, p.o_batch_stride, p.o_row_stride, p.o_head_stride);
  if (backward)
    ok = ok && rows_aligned16(p.d_o, p.do_batch_stride, p.do_row_stride, p.do_head_stride) &&
         rows_aligned16(p.dq, p.dq_batch_stride, p.dq_row_stride, p.dq_head_stride) &&
         rows_aligned16(p.dk, p.dk_batch_stride, p.dk_row_stride, p.dk_head_stride) &&
         rows_aligned16(p.dv, p.dv_batch_stride, p.dv_row_stride, p.dv_head_stride);
  return ok;
}

// CUDA's limit on grid dimensions y and z: flash and fused put heads and sequences there, so a call
// with more of either is refused by the selector (variant_fits) and again here, before any launch.
inline constexpr int kMaxGridYZ = 65535;
inline constexpr const char* kGridLimits = "launches one grid row per head and per sequence: at most 65535 of each";
inline bool exceeds_grid_yz(int heads_q, int batch) { return heads_q > kMaxGridYZ || batch > kMaxGridYZ; }

inline constexpr const char* kNeedsAlignedRows =
    "needs 16-byte aligned rows (base pointers 16-byte aligned, batch/row/head strides multiples of 8 "
    "elements); use the unfused backend for other layouts";

// Attribute `kAttr` of device `dev`, cached per device; 0 if it cannot be read.
template <cudaDeviceAttr kAttr>
inline int cached_device_attribute(int dev) {
  static int value[64] = {};
  if (dev < 0 || dev >= 64) return 0;
  int v = __atomic_load_n(&value[dev], __ATOMIC_ACQUIRE);
  if (v == 0) {
    if (cudaDeviceGetAttribute(&v, kAttr, dev) != cudaSuccess) return 0;
    __atomic_store_n(&value[dev], v, __ATOMIC_RELEASE);
  }
  return v;
}
inline int device_cc_major(int dev) { return cached_device_attribute<cudaDevAttrComputeCapabilityMajor>(dev); }
inline int device_sm_count(int dev) { return cached_device_attribute<cudaDevAttrMultiProcessorCount>(dev); }

// Compute-capability major of the current device; 0 without one (the failed query's error is
// cleared, so that it is not reported by the next CUDA call).
inline int current_cc_major() {
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return device_cc_major(dev);
}

// Whether environment variable `var` is set to `value`: the launchers' per-call switches.
inline bool env_is(const char* var, const char* value) {
  const char* env = std::getenv(var);
  return env != nullptr && std::strcmp(env, value) == 0;
}

// Whether a launcher with a Hopper (wgmma) kernel takes it: the current device is sm_90 and the
// environment variable `path_env` (ATTNFORGE_<BACKEND>_<DIR>_PATH) does not say "mma". Read per call:
// tests switch it to run both kernels on one GPU.
inline bool hopper_path(const char* path_env) { return !env_is(path_env, "mma") && current_cc_major() == 9; }

// Raises a kernel's dynamic shared-memory limit to `bytes` once per device (the attribute lives with
// the context; raised_for is the caller's per-kernel flag array). False if the runtime refused.
template <class Kernel>
bool allow_smem(Kernel kernel, int bytes, int dev, int (&raised_for)[64]) {
  if (bytes <= 48 * 1024) return true;
  if (dev >= 0 && dev < 64 && __atomic_load_n(&raised_for[dev], __ATOMIC_ACQUIRE)) return true;
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes) != cudaSuccess)
    return false;
  if (dev >= 0 && dev < 64) __atomic_store_n(&raised_for[dev], 1, __ATOMIC_RELEASE);
  return true;
}

// How many clusters of kCluster CTAs (threads, smem bytes each; smem already allowed) of `kernel` the
// device holds at once, cached per device in the caller's array; 0 where the runtime cannot say (the
// caller then launches without clusters). Not every GPC need hold a whole number of clusters.
template <int kCluster, class Kernel>
int max_active_clusters(Kernel kernel, int threads, int smem, int dev, int (&cached_for)[64]) {
  if (dev < 0 || dev >= 64) return 0;
  int n = __atomic_load_n(&cached_for[dev], __ATOMIC_ACQUIRE);
  if (n != 0) return n > 0 ? n : 0;
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeClusterDimension;
  attr.val.clusterDim.x = kCluster, attr.val.clusterDim.y = 1, attr.val.clusterDim.z = 1;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(unsigned(kCluster * std::max(1, device_sm_count(dev)))), cfg.blockDim = dim3(unsigned(threads));
  cfg.dynamicSmemBytes = size_t(smem), cfg.attrs = &attr, cfg.numAttrs = 1;
  if (cudaOccupancyMaxActiveClusters(&n, kernel, &cfg) != cudaSuccess || n <= 0) {
    (void)cudaGetLastError();
    n = -1;
  }
  __atomic_store_n(&cached_for[dev], n, __ATOMIC_RELEASE);
  return n > 0 ? n : 0;
}

}  // namespace attnforge
