// Tensor-core primitives of the sm_80+ path: mma.sync m16n8k16 (16-bit in, fp32 accumulate) and the
// ldmatrix loads that produce its operand fragments from shared memory.
//
// Fragment layouts (lane = 32·warp-local thread id, g = lane / 4, t = lane % 4), per PTX ISA:
//   A (16×16, row-major), 4 regs of 2 elements: a0 = (row g,   cols 2t..2t+1)   a1 = (row g+8, cols 2t..)
//                                                a2 = (row g,   cols 2t+8..)    a3 = (row g+8, cols 2t+8..)
//   B (16×8, k × n),      2 regs:               b0 = (k 2t..2t+1, col g)       b1 = (k 2t+8..2t+9, col g)
//   C (16×8, fp32),       4 floats:             c0,c1 = (row g, cols 2t, 2t+1)  c2,c3 = (row g+8, same)
// A C fragment pair covering columns 16·j .. 16·j+15 is, packed to 16 bits, exactly the A fragment
// of k-step j of the next GEMM: that is how P stays in registers between S = Q·Kᵀ and O = P·V.
#pragma once
#include <cstdint>

#include "common/variant.hpp"

namespace attnforge::prim {

// k-step kk of the next GEMM's A operand from a C-fragment block c (its n8 tiles 2kk and 2kk + 1), packed
// to 16 bits by Num (numeric.cuh); wgmma's register A has the same layout per warp.
template <class Num, int kNT>
__device__ __forceinline__ void c_to_a(uint32_t (&a)[4], const float (&c)[kNT][4], int kk) {
  a[0] = Num::pack2(c[2 * kk][0], c[2 * kk][1]);
  a[1] = Num::pack2(c[2 * kk][2], c[2 * kk][3]);
  a[2] = Num::pack2(c[2 * kk + 1][0], c[2 * kk + 1][1]);
  a[3] = Num::pack2(c[2 * kk + 1][2], c[2 * kk + 1][3]);
}

// C += A·B for one m16n8k16 tile; T selects the 16-bit input type (f16 or bf16).
template <DType T>
__device__ __forceinline__ void mma_m16n8k16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                             uint32_t b1) {
  static_assert(T == DType::f16 || T == DType::bf16, "mma.sync m16n8k16 takes f16 or bf16");
  if constexpr (T == DType::bf16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// Four 8×8 16-bit matrices from shared memory. Lanes 8i..8i+7 give the row addresses (16 bytes
// each) of matrix i; register i receives matrix i with lane holding (row g, cols 2t, 2t+1).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t smem_addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr));
}

// As ldmatrix_x4, transposed: lane receives (rows 2t, 2t+1; col g) of each stored matrix, i.e. the
// B fragment of a k × n operand stored row-major by k (V in O = P·V).
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t smem_addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr));
}

// The store counterpart of ldmatrix_x4 (sm_90): register i of each lane, (row g, cols 2t, 2t+1) of
// matrix i — an mma / wgmma accumulator fragment packed to 16 bits — goes to the row whose address
// lanes 8i..8i+7 give. One instruction for what four 4-byte shared stores per lane did.
__device__ __forceinline__ void stmatrix_x4(uint32_t smem_addr, const uint32_t (&r)[4]) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1,%2,%3,%4};\n" ::"r"(smem_addr), "r"(r[0]),
               "r"(r[1]), "r"(r[2]), "r"(r[3])
               : "memory");
}

}  // namespace attnforge::prim
