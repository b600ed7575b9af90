// DeviceBuffer, dtype conversions for upload/download, random inputs (device_buffer.hpp).
#include "device_buffer.hpp"

#include <cuda_runtime_api.h>

#include <cstring>
#include <utility>

#include "attnforge/reference.hpp"
#include "gpu.hpp"

namespace attnforge::test {

size_t dtype_size(attnforge_dtype t) {
  switch (t) {
    case ATTNFORGE_F32: return 4;
    case ATTNFORGE_F16:
    case ATTNFORGE_BF16: return 2;
    case ATTNFORGE_BOOL: return 1;
  }
  throw std::runtime_error("unknown dtype");
}

const char* dtype_name(attnforge_dtype t) {
  switch (t) {
    case ATTNFORGE_F32: return "f32";
    case ATTNFORGE_F16: return "f16";
    case ATTNFORGE_BF16: return "bf16";
    case ATTNFORGE_BOOL: return "bool";
  }
  return "?";
}

DeviceBuffer::DeviceBuffer(size_t bytes, bool poison_it) : bytes_(bytes) {
  ATTNFORGE_TEST_CUDA(cudaMalloc(&ptr_, bytes ? bytes : 1));
  if (poison_it) poison();
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_) (void)cudaFree(ptr_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(o.bytes_) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_) (void)cudaFree(ptr_);
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = o.bytes_;
  }
  return *this;
}

void DeviceBuffer::poison() {
  ATTNFORGE_TEST_CUDA(cudaMemset(ptr_, 0xFF, bytes_ ? bytes_ : 1));
  ATTNFORGE_TEST_CUDA(cudaDeviceSynchronize());
}

namespace {
std::vector<unsigned char> encode(const std::vector<double>& host, attnforge_dtype dtype) {
  std::vector<unsigned char> bytes(host.size() * dtype_size(dtype));
  for (size_t i = 0; i < host.size(); ++i) {
    const float f = float(host[i]);
    switch (dtype) {
      case ATTNFORGE_F32: std::memcpy(&bytes[i * 4], &f, 4); break;
      case ATTNFORGE_F16: {
        const uint16_t h = f32_to_f16_bits(f);
        std::memcpy(&bytes[i * 2], &h, 2);
        break;
      }
      case ATTNFORGE_BF16: {
        const uint16_t h = f32_to_bf16_bits(f);
        std::memcpy(&bytes[i * 2], &h, 2);
        break;
      }
      case ATTNFORGE_BOOL: bytes[i] = host[i] != 0.0 ? 1 : 0; break;
    }
  }
  return bytes;
}

// Host → device, finished before return: from pageable memory cudaMemcpy may return before the DMA
// lands, and a call on a non-blocking stream does not wait for it (CApi.NonDefaultStream read
// half-uploaded inputs under load).
void copy_to_device(void* dst, const void* src, size_t bytes) {
  ATTNFORGE_TEST_CUDA(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
  ATTNFORGE_TEST_CUDA(cudaDeviceSynchronize());
}
}  // namespace

void upload_into(DeviceBuffer& dst, const std::vector<double>& host, attnforge_dtype dtype) {
  const auto bytes = encode(host, dtype);
  if (bytes.size() > dst.bytes()) throw std::runtime_error("upload_into: destination too small");
  copy_to_device(dst.get(), bytes.data(), bytes.size());
}

DeviceBuffer upload(const std::vector<double>& host, attnforge_dtype dtype) {
  DeviceBuffer buf(host.size() * dtype_size(dtype), /*poison=*/false);
  upload_into(buf, host, dtype);
  return buf;
}

DeviceBuffer upload_int32(const std::vector<int32_t>& host) {
  DeviceBuffer buf(host.size() * sizeof(int32_t), /*poison=*/false);
  copy_to_device(buf.get(), host.data(), host.size() * sizeof(int32_t));
  return buf;
}

std::vector<double> download(const void* src, size_t count, attnforge_dtype dtype) {
  std::vector<unsigned char> bytes(count * dtype_size(dtype));
  ATTNFORGE_TEST_CUDA(cudaDeviceSynchronize());
  ATTNFORGE_TEST_CUDA(cudaMemcpy(bytes.data(), src, bytes.size(), cudaMemcpyDeviceToHost));
  std::vector<double> host(count);
  for (size_t i = 0; i < count; ++i) {
    switch (dtype) {
      case ATTNFORGE_F32: {
        float f;
        std::memcpy(&f, &bytes[i * 4], 4);
        host[i] = f;
        break;
      }
      case ATTNFORGE_F16: {
        uint16_t h;
        std::memcpy(&h, &bytes[i * 2], 2);
        host[i] = f16_bits_to_f32(h);
        break;
      }
      case ATTNFORGE_BF16: {
        uint16_t h;
        std::memcpy(&h, &bytes[i * 2], 2);
        host[i] = bf16_bits_to_f32(h);
        break;
      }
      case ATTNFORGE_BOOL: host[i] = bytes[i] ? 1.0 : 0.0; break;
    }
  }
  return host;
}

std::vector<double> random_normal(size_t n, uint64_t seed, attnforge_dtype dtype) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> dist(0.0, 1.0);
  std::vector<double> out(n);
  for (double& x : out) x = round_to_dtype(dtype, dist(gen));
  return out;
}

}  // namespace attnforge::test
