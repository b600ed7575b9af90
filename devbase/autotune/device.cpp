// Device buffers, random inputs, L2 flushing and event timing for attnforge-tune.
#include "device.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "attnforge/reference.hpp"

namespace attnforge::tuner {

void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

size_t dtype_bytes(attnforge_dtype t) {
  switch (t) {
    case ATTNFORGE_F32: return 4;
    case ATTNFORGE_F16:
    case ATTNFORGE_BF16: return 2;
    case ATTNFORGE_BOOL: return 1;
  }
  return 0;
}

DeviceBuffer::DeviceBuffer(size_t bytes) { reserve(bytes); }
DeviceBuffer::~DeviceBuffer() {
  if (ptr_) (void)cudaFree(ptr_);
}
DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_) (void)cudaFree(ptr_);
    ptr_ = o.ptr_, bytes_ = o.bytes_;
    o.ptr_ = nullptr, o.bytes_ = 0;
  }
  return *this;
}
void DeviceBuffer::reserve(size_t bytes) {
  if (bytes <= bytes_ && ptr_) return;
  if (ptr_) cuda_check(cudaFree(ptr_), "cudaFree");
  ptr_ = nullptr;
  bytes_ = 0;
  if (bytes == 0) return;
  cuda_check(cudaMalloc(&ptr_, bytes), ("cudaMalloc(" + std::to_string(bytes) + " bytes)").c_str());
  bytes_ = bytes;
}
void DeviceBuffer::poison(cudaStream_t s) {
  if (ptr_) cuda_check(cudaMemsetAsync(ptr_, 0xFF, bytes_, s), "cudaMemsetAsync(poison)");
}

namespace {

// splitmix64 → uniform doubles → Box–Muller normals.
struct Rng {
  uint64_t x;
  uint64_t next() {
    uint64_t z = (x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return (double(next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }  // (0, 1)
};

}  // namespace

std::vector<uint8_t> random_normal_bits(attnforge_dtype t, size_t count, uint64_t seed) {
  const size_t eb = dtype_bytes(t);
  std::vector<uint8_t> out(count * eb);
  Rng r{seed * 0x2545F4914F6CDD1Dull + 1};
  for (size_t i = 0; i < count; i += 2) {
    const double u1 = r.uniform(), u2 = r.uniform();
    const double rad = std::sqrt(-2.0 * std::log(u1));
    const double z[2] = {rad * std::cos(6.283185307179586 * u2), rad * std::sin(6.283185307179586 * u2)};
    for (size_t j = 0; j < 2 && i + j < count; ++j) {
      const float f = float(z[j]);
      uint8_t* dst = out.data() + (i + j) * eb;
      if (t == ATTNFORGE_F32) std::memcpy(dst, &f, 4);
      else {
        const uint16_t h = t == ATTNFORGE_BF16 ? f32_to_bf16_bits(f) : f32_to_f16_bits(f);
        std::memcpy(dst, &h, 2);
      }
    }
  }
  return out;
}

std::vector<double> bits_to_doubles(attnforge_dtype t, const std::vector<uint8_t>& bits) {
  const size_t eb = dtype_bytes(t), n = bits.size() / eb;
  std::vector<double> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (t == ATTNFORGE_F32) {
      float f;
      std::memcpy(&f, bits.data() + i * 4, 4);
      out[i] = f;
    } else {
      uint16_t h;
      std::memcpy(&h, bits.data() + i * 2, 2);
      out[i] = t == ATTNFORGE_BF16 ? bf16_bits_to_f32(h) : f16_bits_to_f32(h);
    }
  }
  return out;
}

std::vector<double> device_to_doubles(attnforge_dtype t, const void* device, size_t count) {
  std::vector<uint8_t> bits(count * dtype_bytes(t));
  cuda_check(cudaMemcpy(bits.data(), device, bits.size(), cudaMemcpyDeviceToHost), "cudaMemcpy(D2H)");
  return bits_to_doubles(t, bits);
}

void RandomPool::fill(void* dst, attnforge_dtype t, size_t count, int which, cudaStream_t s) {
  // Offsets: a prime number of 64-element blocks apart, so q, k, v and dO see different values.
  const size_t offset = size_t(which) * 64 * 4099;
  const size_t need = count + 4 * 64 * 4099;
  Pool* pool = nullptr;
  for (auto& p : pools_)
    if (p.t == t) pool = &p;
  if (pool == nullptr) {
    pools_.push_back(Pool{t, 0, DeviceBuffer()});
    pool = &pools_.back();
  }
  if (pool->count < need) {
    const size_t n = std::max(need, pool->count * 2);
    auto bits = random_normal_bits(t, n, 0x5eed + uint64_t(t));
    pool->buf.reserve(bits.size());
    cuda_check(cudaMemcpy(pool->buf.get(), bits.data(), bits.size(), cudaMemcpyHostToDevice), "cudaMemcpy(pool)");
    pool->count = n;
  }
  const size_t eb = dtype_bytes(t);
  cuda_check(cudaMemcpyAsync(dst, static_cast<const char*>(pool->buf.get()) + offset * eb, count * eb,
                             cudaMemcpyDeviceToDevice, s),
             "cudaMemcpyAsync(fill)");
}

L2Flusher::L2Flusher(int device) {
  int l2 = 0;
  cuda_check(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device), "cudaDeviceGetAttribute(L2)");
  buf_.reserve(size_t(std::max(l2, 1 << 20)) * 2);
}

void L2Flusher::flush(cudaStream_t s) {
  cuda_check(cudaMemsetAsync(buf_.get(), toggle_++ & 1, buf_.bytes(), s), "cudaMemsetAsync(L2 flush)");
}

Timing time_calls(const std::function<attnforge_status()>& call, int warmup, int reps, double max_ms_total,
                  L2Flusher& l2, cudaStream_t s) {
  Timing t;
  cudaEvent_t start = nullptr, stop = nullptr;
  cuda_check(cudaEventCreate(&start), "cudaEventCreate");
  cuda_check(cudaEventCreate(&stop), "cudaEventCreate");
  auto fail = [&](const std::string& why) {
    t.ok = false;
    t.error = why;
    (void)cudaEventDestroy(start);
    (void)cudaEventDestroy(stop);
    return t;
  };
  for (int i = 0; i < warmup; ++i) {
    if (attnforge_status st = call(); st != ATTNFORGE_OK)
      return fail(std::string(attnforge_status_string(st)) + ": " + attnforge_last_error());
  }
  if (cudaError_t e = cudaStreamSynchronize(s); e != cudaSuccess)
    return fail(std::string("after warm-up: ") + cudaGetErrorString(e));
  std::vector<float> ms;
  double total = 0;
  for (int i = 0; i < reps; ++i) {
    l2.flush(s);
    cuda_check(cudaEventRecord(start, s), "cudaEventRecord");
    if (attnforge_status st = call(); st != ATTNFORGE_OK)
      return fail(std::string(attnforge_status_string(st)) + ": " + attnforge_last_error());
    cuda_check(cudaEventRecord(stop, s), "cudaEventRecord");
    if (cudaError_t e = cudaEventSynchronize(stop); e != cudaSuccess)
      return fail(std::string("during timing: ") + cudaGetErrorString(e));
    float m = 0;
    cuda_check(cudaEventElapsedTime(&m, start, stop), "cudaEventElapsedTime");
    ms.push_back(m);
    total += m;
    if (ms.size() >= 3 && total > max_ms_total) break;  // slow candidate: 3 runs are enough
  }
  std::sort(ms.begin(), ms.end());
  t.ok = true;
  t.reps = int(ms.size());
  t.median_ms = ms.size() % 2 ? ms[ms.size() / 2] : 0.5 * (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]);
  t.min_ms = ms.front();
  t.max_ms = ms.back();
  (void)cudaEventDestroy(start);
  (void)cudaEventDestroy(stop);
  return t;
}

}  // namespace attnforge::tuner
