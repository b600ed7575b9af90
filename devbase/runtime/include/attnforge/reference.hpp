// CPU reference attention, for tests and for users debugging a result: the exact function in fp64,
// and the "plain low-precision implementation" of DESIGN.md's numerics rule emulated on the CPU.
// Host arrays use the C API's layouts and element strides; masks come from the compiled mask kinds.
#pragma once
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>

#include "attnforge/attnforge.h"

namespace attnforge {

// ---- host dtype conversions (round to nearest even, like the GPU's conversions) ------------------
inline uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float f32_from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint16_t f32_to_bf16_bits(float f) {
  const uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x0040u);  // NaN stays NaN
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
inline float bf16_bits_to_f32(uint16_t h) { return f32_from_bits(uint32_t(h) << 16); }
inline uint16_t f32_to_f16_bits(float f) {
  const uint32_t x = f32_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t exp = (x >> 23) & 0xffu;
  uint32_t mant = x & 0x7fffffu;
  if (exp == 0xffu) return uint16_t(sign | 0x7c00u | (mant ? 0x200u : 0u));  // inf / NaN
  const int e = int(exp) - 127 + 15;                                           // rebias
  if (e >= 31) return uint16_t(sign | 0x7c00u);                                // overflow → inf
  if (e <= 0) {                                                                // f16 subnormal or 0
    if (e < -10) return uint16_t(sign);
    mant |= 0x800000u;
    const int shift = 14 - e;
    uint32_t m = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1u), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (m & 1u))) ++m;
    return uint16_t(sign | m);
  }
  uint32_t h = sign | (uint32_t(e) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry rounds up into the exponent
  return uint16_t(h);
}
inline float f16_bits_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0) {  // subnormal: mant · 2^-24
    const float v = float(mant) * 5.9604644775390625e-08f;
    return (h & 0x8000u) ? -v : v;
  }
  if (exp == 31) return f32_from_bits(sign | 0x7f800000u | (mant << 13));
  return f32_from_bits(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}
// x rounded to dtype (F32: to float; F16/BF16: through float, as GPU conversions do; BOOL: 0/1).
inline double round_to_dtype(attnforge_dtype t, double x) {
  const float f = float(x);
  switch (t) {
    case ATTNFORGE_F16: return f16_bits_to_f32(f32_to_f16_bits(f));
    case ATTNFORGE_BF16: return bf16_bits_to_f32(f32_to_bf16_bits(f));
    case ATTNFORGE_BOOL: return x != 0.0 ? 1.0 : 0.0;
    case ATTNFORGE_F32: break;
  }
  return f;
}

// ---- the reference ----------------------------------------------------------------------------
// A host tensor of doubles with the shape and element strides of the matching C-API tensor
// (dense q: (B, Sq, Hq, D); varlen q: (total_q, Hq, D); lse: (B, Hq, Sq) or (Hq, total_q); ...).
struct HostTensor {
  double* data = nullptr;  // null = absent
  int rank = 0;
  int64_t sizes[4] = {0, 0, 0, 0};
  int64_t strides[4] = {0, 0, 0, 0};
  // A row-major (contiguous) view of `data` with these sizes.
  static HostTensor contiguous(double* data, std::initializer_list<int64_t> sizes) {
    HostTensor t;
    t.data = data;
    t.rank = int(sizes.size());
    int i = 0;
    for (int64_t s : sizes) t.sizes[i++] = s;
    int64_t stride = 1;
    for (int d = t.rank - 1; d >= 0; --d) t.strides[d] = stride, stride *= t.sizes[d];
    return t;
  }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= sizes[i];
    return n;
  }
};

// The same view over float data (what users usually have after copying device tensors back).
struct HostTensorF {
  float* data = nullptr;  // null = absent
  int rank = 0;
  int64_t sizes[4] = {0, 0, 0, 0};
  int64_t strides[4] = {0, 0, 0, 0};
  static HostTensorF contiguous(float* data, std::initializer_list<int64_t> sizes) {
    HostTensorF t;
    t.data = data;
    t.rank = int(sizes.size());
    int i = 0;
    for (int64_t s : sizes) t.sizes[i++] = s;
    int64_t stride = 1;
    for (int d = t.rank - 1; d >= 0; --d) t.strides[d] = stride, stride *= t.sizes[d];
    return t;
  }
};

// The problem, as in attnforge_args (host copies of cu_seqlens for varlen).
struct ReferenceProblem {
  int batch = 1;
  int seqlen_q = 0, seqlen_k = 0;  // dense lengths (varlen: from cu_seqlens; these are ignored)
  int heads_q = 1, heads_kv = 1, head_dim = 0;
  const int32_t* cu_seqlens_q = nullptr;  // host, batch + 1 entries; null = dense
  const int32_t* cu_seqlens_k = nullptr;
  double scale = 0.0;                     // 0 or NaN: 1/sqrt(head_dim)
  std::string mask = "none";              // a compiled mask kind
  int64_t scalars[ATTNFORGE_MAX_MASK_SCALARS] = {-1, -1, -1, -1};
  // Mask kinds with a tensor: (B, Hq, Sq, Sk) by strides (size-1 dims broadcast); additive
  // (−inf = masked) or, with bias_is_bool, visibility (0 = masked). Varlen: indexed within a sequence.
  HostTensor bias;
  bool bias_is_bool = false;
};

// fp64 forward: O (like q), optional LSE (fp32 layout of the C API; −inf for a row that sees no
// key, whose O is exactly 0) and optional P ((B, Hq, Sq, Sk), dense only).
// Throws std::invalid_argument on an unknown mask kind or inconsistent shapes.
ATTNFORGE_API void reference_forward(const ReferenceProblem& pr, const HostTensor& q, const HostTensor& k,
                                     const HostTensor& v, const HostTensor& o, const HostTensor& lse = {},
                                     const HostTensor& p = {});

// fp64 backward: dQ, dK, dV (like q, k, v) from dO (like o); recomputes P itself.
ATTNFORGE_API void reference_backward(const ReferenceProblem& pr, const HostTensor& q, const HostTensor& k,
                                      const HostTensor& v, const HostTensor& d_o, const HostTensor& dq,
                                      const HostTensor& dk, const HostTensor& dv);

// float overloads: computed in fp64 all the same (inputs widened, results rounded to float once).
ATTNFORGE_API void reference_forward(const ReferenceProblem& pr, const HostTensorF& q, const HostTensorF& k,
                                     const HostTensorF& v, const HostTensorF& o, const HostTensorF& lse = {},
                                     const HostTensorF& p = {});
ATTNFORGE_API void reference_backward(const ReferenceProblem& pr, const HostTensorF& q, const HostTensorF& k,
                                      const HostTensorF& v, const HostTensorF& d_o, const HostTensorF& dq,
                                      const HostTensorF& dk, const HostTensorF& dv);

// The plain low-precision implementation in `dtype` (what PyTorch's math backend does): inputs
// taken as dtype values, S = Q·Kᵀ rounded to dtype, scaled and biased in dtype, softmax in fp32,
// P rounded to dtype, every GEMM accumulating in fp32 and rounding its result to dtype.
ATTNFORGE_API void reference_lowp_forward(attnforge_dtype dtype, const ReferenceProblem& pr, const HostTensor& q,
                                          const HostTensor& k, const HostTensor& v, const HostTensor& o,
                                          const HostTensor& lse = {}, const HostTensor& p = {});
ATTNFORGE_API void reference_lowp_backward(attnforge_dtype dtype, const ReferenceProblem& pr, const HostTensor& q,
                                           const HostTensor& k, const HostTensor& v, const HostTensor& d_o,
                                           const HostTensor& dq, const HostTensor& dk, const HostTensor& dv);

}  // namespace attnforge
