// GPU plumbing of attnforge-tune (host code over the CUDA runtime, no kernels of its own): device
// buffers, a pool of random normals to fill inputs from, the L2 flusher and the event timer.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "attnforge/attnforge.h"

namespace attnforge::tuner {

// Throws std::runtime_error("<what>: <cuda error>") on failure.
void cuda_check(cudaError_t e, const char* what);

size_t dtype_bytes(attnforge_dtype t);

// One device allocation (cudaMalloc), freed on destruction.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr, o.bytes_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  // Grows (reallocating, contents lost) to at least `bytes`.
  void reserve(size_t bytes);
  // 0xFF in every byte: NaN for f32 / f16 / bf16, so an unwritten element shows.
  void poison(cudaStream_t s = nullptr);

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Host-side random normals (seeded, reproducible), rounded to dtype and stored as its bits.
std::vector<uint8_t> random_normal_bits(attnforge_dtype t, size_t count, uint64_t seed);
// Same values as doubles (for the CPU reference), from the same bits.
std::vector<double> bits_to_doubles(attnforge_dtype t, const std::vector<uint8_t>& bits);
std::vector<double> device_to_doubles(attnforge_dtype t, const void* device, size_t count);

// A device pool of random normals in one dtype; inputs are filled by device-to-device copies at
// different offsets, so that filling a 64 MiB tensor costs a copy, not host RNG.
class RandomPool {
 public:
  // dst (device) ← count elements of dtype t; `which` picks the offset (q, k, v, dO differ).
  void fill(void* dst, attnforge_dtype t, size_t count, int which, cudaStream_t s);

 private:
  struct Pool {
    attnforge_dtype t;
    size_t count = 0;
    DeviceBuffer buf;
  };
  std::vector<Pool> pools_;
};

// Writes over a buffer twice the L2 size before every timed run, so no run starts with its inputs
// cached by the previous one.
class L2Flusher {
 public:
  explicit L2Flusher(int device);
  void flush(cudaStream_t s);

 private:
  DeviceBuffer buf_;
  int toggle_ = 0;
};

struct Timing {
  bool ok = false;
  std::string error;
  double median_ms = 0, min_ms = 0, max_ms = 0;
  int reps = 0;
};

// `warmup` untimed calls, then up to `reps` timed ones (L2 flushed before each, CUDA events
// around the call only); fewer when one call exceeds max_ms_total / reps. Median of them.
Timing time_calls(const std::function<attnforge_status()>& call, int warmup, int reps, double max_ms_total,
                  L2Flusher& l2, cudaStream_t s);

}  // namespace attnforge::tuner
