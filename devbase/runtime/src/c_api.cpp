// The C API (attnforge.h): validate → select → scratch memory → launch → check, with a
// thread-local last-error message. Nothing throws across this boundary.
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <mutex>
#include <new>
#include <string>

#include "attnforge/attnforge.h"
#include "cublas_handle.hpp"
#include "select.hpp"
#include "common/launch_checks.hpp"
#include "validate.hpp"
#include "variant_key.hpp"
#include "workspace.hpp"

namespace attnforge {

// SMs of the current device, cached per device (the attribute query is not free); 0 where no device
// answers. Declared in workspace.hpp: the flash forward's workspace depends on it.
int current_device_sms() {
  constexpr int kMaxDevices = 64;
  static int cache[kMaxDevices] = {};  // 0 = unknown; benign race: every writer stores the same value
  int device = 0, sms = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return (void)cudaGetLastError(), 0;
  if (device >= 0 && device < kMaxDevices && (sms = __atomic_load_n(&cache[device], __ATOMIC_RELAXED)) > 0) return sms;
  if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess)
    return (void)cudaGetLastError(), 0;
  if (device >= 0 && device < kMaxDevices) __atomic_store_n(&cache[device], sms, __ATOMIC_RELAXED);
  return sms;
}

namespace {

constexpr size_t kAlign = 256;  // Params::workspace promise; also the LSE's alignment
size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

std::string& last_error() {
  thread_local std::string message;
  return message;
}

attnforge_status fail(attnforge_status status, std::string message) {
  last_error() = std::move(message);
  return status;
}

// Runs f, turning any escaping exception into ATTNFORGE_INTERNAL (or OUT_OF_MEMORY).
template <class F>
attnforge_status guarded(F&& f) noexcept {
  try {
    last_error().clear();
    return f();
  } catch (const std::bad_alloc&) {
    return fail(ATTNFORGE_OUT_OF_MEMORY, "out of host memory");
  } catch (const std::exception& e) {
    return fail(ATTNFORGE_INTERNAL, std::string("internal error: ") + e.what());
  } catch (...) {
    return fail(ATTNFORGE_INTERNAL, "internal error: unknown exception");
  }
}

// Larger workspaces are refused before any allocation (2⁵⁰ bytes = 1 PiB: no device holds it, and
// sizes this large mean the backend's O(N²) scratch cannot work for the call).
constexpr size_t kMaxWorkspaceBytes = size_t(1) << 50;

// Validated + selected: everything short of memory and launch.
struct Plan {
  ValidatedCall call;
  Selection selection;
  size_t kernel_bytes = 0;  // workspace_bytes(key, params)
  size_t lse_bytes = 0;     // forward without a caller LSE: the temporary one
  size_t total_bytes() const { return (kernel_bytes ? align_up(kernel_bytes) : 0) + lse_bytes; }
};

attnforge_status plan_call(const attnforge_args* args, Direction dir, Plan& plan) {
  if (args == nullptr) return fail(ATTNFORGE_INVALID_ARGUMENT, "expected args to be a pointer, got NULL");
  std::string error;
  if (attnforge_status s = validate_args(*args, dir, plan.call, error); s != ATTNFORGE_OK) return fail(s, error);
  plan.selection = select_variant(plan.call.problem, args->backend, args->variant, plan.call.params);
  if (plan.selection.variant == nullptr) return fail(plan.selection.status, plan.selection.reason);
  plan.call.params.num_sms = current_device_sms();  // 0 without a device: sizes that depend on it are 0
  plan.kernel_bytes = workspace_bytes(plan.selection.variant->key, plan.call.params);
  if (plan.kernel_bytes >= kMaxWorkspaceBytes)  // saturated or absurd: no device holds it
    return fail(ATTNFORGE_UNSUPPORTED, std::string(plan.selection.variant->name) + " would need " +
                                           (plan.kernel_bytes == ~size_t(0) ? std::string("more than 2^64")
                                                                            : std::to_string(plan.kernel_bytes)) +
                                           " bytes of workspace for these sizes; use the flash backend (O(N) memory)");
  plan.lse_bytes = (dir == Direction::fwd && !plan.call.lse_supplied) ? temporary_lse_bytes(plan.call.params) : 0;
  return ATTNFORGE_OK;
}

// The library's scratch pool of a device: a stream-ordered memory pool of its own (the user's
// default pool keeps its settings) that keeps freed memory for the next call instead of returning
// it to the driver at every synchronisation, so repeated calls do not re-map their workspace.
// Callers who want no retained memory pass their own workspace. Null: pools unsupported.
cudaMemPool_t scratch_pool(int device) {
  constexpr int kMaxDevices = 64;
  static std::mutex mutex;
  static cudaMemPool_t pools[kMaxDevices] = {};
  static bool failed[kMaxDevices] = {};
  if (device < 0 || device >= kMaxDevices) return nullptr;
  std::lock_guard<std::mutex> lock(mutex);
  if (pools[device] == nullptr && !failed[device]) {
    cudaMemPoolProps props{};
    props.allocType = cudaMemAllocationTypePinned;
    props.handleTypes = cudaMemHandleTypeNone;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = device;
    cudaMemPool_t pool = nullptr;
    if (cudaMemPoolCreate(&pool, &props) != cudaSuccess) {
      (void)cudaGetLastError();
      failed[device] = true;
      return nullptr;
    }
    uint64_t keep = UINT64_MAX;  // never trim on synchronisation
    (void)cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
    pools[device] = pool;
  }
  return pools[device];
}

// Stream-ordered scratch allocation: the library's pool, else the device's default pool.
cudaError_t allocate_scratch(void** ptr, size_t bytes, cudaStream_t stream) {
  int device = 0;
  if (cudaError_t e = cudaGetDevice(&device); e != cudaSuccess) return e;
  if (cudaMemPool_t pool = scratch_pool(device)) return cudaMallocFromPoolAsync(ptr, bytes, pool, stream);
  return cudaMallocAsync(ptr, bytes, stream);
}

attnforge_status run_call(const attnforge_args* args, Direction dir, void* stream_ptr) {
  Plan plan;
  if (attnforge_status s = plan_call(args, dir, plan); s != ATTNFORGE_OK) return s;
  Params& p = plan.call.params;
  const VariantInfo& variant = *plan.selection.variant;
  cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);

  if (p.num_sms <= 0) {  // plan_call found no device to size for
    int device = 0;
    const cudaError_t e = cudaGetDevice(&device);
    (void)cudaGetLastError();
    return fail(ATTNFORGE_CUDA_ERROR, std::string("could not query the current device: ") +
                                          (e != cudaSuccess ? cudaGetErrorString(e) : "no SM count"));
  }
  if (variant.key.backend == Backend::unfused) {
    std::string error;
    cublasHandle_t handle = cublas_handle_for_current_device(error);
    if (handle == nullptr) return fail(ATTNFORGE_CUDA_ERROR, error);
    if (cublasStatus_t s = cublasSetStream(handle, stream); s != CUBLAS_STATUS_SUCCESS)
      return fail(ATTNFORGE_CUDA_ERROR, std::string("cublasSetStream failed: ") + cublasGetStatusString(s));
    p.cublas_handle = handle;
  }

  // ---- scratch: [kernel workspace | temporary LSE], each 256-byte aligned ------------------------
  // The caller's workspace when it is big enough (after aligning its start), else stream-ordered
  // memory that is freed on the same stream after the launch.
  const size_t total = plan.total_bytes();
  char* base = nullptr;
  bool allocated = false;
  if (total > 0) {
    const uintptr_t user = reinterpret_cast<uintptr_t>(args->workspace);
    const size_t pad = user ? (kAlign - user % kAlign) % kAlign : 0;
    if (user != 0 && args->workspace_bytes >= pad && args->workspace_bytes - pad >= total) {
      base = reinterpret_cast<char*>(user + pad);
    } else {
      void* ptr = nullptr;
      if (cudaError_t e = allocate_scratch(&ptr, total, stream); e != cudaSuccess) {
        (void)cudaGetLastError();  // allocation failures are not sticky: clear them
        return fail(e == cudaErrorMemoryAllocation ? ATTNFORGE_OUT_OF_MEMORY : ATTNFORGE_CUDA_ERROR,
                    "could not allocate " + std::to_string(total) + " bytes of scratch for " + variant.name +
                        " (stream-ordered allocation: " + cudaGetErrorString(e) + ")");
      }
      base = static_cast<char*>(ptr);
      allocated = true;
    }
  }
  p.workspace = plan.kernel_bytes ? base : nullptr;
  p.workspace_bytes = plan.kernel_bytes;
  if (plan.lse_bytes) use_temporary_lse(p, reinterpret_cast<float*>(base + (plan.kernel_bytes ? align_up(plan.kernel_bytes) : 0)));

  // ---- launch ---------------------------------------------------------------------------------
  (void)cudaGetLastError();  // errors of earlier, unrelated work must not be reported as ours
  launch_detail().clear();
  const attnforge_status status = variant.launch(p, stream);
  const cudaError_t launch_error = cudaGetLastError();
  if (allocated) {
    if (cudaError_t e = cudaFreeAsync(base, stream); e != cudaSuccess && status == ATTNFORGE_OK &&
                                                        launch_error == cudaSuccess)
      return fail(ATTNFORGE_CUDA_ERROR, std::string("cudaFreeAsync failed: ") + cudaGetErrorString(e));
  }
  if (status != ATTNFORGE_OK) {
    std::string detail = launch_detail();
    if (detail.empty() && launch_error != cudaSuccess) detail = cudaGetErrorString(launch_error);
    return fail(status, std::string(variant.name) + " failed (" + attnforge_status_string(status) + ")" +
                            (detail.empty() ? "" : ": " + detail));
  }
  if (launch_error != cudaSuccess) {
    return fail(ATTNFORGE_CUDA_ERROR, std::string(variant.name) + " failed to launch: " +
                                          cudaGetErrorName(launch_error) + " (" + cudaGetErrorString(launch_error) + ")");
  }
  return ATTNFORGE_OK;
}

void copy_string(const std::string& s, char* out, size_t len) {
  if (out == nullptr || len == 0) return;
  const size_t n = std::min(s.size(), len - 1);
  std::memcpy(out, s.data(), n);
  out[n] = '\0';
}

}  // namespace
}  // namespace attnforge

using namespace attnforge;

extern "C" {

ATTNFORGE_API void attnforge_args_init(attnforge_args* args) {
  if (args == nullptr) return;
  std::memset(args, 0, sizeof(*args));
  args->mask.kind = nullptr;  // "none"
  // Unset mask scalars read as -1: for window that is "unbounded" on that side.
  for (int i = 0; i < ATTNFORGE_MAX_MASK_SCALARS; ++i) args->mask.scalars[i] = -1;
  args->backend = ATTNFORGE_BACKEND_AUTO;
  args->scale = 0.0f;  // 1/sqrt(D)
}

ATTNFORGE_API attnforge_status attnforge_forward(const attnforge_args* args, void* stream) {
  return guarded([&] { return run_call(args, Direction::fwd, stream); });
}

ATTNFORGE_API attnforge_status attnforge_backward(const attnforge_args* args, void* stream) {
  return guarded([&] { return run_call(args, Direction::bwd, stream); });
}

ATTNFORGE_API attnforge_status attnforge_workspace_size(const attnforge_args* args, int is_backward, size_t* bytes) {
  return guarded([&] {
    if (bytes == nullptr) return fail(ATTNFORGE_INVALID_ARGUMENT, "expected bytes to be a pointer, got NULL");
    *bytes = 0;
    Plan plan;
    if (attnforge_status s = plan_call(args, is_backward ? Direction::bwd : Direction::fwd, plan); s != ATTNFORGE_OK)
      return s;
    // Room for the 256-byte alignment of an arbitrary caller pointer, so that a buffer of exactly
    // this size never falls back to an allocation.
    const size_t total = plan.total_bytes();
    *bytes = total ? total + kAlign : 0;
    return ATTNFORGE_OK;
  });
}

ATTNFORGE_API attnforge_status attnforge_select_backend(const attnforge_args* args, int is_backward,
                                                        attnforge_backend* chosen, char* variant, size_t variant_len,
                                                        char* reason, size_t reason_len) {
  return guarded([&] {
    copy_string("", variant, variant_len);
    copy_string("", reason, reason_len);
    Plan plan;
    if (attnforge_status s = plan_call(args, is_backward ? Direction::bwd : Direction::fwd, plan); s != ATTNFORGE_OK) {
      copy_string(last_error(), reason, reason_len);
      return s;
    }
    if (chosen) *chosen = attnforge_backend(int(plan.selection.variant->key.backend));
    copy_string(plan.selection.variant->name, variant, variant_len);
    copy_string(plan.selection.reason, reason, reason_len);
    return ATTNFORGE_OK;
  });
}

ATTNFORGE_API const char* attnforge_last_error(void) { return last_error().c_str(); }

ATTNFORGE_API const char* attnforge_status_string(attnforge_status status) {
  int v;  // read as int: a C caller may pass any value (an out-of-range enum load is UB in C++)
  std::memcpy(&v, &status, sizeof v);
  switch (v) {
    case ATTNFORGE_OK: return "ATTNFORGE_OK";
    case ATTNFORGE_INVALID_ARGUMENT: return "ATTNFORGE_INVALID_ARGUMENT";
    case ATTNFORGE_UNSUPPORTED: return "ATTNFORGE_UNSUPPORTED";
    case ATTNFORGE_CUDA_ERROR: return "ATTNFORGE_CUDA_ERROR";
    case ATTNFORGE_OUT_OF_MEMORY: return "ATTNFORGE_OUT_OF_MEMORY";
    case ATTNFORGE_INTERNAL: return "ATTNFORGE_INTERNAL";
  }
  return "ATTNFORGE_UNKNOWN_STATUS";
}

ATTNFORGE_API const char* attnforge_backend_name(attnforge_backend backend) {
  int v;
  std::memcpy(&v, &backend, sizeof v);
  switch (v) {
    case ATTNFORGE_BACKEND_AUTO: return "auto";
    case ATTNFORGE_BACKEND_UNFUSED: return "unfused";
    case ATTNFORGE_BACKEND_FUSED: return "fused";
    case ATTNFORGE_BACKEND_FLASH: return "flash";
  }
  return "unknown";
}

ATTNFORGE_API const char* attnforge_version(void) {
#define ATTNFORGE_STR2(x) #x
#define ATTNFORGE_STR(x) ATTNFORGE_STR2(x)
  return ATTNFORGE_STR(ATTNFORGE_VERSION_MAJOR) "." ATTNFORGE_STR(ATTNFORGE_VERSION_MINOR) "." ATTNFORGE_STR(
      ATTNFORGE_VERSION_PATCH);
}

ATTNFORGE_API int attnforge_variant_count(void) { return int(all_variants().size()); }

ATTNFORGE_API const char* attnforge_variant_name(int i) {
  const auto table = all_variants();
  if (i < 0 || size_t(i) >= table.size()) return nullptr;
  return table[size_t(i)].name;
}

}  // extern "C"
