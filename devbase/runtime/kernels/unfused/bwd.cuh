// The unfused backward, the full softmax Jacobian with cuBLAS products:
//   S = Q·Kᵀ (fp32) → P = exp(S·scale + bias − LSE) / rowsum (recomputed, dtype)   δ = rowsum(dO ∘ O)
//   dV = Pᵀ·dO    dP = dO·Vᵀ (fp32)    dS = P ∘ (dP − δ) · scale (dtype)    dQ = dS·K    dK = dSᵀ·Q
#pragma once
#include <cuda_runtime.h>

#include <vector>

#include "common/params.hpp"
#include "common/variant.hpp"
#include "unfused/error.hpp"
#include "unfused/fwd.cuh"
#include "unfused/gemm.cuh"
#include "unfused/layout.hpp"
#include "unfused/operands.cuh"
#include "unfused/sequences.cuh"
#include "unfused/softmax_bwd.cuh"
#include "unfused/tensor_ops.cuh"
#include "unfused/types.cuh"

// dK and dV accumulate in fp32 workspace over the G query heads of each kv head (GQA) and over
// nothing else, then are stored once in the dtype; rows no query reaches stay exactly 0.

namespace attnforge::unfused {

template <class V>
attnforge_status run_bwd(const Params& p, cudaStream_t stream) {
  using E = elem_t<V::kDType>;
  constexpr cudaDataType kType = Elem<V::kDType>::kCuda;
  constexpr cublasComputeType_t kCompute = Elem<V::kDType>::kCompute;
  const Layout L = make_layout(V::kDType, Direction::bwd, p);
  ATTNFORGE_UNFUSED_TRY(check_workspace(p, L));
  cublasHandle_t handle;
  ATTNFORGE_UNFUSED_TRY(bind_handle(p.cublas_handle, stream, handle));
  std::vector<HostSeq> seqs;
  ATTNFORGE_UNFUSED_TRY(host_sequences(p, stream, seqs));

  char* ws = static_cast<char*>(p.workspace);
  float* S = reinterpret_cast<float*>(ws + L.s);           // (B, Hq, Sq, ld_s) fp32: S, then dP
  E* P = reinterpret_cast<E*>(ws + L.p);                   // (B, Hq, Sq, ld_p): P, then dS
  float* dk_acc = reinterpret_cast<float*>(ws + L.dk_acc);  // (B, Hkv, Sk, D) fp32
  float* dv_acc = reinterpret_cast<float*>(ws + L.dv_acc);  // (B, Hkv, Sk, D) fp32
  const Operands<E> op{p, kType};
  const int G = p.group(), D = p.head_dim;
  const int nb = fold_check(p)
                         .q_side(p.q_batch_stride, p.q_head_stride)
                         .q_side(p.do_batch_stride, p.do_head_stride)
                         .q_side(p.dq_batch_stride, p.dq_head_stride)
                         .k_side(p.k_batch_stride, p.k_head_stride)
                         .k_side(p.v_batch_stride, p.v_head_stride)
                         .ok
                     ? p.batch
                     : 1;
  const int batch = nb * p.heads_kv;
  auto Q = [&](int b, const HostSeq& s, int j) {
    return op.q_side(p.q, p.q_batch_stride, p.q_row_stride, p.q_head_stride, b, s, j);
  };
  auto dO = [&](int b, const HostSeq& s, int j) {
    return op.q_side(p.d_o, p.do_batch_stride, p.do_row_stride, p.do_head_stride, b, s, j);
  };
  auto K = [&](int b, const HostSeq& s) {
    return op.k_side(p.k, p.k_batch_stride, p.k_row_stride, p.k_head_stride, b, s);
  };
  auto Vt = [&](int b, const HostSeq& s) {
    return op.k_side(p.v, p.v_batch_stride, p.v_row_stride, p.v_head_stride, b, s);
  };

  // S = Q·Kᵀ (fp32), as in the forward.
  for (int b = 0; b < p.batch; b += nb) {
    const HostSeq& s = seqs[b];
    if (s.seqlen_q == 0 || s.seqlen_k == 0) continue;
    for (int j = 0; j < G; ++j)
      ATTNFORGE_UNFUSED_TRY(gemm_rm(handle, false, true, s.seqlen_q, s.seqlen_k, D, Q(b, s, j),
                                    K(b, s), 0.0f, op.scores(S, CUDA_R_32F, L.ld_s, b, j), batch,
                                    kCompute));
  }
  // P from S and the forward's LSE.
  ATTNFORGE_UNFUSED_TRY(softmax_recompute<V>(p, S, L.ld_s, P, L.ld_p, stream));
  const size_t acc_bytes = size_t(p.total_k) * p.heads_kv * D * sizeof(float);
  ATTNFORGE_UNFUSED_CUDA(cudaMemsetAsync(dk_acc, 0, acc_bytes, stream));
  ATTNFORGE_UNFUSED_CUDA(cudaMemsetAsync(dv_acc, 0, acc_bytes, stream));

  for (int b = 0; b < p.batch; b += nb) {
    const HostSeq& s = seqs[b];
    if (s.seqlen_q == 0 || s.seqlen_k == 0) continue;
    for (int j = 0; j < G; ++j) {
      // dV += Pᵀ·dO: (sq, sk)ᵀ·(sq, D) → (sk, D), fp32, summed over the group (β = 1).
      ATTNFORGE_UNFUSED_TRY(gemm_rm(handle, true, false, s.seqlen_k, D, s.seqlen_q,
                                    op.scores(P, kType, L.ld_p, b, j), dO(b, s, j), 1.0f,
                                    op.acc(dv_acc, b, s), batch, kCompute));
      // dP = dO·Vᵀ: (sq, D)·(sk, D)ᵀ → (sq, sk) fp32, over S (no longer needed).
      ATTNFORGE_UNFUSED_TRY(gemm_rm(handle, false, true, s.seqlen_q, s.seqlen_k, D, dO(b, s, j),
                                    Vt(b, s), 0.0f, op.scores(S, CUDA_R_32F, L.ld_s, b, j), batch,
                                    kCompute));
    }
  }
  // dS = P ∘ (dP − δ) · scale with δ = rowsum(dO ∘ O) = Σ_j P·dP, over P.
  ATTNFORGE_UNFUSED_TRY(softmax_grad<V>(p, S, L.ld_s, P, L.ld_p, stream));

  for (int b = 0; b < p.batch; b += nb) {
    const HostSeq& s = seqs[b];
    if (s.seqlen_q == 0) continue;
    if (s.seqlen_k == 0) {  // no keys: the queries' gradient is 0
      for (int bb = b; bb < b + nb; ++bb)
        ATTNFORGE_UNFUSED_TRY(zero_rows<E>(
            static_cast<E*>(p.dq) + bb * p.dq_batch_stride + seqs[bb].q_start * p.dq_row_stride,
            seqs[bb].seqlen_q, p.heads_q, D, p.dq_row_stride, p.dq_head_stride, stream));
      continue;
    }
    for (int j = 0; j < G; ++j) {
      // dQ = dS·K: (sq, sk)·(sk, D) → (sq, D).
      ATTNFORGE_UNFUSED_TRY(gemm_rm(
          handle, false, false, s.seqlen_q, D, s.seqlen_k, op.scores(P, kType, L.ld_p, b, j), K(b, s),
          0.0f, op.q_side(p.dq, p.dq_batch_stride, p.dq_row_stride, p.dq_head_stride, b, s, j),
          batch, kCompute));
      // dK += dSᵀ·Q: (sq, sk)ᵀ·(sq, D) → (sk, D), fp32, summed over the group.
      ATTNFORGE_UNFUSED_TRY(gemm_rm(handle, true, false, s.seqlen_k, D, s.seqlen_q,
                                    op.scores(P, kType, L.ld_p, b, j), Q(b, s, j), 1.0f,
                                    op.acc(dk_acc, b, s), batch, kCompute));
    }
  }
  // dK, dV in the dtype, every row (those no query reached are 0).
  const int64_t batches = p.is_varlen() ? 1 : p.batch;
  const int64_t rows = p.is_varlen() ? p.total_k : p.seqlen_k;
  ATTNFORGE_UNFUSED_TRY(store_acc<E>(dk_acc, p.dk, batches, p.heads_kv, rows, D,
                                     p.is_varlen() ? 0 : p.dk_batch_stride, p.dk_row_stride,
                                     p.dk_head_stride, stream));
  ATTNFORGE_UNFUSED_TRY(store_acc<E>(dv_acc, p.dv, batches, p.heads_kv, rows, D,
                                     p.is_varlen() ? 0 : p.dv_batch_stride, p.dv_row_stride,
                                     p.dv_head_stride, stream));
  return ATTNFORGE_OK;
}

}  // namespace attnforge::unfused
