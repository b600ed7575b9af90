// 16-bit element types per DType and the conversions kernels need: fp32 <-> element, and packing
// two fp32 values into one 32-bit register (the operand format of mma.sync and of 4-byte stores).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "common/variant.hpp"

namespace attnforge::prim {

template <DType T>
struct Numeric;  // only the 16-bit tensor-core types are specialised

template <>
struct Numeric<DType::f16> {
  using Element = __half;
  using Element2 = __half2;
  static constexpr bool kIsBf16 = false;
  __device__ __forceinline__ static uint32_t pack2(float lo, float hi) {
    Element2 h = __floats2half2_rn(lo, hi);  // round to nearest even, lo in the low half
    return *reinterpret_cast<uint32_t*>(&h);
  }
  __device__ __forceinline__ static float to_float(Element x) { return __half2float(x); }
  __device__ __forceinline__ static Element from_float(float x) { return __float2half_rn(x); }
};

template <>
struct Numeric<DType::bf16> {
  using Element = __nv_bfloat16;
  using Element2 = __nv_bfloat162;
  static constexpr bool kIsBf16 = true;
  __device__ __forceinline__ static uint32_t pack2(float lo, float hi) {
    Element2 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&h);
  }
  __device__ __forceinline__ static float to_float(Element x) { return __bfloat162float(x); }
  __device__ __forceinline__ static Element from_float(float x) { return __float2bfloat16_rn(x); }
};

// Reads one element of a tensor whose dtype is only known at run time (bias tensors):
// dtype is an attnforge_dtype (F32, F16, BF16; BOOL reads as 0 or 1).
__device__ __forceinline__ float load_as_float(const void* base, int64_t idx, int dtype) {
  switch (dtype) {
    case ATTNFORGE_F32: return static_cast<const float*>(base)[idx];
    case ATTNFORGE_F16: return __half2float(static_cast<const __half*>(base)[idx]);
    case ATTNFORGE_BF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[idx]);
    default: return static_cast<const uint8_t*>(base)[idx] != 0 ? 1.f : 0.f;
  }
}

}  // namespace attnforge::prim
