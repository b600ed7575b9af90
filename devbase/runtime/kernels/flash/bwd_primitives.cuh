// The warp-level building blocks the flash backward uses, taken from common/ (prim::): element
// traits, cp.async, ldmatrix, mma.sync m16n8k16, ex2.approx. Backward-only extras live here:
// the 4-byte cp.async for per-row fp32 vectors (LSE, D) and short aliases used by bwd_*.cuh.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "common/copy.cuh"
#include "common/mma.cuh"
#include "common/numeric.cuh"
#include "common/softmax.cuh"
#include "common/variant.hpp"

namespace attnforge::flash::bwd_detail {

template <DType T>
struct Elem : prim::Numeric<T> {
  using type = typename prim::Numeric<T>::Element;
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    return prim::Numeric<T>::pack2(lo, hi);
  }
  // Inverse of pack: the two 16-bit values as fp32 (exact).
  static __device__ __forceinline__ float2 unpack(uint32_t u) {
    if constexpr (T == DType::bf16) {
      return make_float2(__uint_as_float(u << 16), __uint_as_float(u & 0xffff0000u));
    } else {
      __half2 h = *reinterpret_cast<__half2*>(&u);
      return __half22float2(h);
    }
  }
};

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

using prim::cp_async_16;
using prim::cp_async_commit;
using prim::cp_async_wait;
using prim::exp2_approx;

// 4 bytes (one fp32) global → shared, zero-filled when !valid (src not read then).
__device__ __forceinline__ void cp_async_4(uint32_t dst, const void* src, bool valid) {
  const int n = valid ? 4 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(n));
}

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], uint32_t addr) { prim::ldmatrix_x4(r, addr); }
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], uint32_t addr) {
  prim::ldmatrix_x4_trans(r, addr);
}

// c += a·b, m16n8k16, fp32 accumulate (bf16 or f16 inputs).
template <bool kBf16>
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  prim::mma_m16n8k16<kBf16 ? DType::bf16 : DType::f16>(c, a, b0, b1);
}

}  // namespace attnforge::flash::bwd_detail
