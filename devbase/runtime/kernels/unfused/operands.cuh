// Where each operand of the unfused GEMMs lives: per sequence b and member j of the GQA head
// group, one strided batch over the Hkv kv heads (query head h = g·G + j reads kv head g).
#pragma once
#include <cstdint>

#include "common/params.hpp"
#include "unfused/gemm.cuh"
#include "unfused/sequences.cuh"

// When the dense batch strides are those of B·H evenly spaced heads, every sequence folds into
// that same batch (one cuBLAS call per j instead of one per (b, j)).

namespace attnforge::unfused {

template <class E>
struct Operands {
  const Params& p;
  cudaDataType type;  // cuBLAS type of E

  // A query-side tensor (Q, O, dO, dQ), sequence b, heads j, j+G, …: (sq, D) per batch entry.
  RowMajor q_side(const void* base, int64_t bs, int64_t rs, int64_t hs, int b, const HostSeq& s,
                  int j) const {
    return {static_cast<const E*>(base) + b * bs + s.q_start * rs + j * hs, type, rs,
            int64_t(p.group()) * hs};
  }
  // A key-side tensor (K, V), sequence b, kv heads 0, 1, …: (sk, D) per batch entry.
  RowMajor k_side(const void* base, int64_t bs, int64_t rs, int64_t hs, int b,
                  const HostSeq& s) const {
    return {static_cast<const E*>(base) + b * bs + s.k_start * rs, type, rs, hs};
  }
  // A score-shaped buffer (rows (b, h, i), pitch ld): (sq, sk) per batch entry, heads j, j+G, ….
  template <class T>
  RowMajor scores(const T* buf, cudaDataType t, int64_t ld, int b, int j) const {
    return {buf + (int64_t(b) * p.heads_q + j) * p.seqlen_q * ld, t, ld,
            int64_t(p.group()) * p.seqlen_q * ld};
  }
  // An fp32 (·, Hkv, rows, D) accumulator (tensor_ops.cuh): (sk, D) per kv head.
  RowMajor acc(const float* buf, int b, const HostSeq& s) const {
    const int64_t rows = p.is_varlen() ? p.total_k : p.seqlen_k;
    const int64_t b_acc = p.is_varlen() ? 0 : b;
    return {buf + (b_acc * p.heads_kv * rows + s.k_start) * p.head_dim, CUDA_R_32F, p.head_dim,
            rows * p.head_dim};
  }
};

// True when, for every listed tensor, stepping one sequence equals stepping Hkv batch entries:
// query side bs = Hq·hs (entries step G·hs), key side bs = Hkv·hs. Dense only.
struct FoldCheck {
  const Params& p;
  bool ok;
  FoldCheck& q_side(int64_t bs, int64_t hs) {
    ok = ok && bs == int64_t(p.heads_q) * hs;
    return *this;
  }
  FoldCheck& k_side(int64_t bs, int64_t hs) {
    ok = ok && bs == int64_t(p.heads_kv) * hs;
    return *this;
  }
};
inline FoldCheck fold_check(const Params& p) { return FoldCheck{p, !p.is_varlen()}; }

}  // namespace attnforge::unfused
