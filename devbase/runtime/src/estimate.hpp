// Per-backend cost estimates of one call: can the backend run it, with which variant, how much
// scratch and device memory, how many FLOPs and kernel launches. The selector's memory budget
// and attnforge_estimate() both read these numbers, so what the user is told is what was used.
#pragma once
#include <cstddef>
#include <string>

#include "select.hpp"
#include "variant_key.hpp"

namespace attnforge {

struct BackendEstimate {
  Backend backend = Backend::unfused;
  bool available = false;
  const VariantInfo* variant = nullptr;  // what the backend would run (first candidate that fits)
  std::string reason;                    // why not available ("" when available)
  size_t workspace_bytes = 0;            // exact: workspace_bytes(variant->key, params)
  size_t scratch_bytes = 0;              // what the call allocates: workspace + library temporaries
                                         // (forward without a caller LSE: the fp32 LSE)
  size_t tensor_bytes = 0;               // the caller's tensors the call reads or writes
  size_t device_bytes = 0;               // tensor_bytes + scratch_bytes
  double flops = 0;                      // useful FLOPs (visible score pairs only)
  int kernel_launches = 0;               // kernels + memsets enqueued on the stream
};

// Can backend b run the problem at all? Fills `why` when not (missing head dim, Sk beyond the
// fused row limit, weights from flash...). `v` = the first fitting candidate, best-first.
const VariantInfo* first_fitting_variant(Backend b, const Problem& pr, std::string* why);
// True when v can run pr (direction, dtype, mask, head dim, Sk limit, weights, device, grid limits).
bool variant_fits(const VariantInfo& v, const Problem& pr, std::string* why);

// The estimate of running `v` (or, with v = null, backend b's first fitting variant) on the call.
BackendEstimate estimate_backend(Backend b, const Problem& pr, const Params& p,
                                 const VariantInfo* v = nullptr);

// Bytes the call allocates beyond the caller's tensors when it runs v: what a memory budget bounds.
size_t scratch_bytes(const VariantInfo& v, const Problem& pr, const Params& p);

// 4·B·Hq·D·(visible (q, k) pairs) forward, ×2.5 backward (DESIGN.md). Visible pairs are exact
// for none / causal / window / bias (O(Sq) row count, bottom-right alignment) and the full Sq·Sk
// for a user-defined kind; varlen uses max_seqlen (an upper bound).
double attention_flops(const Problem& pr, const Params& p);
// Visible (q, k) pairs of one (Sq, Sk) sequence under a mask kind.
double visible_pairs(int mask_id, int seqlen_q, int seqlen_k, const MaskScalars& s);

// Kernels (and memsets) one call of variant key enqueues, as the backends implement them.
int kernel_launches(const VariantKey& key, const Problem& pr, const Params& p);

}  // namespace attnforge
