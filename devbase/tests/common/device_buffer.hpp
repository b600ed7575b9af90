// Device memory for tests: an RAII buffer poisoned with 0xFF bytes (NaN in f32, f16 and bf16, so
// an element a kernel forgot to write fails the comparison), and uploads/downloads that convert
// between host doubles and the device dtype (f32, f16, bf16, bool as uint8).
#pragma once
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "attnforge/attnforge.h"

namespace attnforge::test {

size_t dtype_size(attnforge_dtype t);  // bytes per element: 4, 2, 2, 1
const char* dtype_name(attnforge_dtype t);

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  // cudaMalloc of `bytes` (at least 1), poisoned unless poison == false.
  explicit DeviceBuffer(size_t bytes, bool poison = true);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void poison();  // cudaMemset(0xFF) + synchronize
  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Host doubles → device dtype (values rounded to nearest even; bool: nonzero → 1).
DeviceBuffer upload(const std::vector<double>& host, attnforge_dtype dtype);
void upload_into(DeviceBuffer& dst, const std::vector<double>& host, attnforge_dtype dtype);
// Device dtype → host doubles (count elements).
std::vector<double> download(const void* src, size_t count, attnforge_dtype dtype);
inline std::vector<double> download(const DeviceBuffer& src, size_t count, attnforge_dtype dtype) {
  return download(src.get(), count, dtype);
}
DeviceBuffer upload_int32(const std::vector<int32_t>& host);

// n standard normals, rounded to dtype (so that host and device see the same values).
std::vector<double> random_normal(size_t n, uint64_t seed, attnforge_dtype dtype = ATTNFORGE_F32);

}  // namespace attnforge::test
