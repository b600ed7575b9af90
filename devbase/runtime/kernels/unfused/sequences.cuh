// The host's view of the batch: one entry per sequence with its token offsets and lengths, which
// the per-sequence cuBLAS calls need on the host.
#pragma once
#include <cuda_runtime.h>

#include <vector>

#include "common/params.hpp"
#include "unfused/error.hpp"

// Varlen: cu_seqlens live in device memory, so they are copied to the host and the stream is
// SYNCHRONISED — acceptable for this debugging backend, and the one host sync of the unfused path
// (dense calls never sync).

namespace attnforge::unfused {

struct HostSeq {
  int64_t q_start, k_start;  // first token row (0 for dense: the batch stride does the work)
  int seqlen_q, seqlen_k;
};

inline attnforge_status host_sequences(const Params& p, cudaStream_t stream,
                                       std::vector<HostSeq>& out) {
  out.clear();
  if (!p.is_varlen()) {
    out.assign(p.batch, HostSeq{0, 0, p.seqlen_q, p.seqlen_k});
    return ATTNFORGE_OK;
  }
  std::vector<int32_t> cq(p.batch + 1), ck(p.batch + 1);
  const size_t bytes = sizeof(int32_t) * (p.batch + 1);
  ATTNFORGE_UNFUSED_CUDA(
      cudaMemcpyAsync(cq.data(), p.cu_seqlens_q, bytes, cudaMemcpyDeviceToHost, stream));
  ATTNFORGE_UNFUSED_CUDA(
      cudaMemcpyAsync(ck.data(), p.cu_seqlens_k, bytes, cudaMemcpyDeviceToHost, stream));
  ATTNFORGE_UNFUSED_CUDA(cudaStreamSynchronize(stream));
  for (int b = 0; b < p.batch; ++b) {
    const int sq = cq[b + 1] - cq[b], sk = ck[b + 1] - ck[b];
    if (sq < 0 || sk < 0 || sq > p.seqlen_q || sk > p.seqlen_k)
      return fail(ATTNFORGE_INVALID_ARGUMENT,
                  "sequence " + std::to_string(b) + " has lengths (" + std::to_string(sq) + ", " +
                      std::to_string(sk) + "), outside [0, max_seqlen] = [0, " +
                      std::to_string(p.seqlen_q) + "] × [0, " + std::to_string(p.seqlen_k) + "]");
    out.push_back(HostSeq{cq[b], ck[b], sq, sk});
  }
  return ATTNFORGE_OK;
}

}  // namespace attnforge::unfused
