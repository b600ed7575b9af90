// Element types of the unfused backend: DType → CUDA storage type, cuBLAS data/compute types and
// the fp32 conversions the kernels use (all math is fp32; storage is the variant's dtype).
#pragma once
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "common/variant.hpp"

namespace attnforge::unfused {

template <DType T>
struct Elem;
template <>
struct Elem<DType::f32> {
  using type = float;
  static constexpr cudaDataType kCuda = CUDA_R_32F;
  // True fp32 GEMMs: PEDANTIC forbids TF32 whatever the handle's math mode says, so the f32 path
  // is the accurate debugging path it is meant to be.
  static constexpr cublasComputeType_t kCompute = CUBLAS_COMPUTE_32F_PEDANTIC;
};
template <>
struct Elem<DType::f16> {
  using type = __half;
  static constexpr cudaDataType kCuda = CUDA_R_16F;
  static constexpr cublasComputeType_t kCompute = CUBLAS_COMPUTE_32F;  // fp32 accumulation
};
template <>
struct Elem<DType::bf16> {
  using type = __nv_bfloat16;
  static constexpr cudaDataType kCuda = CUDA_R_16BF;
  static constexpr cublasComputeType_t kCompute = CUBLAS_COMPUTE_32F;
};

template <DType T>
using elem_t = typename Elem<T>::type;

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

template <class E>
__device__ __forceinline__ E from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) { return x; }
template <>
__device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// Four consecutive elements in and out of a row. `vec` says the address is aligned to 4 elements
// (16 bytes for fp32, 8 for 16-bit), which the caller knows from the row pitch and base pointer.
// Loads the first n (≤ 4) into x and sets the rest to 0; the vector path only when all four are in
// the row, so a row's padding (never written) is never read.
template <class E>
__device__ __forceinline__ void load4(const E* src, bool vec, int n, float (&x)[4]) {
  if (vec && n >= 4) {
    if constexpr (sizeof(E) == 4) {
      const float4 v = *reinterpret_cast<const float4*>(src);
      x[0] = v.x, x[1] = v.y, x[2] = v.z, x[3] = v.w;
    } else {
      const uint2 raw = *reinterpret_cast<const uint2*>(src);
      const E* e = reinterpret_cast<const E*>(&raw);
#pragma unroll
      for (int j = 0; j < 4; ++j) x[j] = to_float(e[j]);
    }
    return;
  }
#pragma unroll
  for (int j = 0; j < 4; ++j) x[j] = j < n ? to_float(src[j]) : 0.0f;
}

// Stores the first n (≤ 4) of x; the vector path only when all four are in the row.
template <class E>
__device__ __forceinline__ void store4(E* dst, bool vec, int n, const float (&x)[4]) {
  if (vec && n >= 4) {
    if constexpr (sizeof(E) == 4) {
      *reinterpret_cast<float4*>(dst) = make_float4(x[0], x[1], x[2], x[3]);
    } else {
      uint2 raw;
      E* e = reinterpret_cast<E*>(&raw);
#pragma unroll
      for (int j = 0; j < 4; ++j) e[j] = from_float<E>(x[j]);
      *reinterpret_cast<uint2*>(dst) = raw;
    }
    return;
  }
#pragma unroll
  for (int j = 0; j < 4; ++j)
    if (j < n) dst[j] = from_float<E>(x[j]);
}

}  // namespace attnforge::unfused
