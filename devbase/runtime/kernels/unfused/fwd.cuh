// The unfused forward: S = Q·Kᵀ (cuBLAS, fp32 out), scale + mask + softmax (softmax_fwd.cuh, one
// kernel per (dtype, mask kind)) writing P (dtype) and LSE, then O = P·V (cuBLAS, fp32 accumulate).
// P goes to Params::weights when requested, else to the workspace.
#pragma once
#include <cuda_runtime.h>

#include <vector>

#include "common/params.hpp"
#include "common/variant.hpp"
#include "unfused/error.hpp"
#include "unfused/gemm.cuh"
#include "unfused/layout.hpp"
#include "unfused/operands.cuh"
#include "unfused/sequences.cuh"
#include "unfused/softmax_fwd.cuh"
#include "unfused/tensor_ops.cuh"
#include "unfused/types.cuh"

// S is kept in fp32, not rounded to the dtype as PyTorch's math path does: logits of size |s·scale|
// ~ 10 would lose ~0.03 in bf16 before the exp; fp32 costs one extra 2-byte write+read per score
// and keeps the result well inside the numerics rule. H100, bf16 D=128 S=4096 B=4 H=16: 5.39 ms
// (102 TFLOP/s) non-causal, 5.68 ms causal; PyTorch's math backend 23.1 / 9.5 TFLOP/s.

namespace attnforge::unfused {

inline attnforge_status check_workspace(const Params& p, const Layout& L) {
  if (L.total > 0 && (p.workspace == nullptr || p.workspace_bytes < L.total))
    return fail(ATTNFORGE_INTERNAL, "workspace of " + std::to_string(p.workspace_bytes) +
                                        " bytes, expected " + std::to_string(L.total));
  return ATTNFORGE_OK;
}

template <class V>
attnforge_status run_fwd(const Params& p, cudaStream_t stream) {
  using E = elem_t<V::kDType>;
  constexpr cudaDataType kType = Elem<V::kDType>::kCuda;
  constexpr cublasComputeType_t kCompute = Elem<V::kDType>::kCompute;
  const Layout L = make_layout(V::kDType, Direction::fwd, p);
  ATTNFORGE_UNFUSED_TRY(check_workspace(p, L));
  cublasHandle_t handle;
  ATTNFORGE_UNFUSED_TRY(bind_handle(p.cublas_handle, stream, handle));
  std::vector<HostSeq> seqs;
  ATTNFORGE_UNFUSED_TRY(host_sequences(p, stream, seqs));

  char* ws = static_cast<char*>(p.workspace);
  float* S = reinterpret_cast<float*>(ws + L.s);  // (B, Hq, Sq, ld_s) fp32
  E* P = p.weights != nullptr ? static_cast<E*>(p.weights)            // (B, Hq, Sq, Sk)
         : L.p_aliases_s     ? reinterpret_cast<E*>(S)                 // in place over S
                             : reinterpret_cast<E*>(ws + L.p);         // (B, Hq, Sq, ld_p)
  const Operands<E> op{p, kType};
  const int G = p.group(), D = p.head_dim;
  const int nb = fold_check(p)
                         .q_side(p.q_batch_stride, p.q_head_stride)
                         .q_side(p.o_batch_stride, p.o_head_stride)
                         .k_side(p.k_batch_stride, p.k_head_stride)
                         .k_side(p.v_batch_stride, p.v_head_stride)
                         .ok
                     ? p.batch
                     : 1;

  // S = Q·Kᵀ: (sq, D)·(sk, D)ᵀ → (sq, sk) fp32, per query head (unscaled: the softmax scales).
  for (int b = 0; b < p.batch; b += nb) {
    const HostSeq& s = seqs[b];
    if (s.seqlen_q == 0 || s.seqlen_k == 0) continue;
    for (int j = 0; j < G; ++j)
      ATTNFORGE_UNFUSED_TRY(gemm_rm(
          handle, false, true, s.seqlen_q, s.seqlen_k, D,
          op.q_side(p.q, p.q_batch_stride, p.q_row_stride, p.q_head_stride, b, s, j),
          op.k_side(p.k, p.k_batch_stride, p.k_row_stride, p.k_head_stride, b, s), 0.0f,
          op.scores(S, CUDA_R_32F, L.ld_s, b, j), nb * p.heads_kv, kCompute));
  }

  // P = softmax(S·scale + mask), LSE.
  ATTNFORGE_UNFUSED_TRY(softmax_fwd<V>(p, S, L.ld_s, P, L.ld_p, stream));

  // O = P·V: (sq, sk)·(sk, D) → (sq, D). A sequence with no keys has O = 0.
  for (int b = 0; b < p.batch; b += nb) {
    const HostSeq& s = seqs[b];
    if (s.seqlen_q == 0) continue;
    if (s.seqlen_k == 0) {
      for (int bb = b; bb < b + nb; ++bb)
        ATTNFORGE_UNFUSED_TRY(zero_rows<E>(
            static_cast<E*>(p.o) + bb * p.o_batch_stride + seqs[bb].q_start * p.o_row_stride,
            seqs[bb].seqlen_q, p.heads_q, D, p.o_row_stride, p.o_head_stride, stream));
      continue;
    }
    for (int j = 0; j < G; ++j)
      ATTNFORGE_UNFUSED_TRY(gemm_rm(
          handle, false, false, s.seqlen_q, D, s.seqlen_k, op.scores(P, kType, L.ld_p, b, j),
          op.k_side(p.v, p.v_batch_stride, p.v_row_stride, p.v_head_stride, b, s), 0.0f,
          op.q_side(p.o, p.o_batch_stride, p.o_row_stride, p.o_head_stride, b, s, j),
          nb * p.heads_kv, kCompute));
  }
  return ATTNFORGE_OK;
}

}  // namespace attnforge::unfused
