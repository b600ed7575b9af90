// cuBLAS strided-batched GEMMs of the unfused backend in row-major terms (the library's tensors
// are row-major): C(M×N) = α·op(A)·op(B) + β·C for `batch` matrices at fixed element strides.
#pragma once
#include <cublas_v2.h>

#include <climits>
#include <string>

#include "unfused/error.hpp"

// cublasGemmStridedBatchedEx takes any leading dimension and any element-aligned pointer, so odd
// head dims (D = 1, 7, …) and arbitrary row / head strides need no fallback.

namespace attnforge::unfused {

// One row-major operand of a strided batch: base pointer, element type, row pitch in elements
// (the "leading dimension"), and the element distance between consecutive batch entries.
struct RowMajor {
  const void* ptr;
  cudaDataType type;
  int64_t ld;
  int64_t batch_stride;
};

// C(M×N) = alpha · op(A)(M×K) · op(B)(K×N) + beta · C, all row-major, `batch` times.
// cuBLAS is column-major, and a row-major X is the column-major Xᵀ with the same pitch, so this is
// Cᵀ = op(B)ᵀ · op(A)ᵀ: the operands swap places and keep their transpose flags.
inline attnforge_status gemm_rm(cublasHandle_t handle, bool trans_a, bool trans_b, int M, int N,
                                int K, RowMajor A, RowMajor B, float beta, RowMajor C, int batch,
                                cublasComputeType_t compute, float alpha = 1.0f) {
  if (M == 0 || N == 0 || batch == 0) return ATTNFORGE_OK;
  // A stored matrix with one row never steps to a second: its pitch is free (PyTorch hands out any
  // stride for a size-1 dim), but cuBLAS insists on pitch ≥ columns.
  auto pitch = [](int64_t ld, int64_t stored_rows, int64_t stored_cols) {
    return stored_rows <= 1 && ld < stored_cols ? stored_cols : ld;
  };
  const int64_t lda = pitch(A.ld, trans_a ? K : M, trans_a ? M : K);
  const int64_t ldb = pitch(B.ld, trans_b ? N : K, trans_b ? K : N);
  const int64_t ldc = pitch(C.ld, M, N);
  if (lda > INT_MAX || ldb > INT_MAX || ldc > INT_MAX)
    return fail(ATTNFORGE_UNSUPPORTED, "a row pitch exceeds cuBLAS's int leading dimension (lda " +
                                           std::to_string(lda) + ", ldb " + std::to_string(ldb) +
                                           ", ldc " + std::to_string(ldc) + ")");
  ATTNFORGE_UNFUSED_CUBLAS(cublasGemmStridedBatchedEx(
      handle, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,  //
      N, M, K, &alpha,                                                                    //
      B.ptr, B.type, int(ldb), (long long)B.batch_stride,                                 //
      A.ptr, A.type, int(lda), (long long)A.batch_stride,                                 //
      &beta, const_cast<void*>(C.ptr), C.type, int(ldc), (long long)C.batch_stride,       //
      batch, compute, CUBLAS_GEMM_DEFAULT));
  return ATTNFORGE_OK;
}

// Binds the runtime's handle to this call's stream (and host-side α/β).
inline attnforge_status bind_handle(void* raw, cudaStream_t stream, cublasHandle_t& handle) {
  if (raw == nullptr) return fail(ATTNFORGE_INTERNAL, "Params::cublas_handle is null");
  handle = static_cast<cublasHandle_t>(raw);
  ATTNFORGE_UNFUSED_CUBLAS(cublasSetStream(handle, stream));
  ATTNFORGE_UNFUSED_CUBLAS(cublasSetPointerMode(handle, CUBLAS_POINTER_MODE_HOST));
  return ATTNFORGE_OK;
}

}  // namespace attnforge::unfused
