// Params: the validated, normalised arguments of one attention call, as every kernel sees them.
// Built on the host from attnforge_args (runtime/src/validate.cpp) after validation; POD.
#pragma once
#include <cstddef>
#include <cstdint>

#include "hd.hpp"
#include "mask.hpp"

namespace attnforge {

// Where one sequence of the batch lives. Dense: start = 0, the batch stride does the work;
// varlen: batch strides are 0 and start = cu_seqlens[b].
struct SeqInfo {
  int64_t q_start, k_start;  // first token row of this sequence in the (packed) tensor
  int seqlen_q, seqlen_k;    // this sequence's lengths (may be 0 in varlen)
};

// Largest sequence length (and max_seqlen) the validator accepts: 2^31 − 2^16, so that kernels
// and launchers may round any length up to whole tiles (≤ 256 rows) in int.
constexpr int kMaxSeqlen = 0x7fffffff - 65535;

struct Params {
  // ---- tensors (last dim contiguous; strides in elements) --------------------------------
  const void* q;  // (B, Sq, Hq, D)   varlen: (total_q, Hq, D)
  const void* k;  // (B, Sk, Hkv, D)  varlen: (total_k, Hkv, D)
  const void* v;  // (B, Sk, Hkv, D)
  void* o;        // (B, Sq, Hq, D)
  float* lse;     // fp32 (B, Hq, Sq); varlen (Hq, total_q). Never null: the library supplies one.
  void* weights;  // optional P, contiguous (B, Hq, Sq, Sk) in the dtype of q; null = not requested
  int64_t q_batch_stride, q_row_stride, q_head_stride;
  int64_t k_batch_stride, k_row_stride, k_head_stride;
  int64_t v_batch_stride, v_row_stride, v_head_stride;
  int64_t o_batch_stride, o_row_stride, o_head_stride;
  int64_t lse_batch_stride, lse_head_stride;  // lse(b, h, i) = lse[b*bs + h*hs + q_start + i]

  // ---- backward only ----------------------------------------------------------------------
  const void* d_o;  // like o
  void* dq;         // like q
  void* dk;         // like k
  void* dv;         // like v
  int64_t do_batch_stride, do_row_stride, do_head_stride;
  int64_t dq_batch_stride, dq_row_stride, dq_head_stride;
  int64_t dk_batch_stride, dk_row_stride, dk_head_stride;
  int64_t dv_batch_stride, dv_row_stride, dv_head_stride;

  // ---- sizes --------------------------------------------------------------------------------
  int batch;               // B (number of sequences)
  int seqlen_q, seqlen_k;  // dense: Sq, Sk; varlen: max_seqlen (≤ total); all ≤ kMaxSeqlen
  int heads_q, heads_kv;   // Hq, Hkv; Hq % Hkv == 0, group = Hq / Hkv
  int head_dim;            // D (runtime value; a variant's HeadDim is its compile-time twin)
  int64_t total_q, total_k;       // varlen: packed token counts; dense: B*Sq, B*Sk
  const int32_t* cu_seqlens_q;    // device (B+1) or null (dense)
  const int32_t* cu_seqlens_k;

  // ---- math -------------------------------------------------------------------------------
  float scale;       // softmax scale, default 1/sqrt(D)
  float scale_log2;  // scale * log2(e): kernels use exp2
  MaskScalars mask;  // runtime scalars of the mask kind, in TOML order
  const void* bias;  // mask kinds with a tensor: (B, Hq, Sq, Sk) by strides (0 = broadcast)
  int bias_dtype;    // attnforge_dtype of bias: F32, F16, BF16 (additive) or BOOL (visibility)
  int64_t bias_stride_b, bias_stride_h, bias_stride_q, bias_stride_k;

  // ---- execution --------------------------------------------------------------------------
  void* workspace;         // scratch of workspace_bytes(...) bytes, 256-byte aligned
  size_t workspace_bytes;
  bool deterministic;      // backward: bitwise reproducible
  int num_sms;             // of the current device
  void* cublas_handle;     // unfused: cublasHandle_t owned by the runtime (per device, thread)

  ATTNFORGE_HD bool is_varlen() const { return cu_seqlens_q != nullptr; }
  ATTNFORGE_HD int group() const { return heads_q / heads_kv; }
};

#if defined(__CUDACC__)
// Lengths and offsets of sequence b (device side; reads cu_seqlens for varlen).
__device__ __forceinline__ SeqInfo seq_info(const Params& p, int b) {
  if (p.cu_seqlens_q == nullptr) return SeqInfo{0, 0, p.seqlen_q, p.seqlen_k};
  const int64_t q0 = p.cu_seqlens_q[b], q1 = p.cu_seqlens_q[b + 1];
  const int64_t k0 = p.cu_seqlens_k[b], k1 = p.cu_seqlens_k[b + 1];
  return SeqInfo{q0, k0, int(q1 - q0), int(k1 - k0)};
}
#endif

}  // namespace attnforge
